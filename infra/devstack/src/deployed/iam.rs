//! IAM, as far as the functions' calls need it: a call (action, resource, DynamoDB partition
//! keys) judged against a function's inline policy statements the way IAM judges it. An explicit
//! `Deny` wins, then any `Allow`; nothing else is allowed. Actions and resources match as IAM
//! globs (`*`, `?`; actions case-insensitively); conditions on `dynamodb:LeadingKeys` with
//! `StringLike`/`StringEquals`, under `ForAllValues:`/`ForAnyValue:` or single-valued, with
//! `...IfExists`. Any other condition key is unknown here, so a statement that needs it never
//! applies (an `Allow` then grants nothing: the conservative side).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::Value;

/// One AWS call as IAM sees it. A DynamoDB transaction or batch is one call per item (per
/// table for a batch), each judged on its own, as IAM does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Call {
    /// `dynamodb:PutItem`, `secretsmanager:GetSecretValue`.
    pub action: String,
    pub resource: String,
    /// The partition keys the call touches (`dynamodb:LeadingKeys`); `None` where the context
    /// key is absent (a Scan, a DescribeTable, any non-DynamoDB call).
    pub leading_keys: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone)]
pub struct Condition {
    /// `ForAllValues:StringLike`, `StringEquals`, ...
    pub operator: String,
    pub key: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Statement {
    pub effect: Effect,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    pub conditions: Vec<Condition>,
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

impl Statement {
    pub fn from_json(value: &Value) -> anyhow::Result<Statement> {
        for unsupported in ["NotAction", "NotResource", "NotPrincipal"] {
            if !value[unsupported].is_null() {
                bail!("{unsupported} is not modelled");
            }
        }
        let effect = match value["Effect"].as_str() {
            Some("Allow") => Effect::Allow,
            Some("Deny") => Effect::Deny,
            other => bail!("Effect {other:?}"),
        };
        let mut conditions = Vec::new();
        for (operator, keys) in value["Condition"].as_object().into_iter().flatten() {
            for (key, values) in keys
                .as_object()
                .context("a Condition maps keys to values")?
            {
                conditions.push(Condition {
                    operator: operator.clone(),
                    key: key.clone(),
                    values: strings(values),
                });
            }
        }
        Ok(Statement {
            effect,
            actions: strings(&value["Action"]),
            resources: strings(&value["Resource"]),
            conditions,
        })
    }

    fn applies(&self, call: &Call) -> bool {
        self.actions
            .iter()
            .any(|a| glob(&a.to_ascii_lowercase(), &call.action.to_ascii_lowercase()))
            && self.resources.iter().any(|r| glob(r, &call.resource))
            && self.conditions.iter().all(|c| c.holds(call))
    }
}

impl Condition {
    fn holds(&self, call: &Call) -> bool {
        if !self.key.eq_ignore_ascii_case("dynamodb:LeadingKeys") {
            return false;
        }
        let (set, operator) = match self.operator.split_once(':') {
            Some((set, op)) => (Some(set), op),
            None => (None, self.operator.as_str()),
        };
        let (operator, if_exists) = match operator.strip_suffix("IfExists") {
            Some(op) => (op, true),
            None => (operator, false),
        };
        let matches = |value: &str| -> Option<bool> {
            Some(match operator {
                "StringLike" => self.values.iter().any(|p| glob(p, value)),
                "StringEquals" => self.values.iter().any(|p| p == value),
                "StringNotLike" => !self.values.iter().any(|p| glob(p, value)),
                "StringNotEquals" => !self.values.iter().any(|p| p == value),
                _ => return None,
            })
        };
        let Some(keys) = &call.leading_keys else {
            // IAM: ForAllValues over an absent key is true; the rest false (or true IfExists).
            return set == Some("ForAllValues") || if_exists;
        };
        let results: Option<Vec<bool>> = keys.iter().map(|k| matches(k)).collect();
        let Some(results) = results else { return false };
        match set {
            Some("ForAllValues") => results.iter().all(|b| *b),
            Some("ForAnyValue") => results.iter().any(|b| *b),
            Some(_) => false,
            None => results.len() == 1 && results[0],
        }
    }
}

/// An IAM glob: `*` any run of characters, `?` any one.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Decision {
    Allowed,
    /// An explicit `Deny` statement applies.
    ExplicitlyDenied,
    /// No `Allow` applies.
    NotAllowed,
}

pub fn evaluate(statements: &[Statement], call: &Call) -> Decision {
    let applying: Vec<&Statement> = statements.iter().filter(|s| s.applies(call)).collect();
    if applying.iter().any(|s| s.effect == Effect::Deny) {
        Decision::ExplicitlyDenied
    } else if applying.iter().any(|s| s.effect == Effect::Allow) {
        Decision::Allowed
    } else {
        Decision::NotAllowed
    }
}

/// One grant of an `Allow` statement: an action pattern, and the key pattern it is granted for
/// (`None` when the statement does not restrict keys).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub statement: usize,
    pub action: String,
    pub key_pattern: Option<String>,
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key_pattern {
            Some(k) => write!(f, "{} on {k}", self.action),
            None => write!(f, "{}", self.action),
        }
    }
}

