//! The host's per-session datagram scheduler (sans-IO): urgent datagrams before video, and
//! only a few milliseconds of video inside the transport at a time.
//!
//! QUIC (quinn) sends datagrams first-in first-out from one buffer, and it puts datagrams
//! before stream data when it fills a packet. Handing it a whole keyframe (300 KB: a quarter of
//! a second at 10 Mbit/s) at once would put every audio packet and cursor position queued
//! after it a quarter of a second late, and hold back the control stream (clock-sync answers)
//! as well. So the host keeps video in its own queue ([`MediaPacer`]) and feeds the transport
//! only while the transport's backlog is below a few milliseconds of what it has been sending
//! ([`PacerConfig::feed_time`]); urgent datagrams ([`DatagramClass::Urgent`]: audio, cursor
//! positions, anything that is not video) skip this queue and go straight to the transport,
//! where at most that much video is ahead of them.
//!
//! ```text
//!  video fragments ─► MediaPacer queue ─┐  (fed while transport backlog < rate × feed_time)
//!                                       ├─► quinn datagram buffer ─► paced by BBR ─► wire
//!  audio, cursor ───────────────────────┘  (directly)
//! ```
//!
//! The transport's send rate is measured from how fast its backlog drains while it stays
//! non-empty; the queue's head-of-queue sojourn feeds the rate controller
//! ([`crate::congestion`]).
//!
//! When the path has shown its capacity (the rate controller lowered the target), video also
//! goes out no faster than a pacing rate ([`MediaPacer::set_pacing_rate`], 1.5 × the target):
//! a keyframe handed to QUIC at once leaves faster than the bottleneck drains and overflows a
//! shallow router buffer (a 10 Mbit/s link with 50 ms of buffer holds 62 KB; a 1080p keyframe
//! is 100–300 KB), and each frame lost that way costs another keyframe. On a path that never
//! pushed back there is no pacing beyond QUIC's own, so a LAN keeps its full speed.
//!
//! Dropping, so the queue never holds stale video and never makes keyframes worse:
//! * A keyframe queued makes every older frame still waiting worthless: they are dropped at
//!   once (the keyframe replaces them; no recovery needed).
//! * A delta frame that has waited longer than [`PacerConfig::max_video_age`] is dropped with
//!   every delta frame after it (they reference it); the caller learns of it
//!   ([`MediaPacer::take_dropped_frames`]) and must make the stream decodable again (a
//!   keyframe), because the viewer never sees those frames.
//! * A keyframe is never dropped for age: it is the recovery, and dropping it would only ask
//!   for another, as large (on a slow path this turns into a keyframe storm).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How a datagram is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatagramClass {
    /// Small and time-critical (audio, cursor position, input copies): straight to the
    /// transport.
    Urgent,
    /// Video fragments: through the pacer.
    Video,
}

/// The class of an encoded datagram message, from its tag byte (see [`crate::msg::Message`]).
/// Unknown or empty messages count as urgent: they are small control-like traffic, and the
/// peer decides what to do with them.
pub fn classify(datagram: &[u8]) -> DatagramClass {
    match datagram.first() {
        Some(&crate::msg::TAG_VIDEO) => DatagramClass::Video,
        _ => DatagramClass::Urgent,
    }
}

/// The frame number of an encoded video-fragment datagram and whether it is a keyframe
/// (`None` for anything else or when too short).
pub fn video_frame(datagram: &[u8]) -> Option<(u32, bool)> {
    if classify(datagram) != DatagramClass::Video {
        return None;
    }
    // Tag, stream id, the frame number (u32, little-endian), then the flags: see
    // `VideoFragment`'s encoding.
    let b: [u8; 4] = datagram.get(2..6)?.try_into().ok()?;
    let flags = *datagram.get(6)?;
    Some((
        u32::from_le_bytes(b),
        flags & crate::msg::FLAG_KEYFRAME != 0,
    ))
}

