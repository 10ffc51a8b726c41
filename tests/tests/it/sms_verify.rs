//! `sms-verify` with our own codes: the flow, one success per code under any concurrency, the
//! checks counted exactly, expiry, every bound at its count, failed sends that consume nothing,
//! bad input that counts nothing, and the logs.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};
use shared::clock::Clock;
use shared::phone::PhoneNumber;
use shared::telephony::TelephonyError;
use tests::{LogCapture, TestApp, random_phone};

/// Starts a code for `phone`; returns the verification id and the code the phone got.
async fn start(app: &TestApp, phone: &PhoneNumber) -> (String, String) {
    let reply = app.start_code(phone.as_str(), json!({})).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = reply.body["verification_id"].as_str().unwrap().to_owned();
    (id, app.phone.code_sent_to(phone).expect("a code was sent"))
}

/// A code of the same length that is not `code`.
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

use tests::token_claims as claims;

async fn checks_counted(app: &TestApp, phone: &PhoneNumber) -> u32 {
    app.store
        .codes()
        .current(phone)
        .await
        .unwrap()
        .map_or(0, |v| v.checks)
}

/// The phone's failed code checks counted today (its ceiling, whatever the networks).
async fn failures_today(app: &TestApp, phone: &PhoneNumber) -> u32 {
    let ceiling = shared::store::rate_limits::FailureCap {
        counter: "code-failures",
        subject: phone.as_str().to_owned(),
        cap: 0,
    };
    app.store
        .limits()
        .failures_today(&ceiling, app.clock.now())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_code_goes_out_by_sms_and_verifies_once_with_an_sms_token() {
    let app = TestApp::spawn(&[]).await;
    let phone = random_phone();
    let reply = app
        .start_code(phone.as_str(), json!({"locale": "en"}))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(reply.body["channel"], "sms");
    for field in ["verification_id", "expires_at", "resend_after"] {
        assert!(reply.body[field].is_string(), "{field}: {}", reply.body);
    }
    let id = reply.body["verification_id"].as_str().unwrap();
    let messages = app.phone.messages_to(&phone);
    assert_eq!(messages.len(), 1);
    let code = messages[0].one_time_code.clone().unwrap();
    assert_eq!(code.len(), 6);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    let text = tests::text(&messages[0]);
    assert!(text.contains(&code), "{text}");
    // The code is stored only as its hash, and the message is in the SMS log.
    let stored = app.store.codes().current(&phone).await.unwrap().unwrap();
    let shared::sms::code::CodeMethod::Hashed { hash } = &stored.method else {
        panic!("not hashed: {stored:?}");
    };
    assert!(!hash.contains(&code) && hash.len() == 64);
    let log = app.sms(&stored.message_id.unwrap().to_string()).await;
    assert_eq!(log.status, 200, "{}", log.body);
    assert_eq!(log.body["to"], phone.as_str());

    let miss = app
        .check_code(phone.as_str(), &wrong(&code), Some(id))
        .await;
    assert_eq!(miss.status, 400, "{}", miss.body);
    assert_eq!(miss.body["error"], "code_mismatch");
    assert_eq!(miss.body["attempts_remaining"], 4);

    let hit = app.check_code(phone.as_str(), &code, Some(id)).await;
    assert_eq!(hit.status, 200, "{}", hit.body);
    assert_eq!(hit.body["verified"], true);
    assert_eq!(hit.body["phone_number"], phone.as_str());
    assert_eq!(hit.body["verification_id"], id);
    assert_eq!(hit.body["token_type"], "Bearer");
    assert!(hit.body["verified_at"].is_string() && hit.body["expires_in"].is_u64());
    let claims = claims(hit.body["access_token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["sms"]));
    assert_eq!(claims["sub"], phone.as_str());
    assert_eq!(claims["jti"], id);
    // The token opens the phone's own call history, as a flash call's does.
    let history = app
        .history(&phone, "", &[], hit.body["access_token"].as_str())
        .await;
    assert_eq!(history.status, 200, "{}", history.body);

    let again = app.check_code(phone.as_str(), &code, Some(id)).await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.body["error"], "already_verified");
    // Without the id, nobody learns that this phone verified.
    let unnamed = app.check_code(phone.as_str(), &code, None).await;
    assert_eq!(unnamed.status, 404, "{}", unnamed.body);
    assert_eq!(unnamed.body["error"], "verification_not_found");
}

#[tokio::test]
async fn a_resend_gives_a_new_code_and_the_old_one_stops_working() {
    let app = TestApp::spawn(&[]).await;
    let phone = random_phone();
    let (first_id, first) = start(&app, &phone).await;
    let (second_id, second) = start(&app, &phone).await;
    assert_ne!(first_id, second_id);
    if first != second {
        let old = app.check_code(phone.as_str(), &first, None).await;
        assert_eq!(old.status, 400, "{}", old.body);
        assert_eq!(old.body["error"], "code_mismatch");
    }
    // Naming the replaced verification finds nothing.
    let named = app
        .check_code(phone.as_str(), &second, Some(&first_id))
        .await;
    assert_eq!(named.status, 404, "{}", named.body);
    assert_eq!(named.body["error"], "verification_not_found");
    let hit = app
        .check_code(phone.as_str(), &second, Some(&second_id))
        .await;
    assert_eq!(hit.status, 200, "{}", hit.body);
}

#[tokio::test]
async fn a_hundred_concurrent_right_checks_give_exactly_one_success() {
    let app = TestApp::spawn(&[]).await;
    let phone = random_phone();
    let (id, code) = start(&app, &phone).await;
    let replies =
        join_all((0..100).map(|_| app.check_code(phone.as_str(), &code, Some(&id)))).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let conflicts = replies.iter().filter(|r| r.status == 409).count();
    // A check that lost every race (DynamoDB Local cancels concurrent transactions on an
    // item, and the whole suite loads it) is a 503 with Retry-After that changed nothing:
    // sent again, it is told the code is used.
    let raced: Vec<_> = replies.iter().filter(|r| r.status == 503).collect();
    assert!(raced.iter().all(|r| r.headers.contains_key("retry-after")));
    let others: Vec<_> = replies
        .iter()
        .filter(|r| ![200, 409, 503].contains(&r.status))
        .map(|r| (r.status, r.body.clone()))
        .collect();
    assert!(others.is_empty(), "{others:?}");
    assert_eq!(ok, 1, "exactly one success");
    assert_eq!(conflicts + raced.len(), 99);
    for _ in &raced {
        let again = app.check_code(phone.as_str(), &code, Some(&id)).await;
        assert_eq!(again.status, 409, "{}", again.body);
    }
}

#[tokio::test]
async fn a_hundred_concurrent_wrong_checks_count_exactly_max_code_checks() {
    let app = TestApp::spawn(&[]).await;
    let phone = random_phone();
    let (id, code) = start(&app, &phone).await;
    let bad = wrong(&code);
    let replies = join_all((0..100).map(|_| app.check_code(phone.as_str(), &bad, Some(&id)))).await;
    let mut mismatches = replies.iter().filter(|r| r.status == 400).count();
    let exhausted = replies
        .iter()
        .filter(|r| r.status == 429 && r.body["error"] == "attempts_exhausted")
        .count();
    // A check that lost every race (DynamoDB Local, loaded by the whole suite, times out a
    // share of 100 writes on one item) is a 503 with Retry-After; one whose check was counted
    // on the code before its failure counter timed out is a 503 too. The checks left are
    // taken one by one.
    let raced: Vec<_> = replies.iter().filter(|r| r.status == 503).collect();
    assert!(raced.iter().all(|r| r.headers.contains_key("retry-after")));
    assert_eq!(
        mismatches + exhausted + raced.len(),
        100,
        "only 400, 429 and 503"
    );
    assert!(mismatches <= 5, "never over MAX_CODE_CHECKS: {mismatches}");
    if !raced.is_empty() {
        loop {
            let reply = app.check_code(phone.as_str(), &bad, Some(&id)).await;
            if reply.status == 429 {
                break;
            }
            assert_eq!(reply.status, 400, "{}", reply.body);
            mismatches += 1;
        }
    }
    // Never over the code's maximum, whatever the races; a failure is counted only for a
    // check the code counted.
    assert_eq!(checks_counted(&app, &phone).await, 5);
    let failures = failures_today(&app, &phone).await;
    if raced.is_empty() {
        assert_eq!(mismatches, 5);
        assert_eq!(failures, 5, "only counted checks count as failures");
    } else {
        assert!(
            mismatches <= 5 && (mismatches..=5).contains(&(failures as usize)),
            "{mismatches} {failures}"
        );
    }
    let late = app.check_code(phone.as_str(), &code, Some(&id)).await;
    assert_eq!(late.status, 429, "{}", late.body);
    assert_eq!(late.body["error"], "attempts_exhausted");
}

#[tokio::test]
async fn an_expired_code_is_refused_though_its_item_is_still_there() {
    let app = TestApp::spawn(&[("CODE_VALIDITY_SECONDS", "60")]).await;
    let phone = random_phone();
    let (id, code) = start(&app, &phone).await;
    app.clock.advance(time::Duration::seconds(60));
    let reply = app.check_code(phone.as_str(), &code, Some(&id)).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(reply.body["error"], "code_expired");
    assert!(app.store.codes().current(&phone).await.unwrap().is_some());
    assert_eq!(checks_counted(&app, &phone).await, 0);
}

#[tokio::test]
async fn without_a_verification_a_check_is_not_found_and_counts_nothing() {
    let app = TestApp::spawn(&[]).await;
    let phone = random_phone();
    let reply = app.check_code(phone.as_str(), "123456", None).await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(reply.body["error"], "verification_not_found");
}

/// Asserts a 429 of `limit` with a `Retry-After` of at most `max_secs`.
fn assert_limited(reply: &tests::Reply, limit: &str, max_secs: u64) {
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert_eq!(reply.body["error"], "rate_limited", "{}", reply.body);
    assert_eq!(reply.body["limit"], limit, "{}", reply.body);
    let after: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=max_secs).contains(&after), "Retry-After {after}");
}

