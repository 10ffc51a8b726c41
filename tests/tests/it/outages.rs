//! Dependencies that are down, frozen or failing halfway: every route answers 503 JSON with
//! `Retry-After` (never a 500, never a hang), and nothing is left half-done.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use serde_json::json;
use shared::phone::PhoneNumber;
use shared::secrets::SecretsCache;
use shared::session::SessionState;
use shared::telephony::{
    BoxFuture, OutgoingCall, OutgoingMessage, PlacedCall, SentMessage, TelephonyError,
    TelephonyGateway,
};
use tests::{Reply, SERVICE_KEY, TestApp, random_phone};
use tokio::net::TcpListener;

/// Short AWS timeouts, so that a frozen dependency is found out quickly.
const SHORT_TIMEOUTS: &[(&str, &str)] = &[
    ("AWS_CONNECT_TIMEOUT_MS", "200"),
    ("AWS_ATTEMPT_TIMEOUT_MS", "300"),
    ("AWS_OPERATION_TIMEOUT_MS", "1000"),
];

/// A loopback port nothing listens on.
async fn dead_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// A loopback server that accepts connections and never answers: a frozen dependency.
async fn frozen_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    url
}

pub(crate) fn assert_outage(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 503, "{what}: {}", reply.body);
    assert_eq!(reply.body["error"], "service_unavailable", "{what}");
    let retry_after: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "{what}");
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(
        !detail.contains("127.0.0.1") && !detail.contains("DynamoDB"),
        "{what}: the cause stays in the log: {detail}"
    );
}

/// Every route that reads or writes DynamoDB, called once.
pub(crate) async fn every_dynamodb_route(app: &TestApp) -> Vec<(&'static str, Reply)> {
    let phone = random_phone();
    let history = |suffix: &'static str| app.history(&phone, suffix, &[], Some(SERVICE_KEY));
    vec![
        ("request", app.request_call(&phone).await),
        (
            "verify",
            app.verify(
                &phone,
                "+14155550100",
                Some("3f0c5b4e-8d2a-4c1e-9b7f-2a6d8e4c1b90"),
            )
            .await,
        ),
        (
            "status",
            app.status("3f0c5b4e-8d2a-4c1e-9b7f-2a6d8e4c1b90").await,
        ),
        (
            "call-event",
            app.post_events(&json!({
                "event_id": "outage-1", "call_id": "outage-1", "event": "INITIATE",
                "calling_number": phone, "called_number": "+14155550199",
                "created_at": "2026-11-21T10:00:00Z",
            }))
            .await,
        ),
        ("history", history("").await),
        ("stats", history("/stats").await),
        ("health", app.get("/health").await),
        (
            "sms-verify start",
            app.start_code(phone.as_str(), json!({})).await,
        ),
        (
            "sms-verify check",
            app.check_code(phone.as_str(), "123456", None).await,
        ),
    ]
}

async fn app_with_dynamodb_at(url: String) -> TestApp {
    let (init, clock, phone) = tests::init(SHORT_TIMEOUTS).await;
    let init = init.with_dynamodb_config(|c| c.endpoint_url(url));
    TestApp::spawn_with(init, clock, phone).await
}

#[tokio::test]
async fn with_dynamodb_unreachable_every_route_answers_503_with_retry_after() {
    let app = app_with_dynamodb_at(dead_endpoint().await).await;
    for (what, reply) in every_dynamodb_route(&app).await {
        assert_outage(&reply, what);
    }
    assert_eq!(app.phone.calls_to(&random_phone()), 0);
}

#[tokio::test]
async fn with_dynamodb_frozen_every_route_answers_503_within_the_operation_timeout() {
    let app = app_with_dynamodb_at(frozen_endpoint().await).await;
    let started = Instant::now();
    let replies = every_dynamodb_route(&app).await;
    let per_route = started.elapsed() / replies.len() as u32;
    for (what, reply) in replies {
        assert_outage(&reply, what);
    }
    // AWS_OPERATION_TIMEOUT_MS=1000, with room for a loaded machine; the old default hung 6 s.
    assert!(
        per_route < Duration::from_secs(3),
        "{per_route:?} per route"
    );
}

/// An app whose Secrets Manager endpoint is a dead port; DynamoDB works.
async fn app_without_secrets() -> TestApp {
    let (init, clock, phone) = tests::init(SHORT_TIMEOUTS).await;
    let sdk = shared::aws::sdk_config(&init.config).await;
    let client = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::Config::from(&sdk)
            .to_builder()
            .endpoint_url(dead_endpoint().await)
            .build(),
    );
    let secrets = SecretsCache::new(client, &init.config.secret_ids, Duration::from_secs(300));
    let init = init.with_secrets(Arc::new(secrets));
    // The endpoints build although the secret cannot be read: the cold start is not the
    // place to fail on an outage.
    TestApp::spawn_with(init, clock, phone).await
}

