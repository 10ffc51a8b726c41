//! Helpers of the integration tests: the local stack's configuration, a phone that records the
//! calls it gets, random test subjects, and the local API spawned on a random port.
//!
//! The tests need the local stack (`infra/test.sh` starts it); its endpoints reach the SDK
//! through `AWS_ENDPOINT_URL_*`, exactly as in production.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

pub mod faults;

use devstack::{GatewayEvent, LocalApi};
use rand::Rng;
use serde_json::Value;
use shared::Init;
use shared::clock::ManualClock;
use shared::config::Config;
use shared::phone::PhoneNumber;
use shared::store::Store;
use shared::telephony::{
    BoxFuture, OutgoingCall, OutgoingMessage, PlacedCall, SentMessage, TelephonyError,
    TelephonyGateway,
};

/// The service API key whose hash the stack's secret holds (`stackctl bootstrap`).
pub const SERVICE_KEY: &str = "local-service-key";
/// A second operator's service key: what one key sent, the other may not see.
pub const OTHER_SERVICE_KEY: &str = "other-operators-service-key";

/// The app signature the stack's secret allows (`stackctl bootstrap`).
pub const APP_SIGNATURE: &str = "local-dev-signature";

/// What each fixture of `events/` is answered, served alone on a fresh table (its session,
/// message or verification unknown): the in-process fixture test and the as-deployed smoke
/// suite hold the handlers to the same list.
pub const FIXTURE_ANSWERS: &[(&str, u16, Option<&str>)] = &[
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
    ("health.json", 200, None),
    // Signed with the local webhook token (`stackctl bootstrap`); its session is unknown,
    // so it is answered and ignored.
    ("twilio-voice-callback.json", 200, None),
    (
        "twilio-voice-callback-unsigned.json",
        403,
        Some("invalid_signature"),
    ),
    ("auth-status-malformed-id.json", 400, Some("invalid_field")),
    ("sms-send.json", 202, None),
    ("sms-send-no-key.json", 401, Some("missing_credentials")),
    ("sms-send-body-too-long.json", 400, Some("invalid_field")),
    (
        "sms-send-from-not-configured.json",
        400,
        Some("invalid_field"),
    ),
    (
        "sms-send-premium-recipient.json",
        403,
        Some("number_type_not_allowed"),
    ),
    ("sms-get.json", 404, Some("message_not_found")),
    ("sms-get-malformed-id.json", 400, Some("invalid_field")),
    ("sms-verify-start.json", 202, None),
    // A voice code in Mexican Spanish (`CODE_CHANNELS` offers voice by default), and WhatsApp,
    // which it does not.
    ("sms-verify-start-voice.json", 202, None),
    (
        "sms-verify-start-channel-not-offered.json",
        400,
        Some("invalid_field"),
    ),
    // The inbound missed call: a pool number to call, nothing dialed.
    ("auth-request-inbound.json", 202, None),
    // Signed with the local webhook token; no session awaits its caller: rejected as busy
    // (TwiML, read as `{"text": ...}`), nothing verified.
    ("twilio-voice-incoming.json", 200, None),
    (
        "twilio-voice-incoming-unsigned.json",
        403,
        Some("invalid_signature"),
    ),
    (
        "sms-verify-start-unknown-field.json",
        400,
        Some("invalid_field"),
    ),
    (
        "sms-verify-start-invalid-phone.json",
        400,
        Some("invalid_field"),
    ),
    ("sms-verify-check.json", 404, Some("verification_not_found")),
    (
        "sms-verify-check-non-digit-code.json",
        400,
        Some("invalid_field"),
    ),
    (
        "sms-verify-check-malformed-id.json",
        400,
        Some("invalid_field"),
    ),
    // Signed with the local webhook token; its message is unknown: answered, ignored.
    ("twilio-message-callback.json", 200, None),
    // Signed for another URL (the voice route's).
    (
        "twilio-message-callback-wrong-url.json",
        403,
        Some("invalid_signature"),
    ),
];

