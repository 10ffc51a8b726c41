//! The local API: every route of `template.yaml` on one port. Each HTTP request is turned into
//! the API Gateway (HTTP API, payload 2.0) event Lambda would receive, decoded by `lambda_http`
//! exactly as in Lambda, and served by the same endpoint code.

pub mod app_check;
pub mod bootstrap;
pub mod deployed;
mod event;
mod head_guard;
mod loopback;
mod routes;
pub mod runtime_api;
mod server;
pub mod traffic;

pub use event::{GatewayEvent, gateway_request};
pub use routes::{GATEWAY_MAX_REQUEST_LINE, LocalApi};
pub use server::serve;
