//! Handing a logged message to the provider: what `sms-send` and `sms-verify` do the same way
//! once the message's log entry is written.

use crate::clock::Clock;
use crate::config::Config;
use crate::http::{ApiError, ErrorCode, OUTAGE_RETRY_AFTER_SECS};
use crate::sms::MessageId;
use crate::store::Messages;
use crate::telephony::{OutgoingMessage, SentMessage, TelephonyError, TelephonyGateway};

/// What became of a logged message handed to the provider.
#[derive(Debug)]
pub(crate) enum Handed {
    /// The provider took it.
    Sent(SentMessage),
    /// The provider got the request and no answer came back: the message may be on its way.
    /// The entry is `unknown` until a status callback settles it; nothing is given back.
    Unknown,
}

/// Sends `message`, whose log entry is `id`. Taken, its SID is stored (a failure to store it is
/// only logged: the status callback carries the SID too) and the send is counted by country.
/// Not known to be taken or refused, the entry is marked `unknown`. Refused, the entry is
/// marked `failed` with the provider's code, and the answer is a 503 for the provider or our
/// account (down, throttling, credentials refused) or 422 `message_rejected` for the recipient.
pub(crate) async fn send_logged(
    telephony: &dyn TelephonyGateway,
    messages: &Messages,
    clock: &dyn Clock,
    config: &Config,
    id: &MessageId,
    message: &OutgoingMessage,
) -> Result<Handed, ApiError> {
    let to = message.to.masked();
    match telephony.send_message(message).await {
        Ok(sent) => {
            if let Err(error) = messages.record_accepted(id, &sent.sid).await {
                tracing::error!(%error, message_id = %id, "the message was sent but its SID could not be stored");
            }
            tracing::info!(message_id = %id, %to, "SMS accepted by the provider");
            let country = message.to.country_code();
            crate::telemetry::sent(
                message.channel.as_str(),
                country,
                config.is_unusual_country(country),
            );
            Ok(Handed::Sent(sent))
        }
        Err(error) if error.is_ambiguous() => {
            tracing::warn!(%error, message_id = %id, %to, "SMS outcome unknown: the provider's callback will settle it");
            if let Err(error) = messages.mark_unknown(id, clock.now()).await {
                tracing::error!(%error, message_id = %id, "the message could not be marked unknown");
            }
            Ok(Handed::Unknown)
        }
        Err(error) => {
            tracing::warn!(%error, message_id = %id, %to, "SMS not accepted by the provider");
            if let Err(error) = messages
                .mark_failed(id, error.provider_code(), clock.now())
                .await
            {
                tracing::error!(%error, message_id = %id, "the message could not be marked failed");
            }
            Err(match error {
                TelephonyError::Throttled { .. } => not_sent(1),
                TelephonyError::Rejected { code, status } if status != 401 && status != 403 => {
                    ApiError::MessageRejected {
                        message_id: id.to_string(),
                        provider_error_code: code,
                    }
                }
                // Our credentials or account, or the provider down: not the caller's request.
                _ => not_sent(OUTAGE_RETRY_AFTER_SECS),
            })
        }
    }
}

fn not_sent(retry_after_secs: u64) -> ApiError {
    ApiError::Unavailable {
        code: ErrorCode::TelephonyUnavailable,
        detail: "the message could not be handed to the provider; try again later".into(),
        retry_after_secs,
        cause: None,
    }
}
