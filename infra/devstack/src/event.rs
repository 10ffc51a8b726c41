//! API Gateway HTTP API (payload 2.0) events, built from plain request parts.

use std::collections::BTreeMap;

use base64::Engine;
use lambda_http::Request;
use serde_json::{Value, json};

/// What a request looks like to API Gateway before it becomes an event.
#[derive(Debug, Clone, Default)]
pub struct GatewayEvent {
    pub method: String,
    /// The path as sent, without the query string.
    pub path: String,
    pub raw_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub source_ip: String,
    /// `"POST /auth/request"`, the route as declared in `template.yaml`.
    pub route_key: String,
    pub path_parameters: BTreeMap<String, String>,
}

impl GatewayEvent {
    /// A request as API Gateway takes it, before routing: the method, path, query string,
    /// headers (those that are text), body and the socket's address as the source IP.
    pub fn from_http(
        parts: &hyper::http::request::Parts,
        body: Vec<u8>,
        source_ip: String,
    ) -> GatewayEvent {
        GatewayEvent {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            raw_query: parts.uri.query().unwrap_or("").to_owned(),
            headers: parts
                .headers
                .iter()
                .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_owned())))
                .collect(),
            body,
            source_ip,
            ..GatewayEvent::default()
        }
    }

    pub fn to_json(&self) -> Value {
        // API Gateway lowercases header names and joins repeated headers with commas.
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in &self.headers {
            headers
                .entry(name.to_ascii_lowercase())
                .and_modify(|v| {
                    v.push(',');
                    v.push_str(value);
                })
                .or_insert_with(|| value.clone());
        }
        let mut query: BTreeMap<String, String> = BTreeMap::new();
        for pair in self.raw_query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (decode(k), decode(v));
            query
                .entry(k)
                .and_modify(|e| {
                    e.push(',');
                    e.push_str(&v);
                })
                .or_insert(v);
        }
        let now = time::OffsetDateTime::now_utc();
        let mut event = json!({
            "version": "2.0",
            "routeKey": self.route_key,
            "rawPath": self.path,
            "rawQueryString": self.raw_query,
            "headers": headers,
            "requestContext": {
                "accountId": "000000000000",
                "apiId": "local",
                "domainName": headers.get("host").cloned().unwrap_or_else(|| "localhost".into()),
                "domainPrefix": "local",
                "http": {
                    "method": self.method,
                    "path": self.path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": self.source_ip,
                    "userAgent": headers.get("user-agent").cloned().unwrap_or_default(),
                },
                "requestId": uuid::Uuid::new_v4().to_string(),
                "routeKey": self.route_key,
                "stage": "$default",
                "time": now.to_string(),
                "timeEpoch": now.unix_timestamp() * 1000,
            },
            "isBase64Encoded": !self.body.is_empty(),
        });
        if !query.is_empty() {
            event["queryStringParameters"] = json!(query);
        }
        if !self.path_parameters.is_empty() {
            event["pathParameters"] = json!(self.path_parameters);
        }
        if !self.body.is_empty() {
            event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(&self.body));
        }
        event
    }
}

/// Decodes an event the way the Lambda runtime does.
pub fn gateway_request(event: &GatewayEvent) -> anyhow::Result<Request> {
    Ok(lambda_http::request::from_str(
        &event.to_json().to_string(),
    )?)
}

/// Percent-decoding of a query component (`+` is a space, as browsers send forms).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn query_components_are_percent_decoded() {
        assert_eq!(decode("a%2Bb+c"), "a+b c");
        assert_eq!(decode("%E2%9C%93"), "\u{2713}");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
    }
}
