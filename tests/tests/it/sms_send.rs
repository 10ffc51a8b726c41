//! `POST /sms/send` and `GET /sms/{id}`: the guard, the log entry, the Idempotency-Key, bad
//! input that writes nothing, and the whole loop locally with the logging gateway.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};
use shared::phone::PhoneNumber;
use shared::secrets::SecretsCache;
use shared::telephony::TelephonyError;
use tests::{SERVICE_KEY, TestApp, random_phone};

fn message(to: &PhoneNumber, body: &str) -> Value {
    json!({"to": to, "body": body})
}

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The id of the message the phone last got, from its status-callback URL.
fn message_id_of(app: &TestApp, to: &PhoneNumber) -> String {
    let sent = app.phone.messages_to(to);
    let callback = sent
        .last()
        .and_then(|m| m.status_callback.clone())
        .expect("a callback URL");
    callback
        .split_once("message_id=")
        .map(|(_, id)| id.to_owned())
        .unwrap()
}

#[tokio::test]
async fn a_send_is_logged_and_its_entry_can_be_read_back() {
    let app = TestApp::spawn(&[]).await;
    let to = random_phone();
    let body = "Your parcel arrives today between 14:00 and 16:00. Reply STOP to opt out.";

    let reply = app.send_sms(&message(&to, body), None).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    assert_eq!(reply.body["status"], "queued");
    assert_eq!(reply.body["segments"], 1);
    let sid = reply.body["provider_message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(sid.starts_with("SM"), "{sid}");

    let sent = app.phone.messages_to(&to);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].content,
        shared::telephony::Content::Body(body.to_owned())
    );
    assert_eq!(
        sent[0].from,
        shared::telephony::Sender::Number(PhoneNumber::parse("+14155550100").unwrap()),
        "the first configured number is the default sender"
    );
    let callback = sent[0].status_callback.as_deref().unwrap();
    assert!(
        callback.ends_with(&format!("/webhooks/twilio/messages?message_id={id}")),
        "{callback}"
    );

    let entry = app.sms(&id).await;
    assert_eq!(entry.status, 200, "{}", entry.body);
    assert_eq!(entry.body["id"], id.as_str());
    assert_eq!(entry.body["to"], to.as_str());
    assert_eq!(entry.body["from"], "+14155550100");
    assert_eq!(entry.body["status"], "queued");
    assert_eq!(entry.body["provider_message_id"], sid.as_str());
    assert_eq!(entry.body["error_code"], Value::Null);
    assert_eq!(entry.body["segments"], 1);
    assert_eq!(entry.body["history"][0]["status"], "queued");
    assert!(entry.body["created_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn segments_are_counted_as_twilio_counts_them_and_another_configured_sender_may_be_named() {
    let app = TestApp::spawn(&[]).await;
    let to = random_phone();
    let long = json!({"to": to, "body": "a".repeat(161), "from": "+1 415 555 0101"});
    let reply = app.send_sms(&long, None).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(reply.body["segments"], 2);
    let unicode = app.send_sms(&message(&to, &"ж".repeat(71)), None).await;
    assert_eq!(unicode.body["segments"], 2);
    let entry = app.sms(reply.body["id"].as_str().unwrap()).await;
    assert_eq!(entry.body["from"], "+14155550101");
    assert_eq!(entry.body["segments"], 2);
}

#[tokio::test]
async fn the_same_key_and_body_replay_the_first_response_and_send_nothing() {
    let app = TestApp::spawn(&[]).await;
    let to = random_phone();
    let key = key();
    let first = app.send_sms(&message(&to, "hello"), Some(&key)).await;
    assert_eq!(first.status, 202, "{}", first.body);
    assert!(first.headers.get("idempotent-replayed").is_none());

    // Spelled differently, the same request.
    let national = json!({"to": to.as_str().replacen("+1", "+1 ", 1), "body": "hello"});
    for body in [message(&to, "hello"), national] {
        let again = app.send_sms(&body, Some(&key)).await;
        assert_eq!(again.status, 202, "{}", again.body);
        assert_eq!(again.body, first.body);
        assert_eq!(again.headers["idempotent-replayed"], "true");
    }
    assert_eq!(app.phone.messages_to(&to).len(), 1);

    let other = app.send_sms(&message(&to, "hello again"), Some(&key)).await;
    assert_eq!(other.status, 422, "{}", other.body);
    assert_eq!(other.body["error"], "idempotency_key_reused");
    assert_eq!(app.phone.messages_to(&to).len(), 1);

    // Without a key, every send sends.
    app.send_sms(&message(&to, "hello"), None).await;
    assert_eq!(app.phone.messages_to(&to).len(), 2);
}

#[tokio::test]
async fn twenty_concurrent_sends_with_one_key_send_exactly_one_message() {
    let app = Arc::new(TestApp::spawn(&[]).await);
    app.phone.delay_messages(Duration::from_millis(400));
    let to = random_phone();
    let key = key();
    let replies = join_all((0..20).map(|_| {
        let (app, to, key) = (app.clone(), to.clone(), key.clone());
        async move { app.send_sms(&message(&to, "once"), Some(&key)).await }
    }))
    .await;
    assert_eq!(app.phone.messages_to(&to).len(), 1);
    let accepted: Vec<_> = replies.iter().filter(|r| r.status == 202).collect();
    let in_flight = replies
        .iter()
        .filter(|r| r.status == 409 && r.body["error"] == "idempotency_key_in_progress")
        .count();
    assert_eq!(accepted.len() + in_flight, 20, "only 202 and 409");
    assert!(
        in_flight >= 1,
        "the provider took 400 ms: others saw it in flight"
    );
    let ids: std::collections::BTreeSet<_> =
        accepted.iter().map(|r| r.body["id"].to_string()).collect();
    assert_eq!(ids.len(), 1, "every 202 is the one message");

    // Once done, the key replays.
    let after = app.send_sms(&message(&to, "once"), Some(&key)).await;
    assert_eq!(after.status, 202);
    assert_eq!(after.headers["idempotent-replayed"], "true");
    assert_eq!(app.phone.messages_to(&to).len(), 1);
}

#[tokio::test]
async fn a_send_the_provider_did_not_take_is_logged_failed_and_frees_its_key() {
    let app = TestApp::spawn(&[]).await;
    let to = random_phone();
    let key = key();
    app.phone
        .fail_with(TelephonyError::Unavailable("timed out".into()));
    let reply = app.send_sms(&message(&to, "retry me"), Some(&key)).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.body["error"], "telephony_unavailable");
    assert!(reply.headers.contains_key("retry-after"));
    let failed = app.sms(&message_id_of(&app, &to)).await;
    assert_eq!(failed.body["status"], "failed", "{}", failed.body);

    app.phone.recover();
    let retried = app.send_sms(&message(&to, "retry me"), Some(&key)).await;
    assert_eq!(
        retried.status, 202,
        "the key was released: {}",
        retried.body
    );
    assert!(retried.headers.get("idempotent-replayed").is_none());
    assert_eq!(app.phone.messages_to(&to).len(), 2);
}

