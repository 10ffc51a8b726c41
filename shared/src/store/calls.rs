//! Call events and call records. One event is one transaction of three items: the event (written
//! once, by id) and the call's record once per party, keyed by the party's role (calling,
//! called) so that a later event naming other numbers meets the same two items and is refused.
//! Each party's record sits in the by-phone index under the call time, so that each party reads
//! its history with one Query. The two records are always written together under the same
//! conditions, so they never differ.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use time::OffsetDateTime;

use super::item::{Item, millis, millis_av, s, ttl_av};
use super::keys::{
    self, CALLED_SK, CALLING_SK, GSI1, GSI1_PK, GSI1_SK, HISTORY_MAX_MILLIS, KIND, PK, SK, TTL,
};
use super::{StoreError, view};
use crate::call::{CallEvent, CallId, CallRecord, EventKind, HistoryStatus, Outcome, Party};
use crate::phone::PhoneNumber;

view! {
    /// Call events and records: `call-event` writes them, `call-history` reads them.
    Calls
}

const CALL_ID: &str = "call_id";
const CALLING: &str = "calling";
const CALLED: &str = "called";
const FINGERPRINT: &str = "fingerprint";
const INITIATED_AT: &str = "initiated_at";
const ANSWERED_AT: &str = "answered_at";
const DISCONNECTED_AT: &str = "disconnected_at";

/// What became of a posted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    Accepted,
    /// The same event again: nothing changed.
    Duplicate,
    /// Another event already has this id.
    EventIdConflict,
    /// The call's earlier events name other numbers.
    NumbersConflict,
}

/// A page of one number's history.
pub struct HistoryPage {
    pub records: Vec<CallRecord>,
    pub last_key: Option<HashMap<String, String>>,
}

/// Which of a number's calls a history query wants.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub status: Option<HistoryStatus>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
}

fn field(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Initiate => INITIATED_AT,
        EventKind::Answer => ANSWERED_AT,
        EventKind::Disconnect => DISCONNECTED_AT,
    }
}

impl Calls {
    /// Records one event; any number of concurrent posts of it store it once, and events of a
    /// call give the same record in any order (per kind, the earliest time wins).
    /// `expires`: when the event and the call's records expire (their TTL; `None` keeps them).
    pub async fn ingest_call_event(
        &self,
        event: &CallEvent,
        expires: Option<OffsetDateTime>,
    ) -> Result<Ingested, StoreError> {
        let mut with_field = true;
        loop {
            let items = self.event_transaction(event, with_field, expires)?;
            let Err(cancelled) = self.transact(items).await? else {
                return Ok(Ingested::Accepted);
            };
            if cancelled.condition_failed(0) {
                let same = cancelled
                    .old_item(0)
                    .and_then(|i| i.opt_string(FINGERPRINT).map(|f| f == event.fingerprint()))
                    .unwrap_or(false);
                return Ok(if same {
                    Ingested::Duplicate
                } else {
                    Ingested::EventIdConflict
                });
            }
            let Some(refused) = (1..cancelled.0.len()).find(|&i| cancelled.condition_failed(i))
            else {
                return Err(cancelled.into_error());
            };
            let numbers_agree = cancelled.old_item(refused).is_some_and(|i| {
                i.opt_string(CALLING) == Some(event.calling.as_str())
                    && i.opt_string(CALLED) == Some(event.called.as_str())
            });
            if !numbers_agree {
                return Ok(Ingested::NumbersConflict);
            }
            if !with_field {
                return Err(cancelled.into_error());
            }
            // An earlier event of this kind is already recorded: keep it, record the event
            // itself only.
            with_field = false;
        }
    }

