//! The cost of one verification, from what the benchmark counts: a flash call, an SMS code and
//! a code delegated to Twilio Verify, each run `BENCH_VERIFICATIONS` times (default 50) end to
//! end through the handlers as Lambda runs them (requests, status callbacks included), with the
//! DynamoDB requests and their capacity units counted by an interceptor on the endpoints' own
//! client, the handler time measured per invocation, and the memory size read from
//! `template.yaml`. The prices are list prices, stated below with their date.
//!
//!     infra/bench.sh          # starts the stack, runs both benchmarks, stops the stack
//!
//! Handler times are measured against DynamoDB Local on this machine: they overstate Lambda's
//! billed duration against DynamoDB (a few ms), so the Lambda line is an upper bound.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use devstack::{GatewayEvent, LocalApi};
use serde_json::{Value, json};
use shared::Init;
use shared::phone::PhoneNumber;
use tests::{DynamoCalls, Phone};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// List prices, USD, us-east-1, as published by AWS and Twilio in 2025 (read 2025-11; check
/// the pricing pages before relying on them).
mod price {
    /// API Gateway HTTP API, per request (first 300 million a month).
    pub const API_REQUEST: f64 = 1.00 / 1e6;
    /// Lambda, per request.
    pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
    /// Lambda on arm64, per GB-second.
    pub const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
    /// DynamoDB on demand, per write and read request unit (after the November 2024 cut).
    pub const WRITE_UNIT: f64 = 0.625 / 1e6;
    pub const READ_UNIT: f64 = 0.125 / 1e6;
    /// Secrets Manager, per API call.
    pub const SECRET_CALL: f64 = 0.05 / 10_000.0;
    /// Twilio: an outbound call that is not answered (the flash call) is not billed.
    pub const FLASH_CALL: f64 = 0.0;
    /// Twilio: one outbound SMS segment to a US number (carrier fees extra).
    pub const SMS_SEGMENT: f64 = 0.0083;
    /// Twilio Verify: per successful verification, plus the SMS it sends.
    pub const VERIFY_SUCCESS: f64 = 0.05;
    /// Twilio: an outbound call to a US number, per minute begun (a voice code is one).
    pub const VOICE_MINUTE: f64 = 0.014;
    /// One WhatsApp authentication template to a US number: Meta's fee and Twilio's.
    pub const WHATSAPP_TEMPLATE: f64 = 0.0135 + 0.005;
    /// Twilio: an incoming call that is rejected (the inbound missed call) is not billed.
    pub const REJECTED_CALL: f64 = 0.0;
}

/// Requests a container serves per secret read, for the amortised Secrets Manager line: one
/// read per container per `SECRET_REFRESH_SECONDS` (300 s), at one request a second.
const REQUESTS_PER_SECRET_READ: f64 = 300.0;

const HOST: &str = "bench.execute-api.us-east-1.amazonaws.com";
const WEBHOOK_TOKEN: &str = "local-twilio-auth-token";
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const VERIFY_SERVICE: &str = "VA0123456789abcdef0123456789abcdef";

/// What one kind of verification used, over `runs` runs.
#[derive(Default)]
struct Tally {
    runs: usize,
    api_requests: usize,
    /// Billed milliseconds (each invocation rounded up to the next ms), by function.
    billed_ms: BTreeMap<&'static str, f64>,
    invocations: usize,
    calls: BTreeMap<String, u64>,
    write_units: f64,
    read_units: f64,
    sms_segments: usize,
    verify_successes: usize,
    voice_minutes: usize,
    whatsapp_templates: usize,
}

struct Bench {
    api: LocalApi,
    dynamo: DynamoCalls,
    phone: Arc<Phone>,
    memory_gb: f64,
}

