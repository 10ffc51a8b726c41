//! The abuse and toll-fraud guard, against DynamoDB Local: number types, the service-wide
//! budgets (all sends, per country, per block of 10,000 numbers), the cap of failed
//! verifications per phone across sessions, JSON only, and no oracle in `verify`. Each test
//! that spends a service-wide budget runs on a table of its own.

use std::sync::Arc;

use futures::future::join_all;
use serde_json::json;
use shared::clock::Clock;
use shared::phone::{NumberType, PhoneNumber};
use tests::{APP_SIGNATURE, Reply, TestApp, random_loopback, random_phone, wrong_caller_id};

async fn isolated(overrides: &[(&str, &str)]) -> TestApp {
    let (init, clock, phone) = tests::isolated_init(overrides).await;
    TestApp::spawn_with(init, clock, phone).await
}

fn phone(number: &str) -> PhoneNumber {
    PhoneNumber::parse(number).unwrap()
}

/// A request from an address of its own, so that the per-IP limit stays out of the way.
async fn request_from_anywhere(app: &TestApp, number: &PhoneNumber) -> Reply {
    let client = reqwest::Client::builder()
        .local_address(random_loopback())
        .build()
        .unwrap();
    app.send(
        client
            .post(format!("{}/auth/request", app.url))
            .json(&json!({"phone_number": number, "app_signature": APP_SIGNATURE})),
    )
    .await
}

fn assert_limited(reply: &Reply, limit: &str) {
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert_eq!(reply.body["error"], "rate_limited");
    assert_eq!(reply.body["limit"], limit, "{}", reply.body);
    assert!(reply.headers.contains_key("retry-after"));
}

/// What the service-wide counters hold this hour: (global, country, prefix) of `number`.
async fn counters(app: &TestApp, number: &PhoneNumber) -> (u32, u32, u32) {
    let limits = app.store.limits();
    let now = app.clock.now();
    let budgets = app.init.config.send_budgets;
    let [global, country, prefix] = shared::store::rate_limits::Budget::of(number);
    let mut counts = [0; 3];
    for (count, budget) in counts.iter_mut().zip([global, country, prefix]) {
        *count = limits
            .sends_this_hour(&budget, &budgets, false, now)
            .await
            .unwrap();
    }
    (counts[0], counts[1], counts[2])
}

#[test]
fn premium_rate_numbers_are_known_as_such_and_mobiles_as_mobiles() {
    assert_eq!(phone("+19002345678").number_type(), NumberType::PremiumRate);
    assert_eq!(
        phone("+449098765432").number_type(),
        NumberType::PremiumRate
    );
    assert_eq!(phone("+447911123456").number_type(), NumberType::Mobile);
    assert_eq!(
        phone("+14155550123").number_type(),
        NumberType::FixedLineOrMobile
    );
    assert_eq!(phone("+18005550123").number_type(), NumberType::TollFree);
}

#[tokio::test]
async fn premium_rate_numbers_are_refused_and_mobiles_pass() {
    let app = isolated(&[]).await;
    for premium in ["+19002345678", "+449098765432", "+18005550123"] {
        let number = phone(premium);
        let reply = app.request_call(&number).await;
        assert_eq!(reply.status, 403, "{premium}: {}", reply.body);
        assert_eq!(reply.body["error"], "number_type_not_allowed");
        app.assert_untouched(&number).await;
        assert_eq!(
            counters(&app, &number).await,
            (0, 0, 0),
            "{premium} spent a budget"
        );
    }
    for mobile in ["+447911123456", "+14155550123"] {
        let reply = app.request_call(&phone(mobile)).await;
        assert_eq!(reply.status, 202, "{mobile}: {}", reply.body);
    }
}

#[tokio::test]
async fn allowed_number_types_are_configuration() {
    let app = isolated(&[("ALLOWED_NUMBER_TYPES", "mobile")]).await;
    let reply = app.request_call(&phone("+14155550123")).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.body["error"], "number_type_not_allowed");
    let reply = app.request_call(&phone("+447911123456")).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
}

