//! Handler tests from the API Gateway HTTP API (v2) events in `events/`, decoded by
//! `lambda_http` exactly as the Lambda runtime does.

use std::collections::BTreeSet;

use lambda_http::{Body, Request, Response};
use shared::flash_call::RequestEndpoint;
use shared::http::{Endpoint, Served, serve};
use shared::phone::PhoneNumber;

fn events_dir() -> String {
    format!("{}/../events", env!("CARGO_MANIFEST_DIR"))
}

fn event_text(name: &str) -> String {
    let path = format!("{}/{name}", events_dir());
    std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{path}"))
}

fn event(name: &str) -> Request {
    lambda_http::request::from_str(&event_text(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The `routeKey` of a fixture: which route API Gateway matched.
fn route_key(name: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(&event_text(name)).unwrap();
    value["routeKey"]
        .as_str()
        .unwrap_or_else(|| panic!("{name} has a routeKey"))
        .to_owned()
}

/// Every endpoint, and the one that serves a fixture, found by the fixture's route key as API
/// Gateway would find the function.
struct Api(Vec<Box<dyn Served>>);

impl Api {
    async fn build(init: &shared::Init) -> Api {
        Api(shared::endpoints::build_all(init).await.unwrap())
    }

    async fn serve(&self, name: &str) -> Response<Body> {
        let key = route_key(name);
        let endpoint = self
            .0
            .iter()
            .find(|e| e.routes().iter().any(|r| r.has_key(&key)))
            .unwrap_or_else(|| panic!("{name}: no endpoint serves {key}"));
        endpoint.serve(event(name)).await
    }
}

#[test]
fn every_fixture_names_a_declared_route_and_every_route_has_a_fixture() {
    let mut covered = BTreeSet::new();
    for entry in std::fs::read_dir(events_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".json") {
            continue;
        }
        let key = route_key(&name);
        let route = shared::endpoints::routes()
            .find(|(r, _)| r.has_key(&key))
            .unwrap_or_else(|| panic!("{name}: {key} is no declared route"));
        covered.insert(route.0.to_string());
    }
    for (route, function) in shared::endpoints::routes() {
        assert!(
            covered.contains(&route.to_string()),
            "{route} ({function}) has no fixture in events/"
        );
    }
}

fn json(response: &Response<Body>) -> serde_json::Value {
    assert_eq!(response.headers()["content-type"], "application/json");
    serde_json::from_slice(response.body().as_ref()).expect("a JSON body")
}

/// A JSON answer, or Twilio's TwiML as `{"text": ...}` (as the as-deployed suite reads it).
fn answer(response: &Response<Body>) -> serde_json::Value {
    if response.headers()["content-type"] == "text/xml; charset=utf-8" {
        let text = std::str::from_utf8(response.body().as_ref()).expect("TwiML is text");
        return serde_json::json!({ "text": text });
    }
    json(response)
}

#[tokio::test]
async fn every_fixture_event_gets_its_documented_answer() {
    let (init, _clock, phone) = tests::init(&[]).await;
    let api = Api::build(&init).await;

    let cases = tests::FIXTURE_ANSWERS;
    for (name, expected, code) in cases {
        let response = api.serve(name).await;
        let body = answer(&response);
        assert_eq!(response.status().as_u16(), *expected, "{name}: {body}");
        if let Some(code) = code {
            assert_eq!(body["error"], *code, "{name}: {body}");
        }
    }
    let incoming = answer(&api.serve("twilio-voice-incoming.json").await);
    assert_eq!(
        incoming["text"],
        shared::telephony::twiml::REJECT_BUSY,
        "{incoming}"
    );
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

#[tokio::test]
async fn call_fixtures_post_a_call_in_pieces_and_read_it_back() {
    let (init, _clock, _phone) = tests::init(&[]).await;
    let api = Api::build(&init).await;

    let refused: &[(&str, u16, &str)] = &[
        ("calls-event-no-key.json", 401, "missing_credentials"),
        ("calls-event-unknown-kind.json", 400, "invalid_field"),
        ("calls-event-empty-batch.json", 400, "invalid_batch"),
        ("calls-history-no-key.json", 401, "missing_credentials"),
        ("calls-history-forged-cursor.json", 400, "invalid_field"),
    ];
    for (name, expected, code) in refused {
        let response = api.serve(name).await;
        let body = json(&response);
        assert_eq!(response.status().as_u16(), *expected, "{name}: {body}");
        assert_eq!(body["error"], *code, "{name}: {body}");
    }

    // The INITIATE alone, then a batch of the other two with the INITIATE again. The ids are
    // fixed, so a table that outlives a run has them already: `duplicate` then.
    let response = api.serve("calls-event.json").await;
    let body = json(&response);
    assert_eq!(response.status().as_u16(), 200, "{body}");
    assert!(["accepted", "duplicate"].contains(&body["result"].as_str().unwrap()));

    let response = api.serve("calls-event-batch.json").await;
    let body = json(&response);
    assert_eq!(response.status().as_u16(), 200, "{body}");
    assert_eq!(body["rejected"], 0, "{body}");
    assert_eq!(body["results"][2]["result"], "duplicate", "{body}");

    let response = api.serve("calls-history.json").await;
    let body = json(&response);
    assert_eq!(response.status().as_u16(), 200, "{body}");
    assert_eq!(
        body["results"],
        serde_json::json!([{
            "call_id": "fixture-call-1",
            "call_time": "2026-11-21T09:58:00Z",
            "counterparty_number": "+14155550191",
            "call_status": "Completed Outbound",
            "duration": 192,
            "talk_seconds": 183,
        }]),
        "{body}"
    );
    assert_eq!(body["next_cursor"], serde_json::Value::Null);

    let response = api.serve("calls-history-stats.json").await;
    let body = json(&response);
    assert_eq!(response.status().as_u16(), 200, "{body}");
    assert_eq!(body["total_calls"], 1, "{body}");
    assert_eq!(body["by_status"]["Completed Outbound"], 1, "{body}");
    assert_eq!(body["total_duration_seconds"], 192, "{body}");
    assert_eq!(body["calls_per_month"]["2026-11"], 1, "{body}");
}
