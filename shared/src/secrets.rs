//! `Secrets`: the stack's secrets, one Secrets Manager secret per purpose ([`SecretPart`]),
//! validated at load and cached per container. A function loads only the parts it declares
//! ([`SecretsCache::require`]), and its IAM policy names only those secrets.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// What a secret is for. Each part is its own secret, named by its own variable, so that a
/// function's policy can grant exactly the values it uses: the webhook reads Twilio's token
/// and nothing else, `status` reads none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecretPart {
    /// `twilio_account_sid`, `twilio_auth_token`: calls, messages and webhook signatures.
    Twilio,
    /// `token_signing_key`: access tokens and history cursors (HS256 / HMAC), with its
    /// previous version (`AWSPREVIOUS`) accepted after a rotation.
    TokenKey,
    /// `code_hashing_key`: the keyed hashes the table keeps instead of codes and caller IDs.
    HashingKey,
    /// `service_api_key_hashes`, `app_signatures`, `TEST_PHONE_NUMBERS`: who the clients are.
    Clients,
}

impl SecretPart {
    pub const ALL: [SecretPart; 4] = [
        SecretPart::Twilio,
        SecretPart::TokenKey,
        SecretPart::HashingKey,
        SecretPart::Clients,
    ];

    /// The environment variable that names this part's secret.
    pub fn variable(self) -> &'static str {
        match self {
            SecretPart::Twilio => "TWILIO_SECRET_ID",
            SecretPart::TokenKey => "TOKEN_KEY_SECRET_ID",
            SecretPart::HashingKey => "HASHING_KEY_SECRET_ID",
            SecretPart::Clients => "CLIENTS_SECRET_ID",
        }
    }

    /// The fields this part's secret holds.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            SecretPart::Twilio => &["twilio_account_sid", "twilio_auth_token"],
            SecretPart::TokenKey => &["token_signing_key"],
            SecretPart::HashingKey => &["code_hashing_key"],
            SecretPart::Clients => &[
                "service_api_key_hashes",
                "app_signatures",
                "TEST_PHONE_NUMBERS",
            ],
        }
    }

    fn of_field(field: &str) -> Option<SecretPart> {
        SecretPart::ALL
            .into_iter()
            .find(|part| part.fields().contains(&field))
    }
}

/// The parsed secrets. Every value is a `SecretString`: `Debug` shows none of them.
#[derive(Debug, Default)]
pub struct Secrets {
    /// Twilio's account SID and auth token: calls and messages go to Twilio.
    pub twilio: Option<TwilioCredentials>,
    /// The auth token Twilio signs its webhooks with: the account's, or, locally, a token of
    /// its own alone (the logging gateway signs its simulated callbacks with it).
    pub twilio_webhook_token: Option<SecretString>,
    pub app_signatures: Vec<SecretString>,
    /// The token-signing key and the one before it (`None` where the part is not loaded).
    pub token_keys: Option<TokenKeys>,
    pub code_hashing_key: Option<SecretString>,
    /// SHA-256 hex digests of the service API keys, never the keys themselves.
    pub service_api_key_hashes: Vec<SecretString>,
    /// Numbers for app-store reviewers (`TEST_PHONE_NUMBERS`), by E.164: no SMS, a fixed code.
    pub test_numbers: HashMap<String, TestNumber>,
}

/// The key tokens and cursors are signed with, and the previous one: what a rotation leaves
/// valid until the tokens and cursors signed with it are gone.
#[derive(Debug)]
pub struct TokenKeys {
    pub current: SigningKey,
    pub previous: Option<SigningKey>,
}

/// A signing key and its id (`kid`): the first 64 bits of an HMAC of a fixed label under the
/// key, so the id names the key without telling anything about it.
#[derive(Debug)]
pub struct SigningKey {
    pub kid: String,
    key: SecretString,
}

