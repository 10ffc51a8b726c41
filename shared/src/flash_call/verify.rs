//! `POST /auth/verify`: checks the caller ID the app read and issues an access token.

use std::sync::Arc;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::clock::{Clock, rfc3339};
use crate::config::Config;
use crate::http::{ApiError, Endpoint, Route, json, json_body};
use crate::init::Init;
use crate::phone::PhoneNumber;
use crate::secrets::SecretsCache;
use crate::session::{Refusal, Session, SessionId};
use crate::store::Sessions;
use crate::store::sessions::Attempt;
use crate::token::{self, TOKEN_TYPE};

pub struct VerifyEndpoint {
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    sessions: Sessions,
    secrets: Arc<SecretsCache>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    phone_number: PhoneNumber,
    received_caller_id: String,
    session_id: Option<SessionId>,
}

#[derive(Debug, Serialize)]
struct Verified {
    verified: bool,
    phone_number: PhoneNumber,
    session_id: SessionId,
    verified_at: String,
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

/// How many of a phone's newest sessions are looked at when no session id is given.
const RECENT_SESSIONS: i32 = 5;

impl Endpoint for VerifyEndpoint {
    const NAME: &'static str = "verify";
    const ROUTES: &'static [Route] = &[Route::post("/auth/verify")];

    async fn init(init: &Init) -> anyhow::Result<Self> {
        let secrets = init.secrets();
        secrets.warm().await?;
        Ok(VerifyEndpoint {
            secrets,
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
        let body: VerifyBody = json_body(&req)?;
        let received = PhoneNumber::parse_caller_id(&body.received_caller_id, &body.phone_number)
            .map_err(|e| ApiError::field("received_caller_id", e))?;
        let now = self.clock.now();
        let max = self.config.max_verification_attempts;
        let session = self
            .find_session(&body.phone_number, body.session_id, now)
            .await?;
        if let Some(refusal) = session.refusal(now, max) {
            return Err(refusal.into());
        }

        // Both sides are E.164 strings; the comparison's time does not depend on where they
        // first differ.
        let matches: bool = session
            .caller_id
            .as_str()
            .as_bytes()
            .ct_eq(received.as_str().as_bytes())
            .into();
        // The token's key is read before the attempt is counted: a session must never turn
        // verified while its token cannot be issued (Secrets Manager down is a 503 that changes
        // nothing).
        let secrets = self.secrets.get().await?;
        let attempt = if matches {
            Attempt::Match
        } else {
            Attempt::Mismatch
        };
        let updated = self
            .sessions
            .record_attempt(&session.id, attempt, now, max)
            .await??;
        if !matches {
            tracing::info!(session_id = %session.id, attempts = updated.attempts, "caller ID mismatch");
            return Err(ApiError::CallerIdMismatch {
                attempts_remaining: updated.attempts_remaining(max),
            });
        }

        let issued = token::issue(
            &secrets,
            &self.config,
            &updated.phone,
            &updated.id.to_string(),
            "flash_call",
            now,
        )?;
        tracing::info!(session_id = %updated.id, phone = %updated.phone.masked(), "phone verified");
        let verified = Verified {
            verified: true,
            phone_number: updated.phone,
            session_id: updated.id,
            verified_at: rfc3339(updated.verified_at.unwrap_or(now)),
            access_token: issued.token,
            token_type: TOKEN_TYPE,
            expires_in: issued.expires_in,
        };
        Ok(json(StatusCode::OK, &verified))
    }
}

impl VerifyEndpoint {
    /// The named session, which must belong to the phone (otherwise it is "not found", so that
    /// session ids cannot be probed with other numbers), or else the phone's newest open
    /// session; with none open, the newest session says why.
    async fn find_session(
        &self,
        phone: &PhoneNumber,
        id: Option<SessionId>,
        now: time::OffsetDateTime,
    ) -> Result<Session, ApiError> {
        if let Some(id) = id {
            return match self.sessions.get_session(&id).await? {
                Some(session) if &session.phone == phone => Ok(session),
                _ => Err(Refusal::NotFound.into()),
            };
        }
        let max = self.config.max_verification_attempts;
        let recent = self
            .sessions
            .recent_sessions(phone, RECENT_SESSIONS)
            .await?;
        if let Some(open) = recent.iter().find(|s| s.is_open(now, max)) {
            return Ok(open.clone());
        }
        match recent.into_iter().next() {
            Some(newest) => Err(newest.refusal(now, max).unwrap_or(Refusal::NotFound).into()),
            None => Err(Refusal::NotFound.into()),
        }
    }
}
