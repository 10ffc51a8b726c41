//! `POST /sms/verify/check`: one conditional update per check, counted toward the phone's
//! failure cap; the right code closes the verification in the same write, so one code yields
//! at most one success.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use secrecy::ExposeSecret;
use serde::Serialize;
use time::OffsetDateTime;

use super::{CheckBody, SmsVerifyEndpoint, Subject, refusal, telephony_unavailable, verify_error};
use crate::clock::rfc3339;
use crate::http::{ApiError, OUTAGE_RETRY_AFTER_SECS, json, json_body};
use crate::phone::PhoneNumber;
use crate::secrets::Secrets;
use crate::session::Refusal;
use crate::sms::code::{
    CodeMethod, CodeState, CodeVerification, VerificationId, check_code_format, code_hash, same,
};
use crate::store::rate_limits::seconds_to_day_end;
use crate::store::sessions::MatchRefused;
use crate::telephony::CheckOutcome;
use crate::token::{self, TOKEN_TYPE};

#[derive(Debug, Serialize)]
struct Verified {
    verified: bool,
    phone_number: String,
    verification_id: VerificationId,
    verified_at: String,
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

/// A refusal that tells what became of a verification (not a lock, which has a Retry-After).
fn is_state_refusal(e: &ApiError) -> bool {
    match e {
        ApiError::AttemptsExhausted {
            retry_after_secs, ..
        } => retry_after_secs.is_none(),
        other => matches!(
            other.code(),
            crate::http::ErrorCode::CodeExpired | crate::http::ErrorCode::AlreadyVerified
        ),
    }
}

impl SmsVerifyEndpoint {
    pub(super) async fn check(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let body: CheckBody = json_body(req)?;
        let secrets = self.secrets.get().await?;
        let now = self.clock.now();
        let subject = Subject::resolve(&self.config, &secrets, &body.phone_number, now)?;
        let length = match &subject {
            Subject::TestNumber(_, length) => *length,
            Subject::Phone(_) => self.config.codes.length as usize,
        };
        check_code_format(&body.code, length)?;
        let channel = self.channel(matches!(subject, Subject::TestNumber(..)));
        if matches!(subject, Subject::TestNumber(..)) {
            crate::telemetry::test_number_used();
        }
        let ip = crate::http::client_ip(req);
        let outcome = self
            .check_code(&secrets, &body, subject.phone(), ip.as_deref(), now)
            .await;
        crate::telemetry::verification_checked(
            channel,
            outcome.as_ref().map(|_| ()).map_err(ApiError::code),
        );
        outcome
    }

