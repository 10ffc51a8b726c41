//! `POST /calls/events`: one event or a batch of up to 100, each answered on its own.

use futures::StreamExt;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde_json::Value;

use super::event::{CallEvent, EventInput};
use crate::auth::{Authenticator, require_service};
use crate::http::{ApiError, Endpoint, from_value, json, json_value};
use crate::init::Init;
use crate::store::Store;
use crate::store::calls::Ingested;

pub const MAX_BATCH: usize = 100;

/// Items of one batch written at the same time.
const BATCH_CONCURRENCY: usize = 16;

pub struct CallEventEndpoint {
    auth: Authenticator,
    store: Store,
}

#[derive(Debug, Serialize)]
struct ItemResult {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<String>,
    /// `accepted`, `duplicate` or `rejected`.
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

#[derive(Debug, Serialize)]
struct BatchResult {
    accepted: usize,
    duplicates: usize,
    rejected: usize,
    results: Vec<ItemResult>,
}

impl Endpoint for CallEventEndpoint {
    const NAME: &'static str = "call-event";

    async fn init(init: &Init) -> anyhow::Result<Self> {
        Ok(CallEventEndpoint {
            auth: Authenticator::new(init).await?,
            store: init.store(),
        })
    }

    async fn handle(&self, req: Request) -> Result<Response<Body>, ApiError> {
        let (caller, _) = self.auth.caller(&req).await?;
        require_service(&caller)?;
        match json_value(&req)? {
            Value::Array(items) => self.batch(items).await,
            single @ Value::Object(_) => {
                let event = parse(single)?;
                let result = self.ingest(&event).await?;
                let body =
                    serde_json::json!({"event_id": event.event_id.as_str(), "result": result});
                Ok(json(StatusCode::OK, &body))
            }
            _ => Err(ApiError::InvalidJson(
                "the body must be an event object or an array of events".into(),
            )),
        }
    }
}

fn parse(value: Value) -> Result<CallEvent, ApiError> {
    let input: EventInput = from_value(value)?;
    CallEvent::try_from(input).map_err(|(field, detail)| ApiError::field(field, detail))
}

impl CallEventEndpoint {
    /// `accepted` or `duplicate`, or the error that refused the event.
    async fn ingest(&self, event: &CallEvent) -> Result<&'static str, ApiError> {
        match self.store.ingest_call_event(event).await? {
            Ingested::Accepted => Ok("accepted"),
            Ingested::Duplicate => Ok("duplicate"),
            Ingested::EventIdConflict => Err(ApiError::Conflict {
                code: "event_id_conflict",
                detail: format!(
                    "event {} was already posted with other content",
                    event.event_id
                ),
            }),
            Ingested::NumbersConflict => Err(ApiError::Conflict {
                code: "call_numbers_conflict",
                detail: format!(
                    "the earlier events of call {} name other numbers",
                    event.call_id
                ),
            }),
        }
    }

    async fn batch(&self, items: Vec<Value>) -> Result<Response<Body>, ApiError> {
        if items.is_empty() {
            return Err(ApiError::InvalidBatch("the batch is empty".into()));
        }
        if items.len() > MAX_BATCH {
            return Err(ApiError::InvalidBatch(format!(
                "a batch holds at most {MAX_BATCH} events, not {}",
                items.len()
            )));
        }
        // Items are independent (a call's events commute), so they are written side by side;
        // `buffered` keeps the answers in the order of the items.
        let results: Vec<ItemResult> = futures::stream::iter(items.into_iter().enumerate())
            .map(|(index, item)| self.item_result(index, item))
            .buffered(BATCH_CONCURRENCY)
            .collect()
            .await;
        let count = |r: &str| results.iter().filter(|i| i.result == r).count();
        let body = BatchResult {
            accepted: count("accepted"),
            duplicates: count("duplicate"),
            rejected: count("rejected"),
            results,
        };
        Ok(json(StatusCode::OK, &body))
    }

    /// One batch item's answer: `accepted`, `duplicate`, or `rejected` with its error.
    async fn item_result(&self, index: usize, item: Value) -> ItemResult {
        let event_id = item
            .get("event_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let outcome = match parse(item) {
            Ok(event) => self.ingest(&event).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(result) => ItemResult {
                index,
                event_id,
                result,
                status: None,
                error: None,
                field: None,
                detail: None,
            },
            Err(error) => {
                if let ApiError::Internal(cause) = &error {
                    tracing::error!(error = format!("{cause:#}"), index, "batch item failed");
                }
                let status = error.status().as_u16();
                let field = match &error {
                    ApiError::InvalidField { field, .. } => Some(field.clone()),
                    _ => None,
                };
                let detail = match &error {
                    ApiError::Internal(_) => "an internal error occurred".to_owned(),
                    other => other.to_string(),
                };
                ItemResult {
                    index,
                    event_id,
                    result: "rejected",
                    status: Some(status),
                    error: Some(error.code()),
                    field,
                    detail: Some(detail),
                }
            }
        }
    }
}
