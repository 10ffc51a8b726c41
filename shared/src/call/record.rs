//! `CallRecord`: what is known of a call, and how it reads from one party's point of view.

use serde::Serialize;
use time::OffsetDateTime;

use super::event::CallId;
use crate::phone::PhoneNumber;

/// One end of a recorded call: a number, or `erased` where `stackctl erase` removed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Party {
    Number(PhoneNumber),
    Erased,
}

/// What an erased party reads as, in the other party's history.
pub const ERASED: &str = "erased";

impl Party {
    /// The stored form: E.164, or [`ERASED`].
    pub fn parse(stored: &str) -> Option<Party> {
        if stored == ERASED {
            return Some(Party::Erased);
        }
        PhoneNumber::parse(stored).ok().map(Party::Number)
    }

    pub fn as_str(&self) -> &str {
        match self {
            Party::Number(n) => n.as_str(),
            Party::Erased => ERASED,
        }
    }
}

impl PartialEq<PhoneNumber> for Party {
    fn eq(&self, other: &PhoneNumber) -> bool {
        matches!(self, Party::Number(n) if n == other)
    }
}

impl Serialize for Party {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl From<PhoneNumber> for Party {
    fn from(number: PhoneNumber) -> Self {
        Party::Number(number)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub call_id: CallId,
    pub calling: Party,
    pub called: Party,
    pub initiated_at: Option<OffsetDateTime>,
    pub answered_at: Option<OffsetDateTime>,
    pub disconnected_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    Inbound,
    Outbound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Completed,
    Missed,
    InProgress,
}

/// A call's status as one party sees it (`Completed Inbound`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "&'static str")]
pub struct HistoryStatus {
    pub outcome: Outcome,
    pub direction: Direction,
}

impl HistoryStatus {
    pub const ALL: [HistoryStatus; 6] = [
        HistoryStatus::new(Outcome::Completed, Direction::Inbound),
        HistoryStatus::new(Outcome::Missed, Direction::Inbound),
        HistoryStatus::new(Outcome::InProgress, Direction::Inbound),
        HistoryStatus::new(Outcome::Completed, Direction::Outbound),
        HistoryStatus::new(Outcome::Missed, Direction::Outbound),
        HistoryStatus::new(Outcome::InProgress, Direction::Outbound),
    ];

    pub const fn new(outcome: Outcome, direction: Direction) -> Self {
        HistoryStatus { outcome, direction }
    }

    pub fn label(self) -> &'static str {
        match (self.outcome, self.direction) {
            (Outcome::Completed, Direction::Inbound) => "Completed Inbound",
            (Outcome::Missed, Direction::Inbound) => "Missed Inbound",
            (Outcome::InProgress, Direction::Inbound) => "In Progress Inbound",
            (Outcome::Completed, Direction::Outbound) => "Completed Outbound",
            (Outcome::Missed, Direction::Outbound) => "Missed Outbound",
            (Outcome::InProgress, Direction::Outbound) => "In Progress Outbound",
        }
    }

    /// Reads a label (`Completed Inbound`) or its snake form (`completed_inbound`).
    pub fn parse(s: &str) -> Option<Self> {
        let wanted = s.trim().replace('_', " ").to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|st| st.label().to_ascii_lowercase() == wanted)
    }
}

impl From<HistoryStatus> for &'static str {
    fn from(s: HistoryStatus) -> Self {
        s.label()
    }
}

impl CallRecord {
    /// When the call happened: its INITIATE time, or until that arrives, its earliest event.
    pub fn call_time(&self) -> Option<OffsetDateTime> {
        self.initiated_at.or_else(|| {
            [self.answered_at, self.disconnected_at]
                .into_iter()
                .flatten()
                .min()
        })
    }

    pub fn involves(&self, number: &PhoneNumber) -> bool {
        self.calling == *number || self.called == *number
    }

    pub fn counterparty(&self, number: &PhoneNumber) -> &Party {
        if self.calling == *number {
            &self.called
        } else {
            &self.calling
        }
    }

