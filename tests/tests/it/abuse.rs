//! The abuse defense that targets the abuser, not the users, against DynamoDB Local: App Check
//! attestation, trust tiers (the untrusted share), the conversion quarantine (enforce, monitor,
//! overrides, returning phones), the per-network limit, code-failure caps per network under a
//! per-phone ceiling, no oracle in the code check, budgets in segments, and test numbers only
//! where allowed. Each test that spends a service-wide budget runs on a table of its own.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::{Value, json};
use shared::clock::Clock;
use shared::phone::PhoneNumber;
use shared::store::reputation::{Destination, Override};
use tests::{APP_SIGNATURE, Reply, TestApp, app_check_jwks, app_check_token, random_phone};

async fn isolated(overrides: &[(&str, &str)]) -> TestApp {
    let (init, clock, phone) = tests::isolated_init(overrides).await;
    TestApp::spawn_with(init, clock, phone).await
}

/// An app with App Check pointed at the tests' JWKS, on a table of its own.
async fn attested_app(overrides: &[(&str, &str)]) -> (TestApp, wiremock::MockServer) {
    let (jwks, settings) = app_check_jwks().await;
    let mut all: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(overrides);
    (isolated(&all).await, jwks)
}

fn ip(a: u8, b: u8, c: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, a, b, c))
}

/// A fresh address in a network of its own (127.x.y.0/24).
fn fresh_ip() -> IpAddr {
    tests::random_loopback()
}

fn phone(number: &str) -> PhoneNumber {
    PhoneNumber::parse(number).unwrap()
}

fn in_block(i: u32) -> PhoneNumber {
    phone(&format!("+1415555{i:04}"))
}

async fn flash(app: &TestApp, from: IpAddr, number: &PhoneNumber, token: Option<&str>) -> Reply {
    let body = json!({"phone_number": number, "app_signature": APP_SIGNATURE});
    app.post_from(from, "/auth/request", &body, token).await
}

async fn code_start(
    app: &TestApp,
    from: IpAddr,
    number: &PhoneNumber,
    token: Option<&str>,
) -> Reply {
    let body = json!({"phone_number": number, "app_signature": APP_SIGNATURE});
    app.post_from(from, "/sms/verify/start", &body, token).await
}

async fn code_check(app: &TestApp, from: IpAddr, number: &PhoneNumber, code: &str) -> Reply {
    let body = json!({"phone_number": number, "code": code});
    app.post_from(from, "/sms/verify/check", &body, None).await
}

fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| {
            if c == '9' {
                '0'
            } else {
                char::from(c as u8 + 1)
            }
        })
        .collect()
}

/// Verifies `number` by a flash call (a phone that verified before, from then on).
async fn verify_by_flash(app: &TestApp, number: &PhoneNumber) {
    let reply = flash(app, fresh_ip(), number, None).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let caller = app.caller_id(number);
    let session = reply.body["session_id"].as_str().unwrap();
    let verified = app.verify(number, caller.as_str(), Some(session)).await;
    assert_eq!(verified.status, 200, "{}", verified.body);
}

fn assert_limited(reply: &Reply, limit: &str) {
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert_eq!(reply.body["error"], "rate_limited");
    assert_eq!(reply.body["limit"], limit, "{}", reply.body);
    assert!(
        reply.headers.contains_key("retry-after"),
        "{:?}",
        reply.headers
    );
}

fn assert_quarantined(reply: &Reply) {
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.body["error"], "destination_quarantined");
    assert!(
        reply.headers.contains_key("retry-after"),
        "{:?}",
        reply.headers
    );
}

// ---- 1. App attestation ----------------------------------------------------------------

