//! Call events and call history against the local stack.

use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet};

use devstack::traffic::{GeneratedCall, Generator, event_json};
use futures::future::join_all;
use serde_json::{Value, json};
use shared::call::{CallRecord, HistoryStatus, Outcome};
use shared::clock::Clock;
use shared::phone::PhoneNumber;
use tests::{SERVICE_KEY, TestApp};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn seed() -> u64 {
    rand::random()
}

/// Two fresh numbers and a call between them that has only just been initiated.
fn call_just_initiated() -> (Vec<PhoneNumber>, GeneratedCall) {
    let mut generator = Generator::new(seed());
    let numbers = generator.numbers(2);
    let call = generator.call(
        &numbers[0],
        &numbers[1],
        OffsetDateTime::now_utc(),
        None,
        None,
    );
    (numbers, call)
}

async fn post_all(app: &TestApp, events: &[shared::call::CallEvent]) {
    for chunk in events.chunks(100) {
        let batch: Vec<Value> = chunk.iter().map(event_json).collect();
        let reply = app.post_events(&Value::Array(batch)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["rejected"], 0, "{}", reply.body);
    }
}

/// Every row of a number's history, page by page.
async fn all_rows(
    app: &TestApp,
    number: &PhoneNumber,
    query: &[(&str, &str)],
    limit: usize,
) -> Vec<Value> {
    all_pages(app, number, query, limit)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Every page of a history, following `next_cursor` to the end.
async fn all_pages(
    app: &TestApp,
    number: &PhoneNumber,
    query: &[(&str, &str)],
    limit: usize,
) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    let limit = limit.to_string();
    loop {
        let mut q: Vec<(&str, &str)> = query.to_vec();
        q.push(("limit", &limit));
        if let Some(c) = &cursor {
            q.push(("cursor", c));
        }
        let reply = app.history(number, "", &q, Some(SERVICE_KEY)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let page = reply.body["results"].as_array().unwrap().clone();
        assert!(page.len() <= limit.parse().unwrap());
        pages.push(page);
        match reply.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return pages,
        }
    }
}

fn ts(t: OffsetDateTime) -> String {
    shared::clock::rfc3339(t)
}

/// The row a record must produce for `number`, computed from the generator's truth.
fn expected_row(r: &CallRecord, number: &PhoneNumber) -> Value {
    json!({
        "call_id": r.call_id.as_str(),
        "call_time": r.call_time().map(ts),
        "counterparty_number": r.counterparty(number),
        "call_status": r.status_for(number).label(),
        "duration": r.duration_seconds(),
        "talk_seconds": r.talk_seconds(),
    })
}

/// A number's expected history, newest first (ties broken by call id, descending).
fn expected_history(
    calls: &[GeneratedCall],
    number: &PhoneNumber,
    keep: impl Fn(&CallRecord) -> bool,
) -> Vec<Value> {
    let mut records: Vec<&CallRecord> = calls
        .iter()
        .map(|c| &c.expected)
        .filter(|r| r.involves(number) && keep(r))
        .collect();
    records.sort_by(|a, b| {
        let key = |r: &CallRecord| {
            (
                r.call_time().map(|t| t.unix_timestamp_nanos() / 1_000_000),
                r.call_id.to_string(),
            )
        };
        key(b).cmp(&key(a))
    });
    records
        .into_iter()
        .map(|r| expected_row(r, number))
        .collect()
}

