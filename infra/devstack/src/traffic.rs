//! Realistic random call traffic, as the source system's own test-data generator made it:
//! completed, missed and in-progress calls between a set of numbers, with each call's events
//! shuffled among the others and some of them sent twice.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use shared::call::{CallEvent, CallId, CallRecord, EventId, EventKind};
use shared::phone::PhoneNumber;
use time::{Duration, OffsetDateTime};

/// One generated call: its events, and the record they must produce.
#[derive(Debug, Clone)]
pub struct GeneratedCall {
    pub events: Vec<CallEvent>,
    pub expected: CallRecord,
}

pub struct Generator {
    rng: StdRng,
    /// Prefix of every call and event id, so that runs never collide.
    run: String,
    /// Calls made so far: the rest of a call's id, so that a generator's calls never collide.
    made: usize,
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        Generator {
            rng: StdRng::seed_from_u64(seed),
            run: format!("{seed:x}"),
            made: 0,
        }
    }

    /// `count` valid US numbers.
    pub fn numbers(&mut self, count: usize) -> Vec<PhoneNumber> {
        const AREAS: [u16; 8] = [206, 303, 404, 503, 608, 713, 808, 919];
        let mut numbers = Vec::with_capacity(count);
        while numbers.len() < count {
            let area = AREAS[self.rng.random_range(0..AREAS.len())];
            let text = format!(
                "+1{area}{}{:04}",
                self.rng.random_range(200..=999),
                self.rng.random_range(0..=9999)
            );
            if let Ok(n) = PhoneNumber::parse(&text)
                && !numbers.contains(&n)
            {
                numbers.push(n);
            }
        }
        numbers
    }

    /// `count` calls between `numbers`, initiated within `days` days before `end`.
    pub fn calls(
        &mut self,
        count: usize,
        numbers: &[PhoneNumber],
        end: OffsetDateTime,
        days: i64,
    ) -> Vec<GeneratedCall> {
        (0..count)
            .map(|_| {
                let a = self.rng.random_range(0..numbers.len());
                let mut b = self.rng.random_range(0..numbers.len() - 1);
                if b >= a {
                    b += 1;
                }
                self.random_call(&numbers[a], &numbers[b], end, days)
            })
            .collect()
    }

    /// `count` calls between `number` and `others`, half of them made by `number`: one
    /// number's heavy history, for benchmarks.
    pub fn calls_of(
        &mut self,
        count: usize,
        number: &PhoneNumber,
        others: &[PhoneNumber],
        end: OffsetDateTime,
        days: i64,
    ) -> Vec<GeneratedCall> {
        (0..count)
            .map(|_| {
                let other = &others[self.rng.random_range(0..others.len())];
                if self.rng.random_bool(0.5) {
                    self.random_call(number, other, end, days)
                } else {
                    self.random_call(other, number, end, days)
                }
            })
            .collect()
    }

    /// A call initiated within `days` days before `end`: half completed, a third missed, the
    /// rest answered or ringing and not yet disconnected.
    fn random_call(
        &mut self,
        calling: &PhoneNumber,
        called: &PhoneNumber,
        end: OffsetDateTime,
        days: i64,
    ) -> GeneratedCall {
        let initiated = end - Duration::seconds(self.rng.random_range(60..days * 86_400));
        let (answered, disconnected) = match self.rng.random_range(0..100) {
            0..50 => {
                let answered = initiated + Duration::seconds(self.rng.random_range(2..30));
                let talk = Duration::seconds(self.rng.random_range(1..900));
                (Some(answered), Some(answered + talk))
            }
            50..85 => (
                None,
                Some(initiated + Duration::seconds(self.rng.random_range(5..45))),
            ),
            85..93 => (
                Some(initiated + Duration::seconds(self.rng.random_range(2..30))),
                None,
            ),
            _ => (None, None),
        };
        self.call(calling, called, initiated, answered, disconnected)
    }

    /// One call with the given times; its id is new to this generator.
    pub fn call(
        &mut self,
        calling: &PhoneNumber,
        called: &PhoneNumber,
        initiated: OffsetDateTime,
        answered: Option<OffsetDateTime>,
        disconnected: Option<OffsetDateTime>,
    ) -> GeneratedCall {
        let millis = |t: OffsetDateTime| t.replace_millisecond(t.millisecond()).unwrap_or(t);
        self.made += 1;
        let call_id = CallId::parse(&format!("call-{}-{}", self.run, self.made))
            .unwrap_or_else(|_| unreachable!());
        let event = |kind: EventKind, at: OffsetDateTime| CallEvent {
            event_id: EventId::parse(&format!("{}-{}", call_id, kind.as_str().to_lowercase()))
                .unwrap_or_else(|_| unreachable!()),
            call_id: call_id.clone(),
            kind,
            calling: calling.clone(),
            called: called.clone(),
            created_at: millis(at),
        };
        let mut events = vec![event(EventKind::Initiate, initiated)];
        events.extend(answered.map(|t| event(EventKind::Answer, t)));
        events.extend(disconnected.map(|t| event(EventKind::Disconnect, t)));
        let at = |kind| events.iter().find(|e| e.kind == kind).map(|e| e.created_at);
        let expected = CallRecord {
            call_id: call_id.clone(),
            calling: calling.clone().into(),
            called: called.clone().into(),
            initiated_at: at(EventKind::Initiate),
            answered_at: at(EventKind::Answer),
            disconnected_at: at(EventKind::Disconnect),
        };
        GeneratedCall { events, expected }
    }

    /// Every event of `calls`, shuffled, with about `duplicate_percent` % of them sent twice.
    pub fn shuffled_events(
        &mut self,
        calls: &[GeneratedCall],
        duplicate_percent: u32,
    ) -> Vec<CallEvent> {
        let mut events: Vec<CallEvent> = Vec::new();
        for call in calls {
            for e in &call.events {
                events.push(e.clone());
                if self.rng.random_range(0..100) < duplicate_percent {
                    events.push(e.clone());
                }
            }
        }
        events.shuffle(&mut self.rng);
        events
    }
}

/// The wire form of an event, as the source system posts it.
pub fn event_json(e: &CallEvent) -> serde_json::Value {
    serde_json::json!({
        "event_id": e.event_id.as_str(),
        "call_id": e.call_id.as_str(),
        "event": e.kind.as_str(),
        "calling_number": e.calling,
        "called_number": e.called,
        "created_at": e.created_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
    })
}
