//! Two peers on simulated time over a seeded, lossy, delaying link (feature `testing`).
//!
//! Streams are reliable and ordered, as QUIC makes them: a "lost" stream packet arrives one
//! retransmission timeout later and holds back what follows it. Datagrams may be lost and
//! reordered. Each direction has its own delay, jitter and loss, so asymmetric paths can be
//! modelled. Everything is driven by [`Pair::run_until`]: no sleeps, fully reproducible.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::session::{
    Channel, HostConfig, HostEvent, HostSession, Transmit, ViewerConfig, ViewerEvent, ViewerSession,
};
use crate::time::WireClock;

/// SplitMix64: small, seeded, good enough for link emulation.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One direction of the link.
#[derive(Debug, Clone, Copy)]
pub struct LinkConfig {
    /// Base one-way delay.
    pub delay: Duration,
    /// Uniform jitter: each packet gets `delay ± jitter`.
    pub jitter: Duration,
    /// Probability a packet is lost (datagrams) or must be retransmitted (streams).
    pub loss: f64,
}

impl LinkConfig {
    /// A fixed delay, no jitter, no loss.
    pub fn fixed(delay: Duration) -> Self {
        LinkConfig {
            delay,
            jitter: Duration::ZERO,
            loss: 0.0,
        }
    }
}

#[derive(Debug)]
struct InFlight {
    at: Instant,
    order: u64,
    channel: Channel,
    bytes: Vec<u8>,
}

/// One direction of a simulated path.
#[derive(Debug)]
pub struct Link {
    cfg: LinkConfig,
    rng: Rng,
    up: bool,
    queue: Vec<InFlight>,
    last_stream_at: HashMap<Channel, Instant>,
    order: u64,
    /// Datagrams dropped so far.
    pub datagrams_lost: u64,
    /// Stream packets that needed a retransmission.
    pub stream_retransmits: u64,
}

impl Link {
    /// A link with its own seed.
    pub fn new(cfg: LinkConfig, seed: u64) -> Self {
        Link {
            cfg,
            rng: Rng::new(seed),
            up: true,
            queue: Vec::new(),
            last_stream_at: HashMap::new(),
            order: 0,
            datagrams_lost: 0,
            stream_retransmits: 0,
        }
    }

    /// Cuts (`false`) or restores the link. While cut, everything sent is lost.
    pub fn set_up(&mut self, up: bool) {
        self.up = up;
    }

    /// Changes delay, jitter and loss from now on.
    pub fn set_config(&mut self, cfg: LinkConfig) {
        self.cfg = cfg;
    }

    fn one_way(&mut self) -> Duration {
        let j = self.cfg.jitter.as_secs_f64();
        let d = self.cfg.delay.as_secs_f64() + (self.rng.unit() * 2.0 - 1.0) * j;
        Duration::from_secs_f64(d.max(0.0))
    }

    /// Puts a transmit on the wire at `now`.
    pub fn send(&mut self, now: Instant, t: Transmit) {
        if !self.up {
            if t.channel == Channel::Datagram {
                self.datagrams_lost += 1;
            }
            return;
        }
        let lost = self.rng.unit() < self.cfg.loss;
        let mut at = now + self.one_way();
        if t.channel == Channel::Datagram {
            if lost {
                self.datagrams_lost += 1;
                return;
            }
        } else {
            if lost {
                // Retransmitted after roughly one RTO (~ 2 × one-way + 1 ms granularity).
                self.stream_retransmits += 1;
                at += self.cfg.delay * 2 + Duration::from_millis(1);
            }
            // Ordered delivery: never before what was sent earlier on the same stream.
            let last = self.last_stream_at.entry(t.channel).or_insert(at);
            if at < *last {
                at = *last;
            }
            *last = at;
        }
        self.order += 1;
        self.queue.push(InFlight {
            at,
            order: self.order,
            channel: t.channel,
            bytes: t.bytes,
        });
    }

