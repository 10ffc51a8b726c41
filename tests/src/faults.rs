//! A DynamoDB that refuses writes for now: an HTTP connector in front of the real one that
//! answers a share of the write calls itself, as DynamoDB does when a write meets a
//! transaction on its item (`TransactionConflictException`, or a transaction cancelled for
//! `TransactionConflict`) or when a partition is over its throughput (`ThrottlingException`).
//! The refused call never reaches the store, as with DynamoDB: nothing is written.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use aws_sdk_dynamodb::config::http::{HttpRequest, HttpResponse};
use aws_sdk_dynamodb::config::{HttpClient, RuntimeComponents, SharedHttpClient};
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_types::body::SdkBody;

/// What a refused write is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Conflict,
    Throttling,
}

/// The faults to inject: `percent` of the write calls, of one kind. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<State>);

#[derive(Debug, Default)]
struct State {
    percent: AtomicU32,
    /// 0: conflicts, 1: throttling.
    kind: AtomicU32,
    injected: AtomicU64,
    passed: AtomicU64,
}

/// The calls that write.
const WRITES: &[&str] = &[
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "TransactWriteItems",
    "BatchWriteItem",
];

impl Faults {
    /// From now on, `percent` of the writes fail with `fault`.
    pub fn inject(&self, fault: Fault, percent: u32) {
        self.0.kind.store(
            match fault {
                Fault::Conflict => 0,
                Fault::Throttling => 1,
            },
            Ordering::SeqCst,
        );
        self.0.percent.store(percent.min(100), Ordering::SeqCst);
    }

    pub fn stop(&self) {
        self.0.percent.store(0, Ordering::SeqCst);
    }

    /// (writes refused, writes passed on) so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.0.injected.load(Ordering::SeqCst),
            self.0.passed.load(Ordering::SeqCst),
        )
    }

    /// An HTTP client that injects these faults in front of `inner`.
    pub fn client(&self, inner: SharedHttpClient) -> FaultyClient {
        FaultyClient {
            inner,
            faults: self.clone(),
        }
    }

    /// The answer to `request`, when it is a write picked for a fault.
    fn refusal(&self, request: &HttpRequest) -> Option<HttpResponse> {
        let target = request.headers().get("x-amz-target")?;
        let operation = target.rsplit('.').next()?;
        if !WRITES.contains(&operation) {
            return None;
        }
        let percent = self.0.percent.load(Ordering::SeqCst);
        if percent == 0 || rand::random::<u32>() % 100 >= percent {
            self.0.passed.fetch_add(1, Ordering::SeqCst);
            return None;
        }
        self.0.injected.fetch_add(1, Ordering::SeqCst);
        let throttling = self.0.kind.load(Ordering::SeqCst) == 1;
        let body = if throttling {
            error_body(
                "ThrottlingException",
                "Rate of requests exceeds the allowed throughput.",
            )
        } else if operation == "TransactWriteItems" {
            cancelled_body(request)
        } else {
            error_body(
                "TransactionConflictException",
                "Transaction is ongoing for the item",
            )
        };
        let mut response = HttpResponse::new(
            400.try_into().ok()?,
            SdkBody::from(body.to_string().into_bytes()),
        );
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        Some(response)
    }
}

fn error_body(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({
        "__type": format!("com.amazonaws.dynamodb.v20120810#{code}"),
        "message": message,
    })
}

/// A transaction cancelled because its first item met another transaction.
fn cancelled_body(request: &HttpRequest) -> serde_json::Value {
    let items = request
        .body()
        .bytes()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| v["TransactItems"].as_array().map(Vec::len))
        .unwrap_or(1);
    let reasons: Vec<serde_json::Value> = (0..items)
        .map(|i| {
            if i == 0 {
                serde_json::json!({"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"})
            } else {
                serde_json::json!({"Code": "None"})
            }
        })
        .collect();
    let codes: Vec<&str> = (0..items)
        .map(|i| {
            if i == 0 {
                "TransactionConflict"
            } else {
                "None"
            }
        })
        .collect();
    serde_json::json!({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": format!("Transaction cancelled, please refer cancellation reasons for specific reasons [{}]", codes.join(", ")),
        "CancellationReasons": reasons,
    })
}

#[derive(Debug, Clone)]
pub struct FaultyClient {
    inner: SharedHttpClient,
    faults: Faults,
}

impl HttpClient for FaultyClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(FaultyConnector {
            inner: self.inner.http_connector(settings, components),
            faults: self.faults.clone(),
        })
    }
}

#[derive(Debug)]
struct FaultyConnector {
    inner: SharedHttpConnector,
    faults: Faults,
}

impl HttpConnector for FaultyConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        match self.faults.refusal(&request) {
            Some(response) => HttpConnectorFuture::ready(Ok(response)),
            None => self.inner.call(request),
        }
    }
}
