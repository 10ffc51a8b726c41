//! Code verifications (`sms-verify`): one item per phone, which a new code replaces, so that a
//! resend invalidates the last code by construction. Checks are conditional updates; the one
//! success is the update that turns the item verified.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use time::OffsetDateTime;

use super::item::{Item, millis_av, n, s, ttl_av};
use super::keys::{self, KIND, PK, SK, TTL};
use super::sessions::MatchRefused;
use super::{StoreError, condition_failed, view};
use crate::phone::PhoneNumber;
use crate::session::Refusal;
use crate::sms::MessageId;
use crate::sms::code::{CodeChannel, CodeMethod, CodeState, CodeVerification, VerificationId};

view! {
    /// Code verifications: `sms-verify` writes, checks and closes them.
    Codes
}

const ID: &str = "verification_id";
const METHOD: &str = "method";
const CODE_HASH: &str = "code_hash";
const PROVIDER_SID: &str = "provider_sid";
const STATE: &str = "state";
const CHECKS: &str = "checks";
const CREATED_AT: &str = "created_at";
const EXPIRES_AT: &str = "expires_at";
const VERIFIED_AT: &str = "verified_at";
const MESSAGE_ID: &str = "message_id";
const NETWORK: &str = "network";
/// The code's channel (`voice`, `whatsapp`); absent for an SMS.
const CHANNEL: &str = "channel";
const KIND_CODE: &str = "code_verification";

/// How long a closed or expired verification stays readable (to answer "expired" or "already
/// verified" rather than "not found") before DynamoDB may delete it.
const RETENTION_AFTER_EXPIRY: time::Duration = time::Duration::days(1);

/// The condition of every check: this verification, still open at `:now`.
const OPEN: &str = "#id = :id AND #state = :pending AND #checks < :max AND #expires > :now";

fn code_item(v: &CodeVerification) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        (PK.to_owned(), s(keys::code_pk(&v.phone))),
        (SK.to_owned(), s(keys::CODE_SK)),
        (KIND.to_owned(), s(KIND_CODE)),
        (ID.to_owned(), s(v.id.to_string())),
        (STATE.to_owned(), s(v.state.as_str())),
        (CHECKS.to_owned(), n(v.checks)),
        (CREATED_AT.to_owned(), millis_av(v.created_at)),
        (EXPIRES_AT.to_owned(), millis_av(v.expires_at)),
        (
            TTL.to_owned(),
            ttl_av(v.expires_at + RETENTION_AFTER_EXPIRY),
        ),
    ]);
    let method = match &v.method {
        CodeMethod::Hashed { hash } => {
            item.insert(CODE_HASH.to_owned(), s(hash));
            "hashed"
        }
        CodeMethod::TestNumber => "test_number",
        CodeMethod::Delegated { provider_sid } => {
            if let Some(sid) = provider_sid {
                item.insert(PROVIDER_SID.to_owned(), s(sid));
            }
            "delegated"
        }
    };
    item.insert(METHOD.to_owned(), s(method));
    if let Some(id) = &v.message_id {
        item.insert(MESSAGE_ID.to_owned(), s(id.to_string()));
    }
    if let Some(network) = &v.network {
        item.insert(NETWORK.to_owned(), s(network));
    }
    if v.channel != CodeChannel::Sms {
        item.insert(CHANNEL.to_owned(), s(v.channel.as_str()));
    }
    item
}

fn code_from(phone: &PhoneNumber, item: Item) -> Result<CodeVerification, StoreError> {
    let malformed = |what: &str| StoreError::Malformed(format!("code verification {what}"));
    let method = match item.string(METHOD)? {
        "hashed" => CodeMethod::Hashed {
            hash: item.string(CODE_HASH)?.to_owned(),
        },
        "test_number" => CodeMethod::TestNumber,
        "delegated" => CodeMethod::Delegated {
            provider_sid: item.opt_string(PROVIDER_SID).map(str::to_owned),
        },
        _ => return Err(malformed("method")),
    };
    Ok(CodeVerification {
        id: VerificationId::parse(item.string(ID)?).map_err(|_| malformed("id"))?,
        phone: phone.clone(),
        method,
        channel: match item.opt_string(CHANNEL) {
            None => CodeChannel::Sms,
            Some(c) => CodeChannel::parse(c).ok_or_else(|| malformed("channel"))?,
        },
        state: CodeState::parse(item.string(STATE)?).ok_or_else(|| malformed("state"))?,
        checks: item.number(CHECKS)?,
        created_at: item.time(CREATED_AT)?,
        expires_at: item.time(EXPIRES_AT)?,
        verified_at: item.opt_time(VERIFIED_AT)?,
        message_id: item
            .opt_string(MESSAGE_ID)
            .map(|id| MessageId::parse(id).map_err(|_| malformed("message id")))
            .transpose()?,
        network: item.opt_string(NETWORK).map(str::to_owned),
    })
}

