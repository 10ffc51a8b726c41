//! `Secrets`: the one Secrets Manager secret, validated at load and cached per container.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use time::OffsetDateTime;

use crate::config::Config;

/// The parsed secret. Every value is a `SecretString`: `Debug` shows none of them.
#[derive(Debug)]
pub struct Secrets {
    /// Twilio's account SID and auth token: calls and messages go to Twilio.
    pub twilio: Option<TwilioCredentials>,
    /// The auth token Twilio signs its webhooks with: the account's, or, locally, a token of
    /// its own alone (the logging gateway signs its simulated callbacks with it).
    pub twilio_webhook_token: Option<SecretString>,
    pub app_signatures: Vec<SecretString>,
    pub token_signing_key: SecretString,
    pub code_hashing_key: Option<SecretString>,
    /// SHA-256 hex digests of the service API keys, never the keys themselves.
    pub service_api_key_hashes: Vec<SecretString>,
    /// Numbers for app-store reviewers (`TEST_PHONE_NUMBERS`), by E.164: no SMS, a fixed code.
    pub test_numbers: HashMap<String, TestNumber>,
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

/// The shortest token-signing key accepted: HS256 wants at least 256 bits.
const MIN_KEY_LEN: usize = 32;

impl Secrets {
    /// A keyed hash of `parts` under the secret's `code_hashing_key`: HMAC-SHA256 over the
    /// length-prefixed parts, hex. What the table keeps instead of a live answer (a code, a
    /// session's caller ID), so that a table dump, its stream or a backup yields none without
    /// the key. Fails only when the secret has no `code_hashing_key` (the functions that hash
    /// refuse to start without one: [`require_hashing_key`]).
    pub fn keyed_hash(&self, parts: &[&str]) -> anyhow::Result<String> {
        let key = self
            .code_hashing_key
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the secret has no code_hashing_key"))?;
        keyed_hash(key.expose_secret().as_bytes(), parts)
            .ok_or_else(|| anyhow::anyhow!("the keyed hash could not be made"))
    }

    /// Parses the secret's JSON. Problems name the field, never its value; unknown fields are
    /// allowed so that a secret can gain keys before the code that reads them is deployed.
    pub fn parse(secret_id: &str, text: &str) -> Result<Self, SecretsError> {
        let malformed = |problems: Vec<String>| SecretsError::Malformed {
            secret_id: secret_id.to_owned(),
            problems,
        };
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
            return Err(malformed(vec!["it is not a JSON object".into()]));
        };
        let mut problems = Vec::new();
        let mut string = |name: &str, required: bool| -> Option<String> {
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
        };
        let token_signing_key = string("token_signing_key", true);
        let code_hashing_key = string("code_hashing_key", false);
        let account_sid = string("twilio_account_sid", false);
        let auth_token = string("twilio_auth_token", false);
        let mut string_list = |name: &str| -> Vec<SecretString> {
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
        };
        let app_signatures = string_list("app_signatures");
        let service_api_key_hashes = string_list("service_api_key_hashes");
        let test_numbers = parse_test_numbers(map.get("TEST_PHONE_NUMBERS"), &mut problems);

