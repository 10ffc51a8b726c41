//! `sms-verify`: `POST /sms/verify/start` sends a one-time code by SMS through the guard;
//! `POST /sms/verify/check` checks it and issues the same access token as a flash call. The
//! codes are ours (kept as a keyed hash) or, with `VERIFY_SERVICE_SID`, Twilio Verify's; test
//! numbers for app-store reviewers are answered before either.

mod check;
mod start;

use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use secrecy::ExposeSecret;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::config::Config;
use crate::guard::Guard;
use crate::http::{ApiError, Endpoint, ErrorCode, OUTAGE_RETRY_AFTER_SECS, Route};
use crate::init::Init;
use crate::phone::PhoneNumber;
use crate::pool::SourcePool;
use crate::secrets::{SecretPart, Secrets, SecretsCache};
use crate::session::Refusal;
use crate::sms::code::CodeChannel;
use crate::store::{Codes, Messages};
use crate::telemetry::Channel;
use crate::telephony::{TelephonyError, TelephonyGateway, TwilioVerify};

pub const START: Route = Route::post("/sms/verify/start");
pub const CHECK: Route = Route::post("/sms/verify/check");

pub struct SmsVerifyEndpoint {
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    secrets: Arc<SecretsCache>,
    guard: Guard,
    codes: Codes,
    messages: Messages,
    telephony: Arc<dyn TelephonyGateway>,
    /// Twilio Verify, when `VERIFY_SERVICE_SID` delegates the codes to it.
    verify: Option<TwilioVerify>,
    /// The caller IDs of voice codes, when this deployment sends them itself.
    pool: Option<SourcePool>,
}

/// How long a client waits when the pool has no active number (an operator must act).
const NO_POOL_RETRY_AFTER_SECS: u64 = 60;

impl Endpoint for SmsVerifyEndpoint {
    const NAME: &'static str = "sms-verify";
    const ROUTES: &'static [Route] = &[START, CHECK];
    const SECRETS: &'static [SecretPart] = &[
        SecretPart::Twilio,
        SecretPart::TokenKey,
        SecretPart::HashingKey,
        SecretPart::Clients,
    ];

    async fn init(init: &Init) -> anyhow::Result<Self> {
        let config = init.config.clone();
        let secrets = init.secrets();
        let guard = Guard::new(init);
        // Delegated, Twilio Verify makes and checks the codes: no hashing key is read.
        let delegated = config.codes.verify_service_sid.is_some();
        let parts: Vec<SecretPart> = Self::SECRETS
            .iter()
            .copied()
            .filter(|part| !(delegated && *part == SecretPart::HashingKey))
            .collect();
        let store = init.store();
        let offers = |channel| config.codes.channels.contains(&channel);
        let pool = (!delegated && offers(CodeChannel::Voice))
            .then(|| SourcePool::new(store.pool(), config.pool_cache_ttl));
        let (warmed, (), (), ()) = tokio::join!(
            secrets.require(&parts, Self::NAME),
            crate::phone::warm_up(),
            guard.warm(),
            async {
                if let Some(pool) = &pool {
                    pool.prefetch().await;
                }
            }
        );
        warmed?;
        let verify = match &config.codes.verify_service_sid {
            Some(sid) => Some(TwilioVerify::new(&config, secrets.clone(), sid)?),
            None => {
                if offers(CodeChannel::Sms) && config.default_sms_sender().is_none() {
                    anyhow::bail!(
                        "sms-verify has no sender: set SMS_FROM_NUMBERS (E.164 numbers) or \
                         SMS_MESSAGING_SERVICE_SID, or VERIFY_SERVICE_SID to delegate to \
                         Twilio Verify"
                    );
                }
                if offers(CodeChannel::Whatsapp)
                    && (config.codes.whatsapp_from.is_none()
                        || config.codes.whatsapp_content_sid.is_none())
                {
                    anyhow::bail!(
                        "CODE_CHANNELS offers whatsapp: set WHATSAPP_FROM (E.164) and \
                         WHATSAPP_CONTENT_SID (an approved template's HX... SID), or \
                         VERIFY_SERVICE_SID to delegate to Twilio Verify"
                    );
                }
                None
            }
        };
        crate::guard::require_signatures_configured(&config, &secrets)?;
        Ok(SmsVerifyEndpoint {
            telephony: init.telephony().await?,
            clock: init.clock.clone(),
            guard,
            codes: store.codes(),
            messages: store.messages(),
            secrets,
            verify,
            pool,
            config,
        })
    }

    async fn handle(
        &self,
        route: &'static Route,
        req: Request,
    ) -> Result<Response<Body>, ApiError> {
        if *route == CHECK {
            self.check(&req).await
        } else {
            self.start(&req).await
        }
    }
}

impl SmsVerifyEndpoint {
    /// The channel a verification counts under in the metrics: a test number's, or this
    /// deployment's (our codes, or Twilio Verify's).
    fn channel(&self, test_number: bool) -> Channel {
        match (test_number, &self.verify) {
            (true, _) => Channel::TestNumber,
            (false, Some(_)) => Channel::Delegated,
            (false, None) => Channel::SmsCode,
        }
    }
}

/// The phone a request names: a test number of the secret, still valid at `now`, as it is
/// (it need not be a valid number: it is never texted), or else a valid number.
#[derive(Debug)]
enum Subject {
    /// A test number, with the length of its fixed code.
    TestNumber(PhoneNumber, usize),
    Phone(PhoneNumber),
}