/// Settings under which most tests run: limits out of the way unless a test sets them.
const TEST_DEFAULTS: &[(&str, &str)] = &[
    // The service-wide budgets are shared by every test on the table: out of the way, but for
    // the guard's own tests (on tables of their own, `isolated_init`).
    ("MAX_SENDS_PER_HOUR", "10000000"),
    ("MAX_SENDS_PER_COUNTRY_PER_HOUR", "10000000"),
    ("MAX_SENDS_PER_PREFIX_PER_HOUR", "1000000"),
    ("MAX_FAILED_VERIFICATIONS_PER_PHONE_PER_DAY", "1000"),
    (
        "MAX_FAILED_CODE_CHECKS_PER_PHONE_PER_NETWORK_PER_DAY",
        "1000",
    ),
    ("MAX_FAILED_CODE_CHECKS_PER_PHONE_PER_DAY", "1000"),
    ("MAX_REQUESTS_PER_NETWORK_PER_HOUR", "1000000"),
    // Untrusted requests may spend every budget, and nothing is quarantined, but in the tests
    // of the trust tiers and of the quarantine (on tables of their own): every test's sends
    // to +1 would otherwise add up to a quarantine of the country.
    ("UNTRUSTED_SHARE_PERCENT", "100"),
    ("QUARANTINE_MODE", "off"),
    ("ALLOW_TEST_NUMBERS", "true"),
    // DynamoDB Local shares two cores with the whole test run: a slow answer is not an outage
    // here (the outage tests set their own short timeouts).
    ("AWS_ATTEMPT_TIMEOUT_MS", "5000"),
    ("AWS_OPERATION_TIMEOUT_MS", "12000"),
    ("MAX_REQUESTS_PER_PHONE_PER_DAY", "10000"),
    ("MAX_REQUESTS_PER_IP_PER_HOUR", "1000000"),
    ("REQUEST_COOLDOWN_SECONDS", "0"),
    ("SMS_FROM_NUMBERS", "+14155550100,+14155550101"),
    ("MAX_SMS_PER_RECIPIENT_PER_HOUR", "1000"),
    ("CODE_RESEND_COOLDOWN_SECONDS", "0"),
    // Many apps share the test process: its metrics are read by the test of them, not printed.
    ("EMIT_METRICS", "false"),
    ("MAX_CODE_SENDS_PER_PHONE_PER_HOUR", "100"),
    // Many tests send at once: the provider's rate has its own tests.
    ("TWILIO_CALLS_PER_SECOND", "10000"),
    ("TWILIO_MESSAGES_PER_SECOND", "10000"),
];

/// Where `cargo build --bins` (which `infra/test.sh` runs first) put the binaries.
pub fn bin_dir() -> std::path::PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target"))
        });
    target.join("debug")
}

/// The configuration of the stack's environment, with test defaults and `overrides`.
pub fn config(overrides: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = std::env::vars().collect();
    for (k, v) in TEST_DEFAULTS.iter().chain(overrides) {
        vars.insert(k.to_string(), v.to_string());
    }
    Config::from_vars(vars).expect("test configuration")
}

/// The phone at the other end: records every flash call and message, or fails as told.
#[derive(Default)]
pub struct Phone {
    calls: Mutex<Vec<OutgoingCall>>,
    messages: Mutex<Vec<OutgoingMessage>>,
    failure: Mutex<Option<TelephonyError>>,
    /// How long the provider takes to take a message (to hold a send in flight).
    message_delay: Mutex<std::time::Duration>,
}

