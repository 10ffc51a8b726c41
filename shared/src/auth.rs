//! Who is calling: a service holding an API key (stored in the secret only as its SHA-256), or
//! a person holding the access token `verify` issued for their number.

use std::sync::Arc;

use lambda_http::Request;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::config::Config;
use crate::http::{ApiError, ErrorCode, bearer_token};
use crate::init::Init;
use crate::phone::PhoneNumber;
use crate::secrets::{SecretPart, Secrets, SecretsCache};
use crate::token::{self, TokenError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A holder of a service API key, named by the key's id (`service_key_id`).
    Service { key_id: String },
    /// The holder of an access token for this number.
    Phone(PhoneNumber),
}

impl Caller {
    /// The service key's id, for a service.
    pub fn service_key_id(&self) -> Option<&str> {
        match self {
            Caller::Service { key_id } => Some(key_id),
            Caller::Phone(_) => None,
        }
    }
}

/// The hex SHA-256 of an API key: what the secret stores. API keys are long random strings, so
/// a fast hash is enough; what matters is that the secret never holds a usable key.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A service key's id: the first 16 hex digits of its hash, as the secret lists it. It names
/// the key (what it sent, the Idempotency-Keys it used) and says nothing of the key itself.
pub fn service_key_id(key_hash: &str) -> String {
    key_hash[..16].to_owned()
}

fn is_service_key(secrets: &Secrets, hash: &str) -> bool {
    secrets
        .service_api_key_hashes
        .iter()
        .fold(subtle::Choice::from(0), |found, stored| {
            found
                | stored
                    .expose_secret()
                    .to_ascii_lowercase()
                    .as_bytes()
                    .ct_eq(hash.as_bytes())
        })
        .into()
}

fn unauthorized(code: ErrorCode, detail: &str) -> ApiError {
    ApiError::refused(code, detail)
}

/// The credentials an endpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// Service API keys only. A person's access token is refused (403
    /// `service_key_required`) by its shape: such a function does not read the token key.
    ServiceKeys,
    /// Service API keys and people's access tokens (checked with the token key).
    ServiceKeysAndTokens,
}

/// What an endpoint needs to tell who is calling; built once per container.
pub struct Authenticator {
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    secrets: Arc<SecretsCache>,
    accepts: Accepts,
}

impl Authenticator {
    /// Loads `parts` (the endpoint's secrets: the clients', and the token key where people's
    /// tokens are taken) for `what`.
    pub async fn new(init: &Init, parts: &[SecretPart], what: &str) -> anyhow::Result<Self> {
        let accepts = if parts.contains(&SecretPart::TokenKey) {
            Accepts::ServiceKeysAndTokens
        } else {
            Accepts::ServiceKeys
        };
        let secrets = init.secrets();
        let (warmed, ()) = tokio::join!(secrets.require(parts, what), crate::phone::warm_up());
        warmed?;
        Ok(Authenticator {
            config: init.config.clone(),
            clock: init.clock.clone(),
            secrets,
            accepts,
        })
    }

    /// The caller of `req`, and the secrets it was checked against (for keys derived from
    /// them). A token signed with a key this container does not know yet (a rotation) has the
    /// secrets reloaded first.
    pub async fn caller(&self, req: &Request) -> Result<(Caller, Arc<Secrets>), ApiError> {
        let kid = match self.accepts {
            Accepts::ServiceKeysAndTokens => bearer_token(req).and_then(token::key_id),
            Accepts::ServiceKeys => None,
        };
        let secrets = self.secrets.knowing(kid.as_deref()).await?;
        let caller = self.authenticate(req, &secrets)?;
        Ok((caller, secrets))
    }

    fn authenticate(&self, req: &Request, secrets: &Secrets) -> Result<Caller, ApiError> {
        let Some(presented) = bearer_token(req) else {
            return Err(unauthorized(
                ErrorCode::MissingCredentials,
                "send Authorization: Bearer <service key or access token>",
            ));
        };
        let hash = hash_api_key(presented);
        if is_service_key(secrets, &hash) {
            return Ok(Caller::Service {
                key_id: service_key_id(&hash),
            });
        }
        if self.accepts == Accepts::ServiceKeys {
            return Err(if token::looks_like_token(presented) {
                ApiError::refused(
                    ErrorCode::ServiceKeyRequired,
                    "this endpoint takes a service API key",
                )
            } else {
                unauthorized(
                    ErrorCode::InvalidCredentials,
                    "the credentials are not valid",
                )
            });
        }
        match token::verify(secrets, &self.config, presented, self.clock.now()) {
            Ok(phone) => Ok(Caller::Phone(phone)),
            Err(TokenError::Expired) => Err(unauthorized(
                ErrorCode::TokenExpired,
                "the access token has expired",
            )),
            Err(TokenError::Invalid) => Err(unauthorized(
                ErrorCode::InvalidCredentials,
                "the credentials are not valid",
            )),
        }
    }
}

/// A service, or the holder of a token for exactly `number`.
pub fn require_service_or_owner(caller: &Caller, number: &PhoneNumber) -> Result<(), ApiError> {
    match caller {
        Caller::Service { .. } => Ok(()),
        Caller::Phone(own) if own == number => Ok(()),
        Caller::Phone(_) => Err(ApiError::refused(
            ErrorCode::NotYourNumber,
            "an access token only opens its own number's history",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hash_of_a_key_is_needed_to_recognise_it() {
        let text = format!(
            r#"{{"token_signing_key":"{}","service_api_key_hashes":["{}"]}}"#,
            "k".repeat(32),
            hash_api_key("svc-key-1").to_uppercase()
        );
        let secrets = Secrets::parse("s", &text).unwrap();
        assert!(is_service_key(&secrets, &hash_api_key("svc-key-1")));
        assert!(!is_service_key(&secrets, &hash_api_key("svc-key-2")));
        assert_eq!(hash_api_key("abc").len(), 64);
        assert_eq!(service_key_id(&hash_api_key("svc-key-1")).len(), 16);
    }
}
