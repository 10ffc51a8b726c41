//! `POST /auth/request`: checks, rate-limits, opens a session and places the flash call; or,
//! with `"direction": "inbound"`, opens a session the user verifies by calling a pool number
//! (the inbound missed call: nothing is dialed).

use std::sync::Arc;

use aws_sdk_dynamodb::types::TransactWriteItem;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::clock::{Clock, rfc3339};
use crate::config::Config;
use crate::guard::{
    Caller, Guard, ProviderUse, SendRequest, check_app_signature, check_destination,
    require_signatures_configured,
};
use crate::http::{
    ApiError, Endpoint, ErrorCode, OUTAGE_RETRY_AFTER_SECS, Route, client_ip, json, json_body,
    public_base_url,
};
use crate::init::Init;
use crate::phone::PhoneNumber;
use crate::pool::SourcePool;
use crate::secrets::{SecretPart, SecretsCache};
use crate::session::caller_id_hash;
use crate::session::{CallStatus, Direction, Session, SessionId, SessionState};
use crate::store::Sessions;
use crate::store::rate_limits::{Limit, Period, Quota};
use crate::telemetry::Channel;
use crate::telephony::{
    HANG_UP, OutgoingCall, TelephonyError, TelephonyGateway, VOICE_STATUS_CALLBACK,
};

pub struct RequestEndpoint {
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    sessions: Sessions,
    guard: Guard,
    secrets: Arc<SecretsCache>,
    pool: SourcePool,
    telephony: Arc<dyn TelephonyGateway>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestBody {
    phone_number: PhoneNumber,
    app_signature: Option<String>,
    /// `outbound` (the default: we call the phone) or `inbound` (the phone calls us).
    #[serde(default, deserialize_with = "crate::http::not_null")]
    direction: Option<String>,
}

#[derive(Debug, Serialize)]
struct InboundAccepted {
    session_id: SessionId,
    /// The pool number the user calls (the app opens `tel:` with it).
    call_to: PhoneNumber,
    expires_at: String,
    time_window_seconds: u64,
    detail: &'static str,
}

#[derive(Debug, Serialize)]
struct Accepted {
    session_id: SessionId,
    expires_at: String,
    time_window_seconds: u64,
    detail: &'static str,
}

/// How long a client waits when the pool has no active number (an operator must act).
const NO_POOL_RETRY_AFTER_SECS: u64 = 60;

/// How many pool numbers an inbound request considers for its `call_to`: more than the open
/// inbound sessions a phone can have at the default limits (a cooldown of 30 s in a window of
/// 300 s), at half a read unit each.
const INBOUND_CANDIDATES: usize = 12;

/// The pool has no active number.
fn no_pool_number() -> ApiError {
    tracing::error!("the pool of source numbers has no active number");
    ApiError::Unavailable {
        code: ErrorCode::NoPoolNumber,
        detail: "no number is available to place the call; try again later".into(),
        retry_after_secs: NO_POOL_RETRY_AFTER_SECS,
        cause: None,
    }
}

impl Endpoint for RequestEndpoint {
    const NAME: &'static str = "request";
    const ROUTES: &'static [Route] = &[Route::post("/auth/request")];
    const SECRETS: &'static [SecretPart] = &[
        SecretPart::Twilio,
        SecretPart::HashingKey,
        SecretPart::Clients,
    ];

    async fn init(init: &Init) -> anyhow::Result<Self> {
        let secrets = init.secrets();
        let store = init.store();
        let pool = SourcePool::new(store.pool(), init.config.pool_cache_ttl);
        let guard = Guard::new(init);
        // The secret, the pool (which also opens the DynamoDB connection), App Check's keys
        // and the phone parser's metadata load side by side.
        let (warmed, (), (), ()) = tokio::join!(
            secrets.require(Self::SECRETS, Self::NAME),
            crate::phone::warm_up(),
            pool.prefetch(),
            guard.warm()
        );
        warmed?;
        require_signatures_configured(&init.config, &secrets)?;
        Ok(RequestEndpoint {
            pool,
            telephony: init.telephony().await?,
            config: init.config.clone(),
            clock: init.clock.clone(),
            sessions: store.sessions(),
            guard,
            secrets,
        })
    }