impl Phone {
    /// The caller ID of the newest call to `to`, as the phone would display it.
    pub fn caller_id_of_call_to(&self, to: &PhoneNumber) -> Option<PhoneNumber> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .rev()
            .find(|c| &c.to == to)
            .map(|c| c.from.clone())
    }

    pub fn last_call_to(&self, to: &PhoneNumber) -> Option<OutgoingCall> {
        let calls = self.calls.lock().unwrap();
        calls.iter().rev().find(|c| &c.to == to).cloned()
    }

    pub fn calls_to(&self, to: &PhoneNumber) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| &c.to == to)
            .count()
    }

    pub fn fail_with(&self, error: TelephonyError) {
        *self.failure.lock().unwrap() = Some(error);
    }

    pub fn recover(&self) {
        *self.failure.lock().unwrap() = None;
    }

    /// Every message handed to the provider, taken or refused, in order.
    pub fn all_messages(&self) -> Vec<OutgoingMessage> {
        self.messages.lock().unwrap().clone()
    }

    /// Every message handed to the provider for `to`, taken or refused.
    pub fn messages_to(&self, to: &PhoneNumber) -> Vec<OutgoingMessage> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|m| &m.to == to)
            .cloned()
            .collect()
    }

    /// The verification code of the newest message to `to` (as the phone would show it).
    pub fn code_sent_to(&self, to: &PhoneNumber) -> Option<String> {
        self.messages_to(to)
            .into_iter()
            .rev()
            .find_map(|m| m.one_time_code)
    }

    /// The verification code the newest voice code call to `to` said.
    pub fn code_said_to(&self, to: &PhoneNumber) -> Option<String> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .rev()
            .filter(|c| &c.to == to)
            .find_map(|c| c.one_time_code.clone())
    }

    pub fn delay_messages(&self, delay: std::time::Duration) {
        *self.message_delay.lock().unwrap() = delay;
    }
}

/// An SMS's text (empty for a WhatsApp template).
pub fn text(message: &OutgoingMessage) -> String {
    match &message.content {
        shared::telephony::Content::Body(text) => text.clone(),
        shared::telephony::Content::Template { .. } => String::new(),
    }
}

impl TelephonyGateway for Phone {
    fn place_call<'a>(
        &'a self,
        call: &'a OutgoingCall,
    ) -> BoxFuture<'a, Result<PlacedCall, TelephonyError>> {
        Box::pin(async move {
            let failure = self.failure.lock().unwrap().clone();
            match failure {
                // A call the provider got and did not answer for rings all the same.
                Some(error) if error.is_ambiguous() => {
                    self.calls.lock().unwrap().push(call.clone());
                    return Err(error);
                }
                Some(error) => return Err(error),
                None => {}
            }
            self.calls.lock().unwrap().push(call.clone());
            Ok(PlacedCall {
                sid: format!("CA{}", uuid::Uuid::new_v4().simple()),
            })
        })
    }

    fn send_message<'a>(
        &'a self,
        message: &'a OutgoingMessage,
    ) -> BoxFuture<'a, Result<SentMessage, TelephonyError>> {
        Box::pin(async move {
            let delay = *self.message_delay.lock().unwrap();
            tokio::time::sleep(delay).await;
            self.messages.lock().unwrap().push(message.clone());
            if let Some(error) = self.failure.lock().unwrap().clone() {
                return Err(error);
            }
            Ok(SentMessage {
                sid: format!("SM{}", uuid::Uuid::new_v4().simple()),
                status: "queued".to_owned(),
            })
        })
    }
}

/// A fixed secret: a signing key, the app signature, the service key's hash, and `extra`
/// (Twilio credentials, the webhook token) on top.
pub fn secrets_with(extra: Value) -> Arc<shared::secrets::SecretsCache> {
    let mut text = serde_json::json!({
        "token_signing_key": "test-signing-key-test-signing-key-42",
        "app_signatures": [APP_SIGNATURE],
        "service_api_key_hashes": [
            shared::auth::hash_api_key(SERVICE_KEY),
            shared::auth::hash_api_key(OTHER_SERVICE_KEY),
        ],
        "code_hashing_key": "test-code-hashing-key-test-code-hashing",
    });
    if let (Some(base), Value::Object(extra)) = (text.as_object_mut(), extra) {
        base.extend(extra);
    }
    Arc::new(shared::secrets::SecretsCache::fixed(
        shared::secrets::Secrets::parse("test", &text.to_string()).unwrap(),
    ))
}

