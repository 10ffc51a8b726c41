//! Code channels: a code said by a voice call or sent by WhatsApp's approved template, each
//! end to end (the recording phone, the logging gateway's log, Twilio's own contract served by
//! Prism, the exact form Twilio is sent), and one verification across channels: another
//! channel sends at once inside the first one's cooldown, all of them under one hourly cap.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use shared::phone::PhoneNumber;
use shared::secrets::SecretsCache;
use shared::sms::MessageStatus;
use shared::telephony::{Content, MessageChannel, Sender};
use tests::{LogCapture, TestApp, random_phone, token_claims};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const WHATSAPP_FROM: &str = "+14155550199";
const CONTENT_SID: &str = "HX0123456789abcdef0123456789abcdef";
const ALL_CHANNELS: [(&str, &str); 3] = [
    ("CODE_CHANNELS", "sms,voice,whatsapp"),
    ("WHATSAPP_FROM", WHATSAPP_FROM),
    ("WHATSAPP_CONTENT_SID", CONTENT_SID),
];

async fn start(app: &TestApp, phone: &PhoneNumber, channel: &str) -> tests::Reply {
    app.start_code(phone.as_str(), json!({"channel": channel}))
        .await
}

async fn started(app: &TestApp, phone: &PhoneNumber, channel: &str) -> String {
    let reply = start(app, phone, channel).await;
    assert_eq!(reply.status, 202, "{channel}: {}", reply.body);
    assert_eq!(reply.body["channel"], channel);
    reply.body["verification_id"].as_str().unwrap().to_owned()
}

/// Checks `code` and returns the token's `amr`.
async fn verified_amr(app: &TestApp, phone: &PhoneNumber, code: &str) -> Value {
    let hit = app.check_code(phone.as_str(), code, None).await;
    assert_eq!(hit.status, 200, "{}", hit.body);
    token_claims(hit.body["access_token"].as_str().unwrap())["amr"].clone()
}

#[tokio::test]
async fn a_voice_code_is_said_twice_by_a_call_from_the_pool_and_gives_a_tel_token() {
    let app = TestApp::spawn(&[]).await;
    let phone = random_phone();
    let reply = start(&app, &phone, "voice").await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(reply.body["channels"], json!(["sms", "voice"]));
    let call = app
        .phone
        .last_call_to(&phone)
        .expect("the phone was called");
    assert!(tests::POOL.contains(&call.from.as_str()), "{}", call.from);
    let code = app.phone.code_said_to(&phone).unwrap();
    let spoken = shared::telephony::twiml::spoken_digits(&code);
    assert_eq!(call.twiml.matches(&spoken).count(), 2, "{}", call.twiml);
    assert_eq!(
        call.twiml.matches("<Say language=\"en-US\">").count(),
        2,
        "{}",
        call.twiml
    );
    assert!(app.phone.messages_to(&phone).is_empty(), "no SMS");
    assert_eq!(verified_amr(&app, &phone, &code).await, json!(["tel"]));
}

#[tokio::test]
async fn a_voice_code_is_said_in_the_locales_language_where_twilio_has_a_voice() {
    let app = TestApp::spawn(&[("CODE_VOICE_TEMPLATE_ES", "Su código de {app} es {code}.")]).await;
    for (locale, language, words) in [
        ("es-MX", "es-MX", "Su código"),
        ("es", "es-ES", "Su código"),
        ("fr", "en-US", "Your Phone Verification verification code"),
    ] {
        let phone = random_phone();
        let reply = app
            .start_code(
                phone.as_str(),
                json!({"channel": "voice", "locale": locale}),
            )
            .await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        let twiml = app.phone.last_call_to(&phone).unwrap().twiml;
        assert!(
            twiml.contains(&format!("<Say language=\"{language}\">{words}")),
            "{locale}: {twiml}"
        );
    }
}

#[tokio::test]
async fn a_whatsapp_code_goes_by_the_approved_template_and_gives_a_whatsapp_token() {
    let app = TestApp::spawn(&ALL_CHANNELS).await;
    let phone = random_phone();
    started(&app, &phone, "whatsapp").await;
    let message = app.phone.messages_to(&phone).pop().expect("a message");
    assert_eq!(message.channel, MessageChannel::Whatsapp);
    assert!(matches!(&message.from, Sender::Number(n) if n.as_str() == WHATSAPP_FROM));
    let code = message.one_time_code.clone().unwrap();
    let Content::Template { sid, variables } = &message.content else {
        panic!("a WhatsApp code is a template: {message:?}");
    };
    assert_eq!(sid, CONTENT_SID);
    assert_eq!(
        serde_json::from_str::<Value>(variables).unwrap(),
        json!({"1": code})
    );
    assert_eq!(app.phone.calls_to(&phone), 0);
    assert_eq!(verified_amr(&app, &phone, &code).await, json!(["whatsapp"]));
}

