//! The footprint of every endpoint on DynamoDB, and the request rate each one can take before
//! its hottest item reaches DynamoDB's per-partition limits (1,000 write units and 3,000 read
//! units a second; a hot partition is split by sort key down to single items, so the limit
//! that stays is the item's).
//!
//!     infra/bench.sh footprint                    # the table, the fault mode, a million calls
//!     BENCH_FOOTPRINT=20 BENCH_MILLION=10000 ...  # smaller (CI)
//!
//! Three parts:
//! - **The table.** Each endpoint is driven `BENCH_FOOTPRINT` times (default 50) as a campaign
//!   to one country would drive it (new phones, new client addresses, untrusted callers, the
//!   budgets of 5,000 sends a second), through the handlers as Lambda runs them. An
//!   interceptor on the endpoints' own DynamoDB client records every item each request reads
//!   or writes. The items are put in key classes; for the classes one country's requests share
//!   (the global, country and prefix budgets' shards, the quarantine, the conversion counts,
//!   the provider's rate) the load on the hottest item is the units a request puts on its group
//!   divided by the items the group is spread over, and the **modeled ceiling** is the rate at
//!   which that item reaches its limit (the prefix as if every phone were in one block: the
//!   worst case). Per-phone, per-client and per-request items are one request's each.
//! - **Faults** (`BENCH_FAULT_PERCENT`, default 10, then 100): the sends with that share of
//!   the writes answered `TransactionConflict`, then throttled, by a fault-injecting HTTP
//!   client in front of DynamoDB Local: the answers by status (503 and nothing else of 5xx)
//!   and the latency.
//! - **A million calls** (`BENCH_MILLION`, default 1,000,000) for one number: generated as the
//!   traffic generator makes them, each folded into the number's monthly totals by the code the
//!   event path runs (`call::stats`), the totals written as their items; then the stats
//!   endpoint is asked, its DynamoDB requests counted and its time measured, and its answer
//!   compared with the one-by-one count. (Posting a million calls through DynamoDB Local would
//!   take hours; `calls.rs` posts `BENCH_CALLS` through the endpoint.)

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use devstack::LocalApi;
use devstack::traffic::{Generator, event_json};
use serde_json::{Value, json};
use shared::Init;
use shared::call::stats::{CallStats, Contribution, delta};
use shared::config::Config;
use shared::phone::PhoneNumber;
use shared::store::rate_limits::shards_for;
use tests::faults::{Fault, Faults};
use tests::{Phone, SERVICE_KEY};

const HOST: &str = "bench.execute-api.us-east-1.amazonaws.com";
const TOKEN: &str = "local-twilio-auth-token";
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

/// DynamoDB's limits of one partition (and so of one item), per second.
const WRITE_UNITS_PER_ITEM: f64 = 1000.0;
const READ_UNITS_PER_ITEM: f64 = 3000.0;

/// The settings of a campaign at internet scale: 5,000 sends a second to one country.
const SCALE: &[(&str, &str)] = &[
    ("MAX_SENDS_PER_HOUR", "100000000"),
    ("MAX_SENDS_PER_COUNTRY_PER_HOUR", "18000000"),
    ("MAX_SENDS_PER_PREFIX_PER_HOUR", "360000"),
    ("UNTRUSTED_SHARE_PERCENT", "20"),
    ("QUARANTINE_MODE", "enforce"),
    ("QUARANTINE_MIN_SENDS", "1000000"),
    ("QUARANTINE_COUNTRY_MIN_SENDS", "10000000"),
    ("REQUEST_COOLDOWN_SECONDS", "30"),
    ("CODE_RESEND_COOLDOWN_SECONDS", "30"),
    ("TWILIO_CALLS_PER_SECOND", "5000"),
    ("TWILIO_MESSAGES_PER_SECOND", "5000"),
    ("CALL_RETENTION_DAYS", "0"),
    ("MAX_REQUESTS_PER_NETWORK_PER_HOUR", "1000000"),
];

/// One item a request touched: its key, whether written, the units it cost.
#[derive(Debug, Clone)]
struct Touch {
    item: String,
    write: bool,
    units: f64,
}

