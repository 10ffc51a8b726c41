//! `POST /auth/request`: checks, rate-limits, opens a session and places the flash call.

use std::sync::Arc;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};

use crate::clock::{Clock, rfc3339};
use crate::config::Config;
use crate::http::{ApiError, Endpoint, client_ip, json, json_body, public_base_url};
use crate::init::Init;
use crate::phone::PhoneNumber;
use crate::pool::SourcePool;
use crate::secrets::SecretsCache;
use crate::session::{CallStatus, Session, SessionId, SessionState};
use crate::store::Store;
use crate::store::rate_limits::Allowance;
use crate::telephony::{FlashCall, TelephonyError, TelephonyGateway};

pub struct RequestEndpoint {
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    store: Store,
    secrets: Arc<SecretsCache>,
    pool: SourcePool,
    telephony: Arc<dyn TelephonyGateway>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestBody {
    phone_number: PhoneNumber,
    app_signature: Option<String>,
}

#[derive(Debug, Serialize)]
struct Accepted {
    session_id: SessionId,
    expires_at: String,
    time_window_seconds: u64,
    detail: &'static str,
}

/// The longest app signature looked at; Android's SMS Retriever hashes are 11 characters.
const MAX_SIGNATURE_LEN: usize = 256;

impl Endpoint for RequestEndpoint {
    const NAME: &'static str = "request";

    async fn init(init: &Init) -> anyhow::Result<Self> {
        let secrets = init.secrets().await?;
        if init.config.require_app_signature && secrets.get().await.app_signatures.is_empty() {
            anyhow::bail!(
                "REQUIRE_APP_SIGNATURE is true but secret {} has no app_signatures",
                init.config.secret_id
            );
        }
        let store = init.store();
        Ok(RequestEndpoint {
            pool: SourcePool::new(store.clone(), init.config.pool_cache_ttl),
            telephony: init.telephony().await?,
            config: init.config.clone(),
            clock: init.clock.clone(),
            store,
            secrets,
        })
    }

    async fn handle(&self, req: Request) -> Result<Response<Body>, ApiError> {
        let body: RequestBody = json_body(&req)?;
        let phone = body.phone_number;
        self.check_app_signature(body.app_signature.as_deref())
            .await?;
        let allowed = &self.config.allowed_country_codes;
        if !allowed.is_empty() && !allowed.contains(&phone.country_code()) {
            return Err(ApiError::Forbidden {
                code: "country_not_allowed",
                detail: format!(
                    "phone numbers with country calling code +{} cannot be verified here",
                    phone.country_code()
                ),
            });
        }

        let now = self.clock.now();
        let ip = client_ip(&req);
        let allowance = Allowance {
            scope: "flash",
            phone: &phone,
            ip: ip.as_deref(),
            per_phone_per_day: self.config.max_requests_per_phone_per_day,
            per_ip_per_hour: self.config.max_requests_per_ip_per_hour,
            cooldown: self.config.request_cooldown,
        };
        self.store.take_allowance(&allowance, now).await??;

        let Some(caller_id) = self.pool.pick(&phone).await? else {
            tracing::error!("the pool of source numbers has no active number");
            return Err(ApiError::Unavailable {
                code: "no_pool_number",
                detail: "no number is available to place the call; try again later".into(),
                retry_after_secs: None,
            });
        };

        let session = Session {
            id: SessionId::random(),
            phone,
            caller_id,
            state: SessionState::Pending,
            attempts: 0,
            created_at: now,
            expires_at: now + self.config.validity_period,
            verified_at: None,
            call_sid: None,
            call_status: CallStatus::NotPlaced,
        };
        self.store.put_session(&session).await?;
        let base_url = public_base_url(&req, self.config.public_base_url.as_deref());
        self.place_call(&session, base_url.as_deref()).await?;
        tracing::info!(session_id = %session.id, phone = %session.phone.masked(), "flash call placed");

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
    async fn check_app_signature(&self, signature: Option<&str>) -> Result<(), ApiError> {
        if !self.config.require_app_signature {
            return Ok(());
        }
        let Some(signature) = signature else {
            return Err(ApiError::field("app_signature", "is required"));
        };
        if signature.len() > MAX_SIGNATURE_LEN
            || !self.secrets.get().await.allows_app_signature(signature)
        {
            return Err(ApiError::Forbidden {
                code: "app_signature_rejected",
                detail: "the app signature is not allowed".into(),
            });
        }
        Ok(())
    }

    /// Places the call; on failure the session is closed as failed so that it is never left
    /// pending with no call behind it.
    async fn place_call(&self, session: &Session, base_url: Option<&str>) -> Result<(), ApiError> {
        let call = FlashCall {
            to: session.phone.clone(),
            from: session.caller_id.clone(),
            status_callback: base_url
                .map(|base| format!("{base}/webhooks/twilio/voice?session_id={}", session.id)),
            ring_timeout: self.config.flash_call_ring_timeout,
        };
        match self.telephony.place_flash_call(&call).await {
            Ok(placed) => {
                self.store
                    .record_call_placed(&session.id, &placed.sid)
                    .await?;
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%error, session_id = %session.id, "flash call could not be placed");
                self.store.mark_call_failed(&session.id).await?;
                let retry_after_secs = match error {
                    TelephonyError::Throttled { .. } => Some(1),
                    _ => None,
                };
                Err(ApiError::Unavailable {
                    code: "telephony_unavailable",
                    detail: "the verification call could not be placed; try again later".into(),
                    retry_after_secs,
                })
            }
        }
    }
}
