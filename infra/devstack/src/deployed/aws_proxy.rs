//! Each function's way to AWS: a proxy on loopback that its `AWS_ENDPOINT_URL_DYNAMODB` and
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER` point at. Every call is recorded, judged against the
//! function's policy statements and, when IAM would deny it, answered as AWS answers
//! (`AccessDeniedException`) without reaching the local stack.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::iam::{Call, Decision, Resources, Statement, evaluate};
use super::template::Function;

/// A call a function made, and what IAM made of it.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub function: String,
    /// The operation as sent (`DynamoDB_20120810.TransactWriteItems`).
    pub operation: String,
    pub call: Call,
    pub decision: Decision,
}

/// Every call of every function, in order.
#[derive(Clone, Default)]
pub struct CallLog(Arc<Mutex<Vec<Recorded>>>);

impl CallLog {
    pub fn all(&self) -> Vec<Recorded> {
        self.0.lock().expect("call log").clone()
    }

    fn push(&self, records: Vec<Recorded>) {
        self.0.lock().expect("call log").extend(records);
    }
}

/// Where the real (local) services are.
#[derive(Clone)]
pub struct Upstreams {
    pub dynamodb: String,
    pub secrets_manager: String,
}

/// What every function's proxy shares: how calls are read, where they go, the log, and one
/// HTTP client.
pub struct Shared {
    pub resources: Resources,
    pub upstreams: Upstreams,
    pub log: CallLog,
    /// Deny what IAM would deny (true), or only record it.
    pub enforce: bool,
    pub client: reqwest::Client,
}

struct Proxy {
    function: String,
    statements: Vec<Statement>,
    shared: Arc<Shared>,
}

/// Starts a function's proxy; its address is the function's AWS endpoint. It serves until the
/// returned task is aborted.
pub async fn start(
    function: &Function,
    shared: Arc<Shared>,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let proxy = Arc::new(Proxy {
        function: function.logical_id.clone(),
        statements: function.statements.clone(),
        shared,
    });
    let server = crate::loopback::serve(listener, move |req, _| {
        let proxy = proxy.clone();
        async move { proxy.handle(req).await }
    });
    Ok((addr, server))
}

impl Proxy {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let calls = match self.shared.resources.calls(&target, &json) {
            Ok(calls) => calls,
            Err(e) => {
                tracing::warn!(function = %self.function, %target, "an AWS call the evaluator cannot read: {e}");
                vec![Call {
                    action: target.clone(),
                    resource: "*".into(),
                    leading_keys: None,
                }]
            }
        };
        let records: Vec<Recorded> = calls
            .into_iter()
            .map(|call| Recorded {
                function: self.function.clone(),
                operation: target.clone(),
                decision: evaluate(&self.statements, &call),
                call,
            })
            .collect();
        let denied = records
            .iter()
            .find(|r| r.decision != Decision::Allowed)
            .cloned();
        self.shared.log.push(records);
        if let (Some(denied), true) = (denied, self.shared.enforce) {
            return access_denied(&self.function, &target, &denied.call);
        }
        let upstream = if target.starts_with("DynamoDB") {
            &self.shared.upstreams.dynamodb
        } else {
            &self.shared.upstreams.secrets_manager
        };
        let url = format!(
            "{}{}",
            upstream.trim_end_matches('/'),
            parts.uri.path_and_query().map_or("/", |p| p.as_str())
        );
        let mut forward = self
            .shared
            .client
            .request(parts.method.clone(), url)
            .body(body);
        for (name, value) in &parts.headers {
            if name != "host" && name != "content-length" {
                forward = forward.header(name, value);
            }
        }
        match forward.send().await {
            Ok(answer) => {
                let status = answer.status();
                let headers = answer.headers().clone();
                let bytes = answer.bytes().await.unwrap_or_default();
                let mut response = Response::new(Full::new(bytes));
                *response.status_mut() = status;
                for (name, value) in &headers {
                    if name != "content-length" && name != "transfer-encoding" {
                        response.headers_mut().insert(name, value.clone());
                    }
                }
                response
            }
            Err(_) => {
                let mut response = Response::new(Full::new(Bytes::new()));
                *response.status_mut() = StatusCode::BAD_GATEWAY;
                response
            }
        }
    }
}

/// What AWS answers a call no policy allows.
fn access_denied(function: &str, target: &str, call: &Call) -> Response<Full<Bytes>> {
    let message = format!(
        "User: arn:aws:sts::000000000000:assumed-role/{function}Role/{function} is not authorized to perform: {} on resource: {} because no identity-based policy allows the {} action",
        call.action, call.resource, call.action
    );
    let kind = if target.starts_with("DynamoDB") {
        "com.amazon.coral.service#AccessDeniedException"
    } else {
        "AccessDeniedException"
    };
    let body = serde_json::json!({ "__type": kind, "message": message, "Message": message });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    response
}