#[tokio::test]
async fn with_attestation_required_a_valid_token_passes_and_every_bad_one_is_refused() {
    let (app, _jwks) = attested_app(&[("REQUIRE_ATTESTATION", "true")]).await;
    let now = app.clock.now();
    let project = tests::app_check_project();
    let number = random_phone();

    let missing = flash(&app, fresh_ip(), &number, None).await;
    assert_eq!(missing.status, 401, "{}", missing.body);
    assert_eq!(missing.body["error"], "attestation_required");

    let good = app_check_token(now);
    // One character of the signature changed (in the middle: every bit of it counts).
    let mut tampered = good.clone().into_bytes();
    let at = tampered.len() - 40;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let header_none = base64_url(&json!({"alg": "none", "typ": "JWT", "kid": project.kid}));
    let payload = good.split('.').nth(1).unwrap();
    let alg_none = format!("{header_none}.{payload}.");
    let header_hs = base64_url(&json!({"alg": "HS256", "typ": "JWT", "kid": project.kid}));
    let alg_hs = format!("{header_hs}.{payload}.c2lnbmF0dXJl");
    let token = |claims: Value| {
        project
            .token_with(tests::TEST_APP_ID, now, 3600, claims)
            .unwrap()
    };
    let expired = project
        .token_with(
            tests::TEST_APP_ID,
            now - time::Duration::hours(2),
            3600,
            json!({}),
        )
        .unwrap();
    let bad = [
        ("expired", expired),
        ("tampered", tampered),
        ("alg none", alg_none),
        ("alg HS256", alg_hs),
        (
            "another issuer",
            token(json!({"iss": "https://firebaseappcheck.googleapis.com/999999999999"})),
        ),
        (
            "another audience",
            token(json!({"aud": ["projects/999999999999"]})),
        ),
        (
            "issued in the future",
            token(json!({"iat": now.unix_timestamp() + 3600})),
        ),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (what, token) in &bad {
        let reply = flash(&app, fresh_ip(), &number, Some(token)).await;
        assert_eq!(reply.status, 403, "{what}: {}", reply.body);
        assert_eq!(reply.body["error"], "attestation_rejected", "{what}");
        let reply = code_start(&app, fresh_ip(), &number, Some(token)).await;
        assert_eq!(reply.status, 403, "{what} (code): {}", reply.body);
    }
    app.assert_untouched(&number).await;

    let ok = flash(&app, fresh_ip(), &number, Some(&good)).await;
    assert_eq!(ok.status, 202, "{}", ok.body);
    let ok = code_start(&app, fresh_ip(), &random_phone(), Some(&good)).await;
    assert_eq!(ok.status, 202, "{}", ok.body);
}

#[tokio::test]
async fn app_ids_restrict_the_apps_of_the_project() {
    let (app, _jwks) = attested_app(&[
        ("REQUIRE_ATTESTATION", "true"),
        ("APP_CHECK_APP_IDS", "1:123456789012:ios:0000000000000000"),
    ])
    .await;
    let reply = flash(
        &app,
        fresh_ip(),
        &random_phone(),
        Some(&app_check_token(app.clock.now())),
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.body["error"], "attestation_rejected");
    let ios = tests::app_check_project()
        .token("1:123456789012:ios:0000000000000000", app.clock.now())
        .unwrap();
    let reply = flash(&app, fresh_ip(), &random_phone(), Some(&ios)).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
}

#[tokio::test]
async fn jwks_down_is_a_503_only_when_attestation_is_required() {
    let dead = "http://127.0.0.1:9/jwks";
    let required = isolated(&[
        ("APP_CHECK_PROJECT_NUMBER", tests::TEST_APP_CHECK_PROJECT),
        ("APP_CHECK_JWKS_URL", dead),
        ("REQUIRE_ATTESTATION", "true"),
    ])
    .await;
    let token = app_check_token(required.clock.now());
    let number = random_phone();
    let reply = flash(&required, fresh_ip(), &number, Some(&token)).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.headers.contains_key("retry-after"));
    required.assert_untouched(&number).await;

    let optional = isolated(&[
        ("APP_CHECK_PROJECT_NUMBER", tests::TEST_APP_CHECK_PROJECT),
        ("APP_CHECK_JWKS_URL", dead),
    ])
    .await;
    let reply = flash(&optional, fresh_ip(), &random_phone(), Some(&token)).await;
    assert_eq!(reply.status, 202, "served as untrusted: {}", reply.body);
}

#[tokio::test]
async fn the_local_stacks_own_app_check_project_signs_tokens_the_api_accepts() {
    // infra/stack.sh makes the project and serves its JWKS; stackctl app-check-token signs
    // with this same key file.
    let Ok(dir) = std::env::var("APP_CHECK_LOCAL_DIR") else {
        panic!("APP_CHECK_LOCAL_DIR is unset: run the tests through infra/test.sh");
    };
    let project = devstack::app_check::Project::load(std::path::Path::new(&dir)).unwrap();
    let app = isolated(&[("REQUIRE_ATTESTATION", "true")]).await;
    let token = project
        .token(devstack::app_check::LOCAL_APP_ID, app.clock.now())
        .unwrap();
    let reply = flash(&app, fresh_ip(), &random_phone(), Some(&token)).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
}

