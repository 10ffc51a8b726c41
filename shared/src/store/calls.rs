//! Call events and call records. One event is one transaction of three items: the event (written
//! once, by id) and the call's record once per party, keyed by the party's role (calling,
//! called) so that a later event naming other numbers meets the same two items and is refused.
//! Each party's record sits in the by-phone index under the call time, so that each party reads
//! its history with one Query. The two records are always written together under the same
//! conditions, so they never differ.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use time::OffsetDateTime;

use super::item::{Item, millis, millis_av, n, s, ttl_av};
use super::keys::{
    self, CALLED_SK, CALLING_SK, GSI1, GSI1_PK, GSI1_SK, HISTORY_MAX_MILLIS, KIND, PK, SK, TTL,
};
use super::{StoreError, view};
use crate::call::{CallEvent, CallId, CallRecord, EventKind, HistoryStatus, Outcome, Party, stats};
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

/// A record's version: every write of a record that changes it checks the version it read
/// and moves it on, so that the statistics' delta is taken from the record as it was.
const VERSION: &str = "version";
/// How many partitions a number's statistics are spread over: every event of a busy number's
/// calls adds to its month in a transaction, and transactions on one item cancel each other
/// (DynamoDB Local cancels them on one partition key). The shards are read by one Query each,
/// sent together, and summed.
pub const STATS_SHARDS: u32 = 8;
/// How often an event is tried again when its call's record changed under it.
const RECORD_RACES: u32 = 10;

/// A stored time as it reads back (whole milliseconds).
fn as_stored(t: OffsetDateTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis(t)) * 1_000_000).unwrap_or(t)
}

impl Calls {
    /// Records one event; any number of concurrent posts of it store it once, and events of a
    /// call give the same record in any order (per kind, the earliest time wins). Each party's
    /// monthly statistics move with the record in the same transaction: the record is read,
    /// the event applied to it, and the write holds only if the record is still as read
    /// (its version), else it is read again.
    /// `expires`: when the event, the call's records and the month's statistics expire (their
    /// TTL; `None` keeps them).
    pub async fn ingest_call_event(
        &self,
        event: &CallEvent,
        expires: Option<OffsetDateTime>,
    ) -> Result<Ingested, StoreError> {
        for _ in 0..RECORD_RACES {
            let stored = self
                .get_item(keys::call_pk(&event.call_id), CALLING_SK)
                .await?;
            let version: Option<u64> = match &stored {
                Some(item) if item.0.contains_key(VERSION) => Some(item.number(VERSION)?),
                _ => None,
            };
            let old = stored.map(record_from).transpose()?;
            let agree = old
                .as_ref()
                .is_none_or(|r| r.calling == event.calling && r.called == event.called);
            let mut new = old.clone().unwrap_or_else(|| CallRecord {
                call_id: event.call_id.clone(),
                calling: event.calling.clone().into(),
                called: event.called.clone().into(),
                initiated_at: None,
                answered_at: None,
                disconnected_at: None,
            });
            let at = as_stored(event.created_at);
            let slot = match event.kind {
                EventKind::Initiate => &mut new.initiated_at,
                EventKind::Answer => &mut new.answered_at,
                EventKind::Disconnect => &mut new.disconnected_at,
            };
            let changes = agree && slot.is_none_or(|t| t > at);
            if changes {
                *slot = Some(at);
            }
            let items = if changes {
                self.change_transaction(event, expires, version, old.as_ref(), &new)?
            } else {
                self.event_only_transaction(event, expires)?
            };
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
            if !changes && cancelled.condition_failed(1) {
                let numbers_agree = cancelled.old_item(1).is_some_and(|i| {
                    i.opt_string(CALLING) == Some(event.calling.as_str())
                        && i.opt_string(CALLED) == Some(event.called.as_str())
                });
                if !numbers_agree {
                    return Ok(Ingested::NumbersConflict);
                }
                continue;
            }
            let raced = changes && (cancelled.condition_failed(1) || cancelled.condition_failed(2));
            if !raced {
                return Err(cancelled.into_error());
            }
            // The record changed since it was read: read it again.
        }
        Err(StoreError::Unavailable {
            operation: "TransactWriteItems",
            cause: "the call's record kept changing".into(),
        })
    }

