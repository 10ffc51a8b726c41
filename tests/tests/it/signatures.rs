//! The webhook signature check against the 42 `X-Twilio-Signature` vectors of Twilio's own SDK
//! tests (twilio-python, twilio-node, twilio-go), copied into `tests/fixtures/twilio`.

use serde_json::Value;
use sha2::{Digest, Sha256};
use shared::twilio_signature::{Signed, compute, is_valid};

fn vectors() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/twilio/signature_vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("the vectors");
    let all: Value = serde_json::from_str(&text).unwrap();
    all["vectors"].as_array().unwrap().clone()
}

fn params(vector: &Value) -> Vec<(String, String)> {
    vector["params"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    (
                        p[0].as_str().unwrap().to_owned(),
                        p[1].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn all_42_signature_vectors_of_twilios_sdks_give_their_expected_answer() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 42);
    let mut failures = Vec::new();
    for v in &vectors {
        let id = v["id"].as_str().unwrap();
        let expected_valid = v["expected_valid"].as_bool().unwrap_or(true);
        let outcome = match v["kind"].as_str().unwrap() {
            "body_hash" => {
                let body = v["body"].as_str().unwrap();
                let hash = hex::encode(Sha256::digest(body.as_bytes()));
                let presented = v["presented_body_sha256"]
                    .as_str()
                    .or(v["expected_body_sha256"].as_str())
                    .unwrap();
                let computed_right = v["expected_body_sha256"].as_str() == Some(hash.as_str());
                computed_right && (hash == presented) == expected_valid
            }
            kind => {
                let token = v["auth_token"].as_str().unwrap();
                let params = params(v);
                let received = v["url_received"].as_str().unwrap();
                let presented = v["presented_signature"]
                    .as_str()
                    .or(v["expected_signature"].as_str())
                    .unwrap();
                // Where the vector states how it was signed, that is exactly what is computed.
                let computes = match (v["url_signed"].as_str(), v["expected_signature"].as_str()) {
                    (Some(url), Some(sig)) if kind == "form" => compute(token, url, &params) == sig,
                    (Some(url), Some(sig)) => compute(token, url, &[]) == sig,
                    _ => true,
                };
                let body = v["body"].as_str().unwrap_or("").as_bytes();
                let request = Signed {
                    url: received,
                    params: &params,
                    body,
                    json_body: kind == "json_body",
                };
                computes && is_valid(token, &request, presented) == expected_valid
            }
        };
        if !outcome {
            failures.push(id.to_owned());
        }
    }
    assert!(failures.is_empty(), "vectors not met: {failures:?}");
}

#[test]
fn a_signature_of_another_url_token_or_parameter_is_refused() {
    let params = vec![("MessageStatus".to_owned(), "delivered".to_owned())];
    let url = "https://api.example.com/webhooks/twilio/messages";
    let good = compute("token", url, &params);
    let signed = |url, params: &[(String, String)], sig: &str| {
        is_valid(
            "token",
            &Signed {
                url,
                params,
                body: b"",
                json_body: false,
            },
            sig,
        )
    };
    assert!(signed(url, &params, &good));
    assert!(!signed(
        "https://api.example.com/webhooks/twilio/voice",
        &params,
        &good
    ));
    let changed = vec![("MessageStatus".to_owned(), "failed".to_owned())];
    assert!(!signed(url, &changed, &good));
    assert!(!signed(url, &params, &compute("other", url, &params)));
    assert!(!signed(url, &params, ""));
}
