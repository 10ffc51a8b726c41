//! Flash-call sessions: written once, counted and closed by conditional updates only.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use time::OffsetDateTime;

use super::item::{Item, millis, millis_av, n, s, ttl_av};
use super::keys::{self, GSI1, GSI1_PK, GSI1_SK, KIND, PK, SK, TTL};
use super::{StoreError, condition_failed, one_of, view};
use crate::phone::PhoneNumber;
use crate::session::{CallStatus, Direction, Refusal, Session, SessionId, SessionState};

const PHONE: &str = "phone";
/// The caller ID's keyed hash (`session::caller_id_hash`), never the number.
const CALLER_ID_HASH: &str = "caller_id_hash";
const STATE: &str = "state";
const ATTEMPTS: &str = "attempts";
const CREATED_AT: &str = "created_at";
const EXPIRES_AT: &str = "expires_at";
const VERIFIED_AT: &str = "verified_at";
const CALL_SID: &str = "call_sid";
const CALL_STATUS: &str = "call_status";
/// `inbound` for an inbound missed call's session; absent for a flash call's.
const DIRECTION: &str = "direction";
const CALL_TO: &str = "call_to";
const TOKEN_ISSUED_AT: &str = "token_issued_at";
/// The session an inbound hold belongs to.
const SESSION_ID: &str = "session_id";
const KIND_SESSION: &str = "session";

/// How long an expired session stays readable (for `status`) before DynamoDB may delete it.
const RETENTION_AFTER_EXPIRY: time::Duration = time::Duration::days(1);

/// What a verification attempt carries to the store.
#[derive(Debug, Clone, Copy)]
pub enum Attempt {
    /// The caller ID did not match: count the attempt.
    Mismatch,
    /// The caller ID matched: count the attempt and close the session, in one write.
    Match,
}

view! {
    /// Flash-call sessions: `request` writes them, `verify` counts attempts, `status` reads.
    Sessions
}

/// What the by-phone index knows of a session.
struct IndexedSession {
    id: SessionId,
    state: SessionState,
    attempts: u32,
    expires_at: OffsetDateTime,
}

/// Why a right answer did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchRefused {
    /// The session refused it (expired, used up, already verified, ...).
    Session(Refusal),
    /// The phone is at its daily cap of failed verifications.
    PhoneLocked,
}

/// A session as an item.
fn session_item(session: &Session) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        (PK.into(), s(keys::session_pk(&session.id))),
        (SK.into(), s(keys::SESSION_SK)),
        (GSI1_PK.into(), s(keys::phone_gsi_pk(&session.phone))),
        (
            GSI1_SK.into(),
            s(keys::session_gsi_sk(
                millis(session.created_at),
                &session.id,
            )),
        ),
        (KIND.into(), s(KIND_SESSION)),
        (PHONE.into(), s(session.phone.as_str())),
        (CALLER_ID_HASH.into(), s(session.caller_id_hash.as_str())),
        (STATE.into(), s(session.state.as_str())),
        (ATTEMPTS.into(), n(session.attempts)),
        (CREATED_AT.into(), millis_av(session.created_at)),
        (EXPIRES_AT.into(), millis_av(session.expires_at)),
        (CALL_STATUS.into(), s(session.call_status.as_str())),
        (
            TTL.into(),
            ttl_av(session.expires_at + RETENTION_AFTER_EXPIRY),
        ),
    ]);
    if let Some(sid) = &session.call_sid {
        item.insert(CALL_SID.into(), s(sid.as_str()));
    }
    if session.direction == Direction::Inbound {
        item.insert(DIRECTION.into(), s(Direction::Inbound.as_str()));
    }
    if let Some(to) = &session.call_to {
        item.insert(CALL_TO.into(), s(to.as_str()));
    }
    if let Some(at) = session.token_issued_at {
        item.insert(TOKEN_ISSUED_AT.into(), millis_av(at));
    }
    item
}

/// The condition every attempt is written under: the session is still open at `:now`.
const OPEN: &str =
    "attribute_exists(#pk) AND #state = :pending AND #attempts < :max AND #expires > :now";

