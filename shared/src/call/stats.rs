//! A number's call statistics, kept per month as its calls are recorded: what one call adds to
//! them (`Contribution`), how an event that changes a call moves them (`delta`), and their sum
//! over months (`CallStats`). A million calls are a few dozen month totals, not a million rows.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::{CallRecord, HistoryStatus, Outcome};
use crate::phone::PhoneNumber;

/// The counters of one month, by name.
pub type Counters = BTreeMap<String, i64>;

const CALLS: &str = "calls";
const COMPLETED: &str = "completed";
const DURATION: &str = "duration_seconds";
const TALK: &str = "talk_seconds";

/// A status's counter: its label in snake case (`completed_inbound`).
fn status_counter(status: HistoryStatus) -> String {
    status.label().to_ascii_lowercase().replace(' ', "_")
}

/// The month a call counts in (`2026-11`, UTC).
pub fn month_of(t: OffsetDateTime) -> String {
    format!("{:04}-{:02}", t.year(), u8::from(t.month()))
}

/// What one call adds to one party's statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contribution {
    pub month: String,
    pub status: HistoryStatus,
    /// DISCONNECT − INITIATE of a completed call, else 0.
    pub duration_seconds: i64,
    /// DISCONNECT − ANSWER of a completed call, else 0.
    pub talk_seconds: i64,
}

impl Contribution {
    /// `record` as `number` sees it; `None` for a record with no time yet.
    pub fn of(record: &CallRecord, number: &PhoneNumber) -> Option<Self> {
        let completed = record.outcome() == Outcome::Completed;
        Some(Contribution {
            month: month_of(record.call_time()?),
            status: record.status_for(number),
            duration_seconds: record.duration_seconds().unwrap_or(0),
            talk_seconds: if completed {
                record.talk_seconds().unwrap_or(0)
            } else {
                0
            },
        })
    }

    fn counters(&self) -> Counters {
        let completed = self.status.outcome == Outcome::Completed;
        Counters::from([
            (CALLS.to_owned(), 1),
            (status_counter(self.status), 1),
            (COMPLETED.to_owned(), i64::from(completed)),
            (DURATION.to_owned(), self.duration_seconds),
            (TALK.to_owned(), self.talk_seconds),
        ])
    }
}

/// What moving a call's contribution from `old` to `new` adds to each month's counters (the
/// old one taken away, the new one added; counters that do not move are left out).
pub fn delta(old: Option<&Contribution>, new: Option<&Contribution>) -> BTreeMap<String, Counters> {
    let mut months: BTreeMap<String, Counters> = BTreeMap::new();
    for (c, sign) in [(old, -1), (new, 1)] {
        let Some(c) = c else { continue };
        let month = months.entry(c.month.clone()).or_default();
        for (name, value) in c.counters() {
            *month.entry(name).or_default() += sign * value;
        }
    }
    for counters in months.values_mut() {
        counters.retain(|_, v| *v != 0);
    }
    months.retain(|_, counters| !counters.is_empty());
    months
}

/// The sum of a number's months.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallStats {
    pub total_calls: u64,
    pub by_status: BTreeMap<&'static str, u64>,
    pub completed_calls: u64,
    pub total_duration_seconds: i64,
    pub total_talk_seconds: i64,
    pub calls_per_month: BTreeMap<String, u64>,
}

impl CallStats {
    pub fn new() -> Self {
        CallStats {
            by_status: HistoryStatus::ALL.iter().map(|s| (s.label(), 0)).collect(),
            ..CallStats::default()
        }
    }

    /// Adds one month's counters.
    pub fn add_month(&mut self, month: &str, counters: &Counters) {
        let get = |name: &str| counters.get(name).copied().unwrap_or(0);
        let calls = get(CALLS).max(0) as u64;
        self.total_calls += calls;
        if calls > 0 {
            *self.calls_per_month.entry(month.to_owned()).or_default() += calls;
        }
        for status in HistoryStatus::ALL {
            *self.by_status.entry(status.label()).or_default() +=
                get(&status_counter(status)).max(0) as u64;
        }
        self.completed_calls += get(COMPLETED).max(0) as u64;
        self.total_duration_seconds += get(DURATION);
        self.total_talk_seconds += get(TALK);
    }

    /// The average duration of a completed call, to a tenth of a second.
    pub fn average_duration_seconds(&self) -> Option<f64> {
        (self.completed_calls > 0).then(|| {
            (self.total_duration_seconds as f64 / self.completed_calls as f64 * 10.0).round() / 10.0
        })
    }

    /// The statistics of `records` counted one by one (what the months must add up to).
    pub fn of_records(records: &[CallRecord], number: &PhoneNumber) -> Self {
        let mut months: BTreeMap<String, Counters> = BTreeMap::new();
        for record in records {
            let Some(c) = Contribution::of(record, number) else {
                continue;
            };
            for (month, counters) in delta(None, Some(&c)) {
                let sum = months.entry(month).or_default();
                for (name, value) in counters {
                    *sum.entry(name).or_default() += value;
                }
            }
        }
        let mut stats = CallStats::new();
        for (month, counters) in &months {
            stats.add_month(month, counters);
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::record::sample_record as record;

    #[test]
    fn each_event_moves_the_call_between_statuses_and_the_sum_is_the_final_record() {
        let callee = PhoneNumber::parse("+14155550102").unwrap();
        // DISCONNECT first, then INITIATE, then ANSWER: missed, then completed.
        let steps = [
            record(None, None, Some(65)),
            record(Some(0), None, Some(65)),
            record(Some(0), Some(5), Some(65)),
        ];
        let mut months: BTreeMap<String, Counters> = BTreeMap::new();
        let mut before: Option<Contribution> = None;
        for r in &steps {
            let now = Contribution::of(r, &callee);
            for (month, counters) in delta(before.as_ref(), now.as_ref()) {
                let sum = months.entry(month).or_default();
                for (name, value) in counters {
                    *sum.entry(name).or_default() += value;
                }
            }
            before = now;
        }
        let mut stats = CallStats::new();
        for (month, counters) in &months {
            stats.add_month(month, counters);
        }
        assert_eq!(stats, CallStats::of_records(&steps[2..], &callee));
        assert_eq!(stats.total_calls, 1);
        assert_eq!(stats.by_status["Completed Inbound"], 1);
        assert_eq!(stats.by_status["Missed Inbound"], 0);
        assert_eq!(stats.total_duration_seconds, 65);
        assert_eq!(stats.total_talk_seconds, 60);
        assert_eq!(stats.average_duration_seconds(), Some(65.0));
    }

    #[test]
    fn a_call_that_moves_month_leaves_the_old_one() {
        let caller = PhoneNumber::parse("+14155550101").unwrap();
        let late = Contribution {
            month: "2026-12".into(),
            ..Contribution::of(&record(Some(0), None, None), &caller).unwrap()
        };
        let early = Contribution {
            month: "2026-11".into(),
            ..late.clone()
        };
        let moved = delta(Some(&late), Some(&early));
        assert_eq!(moved["2026-12"]["calls"], -1);
        assert_eq!(moved["2026-11"]["calls"], 1);
        assert!(delta(Some(&late), Some(&late)).is_empty());
    }
}
