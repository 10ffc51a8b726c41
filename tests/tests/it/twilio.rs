//! The Twilio client: its requests satisfy Twilio's own OpenAPI contract (Prism), and it retries
//! only what is safe to retry (wiremock).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use shared::Init;
use shared::phone::PhoneNumber;
use shared::secrets::SecretsCache;
use shared::session::SessionState;
use shared::telephony::{OutgoingCall, TelephonyError, TelephonyGateway, TwilioGateway};
use tests::{TestApp, random_phone};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SID: &str = "AC0123456789abcdef0123456789abcdef";

fn secrets() -> Arc<SecretsCache> {
    tests::secrets_with(json!({"twilio_account_sid": SID, "twilio_auth_token": "test-auth-token"}))
}

fn gateway(base_url: &str, overrides: &[(&str, &str)]) -> TwilioGateway {
    shared::tls::install_crypto_provider();
    let mut vars = vec![("TWILIO_API_BASE_URL", base_url)];
    vars.extend_from_slice(overrides);
    TwilioGateway::new(&tests::config(&vars), secrets()).unwrap()
}

/// The local API with the real Twilio client, pointed at `twilio` (a wiremock server).
async fn app_calling_twilio(twilio: &MockServer, overrides: &[(&str, &str)]) -> TestApp {
    let uri = twilio.uri();
    let mut vars = vec![("TWILIO_API_BASE_URL", uri.as_str())];
    vars.extend_from_slice(overrides);
    let config = tests::config(&vars);
    let clock = Arc::new(shared::clock::ManualClock::starting_at(
        time::OffsetDateTime::now_utc(),
    ));
    let sdk = shared::aws::sdk_config(&config).await;
    let init = Init::new(config, sdk)
        .with_clock(clock.clone())
        .with_secrets(secrets());
    TestApp::spawn_with(init, clock, Arc::new(tests::Phone::default())).await
}

fn flash_call() -> OutgoingCall {
    OutgoingCall {
        to: random_phone(),
        from: PhoneNumber::parse("+14155550100").unwrap(),
        twiml: shared::telephony::HANG_UP.to_owned(),
        one_time_code: None,
        status_callback: Some("https://api.example.com/webhooks/twilio/voice?session_id=x".into()),
        ring_timeout: Duration::from_secs(10),
    }
}

fn calls_path() -> String {
    format!("/2010-04-01/Accounts/{SID}/Calls.json")
}

fn created() -> ResponseTemplate {
    ResponseTemplate::new(201)
        .set_body_json(json!({"sid": "CA0123456789abcdef0123456789abcdef", "status": "queued"}))
}

fn prism_url() -> String {
    std::env::var("TWILIO_MOCK_URL").expect("TWILIO_MOCK_URL: run the tests through infra/test.sh")
}

#[tokio::test]
async fn the_flash_call_request_satisfies_twilios_own_contract() {
    let placed = gateway(&prism_url(), &[]).place_call(&flash_call()).await;
    assert!(placed.is_ok(), "Prism refused the request: {placed:?}");
}

#[tokio::test]
async fn the_contract_mock_does_refuse_a_request_that_breaks_the_contract() {
    // Without this, the test above would prove nothing.
    shared::tls::install_crypto_provider();
    let response = reqwest::Client::new()
        .post(format!("{}{}", prism_url(), calls_path()))
        .basic_auth(SID, Some("token"))
        .form(&[("From", "+14155550100"), ("Twiml", "<Response/>")])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
}

