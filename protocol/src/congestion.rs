//! Congestion-aware video rate control and loss-driven forward error correction (sans-IO).
//!
//! The host encodes video at a bitrate; the path between host and viewer carries some rate
//! that changes (a shared office link, Wi-Fi, a VPN). When the encoder produces more than the
//! path carries, the excess waits in a queue — in the host's send queue, in QUIC's datagram
//! buffer or in a router — and every frame behind it is late. [`RateController`] watches the
//! path and keeps the encoder's target under what the path delivers, so no standing queue
//! builds; [`parity_for`] sizes each frame's parity from the loss the path shows.
//!
//! # Signals (one [`PathSample`] every ~50 ms, time as an argument)
//!
//! | signal | source on the host | what it says |
//! |---|---|---|
//! | sender queue delay | the pacer's head-of-queue sojourn, the minimum over the interval ([`crate::pacing`]) | video waits in our own queue: the encoder produces more than the transport sends |
//! | RTT above the path's minimum | QUIC's smoothed RTT, windowed minimum over 10 s | a queue in the network (a router's buffer) |
//! | loss | QUIC's lost/sent packet counters over the last 2 s | random loss (tolerated) or a full buffer (heavy loss) |
//! | delivered rate | QUIC's sent bytes − lost bytes over the last 500 ms | what the path actually carried |
//!
//! The minimum of the queue delay over an interval, not its mean, separates a burst (a
//! keyframe drains and the queue empties) from a standing queue (it never empties) — CoDel's
//! insight. A known burst is also excused explicitly ([`RateController::on_burst`]).
//!
//! # Policy
//! * **Overuse** (queue delay or RTT excess above target for two samples in a row, or at once
//!   when four times the target; or loss over the last 500 ms above [`RateConfig::heavy_loss`]):
//!   the target drops
//!   to 85 % of the delivered rate (80 % when the queue is already deep), at most once per
//!   RTT + [`RateConfig::hold`], never below [`RateConfig::min_bps`]. The highest delivered
//!   rate of the last 2 s is remembered as the congestion point (the path's capacity, not the
//!   dip the push-back caused). A target already below that is kept:
//!   then the queue comes from bursts (keyframes) or other traffic, and a lower target would
//!   only spiral down without draining it.
//! * **Random loss** below `heavy_loss` never lowers the rate (BBR on the QUIC side does the
//!   same): at 1 % loss, halving the rate would only make the picture worse. It raises parity
//!   instead ([`parity_for`]).
//! * **Otherwise** the target rises: quickly (+50 %/s) while well below the last congestion
//!   point, slowly (+8 %/s) near it, up to [`RateConfig::max_bps`] (the user's `--bitrate`).
//!   A congestion point older than 15 s is forgotten, so a path that got better is found again.
//! * **Startup**: for the first second the sender queue is ignored (QUIC's congestion window
//!   is still growing, so the first keyframe queues whatever the path).
//!
//! The host encodes once for every viewer; each session runs its own controller and the encoder
//! follows the lowest target (the slowest viewer). A session whose path is dead (nothing heard
//! for a while) is left out of that minimum, so a viewer that dropped off does not starve the
//! others.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Rate controller settings. Every field has a documented default ([`RateConfig::default`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateConfig {
    /// Ceiling: the user's configured bitrate (bits/s). Default 20 Mbit/s.
    pub max_bps: u64,
    /// Floor (bits/s). Default 300 kbit/s: below that a desktop picture is not usable anyway.
    pub min_bps: u64,
    /// Where to start (bits/s); `None` starts at the ceiling (BBR on the QUIC side probes the
    /// path quickly, and a standing queue shows within ~100 ms). Default `None`.
    pub start_bps: Option<u64>,
    /// Sender queue delay that signals a standing queue. Default 20 ms.
    pub queue_delay_target: Duration,
    /// RTT above the path's minimum that signals a queue in the network. Default 30 ms.
    pub rtt_excess_target: Duration,
    /// Loss share treated as congestion rather than random loss. Default 8 %.
    pub heavy_loss: f64,
    /// Least time between two decreases, on top of one RTT (the encoder and the queues need
    /// that long to show the effect of the last one). Default 300 ms.
    pub hold: Duration,
    /// Growth per second near the last congestion point. Default 0.08 (8 %/s).
    pub increase_per_s: f64,
    /// Growth per second well below it (after a transient). Default 0.5 (50 %/s).
    pub fast_increase_per_s: f64,
    /// At the start of a session the sender queue is not a signal: QUIC's congestion window
    /// starts small and grows over the first round trips, so the first keyframe waits whatever
    /// the path. Default 1 s.
    pub startup_grace: Duration,
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            max_bps: 20_000_000,
            min_bps: 300_000,
            start_bps: None,
            queue_delay_target: Duration::from_millis(20),
            rtt_excess_target: Duration::from_millis(30),
            heavy_loss: 0.08,
            hold: Duration::from_millis(300),
            increase_per_s: 0.08,
            fast_increase_per_s: 0.5,
            startup_grace: Duration::from_secs(1),
        }
    }
}