impl Codes {
    /// The write of a phone's new verification, for the guard's transaction: it replaces the
    /// phone's last one, whatever its state, so that the last code stops working.
    pub fn replace(&self, v: &CodeVerification) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(self.table())
            .set_item(Some(code_item(v)))
            .build()?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The removal of verification `id` of `phone` (if it is still the phone's current one),
    /// for a start whose code was never sent.
    pub fn remove(
        &self,
        phone: &PhoneNumber,
        id: &VerificationId,
    ) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(self.table())
            .set_key(Some(keys::code_key(phone)))
            .condition_expression("attribute_not_exists(#id) OR #id = :id")
            .expression_attribute_names("#id", ID)
            .expression_attribute_values(":id", s(id.to_string()))
            .build()?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// The phone's current verification, read consistently.
    pub async fn current(
        &self,
        phone: &PhoneNumber,
    ) -> Result<Option<CodeVerification>, StoreError> {
        self.get_item(keys::code_pk(phone), keys::CODE_SK)
            .await?
            .map(|item| code_from(phone, item))
            .transpose()
    }

    /// Stores Verify's SID of a delegated verification (for its checks).
    pub async fn set_provider_sid(
        &self,
        phone: &PhoneNumber,
        id: &VerificationId,
        sid: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(keys::code_key(phone)))
            .update_expression("SET #sid = :sid")
            .condition_expression("#id = :id")
            .expression_attribute_names("#sid", PROVIDER_SID)
            .expression_attribute_names("#id", ID)
            .expression_attribute_values(":sid", s(sid))
            .expression_attribute_values(":id", s(id.to_string()))
            .send()
            .await;
        match result {
            // Replaced meanwhile by a newer start: nothing to record.
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// Counts one wrong check of `read` in a single conditional update: it must still be the
    /// phone's verification, pending, below `max_checks` and unexpired at `now`. So no more
    /// than `max_checks` checks are ever counted, whatever the concurrency.
    pub async fn count_wrong(
        &self,
        read: &CodeVerification,
        now: OffsetDateTime,
        max_checks: u32,
    ) -> Result<Result<CodeVerification, Refusal>, StoreError> {
        let result = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(keys::code_key(&read.phone)))
            .update_expression("SET #checks = #checks + :one")
            .condition_expression(OPEN)
            .set_expression_attribute_names(Some(open_names()))
            .set_expression_attribute_values(Some(open_values(&read.id, now, max_checks)))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item = out
                    .attributes
                    .ok_or_else(|| StoreError::Malformed("UpdateItem returned nothing".into()))?;
                Ok(Ok(code_from(&read.phone, Item(item))?))
            }
            Err(e) if condition_failed(&e) => {
                let old = match e.into_service_error() {
                    UpdateItemError::ConditionalCheckFailedException(c) => c.item,
                    _ => None,
                };
                Ok(Err(self.refusal_of(
                    read,
                    old.map(Item),
                    now,
                    max_checks,
                )?))
            }
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// Counts the right check and closes `read` as verified, in one transaction with `lock`
    /// (the phone's failure cap): only one check can ever turn it verified.
    pub async fn record_success(
        &self,
        read: &CodeVerification,
        now: OffsetDateTime,
        max_checks: u32,
        also: Vec<TransactWriteItem>,
    ) -> Result<Result<CodeVerification, MatchRefused>, StoreError> {
        let update = Update::builder()
            .table_name(self.table())
            .set_key(Some(keys::code_key(&read.phone)))
            .update_expression(
                "SET #checks = #checks + :one, #state = :verified, #verified_at = :now",
            )
            .condition_expression(OPEN)
            .set_expression_attribute_names(Some(open_names()))
            .set_expression_attribute_values(Some(open_values(&read.id, now, max_checks)))
            .expression_attribute_names("#verified_at", VERIFIED_AT)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":verified", s(CodeState::Verified.as_str()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        let closed = self
            .close_under_lock(update, also, |old| {
                self.refusal_of(read, old, now, max_checks)
            })
            .await?;
        Ok(closed.map(|()| {
            let mut verified = read.clone();
            verified.checks += 1;
            verified.state = CodeState::Verified;
            verified.verified_at = Some(now);
            verified
        }))
    }

    /// Why a check of `read` was refused, from the item as it was when the condition failed.
    fn refusal_of(
        &self,
        read: &CodeVerification,
        old: Option<Item>,
        now: OffsetDateTime,
        max_checks: u32,
    ) -> Result<Refusal, StoreError> {
        Ok(match old {
            None => Refusal::NotFound,
            Some(item) => code_from(&read.phone, item)?
                .refusal(Some(&read.id), now, max_checks)
                // The condition failed, so something refused it; if the old image shows
                // nothing, the checks filled up between the two reads.
                .unwrap_or(Refusal::AttemptsExhausted),
        })
    }
}

fn open_names() -> HashMap<String, String> {
    HashMap::from([
        ("#id".to_owned(), ID.to_owned()),
        ("#state".to_owned(), STATE.to_owned()),
        ("#checks".to_owned(), CHECKS.to_owned()),
        ("#expires".to_owned(), EXPIRES_AT.to_owned()),
    ])
}

fn open_values(
    id: &VerificationId,
    now: OffsetDateTime,
    max_checks: u32,
) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (":id".to_owned(), s(id.to_string())),
        (":pending".to_owned(), s(CodeState::Pending.as_str())),
        (":max".to_owned(), n(max_checks)),
        (":now".to_owned(), millis_av(now)),
    ])
}
