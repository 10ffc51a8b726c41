//! Twilio Verify v2 (`/v2/Services/{sid}/Verifications`, `/VerificationCheck`): the codes
//! made, sent and checked by Twilio, for `sms-verify` in delegated mode. Same client, timeouts
//! and retry rules as calls and messages; only Verify's status and error code are kept.

use std::sync::Arc;

use serde::Deserialize;

use super::{TelephonyError, TwilioGateway};
use crate::config::Config;
use crate::phone::PhoneNumber;
use crate::secrets::SecretsCache;

pub struct TwilioVerify {
    twilio: TwilioGateway,
    base_url: String,
    service_sid: String,
}

/// A verification Verify started: its `VE...` SID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedVerification {
    pub sid: String,
}

/// What Verify made of a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The code is right: the verification is over.
    Approved,
    /// The code is wrong; the verification stays open.
    Pending,
    /// Verify closed the verification (`canceled`, `max_attempts_reached`, `expired`, ...).
    Closed,
}

#[derive(Debug, Deserialize)]
struct Started {
    sid: String,
}

#[derive(Debug, Deserialize)]
struct Checked {
    status: Option<String>,
}

impl TwilioVerify {
    pub fn new(
        config: &Config,
        secrets: Arc<SecretsCache>,
        service_sid: &str,
    ) -> anyhow::Result<Self> {
        Ok(TwilioVerify {
            twilio: TwilioGateway::new(config, secrets)?,
            base_url: config.codes.verify_base_url.clone(),
            service_sid: service_sid.to_owned(),
        })
    }

    /// Asks Verify to send a code on `channel` (`sms`, `call`, `whatsapp`), in `locale`, with
    /// the Android app hash when there is one.
    pub async fn start(
        &self,
        to: &PhoneNumber,
        channel: &str,
        locale: Option<&str>,
        app_hash: Option<&str>,
    ) -> Result<StartedVerification, TelephonyError> {
        let mut form = vec![("To", to.as_str()), ("Channel", channel)];
        if let Some(locale) = locale {
            form.push(("Locale", locale));
        }
        if let Some(hash) = app_hash {
            form.push(("AppHash", hash));
        }
        let url = format!(
            "{}/v2/Services/{}/Verifications",
            self.base_url, self.service_sid
        );
        let answer: Started = self.twilio.post("Verifications", |_| url, &form).await?;
        Ok(StartedVerification { sid: answer.sid })
    }

    /// Asks Verify whether `code` is right for the verification `sid` (or, without one, the
    /// open verification of `to`).
    pub async fn check(
        &self,
        to: &PhoneNumber,
        sid: Option<&str>,
        code: &str,
    ) -> Result<CheckOutcome, TelephonyError> {
        let mut form = vec![("Code", code)];
        match sid {
            Some(sid) => form.push(("VerificationSid", sid)),
            None => form.push(("To", to.as_str())),
        }
        let url = format!(
            "{}/v2/Services/{}/VerificationCheck",
            self.base_url, self.service_sid
        );
        let answer: Checked = self
            .twilio
            .post("VerificationCheck", |_| url, &form)
            .await?;
        Ok(match answer.status.as_deref() {
            Some("approved") => CheckOutcome::Approved,
            Some("pending") => CheckOutcome::Pending,
            _ => CheckOutcome::Closed,
        })
    }
}
