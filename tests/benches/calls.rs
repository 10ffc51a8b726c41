//! Benchmark of `call-event`, `call-history`, `sms-send` and `twilio-webhook` on the local
//! stack, through the handlers as Lambda runs them (an API Gateway v2 event, decoded by
//! `lambda_http`, served by the endpoint). Prints events ingested per second, history latency
//! for one number with `BENCH_CALLS` calls (default 10,000), SMS sends and status callbacks
//! per second (`BENCH_SMS`, default 500; the provider is a recording stand-in), and the
//! DynamoDB calls of each request, counted by an interceptor on the endpoints' own client.
//!
//!     infra/bench.sh          # starts the stack, runs this, stops the stack
//!
//! The figures are those of DynamoDB Local (a JVM on this machine), not of DynamoDB: compare
//! runs with each other, not with production latencies. The call counts are exact anywhere.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use devstack::LocalApi;
use devstack::traffic::{Generator, event_json};
use futures::StreamExt;
use serde_json::Value;
use shared::call::CallEvent;
use shared::phone::PhoneNumber;

/// One measured phase: request latencies and the DynamoDB calls made meanwhile.
struct Phase {
    name: String,
    latencies: Vec<Duration>,
    wall: Duration,
    events: usize,
    calls: BTreeMap<String, u64>,
}

impl Phase {
    fn print(&mut self) {
        self.latencies.sort();
        let n = self.latencies.len();
        let q = |p: f64| {
            let i = ((n as f64 * p).ceil() as usize).clamp(1, n) - 1;
            self.latencies[i].as_secs_f64() * 1e3
        };
        let per_request: Vec<String> = self
            .calls
            .iter()
            .map(|(op, c)| format!("{op} {:.2}", *c as f64 / n as f64))
            .collect();
        let total: u64 = self.calls.values().sum();
        println!("{}", self.name);
        print!(
            "  {n} requests in {:.2} s: {:.0} requests/s",
            self.wall.as_secs_f64(),
            n as f64 / self.wall.as_secs_f64()
        );
        if self.events > 0 {
            print!(
                ", {:.0} events/s",
                self.events as f64 / self.wall.as_secs_f64()
            );
        }
        println!();
        println!(
            "  latency ms: p50 {:.1}, p95 {:.1}, p99 {:.1}, max {:.1}",
            q(0.50),
            q(0.95),
            q(0.99),
            q(1.0)
        );
        print!(
            "  DynamoDB calls per request: {:.2} ({})",
            total as f64 / n as f64,
            per_request.join(", ")
        );
        if self.events > 0 {
            print!(", per event: {:.2}", total as f64 / self.events as f64);
        }
        println!();
    }
}

struct Bench {
    api: LocalApi,
    dynamo: tests::DynamoCalls,
}

impl Bench {
    /// Starts a phase: the DynamoDB count from here on is the phase's.
    fn start(&self) -> Instant {
        self.dynamo.take();
        Instant::now()
    }

    fn finish(
        &self,
        name: &str,
        started: Instant,
        latencies: Vec<Duration>,
        events: usize,
    ) -> Phase {
        Phase {
            name: name.into(),
            latencies,
            wall: started.elapsed(),
            events,
            calls: self.dynamo.take().calls,
        }
    }

    async fn send(&self, method: &str, path: &str, query: &str, body: Vec<u8>) -> (u16, Value) {
        self.send_with(method, path, query, body, Vec::new()).await
    }

