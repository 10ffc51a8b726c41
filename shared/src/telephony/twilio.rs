//! Twilio's `Calls` and `Messages` resources (API 2010-04-01), over reqwest and rustls.

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::Deserialize;

use super::{
    BoxFuture, Content, OutgoingCall, OutgoingMessage, PlacedCall, Sender, SentMessage,
    TelephonyError, TelephonyGateway,
};
use crate::config::Config;
use crate::secrets::SecretsCache;

pub struct TwilioGateway {
    http: reqwest::Client,
    base_url: String,
    secrets: Arc<SecretsCache>,
    max_retries: u32,
}

/// Twilio's error body: the classic `{code, message, more_info, status}` or RFC 9457
/// problem details (`{type, title, detail, status}`). Only the code is read.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    code: Option<u32>,
}

/// What Twilio answers a created call or message with (only what is kept).
#[derive(Debug, Deserialize)]
struct Created {
    sid: String,
    status: Option<String>,
}

impl TwilioGateway {
    /// Builds the client once per container. The credentials are read from the secret at each
    /// call, so that a rotated auth token is picked up.
    pub fn new(config: &Config, secrets: Arc<SecretsCache>) -> anyhow::Result<Self> {
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(crate::tls::public_web_client_config()?)
            .connect_timeout(config.twilio_connect_timeout)
            .timeout(config.twilio_request_timeout)
            .user_agent(concat!("phone-verification/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(TwilioGateway {
            http,
            base_url: config.twilio_api_base_url.clone(),
            secrets,
            max_retries: config.twilio_max_retries,
        })
    }

    async fn create_call(&self, call: &OutgoingCall) -> Result<PlacedCall, TelephonyError> {
        let timeout = call.ring_timeout.as_secs().to_string();
        let mut form: Vec<(&str, &str)> = vec![
            ("To", call.to.as_str()),
            ("From", call.from.as_str()),
            ("Twiml", &call.twiml),
            ("Timeout", &timeout),
        ];
        if let Some(callback) = &call.status_callback {
            form.extend([
                ("StatusCallback", callback.as_str()),
                ("StatusCallbackMethod", "POST"),
                ("StatusCallbackEvent", "initiated"),
                ("StatusCallbackEvent", "ringing"),
                ("StatusCallbackEvent", "answered"),
                ("StatusCallbackEvent", "completed"),
            ]);
        }
        let created: Created = self.post_form("Calls.json", &form).await?;
        Ok(PlacedCall { sid: created.sid })
    }

    /// Sends an SMS (`Messages.json`): from a number of ours or a Messaging Service, with a
    /// status callback. Same timeouts and retry rules as calls.
    pub async fn create_message(
        &self,
        message: &OutgoingMessage,
    ) -> Result<SentMessage, TelephonyError> {
        let to = message.channel.address(message.to.as_str());
        let mut form: Vec<(&str, &str)> = vec![("To", &to)];
        match &message.content {
            Content::Body(body) => form.push(("Body", body)),
            Content::Template { sid, variables } => {
                form.extend([
                    ("ContentSid", sid.as_str()),
                    ("ContentVariables", variables),
                ]);
            }
        }
        let from = match &message.from {
            Sender::Number(number) => message.channel.address(number.as_str()),
            Sender::MessagingService(_) => String::new(),
        };
        match &message.from {
            Sender::Number(_) => form.push(("From", &from)),
            Sender::MessagingService(sid) => form.push(("MessagingServiceSid", sid.as_str())),
        }
        if let Some(callback) = &message.status_callback {
            form.push(("StatusCallback", callback.as_str()));
        }
        let created: Created = self.post_form("Messages.json", &form).await?;
        Ok(SentMessage {
            sid: created.sid,
            status: created.status.unwrap_or_else(|| "queued".to_owned()),
        })
    }

    /// POSTs a form to an account resource (`Calls.json`, `Messages.json`).
    async fn post_form<T: serde::de::DeserializeOwned>(
        &self,
        resource: &str,
        form: &[(&str, &str)],
    ) -> Result<T, TelephonyError> {
        let base = &self.base_url;
        self.post(
            resource,
            |account| format!("{base}/2010-04-01/Accounts/{account}/{resource}"),
            form,
        )
        .await
    }

    /// POSTs a form to `url(account SID)` with the account's credentials. Only a request that
    /// never reached Twilio (no connection) is sent again, and a 5xx or 429, which Twilio
    /// answers without creating anything: a timeout may have created the call or the message
    /// (`Ambiguous`), and a second POST would ring the phone or text it twice.
    pub(crate) async fn post<T: serde::de::DeserializeOwned>(
        &self,
        resource: &str,
        url: impl FnOnce(&str) -> String,
        form: &[(&str, &str)],
    ) -> Result<T, TelephonyError> {
        let result = self.post_with_retries(resource, url, form).await;
        if let Err(error) = &result {
            crate::telemetry::twilio_error(
                error.provider_code(),
                matches!(error, TelephonyError::Unavailable(_)),
            );
        }
        result
    }

