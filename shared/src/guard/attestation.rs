//! App attestation: Firebase App Check tokens (`X-Firebase-AppCheck`), verified as Firebase
//! documents it: an RS256 JWT signed by a key of the App Check JWKS, issued by
//! `https://firebaseappcheck.googleapis.com/<project number>`, for an audience that holds
//! `projects/<project number>`, unexpired, for an app of the project. The JWKS is cached per
//! container and fetched again for an unknown `kid` at most once a minute.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::config::AttestationSettings;
use crate::http::{ApiError, ErrorCode, OUTAGE_RETRY_AFTER_SECS};

/// The header App Check's client SDKs send the token in.
pub const APP_CHECK_HEADER: &str = "x-firebase-appcheck";

/// The issuer of a project's tokens is this followed by its number.
pub const ISSUER_PREFIX: &str = "https://firebaseappcheck.googleapis.com/";

/// An unknown `kid` fetches the JWKS again at most this often (keys rotate rarely).
const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// Keys are kept this long before they are fetched again (Google asks for at most six hours).
const KEYS_MAX_AGE: Duration = Duration::from_secs(6 * 3600);
/// The clock skew allowed on `iat`.
const LEEWAY_SECS: i64 = 60;
/// A longer header is not looked at.
const MAX_TOKEN_LEN: usize = 4096;
const FETCH_TIMEOUT: Duration = Duration::from_secs(2);
/// While no key is held, a failed fetch is tried again after this.
const EMPTY_RETRY: Duration = Duration::from_secs(5);

/// What a request's token proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A valid token of an accepted app.
    Valid { app_id: String },
    /// No token (or App Check is not configured).
    Missing,
    /// A token that failed a check (the reason is for the log).
    Invalid(&'static str),
}

/// The JWKS could not be fetched and no cached key can check the token.
#[derive(Debug, thiserror::Error)]
#[error("the App Check JWKS is unavailable: {0}")]
pub struct JwksUnavailable(String);

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

pub struct AppCheck {
    settings: AttestationSettings,
    http: std::sync::OnceLock<reqwest::Client>,
    keys: RwLock<Keys>,
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Debug, Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Debug, Deserialize)]
struct Jwk {
    kid: Option<String>,
    kty: String,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    iat: i64,
    exp: i64,
}

