//! `POST /sms/verify/start`: the checks of `/auth/request`, the guard (its counters shared
//! with flash calls), a new code that replaces the phone's last one, and the code sent on the
//! channel asked for: an SMS, a voice call that says it, or a WhatsApp template.

use std::collections::BTreeMap;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use time::OffsetDateTime;

use super::{SmsVerifyEndpoint, StartBody, Subject, check_locale, verify_error};
use crate::clock::rfc3339;
use crate::guard::{
    Admitted, Caller, ProviderUse, SendRequest, check_app_signature, check_destination,
};
use crate::http::{ApiError, ErrorCode, client_ip, json, json_body, public_base_url};
use crate::phone::PhoneNumber;
use crate::secrets::Secrets;
use crate::sms::code::{
    CodeChannel, CodeMethod, CodeState, CodeVerification, VerificationId, code_hash, is_app_hash,
    message_text, random_code,
};
use crate::sms::outbox::{Handed, send_logged};
use crate::sms::segments;
use crate::store::messages::MessageRecord;
use crate::store::rate_limits::{Limit, Period, Quota};
use crate::telephony::twiml::{say_language, say_twice, spoken_digits};
use crate::telephony::{
    Content, MESSAGE_STATUS_CALLBACK, MessageChannel, OutgoingCall, OutgoingMessage, Sender,
    TelephonyError,
};

#[derive(Debug, Serialize)]
struct Started {
    verification_id: VerificationId,
    expires_at: String,
    /// When this channel may send again.
    resend_after: String,
    channel: &'static str,
    /// The channels this deployment offers.
    channels: Vec<&'static str>,
    /// When each offered channel may send again (now, for one that is not cooling down).
    resend_after_by_channel: BTreeMap<&'static str, String>,
}

/// A start that passed the checks: what the guard counts and the provider is asked to send.
struct Start<'a> {
    phone: PhoneNumber,
    channel: CodeChannel,
    locale: Option<&'a str>,
    app_hash: Option<&'a str>,
    /// A valid App Check token came with it.
    attested: bool,
}

