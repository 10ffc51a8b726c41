//! HTTP plumbing every function shares: the error → response mapping, JSON bodies, request
//! context, and the endpoint skeleton that runs a handler inside a request span.

mod body;
mod context;
mod endpoint;
mod error;
mod response;

pub use body::{MAX_BODY_BYTES, from_value, json_body, json_value};
pub use context::{bearer_token, client_ip, path_param, public_base_url, query_param, request_id};
pub use endpoint::{Endpoint, serve};
pub use error::ApiError;
pub use response::json;
