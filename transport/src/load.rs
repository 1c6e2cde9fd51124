//! How hard the serving side is being pushed, and when that makes a new
//! connection attempt prove its address (a QUIC Retry) before any work is
//! done for it: when half of the link setup slots are taken, or when many
//! setups were refused lately (a flood of bad or spoofed attempts, each of
//! which would otherwise cost a handshake and an audit entry). Sans I/O:
//! callers pass the time.

use std::time::{Duration, Instant};

/// The span of one bucket of [`RecentRefusals`]: refusals are counted over
/// the last one to two of them.
pub const REFUSAL_BUCKET: Duration = Duration::from_secs(5);

/// Refused link setups over the last 5 to 10 seconds, in two buckets.
#[derive(Debug, Clone)]
pub struct RecentRefusals {
    bucket_start: Instant,
    current: u32,
    previous: u32,
}

impl RecentRefusals {
    /// No refusals yet, counting from `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            bucket_start: now,
            current: 0,
            previous: 0,
        }
    }

    /// Counts one refusal at `now`.
    pub fn note(&mut self, now: Instant) {
        self.roll(now);
        self.current = self.current.saturating_add(1);
    }

    /// Refusals in the current and the previous bucket.
    pub fn count(&mut self, now: Instant) -> u32 {
        self.roll(now);
        self.current.saturating_add(self.previous)
    }

    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.bucket_start);
        if elapsed >= 2 * REFUSAL_BUCKET {
            self.previous = 0;
            self.current = 0;
            self.bucket_start = now;
        } else if elapsed >= REFUSAL_BUCKET {
            self.previous = self.current;
            self.current = 0;
            self.bucket_start += REFUSAL_BUCKET;
        }
    }
}

/// Whether a new attempt from an address not yet validated must prove it
/// first: `free` of `slots` setup slots are left, and `refused` setups were
/// refused lately against a `limit` of them.
pub fn must_validate(free: usize, slots: usize, refused: u32, limit: u32) -> bool {
    free <= slots / 2 || refused >= limit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_count_over_one_to_two_buckets_then_fade() {
        let t0 = Instant::now();
        let mut r = RecentRefusals::new(t0);
        r.note(t0);
        r.note(t0 + Duration::from_secs(1));
        assert_eq!(r.count(t0 + Duration::from_secs(2)), 2);
        // Next bucket: the earlier ones still count.
        r.note(t0 + Duration::from_secs(6));
        assert_eq!(r.count(t0 + Duration::from_secs(7)), 3);
        // A bucket later only the one of the last bucket is left.
        assert_eq!(r.count(t0 + Duration::from_secs(11)), 1);
        // After two quiet buckets nothing is left.
        assert_eq!(r.count(t0 + Duration::from_secs(30)), 0);
        r.note(t0 + Duration::from_secs(30));
        assert_eq!(r.count(t0 + Duration::from_secs(31)), 1);
    }

    #[test]
    fn validation_is_asked_under_load_or_after_many_refusals() {
        assert!(!must_validate(64, 64, 0, 16));
        assert!(!must_validate(33, 64, 15, 16));
        assert!(must_validate(32, 64, 0, 16));
        assert!(must_validate(64, 64, 16, 16));
        assert!(must_validate(0, 0, 0, 16));
    }
}