    pub fn outcome(&self) -> Outcome {
        match (self.answered_at, self.disconnected_at) {
            (_, None) => Outcome::InProgress,
            (Some(_), Some(_)) => Outcome::Completed,
            (None, Some(_)) => Outcome::Missed,
        }
    }

    pub fn status_for(&self, number: &PhoneNumber) -> HistoryStatus {
        let direction = if self.calling == *number {
            Direction::Outbound
        } else {
            Direction::Inbound
        };
        HistoryStatus::new(self.outcome(), direction)
    }

    /// DISCONNECT − INITIATE in whole seconds, for completed calls (the source system's rule).
    pub fn duration_seconds(&self) -> Option<i64> {
        match (self.outcome(), self.initiated_at, self.disconnected_at) {
            (Outcome::Completed, Some(start), Some(end)) => {
                Some((end - start).whole_seconds().max(0))
            }
            _ => None,
        }
    }

    /// DISCONNECT − ANSWER in whole seconds: the time actually talked.
    pub fn talk_seconds(&self) -> Option<i64> {
        match (self.answered_at, self.disconnected_at) {
            (Some(start), Some(end)) => Some((end - start).whole_seconds().max(0)),
            _ => None,
        }
    }
}

/// A call from +14155550101 to +14155550102 with its INITIATE, ANSWER and DISCONNECT at these
/// seconds after a fixed instant (none where `None`), for the call domain's tests.
#[cfg(test)]
pub(crate) fn sample_record(i: Option<i64>, a: Option<i64>, d: Option<i64>) -> CallRecord {
    let t = |s: i64| OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).ok();
    CallRecord {
        call_id: CallId::parse("c1").unwrap(),
        calling: PhoneNumber::parse("+14155550101").unwrap().into(),
        called: PhoneNumber::parse("+14155550102").unwrap().into(),
        initiated_at: i.and_then(t),
        answered_at: a.and_then(t),
        disconnected_at: d.and_then(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: Option<i64>, a: Option<i64>, d: Option<i64>) -> CallRecord {
        sample_record(i, a, d)
    }

    fn t(s: i64) -> Option<OffsetDateTime> {
        sample_record(Some(s), None, None).initiated_at
    }

    #[test]
    fn direction_and_outcome_depend_on_who_asks_and_what_happened() {
        let caller = PhoneNumber::parse("+14155550101").unwrap();
        let callee = PhoneNumber::parse("+14155550102").unwrap();
        let completed = record(Some(0), Some(5), Some(65));
        assert_eq!(completed.status_for(&caller).label(), "Completed Outbound");
        assert_eq!(completed.status_for(&callee).label(), "Completed Inbound");
        assert_eq!(completed.duration_seconds(), Some(65));
        assert_eq!(completed.talk_seconds(), Some(60));
        let missed = record(Some(0), None, Some(20));
        assert_eq!(missed.status_for(&callee).label(), "Missed Inbound");
        assert_eq!(missed.duration_seconds(), None);
        let ringing = record(Some(0), None, None);
        assert_eq!(ringing.status_for(&caller).label(), "In Progress Outbound");
        assert_eq!(completed.counterparty(&caller), &callee);
    }

    #[test]
    fn the_call_time_is_the_initiate_time_or_the_earliest_event_until_then() {
        assert_eq!(record(Some(3), Some(1), None).call_time(), t(3));
        assert_eq!(record(None, Some(5), Some(2)).call_time(), t(2));
    }

    #[test]
    fn statuses_parse_from_labels_and_snake_case() {
        for s in HistoryStatus::ALL {
            assert_eq!(HistoryStatus::parse(s.label()), Some(s));
        }
        assert_eq!(
            HistoryStatus::parse("missed_outbound").map(HistoryStatus::label),
            Some("Missed Outbound")
        );
        assert_eq!(HistoryStatus::parse("busy"), None);
    }
}