impl Sessions {
    pub async fn put_session(&self, session: &Session) -> Result<(), StoreError> {
        self.put_new(session_item(session)).await
    }

    /// The write of a new session, for the guard's transaction (`Limits::take_allowance`).
    pub fn new_session(&self, session: &Session) -> Result<TransactWriteItem, StoreError> {
        self.put_new_item(session_item(session))
    }

    pub async fn get_session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        self.get_item(keys::session_pk(id), keys::SESSION_SK)
            .await?
            .map(session_from)
            .transpose()
    }

    /// The ids of the phone's newest sessions, newest first, with what the index knows of them
    /// (one Query; the index carries no phone and no caller ID).
    async fn recent_in_index(
        &self,
        phone: &PhoneNumber,
        limit: i32,
    ) -> Result<Vec<IndexedSession>, StoreError> {
        let out = self
            .client()
            .query()
            .table_name(self.table())
            .index_name(GSI1)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", GSI1_PK)
            .expression_attribute_names("#sk", GSI1_SK)
            .expression_attribute_values(":pk", s(keys::phone_gsi_pk(phone)))
            .expression_attribute_values(":prefix", s(keys::SESSION_GSI_SK_PREFIX))
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await
            .map_err(|e| StoreError::sdk("Query", e))?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(|raw| {
                let item = Item(raw);
                Ok(IndexedSession {
                    id: keys::session_id_of(item.string(PK)?)
                        .ok_or_else(|| StoreError::Malformed("session key".into()))?,
                    state: SessionState::parse(item.string(STATE)?)
                        .ok_or_else(|| StoreError::Malformed("session state".into()))?,
                    attempts: item.number(ATTEMPTS)?,
                    expires_at: item.time(EXPIRES_AT)?,
                })
            })
            .collect()
    }

    /// The phone's newest session of `direction` open at `now`: one Query of the index (which
    /// knows no direction), then a consistent GetItem per open candidate, newest first, until
    /// one has that direction.
    pub async fn newest_open(
        &self,
        phone: &PhoneNumber,
        direction: Direction,
        now: OffsetDateTime,
        max_attempts: u32,
        look_at: i32,
    ) -> Result<Option<Session>, StoreError> {
        let candidates = self.recent_in_index(phone, look_at).await?;
        for open in candidates.iter().filter(|c| {
            c.state == SessionState::Pending && c.attempts < max_attempts && c.expires_at > now
        }) {
            let Some(session) = self.get_session(&open.id).await? else {
                continue;
            };
            if &session.phone == phone
                && session.direction == direction
                && session.is_open(now, max_attempts)
            {
                return Ok(Some(session));
            }
        }
        Ok(None)
    }

    /// The hold of an inbound session's `call_to` for its phone until the session expires, for
    /// the session's transaction: refused while another open inbound session of the phone
    /// holds that number.
    pub fn hold_call_to(&self, session: &Session) -> Result<TransactWriteItem, StoreError> {
        let Some(to) = &session.call_to else {
            return Err(StoreError::Malformed(
                "an inbound session without call_to".into(),
            ));
        };
        let put = Put::builder()
            .table_name(self.table())
            .item(PK, s(keys::inbound_hold_pk(&session.phone, to)))
            .item(SK, s(keys::INBOUND_HOLD_SK))
            .item(SESSION_ID, s(session.id.to_string()))
            .item(CALL_TO, s(to.as_str()))
            .item(EXPIRES_AT, millis_av(session.expires_at))
            .item(TTL, ttl_av(session.expires_at))
            .condition_expression("attribute_not_exists(#pk) OR #expires <= :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_values(":now", millis_av(session.created_at))
            .build()?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Which of `numbers` the phone's open inbound sessions hold at `now` (one BatchGetItem).
    pub async fn held_numbers(
        &self,
        phone: &PhoneNumber,
        numbers: &[PhoneNumber],
        now: OffsetDateTime,
    ) -> Result<Vec<PhoneNumber>, StoreError> {
        let keys = numbers
            .iter()
            .map(|to| keys::item_key(keys::inbound_hold_pk(phone, to), keys::INBOUND_HOLD_SK))
            .collect();
        let mut held = Vec::new();
        for item in self.batch_get_all(keys).await? {
            if item.time(EXPIRES_AT)? > now {
                held.push(
                    PhoneNumber::parse(item.string(CALL_TO)?)
                        .map_err(|_| StoreError::Malformed("inbound hold number".into()))?,
                );
            }
        }
        Ok(held)
    }

    /// The open inbound session of `phone` that shows `to` at `now`, by its hold (one
    /// consistent GetItem).
    pub async fn inbound_session(
        &self,
        phone: &PhoneNumber,
        to: &PhoneNumber,
        now: OffsetDateTime,
    ) -> Result<Option<SessionId>, StoreError> {
        let Some(hold) = self
            .get_item(keys::inbound_hold_pk(phone, to), keys::INBOUND_HOLD_SK)
            .await?
        else {
            return Ok(None);
        };
        if hold.time(EXPIRES_AT)? <= now {
            return Ok(None);
        }
        let id = SessionId::parse(hold.string(SESSION_ID)?)
            .map_err(|_| StoreError::Malformed("inbound hold session".into()))?;
        Ok(Some(id))
    }

    /// Issues an inbound session's token, once: one conditional write that the session is
    /// verified by its incoming call, at or after `since`, and has no token yet, in one
    /// transaction with `also` (the failure caps' checks and the phone's trust record).
    pub async fn claim_token(
        &self,
        read: &Session,
        now: OffsetDateTime,
        since: OffsetDateTime,
        also: Vec<TransactWriteItem>,
    ) -> Result<Result<(), MatchRefused>, StoreError> {
        let update = Update::builder()
            .table_name(self.table())
            .set_key(Some(keys::session_key(&read.id)))
            .condition_expression(
                "attribute_exists(#pk) AND #state = :verified AND #direction = :inbound \
                 AND attribute_not_exists(#issued) AND #verified_at >= :since",
            )
            .update_expression("SET #issued = :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#state", STATE)
            .expression_attribute_names("#direction", DIRECTION)
            .expression_attribute_names("#issued", TOKEN_ISSUED_AT)
            .expression_attribute_names("#verified_at", VERIFIED_AT)
            .expression_attribute_values(":verified", s(SessionState::Verified.as_str()))
            .expression_attribute_values(":inbound", s(Direction::Inbound.as_str()))
            .expression_attribute_values(":since", millis_av(since))
            .expression_attribute_values(":now", millis_av(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        self.close_under_lock(update, also, |old| {
            Ok(match old.map(session_from).transpose()? {
                None => Refusal::NotFound,
                Some(s) if s.token_issued_at.is_some() => Refusal::AlreadyVerified,
                Some(s) if s.state == SessionState::Verified => Refusal::Expired,
                Some(_) => Refusal::NotFound,
            })
        })
        .await
    }

    /// The phone's newest sessions, newest first (for the operator and tests: a Query and a
    /// GetItem per session).
    pub async fn recent_sessions(
        &self,
        phone: &PhoneNumber,
        limit: i32,
    ) -> Result<Vec<Session>, StoreError> {
        let mut sessions = Vec::new();
        for indexed in self.recent_in_index(phone, limit).await? {
            if let Some(session) = self.get_session(&indexed.id).await? {
                sessions.push(session);
            }
        }
        Ok(sessions)
    }

    /// Counts one attempt, and for a match also closes the session, in a single conditional
    /// update: the session must exist, be pending, be below `max_attempts` and unexpired at
    /// `now`. Only one request can ever turn a session verified, and no more than
    /// `max_attempts` attempts are ever counted, whatever the concurrency.
    pub async fn record_attempt(
        &self,
        id: &SessionId,
        attempt: Attempt,
        now: OffsetDateTime,
        max_attempts: u32,
    ) -> Result<Result<Session, Refusal>, StoreError> {
        let mut update = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(keys::session_key(id)))
            .condition_expression(OPEN)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#state", STATE)
            .expression_attribute_names("#attempts", ATTEMPTS)
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_values(":pending", s(SessionState::Pending.as_str()))
            .expression_attribute_values(":max", n(max_attempts))
            .expression_attribute_values(":now", millis_av(now))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        update = match attempt {
            Attempt::Mismatch => update.update_expression("SET #attempts = #attempts + :one"),
            Attempt::Match => update
                .update_expression(
                    "SET #attempts = #attempts + :one, #state = :verified, #verified_at = :now",
                )
                .expression_attribute_names("#verified_at", VERIFIED_AT)
                .expression_attribute_values(":verified", s(SessionState::Verified.as_str())),
        };
        match update.send().await {
            Ok(out) => {
                let item = out
                    .attributes
                    .ok_or_else(|| StoreError::Malformed("UpdateItem returned nothing".into()))?;
                Ok(Ok(session_from(Item(item))?))
            }
            Err(e) if condition_failed(&e) => {
                let old = match e.into_service_error() {
                    UpdateItemError::ConditionalCheckFailedException(c) => c.item,
                    _ => None,
                };
                let refusal = refusal_of(old.map(Item), now, max_attempts)?;
                Ok(Err(refusal))
            }
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// Closes the session as verified, counting the attempt, in one transaction with `lock`
    /// (the phone's failure cap, [`super::Limits::failure_lock_check`]): a phone at its cap
    /// cannot verify, whatever the session. On success the session is as `read` with the
    /// attempt counted and `verified_at` = `now`.
    pub async fn record_match(
        &self,
        read: &Session,
        now: OffsetDateTime,
        max_attempts: u32,
        also: Vec<TransactWriteItem>,
    ) -> Result<Result<Session, MatchRefused>, StoreError> {
        let update = Update::builder()
            .table_name(self.table())
            .set_key(Some(keys::session_key(&read.id)))
            .condition_expression(OPEN)
            .update_expression(
                "SET #attempts = #attempts + :one, #state = :verified, #verified_at = :now",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#state", STATE)
            .expression_attribute_names("#attempts", ATTEMPTS)
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_names("#verified_at", VERIFIED_AT)
            .expression_attribute_values(":pending", s(SessionState::Pending.as_str()))
            .expression_attribute_values(":verified", s(SessionState::Verified.as_str()))
            .expression_attribute_values(":max", n(max_attempts))
            .expression_attribute_values(":now", millis_av(now))
            .expression_attribute_values(":one", n(1))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        let closed = self
            .close_under_lock(update, also, |old| refusal_of(old, now, max_attempts))
            .await?;
        Ok(closed.map(|()| {
            let mut verified = read.clone();
            verified.attempts += 1;
            verified.state = SessionState::Verified;
            verified.verified_at = Some(now);
            verified
        }))
    }

    /// Records the call the gateway placed for a pending session, unless a status callback got
    /// there first (it stored the SID, and a later status than `queued`).
    pub async fn record_call_placed(
        &self,
        id: &SessionId,
        call_sid: &str,
    ) -> Result<(), StoreError> {
        self.set_call(id, Some(call_sid), CallStatus::Queued, None)
            .await
    }

    /// Moves a session's call status forward on a provider's status callback: one conditional
    /// write, taken only when the session exists, its call is this `call_sid` (or it has none
    /// yet), and `status` ranks above the stored one. So the same callback twice, or callbacks
    /// out of order, leave the same record, and a terminal status stays. Returns whether it
    /// changed anything.
    pub async fn advance_call_status(
        &self,
        id: &SessionId,
        call_sid: &str,
        status: CallStatus,
    ) -> Result<bool, StoreError> {
        let lower: Vec<&'static str> = CallStatus::ALL
            .into_iter()
            .filter(|s| s.rank() < status.rank())
            .map(CallStatus::as_str)
            .collect();
        let Some((below, values)) = one_of(&lower) else {
            return Ok(false);
        };
        let update = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(keys::session_key(id)))
            .update_expression("SET #call_status = :status, #call_sid = :sid")
            .condition_expression(format!(
                "attribute_exists(#pk) AND (attribute_not_exists(#call_sid) OR #call_sid = :sid) \
                 AND (attribute_not_exists(#call_status) OR #call_status {below})"
            ))
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#call_status", CALL_STATUS)
            .expression_attribute_names("#call_sid", CALL_SID)
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":sid", s(call_sid));
        let update = values.into_iter().fold(update, |u, (name, value)| {
            u.expression_attribute_values(name, value)
        });
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// Marks a session whose call could not be placed as failed: it can never be verified.
    pub async fn mark_call_failed(&self, id: &SessionId) -> Result<(), StoreError> {
        self.set_call(id, None, CallStatus::Failed, Some(SessionState::Failed))
            .await
    }

    async fn set_call(
        &self,
        id: &SessionId,
        call_sid: Option<&str>,
        status: CallStatus,
        state: Option<SessionState>,
    ) -> Result<(), StoreError> {
        let mut sets = vec!["#call_status = :status"];
        let mut update = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(keys::session_key(id)))
            // Only a call not yet heard of: a status callback may have come first.
            .condition_expression(
                "attribute_exists(#pk) AND #state = :pending \
                 AND (attribute_not_exists(#call_status) OR #call_status = :not_placed)",
            )
            .expression_attribute_values(":not_placed", s(CallStatus::NotPlaced.as_str()))
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#state", STATE)
            .expression_attribute_names("#call_status", CALL_STATUS)
            .expression_attribute_values(":pending", s(SessionState::Pending.as_str()))
            .expression_attribute_values(":status", s(status.as_str()));
        if let Some(sid) = call_sid {
            sets.push("#call_sid = :sid");
            update = update
                .expression_attribute_names("#call_sid", CALL_SID)
                .expression_attribute_values(":sid", s(sid));
        }
        if let Some(state) = state {
            sets.push("#state = :new_state");
            update = update.expression_attribute_values(":new_state", s(state.as_str()));
        }
        let result = update
            .update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // The session left `pending` meanwhile (verified by a fast user): nothing to record.
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }
}

/// Why an attempt was refused, from the session as it was when the condition failed.
fn refusal_of(
    old: Option<Item>,
    now: OffsetDateTime,
    max_attempts: u32,
) -> Result<Refusal, StoreError> {
    Ok(match old {
        None => Refusal::NotFound,
        Some(item) => session_from(item)?
            .refusal(now, max_attempts)
            // The condition failed, so something refused it; if the old image shows nothing,
            // the session filled up between the two reads.
            .unwrap_or(Refusal::AttemptsExhausted),
    })
}

fn session_from(item: Item) -> Result<Session, StoreError> {
    let pk = item.string(PK)?;
    let id = keys::session_id_of(pk).ok_or_else(|| StoreError::Malformed("session key".into()))?;
    Ok(Session {
        id,
        phone: item.phone(PHONE)?,
        caller_id_hash: item.string(CALLER_ID_HASH)?.to_owned(),
        direction: match item.opt_string(DIRECTION) {
            None => Direction::Outbound,
            Some(d) => Direction::parse(d)
                .ok_or_else(|| StoreError::Malformed(format!("direction of {id}")))?,
        },
        call_to: item
            .opt_string(CALL_TO)
            .map(|_| item.phone(CALL_TO))
            .transpose()?,
        token_issued_at: item.opt_time(TOKEN_ISSUED_AT)?,
        state: SessionState::parse(item.string(STATE)?)
            .ok_or_else(|| StoreError::Malformed(format!("state of {id}")))?,
        attempts: item.number(ATTEMPTS)?,
        created_at: item.time(CREATED_AT)?,
        expires_at: item.time(EXPIRES_AT)?,
        verified_at: item.opt_time(VERIFIED_AT)?,
        call_sid: item.opt_string(CALL_SID).map(str::to_owned),
        call_status: item
            .opt_string(CALL_STATUS)
            .and_then(CallStatus::parse)
            .unwrap_or(CallStatus::NotPlaced),
    })
}
