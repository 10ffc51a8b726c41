//! Call events and call history endpoints: `POST /calls/events`,
//! `GET /calls/history/{phone_number}` and its `/stats`. The domain types are in `call`.

mod cursor;
mod event_endpoint;
mod history_endpoint;

pub use cursor::{Cursor, CursorError};
pub use event_endpoint::CallEventEndpoint;
pub use history_endpoint::CallHistoryEndpoint;