/// The requests by operation, and the items they touched.
type Logged = (BTreeMap<String, u64>, Vec<Touch>);

/// Every DynamoDB request of the endpoints, with the items each touched.
#[derive(Debug, Default, Clone)]
struct KeyLog(Arc<Mutex<Logged>>);

fn key_of(key: &Value) -> String {
    let pk = key["pk"]["S"].as_str().unwrap_or("?");
    match key["sk"]["S"].as_str() {
        Some(sk) => format!("{pk} | {sk}"),
        None => pk.to_owned(),
    }
}

impl aws_sdk_dynamodb::config::Intercept for KeyLog {
    fn name(&self) -> &'static str {
        "KeyLog"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let (operation, body) = tests::dynamo_request(context);
        let read_units = if body["ConsistentRead"] == Value::Bool(true) {
            1.0
        } else {
            0.5
        };
        let mut touches = Vec::new();
        let write = |item: &Value, units: f64, touches: &mut Vec<Touch>| {
            let key = if item.get("Item").is_some() {
                &item["Item"]
            } else {
                &item["Key"]
            };
            touches.push(Touch {
                item: key_of(key),
                write: true,
                units,
            });
            // A write that sets the index's keys writes the index's partition too: a put's
            // item, or an update's value of one (`PHONE#`, `HISTORY#`).
            let values = item["ExpressionAttributeValues"].as_object();
            let set = values
                .into_iter()
                .flatten()
                .filter_map(|(_, v)| v["S"].as_str());
            let index = key["gsi1pk"]["S"].as_str().or_else(|| {
                set.into_iter()
                    .find(|v| v.starts_with("HISTORY#") || v.starts_with("PHONE#"))
            });
            if let Some(index) = index {
                touches.push(Touch {
                    item: format!("index {index}"),
                    write: true,
                    units: 1.0,
                });
            }
        };
        match operation.as_str() {
            "TransactWriteItems" => {
                for item in body["TransactItems"].as_array().into_iter().flatten() {
                    if let Some(check) = item.get("ConditionCheck") {
                        touches.push(Touch {
                            item: key_of(&check["Key"]),
                            write: false,
                            units: 2.0,
                        });
                    }
                    for kind in ["Put", "Update", "Delete"] {
                        if let Some(w) = item.get(kind) {
                            write(w, 2.0, &mut touches);
                        }
                    }
                }
            }
            "PutItem" | "UpdateItem" | "DeleteItem" => write(&body, 1.0, &mut touches),
            "GetItem" => touches.push(Touch {
                item: key_of(&body["Key"]),
                write: false,
                units: read_units,
            }),
            "BatchGetItem" => {
                for table in body["RequestItems"].as_object().into_iter().flatten() {
                    for key in table.1["Keys"].as_array().into_iter().flatten() {
                        touches.push(Touch {
                            item: key_of(key),
                            write: false,
                            units: 0.5,
                        });
                    }
                }
            }
            "Query" => {
                // The partition asked: the value compared in the key condition.
                let values = &body["ExpressionAttributeValues"];
                let partition = body["KeyConditionExpression"]
                    .as_str()
                    .and_then(|e| e.split(" = ").nth(1))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| values[v]["S"].as_str())
                    .unwrap_or("?");
                let item = match body["IndexName"].as_str() {
                    Some(_) => format!("index {partition}"),
                    None => partition.to_owned(),
                };
                touches.push(Touch {
                    item,
                    write: false,
                    units: read_units,
                });
            }
            _ => {}
        }
        let mut log = self.0.lock().unwrap();
        *log.0.entry(operation).or_default() += 1;
        log.1.extend(touches);
        Ok(())
    }
}

