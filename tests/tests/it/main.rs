//! The integration tests: one binary, against the local stack (`infra/test.sh`).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod abuse;
mod ambiguous;
mod bad_input;
mod calls;
mod channels;
mod concurrency;
mod deployed;
mod docs;
mod erasure;
mod events;
mod faults;
mod fixtures;
mod flash_flow;
mod guard;
mod inbound;
mod messages;
mod metrics;
mod outages;
mod phone_parity;
mod provider_rate;
mod rate_limits;
mod secrets;
mod signatures;
mod sms_send;
mod sms_verify;
mod sms_verify_delegated;
mod template;
mod twilio;
mod webhook;
mod webhook_messages;
