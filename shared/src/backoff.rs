//! The one backoff of every retry loop: "full jitter" (a random wait between zero and an
//! exponential bound), so that callers that collided do not collide again in step.

use std::time::Duration;

/// A growing bound: `base` doubled at each attempt, never above `cap`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// The wait before retry `attempt` (1 for the first retry): uniform in
    /// `[0, min(cap, base * 2^(attempt-1))]`.
    pub fn full_jitter(&self, attempt: u32) -> Duration {
        let bound = self
            .base
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(self.cap);
        let bound_ms = bound.as_millis() as u64;
        Duration::from_millis(crate::id::random_below(bound_ms + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_spread_from_zero_to_the_growing_capped_bound() {
        let b = Backoff {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(400),
        };
        let waits: Vec<Duration> = (0..2_000).map(|_| b.full_jitter(3)).collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_millis(40)));
        assert!(waits.iter().any(|w| *w <= Duration::from_millis(4)));
        assert!(waits.iter().any(|w| *w >= Duration::from_millis(36)));
        assert!((0..500).all(|_| b.full_jitter(30) <= Duration::from_millis(400)));
    }
}
