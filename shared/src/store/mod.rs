//! The DynamoDB store: the only module that talks to DynamoDB. One table, keys built in
//! `keys`, items read through `Item`, one view per capability (sessions, limits, pool, calls):
//! an endpoint holds the views it uses, which are also what its IAM policy must allow.
//!
//! The toolkit every view shares is here: the error that tells an outage from a bug, the check
//! for a failed condition, the unpacking of a cancelled transaction, and the paging loop.

pub mod calls;
pub mod codes;
pub mod erasure;
pub mod idempotency;
mod item;
pub mod keys;
pub mod messages;
pub mod pool;
pub mod rate_limits;
pub mod reputation;
pub mod schema;
pub mod sessions;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{CancellationReason, TransactWriteItem};

pub use calls::Calls;
pub use codes::Codes;
pub use idempotency::Idempotency;
pub use item::Item;
pub use messages::Messages;
pub use pool::Pool;
pub use rate_limits::Limits;
pub use reputation::Reputation;
pub use sessions::Sessions;

/// A handle on the table; cheap to clone. Endpoints use its views.
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    table: std::sync::Arc<str>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// DynamoDB could not be reached, timed out, throttled or failed on its side: retryable.
    #[error("DynamoDB {operation} unavailable: {cause}")]
    Unavailable {
        operation: &'static str,
        cause: String,
    },
    #[error("DynamoDB {operation} failed: {cause}")]
    Dynamo {
        operation: &'static str,
        cause: String,
    },
    #[error("stored item is malformed: {0}")]
    Malformed(String),
    #[error("a request could not be built: {0}")]
    Build(#[from] aws_sdk_dynamodb::error::BuildError),
}

/// The condition of a put that never overwrites.
const NEW_ITEM: &str = "attribute_not_exists(#pk)";

/// How often a transaction that lost a race is sent again.
const CONFLICT_RETRIES: u32 = 16;
/// The backoff of a transaction's retries (20 ms, doubling to 400 ms: sixteen retries wait
/// about 2.5 s on average, 5 s at most; measured, ten were too few for 50 concurrent requests
/// on one counter on a loaded machine).
const CONFLICT_BACKOFF: crate::backoff::Backoff = crate::backoff::Backoff {
    base: std::time::Duration::from_millis(20),
    cap: std::time::Duration::from_millis(400),
};

/// Service error codes that mean "not now" rather than "never".
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    // A plain write that met a transaction on its item: retried by the SDK
    // (`aws::RetryConflicts`), then an outage.
    "TransactionConflictException",
];

/// Cancellation reasons that mean "not now".
const RETRYABLE_REASONS: &[&str] = &[
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "TransactionConflict",
];

impl StoreError {
    /// Classifies an SDK error: no connection, a timeout, throttling or a 5xx is an outage;
    /// anything else is a bug to look at. The cause names the error, not the response body.
    pub fn sdk<E>(operation: &'static str, err: SdkError<E>) -> Self
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        let unavailable = match &err {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(ctx) => {
                ctx.raw().status().is_server_error()
                    || ctx
                        .err()
                        .code()
                        .is_some_and(|c| RETRYABLE_CODES.contains(&c))
            }
            _ => false,
        };
        let cause = match &err {
            SdkError::ServiceError(ctx) => {
                format!(
                    "{} (HTTP {})",
                    ctx.err().code().unwrap_or("unknown"),
                    ctx.raw().status().as_u16()
                )
            }
            other => DisplayErrorContext(other).to_string(),
        };
        if unavailable {
            StoreError::Unavailable { operation, cause }
        } else {
            StoreError::Dynamo { operation, cause }
        }
    }

    /// A transaction cancelled for reasons no caller handled.
    fn cancelled(reasons: &[CancellationReason]) -> Self {
        let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("None")).collect();
        let cause = format!("transaction cancelled: [{}]", codes.join(", "));
        let operation = "TransactWriteItems";
        // A failed condition that no caller took as its outcome: a concurrent request changed
        // the item first (two inbound sessions of a phone holding one number). Sent again, the
        // request reads the new state.
        if codes
            .iter()
            .any(|c| RETRYABLE_REASONS.contains(c) || *c == "ConditionalCheckFailed")
        {
            StoreError::Unavailable { operation, cause }
        } else {
            StoreError::Dynamo { operation, cause }
        }
    }

    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// Whether a write was refused by its condition (a domain outcome, not a failure).