/// An `Init` on the local stack with a manual clock at the current time and a recording phone.
pub async fn init(overrides: &[(&str, &str)]) -> (Init, Arc<ManualClock>, Arc<Phone>) {
    shared::tls::install_crypto_provider();
    let clock = Arc::new(ManualClock::starting_at(time::OffsetDateTime::now_utc()));
    let phone = Arc::new(Phone::default());
    let config = config(overrides);
    let sdk = shared::aws::sdk_config(&config).await;
    let init = Init::new(config, sdk)
        .with_clock(clock.clone())
        .with_telephony(phone.clone());
    (init, clock, phone)
}

/// The pool numbers `stackctl bootstrap` seeds.
pub const POOL: [&str; 5] = [
    "+14155550100",
    "+14155550101",
    "+14155550102",
    "+14155550103",
    "+14155550104",
];

/// Like [`init`], on a table of its own (created, with the pool seeded): for tests of
/// service-wide budgets, which every other test on a shared table would also spend.
pub async fn isolated_init(overrides: &[(&str, &str)]) -> (Init, Arc<ManualClock>, Arc<Phone>) {
    let table = format!("it-{}", uuid::Uuid::new_v4().simple());
    let mut all: Vec<(&str, &str)> = overrides.to_vec();
    all.push(("TABLE_NAME", &table));
    let (init, clock, phone) = init(&all).await;
    let store = init.store();
    store
        .create_table_if_missing()
        .await
        .expect("table created");
    for number in POOL {
        store
            .pool()
            .put(&PhoneNumber::parse(number).unwrap(), true)
            .await
            .expect("pool seeded");
    }
    (init, clock, phone)
}

/// A valid US number no other test uses: a real area code, a random exchange and line.
pub fn random_phone() -> PhoneNumber {
    const AREAS: [u16; 12] = [201, 212, 213, 305, 312, 415, 512, 617, 646, 702, 718, 917];
    let mut rng = rand::rng();
    let area = AREAS[rng.random_range(0..AREAS.len())];
    let exchange = rng.random_range(200..=999);
    let line = rng.random_range(0..=9999);
    PhoneNumber::parse(&format!("+1{area}{exchange}{line:04}")).expect("valid random number")
}

/// A loopback source address of the test's own, so that per-IP limits of parallel tests do not
/// add up.
pub fn random_loopback() -> IpAddr {
    let mut rng = rand::rng();
    IpAddr::V4(Ipv4Addr::new(
        127,
        rng.random_range(1..=254),
        rng.random_range(1..=254),
        rng.random_range(1..=254),
    ))
}

/// The App Check project the tests sign their tokens with (its key made once per process).
pub fn app_check_project() -> &'static devstack::app_check::Project {
    static PROJECT: std::sync::OnceLock<devstack::app_check::Project> = std::sync::OnceLock::new();
    PROJECT.get_or_init(|| {
        devstack::app_check::Project::generate(TEST_APP_CHECK_PROJECT).expect("an RSA key")
    })
}

/// The tests' App Check project number and app.
pub const TEST_APP_CHECK_PROJECT: &str = "123456789012";
pub const TEST_APP_ID: &str = "1:123456789012:android:0123456789abcdef";