/// Pacer settings. Every field has a documented default ([`PacerConfig::default`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacerConfig {
    /// Video kept inside the transport, as time at its measured send rate. Default 5 ms.
    pub feed_time: Duration,
    /// Least video kept inside the transport (bytes), so a slow timer cannot starve it.
    /// Default 12 KB (about ten datagrams).
    pub min_feed_bytes: usize,
    /// Most video kept inside the transport (bytes). Default 1 MiB.
    pub max_feed_bytes: usize,
    /// Send rate assumed before one was measured (bits/s): optimistic, so the first keyframe
    /// on a fast path goes out at once. Default 1 Gbit/s.
    pub initial_rate_bps: u64,
    /// Video older than this in the queue is dropped (whole frames). Default 250 ms.
    pub max_video_age: Duration,
    /// How often to look again while video waits for room. Default 1 ms (the I/O layer's timer
    /// resolution).
    pub recheck: Duration,
}

impl Default for PacerConfig {
    fn default() -> Self {
        PacerConfig {
            feed_time: Duration::from_millis(5),
            min_feed_bytes: 12 * 1024,
            max_feed_bytes: 1 << 20,
            initial_rate_bps: 1_000_000_000,
            max_video_age: Duration::from_millis(250),
            recheck: Duration::from_millis(1),
        }
    }
}

#[derive(Debug)]
struct Queued {
    queued_at: Instant,
    frame: u32,
    keyframe: bool,
    bytes: Vec<u8>,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacerStats {
    /// Video datagrams handed to the transport.
    pub video_sent: u64,
    /// Video bytes handed to the transport.
    pub video_bytes: u64,
    /// Whole frames dropped for age (the viewer needs a keyframe).
    pub frames_dropped: u64,
    /// Frames dropped because a newer keyframe was queued (no recovery needed).
    pub frames_superseded: u64,
    /// Datagrams dropped with them.
    pub datagrams_dropped: u64,
}

/// The video queue of one session (see the module docs).
#[derive(Debug)]
pub struct MediaPacer {
    cfg: PacerConfig,
    queue: VecDeque<Queued>,
    queued_bytes: usize,
    rate_bps: f64,
    /// Backlog the transport reported last time, when, and what was fed since.
    last_backlog: Option<(Instant, usize)>,
    fed_since: usize,
    /// Smallest head-of-queue sojourn since the last [`MediaPacer::take_min_delay`].
    min_delay: Option<Duration>,
    dropped_frames: Vec<u32>,
    stats: PacerStats,
    /// Token bucket: (rate bits/s, tokens in bytes, when last filled).
    pacing: Option<(u64, f64, Instant)>,
}

impl MediaPacer {
    /// An empty pacer.
    pub fn new(cfg: PacerConfig) -> Self {
        MediaPacer {
            rate_bps: cfg.initial_rate_bps as f64,
            cfg,
            queue: VecDeque::new(),
            queued_bytes: 0,
            last_backlog: None,
            fed_since: 0,
            min_delay: None,
            dropped_frames: Vec::new(),
            stats: PacerStats::default(),
            pacing: None,
        }
    }

    /// Sends video no faster than `bps` from now on (`None`: as fast as the transport takes
    /// it). Bursts up to 10 ms at that rate (at least two datagrams) go at once.
    pub fn set_pacing_rate(&mut self, now: Instant, bps: Option<u64>) {
        self.pacing = match (bps, self.pacing) {
            (None, _) => None,
            (Some(r), Some((_, tokens, at))) => Some((r.max(1), tokens, at)),
            (Some(r), None) => Some((r.max(1), Self::bucket(r.max(1)), now)),
        };
    }

    /// The pacing rate in force (bits/s).
    pub fn pacing_rate(&self) -> Option<u64> {
        self.pacing.map(|(r, _, _)| r)
    }