#[tokio::test]
async fn the_global_budget_refuses_at_exactly_its_count_and_a_refusal_spends_nothing() {
    let app = isolated(&[("MAX_SENDS_PER_HOUR", "3")]).await;
    for _ in 0..3 {
        assert_eq!(
            request_from_anywhere(&app, &random_phone()).await.status,
            202
        );
    }
    let refused = random_phone();
    assert_limited(
        &request_from_anywhere(&app, &refused).await,
        "global_per_hour",
    );
    app.assert_untouched(&refused).await;
    let (global, country, prefix) = counters(&app, &refused).await;
    assert_eq!((global, country), (3, 3));
    assert_eq!(prefix, 0, "the refused number's block was not charged");
    // The next hour starts over.
    app.clock.advance(time::Duration::hours(1));
    assert_eq!(request_from_anywhere(&app, &refused).await.status, 202);
}

#[tokio::test]
async fn the_country_budget_refuses_that_country_only() {
    let app = isolated(&[("MAX_SENDS_PER_COUNTRY_PER_HOUR", "2")]).await;
    for _ in 0..2 {
        assert_eq!(
            request_from_anywhere(&app, &random_phone()).await.status,
            202
        );
    }
    assert_limited(
        &request_from_anywhere(&app, &random_phone()).await,
        "country_per_hour",
    );
    let uk = phone("+447911123456");
    assert_eq!(request_from_anywhere(&app, &uk).await.status, 202);
}

#[tokio::test]
async fn the_prefix_budget_refuses_the_21st_number_of_a_block_and_admits_the_next_block() {
    let app = isolated(&[("MAX_SENDS_PER_PREFIX_PER_HOUR", "20")]).await;
    let in_block = |i: u32| phone(&format!("+1415555{i:04}"));
    let admitted: Vec<u16> = join_all((100..120).map(|i| {
        let app = &app;
        async move { request_from_anywhere(app, &in_block(i)).await.status }
    }))
    .await;
    assert!(admitted.iter().all(|s| *s == 202), "{admitted:?}");
    let twenty_first = in_block(120);
    assert_limited(
        &request_from_anywhere(&app, &twenty_first).await,
        "prefix_per_hour",
    );
    app.assert_untouched(&twenty_first).await;
    let next_block = phone("+14155560120");
    assert_eq!(request_from_anywhere(&app, &next_block).await.status, 202);
}