fn base64_url(value: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

// ---- 2. Trust tiers ----------------------------------------------------------------------

#[tokio::test]
async fn untrusted_requests_stop_at_their_share_while_trusted_ones_still_pass() {
    let (app, _jwks) = attested_app(&[
        ("MAX_SENDS_PER_COUNTRY_PER_HOUR", "10"),
        ("UNTRUSTED_SHARE_PERCENT", "20"),
    ])
    .await;
    // A phone that verified before (it spends 1 of the untrusted share: it was untrusted then).
    let returning = random_phone();
    verify_by_flash(&app, &returning).await;
    let second = code_start(&app, fresh_ip(), &random_phone(), None).await;
    assert_eq!(second.status, 202, "the share is 2 of 10: {}", second.body);
    let third = flash(&app, fresh_ip(), &random_phone(), None).await;
    assert_limited(&third, "untrusted_share");
    let third = code_start(&app, fresh_ip(), &random_phone(), None).await;
    assert_limited(&third, "untrusted_share");

    // Trusted requests draw on the whole budget: attested, or a phone that verified before.
    let token = app_check_token(app.clock.now());
    for _ in 0..4 {
        let attested = flash(&app, fresh_ip(), &random_phone(), Some(&token)).await;
        assert_eq!(attested.status, 202, "{}", attested.body);
    }
    let back = code_start(&app, fresh_ip(), &returning, None).await;
    assert_eq!(
        back.status, 202,
        "a returning phone is trusted: {}",
        back.body
    );
    let limits = app.store.limits();
    let now = app.clock.now();
    let budgets = app.init.config.send_budgets;
    let us = shared::store::rate_limits::Budget::Country(1);
    let untrusted = limits
        .sends_this_hour(&us, &budgets, true, now)
        .await
        .unwrap();
    let all = limits
        .sends_this_hour(&us, &budgets, false, now)
        .await
        .unwrap();
    assert_eq!((untrusted, all), (2, 7), "refusals consumed nothing");
}

#[tokio::test]
async fn a_service_key_send_is_trusted() {
    let app = isolated(&[
        ("MAX_SENDS_PER_HOUR", "10"),
        ("UNTRUSTED_SHARE_PERCENT", "0"),
    ])
    .await;
    let reply = app
        .send_sms(&json!({"to": random_phone(), "body": "hello"}), None)
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_limited(
        &flash(&app, fresh_ip(), &random_phone(), None).await,
        "untrusted_share",
    );
}

// ---- 3. Conversion quarantine -----------------------------------------------------------

const QUARANTINE: &[(&str, &str)] = &[
    ("QUARANTINE_MODE", "enforce"),
    ("QUARANTINE_MIN_SENDS", "10"),
    ("QUARANTINE_MIN_CONVERSION_PERCENT", "20"),
    ("QUARANTINE_GRACE_SECONDS", "120"),
    ("QUARANTINE_WINDOW_SECONDS", "3600"),
];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut all = QUARANTINE.to_vec();
    all.extend_from_slice(extra);
    all
}

/// Sends `n` flash calls to fresh numbers of the block, `verified` of them verified.
async fn send_to_block(app: &TestApp, first: u32, n: u32, verified: u32) {
    for i in 0..n {
        let number = in_block(first + i);
        if i < verified {
            verify_by_flash(app, &number).await;
        } else {
            let reply = flash(app, fresh_ip(), &number, None).await;
            assert_eq!(reply.status, 202, "send {i}: {}", reply.body);
        }
    }
}

/// Past the grace and the bucket the last sends fell in.
fn mature(app: &TestApp) {
    app.clock.advance(time::Duration::seconds(181));
}

