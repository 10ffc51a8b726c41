//! Metrics, as CloudWatch Embedded Metric Format lines on stdout: the `metrics` facade with
//! `metrics_cloudwatch_embedded` as its recorder, flushed by the endpoint skeleton after each
//! request (Lambda's log agent turns the lines into metrics; locally they are in the
//! `infra/dev.sh` log). Dimensions stay few and bounded: never a phone number or an id.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use metrics::{counter, histogram};

use crate::http::ErrorCode;
use metrics_cloudwatch_embedded::{Builder, Collector};

/// The CloudWatch namespace of every metric (the alarms and the dashboard of `template.yaml`).
pub const NAMESPACE: &str = "PhoneVerification";

/// Every metric name this module emits (the template's alarms and dashboard may name no other:
/// a test checks).
pub const METRICS: &[&str] = &[
    "VerificationsStarted",
    "VerificationsSucceeded",
    "VerificationsSucceededAll",
    "VerificationsFailed",
    "VerificationsFailedAll",
    "GuardRefusals",
    "TwilioErrors",
    "TwilioErrorsAll",
    "StatusCallbacks",
    "Sends",
    "SendsAll",
    "UnusualCountrySends",
    "UnusualCountrySendsAll",
    "HandlerLatency",
    "TimeToVerify",
    "ColdStarts",
    "Quarantined",
    "QuarantinedAll",
    "TestNumberUses",
];

static COLLECTOR: OnceLock<Option<&'static Collector>> = OnceLock::new();
static TO_STDOUT: AtomicBool = AtomicBool::new(false);
static WARM: AtomicBool = AtomicBool::new(false);

/// Installs the recorder once per process; `emit` says whether flushes print (the tests, many
/// apps in one process, keep them for the test that reads them).
pub fn install(emit: bool) {
    COLLECTOR.get_or_init(|| {
        let installed = Builder::new().cloudwatch_namespace(NAMESPACE).init();
        if let Err(error) = &installed {
            tracing::warn!(%error, "metrics recorder not installed");
        }
        metrics::describe_histogram!(
            "HandlerLatency",
            metrics::Unit::Milliseconds,
            "time in the handler"
        );
        metrics::describe_histogram!(
            "TimeToVerify",
            metrics::Unit::Seconds,
            "from a verification's start to its success"
        );
        installed.ok()
    });
    if emit {
        TO_STDOUT.store(true, Ordering::Relaxed);
    }
}

/// Writes what was counted since the last flush to stdout, one EMF document per label set.
pub fn flush() {
    if !TO_STDOUT.load(Ordering::Relaxed) {
        return;
    }
    if let Some(Some(collector)) = COLLECTOR.get() {
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        if let Err(error) = collector.flush(&mut lock) {
            tracing::warn!(%error, "metrics not written");
        }
    }
}

/// Writes what was counted since the last flush into `out` (for tests).
pub fn flush_into(out: &mut Vec<u8>) -> std::io::Result<()> {
    match COLLECTOR.get() {
        Some(Some(collector)) => collector.flush(out),
        _ => Ok(()),
    }
}

/// How a phone was (or is being) verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    FlashCall,
    /// Our own SMS code.
    SmsCode,
    /// Twilio Verify's code.
    Delegated,
    /// A test number of the secret (app-store reviewers).
    TestNumber,
    /// The inbound missed call: the phone calls a pool number.
    InboundCall,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::FlashCall => "flash_call",
            Channel::SmsCode => "sms_code",
            Channel::Delegated => "delegated",
            Channel::TestNumber => "test_number",
            Channel::InboundCall => "inbound_call",
        }
    }
}

pub fn verification_started(channel: Channel) {
    counter!("VerificationsStarted", "channel" => channel.as_str()).increment(1);
}

// Each labelled counter the alarms read has a twin without dimensions: an alarm needs one
// exact metric, not every label set.

pub fn verification_succeeded(channel: Channel) {
    counter!("VerificationsSucceeded", "channel" => channel.as_str()).increment(1);
    counter!("VerificationsSucceededAll").increment(1);
}

