//! The SMS delivery log: one item per message, written when it is sent and moved forward by
//! Twilio's status callbacks, one conditional write each.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use time::OffsetDateTime;

use super::item::{Item, millis_av, n, s, ttl_av};
use super::keys::{self, KIND, PK, SK, TTL};
use super::{StoreError, condition_failed, one_of, view};
use crate::phone::PhoneNumber;
use crate::sms::{MessageId, MessageStatus};

view! {
    /// Messages: `sms-send` writes them, `twilio-webhook` moves their status.
    Messages
}

const TO: &str = "to";
const FROM: &str = "from";
const STATUS: &str = "status";
const PROVIDER_SID: &str = "provider_sid";
const ERROR_CODE: &str = "error_code";
const SEGMENTS: &str = "segments";
const CREATED_AT: &str = "created_at";
const UPDATED_AT: &str = "updated_at";
/// `[{status, at}]`, one entry per status rank at most: statuses only move forward.
const HISTORY: &str = "history";
const SENT_BY: &str = "sent_by";
const KIND_MESSAGE: &str = "message";

/// How long a message's log entry is kept.
const RETENTION: time::Duration = time::Duration::days(90);

/// A message as the log knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub id: MessageId,
    pub to: PhoneNumber,
    /// The number it was sent from, or the Messaging Service SID.
    pub from: String,
    pub status: MessageStatus,
    pub provider_sid: Option<String>,
    pub error_code: Option<u32>,
    pub segments: u32,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub history: Vec<(MessageStatus, OffsetDateTime)>,
    /// The id of the service key that sent it (`sms-send`); none for a verification's code.
    pub sent_by: Option<String>,
}

impl MessageRecord {
    /// A new message, `queued` at `now`, before the provider has it.
    pub fn queued(to: PhoneNumber, from: &str, segments: u32, now: OffsetDateTime) -> Self {
        MessageRecord {
            id: MessageId::random(),
            to,
            from: from.to_owned(),
            status: MessageStatus::Queued,
            provider_sid: None,
            error_code: None,
            segments,
            created_at: now,
            updated_at: now,
            history: vec![(MessageStatus::Queued, now)],
            sent_by: None,
        }
    }

    /// The same, sent by the service key `key_id`.
    pub fn sent_by(self, key_id: &str) -> Self {
        MessageRecord {
            sent_by: Some(key_id.to_owned()),
            ..self
        }
    }

    /// Whether the service key `key_id` may read this entry: the key that sent it, or any for
    /// a verification's code (which no key sent).
    pub fn is_visible_to(&self, key_id: &str) -> bool {
        self.sent_by
            .as_deref()
            .is_none_or(|sender| sender == key_id)
    }
}

fn history_entry(status: MessageStatus, at: OffsetDateTime) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        (STATUS.to_owned(), s(status.as_str())),
        ("at".to_owned(), millis_av(at)),
    ]))
}

/// A message's entry as an item.
fn message_item(record: &MessageRecord) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        (PK.to_owned(), s(keys::message_pk(&record.id))),
        (SK.to_owned(), s(keys::MESSAGE_SK)),
        (KIND.to_owned(), s(KIND_MESSAGE)),
        (TO.to_owned(), s(record.to.as_str())),
        (FROM.to_owned(), s(&record.from)),
        (STATUS.to_owned(), s(record.status.as_str())),
        (SEGMENTS.to_owned(), n(record.segments)),
        (CREATED_AT.to_owned(), millis_av(record.created_at)),
        (UPDATED_AT.to_owned(), millis_av(record.updated_at)),
        (
            HISTORY.to_owned(),
            AttributeValue::L(
                record
                    .history
                    .iter()
                    .map(|(status, at)| history_entry(*status, *at))
                    .collect(),
            ),
        ),
        (TTL.to_owned(), ttl_av(record.created_at + RETENTION)),
    ]);
    if let Some(sid) = &record.provider_sid {
        item.insert(PROVIDER_SID.to_owned(), s(sid));
    }
    if let Some(code) = record.error_code {
        item.insert(ERROR_CODE.to_owned(), n(code));
    }
    if let Some(key_id) = &record.sent_by {
        item.insert(SENT_BY.to_owned(), s(key_id));
    }
    item
}

impl Messages {
    /// Writes a new message's entry (never over another).
    pub async fn put(&self, record: &MessageRecord) -> Result<(), StoreError> {
        self.put_new(message_item(record)).await
    }

    /// The write of a new message's entry, for the guard's transaction.
    pub fn new_message(&self, record: &MessageRecord) -> Result<TransactWriteItem, StoreError> {
        self.put_new_item(message_item(record))
    }