    async fn post_with_retries<T: serde::de::DeserializeOwned>(
        &self,
        resource: &str,
        url: impl FnOnce(&str) -> String,
        form: &[(&str, &str)],
    ) -> Result<T, TelephonyError> {
        let secrets = self
            .secrets
            .get()
            .await
            .map_err(|e| TelephonyError::Unavailable(e.to_string()))?;
        let Some(creds) = secrets.twilio.as_ref() else {
            return Err(TelephonyError::Unavailable(
                "no Twilio credentials in the secret".into(),
            ));
        };
        let url = url(&creds.account_sid);
        let mut attempt = 0;
        loop {
            let outcome = self
                .http
                .post(&url)
                .basic_auth(&creds.account_sid, Some(creds.auth_token.expose_secret()))
                .form(form)
                .send()
                .await;
            let retry_after = match outcome {
                Ok(response) => {
                    let status = response.status();
                    let header_delay = retry_after(&response);
                    let body = response.bytes().await.unwrap_or_default();
                    if status.is_success() {
                        // Twilio created it; without the SID its callbacks will tell.
                        return serde_json::from_slice::<T>(&body).map_err(|_| {
                            TelephonyError::Ambiguous(format!(
                                "Twilio's answer to {resource} has no SID"
                            ))
                        });
                    }
                    let error = parse_error(status.as_u16(), &body);
                    let retryable = status.is_server_error() || status.as_u16() == 429;
                    if !retryable || attempt >= self.max_retries {
                        return Err(error);
                    }
                    tracing::warn!(%error, attempt, resource, "Twilio refused for now; retrying");
                    header_delay
                }
                Err(e) if e.is_connect() && attempt < self.max_retries => {
                    tracing::warn!(attempt, resource, "Twilio unreachable; retrying");
                    None
                }
                // Never connected: Twilio cannot have acted on it.
                Err(e) if e.is_connect() => {
                    return Err(TelephonyError::Unavailable(
                        "Twilio could not be reached".into(),
                    ));
                }
                // Sent, and no answer: the call or the message may exist.
                Err(e) => {
                    let what = if e.is_timeout() {
                        "timed out"
                    } else {
                        "lost its answer"
                    };
                    return Err(TelephonyError::Ambiguous(format!(
                        "the request to Twilio {what}"
                    )));
                }
            };
            // Twilio's own Retry-After when it gives one, else full jitter.
            let wait = retry_after.unwrap_or_else(|| TWILIO_BACKOFF.full_jitter(attempt + 1));
            tokio::time::sleep(wait.min(TWILIO_BACKOFF.cap)).await;
            attempt += 1;
        }
    }
}

/// The backoff between attempts at Twilio.
const TWILIO_BACKOFF: crate::backoff::Backoff = crate::backoff::Backoff {
    base: Duration::from_millis(100),
    cap: Duration::from_secs(2),
};

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Twilio's error, by its HTTP status and error code only: its message text names the phone
/// numbers and is dropped here, before anything could log it.
fn parse_error(status: u16, body: &[u8]) -> TelephonyError {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    if status == 429 || parsed.code == Some(20429) {
        TelephonyError::Throttled { code: parsed.code }
    } else if (400..500).contains(&status) {
        TelephonyError::Rejected {
            status,
            code: parsed.code,
        }
    } else {
        TelephonyError::Unavailable(format!("HTTP {status}, error code {:?}", parsed.code))
    }
}

impl TelephonyGateway for TwilioGateway {
    fn place_call<'a>(
        &'a self,
        call: &'a OutgoingCall,
    ) -> BoxFuture<'a, Result<PlacedCall, TelephonyError>> {
        Box::pin(self.create_call(call))
    }

    fn send_message<'a>(
        &'a self,
        message: &'a OutgoingMessage,
    ) -> BoxFuture<'a, Result<SentMessage, TelephonyError>> {
        Box::pin(self.create_message(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_and_problem_details_errors_are_both_read() {
        let classic =
            br#"{"code":21211,"message":"Invalid 'To' Phone Number","more_info":"x","status":400}"#;
        assert_eq!(
            parse_error(400, classic),
            TelephonyError::Rejected {
                status: 400,
                code: Some(21211),
            }
        );
        let problem = br#"{"type":"about:blank","title":"Bad","detail":"Too many","status":429}"#;
        assert_eq!(
            parse_error(429, problem),
            TelephonyError::Throttled { code: None }
        );
        let named = br#"{"code":21211,"message":"The 'To' number +14155550123 is not valid"}"#;
        let shown = format!("{} {:?}", parse_error(400, named), parse_error(400, named));
        assert!(!shown.contains("4155550123"), "{shown}");
        assert!(matches!(
            parse_error(503, b"<html>"),
            TelephonyError::Unavailable(_)
        ));
    }
}