    fn event_transaction(
        &self,
        event: &CallEvent,
        with_field: bool,
        expires: Option<OffsetDateTime>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut put = Put::builder()
            .table_name(self.table())
            .item(PK, s(keys::event_pk(&event.event_id)))
            .item(SK, s(keys::EVENT_SK))
            .item(KIND, s("call-event"))
            .item(CALL_ID, s(event.call_id.as_str()))
            .item(FINGERPRINT, s(event.fingerprint()));
        if let Some(at) = expires {
            put = put.item(TTL, ttl_av(at));
        }
        let put = put
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        let numbers_agree =
            "(attribute_not_exists(#calling) OR (#calling = :calling AND #called = :called))";
        if !with_field {
            let check = ConditionCheck::builder()
                .table_name(self.table())
                .key(PK, s(keys::call_pk(&event.call_id)))
                .key(SK, s(CALLING_SK))
                .condition_expression(numbers_agree)
                .expression_attribute_names("#calling", CALLING)
                .expression_attribute_names("#called", CALLED)
                .expression_attribute_values(":calling", s(event.calling.as_str()))
                .expression_attribute_values(":called", s(event.called.as_str()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()?;
            items.push(TransactWriteItem::builder().condition_check(check).build());
            return Ok(items);
        }
        for (sk, party) in [(CALLING_SK, &event.calling), (CALLED_SK, &event.called)] {
            let update = self
                .record_update(event, sk, party, expires)
                .condition_expression(format!(
                    "{numbers_agree} AND (attribute_not_exists(#field) OR #field > :time)"
                ))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        Ok(items)
    }

    /// The update that writes the event's time and the call's numbers into one party's record,
    /// and the record's place in that party's history.
    fn record_update(
        &self,
        event: &CallEvent,
        sk: &str,
        party: &PhoneNumber,
        expires: Option<OffsetDateTime>,
    ) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        // The call sorts under its INITIATE time; until that arrives, under the time of the
        // first event seen.
        let sort_key = if event.kind == EventKind::Initiate {
            "#gsk = :gsk"
        } else {
            "#gsk = if_not_exists(#gsk, :gsk)"
        };
        let ttl = if expires.is_some() {
            ", #ttl = :ttl"
        } else {
            ""
        };
        let update = Update::builder()
            .table_name(self.table())
            .key(PK, s(keys::call_pk(&event.call_id)))
            .key(SK, s(sk))
            .update_expression(format!(
                "SET #call_id = :call_id, #calling = :calling, #called = :called, \
                 #field = :time, #gpk = :gpk, {sort_key}{ttl}"
            ))
            .expression_attribute_names("#call_id", CALL_ID)
            .expression_attribute_names("#calling", CALLING)
            .expression_attribute_names("#called", CALLED)
            .expression_attribute_names("#field", field(event.kind))
            .expression_attribute_names("#gpk", GSI1_PK)
            .expression_attribute_names("#gsk", GSI1_SK)
            .expression_attribute_values(":call_id", s(event.call_id.as_str()))
            .expression_attribute_values(":calling", s(event.calling.as_str()))
            .expression_attribute_values(":called", s(event.called.as_str()))
            .expression_attribute_values(":time", millis_av(event.created_at))
            .expression_attribute_values(":gpk", s(keys::history_gsi_pk(party)))
            .expression_attribute_values(
                ":gsk",
                s(keys::history_gsi_sk(event.created_at, &event.call_id)),
            );
        match expires {
            Some(at) => update
                .expression_attribute_names("#ttl", TTL)
                .expression_attribute_values(":ttl", ttl_av(at)),
            None => update,
        }
    }

    /// The Query of a number's calls under `filter`, newest first.
    fn history_query(&self, number: &PhoneNumber, filter: &HistoryFilter) -> QueryFluentBuilder {
        let lo = filter.from.map_or(0, millis);
        let hi = filter.to.map_or(HISTORY_MAX_MILLIS, millis);
        let mut query = self
            .client()
            .query()
            .table_name(self.table())
            .index_name(GSI1)
            .scan_index_forward(false)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
            .expression_attribute_names("#pk", GSI1_PK)
            .expression_attribute_names("#sk", GSI1_SK)
            .expression_attribute_values(":pk", s(keys::history_gsi_pk(number)))
            .expression_attribute_values(":lo", s(keys::history_gsi_sk_at(lo, "")))
            // `~` sorts after every id character: the whole `to` millisecond is included.
            .expression_attribute_values(":hi", s(keys::history_gsi_sk_at(hi, "~")));
        if let Some(status) = filter.status {
            query = query
                .filter_expression(status_filter(status))
                .expression_attribute_names("#calling", CALLING)
                .expression_attribute_names("#disconnected", DISCONNECTED_AT)
                .expression_attribute_values(":me", s(number.as_str()));
            if status.outcome != Outcome::InProgress {
                query = query.expression_attribute_names("#answered", ANSWERED_AT);
            }
        }
        query
    }

    /// One page of a number's calls, newest first: exactly one Query. It asks for one row
    /// more than the page holds, so a page that ends the history says so (no cursor) rather
    /// than sending the client to an empty page.
    pub async fn history_page(
        &self,
        number: &PhoneNumber,
        filter: &HistoryFilter,
        limit: i32,
        start: Option<HashMap<String, String>>,
    ) -> Result<HistoryPage, StoreError> {
        let out = self
            .history_query(number, filter)
            .limit(limit.saturating_add(1))
            .set_exclusive_start_key(start.map(|k| k.into_iter().map(|(k, v)| (k, s(v))).collect()))
            .send()
            .await
            .map_err(|e| StoreError::sdk("Query", e))?;
        let mut items = out.items.unwrap_or_default();
        let page_size = usize::try_from(limit).unwrap_or(0);
        let last_key = if items.len() > page_size {
            items.truncate(page_size);
            // The next page starts after this page's last row.
            items.last().map(|item| {
                string_attributes([PK, SK, GSI1_PK, GSI1_SK].map(|n| item.get_key_value(n)))
            })
        } else {
            out.last_evaluated_key
                .map(|key| string_attributes(key.iter().map(Some)))
        };
        let records = items
            .into_iter()
            .map(|i| record_from(Item(i)))
            .collect::<Result<_, _>>()?;
        Ok(HistoryPage { records, last_key })
    }

    /// Every call of a number (for statistics): as many Queries as pages of 1 MB.
    pub async fn all_calls(&self, number: &PhoneNumber) -> Result<Vec<CallRecord>, StoreError> {
        let query = self.history_query(number, &HistoryFilter::default());
        self.query_all(query)
            .await?
            .into_iter()
            .map(record_from)
            .collect()
    }
}

/// A resume point as the cursor carries it: the key's string attributes.
fn string_attributes<'a>(
    attributes: impl IntoIterator<Item = Option<(&'a String, &'a AttributeValue)>>,
) -> HashMap<String, String> {
    attributes
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| Some((name.clone(), value.as_s().ok()?.clone())))
        .collect()
}

