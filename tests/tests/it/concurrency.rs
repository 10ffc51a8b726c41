//! Conditional writes under concurrency: one success per session, never more attempts than the
//! maximum.

use futures::future::join_all;
use tests::{TestApp, random_phone, wrong_caller_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_right_caller_ids_verify_a_session_exactly_once() {
    let app = TestApp::spawn(&[]).await;
    let phone = random_phone();
    let session = app.start_session(&phone).await;
    let caller_id = app.caller_id(&phone);

    let replies =
        join_all((0..100).map(|_| app.verify(&phone, caller_id.as_str(), Some(&session)))).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let conflicts = replies.iter().filter(|r| r.status == 409).count();
    // One that lost every race on the session (DynamoDB Local, loaded by the whole suite,
    // cancels concurrent transactions on an item) is a 503 with Retry-After that changed
    // nothing: sent again, it is told the session is verified.
    let raced: Vec<_> = replies.iter().filter(|r| r.status == 503).collect();
    assert!(raced.iter().all(|r| r.headers.contains_key("retry-after")));
    assert_eq!(ok, 1, "exactly one success");
    assert_eq!(
        conflicts + raced.len(),
        99,
        "every other request is told it is already verified"
    );
    for _ in &raced {
        let again = app.verify(&phone, caller_id.as_str(), Some(&session)).await;
        assert_eq!(again.status, 409, "{}", again.body);
    }
    assert_eq!(app.status(&session).await.body["attempt_count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_wrong_caller_ids_count_exactly_the_maximum_attempts() {
    let app = TestApp::spawn(&[]).await;
    let phone = random_phone();
    let session = app.start_session(&phone).await;
    let right = app.caller_id(&phone);
    let wrong = wrong_caller_id(&right);

    let replies = join_all((0..100).map(|_| app.verify(&phone, &wrong, Some(&session)))).await;
    let counted = replies.iter().filter(|r| r.status == 400).count();
    let refused = replies.iter().filter(|r| r.status == 429).count();
    assert_eq!(counted, 5, "exactly MAX_VERIFICATION_ATTEMPTS are counted");
    assert_eq!(refused, 95);
    let mut remaining: Vec<u64> = replies
        .iter()
        .filter(|r| r.status == 400)
        .map(|r| r.body["attempts_remaining"].as_u64().unwrap())
        .collect();
    remaining.sort();
    assert_eq!(
        remaining,
        vec![0, 1, 2, 3, 4],
        "each counted attempt saw its own count"
    );

    assert_eq!(app.status(&session).await.body["attempt_count"], 5);
    let late = app.verify(&phone, right.as_str(), Some(&session)).await;
    assert_eq!(
        late.status, 429,
        "the right caller ID afterwards is still refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_for_one_phone_respect_the_daily_limit() {
    let app = TestApp::spawn(&[("MAX_REQUESTS_PER_PHONE_PER_DAY", "3")]).await;
    let phone = random_phone();
    let replies = join_all((0..20).map(|_| app.request_call(&phone))).await;
    assert_eq!(replies.iter().filter(|r| r.status == 202).count(), 3);
    assert_eq!(replies.iter().filter(|r| r.status == 429).count(), 17);
    assert_eq!(app.phone.calls_to(&phone), 3);
}