/// Every grant of the `Allow` statements.
pub fn grants(statements: &[Statement]) -> Vec<Grant> {
    let mut out = Vec::new();
    for (i, s) in statements.iter().enumerate() {
        if s.effect != Effect::Allow {
            continue;
        }
        let keys: Vec<String> = s
            .conditions
            .iter()
            .filter(|c| c.key.eq_ignore_ascii_case("dynamodb:LeadingKeys"))
            .flat_map(|c| c.values.clone())
            .collect();
        for action in &s.actions {
            if keys.is_empty() {
                out.push(Grant {
                    statement: i,
                    action: action.clone(),
                    key_pattern: None,
                });
            }
            for key in &keys {
                out.push(Grant {
                    statement: i,
                    action: action.clone(),
                    key_pattern: Some(key.clone()),
                });
            }
        }
    }
    out
}

/// Whether an allowed call used this grant.
pub fn uses(statements: &[Statement], grant: &Grant, call: &Call) -> bool {
    let s = &statements[grant.statement];
    if !s.applies(call)
        || !glob(
            &grant.action.to_ascii_lowercase(),
            &call.action.to_ascii_lowercase(),
        )
    {
        return false;
    }
    match (&grant.key_pattern, &call.leading_keys) {
        (None, _) => true,
        (Some(p), Some(keys)) => keys.iter().any(|k| glob(p, k)),
        (Some(_), None) => false,
    }
}

/// How the local stack names what a call touches.
pub struct Resources {
    pub region: String,
    pub account: String,
    /// Table name → its partition key, and its indexes' partition keys.
    pub tables: BTreeMap<String, (String, BTreeMap<String, String>)>,
}

impl Resources {
    fn table_arn(&self, table: &str) -> String {
        format!(
            "arn:aws:dynamodb:{}:{}:table/{table}",
            self.region, self.account
        )
    }

    fn hash_key(&self, table: &str, index: Option<&str>) -> String {
        let Some((key, indexes)) = self.tables.get(table) else {
            return "pk".into();
        };
        match index {
            Some(i) => indexes.get(i).cloned().unwrap_or_else(|| key.clone()),
            None => key.clone(),
        }
    }

    /// The calls IAM judges for one request of the AWS JSON protocol (`X-Amz-Target`).
    pub fn calls(&self, target: &str, body: &Value) -> anyhow::Result<Vec<Call>> {
        let (service, operation) = target.split_once('.').context("X-Amz-Target")?;
        if service.starts_with("DynamoDB") {
            self.dynamodb(operation, body)
        } else if service.eq_ignore_ascii_case("secretsmanager") {
            let secret = body["SecretId"].as_str().unwrap_or("*").to_owned();
            Ok(vec![Call {
                action: format!("secretsmanager:{operation}"),
                resource: secret,
                leading_keys: None,
            }])
        } else {
            bail!("{service} is not modelled")
        }
    }

    fn key_of(&self, table: &str, index: Option<&str>, item: &Value) -> Option<String> {
        let attr = self.hash_key(table, index);
        let v = &item[&attr];
        v["S"]
            .as_str()
            .or_else(|| v["N"].as_str())
            .map(str::to_owned)
    }

