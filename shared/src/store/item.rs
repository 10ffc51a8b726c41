//! `Item`: reading and writing attribute values with errors that name the attribute.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::StoreError;
use crate::phone::PhoneNumber;

/// A DynamoDB item being read.
pub struct Item(pub HashMap<String, AttributeValue>);

impl Item {
    pub fn string(&self, name: &str) -> Result<&str, StoreError> {
        match self.0.get(name) {
            Some(AttributeValue::S(s)) => Ok(s),
            _ => Err(StoreError::Malformed(format!("{name} is not a string"))),
        }
    }

    pub fn opt_string(&self, name: &str) -> Option<&str> {
        match self.0.get(name) {
            Some(AttributeValue::S(s)) => Some(s),
            _ => None,
        }
    }

    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Result<T, StoreError> {
        match self.0.get(name) {
            Some(AttributeValue::N(n)) => n
                .parse()
                .map_err(|_| StoreError::Malformed(format!("{name} is out of range"))),
            _ => Err(StoreError::Malformed(format!("{name} is not a number"))),
        }
    }

    /// A phone number stored in E.164.
    pub fn phone(&self, name: &str) -> Result<PhoneNumber, StoreError> {
        PhoneNumber::parse(self.string(name)?)
            .map_err(|_| StoreError::Malformed(format!("{name} is not a phone number")))
    }

    pub fn boolean(&self, name: &str) -> Result<bool, StoreError> {
        match self.0.get(name) {
            Some(AttributeValue::Bool(b)) => Ok(*b),
            _ => Err(StoreError::Malformed(format!("{name} is not a boolean"))),
        }
    }

    /// A timestamp stored as whole unix milliseconds.
    pub fn time(&self, name: &str) -> Result<OffsetDateTime, StoreError> {
        from_millis(self.number(name)?)
            .ok_or_else(|| StoreError::Malformed(format!("{name} is not a timestamp")))
    }

    pub fn opt_time(&self, name: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        match self.0.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(_) => self.time(name).map(Some),
        }
    }
}

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn millis_av(t: OffsetDateTime) -> AttributeValue {
    n(millis(t))
}

/// The TTL attribute: DynamoDB wants whole seconds since the epoch.
pub fn ttl_av(t: OffsetDateTime) -> AttributeValue {
    n(t.unix_timestamp())
}

fn from_millis(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}