impl Bench {
    /// One request through the endpoint that serves it; its time is billed to `function`.
    async fn call(
        &self,
        tally: &mut Tally,
        function: &'static str,
        event: GatewayEvent,
    ) -> (u16, Value) {
        let started = Instant::now();
        let response = self.api.handle(event).await;
        let ms = (started.elapsed().as_secs_f64() * 1e3).ceil();
        *tally.billed_ms.entry(function).or_default() += ms;
        tally.invocations += 1;
        tally.api_requests += 1;
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_slice(response.body().as_ref()).unwrap(),
        )
    }

    async fn post_json(
        &self,
        tally: &mut Tally,
        function: &'static str,
        path: &str,
        body: Value,
    ) -> (u16, Value) {
        let body = body.to_string().into_bytes();
        let event = tests::gateway_event(HOST, "POST", path, "", body, vec![]);
        self.call(tally, function, event).await
    }

    /// A status callback as Twilio signs it.
    async fn callback(&self, tally: &mut Tally, path: &str, query: &str, params: &[(&str, &str)]) {
        let url = format!("https://{HOST}{path}?{query}");
        let (body, headers) = tests::twilio_form(WEBHOOK_TOKEN, &url, params);
        let event = tests::gateway_event(HOST, "POST", path, query, body, headers);
        let (status, reply) = self.call(tally, "twilio-webhook", event).await;
        assert_eq!(status, 200, "{reply}");
    }

    /// Adds the DynamoDB requests counted since the last look to `tally`.
    fn settle(&self, tally: &mut Tally) {
        let usage = self.dynamo.take();
        for (op, n) in usage.calls {
            *tally.calls.entry(op).or_default() += n;
        }
        tally.write_units += usage.write_units;
        tally.read_units += usage.read_units;
    }

    /// A flash call: request, the caller ID, and Twilio's three status callbacks of a call
    /// that rings and is not answered.
    async fn flash_call(&self, tally: &mut Tally, store: &shared::store::Store) {
        let to = tests::random_phone();
        let body = json!({"phone_number": to, "app_signature": tests::APP_SIGNATURE});
        let (status, reply) = self
            .post_json(tally, "request", "/auth/request", body)
            .await;
        assert_eq!(status, 202, "{reply}");
        let session = reply["session_id"].as_str().unwrap().to_owned();
        let caller_id = self.phone.caller_id_of_call_to(&to).unwrap();
        let body =
            json!({"phone_number": to, "received_caller_id": caller_id, "session_id": session});
        let (status, reply) = self.post_json(tally, "verify", "/auth/verify", body).await;
        assert_eq!(status, 200, "{reply}");
        self.settle(tally);
        // The call's SID, as Twilio would send it (this look-up is not the service's).
        let id = shared::session::SessionId::parse(&session).unwrap();
        let sid = store
            .sessions()
            .get_session(&id)
            .await
            .unwrap()
            .unwrap()
            .call_sid
            .unwrap();
        self.dynamo.take();
        for status in ["initiated", "ringing", "no-answer"] {
            let query = format!("session_id={session}");
            let params = [
                ("AccountSid", ACCOUNT),
                ("CallSid", &sid),
                ("CallStatus", status),
            ];
            self.callback(tally, "/webhooks/twilio/voice", &query, &params)
                .await;
        }
        self.settle(tally);
        tally.runs += 1;
    }

    /// An SMS code: start, check, and the message's `sent` and `delivered` callbacks.
    /// Starts a code for a new phone and checks it: the code the phone got, or `fixed` (what
    /// the scripted Verify approves). Returns the phone.
    async fn start_and_check(
        &self,
        tally: &mut Tally,
        channel: &str,
        fixed: Option<&str>,
    ) -> PhoneNumber {
        let to = tests::random_phone();
        let body =
            json!({"phone_number": to, "app_signature": tests::APP_SIGNATURE, "channel": channel});
        let (status, reply) = self
            .post_json(tally, "sms-verify", "/sms/verify/start", body)
            .await;
        assert_eq!(status, 202, "{reply}");
        let code = match (fixed, channel) {
            (Some(code), _) => code.to_owned(),
            (None, "voice") => self.phone.code_said_to(&to).unwrap(),
            (None, _) => self.phone.code_sent_to(&to).unwrap(),
        };
        let body = json!({"phone_number": to, "code": code});
        let (status, reply) = self
            .post_json(tally, "sms-verify", "/sms/verify/check", body)
            .await;
        assert_eq!(status, 200, "{reply}");
        to
    }

    async fn sms_code(&self, tally: &mut Tally, store: &shared::store::Store) {
        let to = self.start_and_check(tally, "sms", None).await;
        let sent = self.phone.messages_to(&to).pop().unwrap();
        let shared::telephony::Content::Body(text) = &sent.content else {
            panic!("an SMS code is a text");
        };
        tally.sms_segments += shared::sms::segments(text).count as usize;
        self.message_callbacks(tally, store, &to, &["sent", "delivered"])
            .await;
    }

    /// A WhatsApp code: start, check, and the message's `sent`, `delivered` and `read`
    /// callbacks.
    async fn whatsapp_code(&self, tally: &mut Tally, store: &shared::store::Store) {
        let to = self.start_and_check(tally, "whatsapp", None).await;
        tally.whatsapp_templates += 1;
        self.message_callbacks(tally, store, &to, &["sent", "delivered", "read"])
            .await;
    }

    /// A voice code: start (a call that says the code) and check; a voice code's call has
    /// no status callback.
    async fn voice_code(&self, tally: &mut Tally) {
        self.start_and_check(tally, "voice", None).await;
        tally.voice_minutes += 1;
        self.settle(tally);
        tally.runs += 1;
    }

    /// An inbound missed call: request, the user's call (signed, rejected), status and
    /// verify.
    async fn inbound(&self, tally: &mut Tally) {
        let from = tests::random_phone();
        let body = json!({"phone_number": from, "app_signature": tests::APP_SIGNATURE, "direction": "inbound"});
        let (status, reply) = self
            .post_json(tally, "request", "/auth/request", body)
            .await;
        assert_eq!(status, 202, "{reply}");
        let session = reply["session_id"].as_str().unwrap().to_owned();
        let call_to = reply["call_to"].as_str().unwrap().to_owned();
        let path = "/webhooks/twilio/voice/incoming";
        let url = format!("https://{HOST}{path}");
        let params = [
            ("AccountSid", ACCOUNT),
            ("CallSid", "CA0123456789abcdef0123456789abcdef"),
            ("CallStatus", "ringing"),
            ("Direction", "inbound"),
            ("From", from.as_str()),
            ("To", call_to.as_str()),
            ("StirVerstat", "TN-Validation-Passed-A"),
        ];
        let (body, headers) = tests::twilio_form(WEBHOOK_TOKEN, &url, &params);
        let event = tests::gateway_event(HOST, "POST", path, "", body, headers);
        let started = Instant::now();
        let response = self.api.handle(event).await;
        let ms = (started.elapsed().as_secs_f64() * 1e3).ceil();
        *tally.billed_ms.entry("twilio-webhook").or_default() += ms;
        tally.invocations += 1;
        tally.api_requests += 1;
        assert_eq!(response.status().as_u16(), 200);
        let body = json!({"phone_number": from, "session_id": session});
        let (status, reply) = self.post_json(tally, "verify", "/auth/verify", body).await;
        assert_eq!(status, 200, "{reply}");
        self.settle(tally);
        tally.runs += 1;
    }

    /// A code message's status callbacks, as Twilio signs them.
    async fn message_callbacks(
        &self,
        tally: &mut Tally,
        store: &shared::store::Store,
        to: &PhoneNumber,
        statuses: &[&str],
    ) {
        self.settle(tally);
        // The callbacks' own writes; the look-ups of the ids are not the service's.
        let message = message_of(store, to).await;
        self.dynamo.take();
        for status in statuses {
            let query = format!("message_id={}", message.0);
            let params = [
                ("AccountSid", ACCOUNT),
                ("MessageSid", &message.1),
                ("MessageStatus", status),
            ];
            self.callback(tally, "/webhooks/twilio/messages", &query, &params)
                .await;
        }
        self.settle(tally);
        tally.runs += 1;
    }

    /// A code sent and checked by Twilio Verify (scripted): start and check.
    async fn delegated(&self, tally: &mut Tally) {
        self.start_and_check(tally, "sms", Some("123456")).await;
        tally.sms_segments += 1;
        tally.verify_successes += 1;
        self.settle(tally);
        tally.runs += 1;
    }
}

