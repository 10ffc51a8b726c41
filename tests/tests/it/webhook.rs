//! `POST /webhooks/twilio/voice`: signed status callbacks move a session's `call_status`
//! forward only, in any order and any number of times; unsigned or mis-signed ones are 403 and
//! write nothing; the logging gateway plays Twilio's part locally.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};
use shared::secrets::SecretsCache;
use shared::twilio_signature::compute;
use tests::{Reply, TestApp, random_phone};

const TOKEN: &str = "test-webhook-token";

/// A secret with a webhook token and no Twilio account: calls are logged, callbacks signed.
fn secrets() -> Arc<SecretsCache> {
    tests::secrets_with(json!({"twilio_auth_token": TOKEN}))
}

fn call_sid() -> String {
    format!("CA{}", uuid::Uuid::new_v4().simple())
}

fn form(sid: &str, status: &str) -> Vec<(String, String)> {
    [
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("CallSid", sid),
        ("CallStatus", status),
        ("Direction", "outbound-api"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Posts a callback for `session`, signed over `signed_url` (the real one by default).
async fn callback(
    app: &TestApp,
    session: &str,
    params: &[(String, String)],
    signature: Option<String>,
) -> Reply {
    let url = format!("{}/webhooks/twilio/voice?session_id={session}", app.url);
    let signature = signature.unwrap_or_else(|| compute(TOKEN, &url, params));
    app.send(
        app.client
            .post(&url)
            .header("x-twilio-signature", signature)
            .form(params),
    )
    .await
}

/// A session whose call was placed (by the recording phone): its id and the call's SID.
async fn placed_session(app: &TestApp) -> (String, String) {
    let session = app.start_session(&random_phone()).await;
    let sid = app.call_sid_of(&session).await;
    (session, sid)
}

async fn call_status(app: &TestApp, session: &str) -> Value {
    app.status(session).await.body["call_status"].clone()
}

async fn app() -> TestApp {
    TestApp::spawn_public(&[], secrets(), true).await
}

#[tokio::test]
async fn every_order_of_callbacks_gives_the_same_final_status() {
    let app = app().await;
    let orders: &[(&[&str], &str)] = &[
        (&["initiated", "ringing", "completed"], "completed"),
        (&["initiated", "completed", "ringing"], "completed"),
        (&["ringing", "initiated", "completed"], "completed"),
        (&["ringing", "completed", "initiated"], "completed"),
        (&["completed", "initiated", "ringing"], "completed"),
        (&["completed", "ringing", "initiated"], "completed"),
        (&["ringing", "busy"], "busy"),
        (&["busy", "ringing"], "busy"),
        (&["no-answer", "completed", "ringing"], "no-answer"),
        (
            &["ringing", "ringing", "in-progress", "ringing"],
            "in-progress",
        ),
    ];
    for (order, last) in orders {
        let (session, sid) = placed_session(&app).await;
        assert_eq!(call_status(&app, &session).await, "queued");
        for status in *order {
            let reply = callback(&app, &session, &form(&sid, status), None).await;
            assert_eq!(reply.status, 200, "{order:?}: {}", reply.body);
        }
        assert_eq!(call_status(&app, &session).await, *last, "{order:?}");
    }
}

#[tokio::test]
async fn fifty_concurrent_identical_callbacks_write_once() {
    let app = Arc::new(app().await);
    let (session, sid) = placed_session(&app).await;
    let replies = join_all((0..50).map(|_| {
        let (app, session, sid) = (app.clone(), session.clone(), sid.clone());
        async move { callback(&app, &session, &form(&sid, "ringing"), None).await }
    }))
    .await;
    assert!(replies.iter().all(|r| r.status == 200));
    let applied = replies.iter().filter(|r| r.body["applied"] == true).count();
    assert_eq!(applied, 1);
    assert_eq!(call_status(&app, &session).await, "ringing");
}

#[tokio::test]
async fn unsigned_mis_signed_or_malformed_callbacks_are_refused_and_write_nothing() {
    let app = app().await;
    let (session, sid) = placed_session(&app).await;
    let params = form(&sid, "completed");
    let elsewhere = format!("{}/webhooks/twilio/messages?session_id={session}", app.url);
    let refused = [
        (
            "another token",
            Some(compute("not-the-token", "x", &params)),
        ),
        ("another URL", Some(compute(TOKEN, &elsewhere, &params))),
        ("empty", Some(String::new())),
    ];
    for (what, signature) in refused {
        let reply = callback(&app, &session, &params, signature).await;
        assert_eq!(reply.status, 403, "{what}: {}", reply.body);
        assert_eq!(reply.body["error"], "invalid_signature");
    }
    let url = format!("{}/webhooks/twilio/voice?session_id={session}", app.url);
    let unsigned = app.send(app.client.post(&url).form(&params)).await;
    assert_eq!(unsigned.status, 403);
    // Signed over other parameters than those sent.
    let tampered = compute(TOKEN, &url, &form(&sid, "ringing"));
    assert_eq!(
        callback(&app, &session, &params, Some(tampered))
            .await
            .status,
        403
    );
    let json_body = app
        .send(app.client.post(&url).json(&json!({"CallSid": sid})))
        .await;
    assert_eq!(json_body.status, 415);
    let bad_sid = callback(&app, &session, &form("CA-not-a-sid", "completed"), None).await;
    assert_eq!(bad_sid.status, 400);
    assert_eq!(bad_sid.body["field"], "CallSid");
    let bad_status = callback(&app, &session, &form(&sid, "exploded"), None).await;
    assert_eq!(bad_status.status, 400);
    assert_eq!(
        call_status(&app, &session).await,
        "queued",
        "nothing was written"
    );
}

#[tokio::test]
async fn a_callback_for_an_unknown_session_or_another_call_is_answered_and_ignored() {
    let app = app().await;
    let (session, sid) = placed_session(&app).await;
    let unknown = "3f0c5b4e-8d2a-4c1e-9b7f-2a6d8e4c1b90";
    let reply = callback(&app, unknown, &form(&sid, "completed"), None).await;
    assert_eq!(
        (reply.status, reply.body["applied"].clone()),
        (200, json!(false))
    );
    let other_call = callback(&app, &session, &form(&call_sid(), "completed"), None).await;
    assert_eq!(other_call.body["applied"], false);
    assert_eq!(call_status(&app, &session).await, "queued");
}

#[tokio::test]
async fn locally_the_logging_gateway_posts_signed_callbacks_that_move_the_status() {
    let app = TestApp::spawn_public(&[], secrets(), false).await;
    let session = app.start_session(&random_phone()).await;
    let mut seen = Vec::new();
    for _ in 0..50 {
        let status = call_status(&app, &session).await;
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == "no-answer" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen.last(), Some(&json!("no-answer")), "{seen:?}");
}
