//! The flash-call flow over HTTP: request → status → verify, and its refusals.

use serde_json::json;
use shared::clock::Clock;
use shared::token;
use tests::{TestApp, random_phone, wrong_caller_id};

#[tokio::test]
async fn a_phone_is_verified_with_the_caller_id_it_was_called_from() {
    let app = TestApp::spawn(&[]).await;
    let phone = random_phone();

    let requested = app.request_call(&phone).await;
    assert_eq!(requested.status, 202, "{}", requested.body);
    let session = requested.body["session_id"].as_str().unwrap().to_owned();
    assert_eq!(requested.body["time_window_seconds"], 300);
    assert!(
        requested.body["expires_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    let status = app.status(&session).await;
    assert_eq!(status.status, 200);
    assert_eq!(status.body["is_valid"], true);
    assert_eq!(status.body["attempt_count"], 0);
    assert_eq!(status.body["attempts_remaining"], 5);
    assert_eq!(status.body["call_status"], "queued");
    assert_eq!(status.body["time_remaining_seconds"], 300);

    // The app reads the caller ID as the phone shows it, in national format.
    let caller_id = app.caller_id(&phone);
    let national = format!(
        "({}) {}-{}",
        &caller_id.as_str()[2..5],
        &caller_id.as_str()[5..8],
        &caller_id.as_str()[8..]
    );
    let verified = app.verify(&phone, &national, Some(&session)).await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    assert_eq!(verified.body["verified"], true);
    assert_eq!(verified.body["phone_number"], phone.as_str());
    assert_eq!(verified.body["session_id"], session.as_str());
    assert_eq!(verified.body["token_type"], "Bearer");
    assert_eq!(verified.body["expires_in"], 900);

    let secrets = app.init.secrets().get().await.unwrap();
    let subject = token::verify(
        &secrets,
        &app.init.config,
        verified.body["access_token"].as_str().unwrap(),
        app.clock.now(),
    );
    assert_eq!(subject, Ok(phone.clone()));

    let status = app.status(&session).await;
    assert_eq!(status.body["is_verified"], true);
    assert_eq!(status.body["is_valid"], false);
    assert_eq!(status.body["attempt_count"], 1);
}

#[tokio::test]
async fn without_a_session_id_the_newest_open_session_of_the_phone_is_verified() {
    let app = TestApp::spawn(&[]).await;
    let phone = random_phone();
    let _older = app.start_session(&phone).await;
    app.clock.advance(time::Duration::seconds(40));
    let newer = app.start_session(&phone).await;

    let verified = app
        .verify(&phone, app.caller_id(&phone).as_str(), None)
        .await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    assert_eq!(verified.body["session_id"], newer.as_str());
}

#[tokio::test]
async fn a_wrong_caller_id_is_a_400_that_counts_down_the_attempts() {
    let app = TestApp::spawn(&[]).await;
    let phone = random_phone();
    let session = app.start_session(&phone).await;
    let wrong = wrong_caller_id(&app.caller_id(&phone));

    for remaining in (0..5).rev() {
        let reply = app.verify(&phone, &wrong, Some(&session)).await;
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert_eq!(reply.body["error"], "caller_id_mismatch");
        assert_eq!(reply.body["attempts_remaining"], remaining);
    }
    let reply = app.verify(&phone, &wrong, Some(&session)).await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.body["error"], "attempts_exhausted");
    let right = app
        .verify(&phone, app.caller_id(&phone).as_str(), Some(&session))
        .await;
    assert_eq!(
        right.status, 429,
        "the right caller ID after the last attempt is refused"
    );
}

#[tokio::test]
async fn an_expired_session_is_refused_although_its_item_still_exists() {
    let app = TestApp::spawn(&[]).await;
    let phone = random_phone();
    let session = app.start_session(&phone).await;
    app.clock.advance(time::Duration::seconds(300));

    let reply = app
        .verify(&phone, app.caller_id(&phone).as_str(), Some(&session))
        .await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(reply.body["error"], "session_expired");
    // Without the id, a phone with no open session is "not found": past states are no oracle.
    let without_id = app
        .verify(&phone, app.caller_id(&phone).as_str(), None)
        .await;
    assert_eq!(without_id.status, 404, "{}", without_id.body);

    let id = shared::session::SessionId::parse(&session).unwrap();
    let stored = app.store.sessions().get_session(&id).await.unwrap();
    assert!(stored.is_some(), "the item is still in the table");
    let status = app.status(&session).await;
    assert_eq!(status.body["is_expired"], true);
    assert_eq!(status.body["is_valid"], false);
    assert_eq!(status.body["time_remaining_seconds"], 0);
    assert_eq!(
        status.body["attempt_count"], 0,
        "a refused attempt is not counted"
    );
}

#[tokio::test]
async fn a_verified_session_cannot_be_verified_again() {
    let app = TestApp::spawn(&[]).await;
    let phone = random_phone();
    let session = app.start_session(&phone).await;
    let caller_id = app.caller_id(&phone);
    assert_eq!(
        app.verify(&phone, caller_id.as_str(), Some(&session))
            .await
            .status,
        200
    );

    let again = app.verify(&phone, caller_id.as_str(), Some(&session)).await;
    assert_eq!(again.status, 409);
    assert_eq!(again.body["error"], "already_verified");
    let without_id = app.verify(&phone, caller_id.as_str(), None).await;
    assert_eq!(
        without_id.status, 404,
        "no open session: {}",
        without_id.body
    );
}

#[tokio::test]
async fn a_session_of_another_phone_or_an_unknown_one_is_not_found() {
    let app = TestApp::spawn(&[]).await;
    let phone = random_phone();
    let session = app.start_session(&phone).await;
    let caller_id = app.caller_id(&phone);

    let other = random_phone();
    let reply = app.verify(&other, caller_id.as_str(), Some(&session)).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.body["error"], "session_not_found");
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        app.verify(&phone, caller_id.as_str(), Some(&unknown))
            .await
            .status,
        404
    );
    assert_eq!(app.status(&unknown).await.status, 404);
    assert_eq!(
        app.verify(&other, caller_id.as_str(), None).await.status,
        404
    );
    assert_eq!(app.status(&session).await.body["attempt_count"], 0);
}