#[tokio::test]
async fn fifty_concurrent_requests_against_a_budget_of_ten_admit_exactly_ten() {
    let app = Arc::new(isolated(&[("MAX_SENDS_PER_HOUR", "10")]).await);
    let replies = join_all((0..50).map(|_| {
        let app = app.clone();
        async move { request_from_anywhere(&app, &random_phone()).await }
    }))
    .await;
    let admitted = replies.iter().filter(|r| r.status == 202).count();
    let refused = replies
        .iter()
        .filter(|r| r.status == 429 && r.body["limit"] == "global_per_hour")
        .count();
    // A request that lost every race on the one counter (DynamoDB Local cancels concurrent
    // transactions on an item, and the whole suite loads it) is a 503 with Retry-After, never
    // an admission over the budget; sent again, it is refused by the budget.
    let raced: Vec<&Reply> = replies.iter().filter(|r| r.status == 503).collect();
    for reply in &raced {
        assert!(reply.headers.contains_key("retry-after"), "{}", reply.body);
        let again = request_from_anywhere(&app, &random_phone()).await;
        assert_eq!(again.status, 429, "{}", again.body);
        assert_eq!(again.body["limit"], "global_per_hour");
    }
    assert_eq!(
        (admitted, refused + raced.len()),
        (10, 40),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let (global, _, _) = counters(&app, &random_phone()).await;
    assert_eq!(global, 10);
}

#[tokio::test]
async fn failures_over_several_sessions_lock_the_phone_at_exactly_the_cap() {
    let app = isolated(&[("MAX_FAILED_VERIFICATIONS_PER_PHONE_PER_DAY", "3")]).await;
    let number = random_phone();
    let first = app.start_session(&number).await;
    let wrong = wrong_caller_id(&app.caller_id(&number));
    for _ in 0..2 {
        assert_eq!(app.verify(&number, &wrong, Some(&first)).await.status, 400);
    }
    let second = app.start_session(&number).await;
    let right = app.caller_id(&number);
    let wrong = wrong_caller_id(&right);
    let third = app.verify(&number, &wrong, Some(&second)).await;
    assert_eq!(
        third.status, 400,
        "the third failure is answered: {}",
        third.body
    );

    // At the cap: no answer about any session of the phone, the right one included.
    for session in [&first, &second] {
        let locked = app.verify(&number, right.as_str(), Some(session)).await;
        assert_eq!(locked.status, 429, "{}", locked.body);
        assert_eq!(locked.body["error"], "attempts_exhausted");
        assert!(locked.headers.contains_key("retry-after"));
    }
    let status = app.status(&second).await;
    assert_eq!(status.body["is_verified"], false);
    assert_eq!(
        status.body["attempt_count"], 1,
        "the locked attempts counted nothing"
    );
    assert_limited(&app.request_call(&number).await, "phone_failures");

    // The next day the phone may try again.
    app.clock.advance(time::Duration::days(1));
    let fresh = app.start_session(&number).await;
    let right = app.caller_id(&number);
    assert_eq!(
        app.verify(&number, right.as_str(), Some(&fresh))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn concurrent_failures_on_several_sessions_never_pass_the_cap() {
    let app = Arc::new(isolated(&[("MAX_FAILED_VERIFICATIONS_PER_PHONE_PER_DAY", "4")]).await);
    let number = random_phone();
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(app.start_session(&number).await);
    }
    // Not in the pool: wrong for every session (each has its own random pool number).
    let wrong = "+14155550199".to_owned();
    let replies = join_all((0..30).map(|i| {
        let (app, number, wrong) = (app.clone(), number.clone(), wrong.clone());
        let session = sessions[i % 3].clone();
        async move { app.verify(&number, &wrong, Some(&session)).await }
    }))
    .await;
    let answered = replies.iter().filter(|r| r.status == 400).count();
    assert_eq!(
        answered,
        4,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(
        replies.iter().all(|r| r.status == 400 || r.status == 429),
        "{:?}",
        replies
            .iter()
            .map(|r| (r.status, r.body["error"].clone()))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_body_without_a_json_content_type_is_415_and_changes_nothing() {
    let app = TestApp::spawn(&[]).await;
    let number = random_phone();
    let body = json!({"phone_number": number, "app_signature": APP_SIGNATURE}).to_string();
    let no_type = app
        .send(
            app.client
                .post(format!("{}/auth/request", app.url))
                .body(body.clone()),
        )
        .await;
    assert_eq!(no_type.status, 415, "{}", no_type.body);
    assert_eq!(no_type.body["error"], "unsupported_media_type");
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let reply = app
            .post_raw("/auth/request", content_type, body.clone().into_bytes())
            .await;
        assert_eq!(reply.status, 415, "{content_type}");
    }
    app.assert_untouched(&number).await;
    let verify = app
        .send(
            app.client
                .post(format!("{}/auth/verify", app.url))
                .body("{}"),
        )
        .await;
    assert_eq!(verify.status, 415);
    let charset = app
        .post_raw(
            "/auth/request",
            "application/json; charset=utf-8",
            body.into_bytes(),
        )
        .await;
    assert_eq!(charset.status, 202, "{}", charset.body);
}

#[tokio::test]
async fn verify_without_a_session_id_says_not_found_whatever_the_past_sessions() {
    let app = TestApp::spawn(&[]).await;
    // One phone whose newest session is verified, one whose newest expired, one whose newest
    // failed: each answers exactly as a number that never used the service.
    let verified = random_phone();
    let session = app.start_session(&verified).await;
    let right = app.caller_id(&verified);
    assert_eq!(
        app.verify(&verified, right.as_str(), Some(&session))
            .await
            .status,
        200
    );

    let expired = random_phone();
    app.start_session(&expired).await;

    let failed = random_phone();
    app.phone
        .fail_with(shared::telephony::TelephonyError::Unavailable(
            "down".into(),
        ));
    assert_eq!(app.request_call(&failed).await.status, 503);

    app.clock.advance(time::Duration::minutes(10));
    let stranger = random_phone();
    let answers: Vec<(u16, serde_json::Value)> = join_all(
        [&verified, &expired, &failed, &stranger]
            .map(|n| async { app.verify(n, "+14155550100", None).await }),
    )
    .await
    .into_iter()
    .map(|r| (r.status, r.body["error"].clone()))
    .collect();
    for answer in &answers {
        assert_eq!(answer, &(404, json!("session_not_found")), "{answers:?}");
    }
}
