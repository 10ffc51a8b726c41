//! `template.yaml` read as CloudFormation reads it: the short-form intrinsics (`!Ref`, `!GetAtt`,
//! `!Sub`, `!If`, ...) kept as their long forms, parameters at their defaults or overridden as
//! `sam deploy --parameter-overrides` takes them, conditions evaluated, and every value a function
//! is given resolved against the local stack (the table, the secrets, the region).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use super::iam::Statement;

/// The local account: what `AWS::AccountId` is, and the account of every ARN.
pub const ACCOUNT: &str = "000000000000";

/// A template, parsed into CloudFormation's JSON form.
pub struct Template {
    pub doc: Value,
    /// The text, for the comments that say why a grant stays.
    pub text: String,
}

/// The template's resources the local stack stands in for, each with the variable that names
/// it locally (`infra/stack.sh` exports them).
pub const LOCAL_RESOURCES: [(&str, &str); 5] = [
    ("Table", "TABLE_NAME"),
    ("TwilioSecret", "TWILIO_SECRET_ID"),
    ("TokenKeySecret", "TOKEN_KEY_SECRET_ID"),
    ("HashingKeySecret", "HASHING_KEY_SECRET_ID"),
    ("ClientsSecret", "CLIENTS_SECRET_ID"),
];

/// The local names of [`LOCAL_RESOURCES`] that the environment sets.
pub fn local_resources_from_env() -> BTreeMap<String, String> {
    LOCAL_RESOURCES
        .iter()
        .filter_map(|(id, var)| Some((id.to_string(), std::env::var(var).ok()?)))
        .collect()
}

/// How the local stack stands in for the template's resources.
#[derive(Debug, Clone, Default)]
pub struct Locals {
    /// `--parameter-overrides`.
    pub parameters: BTreeMap<String, String>,
    /// The local name of a resource (`Table=phone-verification`, `TwilioSecret=phone-verification/twilio`):
    /// what `!Ref` gives for it.
    pub resources: BTreeMap<String, String>,
    pub region: String,
}

/// A route of the HTTP API: `POST /auth/request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: String,
    pub path: String,
}

impl Route {
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The path parameters when `path` matches this route (as the local API matches).
    pub fn match_path(&self, path: &str) -> Option<BTreeMap<String, String>> {
        shared::http::match_path(&self.path, path)
    }

    /// Parameters make a route less specific: API Gateway prefers `/sms/send` to `/sms/{id}`.
    pub fn parameters(&self) -> usize {
        self.path.matches('{').count()
    }
}

/// One `AWS::Serverless::Function` as `sam deploy` would create it.
#[derive(Debug, Clone)]
pub struct Function {
    pub logical_id: String,
    /// `Metadata.BuildProperties.Binary`: the cargo-lambda binary.
    pub binary: String,
    /// `Globals.Function.Environment` with its own on top, resolved.
    pub environment: BTreeMap<String, String>,
    pub timeout: Duration,
    pub memory_mb: u64,
    /// `LoggingConfig`: the log format and level Lambda hands the runtime.
    pub log_format: Option<String>,
    pub log_level: Option<String>,
    pub routes: Vec<Route>,
    /// Its inline policy statements, resolved.
    pub statements: Vec<Statement>,
    /// Policies the evaluator does not model (managed policies, SAM policy templates).
    pub unmodeled_policies: Vec<String>,
}

/// A table of the template: its local name and the partition key of it and of its indexes.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub hash_key: String,
    pub index_hash_keys: BTreeMap<String, String>,
}

