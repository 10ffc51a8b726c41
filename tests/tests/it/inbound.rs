//! The inbound missed call: `POST /auth/request` with `"direction": "inbound"` names a pool
//! number to call; Twilio's signed post of that call to `/webhooks/twilio/voice/incoming` is
//! rejected as busy and verifies the session when it comes from the phone, to that number, with
//! an attestation the deployment accepts; `/auth/verify` then issues the token once.

use std::sync::Arc;

use futures::future::join_all;
use serde_json::{Value, json};
use shared::phone::PhoneNumber;
use shared::secrets::SecretsCache;
use tests::{RawReply, TestApp, random_phone, token_claims};

const TOKEN: &str = "test-inbound-token";
const PASSED_A: Option<&str> = Some("TN-Validation-Passed-A");
const PASSED_B: Option<&str> = Some("TN-Validation-Passed-B");
const REJECT_BUSY: &str = "<Response><Reject reason=\"busy\"/></Response>";

fn secrets() -> Arc<SecretsCache> {
    tests::secrets_with(json!({"twilio_auth_token": TOKEN}))
}

async fn app(overrides: &[(&str, &str)]) -> TestApp {
    TestApp::spawn_public(overrides, secrets(), true).await
}

/// Asks for an inbound session for `phone`.
async fn post_inbound(app: &TestApp, phone: &PhoneNumber) -> tests::Reply {
    app.post(
        "/auth/request",
        &json!({"phone_number": phone, "app_signature": tests::APP_SIGNATURE, "direction": "inbound"}),
    )
    .await
}

/// Opens an inbound session for `phone`: its id and the number to call.
async fn request_inbound(app: &TestApp, phone: &PhoneNumber) -> (String, String) {
    let reply = post_inbound(app, phone).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let session = reply.body["session_id"].as_str().unwrap().to_owned();
    let call_to = reply.body["call_to"].as_str().unwrap().to_owned();
    (session, call_to)
}

/// The phone calls `to`: Twilio's signed post, answered busy whatever it matched.
async fn call(app: &TestApp, from: &str, to: &str, verstat: Option<&str>) {
    let reply = app.call_in(Some(TOKEN), from, to, verstat).await;
    assert_rejected(&reply);
}

fn assert_rejected(reply: &RawReply) {
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.content_type.starts_with("text/xml"), "{reply:?}");
    assert_eq!(reply.text, REJECT_BUSY);
}

async fn is_verified(app: &TestApp, session: &str) -> bool {
    let status = app.status(session).await;
    assert_eq!(status.status, 200, "{}", status.body);
    status.body["is_verified"].as_bool().unwrap()
}

async fn claim(app: &TestApp, phone: &PhoneNumber, session: &str) -> tests::Reply {
    app.post(
        "/auth/verify",
        &json!({"phone_number": phone, "session_id": session}),
    )
    .await
}

/// A pool number that is not `number`.
fn another_pool_number(number: &str) -> &'static str {
    tests::POOL.iter().find(|n| **n != number).unwrap()
}

#[tokio::test]
async fn a_signed_call_from_the_phone_to_its_number_verifies_the_session_and_the_token_comes_once()
{
    let app = app(&[]).await;
    let phone = random_phone();
    let (session, call_to) = request_inbound(&app, &phone).await;
    assert!(tests::POOL.contains(&call_to.as_str()), "{call_to}");
    assert_eq!(app.phone.calls_to(&phone), 0, "nothing is dialed");
    let status = app.status(&session).await.body;
    assert_eq!(status["direction"], "inbound");
    assert_eq!(status["is_verified"], false);
    assert!(
        !status.to_string().contains(phone.as_str()),
        "the status shows no phone: {status}"
    );

    // Before the call: nothing to claim yet.
    let early = claim(&app, &phone, &session).await;
    assert_eq!(early.status, 409, "{}", early.body);
    assert_eq!(early.body["error"], "verification_pending");

    call(&app, phone.as_str(), &call_to, PASSED_A).await;
    assert!(is_verified(&app, &session).await);

    let verified = claim(&app, &phone, &session).await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    assert_eq!(verified.body["verified"], true);
    assert_eq!(verified.body["session_id"], session.as_str());
    let token = verified.body["access_token"].as_str().unwrap();
    let claims = token_claims(token);
    assert_eq!(claims["sub"], phone.as_str());
    assert_eq!(claims["amr"], json!(["tel"]));

    // Once: the token again, another call, the claim from another phone.
    let again = claim(&app, &phone, &session).await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.body["error"], "already_verified");
    call(&app, phone.as_str(), &call_to, PASSED_A).await;
    let stranger = claim(&app, &random_phone(), &session).await;
    assert_eq!(stranger.status, 404, "{}", stranger.body);
}

