//! Flash-call verification: `POST /auth/request`, `POST /auth/verify`,
//! `GET /auth/status/{session_id}`.

mod request;
mod status;
mod verify;

pub use request::RequestEndpoint;
pub use status::StatusEndpoint;
pub use verify::VerifyEndpoint;