impl SmsVerifyEndpoint {
    pub(super) async fn start(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let body: StartBody = json_body(req)?;
        check_locale(body.locale.as_deref())?;
        let channel = self.offered(body.channel.as_deref())?;
        let now = self.clock.now();
        let attested = self.guard.attest(req, now).await?;
        // The secret first: a start that cannot be served (Secrets Manager down) takes nothing.
        let secrets = self.secrets.get().await?;
        let subject = Subject::resolve(&self.config, &secrets, &body.phone_number, now)?;
        let signed = check_app_signature(&self.config, &secrets, body.app_signature.as_deref())?;
        let phone = match subject {
            Subject::TestNumber(phone, _) => {
                return self.start_test_number(req, phone, channel, now).await;
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
            channel,
            locale: body.locale.as_deref(),
            app_hash,
            attested,
        };
        let verification = match &self.verify {
            None => self.start_with_our_code(req, &secrets, &start, now).await?,
            Some(_) => self.start_delegated(req, &start, now).await?,
        };
        crate::telemetry::verification_started(self.channel(false));
        Ok(self.started(&verification, now).await)
    }

    /// The channel a start names (SMS when it names none), if this deployment offers it.
    fn offered(&self, named: Option<&str>) -> Result<CodeChannel, ApiError> {
        let offered = &self.config.codes.channels;
        let channel = match named {
            None => CodeChannel::Sms,
            Some(name) => CodeChannel::parse(name).unwrap_or(CodeChannel::Sms),
        };
        if named.is_some_and(|name| CodeChannel::parse(name).is_none())
            || !offered.contains(&channel)
        {
            let names: Vec<&str> = offered.iter().map(|c| c.as_str()).collect();
            return Err(ApiError::field(
                "channel",
                format!("must be one of the channels offered: {}", names.join(", ")),
            ));
        }
        Ok(channel)
    }

    /// The 202: the verification, and when each offered channel may send again (this one
    /// after its cooldown; the others as their cooldowns say, read in one BatchGetItem).
    async fn started(&self, v: &CodeVerification, now: OffsetDateTime) -> Response<Body> {
        let codes = &self.config.codes;
        let resend_after = v.created_at + codes.resend_cooldown;
        let others: Vec<&'static str> = codes
            .channels
            .iter()
            .filter(|c| **c != v.channel)
            .map(|c| c.as_str())
            .collect();
        let cooling = if others.is_empty() || v.method == CodeMethod::TestNumber {
            Vec::new()
        } else {
            // The code is on its way: a failed read only leaves the others at "now".
            self.guard
                .limits()
                .cooldowns(&v.phone, &others)
                .await
                .unwrap_or_else(|error| {
                    tracing::warn!(%error, "the other channels' cooldowns could not be read");
                    Vec::new()
                })
        };
        let resend_after_by_channel = codes
            .channels
            .iter()
            .map(|c| {
                let at = if *c == v.channel {
                    resend_after
                } else {
                    cooling
                        .iter()
                        .find(|(scope, _)| *scope == c.as_str())
                        .map_or(now, |(_, until)| (*until).max(now))
                };
                (c.as_str(), rfc3339(at))
            })
            .collect();
        let started = Started {
            verification_id: v.id,
            expires_at: rfc3339(v.expires_at),
            resend_after: rfc3339(resend_after),
            channel: v.channel.as_str(),
            channels: codes.channels.iter().map(|c| c.as_str()).collect(),
            resend_after_by_channel,
        };
        json(StatusCode::ACCEPTED, &started)
    }

    fn new_verification(
        &self,
        id: VerificationId,
        (phone, channel): (PhoneNumber, CodeChannel),
        method: CodeMethod,
        network: Option<String>,
        now: OffsetDateTime,
    ) -> CodeVerification {
        CodeVerification {
            id,
            phone,
            method,
            channel,
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
        channel: CodeChannel,
        now: OffsetDateTime,
    ) -> Result<Response<Body>, ApiError> {
        let verification = self.new_verification(
            VerificationId::random(),
            (phone, channel),
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
        Ok(self.started(&verification, now).await)
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
            // Each channel has its own cooldown: "call me instead" needs no waiting.
            scope: start.channel.as_str(),
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

    /// Our code: a CSPRNG's digits, stored as their keyed hash in the guard's transaction,
    /// then sent on the start's channel.
    async fn start_with_our_code(
        &self,
        req: &Request,
        secrets: &Secrets,
        start: &Start<'_>,
        now: OffsetDateTime,
    ) -> Result<CodeVerification, ApiError> {
        let code = random_code(self.config.codes.length);
        let id = VerificationId::random();
        let hash = code_hash(secrets, &start.phone, &id, &code).map_err(ApiError::Internal)?;
        let verification = self.new_verification(
            id,
            (start.phone.clone(), start.channel),
            CodeMethod::Hashed { hash },
            client_network(req),
            now,
        );
        let base_url = public_base_url(req, self.config.public_base_url.as_deref());
        match start.channel {
            CodeChannel::Voice => self.call_code(req, start, verification, code, now).await,
            CodeChannel::Sms | CodeChannel::Whatsapp => {
                let message = self.code_message(start, code)?;
                self.send_code(req, start, verification, message, base_url, now)
                    .await
            }
        }
    }

    /// The message that carries a code: an SMS of the locale's template, or WhatsApp's
    /// approved authentication template with the code as its variable `1`.
    fn code_message(&self, start: &Start<'_>, code: String) -> Result<OutgoingMessage, ApiError> {
        let codes = &self.config.codes;
        let unconfigured = |what: &str| ApiError::Internal(anyhow::anyhow!("no {what} configured"));
        let (from, channel, content) = match start.channel {
            CodeChannel::Whatsapp => {
                let from = codes
                    .whatsapp_from
                    .clone()
                    .ok_or_else(|| unconfigured("WHATSAPP_FROM"))?;
                let sid = codes
                    .whatsapp_content_sid
                    .clone()
                    .ok_or_else(|| unconfigured("WHATSAPP_CONTENT_SID"))?;
                let variables = serde_json::json!({ "1": code }).to_string();
                (
                    Sender::Number(from),
                    MessageChannel::Whatsapp,
                    Content::Template { sid, variables },
                )
            }
            _ => {
                let sender = self
                    .config
                    .default_sms_sender()
                    .ok_or_else(|| unconfigured("SMS sender"))?;
                let text = message_text(
                    codes.templates.for_locale(start.locale),
                    &codes.app_name,
                    &code,
                    codes.otp_domain.as_deref(),
                    start.app_hash,
                );
                (sender, MessageChannel::Sms, Content::Body(text))
            }
        };
        Ok(OutgoingMessage {
            to: start.phone.clone(),
            from,
            channel,
            content,
            status_callback: None,
            one_time_code: Some(code),
        })
    }

    /// A code by message (SMS or WhatsApp): the code and the message's log entry written in
    /// the guard's transaction, then sent like any message. A WhatsApp template counts as one
    /// send; an SMS as its segments.
    async fn send_code(
        &self,
        req: &Request,
        start: &Start<'_>,
        mut verification: CodeVerification,
        mut message: OutgoingMessage,
        base_url: Option<String>,
        now: OffsetDateTime,
    ) -> Result<CodeVerification, ApiError> {
        let units = match &message.content {
            Content::Body(text) => segments(text).count,
            Content::Template { .. } => 1,
        };
        let sender = message.from.label().to_owned();
        let record = MessageRecord::queued(start.phone.clone(), &sender, units, now);
        verification.message_id = Some(record.id);
        let writes = vec![
            self.codes.replace(&verification)?,
            self.messages.new_message(&record)?,
        ];
        let provider = ProviderUse::Message { sender: &sender };
        let taken = self
            .take_allowance(req, start, (units, Some(provider)), now, writes)
            .await?;
        message.status_callback = base_url.map(|base| {
            format!(
                "{base}{}?message_id={}",
                MESSAGE_STATUS_CALLBACK.path, record.id
            )
        });
        let sent = send_logged(
            self.telephony.as_ref(),
            &self.messages,
            self.clock.as_ref(),
            &self.config,
            &record.id,
            &message,
        )
        .await;
        let channel = start.channel.as_str();
        match sent {
            Err(refused) => {
                self.undo(&taken, &verification).await;
                return Err(refused);
            }
            // It may have arrived: the code and its allowance stay, and the log entry waits
            // for the callback.
            Ok(Handed::Unknown) => {
                tracing::warn!(verification_id = %verification.id, message_id = %record.id, channel, "verification code's delivery unknown: kept")
            }
            Ok(Handed::Sent(_)) => {
                tracing::info!(verification_id = %verification.id, message_id = %record.id, channel, "verification code sent")
            }
        }
        Ok(verification)
    }

    /// A code by voice: a call from a pool number that says the code digit by digit, twice,
    /// in the locale's language where a voice template and a Twilio voice exist for it. It
    /// counts as one send and holds a concurrent-call slot like a flash call.
    async fn call_code(
        &self,
        req: &Request,
        start: &Start<'_>,
        verification: CodeVerification,
        code: String,
        now: OffsetDateTime,
    ) -> Result<CodeVerification, ApiError> {
        let Some(pool) = &self.pool else {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "no pool for voice codes"
            )));
        };
        // The caller ID first: a start the pool cannot serve takes nothing.
        let Some(from) = pool.pick(&start.phone).await? else {
            tracing::error!("the pool of source numbers has no active number");
            return Err(ApiError::Unavailable {
                code: ErrorCode::NoPoolNumber,
                detail: "no number is available to place the call; try again later".into(),
                retry_after_secs: super::NO_POOL_RETRY_AFTER_SECS,
                cause: None,
            });
        };
        let codes = &self.config.codes;
        let (template, language) = match codes.voice_templates.matching(start.locale) {
            // The locale's own voice (`es-MX`) where Twilio has one, else its template's
            // language's (`es`: `es-ES`).
            Some((tag, text)) => (
                text,
                start
                    .locale
                    .and_then(say_language)
                    .or_else(|| say_language(tag))
                    .unwrap_or(codes.voice_language.as_str()),
            ),
            None => (
                codes.voice_templates.for_locale(None),
                codes.voice_language.as_str(),
            ),
        };
        let words = template
            .replace("{app}", &codes.app_name)
            .replace("{code}", &spoken_digits(&code));
        let call = OutgoingCall {
            to: start.phone.clone(),
            from,
            twiml: say_twice(&words, language),
            // The code's check settles it; a call's statuses are not kept for a code.
            status_callback: None,
            ring_timeout: self.config.flash_call_ring_timeout.max(VOICE_RING_TIMEOUT),
            one_time_code: Some(code),
        };
        let writes = vec![self.codes.replace(&verification)?];
        let taken = self
            .take_allowance(req, start, (1, Some(ProviderUse::Call)), now, writes)
            .await?;
        match self.telephony.place_call(&call).await {
            Ok(placed) => {
                tracing::info!(verification_id = %verification.id, call_sid = %placed.sid, channel = "voice", "verification code call placed");
            }
            // It may be ringing: the code and its allowance stay.
            Err(error) if error.is_ambiguous() => {
                tracing::warn!(%error, verification_id = %verification.id, channel = "voice", "verification code call's outcome unknown: kept");
            }
            Err(error) => {
                tracing::warn!(%error, verification_id = %verification.id, channel = "voice", "verification code call could not be placed");
                self.undo(&taken, &verification).await;
                return Err(ApiError::Unavailable {
                    code: ErrorCode::TelephonyUnavailable,
                    detail: "the code could not be sent now; try again later".into(),
                    retry_after_secs: match error {
                        TelephonyError::Throttled { .. } => 1,
                        _ => crate::http::OUTAGE_RETRY_AFTER_SECS,
                    },
                    cause: None,
                });
            }
        }
        let country = start.phone.country_code();
        crate::telemetry::sent("voice", country, self.config.is_unusual_country(country));
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
            (start.phone.clone(), start.channel),
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
            .start(
                &start.phone,
                start.channel.verify_name(),
                start.locale,
                start.app_hash,
            )
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
                crate::telemetry::sent(
                    start.channel.as_str(),
                    country,
                    self.config.is_unusual_country(country),
                );
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

/// How long a voice code's call rings at least: long enough for a person to answer it.
const VOICE_RING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The network of the request's client, if it has an address.
fn client_network(req: &Request) -> Option<String> {
    client_ip(req).map(|ip| crate::guard::network_of(&ip))
}