/// What the I/O layer observed, cumulative counters as QUIC reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathSample {
    /// When the sample was taken.
    pub now: Instant,
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// The sender queue's head-of-queue sojourn, minimum over the interval since the last
    /// sample (zero when the queue emptied at least once).
    pub queue_delay: Duration,
    /// Bytes sent on the wire so far (UDP payload).
    pub tx_bytes: u64,
    /// Bytes declared lost so far.
    pub lost_bytes: u64,
    /// Packets sent so far.
    pub sent_packets: u64,
    /// Packets declared lost so far.
    pub lost_packets: u64,
}

/// The controller's state, for stats and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateState {
    /// Rising towards the ceiling or the last congestion point.
    Increase,
    /// Just decreased; waiting for the effect.
    Hold,
    /// Decreased in this sample.
    Decrease,
}

/// Why the controller decreased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Congestion {
    /// Video waits in the sender's queue.
    SenderQueue,
    /// The RTT rose above the path's minimum.
    NetworkQueue,
    /// Loss above the heavy-loss share.
    HeavyLoss,
}

/// The controller's answer to a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateDecision {
    /// Bits per second the media may use (video including parity).
    pub target_bps: u64,
    /// Packet loss share over the last ~2 s.
    pub loss: f64,
    /// What the path delivered over the last ~500 ms (bits/s), when measured.
    pub delivered_bps: Option<u64>,
    /// State after this sample.
    pub state: RateState,
    /// Set when this sample decreased the target.
    pub congestion: Option<Congestion>,
}

/// Follows the path's capacity (see the module docs).
#[derive(Debug, Clone)]
pub struct RateController {
    cfg: RateConfig,
    target_bps: f64,
    state: RateState,
    last: Option<PathSample>,
    /// (time, delivered bytes) over the last ~500 ms.
    delivered: VecDeque<(Instant, u64)>,
    /// (time, sent packets, lost packets) over the last ~2 s.
    losses: VecDeque<(Instant, u64, u64)>,
    loss: f64,
    /// Loss over the last ~500 ms only: the congestion signal must be fresh, or losses a
    /// decrease already answered would lower the rate again and again.
    recent_loss: f64,
    /// (time, smoothed RTT) samples of the last 10 s, for the windowed minimum.
    rtts: VecDeque<(Instant, Duration)>,
    overuse_streak: u32,
    last_decrease: Option<Instant>,
    congestion_point: Option<(Instant, f64)>,
    excused_until: Option<(Instant, Duration)>,
    decreases: u64,
    /// The first sample's time (start of the startup grace).
    started: Option<Instant>,
    /// Delivered-rate measurements of the last 2 s: the highest is what the path carried
    /// before it pushed back (the congestion point), not the dip the push-back caused.
    delivered_history: VecDeque<(Instant, u64)>,
}

/// Window of the delivered-rate measurement.
const DELIVERED_WINDOW: Duration = Duration::from_millis(500);
/// Window of the loss measurement.
const LOSS_WINDOW: Duration = Duration::from_secs(2);
/// Window of the RTT minimum.
const RTT_WINDOW: Duration = Duration::from_secs(10);
/// Fewest packets for a loss figure to count.
const LOSS_MIN_PACKETS: u64 = 50;
/// A congestion point older than this is forgotten.
const CONGESTION_MEMORY: Duration = Duration::from_secs(15);

