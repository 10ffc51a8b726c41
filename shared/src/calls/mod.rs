//! Call events and call history: `POST /calls/events`, `GET /calls/history/{phone_number}`
//! and its `/stats`.

mod cursor;
mod event;
mod event_endpoint;
mod history_endpoint;
mod record;

pub use cursor::{Cursor, CursorError};
pub use event::{CallEvent, CallId, EventId, EventKind};
pub use event_endpoint::CallEventEndpoint;
pub use history_endpoint::CallHistoryEndpoint;
pub use record::{CallRecord, Direction, HistoryStatus, Outcome};