/// A verification attempt that failed: a wrong answer, or a refusal (`expired`,
/// `attempts_exhausted`, `already_verified`, `not_found`, `phone_locked`).
pub fn verification_failed(channel: Channel, reason: &'static str) {
    counter!("VerificationsFailed", "channel" => channel.as_str(), "reason" => reason).increment(1);
    counter!("VerificationsFailedAll").increment(1);
}

/// The outcome of a check (a caller ID or a code): a success, or a failure by its error code
/// when the code is one of a verification's own refusals (bad input and outages are not
/// verification failures).
pub fn verification_checked(channel: Channel, outcome: Result<(), ErrorCode>) {
    match outcome {
        Ok(()) => verification_succeeded(channel),
        Err(code) => {
            if let Some(reason) = failure_reason(code) {
                verification_failed(channel, reason);
            }
        }
    }
}

fn failure_reason(code: ErrorCode) -> Option<&'static str> {
    match code {
        ErrorCode::CallerIdMismatch | ErrorCode::CodeMismatch => Some("wrong_answer"),
        ErrorCode::SessionExpired | ErrorCode::CodeExpired => Some("expired"),
        ErrorCode::AttemptsExhausted => Some("attempts_exhausted"),
        ErrorCode::AlreadyVerified => Some("already_verified"),
        ErrorCode::SessionNotFound | ErrorCode::VerificationNotFound => Some("not_found"),
        ErrorCode::SessionFailed => Some("call_failed"),
        _ => None,
    }
}

/// How long a verification took, from its start to its success, in seconds.
pub fn time_to_verify(channel: Channel, seconds: f64) {
    histogram!("TimeToVerify", "channel" => channel.as_str()).record(seconds);
}

/// A request the guard refused, by limit.
pub fn guard_refusal(limit: &'static str) {
    counter!("GuardRefusals", "limit" => limit).increment(1);
}

/// An error from Twilio, by Twilio's error code (`none` when it gave none, `unavailable` for
/// no usable answer).
pub fn twilio_error(code: Option<u32>, unavailable: bool) {
    let code = match (code, unavailable) {
        (Some(code), _) => code.to_string(),
        (None, true) => "unavailable".to_owned(),
        (None, false) => "none".to_owned(),
    };
    counter!("TwilioErrors", "code" => code).increment(1);
    counter!("TwilioErrorsAll").increment(1);
}

/// A status callback from Twilio (`kind`: `call` or `message`), by status.
pub fn status_callback(kind: &'static str, status: &'static str) {
    counter!("StatusCallbacks", "kind" => kind, "status" => status).increment(1);
}

/// Something sent through the provider (a flash call or an SMS), by country calling code;
/// `unusual` when the country is outside `EXPECTED_COUNTRY_CODES`.
pub fn sent(channel: &'static str, country_code: u16, unusual: bool) {
    counter!("Sends", "channel" => channel, "country" => country_code.to_string()).increment(1);
    counter!("SendsAll").increment(1);
    if unusual {
        counter!("UnusualCountrySends", "country" => country_code.to_string()).increment(1);
        counter!("UnusualCountrySendsAll").increment(1);
    }
}

/// A destination (`kind`: `block` or `country`) newly quarantined for its conversion, by the
/// phone's country, in either mode (`monitor`: nothing is refused).
pub fn quarantined(country_code: u16, kind: &'static str, mode: crate::config::QuarantineMode) {
    counter!(
        "Quarantined",
        "country" => country_code.to_string(),
        "kind" => kind,
        "mode" => mode.as_str()
    )
    .increment(1);
    counter!("QuarantinedAll").increment(1);
}

/// A send refused because its destination is quarantined or denied.
pub fn quarantine_refusal() {
    guard_refusal("destination_quarantined");
}

/// A test number used (started or checked): one left on in production shows here.
pub fn test_number_used() {
    counter!("TestNumberUses").increment(1);
}

/// A request's handling time, and the process's first request as a cold start.
pub fn handled(function: &'static str, millis: f64) {
    histogram!("HandlerLatency", "function" => function).record(millis);
    if !WARM.swap(true, Ordering::Relaxed) {
        counter!("ColdStarts", "function" => function).increment(1);
    }
}