#[tokio::test]
async fn a_block_is_quarantined_at_exactly_its_count_of_unconverted_sends() {
    let app = isolated(&with(&[])).await;
    send_to_block(&app, 0, 9, 0).await;
    mature(&app);
    let tenth = flash(&app, fresh_ip(), &in_block(9), None).await;
    assert_eq!(
        tenth.status, 202,
        "nine counted sends judge nothing: {}",
        tenth.body
    );
    mature(&app);
    // Ten counted sends, none verified: the block is quarantined, for flash calls and codes,
    // trusted or not.
    let refused = flash(&app, fresh_ip(), &in_block(10), None).await;
    assert_quarantined(&refused);
    let secs: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((43_000..=43_200).contains(&secs), "{secs}");
    app.assert_untouched(&in_block(10)).await;
    let token_app_refusal = code_start(&app, fresh_ip(), &in_block(11), None).await;
    assert_quarantined(&token_app_refusal);
    // Another block of the country is served.
    let next = flash(&app, fresh_ip(), &phone("+14155560000"), None).await;
    assert_eq!(next.status, 202, "{}", next.body);
    let (quarantines, _) = app.store.reputation().list(app.clock.now()).await.unwrap();
    assert!(
        quarantines
            .iter()
            .any(|(d, q)| *d == Destination::Block("+1415555".into())
                && q.sends == 10
                && q.verified == 0),
        "{quarantines:?}"
    );
}

#[tokio::test]
async fn a_block_that_converts_at_the_minimum_share_is_not_quarantined() {
    let app = isolated(&with(&[])).await;
    send_to_block(&app, 0, 10, 2).await;
    mature(&app);
    let reply = flash(&app, fresh_ip(), &in_block(20), None).await;
    assert_eq!(reply.status, 202, "2 of 10 is 20 %: {}", reply.body);
}

#[tokio::test]
async fn a_phone_that_verified_before_passes_the_quarantine_of_its_block() {
    let app = isolated(&with(&[])).await;
    let returning = in_block(500);
    verify_by_flash(&app, &returning).await;
    send_to_block(&app, 0, 20, 0).await;
    mature(&app);
    assert_quarantined(&flash(&app, fresh_ip(), &in_block(30), None).await);
    let back = code_start(&app, fresh_ip(), &returning, None).await;
    assert_eq!(back.status, 202, "{}", back.body);
}

#[tokio::test]
async fn a_country_is_quarantined_at_its_own_count() {
    let app = isolated(&with(&[
        ("QUARANTINE_COUNTRY_MIN_SENDS", "12"),
        ("QUARANTINE_MIN_SENDS", "1000"),
    ]))
    .await;
    for _ in 0..12 {
        assert_eq!(
            flash(&app, fresh_ip(), &random_phone(), None).await.status,
            202
        );
    }
    mature(&app);
    assert_quarantined(&flash(&app, fresh_ip(), &random_phone(), None).await);
    let uk = flash(&app, fresh_ip(), &phone("+447911123456"), None).await;
    assert_eq!(uk.status, 202, "{}", uk.body);
}

#[tokio::test]
async fn monitor_mode_refuses_nothing_but_records_what_it_would_have_done() {
    let (captured, _guard) = tests::LogCapture::start();
    let app = isolated(&with(&[("QUARANTINE_MODE", "monitor")])).await;
    send_to_block(&app, 0, 10, 0).await;
    mature(&app);
    let reply = flash(&app, fresh_ip(), &in_block(10), None).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let (quarantines, _) = app.store.reputation().list(app.clock.now()).await.unwrap();
    assert_eq!(quarantines.len(), 1, "{quarantines:?}");
    assert_eq!(quarantines[0].1.mode, "monitor");
    let log = captured.text();
    assert!(log.contains("would have refused"), "{log}");
}

#[tokio::test]
async fn operators_release_allow_and_deny_destinations() {
    let app = isolated(&with(&[])).await;
    let reputation = app.store.reputation();
    let block = Destination::Block("+1415555".into());
    send_to_block(&app, 0, 10, 0).await;
    mature(&app);
    assert_quarantined(&flash(&app, fresh_ip(), &in_block(10), None).await);
    assert!(reputation.release(&block, app.clock.now()).await.unwrap());
    // Released: the sends that made the quarantine do not make it again.
    let released = flash(&app, fresh_ip(), &in_block(12), None).await;
    assert_eq!(released.status, 202, "{}", released.body);
    mature(&app);
    let again = flash(&app, fresh_ip(), &in_block(13), None).await;
    assert_eq!(
        again.status, 202,
        "one send since the release: {}",
        again.body
    );
    let (quarantines, _) = reputation.list(app.clock.now()).await.unwrap();
    assert!(quarantines.is_empty(), "{quarantines:?}");
    reputation
        .set_override(&block, Some(Override::Allow), app.clock.now())
        .await
        .unwrap();
    let allowed = flash(&app, fresh_ip(), &in_block(11), None).await;
    assert_eq!(
        allowed.status, 202,
        "an allowed block is never quarantined: {}",
        allowed.body
    );
    let denied = Destination::Block("+1212555".into());
    reputation
        .set_override(&denied, Some(Override::Deny), app.clock.now())
        .await
        .unwrap();
    assert_quarantined(&flash(&app, fresh_ip(), &phone("+12125550123"), None).await);
}

