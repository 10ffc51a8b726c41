//! SMS: the `sms-send` and `sms-verify` endpoints, one-time codes, and the domain they share: bodies as carriers bill
//! them (the encoding, GSM-7 when every character is in the GSM 03.38 alphabet or its
//! extension table, UCS-2 otherwise, and the number of segments, as Twilio counts them),
//! delivery statuses and message ids.

pub mod code;
mod outbox;
mod send;
mod verify;

pub use send::{IDEMPOTENCY_KEY_LIFETIME, SmsSendEndpoint};
pub use verify::SmsVerifyEndpoint;

/// The longest body Twilio accepts, in characters.
pub const MAX_BODY_CHARS: usize = 1600;

/// GSM 03.38's basic alphabet (one septet each).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u{1b}ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// Its extension table (an escape and a septet: two each).
const GSM7_EXTENDED: &str = "\u{c}^{}\\[~]|€";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        }
    }
}

/// How a body is sent: its encoding and the segments it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segments {
    pub encoding: Encoding,
    pub count: u32,
}

/// The segments of `body`. One GSM-7 segment holds 160 septets and a part of a longer message
/// 153 (the rest is the concatenation header); UCS-2, 70 and 67 UTF-16 code units. A part
/// never splits an escape pair or a surrogate pair, as phones would not reassemble it.
pub fn segments(body: &str) -> Segments {
    let gsm: Option<Vec<u32>> = body
        .chars()
        .map(|c| {
            if GSM7_BASIC.contains(c) {
                Some(1)
            } else if GSM7_EXTENDED.contains(c) {
                Some(2)
            } else {
                None
            }
        })
        .collect();
    match gsm {
        Some(units) => Segments {
            encoding: Encoding::Gsm7,
            count: pack(&units, 160, 153),
        },
        None => {
            let units: Vec<u32> = body.chars().map(|c| c.len_utf16() as u32).collect();
            Segments {
                encoding: Encoding::Ucs2,
                count: pack(&units, 70, 67),
            }
        }
    }
}

