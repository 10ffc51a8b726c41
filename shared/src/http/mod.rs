//! HTTP plumbing every function shares: error codes and the error → response mapping, JSON
//! bodies, request context, routes, and the endpoint skeleton that runs a handler inside a
//! request span.

mod body;
mod codes;
mod context;
mod endpoint;
mod error;
mod idempotency;
mod response;
mod route;

pub use body::{MAX_BODY_BYTES, from_value, json_body, json_value, media_type, not_null};
pub use codes::ErrorCode;
pub use context::{bearer_token, client_ip, path_param, public_base_url, query_param, request_id};
pub use endpoint::{Endpoint, Served, serve};
pub use error::{ApiError, OUTAGE_RETRY_AFTER_SECS};
pub use idempotency::{IDEMPOTENT_REPLAYED, idempotency_key, replayed};
pub use response::{json, twiml};
pub use route::{Method, Route, match_path};