/// The log entry of the code message sent to `to`: its id and provider SID.
async fn message_of(store: &shared::store::Store, to: &PhoneNumber) -> (String, String) {
    let verification = store.codes().current(to).await.unwrap().unwrap();
    let id = verification.message_id.unwrap();
    let record = store.messages().get(&id).await.unwrap().unwrap();
    (id.to_string(), record.provider_sid.unwrap())
}

/// The functions' memory size, from `template.yaml` (the Globals' `MemorySize`), in GB.
fn memory_gb() -> f64 {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    let template = yaml_rust2::YamlLoader::load_from_str(&text)
        .unwrap()
        .remove(0);
    let mb = template["Globals"]["Function"]["MemorySize"]
        .as_i64()
        .unwrap();
    mb as f64 / 1024.0
}

fn print(name: &str, tally: &Tally, memory_gb: f64) {
    let runs = tally.runs as f64;
    let ms: f64 = tally.billed_ms.values().sum::<f64>() / runs;
    let api = tally.api_requests as f64 / runs * price::API_REQUEST;
    let lambda_requests = tally.invocations as f64 / runs * price::LAMBDA_REQUEST;
    let gb_seconds = ms / 1000.0 * memory_gb;
    let lambda_compute = gb_seconds * price::LAMBDA_GB_SECOND;
    let wru = tally.write_units / runs;
    let rru = tally.read_units / runs;
    let dynamo = wru * price::WRITE_UNIT + rru * price::READ_UNIT;
    let secrets = tally.invocations as f64 / runs / REQUESTS_PER_SECRET_READ * price::SECRET_CALL;
    let twilio = tally.sms_segments as f64 / runs * price::SMS_SEGMENT
        + tally.verify_successes as f64 / runs * price::VERIFY_SUCCESS
        + tally.voice_minutes as f64 / runs * price::VOICE_MINUTE
        + tally.whatsapp_templates as f64 / runs * price::WHATSAPP_TEMPLATE
        + if name.starts_with("flash") {
            price::FLASH_CALL
        } else if name.starts_with("inbound") {
            price::REJECTED_CALL
        } else {
            0.0
        };
    let aws = api + lambda_requests + lambda_compute + dynamo + secrets;
    let calls: Vec<String> = tally
        .calls
        .iter()
        .map(|(op, n)| format!("{op} {:.1}", *n as f64 / runs))
        .collect();
    let by_function: Vec<String> = tally
        .billed_ms
        .iter()
        .map(|(f, ms)| format!("{f} {:.1} ms", ms / runs))
        .collect();
    println!("{name} ({} runs)", tally.runs);
    println!(
        "  requests: {:.1} (API Gateway and Lambda), billed {ms:.1} ms at {:.0} MB = {gb_seconds:.6} GB-s ({})",
        tally.invocations as f64 / runs,
        memory_gb * 1024.0,
        by_function.join(", ")
    );
    println!(
        "  DynamoDB: {} = {wru:.1} write units, {rru:.1} read units",
        calls.join(", ")
    );
    println!("  | item | USD |");
    println!("  |---|---|");
    println!("  | API Gateway requests | {api:.8} |");
    println!("  | Lambda requests | {lambda_requests:.8} |");
    println!("  | Lambda compute | {lambda_compute:.8} |");
    println!("  | DynamoDB | {dynamo:.8} |");
    println!("  | Secrets Manager (amortised) | {secrets:.8} |");
    println!("  | **AWS total** | **{aws:.6}** |");
    println!("  | Twilio | {twilio:.6} |");
    println!("  | **total** | **{:.6}** |", aws + twilio);
    println!(
        "  per 1,000 verifications: AWS ${:.4}, Twilio ${:.2}",
        aws * 1000.0,
        twilio * 1000.0
    );
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::var("BENCH_VERIFICATIONS")
        .ok()
        .map(|v| v.parse().expect("BENCH_VERIFICATIONS must be a number"))
        .unwrap_or(50);
    let memory_gb = memory_gb();

    // Our own codes and flash calls: the local stack's secret, a recording provider.
    let dynamo = DynamoCalls::default();
    // The deployed defaults of the settings that change what is written (the cooldowns, the
    // untrusted share's counters, the quarantine's reads and counts); the quarantine's
    // minimums out of reach, so that every verification is served.
    let defaults = [
        ("REQUEST_COOLDOWN_SECONDS", "30"),
        ("CODE_RESEND_COOLDOWN_SECONDS", "30"),
        ("UNTRUSTED_SHARE_PERCENT", "20"),
        ("QUARANTINE_MODE", "enforce"),
        ("QUARANTINE_MIN_SENDS", "1000000"),
        ("QUARANTINE_COUNTRY_MIN_SENDS", "10000000"),
        ("CODE_CHANNELS", "sms,voice,whatsapp"),
        ("WHATSAPP_FROM", "+15005550006"),
        ("WHATSAPP_CONTENT_SID", "HX0123456789abcdef0123456789abcdef"),
    ];
    let (init, _clock, phone) = tests::init(&defaults).await;
    let store = init.store();
    let init = init.with_dynamodb_interceptor(dynamo.clone());
    let bench = Bench {
        api: LocalApi::build(&init).await.expect("endpoints build"),
        dynamo: dynamo.clone(),
        phone: phone.clone(),
        memory_gb,
    };

    // Delegated codes: a scripted Twilio Verify that sends and approves.
    let verify = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("/Verifications$"))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            json!({"sid": "VE0123456789abcdef0123456789abcdef", "status": "pending"}),
        ))
        .mount(&verify)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("/VerificationCheck$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"sid": "VE0123456789abcdef0123456789abcdef", "status": "approved"}),
        ))
        .mount(&verify)
        .await;
    let uri = verify.uri();
    let config = tests::config(&[
        ("VERIFY_SERVICE_SID", VERIFY_SERVICE),
        ("TWILIO_VERIFY_BASE_URL", uri.as_str()),
        defaults[0],
        defaults[1],
    ]);
    let sdk = shared::aws::sdk_config(&config).await;
    let delegated_init = Init::new(config, sdk)
        .with_secrets(tests::secrets_with(
            json!({"twilio_account_sid": ACCOUNT, "twilio_auth_token": WEBHOOK_TOKEN}),
        ))
        .with_telephony(phone.clone())
        .with_dynamodb_interceptor(dynamo.clone());
    let delegated = Bench {
        api: LocalApi::build(&delegated_init)
            .await
            .expect("endpoints build"),
        dynamo,
        phone,
        memory_gb,
    };

    println!("== cost per verification (prices: list, USD, us-east-1, 2025) ==");
    let mut flash = Tally::default();
    let mut sms = Tally::default();
    let mut verified_by_twilio = Tally::default();
    let mut voice = Tally::default();
    let mut whatsapp = Tally::default();
    let mut inbound = Tally::default();
    bench.dynamo.take();
    for _ in 0..runs {
        bench.flash_call(&mut flash, &store).await;
        bench.sms_code(&mut sms, &store).await;
        bench.voice_code(&mut voice).await;
        bench.whatsapp_code(&mut whatsapp, &store).await;
        bench.inbound(&mut inbound).await;
        delegated.delegated(&mut verified_by_twilio).await;
    }
    print(
        "flash call (request, verify, 3 call status callbacks)",
        &flash,
        bench.memory_gb,
    );
    print(
        "SMS code (start, check, 2 message status callbacks)",
        &sms,
        bench.memory_gb,
    );
    print(
        "voice code (start, check; one US call minute)",
        &voice,
        bench.memory_gb,
    );
    print(
        "WhatsApp code (start, check, 3 message status callbacks)",
        &whatsapp,
        bench.memory_gb,
    );
    print(
        "inbound missed call (request, the rejected incoming call, verify)",
        &inbound,
        bench.memory_gb,
    );
    print(
        "Twilio Verify (start, check; Verify's own SMS)",
        &verified_by_twilio,
        delegated.memory_gb,
    );
    println!(
        "  Lambda: {:.0} MB (template.yaml) x the billed ms above; Secrets Manager: one read per \
         container per 300 s at {REQUESTS_PER_SECRET_READ:.0} requests per read",
        memory_gb * 1024.0
    );
}
