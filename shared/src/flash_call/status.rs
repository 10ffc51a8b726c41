//! `GET /auth/status/{session_id}`: where a session stands, without its phone or caller ID.

use std::sync::Arc;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use crate::clock::{Clock, rfc3339};
use crate::config::Config;
use crate::http::{ApiError, Endpoint, Route, json, path_param};
use crate::init::Init;
use crate::session::{Refusal, SessionId, SessionState};
use crate::store::Sessions;

pub struct StatusEndpoint {
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    sessions: Sessions,
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
}

impl Endpoint for StatusEndpoint {
    const NAME: &'static str = "status";
    const ROUTES: &'static [Route] = &[Route::get("/auth/status/{session_id}")];

    /// Needs neither the secret nor the gateway: its IAM role cannot read the secret.
    async fn init(init: &Init) -> anyhow::Result<Self> {
        Ok(StatusEndpoint {
            config: init.config.clone(),
            clock: init.clock.clone(),
            sessions: init.store().sessions(),
        })
    }

    async fn handle(
        &self,
        _route: &'static Route,
        req: Request,
    ) -> Result<Response<Body>, ApiError> {
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
        };
        Ok(json(StatusCode::OK, &status))
    }
}