#[tokio::test]
async fn a_500_then_a_201_is_retried_and_succeeds() {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(calls_path()))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&twilio)
        .await;
    Mock::given(method("POST"))
        .and(path(calls_path()))
        .and(body_string_contains("StatusCallbackEvent=initiated"))
        .and(body_string_contains("StatusCallbackEvent=completed"))
        .and(body_string_contains("Twiml="))
        .and(body_string_contains("Timeout=10"))
        .respond_with(created())
        .mount(&twilio)
        .await;

    let placed = gateway(&twilio.uri(), &[]).place_call(&flash_call()).await;
    assert_eq!(placed.unwrap().sid, "CA0123456789abcdef0123456789abcdef");
    assert_eq!(twilio.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_429_is_retried_after_the_delay_twilio_asks_for() {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(
                    json!({"code": 20429, "message": "Too Many Requests", "status": 429}),
                ),
        )
        .up_to_n_times(1)
        .mount(&twilio)
        .await;
    Mock::given(method("POST"))
        .respond_with(created())
        .mount(&twilio)
        .await;

    assert!(
        gateway(&twilio.uri(), &[])
            .place_call(&flash_call())
            .await
            .is_ok()
    );
    assert_eq!(twilio.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn persistent_5xx_gives_up_after_the_configured_retries() {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&twilio)
        .await;

    let placed = gateway(&twilio.uri(), &[("TWILIO_MAX_RETRIES", "2")])
        .place_call(&flash_call())
        .await;
    assert!(
        matches!(placed, Err(TelephonyError::Unavailable(_))),
        "{placed:?}"
    );
    assert_eq!(twilio.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_400_from_twilio_is_not_retried_and_its_error_is_read() {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "code": 21211, "message": "Invalid 'To' Phone Number",
            "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400
        })))
        .mount(&twilio)
        .await;

    let placed = gateway(&twilio.uri(), &[]).place_call(&flash_call()).await;
    assert_eq!(
        placed,
        Err(TelephonyError::Rejected {
            status: 400,
            code: Some(21211),
        })
    );
    assert_eq!(twilio.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_timeout_is_not_retried_and_is_ambiguous_because_the_call_may_exist() {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(created().set_delay(Duration::from_secs(3)))
        .mount(&twilio)
        .await;

    let placed = gateway(&twilio.uri(), &[("TWILIO_REQUEST_TIMEOUT_MS", "300")])
        .place_call(&flash_call())
        .await;
    assert!(
        matches!(placed, Err(TelephonyError::Ambiguous(_))),
        "{placed:?}"
    );
    assert_eq!(twilio.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_request_whose_call_twilio_cannot_place_is_a_503_with_the_session_failed() {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&twilio)
        .await;
    let app = app_calling_twilio(&twilio, &[("TWILIO_MAX_RETRIES", "1")]).await;
    let phone = random_phone();

    let reply = app.request_call(&phone).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.body["error"], "telephony_unavailable");
    assert_eq!(twilio.received_requests().await.unwrap().len(), 2);
    let sessions = app
        .store
        .sessions()
        .recent_sessions(&phone, 5)
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].state, SessionState::Failed);
}

#[tokio::test]
async fn no_log_line_of_a_flash_call_or_a_twilio_error_holds_a_full_phone_number() {
    let (captured, _guard) = tests::LogCapture::start();

    let twilio = MockServer::start().await;
    let callee = random_phone();
    let refused = random_phone();
    // Twilio names the numbers in its error messages: none of that may reach a log.
    Mock::given(method("POST"))
        .and(body_string_contains(
            refused.as_str().trim_start_matches('+'),
        ))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "code": 21211, "status": 400,
            "message": format!("The 'To' number {refused} is not a valid phone number."),
        })))
        .mount(&twilio)
        .await;
    Mock::given(method("POST"))
        .respond_with(created())
        .mount(&twilio)
        .await;
    let app = app_calling_twilio(&twilio, &[]).await;

    // A whole flash call: request, a wrong and a right caller ID, the status.
    let session = app.start_session(&callee).await;
    let requests = twilio.received_requests().await.unwrap();
    let form = String::from_utf8_lossy(&requests.last().unwrap().body).to_string();
    let caller_id = form
        .split('&')
        .find_map(|kv| kv.strip_prefix("From="))
        .map(|v| v.replace("%2B", "+"))
        .unwrap();
    let caller_id = PhoneNumber::parse(&caller_id).unwrap();
    let wrong = tests::wrong_caller_id(&caller_id);
    assert_eq!(
        app.verify(&callee, &wrong, Some(&session)).await.status,
        400
    );
    let verified = app
        .verify(&callee, caller_id.as_str(), Some(&session))
        .await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    assert_eq!(app.status(&session).await.status, 200);
    // And a call Twilio refuses.
    let reply = app.request_call(&refused).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    // An SMS sent, and one Twilio refuses: neither number nor body is logged.
    let private = "Meet me at the old mill at 9, bring the documents";
    let texted = app
        .send_sms(&json!({"to": callee, "body": private}), Some("log-test"))
        .await;
    assert_eq!(texted.status, 202, "{}", texted.body);
    let refused_sms = app
        .send_sms(&json!({"to": refused, "body": private}), None)
        .await;
    assert_eq!(refused_sms.status, 422, "{}", refused_sms.body);

    let logs = captured.text();
    assert!(
        logs.contains("phone verified"),
        "the run was logged: {logs}"
    );
    assert!(
        logs.contains("21211"),
        "Twilio's error code is logged: {logs}"
    );
    for number in [&callee, &refused, &caller_id] {
        let digits = number.as_str().trim_start_matches('+');
        let national = &digits[1..];
        for line in logs.lines() {
            assert!(
                !line.contains(digits) && !line.contains(national),
                "{number} in a log line: {line}"
            );
        }
    }
    assert!(
        !logs.contains("is not a valid phone number"),
        "Twilio's message was logged"
    );
    assert!(logs.contains("SMS accepted by the provider"), "{logs}");
    assert!(!logs.contains("old mill"), "an SMS body was logged");
}

