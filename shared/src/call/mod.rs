//! The call domain: events as the telephony system posts them and the record of a call as each
//! party sees it. Low in the crate, like `session`: the store and the endpoints both use it.

mod event;
mod record;
pub mod stats;

pub use event::{
    CallEvent, CallId, EARLIEST_EVENT_TIME, EventId, EventInput, EventKind, IdError,
    MAX_EVENT_CLOCK_SKEW, Timestamp,
};
pub use record::{CallRecord, Direction, ERASED, HistoryStatus, Outcome, Party};
