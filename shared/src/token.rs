//! Access tokens: short-lived HS256 JWTs whose subject is a verified phone number.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::config::Config;
use crate::phone::PhoneNumber;
use crate::secrets::Secrets;

pub const TOKEN_TYPE: &str = "Bearer";
const AUDIENCE: &str = "phone-verification";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
    /// The verification that produced the token.
    jti: String,
    /// How the number was proven (`flash_call`, `sms`).
    amr: Vec<String>,
}

#[derive(Debug)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the access token is malformed or its signature is wrong")]
    Invalid,
    #[error("the access token has expired")]
    Expired,
}

pub fn issue(
    secrets: &Secrets,
    config: &Config,
    phone: &PhoneNumber,
    verification_id: &str,
    method: &str,
    now: OffsetDateTime,
) -> anyhow::Result<IssuedToken> {
    let lifetime = config.token_lifetime.as_secs();
    let claims = Claims {
        sub: phone.to_string(),
        iss: config.token_issuer.clone(),
        aud: AUDIENCE.into(),
        iat: now.unix_timestamp(),
        exp: now.unix_timestamp() + lifetime as i64,
        jti: verification_id.to_owned(),
        amr: vec![method.to_owned()],
    };
    let signing = &secrets.token_keys()?.current;
    let key = EncodingKey::from_secret(signing.bytes());
    let header = Header {
        kid: Some(signing.kid.clone()),
        ..Header::new(Algorithm::HS256)
    };
    let token = jsonwebtoken::encode(&header, &claims, &key)?;
    Ok(IssuedToken {
        token,
        expires_in: lifetime,
    })
}

/// The id of the key that signed `token`, if it is a JWT that names one.
pub fn key_id(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok()?.kid
}

/// Whether `presented` has the shape of one of our access tokens (a JWT signed HS256), without
/// checking its signature: what a function that does not read the token key can tell.
pub fn looks_like_token(presented: &str) -> bool {
    jsonwebtoken::decode_header(presented).is_ok_and(|h| h.alg == Algorithm::HS256)
}

/// Checks a token's signature, issuer, audience and expiry (against the injected clock) and
/// returns the phone number it was issued for.
pub fn verify(
    secrets: &Secrets,
    config: &Config,
    token: &str,
    now: OffsetDateTime,
) -> Result<PhoneNumber, TokenError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[&config.token_issuer]);
    validation.set_audience(&[AUDIENCE]);
    // Expiry is checked below against the injected clock, not the system's.
    validation.validate_exp = false;
    validation.required_spec_claims = ["exp", "sub", "iss", "aud"]
        .into_iter()
        .map(String::from)
        .collect();
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
    // The current key or the previous one, by the token's `kid`; a token without one (issued
    // before keys had ids) is the current key's.
    let signing = secrets
        .token_keys
        .as_ref()
        .and_then(|keys| keys.by_kid(header.kid.as_deref()))
        .ok_or(TokenError::Invalid)?;
    let key = DecodingKey::from_secret(signing.bytes());
    let data = jsonwebtoken::decode::<Claims>(token, &key, &validation)
        .map_err(|_| TokenError::Invalid)?;
    if data.claims.exp <= now.unix_timestamp() {
        return Err(TokenError::Expired);
    }
    PhoneNumber::parse(&data.claims.sub).map_err(|_| TokenError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn secrets(key: &str) -> Secrets {
        Secrets::parse("s", &format!(r#"{{"token_signing_key":"{key}"}}"#)).unwrap()
    }

    #[test]
    fn a_token_proves_its_phone_until_it_expires() {
        let config = Config::from_vars(HashMap::new()).unwrap();
        let s = secrets("k".repeat(32).as_str());
        let phone = PhoneNumber::parse("+14155550123").unwrap();
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let t = issue(&s, &config, &phone, "id", "flash_call", now).unwrap();
        assert_eq!(t.expires_in, 900);
        assert_eq!(verify(&s, &config, &t.token, now), Ok(phone));
        let later = now + time::Duration::seconds(900);
        assert_eq!(
            verify(&s, &config, &t.token, later),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_token_signed_with_another_key_or_tampered_with_is_invalid() {
        let config = Config::from_vars(HashMap::new()).unwrap();
        let phone = PhoneNumber::parse("+14155550123").unwrap();
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let t = issue(&secrets(&"a".repeat(32)), &config, &phone, "id", "sms", now).unwrap();
        let other = secrets(&"b".repeat(32));
        assert_eq!(
            verify(&other, &config, &t.token, now),
            Err(TokenError::Invalid)
        );
        let mut tampered = t.token.clone();
        tampered.insert(tampered.len() / 2, 'x');
        let same = secrets(&"a".repeat(32));
        assert_eq!(
            verify(&same, &config, &tampered, now),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn after_a_rotation_the_previous_keys_tokens_pass_until_they_expire() {
        use crate::secrets::{SigningKey, TokenKeys};
        let config = Config::from_vars(HashMap::new()).unwrap();
        let phone = PhoneNumber::parse("+14155550123").unwrap();
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let (old, new) = ("o".repeat(32), "n".repeat(32));
        let t = issue(&secrets(&old), &config, &phone, "id", "sms", now).unwrap();
        assert_eq!(
            key_id(&t.token),
            Some(SigningKey::new(old.clone().into()).kid)
        );
        let mut rotated = secrets(&new);
        rotated.token_keys = Some(TokenKeys {
            current: SigningKey::new(new.clone().into()),
            previous: Some(SigningKey::new(old.clone().into())),
        });
        assert_eq!(verify(&rotated, &config, &t.token, now), Ok(phone.clone()));
        let later = now + time::Duration::seconds(900);
        assert_eq!(
            verify(&rotated, &config, &t.token, later),
            Err(TokenError::Expired)
        );
        // New tokens are the new key's.
        let fresh = issue(&rotated, &config, &phone, "id", "sms", now).unwrap();
        assert_eq!(key_id(&fresh.token), Some(SigningKey::new(new.into()).kid));
        assert_eq!(
            verify(&secrets(&old), &config, &fresh.token, now),
            Err(TokenError::Invalid)
        );
        assert!(looks_like_token(&fresh.token) && !looks_like_token("svc-key"));
    }
}
