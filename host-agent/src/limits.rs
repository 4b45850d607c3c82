//! Limits on connection attempts and pairing attempts, decided before any TLS work is done.
//! Sans-IO: the caller passes the time, so the rules are tested without sockets or sleeps.
//!
//! * [`ConnectThrottle`]: a token bucket per source address (IPv6 by /64, since one machine
//!   owns a whole /64), checked on the first packet of a connection, before the TLS handshake.
//!   An address over its budget is refused with a QUIC `CONNECTION_REFUSED` (a few bytes, no
//!   crypto). The net layer adds a cap on handshakes in flight and asks unvalidated addresses
//!   for a QUIC Retry when the host is busy, so spoofed sources cannot hold handshakes open.
//! * [`PairingThrottle`]: one pairing exchange at a time; after a failure, the same address
//!   waits (doubling per failure); at most a few attempts per minute overall. The pairing code
//!   itself is burned after a few wrong tries (`sightline_certs::pairing::PairingWindow`).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use sightline_protocol::session::TokenBucket;

/// The address a limit is kept for: IPv4 as is, IPv6 by its /64 prefix.
pub fn address_bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Connection-attempt limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectLimits {
    /// New connections per second allowed from one address (sustained).
    pub per_address_per_s: u32,
    /// Connections from one address allowed in a burst.
    pub per_address_burst: u32,
    /// TLS handshakes in progress at once, over all addresses; beyond it new attempts are
    /// refused, and past half of it unvalidated addresses are asked for a QUIC Retry first.
    pub max_handshakes: usize,
}

impl Default for ConnectLimits {
    fn default() -> Self {
        ConnectLimits {
            per_address_per_s: 2,
            per_address_burst: 10,
            max_handshakes: 32,
        }
    }
}

/// Most addresses tracked at once; past this, idle entries are dropped first and, if still
/// full, every address shares one overflow bucket (a flood from many addresses then limits
/// itself rather than the host's memory).
const MAX_TRACKED: usize = 16_384;

#[derive(Debug)]
struct Tracked {
    bucket: TokenBucket,
    last_seen: Instant,
    refused_since_report: u64,
    last_report: Option<Instant>,
}

/// What [`ConnectThrottle::check`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectDecision {
    /// Go ahead.
    Allow,
    /// Refuse. `report` is `Some(n)` when this refusal should be logged (at most once per
    /// address every [`REPORT_EVERY`]), with `n` refusals since the last report.
    Refuse {
        /// Refusals to report now, if any.
        report: Option<u64>,
    },
}

/// How often a throttled address is reported (audit and log), at most.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Per-address connection budget.
#[derive(Debug)]
pub struct ConnectThrottle {
    limits: ConnectLimits,
    tracked: HashMap<IpAddr, Tracked>,
    overflow: Option<Tracked>,
}

impl ConnectThrottle {
    /// A throttle with `limits`.
    pub fn new(limits: ConnectLimits) -> Self {
        ConnectThrottle {
            limits,
            tracked: HashMap::new(),
            overflow: None,
        }
    }

    /// The limits.
    pub fn limits(&self) -> ConnectLimits {
        self.limits
    }

    fn fresh(&self, now: Instant) -> Tracked {
        Tracked {
            bucket: TokenBucket::new(
                self.limits.per_address_per_s,
                self.limits.per_address_burst,
                now,
            ),
            last_seen: now,
            refused_since_report: 0,
            last_report: None,
        }
    }