impl Subject {
    fn resolve(
        config: &Config,
        secrets: &Secrets,
        typed: &str,
        now: OffsetDateTime,
    ) -> Result<Self, ApiError> {
        if let Some((e164, test)) = crate::guard::test_number(config, secrets, typed, now)
            && let Ok(phone) = PhoneNumber::test_number(e164)
        {
            return Ok(Subject::TestNumber(phone, test.code.expose_secret().len()));
        }
        PhoneNumber::parse(typed)
            .map(Subject::Phone)
            .map_err(|e| ApiError::field("phone_number", e))
    }

    fn phone(&self) -> &PhoneNumber {
        match self {
            Subject::TestNumber(phone, _) | Subject::Phone(phone) => phone,
        }
    }
}

/// The answer to a check the verification refuses.
fn refusal(r: Refusal) -> ApiError {
    match r {
        Refusal::AlreadyVerified => {
            ApiError::refused(ErrorCode::AlreadyVerified, "this code was already used")
        }
        Refusal::Expired => ApiError::refused(
            ErrorCode::CodeExpired,
            "the code has expired; request a new one",
        ),
        Refusal::AttemptsExhausted => ApiError::AttemptsExhausted {
            detail: "too many checks of this code; request a new one".into(),
            retry_after_secs: None,
        },
        Refusal::NotFound | Refusal::CallFailed => ApiError::refused(
            ErrorCode::VerificationNotFound,
            "no open verification matches this phone number; start one",
        ),
    }
}

fn telephony_unavailable(retry_after_secs: u64) -> ApiError {
    ApiError::Unavailable {
        code: ErrorCode::TelephonyUnavailable,
        detail: "the code could not be sent or checked now; try again later".into(),
        retry_after_secs,
        cause: None,
    }
}

/// Twilio Verify's refusals, as our contract says them; Verify's own words are never passed
/// on. `field` is the request field a 60200 (invalid parameter) is about. Verify answers some
/// of these with HTTP 429, so the error code decides, whatever the status.
fn verify_error(error: &TelephonyError, field: &str) -> ApiError {
    match error.provider_code() {
        Some(60200) => ApiError::field(field, "was refused as invalid"),
        Some(60202) => ApiError::AttemptsExhausted {
            detail: "too many checks of this code; request a new one".into(),
            retry_after_secs: None,
        },
        Some(60203) => ApiError::RateLimited {
            limit: "provider_sends",
            // Verify's window of sends to one number is ten minutes.
            retry_after_secs: 600,
        },
        Some(60410) => ApiError::refused(
            ErrorCode::FraudBlocked,
            "this phone number is blocked for suspected fraud",
        ),
        Some(60605) => ApiError::refused(
            ErrorCode::CountryNotAllowed,
            "phone numbers of this country are not served here",
        ),
        _ => match error {
            TelephonyError::Throttled { .. } => telephony_unavailable(1),
            // Our credentials, our service SID, Verify down or silent: nothing the caller
            // can fix.
            _ => telephony_unavailable(OUTAGE_RETRY_AFTER_SECS),
        },
    }
}

/// `locale` as a BCP 47 tag of a language and optional subtags (`en`, `pt-BR`).
fn check_locale(locale: Option<&str>) -> Result<(), ApiError> {
    let Some(locale) = locale else {
        return Ok(());
    };
    let mut parts = locale.split('-');
    let language_ok = parts
        .next()
        .is_some_and(|l| (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphabetic()));
    let rest_ok =
        parts.all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    if language_ok && rest_ok && locale.len() <= 35 {
        Ok(())
    } else {
        Err(ApiError::field(
            "locale",
            "must be a language tag such as en or pt-BR",
        ))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    phone_number: String,
    app_signature: Option<String>,
    locale: Option<String>,
    /// `sms` (the default), `voice` or `whatsapp`.
    #[serde(default, deserialize_with = "crate::http::not_null")]
    channel: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    phone_number: String,
    code: String,
    verification_id: Option<crate::sms::code::VerificationId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_are_language_tags() {
        for good in ["en", "pt-BR", "zh-Hant-TW", "es-419"] {
            assert!(check_locale(Some(good)).is_ok(), "{good}");
        }
        for bad in [
            "",
            "e",
            "english-language-tag-x",
            "en_US",
            "en-",
            "<script>",
        ] {
            assert!(check_locale(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn verify_refusals_map_to_our_codes_and_outages_to_503() {
        let rejected = |code| TelephonyError::Rejected {
            status: 400,
            code: Some(code),
        };
        let code = |e: ApiError| (e.status().as_u16(), e.code().as_str());
        assert_eq!(
            code(verify_error(&rejected(60200), "code")),
            (400, "invalid_field")
        );
        assert_eq!(
            code(verify_error(&rejected(60202), "code")),
            (429, "attempts_exhausted")
        );
        assert_eq!(
            code(verify_error(&rejected(60203), "code")),
            (429, "rate_limited")
        );
        assert_eq!(
            code(verify_error(&rejected(60410), "code")),
            (403, "fraud_blocked")
        );
        assert_eq!(
            code(verify_error(&rejected(60605), "code")),
            (403, "country_not_allowed")
        );
        assert_eq!(
            code(verify_error(&rejected(20003), "code")),
            (503, "telephony_unavailable")
        );
        let throttled = TelephonyError::Throttled { code: Some(60203) };
        assert_eq!(
            code(verify_error(&throttled, "code")),
            (429, "rate_limited")
        );
        let down = TelephonyError::Unavailable("x".into());
        assert_eq!(
            code(verify_error(&down, "code")),
            (503, "telephony_unavailable")
        );
    }
}