    /// The check proper, once the input is known to be well formed.
    async fn check_code(
        &self,
        secrets: &Secrets,
        body: &CheckBody,
        phone: &PhoneNumber,
        ip: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Response<Body>, ApiError> {
        let max = self.config.codes.max_checks;
        // Without the verification's id, every refusal is "not found": what a phone's last
        // code came to (verified, expired, used up) is nobody's business but its starter's.
        let named = body.verification_id.is_some();
        let answer = |r: Refusal| refusal(if named { r } else { Refusal::NotFound });

        let Some(read) = self.codes.current(phone).await? else {
            return Err(refusal(Refusal::NotFound));
        };
        if let Some(refused) = read.refusal(body.verification_id.as_ref(), now, max) {
            return Err(answer(refused));
        }
        let right = match self.is_right(secrets, &read, &body.code, now).await {
            Ok(right) => right,
            // Twilio Verify's answers about the verification's state are as telling.
            Err(e) if !named && is_state_refusal(&e) => return Err(refusal(Refusal::NotFound)),
            Err(e) => return Err(e),
        };
        let caps = self.guard.code_failure_caps(phone, ip);
        if !right {
            // A wrong code from the network that asked for it uses up one of its checks; from
            // anywhere else it counts only toward the caps: a stranger cannot use it up.
            let network = ip.map(crate::guard::network_of);
            let own = read.network.is_none() || read.network == network;
            let counted = if own {
                self.codes
                    .count_wrong(&read, now, max)
                    .await?
                    .map_err(answer)?
            } else {
                read.clone()
            };
            // Past a cap (this network's for the phone, or the phone's ceiling) the answer is
            // the same for a right and a wrong code.
            if let Err(exceeded) = self.guard.limits().count_failure(&caps, now).await? {
                tracing::info!(verification_id = %read.id, "code checks locked: failed checks at the daily cap");
                return Err(ApiError::phone_locked(exceeded.retry_after_secs));
            }
            tracing::info!(verification_id = %read.id, checks = counted.checks, "wrong code");
            return Err(ApiError::CodeMismatch {
                attempts_remaining: counted.checks_remaining(max),
            });
        }
        let test_number = read.method == CodeMethod::TestNumber;
        let also = self.guard.closing_writes(phone, &caps, !test_number, now)?;
        let verified = match self.codes.record_success(&read, now, max, also).await? {
            Ok(verified) => verified,
            Err(MatchRefused::Session(refused)) => return Err(answer(refused)),
            Err(MatchRefused::PhoneLocked) => {
                return Err(ApiError::phone_locked(seconds_to_day_end(now)));
            }
        };
        if !test_number {
            self.guard.converted(phone, verified.created_at).await;
        }
        self.verified(secrets, &verified, now)
    }

    /// Whether `code` is the verification's: against its keyed hash, a test number's fixed
    /// code, or Twilio Verify's answer. Each comparison takes the same time wherever the
    /// strings differ.
    async fn is_right(
        &self,
        secrets: &Secrets,
        read: &CodeVerification,
        code: &str,
        now: OffsetDateTime,
    ) -> Result<bool, ApiError> {
        match &read.method {
            CodeMethod::Hashed { hash } => {
                let candidate =
                    code_hash(secrets, &read.phone, &read.id, code).map_err(ApiError::Internal)?;
                Ok(same(&candidate, hash))
            }
            CodeMethod::TestNumber => {
                // The number stopped being a test number (valid_until passed, or removed).
                let Some((_, test)) = secrets.test_number(read.phone.as_str(), now) else {
                    return Err(refusal(Refusal::Expired));
                };
                tracing::info!(verification_id = %read.id, test_number = true, "test number checked");
                Ok(same(code, test.code.expose_secret()))
            }
            CodeMethod::Delegated { provider_sid } => {
                let Some(verify) = &self.verify else {
                    tracing::error!("a delegated verification, but VERIFY_SERVICE_SID is unset");
                    return Err(telephony_unavailable(OUTAGE_RETRY_AFTER_SECS));
                };
                match verify
                    .check(&read.phone, provider_sid.as_deref(), code)
                    .await
                {
                    Ok(CheckOutcome::Approved) => Ok(true),
                    Ok(CheckOutcome::Pending) => Ok(false),
                    Ok(CheckOutcome::Closed) => Err(refusal(Refusal::Expired)),
                    Err(error) if error.provider_code() == Some(20404) => {
                        Err(self.closed_by_verify(&read.phone, read, now).await)
                    }
                    Err(error) => {
                        tracing::warn!(%error, verification_id = %read.id, "Twilio Verify did not check the code");
                        Err(verify_error(&error, "code"))
                    }
                }
            }
        }
    }

    /// Verify no longer knows the verification (20404): it was approved by a concurrent check
    /// (then ours says so), or it expired or was closed on Verify's side.
    async fn closed_by_verify(
        &self,
        phone: &PhoneNumber,
        read: &CodeVerification,
        now: OffsetDateTime,
    ) -> ApiError {
        let max = self.config.codes.max_checks;
        match self.codes.current(phone).await {
            Ok(Some(current)) => match current.refusal(Some(&read.id), now, max) {
                Some(refused) => refusal(refused),
                None => refusal(Refusal::Expired),
            },
            Ok(None) => refusal(Refusal::NotFound),
            Err(error) => error.into(),
        }
    }

    fn verified(
        &self,
        secrets: &Secrets,
        v: &CodeVerification,
        now: OffsetDateTime,
    ) -> Result<Response<Body>, ApiError> {
        debug_assert_eq!(v.state, CodeState::Verified);
        let test_number = v.method == CodeMethod::TestNumber;
        // A test number's token says so: it proves nobody's phone.
        let method = if test_number {
            "test_number"
        } else {
            v.channel.amr()
        };
        let issued = token::issue(
            secrets,
            &self.config,
            &v.phone,
            &v.id.to_string(),
            method,
            now,
        )?;
        tracing::info!(verification_id = %v.id, phone = %v.phone.masked(), test_number, "phone verified by code");
        let channel = self.channel(test_number);
        crate::telemetry::time_to_verify(channel, (now - v.created_at).as_seconds_f64());
        let verified = Verified {
            verified: true,
            phone_number: v.phone.as_str().to_owned(),
            verification_id: v.id,
            verified_at: rfc3339(v.verified_at.unwrap_or(now)),
            access_token: issued.token,
            token_type: TOKEN_TYPE,
            expires_in: issued.expires_in,
        };
        Ok(json(StatusCode::OK, &verified))
    }
}
