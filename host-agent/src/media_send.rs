//! One session's media send path on the host: datagram priorities, pacing, rate control, FEC
//! sizing and dead-path detection — the quinn glue around the sans-IO parts in
//! `sightline_protocol::{pacing, congestion}`.
//!
//! ```text
//!  session.poll_transmit ─► MediaSender::send ─┬─ urgent (audio, cursor) ─► conn.send_datagram
//!                                              └─ video ─► MediaPacer ─► flush ─► conn.send_datagram
//!  every 50 ms: on_timer ─► conn.stats() ─► RateController ─► encoder bitrate limit (pipeline)
//!                                        └─► loss estimate ─► parity_for (next frames' FEC)
//! ```
//!
//! For other senders (audio): anything that goes through `HostSession::send_audio` (or any
//! datagram that is not a video fragment) is urgent and skips the video queue; see
//! [`MediaSender::send`]. A datagram that does not come out of the session can be sent the
//! same way with [`MediaSender::send_urgent`].

use std::time::{Duration, Instant};

use sightline_protocol::congestion::{parity_for, PathSample, RateConfig, RateController};
use sightline_protocol::msg::{StatsReport, MAX_FRAGMENTS};
use sightline_protocol::pacing::{classify, video_frame, DatagramClass, MediaPacer, PacerConfig};
use sightline_protocol::video::FecConfig;
use tracing::{debug, info};

/// How the host adapts to the path. Every field has a documented default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptConfig {
    /// Follow the path with the encoder's bitrate (else: the configured bitrate, always).
    /// Default on.
    pub rate_control: bool,
    /// Rate controller settings (`max_bps` is replaced by the configured bitrate).
    pub rate: RateConfig,
    /// Size each frame's parity from the measured loss (else: the fixed share in
    /// `NetConfig::fec`). Default on.
    pub adaptive_fec: bool,
    /// Frame-loss probability adaptive FEC aims for. Default 5·10⁻⁵ (at 60 fps, one lost
    /// frame — one keyframe round trip, a visible hitch — in ~5 minutes at the measured
    /// loss).
    pub frame_loss_target: f64,
    /// Video pacing settings.
    pub pacer: PacerConfig,
    /// A viewer silent this long has a dead path: its video stops (and stops limiting the
    /// encoder) until it is heard again. Default 600 ms (the viewer pings every 250 ms and
    /// acknowledges video).
    pub dead_after: Duration,
    /// How often the path is sampled. Default 50 ms.
    pub sample_every: Duration,
}

impl Default for AdaptConfig {
    fn default() -> Self {
        AdaptConfig {
            rate_control: true,
            rate: RateConfig::default(),
            adaptive_fec: true,
            frame_loss_target: 5e-5,
            pacer: PacerConfig::default(),
            dead_after: Duration::from_millis(600),
            sample_every: Duration::from_millis(50),
        }
    }
}

/// What a timer tick decided.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TickOutcome {
    /// New encoder bitrate limit for this session (`Some(None)`: lift it).
    pub bitrate_limit: Option<Option<u32>>,
    /// The path died (`Some(true)`) or came back (`Some(false)`).
    pub dead: Option<bool>,
    /// Frames this session will never see (dropped stale or while dead): the stream needs a
    /// keyframe.
    pub frames_dropped: usize,
}

/// Counters and the latest figures, for logs and stats.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MediaSendStats {
    /// Rate controller target (bits/s of media), 0 without rate control.
    pub target_bps: u64,
    /// Loss share QUIC saw over the last ~2 s.
    pub loss: f64,
    /// Frames the viewer reported lost in its last report.
    pub viewer_frames_lost: u32,
    /// Transport send rate the pacer measured (bits/s).
    pub transport_bps: u64,
    /// Video frames dropped (stale, or while the path was dead).
    pub frames_dropped: u64,
    /// Decreases of the rate target.
    pub rate_decreases: u64,
}

/// One session's media send path (see the module docs).
#[derive(Debug)]
pub struct MediaSender {
    cfg: AdaptConfig,
    fec: FecConfig,
    pacer: MediaPacer,
    rate: Option<RateController>,
    /// What `datagram_send_buffer_space()` says with nothing queued (quinn counts some
    /// bookkeeping per datagram, so this is a little below the configured size).
    empty_space: usize,
    next_sample: Instant,
    last_rx: (u64, Instant),
    dead: bool,
    /// Wire bytes beyond the encoded video (parity, fragment headers) since the last sample.
    overhead_bytes: u64,
    /// That overhead as a rate (bits/s), smoothed: the encoder gets the target minus this.
    overhead_bps: f64,
    limit_sent: Option<u32>,
    /// The configured video bitrate.
    max_bps: u32,
    stats: MediaSendStats,
    /// Frames dropped since the last tick.
    dropped_pending: usize,
    /// When the last fragment of the last keyframe went to the transport.
    keyframe_sent_at: Option<Instant>,
    /// The queue holds more video than goes out in [`BACKLOG_DELAY`].
    backlogged: bool,
}