#[tokio::test]
async fn sends_per_phone_per_hour_stop_at_exactly_their_count() {
    let app = TestApp::spawn(&[("MAX_CODE_SENDS_PER_PHONE_PER_HOUR", "3")]).await;
    let phone = random_phone();
    for _ in 0..3 {
        start(&app, &phone).await;
    }
    let refused = app.start_code(phone.as_str(), json!({})).await;
    assert_limited(&refused, "phone_per_hour", 3600);
    assert_eq!(app.phone.messages_to(&phone).len(), 3);
}

#[tokio::test]
async fn the_resend_cooldown_holds_until_it_lifts() {
    let app = TestApp::spawn(&[("CODE_RESEND_COOLDOWN_SECONDS", "30")]).await;
    let phone = random_phone();
    let first = app.start_code(phone.as_str(), json!({})).await;
    assert_eq!(first.status, 202, "{}", first.body);
    let expires = time::OffsetDateTime::parse(
        first.body["resend_after"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(expires > app.clock.now() + time::Duration::seconds(29));
    let early = app.start_code(phone.as_str(), json!({})).await;
    assert_limited(&early, "cooldown", 30);
    app.clock.advance(time::Duration::seconds(30));
    start(&app, &phone).await;
}

#[tokio::test]
async fn the_daily_allowance_is_shared_with_flash_calls() {
    let app = TestApp::spawn(&[("MAX_REQUESTS_PER_PHONE_PER_DAY", "2")]).await;
    let phone = random_phone();
    app.start_session(&phone).await;
    start(&app, &phone).await;
    let refused = app.start_code(phone.as_str(), json!({})).await;
    assert_limited(&refused, "phone_per_day", 86_400);
    let call = app.request_call(&phone).await;
    assert_limited(&call, "phone_per_day", 86_400);
}

#[tokio::test]
async fn the_per_ip_limit_covers_both_channels() {
    let app = TestApp::spawn(&[("MAX_REQUESTS_PER_IP_PER_HOUR", "2")]).await;
    app.start_session(&random_phone()).await;
    start(&app, &random_phone()).await;
    let refused = app.start_code(random_phone().as_str(), json!({})).await;
    assert_limited(&refused, "ip_per_hour", 3600);
}

#[tokio::test]
async fn max_code_checks_and_the_failure_cap_stop_at_exactly_their_count() {
    let app = TestApp::spawn(&[("MAX_CODE_CHECKS", "3")]).await;
    let phone = random_phone();
    let (id, code) = start(&app, &phone).await;
    for remaining in [2, 1, 0] {
        let miss = app
            .check_code(phone.as_str(), &wrong(&code), Some(&id))
            .await;
        assert_eq!(miss.status, 400, "{}", miss.body);
        assert_eq!(miss.body["attempts_remaining"], remaining);
    }
    let used_up = app.check_code(phone.as_str(), &code, Some(&id)).await;
    assert_eq!(used_up.status, 429, "{}", used_up.body);
    assert_eq!(used_up.body["error"], "attempts_exhausted");
    assert!(used_up.headers.get("retry-after").is_none());

    let app = TestApp::spawn(&[("MAX_FAILED_CODE_CHECKS_PER_PHONE_PER_DAY", "2")]).await;
    let phone = random_phone();
    let (_, code) = start(&app, &phone).await;
    for _ in 0..2 {
        let miss = app.check_code(phone.as_str(), &wrong(&code), None).await;
        assert_eq!(miss.status, 400, "{}", miss.body);
    }
    // At the cap the right code is refused too, and no new code is sent.
    let locked = app.check_code(phone.as_str(), &code, None).await;
    assert_eq!(locked.status, 429, "{}", locked.body);
    assert_eq!(locked.body["error"], "attempts_exhausted");
    assert!(locked.headers.get("retry-after").is_some());
    let refused = app.start_code(phone.as_str(), json!({})).await;
    assert_limited(&refused, "phone_failures", 86_400);
}

#[tokio::test]
async fn a_send_the_provider_does_not_take_is_a_503_that_consumes_nothing() {
    let app = TestApp::spawn(&[
        ("MAX_CODE_SENDS_PER_PHONE_PER_HOUR", "1"),
        ("CODE_RESEND_COOLDOWN_SECONDS", "30"),
    ])
    .await;
    let phone = random_phone();
    app.phone
        .fail_with(TelephonyError::Unavailable("down".into()));
    let reply = app.start_code(phone.as_str(), json!({})).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.body["error"], "telephony_unavailable");
    assert!(reply.headers.get("retry-after").is_some());
    assert!(app.store.codes().current(&phone).await.unwrap().is_none());
    app.phone.recover();
    // Neither the hourly send nor the cooldown was consumed.
    let (id, code) = start(&app, &phone).await;
    let hit = app.check_code(phone.as_str(), &code, Some(&id)).await;
    assert_eq!(hit.status, 200, "{}", hit.body);
}

#[tokio::test]
async fn bad_input_is_a_4xx_that_sends_and_counts_nothing() {
    let app = TestApp::spawn(&[]).await;
    let phone = random_phone();
    let (id, code) = start(&app, &phone).await;
    let number = phone.as_str();
    let bad_checks = [
        json!({"phone_number": number, "code": "12a456"}),
        json!({"phone_number": number, "code": "12345"}),
        json!({"phone_number": number, "code": "1234567"}),
        json!({"phone_number": number, "code": 123456}),
        json!({"phone_number": number, "code": " 123456"}),
        json!({"phone_number": number, "code": "١٢٣٤٥٦"}),
        json!({"phone_number": number, "code": code, "extra": 1}),
        json!({"phone_number": number, "code": code, "verification_id": "not-a-uuid"}),
        json!({"phone_number": number, "code": code, "verification_id": id.replace('-', "")}),
        json!({"phone_number": "4155550123", "code": code}),
        json!({"code": code}),
        json!([number, code]),
    ];
    for body in &bad_checks {
        let reply = app.post("/sms/verify/check", body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
    }
    assert_eq!(checks_counted(&app, &phone).await, 0);
    assert_eq!(failures_today(&app, &phone).await, 0);

    let other = random_phone();
    let bad_starts = [
        json!({"phone_number": other, "app_signature": tests::APP_SIGNATURE, "channel": "fax"}),
        // Offered only where CODE_CHANNELS names it.
        json!({"phone_number": other, "app_signature": tests::APP_SIGNATURE, "channel": "whatsapp"}),
        json!({"phone_number": other, "app_signature": tests::APP_SIGNATURE, "channel": "SMS"}),
        json!({"phone_number": other, "app_signature": tests::APP_SIGNATURE, "locale": "en_US"}),
        json!({"phone_number": other, "app_signature": "not-allowed"}),
        json!({"phone_number": other}),
        json!({"phone_number": "+1900555012", "app_signature": tests::APP_SIGNATURE}),
        json!({"phone_number": "+19005550123", "app_signature": tests::APP_SIGNATURE}),
    ];
    for body in &bad_starts {
        let reply = app.post("/sms/verify/start", body).await;
        assert!(
            [400, 403].contains(&reply.status),
            "{body}: {} {}",
            reply.status,
            reply.body
        );
    }
    assert!(app.phone.messages_to(&other).is_empty());
    assert!(app.store.codes().current(&other).await.unwrap().is_none());
    // The right code still works: nothing above touched the verification.
    let hit = app.check_code(number, &code, Some(&id)).await;
    assert_eq!(hit.status, 200, "{}", hit.body);
}

#[tokio::test]
async fn the_message_carries_the_domain_line_the_app_hash_and_the_locales_wording() {
    let hash = "FA+9qCX9VSu";
    let secrets = tests::secrets_with(json!({"app_signatures": [tests::APP_SIGNATURE, hash]}));
    let app = TestApp::spawn_public(
        &[
            ("OTP_DOMAIN", "acme.example"),
            ("APP_NAME", "Acme"),
            ("CODE_LENGTH", "8"),
            ("CODE_MESSAGE_TEMPLATE_ES", "Tu código de {app} es {code}."),
        ],
        secrets,
        true,
    )
    .await;
    let phone = random_phone();
    let reply = app
        .start_code(
            phone.as_str(),
            json!({"app_signature": hash, "locale": "es-MX"}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let code = app.phone.code_sent_to(&phone).unwrap();
    assert_eq!(code.len(), 8);
    let body = tests::text(&app.phone.messages_to(&phone)[0]);
    assert_eq!(
        body,
        format!("Tu código de Acme es {code}.\n\n@acme.example #{code}\n{hash}")
    );
    // Without the hash (a signature that is not one), and in the default wording.
    let other = random_phone();
    start(&app, &other).await;
    let code = app.phone.code_sent_to(&other).unwrap();
    assert_eq!(
        tests::text(&app.phone.messages_to(&other)[0]),
        format!("Your Acme code is {code}. Do not share it.\n\n@acme.example #{code}")
    );
}

#[tokio::test]
async fn no_log_line_holds_a_code_or_a_full_phone_number() {
    let (captured, _guard) = LogCapture::start();
    let app = TestApp::spawn(&[]).await;
    let phone = random_phone();
    let (id, code) = start(&app, &phone).await;
    let miss = app
        .check_code(phone.as_str(), &wrong(&code), Some(&id))
        .await;
    assert_eq!(miss.status, 400);
    let hit = app.check_code(phone.as_str(), &code, Some(&id)).await;
    assert_eq!(hit.status, 200);
    let logs = captured.text();
    assert!(logs.contains("phone verified by code"), "{logs}");
    let digits = phone.as_str().trim_start_matches('+');
    for line in logs.lines() {
        assert!(!line.contains(&code), "the code in a log line: {line}");
        assert!(
            !line.contains(digits) && !line.contains(&digits[1..]),
            "{line}"
        );
    }
}

#[tokio::test]
async fn locally_the_logging_gateway_prints_the_code_and_plays_the_delivery_callbacks() {
    let (captured, _guard) = LogCapture::start();
    let secrets = tests::secrets_with(json!({"twilio_auth_token": "local-webhook-token"}));
    let app = TestApp::spawn_public(&[], secrets, false).await;
    let phone = random_phone();
    let reply = app.start_code(phone.as_str(), json!({})).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let logs = captured.text();
    let marker = "the verification code is ";
    let line = logs.lines().find(|l| l.contains(marker)).expect(&logs);
    let code: String = line[line.find(marker).unwrap() + marker.len()..]
        .chars()
        .take(6)
        .collect();
    let hit = app
        .check_code(
            phone.as_str(),
            &code,
            reply.body["verification_id"].as_str(),
        )
        .await;
    assert_eq!(hit.status, 200, "{}", hit.body);
    let message = app
        .store
        .codes()
        .current(&phone)
        .await
        .unwrap()
        .unwrap()
        .message_id
        .unwrap();
    let mut entry = Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        entry = app.sms(&message.to_string()).await.body;
        if entry["status"] == "delivered" {
            break;
        }
    }
    assert_eq!(entry["status"], "delivered", "{entry}");
}

#[tokio::test]
async fn an_over_long_app_signature_is_a_400_even_when_signatures_are_off() {
    let app = TestApp::spawn(&[("REQUIRE_APP_SIGNATURE", "false")]).await;
    let phone = random_phone();
    let signature = "a".repeat(257);
    for path in ["/auth/request", "/sms/verify/start"] {
        let body = json!({"phone_number": phone, "app_signature": signature});
        let reply = app.post(path, &body).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.body);
        assert_eq!(reply.body["field"], "app_signature", "{path}");
    }
    app.assert_untouched(&phone).await;
    assert!(app.phone.messages_to(&phone).is_empty());
    // 256 characters are within the contract.
    let body = json!({"phone_number": phone, "app_signature": "é".repeat(256)});
    let reply = app.post("/sms/verify/start", &body).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
}