/// The filter expression of a status, from the asked number's point of view.
fn status_filter(status: HistoryStatus) -> &'static str {
    use crate::call::Direction::{Inbound, Outbound};
    match (status.outcome, status.direction) {
        (Outcome::Completed, Outbound) => {
            "#calling = :me AND attribute_exists(#answered) AND attribute_exists(#disconnected)"
        }
        (Outcome::Completed, Inbound) => {
            "#calling <> :me AND attribute_exists(#answered) AND attribute_exists(#disconnected)"
        }
        (Outcome::Missed, Outbound) => {
            "#calling = :me AND attribute_not_exists(#answered) AND attribute_exists(#disconnected)"
        }
        (Outcome::Missed, Inbound) => {
            "#calling <> :me AND attribute_not_exists(#answered) AND attribute_exists(#disconnected)"
        }
        (Outcome::InProgress, Outbound) => "#calling = :me AND attribute_not_exists(#disconnected)",
        (Outcome::InProgress, Inbound) => "#calling <> :me AND attribute_not_exists(#disconnected)",
    }
}

fn party(item: &Item, name: &str) -> Result<Party, StoreError> {
    Party::parse(item.string(name)?).ok_or_else(|| {
        StoreError::Malformed(format!("{name} is neither a phone number nor erased"))
    })
}

fn record_from(item: Item) -> Result<CallRecord, StoreError> {
    Ok(CallRecord {
        call_id: CallId::parse(item.string(CALL_ID)?)
            .map_err(|_| StoreError::Malformed("call_id".into()))?,
        calling: party(&item, CALLING)?,
        called: party(&item, CALLED)?,
        initiated_at: item.opt_time(INITIATED_AT)?,
        answered_at: item.opt_time(ANSWERED_AT)?,
        disconnected_at: item.opt_time(DISCONNECTED_AT)?,
    })
}
