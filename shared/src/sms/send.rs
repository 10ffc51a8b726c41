//! `sms-send`: `POST /sms/send` sends an SMS through the guard and logs it; `GET /sms/{id}`
//! returns the log entry. Service key only: an open SMS endpoint is how SMS pumping starts.
//! An `Idempotency-Key` makes a retried send answer the first response instead of texting
//! twice.

use std::sync::Arc;
use std::time::Duration;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::outbox::{Handed, send_logged};
use super::{MAX_BODY_CHARS, MessageId, MessageStatus, segments};
use crate::auth::Authenticator;
use crate::clock::{Clock, rfc3339};
use crate::config::Config;
use crate::guard::{Caller, Guard, ProviderUse, SendRequest, check_destination};
use crate::http::{
    ApiError, Endpoint, ErrorCode, Route, idempotency_key, json, json_body, path_param,
    public_base_url, replayed,
};
use crate::init::Init;
use crate::phone::PhoneNumber;
use crate::secrets::SecretPart;
use crate::store::idempotency::{Claim, KeyUse};
use crate::store::messages::MessageRecord;
use crate::store::rate_limits::{Limit, Period, Quota};
use crate::store::{Idempotency, Messages};
use crate::telephony::{
    Content, MESSAGE_STATUS_CALLBACK, MessageChannel, OutgoingMessage, Sender, TelephonyGateway,
    is_sid,
};

pub const SEND: Route = Route::post("/sms/send");
pub const MESSAGE: Route = Route::get("/sms/{id}");