impl RateController {
    /// A controller starting at `cfg.start_bps` (or the ceiling).
    pub fn new(cfg: RateConfig) -> Self {
        let start = cfg
            .start_bps
            .unwrap_or(cfg.max_bps)
            .clamp(cfg.min_bps, cfg.max_bps.max(cfg.min_bps));
        RateController {
            cfg,
            target_bps: start as f64,
            state: RateState::Increase,
            last: None,
            delivered: VecDeque::new(),
            losses: VecDeque::new(),
            loss: 0.0,
            recent_loss: 0.0,
            rtts: VecDeque::new(),
            overuse_streak: 0,
            last_decrease: None,
            congestion_point: None,
            excused_until: None,
            decreases: 0,
            started: None,
            delivered_history: VecDeque::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> RateConfig {
        self.cfg
    }

    /// The current target (bits/s).
    pub fn target_bps(&self) -> u64 {
        self.target_bps as u64
    }

    /// Loss share over the last ~2 s.
    pub fn loss(&self) -> f64 {
        self.loss
    }

    /// How many times the target was lowered.
    pub fn decreases(&self) -> u64 {
        self.decreases
    }

    /// Changes the ceiling (the user changed `--bitrate`); the target follows at once when it
    /// is above.
    pub fn set_max_bps(&mut self, max_bps: u64) {
        self.cfg.max_bps = max_bps.max(self.cfg.min_bps);
        self.target_bps = self.target_bps.min(self.cfg.max_bps as f64);
    }

    /// A burst of `bytes` (a keyframe) was queued at `now`: the sender queue it causes, up to
    /// the time it takes to drain at the delivered rate, is not congestion.
    pub fn on_burst(&mut self, now: Instant, bytes: usize) {
        let rate = self
            .delivered_bps(now)
            .map_or(self.target_bps, |d| d as f64)
            .max(1.0);
        let drain = Duration::from_secs_f64((bytes as f64 * 8.0 / rate).min(2.0));
        let until = now + drain + Duration::from_millis(50);
        self.excused_until = Some(match self.excused_until {
            Some((t, d)) if t > until => (t, d.max(drain)),
            _ => (until, drain),
        });
    }

    /// The smallest smoothed RTT of the last 10 s.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.rtts.iter().map(|(_, r)| *r).min()
    }

    /// What the path delivered over the last ~500 ms (bits/s), once at least 50 ms are
    /// covered.
    pub fn delivered_bps(&self, _now: Instant) -> Option<u64> {
        let (t0, b0) = *self.delivered.front()?;
        let (t1, b1) = *self.delivered.back()?;
        let dt = t1.saturating_duration_since(t0);
        if dt < Duration::from_millis(50) {
            return None;
        }
        Some(((b1.saturating_sub(b0)) as f64 * 8.0 / dt.as_secs_f64()) as u64)
    }

    /// Folds in one sample and returns the new target.
    pub fn on_sample(&mut self, s: PathSample) -> RateDecision {
        let now = s.now;
        let dt = self
            .last
            .map_or(Duration::ZERO, |l| now.saturating_duration_since(l.now))
            .min(Duration::from_millis(500));
        self.record(&s);
        let min_rtt = self.min_rtt().unwrap_or(s.rtt);
        let rtt_excess = s.rtt.saturating_sub(min_rtt);
        let delivered = self.delivered_bps(now);
        if let Some(d) = delivered {
            self.delivered_history.push_back((now, d));
        }
        while self
            .delivered_history
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > LOSS_WINDOW)
        {
            self.delivered_history.pop_front();
        }

        let excuse = match self.excused_until {
            Some((until, drain)) if now < until => drain,
            Some(_) => {
                self.excused_until = None;
                Duration::ZERO
            }
            None => Duration::ZERO,
        };
        let started = *self.started.get_or_insert(now);
        let queue_over = if now.saturating_duration_since(started) < self.cfg.startup_grace {
            Duration::ZERO
        } else {
            s.queue_delay.saturating_sub(excuse)
        };
        let q_target = self.cfg.queue_delay_target;
        let r_target = self.cfg.rtt_excess_target;
        let signal = if queue_over > q_target {
            Some((Congestion::SenderQueue, queue_over > q_target * 4))
        } else if rtt_excess > r_target {
            Some((Congestion::NetworkQueue, rtt_excess > r_target * 4))
        } else if self.recent_loss > self.cfg.heavy_loss {
            Some((Congestion::HeavyLoss, true))
        } else {
            None
        };
        self.overuse_streak = if signal.is_some() {
            self.overuse_streak + 1
        } else {
            0
        };
        let held = self
            .last_decrease
            .is_some_and(|t| now.saturating_duration_since(t) < self.cfg.hold + s.rtt);
        let mut congestion = None;
        match signal {
            Some((why, severe)) if (severe || self.overuse_streak >= 2) && !held => {
                let base = delivered.map_or(self.target_bps, |d| d as f64);
                let factor = if severe { 0.8 } else { 0.85 };
                let next = (base * factor).max(self.cfg.min_bps as f64);
                let peak = self
                    .delivered_history
                    .iter()
                    .map(|(_, d)| *d as f64)
                    .fold(base, f64::max);
                self.congestion_point = Some((now, peak));
                if next < self.target_bps {
                    self.target_bps = next;
                    self.last_decrease = Some(now);
                    self.state = RateState::Decrease;
                    self.decreases += 1;
                    congestion = Some(why);
                } else {
                    // The target is already well under what the path delivers: the queue
                    // comes from something else (bursts, other traffic); lowering the target
                    // further would not drain it.
                    self.state = RateState::Hold;
                }
            }
            Some(_) => {
                // Overuse not yet confirmed, or confirmed while the last decrease is still
                // taking effect: hold.
                self.state = RateState::Hold;
            }
            None if held => self.state = RateState::Hold,
            None => {
                if self
                    .congestion_point
                    .is_some_and(|(t, _)| now.saturating_duration_since(t) > CONGESTION_MEMORY)
                {
                    self.congestion_point = None;
                }
                let near = self
                    .congestion_point
                    .is_some_and(|(_, point)| self.target_bps > point * 0.7);
                let per_s = if near {
                    self.cfg.increase_per_s
                } else {
                    self.cfg.fast_increase_per_s
                };
                self.target_bps = (self.target_bps * (1.0 + per_s * dt.as_secs_f64()))
                    .min(self.cfg.max_bps as f64);
                self.state = RateState::Increase;
            }
        }
        self.last = Some(s);
        RateDecision {
            target_bps: self.target_bps as u64,
            loss: self.loss,
            delivered_bps: delivered,
            state: self.state,
            congestion,
        }
    }

