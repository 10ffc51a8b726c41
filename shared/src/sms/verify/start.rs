//! `POST /sms/verify/start`: the checks of `/auth/request`, the guard (its counters shared
//! with flash calls), a new code that replaces the phone's last one, and the SMS.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use time::OffsetDateTime;

use super::{SmsVerifyEndpoint, StartBody, Subject, check_locale, verify_error};
use crate::clock::rfc3339;
use crate::guard::{
    Admitted, Caller, ProviderUse, SendRequest, check_app_signature, check_destination,
};
use crate::http::{ApiError, client_ip, json, json_body, public_base_url};
use crate::phone::PhoneNumber;
use crate::secrets::Secrets;
use crate::sms::code::{
    CodeMethod, CodeState, CodeVerification, VerificationId, code_hash, is_app_hash, message_text,
    random_code,
};
use crate::sms::outbox::{Handed, send_logged};
use crate::sms::segments;
use crate::store::messages::MessageRecord;
use crate::store::rate_limits::{Limit, Period, Quota};
use crate::telephony::{MESSAGE_STATUS_CALLBACK, OutgoingMessage};

#[derive(Debug, Serialize)]
struct Started {
    verification_id: VerificationId,
    expires_at: String,
    resend_after: String,
    channel: &'static str,
}

/// A start that passed the checks: what the guard counts and the provider is asked to send.
struct Start<'a> {
    phone: PhoneNumber,
    locale: Option<&'a str>,
    app_hash: Option<&'a str>,
    /// A valid App Check token came with it.
    attested: bool,
}

impl SmsVerifyEndpoint {
    pub(super) async fn start(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let body: StartBody = json_body(req)?;
        check_locale(body.locale.as_deref())?;
        let now = self.clock.now();
        let attested = self.guard.attest(req, now).await?;
        // The secret first: a start that cannot be served (Secrets Manager down) takes nothing.
        let secrets = self.secrets.get().await?;
        let subject = Subject::resolve(&self.config, &secrets, &body.phone_number, now)?;
        let signed = check_app_signature(&self.config, &secrets, body.app_signature.as_deref())?;
        let phone = match subject {
            Subject::TestNumber(phone, _) => {
                return self.start_test_number(req, phone, now).await;
            }
            Subject::Phone(phone) => phone,
        };
        check_destination(&self.config, &phone)?;
        let app_hash = body
            .app_signature
            .as_deref()
            .filter(|s| signed && is_app_hash(s));
        let start = Start {
            phone,
            locale: body.locale.as_deref(),
            app_hash,
            attested,
        };
        let verification = match &self.verify {
            None => self.start_with_our_code(req, &secrets, &start, now).await?,
            Some(_) => self.start_delegated(req, &start, now).await?,
        };
        crate::telemetry::verification_started(self.channel(false));
        Ok(self.started(&verification))
    }

    fn started(&self, v: &CodeVerification) -> Response<Body> {
        let started = Started {
            verification_id: v.id,
            expires_at: rfc3339(v.expires_at),
            resend_after: rfc3339(v.created_at + self.config.codes.resend_cooldown),
            channel: "sms",
        };
        json(StatusCode::ACCEPTED, &started)
    }

    fn new_verification(
        &self,
        id: VerificationId,
        phone: PhoneNumber,
        method: CodeMethod,
        network: Option<String>,
        now: OffsetDateTime,
    ) -> CodeVerification {
        CodeVerification {
            id,
            phone,
            method,
            state: CodeState::Pending,
            checks: 0,
            created_at: now,
            expires_at: now + self.config.codes.validity,
            verified_at: None,
            message_id: None,
            network,
        }
    }

    /// A test number: no guard (nothing is sent, nothing costs), no SMS; its fixed code is
    /// read from the secret at each check.
    async fn start_test_number(
        &self,
        req: &Request,
        phone: PhoneNumber,
        now: OffsetDateTime,
    ) -> Result<Response<Body>, ApiError> {
        let verification = self.new_verification(
            VerificationId::random(),
            phone,
            CodeMethod::TestNumber,
            client_network(req),
            now,
        );
        self.codes
            .transact(vec![self.codes.replace(&verification)?])
            .await?
            .map_err(|cancelled| cancelled.into_error())?;
        tracing::info!(
            verification_id = %verification.id,
            phone = %verification.phone.masked(),
            test_number = true,
            "code verification started for a test number: no SMS sent"
        );
        crate::telemetry::verification_started(self.channel(true));
        crate::telemetry::test_number_used();
        Ok(self.started(&verification))
    }