#[tokio::test]
async fn status_never_reveals_the_phone_or_the_caller_id() {
    let app = TestApp::spawn(&[]).await;
    let phone = random_phone();
    let session = app.start_session(&phone).await;
    let caller_id = app.caller_id(&phone);

    let text = app.status(&session).await.body.to_string();
    let digits = |n: &str| n.trim_start_matches('+').to_owned();
    assert!(!text.contains(&digits(phone.as_str())), "{text}");
    assert!(!text.contains(&digits(caller_id.as_str())), "{text}");
    assert!(!text.contains(&caller_id.as_str()[5..]), "{text}");
}

#[tokio::test]
async fn a_country_outside_the_allowed_codes_is_refused_and_nothing_is_called() {
    let app = TestApp::spawn(&[("ALLOWED_COUNTRY_CODES", "44,49")]).await;
    let phone = random_phone();
    let reply = app.request_call(&phone).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.body["error"], "country_not_allowed");
    app.assert_untouched(&phone).await;
}

#[tokio::test]
async fn an_app_signature_outside_the_allowlist_is_refused_unless_signatures_are_off() {
    let app = TestApp::spawn(&[]).await;
    let phone = random_phone();
    for signature in ["local-dev-signaturE", "", "local-dev-signature-and-more"] {
        let reply = app
            .post(
                "/auth/request",
                &json!({"phone_number": phone, "app_signature": signature}),
            )
            .await;
        assert_eq!(reply.status, 403, "{signature:?}: {}", reply.body);
        assert_eq!(reply.body["error"], "app_signature_rejected");
    }
    let missing = app
        .post("/auth/request", &json!({"phone_number": phone}))
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body["field"], "app_signature");
    assert_eq!(app.phone.calls_to(&phone), 0);

    let relaxed = TestApp::spawn(&[("REQUIRE_APP_SIGNATURE", "false")]).await;
    let reply = relaxed
        .post("/auth/request", &json!({"phone_number": phone}))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
}

#[tokio::test]
async fn a_call_that_cannot_be_placed_leaves_the_session_failed_not_pending() {
    let app = TestApp::spawn(&[]).await;
    app.phone
        .fail_with(shared::telephony::TelephonyError::Unavailable(
            "down".into(),
        ));
    let phone = random_phone();
    let reply = app.request_call(&phone).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.body["error"], "telephony_unavailable");

    let sessions = app
        .store
        .sessions()
        .recent_sessions(&phone, 5)
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].state, shared::session::SessionState::Failed);
    let status = app.status(&sessions[0].id.to_string()).await;
    assert_eq!(status.body["call_status"], "failed");
    assert_eq!(status.body["is_valid"], false);
}

#[tokio::test]
async fn a_session_keeps_only_the_keyed_hash_of_its_caller_id() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use shared::store::keys::{PK, SK};
    let app = TestApp::spawn(&[]).await;
    let phone = random_phone();
    let requested = app.request_call(&phone).await;
    assert_eq!(requested.status, 202, "{}", requested.body);
    let session = requested.body["session_id"].as_str().unwrap().to_owned();
    let caller_id = app.caller_id(&phone);

    let item = app
        .store
        .client()
        .get_item()
        .table_name(app.store.table())
        .key(PK, AttributeValue::S(format!("SESSION#{session}")))
        .key(SK, AttributeValue::S("SESSION".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the session item");
    for (name, value) in &item {
        if let Ok(text) = value.as_s() {
            assert!(
                !text.contains(&caller_id.as_str()[1..]),
                "{name} holds the caller ID"
            );
        }
    }
    assert!(!item.contains_key("caller_id"));
    let hash = item["caller_id_hash"].as_s().unwrap();
    assert_eq!(hash.len(), 64);
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));

    // And the right caller ID still verifies, once.
    let verified = app.verify(&phone, caller_id.as_str(), Some(&session)).await;
    assert_eq!(verified.status, 200, "{}", verified.body);
}
