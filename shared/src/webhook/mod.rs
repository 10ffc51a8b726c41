//! `twilio-webhook`: Twilio's status callbacks and the calls to our numbers.
//! `POST /webhooks/twilio/voice` moves a flash call's session `call_status` forward (never
//! back), `POST /webhooks/twilio/messages` a message's log entry, and
//! `POST /webhooks/twilio/voice/incoming` rejects a call to a pool number, verifying the
//! inbound session it matches; every request must carry a valid
//! `X-Twilio-Signature` of the exact URL Twilio called, or it is a 403 that writes nothing and
//! logs nothing but the fact.

mod incoming;

use std::sync::Arc;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::clock::Clock;
use crate::config::Config;
use crate::http::{
    ApiError, Endpoint, ErrorCode, Route, json, media_type, public_base_url, query_param,
};
use crate::init::Init;
use crate::secrets::{SecretPart, SecretsCache};
use crate::session::{CallStatus, SessionId};
use crate::sms::{MessageId, MessageStatus};
use crate::store::{Messages, Sessions};
use crate::telephony::{MESSAGE_STATUS_CALLBACK, VOICE_INCOMING, VOICE_STATUS_CALLBACK, is_sid};
use crate::twilio_signature::{Signed, is_valid};

pub struct TwilioWebhookEndpoint {
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    secrets: Arc<SecretsCache>,
    sessions: Sessions,
    messages: Messages,
}

/// The largest callback body read; Twilio's are a few hundred bytes.
const MAX_FORM_BYTES: usize = 16 * 1024;

impl Endpoint for TwilioWebhookEndpoint {
    const NAME: &'static str = "twilio-webhook";
    const ROUTES: &'static [Route] = &[
        VOICE_STATUS_CALLBACK,
        MESSAGE_STATUS_CALLBACK,
        VOICE_INCOMING,
    ];
    const SECRETS: &'static [SecretPart] = &[SecretPart::Twilio];

    async fn init(init: &Init) -> anyhow::Result<Self> {
        let secrets = init.secrets();
        secrets.require(Self::SECRETS, Self::NAME).await?;
        Ok(TwilioWebhookEndpoint {
            config: init.config.clone(),
            clock: init.clock.clone(),
            secrets,
            sessions: init.store().sessions(),
            messages: init.store().messages(),
        })
    }

    async fn handle(
        &self,
        route: &'static Route,
        req: Request,
    ) -> Result<Response<Body>, ApiError> {
        let params = form_params(&req)?;
        self.check_signature(&req, &params).await?;
        let form = Form(&params);
        if *route == VOICE_INCOMING {
            return Ok(self.answer_incoming(&form).await);
        }
        let applied = if *route == MESSAGE_STATUS_CALLBACK {
            self.message_status(&req, &form).await?
        } else {
            self.call_status(&req, &form).await?
        };
        Ok(json(
            StatusCode::OK,
            &json!({"received": true, "applied": applied}),
        ))
    }
}

/// A callback's parameters by name (the first of a repeated one).
struct Form<'a>(&'a [(String, String)]);

impl Form<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl TwilioWebhookEndpoint {
    /// A call's status moves its flash-call session's `call_status` forward.
    async fn call_status(&self, req: &Request, form: &Form<'_>) -> Result<bool, ApiError> {
        let sid = form
            .get("CallSid")
            .filter(|s| is_sid(s, "CA"))
            .ok_or_else(|| {
                ApiError::field("CallSid", "must be a Twilio call SID (CA + 32 hex digits)")
            })?;
        let Some(status) = form.get("CallStatus").and_then(CallStatus::parse) else {
            return Err(ApiError::field(
                "CallStatus",
                "is not a call status Twilio sends",
            ));
        };
        // The session the call was placed for, named in the callback URL we gave Twilio. A
        // callback for a call we do not know is answered and ignored: the account may serve
        // other applications.
        let session = query_param(req, "session_id").and_then(|id| SessionId::parse(id).ok());
        let applied = match session {
            Some(id) => self.sessions.advance_call_status(&id, sid, status).await?,
            None => false,
        };
        tracing::info!(status = status.as_str(), applied, "call status callback");
        crate::telemetry::status_callback("call", status.as_str());
        Ok(applied)
    }

    /// A message's status moves its log entry forward, with Twilio's error code on failure.
    async fn message_status(&self, req: &Request, form: &Form<'_>) -> Result<bool, ApiError> {
        let sid = form
            .get("MessageSid")
            .or_else(|| form.get("SmsSid"))
            .filter(|s| is_sid(s, "SM") || is_sid(s, "MM"))
            .ok_or_else(|| {
                ApiError::field(
                    "MessageSid",
                    "must be a Twilio message SID (SM or MM + 32 hex digits)",
                )
            })?;
        let Some(status) = form
            .get("MessageStatus")
            .or_else(|| form.get("SmsStatus"))
            .and_then(MessageStatus::from_twilio)
        else {
            return Err(ApiError::field(
                "MessageStatus",
                "is not a message status Twilio sends",
            ));
        };
        let error_code = match form.get("ErrorCode").filter(|c| !c.is_empty()) {
            None => None,
            Some(code) => Some(code.parse::<u32>().map_err(|_| {
                ApiError::field("ErrorCode", "must be a Twilio error code (a number)")
            })?),
        };
        let message = query_param(req, "message_id").and_then(|id| MessageId::parse(id).ok());
        let applied = match message {
            Some(id) => {
                self.messages
                    .advance_status(&id, sid, status, error_code, self.clock.now())
                    .await?
            }
            None => false,
        };
        tracing::info!(
            status = status.as_str(),
            error_code,
            applied,
            "message status callback"
        );
        crate::telemetry::status_callback("message", status.as_str());
        Ok(applied)
    }

    /// The signature must be Twilio's for the public URL this request was made on: the
    /// configured base (or API Gateway's domain) and the path and query exactly as sent.
    async fn check_signature(
        &self,
        req: &Request,
        params: &[(String, String)],
    ) -> Result<(), ApiError> {
        let refused = || {
            tracing::info!("webhook refused: missing or invalid signature");
            ApiError::refused(
                ErrorCode::InvalidSignature,
                "the X-Twilio-Signature header is missing or does not sign this request",
            )
        };
        let secrets = self.secrets.get().await?;
        let Some(token) = secrets.twilio_webhook_token.as_ref() else {
            tracing::warn!("webhook refused: the secret has no twilio_auth_token to check it with");
            return Err(refused());
        };
        let presented = req
            .headers()
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(refused)?;
        let base =
            public_base_url(req, self.config.public_base_url.as_deref()).ok_or_else(refused)?;
        let path = req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_owned(), |pq| pq.as_str().to_owned());
        let url = format!("{base}{path}");
        let signed = Signed {
            url: &url,
            params,
            body: req.body().as_ref(),
            json_body: false,
        };
        if is_valid(token.expose_secret(), &signed, presented) {
            Ok(())
        } else {
            Err(refused())
        }
    }
}

/// A form-encoded body's parameters, in order, repeated keys kept.
fn form_params(req: &Request) -> Result<Vec<(String, String)>, ApiError> {
    if media_type(req).as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(ApiError::refused(
            ErrorCode::UnsupportedMediaType,
            "a Twilio callback is application/x-www-form-urlencoded",
        ));
    }
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_FORM_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_FORM_BYTES,
        });
    }
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(bytes)
        .map_err(|_| ApiError::refused(ErrorCode::InvalidForm, "the form body is malformed"))
}