#[tokio::test]
async fn calls_from_another_number_to_another_number_or_badly_attested_verify_nothing() {
    let app = app(&[]).await;
    let phone = random_phone();
    let (session, call_to) = request_inbound(&app, &phone).await;
    let other_pool = another_pool_number(&call_to);
    let refused: [(String, &str, Option<&str>); 6] = [
        (random_phone().to_string(), call_to.as_str(), PASSED_A),
        (phone.to_string(), other_pool, PASSED_A),
        (phone.to_string(), call_to.as_str(), PASSED_B),
        (
            phone.to_string(),
            call_to.as_str(),
            Some("TN-Validation-Failed-A"),
        ),
        (
            phone.to_string(),
            call_to.as_str(),
            Some("No-TN-Validation"),
        ),
        ("anonymous".to_owned(), call_to.as_str(), PASSED_A),
    ];
    for (from, to, verstat) in &refused {
        call(&app, from, to, *verstat).await;
        assert!(
            !is_verified(&app, &session).await,
            "{from} -> {to} ({verstat:?}) verified the session"
        );
    }
    let status = app.status(&session).await.body;
    assert_eq!(
        status["attempt_count"], 0,
        "no refused call counted: {status}"
    );
    let early = claim(&app, &phone, &session).await;
    assert_eq!(early.status, 409, "{}", early.body);

    // The session took none of it: the right call still verifies it.
    call(&app, phone.as_str(), &call_to, PASSED_A).await;
    assert!(is_verified(&app, &session).await);
}

#[tokio::test]
async fn the_accepted_attestations_and_the_requirement_are_settings() {
    // A and B accepted.
    let app_ab = app(&[("INBOUND_ACCEPTED_ATTESTATIONS", "A,B")]).await;
    let phone = random_phone();
    let (session, call_to) = request_inbound(&app_ab, &phone).await;
    call(&app_ab, phone.as_str(), &call_to, PASSED_B).await;
    assert!(is_verified(&app_ab, &session).await, "B is accepted");

    // Without an attestation: verified by default, refused where one is required.
    let lenient = app(&[]).await;
    let phone = random_phone();
    let (session, call_to) = request_inbound(&lenient, &phone).await;
    call(&lenient, phone.as_str(), &call_to, None).await;
    assert!(is_verified(&lenient, &session).await, "none required");

    let strict = app(&[("INBOUND_REQUIRE_ATTESTATION", "true")]).await;
    let phone = random_phone();
    let (session, call_to) = request_inbound(&strict, &phone).await;
    call(&strict, phone.as_str(), &call_to, None).await;
    assert!(
        !is_verified(&strict, &session).await,
        "an attestation is required"
    );
    call(&strict, phone.as_str(), &call_to, PASSED_B).await;
    assert!(!is_verified(&strict, &session).await, "B is not A");
    call(&strict, phone.as_str(), &call_to, PASSED_A).await;
    assert!(is_verified(&strict, &session).await);
}

#[tokio::test]
async fn unsigned_or_missigned_calls_are_403_and_verify_nothing() {
    let app = app(&[]).await;
    let phone = random_phone();
    let (session, call_to) = request_inbound(&app, &phone).await;
    let unsigned = app.call_in(None, phone.as_str(), &call_to, PASSED_A).await;
    assert_eq!(unsigned.status, 403, "{unsigned:?}");
    let body: Value = serde_json::from_str(&unsigned.text).unwrap();
    assert_eq!(body["error"], "invalid_signature");
    let forged = app
        .call_in(Some("another-token"), phone.as_str(), &call_to, PASSED_A)
        .await;
    assert_eq!(forged.status, 403, "{forged:?}");
    assert!(!is_verified(&app, &session).await);
}

