//! The conversion quarantine's policy, an open Fraud Guard: a number block or a country whose
//! sends do not verify is refused for a while. Fraud is recognised by what it does not do.
//!
//! Over the window, a send counts once it verified, or once it is older than the grace period
//! without verifying (measured at the end of its bucket, so a send waits at most one bucket,
//! a sixtieth of the window, beyond the grace). A destination with at least its minimum of
//! counted sends, of which fewer than the minimum share verified, is quarantined.

use time::OffsetDateTime;

use crate::config::QuarantineSettings;
use crate::store::reputation::Bucket;

/// The sends of a destination that count, and how many of them verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Conversion {
    pub sends: u32,
    pub verified: u32,
}

impl Conversion {
    /// The counts of `buckets` at `now` under `settings`.
    pub fn of(buckets: &[Bucket], now: OffsetDateTime, settings: &QuarantineSettings) -> Self {
        let window_start = now - settings.window;
        let matured_by = now - settings.grace;
        let mut c = Conversion::default();
        for b in buckets.iter().filter(|b| b.ends_at > window_start) {
            let verified = b.verified.min(b.sends);
            c.verified += verified;
            c.sends += if b.ends_at <= matured_by {
                b.sends
            } else {
                verified
            };
        }
        c
    }

    /// Whether this many counted sends, converting this little, make a quarantine.
    pub fn trips(&self, min_sends: u32, min_conversion_percent: u32) -> bool {
        self.sends >= min_sends
            && u64::from(self.verified) * 100
                < u64::from(min_conversion_percent) * u64::from(self.sends)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::QuarantineMode;

    fn settings() -> QuarantineSettings {
        QuarantineSettings {
            mode: QuarantineMode::Enforce,
            window: Duration::from_secs(3600),
            grace: Duration::from_secs(120),
            min_sends: 10,
            country_min_sends: 200,
            min_conversion_percent: 20,
            duration: Duration::from_secs(43_200),
        }
    }

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000 + secs).unwrap()
    }

    fn bucket(ends: i64, sends: u32, verified: u32) -> Bucket {
        Bucket {
            ends_at: at(ends),
            sends,
            verified,
        }
    }

    #[test]
    fn young_unverified_sends_wait_for_the_grace_but_verified_ones_count_at_once() {
        let now = at(0);
        let c = Conversion::of(&[bucket(-60, 5, 1), bucket(0, 5, 2)], now, &settings());
        assert_eq!(
            c,
            Conversion {
                sends: 3,
                verified: 3
            }
        );
        let c = Conversion::of(&[bucket(-120, 5, 1)], now, &settings());
        assert_eq!(
            c,
            Conversion {
                sends: 5,
                verified: 1
            }
        );
    }

    #[test]
    fn sends_older_than_the_window_are_forgotten() {
        let now = at(0);
        let c = Conversion::of(
            &[bucket(-3600, 50, 0), bucket(-3540, 4, 0)],
            now,
            &settings(),
        );
        assert_eq!(
            c,
            Conversion {
                sends: 4,
                verified: 0
            }
        );
    }

    #[test]
    fn a_destination_trips_at_its_minimum_of_sends_below_the_minimum_conversion() {
        assert!(
            !Conversion {
                sends: 9,
                verified: 0
            }
            .trips(10, 20)
        );
        assert!(
            Conversion {
                sends: 10,
                verified: 1
            }
            .trips(10, 20)
        );
        assert!(
            !Conversion {
                sends: 10,
                verified: 2
            }
            .trips(10, 20)
        );
        assert!(
            !Conversion {
                sends: 10,
                verified: 0
            }
            .trips(10, 0)
        );
    }
}