fn message(from: shared::telephony::Sender) -> shared::telephony::OutgoingMessage {
    shared::telephony::OutgoingMessage {
        to: random_phone(),
        from,
        channel: shared::telephony::MessageChannel::Sms,
        content: shared::telephony::Content::Body("Your code is 123456".into()),
        status_callback: Some("https://api.example.com/webhooks/twilio/messages".into()),
        one_time_code: None,
    }
}

#[tokio::test]
async fn the_message_request_satisfies_twilios_own_contract_from_a_number_or_a_service() {
    use shared::telephony::Sender;
    let gateway = gateway(&prism_url(), &[]);
    for from in [
        Sender::Number(PhoneNumber::parse("+14155550100").unwrap()),
        Sender::MessagingService("MG0123456789abcdef0123456789abcdef".into()),
    ] {
        let sent = gateway.create_message(&message(from.clone())).await;
        let sent = sent.unwrap_or_else(|e| panic!("Prism refused {from:?}: {e}"));
        assert!(
            sent.sid.starts_with("SM") || sent.sid.starts_with("MM"),
            "{sent:?}"
        );
    }
}

#[tokio::test]
async fn a_message_post_that_timed_out_is_not_sent_again_and_is_ambiguous() {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/2010-04-01/Accounts/{SID}/Messages.json")))
        .respond_with(created().set_delay(Duration::from_millis(800)))
        .mount(&twilio)
        .await;
    let sent = gateway(&twilio.uri(), &[("TWILIO_REQUEST_TIMEOUT_MS", "200")])
        .create_message(&message(shared::telephony::Sender::Number(
            PhoneNumber::parse("+14155550100").unwrap(),
        )))
        .await;
    assert!(
        matches!(sent, Err(TelephonyError::Ambiguous(_))),
        "{sent:?}"
    );
    assert_eq!(twilio.received_requests().await.unwrap().len(), 1);
}

fn messages_path() -> String {
    format!("/2010-04-01/Accounts/{SID}/Messages.json")
}

fn message_created() -> ResponseTemplate {
    ResponseTemplate::new(201)
        .set_body_json(json!({"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"}))
}

/// The form parameter `name` of a request Twilio got, decoded.
fn form_value(request: &wiremock::Request, name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(&request.body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[tokio::test]
async fn an_sms_send_through_a_twilio_5xx_then_a_201_sends_once_and_replays_without_twilio() {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&twilio)
        .await;
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .respond_with(message_created())
        .mount(&twilio)
        .await;
    let app = app_calling_twilio(&twilio, &[]).await;
    let body = json!({"to": random_phone(), "body": "Your order shipped."});

    let reply = app.send_sms(&body, Some("order-4711-shipped")).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(
        reply.body["provider_message_id"],
        "SM0123456789abcdef0123456789abcdef"
    );
    let requests = twilio.received_requests().await.unwrap();
    assert_eq!(
        requests.len(),
        2,
        "the 503 created nothing: sent again once"
    );
    assert_eq!(
        form_value(&requests[1], "Body").unwrap(),
        "Your order shipped."
    );
    assert_eq!(form_value(&requests[1], "From").unwrap(), "+14155550100");
    let callback = form_value(&requests[1], "StatusCallback").unwrap();
    let id = reply.body["id"].as_str().unwrap();
    assert!(callback.ends_with(&format!("/webhooks/twilio/messages?message_id={id}")));

    let again = app.send_sms(&body, Some("order-4711-shipped")).await;
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(twilio.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn an_sms_send_twilio_does_not_answer_in_time_is_unknown_with_its_key_held() {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .respond_with(message_created().set_delay(Duration::from_millis(1500)))
        .mount(&twilio)
        .await;
    let app = app_calling_twilio(&twilio, &[("TWILIO_REQUEST_TIMEOUT_MS", "300")]).await;
    let body = json!({"to": random_phone(), "body": "Your order shipped."});

    let reply = app.send_sms(&body, Some("order-4712")).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(reply.body["status"], "unknown");
    let requests = twilio.received_requests().await.unwrap();
    assert_eq!(
        requests.len(),
        1,
        "a POST that may have created a message is not repeated"
    );
    let callback = form_value(&requests[0], "StatusCallback").unwrap();
    let id = callback.split_once("message_id=").unwrap().1;
    assert_eq!(reply.body["id"], id);
    let entry = app.sms(id).await;
    assert_eq!(entry.body["status"], "unknown", "{}", entry.body);

    // The key is held: the retry sends nothing.
    let retried = app.send_sms(&body, Some("order-4712")).await;
    assert_eq!(retried.status, 409, "{}", retried.body);
    assert_eq!(retried.body["error"], "idempotency_key_in_progress");
    assert_eq!(twilio.received_requests().await.unwrap().len(), 1);
}