impl SigningKey {
    pub fn new(key: SecretString) -> Self {
        let kid = keyed_hash(key.expose_secret().as_bytes(), &["token-key-id"])
            .map(|h| h[..16].to_owned())
            .unwrap_or_default();
        SigningKey { kid, key }
    }

    pub fn bytes(&self) -> &[u8] {
        self.key.expose_secret().as_bytes()
    }
}

impl TokenKeys {
    /// The key whose id is `kid`; with no id, the current key.
    pub fn by_kid(&self, kid: Option<&str>) -> Option<&SigningKey> {
        let Some(kid) = kid else {
            return Some(&self.current);
        };
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .find(|key| key.kid == kid)
    }
}

/// A number for app-store reviewers: it gets no SMS and accepts `code` until `valid_until`.
#[derive(Debug)]
pub struct TestNumber {
    pub code: SecretString,
    pub valid_until: OffsetDateTime,
}

impl Secrets {
    /// The test number `e164` (as typed: spaces, dashes, dots and parentheses dropped), if the
    /// secret has it and it is still valid at `now`.
    pub fn test_number(&self, typed: &str, now: OffsetDateTime) -> Option<(&str, &TestNumber)> {
        if self.test_numbers.is_empty() {
            return None;
        }
        let e164: String = typed
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        self.test_numbers
            .get_key_value(&e164)
            .filter(|(_, t)| now < t.valid_until)
            .map(|(k, t)| (k.as_str(), t))
    }
}

/// Parses `TEST_PHONE_NUMBERS`: an object, or a string holding one (the console's key/value
/// editor stores strings), of `"+E164": {"code": "digits", "valid_until": "RFC 3339"}`.
fn parse_test_numbers(
    value: Option<&Value>,
    problems: &mut Vec<String>,
) -> HashMap<String, TestNumber> {
    const NAME: &str = "TEST_PHONE_NUMBERS";
    let parsed;
    let map = match value {
        None | Some(Value::Null) => return HashMap::new(),
        Some(Value::Object(map)) => map,
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => {
                parsed = map;
                &parsed
            }
            _ => {
                problems.push(format!("{NAME} must be a JSON object"));
                return HashMap::new();
            }
        },
        Some(_) => {
            problems.push(format!("{NAME} must be a JSON object"));
            return HashMap::new();
        }
    };
    let mut numbers = HashMap::new();
    for (i, (number, entry)) in map.iter().enumerate() {
        let digits = number.strip_prefix('+').unwrap_or_default();
        if !(7..=15).contains(&digits.len())
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || digits.starts_with('0')
        {
            problems.push(format!(
                "{NAME}: entry {} must be keyed by an E.164 number (+ and 7 to 15 digits)",
                i + 1
            ));
            continue;
        }
        let code = entry.get("code").and_then(Value::as_str);
        let valid_until = entry
            .get("valid_until")
            .and_then(Value::as_str)
            .and_then(|t| {
                OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            });
        match (code, valid_until) {
            (Some(code), Some(valid_until))
                if (6..=10).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit()) =>
            {
                numbers.insert(
                    number.clone(),
                    TestNumber {
                        code: SecretString::from(code.to_owned()),
                        valid_until,
                    },
                );
            }
            _ => problems.push(format!(
                "{NAME}: entry {} needs a code of 6 to 10 digits and an RFC 3339 valid_until",
                i + 1
            )),
        }
    }
    numbers
}

#[derive(Debug)]
pub struct TwilioCredentials {
    pub account_sid: String,
    pub auth_token: SecretString,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// Secrets Manager cannot be reached, timed out or throttled: retryable.
    #[error("secret {secret_id} is unavailable: {cause}")]
    Unavailable { secret_id: String, cause: String },
    #[error("secret {secret_id} could not be read: {cause}")]
    Unreadable { secret_id: String, cause: String },
    #[error("secret {secret_id} has no SecretString (binary secrets are not supported)")]
    NotAString { secret_id: String },
    #[error("secret {secret_id} is malformed: {}", .problems.join("; "))]
    Malformed {
        secret_id: String,
        problems: Vec<String>,
    },
}

