//! `ConfiguredGateway`: Twilio when the secret holds its credentials, the logging gateway
//! otherwise. Chosen at each call from the current secret, so that a container that started
//! while Secrets Manager was unreachable, or a secret that gains credentials, needs no restart.

use std::sync::Arc;

use super::{
    BoxFuture, LoggingGateway, OutgoingCall, OutgoingMessage, PlacedCall, SentMessage,
    TelephonyError, TelephonyGateway, TwilioGateway,
};
use crate::config::Config;
use crate::secrets::{SecretPart, SecretsCache};

pub struct ConfiguredGateway {
    twilio: TwilioGateway,
    /// Posts the logging gateway's simulated status callbacks; built on first use (never in
    /// production, where calls go to Twilio).
    local_http: std::sync::OnceLock<reqwest::Client>,
    secrets: Arc<SecretsCache>,
    /// Inside Lambda, the logging gateway is refused unless `ALLOW_LOGGING_GATEWAY` is set.
    refuse_logging: bool,
}

impl ConfiguredGateway {
    /// Fails when the secret is already known to lack Twilio credentials where the logging
    /// gateway is refused: the cold start names the problem instead of every request.
    pub fn new(config: &Config, secrets: Arc<SecretsCache>) -> anyhow::Result<Self> {
        let refuse_logging = config.in_lambda && !config.allow_logging_gateway;
        if let Some(loaded) = secrets.loaded()
            && loaded.twilio.is_none()
        {
            if refuse_logging {
                anyhow::bail!(
                    "secret {} has no twilio_account_sid/twilio_auth_token, and the logging \
                     gateway (which dials nothing) is refused inside Lambda unless \
                     ALLOW_LOGGING_GATEWAY=true",
                    secrets.id_of(SecretPart::Twilio)
                );
            }
            tracing::warn!("no Twilio credentials: flash calls and SMS are logged, not sent");
        }
        Ok(ConfiguredGateway {
            twilio: TwilioGateway::new(config, secrets.clone())?,
            local_http: std::sync::OnceLock::new(),
            secrets,
            refuse_logging,
        })
    }
}

/// Which gateway serves a request now.
enum Chosen {
    Twilio,
    /// The logging gateway, with the webhook token its simulated callbacks are signed with.
    Logging(Option<String>),
}

impl ConfiguredGateway {
    /// The gateway the current secret calls for.
    async fn choose(&self) -> Result<Chosen, TelephonyError> {
        let secrets = self
            .secrets
            .get()
            .await
            .map_err(|e| TelephonyError::Unavailable(e.to_string()))?;
        if secrets.twilio.is_some() {
            Ok(Chosen::Twilio)
        } else if self.refuse_logging {
            Err(TelephonyError::Unavailable(
                "no Twilio credentials in the secret".into(),
            ))
        } else {
            Ok(Chosen::Logging(secrets.twilio_webhook_token.as_ref().map(
                |t| secrecy::ExposeSecret::expose_secret(t).to_owned(),
            )))
        }
    }

    /// Plays Twilio's callbacks towards a local API only: a callback URL elsewhere is a real
    /// deployment's, which the logging gateway does not call.
    fn simulate(
        &self,
        token: Option<&str>,
        url: Option<&str>,
        callbacks: impl FnOnce() -> Vec<Vec<(String, String)>>,
    ) {
        let (Some(token), Some(url)) = (token, url.filter(|u| super::logging::is_loopback_url(u)))
        else {
            return;
        };
        let http = self.local_http.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .build()
                .unwrap_or_default()
        });
        super::logging::simulate_callbacks(
            http.clone(),
            token.to_owned(),
            url.to_owned(),
            callbacks(),
        );
    }
}

impl TelephonyGateway for ConfiguredGateway {
    fn place_call<'a>(
        &'a self,
        call: &'a OutgoingCall,
    ) -> BoxFuture<'a, Result<PlacedCall, TelephonyError>> {
        Box::pin(async move {
            match self.choose().await? {
                Chosen::Twilio => self.twilio.place_call(call).await,
                Chosen::Logging(token) => {
                    let placed = LoggingGateway.place_call(call).await;
                    // A call without an answer rang all the same: its callbacks come.
                    if let Some(sid) = sid_of(placed.as_ref().map(|p| p.sid.as_str()), "CA") {
                        self.simulate(token.as_deref(), call.status_callback.as_deref(), || {
                            super::logging::call_callbacks(call, &sid)
                        });
                    }
                    placed
                }
            }
        })
    }

    fn send_message<'a>(
        &'a self,
        message: &'a OutgoingMessage,
    ) -> BoxFuture<'a, Result<SentMessage, TelephonyError>> {
        Box::pin(async move {
            match self.choose().await? {
                Chosen::Twilio => self.twilio.send_message(message).await,
                Chosen::Logging(token) => {
                    let sent = LoggingGateway.send_message(message).await;
                    if let Some(sid) = sid_of(sent.as_ref().map(|s| s.sid.as_str()), "SM") {
                        self.simulate(token.as_deref(), message.status_callback.as_deref(), || {
                            super::logging::message_callbacks(message, &sid)
                        });
                    }
                    sent
                }
            }
        })
    }
}

/// The SID the simulated callbacks carry: the one the provider gave, or for an outcome without
/// an answer, one of its kind (`CA`, `SM`) that only the callbacks tell; none for a refusal.
fn sid_of(handed: Result<&str, &TelephonyError>, kind: &str) -> Option<String> {
    match handed {
        Ok(sid) => Some(sid.to_owned()),
        Err(error) if error.is_ambiguous() => {
            Some(format!("{kind}{}", uuid::Uuid::new_v4().simple()))
        }
        Err(_) => None,
    }
}