impl Template {
    pub fn load(path: &Path) -> anyhow::Result<Template> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        Template::parse(&text)
    }

    pub fn parse(text: &str) -> anyhow::Result<Template> {
        let mut builder = Builder::default();
        Parser::new_from_str(text)
            .load(&mut builder, false)
            .context("template is not valid YAML")?;
        let doc = builder.root.context("template is empty")?;
        if !doc.is_object() {
            bail!("template is not a mapping");
        }
        Ok(Template {
            doc,
            text: text.to_owned(),
        })
    }

    fn resources(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.doc["Resources"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.iter())
    }

    /// The functions served by the HTTP API (those with an `HttpApi` event), resolved.
    pub fn functions(&self, locals: &Locals) -> anyhow::Result<Vec<Function>> {
        let resolver = Resolver::new(self, locals)?;
        let globals = &self.doc["Globals"]["Function"];
        let mut functions = Vec::new();
        for (id, resource) in self.resources() {
            if resource["Type"] != "AWS::Serverless::Function" || !resolver.included(resource)? {
                continue;
            }
            let props = &resource["Properties"];
            let routes = http_api_routes(props, &resolver)
                .with_context(|| format!("{id}: its HttpApi events"))?;
            if routes.is_empty() {
                continue;
            }
            let binary = resource["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .with_context(|| format!("{id}: no Metadata.BuildProperties.Binary"))?
                .to_owned();
            let mut environment = BTreeMap::new();
            for scope in [globals, props] {
                if let Some(vars) = scope["Environment"]["Variables"].as_object() {
                    for (name, value) in vars {
                        if let Some(value) = resolver.resolve(value)? {
                            environment.insert(name.clone(), scalar(&value)?);
                        }
                    }
                }
            }
            let setting = |name: &str| -> anyhow::Result<Option<String>> {
                let value = if props[name].is_null() {
                    &globals[name]
                } else {
                    &props[name]
                };
                resolver
                    .resolve(value)?
                    .filter(|v| !v.is_null())
                    .map(|v| scalar(&v))
                    .transpose()
            };
            let timeout: u64 = setting("Timeout")?.as_deref().unwrap_or("3").parse()?;
            let memory_mb: u64 = setting("MemorySize")?.as_deref().unwrap_or("128").parse()?;
            let logging = if props["LoggingConfig"].is_null() {
                &globals["LoggingConfig"]
            } else {
                &props["LoggingConfig"]
            };
            let logging = resolver.resolve(logging)?.unwrap_or(Value::Null);
            let (statements, unmodeled_policies) =
                policies(props, &resolver).with_context(|| format!("{id}: its Policies"))?;
            functions.push(Function {
                logical_id: id.clone(),
                binary,
                environment,
                timeout: Duration::from_secs(timeout),
                memory_mb,
                log_format: logging["LogFormat"].as_str().map(str::to_owned),
                log_level: logging["ApplicationLogLevel"].as_str().map(str::to_owned),
                routes,
                statements,
                unmodeled_policies,
            });
        }
        Ok(functions)
    }

    /// The tables of the template, by logical id.
    pub fn tables(&self, locals: &Locals) -> anyhow::Result<BTreeMap<String, Table>> {
        let resolver = Resolver::new(self, locals)?;
        let mut tables = BTreeMap::new();
        for (id, resource) in self.resources() {
            if resource["Type"] != "AWS::DynamoDB::Table" {
                continue;
            }
            let hash = |schema: &Value| -> Option<String> {
                schema.as_array()?.iter().find_map(|k| {
                    (k["KeyType"] == "HASH")
                        .then(|| k["AttributeName"].as_str().map(str::to_owned))?
                })
            };
            let props = &resource["Properties"];
            let mut index_hash_keys = BTreeMap::new();
            for gsi in props["GlobalSecondaryIndexes"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(
                    props["LocalSecondaryIndexes"]
                        .as_array()
                        .into_iter()
                        .flatten(),
                )
            {
                if let (Some(name), Some(key)) =
                    (gsi["IndexName"].as_str(), hash(&gsi["KeySchema"]))
                {
                    index_hash_keys.insert(name.to_owned(), key);
                }
            }
            tables.insert(
                id.clone(),
                Table {
                    name: resolver.local_name(id),
                    hash_key: hash(&props["KeySchema"]).unwrap_or_else(|| "pk".into()),
                    index_hash_keys,
                },
            );
        }
        Ok(tables)
    }

    /// The lines of a resource's block in the text (for the comments that keep a grant).
    pub fn resource_text(&self, logical_id: &str) -> String {
        let header = format!("  {logical_id}:");
        let mut lines = self.text.lines().skip_while(|l| l.trim_end() != header);
        let mut block = String::new();
        if let Some(first) = lines.next() {
            block.push_str(first);
            block.push('\n');
        }
        for line in lines {
            let indented = line.starts_with("   ") || line.trim().is_empty();
            if !indented {
                break;
            }
            block.push_str(line);
            block.push('\n');
        }
        block
    }
}

fn http_api_routes(props: &Value, resolver: &Resolver) -> anyhow::Result<Vec<Route>> {
    let mut routes = Vec::new();
    for event in props["Events"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        if event["Type"] != "HttpApi" {
            continue;
        }
        let p = resolver
            .resolve(&event["Properties"])?
            .unwrap_or(Value::Null);
        let method = p["Method"].as_str().unwrap_or("ANY").to_ascii_uppercase();
        let path = p["Path"].as_str().unwrap_or("$default").to_owned();
        routes.push(Route { method, path });
    }
    Ok(routes)
}

fn policies(props: &Value, resolver: &Resolver) -> anyhow::Result<(Vec<Statement>, Vec<String>)> {
    let mut statements = Vec::new();
    let mut unmodeled = Vec::new();
    let list = match &props["Policies"] {
        Value::Null => Vec::new(),
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    for policy in list {
        let policy = resolver.resolve(&policy)?.unwrap_or(Value::Null);
        match policy["Statement"].as_array() {
            Some(list) => {
                for s in list {
                    statements.push(Statement::from_json(s)?);
                }
            }
            None => unmodeled.push(policy.to_string()),
        }
    }
    Ok((statements, unmodeled))
}

/// A scalar as the string an environment variable holds.
fn scalar(value: &Value) -> anyhow::Result<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => bail!("{other} is not a scalar"),
    }
}