/// Video queued for longer than this (at the rate it leaves) makes the encoder skip frames.
const BACKLOG_DELAY: Duration = Duration::from_millis(40);

impl MediaSender {
    /// A sender for a connection whose `datagram_send_buffer_space()` is `empty_space` with
    /// nothing queued; `max_bps` is the configured video bitrate.
    pub fn new(
        cfg: AdaptConfig,
        fec: FecConfig,
        max_bps: u32,
        empty_space: usize,
        now: Instant,
    ) -> Self {
        // The controller's ceiling leaves room for parity and headers on top of the
        // configured video bitrate, so on an unconstrained path the encoder gets all of it.
        let rate = cfg.rate_control.then(|| {
            RateController::new(RateConfig {
                max_bps: u64::from(max_bps) * 5 / 4,
                ..cfg.rate
            })
        });
        MediaSender {
            pacer: MediaPacer::new(cfg.pacer),
            rate,
            fec,
            empty_space,
            next_sample: now + cfg.sample_every,
            last_rx: (0, now),
            dead: false,
            overhead_bytes: 0,
            overhead_bps: 0.0,
            limit_sent: None,
            max_bps,
            stats: MediaSendStats::default(),
            dropped_pending: 0,
            keyframe_sent_at: None,
            backlogged: false,
            cfg,
        }
    }

    /// Sends one datagram message from the session: urgent ones at once, video through the
    /// pacer (dropped while the path is dead).
    pub fn send(&mut self, conn: &quinn::Connection, now: Instant, bytes: Vec<u8>) {
        match (classify(&bytes), video_frame(&bytes)) {
            (DatagramClass::Video, Some((frame, keyframe))) => {
                if !self.dead {
                    self.pacer.push_video(now, frame, keyframe, bytes);
                }
            }
            _ => self.send_urgent(conn, bytes),
        }
    }

    /// Sends a small, time-critical datagram at once, ahead of any video still queued here
    /// (at most a few milliseconds of video are inside QUIC ahead of it).
    pub fn send_urgent(&mut self, conn: &quinn::Connection, bytes: Vec<u8>) {
        if let Err(e) = conn.send_datagram(bytes.into()) {
            debug!(error = %e, "urgent datagram not sent");
        }
    }

    /// Feeds queued video to the transport as far as its backlog allows.
    pub fn flush(&mut self, conn: &quinn::Connection, now: Instant) {
        loop {
            let backlog = self
                .empty_space
                .saturating_sub(conn.datagram_send_buffer_space());
            let Some(b) = self.pacer.poll_send(now, backlog) else {
                break;
            };
            if video_frame(&b).is_some_and(|(_, key)| key) {
                self.keyframe_sent_at = Some(now);
            }
            if let Err(e) = conn.send_datagram(b.into()) {
                debug!(error = %e, "video datagram not sent");
            }
        }
        let out_bps = self
            .pacer
            .pacing_rate()
            .unwrap_or(u64::MAX)
            .min(self.pacer.rate_bps())
            .max(1);
        let queued_for =
            Duration::from_secs_f64(self.pacer.queued_bytes() as f64 * 8.0 / out_bps as f64);
        self.backlogged = !self.dead
            && (queued_for > BACKLOG_DELAY || self.pacer.queue_delay(now) > BACKLOG_DELAY);
        let dropped = self.pacer.take_dropped_frames();
        if !dropped.is_empty() {
            debug!(frames = ?dropped, "stale video dropped before sending");
            self.dropped_pending += dropped.len();
            self.stats.frames_dropped += dropped.len() as u64;
        }
    }

    /// When [`MediaSender::on_timer`] should run next.
    pub fn poll_timeout(&self, now: Instant) -> Instant {
        self.pacer
            .poll_timeout(now)
            .map_or(self.next_sample, |t| t.min(self.next_sample))
    }