#[tokio::test]
async fn with_secrets_manager_unreachable_the_routes_that_need_the_secret_answer_503() {
    let app = app_without_secrets().await;
    let phone = random_phone();

    assert_outage(&app.request_call(&phone).await, "request");
    app.assert_untouched(&phone).await;
    let event = json!({
        "event_id": "outage-2", "call_id": "outage-2", "event": "INITIATE",
        "calling_number": phone, "called_number": "+14155550199",
        "created_at": "2026-11-21T10:00:00Z",
    });
    assert_outage(&app.post_events(&event).await, "call-event");
    assert_outage(
        &app.history(&phone, "", &[], Some(SERVICE_KEY)).await,
        "history",
    );
    assert_outage(
        &app.start_code(phone.as_str(), json!({})).await,
        "sms-verify start",
    );
    assert_outage(
        &app.check_code(phone.as_str(), "123456", None).await,
        "sms-verify check",
    );
    assert!(app.store.codes().current(&phone).await.unwrap().is_none());
    // `status` has no use for the secret (its IAM role cannot read it): it still answers, and
    // so does the health check.
    let status = app.status("3f0c5b4e-8d2a-4c1e-9b7f-2a6d8e4c1b90").await;
    assert_eq!(status.status, 404, "{}", status.body);
    let health = app.get("/health").await;
    assert_eq!(health.status, 200, "{}", health.body);
}

#[tokio::test]
async fn health_is_200_with_an_active_pool_number_and_a_bare_503_without_one() {
    let app = TestApp::spawn(&[]).await;
    let ok = app.get("/health").await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body, json!({"status": "ok"}));
    let head = app
        .client
        .head(format!("{}/health", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status().as_u16(), 200);

    // A table whose pool is empty: the same bare 503 as DynamoDB being down.
    let table = format!("it-{}", uuid::Uuid::new_v4().simple());
    let (init, clock, phone) = tests::init(&[("TABLE_NAME", &table)]).await;
    init.store().create_table_if_missing().await.unwrap();
    let empty = TestApp::spawn_with(init, clock, phone).await;
    let reply = empty.get("/health").await;
    assert_outage(&reply, "health without a pool number");
    let down = app_with_dynamodb_at(dead_endpoint().await).await;
    let outage = down.get("/health").await;
    assert_eq!(reply.body["detail"], outage.body["detail"]);
    assert_eq!(reply.body["error"], outage.body["error"]);
}

#[tokio::test]
async fn a_right_caller_id_while_the_secret_is_unreachable_is_a_503_that_verifies_nothing() {
    let healthy = TestApp::spawn(&[]).await;
    let phone = random_phone();
    let session = healthy.start_session(&phone).await;
    let caller_id = healthy.caller_id(&phone);

    let app = app_without_secrets().await;
    let reply = app.verify(&phone, caller_id.as_str(), Some(&session)).await;
    assert_outage(&reply, "verify");

    let status = healthy.status(&session).await;
    assert_eq!(status.body["is_verified"], false, "{}", status.body);
    assert_eq!(status.body["attempt_count"], 0, "{}", status.body);
    let verified = healthy
        .verify(&phone, caller_id.as_str(), Some(&session))
        .await;
    assert_eq!(verified.status, 200, "{}", verified.body);
}

/// Fails every DynamoDB call once switched on.
#[derive(Debug, Default, Clone)]
struct Breaker(Arc<AtomicBool>);

impl Intercept for Breaker {
    fn name(&self) -> &'static str {
        "Breaker"
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if self.0.load(Ordering::SeqCst) {
            return Err("injected: DynamoDB went away".into());
        }
        Ok(())
    }
}

/// A phone that rings (or takes a message), after which DynamoDB breaks.
struct RingThenBreak {
    phone: Arc<tests::Phone>,
    breaker: Breaker,
}

impl TelephonyGateway for RingThenBreak {
    fn place_call<'a>(
        &'a self,
        call: &'a OutgoingCall,
    ) -> BoxFuture<'a, Result<PlacedCall, TelephonyError>> {
        Box::pin(async move {
            let placed = self.phone.place_call(call).await?;
            self.breaker.0.store(true, Ordering::SeqCst);
            Ok(placed)
        })
    }

    fn send_message<'a>(
        &'a self,
        message: &'a OutgoingMessage,
    ) -> BoxFuture<'a, Result<SentMessage, TelephonyError>> {
        Box::pin(async move {
            let sent = self.phone.send_message(message).await?;
            self.breaker.0.store(true, Ordering::SeqCst);
            Ok(sent)
        })
    }
}

#[tokio::test]
async fn a_placed_call_is_a_202_even_when_its_sid_cannot_be_stored() {
    let (init, clock, phone) = tests::init(&[]).await;
    let breaker = Breaker::default();
    let gateway = Arc::new(RingThenBreak {
        phone: phone.clone(),
        breaker: breaker.clone(),
    });
    let init = init
        .with_dynamodb_interceptor(breaker.clone())
        .with_telephony(gateway);
    let app = TestApp::spawn_with(init, clock, phone.clone()).await;
    let number = random_phone();

    let reply = app.request_call(&number).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(phone.calls_to(&number), 1);

    // The session is there, pending, with the caller ID the phone saw: it can be verified.
    breaker.0.store(false, Ordering::SeqCst);
    let session = reply.body["session_id"].as_str().unwrap();
    let stored = app
        .store
        .sessions()
        .recent_sessions(&number, 5)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].state, SessionState::Pending);
    assert_eq!(stored[0].call_sid, None);
    let caller_id: PhoneNumber = phone.caller_id_of_call_to(&number).unwrap();
    let verified = app.verify(&number, caller_id.as_str(), Some(session)).await;
    assert_eq!(verified.status, 200, "{}", verified.body);
}
