//! `stackctl erase PHONE`: every flow run for a number, then the number erased, and found in
//! no item of the table; the other party's history keeps the calls, with the number `erased`.

use serde_json::json;
use shared::phone::PhoneNumber;
use shared::store::erasure::value_mentions;
use tests::{SERVICE_KEY, TestApp, random_phone};

/// Every item of the table that holds `number`, as `pk` strings.
async fn items_holding(app: &TestApp, number: &PhoneNumber) -> Vec<String> {
    let mut found = Vec::new();
    let mut start = None;
    loop {
        let page = app
            .store
            .client()
            .scan()
            .table_name(app.store.table())
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items() {
            if item.values().any(|v| value_mentions(v, number.as_str())) {
                let pk = item.get("pk").and_then(|v| v.as_s().ok()).cloned();
                found.push(pk.unwrap_or_default());
            }
        }
        match page.last_evaluated_key() {
            Some(last) if !last.is_empty() => start = Some(last.clone()),
            _ => return found,
        }
    }
}

fn call_events(call: &str, calling: &PhoneNumber, called: &PhoneNumber) -> serde_json::Value {
    let at = |s: u32| format!("2026-11-21T10:{s:02}:00Z");
    json!([
        {"event_id": format!("{call}-i"), "call_id": call, "event": "INITIATE",
         "calling_number": calling, "called_number": called, "created_at": at(0)},
        {"event_id": format!("{call}-a"), "call_id": call, "event": "ANSWER",
         "calling_number": calling, "called_number": called, "created_at": at(1)},
        {"event_id": format!("{call}-d"), "call_id": call, "event": "DISCONNECT",
         "calling_number": calling, "called_number": called, "created_at": at(3)},
    ])
}

fn stackctl(app: &TestApp, args: &[&str]) -> String {
    let output = std::process::Command::new(tests::bin_dir().join("stackctl"))
        .args(args)
        .env("TABLE_NAME", app.store.table())
        .output()
        .expect("stackctl runs (infra/test.sh builds it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn erase_removes_every_item_that_holds_the_number_and_leaves_erased_in_the_other_partys_history()
 {
    let (init, clock, phone) = tests::isolated_init(&[
        ("REQUEST_COOLDOWN_SECONDS", "60"),
        ("CODE_RESEND_COOLDOWN_SECONDS", "60"),
    ])
    .await;
    let app = TestApp::spawn_with(init, clock, phone).await;
    let number = random_phone();
    let other = random_phone();

    // A flash call: one wrong answer (a failure counter), then the right one (trust).
    let session = app.start_session(&number).await;
    let wrong = tests::wrong_caller_id(&app.caller_id(&number));
    assert_eq!(
        app.verify(&number, &wrong, Some(&session)).await.status,
        400
    );
    let caller_id = app.caller_id(&number).to_string();
    assert_eq!(
        app.verify(&number, &caller_id, Some(&session)).await.status,
        200
    );
    // An SMS code: one wrong code, then the right one.
    let started = app.start_code(number.as_str(), json!({})).await;
    assert_eq!(started.status, 202, "{}", started.body);
    let id = started.body["verification_id"].as_str().unwrap().to_owned();
    let code = app.phone.code_sent_to(&number).unwrap();
    let wrong_code = if code == "000000" { "111111" } else { "000000" };
    let refused = app.check_code(number.as_str(), wrong_code, Some(&id)).await;
    assert_eq!(refused.status / 100, 4, "{}", refused.body);
    let checked = app.check_code(number.as_str(), &code, Some(&id)).await;
    assert_eq!(checked.status, 200, "{}", checked.body);
    // An SMS sent to it, with an Idempotency-Key.
    let sent = app
        .send_sms(
            &json!({"to": number, "body": "hello"}),
            Some("erase-test-key"),
        )
        .await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    // Calls both ways with another number.
    for (call, (calling, called)) in [
        ("erase-1", (&number, &other)),
        ("erase-2", (&other, &number)),
    ] {
        let posted = app.post_events(&call_events(call, calling, called)).await;
        assert!(posted.status < 300, "{}", posted.body);
    }
    let before = items_holding(&app, &number).await;
    for prefix in [
        "SESSION#",
        "CODE#",
        "LIMIT#",
        "COOLDOWN#",
        "TRUST#",
        "MESSAGE#",
        "CALL#",
        "EVENT#",
    ] {
        assert!(
            before.iter().any(|pk| pk.starts_with(prefix)),
            "the flows left a {prefix} item to erase: {before:?}"
        );
    }

    let printed = stackctl(&app, &["erase", number.as_str()]);
    assert!(
        printed.contains("removed") && printed.contains("SESSION"),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("{number}: erased from")),
        "{printed}"
    );

    let after = items_holding(&app, &number).await;
    assert!(after.is_empty(), "items still holding {number}: {after:?}");
    // The number's history is empty; the other party's keeps both calls, with `erased`.
    let mine = app.history(&number, "", &[], Some(SERVICE_KEY)).await;
    assert_eq!(mine.status, 200);
    assert_eq!(mine.body["results"], json!([]));
    let theirs = app.history(&other, "", &[], Some(SERVICE_KEY)).await;
    assert_eq!(theirs.status, 200, "{}", theirs.body);
    let rows = theirs.body["results"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{}", theirs.body);
    assert!(
        rows.iter().all(|r| r["counterparty_number"] == "erased"),
        "{}",
        theirs.body
    );
    let mut statuses: Vec<&str> = rows
        .iter()
        .map(|r| r["call_status"].as_str().unwrap())
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["Completed Inbound", "Completed Outbound"]);
    let stats = app.history(&other, "/stats", &[], Some(SERVICE_KEY)).await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    // Run again: nothing left to erase.
    let again = stackctl(&app, &["erase", number.as_str()]);
    assert!(again.contains("no item holds it"), "{again}");
    // The other number's own items are untouched.
    assert!(!items_holding(&app, &other).await.is_empty());
}