impl AppCheck {
    pub fn new(settings: AttestationSettings) -> Self {
        AppCheck {
            settings,
            http: std::sync::OnceLock::new(),
            keys: RwLock::new(Keys::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    pub fn configured(&self) -> bool {
        self.settings.project_number.is_some()
    }

    pub fn required(&self) -> bool {
        self.settings.required
    }

    /// Fetches the JWKS ahead of the first request (a cold start runs it beside its other
    /// waits); a failure is only logged, and the first token fetches again.
    pub async fn warm(&self) {
        if !self.configured() {
            return;
        }
        if let Err(error) = self.refresh().await {
            tracing::warn!(%error, "App Check keys not loaded at start; loaded on first use");
        }
    }

    /// The request's attestation under the settings: with `REQUIRE_ATTESTATION`, no token is a
    /// 401, an invalid one a 403, and keys that cannot be fetched a 503; without it, anything
    /// but a valid token is simply not attested. Returns whether the request is attested.
    pub async fn attest(&self, token: Option<&str>, now: OffsetDateTime) -> Result<bool, ApiError> {
        let verdict = self.verdict(token, now).await;
        match (verdict, self.settings.required) {
            (Ok(Verdict::Valid { app_id }), _) => {
                tracing::debug!(app_id, "App Check token valid");
                Ok(true)
            }
            (Ok(Verdict::Missing), false) => Ok(false),
            (Ok(Verdict::Invalid(reason)), false) => {
                tracing::info!(reason, "App Check token invalid: served as untrusted");
                Ok(false)
            }
            (Err(error), false) => {
                tracing::warn!(%error, "App Check token not checked: served as untrusted");
                Ok(false)
            }
            (Ok(Verdict::Missing), true) => Err(ApiError::refused(
                ErrorCode::AttestationRequired,
                "an App Check token (X-Firebase-AppCheck) is required",
            )),
            (Ok(Verdict::Invalid(reason)), true) => {
                tracing::info!(reason, "App Check token rejected");
                Err(ApiError::refused(
                    ErrorCode::AttestationRejected,
                    "the App Check token was not accepted",
                ))
            }
            (Err(error), true) => Err(ApiError::Unavailable {
                code: ErrorCode::ServiceUnavailable,
                detail: "the app's attestation cannot be checked now; try again shortly".into(),
                retry_after_secs: OUTAGE_RETRY_AFTER_SECS,
                cause: Some(error.to_string()),
            }),
        }
    }

    /// What `token` proves at `now`.
    pub async fn verdict(
        &self,
        token: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Verdict, JwksUnavailable> {
        let Some(project) = self.settings.project_number.as_deref() else {
            return Ok(Verdict::Missing);
        };
        let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(Verdict::Missing);
        };
        if token.len() > MAX_TOKEN_LEN {
            return Ok(Verdict::Invalid("too long"));
        }
        // `alg: none`, HS256 and every other algorithm fail here: only RS256 is looked at.
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return Ok(Verdict::Invalid("malformed header"));
        };
        if header.alg != Algorithm::RS256 {
            return Ok(Verdict::Invalid("algorithm is not RS256"));
        }
        let Some(kid) = header.kid else {
            return Ok(Verdict::Invalid("no kid"));
        };
        let Some(key) = self.key(&kid).await? else {
            return Ok(Verdict::Invalid("unknown kid"));
        };
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[format!("{ISSUER_PREFIX}{project}")]);
        validation.set_audience(&[format!("projects/{project}")]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry is checked below against the injected clock, not the system's.
        validation.validate_exp = false;
        let claims = match jsonwebtoken::decode::<Claims>(token, &key, &validation) {
            Ok(data) => data.claims,
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind;
                return Ok(Verdict::Invalid(match e.kind() {
                    ErrorKind::InvalidSignature => "bad signature",
                    ErrorKind::InvalidIssuer => "wrong issuer",
                    ErrorKind::InvalidAudience => "wrong audience",
                    _ => "malformed claims",
                }));
            }
        };
        let now = now.unix_timestamp();
        if claims.exp <= now {
            return Ok(Verdict::Invalid("expired"));
        }
        if claims.iat > now + LEEWAY_SECS {
            return Ok(Verdict::Invalid("issued in the future"));
        }
        if !self.settings.app_ids.is_empty() && !self.settings.app_ids.contains(&claims.sub) {
            return Ok(Verdict::Invalid("app not accepted"));
        }
        Ok(Verdict::Valid { app_id: claims.sub })
    }

    /// The key `kid`, from the cache or a new fetch (old keys, an unknown kid at most once a
    /// minute). An error only when there is no key at all to check with.
    async fn key(&self, kid: &str) -> Result<Option<DecodingKey>, JwksUnavailable> {
        let (cached, stale, have_any, may_refetch) = {
            let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
            (
                keys.by_kid.get(kid).cloned(),
                keys.fetched_at.is_none_or(|t| t.elapsed() > KEYS_MAX_AGE),
                !keys.by_kid.is_empty(),
                keys.last_attempt
                    .is_none_or(|t| t.elapsed() > REFETCH_AFTER),
            )
        };
        if let Some(key) = cached
            && !stale
        {
            return Ok(Some(key));
        }
        if may_refetch || !have_any {
            match self.refresh().await {
                Ok(()) => {}
                Err(error) if !have_any => return Err(error),
                Err(error) => tracing::warn!(%error, "App Check keys not refreshed; kept"),
            }
        }
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        Ok(keys.by_kid.get(kid).cloned())
    }

    /// Fetches the JWKS, one fetch at a time and not again within a minute of the last try
    /// (within a few seconds while no key is held at all).
    async fn refresh(&self) -> Result<(), JwksUnavailable> {
        let _guard = self.fetching.lock().await;
        {
            let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
            let have_any = !keys.by_kid.is_empty();
            let gap = if have_any { REFETCH_AFTER } else { EMPTY_RETRY };
            if keys.last_attempt.is_some_and(|t| t.elapsed() < gap) {
                return if have_any {
                    Ok(())
                } else {
                    Err(JwksUnavailable("the last fetch failed moments ago".into()))
                };
            }
        }
        let fetched = self.fetch().await;
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        keys.last_attempt = Some(Instant::now());
        keys.by_kid = fetched?;
        keys.fetched_at = Some(Instant::now());
        Ok(())
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, JwksUnavailable> {
        let http = match self.http.get() {
            Some(http) => http,
            None => {
                let tls = crate::tls::public_web_client_config()
                    .map_err(|e| JwksUnavailable(e.to_string()))?;
                let client = reqwest::Client::builder()
                    .use_preconfigured_tls(tls)
                    .connect_timeout(FETCH_TIMEOUT)
                    .timeout(FETCH_TIMEOUT)
                    .build()
                    .map_err(|e| JwksUnavailable(e.to_string()))?;
                self.http.get_or_init(|| client)
            }
        };
        let response = http
            .get(&self.settings.jwks_url)
            .send()
            .await
            .map_err(|e| JwksUnavailable(format!("GET failed: {e}")))?;
        if !response.status().is_success() {
            return Err(JwksUnavailable(format!("HTTP {}", response.status())));
        }
        let jwks: Jwks = response
            .json()
            .await
            .map_err(|e| JwksUnavailable(format!("not a JWKS: {e}")))?;
        let by_kid: HashMap<String, DecodingKey> = jwks
            .keys
            .into_iter()
            .filter(|k| k.kty == "RSA" && k.alg.as_deref().is_none_or(|a| a == "RS256"))
            .filter_map(|k| {
                let key =
                    DecodingKey::from_rsa_components(k.n.as_deref()?, k.e.as_deref()?).ok()?;
                Some((k.kid?, key))
            })
            .collect();
        if by_kid.is_empty() {
            return Err(JwksUnavailable("the JWKS holds no RS256 key".into()));
        }
        Ok(by_kid)
    }
}