impl KeyLog {
    fn take(&self) -> Logged {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Who shares an item in a campaign to one country.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    /// One verification's, message's, call's or event's own item.
    PerRequest,
    PerPhone,
    PerClient,
    Global,
    Country,
    Prefix,
    Quarantine,
    Provider,
    /// A number's history: its index partition and its monthly totals.
    History,
    Pool,
}

impl Class {
    fn label(self) -> &'static str {
        match self {
            Class::PerRequest => "per request",
            Class::PerPhone => "per phone",
            Class::PerClient => "per IP/network",
            Class::Global => "global",
            Class::Country => "country",
            Class::Prefix => "prefix",
            Class::Quarantine => "quarantine",
            Class::Provider => "provider",
            Class::History => "history",
            Class::Pool => "pool",
        }
    }

    /// Whether one country's requests (new phones, new clients) share its items.
    fn shared(self) -> bool {
        matches!(
            self,
            Class::Global | Class::Country | Class::Prefix | Class::Quarantine | Class::Provider
        )
    }
}

/// An item's class, the group of items it is one of, and how many items that group has.
fn classify(item: &str, config: &Config) -> (Class, String, u32) {
    let budgets = &config.send_budgets;
    let (pk, sk) = item.split_once(" | ").unwrap_or((item, ""));
    let parts: Vec<&str> = pk.split('#').collect();
    // The group of a sharded item: its key before the shard (the window after it is left
    // out too: one second's counter and the next are the same load).
    let without = |i: usize| parts[..i].join("#");
    let one = |class| (class, item.to_owned(), 1);
    if let Some(index) = pk.strip_prefix("index ") {
        return if index.starts_with("HISTORY#") {
            one(Class::History)
        } else if index == "POOL" {
            one(Class::Pool)
        } else {
            one(Class::PerPhone)
        };
    }
    match parts[0] {
        "LIMIT" => match (parts[1], parts.get(2).copied()) {
            ("ip-hour" | "net-hour", _) => one(Class::PerClient),
            ("sends-hour" | "untrusted-hour", Some("global")) => {
                (Class::Global, without(3), shards_for(budgets.per_hour))
            }
            ("sends-hour" | "untrusted-hour", Some("country")) => (
                Class::Country,
                without(4),
                shards_for(budgets.per_country_per_hour),
            ),
            ("sends-hour" | "untrusted-hour", Some("prefix")) => (
                Class::Prefix,
                without(4),
                shards_for(budgets.per_prefix_per_hour),
            ),
            ("provider-second", Some("calls")) => (
                Class::Provider,
                without(3),
                shards_for(config.provider_rate.calls_per_second),
            ),
            ("provider-second", _) => (
                Class::Provider,
                without(4),
                shards_for(config.provider_rate.messages_per_second),
            ),
            ("call-slot", _) => (
                Class::Provider,
                without(3),
                config.provider_rate.max_concurrent_calls.unwrap_or(1),
            ),
            _ => one(Class::PerPhone),
        },
        "QSTAT" => {
            let (class, shards) = if parts[1].starts_with("country:") {
                (Class::Country, shards_for(budgets.per_country_per_hour))
            } else {
                (Class::Prefix, shards_for(budgets.per_prefix_per_hour))
            };
            (class, without(parts.len() - 1), shards)
        }
        "QUARANTINE" => (Class::Quarantine, format!("QUARANTINE | {sk}"), 1),
        "CALLSTATS" => (
            Class::History,
            without(parts.len() - 1),
            shared::store::calls::STATS_SHARDS,
        ),
        "POOL" => one(Class::Pool),
        "TRUST" | "COOLDOWN" | "CODE" => one(Class::PerPhone),
        _ => one(Class::PerRequest),
    }
}

/// One endpoint's footprint over its requests.
struct Footprint {
    name: &'static str,
    requests: usize,
    calls: BTreeMap<String, u64>,
    touches: Vec<Touch>,
}

