//! A Lambda Runtime API of our own on loopback, for the cold-start benchmark and for each
//! function instance `infra/deployed.sh` runs: the three routes
//! a runtime client uses (`/next`, `/response`, `/error`, plus `/init/error`). It hands out the
//! invocations it is given one at a time and reports when each was asked for, handed out and
//! answered, so that a driver can time a function process from `exec` on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc};

/// What the function process did, and when.
#[derive(Debug)]
pub enum Seen {
    /// It asked for an invocation (`GET /next`).
    Next(Instant),
    /// An invocation was handed to it.
    Handed(Instant),
    /// It answered an invocation: the API Gateway status of the answer, if it had one, and
    /// the answer.
    Responded(Instant, Option<u16>, Bytes),
    /// It reported an invocation error or an init error.
    Failed(Instant, String),
}

pub struct RuntimeApi {
    pub addr: SocketAddr,
    invocations: mpsc::Sender<(String, Bytes)>,
    seen: Mutex<mpsc::Receiver<Seen>>,
    server: tokio::task::JoinHandle<()>,
}

/// A runtime API stops serving with its owner (an instance thrown away leaves nothing behind).
impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Shared {
    invocations: Mutex<mpsc::Receiver<(String, Bytes)>>,
    seen: mpsc::Sender<Seen>,
    function_arn: String,
    timeout: Duration,
}

impl RuntimeApi {
    pub async fn start() -> anyhow::Result<RuntimeApi> {
        Self::start_for(
            "arn:aws:lambda:us-east-1:000000000000:function:bench",
            Duration::from_secs(30),
        )
        .await
    }

    /// A runtime API for one instance of a function: its ARN and its timeout (the deadline
    /// each invocation carries).
    pub async fn start_for(function_arn: &str, timeout: Duration) -> anyhow::Result<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (invocations_tx, invocations_rx) = mpsc::channel(1);
        let (seen_tx, seen_rx) = mpsc::channel(64);
        let shared = Arc::new(Shared {
            invocations: Mutex::new(invocations_rx),
            seen: seen_tx,
            function_arn: function_arn.to_owned(),
            timeout,
        });
        let server = crate::loopback::serve(listener, move |req, _| {
            let shared = shared.clone();
            async move { route(&shared, req).await }
        });
        Ok(RuntimeApi {
            addr,
            invocations: invocations_tx,
            seen: Mutex::new(seen_rx),
            server,
        })
    }

    /// Queues one invocation with this event.
    pub async fn invoke(&self, id: String, event: Bytes) -> anyhow::Result<()> {
        self.invocations
            .send((id, event))
            .await
            .map_err(|_| anyhow::anyhow!("the runtime API stopped"))
    }

    /// The next thing the function did, waiting at most `timeout`.
    pub async fn next_seen(&self, timeout: Duration) -> anyhow::Result<Seen> {
        let mut seen = self.seen.lock().await;
        tokio::time::timeout(timeout, seen.recv())
            .await
            .map_err(|_| anyhow::anyhow!("the function did nothing for {timeout:?}"))?
            .ok_or_else(|| anyhow::anyhow!("the runtime API stopped"))
    }
}

async fn route(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else {
        return reply(StatusCode::NOT_FOUND, Bytes::new());
    };
    match (method, rest) {
        (Method::GET, "invocation/next") => {
            let _ = shared.seen.send(Seen::Next(Instant::now())).await;
            let Some((id, event)) = shared.invocations.lock().await.recv().await else {
                return reply(StatusCode::GONE, Bytes::new());
            };
            let _ = shared.seen.send(Seen::Handed(Instant::now())).await;
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis()
                + shared.timeout.as_millis();
            let mut response = reply(StatusCode::OK, event);
            let headers = response.headers_mut();
            let pairs = [
                ("lambda-runtime-aws-request-id", id),
                ("lambda-runtime-deadline-ms", deadline.to_string()),
                (
                    "lambda-runtime-invoked-function-arn",
                    shared.function_arn.clone(),
                ),
                (
                    "lambda-runtime-trace-id",
                    "Root=1-00000000-000000000000000000000000".to_owned(),
                ),
                ("content-type", "application/json".to_owned()),
            ];
            for (name, value) in pairs {
                if let Ok(value) = value.parse() {
                    headers.insert(name, value);
                }
            }
            response
        }
        (Method::POST, rest) => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let now = Instant::now();
            let seen = if rest.ends_with("/response") {
                let status = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["statusCode"].as_u64())
                    .and_then(|s| u16::try_from(s).ok());
                Seen::Responded(now, status, body)
            } else {
                Seen::Failed(
                    now,
                    String::from_utf8_lossy(&body).chars().take(300).collect(),
                )
            };
            let _ = shared.seen.send(seen).await;
            reply(StatusCode::ACCEPTED, Bytes::from_static(b"{}"))
        }
        _ => reply(StatusCode::NOT_FOUND, Bytes::new()),
    }
}

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
}