/// How long an Idempotency-Key is kept: a retry within it gets the first response.
pub const IDEMPOTENCY_KEY_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How long a claimed key counts as in flight: longer than a send can take (the function's
/// timeout, 15 s in `template.yaml`), so that a send that died frees its key for a retry after
/// this.
const IN_PROGRESS_FOR: Duration = Duration::from_secs(30);

/// How long a key stays in progress when the provider got the message and did not answer:
/// its status callback settles it sooner (the retry then replays the message's entry); if
/// none comes, the provider never had it, and a retry after this sends.
const AMBIGUOUS_HOLD: Duration = Duration::from_secs(10 * 60);

pub struct SmsSendEndpoint {
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    auth: Authenticator,
    guard: Guard,
    messages: Messages,
    idempotency: Idempotency,
    telephony: Arc<dyn TelephonyGateway>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    to: PhoneNumber,
    body: String,
    from: Option<String>,
}

/// A send that passed validation: what is hashed for the Idempotency-Key and sent.
struct Outgoing {
    to: PhoneNumber,
    from: Sender,
    body: String,
    segments: u32,
}

impl Outgoing {
    /// The request as the key remembers it: the same caller, recipient, sender and body are
    /// the same request, however they were spelled.
    fn hash(&self, caller: &str) -> String {
        let from = self.from.label();
        let canonical = serde_json::json!([caller, self.to.as_str(), from, self.body]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

/// The 202: the message's id and what the provider made of it (`unknown` when it got the
/// message and did not answer: the status callback settles it).
#[derive(Debug, Serialize)]
struct Accepted {
    id: MessageId,
    status: &'static str,
    provider_message_id: Option<String>,
    segments: u32,
}

impl Accepted {
    /// The 202 a message's entry stands for, once the provider's callback settled it.
    fn of(record: &MessageRecord) -> Self {
        Accepted {
            id: record.id,
            status: record.status.as_str(),
            provider_message_id: record.provider_sid.clone(),
            segments: record.segments,
        }
    }
}

#[derive(Debug, Serialize)]
struct HistoryEntry {
    status: &'static str,
    at: String,
}

#[derive(Debug, Serialize)]
struct LogEntry {
    id: MessageId,
    to: String,
    from: String,
    status: &'static str,
    provider_message_id: Option<String>,
    error_code: Option<u32>,
    segments: u32,
    created_at: String,
    updated_at: String,
    history: Vec<HistoryEntry>,
}

impl Endpoint for SmsSendEndpoint {
    const NAME: &'static str = "sms-send";
    const ROUTES: &'static [Route] = &[SEND, MESSAGE];
    const SECRETS: &'static [SecretPart] = &[SecretPart::Twilio, SecretPart::Clients];

    async fn init(init: &Init) -> anyhow::Result<Self> {
        if init.config.sms_from_numbers.is_empty()
            && init.config.sms_messaging_service_sid.is_none()
        {
            anyhow::bail!(
                "sms-send has no sender: set SMS_FROM_NUMBERS (E.164 numbers) or \
                 SMS_MESSAGING_SERVICE_SID"
            );
        }
        let store = init.store();
        Ok(SmsSendEndpoint {
            auth: Authenticator::new(init, Self::SECRETS, Self::NAME).await?,
            telephony: init.telephony().await?,
            config: init.config.clone(),
            clock: init.clock.clone(),
            guard: Guard::new(init),
            messages: store.messages(),
            idempotency: store.idempotency(),
        })
    }

    async fn handle(
        &self,
        route: &'static Route,
        req: Request,
    ) -> Result<Response<Body>, ApiError> {
        let (caller, _) = self.auth.caller(&req).await?;
        let caller = caller
            .service_key_id()
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("sms-send takes service keys only")))?
            .to_owned();
        if *route == MESSAGE {
            return self.show(&req, &caller).await;
        }
        let key = idempotency_key(&req)?;
        let body: SendBody = json_body(&req)?;
        let outgoing = self.validate(body)?;
        let Some(key) = key else {
            let (accepted, _) = self.send(&req, &caller, &outgoing).await?;
            return Ok(json(StatusCode::ACCEPTED, &accepted));
        };
        let hash = outgoing.hash(&caller);
        let key = KeyUse {
            endpoint: Self::NAME,
            caller: &caller,
            key: &key,
            request_hash: &hash,
        };
        let now = self.clock.now();
        match self
            .idempotency
            .claim(key, now, IN_PROGRESS_FOR, IDEMPOTENCY_KEY_LIFETIME)
            .await?
        {
            Claim::Claimed => {}
            Claim::Reused => {
                return Err(ApiError::refused(
                    ErrorCode::IdempotencyKeyReused,
                    "this Idempotency-Key was used with another request; use a new key",
                ));
            }
            Claim::InProgress { resource } => return self.settle(key, resource.as_deref()).await,
            Claim::Completed { status, body } => {
                tracing::info!("idempotent replay");
                return Ok(replayed(status, body));
            }
        }
        match self.send(&req, &caller, &outgoing).await {
            Ok((accepted, Handed::Unknown)) => {
                // Maybe sent: the key stays in progress, naming the message, until its
                // callback settles it.
                let until = self.clock.now() + AMBIGUOUS_HOLD;
                if let Err(error) = self
                    .idempotency
                    .hold(key, until, &accepted.id.to_string())
                    .await
                {
                    tracing::error!(%error, message_id = %accepted.id, "the Idempotency-Key could not be held");
                }
                Ok(json(StatusCode::ACCEPTED, &accepted))
            }
            Ok((accepted, Handed::Sent(_))) => {
                self.complete(key, &accepted).await;
                Ok(json(StatusCode::ACCEPTED, &accepted))
            }
            Err(refused) => {
                // Nothing was sent: the key is freed, so that a retry can send.
                if let Err(error) = self.idempotency.release(key).await {
                    tracing::error!(%error, "the Idempotency-Key could not be released");
                }
                Err(refused)
            }
        }
    }
}

impl SmsSendEndpoint {
    /// Stores the 202 for the key's replays.
    async fn complete(&self, key: KeyUse<'_>, accepted: &Accepted) {
        let stored = serde_json::to_string(accepted).map_err(anyhow::Error::from);
        let stored = match stored {
            Ok(text) => self
                .idempotency
                .complete(key, StatusCode::ACCEPTED.as_u16(), &text)
                .await
                .map_err(anyhow::Error::from),
            Err(error) => Err(error),
        };
        if let Err(error) = stored {
            // The message is sent: the answer is 202 whatever happens to the key.
            tracing::error!(%error, message_id = %accepted.id, "the Idempotency-Key's response could not be stored");
        }
    }

    /// A retry of a key in progress: 409 while the first request runs or its message's outcome
    /// is unknown; once a status callback settled the message, the key is completed with the
    /// message's entry and the retry replays it.
    async fn settle(
        &self,
        key: KeyUse<'_>,
        message: Option<&str>,
    ) -> Result<Response<Body>, ApiError> {
        let in_progress = || {
            ApiError::refused(
                ErrorCode::IdempotencyKeyInProgress,
                "a request with this Idempotency-Key is still in progress, or its message's \
                 outcome is not known yet; retry shortly",
            )
        };
        let Some(id) = message.and_then(|id| MessageId::parse(id).ok()) else {
            return Err(in_progress());
        };
        let record = self.messages.get(&id).await?;
        let Some(record) = record.filter(|r| r.status != MessageStatus::Unknown) else {
            return Err(in_progress());
        };
        let accepted = Accepted::of(&record);
        self.complete(key, &accepted).await;
        tracing::info!(message_id = %id, "idempotent replay of a settled message");
        let text = serde_json::to_string(&accepted).map_err(anyhow::Error::from)?;
        Ok(replayed(StatusCode::ACCEPTED.as_u16(), text))
    }

    /// Everything that can be refused before anything is counted: the body, the sender, the
    /// recipient's country and number type.
    fn validate(&self, body: SendBody) -> Result<Outgoing, ApiError> {
        let chars = body.body.chars().count();
        if body.body.trim().is_empty() || chars > MAX_BODY_CHARS {
            return Err(ApiError::field(
                "body",
                format!("must be 1 to {MAX_BODY_CHARS} characters, not only blanks"),
            ));
        }
        let from = self.sender(body.from.as_deref())?;
        check_destination(&self.config, &body.to)?;
        Ok(Outgoing {
            segments: segments(&body.body).count,
            to: body.to,
            from,
            body: body.body,
        })
    }

    /// The sender: one of the configured ones, never another. Without `from`, the Messaging
    /// Service if one is configured, else the first of `SMS_FROM_NUMBERS`.
    fn sender(&self, requested: Option<&str>) -> Result<Sender, ApiError> {
        let service = self.config.sms_messaging_service_sid.as_deref();
        let Some(requested) = requested else {
            return self
                .config
                .default_sms_sender()
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no sender configured")));
        };
        if is_sid(requested, "MG") && service == Some(requested) {
            return Ok(Sender::MessagingService(requested.to_owned()));
        }
        PhoneNumber::parse(requested)
            .ok()
            .filter(|number| self.config.sms_from_numbers.contains(number))
            .map(Sender::Number)
            .ok_or_else(|| {
                ApiError::field(
                    "from",
                    "must be one of the configured senders (SMS_FROM_NUMBERS or the Messaging \
                     Service SID), or left out",
                )
            })
    }

    /// Takes the guard's allowance and writes the log entry in one transaction, then hands
    /// the message to the provider.
    async fn send(
        &self,
        req: &Request,
        caller: &str,
        outgoing: &Outgoing,
    ) -> Result<(Accepted, Handed), ApiError> {
        let now = self.clock.now();
        let record = MessageRecord::queued(
            outgoing.to.clone(),
            outgoing.from.label(),
            outgoing.segments,
            now,
        )
        .sent_by(caller);
        let per_phone = [Quota {
            counter: "sms-recipient-hour",
            limit: Limit::RecipientPerHour,
            max: self.config.max_sms_per_recipient_per_hour,
            period: Period::Hour,
        }];
        // A service key's send is trusted, and not a verification: the quarantine neither
        // counts nor judges it. It takes a unit of every budget per segment.
        let send = SendRequest {
            phone: &outgoing.to,
            caller: Caller::Service,
            scope: "sms-send",
            per_phone: &per_phone,
            cooldown: Duration::ZERO,
            units: outgoing.segments,
            verification: false,
            failure_caps: Vec::new(),
            provider: Some(ProviderUse::Message {
                sender: outgoing.from.label(),
            }),
        };
        let write = self.messages.new_message(&record)?;
        self.guard.admit(&send, now, vec![write]).await?;

        let base_url = public_base_url(req, self.config.public_base_url.as_deref());
        let message = OutgoingMessage {
            to: outgoing.to.clone(),
            from: outgoing.from.clone(),
            channel: MessageChannel::Sms,
            content: Content::Body(outgoing.body.clone()),
            status_callback: base_url.map(|base| {
                format!(
                    "{base}{}?message_id={}",
                    MESSAGE_STATUS_CALLBACK.path, record.id
                )
            }),
            one_time_code: None,
        };
        let handed = send_logged(
            self.telephony.as_ref(),
            &self.messages,
            self.clock.as_ref(),
            &self.config,
            &record.id,
            &message,
        )
        .await?;
        let (status, provider_message_id) = match &handed {
            Handed::Sent(sent) => (
                MessageStatus::parse(&sent.status).unwrap_or(MessageStatus::Queued),
                Some(sent.sid.clone()),
            ),
            Handed::Unknown => (MessageStatus::Unknown, None),
        };
        let accepted = Accepted {
            id: record.id,
            status: status.as_str(),
            provider_message_id,
            segments: outgoing.segments,
        };
        Ok((accepted, handed))
    }

    /// A message's entry, to the service key that sent it only: another key is told no
    /// message has this id.
    async fn show(&self, req: &Request, caller: &str) -> Result<Response<Body>, ApiError> {
        let id = MessageId::parse(&path_param(req, "id")?).map_err(|e| ApiError::field("id", e))?;
        let record = self.messages.get(&id).await?;
        let Some(record) = record.filter(|r| r.is_visible_to(caller)) else {
            return Err(ApiError::refused(
                ErrorCode::MessageNotFound,
                "no message has this id",
            ));
        };
        let entry = LogEntry {
            id: record.id,
            to: record.to.as_str().to_owned(),
            from: record.from,
            status: record.status.as_str(),
            provider_message_id: record.provider_sid,
            error_code: record.error_code,
            segments: record.segments,
            created_at: rfc3339(record.created_at),
            updated_at: rfc3339(record.updated_at),
            history: record
                .history
                .into_iter()
                .map(|(status, at)| HistoryEntry {
                    status: status.as_str(),
                    at: rfc3339(at),
                })
                .collect(),
        };
        Ok(json(StatusCode::OK, &entry))
    }
}
