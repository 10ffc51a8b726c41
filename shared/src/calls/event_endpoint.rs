//! `POST /calls/events`: one event or a batch of up to 100, each answered on its own.

use futures::StreamExt;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::auth::Authenticator;
use crate::call::{CallEvent, EventInput};
use crate::clock::Clock;
use crate::http::{ApiError, Endpoint, ErrorCode, Route, from_value, json, json_value};
use crate::init::Init;
use crate::secrets::SecretPart;
use crate::store::Calls;
use crate::store::calls::Ingested;

pub const MAX_BATCH: usize = 100;

/// Items of one batch written at the same time.
const BATCH_CONCURRENCY: usize = 16;

pub struct CallEventEndpoint {
    auth: Authenticator,
    clock: std::sync::Arc<dyn Clock>,
    calls: Calls,
    retention: Option<std::time::Duration>,
}

/// One batch item's answer: its index and id, its result, and for a rejected item its status
/// and the error body a single request would have got.
#[derive(Debug, Serialize)]
struct ItemResult {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<String>,
    /// `accepted`, `duplicate` or `rejected`.
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(flatten)]
    error: Map<String, Value>,
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
    const ROUTES: &'static [Route] = &[Route::post("/calls/events")];
    const SECRETS: &'static [SecretPart] = &[SecretPart::Clients];

    async fn init(init: &Init) -> anyhow::Result<Self> {
        Ok(CallEventEndpoint {
            auth: Authenticator::new(init, Self::SECRETS, Self::NAME).await?,
            clock: init.clock.clone(),
            calls: init.store().calls(),
            retention: init.config.call_retention,
        })
    }

    async fn handle(
        &self,
        _route: &'static Route,
        req: Request,
    ) -> Result<Response<Body>, ApiError> {
        self.auth.caller(&req).await?;
        let now = self.clock.now();
        match json_value(&req)? {
            Value::Array(items) => self.batch(items, now).await,
            single @ Value::Object(_) => {
                let event = parse(single, now)?;
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

fn parse(value: Value, now: OffsetDateTime) -> Result<CallEvent, ApiError> {
    // serde would also read a struct from an array, positionally: an event is an object only.
    if !value.is_object() {
        return Err(ApiError::InvalidJson(
            "an event must be a JSON object".into(),
        ));
    }
    let input: EventInput = from_value(value)?;
    CallEvent::from_input(input, now).map_err(|(field, detail)| ApiError::field(field, detail))
}

impl CallEventEndpoint {
    /// `accepted` or `duplicate`, or the error that refused the event.
    async fn ingest(&self, event: &CallEvent) -> Result<&'static str, ApiError> {
        // Kept `CALL_RETENTION_DAYS` after the call's last event was recorded.
        let expires = self.retention.map(|r| self.clock.now() + r);
        match self.calls.ingest_call_event(event, expires).await? {
            Ingested::Accepted => Ok("accepted"),
            Ingested::Duplicate => Ok("duplicate"),
            Ingested::EventIdConflict => Err(ApiError::refused(
                ErrorCode::EventIdConflict,
                format!(
                    "event {} was already posted with other content",
                    event.event_id
                ),
            )),
            Ingested::NumbersConflict => Err(ApiError::refused(
                ErrorCode::CallNumbersConflict,
                format!(
                    "the earlier events of call {} name other numbers",
                    event.call_id
                ),
            )),
        }
    }

    async fn batch(
        &self,
        items: Vec<Value>,
        now: OffsetDateTime,
    ) -> Result<Response<Body>, ApiError> {
        if items.is_empty() {
            return Err(ApiError::refused(
                ErrorCode::InvalidBatch,
                "the batch is empty",
            ));
        }
        if items.len() > MAX_BATCH {
            return Err(ApiError::refused(
                ErrorCode::InvalidBatch,
                format!(
                    "a batch holds at most {MAX_BATCH} events, not {}",
                    items.len()
                ),
            ));
        }
        // Items are independent (a call's events commute), so they are written side by side;
        // `buffered` keeps the answers in the order of the items.
        let results: Vec<ItemResult> = futures::stream::iter(items.into_iter().enumerate())
            .map(|(index, item)| self.item_result(index, item, now))
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
    async fn item_result(&self, index: usize, item: Value, now: OffsetDateTime) -> ItemResult {
        let event_id = item
            .get("event_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let outcome = match parse(item, now) {
            Ok(event) => self.ingest(&event).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(result) => ItemResult {
                index,
                event_id,
                result,
                status: None,
                error: Map::new(),
            },
            Err(error) => {
                if !error.status().is_client_error() {
                    error.log();
                }
                ItemResult {
                    index,
                    event_id,
                    result: "rejected",
                    status: Some(error.status().as_u16()),
                    error: error.body(),
                }
            }
        }
    }
}