#[tokio::test]
async fn a_channel_the_deployment_does_not_offer_is_a_400_that_sends_nothing() {
    let app = TestApp::spawn(&[("CODE_CHANNELS", "sms")]).await;
    let phone = random_phone();
    for channel in ["voice", "whatsapp", "fax", "Voice", ""] {
        let reply = start(&app, &phone, channel).await;
        assert_eq!(reply.status, 400, "{channel}: {}", reply.body);
        assert_eq!(reply.body["error"], "invalid_field");
        assert_eq!(reply.body["field"], "channel");
    }
    for channel in [json!(7), json!(null), json!(["voice"])] {
        let reply = app
            .start_code(phone.as_str(), json!({ "channel": channel }))
            .await;
        assert_eq!(reply.status, 400, "{channel}: {}", reply.body);
    }
    assert_eq!(app.phone.calls_to(&phone), 0);
    assert!(app.phone.messages_to(&phone).is_empty());
    assert!(app.store.codes().current(&phone).await.unwrap().is_none());
}

#[tokio::test]
async fn another_channel_sends_at_once_inside_the_first_ones_cooldown_under_one_hourly_cap() {
    let mut overrides = ALL_CHANNELS.to_vec();
    overrides.extend([
        ("CODE_RESEND_COOLDOWN_SECONDS", "60"),
        ("MAX_CODE_SENDS_PER_PHONE_PER_HOUR", "3"),
    ]);
    let app = TestApp::spawn(&overrides).await;
    let phone = random_phone();
    let first = start(&app, &phone, "sms").await;
    assert_eq!(first.status, 202, "{}", first.body);
    let sms_code = app.phone.code_sent_to(&phone).unwrap();
    let resend = &first.body["resend_after_by_channel"];
    assert_eq!(first.body["channels"], json!(["sms", "voice", "whatsapp"]));
    assert_eq!(resend["sms"], first.body["resend_after"]);
    assert!(
        resend["voice"].as_str() < resend["sms"].as_str(),
        "{resend}"
    );

    // The same channel again: its cooldown.
    let again = start(&app, &phone, "sms").await;
    assert_eq!(again.status, 429, "{}", again.body);
    assert_eq!(again.body["limit"], "cooldown");
    assert!(again.headers.get("retry-after").is_some());

    // "Call me instead": at once, with a new code that replaces the SMS's.
    let voice = start(&app, &phone, "voice").await;
    assert_eq!(voice.status, 202, "{}", voice.body);
    let by_channel = &voice.body["resend_after_by_channel"];
    assert_eq!(by_channel["sms"], resend["sms"], "the SMS still cools down");
    assert!(by_channel["voice"].as_str() > by_channel["whatsapp"].as_str());
    let voice_code = app.phone.code_said_to(&phone).unwrap();
    if voice_code != sms_code {
        let stale = app.check_code(phone.as_str(), &sms_code, None).await;
        assert_eq!(stale.status, 400, "{}", stale.body);
    }

    // The third channel, then the hourly cap of all of them together.
    started(&app, &phone, "whatsapp").await;
    app.clock.advance(time::Duration::seconds(61));
    let capped = start(&app, &phone, "sms").await;
    assert_eq!(capped.status, 429, "{}", capped.body);
    assert_eq!(capped.body["limit"], "phone_per_hour");
    let whatsapp_code = app.phone.code_sent_to(&phone).unwrap();
    assert_eq!(
        verified_amr(&app, &phone, &whatsapp_code).await,
        json!(["whatsapp"])
    );
}

/// The code the logging gateway logged for `phone` (masked there): the last such line.
fn logged_code(logs: &str, line_start: &str) -> String {
    let line = logs
        .lines()
        .rev()
        .find(|l| l.contains(line_start) && l.contains("the verification code is "))
        .unwrap_or_else(|| panic!("no {line_start:?} line in {logs}"));
    let (_, rest) = line.split_once("the verification code is ").unwrap();
    rest.chars().take_while(char::is_ascii_digit).collect()
}

