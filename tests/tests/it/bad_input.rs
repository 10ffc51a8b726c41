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
    assert_eq!(reply.headers["allow"], "POST");
    let reply = app
        .send(app.client.post(format!("{}/auth/status/abc", app.url)))
        .await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.headers["allow"], "GET, HEAD");
    let reply = app
        .send(
            app.client
                .delete(format!("{}/calls/history/%2B14155550100", app.url)),
        )
        .await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.headers["allow"], "GET, HEAD");
}

#[tokio::test]
async fn head_on_a_get_route_answers_as_get_without_a_body() {
    let app = TestApp::spawn(&[]).await;
    let session = app.start_session(&random_phone()).await;
    let url = format!("{}/auth/status/{session}", app.url);
    let get = app.client.get(&url).send().await.unwrap();
    let head = app.client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), get.status());
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-type"], "application/json");
    assert!(head.bytes().await.unwrap().is_empty());
    let head = app
        .client
        .head(format!("{}/auth/status/not-a-uuid", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 400);
    let head = app
        .client
        .head(format!("{}/auth/request", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 405);
    assert_eq!(head.headers()["allow"], "POST");
}

#[tokio::test]
async fn a_path_or_query_too_long_for_api_gateway_is_a_json_414() {
    let app = TestApp::spawn(&[]).await;
    for path in [
        format!("/auth/status/{}", "a".repeat(11 * 1024)),
        format!("/auth/status/abc?pad={}", "b".repeat(11 * 1024)),
    ] {
        let reply = app.get(&path).await;
        assert_eq!(reply.status, 414, "{} bytes", path.len());
        assert_eq!(reply.body["error"], "uri_too_long");
    }
}

/// Sends raw HTTP/1.1 requests on one connection; returns each response's head and body.
async fn raw_exchange(app: &TestApp, requests: &[String]) -> Vec<(String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut answers = Vec::new();
    for request in requests {
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the connection closed before an answer");
            bytes.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&bytes).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    answers.push((head.to_owned(), body.to_owned()));
                    break;
                }
            }
        }
    }
    answers
}

#[tokio::test]
async fn a_request_line_longer_than_hyper_takes_is_a_json_414_even_on_a_reused_connection() {
    let app = TestApp::spawn(&[]).await;
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nhost: local\r\n\r\n");
    let long = format!("/auth/status/{}", "c".repeat(70 * 1024));
    let answers = raw_exchange(
        &app,
        &[
            get("/auth/status/not-a-uuid"),
            get(&long),
            get("/auth/status/not-a-uuid"),
        ],
    )
    .await;
    assert!(answers[0].0.starts_with("HTTP/1.1 400"), "{}", answers[0].0);
    assert!(answers[1].0.starts_with("HTTP/1.1 414"), "{}", answers[1].0);
    let body: Value = serde_json::from_str(&answers[1].1).unwrap();
    assert_eq!(body["error"], "uri_too_long");
    assert!(answers[2].0.starts_with("HTTP/1.1 400"), "{}", answers[2].0);
}