    /// Timers: pacing, path samples, dead-path detection.
    pub fn on_timer(&mut self, conn: &quinn::Connection, now: Instant) -> TickOutcome {
        self.flush(conn, now);
        let mut out = TickOutcome::default();
        if now < self.next_sample {
            out.frames_dropped = std::mem::take(&mut self.dropped_pending);
            return out;
        }
        self.next_sample = now + self.cfg.sample_every;
        let stats = conn.stats();
        // Anything from the viewer (acknowledgements, pings, input) shows the path is alive.
        if stats.udp_rx.datagrams != self.last_rx.0 {
            self.last_rx = (stats.udp_rx.datagrams, now);
        }
        let silent = now.saturating_duration_since(self.last_rx.1) >= self.cfg.dead_after;
        if silent != self.dead {
            self.dead = silent;
            out.dead = Some(silent);
            if silent {
                let frames = self.pacer.clear();
                self.dropped_pending += frames.len();
                self.stats.frames_dropped += frames.len() as u64;
                info!(
                    "viewer silent for {:?}: video paused for this session",
                    self.cfg.dead_after
                );
                // A dead path must not hold the encoder down for the other viewers.
                out.bitrate_limit = Some(None);
                self.limit_sent = None;
            } else {
                info!("viewer heard again: video resumes with a keyframe");
                self.dropped_pending += 1;
            }
        }
        self.stats.transport_bps = self.pacer.rate_bps();
        let queue_delay = self.pacer.take_min_delay(now);
        let sample = self.cfg.sample_every.as_secs_f64().max(1e-3);
        let overhead_now = std::mem::take(&mut self.overhead_bytes) as f64 * 8.0 / sample;
        self.overhead_bps = 0.8 * self.overhead_bps + 0.2 * overhead_now;
        if let (Some(rate), false) = (self.rate.as_mut(), self.dead) {
            let d = rate.on_sample(PathSample {
                now,
                rtt: stats.path.rtt,
                queue_delay,
                tx_bytes: stats.udp_tx.bytes,
                lost_bytes: stats.path.lost_bytes,
                sent_packets: stats.path.sent_packets,
                lost_packets: stats.path.lost_packets,
            });
            if let Some(why) = d.congestion {
                debug!(?why, target_bps = d.target_bps, delivered_bps = ?d.delivered_bps, rtt_ms = stats.path.rtt.as_secs_f64() * 1e3, queue_ms = queue_delay.as_secs_f64() * 1e3, "rate lowered");
            }
            self.stats.target_bps = d.target_bps;
            self.stats.loss = d.loss;
            // Once the path pushed back (the target is below the ceiling), video leaves no
            // faster than 1.5 × the target: a keyframe burst must not overflow the
            // bottleneck's buffer. An unconstrained path keeps full speed.
            let constrained = d.target_bps < rate.config().max_bps;
            let pace = (d.target_bps * 3 / 2).max(d.delivered_bps.unwrap_or(0) * 6 / 5);
            self.pacer.set_pacing_rate(now, constrained.then_some(pace));
            self.stats.rate_decreases = rate.decreases();
            // The encoder gets what is left of the target after parity and headers (QUIC adds
            // ~4 % of its own), but never less than half of it: parity grows with the video.
            let target = d.target_bps as f64;
            let encoder_bps = ((target - self.overhead_bps) / 1.04)
                .max(target / 2.0)
                .min(f64::from(self.max_bps)) as u32;
            let changed = self
                .limit_sent
                .is_none_or(|l| l.abs_diff(encoder_bps) as u64 * 100 > u64::from(l));
            if changed {
                self.limit_sent = Some(encoder_bps);
                out.bitrate_limit = Some(Some(encoder_bps));
            }
        } else if let Some(rate) = self.rate.as_ref() {
            self.stats.loss = rate.loss();
        } else {
            self.stats.loss = loss_share(&stats.path);
        }
        out.frames_dropped = std::mem::take(&mut self.dropped_pending);
        out
    }

    /// Parity fragments for a frame of `data_fragments`.
    pub fn parity_for(&self, data_fragments: usize) -> usize {
        if !self.cfg.adaptive_fec || self.fec.ratio <= 0.0 {
            if self.fec.ratio <= 0.0 {
                return 0;
            }
            return ((data_fragments as f32 * self.fec.ratio).ceil() as usize)
                .max(usize::from(self.fec.min_parity));
        }
        parity_for(
            data_fragments,
            self.stats.loss,
            self.cfg.frame_loss_target,
            usize::from(self.fec.min_parity),
            usize::from(MAX_FRAGMENTS),
        )
    }