    fn dynamodb(&self, operation: &str, body: &Value) -> anyhow::Result<Vec<Call>> {
        let action = |op: &str| format!("dynamodb:{op}");
        let table = body["TableName"].as_str().unwrap_or_default();
        let single = |op: &str, item: &Value, table: &str| Call {
            action: action(op),
            resource: self.table_arn(table),
            leading_keys: Some(self.key_of(table, None, item).into_iter().collect()),
        };
        Ok(match operation {
            "GetItem" | "UpdateItem" | "DeleteItem" => vec![single(operation, &body["Key"], table)],
            "PutItem" => vec![single(operation, &body["Item"], table)],
            "TransactWriteItems" | "TransactGetItems" => {
                let mut calls = Vec::new();
                for item in body["TransactItems"].as_array().into_iter().flatten() {
                    let (op, inner, field) = if !item["Put"].is_null() {
                        ("PutItem", &item["Put"], "Item")
                    } else if !item["Update"].is_null() {
                        ("UpdateItem", &item["Update"], "Key")
                    } else if !item["Delete"].is_null() {
                        ("DeleteItem", &item["Delete"], "Key")
                    } else if !item["ConditionCheck"].is_null() {
                        ("ConditionCheckItem", &item["ConditionCheck"], "Key")
                    } else if !item["Get"].is_null() {
                        ("GetItem", &item["Get"], "Key")
                    } else {
                        bail!("a transaction item of no known kind")
                    };
                    let table = inner["TableName"].as_str().unwrap_or_default();
                    calls.push(single(op, &inner[field], table));
                }
                calls
            }
            "BatchGetItem" | "BatchWriteItem" => {
                let mut calls = Vec::new();
                for (table, request) in body["RequestItems"].as_object().into_iter().flatten() {
                    let items: Vec<&Value> = if operation == "BatchGetItem" {
                        request["Keys"].as_array().into_iter().flatten().collect()
                    } else {
                        request
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|r| {
                                if r["PutRequest"].is_null() {
                                    &r["DeleteRequest"]["Key"]
                                } else {
                                    &r["PutRequest"]["Item"]
                                }
                            })
                            .collect()
                    };
                    calls.push(Call {
                        action: action(operation),
                        resource: self.table_arn(table),
                        leading_keys: Some(
                            items
                                .iter()
                                .filter_map(|i| self.key_of(table, None, i))
                                .collect(),
                        ),
                    });
                }
                calls
            }
            "Query" => {
                let index = body["IndexName"].as_str();
                let resource = match index {
                    Some(i) => format!("{}/index/{i}", self.table_arn(table)),
                    None => self.table_arn(table),
                };
                let hash = self.hash_key(table, index);
                let key = query_partition(body, &hash);
                vec![Call {
                    action: action(operation),
                    resource,
                    leading_keys: Some(key.into_iter().collect()),
                }]
            }
            _ => {
                let resource = if table.is_empty() {
                    "*".to_owned()
                } else {
                    match body["IndexName"].as_str() {
                        Some(i) => format!("{}/index/{i}", self.table_arn(table)),
                        None => self.table_arn(table),
                    }
                };
                vec![Call {
                    action: action(operation),
                    resource,
                    leading_keys: None,
                }]
            }
        })
    }
}

