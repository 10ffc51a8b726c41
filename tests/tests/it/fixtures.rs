//! Handler tests from the API Gateway HTTP API (v2) events in `events/`, decoded by
//! `lambda_http` exactly as the Lambda runtime does.

use lambda_http::{Body, Request, Response};
use shared::flash_call::{RequestEndpoint, StatusEndpoint, VerifyEndpoint};
use shared::http::{Endpoint, serve};
use shared::phone::PhoneNumber;

fn event(name: &str) -> Request {
    let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{path}"));
    lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn json(response: &Response<Body>) -> serde_json::Value {
    assert_eq!(response.headers()["content-type"], "application/json");
    serde_json::from_slice(response.body().as_ref()).expect("a JSON body")
}

#[tokio::test]
async fn every_fixture_event_gets_its_documented_answer() {
    let (init, _clock, phone) = tests::init(&[]).await;
    let request = RequestEndpoint::init(&init).await.unwrap();
    let verify = VerifyEndpoint::init(&init).await.unwrap();
    let status = StatusEndpoint::init(&init).await.unwrap();

    let cases: &[(&str, u16, Option<&str>)] = &[
        ("auth-request.json", 202, None),
        ("auth-request-base64.json", 202, None),
        (
            "auth-request-invalid-phone.json",
            400,
            Some("invalid_field"),
        ),
        (
            "auth-request-malformed-json.json",
            400,
            Some("invalid_json"),
        ),
        (
            "auth-request-unknown-field.json",
            400,
            Some("invalid_field"),
        ),
        (
            "auth-request-wrong-signature.json",
            403,
            Some("app_signature_rejected"),
        ),
        (
            "auth-verify-unknown-session.json",
            404,
            Some("session_not_found"),
        ),
        (
            "auth-verify-malformed-session-id.json",
            400,
            Some("invalid_field"),
        ),
        (
            "auth-verify-missing-caller-id.json",
            400,
            Some("invalid_field"),
        ),
        ("auth-status.json", 404, Some("session_not_found")),
        ("auth-status-malformed-id.json", 400, Some("invalid_field")),
    ];
    for (name, expected, code) in cases {
        let req = event(name);
        let response = if name.starts_with("auth-request") {
            serve(&request, req).await
        } else if name.starts_with("auth-verify") {
            serve(&verify, req).await
        } else {
            serve(&status, req).await
        };
        let body = json(&response);
        assert_eq!(response.status().as_u16(), *expected, "{name}: {body}");
        if let Some(code) = code {
            assert_eq!(body["error"], *code, "{name}: {body}");
        }
    }
    // The base64-encoded body was decoded and its number normalised.
    let decoded = PhoneNumber::parse("+14155550124").unwrap();
    assert!(phone.caller_id_of_call_to(&decoded).is_some());
}

#[tokio::test]
async fn the_status_callback_points_at_the_domain_api_gateway_was_called_on() {
    let (init, _clock, phone) = tests::init(&[]).await;
    assert!(
        init.config.public_base_url.is_none(),
        "the tests run without PUBLIC_BASE_URL"
    );
    let request = RequestEndpoint::init(&init).await.unwrap();
    let response = serve(&request, event("auth-request.json")).await;
    assert_eq!(response.status().as_u16(), 202);
    let session = json(&response)["session_id"].as_str().unwrap().to_owned();

    let call = phone
        .last_call_to(&PhoneNumber::parse("+14155550123").unwrap())
        .unwrap();
    assert_eq!(
        call.status_callback.as_deref(),
        Some(format!(
            "https://abc123.execute-api.us-east-1.amazonaws.com/webhooks/twilio/voice?session_id={session}"
        ))
        .as_deref()
    );
}
