//! `POST /webhooks/twilio/voice/incoming`: a call to a pool number (its voice URL). Every call
//! is rejected as busy, so nobody is billed for it; a call from the phone of an open inbound
//! session, to the number that session shows, with an attestation the deployment accepts,
//! verifies that session, once.

use super::{Form, TwilioWebhookEndpoint};
use crate::config::InboundSettings;
use crate::phone::PhoneNumber;

/// Why an incoming call verifies nothing (logged, never told the caller: every call hears the
/// same busy signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unmatched {
    /// `From` or `To` is not a phone number (a withheld caller ID, a SIP address).
    NotANumber,
    /// Its STIR/SHAKEN attestation is not one the deployment accepts, or it has none where one
    /// is required.
    Attestation,
    /// No open inbound session of `From` shows `To`.
    NoSession,
}

impl Unmatched {
    fn as_str(self) -> &'static str {
        match self {
            Unmatched::NotANumber => "not_a_number",
            Unmatched::Attestation => "attestation",
            Unmatched::NoSession => "no_session",
        }
    }
}

/// Whether a call's `StirVerstat` verifies under `settings`: `TN-Validation-Passed-<level>`
/// with an accepted level; no attestation only when none is required. A failed validation
/// (`TN-Validation-Failed-*`, `No-TN-Validation`) never does.
pub(crate) fn attestation_accepted(settings: &InboundSettings, verstat: Option<&str>) -> bool {
    match verstat.filter(|v| !v.is_empty()) {
        None => !settings.require_attestation,
        Some(verstat) => verstat
            .strip_prefix("TN-Validation-Passed-")
            .and_then(|level| {
                let mut chars = level.chars();
                let level = chars.next()?;
                chars.next().is_none().then_some(level.to_ascii_uppercase())
            })
            .is_some_and(|level| settings.accepted_attestations.contains(&level)),
    }
}

impl TwilioWebhookEndpoint {
    /// Matches a signed incoming call to its session; `Ok(None)` when it verified one.
    pub(super) async fn incoming_call(
        &self,
        form: &Form<'_>,
    ) -> Result<Option<Unmatched>, crate::store::StoreError> {
        let number = |name| form.get(name).and_then(|n| PhoneNumber::parse(n).ok());
        let (Some(from), Some(to)) = (number("From"), number("To")) else {
            return Ok(Some(Unmatched::NotANumber));
        };
        if !attestation_accepted(&self.config.inbound, form.get("StirVerstat")) {
            return Ok(Some(Unmatched::Attestation));
        }
        let now = self.clock.now();
        let max = self.config.max_verification_attempts;
        // The session whose `call_to` the caller called: its hold names it.
        let Some(session) = self.sessions.inbound_session(&from, &to, now).await? else {
            return Ok(Some(Unmatched::NoSession));
        };
        match self
            .sessions
            .record_attempt(&session, crate::store::sessions::Attempt::Match, now, max)
            .await?
        {
            Ok(_) => {
                tracing::info!(session_id = %session, phone = %from.masked(), "inbound session verified by its call");
                Ok(None)
            }
            // Another call got there first (or the window closed between the two reads).
            Err(refusal) => {
                tracing::info!(session_id = %session, ?refusal, "incoming call for a session that no longer takes it");
                Ok(Some(Unmatched::NoSession))
            }
        }
    }

    /// The answer to every signed incoming call, whatever it matched: rejected as busy.
    pub(super) async fn answer_incoming(
        &self,
        form: &Form<'_>,
    ) -> lambda_http::Response<lambda_http::Body> {
        let outcome = match self.incoming_call(form).await {
            Ok(None) => "verified",
            Ok(Some(unmatched)) => unmatched.as_str(),
            // The caller hears busy all the same and may call again: the session stays open.
            Err(error) => {
                tracing::error!(%error, "an incoming call could not be matched: the store failed");
                "store_unavailable"
            }
        };
        tracing::info!(outcome, "incoming call rejected");
        crate::telemetry::status_callback("incoming_call", outcome);
        crate::http::twiml(crate::telephony::twiml::REJECT_BUSY)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn settings(levels: &str, require: bool) -> InboundSettings {
        InboundSettings {
            accepted_attestations: levels.chars().collect::<BTreeSet<char>>(),
            require_attestation: require,
        }
    }

    #[test]
    fn only_accepted_passed_attestations_verify() {
        let a = settings("A", false);
        assert!(attestation_accepted(&a, Some("TN-Validation-Passed-A")));
        assert!(!attestation_accepted(&a, Some("TN-Validation-Passed-B")));
        assert!(!attestation_accepted(&a, Some("TN-Validation-Failed-A")));
        assert!(!attestation_accepted(&a, Some("No-TN-Validation")));
        assert!(!attestation_accepted(&a, Some("TN-Validation-Passed-AB")));
        assert!(attestation_accepted(&a, None));
        assert!(attestation_accepted(&a, Some("")));
        let ab = settings("AB", true);
        assert!(attestation_accepted(&ab, Some("TN-Validation-Passed-B")));
        assert!(!attestation_accepted(&ab, Some("TN-Validation-Passed-C")));
        assert!(!attestation_accepted(&ab, None));
    }
}