/// The shortest key accepted for signing tokens and hashing answers: HS256 and HMAC-SHA256
/// want at least 256 bits. The template generates 48 letters and digits (285 bits).
const MIN_KEY_LEN: usize = 32;

impl Secrets {
    /// A keyed hash of `parts` under the secret's `code_hashing_key`: HMAC-SHA256 over the
    /// length-prefixed parts, hex. What the table keeps instead of a live answer (a code, a
    /// session's caller ID), so that a table dump, its stream or a backup yields none without
    /// the key. Fails only when the hashing key is not loaded (the functions that hash
    /// require [`SecretPart::HashingKey`] at their start).
    pub fn keyed_hash(&self, parts: &[&str]) -> anyhow::Result<String> {
        let key = self
            .code_hashing_key
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the code hashing key is not loaded"))?;
        keyed_hash(key.expose_secret().as_bytes(), parts)
            .ok_or_else(|| anyhow::anyhow!("the keyed hash could not be made"))
    }

    /// The token-signing keys; fails only when the part is not loaded (the functions that sign
    /// or check tokens require [`SecretPart::TokenKey`] at their start).
    pub fn token_keys(&self) -> anyhow::Result<&TokenKeys> {
        self.token_keys
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the token signing key is not loaded"))
    }

    /// Whether a token or cursor signed with key `kid` can be checked with what is loaded.
    pub fn knows_token_key(&self, kid: &str) -> bool {
        self.token_keys
            .as_ref()
            .is_some_and(|keys| keys.by_kid(Some(kid)).is_some())
    }

    /// Parses one JSON object holding every part's fields (tests and tools): only
    /// `token_signing_key` is required. Problems name the field, never its value; unknown
    /// fields are allowed so that a secret can gain keys before the code that reads them is
    /// deployed.
    pub fn parse(secret_id: &str, text: &str) -> Result<Self, SecretsError> {
        let map = object(secret_id, text)?;
        let mut secrets = Secrets::default();
        let mut problems = Vec::new();
        for part in SecretPart::ALL {
            secrets.absorb(part, &map, part == SecretPart::TokenKey, &mut problems);
        }
        malformed_if(secret_id, problems)?;
        Ok(secrets)
    }

    /// Adds the fields of `part` from its own secret's JSON. The part's key is required; a
    /// field of another part is refused: a value this secret's readers have no use for is one
    /// their policy should not reach.
    fn absorb_part(
        &mut self,
        part: SecretPart,
        secret_id: &str,
        text: &str,
    ) -> Result<(), SecretsError> {
        let map = object(secret_id, text)?;
        let mut problems = Vec::new();
        for name in map.keys() {
            if let Some(owner) = SecretPart::of_field(name).filter(|owner| *owner != part) {
                problems.push(format!(
                    "{name} belongs in the secret named by {}, not in this one",
                    owner.variable()
                ));
            }
        }
        self.absorb(part, &map, true, &mut problems);
        malformed_if(secret_id, problems)
    }

    /// Adds the previous token-signing key (the `AWSPREVIOUS` version of the part's secret).
    /// A previous version that is not a valid key is left out: it can only have signed
    /// tokens that are refused anyway.
    fn absorb_previous_token_key(&mut self, secret_id: &str, text: &str) {
        let mut previous = Secrets::default();
        match previous.absorb_part(SecretPart::TokenKey, secret_id, text) {
            Ok(()) => {
                if let (Some(keys), Some(old)) = (self.token_keys.as_mut(), previous.token_keys)
                    && old.current.kid != keys.current.kid
                {
                    keys.previous = Some(old.current);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "the previous token signing key is not valid; tokens it signed are refused");
            }
        }
    }