    /// A request with the service key, JSON, and `extra` headers (which replace those).
    async fn send_with(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: Vec<u8>,
        extra: Vec<(String, String)>,
    ) -> (u16, Value) {
        let mut headers = vec![(
            "authorization".to_owned(),
            format!("Bearer {}", tests::SERVICE_KEY),
        )];
        headers.retain(|(name, _)| !extra.iter().any(|(e, _)| e == name));
        headers.extend(extra);
        let event = tests::gateway_event(HOST, method, path, query, body, headers);
        let response = self.api.handle(event).await;
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_slice(response.body().as_ref()).unwrap(),
        )
    }

    /// Posts `events` in requests of `per_request` events (1: a bare object), `in_flight` at
    /// a time; panics on anything but accepted or duplicate.
    async fn ingest(
        &self,
        name: &str,
        events: &[CallEvent],
        per_request: usize,
        in_flight: usize,
    ) -> Phase {
        let started = self.start();
        let latencies = futures::stream::iter(events.chunks(per_request))
            .map(|chunk| async move {
                let body = if per_request == 1 {
                    event_json(&chunk[0])
                } else {
                    Value::Array(chunk.iter().map(event_json).collect())
                };
                let t = Instant::now();
                let (status, reply) = self
                    .send("POST", "/calls/events", "", body.to_string().into_bytes())
                    .await;
                let elapsed = t.elapsed();
                assert_eq!(status, 200, "{reply}");
                let rejected = reply.get("rejected").and_then(Value::as_u64).unwrap_or(0);
                assert_eq!(rejected, 0, "{reply}");
                elapsed
            })
            .buffer_unordered(in_flight)
            .collect::<Vec<_>>()
            .await;
        self.finish(name, started, latencies, events.len())
    }

    /// Reads `pages` pages of the history one after another, following the cursor (`None`:
    /// to the end); returns the phase and the rows read.
    async fn walk(
        &self,
        name: &str,
        number: &PhoneNumber,
        query: &str,
        pages: Option<usize>,
    ) -> (Phase, usize) {
        let path = format!("/calls/history/{}", number.as_str());
        let started = self.start();
        let (mut latencies, mut rows, mut cursor) = (Vec::new(), 0, None::<String>);
        loop {
            let mut q = query.to_owned();
            if let Some(c) = &cursor {
                q.push_str(&format!("&cursor={c}"));
            }
            let t = Instant::now();
            let (status, reply) = self.send("GET", &path, &q, Vec::new()).await;
            latencies.push(t.elapsed());
            assert_eq!(status, 200, "{reply}");
            rows += reply["results"].as_array().unwrap().len();
            cursor = reply["next_cursor"].as_str().map(str::to_owned);
            if cursor.is_none() || pages.is_some_and(|p| latencies.len() >= p) {
                break;
            }
        }
        (self.finish(name, started, latencies, 0), rows)
    }

    /// Sends `count` SMS to different recipients, `in_flight` at a time, with or without an
    /// Idempotency-Key; returns the phase and each message's id and provider SID.
    async fn send_sms(
        &self,
        name: &str,
        count: usize,
        in_flight: usize,
        with_key: bool,
    ) -> (Phase, Vec<(String, String)>) {
        let started = self.start();
        let results = futures::stream::iter(0..count)
            .map(|_| async move {
                let to = tests::random_phone();
                let body = serde_json::json!({"to": to, "body": "Your order has shipped."});
                let extra = if with_key {
                    vec![("idempotency-key".into(), uuid::Uuid::new_v4().to_string())]
                } else {
                    Vec::new()
                };
                let t = Instant::now();
                let (status, reply) = self
                    .send_with(
                        "POST",
                        "/sms/send",
                        "",
                        body.to_string().into_bytes(),
                        extra,
                    )
                    .await;
                let elapsed = t.elapsed();
                assert_eq!(status, 202, "{reply}");
                let id = reply["id"].as_str().unwrap().to_owned();
                let sid = reply["provider_message_id"].as_str().unwrap().to_owned();
                (elapsed, (id, sid))
            })
            .buffer_unordered(in_flight)
            .collect::<Vec<_>>()
            .await;
        let (latencies, messages) = results.into_iter().unzip();
        (self.finish(name, started, latencies, 0), messages)
    }

    /// Posts a signed `status` callback for each message, `in_flight` at a time.
    async fn callbacks(
        &self,
        name: &str,
        messages: &[(String, String)],
        status: &str,
        in_flight: usize,
    ) -> Phase {
        let started = self.start();
        let latencies = futures::stream::iter(messages)
            .map(|(id, sid)| async move {
                let query = format!("message_id={id}");
                let url = format!("https://{HOST}/webhooks/twilio/messages?{query}");
                let (body, headers) = tests::twilio_form(
                    WEBHOOK_TOKEN,
                    &url,
                    &[
                        ("AccountSid", "AC00000000000000000000000000000000"),
                        ("MessageSid", sid.as_str()),
                        ("MessageStatus", status),
                    ],
                );
                let t = Instant::now();
                let (code, reply) = self
                    .send_with("POST", "/webhooks/twilio/messages", &query, body, headers)
                    .await;
                let elapsed = t.elapsed();
                assert_eq!(code, 200, "{reply}");
                assert_eq!(reply["applied"], true, "{reply}");
                elapsed
            })
            .buffer_unordered(in_flight)
            .collect::<Vec<_>>()
            .await;
        self.finish(name, started, latencies, 0)
    }

    /// The same GET `times` times, one after another.
    async fn repeat(&self, name: &str, path: &str, query: &str, times: usize) -> Phase {
        let started = self.start();
        let mut latencies = Vec::with_capacity(times);
        for _ in 0..times {
            let t = Instant::now();
            let (status, reply) = self.send("GET", path, query, Vec::new()).await;
            latencies.push(t.elapsed());
            assert_eq!(status, 200, "{reply}");
        }
        self.finish(name, started, latencies, 0)
    }
}