    /// A connection attempt from `ip` at `now`.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> ConnectDecision {
        let key = address_bucket(ip);
        if !self.tracked.contains_key(&key) && self.tracked.len() >= MAX_TRACKED {
            self.sweep(now);
        }
        let full = self.tracked.len() >= MAX_TRACKED && !self.tracked.contains_key(&key);
        let fresh = self.fresh(now);
        let t = if full {
            self.overflow.get_or_insert(fresh)
        } else {
            self.tracked.entry(key).or_insert(fresh)
        };
        t.last_seen = now;
        if t.bucket.take(now) {
            return ConnectDecision::Allow;
        }
        t.refused_since_report += 1;
        let due = t
            .last_report
            .is_none_or(|at| now.saturating_duration_since(at) >= REPORT_EVERY);
        if due {
            t.last_report = Some(now);
            let n = std::mem::take(&mut t.refused_since_report);
            ConnectDecision::Refuse { report: Some(n) }
        } else {
            ConnectDecision::Refuse { report: None }
        }
    }

    /// Drops addresses whose bucket has refilled (nothing left to remember).
    fn sweep(&mut self, now: Instant) {
        let refill = Duration::from_secs_f64(
            f64::from(self.limits.per_address_burst.max(1))
                / f64::from(self.limits.per_address_per_s.max(1)),
        );
        self.tracked
            .retain(|_, t| now.saturating_duration_since(t.last_seen) < refill.max(REPORT_EVERY));
    }

    /// Addresses tracked now (for tests and diagnostics).
    pub fn tracked(&self) -> usize {
        self.tracked.len()
    }
}

/// Pairing-attempt limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairingLimits {
    /// After a failed attempt, the same address waits this long; doubled per further failure.
    pub retry_delay: Duration,
    /// Upper bound of that wait.
    pub max_retry_delay: Duration,
    /// Attempts per minute over all addresses.
    pub per_minute: usize,
    /// How long one pairing exchange may take.
    pub exchange_timeout: Duration,
}

impl Default for PairingLimits {
    fn default() -> Self {
        PairingLimits {
            retry_delay: Duration::from_secs(2),
            max_retry_delay: Duration::from_secs(60),
            per_minute: 10,
            exchange_timeout: Duration::from_secs(15),
        }
    }
}

/// Why a pairing attempt may not start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingDenied {
    /// Another exchange is running.
    Busy,
    /// This address failed recently; try again after this long.
    AddressBackoff(Duration),
    /// Too many attempts overall; try again after this long.
    Global(Duration),
}

/// One pairing exchange at a time, per-address back-off, a global rate.
#[derive(Debug)]
pub struct PairingThrottle {
    limits: PairingLimits,
    in_flight: bool,
    recent: VecDeque<Instant>,
    backoff: HashMap<IpAddr, (u32, Instant)>,
}