/// The partition key value of a Query: `pk = :v` (or `#n = :v`) in its key condition.
fn query_partition(body: &Value, hash: &str) -> Option<String> {
    let expression = body["KeyConditionExpression"].as_str()?;
    for part in expression.split(" AND ").flat_map(|p| p.split(" and ")) {
        let part = part.trim().trim_start_matches('(').trim_end_matches(')');
        let Some((left, right)) = part.split_once('=') else {
            continue;
        };
        if left.ends_with(['<', '>', '!']) {
            continue;
        }
        let (left, right) = (left.trim(), right.trim());
        let name = if left.starts_with('#') {
            body["ExpressionAttributeNames"][left].as_str()?
        } else {
            left
        };
        if name == hash {
            let v = &body["ExpressionAttributeValues"][right];
            return v["S"]
                .as_str()
                .or_else(|| v["N"].as_str())
                .map(str::to_owned);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn statement(v: Value) -> Statement {
        Statement::from_json(&v).unwrap()
    }

    fn resources() -> Resources {
        Resources {
            region: "us-east-1".into(),
            account: "000000000000".into(),
            tables: [(
                "t".to_string(),
                (
                    "pk".to_string(),
                    [("gsi1".to_string(), "gsi1pk".to_string())].into(),
                ),
            )]
            .into(),
        }
    }

    const ARN: &str = "arn:aws:dynamodb:us-east-1:000000000000:table/t";

    #[test]
    fn globs_match_as_iam_does() {
        assert!(glob("SESSION#*", "SESSION#abc"));
        assert!(glob("LIMIT#flash-failures#*", "LIMIT#flash-failures#+1"));
        assert!(!glob("LIMIT#flash-failures#*", "LIMIT#ip#1"));
        assert!(glob("a?c", "abc"));
        assert!(glob("*", ""));
        assert!(!glob("POOL", "POOLS"));
    }

    #[test]
    fn every_item_of_a_transaction_is_judged_on_its_own() {
        let s = vec![statement(json!({
            "Effect": "Allow", "Action": ["dynamodb:PutItem", "dynamodb:UpdateItem"], "Resource": ARN,
            "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["SESSION#*"]}}
        }))];
        let calls = resources()
            .calls(
                "DynamoDB_20120810.TransactWriteItems",
                &json!({"TransactItems": [
                    {"Put": {"TableName": "t", "Item": {"pk": {"S": "SESSION#1"}}}},
                    {"Update": {"TableName": "t", "Key": {"pk": {"S": "LIMIT#x"}}}},
                    {"ConditionCheck": {"TableName": "t", "Key": {"pk": {"S": "SESSION#2"}}}}
                ]}),
            )
            .unwrap();
        let decisions: Vec<Decision> = calls.iter().map(|c| evaluate(&s, c)).collect();
        assert_eq!(
            decisions,
            [
                Decision::Allowed,
                Decision::NotAllowed,
                Decision::NotAllowed
            ]
        );
    }

    #[test]
    fn a_query_is_judged_on_its_index_and_partition() {
        let s = vec![statement(json!({
            "Effect": "Allow", "Action": "dynamodb:Query", "Resource": format!("{ARN}/index/gsi1"),
            "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["HISTORY#*"]}}
        }))];
        let query = |key: &str, index: Option<&str>| {
            let mut body = json!({"TableName": "t", "KeyConditionExpression": "#p = :p AND gsi1sk > :s",
                "ExpressionAttributeNames": {"#p": if index.is_some() {"gsi1pk"} else {"pk"}},
                "ExpressionAttributeValues": {":p": {"S": key}, ":s": {"S": ""}}});
            if let Some(i) = index {
                body["IndexName"] = json!(i);
            }
            resources()
                .calls("DynamoDB_20120810.Query", &body)
                .unwrap()
                .remove(0)
        };
        assert_eq!(
            evaluate(&s, &query("HISTORY#+1", Some("gsi1"))),
            Decision::Allowed
        );
        assert_eq!(
            evaluate(&s, &query("PHONE#+1", Some("gsi1"))),
            Decision::NotAllowed
        );
        assert_eq!(
            evaluate(&s, &query("HISTORY#+1", None)),
            Decision::NotAllowed
        );
    }

    #[test]
    fn a_deny_wins_and_unknown_condition_keys_grant_nothing() {
        let allow = json!({"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"});
        let deny = json!({"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": "*"});
        let call = Call {
            action: "dynamodb:DeleteItem".into(),
            resource: ARN.into(),
            leading_keys: Some(vec!["X".into()]),
        };
        assert_eq!(
            evaluate(&[statement(allow.clone()), statement(deny)], &call),
            Decision::ExplicitlyDenied
        );
        assert_eq!(evaluate(&[statement(allow)], &call), Decision::Allowed);
        let unknown = json!({"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceVpc": "vpc-1"}}});
        assert_eq!(evaluate(&[statement(unknown)], &call), Decision::NotAllowed);
    }

    #[test]
    fn grants_are_used_only_by_the_calls_they_allow() {
        let s = vec![statement(json!({
            "Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:DeleteItem"], "Resource": ARN,
            "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["A#*", "B#*"]}}
        }))];
        let all = grants(&s);
        assert_eq!(all.len(), 4);
        let call = Call {
            action: "dynamodb:GetItem".into(),
            resource: ARN.into(),
            leading_keys: Some(vec!["A#1".into()]),
        };
        let used: Vec<String> = all
            .iter()
            .filter(|g| uses(&s, g, &call))
            .map(|g| g.to_string())
            .collect();
        assert_eq!(used, ["dynamodb:GetItem on A#*"]);
    }
}
