//! The guard's checks before anything is counted: the app signature (a filter, not a proof:
//! it is public), the destination's country and number type, and whether a test number is
//! honoured.

use crate::config::Config;
use crate::http::{ApiError, ErrorCode};
use crate::phone::PhoneNumber;
use crate::secrets::{SecretPart, Secrets, SecretsCache, TestNumber};

/// How far ahead a test number's `valid_until` may be: one left on is not left on forever.
pub const TEST_NUMBER_MAX_DAYS: i64 = 90;

/// The longest app signature looked at; Android's SMS Retriever hashes are 11 characters.
const MAX_SIGNATURE_LEN: usize = 256;

/// Fails a cold start that requires app signatures the (loaded) secret does not hold: every
/// request would be refused, and the deploy should say why.
pub fn require_signatures_configured(
    config: &Config,
    secrets: &SecretsCache,
) -> anyhow::Result<()> {
    if config.require_app_signature
        && secrets
            .loaded()
            .is_some_and(|s| s.app_signatures.is_empty())
    {
        anyhow::bail!(
            "REQUIRE_APP_SIGNATURE is true but secret {} has no app_signatures",
            secrets.id_of(SecretPart::Clients)
        );
    }
    Ok(())
}

/// Refuses a request without an allowed app signature when `REQUIRE_APP_SIGNATURE` is on.
/// Returns whether the request carries an allowed signature (whatever the setting).
pub fn check_app_signature(
    config: &Config,
    secrets: &Secrets,
    signature: Option<&str>,
) -> Result<bool, ApiError> {
    // Over-long is malformed whatever the setting (the contract's maxLength).
    if signature.is_some_and(|s| s.chars().count() > MAX_SIGNATURE_LEN) {
        return Err(ApiError::field(
            "app_signature",
            format!("must be at most {MAX_SIGNATURE_LEN} characters"),
        ));
    }
    let allowed = signature.is_some_and(|s| secrets.allows_app_signature(s));
    if !config.require_app_signature || allowed {
        return Ok(allowed);
    }
    if signature.is_none() {
        return Err(ApiError::field("app_signature", "is required"));
    }
    Err(ApiError::refused(
        ErrorCode::AppSignatureRejected,
        "the app signature is not allowed",
    ))
}

/// Refuses a destination outside `ALLOWED_COUNTRY_CODES` or of a number type outside
/// `ALLOWED_NUMBER_TYPES` (premium rate, shared cost, ...: what toll fraud dials).
pub fn check_destination(config: &Config, phone: &PhoneNumber) -> Result<(), ApiError> {
    let allowed = &config.allowed_country_codes;
    if !allowed.is_empty() && !allowed.contains(&phone.country_code()) {
        return Err(ApiError::refused(
            ErrorCode::CountryNotAllowed,
            format!(
                "phone numbers with country calling code +{} are not served here",
                phone.country_code()
            ),
        ));
    }
    let number_type = phone.number_type();
    if !config.allowed_number_types.contains(&number_type) {
        return Err(ApiError::refused(
            ErrorCode::NumberTypeNotAllowed,
            format!(
                "{} numbers are not served here (only a phone can receive the call or the message)",
                number_type.as_str()
            ),
        ));
    }
    Ok(())
}

/// The test number `typed` names, if test numbers are allowed here (`ALLOW_TEST_NUMBERS`) and
/// its validity ends within [`TEST_NUMBER_MAX_DAYS`] of `now`. A number outside either is an
/// ordinary number.
pub fn test_number<'a>(
    config: &Config,
    secrets: &'a Secrets,
    typed: &str,
    now: time::OffsetDateTime,
) -> Option<(&'a str, &'a TestNumber)> {
    if !config.allow_test_numbers {
        return None;
    }
    let (e164, test) = secrets.test_number(typed, now)?;
    if test.valid_until - now > time::Duration::days(TEST_NUMBER_MAX_DAYS) {
        tracing::warn!(
            "a test number's valid_until is more than {TEST_NUMBER_MAX_DAYS} days ahead: ignored"
        );
        return None;
    }
    Some((e164, test))
}