// ---- 4. Per-network limit ---------------------------------------------------------------

#[tokio::test]
async fn the_network_limit_counts_every_address_of_one_slash_24_across_channels() {
    let app = TestApp::spawn(&[("MAX_REQUESTS_PER_NETWORK_PER_HOUR", "3")]).await;
    let net = rand::random::<u8>() % 200 + 20;
    let sub = rand::random::<u8>() % 200 + 20;
    assert_eq!(
        flash(&app, ip(net, sub, 1), &random_phone(), None)
            .await
            .status,
        202
    );
    assert_eq!(
        code_start(&app, ip(net, sub, 2), &random_phone(), None)
            .await
            .status,
        202
    );
    assert_eq!(
        flash(&app, ip(net, sub, 3), &random_phone(), None)
            .await
            .status,
        202
    );
    assert_limited(
        &code_start(&app, ip(net, sub, 4), &random_phone(), None).await,
        "network_per_hour",
    );
    assert_limited(
        &flash(&app, ip(net, sub, 5), &random_phone(), None).await,
        "network_per_hour",
    );
    let next = flash(&app, ip(net, sub.wrapping_add(1), 1), &random_phone(), None).await;
    assert_eq!(next.status, 202, "{}", next.body);
}

// ---- 5. No oracle, no cheap lockout -----------------------------------------------------

#[tokio::test]
async fn a_check_without_its_id_says_not_found_whatever_the_phones_past() {
    let app = TestApp::spawn(&[("CODE_VALIDITY_SECONDS", "60"), ("MAX_CODE_CHECKS", "2")]).await;
    let from = fresh_ip();
    let start = |n: PhoneNumber| {
        let app = &app;
        async move {
            let reply = code_start(app, from, &n, None).await;
            assert_eq!(reply.status, 202, "{}", reply.body);
            app.phone.code_sent_to(&n).unwrap()
        }
    };
    let verified = random_phone();
    let code = start(verified.clone()).await;
    assert_eq!(code_check(&app, from, &verified, &code).await.status, 200);
    let used_up = random_phone();
    let code = start(used_up.clone()).await;
    for _ in 0..2 {
        assert_eq!(
            code_check(&app, from, &used_up, &wrong(&code)).await.status,
            400
        );
    }
    let expired = random_phone();
    let expired_code = start(expired.clone()).await;
    app.clock.advance(time::Duration::seconds(61));
    let never = random_phone();
    for (what, n, c) in [
        ("verified", &verified, code.clone()),
        ("used up", &used_up, code.clone()),
        ("expired", &expired, expired_code.clone()),
        ("never used", &never, "123456".to_owned()),
    ] {
        let reply = code_check(&app, from, n, &c).await;
        assert_eq!(
            (reply.status, reply.body["error"].as_str()),
            (404, Some("verification_not_found")),
            "{what}: {}",
            reply.body
        );
    }
}

#[tokio::test]
async fn a_victim_verifies_after_an_attackers_failures_from_other_networks() {
    let app = TestApp::spawn(&[
        ("MAX_FAILED_CODE_CHECKS_PER_PHONE_PER_NETWORK_PER_DAY", "3"),
        ("MAX_FAILED_CODE_CHECKS_PER_PHONE_PER_DAY", "100"),
        ("MAX_FAILED_VERIFICATIONS_PER_PHONE_PER_DAY", "2"),
        // Fewer than the attacker's guesses: a stranger's checks must not use up the code.
        ("MAX_CODE_CHECKS", "2"),
    ])
    .await;
    let victim = random_phone();
    let (home, attacker) = (fresh_ip(), fresh_ip());
    assert_eq!(code_start(&app, home, &victim, None).await.status, 202);
    let code = app.phone.code_sent_to(&victim).unwrap();
    for _ in 0..3 {
        let miss = code_check(&app, attacker, &victim, &wrong(&code)).await;
        assert_eq!(miss.status, 400, "{}", miss.body);
    }
    // The attacker's network is at its cap: the right code is refused there as a wrong one.
    for guess in [wrong(&code), code.clone()] {
        let locked = code_check(&app, attacker, &victim, &guess).await;
        assert_eq!(locked.status, 429, "{}", locked.body);
        assert_eq!(locked.body["error"], "attempts_exhausted");
        assert!(locked.headers.contains_key("retry-after"));
    }
    // The code failures locked neither the victim's network nor the flash call.
    let hit = code_check(&app, home, &victim, &code).await;
    assert_eq!(hit.status, 200, "{}", hit.body);
    verify_by_flash(&app, &victim).await;
}

