//! Idempotency keys (draft-ietf-httpapi-idempotency-key-header), the way Powertools'
//! idempotency utility keeps them: a conditional put claims the key with the request's hash
//! and an in-progress expiry; the completed response replaces it; a failure before anything
//! happened deletes it. Every decision is a condition, never a read-then-write.

use std::time::Duration;

use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use time::OffsetDateTime;

use super::item::{Item, millis_av, n, s, ttl_av};
use super::keys::{self, PK, SK, TTL};
use super::{StoreError, condition_failed, view};

view! {
    /// Idempotency keys: `sms-send` claims, completes and releases them.
    Idempotency
}

const REQUEST_HASH: &str = "request_hash";
const STATE: &str = "state";
const IN_PROGRESS_UNTIL: &str = "in_progress_until";
const EXPIRES_AT: &str = "expires_at";
const RESPONSE_STATUS: &str = "response_status";
const RESPONSE_BODY: &str = "response_body";
/// What the request made, once it knows (`sms-send`: the message's id).
const RESOURCE: &str = "resource";
const KIND_IDEMPOTENCY: &str = "idempotency";
const IN_PROGRESS: &str = "in_progress";
const COMPLETED: &str = "completed";

/// One key of one caller at one endpoint, and the hash of the request that came with it
/// (which covers the caller too).
#[derive(Debug, Clone, Copy)]
pub struct KeyUse<'a> {
    pub endpoint: &'a str,
    /// Who uses the key: a service key's id. Keys are scoped to it.
    pub caller: &'a str,
    pub key: &'a str,
    pub request_hash: &'a str,
}

impl KeyUse<'_> {
    fn pk(&self) -> String {
        keys::idempotency_pk(self.endpoint, self.caller, self.key)
    }
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is this request's now: go on, then `complete` or `release` it.
    Claimed,
    /// The key was used with another request.
    Reused,
    /// The first request with this key has not finished, or its outcome is not known yet;
    /// `resource` is what it made, if it said (`hold`).
    InProgress { resource: Option<String> },
    /// The first request finished with this response.
    Completed { status: u16, body: String },
}

impl Idempotency {
    /// Claims `key` for `in_progress_for` (longer than the request can take: a request that
    /// died leaves a key that can be claimed again after it), kept `keep_for` in all.
    pub async fn claim(
        &self,
        key: KeyUse<'_>,
        now: OffsetDateTime,
        in_progress_for: Duration,
        keep_for: Duration,
    ) -> Result<Claim, StoreError> {
        let expires = now + keep_for;
        let put = self
            .client()
            .put_item()
            .table_name(self.table())
            .item(PK, s(key.pk()))
            .item(SK, s(keys::IDEMPOTENCY_SK))
            .item(keys::KIND, s(KIND_IDEMPOTENCY))
            .item(REQUEST_HASH, s(key.request_hash))
            .item(STATE, s(IN_PROGRESS))
            .item(IN_PROGRESS_UNTIL, millis_av(now + in_progress_for))
            .item(EXPIRES_AT, millis_av(expires))
            .item(TTL, ttl_av(expires))
            // Free, expired (DynamoDB deletes late), or abandoned in progress.
            .condition_expression(
                "attribute_not_exists(#pk) OR #expires <= :now \
                 OR (#state = :in_progress AND #until <= :now)",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_names("#state", STATE)
            .expression_attribute_names("#until", IN_PROGRESS_UNTIL)
            .expression_attribute_values(":now", millis_av(now))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let error = match put {
            Ok(_) => return Ok(Claim::Claimed),
            Err(e) if condition_failed(&e) => e,
            Err(e) => return Err(StoreError::sdk("PutItem", e)),
        };
        let old = error
            .as_service_error()
            .and_then(|e| match e {
                aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => c.item.clone(),
                _ => None,
            })
            .map(Item)
            .ok_or_else(|| StoreError::Malformed("idempotency key without its item".into()))?;
        if old.string(REQUEST_HASH)? != key.request_hash {
            return Ok(Claim::Reused);
        }
        if old.string(STATE)? != COMPLETED {
            return Ok(Claim::InProgress {
                resource: old.opt_string(RESOURCE).map(str::to_owned),
            });
        }
        Ok(Claim::Completed {
            status: old.number(RESPONSE_STATUS)?,
            body: old.string(RESPONSE_BODY)?.to_owned(),
        })
    }

    /// Stores the response of the request that holds the key, for replays.
    pub async fn complete(
        &self,
        key: KeyUse<'_>,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError> {
        self.update_held(
            key,
            "SET #state = :completed, #status = :status, #body = :body REMOVE #until",
            &[
                ("#status", RESPONSE_STATUS),
                ("#body", RESPONSE_BODY),
                ("#until", IN_PROGRESS_UNTIL),
            ],
            vec![
                (":completed", s(COMPLETED)),
                (":status", n(status)),
                (":body", s(body)),
            ],
        )
        .await
    }

    /// Keeps the key in progress until `until` for a request whose outcome is not known yet
    /// (the provider got it and did not answer), naming what it made: retries see it in
    /// progress, and the endpoint can settle it from `resource` once that is known.
    pub async fn hold(
        &self,
        key: KeyUse<'_>,
        until: OffsetDateTime,
        resource: &str,
    ) -> Result<(), StoreError> {
        self.update_held(
            key,
            "SET #until = :until, #resource = :resource",
            &[("#until", IN_PROGRESS_UNTIL), ("#resource", RESOURCE)],
            vec![(":until", millis_av(until)), (":resource", s(resource))],
        )
        .await
    }

    /// Updates the key while this request holds it (in progress, with its hash).
    async fn update_held(
        &self,
        key: KeyUse<'_>,
        expression: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, aws_sdk_dynamodb::types::AttributeValue)>,
    ) -> Result<(), StoreError> {
        let mut update = self
            .client()
            .update_item()
            .table_name(self.table())
            .key(PK, s(key.pk()))
            .key(SK, s(keys::IDEMPOTENCY_SK))
            .update_expression(expression)
            .condition_expression("#state = :in_progress AND #hash = :hash")
            .expression_attribute_names("#state", STATE)
            .expression_attribute_names("#hash", REQUEST_HASH)
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":hash", s(key.request_hash));
        for (name, attribute) in names {
            update = update.expression_attribute_names(*name, *attribute);
        }
        for (name, value) in values {
            update = update.expression_attribute_values(name, value);
        }
        match update.send().await {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(StoreError::Malformed(
                "the idempotency key was no longer in progress".into(),
            )),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// Frees a key whose request failed before it changed anything, so that a retry can
    /// succeed. A key completed, or claimed again since, is left alone.
    pub async fn release(&self, key: KeyUse<'_>) -> Result<(), StoreError> {
        let delete = self
            .client()
            .delete_item()
            .table_name(self.table())
            .key(PK, s(key.pk()))
            .key(SK, s(keys::IDEMPOTENCY_SK))
            .condition_expression("#state = :in_progress AND #hash = :hash")
            .expression_attribute_names("#state", STATE)
            .expression_attribute_names("#hash", REQUEST_HASH)
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":hash", s(key.request_hash))
            .send()
            .await;
        match delete {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(StoreError::sdk("DeleteItem", e)),
        }
    }
}
