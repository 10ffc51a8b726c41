//! Ambiguous outcomes and ownership: a provider that got a request and gave no answer may have
//! rung the phone or sent the message, so nothing is taken as "not sent" (the message's entry
//! is `unknown` until a callback settles it, the Idempotency-Key is held, the allowance, the
//! code and the session are kept); and a service key's Idempotency-Keys and messages are its
//! own.

use std::sync::Arc;

use serde_json::{Value, json};
use shared::secrets::SecretsCache;
use shared::session::SessionState;
use shared::telephony::TelephonyError;
use tests::{OTHER_SERVICE_KEY, Reply, SERVICE_KEY, TestApp, random_phone};

const TOKEN: &str = "test-webhook-token";

fn secrets() -> Arc<SecretsCache> {
    tests::secrets_with(json!({"twilio_auth_token": TOKEN}))
}

fn no_answer() -> TelephonyError {
    TelephonyError::Ambiguous("the request to Twilio timed out".into())
}

/// Twilio's signed status callback for message `id`.
async fn message_callback(app: &TestApp, id: &str, sid: &str, status: &str) -> Reply {
    let url = format!("{}/webhooks/twilio/messages?message_id={id}", app.url);
    let params = [
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("MessageSid", sid),
        ("MessageStatus", status),
    ];
    app.post_signed(TOKEN, &url, &params).await
}

fn message_id_of_last_message_to(app: &TestApp, to: &shared::phone::PhoneNumber) -> String {
    let callback = app
        .phone
        .messages_to(to)
        .last()
        .unwrap()
        .status_callback
        .clone();
    callback
        .unwrap()
        .split_once("message_id=")
        .unwrap()
        .1
        .to_owned()
}

#[tokio::test]
async fn an_sms_send_without_the_providers_answer_is_unknown_and_its_key_held_until_a_callback_settles_it()
 {
    let app = TestApp::spawn_public(&[], secrets(), true).await;
    let to = random_phone();
    let body = json!({"to": to, "body": "Your order shipped."});
    let key = format!("order-{}", uuid::Uuid::new_v4());
    app.phone.fail_with(no_answer());

    let reply = app.send_sms(&body, Some(&key)).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(reply.body["status"], "unknown");
    assert_eq!(reply.body["provider_message_id"], Value::Null);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    let entry = app.sms(&id).await;
    assert_eq!(entry.body["status"], "unknown", "{}", entry.body);

    app.phone.recover();
    let retried = app.send_sms(&body, Some(&key)).await;
    assert_eq!(retried.status, 409, "{}", retried.body);
    assert_eq!(retried.body["error"], "idempotency_key_in_progress");
    assert_eq!(app.phone.messages_to(&to).len(), 1, "never sent twice");

    let sid = format!("SM{}", uuid::Uuid::new_v4().simple());
    let settled = message_callback(&app, &id, &sid, "sent").await;
    assert!(settled.status < 300, "{}", settled.body);
    let entry = app.sms(&id).await;
    assert_eq!(entry.body["status"], "sent", "{}", entry.body);
    assert_eq!(entry.body["provider_message_id"], sid);

    let replayed = app.send_sms(&body, Some(&key)).await;
    assert_eq!(replayed.status, 202, "{}", replayed.body);
    assert_eq!(replayed.headers["idempotent-replayed"], "true");
    assert_eq!(replayed.body["id"], id.as_str());
    assert_eq!(replayed.body["status"], "sent");
    assert_eq!(replayed.body["provider_message_id"], sid);
    assert_eq!(app.phone.messages_to(&to).len(), 1, "never sent twice");

    // The callbacks go on moving the entry.
    message_callback(&app, &id, &sid, "delivered").await;
    assert_eq!(app.sms(&id).await.body["status"], "delivered");
}