#[tokio::test]
async fn the_phones_ceiling_bounds_failures_over_every_network() {
    let app = TestApp::spawn(&[
        ("MAX_FAILED_CODE_CHECKS_PER_PHONE_PER_NETWORK_PER_DAY", "2"),
        ("MAX_FAILED_CODE_CHECKS_PER_PHONE_PER_DAY", "5"),
        ("MAX_CODE_CHECKS", "20"),
    ])
    .await;
    let victim = random_phone();
    assert_eq!(
        code_start(&app, fresh_ip(), &victim, None).await.status,
        202
    );
    let code = app.phone.code_sent_to(&victim).unwrap();
    let mut answered = 0;
    for _ in 0..6 {
        let from = fresh_ip();
        for _ in 0..2 {
            if code_check(&app, from, &victim, &wrong(&code)).await.status == 400 {
                answered += 1;
            }
        }
    }
    assert_eq!(answered, 5, "the ceiling holds whatever the networks");
    let locked = code_check(&app, fresh_ip(), &victim, &code).await;
    assert_eq!(locked.status, 429, "{}", locked.body);
    // Flash calls have a cap of their own.
    verify_by_flash(&app, &victim).await;
}

// ---- 6. Honest units and safe defaults --------------------------------------------------

#[tokio::test]
async fn an_sms_takes_as_many_units_of_every_budget_as_it_has_segments() {
    let app = isolated(&[("MAX_SENDS_PER_HOUR", "30")]).await;
    // 1,600 UCS-2 characters: 24 segments of 67.
    let long: String = "ж".repeat(1600);
    let reply = app
        .send_sms(&json!({"to": random_phone(), "body": long}), None)
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(reply.body["segments"], 24);
    let limits = app.store.limits();
    let global = limits
        .sends_this_hour(
            &shared::store::rate_limits::Budget::Global,
            &app.init.config.send_budgets,
            false,
            app.clock.now(),
        )
        .await
        .unwrap();
    assert_eq!(global, 24);
    let again = app
        .send_sms(
            &json!({"to": random_phone(), "body": "ж".repeat(500)}),
            None,
        )
        .await;
    assert_limited(&again, "global_per_hour");
    let short = app
        .send_sms(&json!({"to": random_phone(), "body": "a short one"}), None)
        .await;
    assert_eq!(short.status, 202, "6 units are left: {}", short.body);
}

#[tokio::test]
async fn test_numbers_are_ordinary_numbers_unless_allowed() {
    let number = "+15555550142";
    let secrets = tests::secrets_with(crate::sms_verify_delegated::test_numbers(number));
    let off =
        TestApp::spawn_public(&[("ALLOW_TEST_NUMBERS", "false")], secrets.clone(), true).await;
    let reply = off.start_code(number, json!({})).await;
    assert_eq!(reply.status, 400, "an invalid number again: {}", reply.body);
    let on = TestApp::spawn_public(&[("ALLOW_TEST_NUMBERS", "true")], secrets, true).await;
    let reply = on.start_code(number, json!({})).await;
    assert_eq!(reply.status, 202, "{}", reply.body);

    // A validity more than 90 days ahead is not honoured.
    let far = shared::clock::rfc3339(time::OffsetDateTime::now_utc() + time::Duration::days(91));
    let secrets = tests::secrets_with(json!({"TEST_PHONE_NUMBERS": {
        number: {"code": "123456", "valid_until": far},
    }}));
    let app = TestApp::spawn_public(&[("ALLOW_TEST_NUMBERS", "true")], secrets, true).await;
    let reply = app.start_code(number, json!({})).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
}