    /// The event's own item, once by id.
    fn event_put(
        &self,
        event: &CallEvent,
        expires: Option<OffsetDateTime>,
    ) -> Result<TransactWriteItem, StoreError> {
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
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// An event that changes nothing of its call (an earlier one of its kind is recorded, or
    /// its numbers are not the call's): the event itself, while the call's numbers are its.
    fn event_only_transaction(
        &self,
        event: &CallEvent,
        expires: Option<OffsetDateTime>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(self.table())
            .key(PK, s(keys::call_pk(&event.call_id)))
            .key(SK, s(CALLING_SK))
            .condition_expression(NUMBERS_AGREE)
            .expression_attribute_names("#calling", CALLING)
            .expression_attribute_names("#called", CALLED)
            .expression_attribute_values(":calling", s(event.calling.as_str()))
            .expression_attribute_values(":called", s(event.called.as_str()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        Ok(vec![
            self.event_put(event, expires)?,
            TransactWriteItem::builder().condition_check(check).build(),
        ])
    }

    /// An event that changes its call from `old` (at `version`) to `new`: the event, both
    /// parties' records (while still at `version`) and what moves in each party's statistics.
    fn change_transaction(
        &self,
        event: &CallEvent,
        expires: Option<OffsetDateTime>,
        version: Option<u64>,
        old: Option<&CallRecord>,
        new: &CallRecord,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut items = vec![self.event_put(event, expires)?];
        let (condition, next) = match version {
            Some(v) => ("#v = :v", v + 1),
            None => ("attribute_not_exists(#v)", 1),
        };
        for (sk, party) in [(CALLING_SK, &event.calling), (CALLED_SK, &event.called)] {
            let mut update = self
                .record_update(event, sk, party, expires, next)
                .condition_expression(condition)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            if let Some(v) = version {
                update = update.expression_attribute_values(":v", n(v));
            }
            items.push(TransactWriteItem::builder().update(update.build()?).build());
        }
        // A record written before statistics were kept (no version) was never counted.
        let counted = old.filter(|_| version.is_some());
        let mut moves: BTreeMap<(String, String), stats::Counters> = BTreeMap::new();
        let mut parties = vec![&event.calling];
        if event.called != event.calling {
            parties.push(&event.called);
        }
        for party in parties {
            let before = counted.and_then(|r| stats::Contribution::of(r, party));
            let after = stats::Contribution::of(new, party);
            for (month, counters) in stats::delta(before.as_ref(), after.as_ref()) {
                moves.insert((party.as_str().to_owned(), month), counters);
            }
        }
        let shard = crate::id::random_below(STATS_SHARDS.into()) as u32;
        for ((number, month), counters) in moves {
            let pk = keys::call_stats_pk(&number, shard);
            items.push(self.stats_add(pk, &month, &counters, expires)?);
        }
        Ok(items)
    }

    /// Adds `counters` to one month of one shard of a number's statistics.
    fn stats_add(
        &self,
        pk: String,
        month: &str,
        counters: &stats::Counters,
        expires: Option<OffsetDateTime>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut adds = Vec::new();
        let mut update = Update::builder()
            .table_name(self.table())
            .key(PK, s(pk))
            .key(SK, s(month));
        for (i, (name, value)) in counters.iter().enumerate() {
            adds.push(format!("#c{i} :c{i}"));
            update = update
                .expression_attribute_names(format!("#c{i}"), name)
                .expression_attribute_values(format!(":c{i}"), n(*value));
        }
        let mut expression = format!("ADD {}", adds.join(", "));
        if let Some(at) = expires {
            // The month lives as long as its latest call.
            expression.push_str(" SET #ttl = :ttl");
            update = update
                .expression_attribute_names("#ttl", TTL)
                .expression_attribute_values(":ttl", ttl_av(at));
        }
        let update = update.update_expression(expression).build()?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// A number's statistics: its months summed over its [`STATS_SHARDS`] partitions, one
    /// Query each (a month is one item of about 200 bytes per shard: a million calls over ten
    /// years are 120 items a shard, one page each). Months past
    /// their expiry are skipped (DynamoDB deletes them late).
    pub async fn stats(
        &self,
        number: &PhoneNumber,
        now: OffsetDateTime,
    ) -> Result<stats::CallStats, StoreError> {
        let queries = (0..STATS_SHARDS).map(|shard| {
            let query = self
                .client()
                .query()
                .table_name(self.table())
                .consistent_read(true)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", s(keys::call_stats_pk(number.as_str(), shard)));
            self.query_all(query)
        });
        // A shard's month may hold a call's move away without the move in (negative counts):
        // the shards of a month are summed before the month is read.
        let mut months: BTreeMap<String, stats::Counters> = BTreeMap::new();
        for item in futures::future::try_join_all(queries)
            .await?
            .into_iter()
            .flatten()
        {
            let expired =
                item.0.contains_key(TTL) && item.number::<i64>(TTL)? <= now.unix_timestamp();
            if expired {
                continue;
            }
            let month = months.entry(item.string(SK)?.to_owned()).or_default();
            for (name, value) in &item.0 {
                if [PK, SK, TTL].contains(&name.as_str()) {
                    continue;
                }
                if let Some(value) = value.as_n().ok().and_then(|v| v.parse::<i64>().ok()) {
                    *month.entry(name.clone()).or_default() += value;
                }
            }
        }
        let mut total = stats::CallStats::new();
        for (month, counters) in &months {
            total.add_month(month, counters);
        }
        Ok(total)
    }

    /// The update that writes the event's time and the call's numbers into one party's record,
    /// and the record's place in that party's history.
    fn record_update(
        &self,
        event: &CallEvent,
        sk: &str,
        party: &PhoneNumber,
        expires: Option<OffsetDateTime>,
        version: u64,
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
                 #field = :time, #gpk = :gpk, #v = :next, {sort_key}{ttl}"
            ))
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_values(":next", n(version))
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
}

/// The call's numbers are the event's (or the call is new).
const NUMBERS_AGREE: &str =
    "(attribute_not_exists(#calling) OR (#calling = :calling AND #called = :called))";

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
