//! `template.yaml` agrees with the code: the table the store expects, and the routes the local
//! API serves.

use std::collections::BTreeSet;

use shared::http::Method;
use shared::store::keys::{GSI1, TTL};
use shared::store::schema::{GSI1_PROJECTED, KEYS};
use yaml_rust2::{Yaml, YamlLoader};

fn template() -> Yaml {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
        .expect("template.yaml");
    YamlLoader::load_from_str(&text)
        .expect("valid YAML")
        .remove(0)
}

fn key_schema(node: &Yaml) -> (String, String) {
    let mut hash = String::new();
    let mut range = String::new();
    for k in node.as_vec().unwrap() {
        let name = k["AttributeName"].as_str().unwrap().to_owned();
        match k["KeyType"].as_str().unwrap() {
            "HASH" => hash = name,
            _ => range = name,
        }
    }
    (hash, range)
}

#[test]
fn the_table_of_the_template_is_the_one_the_store_expects() {
    let t = template();
    let table = &t["Resources"]["Table"]["Properties"];
    assert_eq!(table["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"].as_str(),
        Some(TTL)
    );
    assert_eq!(
        table["TimeToLiveSpecification"]["Enabled"].as_bool(),
        Some(true)
    );

    let (_, pk, sk) = KEYS[0];
    assert_eq!(key_schema(&table["KeySchema"]), (pk.into(), sk.into()));
    let gsis = table["GlobalSecondaryIndexes"].as_vec().unwrap();
    assert_eq!(gsis.len(), KEYS.len() - 1);
    for (name, pk, sk) in &KEYS[1..] {
        let gsi = gsis
            .iter()
            .find(|g| g["IndexName"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("GSI {name} in template.yaml"));
        assert_eq!(
            key_schema(&gsi["KeySchema"]),
            (pk.to_string(), sk.to_string())
        );
        assert_eq!(
            gsi["Projection"]["ProjectionType"].as_str(),
            Some("INCLUDE")
        );
        let projected: BTreeSet<&str> = gsi["Projection"]["NonKeyAttributes"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let expected: BTreeSet<&str> = GSI1_PROJECTED.iter().copied().collect();
        assert_eq!(projected, expected);
        assert!(!projected.contains("caller_id") && !projected.contains("phone"));
    }
    assert_eq!(KEYS[1].0, GSI1);
    let declared: BTreeSet<&str> = table["AttributeDefinitions"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| a["AttributeName"].as_str().unwrap())
        .collect();
    let keys: BTreeSet<&str> = KEYS.iter().flat_map(|(_, p, s)| [*p, *s]).collect();
    assert_eq!(declared, keys);
}

/// Every HTTP API route of the template: (method, path, function binary).
fn template_routes() -> BTreeSet<(String, String, String)> {
    let t = template();
    let mut declared = BTreeSet::new();
    for (_, resource) in t["Resources"].as_hash().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let function = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap()
            .to_owned();
        let Some(events) = resource["Properties"]["Events"].as_hash() else {
            continue;
        };
        for (_, event) in events {
            if event["Type"].as_str() == Some("HttpApi") {
                let p = &event["Properties"];
                declared.insert((
                    p["Method"].as_str().unwrap().to_uppercase(),
                    p["Path"].as_str().unwrap().to_owned(),
                    function.clone(),
                ));
            }
        }
    }
    declared
}

#[test]
fn the_template_declares_exactly_the_routes_the_endpoints_declare_with_head_for_each_get() {
    let mut expected = BTreeSet::new();
    for (route, function) in shared::endpoints::routes() {
        expected.insert((
            route.method.as_str().to_owned(),
            route.path.to_owned(),
            function.to_owned(),
        ));
        if route.method == Method::Get {
            expected.insert(("HEAD".into(), route.path.to_owned(), function.to_owned()));
        }
    }
    let declared = template_routes();
    let missing: Vec<_> = expected.difference(&declared).collect();
    let unserved: Vec<_> = declared.difference(&expected).collect();
    assert!(
        missing.is_empty(),
        "routes missing from template.yaml: {missing:?}"
    );
    assert!(
        unserved.is_empty(),
        "template.yaml routes no endpoint declares: {unserved:?}"
    );
}

#[test]
fn every_endpoint_is_a_function_crate_of_the_workspace() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let workspace = std::fs::read_to_string(format!("{root}/Cargo.toml")).unwrap();
    for entry in shared::endpoints::ALL {
        let main = format!("{root}/functions/{}/src/main.rs", entry.name);
        let text = std::fs::read_to_string(&main).unwrap_or_else(|_| panic!("{main}"));
        assert!(
            text.contains("shared::runtime::run::<"),
            "{main} runs an endpoint"
        );
        assert!(
            workspace.contains(&format!("\"functions/{}\"", entry.name)),
            "functions/{} is a workspace member",
            entry.name
        );
    }
}