pub fn condition_failed<E: ProvideErrorMetadata>(err: &SdkError<E>) -> bool {
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

/// The per-item reasons of a cancelled transaction; any other failure is an error.
pub fn cancellation_reasons(
    err: SdkError<TransactWriteItemsError>,
) -> Result<Cancelled, StoreError> {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
            Ok(Cancelled(c.cancellation_reasons().to_vec()))
        }
        _ => Err(StoreError::sdk("TransactWriteItems", err)),
    }
}

/// The reasons of a cancelled transaction, one per item in the order the items were sent.
pub struct Cancelled(pub Vec<CancellationReason>);

impl Cancelled {
    /// Whether the item at `index` failed its condition.
    pub fn condition_failed(&self, index: usize) -> bool {
        self.code(index) == "ConditionalCheckFailed"
    }

    pub fn code(&self, index: usize) -> &str {
        self.0.get(index).and_then(|r| r.code()).unwrap_or("None")
    }

    /// The item as it was before the transaction, when its condition failed and it existed.
    pub fn old_item(&self, index: usize) -> Option<Item> {
        self.0.get(index)?.item().cloned().map(Item)
    }

    pub fn any(&self, code: &str) -> bool {
        self.0.iter().any(|r| r.code() == Some(code))
    }

    /// The error to return when no reason was a domain outcome.
    pub fn into_error(self) -> StoreError {
        StoreError::cancelled(&self.0)
    }
}

impl Store {
    pub fn new(client: Client, table: &str) -> Self {
        Store {
            client,
            table: table.into(),
        }
    }