#[tokio::test]
async fn a_send_the_provider_refused_is_not_unknown_and_frees_its_key() {
    let app = TestApp::spawn_public(&[], secrets(), true).await;
    let to = random_phone();
    let body = json!({"to": to, "body": "retry me"});
    let key = format!("k-{}", uuid::Uuid::new_v4());
    app.phone
        .fail_with(TelephonyError::Unavailable("no connection".into()));
    let reply = app.send_sms(&body, Some(&key)).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    let id = message_id_of_last_message_to(&app, &to);
    assert_eq!(app.sms(&id).await.body["status"], "failed");
    app.phone.recover();
    let retried = app.send_sms(&body, Some(&key)).await;
    assert_eq!(retried.status, 202, "{}", retried.body);
    assert!(retried.headers.get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn a_code_without_the_providers_answer_is_kept_with_its_allowance() {
    let app = TestApp::spawn_public(
        &[("MAX_CODE_SENDS_PER_PHONE_PER_HOUR", "1")],
        secrets(),
        true,
    )
    .await;
    let phone = random_phone();
    app.phone.fail_with(no_answer());
    let started = app.start_code(phone.as_str(), json!({})).await;
    assert_eq!(started.status, 202, "{}", started.body);
    let id = message_id_of_last_message_to(&app, &phone);
    assert_eq!(app.sms(&id).await.body["status"], "unknown");

    app.phone.recover();
    let again = app.start_code(phone.as_str(), json!({})).await;
    assert_eq!(again.status, 429, "the allowance was kept: {}", again.body);
    assert_eq!(again.body["error"], "rate_limited");

    // The code may have arrived, and it still works.
    let code = app.phone.code_sent_to(&phone).unwrap();
    let checked = app.check_code(phone.as_str(), &code, None).await;
    assert_eq!(checked.status, 200, "{}", checked.body);
}

#[tokio::test]
async fn a_flash_call_without_the_providers_answer_keeps_its_session_pending() {
    let app = TestApp::spawn(&[]).await;
    let phone = random_phone();
    app.phone.fail_with(no_answer());
    let reply = app.request_call(&phone).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let sessions = app
        .store
        .sessions()
        .recent_sessions(&phone, 5)
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].state, SessionState::Pending);

    // The call rang: its caller ID verifies.
    app.phone.recover();
    let session = reply.body["session_id"].as_str().unwrap();
    let caller_id = app.caller_id(&phone);
    let verified = app.verify(&phone, caller_id.as_str(), Some(session)).await;
    assert_eq!(verified.status, 200, "{}", verified.body);
}

#[tokio::test]
async fn idempotency_keys_and_message_entries_belong_to_the_service_key_that_sent_them() {
    let app = TestApp::spawn_public(&[], secrets(), true).await;
    let to = random_phone();
    let body = json!({"to": to, "body": "Your table is ready."});
    let key = format!("table-{}", uuid::Uuid::new_v4());

    let mine = app.send_sms_as(SERVICE_KEY, &body, Some(&key)).await;
    assert_eq!(mine.status, 202, "{}", mine.body);
    let theirs = app.send_sms_as(OTHER_SERVICE_KEY, &body, Some(&key)).await;
    assert_eq!(theirs.status, 202, "{}", theirs.body);
    assert!(
        theirs.headers.get("idempotent-replayed").is_none(),
        "another key's Idempotency-Key is another key"
    );
    assert_ne!(mine.body["id"], theirs.body["id"]);
    assert_eq!(app.phone.messages_to(&to).len(), 2);
    let replayed = app.send_sms_as(SERVICE_KEY, &body, Some(&key)).await;
    assert_eq!(replayed.headers["idempotent-replayed"], "true");
    assert_eq!(replayed.body["id"], mine.body["id"]);

    let mine_id = mine.body["id"].as_str().unwrap();
    let theirs_id = theirs.body["id"].as_str().unwrap();
    assert_eq!(app.sms_as(SERVICE_KEY, mine_id).await.status, 200);
    assert_eq!(app.sms_as(OTHER_SERVICE_KEY, theirs_id).await.status, 200);
    for (key, id) in [(OTHER_SERVICE_KEY, mine_id), (SERVICE_KEY, theirs_id)] {
        let hidden = app.sms_as(key, id).await;
        assert_eq!(hidden.status, 404, "{}", hidden.body);
        assert_eq!(hidden.body["error"], "message_not_found");
    }
}

#[tokio::test]
async fn locally_a_recipient_ending_in_0008_gets_no_answer_and_the_simulated_callbacks_settle_it() {
    // The gateway the configuration picks: the logging one, as `infra/dev.sh` runs it.
    let app = TestApp::spawn_public(&[], secrets(), false).await;
    let to = loop {
        let phone = random_phone();
        let candidate = format!("{}0008", &phone.as_str()[..8]);
        if let Ok(number) = shared::phone::PhoneNumber::parse(&candidate) {
            break number;
        }
    };
    let body = json!({"to": to, "body": "Your order shipped."});
    let key = format!("local-{}", uuid::Uuid::new_v4());
    let reply = app.send_sms(&body, Some(&key)).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(reply.body["status"], "unknown");
    let id = reply.body["id"].as_str().unwrap().to_owned();

    // The logging gateway posts `sent`, then `delivered`, 300 ms apart.
    let mut status = Value::Null;
    for _ in 0..50 {
        status = app.sms(&id).await.body["status"].clone();
        if status == "delivered" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, "delivered");
    let replayed = app.send_sms(&body, Some(&key)).await;
    assert_eq!(replayed.status, 202, "{}", replayed.body);
    assert_eq!(replayed.headers["idempotent-replayed"], "true");
    assert_eq!(replayed.body["status"], "delivered");
    assert!(replayed.body["provider_message_id"].as_str().is_some());
}