    /// Attaches the provider's SID once the provider took the message. The status is left to
    /// the callbacks (which may have come first, and set the same SID).
    pub async fn record_accepted(
        &self,
        id: &MessageId,
        provider_sid: &str,
    ) -> Result<(), StoreError> {
        let update = self
            .client()
            .update_item()
            .table_name(self.table())
            .key(PK, s(keys::message_pk(id)))
            .key(SK, s(keys::MESSAGE_SK))
            .update_expression("SET #sid = :sid")
            .condition_expression(
                "attribute_exists(#pk) AND (attribute_not_exists(#sid) OR #sid = :sid)",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sid", PROVIDER_SID)
            .expression_attribute_values(":sid", s(provider_sid))
            .send()
            .await;
        match update {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(StoreError::Malformed(format!(
                "message {id} already carries another provider SID"
            ))),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// Marks a message the provider did not take as `failed`, with the provider's error code
    /// when it gave one.
    pub async fn mark_failed(
        &self,
        id: &MessageId,
        error_code: Option<u32>,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let from = replaced_by(MessageStatus::Failed);
        self.move_status(id, None, MessageStatus::Failed, error_code, at, &from)
            .await
    }

    /// Marks a message whose hand-over had no answer as `unknown`: only from `queued` (a
    /// callback that came first stays).
    pub async fn mark_unknown(
        &self,
        id: &MessageId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let from = [MessageStatus::Queued];
        self.move_status(id, None, MessageStatus::Unknown, None, at, &from)
            .await
    }

    pub async fn get(&self, id: &MessageId) -> Result<Option<MessageRecord>, StoreError> {
        self.get_item(keys::message_pk(id), keys::MESSAGE_SK)
            .await?
            .map(record_from)
            .transpose()
    }

    /// Moves a message's status forward on a status callback: one conditional write, taken
    /// only when the message exists, is this `provider_sid`'s (or has none yet), and `status`
    /// ranks above the stored one; it records the status in the history and Twilio's error
    /// code. The same callback twice, or callbacks out of order, give the same entry. Returns
    /// whether it changed anything.
    pub async fn advance_status(
        &self,
        id: &MessageId,
        provider_sid: &str,
        status: MessageStatus,
        error_code: Option<u32>,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let from = replaced_by(status);
        self.move_status(id, Some(provider_sid), status, error_code, at, &from)
            .await
    }

    /// The one conditional write behind them all: only from a status of `from`, and, with a
    /// SID, only for the message that carries it (or none yet).
    async fn move_status(
        &self,
        id: &MessageId,
        provider_sid: Option<&str>,
        status: MessageStatus,
        error_code: Option<u32>,
        at: OffsetDateTime,
        from: &[MessageStatus],
    ) -> Result<bool, StoreError> {
        let lower: Vec<&'static str> = from.iter().map(|s| s.as_str()).collect();
        let Some((below, values)) = one_of(&lower) else {
            return Ok(false);
        };
        let mut sets = vec![
            "#status = :status",
            "#updated = :at",
            "#history = list_append(if_not_exists(#history, :empty), :entry)",
        ];
        if error_code.is_some() {
            sets.push("#error = :error");
        }
        let mut condition = format!("attribute_exists(#pk) AND #status {below}");
        if provider_sid.is_some() {
            sets.push("#sid = :sid");
            condition.push_str(" AND (attribute_not_exists(#sid) OR #sid = :sid)");
        }
        let mut update = self
            .client()
            .update_item()
            .table_name(self.table())
            .key(PK, s(keys::message_pk(id)))
            .key(SK, s(keys::MESSAGE_SK))
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression(condition)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#updated", UPDATED_AT)
            .expression_attribute_names("#history", HISTORY)
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":at", millis_av(at))
            .expression_attribute_values(":empty", AttributeValue::L(Vec::new()))
            .expression_attribute_values(
                ":entry",
                AttributeValue::L(vec![history_entry(status, at)]),
            );
        if let Some(code) = error_code {
            update = update
                .expression_attribute_names("#error", ERROR_CODE)
                .expression_attribute_values(":error", n(code));
        }
        if let Some(sid) = provider_sid {
            update = update
                .expression_attribute_names("#sid", PROVIDER_SID)
                .expression_attribute_values(":sid", s(sid));
        }
        let update = values.into_iter().fold(update, |u, (name, value)| {
            u.expression_attribute_values(name, value)
        });
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }
}

/// The statuses a callback with `status` may replace: forward only.
fn replaced_by(status: MessageStatus) -> Vec<MessageStatus> {
    MessageStatus::ALL
        .into_iter()
        .filter(|stored| status.replaces(*stored))
        .collect()
}

fn record_from(item: Item) -> Result<MessageRecord, StoreError> {
    let id = keys::message_id_of(item.string(PK)?)
        .ok_or_else(|| StoreError::Malformed("message key".into()))?;
    let status = |text: &str| {
        MessageStatus::parse(text).ok_or_else(|| StoreError::Malformed(format!("status of {id}")))
    };
    let history = match item.0.get(HISTORY) {
        Some(AttributeValue::L(entries)) => entries
            .iter()
            .map(|entry| {
                let AttributeValue::M(map) = entry else {
                    return Err(StoreError::Malformed(format!("history of {id}")));
                };
                let entry = Item(map.clone());
                Ok((status(entry.string(STATUS)?)?, entry.time("at")?))
            })
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    Ok(MessageRecord {
        to: item.phone(TO)?,
        from: item.string(FROM)?.to_owned(),
        status: status(item.string(STATUS)?)?,
        provider_sid: item.opt_string(PROVIDER_SID).map(str::to_owned),
        error_code: item
            .0
            .get(ERROR_CODE)
            .map(|_| item.number(ERROR_CODE))
            .transpose()?,
        segments: item.number(SEGMENTS)?,
        created_at: item.time(CREATED_AT)?,
        updated_at: item.time(UPDATED_AT)?,
        history,
        sent_by: item.opt_string(SENT_BY).map(str::to_owned),
        id,
    })
}