    fn bucket(rate_bps: u64) -> f64 {
        (rate_bps as f64 / 8.0 * 0.010).max(2.0 * 1500.0)
    }

    /// Tokens available at `now` (bytes), refilled.
    fn tokens(&mut self, now: Instant) -> f64 {
        match &mut self.pacing {
            None => f64::INFINITY,
            Some((rate, tokens, at)) => {
                let dt = now.saturating_duration_since(*at).as_secs_f64();
                *tokens = (*tokens + dt * *rate as f64 / 8.0).min(Self::bucket(*rate));
                *at = now;
                *tokens
            }
        }
    }

    /// Queues one video datagram of `frame` (`keyframe`: an IDR). The first fragment of a
    /// keyframe drops every older frame still queued.
    pub fn push_video(&mut self, now: Instant, frame: u32, keyframe: bool, bytes: Vec<u8>) {
        let new_frame = self.queue.back().is_none_or(|q| q.frame != frame);
        if keyframe && new_frame && !self.queue.is_empty() {
            let mut frames = 0u64;
            let mut last = None;
            for q in self.queue.drain(..) {
                if last != Some(q.frame) {
                    frames += 1;
                    last = Some(q.frame);
                }
                self.stats.datagrams_dropped += 1;
            }
            self.queued_bytes = 0;
            self.stats.frames_superseded += frames;
        }
        self.queued_bytes += bytes.len();
        self.queue.push_back(Queued {
            queued_at: now,
            frame,
            keyframe,
            bytes,
        });
    }

    /// The next video datagram to hand to the transport now, given the bytes it still holds
    /// unsent (`transport_backlog`); `None` when the queue is empty or the transport has
    /// enough. Call repeatedly until `None`, then again at [`MediaPacer::poll_timeout`].
    pub fn poll_send(&mut self, now: Instant, transport_backlog: usize) -> Option<Vec<u8>> {
        self.observe(now, transport_backlog);
        self.drop_stale(now);
        let Some(len) = self.queue.front().map(|q| q.bytes.len()) else {
            self.note_delay(now, Duration::ZERO);
            return None;
        };
        let limit = self.feed_limit();
        let backlog = transport_backlog;
        if backlog > 0 && backlog + len > limit {
            // Held back by the transport: this wait is the path's doing.
            self.note_delay(now, self.queue_delay(now));
            return None;
        }
        if self.tokens(now) < len as f64 {
            // Held back by our own pacing: not a sign of a slow path (the encoder made more
            // than the target; the caller skips frames while the queue is long).
            self.note_delay(now, Duration::ZERO);
            return None;
        }
        self.note_delay(now, self.queue_delay(now));
        if let Some((_, tokens, _)) = &mut self.pacing {
            *tokens -= len as f64;
        }
        let q = self.queue.pop_front()?;
        self.queued_bytes -= q.bytes.len();
        self.fed_since += q.bytes.len();
        self.stats.video_sent += 1;
        self.stats.video_bytes += q.bytes.len() as u64;
        Some(q.bytes)
    }

    /// When to call [`MediaPacer::poll_send`] again while video waits (`None`: nothing waits).
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let head = self.queue.front()?;
        let wait = match self.pacing {
            Some((rate, tokens, at)) if tokens < head.bytes.len() as f64 => {
                let missing = head.bytes.len() as f64 - tokens;
                let refill = Duration::from_secs_f64(missing * 8.0 / rate as f64);
                (at + refill).saturating_duration_since(now)
            }
            _ => Duration::ZERO,
        };
        Some(now + wait.max(self.cfg.recheck))
    }

    /// How long the oldest queued video has waited.
    pub fn queue_delay(&self, now: Instant) -> Duration {
        self.queue.front().map_or(Duration::ZERO, |q| {
            now.saturating_duration_since(q.queued_at)
        })
    }

