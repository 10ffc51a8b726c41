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

/// A send budget over 100 is split into shards: concurrent sends spread over them, each shard
/// within its share, and a request refused by a full shard tries the others, so that a budget
/// of at most three shards admits exactly its budget.
#[tokio::test]
async fn a_sharded_budget_spreads_its_sends_and_admits_exactly_its_budget() {
    use futures::StreamExt;
    use shared::store::rate_limits::{Budget, shard_capacity, shards_for};

    let budget = 250;
    let (init, clock, phone) = tests::isolated_init(&[
        ("MAX_SENDS_PER_HOUR", "250"),
        ("MAX_SENDS_PER_COUNTRY_PER_HOUR", "100000"),
        ("MAX_SENDS_PER_PREFIX_PER_HOUR", "100000"),
    ])
    .await;
    let app = TestApp::spawn_with(init, clock, phone).await;
    assert_eq!(shards_for(budget), 3);
    let statuses: Vec<u16> = futures::stream::iter(0..budget + 30)
        .map(|_| async {
            let body = serde_json::json!({"to": random_phone(), "body": "hello"});
            app.send_sms(&body, None).await.status
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let admitted = statuses.iter().filter(|s| **s == 202).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((admitted, refused), (250, 30), "{statuses:?}");

    let now = app.clock.now();
    let budgets = app.init.config.send_budgets;
    let limits = app.store.limits();
    let total = limits
        .sends_this_hour(&Budget::Global, &budgets, false, now)
        .await
        .unwrap();
    assert_eq!(total, 250);
    let hour = now.unix_timestamp().div_euclid(3600);
    for shard in 0..3 {
        let pk = shared::store::keys::limit_pk("sends-hour", &format!("global#{shard}"), hour);
        let item = app
            .store
            .client()
            .get_item()
            .table_name(app.store.table())
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk))
            .key(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S(shared::store::keys::LIMIT_SK.into()),
            )
            .send()
            .await
            .unwrap()
            .item
            .expect("every shard took sends");
        let count: u32 = item["count"].as_n().unwrap().parse().unwrap();
        assert_eq!(count, shard_capacity(budget, 3, shard), "shard {shard}");
    }
}
