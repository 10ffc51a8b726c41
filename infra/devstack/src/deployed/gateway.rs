//! The HTTP API as API Gateway serves it: routes from the template's `HttpApi` events (the most
//! specific first), each request turned into a payload 2.0 event for the route's function, and
//! the function's answer turned back into HTTP. No route is `404 {"message":"Not Found"}`; a
//! function that fails is `500 {"message":"Internal Server Error"}`, one that times out
//! `503 {"message":"Service Unavailable"}`, as API Gateway answers.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Response, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;

use super::instances::{Outcome, Pool};
use crate::event::GatewayEvent;

const MAX_PAYLOAD: usize = 10 * 1024 * 1024;

pub struct Gateway {
    pub pools: Vec<Arc<Pool>>,
}

/// The function that serves a request, the route key it matched and the path parameters.
type Routed = (Arc<Pool>, String, BTreeMap<String, String>);

impl Gateway {
    /// The pool and route that serve a request, the most specific route first.
    fn route(&self, method: &str, path: &str) -> Option<Routed> {
        let mut matches = Vec::new();
        for pool in &self.pools {
            for route in &pool.function.routes {
                if route.method != method && route.method != "ANY" {
                    continue;
                }
                if let Some(params) = route.match_path(path) {
                    matches.push((route.parameters(), pool.clone(), route.key(), params));
                }
            }
        }
        matches.sort_by_key(|m| m.0);
        let (_, pool, key, params) = matches.into_iter().next()?;
        Some((pool, key, params))
    }

    async fn handle(
        &self,
        req: hyper::Request<Incoming>,
        source_ip: String,
    ) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let Ok(body) = Limited::new(body, MAX_PAYLOAD).collect().await else {
            return message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
        };
        let Some((pool, route_key, path_parameters)) =
            self.route(parts.method.as_str(), parts.uri.path())
        else {
            return message(StatusCode::NOT_FOUND, "Not Found");
        };
        let event = GatewayEvent {
            route_key,
            path_parameters,
            ..GatewayEvent::from_http(&parts, body.to_bytes().to_vec(), source_ip)
        };
        let id = uuid::Uuid::new_v4().to_string();
        let payload = Bytes::from(event.to_json().to_string());
        match pool.invoke(id, payload).await {
            Outcome::Answered(answer) => from_lambda(&answer),
            Outcome::Failed(error) => {
                tracing::warn!(function = %pool.function.logical_id, "invocation failed: {error}");
                message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
            Outcome::TimedOut => {
                tracing::warn!(function = %pool.function.logical_id, "task timed out after {:?}", pool.function.timeout);
                message(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
            }
        }
    }
}

/// Serves the HTTP API until the returned task is aborted.
pub fn serve(listener: TcpListener, gateway: Arc<Gateway>) -> tokio::task::JoinHandle<()> {
    crate::loopback::serve(listener, move |req, peer| {
        let gateway = gateway.clone();
        async move { gateway.handle(req, peer.ip().to_string()).await }
    })
}

fn message(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "message": text }).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// A payload 2.0 answer (`statusCode`, `headers`, `multiValueHeaders`, `cookies`, `body`,
/// `isBase64Encoded`) as the HTTP response API Gateway sends. An answer that is not one is a 500.
fn from_lambda(answer: &[u8]) -> Response<Full<Bytes>> {
    let Ok(v) = serde_json::from_slice::<Value>(answer) else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    let status = v["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok());
    let Some(status) = status else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    let text = v["body"].as_str().unwrap_or_default();
    let body = if v["isBase64Encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap_or_default()
    } else {
        text.as_bytes().to_vec()
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in v["headers"].as_object().into_iter().flatten() {
        if let (Ok(name), Some(Ok(value))) = (
            name.parse::<hyper::header::HeaderName>(),
            value.as_str().map(str::parse::<hyper::header::HeaderValue>),
        ) {
            headers.insert(name, value);
        }
    }
    for (name, values) in v["multiValueHeaders"].as_object().into_iter().flatten() {
        for value in values.as_array().into_iter().flatten() {
            if let (Ok(name), Some(Ok(value))) = (
                name.parse::<hyper::header::HeaderName>(),
                value.as_str().map(str::parse::<hyper::header::HeaderValue>),
            ) {
                headers.append(name, value);
            }
        }
    }
    for cookie in v["cookies"].as_array().into_iter().flatten() {
        if let Some(Ok(value)) = cookie
            .as_str()
            .map(str::parse::<hyper::header::HeaderValue>)
        {
            headers.append(hyper::header::SET_COOKIE, value);
        }
    }
    response
}
