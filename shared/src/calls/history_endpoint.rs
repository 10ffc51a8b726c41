//! `GET /calls/history/{phone_number}` (one Query per page) and `.../stats`.

use std::sync::Arc;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Cursor;
use crate::auth::{Authenticator, require_service_or_owner};
use crate::call::{CallRecord, HistoryStatus, Party};
use crate::clock::rfc3339;
use crate::http::{ApiError, Endpoint, Route, json, path_param, query_param};
use crate::init::Init;
use crate::phone::PhoneNumber;
use crate::secrets::SecretPart;
use crate::secrets::{SecretsCache, TokenKeys};
use crate::store::Calls;
use crate::store::calls::HistoryFilter;

pub const DEFAULT_LIMIT: i32 = 50;
pub const MAX_LIMIT: i32 = 200;

pub struct CallHistoryEndpoint {
    auth: Authenticator,
    secrets: Arc<SecretsCache>,
    calls: Calls,
    clock: Arc<dyn crate::clock::Clock>,
}

const HISTORY: Route = Route::get("/calls/history/{phone_number}");
const STATS: Route = Route::get("/calls/history/{phone_number}/stats");

#[derive(Debug, Serialize)]
struct Row {
    call_id: String,
    call_time: Option<String>,
    counterparty_number: Party,
    call_status: HistoryStatus,
    duration: Option<i64>,
    talk_seconds: Option<i64>,
}

impl Row {
    fn of(record: &CallRecord, number: &PhoneNumber) -> Self {
        Row {
            call_id: record.call_id.to_string(),
            call_time: record.call_time().map(rfc3339),
            counterparty_number: record.counterparty(number).clone(),
            call_status: record.status_for(number),
            duration: record.duration_seconds(),
            talk_seconds: record.talk_seconds(),
        }
    }
}

impl Endpoint for CallHistoryEndpoint {
    const NAME: &'static str = "call-history";
    const ROUTES: &'static [Route] = &[HISTORY, STATS];
    const SECRETS: &'static [SecretPart] = &[SecretPart::Clients, SecretPart::TokenKey];

    async fn init(init: &Init) -> anyhow::Result<Self> {
        Ok(CallHistoryEndpoint {
            auth: Authenticator::new(init, Self::SECRETS, Self::NAME).await?,
            secrets: init.secrets(),
            calls: init.store().calls(),
            clock: init.clock.clone(),
        })
    }

    async fn handle(
        &self,
        route: &'static Route,
        req: Request,
    ) -> Result<Response<Body>, ApiError> {
        let number = PhoneNumber::parse(&path_param(&req, "phone_number")?)
            .map_err(|e| ApiError::field("phone_number", e))?;
        let (caller, secrets) = self.auth.caller(&req).await?;
        require_service_or_owner(&caller, &number)?;
        if *route == STATS {
            return self.stats(&number).await;
        }
        // A cursor sealed by a key this container does not know yet (a rotation) has the
        // secrets reloaded first.
        let cursor_kid = query_param(&req, "cursor").and_then(Cursor::key_id);
        let secrets = match cursor_kid {
            Some(kid) if !secrets.knows_token_key(kid) => self.secrets.knowing(Some(kid)).await?,
            _ => secrets,
        };
        let keys = secrets.token_keys().map_err(ApiError::Internal)?;
        self.page(&req, &number, keys).await
    }
}

fn time_param(req: &Request, name: &str) -> Result<Option<OffsetDateTime>, ApiError> {
    query_param(req, name)
        .map(|v| {
            OffsetDateTime::parse(v, &Rfc3339)
                .map_err(|_| ApiError::field(name, "must be an RFC 3339 timestamp"))
        })
        .transpose()
}

impl CallHistoryEndpoint {
    async fn page(
        &self,
        req: &Request,
        number: &PhoneNumber,
        keys: &TokenKeys,
    ) -> Result<Response<Body>, ApiError> {
        let limit = match query_param(req, "limit") {
            None => DEFAULT_LIMIT,
            Some(v) => v
                .parse::<i32>()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| {
                    ApiError::field(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    )
                })?,
        };
        let status = query_param(req, "status")
            .map(|v| {
                HistoryStatus::parse(v).ok_or_else(|| {
                    ApiError::field(
                        "status",
                        "must be one of Completed Inbound, Missed Inbound, In Progress Inbound, \
                         Completed Outbound, Missed Outbound, In Progress Outbound",
                    )
                })
            })
            .transpose()?;
        let filter = HistoryFilter {
            status,
            from: time_param(req, "from")?,
            to: time_param(req, "to")?,
        };
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from > to
        {
            return Err(ApiError::field("from", "must not be after `to`"));
        }
        // The cursor is bound to the number and the filters it was issued for.
        let scope = format!(
            "{number}|{}|{:?}|{:?}",
            status.map_or("", HistoryStatus::label),
            filter.from.map(|t| t.unix_timestamp_nanos()),
            filter.to.map(|t| t.unix_timestamp_nanos()),
        );
        let start = query_param(req, "cursor")
            .map(|c| Cursor::open(c, keys, &scope).map_err(|e| ApiError::field("cursor", e)))
            .transpose()?
            .map(|c| c.keys.into_iter().collect());
        let page = self
            .calls
            .history_page(number, &filter, limit, start)
            .await?;
        let results: Vec<Row> = page.records.iter().map(|r| Row::of(r, number)).collect();
        let next_cursor = page.last_key.map(|last| {
            Cursor {
                keys: last.into_iter().collect(),
            }
            .seal(keys, &scope)
        });
        Ok(json(
            StatusCode::OK,
            &json!({"results": results, "next_cursor": next_cursor}),
        ))
    }

    /// The number's statistics, from its monthly totals (kept as events land): one Query
    /// whatever the size of the history.
    async fn stats(&self, number: &PhoneNumber) -> Result<Response<Body>, ApiError> {
        let stats = self.calls.stats(number, self.clock.now()).await?;
        Ok(json(
            StatusCode::OK,
            &json!({
                "phone_number": number,
                "total_calls": stats.total_calls,
                "by_status": stats.by_status,
                "completed_calls": stats.completed_calls,
                "total_duration_seconds": stats.total_duration_seconds,
                "average_duration_seconds": stats.average_duration_seconds(),
                "total_talk_seconds": stats.total_talk_seconds,
                "calls_per_month": stats.calls_per_month,
            }),
        ))
    }
}