/// Resolves intrinsic functions against parameters, conditions and the local resources.
pub struct Resolver<'a> {
    template: &'a Template,
    locals: &'a Locals,
    parameters: BTreeMap<String, String>,
    conditions: BTreeMap<String, bool>,
}

impl<'a> Resolver<'a> {
    pub fn new(template: &'a Template, locals: &'a Locals) -> anyhow::Result<Resolver<'a>> {
        let mut parameters = BTreeMap::new();
        for (name, spec) in template.doc["Parameters"].as_object().into_iter().flatten() {
            let value = match locals.parameters.get(name) {
                Some(v) => v.clone(),
                None => match &spec["Default"] {
                    Value::Null => bail!(
                        "parameter {name} has no default: give it as --parameter-overrides {name}=VALUE"
                    ),
                    v => scalar(v)?,
                },
            };
            // CloudFormation's own checks of a parameter, as `sam deploy` meets them.
            if let Some(pattern) = spec["AllowedPattern"].as_str() {
                let whole = regex::Regex::new(&format!("^(?:{pattern})$"))
                    .with_context(|| format!("parameter {name}: AllowedPattern"))?;
                if !whole.is_match(&value) {
                    bail!("parameter {name}={value} does not match its AllowedPattern {pattern}");
                }
            }
            if spec["Type"] == "Number" {
                let n: f64 = value
                    .parse()
                    .with_context(|| format!("parameter {name}={value} is not a number"))?;
                for (bound, below) in [("MinValue", true), ("MaxValue", false)] {
                    if let Some(b) = spec[bound].as_str().and_then(|b| b.parse::<f64>().ok())
                        && ((below && n < b) || (!below && n > b))
                    {
                        bail!("parameter {name}={value} is outside its {bound} {b}");
                    }
                }
            }
            if let Some(allowed) = spec["AllowedValues"].as_array() {
                let allowed: Vec<String> = allowed.iter().filter_map(|v| scalar(v).ok()).collect();
                if !allowed.contains(&value) {
                    bail!("parameter {name}={value} is not one of {allowed:?}");
                }
            }
            parameters.insert(name.clone(), value);
        }
        for name in locals.parameters.keys() {
            if !parameters.contains_key(name) {
                bail!("--parameter-overrides {name}: the template has no such parameter");
            }
        }
        let mut resolver = Resolver {
            template,
            locals,
            parameters,
            conditions: BTreeMap::new(),
        };
        // Conditions may name earlier ones; resolve until none is left (CloudFormation forbids
        // cycles).
        let defined: Vec<(String, Value)> = template.doc["Conditions"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for _ in 0..=defined.len() {
            for (name, body) in &defined {
                if resolver.conditions.contains_key(name) {
                    continue;
                }
                if let Ok(Some(Value::Bool(b))) = resolver.resolve(body) {
                    resolver.conditions.insert(name.clone(), b);
                }
            }
        }
        if let Some((name, _)) = defined
            .iter()
            .find(|(n, _)| !resolver.conditions.contains_key(n))
        {
            bail!("condition {name} does not resolve to true or false");
        }
        Ok(resolver)
    }