    /// The smallest head-of-queue sojourn seen since the last call, counting only waits the
    /// transport caused (zero when the queue was empty at some point, or held back only by
    /// this pacer's own rate): the standing-queue signal for [`crate::congestion`].
    pub fn take_min_delay(&mut self, _now: Instant) -> Duration {
        if self.queue.is_empty() {
            self.note_delay(_now, Duration::ZERO);
        }
        self.min_delay.take().unwrap_or(Duration::ZERO)
    }

    /// Frames dropped for age since the last call (the viewer will never see them).
    pub fn take_dropped_frames(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.dropped_frames)
    }

    /// Drops everything queued (the path is dead); returns the frames dropped.
    pub fn clear(&mut self) -> Vec<u32> {
        let mut frames: Vec<u32> = Vec::new();
        for q in self.queue.drain(..) {
            if frames.last() != Some(&q.frame) {
                frames.push(q.frame);
            }
            self.stats.datagrams_dropped += 1;
        }
        self.stats.frames_dropped += frames.len() as u64;
        self.queued_bytes = 0;
        frames
    }

    /// Whether a keyframe (or part of one) waits in the queue.
    pub fn has_keyframe(&self) -> bool {
        self.queue.iter().any(|q| q.keyframe)
    }

    /// Video bytes waiting.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// The transport's measured send rate (bits/s).
    pub fn rate_bps(&self) -> u64 {
        self.rate_bps as u64
    }

    /// Counters.
    pub fn stats(&self) -> PacerStats {
        self.stats
    }

    /// Bytes of video the transport may hold now.
    pub fn feed_limit(&self) -> usize {
        ((self.rate_bps / 8.0 * self.cfg.feed_time.as_secs_f64()) as usize)
            .clamp(self.cfg.min_feed_bytes, self.cfg.max_feed_bytes)
    }

    /// Measures the transport's send rate from how its backlog moved since the last look.
    fn observe(&mut self, now: Instant, backlog: usize) {
        if let Some((t0, b0)) = self.last_backlog {
            let dt = now.saturating_duration_since(t0);
            if dt >= Duration::from_micros(500) {
                let drained = (b0 + self.fed_since).saturating_sub(backlog);
                // Only a transport that had something to send all along shows its rate; one
                // that ran dry shows only what it was given.
                if backlog > 0 && b0 > 0 {
                    let sample = drained as f64 * 8.0 / dt.as_secs_f64();
                    // Quick to follow, both ways: the transport's pacing rate changes in steps.
                    self.rate_bps = 0.7 * self.rate_bps + 0.3 * sample;
                } else if backlog == 0 && drained > 0 {
                    // It sent everything: at least this fast. Only ever raises the estimate.
                    let sample = drained as f64 * 8.0 / dt.as_secs_f64();
                    if sample > self.rate_bps {
                        self.rate_bps = 0.7 * self.rate_bps + 0.3 * sample;
                    }
                }
                self.last_backlog = Some((now, backlog));
                self.fed_since = 0;
            }
        } else {
            self.last_backlog = Some((now, backlog));
            self.fed_since = 0;
        }
    }

    fn note_delay(&mut self, _now: Instant, d: Duration) {
        self.min_delay = Some(self.min_delay.map_or(d, |m| m.min(d)));
    }

    fn drop_stale(&mut self, now: Instant) {
        let Some(head) = self.queue.front() else {
            return;
        };
        if head.keyframe || now.saturating_duration_since(head.queued_at) <= self.cfg.max_video_age
        {
            return;
        }
        // This delta frame and every delta frame after it (they reference it) go, up to the
        // next keyframe, which starts over.
        let mut last = None;
        while let Some(q) = self.queue.front() {
            if q.keyframe {
                break;
            }
            let q = self.queue.pop_front().expect("front exists");
            self.queued_bytes -= q.bytes.len();
            self.stats.datagrams_dropped += 1;
            if last != Some(q.frame) {
                last = Some(q.frame);
                self.stats.frames_dropped += 1;
                self.dropped_frames.push(q.frame);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coding::{Decode, Encode};
    use crate::msg::{CursorPosition, Message};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn classify_by_tag() {
        let video = Message::Video(crate::msg::VideoFragment {
            stream_id: 0,
            frame: 1,
            keyframe: false,
            fragment_index: 0,
            fragment_count: 1,
            data_fragments: 1,
            au_len: 1,
            times: None,
            damage: None,
            payload: vec![1],
        })
        .to_bytes();
        assert_eq!(classify(&video), DatagramClass::Video);
        assert_eq!(video_frame(&video), Some((1, false)));
        let Ok(Message::Video(mut later)) = Message::from_bytes(&video) else {
            panic!("a video message")
        };
        later.frame = 0xDEAD_BEEF;
        later.keyframe = true;
        assert_eq!(
            video_frame(&Message::Video(later).to_bytes()),
            Some((0xDEAD_BEEF, true))
        );
        assert_eq!(video_frame(&video[..4]), None);
        let cursor = Message::CursorPosition(CursorPosition {
            id: 1,
            x: 2,
            y: 3,
            visible: true,
        })
        .to_bytes();
        assert_eq!(classify(&cursor), DatagramClass::Urgent);
        // Audio is urgent by its tag (whatever its body).
        assert_eq!(classify(&[3, 0, 0]), DatagramClass::Urgent);
        assert_eq!(classify(&[]), DatagramClass::Urgent);
    }

    /// A transport that sends `rate_bps` from a FIFO backlog; returns what the pacer would
    /// see.
    struct Transport {
        backlog: usize,
        rate_bps: f64,
    }

    impl Transport {
        fn run(&mut self, dt: Duration) {
            let sent = (self.rate_bps / 8.0 * dt.as_secs_f64()) as usize;
            self.backlog = self.backlog.saturating_sub(sent);
        }
    }

    fn feed(p: &mut MediaPacer, t: &mut Transport, now: Instant) -> usize {
        let mut n = 0;
        while let Some(b) = p.poll_send(now, t.backlog) {
            t.backlog += b.len();
            n += 1;
        }
        n
    }

    #[test]
    fn first_burst_goes_straight_through_on_an_unknown_path() {
        let mut p = MediaPacer::new(PacerConfig::default());
        let now = Instant::now();
        for _ in 0..250 {
            p.push_video(now, 1, true, vec![0; 1200]);
        }
        let mut t = Transport {
            backlog: 0,
            rate_bps: 1e9,
        };
        assert_eq!(feed(&mut p, &mut t, now), 250);
    }

    #[test]
    fn learns_a_slow_transport_and_keeps_its_backlog_to_a_few_milliseconds() {
        let mut p = MediaPacer::new(PacerConfig::default());
        let mut t = Transport {
            backlog: 0,
            rate_bps: 10e6,
        };
        let start = Instant::now();
        let mut now = start;
        let mut worst_late = 0usize;
        // 20 Mbit/s of video offered for 2 s to a 10 Mbit/s transport, one frame per 16 ms.
        for frame in 0..125u32 {
            for _ in 0..33 {
                p.push_video(now, frame, frame == 0, vec![0; 1200]);
            }
            for _ in 0..16 {
                feed(&mut p, &mut t, now);
                if now - start > Duration::from_millis(500) {
                    worst_late = worst_late.max(t.backlog);
                }
                now += ms(1);
                t.run(ms(1));
            }
        }
        let rate = p.rate_bps() as f64;
        assert!((8e6..12e6).contains(&rate), "measured {rate}");
        // Inside the transport: at most the feed limit (12 KB floor ≈ 10 ms at 10 Mbit/s).
        assert!(worst_late <= 14_000, "{worst_late}");
        // The excess waited in the pacer and was dropped for age, whole frames.
        assert!(p.stats().frames_dropped > 0);
        let dropped = p.take_dropped_frames();
        assert!(dropped.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn paced_video_leaves_no_faster_than_the_pacing_rate() {
        let mut p = MediaPacer::new(PacerConfig::default());
        let start = Instant::now();
        p.set_pacing_rate(start, Some(12_000_000));
        assert_eq!(p.pacing_rate(), Some(12_000_000));
        // A 150 KB keyframe.
        for _ in 0..125 {
            p.push_video(start, 1, true, vec![0; 1200]);
        }
        let mut t = Transport {
            backlog: 0,
            rate_bps: 1e9,
        };
        let mut now = start;
        let mut sent_by_50ms = 0;
        while p.queued_bytes() > 0 {
            let at = p.poll_timeout(now).expect("video waits");
            assert!(at > now);
            now = at;
            t.run(Duration::from_millis(1));
            let n = feed(&mut p, &mut t, now);
            if now - start <= ms(50) {
                sent_by_50ms += n;
            }
        }
        let took = now - start;
        // 150 KB at 12 Mbit/s: 100 ms, less the 10 ms burst allowance.
        assert!(took >= ms(85) && took <= ms(110), "{took:?}");
        // 50 ms at 12 Mbit/s is 75 KB + the 15 KB burst: at most 76 datagrams.
        assert!(sent_by_50ms <= 76, "{sent_by_50ms}");
        p.set_pacing_rate(now, None);
        p.push_video(now, 2, false, vec![0; 1200]);
        assert!(p.poll_send(now, 0).is_some(), "unpaced again");
    }

    #[test]
    fn min_delay_separates_a_burst_from_a_standing_queue() {
        let mut p = MediaPacer::new(PacerConfig::default());
        let now = Instant::now();
        p.push_video(now, 1, false, vec![0; 1200]);
        // Held back by a full transport for 30 ms.
        assert!(p.poll_send(now + ms(30), 2_000_000).is_none());
        assert_eq!(p.take_min_delay(now + ms(30)), ms(30));
        // Then it drains: the queue is empty at some point, the minimum is zero.
        assert!(p.poll_send(now + ms(31), 0).is_some());
        assert_eq!(p.take_min_delay(now + ms(40)), Duration::ZERO);
    }

    #[test]
    fn a_stale_delta_frame_goes_with_every_delta_frame_after_it() {
        let mut p = MediaPacer::new(PacerConfig::default());
        let now = Instant::now();
        for f in 1..=3u32 {
            for _ in 0..3 {
                p.push_video(now + ms(100 * u64::from(f)), f, false, vec![0; 1000]);
            }
        }
        // At 360 ms frame 1 (queued at 100 ms) is 260 ms old: it goes, and frames 2 and 3,
        // which reference it, with it.
        assert!(p.poll_send(now + ms(360), 5_000_000).is_none());
        assert_eq!(p.take_dropped_frames(), vec![1, 2, 3]);
        assert_eq!(p.queued_bytes(), 0);
        assert_eq!(p.stats().frames_dropped, 3);
    }

    #[test]
    fn a_keyframe_supersedes_older_frames_and_is_never_dropped_for_age() {
        let mut p = MediaPacer::new(PacerConfig::default());
        let now = Instant::now();
        p.push_video(now, 1, false, vec![0; 1000]);
        p.push_video(now, 2, false, vec![0; 1000]);
        for _ in 0..3 {
            p.push_video(now + ms(10), 3, true, vec![0; 1000]);
        }
        p.push_video(now + ms(20), 4, false, vec![0; 1000]);
        assert_eq!(p.stats().frames_superseded, 2);
        assert_eq!(p.queued_bytes(), 4000);
        // Much later, with the transport full: the keyframe stays (and the delta frame behind
        // it that needs it).
        assert!(p.poll_send(now + ms(1000), 5_000_000).is_none());
        assert!(p.take_dropped_frames().is_empty());
        assert_eq!(p.queued_bytes(), 4000);
        assert_eq!(p.clear(), vec![3, 4]);
    }
}
