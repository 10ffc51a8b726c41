//! Each rate limit refuses at exactly its configured count, with `Retry-After`.

use shared::clock::Clock;
use tests::{TestApp, random_phone};

fn retry_after(reply: &tests::Reply) -> u64 {
    let header: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(reply.body["retry_after_seconds"], header);
    header
}

#[tokio::test]
async fn the_daily_limit_per_phone_refuses_the_request_after_the_last_allowed_one() {
    let app = TestApp::spawn(&[("MAX_REQUESTS_PER_PHONE_PER_DAY", "3")]).await;
    let phone = random_phone();
    for _ in 0..3 {
        assert_eq!(app.request_call(&phone).await.status, 202);
    }
    let refused = app.request_call(&phone).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.body["error"], "rate_limited");
    assert_eq!(refused.body["limit"], "phone_per_day");
    let secs = retry_after(&refused);
    let now = app.clock.now().unix_timestamp();
    assert_eq!(
        secs as i64,
        86_400 - now.rem_euclid(86_400),
        "until the next UTC day"
    );

    // Another phone is not affected.
    assert_eq!(app.request_call(&random_phone()).await.status, 202);
}

#[tokio::test]
async fn the_hourly_limit_per_ip_counts_every_phone_of_that_ip() {
    let app = TestApp::spawn(&[("MAX_REQUESTS_PER_IP_PER_HOUR", "4")]).await;
    for _ in 0..4 {
        assert_eq!(app.request_call(&random_phone()).await.status, 202);
    }
    let refused = app.request_call(&random_phone()).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.body["limit"], "ip_per_hour");
    let now = app.clock.now().unix_timestamp();
    assert_eq!(retry_after(&refused) as i64, 3_600 - now.rem_euclid(3_600));
}

#[tokio::test]
async fn the_cooldown_refuses_a_second_request_until_it_has_passed() {
    let app = TestApp::spawn(&[("REQUEST_COOLDOWN_SECONDS", "30")]).await;
    let phone = random_phone();
    assert_eq!(app.request_call(&phone).await.status, 202);
    app.clock.advance(time::Duration::seconds(12));

    let refused = app.request_call(&phone).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.body["limit"], "cooldown");
    assert_eq!(retry_after(&refused), 18);

    app.clock.advance(time::Duration::seconds(18));
    assert_eq!(app.request_call(&phone).await.status, 202);
}

#[tokio::test]
async fn a_refused_request_consumes_nothing() {
    let app = TestApp::spawn(&[
        ("MAX_REQUESTS_PER_PHONE_PER_DAY", "2"),
        ("REQUEST_COOLDOWN_SECONDS", "60"),
    ])
    .await;
    let phone = random_phone();
    assert_eq!(app.request_call(&phone).await.status, 202);
    for _ in 0..3 {
        assert_eq!(app.request_call(&phone).await.body["limit"], "cooldown");
    }
    app.clock.advance(time::Duration::seconds(60));
    // Had the refused requests taken from the daily count, this one would be refused.
    assert_eq!(app.request_call(&phone).await.status, 202);
    assert_eq!(app.phone.calls_to(&phone), 2);
}
