//! `ApiError`: every way a request can fail, and the one mapping to a status and JSON body.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde_json::{Map, Value, json};

use crate::session::Refusal;
use crate::store::StoreError;
use crate::store::rate_limits::Exceeded;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("{field} {detail}")]
    InvalidField { field: String, detail: String },
    #[error("{0}")]
    InvalidBatch(String),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("the caller ID does not match the call")]
    CallerIdMismatch { attempts_remaining: u32 },
    #[error("{detail}")]
    Unauthorized { code: &'static str, detail: String },
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    #[error("{detail}")]
    NotFound { code: &'static str, detail: String },
    #[error("the verification session has expired; request a new call")]
    SessionExpired,
    #[error("the verification session is already verified")]
    AlreadyVerified,
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("too many wrong attempts for this session; request a new call")]
    AttemptsExhausted,
    #[error("too many requests ({limit}); retry after {retry_after_secs} s")]
    RateLimited {
        limit: &'static str,
        retry_after_secs: u64,
    },
    #[error("{detail}")]
    Unavailable {
        code: &'static str,
        detail: String,
        retry_after_secs: Option<u64>,
    },
    #[error("no route for {method} {path}")]
    RouteNotFound { method: String, path: String },
    #[error("{method} is not allowed here")]
    MethodNotAllowed { method: String },
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

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_)
            | ApiError::InvalidBatch(_)
            | ApiError::InvalidField { .. }
            | ApiError::CallerIdMismatch { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } | ApiError::SessionExpired => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } | ApiError::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::AlreadyVerified | ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::AttemptsExhausted | ApiError::RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, machine-readable `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidField { .. } => "invalid_field",
            ApiError::InvalidBatch(_) => "invalid_batch",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::CallerIdMismatch { .. } => "caller_id_mismatch",
            ApiError::Unauthorized { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::NotFound { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unavailable { code, .. } => code,
            ApiError::SessionExpired => "session_expired",
            ApiError::AlreadyVerified => "already_verified",
            ApiError::AttemptsExhausted => "attempts_exhausted",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::RouteNotFound { .. } => "route_not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Internal(_) => "internal_error",
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            ApiError::Unavailable {
                retry_after_secs, ..
            } => *retry_after_secs,
            _ => None,
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let mut body = Map::new();
        body.insert("error".into(), json!(self.code()));
        let detail = match &self {
            ApiError::Internal(_) => "an internal error occurred".to_owned(),
            other => other.to_string(),
        };
        body.insert("detail".into(), json!(detail));
        match &self {
            ApiError::InvalidField { field, .. } => {
                body.insert("field".into(), json!(field));
            }
            ApiError::CallerIdMismatch { attempts_remaining } => {
                body.insert("attempts_remaining".into(), json!(attempts_remaining));
            }
            ApiError::RateLimited { limit, .. } => {
                body.insert("limit".into(), json!(limit));
            }
            _ => {}
        }
        if let Some(secs) = self.retry_after() {
            body.insert("retry_after_seconds".into(), json!(secs));
        }
        let mut response = super::json(status, &Value::Object(body));
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED && matches!(self, ApiError::Unauthorized { .. }) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.into())
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
        match r {
            Refusal::NotFound => ApiError::NotFound {
                code: "session_not_found",
                detail: "no verification session matches this phone number".into(),
            },
            Refusal::AlreadyVerified => ApiError::AlreadyVerified,
            Refusal::CallFailed => ApiError::Conflict {
                code: "session_failed",
                detail:
                    "the verification call of this session could not be placed; request a new one"
                        .into(),
            },
            Refusal::Expired => ApiError::SessionExpired,
            Refusal::AttemptsExhausted => ApiError::AttemptsExhausted,
        }
    }
}
