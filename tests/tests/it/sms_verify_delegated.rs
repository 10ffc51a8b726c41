//! `sms-verify` delegated to Twilio Verify (requests proven against Verify's own contract with
//! Prism, behaviour scripted with wiremock), and test numbers for app-store reviewers in both
//! modes.

use serde_json::{Value, json};
use tests::{TestApp, random_phone};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const SERVICE: &str = "VA0123456789abcdef0123456789abcdef";
const VERIFICATION: &str = "VE0123456789abcdef0123456789abcdef";

fn secrets(extra: Value) -> std::sync::Arc<shared::secrets::SecretsCache> {
    let mut all = json!({"twilio_account_sid": ACCOUNT, "twilio_auth_token": "test-auth-token"});
    if let (Some(all), Value::Object(extra)) = (all.as_object_mut(), extra) {
        all.extend(extra);
    }
    tests::secrets_with(all)
}

/// The local API delegating codes to the Verify service at `verify_url`.
async fn delegated(verify_url: &str, extra_secrets: Value) -> TestApp {
    delegated_with(verify_url, extra_secrets, &[]).await
}

/// [`delegated`], with more settings.
async fn delegated_with(verify_url: &str, extra_secrets: Value, more: &[(&str, &str)]) -> TestApp {
    let mut overrides = vec![
        ("VERIFY_SERVICE_SID", SERVICE),
        ("TWILIO_VERIFY_BASE_URL", verify_url),
        ("TWILIO_MAX_RETRIES", "0"),
    ];
    overrides.extend_from_slice(more);
    TestApp::spawn_public(&overrides, secrets(extra_secrets), true).await
}

/// Verify answers every start: pending.
async fn answer_starts_pending(verify: &MockServer) {
    Mock::given(method("POST"))
        .and(path(verifications()))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"sid": VERIFICATION, "status": "pending"})),
        )
        .mount(verify)
        .await;
}

fn verifications() -> String {
    format!("/v2/Services/{SERVICE}/Verifications")
}

fn checks() -> String {
    format!("/v2/Services/{SERVICE}/VerificationCheck")
}

fn error(status: u16, code: u32) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "code": code, "status": status,
        "message": "Verify's own words, with the number +14155550123 in them",
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
    }))
}

fn checked(status: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"sid": VERIFICATION, "status": status}))
}

fn verify_mock_url() -> String {
    std::env::var("TWILIO_VERIFY_MOCK_URL")
        .expect("TWILIO_VERIFY_MOCK_URL: run the tests through infra/test.sh")
}

#[tokio::test]
async fn start_and_check_satisfy_verifys_own_contract() {
    let app = delegated(&verify_mock_url(), json!({})).await;
    let phone = random_phone();
    let started = app
        .start_code(phone.as_str(), json!({"locale": "en"}))
        .await;
    assert_eq!(
        started.status, 202,
        "Prism refused the start: {}",
        started.body
    );
    // Prism's VerificationCheck example is always `approved`.
    let checked = app
        .check_code(
            phone.as_str(),
            "123456",
            started.body["verification_id"].as_str(),
        )
        .await;
    assert_eq!(
        checked.status, 200,
        "Prism refused the check: {}",
        checked.body
    );
    assert!(
        app.phone.messages_to(&phone).is_empty(),
        "Verify sends, not us"
    );

    // And the mock does refuse what breaks the contract (a start without Channel).
    let response = reqwest::Client::new()
        .post(format!("{}{}", verify_mock_url(), verifications()))
        .basic_auth(ACCOUNT, Some("test-auth-token"))
        .form(&[("To", phone.as_str())])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
}

