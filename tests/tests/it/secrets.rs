//! The secrets as the functions load them from Secrets Manager (moto): one per purpose, each
//! function's own required at its start, the token key rotated without refusing what the
//! previous key signed.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use shared::calls::Cursor;
use shared::flash_call::VerifyEndpoint;
use shared::http::Endpoint;
use shared::phone::PhoneNumber;
use shared::secrets::{SecretPart, SecretsCache};
use shared::token::{self, TokenError};

async fn client() -> aws_sdk_secretsmanager::Client {
    let config = tests::config(&[]);
    aws_sdk_secretsmanager::Client::new(&shared::aws::sdk_config(&config).await)
}

/// A new secret holding `value`; its id.
async fn secret(client: &aws_sdk_secretsmanager::Client, value: serde_json::Value) -> String {
    let id = format!("it/{}", uuid::Uuid::new_v4().simple());
    client
        .create_secret()
        .name(&id)
        .secret_string(value.to_string())
        .send()
        .await
        .expect("secret created");
    id
}

async fn rotate(client: &aws_sdk_secretsmanager::Client, id: &str, key: &str) {
    client
        .put_secret_value()
        .secret_id(id)
        .secret_string(json!({"token_signing_key": key}).to_string())
        .send()
        .await
        .expect("rotated");
}

fn key(n: u8) -> String {
    format!("rotation-test-key-number-{n}-").repeat(2)
}

#[tokio::test]
async fn a_rotated_token_key_keeps_the_previous_keys_tokens_and_cursors_until_the_next_rotation() {
    let config = tests::config(&[]);
    let client = client().await;
    let id = secret(&client, json!({"token_signing_key": key(1)})).await;
    let ids = BTreeMap::from([(SecretPart::TokenKey, id.clone())]);
    let cache = || SecretsCache::new(client.clone(), &ids, Duration::from_secs(10));
    // A container that started before the rotation.
    let warm = cache();
    warm.require(&[SecretPart::TokenKey], "test").await.unwrap();
    let before = warm.get().await.unwrap();
    let phone = PhoneNumber::parse("+14155550123").unwrap();
    let now = time::OffsetDateTime::now_utc();
    let old_token = token::issue(&before, &config, &phone, "v1", "sms", now)
        .unwrap()
        .token;
    let page = Cursor {
        keys: BTreeMap::from([("pk".to_owned(), "CALL#1".to_owned())]),
    };
    let old_cursor = page.seal(before.token_keys().unwrap(), "scope");

    rotate(&client, &id, &key(2)).await;
    // A container that starts after it: the new key signs, the old one still checks.
    let fresh = cache();
    fresh
        .require(&[SecretPart::TokenKey], "test")
        .await
        .unwrap();
    let after = fresh.get().await.unwrap();
    let keys = after.token_keys().unwrap();
    assert_ne!(keys.current.kid, before.token_keys().unwrap().current.kid);
    assert_eq!(
        keys.previous.as_ref().map(|k| &k.kid),
        Some(&before.token_keys().unwrap().current.kid)
    );
    assert_eq!(
        token::verify(&after, &config, &old_token, now),
        Ok(phone.clone())
    );
    assert_eq!(Cursor::open(&old_cursor, keys, "scope"), Ok(page.clone()));
    let new_token = token::issue(&after, &config, &phone, "v2", "sms", now)
        .unwrap()
        .token;

    // The warm container does not know the new key; once a second has passed since its load,
    // a token naming the new key has it reload instead of waiting out the refresh interval.
    assert_eq!(
        token::verify(&before, &config, &new_token, now),
        Err(TokenError::Invalid)
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reloaded = warm
        .knowing(token::key_id(&new_token).as_deref())
        .await
        .unwrap();
    assert_eq!(
        token::verify(&reloaded, &config, &new_token, now),
        Ok(phone.clone())
    );
    assert_eq!(
        token::verify(&reloaded, &config, &old_token, now),
        Ok(phone.clone())
    );

    // A second rotation retires the first key: what it signed is refused.
    rotate(&client, &id, &key(3)).await;
    let later = cache();
    later
        .require(&[SecretPart::TokenKey], "test")
        .await
        .unwrap();
    let third = later.get().await.unwrap();
    assert_eq!(
        token::verify(&third, &config, &old_token, now),
        Err(TokenError::Invalid)
    );
    assert!(Cursor::open(&old_cursor, third.token_keys().unwrap(), "scope").is_err());
    assert_eq!(token::verify(&third, &config, &new_token, now), Ok(phone));
}

#[tokio::test]
async fn a_function_without_its_secret_or_with_a_short_key_does_not_start_and_says_why() {
    let (init, _, _) = tests::init(&[("TOKEN_KEY_SECRET_ID", "")]).await;
    let error = format!("{:#}", VerifyEndpoint::init(&init).await.err().unwrap());
    assert!(error.contains("TOKEN_KEY_SECRET_ID"), "{error}");

    let client = client().await;
    let short = secret(&client, json!({"code_hashing_key": "short-key"})).await;
    let (init, _, _) = tests::init(&[("HASHING_KEY_SECRET_ID", &short)]).await;
    let error = format!("{:#}", VerifyEndpoint::init(&init).await.err().unwrap());
    assert!(
        error.contains("code_hashing_key must be at least 32 characters"),
        "{error}"
    );
    assert!(!error.contains("short-key"), "{error}");

    // A value of another purpose in a function's secret is refused where it stands.
    let mixed = secret(
        &client,
        json!({"code_hashing_key": key(4), "twilio_auth_token": "tok-secret-value"}),
    )
    .await;
    let (init, _, _) = tests::init(&[("HASHING_KEY_SECRET_ID", &mixed)]).await;
    let error = format!("{:#}", VerifyEndpoint::init(&init).await.err().unwrap());
    assert!(
        error.contains("twilio_auth_token belongs in the secret named by TWILIO_SECRET_ID"),
        "{error}"
    );
    assert!(!error.contains("tok-secret-value"), "{error}");
}