/// A JWKS server holding the tests' App Check key, and the settings that point an app at it.
pub async fn app_check_jwks() -> (wiremock::MockServer, Vec<(&'static str, String)>) {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path("/jwks"))
        .respond_with(
            wiremock::ResponseTemplate::new(200).set_body_json(app_check_project().jwks()),
        )
        .mount(&server)
        .await;
    let settings = vec![
        (
            "APP_CHECK_PROJECT_NUMBER",
            TEST_APP_CHECK_PROJECT.to_owned(),
        ),
        ("APP_CHECK_JWKS_URL", format!("{}/jwks", server.uri())),
    ];
    (server, settings)
}

/// A valid App Check token of the tests' app at `now`.
pub fn app_check_token(now: time::OffsetDateTime) -> String {
    app_check_project().token(TEST_APP_ID, now).unwrap()
}

/// The local API on a random port, called over HTTP from a source address of its own.
pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    pub source_ip: IpAddr,
    pub clock: Arc<ManualClock>,
    pub phone: Arc<Phone>,
    pub store: Store,
    pub init: Arc<Init>,
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

/// An answer that need not be JSON (TwiML).
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    pub content_type: String,
    pub text: String,
}

impl TestApp {
    pub async fn spawn(overrides: &[(&str, &str)]) -> TestApp {
        let (init, clock, phone) = init(overrides).await;
        Self::spawn_with(init, clock, phone).await
    }