#[tokio::test]
async fn every_order_of_a_calls_events_with_or_without_duplicates_gives_the_same_row() {
    let app = TestApp::spawn(&[]).await;
    let mut generator = Generator::new(seed());
    let numbers = generator.numbers(2);
    let t0 = OffsetDateTime::now_utc() - time::Duration::hours(1);
    let orders: [[usize; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    let mut seen = BTreeSet::new();
    for (i, order) in orders.iter().enumerate() {
        for duplicated in [false, true] {
            let index = i * 2 + usize::from(duplicated);
            let call = generator.call(
                &numbers[0],
                &numbers[1],
                t0 + time::Duration::minutes(index as i64),
                Some(t0 + time::Duration::minutes(index as i64) + time::Duration::seconds(7)),
                Some(t0 + time::Duration::minutes(index as i64) + time::Duration::seconds(67)),
            );
            let mut sequence: Vec<_> = order.iter().map(|&k| call.events[k].clone()).collect();
            if duplicated {
                sequence.extend(order.iter().rev().map(|&k| call.events[k].clone()));
            }
            for event in &sequence {
                let reply = app.post_events(&event_json(event)).await;
                assert_eq!(reply.status, 200, "{}", reply.body);
            }
            seen.insert(call.expected.call_id.to_string());
            for (me, status) in [
                (&numbers[0], "Completed Outbound"),
                (&numbers[1], "Completed Inbound"),
            ] {
                let rows = all_rows(&app, me, &[], 50).await;
                let row = rows
                    .iter()
                    .find(|r| r["call_id"] == call.expected.call_id.as_str())
                    .expect("the call is in both parties' history");
                assert_eq!(
                    row,
                    &expected_row(&call.expected, me),
                    "order {order:?}, duplicated {duplicated}"
                );
                assert_eq!(row["call_status"], status);
                assert_eq!(row["duration"], 67);
                assert_eq!(row["talk_seconds"], 60);
            }
        }
    }
    assert_eq!(
        all_rows(&app, &numbers[0], &[], 5).await.len(),
        seen.len(),
        "no row doubled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_posts_of_one_event_store_it_once() {
    let app = TestApp::spawn(&[]).await;
    let (numbers, call) = call_just_initiated();
    let body = event_json(&call.events[0]);

    let replies = join_all((0..50).map(|_| app.post_events(&body))).await;
    let results: Vec<&str> = replies
        .iter()
        .map(|r| r.body["result"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        results.iter().filter(|r| **r == "accepted").count(),
        1,
        "{results:?}"
    );
    assert_eq!(
        results.iter().filter(|r| **r == "duplicate").count(),
        49,
        "{results:?}"
    );
    for number in &numbers {
        let rows = all_rows(&app, number, &[], 50).await;
        assert_eq!(rows.len(), 1);
        assert!(
            rows[0]["call_status"]
                .as_str()
                .unwrap()
                .starts_with("In Progress")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_posts_of_a_calls_different_events_lose_nothing() {
    let app = TestApp::spawn(&[]).await;
    let mut generator = Generator::new(seed());
    let numbers = generator.numbers(2);
    let t = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    let call = generator.call(
        &numbers[0],
        &numbers[1],
        t,
        Some(t + time::Duration::seconds(3)),
        Some(t + time::Duration::seconds(33)),
    );
    let bodies: Vec<Value> = (0..10)
        .flat_map(|_| call.events.iter().map(event_json))
        .collect();
    let replies = join_all(bodies.iter().map(|b| app.post_events(b))).await;
    assert!(
        replies.iter().all(|r| r.status == 200),
        "every post succeeds"
    );
    let rows = all_rows(&app, &numbers[1], &[], 50).await;
    assert_eq!(rows, vec![expected_row(&call.expected, &numbers[1])]);
}

#[tokio::test]
async fn two_hundred_fifty_calls_paginate_with_no_row_lost_or_repeated() {
    let app = TestApp::spawn(&[]).await;
    let mut generator = Generator::new(seed());
    let mut numbers = generator.numbers(6);
    let me = numbers.remove(0);
    let calls: Vec<GeneratedCall> = (0..250)
        .map(|i| {
            let other = &numbers[i % numbers.len()];
            let t = OffsetDateTime::now_utc() - time::Duration::minutes(i as i64 * 7 + 1);
            let (from, to) = if i % 3 == 0 {
                (other, &me)
            } else {
                (&me, other)
            };
            generator.call(from, to, t, None, Some(t + time::Duration::seconds(20)))
        })
        .collect();
    let events = generator.shuffled_events(&calls, 0);
    post_all(&app, &events).await;

    let expected = expected_history(&calls, &me, |_| true);
    for limit in [50, 37, 200] {
        let pages = all_pages(&app, &me, &[], limit).await;
        // Full pages, then the rest; no empty page at the end, even when 250 divides evenly.
        let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
        let mut expected_sizes = vec![limit; 250 / limit];
        expected_sizes.extend(Some(250 % limit).filter(|&r| r > 0));
        assert_eq!(sizes, expected_sizes, "page sizes (limit {limit})");
        let rows: Vec<Value> = pages.into_iter().flatten().collect();
        let ids: BTreeSet<&str> = rows
            .iter()
            .map(|r| r["call_id"].as_str().unwrap())
            .collect();
        assert_eq!(rows.len(), 250, "limit {limit}");
        assert_eq!(ids.len(), 250, "no row repeated (limit {limit})");
        assert_eq!(rows, expected, "newest first (limit {limit})");
    }
}

#[tokio::test]
async fn filters_and_stats_agree_with_a_brute_force_count_over_generated_traffic() {
    let app = TestApp::spawn(&[]).await;
    let mut generator = Generator::new(seed());
    let numbers = generator.numbers(4);
    let end = OffsetDateTime::now_utc();
    let calls = generator.calls(80, &numbers, end, 75);
    let events = generator.shuffled_events(&calls, 15);
    post_all(&app, &events).await;

    for number in &numbers {
        assert_eq!(
            all_rows(&app, number, &[], 9).await,
            expected_history(&calls, number, |_| true)
        );
        for status in HistoryStatus::ALL {
            let rows = all_rows(&app, number, &[("status", status.label())], 6).await;
            let expected = expected_history(&calls, number, |r| r.status_for(number) == status);
            assert_eq!(rows, expected, "{number} {}", status.label());
        }
        let from = end - time::Duration::days(40);
        let to = end - time::Duration::days(10);
        let (f, t) = (from.format(&Rfc3339).unwrap(), to.format(&Rfc3339).unwrap());
        let rows = all_rows(&app, number, &[("from", &f), ("to", &t)], 8).await;
        let expected = expected_history(&calls, number, |r| {
            r.call_time().is_some_and(|c| c >= from && c <= to)
        });
        assert_eq!(rows, expected, "{number} from {f} to {t}");

        let stats = app.history(number, "/stats", &[], Some(SERVICE_KEY)).await;
        assert_eq!(stats.status, 200, "{}", stats.body);
        let mine: Vec<&CallRecord> = calls
            .iter()
            .map(|c| &c.expected)
            .filter(|r| r.involves(number))
            .collect();
        assert_eq!(stats.body["total_calls"], mine.len());
        for status in HistoryStatus::ALL {
            let count = mine
                .iter()
                .filter(|r| r.status_for(number) == status)
                .count();
            assert_eq!(
                stats.body["by_status"][status.label()],
                count,
                "{}",
                status.label()
            );
        }
        let completed: Vec<&&CallRecord> = mine
            .iter()
            .filter(|r| r.outcome() == Outcome::Completed)
            .collect();
        let total: i64 = completed.iter().filter_map(|r| r.duration_seconds()).sum();
        assert_eq!(stats.body["total_duration_seconds"], total);
        let average = (!completed.is_empty())
            .then(|| (total as f64 / completed.len() as f64 * 10.0).round() / 10.0);
        assert_eq!(stats.body["average_duration_seconds"], json!(average));
        let mut per_month: BTreeMap<String, u64> = BTreeMap::new();
        for r in &mine {
            let t = r.call_time().unwrap();
            *per_month
                .entry(format!("{:04}-{:02}", t.year(), u8::from(t.month())))
                .or_default() += 1;
        }
        assert_eq!(stats.body["calls_per_month"], json!(per_month));
    }
}

#[tokio::test]
async fn a_forged_or_foreign_cursor_is_refused() {
    let app = TestApp::spawn(&[]).await;
    let mut generator = Generator::new(seed());
    let numbers = generator.numbers(2);
    let calls = generator.calls(6, &numbers, OffsetDateTime::now_utc(), 3);
    post_all(&app, &generator.shuffled_events(&calls, 0)).await;

    let first = app
        .history(&numbers[0], "", &[("limit", "2")], Some(SERVICE_KEY))
        .await;
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let foreign = app
        .history(&numbers[1], "", &[("cursor", &cursor)], Some(SERVICE_KEY))
        .await;
    assert_eq!(foreign.status, 400, "{}", foreign.body);
    assert_eq!(foreign.body["field"], "cursor");
    let refiltered = app
        .history(
            &numbers[0],
            "",
            &[("cursor", &cursor), ("status", "Missed Inbound")],
            Some(SERVICE_KEY),
        )
        .await;
    assert_eq!(
        refiltered.status, 400,
        "a cursor is bound to its filters too"
    );
    // kid.payload.tag: the forgery keeps the key id and the tag, and changes the keys.
    let (kid, sealed) = cursor.split_once('.').unwrap();
    let (payload, tag) = sealed.split_once('.').unwrap();
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut keys: BTreeMap<String, String> =
        serde_json::from_slice(&engine.decode(payload).unwrap()).unwrap();
    keys.insert("gsi1pk".into(), format!("HISTORY#{}", numbers[1]));
    let forged = format!(
        "{kid}.{}.{tag}",
        engine.encode(serde_json::to_vec(&keys).unwrap())
    );
    let reply = app
        .history(&numbers[0], "", &[("cursor", &forged)], Some(SERVICE_KEY))
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        app.history(&numbers[0], "", &[("cursor", "garbage")], Some(SERVICE_KEY))
            .await
            .status,
        400
    );
    assert_eq!(
        app.history(&numbers[0], "", &[("cursor", &cursor)], Some(SERVICE_KEY))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn history_opens_for_a_service_key_or_the_numbers_own_token_only() {
    let app = TestApp::spawn(&[]).await;
    let phone = tests::random_phone();
    let session = app.start_session(&phone).await;
    let verified = app
        .verify(&phone, app.caller_id(&phone).as_str(), Some(&session))
        .await;
    let token = verified.body["access_token"].as_str().unwrap().to_owned();

    assert_eq!(app.history(&phone, "", &[], Some(&token)).await.status, 200);
    assert_eq!(
        app.history(&phone, "/stats", &[], Some(&token))
            .await
            .status,
        200
    );
    let other = tests::random_phone();
    let reply = app.history(&other, "", &[], Some(&token)).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.body["error"], "not_your_number");
    let reply = app.history(&phone, "", &[], None).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body["error"], "missing_credentials");
    assert_eq!(
        app.history(&phone, "", &[], Some("wrong-key")).await.status,
        401
    );

    // A person's token cannot post events.
    let mut generator = Generator::new(seed());
    let call = generator.call(&phone, &other, OffsetDateTime::now_utc(), None, None);
    let reply = app
        .send(
            app.client
                .post(format!("{}/calls/events", app.url))
                .bearer_auth(&token)
                .json(&event_json(&call.events[0])),
        )
        .await;
    assert_eq!(reply.status, 403);
    let reply = app
        .send(
            app.client
                .post(format!("{}/calls/events", app.url))
                .json(&event_json(&call.events[0])),
        )
        .await;
    assert_eq!(reply.status, 401);
    assert!(
        all_rows(&app, &phone, &[], 50).await.is_empty(),
        "nothing was written"
    );
}

#[tokio::test]
async fn conflicting_events_are_409_and_change_nothing() {
    let app = TestApp::spawn(&[]).await;
    let mut generator = Generator::new(seed());
    let numbers = generator.numbers(3);
    let t = OffsetDateTime::now_utc() - time::Duration::minutes(3);
    let call = generator.call(
        &numbers[0],
        &numbers[1],
        t,
        None,
        Some(t + time::Duration::seconds(9)),
    );
    assert_eq!(
        app.post_events(&event_json(&call.events[0])).await.body["result"],
        "accepted"
    );

    let mut changed = event_json(&call.events[0]);
    changed["created_at"] = json!(ts(t + time::Duration::seconds(1)));
    let reply = app.post_events(&changed).await;
    assert_eq!(reply.status, 409);
    assert_eq!(reply.body["error"], "event_id_conflict");

    let mut other_numbers = event_json(&call.events[1]);
    other_numbers["called_number"] = json!(numbers[2]);
    let reply = app.post_events(&other_numbers).await;
    assert_eq!(reply.status, 409);
    assert_eq!(reply.body["error"], "call_numbers_conflict");

    // The same two numbers the other way round are other numbers too.
    let mut swapped = event_json(&call.events[1]);
    swapped["calling_number"] = json!(numbers[1]);
    swapped["called_number"] = json!(numbers[0]);
    let reply = app.post_events(&swapped).await;
    assert_eq!(reply.status, 409);
    assert_eq!(reply.body["error"], "call_numbers_conflict");

    assert!(all_rows(&app, &numbers[2], &[], 50).await.is_empty());
    let rows = all_rows(&app, &numbers[0], &[], 50).await;
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0]["call_status"]
            .as_str()
            .unwrap()
            .starts_with("In Progress"),
        "the DISCONNECT was refused"
    );
}

#[tokio::test]
async fn bad_events_and_batches_are_refused_item_by_item_and_write_nothing() {
    let app = TestApp::spawn(&[]).await;
    let (numbers, call) = call_just_initiated();
    let good = event_json(&call.events[0]);
    let with = |key: &str, value: Value| {
        let mut e = good.clone();
        e[key] = value;
        e
    };
    let bad = [
        (with("event", json!("RING")), "event"),
        (with("calling_number", json!("555-0100")), "calling_number"),
        (with("called_number", json!(numbers[0])), "called_number"),
        (with("created_at", json!("yesterday")), "created_at"),
        (with("event_id", json!("")), "event_id"),
        (with("call_id", json!("a/b")), "call_id"),
        (with("extra", json!(true)), "extra"),
    ];
    for (body, field) in &bad {
        let reply = app.post_events(body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert_eq!(reply.body["field"], *field);
    }
    for (body, code) in [
        (json!([]), "invalid_batch"),
        (Value::Array(vec![good.clone(); 101]), "invalid_batch"),
        (json!("INITIATE"), "invalid_json"),
    ] {
        let reply = app.post_events(&body).await;
        assert_eq!(reply.status, 400);
        assert_eq!(reply.body["error"], code);
    }
    assert!(
        all_rows(&app, &numbers[0], &[], 50).await.is_empty(),
        "nothing was written"
    );

    // An event is an object: the same fields as an array are not read positionally.
    let positional = Value::Array(
        [
            "event_id",
            "call_id",
            "event",
            "calling_number",
            "called_number",
            "created_at",
        ]
        .iter()
        .map(|k| good[*k].clone())
        .collect(),
    );
    let reply = app.post_events(&json!([positional])).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["rejected"], 1, "{}", reply.body);
    assert_eq!(reply.body["results"][0]["error"], "invalid_json");

    // In a batch, one bad item does not block the good ones.
    let batch = json!([bad[0].0, good, bad[3].0]);
    let reply = app.post_events(&batch).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["accepted"], 1);
    assert_eq!(reply.body["rejected"], 2);
    assert_eq!(reply.body["results"][0]["field"], "event");
    assert_eq!(reply.body["results"][1]["result"], "accepted");
    assert_eq!(all_rows(&app, &numbers[0], &[], 50).await.len(), 1);

    for (query, field) in [
        (("limit", "0"), "limit"),
        (("limit", "201"), "limit"),
        (("status", "Busy"), "status"),
        (("from", "last week"), "from"),
    ] {
        let reply = app
            .history(&numbers[0], "", &[query], Some(SERVICE_KEY))
            .await;
        assert_eq!(reply.status, 400, "{query:?}");
        assert_eq!(reply.body["field"], field);
    }
    let reply = app
        .send(
            app.client
                .get(format!("{}/calls/history/4155550100", app.url))
                .bearer_auth(SERVICE_KEY),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body["field"], "phone_number");
}

#[tokio::test]
async fn event_times_at_the_window_bounds_read_back_and_times_outside_it_are_refused() {
    let app = TestApp::spawn(&[]).await;
    let (numbers, call) = call_just_initiated();
    let good = event_json(&call.events[0]);
    let at = |call_id: &str, created_at: &str| {
        let mut e = good.clone();
        e["event_id"] = json!(format!("{call_id}-e"));
        e["call_id"] = json!(call_id);
        e["created_at"] = json!(created_at);
        e
    };
    let run = uuid::Uuid::new_v4().simple().to_string();
    let latest = ts(app.clock.now() + time::Duration::days(1));
    for (suffix, created_at) in [("old", "2000-01-01T00:00:00Z"), ("new", latest.as_str())] {
        let reply = app
            .post_events(&at(&format!("{run}-{suffix}"), created_at))
            .await;
        assert_eq!(reply.status, 200, "{created_at}: {}", reply.body);
    }
    for created_at in [
        "9999-12-31T23:59:59-01:00",
        "0000-01-01T00:00:00+01:00",
        "1999-12-31T23:59:59Z",
        "1969-12-31T23:59:59Z",
    ] {
        let reply = app
            .post_events(&at(&format!("{run}-out"), created_at))
            .await;
        assert_eq!(reply.status, 400, "{created_at}: {}", reply.body);
        assert_eq!(reply.body["field"], "created_at");
    }
    let reply = app
        .post_events(&{
            let mut e = at(&format!("{run}-tagged"), "2026-11-21T10:00:00Z");
            e["event"] = json!({"INITIATE": null});
            e
        })
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.body["field"], "event");

    // Whatever was accepted reads back, newest first, in RFC 3339, and the stats too.
    let caller = &numbers[0];
    let rows = all_rows(&app, caller, &[], 50).await;
    let times: Vec<&str> = rows
        .iter()
        .map(|r| r["call_time"].as_str().unwrap())
        .collect();
    assert_eq!(times, [latest.as_str(), "2000-01-01T00:00:00Z"]);
    let stats = app.history(caller, "/stats", &[], Some(SERVICE_KEY)).await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    assert_eq!(
        stats.body["calls_per_month"]["2000-01"], 1,
        "{}",
        stats.body
    );
}

/// The TTL (epoch seconds) of each item of a call: its event and its two party records.
async fn call_ttls(app: &TestApp, call: &GeneratedCall) -> Vec<Option<i64>> {
    use aws_sdk_dynamodb::types::AttributeValue;
    use shared::store::keys;
    let store = &app.store;
    let event = &call.events[0];
    let mut ttls = Vec::new();
    for (pk, sk) in [
        (keys::event_pk(&event.event_id), keys::EVENT_SK),
        (keys::call_pk(&event.call_id), keys::CALLING_SK),
        (keys::call_pk(&event.call_id), keys::CALLED_SK),
    ] {
        let item = store
            .client()
            .get_item()
            .table_name(store.table())
            .key(keys::PK, AttributeValue::S(pk))
            .key(keys::SK, AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .expect("the item was written");
        ttls.push(
            item.get(keys::TTL)
                .and_then(|v| v.as_n().ok())
                .map(|n| n.parse().unwrap()),
        );
    }
    ttls
}

#[tokio::test]
async fn call_records_and_events_expire_after_the_retention_and_zero_keeps_them() {
    let app = TestApp::spawn(&[]).await;
    let (_, call) = call_just_initiated();
    post_all(&app, &call.events[..1]).await;
    let expected = (app.clock.now() + time::Duration::days(400)).unix_timestamp();
    for ttl in call_ttls(&app, &call).await {
        let ttl = ttl.expect("a TTL under the default CALL_RETENTION_DAYS=400");
        assert!((ttl - expected).abs() <= 5, "{ttl} vs {expected}");
    }

    let app = TestApp::spawn(&[("CALL_RETENTION_DAYS", "30")]).await;
    let (_, call) = call_just_initiated();
    post_all(&app, &call.events[..1]).await;
    let expected = (app.clock.now() + time::Duration::days(30)).unix_timestamp();
    for ttl in call_ttls(&app, &call).await {
        assert!((ttl.unwrap() - expected).abs() <= 5);
    }

    let app = TestApp::spawn(&[("CALL_RETENTION_DAYS", "0")]).await;
    let (_, call) = call_just_initiated();
    post_all(&app, &call.events[..1]).await;
    assert_eq!(call_ttls(&app, &call).await, [None, None, None]);
}

/// A number's stats are its monthly totals, kept as events land: a Query per shard (at most
/// 10) however long the history, and the same figures as counting the calls one by one, with the
/// events shuffled, duplicated and posted concurrently.
#[tokio::test]
async fn stats_are_one_query_of_monthly_totals_that_match_the_calls() {
    let usage = tests::DynamoCalls::default();
    let (init, clock, phone) = tests::init(&[]).await;
    let init = init.with_dynamodb_interceptor(usage.clone());
    let app = TestApp::spawn_with(init, clock, phone).await;
    let mut generator = Generator::new(seed());
    let numbers = generator.numbers(3);
    let heavy = &numbers[0];
    let end = OffsetDateTime::now_utc();
    // 600 calls over three years: 37 months.
    let calls = generator.calls_of(600, heavy, &numbers[1..], end, 3 * 365);
    let events = generator.shuffled_events(&calls, 20);
    let batches: Vec<Value> = events
        .chunks(50)
        .map(|chunk| Value::Array(chunk.iter().map(event_json).collect()))
        .collect();
    let replies: Vec<_> = futures::stream::iter(batches.iter().map(|b| app.post_events(b)))
        .buffer_unordered(3)
        .collect()
        .await;
    for reply in replies {
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["rejected"], 0, "{}", reply.body);
    }

    usage.take();
    let stats = app.history(heavy, "/stats", &[], Some(SERVICE_KEY)).await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    let used = usage.take();
    let shards = u64::from(shared::store::calls::STATS_SHARDS);
    assert_eq!(
        used.calls.get("Query"),
        Some(&shards),
        "one Query a shard: {:?}",
        used.calls
    );
    assert_eq!(used.calls.values().sum::<u64>(), shards, "{:?}", used.calls);
    assert!(shards <= 10);

    let records: Vec<_> = calls.iter().map(|c| c.expected.clone()).collect();
    let expected = shared::call::stats::CallStats::of_records(&records, heavy);
    assert_eq!(stats.body["total_calls"], 600);
    assert_eq!(stats.body["total_calls"], expected.total_calls);
    assert_eq!(stats.body["by_status"], json!(expected.by_status));
    assert_eq!(stats.body["completed_calls"], expected.completed_calls);
    assert_eq!(
        stats.body["total_duration_seconds"],
        expected.total_duration_seconds
    );
    assert_eq!(
        stats.body["total_talk_seconds"],
        expected.total_talk_seconds
    );
    assert_eq!(
        stats.body["average_duration_seconds"],
        json!(expected.average_duration_seconds())
    );
    assert_eq!(
        stats.body["calls_per_month"],
        json!(expected.calls_per_month)
    );
}
