//! The DynamoDB store: the only module that talks to DynamoDB. One table, keys built in
//! `keys`, items mapped in `item`, one submodule per kind of record.

pub mod calls;
mod item;
pub mod keys;
pub mod pool;
pub mod rate_limits;
pub mod schema;
pub mod sessions;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};

pub use item::Item;

/// A handle on the table; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    table: std::sync::Arc<str>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB {operation} failed: {cause}")]
    Dynamo {
        operation: &'static str,
        cause: String,
    },
    #[error("stored item is malformed: {0}")]
    Malformed(String),
}

impl StoreError {
    fn dynamo<E>(operation: &'static str, err: E) -> Self
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        StoreError::Dynamo {
            operation,
            cause: DisplayErrorContext(err).to_string(),
        }
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
        Self::new(Client::new(config), table)
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}
