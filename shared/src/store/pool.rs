//! The pool of source numbers that place flash calls, managed by the operator.

use super::item::{Item, s};
use super::keys::{self, PK, SK};
use super::{Store, StoreError};
use crate::phone::PhoneNumber;

const NUMBER: &str = "number";
const ACTIVE: &str = "active";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolEntry {
    pub number: PhoneNumber,
    pub active: bool,
}

impl Store {
    /// Every number of the pool, active or not (one Query, paginated for large pools).
    pub async fn pool(&self) -> Result<Vec<PoolEntry>, StoreError> {
        let mut entries = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(self.table())
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", s(keys::POOL_PK))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Query", e))?;
            for raw in out.items.unwrap_or_default() {
                let item = Item(raw);
                let number = PhoneNumber::parse(item.string(NUMBER)?)
                    .map_err(|_| StoreError::Malformed("pool number".into()))?;
                entries.push(PoolEntry {
                    number,
                    active: item.boolean(ACTIVE)?,
                });
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(entries);
            }
        }
    }

    /// Adds a number to the pool or changes whether it is used.
    pub async fn put_pool_number(
        &self,
        number: &PhoneNumber,
        active: bool,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(self.table())
            .item(PK, s(keys::POOL_PK))
            .item(SK, s(keys::pool_sk(number)))
            .item(keys::KIND, s("pool-number"))
            .item(NUMBER, s(number.as_str()))
            .item(
                ACTIVE,
                aws_sdk_dynamodb::types::AttributeValue::Bool(active),
            )
            .send()
            .await
            .map_err(|e| StoreError::dynamo("PutItem", e))?;
        Ok(())
    }
}
