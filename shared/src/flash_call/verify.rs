//! `POST /auth/verify`: checks the caller ID the app read and issues an access token; for an
//! inbound session (the phone called us), issues the token of the verified session, once.

use std::sync::Arc;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::clock::{Clock, rfc3339};
use crate::config::Config;
use crate::guard::Guard;
use crate::http::{ApiError, Endpoint, ErrorCode, Route, json, json_body};
use crate::init::Init;
use crate::phone::PhoneNumber;
use crate::secrets::{SecretPart, SecretsCache};
use crate::session::{Direction, Refusal, Session, SessionId, SessionState};
use crate::store::Sessions;
use crate::store::rate_limits::seconds_to_day_end;
use crate::store::sessions::{Attempt, MatchRefused};
use crate::telemetry::Channel;
use crate::token::{self, TOKEN_TYPE};

pub struct VerifyEndpoint {
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    sessions: Sessions,
    guard: Guard,
    secrets: Arc<SecretsCache>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    phone_number: PhoneNumber,
    /// The caller ID of a flash call; absent for an inbound session.
    #[serde(default, deserialize_with = "crate::http::not_null")]
    received_caller_id: Option<String>,
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
    const SECRETS: &'static [SecretPart] = &[SecretPart::TokenKey, SecretPart::HashingKey];

    async fn init(init: &Init) -> anyhow::Result<Self> {
        let secrets = init.secrets();
        // The phone parser warms on another thread while the secret is fetched.
        let (warmed, ()) = tokio::join!(
            secrets.require(Self::SECRETS, Self::NAME),
            crate::phone::warm_up()
        );
        warmed?;
        Ok(VerifyEndpoint {
            secrets,
            config: init.config.clone(),
            clock: init.clock.clone(),
            sessions: init.store().sessions(),
            guard: Guard::new(init),
        })
    }

    async fn handle(
        &self,
        _route: &'static Route,
        req: Request,
    ) -> Result<Response<Body>, ApiError> {
        let body: VerifyBody = json_body(&req)?;
        // A caller ID is a flash call's answer; without one, the claim of an inbound session.
        let (channel, outcome) = match body.received_caller_id.as_deref() {
            Some(received) => (Channel::FlashCall, self.verify(&body, received).await),
            None => (Channel::InboundCall, self.claim_inbound(&body).await),
        };
        crate::telemetry::verification_checked(
            channel,
            outcome.as_ref().map(|_| ()).map_err(ApiError::code),
        );
        outcome
    }
}

impl VerifyEndpoint {
    async fn verify(
        &self,
        body: &VerifyBody,
        received_caller_id: &str,
    ) -> Result<Response<Body>, ApiError> {
        let received = PhoneNumber::parse_caller_id(received_caller_id, &body.phone_number)
            .map_err(|e| ApiError::field("received_caller_id", e))?;
        let now = self.clock.now();
        let max = self.config.max_verification_attempts;
        let session = self
            .find_session(&body.phone_number, body.session_id, now)
            .await?;
        if session.direction == Direction::Inbound {
            return Err(ApiError::field(
                "received_caller_id",
                "an inbound session is verified by the phone's call: post its session_id alone",
            ));
        }
        if let Some(refusal) = session.refusal(now, max) {
            return Err(refusal.into());
        }

        // The secret is read before anything is counted: a session must never turn verified
        // while its token cannot be issued (Secrets Manager down is a 503 that changes
        // nothing). The received caller ID's keyed hash is compared with the session's, in
        // time that does not depend on where they first differ.
        let secrets = self.secrets.get().await?;
        let received_hash = crate::session::caller_id_hash(&secrets, &session.id, &received)
            .map_err(ApiError::Internal)?;
        let matches: bool = session
            .caller_id_hash
            .as_bytes()
            .ct_eq(received_hash.as_bytes())
            .into();
        let caps = self.guard.flash_failure_caps(&session.phone);
        if !matches {
            // The phone's failure is counted first, under its daily cap: past the cap nothing
            // more is answered about any session of the phone, so a guesser gets at most `cap`
            // answers a day whatever the sessions and the concurrency.
            if let Err(exceeded) = self.guard.limits().count_failure(&caps, now).await? {
                tracing::info!(session_id = %session.id, "phone locked: failed verifications at the daily cap");
                return Err(ApiError::phone_locked(exceeded.retry_after_secs));
            }
            let updated = self
                .sessions
                .record_attempt(&session.id, Attempt::Mismatch, now, max)
                .await??;
            tracing::info!(session_id = %session.id, attempts = updated.attempts, "caller ID mismatch");
            return Err(ApiError::CallerIdMismatch {
                attempts_remaining: updated.attempts_remaining(max),
            });
        }
        let also = self
            .guard
            .closing_writes(&session.phone, &caps, true, now)?;
        let updated = match self.sessions.record_match(&session, now, max, also).await? {
            Ok(updated) => updated,
            Err(MatchRefused::Session(refusal)) => return Err(refusal.into()),
            Err(MatchRefused::PhoneLocked) => {
                return Err(ApiError::phone_locked(seconds_to_day_end(now)));
            }
        };
        self.guard
            .converted(&updated.phone, updated.created_at)
            .await;
        self.issue(&secrets, &updated, "flash_call", now)
    }