    pub fn from_sdk_config(config: &aws_config::SdkConfig, table: &str) -> Self {
        Self::new(crate::aws::dynamodb_client(config), table)
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn sessions(&self) -> Sessions {
        Sessions(self.clone())
    }

    pub fn limits(&self) -> Limits {
        Limits(self.clone())
    }

    pub fn pool(&self) -> Pool {
        Pool(self.clone())
    }

    pub fn calls(&self) -> Calls {
        Calls(self.clone())
    }

    pub fn idempotency(&self) -> Idempotency {
        Idempotency(self.clone())
    }

    pub fn messages(&self) -> Messages {
        Messages(self.clone())
    }

    pub fn codes(&self) -> Codes {
        Codes(self.clone())
    }

    pub fn reputation(&self) -> Reputation {
        Reputation(self.clone())
    }

    /// Runs a transaction. One that lost a race with another transaction on the same items
    /// (`TransactionConflict`, nothing refused by a condition) is sent again after a full-jitter
    /// backoff, up to [`CONFLICT_RETRIES`] times; a refusal comes back as its reasons.
    pub(crate) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Result<(), Cancelled>, StoreError> {
        let mut attempt = 0;
        loop {
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let Err(err) = sent else {
                return Ok(Ok(()));
            };
            let cancelled = cancellation_reasons(err)?;
            let raced =
                cancelled.any("TransactionConflict") && !cancelled.any("ConditionalCheckFailed");
            if !raced || attempt >= CONFLICT_RETRIES {
                return Ok(Err(cancelled));
            }
            attempt += 1;
            tokio::time::sleep(CONFLICT_BACKOFF.full_jitter(attempt)).await;
        }
    }

    /// Closes a verification (a session, a code) by `update`, in one transaction with `also`
    /// (the failure caps' checks, [`Limits::failure_lock_check`], and the phone's trust
    /// record): a phone at a cap cannot verify, whatever the verification. The update's refusal
    /// comes back as `refused` makes it of the item as it was; a cap's as
    /// [`MatchRefused::PhoneLocked`].
    pub(crate) async fn close_under_lock(
        &self,
        update: aws_sdk_dynamodb::types::Update,
        also: Vec<TransactWriteItem>,
        refused: impl FnOnce(Option<Item>) -> Result<crate::session::Refusal, StoreError>,
    ) -> Result<Result<(), sessions::MatchRefused>, StoreError> {
        let count = also.len();
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        items.extend(also);
        let Err(cancelled) = self.transact(items).await? else {
            return Ok(Ok(()));
        };
        if cancelled.condition_failed(0) {
            let refusal = refused(cancelled.old_item(0))?;
            return Ok(Err(sessions::MatchRefused::Session(refusal)));
        }
        // The other items' only conditions are the failure caps' checks.
        if (1..=count).any(|i| cancelled.condition_failed(i)) {
            return Ok(Err(sessions::MatchRefused::PhoneLocked));
        }
        Err(cancelled.into_error())
    }

    /// Writes a new item, never over an existing one (ids are random v4 UUIDs: a collision is
    /// astronomically unlikely, and would be refused rather than overwrite).
    pub(crate) async fn put_new(
        &self,
        item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression(NEW_ITEM)
            .expression_attribute_names("#pk", keys::PK)
            .send()
            .await
            .map_err(|e| StoreError::sdk("PutItem", e))?;
        Ok(())
    }

    /// The same never-overwrite put as a transaction item, to be written together with others
    /// (a session or a message with the guard's counters).
    pub(crate) fn put_new_item(
        &self,
        item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression(NEW_ITEM)
            .expression_attribute_names("#pk", keys::PK)
            .build()?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// One item by its key, read consistently.
    pub(crate) async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table())
            .key(keys::PK, aws_sdk_dynamodb::types::AttributeValue::S(pk))
            .key(
                keys::SK,
                aws_sdk_dynamodb::types::AttributeValue::S(sk.to_owned()),
            )
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk("GetItem", e))?;
        Ok(out.item.map(Item))
    }

    /// The items of `keys` that exist, read eventually consistent: one BatchGetItem per 100
    /// keys, sent together; keys left unprocessed (throttling) are asked for again, a few times.
    pub(crate) async fn batch_get_all(
        &self,
        keys: Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
    ) -> Result<Vec<Item>, StoreError> {
        let chunks: Vec<_> = keys
            .chunks(100)
            .map(|c| self.batch_get(c.to_vec()))
            .collect();
        let mut found = Vec::new();
        for items in futures::future::try_join_all(chunks).await? {
            found.extend(items);
        }
        Ok(found)
    }

    async fn batch_get(
        &self,
        keys: Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::new();
        let mut pending = Some(keys);
        for attempt in 0..4 {
            let Some(keys) = pending.take().filter(|k| !k.is_empty()) else {
                break;
            };
            if attempt > 0 {
                tokio::time::sleep(CONFLICT_BACKOFF.full_jitter(attempt)).await;
            }
            let request = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .build()?;
            let out = self
                .client
                .batch_get_item()
                .request_items(self.table(), request)
                .send()
                .await
                .map_err(|e| StoreError::sdk("BatchGetItem", e))?;
            if let Some(mut responses) = out.responses
                && let Some(items) = responses.remove(self.table())
            {
                found.extend(items.into_iter().map(Item));
            }
            pending = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(self.table()))
                .map(|k| k.keys);
        }
        if pending.is_some_and(|k| !k.is_empty()) {
            return Err(StoreError::Unavailable {
                operation: "BatchGetItem",
                cause: "keys left unprocessed".into(),
            });
        }
        Ok(found)
    }

    /// Every item a query matches, page after page.
    pub(crate) async fn query_all(
        &self,
        query: QueryFluentBuilder,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = query
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::sdk("Query", e))?;
            items.extend(out.items.unwrap_or_default().into_iter().map(Item));
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }
}

/// The condition part and values that hold while a status attribute is one of `lower`: for
/// forward-only updates (`... AND #status IN (:s0, :s1, ...)`). `None` when nothing is lower.
pub(crate) fn one_of(
    lower: &[&'static str],
) -> Option<(
    String,
    Vec<(String, aws_sdk_dynamodb::types::AttributeValue)>,
)> {
    if lower.is_empty() {
        return None;
    }
    let values: Vec<(String, aws_sdk_dynamodb::types::AttributeValue)> = lower
        .iter()
        .enumerate()
        .map(|(i, status)| (format!(":s{i}"), item::s(*status)))
        .collect();
    let names: Vec<&str> = values.iter().map(|(name, _)| name.as_str()).collect();
    Some((format!("IN ({})", names.join(", ")), values))
}

/// Declares a view: a named handle on the store for one capability.
macro_rules! view {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name(pub(crate) crate::store::Store);

        impl std::ops::Deref for $name {
            type Target = crate::store::Store;
            fn deref(&self) -> &crate::store::Store {
                &self.0
            }
        }
    };
}
pub(crate) use view;