    /// Takes the guard's allowance for `units` of the budgets (and of `provider`, what the
    /// send asks of our account), with `writes` in its transaction.
    async fn take_allowance(
        &self,
        req: &Request,
        start: &Start<'_>,
        (units, provider): (u32, Option<ProviderUse<'_>>),
        now: OffsetDateTime,
        writes: Vec<aws_sdk_dynamodb::types::TransactWriteItem>,
    ) -> Result<Admitted, ApiError> {
        let codes = &self.config.codes;
        let per_phone = [
            // One daily allowance for both channels: the flash call's counter.
            Quota {
                counter: "flash-phone-day",
                limit: Limit::PhonePerDay,
                max: self.config.max_requests_per_phone_per_day,
                period: Period::Day,
            },
            Quota {
                counter: "code-sends-hour",
                limit: Limit::PhonePerHour,
                max: codes.max_sends_per_phone_per_hour,
                period: Period::Hour,
            },
        ];
        let ip = client_ip(req);
        let send = SendRequest {
            phone: &start.phone,
            caller: Caller::App {
                ip: ip.as_deref(),
                attested: start.attested,
            },
            scope: "sms",
            per_phone: &per_phone,
            cooldown: codes.resend_cooldown,
            units,
            verification: true,
            // A code cannot be checked from a network (or for a phone) at its cap of failed
            // checks: it is not sent.
            failure_caps: self.guard.code_failure_caps(&start.phone, ip.as_deref()),
            provider,
        };
        self.guard.admit(&send, now, writes).await
    }

    /// Gives the allowance back and removes the verification: the code was never sent.
    async fn undo(&self, admitted: &Admitted, v: &CodeVerification) {
        let removal = match self.codes.remove(&v.phone, &v.id) {
            Ok(removal) => removal,
            Err(error) => {
                tracing::error!(%error, "the removal of an unsent code could not be built");
                return;
            }
        };
        if let Err(error) = self.guard.give_back(admitted, vec![removal]).await {
            tracing::error!(%error, verification_id = %v.id, "the allowance of an unsent code could not be given back");
        }
    }

    /// Our code: a CSPRNG's digits, stored as their keyed hash in the guard's transaction with
    /// the message's log entry, then sent like any SMS.
    async fn start_with_our_code(
        &self,
        req: &Request,
        secrets: &Secrets,
        start: &Start<'_>,
        now: OffsetDateTime,
    ) -> Result<CodeVerification, ApiError> {
        let codes = &self.config.codes;
        let Some(sender) = self.config.default_sms_sender() else {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "no SMS sender configured"
            )));
        };
        let code = random_code(codes.length);
        let id = VerificationId::random();
        let hash = code_hash(secrets, &start.phone, &id, &code).map_err(ApiError::Internal)?;
        let mut verification = self.new_verification(
            id,
            start.phone.clone(),
            CodeMethod::Hashed { hash },
            client_network(req),
            now,
        );
        let text = message_text(
            codes.templates.for_locale(start.locale),
            &codes.app_name,
            &code,
            codes.otp_domain.as_deref(),
            start.app_hash,
        );
        let units = segments(&text).count;
        let record = MessageRecord::queued(start.phone.clone(), sender.label(), units, now);
        verification.message_id = Some(record.id);
        let writes = vec![
            self.codes.replace(&verification)?,
            self.messages.new_message(&record)?,
        ];
        let provider = ProviderUse::Message {
            sender: sender.label(),
        };
        let taken = self
            .take_allowance(req, start, (units, Some(provider)), now, writes)
            .await?;

        let base_url = public_base_url(req, self.config.public_base_url.as_deref());
        let message = OutgoingMessage {
            to: start.phone.clone(),
            from: sender,
            body: text,
            status_callback: base_url.map(|base| {
                format!(
                    "{base}{}?message_id={}",
                    MESSAGE_STATUS_CALLBACK.path, record.id
                )
            }),
            one_time_code: Some(code),
        };
        let sent = send_logged(
            self.telephony.as_ref(),
            &self.messages,
            self.clock.as_ref(),
            &self.config,
            &record.id,
            &message,
        )
        .await;
        match sent {
            Err(refused) => {
                self.undo(&taken, &verification).await;
                return Err(refused);
            }
            // It may have arrived: the code and its allowance stay, and the log entry waits
            // for the callback.
            Ok(Handed::Unknown) => {
                tracing::warn!(verification_id = %verification.id, message_id = %record.id, "verification code's delivery unknown: kept")
            }
            Ok(Handed::Sent(_)) => {
                tracing::info!(verification_id = %verification.id, message_id = %record.id, "verification code sent")
            }
        }
        Ok(verification)
    }

    /// Twilio Verify's code: our guard first, then Verify makes and sends the code; we keep
    /// only Verify's SID and the verification's state.
    async fn start_delegated(
        &self,
        req: &Request,
        start: &Start<'_>,
        now: OffsetDateTime,
    ) -> Result<CodeVerification, ApiError> {
        let Some(verify) = &self.verify else {
            return Err(ApiError::Internal(anyhow::anyhow!("no Verify service")));
        };
        let verification = self.new_verification(
            VerificationId::random(),
            start.phone.clone(),
            CodeMethod::Delegated { provider_sid: None },
            client_network(req),
            now,
        );
        let writes = vec![self.codes.replace(&verification)?];
        // Verify's message is one segment: its templates are short. Verify sends from
        // Twilio's senders, not at our account's rate.
        let taken = self
            .take_allowance(req, start, (1, None), now, writes)
            .await?;
        match verify
            .start(&start.phone, start.locale, start.app_hash)
            .await
        {
            Ok(started) => {
                if let Err(error) = self
                    .codes
                    .set_provider_sid(&start.phone, &verification.id, &started.sid)
                    .await
                {
                    // Checks fall back to the phone number, which Verify also accepts.
                    tracing::error!(%error, verification_id = %verification.id, "Verify's SID could not be stored");
                }
                tracing::info!(
                    verification_id = %verification.id,
                    phone = %start.phone.masked(),
                    "verification code sent by Twilio Verify"
                );
                let country = start.phone.country_code();
                crate::telemetry::sent("sms", country, self.config.is_unusual_country(country));
                Ok(verification)
            }
            // Verify may have sent it: kept, and checked by the phone number (no SID).
            Err(error) if error.is_ambiguous() => {
                tracing::warn!(%error, verification_id = %verification.id, phone = %start.phone.masked(), "Twilio Verify's outcome unknown: the verification is kept");
                Ok(verification)
            }
            Err(error) => {
                tracing::warn!(%error, verification_id = %verification.id, phone = %start.phone.masked(), "Twilio Verify did not send the code");
                self.undo(&taken, &verification).await;
                Err(verify_error(&error, "phone_number"))
            }
        }
    }
}

/// The network of the request's client, if it has an address.
fn client_network(req: &Request) -> Option<String> {
    client_ip(req).map(|ip| crate::guard::network_of(&ip))
}
