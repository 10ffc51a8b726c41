//! The flash-call verification session: its id, its states and what can be said about it.

use serde::Serialize;
use time::OffsetDateTime;

use crate::phone::PhoneNumber;
use crate::secrets::Secrets;

crate::id::random_id!(
    /// A session id: a random (v4) UUID in its canonical hyphenated form.
    SessionId,
    InvalidSessionId,
    "must be a session id as returned by /auth/request (a UUID)"
);

/// Where a session is in its life. Expiry is not a state: it is a function of the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Waiting for the caller ID.
    Pending,
    /// Proven; can never be used again.
    Verified,
    /// The call could not be placed; can never be verified.
    Failed,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Pending => "pending",
            SessionState::Verified => "verified",
            SessionState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => SessionState::Pending,
            "verified" => SessionState::Verified,
            "failed" => SessionState::Failed,
            _ => return None,
        })
    }
}

/// The flash call's status, in Twilio's vocabulary, plus `not-placed` before the gateway
/// accepted the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallStatus {
    NotPlaced,
    Queued,
    Initiated,
    Ringing,
    InProgress,
    Completed,
    Busy,
    NoAnswer,
    Canceled,
    Failed,
}

impl CallStatus {
    pub const ALL: [CallStatus; 10] = [
        CallStatus::NotPlaced,
        CallStatus::Queued,
        CallStatus::Initiated,
        CallStatus::Ringing,
        CallStatus::InProgress,
        CallStatus::Completed,
        CallStatus::Busy,
        CallStatus::NoAnswer,
        CallStatus::Canceled,
        CallStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::NotPlaced => "not-placed",
            CallStatus::Queued => "queued",
            CallStatus::Initiated => "initiated",
            CallStatus::Ringing => "ringing",
            CallStatus::InProgress => "in-progress",
            CallStatus::Completed => "completed",
            CallStatus::Busy => "busy",
            CallStatus::NoAnswer => "no-answer",
            CallStatus::Canceled => "canceled",
            CallStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Position in the call's life; a status callback may only move a call forward, and every
    /// terminal status shares the last rank so that none replaces another.
    pub fn rank(self) -> u8 {
        match self {
            CallStatus::NotPlaced => 0,
            CallStatus::Queued => 1,
            CallStatus::Initiated => 2,
            CallStatus::Ringing => 3,
            CallStatus::InProgress => 4,
            CallStatus::Completed
            | CallStatus::Busy
            | CallStatus::NoAnswer
            | CallStatus::Canceled
            | CallStatus::Failed => 5,
        }
    }
}

/// What a session keeps of its caller ID: its keyed hash ([`Secrets::keyed_hash`]) over the
/// session and the number, so that a hash is worth nothing for another session and no item,
/// stream record or backup holds a live answer.
pub fn caller_id_hash(
    secrets: &Secrets,
    session: &SessionId,
    caller_id: &PhoneNumber,
) -> anyhow::Result<String> {
    secrets.keyed_hash(&["caller-id", &session.to_string(), caller_id.as_str()])
}

/// Who calls whom: we ring the phone (a flash call), or the phone rings us (the inbound
/// missed call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    Outbound,
    Inbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "outbound" => Some(Direction::Outbound),
            "inbound" => Some(Direction::Inbound),
            _ => None,
        }
    }
}

/// A verification session as stored.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: SessionId,
    pub phone: PhoneNumber,
    /// The keyed hash of the pool number that calls the phone (the secret the app must read
    /// back): [`caller_id_hash`]. The number itself is never stored. Empty for an inbound
    /// session: no caller ID is ever posted to it.
    pub caller_id_hash: String,
    pub direction: Direction,
    /// The pool number an inbound session's phone must call (public: the app shows it).
    pub call_to: Option<PhoneNumber>,
    /// When an inbound session's token was issued (once).
    pub token_issued_at: Option<OffsetDateTime>,
    pub state: SessionState,
    pub attempts: u32,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub verified_at: Option<OffsetDateTime>,
    pub call_sid: Option<String>,
    pub call_status: CallStatus,
}

