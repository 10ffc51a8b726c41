//! `POST /webhooks/twilio/messages`: signed status callbacks move a message's log entry
//! forward only, in any order and any number of times, with Twilio's error code; unsigned,
//! mis-signed or malformed ones write nothing; unknown messages are answered and ignored.

use std::sync::Arc;

use futures::future::join_all;
use serde_json::{Value, json};
use shared::secrets::SecretsCache;
use shared::twilio_signature::compute;
use tests::{Reply, TestApp, random_phone};

const TOKEN: &str = "test-webhook-token";

fn secrets() -> Arc<SecretsCache> {
    tests::secrets_with(json!({"twilio_auth_token": TOKEN}))
}

async fn app() -> TestApp {
    TestApp::spawn_public(&[], secrets(), true).await
}

fn form(sid: &str, status: &str, error_code: Option<&str>) -> Vec<(String, String)> {
    let mut params = vec![
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("ApiVersion", "2010-04-01"),
        ("MessageSid", sid),
        ("MessageStatus", status),
        ("SmsSid", sid),
        ("SmsStatus", status),
    ];
    if let Some(code) = error_code {
        params.push(("ErrorCode", code));
    }
    params
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn callback_url(app: &TestApp, message: &str) -> String {
    format!("{}/webhooks/twilio/messages?message_id={message}", app.url)
}

async fn callback(app: &TestApp, message: &str, params: &[(String, String)]) -> Reply {
    let url = callback_url(app, message);
    let signature = compute(TOKEN, &url, params);
    app.send(
        app.client
            .post(&url)
            .header("x-twilio-signature", signature)
            .form(params),
    )
    .await
}

/// A message sent through the API (to the recording phone): its id and provider SID.
async fn sent_message(app: &TestApp) -> (String, String) {
    let reply = app
        .send_sms(&json!({"to": random_phone(), "body": "hello"}), None)
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    (
        reply.body["id"].as_str().unwrap().to_owned(),
        reply.body["provider_message_id"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

/// The entry as the API shows it, less the times (which differ between runs).
async fn final_record(app: &TestApp, id: &str) -> Value {
    let entry = app.sms(id).await.body;
    let history: Vec<_> = entry["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].clone())
        .collect();
    json!({
        "status": entry["status"],
        "error_code": entry["error_code"],
        "provider_message_id": entry["provider_message_id"],
        "history": history,
    })
}

fn permutations(items: &[&'static str]) -> Vec<Vec<&'static str>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut all = Vec::new();
    for (i, first) in items.iter().enumerate() {
        let mut rest = items.to_vec();
        rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, first);
            all.push(tail);
        }
    }
    all
}

#[tokio::test]
async fn every_order_of_callbacks_gives_the_same_final_record() {
    let app = app().await;
    for (statuses, last) in [
        (&["queued", "sent", "delivered"][..], "delivered"),
        (&["sent", "undelivered"][..], "undelivered"),
    ] {
        let mut finals = Vec::new();
        for order in permutations(statuses) {
            let (id, sid) = sent_message(&app).await;
            for status in &order {
                let code = (*status == "undelivered").then_some("30003");
                let reply = callback(&app, &id, &form(&sid, status, code)).await;
                assert_eq!(reply.status, 200, "{order:?}: {}", reply.body);
            }
            let record = final_record(&app, &id).await;
            assert_eq!(record["status"], last, "{order:?}: {record}");
            if last == "undelivered" {
                assert_eq!(record["error_code"], 30003, "{order:?}");
            }
            finals.push(json!({
                "status": record["status"],
                "error_code": record["error_code"],
                "sid_is_the_message's": record["provider_message_id"] == sid.as_str(),
            }));
            // The history only ever grows in rank: never a status after a higher one.
            let ranks: Vec<u8> = record["history"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    shared::sms::MessageStatus::parse(s.as_str().unwrap())
                        .unwrap()
                        .rank()
                })
                .collect();
            assert!(
                ranks.windows(2).all(|w| w[0] < w[1]),
                "{order:?}: {ranks:?}"
            );
            assert_eq!(ranks.last(), ranks.iter().max());
        }
        assert!(finals.windows(2).all(|w| w[0] == w[1]), "{finals:?}");
    }
}

#[tokio::test]
async fn a_late_sent_after_delivered_and_anything_after_a_terminal_status_change_nothing() {
    let app = app().await;
    let (id, sid) = sent_message(&app).await;
    for (status, applied) in [
        ("sent", true),
        ("delivered", true),
        ("sent", false),
        ("delivered", false),
        ("read", true),
        ("failed", true),
        ("undelivered", false),
        ("canceled", false),
        ("queued", false),
    ] {
        let reply = callback(&app, &id, &form(&sid, status, None)).await;
        assert_eq!(reply.body["applied"], applied, "{status}: {}", reply.body);
    }
    assert_eq!(final_record(&app, &id).await["status"], "failed");
}

#[tokio::test]
async fn fifty_concurrent_identical_callbacks_write_once() {
    let app = Arc::new(app().await);
    let (id, sid) = sent_message(&app).await;
    let replies = join_all((0..50).map(|_| {
        let (app, id, sid) = (app.clone(), id.clone(), sid.clone());
        async move { callback(&app, &id, &form(&sid, "delivered", None)).await }
    }))
    .await;
    assert!(replies.iter().all(|r| r.status == 200));
    let applied = replies.iter().filter(|r| r.body["applied"] == true).count();
    assert_eq!(applied, 1);
    let record = final_record(&app, &id).await;
    assert_eq!(record["history"], json!(["queued", "delivered"]));
}

#[tokio::test]
async fn unsigned_mis_signed_misaddressed_or_malformed_callbacks_write_nothing() {
    let app = app().await;
    let (id, sid) = sent_message(&app).await;
    let before = final_record(&app, &id).await;
    let url = callback_url(&app, &id);
    let params = form(&sid, "delivered", None);
    let other_id = uuid::Uuid::new_v4().to_string();
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "unsigned",
            app.client.post(&url).form(&params),
            403,
            "invalid_signature",
        ),
        (
            "wrong token",
            app.client
                .post(&url)
                .header("x-twilio-signature", compute("other-token", &url, &params))
                .form(&params),
            403,
            "invalid_signature",
        ),
        (
            "signed for another URL",
            app.client
                .post(&url)
                .header(
                    "x-twilio-signature",
                    compute(TOKEN, &callback_url(&app, &other_id), &params),
                )
                .form(&params),
            403,
            "invalid_signature",
        ),
        (
            "signed for other parameters",
            app.client
                .post(&url)
                .header(
                    "x-twilio-signature",
                    compute(TOKEN, &url, &form(&sid, "sent", None)),
                )
                .form(&params),
            403,
            "invalid_signature",
        ),
        (
            "garbage form",
            app.client
                .post(&url)
                .header("x-twilio-signature", compute(TOKEN, &url, &[]))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("MessageSid=%FF%FE&&=%"),
            403,
            "invalid_signature",
        ),
        (
            "signed empty form",
            app.client
                .post(&url)
                .header("x-twilio-signature", compute(TOKEN, &url, &[]))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(""),
            400,
            "invalid_field",
        ),
        (
            "JSON instead of a form",
            app.client
                .post(&url)
                .header("x-twilio-signature", compute(TOKEN, &url, &[]))
                .json(&json!({"MessageSid": sid, "MessageStatus": "delivered"})),
            415,
            "unsupported_media_type",
        ),
    ];
    for (name, req, status, code) in cases {
        let reply = app.send(req).await;
        assert_eq!(reply.status, status, "{name}: {}", reply.body);
        assert_eq!(reply.body["error"], code, "{name}");
    }
    for (name, params) in [
        ("unknown status", form(&sid, "teleported", None)),
        (
            "not a message SID",
            form("CA0123456789abcdef0123456789abcdef", "sent", None),
        ),
        ("non-numeric error code", form(&sid, "failed", Some("x1"))),
    ] {
        let reply = callback(&app, &id, &params).await;
        assert_eq!(reply.status, 400, "{name}: {}", reply.body);
        assert_eq!(reply.body["error"], "invalid_field", "{name}");
    }
    assert_eq!(final_record(&app, &id).await, before);
}

#[tokio::test]
async fn a_callback_for_an_unknown_message_or_another_sid_is_answered_and_ignored() {
    let app = app().await;
    let (id, sid) = sent_message(&app).await;
    let other_sid = format!("SM{}", uuid::Uuid::new_v4().simple());
    let reply = callback(&app, &id, &form(&other_sid, "delivered", None)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["applied"], false);
    let unknown = uuid::Uuid::new_v4().to_string();
    let reply = callback(&app, &unknown, &form(&sid, "delivered", None)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["applied"], false);
    assert!(app.sms(&unknown).await.status == 404, "nothing was created");
    let reply = callback(&app, "not-an-id", &form(&sid, "delivered", None)).await;
    assert_eq!((reply.status, &reply.body["applied"]), (200, &json!(false)));
    assert_eq!(final_record(&app, &id).await["status"], "queued");
}