    async fn handle(
        &self,
        _route: &'static Route,
        req: Request,
    ) -> Result<Response<Body>, ApiError> {
        let body: RequestBody = json_body(&req)?;
        let direction = match body.direction.as_deref() {
            None => Direction::Outbound,
            Some(named) => Direction::parse(named)
                .ok_or_else(|| ApiError::field("direction", "must be outbound or inbound"))?,
        };
        let phone = body.phone_number;
        let attested = self.guard.attest(&req, self.clock.now()).await?;
        // The secret is read even when signatures are off: a request that cannot be served
        // (Secrets Manager down) is refused before it takes anything from the rate limits.
        let secrets = self.secrets.get().await?;
        check_app_signature(&self.config, &secrets, body.app_signature.as_deref())?;
        check_destination(&self.config, &phone)?;

        if direction == Direction::Inbound {
            return self.inbound(&req, phone, attested).await;
        }
        // The pool number first: a request the pool cannot serve takes nothing from the
        // limits.
        let Some(caller_id) = self.pool.pick(&phone).await? else {
            return Err(no_pool_number());
        };

        let now = self.clock.now();
        let mut session = self.new_session(phone, Direction::Outbound, now);
        session.caller_id_hash =
            caller_id_hash(&secrets, &session.id, &caller_id).map_err(ApiError::Internal)?;
        // The session is written in the guard's transaction: one call, and never a session
        // without its allowance.
        let writes = vec![self.sessions.new_session(&session)?];
        self.admit(&req, &session, attested, writes).await?;
        let base_url = public_base_url(&req, self.config.public_base_url.as_deref());
        self.place_call(&session, &caller_id, base_url.as_deref())
            .await?;
        tracing::info!(session_id = %session.id, phone = %session.phone.masked(), "flash call placed");
        crate::telemetry::verification_started(Channel::FlashCall);
        let country = session.phone.country_code();
        crate::telemetry::sent(
            "flash_call",
            country,
            self.config.is_unusual_country(country),
        );

        let accepted = Accepted {
            session_id: session.id,
            expires_at: rfc3339(session.expires_at),
            time_window_seconds: self.config.validity_period.as_secs(),
            detail: "A call from an unknown number will ring shortly: do not answer it. \
                     Post its caller ID to /auth/verify.",
        };
        Ok(json(StatusCode::ACCEPTED, &accepted))
    }
}

impl RequestEndpoint {
    /// A pending session of `phone` opened `now`, its caller ID or number to call still unset.
    fn new_session(
        &self,
        phone: PhoneNumber,
        direction: Direction,
        now: OffsetDateTime,
    ) -> Session {
        Session {
            id: SessionId::random(),
            phone,
            caller_id_hash: String::new(),
            direction,
            call_to: None,
            token_issued_at: None,
            state: SessionState::Pending,
            attempts: 0,
            created_at: now,
            expires_at: now + self.config.validity_period,
            verified_at: None,
            call_sid: None,
            call_status: CallStatus::NotPlaced,
        }
    }

    /// The guard's admission of `session`, with `writes` in its transaction: the phone's daily
    /// allowance, the client's limits, a cooldown per direction and the phone's failure caps;
    /// a flash call also takes a unit of every send budget and a call of our account's rate,
    /// while an inbound session, for which nothing is dialed, takes neither.
    async fn admit(
        &self,
        req: &Request,
        session: &Session,
        attested: bool,
        writes: Vec<TransactWriteItem>,
    ) -> Result<(), ApiError> {
        let dials = session.direction == Direction::Outbound;
        let ip = client_ip(req);
        let per_phone = [Quota {
            counter: "flash-phone-day",
            limit: Limit::PhonePerDay,
            max: self.config.max_requests_per_phone_per_day,
            period: Period::Day,
        }];
        let send = SendRequest {
            phone: &session.phone,
            caller: Caller::App {
                ip: ip.as_deref(),
                attested,
            },
            scope: if dials { "flash" } else { "inbound" },
            per_phone: &per_phone,
            cooldown: self.config.request_cooldown,
            units: u32::from(dials),
            // Nothing is sent for an inbound session: no send for the quarantine to judge.
            verification: dials,
            failure_caps: self.guard.flash_failure_caps(&session.phone),
            provider: dials.then_some(ProviderUse::Call),
        };
        self.guard.admit(&send, session.created_at, writes).await?;
        Ok(())
    }

