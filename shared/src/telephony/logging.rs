//! A gateway that dials and texts nothing: it logs the call (caller ID included) and the
//! message (never its body), for local use. Recipients ending in the four digits of Twilio's
//! test-credential magic numbers get those numbers' refusals.

use super::{
    BoxFuture, MessageChannel, OutgoingCall, OutgoingMessage, PlacedCall, Sender, SentMessage,
    TelephonyError, TelephonyGateway,
};

/// Twilio's magic `To` numbers for test credentials, by their last four digits, and the error
/// each gets: invalid number, cannot route, no international permission, blocked (the
/// recipient replied STOP), not SMS-capable.
pub const MAGIC_RECIPIENTS: [(&str, u32); 5] = [
    ("0001", 21211),
    ("0002", 21612),
    ("0003", 21408),
    ("0004", 21610),
    ("0009", 21614),
];

/// A recipient ending in these digits gets no answer from the logging gateway (ours, not
/// Twilio's): the call is "placed" and the message "sent", but the gateway answers as a
/// Twilio that timed out would, so that the local loop shows an `unknown` outcome settled by
/// the simulated callbacks.
pub const NO_ANSWER_SUFFIX: &str = "0008";

/// Whether the logging gateway leaves a send to `to` without an answer.
pub fn no_answer(to: &str) -> bool {
    to.ends_with(NO_ANSWER_SUFFIX)
}

fn no_answer_error() -> TelephonyError {
    TelephonyError::Ambiguous("no answer (logging gateway, a recipient ending in 0008)".into())
}

/// The refusal Twilio's test credentials give a message to `to`, if it is a magic number.
pub fn magic_refusal(to: &str) -> Option<TelephonyError> {
    MAGIC_RECIPIENTS
        .iter()
        .find(|(digits, _)| to.ends_with(digits))
        .map(|(_, code)| TelephonyError::Rejected {
            status: 400,
            code: Some(*code),
        })
}

#[derive(Debug, Default)]
pub struct LoggingGateway;

impl TelephonyGateway for LoggingGateway {
    fn place_call<'a>(
        &'a self,
        call: &'a OutgoingCall,
    ) -> BoxFuture<'a, Result<PlacedCall, TelephonyError>> {
        Box::pin(async move {
            let sid = format!("CA{}", uuid::Uuid::new_v4().simple());
            match &call.one_time_code {
                // A voice code: the code is what the phone would hear.
                Some(code) => tracing::info!(
                    from = %call.from,
                    to = %call.to.masked(),
                    call_sid = %sid,
                    "voice call NOT dialed (logging gateway): the verification code is {code}"
                ),
                // The caller ID is the secret of the flash call. Logging it is the whole
                // point of this gateway, which is why it refuses to run in Lambda unless told
                // otherwise.
                None => tracing::info!(
                    caller_id = %call.from,
                    to = %call.to.masked(),
                    call_sid = %sid,
                    "flash call NOT dialed (logging gateway): the caller ID to enter is {}",
                    call.from
                ),
            }
            if no_answer(call.to.as_str()) {
                return Err(no_answer_error());
            }
            Ok(PlacedCall { sid })
        })
    }

    fn send_message<'a>(
        &'a self,
        message: &'a OutgoingMessage,
    ) -> BoxFuture<'a, Result<SentMessage, TelephonyError>> {
        Box::pin(async move {
            let what = match message.channel {
                MessageChannel::Sms => "SMS",
                MessageChannel::Whatsapp => "WhatsApp message",
            };
            if let Some(refusal) = magic_refusal(message.to.as_str()) {
                tracing::info!(to = %message.to.masked(), %refusal, "{what} refused (logging gateway, magic number)");
                return Err(refusal);
            }
            let sid = format!("SM{}", uuid::Uuid::new_v4().simple());
            match &message.one_time_code {
                // The code stands in for the phone that would show it: as the flash call's
                // caller ID, logging it is this gateway's whole point.
                Some(code) => tracing::info!(
                    to = %message.to.masked(),
                    message_sid = %sid,
                    "{what} NOT sent (logging gateway): the verification code is {code}"
                ),
                None => tracing::info!(
                    to = %message.to.masked(),
                    message_sid = %sid,
                    "{what} NOT sent (logging gateway)"
                ),
            }
            if no_answer(message.to.as_str()) {
                return Err(no_answer_error());
            }
            Ok(SentMessage {
                sid,
                status: "queued".to_owned(),
            })
        })
    }
}

