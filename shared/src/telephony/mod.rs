//! The telephony gateway: places flash calls and sends SMS. Twilio in production; a gateway
//! that only logs (and plays Twilio's callbacks to a local API) for local use.

mod configured;
mod logging;
mod twilio;
pub mod twiml;
mod verify;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use configured::ConfiguredGateway;
pub use logging::{
    LoggingGateway, MAGIC_RECIPIENTS, incoming_call, is_loopback_url, magic_refusal,
};
pub use twilio::TwilioGateway;
pub use twiml::HANG_UP;
pub use verify::{CheckOutcome, StartedVerification, TwilioVerify};

use crate::http::Route;
use crate::phone::PhoneNumber;

/// Where Twilio posts a flash call's status changes (the `twilio-webhook` function's route).
pub const VOICE_STATUS_CALLBACK: Route = Route::post("/webhooks/twilio/voice");

/// Where Twilio posts a call to a pool number (the number's voice URL): the inbound missed
/// call (the `twilio-webhook` function's route).
pub const VOICE_INCOMING: Route = Route::post("/webhooks/twilio/voice/incoming");

/// Where Twilio posts a message's status changes (the `twilio-webhook` function's route).
pub const MESSAGE_STATUS_CALLBACK: Route = Route::post("/webhooks/twilio/messages");

/// Whether `s` is a Twilio SID of the kind `prefix` names (`CA` a call, `SM`/`MM` a message,
/// `MG` a Messaging Service): the prefix and 32 hex digits.
pub fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s.bytes().skip(2).all(|b| b.is_ascii_hexdigit())
}

/// One call: ring `to` from `from` for at most `ring_timeout`, and run `twiml` if it is
/// answered (a flash call hangs up, a voice code is said).
#[derive(Debug, Clone)]
pub struct OutgoingCall {
    pub to: PhoneNumber,
    pub from: PhoneNumber,
    pub twiml: String,
    /// Where the provider posts the call's status changes, when the API's URL is known.
    pub status_callback: Option<String>,
    pub ring_timeout: Duration,
    /// The verification code the call says, for the logging gateway's log line only (as an
    /// SMS's); the provider is sent the TwiML alone.
    pub one_time_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedCall {
    /// The provider's id of the call (Twilio's `CA...` SID).
    pub sid: String,
}

/// Where an SMS comes from: one of our numbers, or a Messaging Service that picks one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    Number(PhoneNumber),
    /// A Messaging Service SID (`MG` + 32 hex digits).
    MessagingService(String),
}

impl Sender {
    /// The number in E.164, or the Messaging Service SID: how the log names the sender.
    pub fn label(&self) -> &str {
        match self {
            Sender::Number(number) => number.as_str(),
            Sender::MessagingService(sid) => sid,
        }
    }
}

/// What a message carries: a text (an SMS), or an approved WhatsApp template (a Content SID)
/// with its variables (`{"1": code}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Body(String),
    Template { sid: String, variables: String },
}

/// The channel a message goes by: SMS, or WhatsApp (`whatsapp:` addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageChannel {
    Sms,
    Whatsapp,
}

impl MessageChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageChannel::Sms => "sms",
            MessageChannel::Whatsapp => "whatsapp",
        }
    }

    /// An address on this channel, as Twilio takes it (`+1...`, `whatsapp:+1...`).
    pub fn address(self, number: &str) -> String {
        match self {
            MessageChannel::Sms => number.to_owned(),
            MessageChannel::Whatsapp => format!("whatsapp:{number}"),
        }
    }
}

/// One message to send.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    pub to: PhoneNumber,
    pub from: Sender,
    pub channel: MessageChannel,
    pub content: Content,
    /// Where the provider posts the message's status changes.
    pub status_callback: Option<String>,
    /// The verification code the body carries, for the logging gateway's log line only (it
    /// stands in for the phone locally); the provider is sent the body alone.
    pub one_time_code: Option<String>,
}

/// What the provider made of a message it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// Twilio's `SM...` SID.
    pub sid: String,
    /// Its first status (`queued`, `accepted`, ...).
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelephonyError {
    /// The provider answered and refused the call (a 4xx); retrying would not help. Only the
    /// status and the provider's error code are kept: Twilio's message text names the phone
    /// numbers, and nothing of it may reach a log.
    #[error("the provider refused: HTTP {status}, {}", error_code(*.code))]
    Rejected { status: u16, code: Option<u32> },
    /// The provider is throttling outbound calls (HTTP 429, Twilio error 20429).
    #[error("the provider is throttling: {}", error_code(*.code))]
    Throttled { code: Option<u32> },
    /// No usable answer after the retries, and nothing created: a 5xx, no connection.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// The request reached the provider and no answer came back (a timeout, a connection cut
    /// mid-answer, a success without its SID): the call or message may exist. Never retried,
    /// never taken as "not sent": the status callback settles it.
    #[error("the provider's outcome is unknown: {0}")]
    Ambiguous(String),
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

fn error_code(code: Option<u32>) -> String {
    code.map_or_else(|| "no error code".to_owned(), |c| format!("error code {c}"))
}

impl TelephonyError {
    /// The provider's error code, when it gave one.
    pub fn provider_code(&self) -> Option<u32> {
        match self {
            TelephonyError::Rejected { code, .. } | TelephonyError::Throttled { code } => *code,
            TelephonyError::Unavailable(_) | TelephonyError::Ambiguous(_) => None,
        }
    }

    /// Whether the provider may have placed the call or taken the message.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, TelephonyError::Ambiguous(_))
    }
}

pub trait TelephonyGateway: Send + Sync {
    fn place_call<'a>(
        &'a self,
        call: &'a OutgoingCall,
    ) -> BoxFuture<'a, Result<PlacedCall, TelephonyError>>;

    fn send_message<'a>(
        &'a self,
        message: &'a OutgoingMessage,
    ) -> BoxFuture<'a, Result<SentMessage, TelephonyError>>;
}