    fn absorb(
        &mut self,
        part: SecretPart,
        map: &Map<String, Value>,
        required: bool,
        problems: &mut Vec<String>,
    ) {
        match part {
            SecretPart::Twilio => {
                let account_sid = field(map, "twilio_account_sid", false, problems);
                let auth_token = field(map, "twilio_auth_token", false, problems);
                self.twilio_webhook_token = auth_token.clone().map(SecretString::from);
                self.twilio = match (account_sid, auth_token) {
                    (Some(account_sid), Some(auth_token)) => {
                        if !is_account_sid(&account_sid) {
                            problems.push(
                                "twilio_account_sid must be AC followed by 32 hex digits".into(),
                            );
                        }
                        Some(TwilioCredentials {
                            account_sid,
                            auth_token: auth_token.into(),
                        })
                    }
                    // A token alone signs webhooks (locally) but places nothing.
                    (None, _) => None,
                    (Some(_), None) => {
                        problems.push(
                            "twilio_account_sid and twilio_auth_token must be given together"
                                .into(),
                        );
                        None
                    }
                };
            }
            SecretPart::TokenKey => {
                let key = field(map, "token_signing_key", required, problems)
                    .filter(|key| long_enough("token_signing_key", key, problems));
                self.token_keys = key.map(|key| TokenKeys {
                    current: SigningKey::new(key.into()),
                    previous: None,
                });
            }
            SecretPart::HashingKey => {
                self.code_hashing_key = field(map, "code_hashing_key", required, problems)
                    .filter(|key| long_enough("code_hashing_key", key, problems))
                    .map(SecretString::from);
            }
            SecretPart::Clients => {
                self.app_signatures = string_list(map, "app_signatures", problems);
                self.service_api_key_hashes = string_list(map, "service_api_key_hashes", problems);
                self.test_numbers = parse_test_numbers(map.get("TEST_PHONE_NUMBERS"), problems);
            }
        }
    }

    /// Whether `candidate` is one of the allowed app signatures. Every allowed value is compared
    /// in constant time, so the answer's timing says nothing about how close a guess was.
    pub fn allows_app_signature(&self, candidate: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.app_signatures
            .iter()
            .fold(subtle::Choice::from(0), |found, allowed| {
                found
                    | allowed
                        .expose_secret()
                        .as_bytes()
                        .ct_eq(candidate.as_bytes())
            })
            .into()
    }
}

fn is_account_sid(s: &str) -> bool {
    s.len() == 34 && s.starts_with("AC") && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn object(secret_id: &str, text: &str) -> Result<Map<String, Value>, SecretsError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(SecretsError::Malformed {
            secret_id: secret_id.to_owned(),
            problems: vec!["it is not a JSON object".into()],
        }),
    }
}

fn malformed_if(secret_id: &str, problems: Vec<String>) -> Result<(), SecretsError> {
    if problems.is_empty() {
        return Ok(());
    }
    Err(SecretsError::Malformed {
        secret_id: secret_id.to_owned(),
        problems,
    })
}

/// A non-empty string field; missing is a problem only when `required`.
fn field(
    map: &Map<String, Value>,
    name: &str,
    required: bool,
    problems: &mut Vec<String>,
) -> Option<String> {
    match map.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        None | Some(Value::Null) if !required => None,
        Some(Value::String(_)) | None | Some(Value::Null) => {
            problems.push(format!("{name} is missing"));
            None
        }
        Some(_) => {
            problems.push(format!("{name} must be a string"));
            None
        }
    }
}

fn long_enough(name: &str, key: &str, problems: &mut Vec<String>) -> bool {
    let ok = key.len() >= MIN_KEY_LEN;
    if !ok {
        problems.push(format!("{name} must be at least {MIN_KEY_LEN} characters"));
    }
    ok
}

fn string_list(
    map: &Map<String, Value>,
    name: &str,
    problems: &mut Vec<String>,
) -> Vec<SecretString> {
    match map.get(name) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.iter().all(|i| i.is_string()) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|s| SecretString::from(s.to_owned()))
            .collect(),
        Some(_) => {
            problems.push(format!("{name} must be an array of strings"));
            Vec::new()
        }
    }
}

