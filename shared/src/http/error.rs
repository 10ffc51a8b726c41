//! `ApiError`: every way a request can fail, and the one renderer of an error body, used by
//! single responses and batch items alike.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde_json::{Map, Value, json};

use super::ErrorCode;
use crate::secrets::SecretsError;
use crate::session::Refusal;
use crate::store::StoreError;
use crate::store::rate_limits::Exceeded;

/// How long a client should wait after a dependency outage before it tries again.
pub const OUTAGE_RETRY_AFTER_SECS: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("{field} {detail}")]
    InvalidField { field: String, detail: String },
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("the caller ID does not match the call")]
    CallerIdMismatch { attempts_remaining: u32 },
    #[error("the code is not the one sent")]
    CodeMismatch { attempts_remaining: u32 },
    #[error("too many requests ({limit}); retry after {retry_after_secs} s")]
    RateLimited {
        limit: &'static str,
        retry_after_secs: u64,
    },
    /// Attempts used up: the session's, or the phone's failed verifications of the day (then
    /// with the seconds until the day ends).
    #[error("{detail}")]
    AttemptsExhausted {
        detail: String,
        retry_after_secs: Option<u64>,
    },
    /// The provider refused the message (an invalid, unreachable or opted-out recipient): its
    /// log entry is `failed` with the provider's error code.
    #[error(
        "the provider refused the message (error code {provider_error_code:?}); see GET /sms/{message_id}"
    )]
    MessageRejected {
        message_id: String,
        provider_error_code: Option<u32>,
    },
    #[error("{method} is not allowed here; allowed: {}", .allow.join(", "))]
    MethodNotAllowed {
        method: String,
        allow: Vec<&'static str>,
    },
    /// The destination's number block or country is quarantined (its sends do not verify).
    #[error("{detail}")]
    Quarantined {
        detail: String,
        retry_after_secs: u64,
    },
    /// Any other refusal: its code and a sentence for the developer reading it.
    #[error("{detail}")]
    Refused { code: ErrorCode, detail: String },
    /// A dependency (DynamoDB, Secrets Manager, Twilio, the pool) cannot serve now: a 503 with
    /// `Retry-After`. The cause goes to the log, never to the client.
    #[error("{detail}")]
    Unavailable {
        code: ErrorCode,
        detail: String,
        retry_after_secs: u64,
        cause: Option<String>,
    },
    /// Anything unexpected: logged with its whole chain, answered with nothing but a 500.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn field(field: impl Into<String>, detail: impl ToString) -> Self {
        ApiError::InvalidField {
            field: field.into(),
            detail: detail.to_string(),
        }
    }

    /// The answer to a phone at its daily cap of failed verifications (any channel): the same
    /// for a right and a wrong answer, until the day ends.
    pub fn phone_locked(retry_after_secs: u64) -> Self {
        ApiError::AttemptsExhausted {
            detail: "too many failed verifications for this phone today; try again later".into(),
            retry_after_secs: Some(retry_after_secs),
        }
    }

    pub fn refused(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError::Refused {
            code,
            detail: detail.into(),
        }
    }

    /// A dependency outage: `service_unavailable`, with the cause for the log.
    pub fn outage(cause: impl std::fmt::Display) -> Self {
        ApiError::Unavailable {
            code: ErrorCode::ServiceUnavailable,
            detail: "a service this request needs is unavailable; try again shortly".into(),
            retry_after_secs: OUTAGE_RETRY_AFTER_SECS,
            cause: Some(cause.to_string()),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::InvalidJson(_) => ErrorCode::InvalidJson,
            ApiError::InvalidField { .. } => ErrorCode::InvalidField,
            ApiError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            ApiError::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            ApiError::CallerIdMismatch { .. } => ErrorCode::CallerIdMismatch,
            ApiError::CodeMismatch { .. } => ErrorCode::CodeMismatch,
            ApiError::RateLimited { .. } => ErrorCode::RateLimited,
            ApiError::AttemptsExhausted { .. } => ErrorCode::AttemptsExhausted,
            ApiError::MessageRejected { .. } => ErrorCode::MessageRejected,
            ApiError::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            ApiError::Quarantined { .. } => ErrorCode::DestinationQuarantined,
            ApiError::Refused { code, .. } | ApiError::Unavailable { code, .. } => *code,
            ApiError::Internal(_) => ErrorCode::InternalError,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code().status()
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited {
                retry_after_secs, ..
            }
            | ApiError::Unavailable {
                retry_after_secs, ..
            }
            | ApiError::Quarantined {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            ApiError::AttemptsExhausted {
                retry_after_secs, ..
            } => *retry_after_secs,
            _ => None,
        }
    }

    /// The error body: `{error, detail}` and what the code adds (`field`,
    /// `attempts_remaining`, `limit`, `retry_after_seconds`).
    pub fn body(&self) -> Map<String, Value> {
        let mut body = Map::new();
        body.insert("error".into(), json!(self.code().as_str()));
        let detail = match self {
            ApiError::Internal(_) => "an internal error occurred".to_owned(),
            other => other.to_string(),
        };
        body.insert("detail".into(), json!(detail));
        match self {
            ApiError::InvalidField { field, .. } => {
                body.insert("field".into(), json!(field));
            }
            ApiError::CallerIdMismatch { attempts_remaining }
            | ApiError::CodeMismatch { attempts_remaining } => {
                body.insert("attempts_remaining".into(), json!(attempts_remaining));
            }
            ApiError::RateLimited { limit, .. } => {
                body.insert("limit".into(), json!(limit));
            }
            ApiError::MessageRejected {
                message_id,
                provider_error_code,
            } => {
                body.insert("id".into(), json!(message_id));
                body.insert("provider_error_code".into(), json!(provider_error_code));
            }
            _ => {}
        }
        if let Some(secs) = self.retry_after() {
            body.insert("retry_after_seconds".into(), json!(secs));
        }
        body
    }

    /// Writes what the operator needs to the log: the whole chain of an internal error, the
    /// cause of an outage, the code of a refusal.
    pub fn log(&self) {
        match self {
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed");
            }
            ApiError::Unavailable { code, cause, .. } => {
                tracing::warn!(
                    error = code.as_str(),
                    cause = cause.as_deref().unwrap_or("-"),
                    "dependency unavailable"
                );
            }
            other => tracing::info!(error = other.code().as_str(), "request refused"),
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let mut response = super::json(status, &Value::Object(self.body()));
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let ApiError::MethodNotAllowed { allow, .. } = &self
            && let Ok(value) = HeaderValue::from_str(&allow.join(", "))
        {
            headers.insert(header::ALLOW, value);
        }
        if status == StatusCode::UNAUTHORIZED
            && matches!(self, ApiError::Refused { .. })
            && self.code() != ErrorCode::AttestationRequired
        {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            ApiError::outage(e)
        } else {
            ApiError::Internal(e.into())
        }
    }
}

impl From<SecretsError> for ApiError {
    fn from(e: SecretsError) -> Self {
        match e {
            SecretsError::Unavailable { .. } => ApiError::outage(e),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<Exceeded> for ApiError {
    fn from(e: Exceeded) -> Self {
        ApiError::RateLimited {
            limit: e.limit.as_str(),
            retry_after_secs: e.retry_after_secs,
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        let (code, detail) = match r {
            Refusal::NotFound => (
                ErrorCode::SessionNotFound,
                "no verification session matches this phone number",
            ),
            Refusal::AlreadyVerified => (
                ErrorCode::AlreadyVerified,
                "the verification session is already verified",
            ),
            Refusal::CallFailed => (
                ErrorCode::SessionFailed,
                "the verification call of this session could not be placed; request a new one",
            ),
            Refusal::Expired => (
                ErrorCode::SessionExpired,
                "the verification session has expired; request a new call",
            ),
            Refusal::AttemptsExhausted => {
                return ApiError::AttemptsExhausted {
                    detail: "too many wrong attempts for this session; request a new call".into(),
                    retry_after_secs: None,
                };
            }
        };
        ApiError::refused(code, detail)
    }
}
