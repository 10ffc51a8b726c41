//! Handing a logged message to the provider: what `sms-send` and `sms-verify` do the same way
//! once the message's log entry is written.

use crate::clock::Clock;
use crate::config::Config;
use crate::http::{ApiError, ErrorCode, OUTAGE_RETRY_AFTER_SECS};
use crate::sms::MessageId;
use crate::store::Messages;
use crate::telephony::{OutgoingMessage, SentMessage, TelephonyError, TelephonyGateway};

/// Sends `message`, whose log entry is `id`. Taken, its SID is stored (a failure to store it is
/// only logged: the status callback carries the SID too) and the send is counted by country.
/// Not taken, the entry is marked `failed` with the provider's code, and the answer is a 503
/// for the provider or our account (down, throttling, credentials refused) or 422
/// `message_rejected` for the recipient.
pub(crate) async fn send_logged(
    telephony: &dyn TelephonyGateway,
    messages: &Messages,
    clock: &dyn Clock,
    config: &Config,
    id: &MessageId,
    message: &OutgoingMessage,
) -> Result<SentMessage, ApiError> {
    let to = message.to.masked();
    match telephony.send_message(message).await {
        Ok(sent) => {
            if let Err(error) = messages.record_accepted(id, &sent.sid).await {
                tracing::error!(%error, message_id = %id, "the message was sent but its SID could not be stored");
            }
            tracing::info!(message_id = %id, %to, "SMS accepted by the provider");
            let country = message.to.country_code();
            crate::telemetry::sent("sms", country, config.is_unusual_country(country));
            Ok(sent)
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
                // Our credentials or account, not the caller's request.
                TelephonyError::Rejected {
                    status: 401 | 403, ..
                }
                | TelephonyError::Unavailable(_) => not_sent(OUTAGE_RETRY_AFTER_SECS),
                TelephonyError::Throttled { .. } => not_sent(1),
                TelephonyError::Rejected { code, .. } => ApiError::MessageRejected {
                    message_id: id.to_string(),
                    provider_error_code: code,
                },
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