    pub async fn spawn_with(init: Init, clock: Arc<ManualClock>, phone: Arc<Phone>) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve_on(listener, init, clock, phone).await
    }

    /// The app on its own address as its `PUBLIC_BASE_URL` (the base of the callback URLs it
    /// gives the telephony gateway and of the webhook signatures it checks), with `secrets`,
    /// and either the recording phone or the gateway the configuration picks (the logging
    /// gateway, without Twilio credentials).
    pub async fn spawn_public(
        overrides: &[(&str, &str)],
        secrets: Arc<shared::secrets::SecretsCache>,
        recording_phone: bool,
    ) -> TestApp {
        Self::spawn_public_with(overrides, secrets, recording_phone, |init| init).await
    }

    /// [`TestApp::spawn_public`], with `change` applied to the `Init` (a fault injector).
    pub async fn spawn_public_with(
        overrides: &[(&str, &str)],
        secrets: Arc<shared::secrets::SecretsCache>,
        recording_phone: bool,
        change: impl FnOnce(Init) -> Init,
    ) -> TestApp {
        shared::tls::install_crypto_provider();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut all = overrides.to_vec();
        all.push(("PUBLIC_BASE_URL", &base));
        let config = config(&all);
        let sdk = shared::aws::sdk_config(&config).await;
        let clock = Arc::new(ManualClock::starting_at(time::OffsetDateTime::now_utc()));
        let phone = Arc::new(Phone::default());
        let mut init = Init::new(config, sdk)
            .with_clock(clock.clone())
            .with_secrets(secrets);
        if recording_phone {
            init = init.with_telephony(phone.clone());
        }
        Self::serve_on(listener, change(init), clock, phone).await
    }

    async fn serve_on(
        listener: tokio::net::TcpListener,
        init: Init,
        clock: Arc<ManualClock>,
        phone: Arc<Phone>,
    ) -> TestApp {
        let api = Arc::new(LocalApi::build(&init).await.expect("endpoints build"));
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(devstack::serve(listener, api));
        let source_ip = random_loopback();
        let client = reqwest::Client::builder()
            .local_address(source_ip)
            .pool_max_idle_per_host(200)
            .build()
            .unwrap();
        TestApp {
            url,
            client,
            source_ip,
            clock,
            phone,
            store: init.store(),
            init: Arc::new(init),
        }
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let response = req.send().await.expect("the local API answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("every answer is JSON; got {status}: {text:?}"));
        Reply {
            status,
            body,
            headers,
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(self.client.post(format!("{}{path}", self.url)).json(body))
            .await
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        self.send(
            self.client
                .post(format!("{}{path}", self.url))
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(format!("{}{path}", self.url)))
            .await
    }

    /// Posts call events (one object or an array) with the service key.
    pub async fn post_events(&self, body: &Value) -> Reply {
        self.send(
            self.client
                .post(format!("{}/calls/events", self.url))
                .bearer_auth(SERVICE_KEY)
                .json(body),
        )
        .await
    }

    /// `GET /calls/history/{number}{suffix}?{query}` with a bearer token (`None`: no header).
    pub async fn history(
        &self,
        number: &PhoneNumber,
        suffix: &str,
        query: &[(&str, &str)],
        token: Option<&str>,
    ) -> Reply {
        let mut req = self
            .client
            .get(format!(
                "{}/calls/history/{}{suffix}",
                self.url,
                number.as_str().replace('+', "%2B")
            ))
            .query(query);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        self.send(req).await
    }

    /// Asks for a flash call to `phone`; returns the reply.
    pub async fn request_call(&self, phone: &PhoneNumber) -> Reply {
        self.post(
            "/auth/request",
            &serde_json::json!({"phone_number": phone, "app_signature": APP_SIGNATURE}),
        )
        .await
    }

    /// Asks for a flash call that must be accepted; returns the session id.
    pub async fn start_session(&self, phone: &PhoneNumber) -> String {
        let reply = self.request_call(phone).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        reply.body["session_id"].as_str().unwrap().to_owned()
    }

    pub async fn verify(
        &self,
        phone: &PhoneNumber,
        caller_id: &str,
        session: Option<&str>,
    ) -> Reply {
        let mut body = serde_json::json!({"phone_number": phone, "received_caller_id": caller_id});
        if let Some(id) = session {
            body["session_id"] = Value::from(id);
        }
        self.post("/auth/verify", &body).await
    }

    pub async fn status(&self, session: &str) -> Reply {
        self.get(&format!("/auth/status/{session}")).await
    }

    /// The caller ID the phone saw for its newest call, in E.164.
    pub fn caller_id(&self, phone: &PhoneNumber) -> PhoneNumber {
        self.phone
            .caller_id_of_call_to(phone)
            .expect("the phone was called")
    }

    /// `POST /sms/send` with the service key, and an Idempotency-Key if given.
    pub async fn send_sms(&self, body: &Value, key: Option<&str>) -> Reply {
        self.send_sms_as(SERVICE_KEY, body, key).await
    }

    /// `POST /sms/send` with `service_key`, and an Idempotency-Key if given.
    pub async fn send_sms_as(&self, service_key: &str, body: &Value, key: Option<&str>) -> Reply {
        let mut req = self
            .client
            .post(format!("{}/sms/send", self.url))
            .bearer_auth(service_key)
            .json(body);
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        self.send(req).await
    }

    /// The SID of the call placed for `session`, as stored.
    pub async fn call_sid_of(&self, session: &str) -> String {
        let id = shared::session::SessionId::parse(session).unwrap();
        let stored = self.store.sessions().get_session(&id).await.unwrap();
        stored.and_then(|s| s.call_sid).expect("the SID was stored")
    }

    /// A form to `url` signed with `token` as Twilio signs its webhooks.
    pub async fn post_signed(&self, token: &str, url: &str, params: &[(&str, &str)]) -> Reply {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let signature = shared::twilio_signature::compute(token, url, &params);
        self.send(
            self.client
                .post(url)
                .header("x-twilio-signature", signature)
                .form(&params),
        )
        .await
    }

    /// Twilio's post of a call from `from` to `to` (one of our numbers), with `StirVerstat`
    /// when given, signed with `token` (`None`: unsigned): the answer as it comes (TwiML).
    pub async fn call_in(
        &self,
        token: Option<&str>,
        from: &str,
        to: &str,
        verstat: Option<&str>,
    ) -> RawReply {
        let url = format!("{}{}", self.url, shared::telephony::VOICE_INCOMING.path);
        let params = shared::telephony::incoming_call(from, to, verstat);
        let mut req = self.client.post(&url).form(&params);
        if let Some(token) = token {
            let signature = shared::twilio_signature::compute(token, &url, &params);
            req = req.header("x-twilio-signature", signature);
        }
        let response = req.send().await.expect("the local API answers");
        RawReply {
            status: response.status().as_u16(),
            content_type: response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            text: response.text().await.unwrap(),
        }
    }

    /// `GET /sms/{id}` with the service key.
    pub async fn sms(&self, id: &str) -> Reply {
        self.sms_as(SERVICE_KEY, id).await
    }

    /// `GET /sms/{id}` with `service_key`.
    pub async fn sms_as(&self, service_key: &str, id: &str) -> Reply {
        self.send(
            self.client
                .get(format!("{}/sms/{id}", self.url))
                .bearer_auth(service_key),
        )
        .await
    }

    /// `POST /sms/verify/start` for `phone` with the app signature and `extra` fields.
    pub async fn start_code(&self, phone: &str, extra: Value) -> Reply {
        let mut body = serde_json::json!({"phone_number": phone, "app_signature": APP_SIGNATURE});
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        self.post("/sms/verify/start", &body).await
    }

    /// `POST /sms/verify/check`.
    pub async fn check_code(&self, phone: &str, code: &str, verification: Option<&str>) -> Reply {
        let mut body = serde_json::json!({"phone_number": phone, "code": code});
        if let Some(id) = verification {
            body["verification_id"] = Value::from(id);
        }
        self.post("/sms/verify/check", &body).await
    }

    /// `POST path` from `source` (a loopback address), with an App Check token if given.
    pub async fn post_from(
        &self,
        source: IpAddr,
        path: &str,
        body: &Value,
        app_check: Option<&str>,
    ) -> Reply {
        let client = reqwest::Client::builder()
            .local_address(source)
            .build()
            .unwrap();
        let mut req = client.post(format!("{}{path}", self.url)).json(body);
        if let Some(token) = app_check {
            req = req.header("x-firebase-appcheck", token);
        }
        self.send(req).await
    }

    /// Asserts that `phone` was never called and has no session.
    pub async fn assert_untouched(&self, phone: &PhoneNumber) {
        assert_eq!(self.phone.calls_to(phone), 0, "{phone} was called");
        let sessions = self
            .store
            .sessions()
            .recent_sessions(phone, 5)
            .await
            .unwrap();
        assert!(sessions.is_empty(), "{phone} has a session");
    }
}

/// Everything logged on this thread while the guard lives (the tests' runtimes are
/// single-threaded, so the API's tasks log here too).
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn start() -> (LogCapture, impl Drop) {
        let captured = LogCapture::default();
        let writer = captured.clone();
        let subscriber = lambda_http::tracing::subscriber::fmt()
            .with_max_level(lambda_http::tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        let guard =
            lambda_http::tracing::subscriber::util::SubscriberInitExt::set_default(subscriber);
        (captured, guard)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What DynamoDB requests an endpoint sent, by operation, and the capacity units they use on
/// DynamoDB (on demand): for items under 1 KB (all of ours but long histories), a write is 1
/// write unit and each item of a transaction 2; a consistent read of an item is 1 read unit, an
/// eventually consistent one (the index's queries, the pool) half of one. A write that puts an
/// item with the by-phone index's keys, or changes a session's projected state or attempts,
/// also writes the index: 1 more unit.
#[derive(Debug, Default, Clone)]
pub struct DynamoCalls(Arc<Mutex<DynamoUsage>>);

#[derive(Debug, Default, Clone)]
pub struct DynamoUsage {
    /// Requests by operation (retries included: each attempt is a request).
    pub calls: std::collections::BTreeMap<String, u64>,
    pub write_units: f64,
    pub read_units: f64,
}

impl aws_sdk_dynamodb::config::Intercept for DynamoCalls {
    fn name(&self) -> &'static str {
        "DynamoCalls"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let (operation, body) = dynamo_request(context);
        let consistent = body["ConsistentRead"] == Value::Bool(true);
        let mut usage = self.0.lock().unwrap();
        *usage.calls.entry(operation.clone()).or_default() += 1;
        match operation.as_str() {
            "TransactWriteItems" => {
                let items = body["TransactItems"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                usage.write_units += 2.0 * items.len() as f64;
                for item in &items {
                    let write = item
                        .get("Put")
                        .or_else(|| item.get("Update"))
                        .unwrap_or(&Value::Null);
                    usage.write_units += index_writes(write);
                }
            }
            "PutItem" | "UpdateItem" | "DeleteItem" => {
                usage.write_units += 1.0 + index_writes(&body);
            }
            "GetItem" | "Query" => usage.read_units += if consistent { 1.0 } else { 0.5 },
            // Eventually consistent: half a unit per key asked for.
            "BatchGetItem" => {
                let keys: usize = body["RequestItems"]
                    .as_object()
                    .map(|tables| {
                        tables
                            .values()
                            .map(|t| t["Keys"].as_array().map_or(0, Vec::len))
                            .sum()
                    })
                    .unwrap_or(0);
                usage.read_units += 0.5 * keys as f64;
            }
            _ => {}
        }
        Ok(())
    }
}

/// A DynamoDB request as an interceptor sees it: its operation (`PutItem`, ...) and its JSON
/// body.
pub fn dynamo_request(
    context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
) -> (String, Value) {
    let request = context.request();
    let operation = request
        .headers()
        .get("x-amz-target")
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("?")
        .to_owned();
    let body = request
        .body()
        .bytes()
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or(Value::Null);
    (operation, body)
}

/// The index writes of one write request: a put of an item with the index's keys, or an
/// update of a session's projected state or attempts.
fn index_writes(write: &Value) -> f64 {
    if write["Item"].get("gsi1pk").is_some() {
        return 1.0;
    }
    let session = write["Key"]["pk"]["S"]
        .as_str()
        .is_some_and(|pk| pk.starts_with("SESSION#"));
    let expression = write["UpdateExpression"].as_str().unwrap_or_default();
    let projected = ["#state", "#attempts"]
        .iter()
        .any(|name| expression.contains(name));
    if session && projected { 1.0 } else { 0.0 }
}

impl DynamoCalls {
    /// What was counted since the last `take`.
    pub fn take(&self) -> DynamoUsage {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// An API Gateway event as API Gateway sends it for a call on `host` from 127.0.0.1, JSON by
/// default; `headers` add to those or replace them (for the benchmarks, which drive the
/// handlers without HTTP).
pub fn gateway_event(
    host: &str,
    method: &str,
    path: &str,
    query: &str,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
) -> GatewayEvent {
    let mut all = vec![
        ("host".to_owned(), host.to_owned()),
        ("content-type".to_owned(), "application/json".to_owned()),
    ];
    all.retain(|(name, _)| !headers.iter().any(|(h, _)| h == name));
    all.extend(headers);
    GatewayEvent {
        method: method.into(),
        path: path.into(),
        raw_query: query.into(),
        headers: all,
        body,
        source_ip: "127.0.0.1".into(),
        ..GatewayEvent::default()
    }
}

/// A status callback's form body and headers, signed with `token` for `url` as Twilio signs.
pub fn twilio_form(
    token: &str,
    url: &str,
    params: &[(&str, &str)],
) -> (Vec<u8>, Vec<(String, String)>) {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let signature = shared::twilio_signature::compute(token, url, &params);
    let body = serde_urlencoded::to_string(&params).unwrap().into_bytes();
    let headers = vec![
        (
            "content-type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        ),
        ("x-twilio-signature".to_owned(), signature),
    ];
    (body, headers)
}

/// A pool number that did not call `phone` (a wrong but well-formed caller ID).
pub fn wrong_caller_id(right: &PhoneNumber) -> String {
    if right.as_str() == "+14155550100" {
        "+14155550199".into()
    } else {
        "+14155550100".into()
    }
}

/// The claims of an access token (its payload, unverified: the tests read what was issued).
pub fn token_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("the payload is base64url");
    serde_json::from_slice(&bytes).expect("the payload is JSON")
}