    /// An inbound session's token: the session must be named, belong to the phone and have
    /// been verified by its call within the last validity period; the token is issued once.
    async fn claim_inbound(&self, body: &VerifyBody) -> Result<Response<Body>, ApiError> {
        let Some(id) = body.session_id else {
            return Err(ApiError::field(
                "received_caller_id",
                "is required, or session_id for an inbound session",
            ));
        };
        let now = self.clock.now();
        let session = self.find_session(&body.phone_number, Some(id), now).await?;
        if session.direction != Direction::Inbound {
            return Err(ApiError::field(
                "received_caller_id",
                "is required to verify a flash call",
            ));
        }
        match session.state {
            SessionState::Verified if session.token_issued_at.is_some() => {
                return Err(Refusal::AlreadyVerified.into());
            }
            SessionState::Verified => {}
            _ => {
                if let Some(refusal) = session.refusal(now, self.config.max_verification_attempts) {
                    return Err(refusal.into());
                }
                return Err(ApiError::refused(
                    ErrorCode::VerificationPending,
                    "the phone has not called call_to yet: call it, then post again",
                ));
            }
        }
        // The secret first: a token must never be claimed that cannot be issued.
        let secrets = self.secrets.get().await?;
        let since = now - self.config.validity_period;
        let caps = self.guard.flash_failure_caps(&session.phone);
        let also = self
            .guard
            .closing_writes(&session.phone, &caps, true, now)?;
        match self
            .sessions
            .claim_token(&session, now, since, also)
            .await?
        {
            Ok(()) => {}
            Err(MatchRefused::Session(refusal)) => return Err(refusal.into()),
            Err(MatchRefused::PhoneLocked) => {
                return Err(ApiError::phone_locked(seconds_to_day_end(now)));
            }
        }
        self.issue(&secrets, &session, "tel", now)
    }

    /// The 200 of a verified session: its access token, whose `amr` is `method`.
    fn issue(
        &self,
        secrets: &crate::secrets::Secrets,
        updated: &Session,
        method: &str,
        now: time::OffsetDateTime,
    ) -> Result<Response<Body>, ApiError> {
        let issued = token::issue(
            secrets,
            &self.config,
            &updated.phone,
            &updated.id.to_string(),
            method,
            now,
        )?;
        tracing::info!(session_id = %updated.id, phone = %updated.phone.masked(), direction = updated.direction.as_str(), "phone verified");
        let channel = match updated.direction {
            Direction::Outbound => Channel::FlashCall,
            Direction::Inbound => Channel::InboundCall,
        };
        crate::telemetry::time_to_verify(
            channel,
            (updated.verified_at.unwrap_or(now) - updated.created_at).as_seconds_f64(),
        );
        let verified = Verified {
            verified: true,
            phone_number: updated.phone.clone(),
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
    /// session. With none open the answer is "not found" whatever the past sessions were: their
    /// states would tell anyone whether a number uses the service.
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
        self.sessions
            .newest_open(phone, Direction::Outbound, now, max, RECENT_SESSIONS)
            .await?
            .ok_or_else(|| Refusal::NotFound.into())
    }
}
