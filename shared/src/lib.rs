//! The domain crate of the phone-verification backend: value types, the DynamoDB store, the
//! telephony gateway, secrets, configuration, HTTP plumbing, and the endpoints themselves.
//! Each function's `main.rs` only names its endpoint; the local API serves them all.

pub mod auth;
pub mod aws;
pub mod backoff;
pub mod call;
pub mod calls;
pub mod clock;
pub mod config;
pub mod endpoints;
pub mod events;
pub mod flash_call;
pub mod guard;
pub mod http;
mod id;
pub mod init;
pub mod phone;
pub mod pool;
pub mod runtime;
pub mod secrets;
pub mod session;
pub mod sms;
pub mod store;
pub mod telemetry;
pub mod telephony;
pub mod tls;
pub mod token;
pub mod twilio_signature;
pub mod webhook;

pub use init::Init;
