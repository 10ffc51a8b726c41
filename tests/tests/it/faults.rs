//! Conflicts and throttling on every write path: a write that meets a transaction on its item
//! (`TransactionConflictException`, a transaction cancelled for `TransactionConflict`) or a
//! partition over its throughput is retried with full jitter, and after its retries is a 503
//! with `Retry-After`, never a 500; a share of them is retried away.

use serde_json::json;
use tests::faults::{Fault, Faults};
use tests::{Reply, TestApp, random_phone};

use crate::outages::{assert_outage, every_dynamodb_route};

const TOKEN: &str = "test-webhook-token";

/// An app whose DynamoDB client goes through `faults` (off until injected).
async fn app(faults: &Faults) -> TestApp {
    let secrets = tests::secrets_with(json!({"twilio_auth_token": TOKEN}));
    let faults = faults.clone();
    let config = tests::config(&[]);
    let inner = shared::aws::sdk_config(&config)
        .await
        .http_client()
        .expect("the SDK's HTTP client");
    // A retry partition of its own: the SDK's retry token bucket is one per partition for the
    // whole process, and the faults drain it; the other tests' clients must keep theirs.
    let partition = aws_sdk_dynamodb::config::retry::RetryPartition::new(format!(
        "faults-{}",
        uuid::Uuid::new_v4().simple()
    ));
    TestApp::spawn_public_with(&[], secrets, true, move |init| {
        init.with_dynamodb_config(|c| {
            c.http_client(faults.client(inner))
                .retry_partition(partition)
        })
    })
    .await
}

async fn signed(app: &TestApp, url: String, params: &[(&str, &str)]) -> Reply {
    app.post_signed(TOKEN, &url, params).await
}

/// The routes whose work is a write, each with what it needs set up before the faults start:
/// a flash call's verify, both webhooks, `/sms/send`, the code's check.
struct Prepared {
    session: String,
    phone: shared::phone::PhoneNumber,
    caller_id: String,
    call_sid: String,
    message_id: String,
    message_sid: String,
    code_phone: String,
    code: String,
}

async fn prepare(app: &TestApp) -> Prepared {
    let phone = random_phone();
    let session = app.start_session(&phone).await;
    let caller_id = app.caller_id(&phone).as_str().to_owned();
    let call_sid = app.call_sid_of(&session).await;
    let sent = app
        .send_sms(&json!({"to": random_phone(), "body": "hello"}), None)
        .await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    let code_phone = random_phone();
    let started = app.start_code(code_phone.as_str(), json!({})).await;
    assert_eq!(started.status, 202, "{}", started.body);
    Prepared {
        session,
        phone,
        caller_id,
        call_sid,
        message_id: sent.body["id"].as_str().unwrap().to_owned(),
        message_sid: sent.body["provider_message_id"]
            .as_str()
            .unwrap()
            .to_owned(),
        code: app
            .phone
            .code_sent_to(&code_phone)
            .expect("a code was sent"),
        code_phone: code_phone.as_str().to_owned(),
    }
}

/// Every write path once (and every other DynamoDB route), named.
async fn every_write(app: &TestApp, p: &Prepared) -> Vec<(&'static str, Reply)> {
    let mut replies = every_dynamodb_route(app).await;
    replies.push((
        "verify (right caller ID)",
        app.verify(&p.phone, &p.caller_id, Some(&p.session)).await,
    ));
    replies.push((
        "sms-verify check (right code)",
        app.check_code(&p.code_phone, &p.code, None).await,
    ));
    replies.push((
        "sms-send",
        app.send_sms(
            &json!({"to": random_phone(), "body": "hi"}),
            Some(&uuid::Uuid::new_v4().to_string()),
        )
        .await,
    ));
    let voice = format!("{}/webhooks/twilio/voice?session_id={}", app.url, p.session);
    replies.push((
        "voice webhook",
        signed(
            app,
            voice,
            &[
                ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
                ("CallSid", &p.call_sid),
                ("CallStatus", "ringing"),
                ("Direction", "outbound-api"),
            ],
        )
        .await,
    ));
    let messages = format!(
        "{}/webhooks/twilio/messages?message_id={}",
        app.url, p.message_id
    );
    replies.push((
        "messages webhook",
        signed(
            app,
            messages,
            &[
                ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
                ("MessageSid", &p.message_sid),
                ("MessageStatus", "delivered"),
            ],
        )
        .await,
    ));
    replies
}

/// The routes that cannot answer without their write.
const MUST_WRITE: &[&str] = &[
    "request",
    "call-event",
    "sms-verify start",
    "verify (right caller ID)",
    "sms-verify check (right code)",
    "sms-send",
    "voice webhook",
    "messages webhook",
];

#[tokio::test]
async fn conflicts_or_throttling_on_every_write_are_a_503_with_retry_after_never_a_500() {
    for fault in [Fault::Conflict, Fault::Throttling] {
        let faults = Faults::default();
        let app = app(&faults).await;
        let prepared = prepare(&app).await;
        faults.inject(fault, 100);
        let replies = every_write(&app, &prepared).await;
        faults.stop();
        let (injected, _) = faults.counts();
        assert!(injected > 0, "{fault:?}: nothing was injected");
        for (what, reply) in &replies {
            assert!(
                reply.status < 500 || reply.status == 503,
                "{fault:?} on {what}: {} {}",
                reply.status,
                reply.body
            );
            if MUST_WRITE.contains(what) {
                assert_outage(reply, &format!("{fault:?} on {what}"));
            }
        }
        // Nothing was done halfway: the session and the code still verify once the store
        // takes writes again.
        let verified = app
            .verify(
                &prepared.phone,
                &prepared.caller_id,
                Some(&prepared.session),
            )
            .await;
        assert_eq!(verified.status, 200, "{fault:?}: {}", verified.body);
        let checked = app
            .check_code(&prepared.code_phone, &prepared.code, None)
            .await;
        assert_eq!(checked.status, 200, "{fault:?}: {}", checked.body);
    }
}

#[tokio::test]
async fn a_share_of_conflicts_and_throttling_is_retried_away_and_the_rest_is_503() {
    let faults = Faults::default();
    let app = app(&faults).await;
    let mut outcomes = Vec::new();
    for (i, fault) in [Fault::Conflict, Fault::Throttling].into_iter().enumerate() {
        for _ in 0..3 {
            let prepared = prepare(&app).await;
            faults.inject(fault, 25);
            for (what, reply) in every_write(&app, &prepared).await {
                outcomes.push((i, what, reply));
            }
            faults.stop();
        }
    }
    let (injected, passed) = faults.counts();
    assert!(
        injected > 10 && passed > injected,
        "{injected} injected, {passed} passed"
    );
    let mut unavailable = 0;
    let mut written = 0;
    for (kind, what, reply) in &outcomes {
        assert!(
            reply.status < 500 || reply.status == 503,
            "{kind}/{what}: {} {}",
            reply.status,
            reply.body
        );
        if reply.status == 503 {
            assert_outage(reply, what);
            unavailable += 1;
        }
        if MUST_WRITE.contains(what) && reply.status < 300 {
            written += 1;
        }
    }
    let must = outcomes
        .iter()
        .filter(|(_, what, _)| MUST_WRITE.contains(what))
        .count();
    // A quarter of the writes refused, each retried: nearly every request gets through.
    assert!(
        written * 10 >= must * 8,
        "{written} of {must} writing requests succeeded ({unavailable} 503s)"
    );
}
