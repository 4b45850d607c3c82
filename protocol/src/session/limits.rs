//! Per-session rate limits: a viewer that floods the host with input or control messages is
//! told goodbye (`GoodbyeReason::Refused`, with the limit in the message) instead of eating the
//! host's CPU and injection queue. Token buckets on the caller's clock (sans-IO).

use std::time::{Duration, Instant};

/// Rate limits for one session. Generous enough that no real device trips them: a 8 kHz
/// gaming mouse sends each event twice (stream + datagram copy, protocol revision 2), i.e.
/// 16,000 messages per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Input messages (stream and datagram copies together) per second, sustained.
    pub input_per_s: u32,
    /// Input messages allowed in a burst above the sustained rate.
    pub input_burst: u32,
    /// Control messages (pings, stats, keyframe requests, …) per second, sustained.
    pub control_per_s: u32,
    /// Control messages allowed in a burst.
    pub control_burst: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            input_per_s: 20_000,
            input_burst: 40_000,
            control_per_s: 200,
            control_burst: 400,
        }
    }
}

/// A token bucket: `burst` tokens, refilled at `per_s` tokens per second. A rate of 0 means
/// unlimited.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_s: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(per_s: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(per_s).max(1));
        TokenBucket {
            per_s: f64::from(per_s),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token; false when the bucket is empty (the limit is exceeded).
    pub fn take(&mut self, now: Instant) -> bool {
        if self.per_s == 0.0 {
            return true;
        }
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + dt * self.per_s).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until a token is available (zero when one is).
    pub fn wait_time(&self, now: Instant) -> Duration {
        if self.per_s == 0.0 {
            return Duration::ZERO;
        }
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        let tokens = (self.tokens + dt * self.per_s).min(self.burst);
        if tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - tokens) / self.per_s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 20, t0);
        assert_eq!((0..20).filter(|_| b.take(t0)).count(), 20);
        assert!(!b.take(t0));
        assert_eq!(b.wait_time(t0), Duration::from_millis(100));
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..20).filter(|_| b.take(t1)).count(), 5);
        // Refill never exceeds the burst.
        let t2 = t1 + Duration::from_secs(100);
        assert_eq!((0..100).filter(|_| b.take(t2)).count(), 20);
        // Zero means unlimited.
        let mut u = TokenBucket::new(0, 0, t0);
        assert!((0..1000).all(|_| u.take(t0)));
    }
}