    fn record(&mut self, s: &PathSample) {
        let now = s.now;
        self.delivered
            .push_back((now, s.tx_bytes.saturating_sub(s.lost_bytes)));
        while self
            .delivered
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > DELIVERED_WINDOW)
        {
            self.delivered.pop_front();
        }
        self.losses.push_back((now, s.sent_packets, s.lost_packets));
        while self.losses.len() > 2
            && self
                .losses
                .front()
                .is_some_and(|(t, _, _)| now.saturating_duration_since(*t) > LOSS_WINDOW)
        {
            self.losses.pop_front();
        }
        if let (Some(&(_, s0, l0)), Some(&(_, s1, l1))) = (self.losses.front(), self.losses.back())
        {
            let sent = s1.saturating_sub(s0);
            if sent >= LOSS_MIN_PACKETS {
                self.loss = (l1.saturating_sub(l0) as f64 / sent as f64).min(1.0);
            }
        }
        // The same over the last ~500 ms (at least 20 packets, else no fresh signal).
        let recent = self
            .losses
            .iter()
            .find(|(t, _, _)| now.saturating_duration_since(*t) <= DELIVERED_WINDOW);
        self.recent_loss = match (recent, self.losses.back()) {
            (Some(&(_, s0, l0)), Some(&(_, s1, l1))) if s1.saturating_sub(s0) >= 20 => {
                (l1.saturating_sub(l0) as f64 / s1.saturating_sub(s0) as f64).min(1.0)
            }
            _ => 0.0,
        };
        if !s.rtt.is_zero() {
            self.rtts.push_back((now, s.rtt));
        }
        while self
            .rtts
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > RTT_WINDOW)
        {
            self.rtts.pop_front();
        }
    }
}