    /// When the next packet arrives.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.queue.iter().map(|p| p.at).min()
    }

    /// Everything due by `now`, in arrival order.
    pub fn due(&mut self, now: Instant) -> Vec<(Channel, Vec<u8>)> {
        let mut due: Vec<InFlight> = Vec::new();
        let mut i = 0;
        while i < self.queue.len() {
            if self.queue[i].at <= now {
                due.push(self.queue.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|p| (p.at, p.order));
        due.into_iter().map(|p| (p.channel, p.bytes)).collect()
    }
}

/// A host and a viewer joined by two links, on simulated time.
#[derive(Debug)]
pub struct Pair {
    /// Simulated now.
    pub now: Instant,
    /// The host.
    pub host: HostSession,
    /// The viewer.
    pub viewer: ViewerSession,
    /// Viewer → host.
    pub uplink: Link,
    /// Host → viewer.
    pub downlink: Link,
    /// Host events so far, with the time they were polled.
    pub host_events: Vec<(Instant, HostEvent)>,
    /// Viewer events so far, with the time they were polled.
    pub viewer_events: Vec<(Instant, ViewerEvent)>,
}

/// Clock bases and link settings for a [`Pair`].
#[derive(Debug, Clone)]
pub struct PairConfig {
    /// Host session settings.
    pub host: HostConfig,
    /// Viewer session settings.
    pub viewer: ViewerConfig,
    /// Viewer → host path.
    pub uplink: LinkConfig,
    /// Host → viewer path.
    pub downlink: LinkConfig,
    /// Host wire clock at the start.
    pub host_clock_base_us: u64,
    /// Viewer wire clock at the start.
    pub viewer_clock_base_us: u64,
    /// Seed for both links.
    pub seed: u64,
}

impl Default for PairConfig {
    fn default() -> Self {
        PairConfig {
            host: HostConfig::default(),
            viewer: ViewerConfig::default(),
            uplink: LinkConfig::fixed(Duration::from_millis(5)),
            downlink: LinkConfig::fixed(Duration::from_millis(5)),
            host_clock_base_us: 1_000_000_000,
            viewer_clock_base_us: 5_000_000,
            seed: 1,
        }
    }
}

impl Pair {
    /// Starts both peers at the same instant.
    pub fn new(cfg: PairConfig) -> Self {
        let now = Instant::now();
        Pair {
            now,
            host: HostSession::new(cfg.host, now, WireClock::new(now, cfg.host_clock_base_us)),
            viewer: ViewerSession::new(
                cfg.viewer,
                now,
                WireClock::new(now, cfg.viewer_clock_base_us),
            ),
            uplink: Link::new(cfg.uplink, cfg.seed),
            downlink: Link::new(cfg.downlink, cfg.seed.wrapping_mul(31).wrapping_add(7)),
            host_events: Vec::new(),
            viewer_events: Vec::new(),
        }
    }

    /// Drains transmits and events of both peers at the current time.
    pub fn flush(&mut self) {
        let now = self.now;
        while let Some(t) = self.viewer.poll_transmit(now) {
            self.uplink.send(now, t);
        }
        while let Some(t) = self.host.poll_transmit(now) {
            self.downlink.send(now, t);
        }
        while let Some(e) = self.host.poll_event() {
            self.host_events.push((now, e));
        }
        while let Some(e) = self.viewer.poll_event() {
            self.viewer_events.push((now, e));
        }
    }

    /// Advances to `deadline`, delivering packets and firing timers in time order.
    pub fn run_until(&mut self, deadline: Instant) {
        loop {
            self.flush();
            let next = [
                self.uplink.next_arrival(),
                self.downlink.next_arrival(),
                self.host.poll_timeout(),
                self.viewer.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next.filter(|t| *t <= deadline) else {
                self.now = self.now.max(deadline);
                self.flush();
                return;
            };
            self.now = self.now.max(next);
            let now = self.now;
            for (ch, bytes) in self.uplink.due(now) {
                match ch {
                    Channel::Datagram => self.host.handle_datagram(now, &bytes),
                    _ => self.host.handle_stream(now, ch, &bytes),
                }
            }
            for (ch, bytes) in self.downlink.due(now) {
                match ch {
                    Channel::Datagram => self.viewer.handle_datagram(now, &bytes),
                    _ => self.viewer.handle_stream(now, ch, &bytes),
                }
            }
            if self.host.poll_timeout().is_some_and(|t| t <= now) {
                self.host.handle_timeout(now);
            }
            if self.viewer.poll_timeout().is_some_and(|t| t <= now) {
                self.viewer.handle_timeout(now);
            }
        }
    }

    /// Advances by `d`.
    pub fn run_for(&mut self, d: Duration) {
        let deadline = self.now + d;
        self.run_until(deadline);
    }

    /// The true host − viewer clock offset (µs).
    pub fn true_offset_us(cfg: &PairConfig) -> i64 {
        cfg.host_clock_base_us as i64 - cfg.viewer_clock_base_us as i64
    }
}