#[tokio::test]
async fn verifys_answers_map_to_our_contract_and_its_words_never_leak() {
    let verify = MockServer::start().await;
    answer_starts_pending(&verify).await;
    let answers = [
        ("111111", checked("approved")),
        ("222222", checked("pending")),
        ("333333", error(400, 60200)),
        ("444444", error(429, 60202)),
        ("555555", error(404, 20404)),
        ("666666", error(500, 20500)),
        ("777777", checked("canceled")),
    ];
    for (code, answer) in answers {
        Mock::given(method("POST"))
            .and(path(checks()))
            .and(body_string_contains(format!("Code={code}")))
            .respond_with(answer)
            .mount(&verify)
            .await;
    }
    let app = delegated(&verify.uri(), json!({})).await;
    let expected = [
        ("222222", 400, "code_mismatch"),
        ("333333", 400, "invalid_field"),
        ("444444", 429, "attempts_exhausted"),
        ("555555", 401, "code_expired"),
        ("666666", 503, "telephony_unavailable"),
        ("777777", 401, "code_expired"),
        ("111111", 200, ""),
    ];
    for (code, status, error) in expected {
        let phone = random_phone();
        let started = app.start_code(phone.as_str(), json!({})).await;
        assert_eq!(started.status, 202, "{}", started.body);
        let reply = app
            .check_code(
                phone.as_str(),
                code,
                started.body["verification_id"].as_str(),
            )
            .await;
        assert_eq!(reply.status, status, "{code}: {}", reply.body);
        if status != 200 {
            assert_eq!(reply.body["error"], error, "{code}: {}", reply.body);
        } else {
            assert_eq!(reply.body["verified"], true);
        }
        assert!(!reply.body.to_string().contains("Verify's own words"));
        assert!(!reply.body.to_string().contains("twilio.com"));
        if code == "222222" {
            assert_eq!(reply.body["attempts_remaining"], 4, "{}", reply.body);
        }
    }
    // Checks name Verify's SID, never send a code of ours, and nothing of the code is stored.
    let requests = verify.received_requests().await.unwrap();
    let check = requests.iter().find(|r| r.url.path() == checks()).unwrap();
    let form = String::from_utf8_lossy(&check.body);
    assert!(
        form.contains(&format!("VerificationSid={VERIFICATION}")),
        "{form}"
    );
    let start = requests
        .iter()
        .find(|r| r.url.path() == verifications())
        .unwrap();
    assert!(String::from_utf8_lossy(&start.body).contains("Channel=sms"));
}

#[tokio::test]
async fn verifys_start_refusals_map_to_our_contract_and_give_the_send_back() {
    let verify = MockServer::start().await;
    let cases = [
        (60200, 400, 400, "invalid_field"),
        (60203, 429, 429, "rate_limited"),
        (60410, 403, 403, "fraud_blocked"),
        (60605, 400, 403, "country_not_allowed"),
        (20003, 401, 503, "telephony_unavailable"),
    ];
    let mut phones = Vec::new();
    for (code, http, _, _) in cases {
        let phone = random_phone();
        Mock::given(method("POST"))
            .and(path(verifications()))
            .and(body_string_contains(phone.as_str().trim_start_matches('+')))
            .respond_with(error(http, code))
            .mount(&verify)
            .await;
        phones.push(phone);
    }
    let app = TestApp::spawn_public(
        &[
            ("VERIFY_SERVICE_SID", SERVICE),
            ("TWILIO_VERIFY_BASE_URL", verify.uri().as_str()),
            ("TWILIO_MAX_RETRIES", "0"),
            ("MAX_CODE_SENDS_PER_PHONE_PER_HOUR", "1"),
        ],
        secrets(json!({})),
        true,
    )
    .await;
    for ((code, _, status, error), phone) in cases.iter().zip(&phones) {
        let reply = app.start_code(phone.as_str(), json!({})).await;
        assert_eq!(reply.status, *status, "{code}: {}", reply.body);
        assert_eq!(reply.body["error"], *error, "{code}: {}", reply.body);
        assert!(!reply.body.to_string().contains("Verify's own words"));
        assert!(app.store.codes().current(phone).await.unwrap().is_none());
    }
    // The refused start consumed no send: the hourly allowance of 1 is still there.
    verify.reset().await;
    answer_starts_pending(&verify).await;
    let again = app.start_code(phones[4].as_str(), json!({})).await;
    assert_eq!(again.status, 202, "{}", again.body);
}

#[tokio::test]
async fn a_verify_start_without_an_answer_keeps_the_verification_and_its_send() {
    let verify = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(verifications()))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"sid": VERIFICATION, "status": "pending"}))
                .set_delay(std::time::Duration::from_millis(1500)),
        )
        .mount(&verify)
        .await;
    let app = TestApp::spawn_public(
        &[
            ("VERIFY_SERVICE_SID", SERVICE),
            ("TWILIO_VERIFY_BASE_URL", verify.uri().as_str()),
            ("TWILIO_REQUEST_TIMEOUT_MS", "300"),
            ("MAX_CODE_SENDS_PER_PHONE_PER_HOUR", "1"),
        ],
        secrets(json!({})),
        true,
    )
    .await;
    let phone = random_phone();
    let started = app.start_code(phone.as_str(), json!({})).await;
    assert_eq!(started.status, 202, "{}", started.body);
    assert_eq!(
        verify.received_requests().await.unwrap().len(),
        1,
        "never sent twice"
    );
    assert!(
        app.store.codes().current(&phone).await.unwrap().is_some(),
        "Verify may have sent the code: the verification is kept"
    );
    let again = app.start_code(phone.as_str(), json!({})).await;
    assert_eq!(again.status, 429, "the send was kept: {}", again.body);
}