        if token_signing_key
            .as_ref()
            .is_some_and(|k| k.len() < MIN_KEY_LEN)
        {
            problems.push(format!(
                "token_signing_key must be at least {MIN_KEY_LEN} characters"
            ));
        }
        let twilio_webhook_token = auth_token.clone().map(SecretString::from);
        let twilio = match (account_sid, auth_token) {
            (Some(account_sid), Some(auth_token)) => {
                if !is_account_sid(&account_sid) {
                    problems.push("twilio_account_sid must be AC followed by 32 hex digits".into());
                }
                Some(TwilioCredentials {
                    account_sid,
                    auth_token: auth_token.into(),
                })
            }
            // A token alone signs webhooks (locally) but places nothing.
            (None, _) => None,
            (Some(_), None) => {
                problems
                    .push("twilio_account_sid and twilio_auth_token must be given together".into());
                None
            }
        };
        match token_signing_key {
            Some(key) if problems.is_empty() => Ok(Secrets {
                twilio,
                twilio_webhook_token,
                app_signatures,
                token_signing_key: key.into(),
                code_hashing_key: code_hashing_key.map(SecretString::from),
                service_api_key_hashes,
                test_numbers,
            }),
            _ => Err(malformed(problems)),
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

/// Where the secret comes from.
enum Source {
    SecretsManager {
        client: aws_sdk_secretsmanager::Client,
        secret_id: String,
    },
    /// A fixed value, for tests.
    Fixed,
}

/// The secret as this container knows it: loaded once, refreshed after `refresh_interval` so
/// that a rotation reaches warm containers; a failed refresh keeps the last good value. A
/// container that could not reach Secrets Manager at its start loads the secret on first use,
/// and answers 503 until it can.
pub struct SecretsCache {
    source: Source,
    refresh_interval: Duration,
    current: RwLock<Option<(Arc<Secrets>, Instant)>>,
    refreshing: tokio::sync::Mutex<()>,
}

impl SecretsCache {
    /// A cache of the secret `secret_id`; nothing is read yet (see [`SecretsCache::warm`]).
    pub fn new(
        client: aws_sdk_secretsmanager::Client,
        secret_id: &str,
        refresh_interval: Duration,
    ) -> Self {
        SecretsCache {
            source: Source::SecretsManager {
                client,
                secret_id: secret_id.to_owned(),
            },
            refresh_interval,
            current: RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    pub fn fixed(secrets: Secrets) -> Self {
        SecretsCache {
            source: Source::Fixed,
            refresh_interval: Duration::MAX,
            current: RwLock::new(Some((Arc::new(secrets), Instant::now()))),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// Loads the secret at a container's start. A secret that is missing, unreadable or
    /// malformed is an error (the cold start fails and names the problem); one that cannot be
    /// reached now is logged and loaded on first use.
    pub async fn warm(&self) -> Result<(), SecretsError> {
        match self.get().await {
            Ok(_) => Ok(()),
            Err(error @ SecretsError::Unavailable { .. }) => {
                tracing::warn!(%error, "secret not loaded at start; it is loaded on first use");
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// The secret, if it was ever loaded, without any I/O.
    pub fn loaded(&self) -> Option<Arc<Secrets>> {
        self.snapshot().map(|(secrets, _)| secrets)
    }

    /// The current secret, refreshed when it is older than the refresh interval.
    pub async fn get(&self) -> Result<Arc<Secrets>, SecretsError> {
        let snapshot = self.snapshot();
        let Source::SecretsManager { client, secret_id } = &self.source else {
            return snapshot
                .map(|(secrets, _)| secrets)
                .ok_or_else(|| SecretsError::NotAString {
                    secret_id: "fixed".into(),
                });
        };
        match snapshot {
            Some((secrets, loaded_at)) if loaded_at.elapsed() < self.refresh_interval => {
                Ok(secrets)
            }
            Some((secrets, _)) => {
                // One refresh at a time; everyone else keeps using the current value meanwhile.
                let Ok(_guard) = self.refreshing.try_lock() else {
                    return Ok(secrets);
                };
                match fetch(client, secret_id).await {
                    Ok(fresh) => Ok(self.store(fresh)),
                    Err(error) => {
                        tracing::warn!(%error, "secret refresh failed; keeping the cached secret");
                        *self.current.write().unwrap_or_else(|p| p.into_inner()) =
                            Some((secrets.clone(), Instant::now()));
                        Ok(secrets)
                    }
                }
            }
            None => {
                // Never loaded: every request waits for one load and shares it.
                let _guard = self.refreshing.lock().await;
                if let Some((secrets, _)) = self.snapshot() {
                    return Ok(secrets);
                }
                Ok(self.store(fetch(client, secret_id).await?))
            }
        }
    }

    fn snapshot(&self) -> Option<(Arc<Secrets>, Instant)> {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        guard.clone()
    }

    fn store(&self, fresh: Secrets) -> Arc<Secrets> {
        let fresh = Arc::new(fresh);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) =
            Some((fresh.clone(), Instant::now()));
        fresh
    }
}

async fn fetch(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<Secrets, SecretsError> {
    use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| {
            let secret_id = secret_id.to_owned();
            match &e {
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
            }
        })?;
    let text = output
        .secret_string()
        .ok_or_else(|| SecretsError::NotAString {
            secret_id: secret_id.to_owned(),
        })?;
    Secrets::parse(secret_id, text)
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

/// Fails a cold start whose (loaded) secret has no `code_hashing_key`: `what` keeps its
/// answers as keyed hashes and could serve nothing.
pub fn require_hashing_key(
    config: &Config,
    secrets: &SecretsCache,
    what: &str,
) -> anyhow::Result<()> {
    if secrets
        .loaded()
        .is_some_and(|s| s.code_hashing_key.is_none())
    {
        anyhow::bail!(
            "secret {} has no code_hashing_key, which {what} needs to keep its answers as keyed hashes",
            config.secret_id
        );
    }
    Ok(())
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
}