#[tokio::test]
async fn a_recipient_the_provider_refuses_is_a_422_with_its_error_code_in_the_log() {
    let app = TestApp::spawn(&[]).await;
    let to = random_phone();
    app.phone.fail_with(TelephonyError::Rejected {
        status: 400,
        code: Some(21610),
    });
    let reply = app.send_sms(&message(&to, "hello"), None).await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert_eq!(reply.body["error"], "message_rejected");
    assert_eq!(reply.body["provider_error_code"], 21610);
    let entry = app.sms(reply.body["id"].as_str().unwrap()).await;
    assert_eq!(entry.body["status"], "failed");
    assert_eq!(entry.body["error_code"], 21610);
    assert_eq!(entry.body["provider_message_id"], Value::Null);
}

#[tokio::test]
async fn the_per_recipient_throttle_stops_a_resend_flood() {
    let app = TestApp::spawn(&[("MAX_SMS_PER_RECIPIENT_PER_HOUR", "2")]).await;
    let to = random_phone();
    for _ in 0..2 {
        assert_eq!(app.send_sms(&message(&to, "hi"), None).await.status, 202);
    }
    let third = app.send_sms(&message(&to, "hi"), Some(&key())).await;
    assert_eq!(third.status, 429, "{}", third.body);
    assert_eq!(third.body["error"], "rate_limited");
    assert_eq!(third.body["limit"], "recipient_per_hour");
    let retry: u64 = third.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry));
    assert_eq!(app.phone.messages_to(&to).len(), 2);
    // Another recipient is not throttled by this one.
    let other = random_phone();
    assert_eq!(app.send_sms(&message(&other, "hi"), None).await.status, 202);
}