/// The domain the benchmark's events say API Gateway was called on.
const HOST: &str = "bench.execute-api.us-east-1.amazonaws.com";

/// The webhook token of the local stack's secret (`stackctl bootstrap`).
const WEBHOOK_TOKEN: &str = "local-twilio-auth-token";

#[tokio::main]
async fn main() {
    let heavy_calls: usize = std::env::var("BENCH_CALLS")
        .ok()
        .map(|v| v.parse().expect("BENCH_CALLS must be a number"))
        .unwrap_or(10_000);
    let sms: usize = std::env::var("BENCH_SMS")
        .ok()
        .map(|v| v.parse().expect("BENCH_SMS must be a number"))
        .unwrap_or(500);
    let dynamo = tests::DynamoCalls::default();
    let (init, _clock, _phone) = tests::init(&[]).await;
    let init = init.with_dynamodb_interceptor(dynamo.clone());
    let bench = Bench {
        api: LocalApi::build(&init).await.expect("endpoints build"),
        dynamo,
    };
    let now = time::OffsetDateTime::now_utc();
    let mut generator = Generator::new(rand::random());

    println!("== call-event: POST /calls/events ==");
    let numbers = generator.numbers(50);
    let calls = generator.calls(2_000, &numbers, now, 30);
    let events = generator.shuffled_events(&calls, 10);
    let (single, batched) = events.split_at(2_500);
    let (one, sixteen) = single.split_at(500);
    bench
        .ingest("one event per request, 1 in flight", one, 1, 1)
        .await
        .print();
    bench
        .ingest("one event per request, 16 in flight", sixteen, 1, 16)
        .await
        .print();
    bench
        .ingest("batches of 100 events, 1 in flight", batched, 100, 1)
        .await
        .print();

    let heavy = generator.numbers(1).remove(0);
    let others = generator.numbers(200);
    let calls = generator.calls_of(heavy_calls, &heavy, &others, now, 365);
    let events = generator.shuffled_events(&calls, 10);
    bench
        .ingest(
            &format!(
                "batches of 100 events, 4 in flight ({} events: {heavy_calls} calls of one number)",
                events.len()
            ),
            &events,
            100,
            4,
        )
        .await
        .print();

    println!();
    println!("== call-history: one number with {heavy_calls} calls ==");
    let path = format!("/calls/history/{}", heavy.as_str());
    bench
        .repeat("first page, limit 50", &path, "limit=50", 200)
        .await
        .print();
    for limit in [50, 200] {
        let (mut phase, rows) = bench
            .walk(
                &format!("every page in turn, limit {limit}"),
                &heavy,
                &format!("limit={limit}"),
                None,
            )
            .await;
        phase.print();
        assert_eq!(rows, heavy_calls, "every call read exactly once");
        println!("  rows read: {rows}");
    }
    let (mut phase, rows) = bench
        .walk(
            "status=Missed Inbound, limit 50, 20 pages",
            &heavy,
            "limit=50&status=Missed%20Inbound",
            Some(20),
        )
        .await;
    phase.print();
    println!("  rows read: {rows} (a filter applies after the limit: pages hold fewer rows)");
    let week_ago = now - time::Duration::days(7);
    let range = format!(
        "limit=50&from={}&to={}",
        shared::clock::rfc3339(week_ago).replace(':', "%3A"),
        shared::clock::rfc3339(now).replace(':', "%3A")
    );
    bench
        .repeat("last 7 days (from/to), limit 50", &path, &range, 100)
        .await
        .print();
    bench
        .repeat("stats", &format!("{path}/stats"), "", 10)
        .await
        .print();

    println!();
    println!("== sms-send: POST /sms/send ({sms} messages, a recording provider) ==");
    let (mut phase, plain) = bench
        .send_sms("without Idempotency-Key, 1 in flight", sms / 2, 1, false)
        .await;
    phase.print();
    let (mut phase, keyed) = bench
        .send_sms("with Idempotency-Key, 8 in flight", sms / 2, 8, true)
        .await;
    phase.print();

    println!();
    println!("== twilio-webhook: POST /webhooks/twilio/messages (signed) ==");
    bench
        .callbacks("sent, 1 in flight", &plain, "sent", 1)
        .await
        .print();
    bench
        .callbacks("delivered, 8 in flight", &keyed, "delivered", 8)
        .await
        .print();
}
