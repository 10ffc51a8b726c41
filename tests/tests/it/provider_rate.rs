//! The provider's own rate: Twilio takes our account's calls and messages at its CPS and MPS
//! (and, for some accounts, only so many calls at once) and queues the rest, so that a queued
//! flash call or code arrives after it expired. Beyond `TWILIO_CALLS_PER_SECOND`,
//! `TWILIO_MAX_CONCURRENT_CALLS` and `TWILIO_MESSAGES_PER_SECOND` (per sender), a send is
//! `429 rate_limited` with `limit: provider_rate` and `Retry-After`, and reaches nobody.
//! Each test has a table of its own: the rate is the account's, and every test would share it.

use serde_json::json;
use tests::{Reply, TestApp, random_phone};

async fn app(overrides: &[(&str, &str)]) -> TestApp {
    let (init, clock, phone) = tests::isolated_init(overrides).await;
    TestApp::spawn_with(init, clock, phone).await
}

fn assert_provider_rate(reply: &Reply) -> u64 {
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert_eq!(reply.body["error"], "rate_limited");
    assert_eq!(reply.body["limit"], "provider_rate");
    let secs: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(secs >= 1);
    secs
}

#[tokio::test]
async fn calls_beyond_the_accounts_calls_per_second_wait_for_the_next_second() {
    let app = app(&[("TWILIO_CALLS_PER_SECOND", "2")]).await;
    let phones: Vec<_> = (0..3).map(|_| random_phone()).collect();
    assert_eq!(app.request_call(&phones[0]).await.status, 202);
    assert_eq!(app.request_call(&phones[1]).await.status, 202);
    let refused = app.request_call(&phones[2]).await;
    assert_eq!(assert_provider_rate(&refused), 1);
    assert_eq!(app.phone.calls_to(&phones[2]), 0, "never dialed");
    app.assert_untouched(&phones[2]).await;

    app.clock.advance(time::Duration::seconds(1));
    assert_eq!(app.request_call(&phones[2]).await.status, 202);
}

#[tokio::test]
async fn calls_beyond_the_accounts_concurrent_calls_wait_for_a_call_to_end() {
    let app = app(&[
        ("TWILIO_CALLS_PER_SECOND", "100"),
        ("TWILIO_MAX_CONCURRENT_CALLS", "2"),
        ("FLASH_CALL_RING_TIMEOUT_SECONDS", "10"),
    ])
    .await;
    assert_eq!(app.request_call(&random_phone()).await.status, 202);
    assert_eq!(app.request_call(&random_phone()).await.status, 202);
    app.clock.advance(time::Duration::seconds(5));
    let refused = app.request_call(&random_phone()).await;
    // A call holds its slot for its ring timeout and 10 s of set-up: 20 s, 5 of them gone.
    assert_eq!(assert_provider_rate(&refused), 15);

    app.clock.advance(time::Duration::seconds(15));
    assert_eq!(app.request_call(&random_phone()).await.status, 202);
}

#[tokio::test]
async fn messages_beyond_a_senders_messages_per_second_wait_and_other_senders_do_not() {
    let app = app(&[("TWILIO_MESSAGES_PER_SECOND", "1")]).await;
    let send = |from: &'static str| json!({"to": random_phone(), "body": "Your order shipped.", "from": from});
    assert_eq!(app.send_sms(&send("+14155550100"), None).await.status, 202);
    let refused = app.send_sms(&send("+14155550100"), None).await;
    assert_eq!(assert_provider_rate(&refused), 1);
    // Another sender has a rate of its own.
    assert_eq!(app.send_sms(&send("+14155550101"), None).await.status, 202);
    // A code goes out from the default sender, at its rate.
    let phone = random_phone();
    let code = app.start_code(phone.as_str(), json!({})).await;
    assert_provider_rate(&code);
    assert!(app.phone.messages_to(&phone).is_empty(), "never sent");

    // A message longer than a second's rate takes the whole next second, and goes.
    app.clock.advance(time::Duration::seconds(1));
    let long = json!({"to": random_phone(), "body": "x".repeat(400), "from": "+14155550100"});
    let sent = app.send_sms(&long, None).await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    assert_eq!(sent.body["segments"], 3);
}
