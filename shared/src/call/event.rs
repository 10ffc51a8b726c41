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

/// Deserialised from a plain string only: serde's enum form would also take
/// `{"INITIATE": null}`, which the contract does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
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

impl TryFrom<String> for EventKind {
    type Error = &'static str;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.as_str() {
            "INITIATE" => Ok(EventKind::Initiate),
            "ANSWER" => Ok(EventKind::Answer),
            "DISCONNECT" => Ok(EventKind::Disconnect),
            _ => Err("must be INITIATE, ANSWER or DISCONNECT"),
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
pub struct EventInput {
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

/// The earliest event time accepted: older times are a client's mistake (a zeroed clock, a
/// lost year), and every accepted time must sort and read back as RFC 3339.
pub const EARLIEST_EVENT_TIME: OffsetDateTime = time::macros::datetime!(2000-01-01 00:00 UTC);

/// How far ahead of the server's clock an event time may be (clock skew of the source).
pub const MAX_EVENT_CLOCK_SKEW: time::Duration = time::Duration::days(1);

impl CallEvent {
    /// The event of a parsed body, if its numbers differ and its time lies in
    /// [`EARLIEST_EVENT_TIME`, `now` + [`MAX_EVENT_CLOCK_SKEW`]]. Errors are (field, problem).
    pub fn from_input(
        input: EventInput,
        now: OffsetDateTime,
    ) -> Result<Self, (&'static str, String)> {
        if input.calling_number == input.called_number {
            return Err((
                "called_number",
                "must differ from calling_number".to_owned(),
            ));
        }
        let at = input.created_at.0;
        if at < EARLIEST_EVENT_TIME || at > now + MAX_EVENT_CLOCK_SKEW {
            return Err((
                "created_at",
                "must lie between 2000-01-01T00:00:00Z and one day after the server's clock"
                    .to_owned(),
            ));
        }
        Ok(CallEvent {
            event_id: input.event_id,
            call_id: input.call_id,
            kind: input.event,
            calling: input.calling_number,
            called: input.called_number,
            created_at: at.to_offset(time::UtcOffset::UTC),
        })
    }

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

    fn input(kind: &str, created_at: &str) -> Result<EventInput, serde_json::Error> {
        serde_json::from_value(serde_json::json!({
            "event_id": "e1", "call_id": "c1", "event": kind,
            "calling_number": "+14155550123", "called_number": "+14155550199",
            "created_at": created_at,
        }))
    }

    #[test]
    fn the_kind_is_a_plain_string_and_nothing_else() {
        assert!(input("INITIATE", "2026-11-21T10:00:00Z").is_ok());
        let tagged: Result<EventInput, _> = serde_json::from_value(serde_json::json!({
            "event_id": "e1", "call_id": "c1", "event": {"INITIATE": null},
            "calling_number": "+14155550123", "called_number": "+14155550199",
            "created_at": "2026-11-21T10:00:00Z",
        }));
        assert!(tagged.is_err());
        assert!(input("initiate", "2026-11-21T10:00:00Z").is_err());
    }

    #[test]
    fn event_times_outside_the_window_are_refused_and_the_bounds_are_accepted() {
        let now = time::macros::datetime!(2026-11-21 10:00 UTC);
        let at = |t: &str| CallEvent::from_input(input("ANSWER", t).unwrap(), now);
        assert!(at("2000-01-01T00:00:00Z").is_ok());
        assert!(at("2026-11-22T10:00:00Z").is_ok());
        assert_eq!(at("1999-12-31T23:59:59Z").unwrap_err().0, "created_at");
        assert_eq!(at("2026-11-22T10:00:00.001Z").unwrap_err().0, "created_at");
        assert!(at("9999-12-31T23:59:59-01:00").is_err());
        assert!(at("0000-01-01T00:00:00+01:00").is_err());
        let shifted = at("2026-11-21T12:00:00+02:00").unwrap();
        assert_eq!(shifted.created_at, now);
        assert_eq!(shifted.created_at.offset(), time::UtcOffset::UTC);
    }
}