impl PairingThrottle {
    /// A throttle with `limits`.
    pub fn new(limits: PairingLimits) -> Self {
        PairingThrottle {
            limits,
            in_flight: false,
            recent: VecDeque::new(),
            backoff: HashMap::new(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> PairingLimits {
        self.limits
    }

    /// Starts an attempt from `ip`, or says why not. Every admitted attempt must be ended with
    /// [`finish`](Self::finish).
    pub fn admit(&mut self, ip: IpAddr, now: Instant) -> Result<(), PairingDenied> {
        let key = address_bucket(ip);
        if self.in_flight {
            return Err(PairingDenied::Busy);
        }
        if let Some(&(_, until)) = self.backoff.get(&key) {
            if now < until {
                return Err(PairingDenied::AddressBackoff(until - now));
            }
        }
        let minute = Duration::from_secs(60);
        while self
            .recent
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= minute)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.limits.per_minute.max(1) {
            let oldest = self.recent.front().copied().unwrap_or(now);
            return Err(PairingDenied::Global(
                minute.saturating_sub(now.saturating_duration_since(oldest)),
            ));
        }
        self.recent.push_back(now);
        self.in_flight = true;
        Ok(())
    }

    /// Ends the attempt started by [`admit`](Self::admit). A failure makes `ip` wait.
    pub fn finish(&mut self, ip: IpAddr, now: Instant, success: bool) {
        self.in_flight = false;
        let key = address_bucket(ip);
        if success {
            self.backoff.remove(&key);
            return;
        }
        let failures = self.backoff.get(&key).map_or(0, |&(n, _)| n) + 1;
        let delay = self
            .limits
            .retry_delay
            .saturating_mul(1u32 << (failures - 1).min(16))
            .min(self.limits.max_retry_delay);
        self.backoff.insert(key, (failures, now + delay));
        if self.backoff.len() > MAX_TRACKED {
            self.backoff.retain(|_, &mut (_, until)| until > now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_is_limited_per_64() {
        assert_eq!(
            address_bucket(ip("2001:db8:1:2:aaaa::1")),
            address_bucket(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            address_bucket(ip("2001:db8:1:2::1")),
            address_bucket(ip("2001:db8:1:3::1"))
        );
        assert_eq!(address_bucket(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
    }

    #[test]
    fn one_address_is_throttled_others_are_not() {
        let t0 = Instant::now();
        let mut t = ConnectThrottle::new(ConnectLimits {
            per_address_per_s: 2,
            per_address_burst: 10,
            max_handshakes: 32,
        });
        let flood: Vec<_> = (0..1000).map(|_| t.check(ip("127.0.0.2"), t0)).collect();
        assert_eq!(
            flood
                .iter()
                .filter(|d| **d == ConnectDecision::Allow)
                .count(),
            10
        );
        // The first refusal is reported, the rest are counted until the next report.
        assert_eq!(flood[10], ConnectDecision::Refuse { report: Some(1) });
        assert_eq!(flood[11], ConnectDecision::Refuse { report: None });
        assert_eq!(t.check(ip("127.0.0.1"), t0), ConnectDecision::Allow);
        let later = t0 + REPORT_EVERY;
        // 20 tokens refilled over 10 s, capped at the burst of 10.
        assert_eq!(t.check(ip("127.0.0.2"), later), ConnectDecision::Allow);
        let mut refused = None;
        for _ in 0..20 {
            if let ConnectDecision::Refuse { report } = t.check(ip("127.0.0.2"), later) {
                refused = report;
                break;
            }
        }
        assert_eq!(refused, Some(990), "the report counts what was suppressed");
    }

    #[test]
    fn memory_stays_bounded_under_a_spoofed_flood() {
        let t0 = Instant::now();
        let mut t = ConnectThrottle::new(ConnectLimits::default());
        for i in 0..(MAX_TRACKED as u32 + 5000) {
            let a = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            t.check(IpAddr::V4(a), t0);
        }
        assert!(t.tracked() <= MAX_TRACKED);
    }

    #[test]
    fn pairing_one_at_a_time_with_backoff_and_global_rate() {
        let t0 = Instant::now();
        let mut p = PairingThrottle::new(PairingLimits {
            retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(4),
            per_minute: 5,
            exchange_timeout: Duration::from_secs(5),
        });
        let a = ip("192.0.2.1");
        let b = ip("192.0.2.2");
        p.admit(a, t0).unwrap();
        assert_eq!(p.admit(b, t0), Err(PairingDenied::Busy));
        p.finish(a, t0, false);
        assert_eq!(
            p.admit(a, t0),
            Err(PairingDenied::AddressBackoff(Duration::from_secs(1)))
        );
        p.admit(b, t0).unwrap();
        p.finish(b, t0, true);
        let t1 = t0 + Duration::from_secs(1);
        p.admit(a, t1).unwrap();
        p.finish(a, t1, false);
        // Doubled.
        assert_eq!(
            p.admit(a, t1),
            Err(PairingDenied::AddressBackoff(Duration::from_secs(2)))
        );
        // Capped.
        for _ in 0..5 {
            p.finish(a, t1, false);
        }
        assert_eq!(
            p.admit(a, t1),
            Err(PairingDenied::AddressBackoff(Duration::from_secs(4)))
        );
        // Global: 3 attempts so far in this minute; 2 more are allowed, then none.
        let c = ip("192.0.2.3");
        for _ in 0..2 {
            p.admit(c, t1).unwrap();
            p.finish(c, t1, true);
        }
        assert!(matches!(p.admit(c, t1), Err(PairingDenied::Global(_))));
        assert!(p.admit(c, t0 + Duration::from_secs(61)).is_ok());
    }
}
