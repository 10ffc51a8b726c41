//! `template.yaml` as deployed (`devstack::deployed`, what `infra/deployed.sh` serves): each
//! function its own processes with the template's environment, routed by the template's
//! `HttpApi` events, every AWS call judged against the function's own policy. The smoke suite
//! (every fixture of `events/`, the README's sessions) runs against it; the `iam_` tests judge
//! what it called (`infra/test.sh iam` runs them alone).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use devstack::deployed::iam::{self, Decision};
use devstack::deployed::{Deployment, Function, Locals, Options, Recorded, Template, Upstreams};
use serde_json::{Value, json};

const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
const SERVICE_KEY: &str = "local-service-key";
const APP_SIGNATURE: &str = "local-dev-signature";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name}: run through infra/test.sh"))
}

use tests::bin_dir;

fn template_text() -> String {
    std::fs::read_to_string(TEMPLATE).unwrap()
}

struct Deployed {
    deployment: Deployment,
    url: String,
    client: reqwest::Client,
    logs: Arc<Mutex<Vec<(String, String)>>>,
}

struct Setup {
    template: String,
    /// The `PublicBaseUrl` is the deployment's own URL (callbacks reach it), or empty (the
    /// domain API Gateway reports: a fixture's `host`).
    public_url: bool,
    enforce_iam: bool,
    bin_dir: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            template: template_text(),
            public_url: true,
            enforce_iam: true,
            bin_dir: bin_dir(),
        }
    }
}

