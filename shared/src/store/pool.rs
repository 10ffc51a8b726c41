//! The pool of source numbers that place flash calls, managed by the operator.

use aws_sdk_dynamodb::types::AttributeValue;

use super::item::s;
use super::keys::{self, KIND, PK, SK};
use super::{StoreError, view};
use crate::phone::PhoneNumber;

const NUMBER: &str = "number";
const ACTIVE: &str = "active";

view! {
    /// The pool: read by `request`, written by the operator's `stackctl`.
    Pool
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolEntry {
    pub number: PhoneNumber,
    pub active: bool,
}

impl Pool {
    /// Every number of the pool, active or not (one Query, paginated for large pools).
    pub async fn entries(&self) -> Result<Vec<PoolEntry>, StoreError> {
        let query = self
            .client()
            .query()
            .table_name(self.table())
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", s(keys::POOL_PK));
        self.query_all(query)
            .await?
            .into_iter()
            .map(|item| {
                Ok(PoolEntry {
                    number: item.phone(NUMBER)?,
                    active: item.boolean(ACTIVE)?,
                })
            })
            .collect()
    }

    /// Adds a number to the pool or changes whether it is used.
    pub async fn put(&self, number: &PhoneNumber, active: bool) -> Result<(), StoreError> {
        self.client()
            .put_item()
            .table_name(self.table())
            .item(PK, s(keys::POOL_PK))
            .item(SK, s(keys::pool_sk(number)))
            .item(KIND, s("pool-number"))
            .item(NUMBER, s(number.as_str()))
            .item(ACTIVE, AttributeValue::Bool(active))
            .send()
            .await
            .map_err(|e| StoreError::sdk("PutItem", e))?;
        Ok(())
    }
}
