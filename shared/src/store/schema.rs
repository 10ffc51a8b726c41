//! The table's definition, as `template.yaml` declares it; used to create the table locally.
//! An integration test checks that both say the same.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};

use super::keys::{GSI1, GSI1_PK, GSI1_SK, PK, SK, TTL};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;

use super::{Store, StoreError};

/// Key attributes of the table and of each GSI: (index, partition key, sort key).
pub const KEYS: [(&str, &str, &str); 2] = [("table", PK, SK), (GSI1, GSI1_PK, GSI1_SK)];

/// The attributes the by-phone index carries besides the keys: what its queries read (a call's
/// parties and times; a session's state, to find an open one). A session's phone and caller ID
/// are not among them: no query of the index can read a caller ID.
pub const GSI1_PROJECTED: &[&str] = &[
    "kind",
    "call_id",
    "calling",
    "called",
    "initiated_at",
    "answered_at",
    "disconnected_at",
    "state",
    "attempts",
    "created_at",
    "expires_at",
];

impl Store {
    /// Creates the table with its GSI and TTL if it does not exist yet. Returns whether it did.
    pub async fn create_table_if_missing(&self) -> Result<bool, StoreError> {
        let exists = self
            .client
            .describe_table()
            .table_name(self.table())
            .send()
            .await;
        match exists {
            Ok(_) => return Ok(false),
            Err(e)
                if e.as_service_error().and_then(|e| e.code())
                    == Some("ResourceNotFoundException") => {}
            Err(e) => return Err(StoreError::sdk("DescribeTable", e)),
        }
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
        };
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(GSI1)
            .key_schema(key(GSI1_PK, KeyType::Hash)?)
            .key_schema(key(GSI1_SK, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::Include)
                    .set_non_key_attributes(Some(
                        GSI1_PROJECTED.iter().map(|a| (*a).to_owned()).collect(),
                    ))
                    .build(),
            )
            .build()?;
        let created = self
            .client
            .create_table()
            .table_name(self.table())
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr(PK)?)
            .attribute_definitions(attr(SK)?)
            .attribute_definitions(attr(GSI1_PK)?)
            .attribute_definitions(attr(GSI1_SK)?)
            .key_schema(key(PK, KeyType::Hash)?)
            .key_schema(key(SK, KeyType::Range)?)
            .global_secondary_indexes(gsi)
            // The verification events' source (`crate::events`), as in `template.yaml`.
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()?,
            )
            .send()
            .await;
        match created {
            Ok(_) => {}
            // Another bootstrap won the race: the table exists, which is what was asked.
            Err(e)
                if e.as_service_error().and_then(|e| e.code())
                    == Some("ResourceInUseException") =>
            {
                return Ok(false);
            }
            Err(e) => return Err(StoreError::sdk("CreateTable", e)),
        }
        self.client
            .update_time_to_live()
            .table_name(self.table())
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(TTL)
                    .enabled(true)
                    .build()?,
            )
            .send()
            .await
            .map_err(|e| StoreError::sdk("UpdateTimeToLive", e))?;
        Ok(true)
    }
}
