//! A call event as the telephony system posts it, parsed into types that cannot be invalid.

use std::fmt;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::phone::PhoneNumber;

/// An identifier chosen by the source system: 1 to 64 of `A-Z a-z 0-9 - _ . :`.
fn check_id(value: &str) -> Result<(), IdError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok { Ok(()) } else { Err(IdError) }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1 to 64 letters, digits, '-', '_', '.' or ':'")]
pub struct IdError;

macro_rules! source_id {
    ($name:ident) => {
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<Self, IdError> {
                check_id(value).map(|()| $name(value.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                check_id(&value).map(|()| $name(value))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

source_id!(CallId);
source_id!(EventId);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventKind {
    Initiate,
    Answer,
    Disconnect,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Initiate => "INITIATE",
            EventKind::Answer => "ANSWER",
            EventKind::Disconnect => "DISCONNECT",
        }
    }
}

/// An RFC 3339 timestamp with an explicit offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Timestamp(pub OffsetDateTime);

impl TryFrom<String> for Timestamp {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        OffsetDateTime::parse(&value, &Rfc3339)
            .map(Timestamp)
            .map_err(|_| "must be an RFC 3339 timestamp such as 2026-11-21T10:00:00Z".into())
    }
}

/// The wire form of an event.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventInput {
    event_id: EventId,
    call_id: CallId,
    event: EventKind,
    calling_number: PhoneNumber,
    called_number: PhoneNumber,
    created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEvent {
    pub event_id: EventId,
    pub call_id: CallId,
    pub kind: EventKind,
    pub calling: PhoneNumber,
    pub called: PhoneNumber,
    pub created_at: OffsetDateTime,
}

impl TryFrom<EventInput> for CallEvent {
    /// (field, problem)
    type Error = (&'static str, &'static str);
    fn try_from(input: EventInput) -> Result<Self, Self::Error> {
        if input.calling_number == input.called_number {
            return Err(("called_number", "must differ from calling_number"));
        }
        Ok(CallEvent {
            event_id: input.event_id,
            call_id: input.call_id,
            kind: input.event,
            calling: input.calling_number,
            called: input.called_number,
            created_at: input.created_at.0,
        })
    }
}

impl CallEvent {
    /// What makes two events with one id the same event.
    pub fn fingerprint(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.call_id,
            self.kind.as_str(),
            self.calling,
            self.called,
            self.created_at.unix_timestamp_nanos() / 1_000_000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_and_plain() {
        assert!(CallId::parse("call-42_a.b:c").is_ok());
        assert!(CallId::parse("").is_err());
        assert!(CallId::parse(&"x".repeat(65)).is_err());
        assert!(EventId::parse("a b").is_err());
        assert!(EventId::parse("a/b").is_err());
    }

    #[test]
    fn timestamps_need_an_offset() {
        assert!(Timestamp::try_from("2026-11-21T10:00:00Z".to_owned()).is_ok());
        assert!(Timestamp::try_from("2026-11-21T10:00:00+02:00".to_owned()).is_ok());
        assert!(Timestamp::try_from("2026-11-21 10:00:00".to_owned()).is_err());
        assert!(Timestamp::try_from("yesterday".to_owned()).is_err());
    }
}