    /// An inbound missed call's session: the phone is to call `call_to` within the session's
    /// window. Nothing is dialed, so no service-wide budget is drawn and our account is asked
    /// for nothing; the per-phone, per-IP and per-network limits and the cooldown are taken.
    async fn inbound(
        &self,
        req: &Request,
        phone: PhoneNumber,
        attested: bool,
    ) -> Result<Response<Body>, ApiError> {
        let now = self.clock.now();
        // The pool number first, one none of the phone's open inbound sessions shows: a call
        // then names its session, and a session someone else opened for the phone can never
        // take the call its owner makes to the number its app showed.
        let candidates = self.pool.sample(&phone, INBOUND_CANDIDATES).await?;
        if candidates.is_empty() {
            return Err(no_pool_number());
        }
        let held = self.sessions.held_numbers(&phone, &candidates, now).await?;
        let Some(call_to) = candidates.into_iter().find(|n| !held.contains(n)) else {
            return Err(ApiError::Unavailable {
                code: ErrorCode::NoPoolNumber,
                detail: "every number this phone could call is shown by one of its open \
                         sessions; try again when one has expired"
                    .into(),
                retry_after_secs: self.config.validity_period.as_secs().max(1),
                cause: None,
            });
        };
        let mut session = self.new_session(phone, Direction::Inbound, now);
        session.call_to = Some(call_to.clone());
        let writes = vec![
            self.sessions.new_session(&session)?,
            self.sessions.hold_call_to(&session)?,
        ];
        self.admit(req, &session, attested, writes).await?;
        tracing::info!(session_id = %session.id, phone = %session.phone.masked(), "inbound session opened");
        crate::telemetry::verification_started(Channel::InboundCall);
        let accepted = InboundAccepted {
            session_id: session.id,
            call_to,
            expires_at: rfc3339(session.expires_at),
            time_window_seconds: self.config.validity_period.as_secs(),
            detail: "Call call_to from this phone: the call is rejected (it costs nothing) and \
                     verifies the phone. Then post the session_id to /auth/verify.",
        };
        Ok(json(StatusCode::ACCEPTED, &accepted))
    }

    /// Places the call. Once the provider has it, or may have it (no answer came back), the
    /// answer is 202 whatever happens next: an error would invite a retry that rings the phone
    /// again, so a failure to store the call's SID is only logged (the status callback can
    /// attach it later). A call that could not be placed closes the session as failed, so
    /// that it is never left pending.
    async fn place_call(
        &self,
        session: &Session,
        caller_id: &PhoneNumber,
        base_url: Option<&str>,
    ) -> Result<(), ApiError> {
        let call = OutgoingCall {
            to: session.phone.clone(),
            from: caller_id.clone(),
            twiml: HANG_UP.to_owned(),
            one_time_code: None,
            status_callback: base_url.map(|base| {
                format!(
                    "{base}{}?session_id={}",
                    VOICE_STATUS_CALLBACK.path, session.id
                )
            }),
            ring_timeout: self.config.flash_call_ring_timeout,
        };
        match self.telephony.place_call(&call).await {
            Ok(placed) => {
                if let Err(error) = self
                    .sessions
                    .record_call_placed(&session.id, &placed.sid)
                    .await
                {
                    tracing::error!(%error, session_id = %session.id, "the call was placed but its SID could not be stored");
                }
                Ok(())
            }
            // The call may be ringing: the session stays pending (its status callback
            // attaches the SID), and the answer is the 202, as a retry would ring twice.
            Err(error) if error.is_ambiguous() => {
                tracing::warn!(%error, session_id = %session.id, "flash call's outcome unknown: the session stays pending");
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%error, session_id = %session.id, "flash call could not be placed");
                if let Err(error) = self.sessions.mark_call_failed(&session.id).await {
                    tracing::error!(%error, session_id = %session.id, "the session could not be marked failed");
                }
                let retry_after_secs = match error {
                    TelephonyError::Throttled { .. } => 1,
                    _ => OUTAGE_RETRY_AFTER_SECS,
                };
                Err(ApiError::Unavailable {
                    code: ErrorCode::TelephonyUnavailable,
                    detail: "the verification call could not be placed; try again later".into(),
                    retry_after_secs,
                    cause: None,
                })
            }
        }
    }
}
