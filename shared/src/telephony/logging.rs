//! A gateway that dials nothing and logs the call, caller ID included, for local use.

use super::{BoxFuture, FlashCall, PlacedCall, TelephonyError, TelephonyGateway};

#[derive(Debug, Default)]
pub struct LoggingGateway;

impl TelephonyGateway for LoggingGateway {
    fn place_flash_call<'a>(
        &'a self,
        call: &'a FlashCall,
    ) -> BoxFuture<'a, Result<PlacedCall, TelephonyError>> {
        Box::pin(async move {
            let sid = format!("CA{}", uuid::Uuid::new_v4().simple());
            // The caller ID is the secret of the flash call. Logging it is the whole point of
            // this gateway, which is why it refuses to run in Lambda unless told otherwise.
            tracing::info!(
                caller_id = %call.from,
                to = %call.to.masked(),
                call_sid = %sid,
                "flash call NOT dialed (logging gateway): the caller ID to enter is {}",
                call.from
            );
            Ok(PlacedCall { sid })
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
/// `no-answer`, each signed with the webhook token, to the call's status-callback URL. Only the
/// logging gateway does this (locally, where nothing is dialed), on a task of its own.
pub fn simulate_call_callbacks(
    http: reqwest::Client,
    token: String,
    call: &FlashCall,
    sid: String,
) {
    let Some(url) = call.status_callback.clone() else {
        return;
    };
    let (to, from) = (call.to.as_str().to_owned(), call.from.as_str().to_owned());
    tokio::spawn(async move {
        for status in ["initiated", "ringing", "no-answer"] {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let params: Vec<(String, String)> = [
                ("AccountSid", "AC00000000000000000000000000000000"),
                ("CallSid", sid.as_str()),
                ("CallStatus", status),
                ("Direction", "outbound-api"),
                ("From", from.as_str()),
                ("To", to.as_str()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
            let signature = crate::twilio_signature::compute(&token, &url, &params);
            let sent = http
                .post(&url)
                .header("x-twilio-signature", signature)
                .form(&params)
                .send()
                .await;
            if let Err(error) = sent {
                tracing::warn!(%error, status, "simulated call status callback not delivered");
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
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