/// A deployment on a table of its own (created, its pool seeded), reading the stack's secret.
async fn deploy(setup: Setup) -> Deployed {
    let (init, _clock, _phone) = tests::isolated_init(&[]).await;
    let table = init.config.table_name.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let parameters: BTreeMap<String, String> = [
        ("AllowedCountryCodes", "*".to_owned()),
        ("AppCheckProjectNumber", env("APP_CHECK_PROJECT_NUMBER")),
        ("AppCheckJwksUrl", env("APP_CHECK_JWKS_URL")),
        ("AllowTestNumbers", "true".to_owned()),
        (
            "PublicBaseUrl",
            if setup.public_url {
                url.clone()
            } else {
                String::new()
            },
        ),
        ("SmsFromNumbers", "+14155550100".to_owned()),
        // An account whose rates Twilio raised: the smoke suite sends many at once.
        ("TwilioCallsPerSecond", "100".to_owned()),
        ("TwilioMessagesPerSecond", "100".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut local_env: BTreeMap<String, String> = [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_EC2_METADATA_DISABLED",
    ]
    .iter()
    .filter_map(|n| Some((n.to_string(), std::env::var(n).ok()?)))
    .collect();
    local_env.insert("ALLOW_LOGGING_GATEWAY".into(), "true".into());
    let logs: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let sink = logs.clone();
    let options = Options {
        template: Template::parse(&setup.template).unwrap(),
        locals: Locals {
            parameters,
            resources: {
                let mut resources = devstack::deployed::local_resources_from_env();
                resources.insert("Table".to_owned(), table);
                resources
            },
            region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
        },
        bin_dir: setup.bin_dir,
        upstreams: Upstreams {
            dynamodb: env("AWS_ENDPOINT_URL_DYNAMODB"),
            secrets_manager: env("AWS_ENDPOINT_URL_SECRETS_MANAGER"),
        },
        local_env,
        enforce_iam: setup.enforce_iam,
        max_instances: 3,
        log: Arc::new(move |function: &str, line: &str| {
            sink.lock()
                .unwrap()
                .push((function.to_owned(), line.to_owned()));
        }),
    };
    let deployment = Deployment::start(listener, options).await.unwrap();
    let client = reqwest::Client::builder()
        .local_address(tests::random_loopback())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    Deployed {
        deployment,
        url,
        client,
        logs,
    }
}

struct Answer {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

impl Deployed {
    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let response = req.send().await.expect("the deployed API answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| json!({ "text": text }))
        };
        Answer {
            status,
            body,
            headers,
        }
    }

    fn post(&self, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.client.post(format!("{}{path}", self.url)).json(&body)
    }

    /// What the app posts to start a verification: the phone and the local app signature.
    async fn app_start(&self, path: &str, phone: &str) -> Answer {
        self.send(self.post(
            path,
            json!({"phone_number": phone, "app_signature": APP_SIGNATURE}),
        ))
        .await
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(format!("{}{path}", self.url))
    }

    /// The first capture of `pattern` in a line the function printed after `from` lines.
    async fn logged(&self, function: &str, from: usize, pattern: &str) -> String {
        let re = regex::Regex::new(pattern).unwrap();
        for _ in 0..100 {
            let found = self.logs.lock().unwrap()[from..]
                .iter()
                .filter(|(f, _)| f == function)
                .find_map(|(_, line)| Some(re.captures(line)?[1].to_owned()));
            if let Some(found) = found {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{function} printed nothing like {pattern}");
    }

    fn log_len(&self) -> usize {
        self.logs.lock().unwrap().len()
    }

    /// A fixture of `events/` sent as the HTTP request it was made from.
    async fn fixture(&self, name: &str) -> Answer {
        let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
        let event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let method = event["requestContext"]["http"]["method"].as_str().unwrap();
        let mut url = format!("{}{}", self.url, event["rawPath"].as_str().unwrap());
        if let Some(q) = event["rawQueryString"].as_str().filter(|q| !q.is_empty()) {
            url = format!("{url}?{q}");
        }
        let mut req = self.client.request(method.parse().unwrap(), url);
        for (k, v) in event["headers"].as_object().into_iter().flatten() {
            if k != "content-length" {
                req = req.header(k, v.as_str().unwrap());
            }
        }
        if let Some(body) = event["body"].as_str() {
            let bytes = if event["isBase64Encoded"] == true {
                base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .unwrap()
            } else {
                body.as_bytes().to_vec()
            };
            req = req.body(bytes);
        }
        self.send(req).await
    }
}

/// Every fixture of `events/`, on a deployment whose public URL is the one API Gateway reports
/// (the fixtures' `host`, which their Twilio signatures are made for).
async fn fixtures_smoke(d: &Deployed) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, expected, code) in tests::FIXTURE_ANSWERS {
        let a = d.fixture(name).await;
        if a.status != *expected || code.is_some_and(|c| a.body["error"] != c) {
            failures.push(format!(
                "{name}: expected {expected} {code:?}, got {} {}",
                a.status, a.body
            ));
        }
    }
    // The call fixtures in order: the INITIATE, the rest, then the history and its stats.
    for (name, expected) in [
        ("calls-event-no-key.json", 401),
        ("calls-event-unknown-kind.json", 400),
        ("calls-event-empty-batch.json", 400),
        ("calls-event.json", 200),
        ("calls-event-batch.json", 200),
        ("calls-history-no-key.json", 401),
        ("calls-history-forged-cursor.json", 400),
        ("calls-history.json", 200),
        ("calls-history-stats.json", 200),
    ] {
        let a = d.fixture(name).await;
        if a.status != expected {
            failures.push(format!(
                "{name}: expected {expected}, got {} {}",
                a.status, a.body
            ));
        }
    }
    failures
}

/// The README's sessions by hand, each step checked as the README shows it.
async fn readme_sessions(d: &Deployed) -> Vec<String> {
    let failures = std::cell::RefCell::new(Vec::new());
    let check = |what: &str, a: &Answer, expected: u16| {
        if a.status != expected {
            failures.borrow_mut().push(format!(
                "{what}: expected {expected}, got {} {}",
                a.status, a.body
            ));
        }
    };

    // A verification by hand (flash call), then the phone's own history with its token.
    let phone = tests::random_phone().to_string();
    let mark = d.log_len();
    let a = d.app_start("/auth/request", &phone).await;
    check("POST /auth/request", &a, 202);
    let session = a.body["session_id"].as_str().unwrap_or_default().to_owned();
    let caller_id = d
        .logged(
            "RequestFunction",
            mark,
            r"the caller ID to enter is (\+\d+)",
        )
        .await;
    let verify = || {
        d.post(
            "/auth/verify",
            json!({"phone_number": phone, "received_caller_id": caller_id, "session_id": session}),
        )
    };
    let a = d.send(d.get(&format!("/auth/status/{session}"))).await;
    check("GET /auth/status", &a, 200);
    let a = d
        .send(d.client.head(format!("{}/auth/status/{session}", d.url)))
        .await;
    check("HEAD /auth/status", &a, 200);
    let a = d.send(verify()).await;
    check("POST /auth/verify", &a, 200);
    let token = a.body["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let encoded = phone.replace('+', "%2B");
    let a = d
        .send(
            d.get(&format!("/calls/history/{encoded}"))
                .bearer_auth(&token),
        )
        .await;
    check("GET /calls/history with the phone's token", &a, 200);
    let a = d.send(verify()).await;
    check("POST /auth/verify again", &a, 409);
    // A wrong caller ID counts a failure (the failure counters' grant).
    let other = tests::random_phone().to_string();
    let a = d.app_start("/auth/request", &other).await;
    check("POST /auth/request (second phone)", &a, 202);
    let a = d
        .send(d.post(
            "/auth/verify",
            json!({"phone_number": other, "received_caller_id": "+14155550999"}),
        ))
        .await;
    check("POST /auth/verify with a wrong caller ID", &a, 400);

    // The inbound missed call by hand: the phone calls `call_to` (what `stackctl call-in`
    // posts), the call is rejected as busy, then the session's token.
    let phone = tests::random_phone().to_string();
    let a = d
        .send(d.post(
            "/auth/request",
            json!({"phone_number": phone, "app_signature": APP_SIGNATURE, "direction": "inbound"}),
        ))
        .await;
    check("POST /auth/request inbound", &a, 202);
    let session = a.body["session_id"].as_str().unwrap_or_default().to_owned();
    let call_to = a.body["call_to"].as_str().unwrap_or_default().to_owned();
    let url = format!("{}{}", d.url, shared::telephony::VOICE_INCOMING.path);
    let params = shared::telephony::incoming_call(&phone, &call_to, Some("TN-Validation-Passed-A"));
    let signature = shared::twilio_signature::compute(
        devstack::bootstrap::LOCAL_TWILIO_AUTH_TOKEN,
        &url,
        &params,
    );
    let a = d
        .send(
            d.client
                .post(&url)
                .header("x-twilio-signature", signature)
                .form(&params),
        )
        .await;
    check("POST /webhooks/twilio/voice/incoming", &a, 200);
    let a = d
        .send(d.post(
            "/auth/verify",
            json!({"phone_number": phone, "session_id": session}),
        ))
        .await;
    check("POST /auth/verify (inbound)", &a, 200);

    // An SMS by hand: send, replay, the delivery log once the callbacks came back.
    let to = tests::random_phone().to_string();
    let send = || {
        d.post(
            "/sms/send",
            json!({"to": to, "body": "Your order has shipped."}),
        )
        .bearer_auth(SERVICE_KEY)
        .header("Idempotency-Key", format!("order-{to}"))
    };
    let a = d.send(send()).await;
    check("POST /sms/send", &a, 202);
    let id = a.body["id"].as_str().unwrap_or_default().to_owned();
    let a = d.send(send()).await;
    check("POST /sms/send replayed", &a, 202);
    if a.headers.get("idempotent-replayed").is_none() {
        failures
            .borrow_mut()
            .push("POST /sms/send replayed: no Idempotent-Replayed".into());
    }
    let mut delivered = false;
    for _ in 0..50 {
        let a = d
            .send(d.get(&format!("/sms/{id}")).bearer_auth(SERVICE_KEY))
            .await;
        if a.status == 200 && a.body["status"] == "delivered" {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !delivered {
        failures
            .borrow_mut()
            .push("GET /sms/{id}: never delivered (the callbacks did not land)".into());
    }
    // Refused by Twilio: its Idempotency-Key is released, so a retry may send again.
    let refused = || {
        d.post("/sms/send", json!({"to": "+14155550001", "body": "x"}))
            .bearer_auth(SERVICE_KEY)
            .header("Idempotency-Key", format!("refused-{to}"))
    };
    let a = d.send(refused()).await;
    check("POST /sms/send to Twilio's invalid number", &a, 422);
    let a = d.send(refused()).await;
    check("POST /sms/send to Twilio's invalid number, again", &a, 422);
    if a.headers.get("idempotent-replayed").is_some() {
        failures
            .borrow_mut()
            .push("a refused send's Idempotency-Key was kept".into());
    }

    // An SMS code by hand: a wrong code, the right one, the right one again.
    let phone = tests::random_phone().to_string();
    let mark = d.log_len();
    let a = d.app_start("/sms/verify/start", &phone).await;
    check("POST /sms/verify/start", &a, 202);
    let code = d
        .logged("SmsVerifyFunction", mark, r"the verification code is (\d+)")
        .await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let check_code = |code: &str| {
        d.post(
            "/sms/verify/check",
            json!({"phone_number": phone, "code": code}),
        )
    };
    let a = d.send(check_code(wrong)).await;
    check("POST /sms/verify/check wrong", &a, 400);
    let a = d.send(check_code(&code)).await;
    check("POST /sms/verify/check right", &a, 200);
    let verification = a.body["verification_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let a = d
        .send(d.post(
            "/sms/verify/check",
            json!({"phone_number": phone, "code": code, "verification_id": verification}),
        ))
        .await;
    check(
        "POST /sms/verify/check again, naming the verification",
        &a,
        409,
    );
    let a = d.send(check_code(&code)).await;
    check(
        "POST /sms/verify/check again, without the id (no oracle)",
        &a,
        404,
    );

    // A code Twilio refuses is never sent: its allowance and cooldown are given back.
    let a = d.app_start("/sms/verify/start", "+14155550001").await;
    check("POST /sms/verify/start to Twilio's invalid number", &a, 422);
    let a = d.app_start("/sms/verify/start", "+14155550001").await;
    check(
        "POST /sms/verify/start again at once (no cooldown was kept)",
        &a,
        422,
    );

    // Call events and a history, as the README posts them.
    let called = tests::random_phone().to_string();
    let calling = tests::random_phone().to_string();
    let call = uuid::Uuid::new_v4().to_string();
    let event = |id: &str, kind: &str, at: &str| {
        json!({"event_id": format!("{call}-{id}"), "call_id": call, "event": kind,
               "calling_number": calling, "called_number": called, "created_at": at})
    };
    let a = d
        .send(
            d.post(
                "/calls/events",
                json!([
                    event("e1", "INITIATE", "2026-11-21T10:00:00Z"),
                    event("e3", "DISCONNECT", "2026-11-21T10:01:05Z"),
                    event("e2", "ANSWER", "2026-11-21T10:00:05Z"),
                ]),
            )
            .bearer_auth(SERVICE_KEY),
        )
        .await;
    check("POST /calls/events", &a, 200);
    // A second INITIATE of the call, later than the first: accepted, and the earliest stays.
    let a = d
        .send(
            d.post(
                "/calls/events",
                event("e4", "INITIATE", "2026-11-21T10:00:30Z"),
            )
            .bearer_auth(SERVICE_KEY),
        )
        .await;
    check("POST /calls/events, a later INITIATE", &a, 200);
    let encoded = called.replace('+', "%2B");
    let a = d
        .send(
            d.get(&format!("/calls/history/{encoded}?limit=20"))
                .bearer_auth(SERVICE_KEY),
        )
        .await;
    check("GET /calls/history", &a, 200);
    if a.body["results"].as_array().map(Vec::len) != Some(1) {
        failures.borrow_mut().push(format!(
            "GET /calls/history: one call expected, got {}",
            a.body
        ));
    }
    let a = d
        .send(
            d.get(&format!("/calls/history/{encoded}/stats"))
                .bearer_auth(SERVICE_KEY),
        )
        .await;
    check("GET /calls/history/stats", &a, 200);
    let a = d.send(d.get("/health")).await;
    check("GET /health", &a, 200);
    failures.into_inner()
}

/// What one deployment ran and what it called.
struct Observed {
    functions: Vec<Function>,
    locals: Locals,
    calls: Vec<Recorded>,
}

impl Observed {
    fn function(&self, id: &str) -> &Function {
        self.functions.iter().find(|f| f.logical_id == id).unwrap()
    }
}

/// Both halves of the smoke suite, each on a deployment of its own.
async fn smoke(enforce_iam: bool) -> (Vec<String>, Vec<Observed>) {
    let fixtures = deploy(Setup {
        public_url: false,
        enforce_iam,
        ..Setup::new()
    })
    .await;
    let sessions = deploy(Setup {
        enforce_iam,
        ..Setup::new()
    })
    .await;
    let (mut failures, more) = tokio::join!(fixtures_smoke(&fixtures), readme_sessions(&sessions));
    failures.extend(more);
    let mut observed = Vec::new();
    for d in [fixtures, sessions] {
        observed.push(Observed {
            functions: d.deployment.functions.clone(),
            locals: d.deployment.locals.clone(),
            calls: d.deployment.calls.all(),
        });
        let errors: Vec<String> = d
            .logs
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, l)| l.contains("\"level\":\"ERROR\"") || l.contains("panicked"))
            .map(|(f, l)| format!("{f}: {l}"))
            .collect();
        failures.extend(errors);
        d.deployment.stop().await;
    }
    (failures, observed)
}

#[tokio::test]
async fn deployed_template_serves_every_fixture_and_the_readme_sessions() {
    let (failures, _) = smoke(true).await;
    assert!(failures.is_empty(), "as deployed:\n{}", failures.join("\n"));
}

/// The calls IAM would deny, each naming its function, the call and what is missing.
fn denials(calls: &[Recorded]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    for r in calls.iter().filter(|r| r.decision != Decision::Allowed) {
        seen.insert(format!(
            "{} may not {} on {} (partition keys {:?}, in {}): no statement of its Policies in template.yaml allows it",
            r.function, r.call.action, r.call.resource, r.call.leading_keys.clone().unwrap_or_default(), r.operation
        ));
    }
    seen.into_iter().collect()
}

#[tokio::test]
async fn iam_every_call_of_the_smoke_suite_is_allowed_by_its_functions_policy_and_every_grant_is_used()
 {
    let (failures, observed) = smoke(false).await;
    let calls: Vec<Recorded> = observed.iter().flat_map(|o| o.calls.clone()).collect();
    // What was called, for reading when this fails: target/iam-calls.jsonl.
    let record: String = calls
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    std::fs::write(bin_dir().join("../iam-calls.jsonl"), record).unwrap();
    let denied = denials(&calls);
    assert!(
        denied.is_empty(),
        "IAM would deny, as deployed:\n{}",
        denied.join("\n")
    );
    assert!(
        failures.is_empty(),
        "the smoke suite:\n{}",
        failures.join("\n")
    );

    // Every grant some call used (judged against the statements of the deployment that made
    // it), or kept by a comment in its function's block: `# kept: <action> [<key pattern>]: <why>`.
    let template = Template::parse(&template_text()).unwrap();
    let mut unused = Vec::new();
    for f in &observed[0].functions {
        assert!(
            f.unmodeled_policies.is_empty(),
            "{}: policies the evaluator does not model: {:?}",
            f.logical_id,
            f.unmodeled_policies
        );
        let block = template.resource_text(&f.logical_id);
        for grant in iam::grants(&f.statements) {
            let used = observed.iter().any(|o| {
                let statements = &o.function(&f.logical_id).statements;
                o.calls
                    .iter()
                    .filter(|r| r.function == f.logical_id && r.decision == Decision::Allowed)
                    .any(|r| iam::uses(statements, &grant, &r.call))
            });
            let kept = block.lines().any(|l| {
                l.trim_start().starts_with("# kept:")
                    && l.contains(&grant.action)
                    && grant
                        .key_pattern
                        .as_ref()
                        .is_none_or(|k| l.contains(k.as_str()))
            });
            if !used && !kept {
                unused.push(format!("{}: {grant}", f.logical_id));
            }
        }
    }
    assert!(
        unused.is_empty(),
        "grants no call of the smoke suite used (remove them, or say why they stay with `# kept: <action> <pattern>: <why>`):\n{}",
        unused.join("\n")
    );

    // The evaluator would catch a needed action taken away: the request function's
    // ConditionCheckItem (its guard's checks) removed from a copy of the template, resolved
    // as the sessions' deployment was.
    // (RequestFunction is the template's first function: the first such statement is its.)
    let text = template_text().replacen(
        "              Action: [dynamodb:ConditionCheckItem]\n",
        "              Action: [dynamodb:DescribeTable]\n",
        1,
    );
    assert_ne!(text, template_text(), "the statement as the test knows it");
    let sessions = &observed[1];
    let request = Template::parse(&text)
        .unwrap()
        .functions(&sessions.locals)
        .unwrap()
        .into_iter()
        .find(|f| f.logical_id == "RequestFunction")
        .unwrap();
    let denied: Vec<Recorded> = sessions
        .calls
        .iter()
        .filter(|r| r.function == "RequestFunction")
        .map(|r| Recorded {
            decision: iam::evaluate(&request.statements, &r.call),
            ..r.clone()
        })
        .collect();
    let denied = denials(&denied);
    assert!(
        denied
            .iter()
            .any(|d| d.starts_with("RequestFunction may not dynamodb:ConditionCheckItem")),
        "{denied:?}"
    );
}

#[tokio::test]
async fn deployed_a_route_taken_out_of_the_template_is_a_404_and_the_others_stay() {
    let text = template_text();
    let health = "        Health:\n          Type: HttpApi\n          Properties:\n            ApiId: !Ref HttpApi\n            Method: GET\n            Path: /health\n";
    assert!(
        text.contains(health),
        "the Health event as the test knows it"
    );
    let d = deploy(Setup {
        template: text.replacen(health, "", 1),
        ..Setup::new()
    })
    .await;
    let a = d.send(d.get("/health")).await;
    assert_eq!((a.status, &a.body), (404, &json!({"message": "Not Found"})));
    let a = d.send(d.client.head(format!("{}/health", d.url))).await;
    assert_eq!(a.status, 200, "HEAD /health is its own event");
    let a = d.send(d.get("/auth/status/not-a-session")).await;
    assert_eq!(a.status, 400, "{}", a.body);
    let a = d.send(d.get("/nowhere")).await;
    assert_eq!(a.status, 404);
    d.deployment.stop().await;
}

#[tokio::test]
async fn deployed_a_function_that_dies_or_times_out_is_answered_as_api_gateway_does_and_replaced() {
    // The verify function's binary swapped for one that dies at once, the status function's
    // for one that never answers within the template's Timeout (set to 1 s in the copy).
    let dir = std::env::temp_dir().join(format!("deployed-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(bin_dir()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if entry.path().is_file() && !name.contains('.') {
            std::os::unix::fs::symlink(entry.path(), dir.join(&name)).ok();
        }
    }
    let script = |name: &str, body: &str| {
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    script("verify", "echo 'the process dies' >&2; exit 3");
    script("status", "sleep 30");
    let text = template_text().replacen(
        "      Description: GET /auth/status/{session_id} - where a session stands; GET /health - whether the service can verify.\n",
        "      Description: GET /auth/status/{session_id} - where a session stands; GET /health - whether the service can verify.\n      Timeout: 1\n",
        1,
    );
    let d = deploy(Setup {
        template: text,
        bin_dir: dir.clone(),
        ..Setup::new()
    })
    .await;
    for _ in 0..2 {
        let a = d
            .send(d.post(
                "/auth/verify",
                json!({"phone_number": "+14155550123", "received_caller_id": "+14155550100"}),
            ))
            .await;
        assert_eq!(
            (a.status, &a.body),
            (500, &json!({"message": "Internal Server Error"}))
        );
    }
    let started = std::time::Instant::now();
    let a = d.send(d.get("/health")).await;
    assert_eq!(
        (a.status, &a.body),
        (503, &json!({"message": "Service Unavailable"}))
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the 1 s Timeout was enforced"
    );
    // The other functions are untouched.
    let a = d
        .send(d.post(
            "/sms/verify/check",
            json!({"phone_number": "+14155550123", "code": "12"}),
        ))
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    d.deployment.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