    /// A frame of `au_bytes` went out as `wire_bytes` of fragments; `keyframe` bursts are
    /// excused from the rate controller's queue signal.
    pub fn on_frame(&mut self, now: Instant, au_bytes: usize, wire_bytes: usize, keyframe: bool) {
        self.overhead_bytes += wire_bytes.saturating_sub(au_bytes) as u64;
        if keyframe {
            if let Some(rate) = self.rate.as_mut() {
                rate.on_burst(now, wire_bytes);
            }
        }
    }

    /// Whether a keyframe for this viewer waits in its queue: a keyframe request meanwhile is
    /// answered by that one (it is newer than anything the viewer could have lost). Once it
    /// has left, requests are honoured again: the viewer does not ask while one is arriving.
    pub fn keyframe_queued(&self) -> bool {
        self.pacer.has_keyframe()
    }

    /// When the last keyframe for this viewer finished leaving the queue.
    pub fn keyframe_sent_at(&self) -> Option<Instant> {
        self.keyframe_sent_at
    }

    /// The viewer's periodic report.
    pub fn on_viewer_stats(&mut self, s: &StatsReport) {
        self.stats.viewer_frames_lost = s.frames_lost;
    }

    /// Whether more video waits than the path takes in time (the encoder should skip frames).
    pub fn backlogged(&self) -> bool {
        self.backlogged
    }

    /// Whether the path is dead (no video is queued for it).
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Latest figures.
    pub fn stats(&self) -> MediaSendStats {
        self.stats
    }
}

fn loss_share(p: &quinn::PathStats) -> f64 {
    if p.sent_packets == 0 {
        0.0
    } else {
        p.lost_packets as f64 / p.sent_packets as f64
    }
}

/// Binds a UDP socket with send and receive buffers of `buffer_bytes` (the kernel may grant
/// less: Linux caps them at `net.core.wmem_max` / `rmem_max`); returns the socket and the
/// sizes granted. Bursts of datagrams (a keyframe) overflow the default ~200 KB buffers even
/// on loopback.
pub fn bind_udp(
    addr: std::net::SocketAddr,
    buffer_bytes: usize,
) -> std::io::Result<(std::net::UdpSocket, (usize, usize))> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Accept IPv4-mapped addresses too when bound to [::], as std does by default on Linux.
        let _ = socket.set_only_v6(false);
    }
    // Not fatal: a smaller buffer only costs burst loss.
    let _ = socket.set_send_buffer_size(buffer_bytes);
    let _ = socket.set_recv_buffer_size(buffer_bytes);
    socket.bind(&addr.into())?;
    // Linux reports twice the size it books (for its own overhead).
    let granted = (
        socket.send_buffer_size().unwrap_or(0),
        socket.recv_buffer_size().unwrap_or(0),
    );
    Ok((socket.into(), granted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_and_adaptive_parity() {
        let now = Instant::now();
        let fixed = MediaSender::new(
            AdaptConfig {
                adaptive_fec: false,
                ..AdaptConfig::default()
            },
            FecConfig::default(),
            20_000_000,
            2 << 20,
            now,
        );
        assert_eq!(fixed.parity_for(1), 2);
        assert_eq!(fixed.parity_for(100), 10);
        let off = MediaSender::new(
            AdaptConfig::default(),
            FecConfig {
                ratio: 0.0,
                min_parity: 0,
            },
            20_000_000,
            2 << 20,
            now,
        );
        assert_eq!(off.parity_for(100), 0);
        let mut adaptive = MediaSender::new(
            AdaptConfig::default(),
            FecConfig::default(),
            20_000_000,
            2 << 20,
            now,
        );
        let clean = adaptive.parity_for(270);
        adaptive.stats.loss = 0.05;
        assert!(adaptive.parity_for(270) > clean * 3);
        assert_eq!(adaptive.parity_for(1), 3);
    }

    #[test]
    fn bigger_socket_buffers_are_granted() {
        let (sock, (snd, rcv)) = bind_udp("127.0.0.1:0".parse().unwrap(), 4 << 20).unwrap();
        assert!(sock.local_addr().unwrap().port() != 0);
        // The kernel default is ~200 KB; anything larger shows the request was honoured (to
        // the extent the system's limit allows).
        let max = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok());
        if max.is_some_and(|m| m >= 1 << 20) {
            assert!(snd >= 1 << 20 && rcv >= 1 << 20, "{snd} {rcv}");
        }
    }
}
