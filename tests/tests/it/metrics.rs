//! The metrics: a flash call and an SMS code, run end to end, leave CloudWatch Embedded Metric
//! Format documents that satisfy the format's rules, with the signals the dashboard and the
//! alarms read, and no phone number anywhere.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use tests::{TestApp, random_phone};

/// The units CloudWatch accepts (`MetricDatum.Unit`).
const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Checks one document against the EMF specification's rules; returns its metrics as
/// `(name, dimensions)`.
fn check_emf(doc: &Value) -> Vec<(String, Vec<(String, String)>)> {
    let aws = doc["_aws"].as_object().expect("_aws is an object");
    assert!(
        aws["Timestamp"]
            .as_u64()
            .is_some_and(|t| t > 1_600_000_000_000),
        "{doc}"
    );
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics");
    assert_eq!(directives.len(), 1, "{doc}");
    let mut found = Vec::new();
    for directive in directives {
        let namespace = directive["Namespace"].as_str().unwrap();
        assert_eq!(namespace, shared::telemetry::NAMESPACE);
        assert!(!namespace.is_empty() && namespace.len() <= 255);
        let sets = directive["Dimensions"].as_array().expect("Dimensions");
        let mut dimensions = Vec::new();
        for set in sets {
            let set = set.as_array().expect("a dimension set is an array");
            assert!(set.len() <= 30, "{doc}");
            for key in set {
                let key = key.as_str().expect("a dimension is a name");
                let value = doc[key]
                    .as_str()
                    .unwrap_or_else(|| panic!("{key} is a string member: {doc}"));
                assert!(!value.is_empty() && value.len() <= 1024);
                dimensions.push((key.to_owned(), value.to_owned()));
            }
        }
        let metrics = directive["Metrics"].as_array().expect("Metrics");
        assert!(!metrics.is_empty() && metrics.len() <= 100, "{doc}");
        for metric in metrics {
            let name = metric["Name"].as_str().expect("Name");
            assert!(!name.is_empty() && name.len() <= 255);
            if let Some(unit) = metric.get("Unit") {
                assert!(UNITS.contains(&unit.as_str().unwrap()), "{doc}");
            }
            match &doc[name] {
                Value::Number(_) => {}
                Value::Array(values) => {
                    assert!(!values.is_empty() && values.len() <= 100);
                    assert!(values.iter().all(Value::is_number), "{doc}");
                }
                other => panic!("{name} must be a number or numbers, not {other}"),
            }
            found.push((name.to_owned(), dimensions.clone()));
        }
    }
    found
}

fn has(found: &[(String, Vec<(String, String)>)], name: &str, dims: &[(&str, &str)]) -> bool {
    found.iter().any(|(n, d)| {
        n == name
            && dims
                .iter()
                .all(|(k, v)| d.iter().any(|(dk, dv)| dk == k && dv == v))
    })
}

#[tokio::test]
async fn a_flash_call_and_an_sms_code_leave_valid_emf_with_every_signal() {
    let app = TestApp::spawn(&[("MAX_CODE_SENDS_PER_PHONE_PER_HOUR", "1")]).await;
    let phone = random_phone();
    // A flash call: a wrong caller ID, then the right one.
    let session = app.start_session(&phone).await;
    let caller_id = app.caller_id(&phone);
    app.verify(&phone, &tests::wrong_caller_id(&caller_id), Some(&session))
        .await;
    let ok = app.verify(&phone, caller_id.as_str(), Some(&session)).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    // An SMS code, a second start the guard refuses, and the code.
    let started = app.start_code(phone.as_str(), json!({})).await;
    assert_eq!(started.status, 202, "{}", started.body);
    let refused = app.start_code(phone.as_str(), json!({})).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    let code = app.phone.code_sent_to(&phone).unwrap();
    let ok = app.check_code(phone.as_str(), &code, None).await;
    assert_eq!(ok.status, 200, "{}", ok.body);

    let mut out = Vec::new();
    shared::telemetry::flush_into(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let digits = phone.as_str().trim_start_matches('+');
    assert!(
        !text.contains(&digits[1..]),
        "a phone number in the metrics"
    );
    let mut found = Vec::new();
    for line in text.lines() {
        let doc: Value = serde_json::from_str(line).expect("each line is one JSON document");
        found.extend(check_emf(&doc));
    }
    for (name, dims) in [
        ("VerificationsStarted", &[("channel", "flash_call")][..]),
        ("VerificationsStarted", &[("channel", "sms_code")]),
        ("VerificationsSucceeded", &[("channel", "flash_call")]),
        ("VerificationsSucceeded", &[("channel", "sms_code")]),
        (
            "VerificationsFailed",
            &[("channel", "flash_call"), ("reason", "wrong_answer")],
        ),
        ("GuardRefusals", &[("limit", "phone_per_hour")]),
        ("Sends", &[("channel", "flash_call"), ("country", "1")]),
        ("Sends", &[("channel", "sms"), ("country", "1")]),
        ("HandlerLatency", &[("function", "sms-verify")]),
        ("TimeToVerify", &[("channel", "flash_call")]),
        ("TimeToVerify", &[("channel", "sms_code")]),
        ("HandlerLatency", &[("function", "request")]),
    ] {
        assert!(
            has(&found, name, dims),
            "{name} {dims:?} missing from {text}"
        );
    }
    let names: BTreeSet<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.len() >= 6, "{names:?}");
}