/// Parity fragments for a frame of `data_fragments` on a path losing `loss` of its packets.
///
/// The smallest `m ≥ min_parity` such that the frame is lost (more than `m` of its
/// `data_fragments + m` fragments lost, independently with probability `p`) with probability
/// at most `frame_loss_target`; `p` is the measured loss × 1.5 (loss comes in small bursts and
/// the estimate lags), at least 0.2 %. At most four or `data_fragments` parity fragments,
/// whichever is more, for small frames (up to 8 fragments), half the data fragments for large
/// ones, and never more than `max_total − data_fragments`.
///
/// At 1 % loss and a target of 2·10⁻⁴ this gives 2 parity fragments for a one-fragment frame,
/// and about 13 for a 270-fragment keyframe (5 %); at 5 % loss, 3 and about 39 (14 %).
pub fn parity_for(
    data_fragments: usize,
    loss: f64,
    frame_loss_target: f64,
    min_parity: usize,
    max_total: usize,
) -> usize {
    let k = data_fragments.max(1);
    let cap = if k <= 8 { k.max(4) } else { k / 2 }
        .max(min_parity)
        .min(max_total.saturating_sub(k));
    let p = (loss * 1.5).clamp(0.002, 0.5);
    let mut m = min_parity.min(cap);
    while m < cap && binomial_tail_above(k + m, m, p) > frame_loss_target {
        m += 1;
    }
    m
}