impl Footprint {
    /// The modeled ceiling, over the classes in `counted`: the request rate at which the most
    /// loaded item reaches its limit, with that item's class.
    fn ceiling(&self, config: &Config, counted: impl Fn(Class) -> bool) -> (f64, Option<Class>) {
        // Units per request on each group, writes and reads apart.
        let mut groups: BTreeMap<(String, bool), (Class, u32, f64)> = BTreeMap::new();
        for t in &self.touches {
            let (class, group, spread) = classify(&t.item, config);
            if !counted(class) {
                continue;
            }
            let entry = groups
                .entry((group, t.write))
                .or_insert((class, spread, 0.0));
            entry.2 += t.units / self.requests as f64;
        }
        let mut best = (f64::INFINITY, None);
        for ((_, write), (class, spread, units)) in groups {
            let per_item = units / f64::from(spread.max(1));
            let limit = if write {
                WRITE_UNITS_PER_ITEM
            } else {
                READ_UNITS_PER_ITEM
            };
            let ceiling = limit / per_item;
            if ceiling < best.0 {
                best = (ceiling, Some(class));
            }
        }
        best
    }

    fn print(&self, config: &Config) {
        let n = self.requests as f64;
        let calls: Vec<String> = self
            .calls
            .iter()
            .map(|(op, c)| {
                let op = op.trim_end_matches("Items").trim_end_matches("Item");
                format!("{op} {}", short(*c as f64 / n))
            })
            .collect();
        let (wcu, rcu) = self.touches.iter().fold((0.0, 0.0), |(w, r), t| {
            if t.write {
                (w + t.units, r)
            } else {
                (w, r + t.units)
            }
        });
        let mut writes: BTreeMap<Class, f64> = BTreeMap::new();
        for t in self.touches.iter().filter(|t| t.write) {
            *writes.entry(classify(&t.item, config).0).or_default() += 1.0 / n;
        }
        let writes: Vec<String> = writes
            .iter()
            .map(|(class, w)| format!("{} {}", class.label(), short(*w)))
            .collect();
        let (ceiling, hottest) = self.ceiling(config, Class::shared);
        let ceiling = match hottest {
            Some(class) => format!("{ceiling:.0}/s ({})", class.label()),
            None => "none shared".to_owned(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            self.name,
            calls.join(", "),
            short(wcu / n),
            short(rcu / n),
            if writes.is_empty() {
                "-".to_owned()
            } else {
                writes.join(", ")
            },
            ceiling
        );
    }
}

/// A figure to two decimals at most, without trailing zeros.
fn short(x: f64) -> String {
    let text = format!("{x:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

struct Bench {
    api: LocalApi,
    log: KeyLog,
    phone: Arc<Phone>,
    /// For the look-ups that stand in for Twilio (its SIDs): made before a measure, which
    /// drops what came before it.
    store: shared::store::Store,
}

impl Bench {
    async fn send(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: Vec<u8>,
        headers: Vec<(String, String)>,
        source: &str,
    ) -> (u16, Value) {
        let mut event = tests::gateway_event(HOST, method, path, query, body, headers);
        event.source_ip = source.to_owned();
        let response = self.api.handle(event).await;
        let status = response.status().as_u16();
        let body = serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null);
        (status, body)
    }

    async fn app_post(&self, path: &str, body: Value, source: &str) -> (u16, Value) {
        self.send(
            "POST",
            path,
            "",
            body.to_string().into_bytes(),
            vec![],
            source,
        )
        .await
    }

    async fn service(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let auth = vec![("authorization".to_owned(), format!("Bearer {SERVICE_KEY}"))];
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.send(method, path, "", body, auth, "203.0.113.9").await
    }

    async fn callback(&self, path: &str, query: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let url = format!("https://{HOST}{path}?{query}");
        let (body, headers) = tests::twilio_form(TOKEN, &url, params);
        self.send("POST", path, query, body, headers, "54.172.60.1")
            .await
    }

    /// Runs `requests` of one endpoint, `make(i)` each, and what they touched.
    async fn measure<F, Fut>(&self, name: &'static str, requests: usize, make: F) -> Footprint
    where
        F: Fn(usize) -> Fut,
        Fut: std::future::Future<Output = (u16, Value)>,
    {
        self.log.take();
        for i in 0..requests {
            let (status, body) = make(i).await;
            assert!(status < 300, "{name}: {status} {body}");
        }
        let (calls, touches) = self.log.take();
        Footprint {
            name,
            requests,
            calls,
            touches,
        }
    }
}

/// A new client address for request `i` of round `round`: a campaign's clients are many.
fn client(round: usize, i: usize) -> String {
    format!("198.{}.{}.{}", 18 + round % 2, (i / 250) % 250, 1 + i % 250)
}

async fn footprints(bench: &Bench, n: usize) -> Vec<Footprint> {
    let phones: Vec<PhoneNumber> = (0..n).map(|_| tests::random_phone()).collect();
    let mut all = Vec::new();

    let request = bench
        .measure("POST /auth/request", n, |i| {
            let body = json!({"phone_number": phones[i], "app_signature": tests::APP_SIGNATURE});
            async move { bench.app_post("/auth/request", body, &client(0, i)).await }
        })
        .await;
    all.push(request);
    // Each session, the caller ID its phone saw, and its call's SID as Twilio would post it.
    let mut sessions = Vec::new();
    for phone in &phones {
        let caller = bench.phone.caller_id_of_call_to(phone).unwrap();
        let session = bench
            .phone
            .last_call_to(phone)
            .and_then(|c| c.status_callback)
            .and_then(|u| u.split_once("session_id=").map(|(_, s)| s.to_owned()))
            .unwrap();
        let id = shared::session::SessionId::parse(&session).unwrap();
        let stored = bench.store.sessions().get_session(&id).await.unwrap();
        let sid = stored.and_then(|s| s.call_sid).unwrap();
        sessions.push((caller, session, sid));
    }
    let sessions = &sessions;
    all.push(
        bench
            .measure("POST /webhooks/twilio/voice", n, |i| {
                let query = format!("session_id={}", sessions[i].1);
                let sid = sessions[i].2.clone();
                async move {
                    let params = [
                        ("AccountSid", ACCOUNT),
                        ("CallSid", sid.as_str()),
                        ("CallStatus", "ringing"),
                    ];
                    bench
                        .callback("/webhooks/twilio/voice", &query, &params)
                        .await
                }
            })
            .await,
    );
    all.push(
        bench
            .measure("POST /auth/verify", n, |i| {
                let body = json!({
                    "phone_number": phones[i],
                    "received_caller_id": sessions[i].0,
                    "session_id": sessions[i].1,
                });
                async move { bench.app_post("/auth/verify", body, &client(0, i)).await }
            })
            .await,
    );
    all.push(
        bench
            .measure("GET /auth/status/{id}", n, |i| {
                let path = format!("/auth/status/{}", sessions[i].1);
                async move {
                    bench
                        .send("GET", &path, "", Vec::new(), vec![], &client(0, i))
                        .await
                }
            })
            .await,
    );

    let code_phones: Vec<PhoneNumber> = (0..n).map(|_| tests::random_phone()).collect();
    all.push(
        bench
            .measure("POST /sms/verify/start", n, |i| {
                let body =
                    json!({"phone_number": code_phones[i], "app_signature": tests::APP_SIGNATURE});
                async move {
                    bench
                        .app_post("/sms/verify/start", body, &client(1, i))
                        .await
                }
            })
            .await,
    );
    all.push(
        bench
            .measure("POST /sms/verify/check", n, |i| {
                let code = bench.phone.code_sent_to(&code_phones[i]).unwrap();
                let body = json!({"phone_number": code_phones[i], "code": code});
                async move {
                    bench
                        .app_post("/sms/verify/check", body, &client(1, i))
                        .await
                }
            })
            .await,
    );

    let send = bench
        .measure("POST /sms/send (Idempotency-Key)", n, |_| async {
            let body = json!({"to": tests::random_phone(), "body": "Your order shipped."});
            let mut headers = vec![
                ("authorization".to_owned(), format!("Bearer {SERVICE_KEY}")),
                (
                    "idempotency-key".to_owned(),
                    uuid::Uuid::new_v4().to_string(),
                ),
            ];
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
            let (status, reply) = bench
                .send(
                    "POST",
                    "/sms/send",
                    "",
                    body.to_string().into_bytes(),
                    headers,
                    "203.0.113.9",
                )
                .await;
            (status, reply)
        })
        .await;
    all.push(send);
    // The ids of the messages just sent, and their SIDs as Twilio would post them.
    let mut sent = Vec::new();
    for m in bench.phone.all_messages() {
        let Some(id) = m
            .status_callback
            .as_deref()
            .and_then(|u| u.split_once("message_id="))
            .map(|(_, id)| id.to_owned())
        else {
            continue;
        };
        let parsed = shared::sms::MessageId::parse(&id).unwrap();
        let record = bench.store.messages().get(&parsed).await.unwrap().unwrap();
        if record.sent_by.is_some() {
            sent.push((id, record.provider_sid.unwrap()));
        }
    }
    let sent = &sent[sent.len() - n..];
    all.push(
        bench
            .measure("POST /webhooks/twilio/messages", n, |i| {
                let query = format!("message_id={}", sent[i].0);
                let sid = sent[i].1.clone();
                async move {
                    let params = [
                        ("AccountSid", ACCOUNT),
                        ("MessageSid", sid.as_str()),
                        ("MessageStatus", "delivered"),
                    ];
                    bench
                        .callback("/webhooks/twilio/messages", &query, &params)
                        .await
                }
            })
            .await,
    );
    all.push(
        bench
            .measure("GET /sms/{id}", n, |i| {
                let path = format!("/sms/{}", sent[i].0);
                async move { bench.service("GET", &path, None).await }
            })
            .await,
    );

    // Call events between numbers of one country, and one number's history.
    let mut generator = Generator::new(rand::random());
    let numbers = generator.numbers(2 * n);
    let now = time::OffsetDateTime::now_utc();
    let calls: Vec<_> = (0..n)
        .map(|i| {
            let start = now - time::Duration::minutes(10 + i as i64);
            generator.call(
                &numbers[2 * i],
                &numbers[2 * i + 1],
                start,
                Some(start + time::Duration::seconds(5)),
                Some(start + time::Duration::seconds(65)),
            )
        })
        .collect();
    let events: Vec<Value> = calls
        .iter()
        .flat_map(|c| c.events.iter().map(event_json))
        .collect();
    all.push(
        bench
            .measure("POST /calls/events", events.len(), |i| {
                let body = events[i].clone();
                async move { bench.service("POST", "/calls/events", Some(body)).await }
            })
            .await,
    );
    all.push(
        bench
            .measure("GET /calls/history/{n}", n, |i| {
                let path = format!("/calls/history/{}", numbers[2 * i]);
                async move { bench.service("GET", &path, None).await }
            })
            .await,
    );
    all.push(
        bench
            .measure("GET /calls/history/{n}/stats", n, |i| {
                let path = format!("/calls/history/{}/stats", numbers[2 * i]);
                async move { bench.service("GET", &path, None).await }
            })
            .await,
    );
    all
}

/// The endpoints' DynamoDB client: through `faults`, with `log` on it.
async fn build(faults: &Faults, log: &KeyLog) -> (Bench, Config) {
    let config = tests::config(SCALE);
    let sdk = shared::aws::sdk_config(&config).await;
    let inner = sdk.http_client().expect("the SDK's HTTP client");
    let partition = aws_sdk_dynamodb::config::retry::RetryPartition::new("footprint");
    let phone = Arc::new(Phone::default());
    let (faults, log) = (faults.clone(), log.clone());
    let init = Init::new(config.clone(), sdk)
        .with_secrets(tests::secrets_with(
            json!({"twilio_account_sid": ACCOUNT, "twilio_auth_token": TOKEN}),
        ))
        .with_telephony(phone.clone())
        .with_dynamodb_config(move |c| {
            c.http_client(faults.client(inner))
                .retry_partition(partition)
                .interceptor(log)
        });
    let api = LocalApi::build(&init).await.expect("endpoints build");
    (
        Bench {
            api,
            log: KeyLog::default(),
            phone,
            store: init.store(),
        },
        config,
    )
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

/// The same flows with `percent` of the writes failing with `fault`: every answer by status.
async fn under_faults(bench: &Bench, faults: &Faults, fault: Fault, percent: u32, n: usize) {
    faults.inject(fault, percent);
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut latencies = Vec::new();
    let mut without_retry_after = 0;
    for i in 0..n {
        for kind in 0..3 {
            let started = Instant::now();
            let (status, body) = match kind {
                0 => {
                    let body = json!({"phone_number": tests::random_phone(), "app_signature": tests::APP_SIGNATURE});
                    bench.app_post("/auth/request", body, &client(2, i)).await
                }
                1 => {
                    let body = json!({"to": tests::random_phone(), "body": "hello"});
                    bench.service("POST", "/sms/send", Some(body)).await
                }
                _ => {
                    let body = json!({"phone_number": tests::random_phone(), "app_signature": tests::APP_SIGNATURE});
                    bench
                        .app_post("/sms/verify/start", body, &client(3, i))
                        .await
                }
            };
            latencies.push(started.elapsed());
            *statuses.entry(status).or_default() += 1;
            if status == 503 && body["retry_after_seconds"].is_null() {
                without_retry_after += 1;
            }
        }
    }
    faults.stop();
    let (injected, passed) = faults.counts();
    latencies.sort();
    let other_5xx: usize = statuses
        .iter()
        .filter(|(s, _)| **s >= 500 && **s != 503)
        .map(|(_, c)| c)
        .sum();
    println!(
        "  {fault:?} on {percent} % of writes: {} requests, answers {statuses:?}, 5xx other than 503: {other_5xx}; \
         latency p50 {:.1} ms, p99 {:.1} ms; writes refused so far {injected}, passed {passed}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    );
    assert_eq!(other_5xx, 0, "a fault became a 5xx other than 503");
    assert_eq!(without_retry_after, 0, "a 503 without Retry-After");
}

/// A million calls (or `count`) for one number, folded into its monthly totals as the event
/// path folds them, then its stats asked for.
async fn million(bench: &Bench, config: &Config, count: usize) {
    let mut generator = Generator::new(rand::random());
    let numbers = generator.numbers(50);
    let (number, others) = numbers.split_first().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let started = Instant::now();
    let mut shards: BTreeMap<(u32, String), shared::call::stats::Counters> = BTreeMap::new();
    let mut expected = CallStats::new();
    for i in 0..count {
        let other = &others[i % others.len()];
        let start = now - time::Duration::minutes(1 + (i as i64 * 157) % (3 * 365 * 24 * 60));
        let (answered, disconnected) = match i % 5 {
            0 => (None, Some(start + time::Duration::seconds(20))),
            1 => (None, None),
            _ => (
                Some(start + time::Duration::seconds(3)),
                Some(start + time::Duration::seconds(30 + (i % 300) as i64)),
            ),
        };
        let (calling, called) = if i % 2 == 0 {
            (number, other)
        } else {
            (other, number)
        };
        let call = generator.call(calling, called, start, answered, disconnected);
        let Some(c) = Contribution::of(&call.expected, number) else {
            continue;
        };
        let shard = (i % shared::store::calls::STATS_SHARDS as usize) as u32;
        for (month, counters) in delta(None, Some(&c)) {
            expected.add_month(&month, &counters);
            let sum = shards.entry((shard, month)).or_default();
            for (name, value) in counters {
                *sum.entry(name).or_default() += value;
            }
        }
    }
    let generated = started.elapsed();
    // The totals as their items (what the events' transactions would have added up).
    let sdk = shared::aws::sdk_config(config).await;
    let client = aws_sdk_dynamodb::Client::from_conf(shared::aws::dynamodb_config(&sdk).build());
    let items = shards.len();
    for ((shard, month), counters) in &shards {
        let mut update = client
            .update_item()
            .table_name(&config.table_name)
            .key(
                "pk",
                AttributeValue::S(shared::store::keys::call_stats_pk(number.as_str(), *shard)),
            )
            .key("sk", AttributeValue::S(month.clone()));
        let mut adds = Vec::new();
        for (i, (name, value)) in counters.iter().enumerate() {
            adds.push(format!("#c{i} :c{i}"));
            update = update
                .expression_attribute_names(format!("#c{i}"), name)
                .expression_attribute_values(
                    format!(":c{i}"),
                    AttributeValue::N(value.to_string()),
                );
        }
        update
            .update_expression(format!("ADD {}", adds.join(", ")))
            .send()
            .await
            .unwrap();
    }
    let path = format!("/calls/history/{number}/stats");
    bench.log.take();
    let mut times = Vec::new();
    let mut answer = Value::Null;
    const ASKS: usize = 10;
    for _ in 0..ASKS {
        let started = Instant::now();
        let (status, body) = bench.service("GET", &path, None).await;
        times.push(started.elapsed());
        assert_eq!(status, 200, "{body}");
        answer = body;
    }
    let (calls, touches) = bench.log.take();
    times.sort();
    let reads: u64 = calls.values().sum::<u64>() / ASKS as u64;
    let units: f64 = touches.iter().map(|t| t.units).sum::<f64>() / ASKS as f64;
    assert_eq!(answer["total_calls"], expected.total_calls, "{answer}");
    assert_eq!(answer["completed_calls"], expected.completed_calls);
    assert_eq!(
        answer["total_duration_seconds"],
        expected.total_duration_seconds
    );
    println!(
        "  {count} calls for one number over 3 years generated and folded in {:.1} s into {items} month items; \
         stats: {reads} DynamoDB requests ({calls:?} over {ASKS} asks), {units:.1} read units, \
         p50 {:.1} ms, max {:.1} ms; total_calls {} = the one-by-one count",
        generated.as_secs_f64(),
        percentile(&times, 0.5),
        percentile(&times, 1.0),
        expected.total_calls,
    );
    assert!(reads <= 10, "stats of a million calls in at most 10 reads");
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number"))
        })
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let n = env_number("BENCH_FOOTPRINT", 50);
    let percent = env_number("BENCH_FAULT_PERCENT", 10) as u32;
    let count = env_number("BENCH_MILLION", 1_000_000);
    let faults = Faults::default();
    let log = KeyLog::default();
    let (mut bench, config) = build(&faults, &log).await;
    bench.log = log;

    println!(
        "== footprint per request ({n} requests each; a campaign to one country, budgets of 5,000 sends/s) =="
    );
    println!(
        "| endpoint | DynamoDB requests | WCU | RCU | writes by key class | ceiling (hottest) |"
    );
    println!("|---|---|---|---|---|---|");
    let all = footprints(&bench, n).await;
    let mut lowest = f64::INFINITY;
    for f in &all {
        f.print(&config);
        lowest = lowest.min(f.ceiling(&config, Class::shared).0);
    }
    println!("  lowest modeled ceiling for one country: {lowest:.0} requests/s");
    // One busy number (a call centre): every event of its calls writes its history index
    // partition and one of its month totals' shards. Measured over calls between distinct
    // numbers, where each event writes both parties': half of it is one number's.
    if let Some(events) = all.iter().find(|f| f.name == "POST /calls/events") {
        let per_event = |prefix: &str| {
            events
                .touches
                .iter()
                .filter(|t| t.write && t.item.starts_with(prefix))
                .map(|t| t.units)
                .sum::<f64>()
                / events.requests as f64
                / 2.0
        };
        let index = per_event("index HISTORY#");
        let totals = per_event("CALLSTATS#") / f64::from(shared::store::calls::STATS_SHARDS);
        let ceiling = (WRITE_UNITS_PER_ITEM / index).min(WRITE_UNITS_PER_ITEM / totals);
        println!(
            "  one number's events (a call centre's number): {index:.2} index write units and \
             {totals:.2} on its hottest month-total shard per event: {ceiling:.0} events/s"
        );
    }

    println!("== faults injected in front of DynamoDB Local ==");
    // The given share, then every write: past the retries, a 503 with Retry-After.
    for share in [percent, 100] {
        for fault in [Fault::Conflict, Fault::Throttling] {
            under_faults(&bench, &faults, fault, share, n.min(30)).await;
        }
    }

    println!("== stats of one number with {count} calls ==");
    million(&bench, &config, count).await;
}