/// Parts needed for characters of the given widths: one part if they fit in `single`,
/// otherwise parts of `part` units each, a character never cut in two.
fn pack(widths: &[u32], single: u32, part: u32) -> u32 {
    let total: u32 = widths.iter().sum();
    if total <= single {
        return 1;
    }
    let (mut parts, mut used) = (1, 0);
    for &w in widths {
        if used + w > part {
            parts += 1;
            used = 0;
        }
        used += w;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_gsm7_in_160_then_153_septets() {
        assert_eq!(segments("Your code is 123456").count, 1);
        assert_eq!(
            segments(&"a".repeat(160)),
            Segments {
                encoding: Encoding::Gsm7,
                count: 1
            }
        );
        assert_eq!(segments(&"a".repeat(161)).count, 2);
        assert_eq!(segments(&"a".repeat(306)).count, 2);
        assert_eq!(segments(&"a".repeat(307)).count, 3);
        assert_eq!(segments(&"a".repeat(1600)).count, 11);
    }

    #[test]
    fn extension_characters_take_two_septets_and_are_not_split() {
        assert_eq!(segments(&"€".repeat(80)).count, 1);
        assert_eq!(segments(&"€".repeat(81)).count, 2);
        // 152 septets, then an escape pair that does not fit in the first part.
        let body = format!("{}{}", "a".repeat(152), "[".repeat(5));
        assert_eq!(segments(&body).encoding, Encoding::Gsm7);
        assert_eq!(segments(&body).count, 2);
    }

    #[test]
    fn anything_outside_gsm7_makes_the_whole_message_ucs2() {
        assert_eq!(segments("héllo").encoding, Encoding::Gsm7, "é is in GSM-7");
        let emoji = segments("Your code is 123456 🙂");
        assert_eq!(emoji.encoding, Encoding::Ucs2);
        assert_eq!(emoji.count, 1);
        assert_eq!(segments(&"ж".repeat(70)).count, 1);
        assert_eq!(segments(&"ж".repeat(71)).count, 2);
        assert_eq!(segments(&"ж".repeat(134)).count, 2);
        assert_eq!(segments(&"ж".repeat(135)).count, 3);
        // Emoji are two UTF-16 units, never split across parts.
        assert_eq!(segments(&"🙂".repeat(35)).count, 1);
        assert_eq!(segments(&"🙂".repeat(36)).count, 2);
    }
}

/// A message's delivery status as Twilio reports it, in the order a message lives through
/// them: `queued`/`accepted`/`scheduled` < `sending` < `sent` < `delivered` < `read`, and
/// `failed`, `undelivered`, `canceled` terminal (they rank last, and none replaces another).
/// `unknown` is ours, not Twilio's: the provider got the message and no answer came back; any
/// callback settles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageStatus {
    Unknown,
    Queued,
    Accepted,
    Scheduled,
    Sending,
    Sent,
    Delivered,
    Read,
    Failed,
    Undelivered,
    Canceled,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 11] = [
        MessageStatus::Unknown,
        MessageStatus::Queued,
        MessageStatus::Accepted,
        MessageStatus::Scheduled,
        MessageStatus::Sending,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Read,
        MessageStatus::Failed,
        MessageStatus::Undelivered,
        MessageStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Unknown => "unknown",
            MessageStatus::Queued => "queued",
            MessageStatus::Accepted => "accepted",
            MessageStatus::Scheduled => "scheduled",
            MessageStatus::Sending => "sending",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Failed => "failed",
            MessageStatus::Undelivered => "undelivered",
            MessageStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// A status a Twilio callback may carry (every one but our `unknown`).
    pub fn from_twilio(s: &str) -> Option<Self> {
        Self::parse(s).filter(|status| *status != MessageStatus::Unknown)
    }

    /// Whether a callback with this status may replace `stored`: a higher rank, or anything
    /// Twilio says of a message whose outcome was unknown.
    pub fn replaces(self, stored: MessageStatus) -> bool {
        self != MessageStatus::Unknown
            && (stored == MessageStatus::Unknown || stored.rank() < self.rank())
    }

    /// Position in the message's life; a callback may only move a message to a higher rank.
    pub fn rank(self) -> u8 {
        match self {
            MessageStatus::Unknown
            | MessageStatus::Queued
            | MessageStatus::Accepted
            | MessageStatus::Scheduled => 0,
            MessageStatus::Sending => 1,
            MessageStatus::Sent => 2,
            MessageStatus::Delivered => 3,
            MessageStatus::Read => 4,
            MessageStatus::Failed | MessageStatus::Undelivered | MessageStatus::Canceled => 5,
        }
    }

    pub fn is_terminal(self) -> bool {
        self.rank() == 5
    }
}

#[cfg(test)]
mod status_tests {
    use super::MessageStatus::*;

    #[test]
    fn statuses_only_move_forward_and_terminal_ones_stay() {
        assert!(Sent.rank() < Delivered.rank() && Delivered.rank() < Read.rank());
        assert!(Queued.rank() == Accepted.rank() && Accepted.rank() == Scheduled.rank());
        for terminal in [Failed, Undelivered, Canceled] {
            assert!(terminal.is_terminal());
            assert!(terminal.rank() > Read.rank());
        }
        for status in super::MessageStatus::ALL {
            assert_eq!(super::MessageStatus::parse(status.as_str()), Some(status));
            assert!(!Unknown.replaces(status), "{status:?}");
        }
        assert!(Queued.replaces(Unknown) && Delivered.replaces(Unknown));
        assert!(!Queued.replaces(Queued) && !Sent.replaces(Delivered));
        assert_eq!(super::MessageStatus::from_twilio("unknown"), None);
    }
}

crate::id::random_id!(
    /// The id of a sent message in our log (`GET /sms/{id}`).
    MessageId,
    InvalidMessageId,
    "must be a message id as returned by /sms/send (a UUID)"
);
