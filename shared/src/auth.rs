//! Who is calling: a service holding an API key (stored in the secret only as its SHA-256), or
//! a person holding the access token `verify` issued for their number.

use std::sync::Arc;

use lambda_http::Request;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::config::Config;
use crate::http::{ApiError, ErrorCode, bearer_token};
use crate::init::Init;
use crate::phone::PhoneNumber;
use crate::secrets::{Secrets, SecretsCache};
use crate::token::{self, TokenError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Service,
    /// The holder of an access token for this number.
    Phone(PhoneNumber),
}

/// The hex SHA-256 of an API key: what the secret stores. API keys are long random strings, so
/// a fast hash is enough; what matters is that the secret never holds a usable key.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn is_service_key(secrets: &Secrets, presented: &str) -> bool {
    let hash = hash_api_key(presented);
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

/// What an endpoint needs to tell who is calling; built once per container.
pub struct Authenticator {
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    secrets: Arc<SecretsCache>,
}

impl Authenticator {
    pub async fn new(init: &Init) -> anyhow::Result<Self> {
        Ok(Authenticator {
            config: init.config.clone(),
            clock: init.clock.clone(),
            secrets: {
                let secrets = init.secrets();
                let (warmed, ()) = tokio::join!(secrets.warm(), crate::phone::warm_up());
                warmed?;
                secrets
            },
        })
    }

    /// The caller of `req`, and the secret it was checked against (for keys derived from it).
    pub async fn caller(&self, req: &Request) -> Result<(Caller, Arc<Secrets>), ApiError> {
        let secrets = self.secrets.get().await?;
        let caller = authenticate(req, &secrets, &self.config, self.clock.now())?;
        Ok((caller, secrets))
    }
}

pub fn authenticate(
    req: &Request,
    secrets: &Secrets,
    config: &Config,
    now: OffsetDateTime,
) -> Result<Caller, ApiError> {
    let Some(presented) = bearer_token(req) else {
        return Err(unauthorized(
            ErrorCode::MissingCredentials,
            "send Authorization: Bearer <service key or access token>",
        ));
    };
    if is_service_key(secrets, presented) {
        return Ok(Caller::Service);
    }
    match token::verify(secrets, config, presented, now) {
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

/// Only a service may act; a person's token is refused.
pub fn require_service(caller: &Caller) -> Result<(), ApiError> {
    match caller {
        Caller::Service => Ok(()),
        Caller::Phone(_) => Err(ApiError::refused(
            ErrorCode::ServiceKeyRequired,
            "this endpoint takes a service API key",
        )),
    }
}

/// A service, or the holder of a token for exactly `number`.
pub fn require_service_or_owner(caller: &Caller, number: &PhoneNumber) -> Result<(), ApiError> {
    match caller {
        Caller::Service => Ok(()),
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
        assert!(is_service_key(&secrets, "svc-key-1"));
        assert!(!is_service_key(&secrets, "svc-key-2"));
        assert_eq!(hash_api_key("abc").len(), 64);
    }
}