fn openapi() -> Yaml {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml"))
        .expect("openapi.yaml");
    YamlLoader::load_from_str(&text)
        .expect("valid YAML")
        .remove(0)
}

#[test]
fn the_contract_names_exactly_the_routes_the_endpoints_declare_with_head_for_each_get() {
    let spec = openapi();
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_hash().unwrap() {
        for (method, _) in item.as_hash().unwrap() {
            let method = method.as_str().unwrap();
            if ["get", "post", "head", "put", "patch", "delete"].contains(&method) {
                documented.insert((method.to_uppercase(), path.as_str().unwrap().to_owned()));
            }
        }
    }
    let mut declared = BTreeSet::new();
    for (route, _) in shared::endpoints::routes() {
        declared.insert((route.method.as_str().to_owned(), route.path.to_owned()));
        if route.method == Method::Get {
            declared.insert(("HEAD".to_owned(), route.path.to_owned()));
        }
    }
    assert_eq!(documented, declared);
}

#[test]
fn the_contract_lists_exactly_the_error_codes_of_the_api() {
    let spec = openapi();
    let documented: BTreeSet<&str> = spec["components"]["schemas"]["ErrorCode"]["enum"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let codes: BTreeSet<&str> = shared::http::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    assert_eq!(documented, codes);
}

#[test]
fn the_contract_names_every_limit_a_refusal_can_name() {
    let spec = openapi();
    let documented: BTreeSet<&str> = spec["components"]["schemas"]["Error"]["properties"]["limit"]
        ["enum"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let mut limits: BTreeSet<&str> = shared::store::rate_limits::Limit::ALL
        .iter()
        .map(|l| l.as_str())
        .collect();
    // Twilio Verify's own send limit (sms-verify's delegated mode).
    limits.insert("provider_sends");
    assert_eq!(documented, limits);
}

#[test]
fn the_alarms_and_the_dashboard_read_only_metrics_the_functions_emit() {
    let t = template();
    let names = regex::Regex::new(r#"MetricName="([A-Za-z]+)""#).unwrap();
    let mut named = BTreeSet::new();
    for (_, resource) in t["Resources"].as_hash().unwrap() {
        let p = &resource["Properties"];
        match resource["Type"].as_str() {
            Some("AWS::CloudWatch::Alarm") => {
                if p["Namespace"].as_str() == Some(shared::telemetry::NAMESPACE) {
                    named.insert(p["MetricName"].as_str().unwrap().to_owned());
                }
                for query in p["Metrics"].as_vec().into_iter().flatten() {
                    let metric = &query["MetricStat"]["Metric"];
                    if metric["Namespace"].as_str() == Some(shared::telemetry::NAMESPACE) {
                        named.insert(metric["MetricName"].as_str().unwrap().to_owned());
                    }
                }
            }
            Some("AWS::CloudWatch::Dashboard") => {
                // The body is JSON under !Sub: its ${...} are inside strings.
                let body = p["DashboardBody"]["Fn::Sub"]
                    .as_str()
                    .or_else(|| p["DashboardBody"].as_str())
                    .expect("the dashboard body");
                let body: serde_json::Value = serde_json::from_str(body).expect("JSON");
                for widget in body["widgets"].as_array().unwrap() {
                    for metric in widget["properties"]["metrics"].as_array().unwrap() {
                        let metric = metric.as_array().expect("a metric is an array");
                        for part in metric {
                            if let Some(expression) = part["expression"].as_str() {
                                for name in names.captures_iter(expression) {
                                    named.insert(name[1].to_owned());
                                }
                            }
                        }
                        if metric.first().and_then(|n| n.as_str())
                            == Some(shared::telemetry::NAMESPACE)
                        {
                            named.insert(metric[1].as_str().unwrap().to_owned());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    assert!(named.len() >= 10, "{named:?}");
    for name in &named {
        assert!(
            shared::telemetry::METRICS.contains(&name.as_str()),
            "{name} is read by template.yaml but never emitted"
        );
    }
}

#[test]
fn every_function_has_a_log_group_with_retention_and_the_api_logs_route_keys_not_paths() {
    let t = template();
    let resources = t["Resources"].as_hash().unwrap();
    let groups: Vec<String> = resources
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::Logs::LogGroup"))
        .inspect(|g| {
            assert!(
                !g["Properties"]["RetentionInDays"].is_badvalue(),
                "every log group has a retention"
            )
        })
        .filter_map(|g| g["Properties"]["LogGroupName"].as_str().map(str::to_owned))
        .collect();
    for (id, r) in resources {
        if r["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let id = id.as_str().unwrap();
        assert!(
            groups.contains(&format!("/aws/lambda/${{{id}}}")),
            "{id} has no log group of its own: {groups:?}"
        );
    }
    let access = &t["Resources"]["HttpApi"]["Properties"]["AccessLogSettings"];
    let format = access["Format"]
        .as_str()
        .expect("the HTTP API has an access log");
    let line: serde_json::Value = serde_json::from_str(format).expect("a JSON access log");
    assert_eq!(line["routeKey"], "$context.routeKey");
    // No raw path (a phone number is a path parameter) and no query string.
    for raw in [
        "$context.path",
        "$context.http.path",
        "$context.rawPath",
        "querystring",
    ] {
        assert!(!format.contains(raw), "{raw} in the access log");
    }
}

/// Each function's secret variables and `secretsmanager` grants, from the template.
fn function_secrets(function: &Yaml) -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let mut variables = BTreeSet::new();
    let mut referenced = BTreeSet::new();
    if let Some(vars) = function["Properties"]["Environment"]["Variables"].as_hash() {
        for (name, value) in vars {
            let name = name.as_str().unwrap();
            if name.ends_with("_SECRET_ID") {
                variables.insert(name.to_owned());
                referenced.insert(value.as_str().unwrap().to_owned());
            }
        }
    }
    let mut granted = BTreeSet::new();
    for policy in function["Properties"]["Policies"]
        .as_vec()
        .into_iter()
        .flatten()
    {
        for statement in policy["Statement"].as_vec().into_iter().flatten() {
            let actions: Vec<&str> = match &statement["Action"] {
                Yaml::Array(a) => a.iter().filter_map(Yaml::as_str).collect(),
                other => other.as_str().into_iter().collect(),
            };
            if actions.iter().any(|a| a.starts_with("secretsmanager:")) {
                assert_eq!(
                    actions,
                    ["secretsmanager:GetSecretValue"],
                    "secrets are only read"
                );
                let resource = statement["Resource"].as_str();
                granted.insert(resource.expect("one secret per statement").to_owned());
            }
        }
    }
    (variables, referenced, granted)
}

#[test]
fn every_function_names_and_may_read_exactly_the_secrets_its_code_requires() {
    let t = template();
    let globals = t["Globals"]["Function"]["Environment"]["Variables"]
        .as_hash()
        .unwrap();
    assert!(
        globals
            .keys()
            .all(|k| !k.as_str().unwrap().contains("SECRET")),
        "no secret is named for every function"
    );
    let mut seen = 0;
    for (id, function) in t["Resources"].as_hash().unwrap() {
        if function["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let id = id.as_str().unwrap();
        let binary = function["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap();
        let parts = shared::endpoints::ALL
            .iter()
            .find(|e| e.name == binary)
            .map_or(&[][..], |e| e.secrets);
        let expected: BTreeSet<String> = parts.iter().map(|p| p.variable().to_owned()).collect();
        let (variables, referenced, granted) = function_secrets(function);
        assert_eq!(variables, expected, "{id}: its secret variables");
        assert_eq!(
            granted, referenced,
            "{id}: it may read exactly the secrets it names"
        );
        for secret in &granted {
            assert_eq!(
                t["Resources"][secret.as_str()]["Type"].as_str(),
                Some("AWS::SecretsManager::Secret"),
                "{id}: {secret}"
            );
        }
        seen += 1;
    }
    assert!(seen >= 9, "every function was looked at");
    // status and the enrichment function read no secret at all.
    for id in ["StatusFunction", "VerificationEventsFunction"] {
        let (variables, _, granted) = function_secrets(&t["Resources"][id]);
        assert!(
            variables.is_empty() && granted.is_empty(),
            "{id} reads no secret"
        );
    }
}

#[test]
fn the_template_generates_every_key_and_keeps_each_purpose_in_its_own_secret() {
    let t = template();
    for (id, key) in [
        ("TokenKeySecret", "token_signing_key"),
        ("HashingKeySecret", "code_hashing_key"),
    ] {
        let generate = &t["Resources"][id]["Properties"]["GenerateSecretString"];
        assert_eq!(generate["GenerateStringKey"].as_str(), Some(key), "{id}");
        assert!(
            generate["PasswordLength"].as_i64().unwrap() >= 32,
            "{id}: at least the 32 characters the functions require"
        );
    }
    let secrets = t["Resources"]
        .as_hash()
        .unwrap()
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::SecretsManager::Secret"))
        .count();
    assert_eq!(secrets, shared::secrets::SecretPart::ALL.len());
}

fn number(node: &Yaml) -> i64 {
    node.as_i64()
        .or_else(|| node.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a number: {node:?}"))
}

#[test]
fn the_route_throttles_are_sized_from_the_peak_sends_and_what_each_send_brings() {
    let t = template();
    let tiers = t["Mappings"]["Capacity"].as_hash().unwrap();
    let allowed: BTreeSet<i64> = t["Parameters"]["PeakSendsPerSecond"]["AllowedValues"]
        .as_vec()
        .unwrap()
        .iter()
        .map(number)
        .collect();
    let keys: BTreeSet<i64> = tiers.keys().map(number).collect();
    assert_eq!(allowed, keys, "a tier for every allowed peak");
    for (peak, tier) in tiers {
        let peak = number(peak);
        let rate = |kind: &str| number(&tier[format!("{kind}Rate").as_str()]);
        let burst = |kind: &str| number(&tier[format!("{kind}Burst").as_str()]);
        assert_eq!(rate("Send"), peak);
        // A send is checked once or twice, and brings 3 callbacks (a flash call) or 2 or 3
        // (a message).
        assert!(rate("Check") >= 2 * peak, "{peak}");
        assert!(rate("Callback") >= 3 * peak, "{peak}");
        assert!(rate("Other") >= 100.max(5 * peak), "{peak}");
        for kind in ["Send", "Check", "Callback", "Other"] {
            assert!(burst(kind) >= rate(kind), "{peak} {kind}");
        }
    }
    let api = &t["Resources"]["HttpApi"]["Properties"];
    let sized = |node: &Yaml, kind: &str| {
        for (setting, suffix) in [
            ("ThrottlingRateLimit", "Rate"),
            ("ThrottlingBurstLimit", "Burst"),
        ] {
            let lookup = node[setting].as_vec().expect("a FindInMap");
            assert_eq!(lookup[0].as_str(), Some("Capacity"));
            assert_eq!(lookup[1].as_str(), Some("PeakSendsPerSecond"));
            assert_eq!(lookup[2].as_str(), Some(format!("{kind}{suffix}").as_str()));
        }
    };
    sized(&api["DefaultRouteSettings"], "Other");
    for (route, kind) in [
        ("POST /auth/request", "Send"),
        ("POST /sms/send", "Send"),
        ("POST /sms/verify/start", "Send"),
        ("POST /auth/verify", "Check"),
        ("POST /sms/verify/check", "Check"),
        ("POST /webhooks/twilio/voice", "Callback"),
        ("POST /webhooks/twilio/messages", "Callback"),
    ] {
        sized(&api["RouteSettings"][route], kind);
    }
    // Every route named there is one the API serves.
    let served: BTreeSet<String> = template_routes()
        .into_iter()
        .map(|(method, path, _)| format!("{method} {path}"))
        .collect();
    for (route, _) in api["RouteSettings"].as_hash().unwrap() {
        assert!(served.contains(route.as_str().unwrap()), "{route:?}");
    }
}

#[test]
fn every_api_function_reserves_concurrency_by_its_group_and_the_table_may_be_warmed() {
    let t = template();
    let mut groups = BTreeSet::new();
    for (id, resource) in t["Resources"].as_hash().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function")
            || resource["Properties"]["Events"].as_hash().is_none()
        {
            continue;
        }
        let reserved = resource["Properties"]["ReservedConcurrentExecutions"]
            .as_vec()
            .unwrap_or_else(|| panic!("{id:?} reserves no concurrency"));
        let (condition, parameter) = (reserved[0].as_str().unwrap(), reserved[1].as_str().unwrap());
        assert_eq!(reserved[2].as_str(), Some("AWS::NoValue"), "{id:?}");
        assert!(t["Conditions"][condition].as_vec().is_some(), "{condition}");
        assert_eq!(
            number(&t["Parameters"][parameter]["Default"]),
            0,
            "{parameter}: none by default"
        );
        groups.insert(parameter.to_owned());
    }
    assert_eq!(groups.len(), 3, "{groups:?}");
    let warm = &t["Resources"]["Table"]["Properties"]["WarmThroughput"];
    let warm = warm.as_vec().expect("an If");
    assert_eq!(warm[0].as_str(), Some("WarmsTable"));
    assert_eq!(
        warm[2].as_str(),
        Some("AWS::NoValue"),
        "not warmed by default"
    );
}
