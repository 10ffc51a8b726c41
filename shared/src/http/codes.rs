//! `ErrorCode`: every `error` code of the API (docs/api.md and openapi.yaml) with its HTTP status.
//! A code is named once here; handlers pick one, they never spell it.

use lambda_http::http::StatusCode;

macro_rules! error_codes {
    ($($variant:ident = $text:literal => $status:ident,)*) => {
        /// The stable, machine-readable `error` of an error body.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order of the contract.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                }
            }

            pub const fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)*
                }
            }
        }
    };
}

error_codes! {
    InvalidJson = "invalid_json" => BAD_REQUEST,
    InvalidField = "invalid_field" => BAD_REQUEST,
    InvalidBatch = "invalid_batch" => BAD_REQUEST,
    InvalidForm = "invalid_form" => BAD_REQUEST,
    CallerIdMismatch = "caller_id_mismatch" => BAD_REQUEST,
    CodeMismatch = "code_mismatch" => BAD_REQUEST,
    MissingCredentials = "missing_credentials" => UNAUTHORIZED,
    InvalidCredentials = "invalid_credentials" => UNAUTHORIZED,
    TokenExpired = "token_expired" => UNAUTHORIZED,
    SessionExpired = "session_expired" => UNAUTHORIZED,
    CodeExpired = "code_expired" => UNAUTHORIZED,
    AttestationRequired = "attestation_required" => UNAUTHORIZED,
    AppSignatureRejected = "app_signature_rejected" => FORBIDDEN,
    CountryNotAllowed = "country_not_allowed" => FORBIDDEN,
    NumberTypeNotAllowed = "number_type_not_allowed" => FORBIDDEN,
    FraudBlocked = "fraud_blocked" => FORBIDDEN,
    AttestationRejected = "attestation_rejected" => FORBIDDEN,
    DestinationQuarantined = "destination_quarantined" => FORBIDDEN,
    ServiceKeyRequired = "service_key_required" => FORBIDDEN,
    NotYourNumber = "not_your_number" => FORBIDDEN,
    InvalidSignature = "invalid_signature" => FORBIDDEN,
    SessionNotFound = "session_not_found" => NOT_FOUND,
    MessageNotFound = "message_not_found" => NOT_FOUND,
    VerificationNotFound = "verification_not_found" => NOT_FOUND,
    RouteNotFound = "route_not_found" => NOT_FOUND,
    MethodNotAllowed = "method_not_allowed" => METHOD_NOT_ALLOWED,
    AlreadyVerified = "already_verified" => CONFLICT,
    VerificationPending = "verification_pending" => CONFLICT,
    SessionFailed = "session_failed" => CONFLICT,
    EventIdConflict = "event_id_conflict" => CONFLICT,
    CallNumbersConflict = "call_numbers_conflict" => CONFLICT,
    IdempotencyKeyInProgress = "idempotency_key_in_progress" => CONFLICT,
    PayloadTooLarge = "payload_too_large" => PAYLOAD_TOO_LARGE,
    UriTooLong = "uri_too_long" => URI_TOO_LONG,
    UnsupportedMediaType = "unsupported_media_type" => UNSUPPORTED_MEDIA_TYPE,
    IdempotencyKeyReused = "idempotency_key_reused" => UNPROCESSABLE_ENTITY,
    MessageRejected = "message_rejected" => UNPROCESSABLE_ENTITY,
    AttemptsExhausted = "attempts_exhausted" => TOO_MANY_REQUESTS,
    RateLimited = "rate_limited" => TOO_MANY_REQUESTS,
    InternalError = "internal_error" => INTERNAL_SERVER_ERROR,
    NoPoolNumber = "no_pool_number" => SERVICE_UNAVAILABLE,
    TelephonyUnavailable = "telephony_unavailable" => SERVICE_UNAVAILABLE,
    ServiceUnavailable = "service_unavailable" => SERVICE_UNAVAILABLE,
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn codes_are_unique_snake_case_and_every_status_is_an_error() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert!(
                code.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
    }
}
