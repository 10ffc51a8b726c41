//! Bad input on every route: a 4xx JSON error naming the problem, and nothing written.

use serde_json::{Value, json};
use tests::{APP_SIGNATURE, TestApp, random_phone};

/// Bodies every JSON route must refuse, with the status and `error` code expected.
fn bad_bodies(valid: Value) -> Vec<(String, Vec<u8>, &'static str, u16, &'static str)> {
    let with = |key: &str, value: Value| {
        let mut body = valid.clone();
        body[key] = value;
        serde_json::to_vec(&body).unwrap()
    };
    let mut cases = vec![
        (
            "malformed JSON".into(),
            b"{\"phone_number\": ".to_vec(),
            "application/json",
            400,
            "invalid_json",
        ),
        (
            "empty body".into(),
            Vec::new(),
            "application/json",
            400,
            "invalid_json",
        ),
        (
            "an array".into(),
            b"[1,2,3]".to_vec(),
            "application/json",
            400,
            "invalid_json",
        ),
        (
            "a string".into(),
            b"\"hello\"".to_vec(),
            "application/json",
            400,
            "invalid_json",
        ),
        (
            "unknown field".into(),
            with("surprise", json!(1)),
            "application/json",
            400,
            "invalid_field",
        ),
        (
            "phone as a number".into(),
            with("phone_number", json!(14155550123u64)),
            "application/json",
            400,
            "invalid_field",
        ),
        (
            "phone without +".into(),
            with("phone_number", json!("14155550123")),
            "application/json",
            400,
            "invalid_field",
        ),
        (
            "phone with letters".into(),
            with("phone_number", json!("+1415CALLME")),
            "application/json",
            400,
            "invalid_field",
        ),
        (
            "phone with trunk zero".into(),
            with("phone_number", json!("+44 020 7946 0958")),
            "application/json",
            400,
            "invalid_field",
        ),
        (
            "phone too long".into(),
            with("phone_number", json!("+1415555012345678")),
            "application/json",
            400,
            "invalid_field",
        ),
        (
            "phone null".into(),
            with("phone_number", Value::Null),
            "application/json",
            400,
            "invalid_field",
        ),
        (
            "form encoded".into(),
            b"phone_number=%2B14155550123".to_vec(),
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
        ),
    ];
    let mut missing = valid.clone();
    missing.as_object_mut().unwrap().remove("phone_number");
    cases.push((
        "missing phone".into(),
        serde_json::to_vec(&missing).unwrap(),
        "application/json",
        400,
        "invalid_field",
    ));
    let mut huge = valid.clone();
    huge["padding"] = json!("x".repeat(1024 * 1024));
    cases.push((
        "a 1 MB body".into(),
        serde_json::to_vec(&huge).unwrap(),
        "application/json",
        413,
        "payload_too_large",
    ));
    cases
}

async fn assert_refused(app: &TestApp, path: &str, valid: Value) {
    for (what, body, content_type, status, code) in bad_bodies(valid) {
        let reply = app.post_raw(path, content_type, body).await;
        assert_eq!(reply.status, status, "{path}, {what}: {}", reply.body);
        assert_eq!(reply.body["error"], code, "{path}, {what}: {}", reply.body);
        assert!(reply.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
        if code == "invalid_field" {
            assert!(
                reply.body["field"].is_string(),
                "{what}: the field is named"
            );
        }
    }
}

#[tokio::test]
async fn request_refuses_bad_input_and_neither_calls_nor_counts() {
    let app = TestApp::spawn(&[
        ("MAX_REQUESTS_PER_PHONE_PER_DAY", "1"),
        ("MAX_REQUESTS_PER_IP_PER_HOUR", "1"),
        ("REQUEST_COOLDOWN_SECONDS", "60"),
    ])
    .await;
    let phone = random_phone();
    let valid = json!({"phone_number": phone, "app_signature": APP_SIGNATURE});
    assert_refused(&app, "/auth/request", valid.clone()).await;
    let wrong_type = app
        .post(
            "/auth/request",
            &json!({"phone_number": phone, "app_signature": 42}),
        )
        .await;
    assert_eq!(wrong_type.status, 400);
    assert_eq!(wrong_type.body["field"], "app_signature");

    app.assert_untouched(&phone).await;
    // Every limit is at 1: the first valid request only passes if nothing was consumed.
    assert_eq!(app.post("/auth/request", &valid).await.status, 202);
}

#[tokio::test]
async fn verify_refuses_bad_input_and_counts_no_attempt() {
    let app = TestApp::spawn(&[]).await;
    let phone = random_phone();
    let session = app.start_session(&phone).await;
    let valid = json!({
        "phone_number": phone,
        "received_caller_id": "+14155550100",
        "session_id": session,
    });
    assert_refused(&app, "/auth/verify", valid.clone()).await;
    for (key, value, field) in [
        (
            "received_caller_id",
            json!("call me maybe"),
            "received_caller_id",
        ),
        ("received_caller_id", json!(""), "received_caller_id"),
        (
            "received_caller_id",
            json!(4155550100u64),
            "received_caller_id",
        ),
        ("session_id", json!("not-a-session"), "session_id"),
        ("session_id", json!(session.replace('-', "")), "session_id"),
        ("session_id", json!(12), "session_id"),
    ] {
        let mut body = valid.clone();
        body[key] = value;
        let reply = app.post("/auth/verify", &body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert_eq!(reply.body["field"], field);
    }
    assert_eq!(app.status(&session).await.body["attempt_count"], 0);
}

#[tokio::test]
async fn status_refuses_a_malformed_session_id_with_400() {
    let app = TestApp::spawn(&[]).await;
    for id in [
        "nope",
        "123",
        "c232ab00-9414-11ec-b3c8-9f6bdeced846",
        "%7Bx%7D",
    ] {
        let reply = app.get(&format!("/auth/status/{id}")).await;
        assert_eq!(reply.status, 400, "{id}: {}", reply.body);
        assert_eq!(reply.body["field"], "session_id");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = TestApp::spawn(&[]).await;
    let reply = app.get("/auth/nothing-here").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.body["error"], "route_not_found");
    let reply = app.get("/auth/request").await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.body["error"], "method_not_allowed");
}