    /// Whether a resource's `Condition` (if any) holds.
    pub fn included(&self, resource: &Value) -> anyhow::Result<bool> {
        match resource["Condition"].as_str() {
            None => Ok(true),
            Some(name) => self
                .conditions
                .get(name)
                .copied()
                .with_context(|| format!("no condition {name}")),
        }
    }

    /// The local name of a resource: given, or made up from its logical id.
    pub fn local_name(&self, id: &str) -> String {
        self.locals
            .resources
            .get(id)
            .cloned()
            .unwrap_or_else(|| format!("local-{id}"))
    }

    fn arn(&self, service: &str, rest: &str) -> String {
        format!("arn:aws:{service}:{}:{ACCOUNT}:{rest}", self.locals.region)
    }

    fn reference(&self, name: &str) -> anyhow::Result<Option<Value>> {
        Ok(Some(Value::String(match name {
            "AWS::Region" => self.locals.region.clone(),
            "AWS::AccountId" => ACCOUNT.into(),
            "AWS::Partition" => "aws".into(),
            "AWS::StackName" => "local".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            "AWS::NoValue" => return Ok(None),
            name => match self.parameters.get(name) {
                Some(v) => v.clone(),
                None => {
                    let resource = &self.template.doc["Resources"][name];
                    if resource.is_null() {
                        bail!("!Ref {name}: no such parameter or resource");
                    }
                    match resource["Type"].as_str() {
                        // `!Ref` of a function is its name, of a secret its ARN: locally the
                        // secret's id (what Secrets Manager takes and the policy names).
                        Some("AWS::Serverless::Function") => name.to_owned(),
                        _ => self.local_name(name),
                    }
                }
            },
        })))
    }

    fn attribute(&self, resource: &str, attribute: &str) -> anyhow::Result<String> {
        let r = &self.template.doc["Resources"][resource];
        let kind = r["Type"]
            .as_str()
            .with_context(|| format!("!GetAtt {resource}.{attribute}: no such resource"))?;
        let name = self.local_name(resource);
        Ok(match (kind, attribute) {
            ("AWS::DynamoDB::Table", "Arn") => self.arn("dynamodb", &format!("table/{name}")),
            ("AWS::DynamoDB::Table", "StreamArn") => {
                self.arn("dynamodb", &format!("table/{name}/stream/local"))
            }
            ("AWS::Serverless::Function", "Arn") => {
                self.arn("lambda", &format!("function:{resource}"))
            }
            ("AWS::IAM::Role", "Arn") => format!("arn:aws:iam::{ACCOUNT}:role/{resource}"),
            (_, "Arn") => self.arn("local", &name),
            _ => format!("{name}.{attribute}"),
        })
    }

