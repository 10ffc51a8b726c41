//! The integration tests: one binary, against the local stack (`infra/test.sh`).

mod bad_input;
mod concurrency;
mod fixtures;
mod flash_flow;
mod rate_limits;
mod template;
mod twilio;