#[tokio::test]
async fn bad_input_gets_its_documented_4xx_and_sends_nothing() {
    let app = TestApp::spawn(&[]).await;
    let to = random_phone();
    let url = format!("{}/sms/send", app.url);
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "no key",
            app.client.post(&url).json(&message(&to, "hi")),
            401,
            "missing_credentials",
        ),
        (
            "wrong key",
            app.client
                .post(&url)
                .bearer_auth("not-a-key")
                .json(&message(&to, "hi")),
            401,
            "invalid_credentials",
        ),
        (
            "invalid to",
            app.client
                .post(&url)
                .bearer_auth(SERVICE_KEY)
                .json(&json!({"to": "+1415555", "body": "hi"})),
            400,
            "invalid_field",
        ),
        (
            "premium-rate to",
            app.client
                .post(&url)
                .bearer_auth(SERVICE_KEY)
                .json(&json!({"to": "+19005550123", "body": "hi"})),
            403,
            "number_type_not_allowed",
        ),
        (
            "empty body",
            app.client
                .post(&url)
                .bearer_auth(SERVICE_KEY)
                .json(&message(&to, "")),
            400,
            "invalid_field",
        ),
        (
            "blank body",
            app.client
                .post(&url)
                .bearer_auth(SERVICE_KEY)
                .json(&message(&to, " \n ")),
            400,
            "invalid_field",
        ),
        (
            "body too long",
            app.client
                .post(&url)
                .bearer_auth(SERVICE_KEY)
                .json(&message(&to, &"a".repeat(1601))),
            400,
            "invalid_field",
        ),
        (
            "from not configured",
            app.client
                .post(&url)
                .bearer_auth(SERVICE_KEY)
                .json(&json!({"to": to, "body": "hi", "from": "+14155550999"})),
            400,
            "invalid_field",
        ),
        (
            "from an unconfigured Messaging Service",
            app.client.post(&url).bearer_auth(SERVICE_KEY).json(
                &json!({"to": to, "body": "hi", "from": "MG0123456789abcdef0123456789abcdef"}),
            ),
            400,
            "invalid_field",
        ),
        (
            "unknown field",
            app.client
                .post(&url)
                .bearer_auth(SERVICE_KEY)
                .json(&json!({"to": to, "body": "hi", "media_url": "http://x"})),
            400,
            "invalid_field",
        ),
        (
            "key too long",
            app.client
                .post(&url)
                .bearer_auth(SERVICE_KEY)
                .header("idempotency-key", "k".repeat(256))
                .json(&message(&to, "hi")),
            400,
            "invalid_field",
        ),
        (
            "not JSON",
            app.client
                .post(&url)
                .bearer_auth(SERVICE_KEY)
                .header("content-type", "application/json")
                .body("{to:"),
            400,
            "invalid_json",
        ),
    ];
    for (name, req, status, code) in cases {
        let reply = app.send(req).await;
        assert_eq!(reply.status, status, "{name}: {}", reply.body);
        assert_eq!(reply.body["error"], code, "{name}: {}", reply.body);
    }
    assert!(app.phone.messages_to(&to).is_empty());
    // Nothing was counted against the recipient either: its full allowance remains.
    let app = TestApp::spawn(&[("MAX_SMS_PER_RECIPIENT_PER_HOUR", "1")]).await;
    assert_eq!(app.send_sms(&message(&to, "hi"), None).await.status, 202);
}

#[tokio::test]
async fn reading_the_log_takes_a_service_key_and_a_well_formed_known_id() {
    let app = TestApp::spawn(&[]).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let reply = app.sms(&unknown).await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(reply.body["error"], "message_not_found");
    let reply = app.sms("not-an-id").await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body["field"], "id");
    let reply = app.get(&format!("/sms/{unknown}")).await;
    assert_eq!(reply.status, 401);
}

/// A secret with a webhook token and no Twilio account: the logging gateway sends nothing and
/// plays Twilio's callbacks.
fn local_secrets() -> Arc<SecretsCache> {
    tests::secrets_with(json!({"twilio_auth_token": "local-webhook-token"}))
}

#[tokio::test]
async fn locally_a_message_goes_queued_sent_delivered_through_signed_callbacks() {
    let app = TestApp::spawn_public(&[], local_secrets(), false).await;
    let to = random_phone();
    let reply = app
        .send_sms(&message(&to, "hello from the loop"), None)
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap();
    let mut entry = Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        entry = app.sms(id).await.body;
        if entry["status"] == "delivered" {
            break;
        }
    }
    assert_eq!(entry["status"], "delivered", "{entry}");
    let history: Vec<_> = entry["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(history, ["queued", "sent", "delivered"]);
    assert_eq!(
        entry["provider_message_id"],
        reply.body["provider_message_id"]
    );
}

#[tokio::test]
async fn locally_twilios_magic_numbers_get_their_refusals() {
    let app = TestApp::spawn_public(&[], local_secrets(), false).await;
    for (digits, code) in shared::telephony::MAGIC_RECIPIENTS {
        let to = format!("+1415555{digits}");
        let reply = app.send_sms(&json!({"to": to, "body": "x"}), None).await;
        assert_eq!(reply.status, 422, "{to}: {}", reply.body);
        assert_eq!(reply.body["provider_error_code"], code, "{to}");
        let entry = app.sms(reply.body["id"].as_str().unwrap()).await;
        assert_eq!(entry.body["status"], "failed");
        assert_eq!(entry.body["error_code"], code);
    }
}
