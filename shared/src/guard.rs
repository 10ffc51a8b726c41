//! The abuse guard's checks on a destination, before anything is counted: its country and
//! its number type. The counted limits are `store::rate_limits`.

use crate::config::Config;
use crate::http::{ApiError, ErrorCode};
use crate::phone::PhoneNumber;

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