impl Session {
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now >= self.expires_at
    }

    pub fn attempts_remaining(&self, max_attempts: u32) -> u32 {
        max_attempts.saturating_sub(self.attempts)
    }

    /// Whether a correct caller ID would still be accepted now.
    pub fn is_open(&self, now: OffsetDateTime, max_attempts: u32) -> bool {
        self.state == SessionState::Pending
            && !self.is_expired(now)
            && self.attempts_remaining(max_attempts) > 0
    }

    /// Why a session refuses a verification attempt, in the order a client should hear it.
    pub fn refusal(&self, now: OffsetDateTime, max_attempts: u32) -> Option<Refusal> {
        match self.state {
            SessionState::Verified => Some(Refusal::AlreadyVerified),
            SessionState::Failed => Some(Refusal::CallFailed),
            SessionState::Pending if self.is_expired(now) => Some(Refusal::Expired),
            SessionState::Pending if self.attempts_remaining(max_attempts) == 0 => {
                Some(Refusal::AttemptsExhausted)
            }
            SessionState::Pending => None,
        }
    }
}

/// Why a session cannot take an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotFound,
    AlreadyVerified,
    CallFailed,
    Expired,
    AttemptsExhausted,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn session(state: SessionState, attempts: u32, expires_in: i64) -> (Session, OffsetDateTime) {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let s = Session {
            id: SessionId::random(),
            phone: PhoneNumber::parse("+14155550123").unwrap(),
            caller_id_hash: "00".repeat(32),
            direction: Direction::Outbound,
            call_to: None,
            token_issued_at: None,
            state,
            attempts,
            created_at: now - Duration::seconds(10),
            expires_at: now + Duration::seconds(expires_in),
            verified_at: None,
            call_sid: None,
            call_status: CallStatus::Queued,
        };
        (s, now)
    }

    #[test]
    fn session_ids_are_hyphenated_v4_uuids_only() {
        let id = SessionId::random();
        assert_eq!(SessionId::parse(&id.to_string()), Ok(id));
        assert!(SessionId::parse("not-a-uuid").is_err());
        assert!(SessionId::parse(&id.to_string().replace('-', "")).is_err());
        assert!(SessionId::parse(&format!("{{{id}}}")).is_err());
        // A v1 UUID.
        assert!(SessionId::parse("c232ab00-9414-11ec-b3c8-9f6bdeced846").is_err());
    }

    #[test]
    fn a_session_expires_exactly_at_its_expiry_time() {
        let (s, now) = session(SessionState::Pending, 0, 0);
        assert!(s.is_expired(now));
        assert!(!s.is_expired(now - Duration::milliseconds(1)));
    }

    #[test]
    fn refusals_come_in_the_order_verified_failed_expired_exhausted() {
        let (s, now) = session(SessionState::Verified, 5, -1);
        assert_eq!(s.refusal(now, 5), Some(Refusal::AlreadyVerified));
        let (s, now) = session(SessionState::Failed, 5, -1);
        assert_eq!(s.refusal(now, 5), Some(Refusal::CallFailed));
        let (s, now) = session(SessionState::Pending, 5, -1);
        assert_eq!(s.refusal(now, 5), Some(Refusal::Expired));
        let (s, now) = session(SessionState::Pending, 5, 60);
        assert_eq!(s.refusal(now, 5), Some(Refusal::AttemptsExhausted));
        let (s, now) = session(SessionState::Pending, 4, 60);
        assert_eq!(s.refusal(now, 5), None);
        assert!(s.is_open(now, 5));
    }

    #[test]
    fn call_statuses_round_trip_and_terminal_ones_share_the_last_rank() {
        for status in CallStatus::ALL {
            assert_eq!(CallStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(CallStatus::Busy.rank(), CallStatus::Completed.rank());
        assert!(CallStatus::Ringing.rank() > CallStatus::Queued.rank());
        assert_eq!(CallStatus::parse("bogus"), None);
    }
}
