//! Verification events: a flash call and an SMS code run on a table of their own, whose
//! DynamoDB stream (DynamoDB Local's) is read back and turned into events as the example
//! consumer does, and every signal the run can cause is there.

use serde_json::{Value, json};
use shared::telephony::TelephonyError;
use tests::{TestApp, random_phone};

/// One call of DynamoDB Streams' JSON API on DynamoDB Local (which checks no signature).
async fn streams(http: &reqwest::Client, action: &str, body: Value) -> Value {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("the local stack");
    let response = http
        .post(endpoint)
        .header("x-amz-target", format!("DynamoDBStreams_20120810.{action}"))
        .header("content-type", "application/x-amz-json-1.0")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=local/20261121/us-east-1/dynamodb/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{action}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

/// Every record of the table's stream so far.
async fn stream_records(app: &TestApp) -> Vec<Value> {
    let table = app
        .store
        .client()
        .describe_table()
        .table_name(app.store.table())
        .send()
        .await
        .unwrap();
    let arn = table
        .table
        .unwrap()
        .latest_stream_arn
        .expect("the table has a stream");
    let http = reqwest::Client::new();
    let described = streams(&http, "DescribeStream", json!({"StreamArn": arn})).await;
    let mut records = Vec::new();
    for shard in described["StreamDescription"]["Shards"].as_array().unwrap() {
        let iterator = streams(
            &http,
            "GetShardIterator",
            json!({"StreamArn": arn, "ShardId": shard["ShardId"], "ShardIteratorType": "TRIM_HORIZON"}),
        )
        .await;
        let mut next = iterator["ShardIterator"].clone();
        for _ in 0..20 {
            if next.is_null() {
                break;
            }
            let page = streams(&http, "GetRecords", json!({"ShardIterator": next})).await;
            let got = page["Records"].as_array().cloned().unwrap_or_default();
            if got.is_empty() {
                break;
            }
            records.extend(got);
            next = page["NextShardIterator"].clone();
        }
    }
    records
}

#[tokio::test]
async fn a_flash_call_and_an_sms_code_put_every_signal_on_the_stream() {
    let (init, clock, phone) =
        tests::isolated_init(&[("MAX_REQUESTS_PER_PHONE_PER_DAY", "3")]).await;
    let app = TestApp::spawn_with(init, clock, phone).await;
    let callee = random_phone();
    // A flash call: a wrong caller ID, then the right one.
    let session = app.start_session(&callee).await;
    let caller_id = app.caller_id(&callee);
    app.verify(&callee, &tests::wrong_caller_id(&caller_id), Some(&session))
        .await;
    let ok = app
        .verify(&callee, caller_id.as_str(), Some(&session))
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    // An SMS code: a wrong code, then the right one.
    let started = app.start_code(callee.as_str(), json!({})).await;
    assert_eq!(started.status, 202, "{}", started.body);
    let code = app.phone.code_sent_to(&callee).unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    app.check_code(callee.as_str(), wrong, None).await;
    let ok = app.check_code(callee.as_str(), &code, None).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    // A call the provider refuses, which also uses the phone's last request of the day.
    app.phone
        .fail_with(TelephonyError::Unavailable("down".into()));
    let failed = app.request_call(&callee).await;
    assert_eq!(failed.status, 503, "{}", failed.body);
    app.phone.recover();
    let refused = app.request_call(&callee).await;
    assert_eq!(refused.status, 429, "{}", refused.body);

    let records = stream_records(&app).await;
    let events = shared::events::from_stream_batch(&Value::Array(records));
    let has = |kind: &str, channel: Option<&str>| {
        events
            .iter()
            .any(|e| e["type"] == kind && channel.is_none_or(|c| e["channel"] == c))
    };
    for (kind, channel) in [
        ("call.sent", Some("flash_call")),
        ("verification.failed", Some("flash_call")),
        ("verification.succeeded", Some("flash_call")),
        ("verification.failed", Some("sms")),
        ("verification.succeeded", Some("sms")),
        ("telephony.error", Some("flash_call")),
        ("rate_limit.reached", None),
    ] {
        assert!(has(kind, channel), "no {kind} {channel:?} in {events:#?}");
    }
    let reached = events
        .iter()
        .find(|e| e["type"] == "rate_limit.reached" && e["counter"] == "flash-phone-day")
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(reached["subject"], callee.as_str());
    assert_eq!(reached["max"], 3);
    let succeeded: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "verification.succeeded")
        .collect();
    assert_eq!(succeeded.len(), 2, "{succeeded:#?}");
    assert!(
        succeeded
            .iter()
            .all(|e| e["phone_number"] == callee.as_str())
    );
}