/// Where the secrets come from.
enum Source {
    SecretsManager {
        client: aws_sdk_secretsmanager::Client,
        ids: BTreeMap<SecretPart, String>,
    },
    /// A fixed value, for tests.
    Fixed,
}

/// What was loaded, when, and which parts it holds.
#[derive(Clone)]
struct Loaded {
    secrets: Arc<Secrets>,
    at: Instant,
    parts: BTreeSet<SecretPart>,
}

/// The shortest time between two loads forced by a token or cursor signed with a key this
/// container does not know yet (a rotation another container saw first): a tenth of the
/// refresh interval, from 1 to 30 seconds, so that made-up key ids cost at most that.
fn forced_reload_interval(refresh_interval: Duration) -> Duration {
    (refresh_interval / 10).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// The secrets as this container knows them: the parts its endpoints require, loaded once,
/// refreshed after `refresh_interval` so that a rotation reaches warm containers; a failed
/// refresh keeps the last good value. A container that could not reach Secrets Manager at
/// its start loads the secrets on first use, and answers 503 until it can.
pub struct SecretsCache {
    source: Source,
    refresh_interval: Duration,
    wanted: Mutex<BTreeSet<SecretPart>>,
    current: RwLock<Option<Loaded>>,
    refreshing: tokio::sync::Mutex<()>,
}

impl SecretsCache {
    /// A cache of the parts named in `ids` (by [`SecretPart::variable`]); nothing is read
    /// until an endpoint requires a part ([`SecretsCache::require`]).
    pub fn new(
        client: aws_sdk_secretsmanager::Client,
        ids: &BTreeMap<SecretPart, String>,
        refresh_interval: Duration,
    ) -> Self {
        SecretsCache {
            source: Source::SecretsManager {
                client,
                ids: ids.clone(),
            },
            refresh_interval,
            wanted: Mutex::new(BTreeSet::new()),
            current: RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    pub fn fixed(secrets: Secrets) -> Self {
        SecretsCache {
            source: Source::Fixed,
            refresh_interval: Duration::MAX,
            wanted: Mutex::new(BTreeSet::new()),
            current: RwLock::new(Some(Loaded {
                secrets: Arc::new(secrets),
                at: Instant::now(),
                parts: SecretPart::ALL.into(),
            })),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// The secret id of `part`, if configured (for messages).
    pub fn id_of(&self, part: SecretPart) -> &str {
        match &self.source {
            Source::SecretsManager { ids, .. } => {
                ids.get(&part).map_or("(not set)", String::as_str)
            }
            Source::Fixed => "fixed",
        }
    }

    /// Declares, at a container's start, the parts `what` reads, and loads them. A part whose
    /// variable is not set, or whose secret is missing, unreadable or malformed (a key too
    /// short included), fails the cold start and names the problem; a secret that cannot be
    /// reached now is logged and loaded on first use.
    pub async fn require(&self, parts: &[SecretPart], what: &str) -> anyhow::Result<()> {
        if let Source::SecretsManager { ids, .. } = &self.source
            && let Some(part) = parts.iter().find(|part| !ids.contains_key(part))
        {
            anyhow::bail!(
                "{what} reads the secret named by {}, which is not set (its fields: {})",
                part.variable(),
                part.fields().join(", ")
            );
        }
        self.wanted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(parts.iter().copied());
        match self.get().await {
            Ok(_) => Ok(()),
            Err(error @ SecretsError::Unavailable { .. }) => {
                tracing::warn!(%error, "secret not loaded at start; it is loaded on first use");
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// The secrets, if they were ever loaded, without any I/O.
    pub fn loaded(&self) -> Option<Arc<Secrets>> {
        self.snapshot().map(|loaded| loaded.secrets)
    }

    /// The current secrets, refreshed when they are older than the refresh interval.
    pub async fn get(&self) -> Result<Arc<Secrets>, SecretsError> {
        self.get_within(self.refresh_interval).await
    }

    /// The current secrets, reloaded first (at most every 1 to 30 s) when they do not know the
    /// token key `kid`: after a rotation, a token or cursor signed by a container that saw
    /// the new key first is checked here without waiting for the refresh interval.
    pub async fn knowing(&self, kid: Option<&str>) -> Result<Arc<Secrets>, SecretsError> {
        let secrets = self.get().await?;
        match kid {
            Some(kid) if !secrets.knows_token_key(kid) => {
                self.get_within(forced_reload_interval(self.refresh_interval))
                    .await
            }
            _ => Ok(secrets),
        }
    }

    async fn get_within(&self, max_age: Duration) -> Result<Arc<Secrets>, SecretsError> {
        let snapshot = self.snapshot();
        let Source::SecretsManager { client, ids } = &self.source else {
            return snapshot
                .map(|loaded| loaded.secrets)
                .ok_or_else(|| SecretsError::NotAString {
                    secret_id: "fixed".into(),
                });
        };
        let wanted = self
            .wanted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match snapshot {
            Some(loaded) if loaded.parts.is_superset(&wanted) && loaded.at.elapsed() < max_age => {
                Ok(loaded.secrets)
            }
            Some(loaded) if loaded.parts.is_superset(&wanted) => {
                // One refresh at a time; everyone else keeps using the current value meanwhile.
                let Ok(_guard) = self.refreshing.try_lock() else {
                    return Ok(loaded.secrets);
                };
                match fetch(client, ids, &wanted).await {
                    Ok(fresh) => Ok(self.store(fresh, wanted)),
                    Err(error) => {
                        tracing::warn!(%error, "secret refresh failed; keeping the cached secret");
                        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(Loaded {
                            at: Instant::now(),
                            ..loaded.clone()
                        });
                        Ok(loaded.secrets)
                    }
                }
            }
            _ => {
                // Never loaded (or not every part): every request waits for one load and
                // shares it.
                let _guard = self.refreshing.lock().await;
                if let Some(loaded) = self.snapshot().filter(|l| l.parts.is_superset(&wanted)) {
                    return Ok(loaded.secrets);
                }
                Ok(self.store(fetch(client, ids, &wanted).await?, wanted))
            }
        }
    }

    fn snapshot(&self) -> Option<Loaded> {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        guard.clone()
    }

    fn store(&self, fresh: Secrets, parts: BTreeSet<SecretPart>) -> Arc<Secrets> {
        let fresh = Arc::new(fresh);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(Loaded {
            secrets: fresh.clone(),
            at: Instant::now(),
            parts,
        });
        fresh
    }
}

/// Loads every wanted part, the secrets side by side (and the token key's previous version).
async fn fetch(
    client: &aws_sdk_secretsmanager::Client,
    ids: &BTreeMap<SecretPart, String>,
    wanted: &BTreeSet<SecretPart>,
) -> Result<Secrets, SecretsError> {
    let reads = wanted.iter().filter_map(|part| {
        let id = ids.get(part)?;
        Some(async move {
            let text = read(client, id, None).await?;
            let previous = match part {
                SecretPart::TokenKey => read(client, id, Some("AWSPREVIOUS")).await.ok(),
                _ => None,
            };
            Ok::<_, SecretsError>((*part, id, text, previous))
        })
    });
    let mut secrets = Secrets::default();
    for read in futures::future::join_all(reads).await {
        let (part, id, text, previous) = read?;
        let text = text.ok_or_else(|| SecretsError::Unreadable {
            secret_id: id.clone(),
            cause: "it has no current version".into(),
        })?;
        secrets.absorb_part(part, id, &text)?;
        if let Some(Some(previous)) = previous {
            secrets.absorb_previous_token_key(id, &previous);
        }
    }
    Ok(secrets)
}

/// The secret's string at `stage` (the current version when `None`); `Ok(None)` when that
/// version does not exist.
async fn read(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
    stage: Option<&str>,
) -> Result<Option<String>, SecretsError> {
    use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .set_version_stage(stage.map(str::to_owned))
        .send()
        .await;
    let output = match output {
        Ok(output) => output,
        Err(SdkError::ServiceError(ctx))
            if stage.is_some() && ctx.err().is_resource_not_found_exception() =>
        {
            return Ok(None);
        }
        Err(e) => {
            let secret_id = secret_id.to_owned();
            return Err(match &e {
                SdkError::TimeoutError(_)
                | SdkError::DispatchFailure(_)
                | SdkError::ResponseError(_) => SecretsError::Unavailable {
                    secret_id,
                    cause: DisplayErrorContext(&e).to_string(),
                },
                SdkError::ServiceError(ctx)
                    if ctx.raw().status().is_server_error()
                        || ctx.err().code() == Some("ThrottlingException") =>
                {
                    SecretsError::Unavailable {
                        secret_id,
                        cause: format!("HTTP {}", ctx.raw().status().as_u16()),
                    }
                }
                SdkError::ServiceError(ctx) => SecretsError::Unreadable {
                    secret_id,
                    cause: ctx.err().code().unwrap_or("unknown error").to_owned(),
                },
                _ => SecretsError::Unreadable {
                    secret_id,
                    cause: DisplayErrorContext(&e).to_string(),
                },
            });
        }
    };
    let text = output
        .secret_string()
        .ok_or_else(|| SecretsError::NotAString {
            secret_id: secret_id.to_owned(),
        })?;
    Ok(Some(text.to_owned()))
}

/// HMAC-SHA256 over length-prefixed `parts`, hex (see [`Secrets::keyed_hash`]).
/// (HMAC takes a key of any length: `None` never happens in practice.)
fn keyed_hash(key: &[u8], parts: &[&str]) -> Option<String> {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).ok()?;
    for part in parts {
        mac.update(&(part.len() as u32).to_be_bytes());
        mac.update(part.as_bytes());
    }
    Some(hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "signing-key-signing-key-signing-key";

    #[test]
    fn a_complete_secret_parses_and_debug_shows_no_value() {
        let text = format!(
            r#"{{"token_signing_key":"{KEY}","app_signatures":["sig-one","sig-two"],
               "twilio_account_sid":"AC0123456789abcdef0123456789abcdef",
               "twilio_auth_token":"tok-secret-value","future_key":1}}"#
        );
        let s = Secrets::parse("id", &text).unwrap();
        assert!(s.allows_app_signature("sig-two"));
        assert!(!s.allows_app_signature("sig-tw"));
        assert!(!s.allows_app_signature(""));
        let debug = format!("{s:?}");
        assert!(!debug.contains("tok-secret-value") && !debug.contains(KEY));
    }

    #[test]
    fn every_problem_is_named_without_the_value() {
        let text = r#"{"token_signing_key":"short-secret-value","app_signatures":"nope",
                       "twilio_account_sid":"ACnothex"}"#;
        let err = Secrets::parse("my/secret", text).unwrap_err().to_string();
        assert!(err.contains("my/secret"), "{err}");
        assert!(
            err.contains("token_signing_key must be at least 32"),
            "{err}"
        );
        assert!(err.contains("app_signatures must be an array"), "{err}");
        assert!(err.contains("given together"), "{err}");
        assert!(!err.contains("short-secret-value"), "{err}");
    }

    #[test]
    fn test_numbers_parse_from_an_object_or_a_string_and_expire() {
        let entry = r#"{"+15555550100":{"code":"123456","valid_until":"2030-01-01T00:00:00Z"}}"#;
        let as_object = format!(r#"{{"token_signing_key":"{KEY}","TEST_PHONE_NUMBERS":{entry}}}"#);
        let as_string = serde_json::json!({"token_signing_key": KEY, "TEST_PHONE_NUMBERS": entry});
        for text in [as_object, as_string.to_string()] {
            let s = Secrets::parse("id", &text).unwrap();
            let before = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
            let after = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
            assert_eq!(
                s.test_number("+1 (555) 555-0100", before).unwrap().0,
                "+15555550100"
            );
            assert!(s.test_number("+15555550100", after).is_none());
            assert!(s.test_number("+15555550101", before).is_none());
            assert!(!format!("{s:?}").contains("123456"));
        }
        let bad = format!(
            r#"{{"token_signing_key":"{KEY}","TEST_PHONE_NUMBERS":{{"5550100":{{"code":"1"}},
               "+15555550100":{{"code":"12ab","valid_until":"soon"}}}}}}"#
        );
        let err = Secrets::parse("id", &bad).unwrap_err().to_string();
        assert!(err.contains("entry 1") && err.contains("entry 2"), "{err}");
        // A test number's code has at least six digits: four are guessed in an afternoon.
        let short = format!(
            r#"{{"token_signing_key":"{KEY}","TEST_PHONE_NUMBERS":{{"+15555550100":{{"code":"1234","valid_until":"2030-01-01T00:00:00Z"}}}}}}"#
        );
        let err = Secrets::parse("id", &short).unwrap_err().to_string();
        assert!(err.contains("6 to 10 digits"), "{err}");
    }

    #[test]
    fn a_missing_signing_key_or_non_object_is_refused() {
        let err = Secrets::parse("s", "{}").unwrap_err().to_string();
        assert!(err.contains("token_signing_key is missing"), "{err}");
        let err = Secrets::parse("s", "[1]").unwrap_err().to_string();
        assert!(err.contains("not a JSON object"), "{err}");
    }

    #[test]
    fn each_part_holds_its_own_fields_and_its_key_long_enough() {
        let mut s = Secrets::default();
        s.absorb_part(
            SecretPart::HashingKey,
            "h",
            &format!(r#"{{"code_hashing_key":"{KEY}"}}"#),
        )
        .unwrap();
        assert!(s.keyed_hash(&["x"]).is_ok() && s.token_keys().is_err());
        // A value another part's readers use is refused where it does not belong.
        let err = Secrets::default()
            .absorb_part(
                SecretPart::Clients,
                "c",
                r#"{"app_signatures":[],"twilio_auth_token":"tok-secret-value"}"#,
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("twilio_auth_token belongs in the secret named by TWILIO_SECRET_ID"),
            "{err}"
        );
        assert!(!err.contains("tok-secret-value"), "{err}");
        for (part, field) in [
            (SecretPart::HashingKey, "code_hashing_key"),
            (SecretPart::TokenKey, "token_signing_key"),
        ] {
            let short = format!(r#"{{"{field}":"only-31-characters-long-key-xx"}}"#);
            let err = Secrets::default()
                .absorb_part(part, "k", &short)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("{field} must be at least 32")),
                "{err}"
            );
            let err = Secrets::default()
                .absorb_part(part, "k", "{}")
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("{field} is missing")), "{err}");
        }
        // Twilio's secret may be empty (the logging gateway, locally).
        let mut twilio = Secrets::default();
        twilio.absorb_part(SecretPart::Twilio, "t", "{}").unwrap();
        assert!(twilio.twilio.is_none());
    }

    #[test]
    fn the_previous_token_key_is_kept_beside_the_current_one() {
        let mut s = Secrets::default();
        s.absorb_part(
            SecretPart::TokenKey,
            "t",
            &format!(r#"{{"token_signing_key":"{KEY}"}}"#),
        )
        .unwrap();
        let old = "previous-key-previous-key-previous-key";
        s.absorb_previous_token_key("t", &format!(r#"{{"token_signing_key":"{old}"}}"#));
        let keys = s.token_keys().unwrap();
        let old_kid = SigningKey::new(old.to_owned().into()).kid;
        assert_eq!(keys.previous.as_ref().unwrap().kid, old_kid);
        assert!(s.knows_token_key(&old_kid) && s.knows_token_key(&keys.current.kid));
        assert!(!s.knows_token_key("0000000000000000"));
        assert_eq!(keys.current.kid.len(), 16);
        assert!(!format!("{s:?}").contains(old));
    }
}
