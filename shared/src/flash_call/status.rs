//! `GET /auth/status/{session_id}`: where a session stands, without its phone or caller ID.
//! `GET /health`: whether the service can verify (DynamoDB answers, the pool has an active
//! number), for load balancers and uptime checks.

use std::sync::Arc;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use crate::clock::{Clock, rfc3339};
use crate::config::Config;
use crate::http::{ApiError, Endpoint, ErrorCode, Route, json, path_param};
use crate::init::Init;
use crate::secrets::SecretPart;
use crate::session::{Refusal, SessionId, SessionState};
use crate::store::{Pool, Sessions};

pub const SESSION_STATUS: Route = Route::get("/auth/status/{session_id}");
pub const HEALTH: Route = Route::get("/health");

/// How long a health checker waits after a 503 before it asks again.
const HEALTH_RETRY_AFTER_SECS: u64 = 10;

pub struct StatusEndpoint {
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    sessions: Sessions,
    pool: Pool,
}

#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
}

#[derive(Debug, Serialize)]
struct Status {
    session_id: SessionId,
    is_verified: bool,
    is_expired: bool,
    is_valid: bool,
    time_remaining_seconds: i64,
    attempt_count: u32,
    attempts_remaining: u32,
    created_at: String,
    expires_at: String,
    call_status: &'static str,
    /// `outbound` (a flash call) or `inbound` (the phone calls `call_to`).
    direction: &'static str,
}

impl Endpoint for StatusEndpoint {
    const NAME: &'static str = "status";
    const ROUTES: &'static [Route] = &[SESSION_STATUS, HEALTH];
    const SECRETS: &'static [SecretPart] = &[];

    /// Needs neither the secret nor the gateway: its IAM role cannot read the secret.
    async fn init(init: &Init) -> anyhow::Result<Self> {
        Ok(StatusEndpoint {
            config: init.config.clone(),
            clock: init.clock.clone(),
            sessions: init.store().sessions(),
            pool: init.store().pool(),
        })
    }

    async fn handle(
        &self,
        route: &'static Route,
        req: Request,
    ) -> Result<Response<Body>, ApiError> {
        if *route == HEALTH {
            return self.health().await;
        }
        let id = SessionId::parse(&path_param(&req, "session_id")?)
            .map_err(|e| ApiError::field("session_id", e))?;
        let session = self
            .sessions
            .get_session(&id)
            .await?
            .ok_or(ApiError::from(Refusal::NotFound))?;
        let now = self.clock.now();
        let max = self.config.max_verification_attempts;
        let remaining = (session.expires_at - now).whole_seconds().max(0);
        let status = Status {
            session_id: session.id,
            is_verified: session.state == SessionState::Verified,
            is_expired: session.is_expired(now),
            is_valid: session.is_open(now, max),
            time_remaining_seconds: if session.state == SessionState::Pending {
                remaining
            } else {
                0
            },
            attempt_count: session.attempts,
            attempts_remaining: session.attempts_remaining(max),
            created_at: rfc3339(session.created_at),
            expires_at: rfc3339(session.expires_at),
            call_status: session.call_status.as_str(),
            direction: session.direction.as_str(),
        };
        Ok(json(StatusCode::OK, &status))
    }
}

impl StatusEndpoint {
    /// 200 when DynamoDB answers and the pool has an active number; otherwise a 503 that says
    /// no more than that (the cause is logged): one Query of the pool, never cached.
    async fn health(&self) -> Result<Response<Body>, ApiError> {
        let entries = self.pool.entries().await?;
        if !entries.iter().any(|e| e.active) {
            return Err(ApiError::Unavailable {
                code: ErrorCode::ServiceUnavailable,
                detail: "a service this request needs is unavailable; try again shortly".into(),
                retry_after_secs: HEALTH_RETRY_AFTER_SECS,
                cause: Some("the pool has no active number".into()),
            });
        }
        Ok(json(StatusCode::OK, &Health { status: "ok" }))
    }
}
