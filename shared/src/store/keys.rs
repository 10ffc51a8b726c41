//! Attribute names and key formats of the single table. Every key string is built here.

use crate::phone::PhoneNumber;
use crate::session::SessionId;

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

/// The phone's partition in the by-phone index: sessions (and later other records) of a number.
pub fn phone_gsi_pk(phone: &PhoneNumber) -> String {
    format!("PHONE#{phone}")
}

/// Sessions sort by creation time inside the phone's index partition; the id breaks ties.
pub fn session_gsi_sk(created_millis: i64, id: &SessionId) -> String {
    format!("SESSION#{created_millis:015}#{id}")
}
pub const SESSION_GSI_SK_PREFIX: &str = "SESSION#";

pub fn limit_pk(scope: &str, subject: &str, window: i64) -> String {
    format!("LIMIT#{scope}#{subject}#{window}")
}
pub const LIMIT_SK: &str = "LIMIT";

pub fn cooldown_pk(phone: &PhoneNumber) -> String {
    format!("COOLDOWN#{phone}")
}
pub const COOLDOWN_SK: &str = "COOLDOWN";

pub const POOL_PK: &str = "POOL";
pub fn pool_sk(number: &PhoneNumber) -> String {
    format!("NUMBER#{number}")
}