    fn substitute(&self, text: &str, vars: &Map<String, Value>) -> anyhow::Result<String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            if let Some(literal) = after.strip_prefix('!') {
                out.push_str("${");
                rest = literal;
                continue;
            }
            let end = after.find('}').context("!Sub: an unclosed ${")?;
            let name = &after[..end];
            let value = match vars.get(name) {
                Some(v) => scalar(&self.resolve(v)?.unwrap_or(Value::Null))?,
                None => match name.split_once('.') {
                    Some((r, a)) if !name.starts_with("AWS::") => self.attribute(r, a)?,
                    _ => scalar(&self.reference(name)?.unwrap_or_default())?,
                },
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// A value with every intrinsic function resolved; `None` for `AWS::NoValue`.
    pub fn resolve(&self, value: &Value) -> anyhow::Result<Option<Value>> {
        let Value::Object(map) = value else {
            return Ok(Some(match value {
                Value::Array(items) => Value::Array(
                    items
                        .iter()
                        .map(|v| self.resolve(v))
                        .collect::<anyhow::Result<Vec<_>>>()?
                        .into_iter()
                        .flatten()
                        .collect(),
                ),
                v => v.clone(),
            }));
        };
        if map.len() == 1 {
            let (name, arg) = map.iter().next().expect("one entry");
            let args = || -> anyhow::Result<Vec<Value>> {
                match self.resolve(arg)? {
                    Some(Value::Array(a)) => Ok(a),
                    _ => bail!("{name} takes a list"),
                }
            };
            let truth = |v: &Value| -> anyhow::Result<bool> {
                match v {
                    Value::Bool(b) => Ok(*b),
                    Value::String(s) if s == "true" || s == "false" => Ok(s == "true"),
                    other => bail!("{other} is not true or false"),
                }
            };
            match name.as_str() {
                "Ref" => return self.reference(arg.as_str().context("!Ref takes a name")?),
                "Fn::GetAtt" => {
                    let (r, a) = match arg {
                        Value::String(s) => {
                            s.split_once('.').context("!GetAtt Resource.Attribute")?
                        }
                        Value::Array(a) if a.len() == 2 => (
                            a[0].as_str().context("!GetAtt")?,
                            a[1].as_str().context("!GetAtt")?,
                        ),
                        _ => bail!("!GetAtt takes Resource.Attribute"),
                    };
                    return Ok(Some(Value::String(self.attribute(r, a)?)));
                }
                "Fn::Sub" => {
                    return Ok(Some(Value::String(match arg {
                        Value::String(s) => self.substitute(s, &Map::new())?,
                        Value::Array(a) if a.len() == 2 => self.substitute(
                            a[0].as_str().context("!Sub")?,
                            a[1].as_object().context("!Sub")?,
                        )?,
                        _ => bail!("!Sub takes a string"),
                    })));
                }
                "Fn::Join" => {
                    let a = args()?;
                    let sep = a.first().and_then(Value::as_str).context("!Join")?;
                    let parts = a.get(1).and_then(Value::as_array).context("!Join")?;
                    let parts: Vec<String> = parts.iter().map(scalar).collect::<Result<_, _>>()?;
                    return Ok(Some(Value::String(parts.join(sep))));
                }
                "Fn::Split" => {
                    let a = args()?;
                    let sep = a.first().and_then(Value::as_str).context("!Split")?;
                    let text = a.get(1).and_then(Value::as_str).context("!Split")?;
                    return Ok(Some(json!(text.split(sep).collect::<Vec<_>>())));
                }
                "Fn::Select" => {
                    let a = args()?;
                    let i: usize = scalar(a.first().context("!Select")?)?.parse()?;
                    let list = a.get(1).and_then(Value::as_array).context("!Select")?;
                    return Ok(list.get(i).cloned());
                }
                "Fn::Equals" => {
                    let a = args()?;
                    return Ok(Some(Value::Bool(
                        a.len() == 2 && scalar(&a[0])? == scalar(&a[1])?,
                    )));
                }
                "Fn::Not" => {
                    let a = args()?;
                    return Ok(Some(Value::Bool(!truth(a.first().context("!Not")?)?)));
                }
                "Fn::And" | "Fn::Or" => {
                    let a = args()?;
                    let values: Vec<bool> = a.iter().map(truth).collect::<Result<_, _>>()?;
                    return Ok(Some(Value::Bool(if name == "Fn::And" {
                        values.iter().all(|b| *b)
                    } else {
                        values.iter().any(|b| *b)
                    })));
                }
                "Condition" => {
                    let c = arg.as_str().context("Condition takes a name")?;
                    return Ok(Some(Value::Bool(
                        *self
                            .conditions
                            .get(c)
                            .with_context(|| format!("no condition {c}"))?,
                    )));
                }
                "Fn::If" => {
                    let a = arg
                        .as_array()
                        .filter(|a| a.len() == 3)
                        .context("!If takes three")?;
                    let c = a[0].as_str().context("!If names a condition")?;
                    let holds = *self
                        .conditions
                        .get(c)
                        .with_context(|| format!("no condition {c}"))?;
                    return self.resolve(&a[if holds { 1 } else { 2 }]);
                }
                _ => {}
            }
        }
        let mut out = Map::new();
        for (k, v) in map {
            if let Some(v) = self.resolve(v)? {
                out.insert(k.clone(), v);
            }
        }
        Ok(Some(Value::Object(out)))
    }
}

/// Builds CloudFormation's JSON form from YAML events: a tagged node `!Ref X` becomes
/// `{"Ref": "X"}`, `!GetAtt A.B` becomes `{"Fn::GetAtt": "A.B"}`, any other `!Name v` becomes
/// `{"Fn::Name": v}`. Scalars stay strings (CloudFormation's values are strings).
#[derive(Default)]
struct Builder {
    stack: Vec<(Value, Option<String>, Option<String>)>,
    root: Option<Value>,
}

fn intrinsic(tag: Option<&yaml_rust2::parser::Tag>) -> Option<String> {
    let tag = tag?;
    if tag.handle != "!" {
        return None;
    }
    Some(match tag.suffix.as_str() {
        "Ref" | "Condition" => tag.suffix.clone(),
        other => format!("Fn::{other}"),
    })
}

fn wrap(value: Value, tag: Option<String>) -> Value {
    match tag {
        Some(name) => json!({ name: value }),
        None => value,
    }
}

impl Builder {
    fn push_value(&mut self, value: Value) {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some((Value::Array(items), _, _)) => items.push(value),
            Some((Value::Object(map), _, pending)) => match pending.take() {
                None => *pending = Some(value.as_str().map(str::to_owned).unwrap_or_default()),
                Some(key) => {
                    map.insert(key, value);
                }
            },
            Some(_) => {}
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, _mark: Marker) {
        match event {
            Event::Scalar(text, _, _, tag) => {
                let value = wrap(Value::String(text), intrinsic(tag.as_ref()));
                self.push_value(value);
            }
            Event::SequenceStart(_, tag) => {
                self.stack
                    .push((Value::Array(Vec::new()), intrinsic(tag.as_ref()), None));
            }
            Event::MappingStart(_, tag) => {
                self.stack
                    .push((Value::Object(Map::new()), intrinsic(tag.as_ref()), None));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((value, tag, _)) = self.stack.pop() {
                    self.push_value(wrap(value, tag));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Parameters:
  Size:
    Type: Number
    Default: 5
  Needed:
    Type: String
Conditions:
  Big: !Not [!Equals [!Ref Size, "1"]]
Globals:
  Function:
    Timeout: 10
    Environment:
      Variables:
        TABLE_NAME: !Ref Table
        SIZE: !Ref Size
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      KeySchema:
        - AttributeName: pk
          KeyType: HASH
  Fn:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: fn
    Properties:
      Timeout: 15
      Environment:
        Variables:
          NEEDED: !Ref Needed
          SUB: !Sub "${Table.Arn}/index/*"
          MAYBE: !If [Big, big, !Ref AWS::NoValue]
      Events:
        Get:
          Type: HttpApi
          Properties:
            Method: get
            Path: /things/{id}
      Policies:
        - Statement:
            - Effect: Allow
              Action: [dynamodb:GetItem]
              Resource: !GetAtt Table.Arn
"#;

    fn locals(overrides: &[(&str, &str)]) -> Locals {
        Locals {
            parameters: overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            resources: [("Table".to_string(), "t".to_string())].into(),
            region: "us-east-1".into(),
        }
    }

    #[test]
    fn functions_get_the_environment_the_template_gives_them() {
        let t = Template::parse(TEMPLATE).unwrap();
        let f = &t.functions(&locals(&[("Needed", "x")])).unwrap()[0];
        assert_eq!(f.binary, "fn");
        assert_eq!(f.timeout, Duration::from_secs(15));
        assert_eq!(f.environment["TABLE_NAME"], "t");
        assert_eq!(f.environment["SIZE"], "5");
        assert_eq!(f.environment["NEEDED"], "x");
        assert_eq!(
            f.environment["SUB"],
            "arn:aws:dynamodb:us-east-1:000000000000:table/t/index/*"
        );
        assert_eq!(f.environment["MAYBE"], "big");
        assert_eq!(f.routes[0].key(), "GET /things/{id}");
        assert_eq!(f.statements.len(), 1);

        let f = &t
            .functions(&locals(&[("Needed", "x"), ("Size", "1")]))
            .unwrap()[0];
        assert!(!f.environment.contains_key("MAYBE"));
    }

    #[test]
    fn a_parameter_without_default_or_an_unknown_one_is_refused_as_sam_deploy_does() {
        let t = Template::parse(TEMPLATE).unwrap();
        let e = t.functions(&locals(&[])).err().unwrap().to_string();
        assert!(e.contains("Needed"), "{e}");
        let e = t
            .functions(&locals(&[("Needed", "x"), ("Nope", "1")]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("Nope"), "{e}");
    }

    #[test]
    fn routes_match_paths_as_api_gateway_does() {
        let r = Route {
            method: "GET".into(),
            path: "/calls/history/{phone_number}/stats".into(),
        };
        assert_eq!(
            r.match_path("/calls/history/%2B1415/stats").unwrap()["phone_number"],
            "%2B1415"
        );
        assert!(r.match_path("/calls/history//stats").is_none());
        assert!(r.match_path("/calls/history/1/stats/x").is_none());
        assert!(r.match_path("/calls/history/1").is_none());
    }
}