/// Whether a URL's host is this machine (`127.0.0.0/8`, `localhost`, `[::1]`).
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What Twilio would post about a flash call the phone rejects: `initiated`, `ringing`, then
/// `no-answer`.
pub fn call_callbacks(call: &OutgoingCall, sid: &str) -> Vec<Vec<(String, String)>> {
    ["initiated", "ringing", "no-answer"]
        .into_iter()
        .map(|status| {
            form(&[
                ("AccountSid", LOCAL_ACCOUNT_SID),
                ("CallSid", sid),
                ("CallStatus", status),
                ("Direction", "outbound-api"),
                ("From", call.from.as_str()),
                ("To", call.to.as_str()),
            ])
        })
        .collect()
}

/// What Twilio would post about a message a phone receives: `sent`, then `delivered` (and
/// `read`, on WhatsApp), from and to the channel's addresses.
pub fn message_callbacks(message: &OutgoingMessage, sid: &str) -> Vec<Vec<(String, String)>> {
    let statuses: &[&str] = match message.channel {
        MessageChannel::Sms => &["sent", "delivered"],
        MessageChannel::Whatsapp => &["sent", "delivered", "read"],
    };
    let to = message.channel.address(message.to.as_str());
    let from = match &message.from {
        Sender::Number(number) => message.channel.address(number.as_str()),
        Sender::MessagingService(_) => String::new(),
    };
    statuses
        .iter()
        .map(|status| {
            let mut params = vec![
                ("AccountSid", LOCAL_ACCOUNT_SID),
                ("ApiVersion", "2010-04-01"),
                ("MessageSid", sid),
                ("MessageStatus", status),
                ("SmsSid", sid),
                ("SmsStatus", status),
                ("To", to.as_str()),
            ];
            match &message.from {
                Sender::Number(_) => params.push(("From", from.as_str())),
                Sender::MessagingService(service) => {
                    params.push(("MessagingServiceSid", service.as_str()));
                }
            }
            form(&params)
        })
        .collect()
}

/// What Twilio posts to a number's voice URL when `from` calls `to` (the inbound missed
/// call), with the caller's STIR/SHAKEN verification (`TN-Validation-Passed-A`) when given:
/// for `stackctl call-in` and the tests, which play the phone.
pub fn incoming_call(from: &str, to: &str, verstat: Option<&str>) -> Vec<(String, String)> {
    let sid = format!("CA{}", uuid::Uuid::new_v4().simple());
    let mut params = vec![
        ("AccountSid", LOCAL_ACCOUNT_SID),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", sid.as_str()),
        ("CallStatus", "ringing"),
        ("Called", to),
        ("Caller", from),
        ("Direction", "inbound"),
        ("From", from),
        ("To", to),
    ];
    if let Some(verstat) = verstat {
        params.push(("StirVerstat", verstat));
    }
    form(&params)
}

const LOCAL_ACCOUNT_SID: &str = "AC00000000000000000000000000000000";

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Posts `callbacks` in turn, 300 ms apart, each signed with the webhook token, to `url`, on a
/// task of its own: Twilio's part, played by the logging gateway only (locally, where nothing
/// is dialed or sent).
pub fn simulate_callbacks(
    http: reqwest::Client,
    token: String,
    url: String,
    callbacks: Vec<Vec<(String, String)>>,
) {
    tokio::spawn(async move {
        for params in callbacks {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let signature = crate::twilio_signature::compute(&token, &url, &params);
            let sent = http
                .post(&url)
                .header("x-twilio-signature", signature)
                .form(&params)
                .send()
                .await;
            if let Err(error) = sent {
                tracing::warn!(%error, "simulated status callback not delivered");
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn magic_recipients_get_twilio_test_credentials_refusals() {
        assert_eq!(
            super::magic_refusal("+447700900001"),
            Some(super::TelephonyError::Rejected {
                status: 400,
                code: Some(21211)
            })
        );
        assert_eq!(
            super::magic_refusal("+447700900009").and_then(|e| e.provider_code()),
            Some(21614)
        );
        assert_eq!(super::magic_refusal("+447700900005"), None);
    }

    #[test]
    fn only_loopback_callback_urls_are_local() {
        assert!(super::is_loopback_url(
            "http://127.0.0.1:3000/webhooks/twilio/voice?x=1"
        ));
        assert!(super::is_loopback_url("http://localhost:3000/w"));
        assert!(super::is_loopback_url("http://[::1]:3000/w"));
        assert!(!super::is_loopback_url(
            "https://abc123.execute-api.us-east-1.amazonaws.com/w"
        ));
        assert!(!super::is_loopback_url("http://127.0.0.1.example.com/w"));
    }
}