#[tokio::test]
async fn many_calls_at_once_verify_once_and_many_claims_get_one_token() {
    let app = app(&[]).await;
    let phone = random_phone();
    let (session, call_to) = request_inbound(&app, &phone).await;
    join_all((0..10).map(|_| call(&app, phone.as_str(), &call_to, PASSED_A))).await;
    let status = app.status(&session).await.body;
    assert_eq!(status["is_verified"], true);
    assert_eq!(status["attempt_count"], 1, "one call verified it: {status}");
    let claims = join_all((0..10).map(|_| claim(&app, &phone, &session))).await;
    let issued = claims.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        issued,
        1,
        "{:?}",
        claims.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    assert!(
        claims
            .iter()
            .filter(|r| r.status != 200)
            .all(|r| r.status == 409 && r.body["error"] == "already_verified"),
        "{:?}",
        claims.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_call_after_the_window_verifies_nothing() {
    let app = app(&[("VALIDITY_PERIOD_SECONDS", "120")]).await;
    let phone = random_phone();
    let (session, call_to) = request_inbound(&app, &phone).await;
    app.clock.advance(time::Duration::seconds(121));
    call(&app, phone.as_str(), &call_to, PASSED_A).await;
    assert!(!is_verified(&app, &session).await);
    let late = claim(&app, &phone, &session).await;
    assert_eq!(late.status, 401, "{}", late.body);
    assert_eq!(late.body["error"], "session_expired");
}

#[tokio::test]
async fn an_inbound_request_takes_the_phone_and_client_limits_but_no_send_budget() {
    // A global budget of one send an hour (on a table of its own): a flash call takes it,
    // inbound sessions do not.
    let (init, clock, phone) = tests::isolated_init(&[
        ("MAX_SENDS_PER_HOUR", "1"),
        ("REQUEST_COOLDOWN_SECONDS", "30"),
    ])
    .await;
    let app = TestApp::spawn_with(init, clock, phone).await;
    app.start_session(&random_phone()).await;
    let refused = app.request_call(&random_phone()).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    for _ in 0..3 {
        request_inbound(&app, &random_phone()).await;
    }
    // The cooldown between requests for one phone.
    let phone = random_phone();
    request_inbound(&app, &phone).await;
    let again = post_inbound(&app, &phone).await;
    assert_eq!(again.status, 429, "{}", again.body);
    assert!(again.headers.get("retry-after").is_some());
}

#[tokio::test]
async fn inbound_bad_input_is_a_400_that_opens_nothing() {
    let app = app(&[]).await;
    let phone = random_phone();
    for direction in [json!("sideways"), json!(1), json!("INBOUND"), json!(null)] {
        let reply = app
            .post(
                "/auth/request",
                &json!({"phone_number": phone, "app_signature": tests::APP_SIGNATURE, "direction": direction}),
            )
            .await;
        assert_eq!(reply.status, 400, "{direction}: {}", reply.body);
        assert_eq!(reply.body["error"], "invalid_field");
    }
    app.assert_untouched(&phone).await;

    // A caller ID posted to an inbound session, and a claim of a flash call's session.
    let (inbound, call_to) = request_inbound(&app, &phone).await;
    let posted = app.verify(&phone, &call_to, Some(&inbound)).await;
    assert_eq!(posted.status, 400, "{}", posted.body);
    assert_eq!(posted.body["field"], "received_caller_id");
    let null = app
        .post(
            "/auth/verify",
            &json!({"phone_number": phone, "session_id": inbound, "received_caller_id": null}),
        )
        .await;
    assert_eq!(null.status, 400, "{}", null.body);
    let flash_phone = random_phone();
    let flash = app.start_session(&flash_phone).await;
    let claimed = claim(&app, &flash_phone, &flash).await;
    assert_eq!(claimed.status, 400, "{}", claimed.body);
    // Neither touched the sessions.
    assert_eq!(app.status(&inbound).await.body["attempt_count"], 0);
    assert_eq!(app.status(&flash).await.body["attempt_count"], 0);
    // A flash call's verify without a session id ignores the newer inbound session.
    let flash_and_inbound = random_phone();
    let flash = app.start_session(&flash_and_inbound).await;
    let caller_id = app.caller_id(&flash_and_inbound);
    app.clock.advance(time::Duration::seconds(31));
    request_inbound(&app, &flash_and_inbound).await;
    let verified = app
        .verify(&flash_and_inbound, caller_id.as_str(), None)
        .await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    assert_eq!(verified.body["session_id"], flash.as_str());
}

#[tokio::test]
async fn sessions_someone_else_opened_for_the_phone_never_take_its_owners_call() {
    let app = app(&[]).await;
    let phone = random_phone();
    // Another client opens four sessions for the phone: each shows a number of its own.
    let mut strangers = Vec::new();
    for _ in 0..4 {
        strangers.push(request_inbound(&app, &phone).await);
    }
    let shown: std::collections::BTreeSet<&str> =
        strangers.iter().map(|(_, to)| to.as_str()).collect();
    assert_eq!(shown.len(), 4, "{strangers:?}");
    // The owner's session shows the fifth; the owner's call verifies it alone.
    let (mine, call_to) = request_inbound(&app, &phone).await;
    assert!(!shown.contains(call_to.as_str()));
    call(&app, phone.as_str(), &call_to, PASSED_A).await;
    assert!(is_verified(&app, &mine).await);
    for (session, _) in &strangers {
        assert!(!is_verified(&app, session).await);
        assert_eq!(claim(&app, &phone, session).await.status, 409);
    }
    // Every number is shown by an open session of the phone: no sixth until one expires.
    let full = post_inbound(&app, &phone).await;
    assert_eq!(full.status, 503, "{}", full.body);
    assert_eq!(full.body["error"], "no_pool_number");
    assert!(full.headers.get("retry-after").is_some());
    app.clock.advance(time::Duration::seconds(301));
    request_inbound(&app, &phone).await;
}