/// The secret's test numbers: `number` (not a valid number: 555 is no area code) for the next
/// 30 days, and a valid number whose time is over.
pub fn test_numbers(number: &str) -> Value {
    let in_a_month =
        shared::clock::rfc3339(time::OffsetDateTime::now_utc() + time::Duration::days(30));
    json!({"TEST_PHONE_NUMBERS": {
        number: {"code": "123456", "valid_until": in_a_month},
        "+14155550177": {"code": "654321", "valid_until": "2001-01-01T00:00:00Z"},
    }})
}

async fn a_test_number_gets_no_sms_and_takes_its_fixed_code(app: &TestApp, number: &str) {
    let started = app.start_code(number, json!({})).await;
    assert_eq!(started.status, 202, "{}", started.body);
    let test = shared::phone::PhoneNumber::test_number(number).unwrap();
    assert!(app.phone.messages_to(&test).is_empty());
    let miss = app.check_code(number, "123457", None).await;
    assert_eq!(miss.status, 400, "{}", miss.body);
    assert_eq!(miss.body["error"], "code_mismatch");
    let hit = app
        .check_code(number, "123456", started.body["verification_id"].as_str())
        .await;
    assert_eq!(hit.status, 200, "{}", hit.body);
    assert_eq!(hit.body["phone_number"], number);
    let token = hit.body["access_token"].as_str().unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["amr"],
        json!(["test_number"]),
        "a test number's token says so"
    );
}

#[tokio::test]
async fn test_numbers_work_in_built_in_mode_and_stop_at_valid_until() {
    let (captured, _guard) = tests::LogCapture::start();
    let number = "+15555550100";
    let app = TestApp::spawn_public(&[], tests::secrets_with(test_numbers(number)), true).await;
    a_test_number_gets_no_sms_and_takes_its_fixed_code(&app, number).await;
    assert!(
        captured.text().contains("test_number=true"),
        "its use is logged"
    );
    // Past its valid_until, a number is an ordinary one: this one gets a real code.
    let past = shared::phone::PhoneNumber::parse("+14155550177").unwrap();
    let reply = app.start_code(past.as_str(), json!({})).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(app.phone.messages_to(&past).len(), 1);
    let fixed = app.check_code(past.as_str(), "654321", None).await;
    assert_eq!(
        fixed.status, 400,
        "the fixed code no longer works: {}",
        fixed.body
    );
    // A started test verification whose number expires meanwhile is refused.
    let started = app.start_code(number, json!({})).await;
    assert_eq!(started.status, 202);
    app.clock.advance(time::Duration::days(100 * 365));
    let late = app.check_code(number, "123456", None).await;
    assert_eq!(late.status, 400, "an invalid number again: {}", late.body);
}

#[tokio::test]
async fn test_numbers_are_answered_before_delegation() {
    let verify = MockServer::start().await;
    let number = "+15555550101";
    let app = delegated(&verify.uri(), test_numbers(number)).await;
    a_test_number_gets_no_sms_and_takes_its_fixed_code(&app, number).await;
    assert!(
        verify.received_requests().await.unwrap().is_empty(),
        "Verify was asked about a test number"
    );
}

#[tokio::test]
async fn voice_and_whatsapp_starts_ask_verify_for_its_call_and_whatsapp_channels() {
    let verify = MockServer::start().await;
    answer_starts_pending(&verify).await;
    let all_channels = [("CODE_CHANNELS", "sms,voice,whatsapp")];
    let app = delegated_with(&verify.uri(), json!({}), &all_channels).await;
    for (channel, sent) in [("voice", "call"), ("whatsapp", "whatsapp"), ("sms", "sms")] {
        let phone = random_phone();
        let reply = app
            .start_code(phone.as_str(), json!({"channel": channel}))
            .await;
        assert_eq!(reply.status, 202, "{channel}: {}", reply.body);
        assert_eq!(reply.body["channel"], channel);
        let requests = verify.received_requests().await.unwrap();
        let form: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&requests.last().unwrap().body).unwrap();
        assert!(
            form.contains(&("Channel".to_owned(), sent.to_owned()))
                && form.contains(&("To".to_owned(), phone.to_string())),
            "{channel}: {form:?}"
        );
        assert!(app.phone.messages_to(&phone).is_empty() && app.phone.calls_to(&phone) == 0);
    }

    // And Verify's own contract takes both channels.
    let prism = delegated_with(&verify_mock_url(), json!({}), &all_channels).await;
    for channel in ["voice", "whatsapp"] {
        let reply = prism
            .start_code(random_phone().as_str(), json!({"channel": channel}))
            .await;
        assert_eq!(reply.status, 202, "Prism refused {channel}: {}", reply.body);
    }
}
