//! Attribute names and key formats of the single table. Every key string is built here.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::item::millis;
use crate::call::{CallId, EventId};
use crate::phone::PhoneNumber;
use crate::session::SessionId;
use crate::sms::MessageId;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1: &str = "gsi1";
pub const GSI1_PK: &str = "gsi1pk";
pub const GSI1_SK: &str = "gsi1sk";
/// The TTL attribute (epoch seconds). DynamoDB deletes late: reads check expiry themselves.
pub const TTL: &str = "ttl";
pub const KIND: &str = "kind";

pub fn session_pk(id: &SessionId) -> String {
    format!("SESSION#{id}")
}
pub const SESSION_SK: &str = "SESSION";

/// The primary key of the item `pk`, `sk`.
pub fn item_key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(pk)),
        (SK.to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

/// The primary key of a session's item.
pub fn session_key(id: &SessionId) -> HashMap<String, AttributeValue> {
    item_key(session_pk(id), SESSION_SK)
}

/// The session a session key names.
pub fn session_id_of(pk: &str) -> Option<SessionId> {
    SessionId::parse(pk.strip_prefix("SESSION#")?).ok()
}

/// The phone's partition in the by-phone index: sessions (and later other records) of a number.
pub fn phone_gsi_pk(phone: &PhoneNumber) -> String {
    format!("PHONE#{phone}")
}

/// Sessions sort by creation time inside the phone's index partition; the id breaks ties.
pub fn session_gsi_sk(created_millis: i64, id: &SessionId) -> String {
    format!("SESSION#{created_millis:015}#{id}")
}
pub const SESSION_GSI_SK_PREFIX: &str = "SESSION#";

/// A phone's current code verification (`sms-verify`): one per phone.
pub fn code_pk(phone: &PhoneNumber) -> String {
    format!("CODE#{phone}")
}
pub const CODE_SK: &str = "CODE";

pub fn code_key(phone: &PhoneNumber) -> HashMap<String, AttributeValue> {
    item_key(code_pk(phone), CODE_SK)
}

pub fn limit_pk(scope: &str, subject: &str, window: i64) -> String {
    format!("LIMIT#{scope}#{subject}#{window}")
}
pub const LIMIT_SK: &str = "LIMIT";

/// The cooldown of one phone in one scope (`flash`, `sms`).
/// The pool number `to` held for an open inbound session of `phone` until it expires: a phone
/// has at most one open inbound session per number it may call, so a call names its session.
pub fn inbound_hold_pk(phone: &PhoneNumber, to: &PhoneNumber) -> String {
    format!("INBOUND#{phone}#{to}")
}
pub const INBOUND_HOLD_SK: &str = "INBOUND";

pub fn cooldown_pk(phone: &PhoneNumber, scope: &str) -> String {
    format!("COOLDOWN#{phone}#{scope}")
}
pub const COOLDOWN_SK: &str = "COOLDOWN";

pub const POOL_PK: &str = "POOL";
pub fn pool_sk(number: &PhoneNumber) -> String {
    format!("NUMBER#{number}")
}

/// A call event, written once by its id.
pub fn event_pk(id: &EventId) -> String {
    format!("EVENT#{id}")
}
pub const EVENT_SK: &str = "EVENT";

/// A call's two records, one per party, keyed by the party's role.
pub fn call_pk(call: &CallId) -> String {
    format!("CALL#{call}")
}
pub const CALLING_SK: &str = "CALLING";

/// One shard of a number's call statistics, one item per month (`2026-11`) under it.
pub fn call_stats_pk(number: &str, shard: u32) -> String {
    format!("CALLSTATS#{number}#{shard}")
}
pub const CALLED_SK: &str = "CALLED";

/// A number's history partition in the by-phone index.
pub fn history_gsi_pk(number: &PhoneNumber) -> String {
    format!("HISTORY#{number}")
}

/// A call's place in a history: its time (event times are never before 2000, so the
/// milliseconds are positive and 15 digits sort them), then the id for ties.
pub fn history_gsi_sk(time: OffsetDateTime, call: &CallId) -> String {
    history_gsi_sk_at(millis(time), call.as_str())
}

/// The history sort key at `millis`; with `call` empty, the lowest key of that millisecond,
/// with `call` = `~` (after every id character) the highest.
pub fn history_gsi_sk_at(millis: i64, call: &str) -> String {
    format!("T#{:015}#{call}", millis.max(0))
}
/// The highest millisecond a history key holds.
pub const HISTORY_MAX_MILLIS: i64 = 999_999_999_999_999;

/// A message of the SMS log.
pub fn message_pk(id: &MessageId) -> String {
    format!("MESSAGE#{id}")
}
pub const MESSAGE_SK: &str = "MESSAGE";

/// The message a message key names.
pub fn message_id_of(pk: &str) -> Option<MessageId> {
    MessageId::parse(pk.strip_prefix("MESSAGE#")?).ok()
}

/// An Idempotency-Key of one caller (a service key's id) at an endpoint, by the SHA-256 of the
/// key: a caller's string never becomes part of a key as it is, every key has the same length,
/// and two callers' keys never meet.
pub fn idempotency_pk(endpoint: &str, caller: &str, key: &str) -> String {
    use sha2::{Digest, Sha256};
    format!(
        "IDEMPOTENCY#{endpoint}#{caller}#{}",
        hex::encode(Sha256::digest(key.as_bytes()))
    )
}
pub const IDEMPOTENCY_SK: &str = "IDEMPOTENCY";