#[tokio::test]
async fn the_logging_gateway_prints_every_channels_code_in_the_same_words() {
    let (captured, _guard) = LogCapture::start();
    let secrets = tests::secrets_with(json!({"twilio_auth_token": "test-logging-token"}));
    let app = TestApp::spawn_public(&ALL_CHANNELS, secrets, false).await;
    for (channel, line_start, amr) in [
        ("sms", "SMS NOT sent (logging gateway)", "sms"),
        ("voice", "voice call NOT dialed (logging gateway)", "tel"),
        (
            "whatsapp",
            "WhatsApp message NOT sent (logging gateway)",
            "whatsapp",
        ),
    ] {
        let phone = random_phone();
        started(&app, &phone, channel).await;
        let code = logged_code(&captured.text(), line_start);
        assert_eq!(code.len(), 6, "{channel}: {code}");
        assert_eq!(verified_amr(&app, &phone, &code).await, json!([amr]));
        if channel == "whatsapp" {
            // The gateway plays WhatsApp's callbacks, `read` included, to the messages webhook.
            let message = app.store.codes().current(&phone).await.unwrap();
            let id = message
                .and_then(|v| v.message_id)
                .expect("the code's message");
            let mut status = None;
            for _ in 0..50 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                status = app
                    .store
                    .messages()
                    .get(&id)
                    .await
                    .unwrap()
                    .map(|m| m.status);
                if status == Some(MessageStatus::Read) {
                    break;
                }
            }
            assert_eq!(status, Some(MessageStatus::Read));
        }
    }
}

fn twilio_secrets() -> Arc<SecretsCache> {
    tests::secrets_with(
        json!({"twilio_account_sid": ACCOUNT, "twilio_auth_token": "test-auth-token"}),
    )
}

/// The API with the real Twilio client pointed at `base_url`.
async fn app_on_twilio(base_url: &str) -> TestApp {
    let mut overrides = ALL_CHANNELS.to_vec();
    overrides.push(("TWILIO_API_BASE_URL", base_url));
    TestApp::spawn_public(&overrides, twilio_secrets(), false).await
}

#[tokio::test]
async fn voice_and_whatsapp_codes_satisfy_twilios_own_contract() {
    let prism = std::env::var("TWILIO_MOCK_URL")
        .expect("TWILIO_MOCK_URL: run the tests through infra/test.sh");
    let app = app_on_twilio(&prism).await;
    for channel in ["voice", "whatsapp"] {
        let reply = start(&app, &random_phone(), channel).await;
        assert_eq!(reply.status, 202, "Prism refused {channel}: {}", reply.body);
    }
}

/// The forms Twilio was posted, by path.
async fn forms(twilio: &MockServer) -> Vec<(String, HashMap<String, String>)> {
    twilio
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&r.body).unwrap();
            (r.url.path().to_owned(), form.into_iter().collect())
        })
        .collect()
}

#[tokio::test]
async fn twilio_is_sent_the_voice_codes_twiml_and_whatsapps_addresses_and_variables() {
    let twilio = MockServer::start().await;
    let created = |sid: &str| {
        ResponseTemplate::new(201).set_body_json(json!({"sid": sid, "status": "queued"}))
    };
    Mock::given(method("POST"))
        .and(path(format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json")))
        .respond_with(created("CA0123456789abcdef0123456789abcdef"))
        .mount(&twilio)
        .await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
        )))
        .respond_with(created("SM0123456789abcdef0123456789abcdef"))
        .mount(&twilio)
        .await;
    let app = app_on_twilio(&twilio.uri()).await;
    let (by_voice, by_whatsapp) = (random_phone(), random_phone());
    started(&app, &by_voice, "voice").await;
    started(&app, &by_whatsapp, "whatsapp").await;
    let forms = forms(&twilio).await;
    let (_, call) = forms
        .iter()
        .find(|(p, _)| p.ends_with("Calls.json"))
        .unwrap();
    assert_eq!(call["To"], by_voice.as_str());
    assert!(tests::POOL.contains(&call["From"].as_str()), "{call:?}");
    let twiml = &call["Twiml"];
    assert_eq!(
        twiml.matches("<Say language=\"en-US\">").count(),
        2,
        "{twiml}"
    );
    assert!(!call.contains_key("Url"), "{call:?}");
    let said = twiml.split("code is: ").nth(1).unwrap();
    let code: String = said.chars().filter(char::is_ascii_digit).take(6).collect();
    assert_eq!(code.len(), 6, "{twiml}");

    let (_, message) = forms
        .iter()
        .find(|(p, _)| p.ends_with("Messages.json"))
        .unwrap();
    assert_eq!(message["To"], format!("whatsapp:{by_whatsapp}"));
    assert_eq!(message["From"], format!("whatsapp:{WHATSAPP_FROM}"));
    assert_eq!(message["ContentSid"], CONTENT_SID);
    assert!(!message.contains_key("Body"), "{message:?}");
    let variables: Value = serde_json::from_str(&message["ContentVariables"]).unwrap();
    let sent = variables["1"].as_str().unwrap();
    assert_eq!(sent.len(), 6);
    assert!(message["StatusCallback"].contains("/webhooks/twilio/messages?message_id="));

    // Each code is the one stored: it verifies, once.
    assert_eq!(verified_amr(&app, &by_voice, &code).await, json!(["tel"]));
    assert_eq!(
        verified_amr(&app, &by_whatsapp, sent).await,
        json!(["whatsapp"])
    );
}