/// P[X > m] for X ~ Binomial(n, p).
fn binomial_tail_above(n: usize, m: usize, p: f64) -> f64 {
    if m >= n {
        return 0.0;
    }
    // Sum P[X = i] for i = 0..=m in log space for the first term, then by recurrence.
    let q = 1.0 - p;
    let mut term = (n as f64 * q.ln()).exp();
    let mut cdf = term;
    let ratio = p / q;
    for i in 0..m {
        term *= (n - i) as f64 / (i + 1) as f64 * ratio;
        cdf += term;
    }
    (1.0 - cdf).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated path: a bottleneck of `capacity_bps` with a FIFO in front, fed by an
    /// encoder that produces exactly the controller's target (`offered`), sampled every 50 ms.
    struct Path {
        start: Instant,
        now: Instant,
        capacity_bps: f64,
        queue_bits: f64,
        tx_bytes: u64,
        base_rtt: Duration,
        sent_packets: u64,
        lost_packets: u64,
        lost_bytes: u64,
    }

    impl Path {
        fn new(capacity_bps: f64) -> Path {
            let now = Instant::now();
            Path {
                start: now,
                now,
                capacity_bps,
                queue_bits: 0.0,
                tx_bytes: 0,
                base_rtt: Duration::from_millis(30),
                sent_packets: 0,
                lost_packets: 0,
                lost_bytes: 0,
            }
        }

        /// Runs 50 ms at `offered_bps` with `loss` random loss; returns the sample.
        fn step(&mut self, offered_bps: f64, loss: f64) -> PathSample {
            let dt = 0.05;
            self.now += Duration::from_millis(50);
            self.queue_bits += offered_bps * dt;
            let sent_bits = self.queue_bits.min(self.capacity_bps * dt);
            self.queue_bits -= sent_bits;
            let bytes = (sent_bits / 8.0) as u64;
            self.tx_bytes += bytes;
            let packets = bytes / 1200 + 1;
            self.sent_packets += packets;
            let lost = (packets as f64 * loss).round() as u64;
            self.lost_packets += lost;
            self.lost_bytes += lost * 1200;
            PathSample {
                now: self.now,
                rtt: self.base_rtt,
                queue_delay: Duration::from_secs_f64(self.queue_bits / self.capacity_bps),
                tx_bytes: self.tx_bytes,
                lost_bytes: self.lost_bytes,
                sent_packets: self.sent_packets,
                lost_packets: self.lost_packets,
            }
        }

        fn elapsed(&self) -> Duration {
            self.now - self.start
        }
    }

    #[test]
    fn follows_a_bottleneck_below_the_ceiling_and_keeps_the_queue_short() {
        // (The simulated path has no slow start: no startup grace needed.)
        let mut c = RateController::new(RateConfig {
            startup_grace: Duration::ZERO,
            ..RateConfig::default()
        });
        let mut path = Path::new(10e6);
        let mut below_at = None;
        let mut max_queue_late = Duration::ZERO;
        for _ in 0..400 {
            let s = path.step(c.target_bps() as f64, 0.0);
            let d = c.on_sample(s);
            if below_at.is_none() && d.target_bps < 10_000_000 {
                below_at = Some(path.elapsed());
            }
            if path.elapsed() > Duration::from_secs(5) {
                max_queue_late = max_queue_late.max(s.queue_delay);
            }
        }
        let below_at = below_at.expect("the target went below the bottleneck");
        assert!(below_at <= Duration::from_millis(300), "{below_at:?}");
        // After settling, the queue stays short: no standing queue.
        assert!(
            max_queue_late < Duration::from_millis(200),
            "{max_queue_late:?}"
        );
        // And the rate uses most of the path (does not collapse).
        assert!(c.target_bps() > 6_000_000, "{}", c.target_bps());
    }

    #[test]
    fn random_loss_does_not_lower_the_rate() {
        let mut c = RateController::new(RateConfig::default());
        let mut path = Path::new(100e6);
        for _ in 0..200 {
            let s = path.step(c.target_bps() as f64, 0.01);
            c.on_sample(s);
        }
        assert_eq!(c.target_bps(), 20_000_000);
        assert_eq!(c.decreases(), 0);
        assert!((c.loss() - 0.01).abs() < 0.005, "{}", c.loss());
    }

    #[test]
    fn heavy_loss_lowers_the_rate() {
        let mut c = RateController::new(RateConfig::default());
        let mut path = Path::new(100e6);
        for _ in 0..100 {
            let s = path.step(c.target_bps() as f64, 0.2);
            c.on_sample(s);
        }
        assert!(c.target_bps() < 20_000_000);
        assert!(c.decreases() > 0);
    }

    #[test]
    fn recovers_when_the_bottleneck_goes_away() {
        let mut c = RateController::new(RateConfig::default());
        let mut path = Path::new(5e6);
        for _ in 0..100 {
            let s = path.step(c.target_bps() as f64, 0.0);
            c.on_sample(s);
        }
        assert!(c.target_bps() < 5_000_000);
        path.capacity_bps = 100e6;
        let mut at_max = None;
        for i in 0..2000 {
            let s = path.step(c.target_bps() as f64, 0.0);
            c.on_sample(s);
            if c.target_bps() == 20_000_000 {
                at_max = Some(i);
                break;
            }
        }
        // Slow near the old congestion point, but it gets there within the memory + ramp.
        assert!(at_max.is_some(), "target stuck at {}", c.target_bps());
    }

    #[test]
    fn network_queue_signal_lowers_the_rate() {
        let mut c = RateController::new(RateConfig::default());
        let t0 = Instant::now();
        let mut tx = 0;
        let sample = |i: u64, rtt_ms: u64, tx: &mut u64| {
            *tx += 60_000;
            PathSample {
                now: t0 + Duration::from_millis(50 * i),
                rtt: Duration::from_millis(rtt_ms),
                queue_delay: Duration::ZERO,
                tx_bytes: *tx,
                lost_bytes: 0,
                sent_packets: *tx / 1200,
                lost_packets: 0,
            }
        };
        for i in 0..20 {
            c.on_sample(sample(i, 30, &mut tx));
        }
        assert_eq!(c.decreases(), 0);
        let d1 = c.on_sample(sample(20, 75, &mut tx));
        assert_eq!(d1.congestion, None, "one sample is not enough");
        let d2 = c.on_sample(sample(21, 75, &mut tx));
        assert_eq!(d2.congestion, Some(Congestion::NetworkQueue));
        // 85 % of what was delivered (9.6 Mbit/s).
        assert!(
            d2.target_bps < 9_600_000 && d2.target_bps > 7_500_000,
            "{}",
            d2.target_bps
        );
    }

    #[test]
    fn no_spiral_when_the_queue_is_not_the_targets_doing() {
        // The RTT stays high (another flow, bursts) while the path delivers far more than the
        // target: one decrease to 85 % of what is delivered at most, never a slide to the floor.
        let mut c = RateController::new(RateConfig {
            start_bps: Some(2_000_000),
            ..RateConfig::default()
        });
        let t0 = Instant::now();
        let mut tx = 0u64;
        for i in 0..200u64 {
            tx += 62_500; // 10 Mbit/s delivered
            c.on_sample(PathSample {
                now: t0 + Duration::from_millis(50 * i),
                rtt: Duration::from_millis(if i < 10 { 30 } else { 90 }),
                queue_delay: Duration::ZERO,
                tx_bytes: tx,
                lost_bytes: 0,
                sent_packets: tx / 1200,
                lost_packets: 0,
            });
        }
        assert_eq!(c.decreases(), 0, "target {}", c.target_bps());
        assert!(c.target_bps() >= 2_000_000);
    }

    #[test]
    fn a_keyframe_burst_is_excused() {
        let mut c = RateController::new(RateConfig::default());
        let mut path = Path::new(30e6);
        for _ in 0..40 {
            let s = path.step(5e6, 0.0);
            c.on_sample(s);
        }
        let before = c.decreases();
        // A 300 KB keyframe: 80 ms of queue at 30 Mbit/s.
        c.on_burst(path.now, 300_000);
        path.queue_bits += 300_000.0 * 8.0;
        for _ in 0..6 {
            let s = path.step(5e6, 0.0);
            c.on_sample(s);
        }
        assert_eq!(c.decreases(), before, "the burst's queue is not congestion");
    }

    #[test]
    fn never_below_the_floor_or_above_the_ceiling() {
        let cfg = RateConfig {
            max_bps: 8_000_000,
            ..RateConfig::default()
        };
        let mut c = RateController::new(cfg);
        let mut path = Path::new(50_000.0);
        for _ in 0..200 {
            let s = path.step(c.target_bps() as f64, 0.0);
            c.on_sample(s);
        }
        assert_eq!(c.target_bps(), cfg.min_bps);
        let mut path = Path::new(1e9);
        let mut c = RateController::new(cfg);
        for _ in 0..200 {
            let s = path.step(c.target_bps() as f64, 0.0);
            c.on_sample(s);
        }
        assert_eq!(c.target_bps(), 8_000_000);
        c.set_max_bps(4_000_000);
        assert_eq!(c.target_bps(), 4_000_000);
    }

    #[test]
    fn parity_follows_loss_and_frame_size() {
        let t = 2e-4;
        assert_eq!(parity_for(1, 0.0, t, 2, 4096), 2);
        assert_eq!(parity_for(1, 0.01, t, 2, 4096), 2);
        let key_1 = parity_for(270, 0.01, t, 2, 4096);
        let key_5 = parity_for(270, 0.05, t, 2, 4096);
        assert!((8..=20).contains(&key_1), "{key_1}");
        assert!(key_5 > key_1 * 2, "{key_5} vs {key_1}");
        // Clean paths pay little for big frames.
        assert!(parity_for(270, 0.0, t, 2, 4096) <= 8);
        // Bounded: half the data for big frames, the fragment limit.
        assert_eq!(parity_for(100, 0.5, t, 2, 4096), 50);
        assert_eq!(parity_for(4090, 0.05, t, 2, 4096), 6);
        // Meets the target where the cap allows.
        for (k, p) in [(3usize, 0.02f64), (40, 0.01), (200, 0.03)] {
            let m = parity_for(k, p, t, 1, 4096);
            assert!(binomial_tail_above(k + m, m, p * 1.5) <= t);
            assert!(m == 1 || binomial_tail_above(k + m - 1, m - 1, p * 1.5) > t);
        }
    }

    #[test]
    fn binomial_tail_matches_small_cases() {
        // n = 2, p = 0.1: P[X > 0] = 0.19, P[X > 1] = 0.01.
        assert!((binomial_tail_above(2, 0, 0.1) - 0.19).abs() < 1e-12);
        assert!((binomial_tail_above(2, 1, 0.1) - 0.01).abs() < 1e-12);
        assert_eq!(binomial_tail_above(2, 2, 0.1), 0.0);
    }
}
