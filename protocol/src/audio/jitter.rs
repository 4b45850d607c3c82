//! The viewer's adaptive audio jitter buffer (sans-IO).
//!
//! Packets go in as they arrive ([`JitterBuffer::push`]); the playback side asks for the next
//! frame whenever its output needs more samples ([`JitterBuffer::pull`]) and gets a
//! [`Playout`]: a packet to decode (with a ±1–2 sample length adjustment), a stretch of
//! concealment, or silence before playback has started. Packets are kept encoded and decoded
//! at playout time, so a packet that arrives just in time is still used and the decoder's
//! concealment runs only for what is really missing.
//!
//! ## Delay control
//!
//! The output side calls [`JitterBuffer::observe`] at every device callback, before it pulls,
//! with how much decoded audio it still holds and how much the device asks for. The buffer
//! turns that into the *level*: audio that will be left (buffered packets plus decoded output)
//! once this callback is served. A level below zero is an underrun; the level just before a
//! packet arrives is the margin by which it was in time.
//!
//! * **Grow fast.** A level below the target (`safety` plus any A/V-sync `extra_delay`) adds one
//!   sample to the frame being played; an empty buffer at playout (an underrun) plays one frame
//!   of concealment *without* moving the playout position, so the delay grows by a frame at once
//!   and the late packet is still played when it comes.
//! * **Shrink slowly.** Only when the *lowest* level over the last `shrink_window` (2 s) exceeds
//!   the target by more than `hysteresis`, and no underrun happened in that window, is one sample
//!   in 240 dropped (two when a frame above). Jitter therefore sets the delay: the buffer keeps
//!   the worst recent arrival just in time.
//! * **Cut a backlog.** When even the lowest level of the last 250 ms is more than four frames
//!   above the band (the network or the output device stalled and the audio piled up), a frame
//!   is cut about every eight frames (the output picks a cut of whole pitch periods), so the
//!   backlog is gone within a second instead of being played late.
//! * **Clock drift** between the host's capture clock and the viewer's playback clock shows up as
//!   a level that creeps up or down by a few samples per second; the same two rules absorb it with
//!   single-sample drops or inserts (crossfaded by the viewer), so the delay stays inside the
//!   `[target, target + hysteresis]` band over any length of time.
//!
//! ## Loss, reorder, duplicates, late packets
//!
//! Packets are placed by media time (they carry the sample index of their first sample), so
//! reordered packets play in order. A gap at the playout position with later audio already
//! there is a loss: the caller conceals exactly the gap. A packet for audio already played is
//! *late* (or a *duplicate* when that packet was played) and is dropped. A stream whose media
//! time jumps (the host restarted its audio) is detected by a run of packets that cannot be
//! placed and re-anchored. Hostile input is bounded: packet count, span and per-packet duration
//! are all limited.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Longest packet accepted, in samples: 120 ms at 48 kHz (the most an Opus packet holds).
pub const MAX_PACKET_SAMPLES: u32 = 5760;

/// Jitter buffer settings. Durations are converted to samples at `sample_rate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Samples per second.
    pub sample_rate: u32,
    /// Nominal samples per packet (the concealment granule).
    pub frame_samples: u32,
    /// Audio to collect before playback starts (and after a stall).
    pub initial_delay: Duration,
    /// The level aimed for: the lowest margin of audio left when a device callback is served.
    pub safety: Duration,
    /// Slack above the target that is tolerated before shrinking.
    pub hysteresis: Duration,
    /// Window over which the lowest level must stay high before the delay shrinks; also how
    /// long after an underrun nothing is shrunk.
    pub shrink_window: Duration,
    /// Window over which the lowest level must stay far above the target (a backlog, e.g. after
    /// the output device or the network stalled) before it is cut quickly.
    pub catchup_window: Duration,
    /// Most audio buffered ahead of the playout position; older audio is skipped beyond it.
    pub max_delay: Duration,
    /// Continuous underrun concealment after which playback stops and re-buffers.
    pub stall_after: Duration,
    /// Most packets held.
    pub max_packets: usize,
    /// Consecutive packets that cannot be placed (late or far ahead) before the stream is
    /// re-anchored on the newest one.
    pub reset_after_rejects: u32,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            sample_rate: 48_000,
            frame_samples: 240,
            initial_delay: Duration::from_millis(20),
            safety: Duration::from_micros(2_000),
            hysteresis: Duration::from_micros(500),
            shrink_window: Duration::from_secs(2),
            catchup_window: Duration::from_millis(250),
            max_delay: Duration::from_millis(400),
            stall_after: Duration::from_millis(100),
            max_packets: 2048,
            reset_after_rejects: 20,
        }
    }
}

impl JitterConfig {
    fn samples(&self, d: Duration) -> u64 {
        (d.as_micros() * self.sample_rate as u128 / 1_000_000) as u64
    }
}

/// A packet held by the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferedPacket<P> {
    /// Sequence number (for statistics).
    pub sequence: u32,
    /// Sample index of the first sample (media time ticks).
    pub media_time: u64,
    /// Samples per channel it decodes to.
    pub samples: u32,
    /// Host capture time of the first sample, µs on the host wire clock.
    pub capture_us: u64,
    /// The coded bytes (or anything the caller wants to carry).
    pub payload: P,
}

/// What [`JitterBuffer::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored for playout.
    Accepted,
    /// A copy of a packet already held or played: dropped.
    Duplicate,
    /// Its audio has already been played (or concealed): dropped.
    Late,
    /// It overlaps audio already held, or lies implausibly far ahead: dropped.
    Rejected,
    /// The buffer is full: dropped.
    Overflow,
    /// Zero or more than [`MAX_PACKET_SAMPLES`] samples: dropped.
    Invalid,
    /// The stream was re-anchored on this packet (its media time jumped).
    Reset,
}

/// Why concealment is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConcealReason {
    /// The packet for this audio is missing and later audio has arrived: it is lost.
    Lost,
    /// Nothing has arrived yet for the playout position: the buffer ran dry. The position does
    /// not move, so the delay grows by the concealed length.
    Underrun,
    /// The delay is being raised on purpose (A/V sync): like an underrun, the position does not
    /// move.
    Stretch,
}

/// The next thing to play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout<P> {
    /// Decode this packet, then make its output `adjust` samples longer (+) or shorter (−).
    Packet {
        /// The packet.
        packet: BufferedPacket<P>,
        /// Samples to insert (positive) or drop (negative) for delay control and drift: about
        /// one in 240 played near the target; after a network stall, a frame's worth in one cut
        /// about every eight frames.
        adjust: i32,
    },
    /// Play `samples` of concealment (the decoder's packet-loss concealment).
    Conceal {
        /// How many samples.
        samples: u32,
        /// Why.
        reason: ConcealReason,
        /// Media time the concealment stands for (the playout position).
        media_time: u64,
    },
    /// Playback has not started (or stalled and is re-buffering): play `samples` of silence.
    Silence {
        /// How many samples.
        samples: u32,
    },
}

/// Counters and current figures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterStats {
    /// Packets pushed.
    pub received: u64,
    /// Packets handed out for decoding.
    pub played: u64,
    /// Gaps concealed because a packet was lost.
    pub lost: u64,
    /// Frames concealed because the buffer ran dry.
    pub underruns: u64,
    /// Frames of concealment inserted to raise the delay on purpose.
    pub stretches: u64,
    /// Samples concealed in total (lost + underrun + stretch).
    pub concealed_samples: u64,
    /// Packets that came after their audio was played.
    pub late: u64,
    /// Copies of packets already held or played.
    pub duplicates: u64,
    /// Packets dropped for overlapping, lying far ahead, being invalid, or a full buffer.
    pub rejected: u64,
    /// Packets skipped unplayed: more than `max_delay` was buffered, or more than the prefill
    /// when playback started.
    pub skipped: u64,
    /// Times playback stopped after `stall_after` of continuous underrun.
    pub stalls: u64,
    /// Times the stream was re-anchored (media time jumped).
    pub resets: u64,
    /// Single samples inserted for delay control / drift.
    pub inserted_samples: u64,
    /// Single samples dropped for delay control / drift.
    pub dropped_samples: u64,
    /// Audio buffered at the last pull, including the frame being played (samples).
    pub depth_samples: u64,
    /// Level (audio left once the device callback is served) at the last observation,
    /// samples.
    pub level_samples: i64,
    /// How long before its deadline the newest packet arrived, samples (negative: late).
    pub margin_samples: i64,
    /// Lowest margin over the shrink window, samples.
    pub min_margin_samples: i64,
    /// Interarrival jitter (RFC 3550 estimator), µs.
    pub jitter_us: u64,
    /// Current level target (safety + extra delay), samples.
    pub target_samples: u64,
}

/// The output's position at a device callback: the media time that the first sample of that
/// callback's output stands for, kept in output samples (inserts and held concealment move it
/// back, drops forward), and the callback's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Anchor {
    at: Instant,
    media: i64,
    request: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting audio before playback (start or after a stall).
    Idle,
    /// Playing from `pos`; `dry` samples of underrun concealment in a row.
    Playing { pos: u64, dry: u64 },
}

/// The adaptive jitter buffer. `P` is the payload type (the coded bytes).
#[derive(Debug)]
pub struct JitterBuffer<P = Vec<u8>> {
    cfg: JitterConfig,
    extra_samples: u64,
    state: State,
    /// Held packets by media time, with when each arrived.
    entries: BTreeMap<u64, (Instant, BufferedPacket<P>)>,
    /// (when, margin) with increasing margin from front to back: sliding-window minimum.
    margin_min: VecDeque<(Instant, i64)>,
    /// The same over the (short) catch-up window.
    recent_min: VecDeque<(Instant, i64)>,
    /// The margin of the newest packet, samples.
    margin: Option<i64>,
    /// Where the output stood at the last device callback.
    anchor: Option<Anchor>,
    last_underrun: Option<Instant>,
    /// When playback last started.
    started_at: Option<Instant>,
    /// Media times of recently played packets, to tell duplicates from late packets.
    played: VecDeque<u64>,
    rejects_in_row: u32,
    /// Fractional samples of correction owed (positive: insert, negative: drop).
    adjust_credit: f64,
    epoch: Option<Instant>,
    prev_transit_us: Option<i64>,
    jitter_us: f64,
    stats: JitterStats,
}

impl<P> JitterBuffer<P> {
    /// An empty buffer.
    pub fn new(cfg: JitterConfig) -> Self {
        let mut cfg = cfg;
        cfg.sample_rate = cfg.sample_rate.max(1);
        cfg.frame_samples = cfg.frame_samples.clamp(1, MAX_PACKET_SAMPLES);
        JitterBuffer {
            cfg,
            extra_samples: 0,
            state: State::Idle,
            entries: BTreeMap::new(),
            margin_min: VecDeque::new(),
            recent_min: VecDeque::new(),
            margin: None,
            anchor: None,
            last_underrun: None,
            started_at: None,
            played: VecDeque::new(),
            rejects_in_row: 0,
            adjust_credit: 0.0,
            epoch: None,
            prev_transit_us: None,
            jitter_us: 0.0,
            stats: JitterStats::default(),
        }
    }

    // --- getters ---

    /// Settings.
    pub fn config(&self) -> &JitterConfig {
        &self.cfg
    }
    /// Counters and current figures.
    pub fn stats(&self) -> JitterStats {
        let mut s = self.stats;
        s.jitter_us = self.jitter_us as u64;
        s.target_samples = self.target();
        s
    }
    /// Whether playback has started (and not stalled).
    pub fn is_playing(&self) -> bool {
        matches!(self.state, State::Playing { .. })
    }
    /// Packets held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Extra delay asked for by A/V sync, samples.
    pub fn extra_delay_samples(&self) -> u64 {
        self.extra_samples
    }

    // --- mutators ---

    /// Adds `d` to the level target (A/V sync: hold audio back to meet late video). Clamped
    /// to half of `max_delay`.
    pub fn set_extra_delay(&mut self, d: Duration) {
        self.extra_samples = self
            .cfg
            .samples(d)
            .min(self.cfg.samples(self.cfg.max_delay) / 2);
    }

    /// The output applied `actual` samples of adjustment where [`Playout::Packet`] asked for
    /// `requested` (a block too short, or a cut moved to a whole pitch period).
    pub fn adjusted(&mut self, requested: i32, actual: i32) {
        let delta = actual as i64 - requested as i64;
        if delta == 0 {
            return;
        }
        self.hold_output(delta);
        // What was not applied is owed again (a block too short now may be long enough later).
        self.adjust_credit -= delta as f64;
        let (ins, del) = (
            self.stats.inserted_samples as i64,
            self.stats.dropped_samples as i64,
        );
        let fix = |v: i64| v.max(0) as u64;
        self.stats.inserted_samples = fix(ins + actual.max(0) as i64 - requested.max(0) as i64);
        self.stats.dropped_samples =
            fix(del + (-actual).max(0) as i64 - (-requested).max(0) as i64);
    }

    /// Forgets everything buffered and waits for new audio (e.g. a new stream configuration).
    pub fn reset(&mut self) {
        self.entries.clear();
        self.state = State::Idle;
        self.margin_min.clear();
        self.recent_min.clear();
        self.margin = None;
        self.anchor = None;
        self.played.clear();
        self.rejects_in_row = 0;
        self.prev_transit_us = None;
    }

    /// A packet arrived at `now`.
    pub fn push(&mut self, now: Instant, packet: BufferedPacket<P>) -> PushOutcome {
        self.stats.received += 1;
        if packet.samples == 0 || packet.samples > MAX_PACKET_SAMPLES {
            self.stats.rejected += 1;
            return PushOutcome::Invalid;
        }
        let start = packet.media_time;
        let Some(end) = start.checked_add(packet.samples as u64) else {
            self.stats.rejected += 1;
            return PushOutcome::Invalid;
        };
        let ahead_limit = 4 * self
            .cfg
            .samples(self.cfg.max_delay)
            .max(self.cfg.frame_samples as u64);
        // Where this packet may go: after the playout position, not absurdly far ahead.
        let placeable = match self.state {
            State::Playing { pos, .. } => {
                if start < pos {
                    let dup = self.played.contains(&start);
                    Err(if dup {
                        PushOutcome::Duplicate
                    } else {
                        PushOutcome::Late
                    })
                } else if start - pos > ahead_limit {
                    Err(PushOutcome::Rejected)
                } else {
                    Ok(())
                }
            }
            State::Idle => match self.entries.keys().next() {
                Some(&first) if start.abs_diff(first) > ahead_limit => Err(PushOutcome::Rejected),
                _ => Ok(()),
            },
        };
        if let Err(outcome) = placeable {
            self.rejects_in_row += 1;
            if self.rejects_in_row >= self.cfg.reset_after_rejects {
                // The stream moved: start over from this packet.
                self.reset();
                self.stats.resets += 1;
                self.insert(now, packet);
                return PushOutcome::Reset;
            }
            match outcome {
                PushOutcome::Duplicate => self.stats.duplicates += 1,
                PushOutcome::Late => self.stats.late += 1,
                _ => self.stats.rejected += 1,
            }
            return outcome;
        }
        self.rejects_in_row = 0;
        if self.entries.contains_key(&start) {
            self.stats.duplicates += 1;
            return PushOutcome::Duplicate;
        }
        let overlaps_before = self
            .entries
            .range(..start)
            .next_back()
            .is_some_and(|(_, (_, p))| p.media_time + p.samples as u64 > start);
        let overlaps_after = self.entries.range(start..end).next().is_some();
        if overlaps_before || overlaps_after {
            self.stats.rejected += 1;
            return PushOutcome::Rejected;
        }
        if self.entries.len() >= self.cfg.max_packets {
            self.stats.rejected += 1;
            return PushOutcome::Overflow;
        }
        self.insert(now, packet);
        self.track_margin(now, start);
        self.enforce_max_delay();
        PushOutcome::Accepted
    }

    /// The output side is about to serve a device callback that asks for `request` samples
    /// while `queued` decoded samples are still waiting. Call before the pulls that callback
    /// needs; the level it implies drives the delay control.
    pub fn observe(&mut self, now: Instant, queued: u64, request: u64) {
        let State::Playing { pos, .. } = self.state else {
            return;
        };
        let buffered = self.newest_end().saturating_sub(pos);
        self.stats.level_samples = (buffered + queued) as i64 - request as i64;
        self.anchor = Some(Anchor {
            at: now,
            media: pos as i64 - queued as i64,
            request: request.max(1),
        });
    }

    /// The next thing to play; call when the output needs more samples (after
    /// [`JitterBuffer::observe`] for the device callback being served).
    pub fn pull(&mut self, now: Instant) -> Playout<P> {
        if self.state == State::Idle {
            let prefill = self
                .cfg
                .samples(self.cfg.initial_delay)
                .max(self.cfg.frame_samples as u64 + self.target());
            match self.entries.keys().next() {
                Some(&first) if self.newest_end().saturating_sub(first) >= prefill => {
                    // Start no further back than the prefill: audio that piled up before the
                    // output started asking (a slow device start) is stale.
                    let want = self.newest_end() - prefill;
                    let start = self
                        .entries
                        .range(..=want)
                        .next_back()
                        .map_or(first, |(k, _)| *k);
                    while self
                        .entries
                        .first_key_value()
                        .is_some_and(|(k, _)| *k < start)
                    {
                        if let Some((k, _)) = self.entries.pop_first() {
                            self.stats.skipped += 1;
                            self.remember_played(k);
                        }
                    }
                    self.state = State::Playing { pos: start, dry: 0 };
                    self.margin_min.clear();
                    self.recent_min.clear();
                    self.margin = None;
                    self.started_at = Some(now);
                }
                _ => {
                    return Playout::Silence {
                        samples: self.cfg.frame_samples,
                    }
                }
            }
        }
        let State::Playing { pos, dry } = self.state else {
            return Playout::Silence {
                samples: self.cfg.frame_samples,
            };
        };
        let frame = self.cfg.frame_samples;
        let Some((&start, _)) = self.entries.iter().next() else {
            // Dry: conceal without moving, so the delay grows and the late packet still plays.
            self.last_underrun = Some(now);
            self.stats.depth_samples = 0;
            let dry = dry + frame as u64;
            if dry > self.cfg.samples(self.cfg.stall_after) {
                self.stats.stalls += 1;
                self.state = State::Idle;
                return Playout::Silence { samples: frame };
            }
            self.state = State::Playing { pos, dry };
            self.hold_output(frame as i64);
            self.stats.underruns += 1;
            self.stats.concealed_samples += frame as u64;
            return Playout::Conceal {
                samples: frame,
                reason: ConcealReason::Underrun,
                media_time: pos,
            };
        };
        if start > pos {
            // Later audio is here but not this: lost. Conceal exactly the gap (a frame at most
            // per call).
            let n = (start - pos).min(frame as u64) as u32;
            self.state = State::Playing {
                pos: pos + n as u64,
                dry: 0,
            };
            self.stats.lost += 1;
            self.stats.concealed_samples += n as u64;
            return Playout::Conceal {
                samples: n,
                reason: ConcealReason::Lost,
                media_time: pos,
            };
        }
        // start == pos: entries never hold audio before the playout position.
        let depth = self.newest_end() - pos;
        self.stats.depth_samples = depth;
        let samples = self
            .entries
            .get(&start)
            .map_or(0, |(_, p)| p.samples as u64);
        let target = self.target() as i64;
        let margin = self.margin.unwrap_or(target);
        if margin < target - frame as i64 {
            // Far below target (A/V sync raised it): grow by a whole frame now.
            self.hold_output(frame as i64);
            self.margin = Some(margin + frame as i64);
            self.stats.stretches += 1;
            self.stats.concealed_samples += frame as u64;
            return Playout::Conceal {
                samples: frame,
                reason: ConcealReason::Stretch,
                media_time: pos,
            };
        }
        let min_margin = self.margin_min.front().map_or(margin, |&(_, m)| m);
        let settled = self
            .last_underrun
            .is_none_or(|t| now.saturating_duration_since(t) >= self.cfg.shrink_window);
        // Dropping samples only moves a packet's deadline once it crosses into an earlier device
        // callback, and then by a whole callback: keep a callback's worth above the band.
        let request = self.anchor.map_or(frame as u64, |a| a.request) as i64;
        let excess = min_margin - target - self.cfg.samples(self.cfg.hysteresis) as i64 - request;
        // The correction as a rate (samples per sample played), so small packets (PCM) are not
        // corrected faster than 5 ms Opus frames: one sample in 240 (0.4 %) near the target, two
        // when a frame above; one in eight when the last 250 ms all sat far above it (a
        // backlog after a stall), so the backlog is gone in about a second.
        let recent_min = self.recent_min.front().map_or(margin, |&(_, m)| m);
        let backlog = recent_min - target - self.cfg.samples(self.cfg.hysteresis) as i64 - request;
        let since = |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t));
        let calm = since(self.last_underrun).is_none_or(|d| d >= self.cfg.catchup_window)
            && since(self.started_at).is_some_and(|d| d >= self.cfg.catchup_window);
        let rate = if margin < target {
            1.0 / 240.0
        } else if calm && backlog > 4 * frame as i64 {
            -1.0 / 8.0
        } else if settled && self.window_full(now) && excess > 0 {
            if excess > frame as i64 {
                -2.0 / 240.0
            } else {
                -1.0 / 240.0
            }
        } else {
            0.0
        };
        if rate == 0.0 || (rate > 0.0) != (self.adjust_credit > 0.0) {
            self.adjust_credit = 0.0;
        }
        self.adjust_credit += samples as f64 * rate;
        // Fast catch-up cuts a frame at a time (the output picks a cut of whole pitch periods,
        // which needs a cut longer than a period); slow corrections go a sample at a time.
        let min_cut = if rate < -0.05 { frame as f64 } else { 1.0 };
        let adjust = if self.adjust_credit.abs() >= min_cut {
            self.adjust_credit
                .trunc()
                .clamp(-(frame as f64), frame as f64) as i32
        } else {
            0
        };
        self.adjust_credit -= adjust as f64;
        self.hold_output(adjust as i64);
        match adjust {
            a if a > 0 => self.stats.inserted_samples += a as u64,
            a if a < 0 => self.stats.dropped_samples += a.unsigned_abs() as u64,
            _ => {}
        }
        let Some((_, packet)) = self.entries.remove(&start) else {
            return Playout::Silence { samples: frame };
        };
        self.state = State::Playing {
            pos: pos + samples,
            dry: 0,
        };
        self.remember_played(start);
        self.stats.played += 1;
        Playout::Packet { packet, adjust }
    }

    // --- internals ---

    fn target(&self) -> u64 {
        self.cfg.samples(self.cfg.safety) + self.extra_samples
    }

    fn newest_end(&self) -> u64 {
        self.entries
            .values()
            .next_back()
            .map_or(0, |(_, p)| p.media_time + p.samples as u64)
    }

    fn insert(&mut self, now: Instant, packet: BufferedPacket<P>) {
        self.track_jitter(now, packet.media_time);
        self.entries.insert(packet.media_time, (now, packet));
    }

    /// RFC 3550 §6.4.1 interarrival jitter, in µs.
    fn track_jitter(&mut self, now: Instant, media_time: u64) {
        let epoch = *self.epoch.get_or_insert(now);
        let arrival_us = now.saturating_duration_since(epoch).as_micros() as i128;
        let media_us = media_time as i128 * 1_000_000 / self.cfg.sample_rate as i128;
        let transit = (arrival_us - media_us).clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        if let Some(prev) = self.prev_transit_us {
            let d = transit.saturating_sub(prev).unsigned_abs() as f64;
            self.jitter_us += (d - self.jitter_us) / 16.0;
        }
        self.prev_transit_us = Some(transit);
    }

    /// Skips the oldest audio while more than `max_delay` is buffered ahead of the position.
    fn enforce_max_delay(&mut self) {
        let State::Playing { mut pos, dry } = self.state else {
            return;
        };
        let max = self.cfg.samples(self.cfg.max_delay);
        while self.newest_end().saturating_sub(pos) > max {
            let Some((_, (_, p))) = self.entries.pop_first() else {
                break;
            };
            pos = p.media_time + p.samples as u64;
            self.stats.skipped += 1;
            self.remember_played(p.media_time);
        }
        self.state = State::Playing { pos, dry };
    }

    fn remember_played(&mut self, start: u64) {
        if self.played.len() >= 256 {
            self.played.pop_front();
        }
        self.played.push_back(start);
    }

    /// The output will play `n` more (negative: fewer) samples before the media that follows.
    fn hold_output(&mut self, n: i64) {
        if let Some(a) = self.anchor.as_mut() {
            a.media -= n;
        }
    }

    /// How long before its deadline (the device callback that first needs it) the packet
    /// starting at `media_time` arrived, in samples; recorded for the sliding minimum.
    fn track_margin(&mut self, now: Instant, media_time: u64) {
        let (State::Playing { .. }, Some(a)) = (self.state, self.anchor) else {
            return;
        };
        let rate = self.cfg.sample_rate as i64;
        let offset = media_time as i64 - a.media;
        let callbacks = offset.div_euclid(a.request as i64);
        let deadline_us = callbacks * a.request as i64 * 1_000_000 / rate;
        let since_anchor_us = now.saturating_duration_since(a.at).as_micros() as i64;
        let margin = (deadline_us - since_anchor_us) * rate / 1_000_000;
        self.margin = Some(margin);
        while self.margin_min.back().is_some_and(|&(_, m)| m >= margin) {
            self.margin_min.pop_back();
        }
        self.margin_min.push_back((now, margin));
        while self
            .margin_min
            .front()
            .is_some_and(|&(t, _)| now.saturating_duration_since(t) > self.cfg.shrink_window)
        {
            self.margin_min.pop_front();
        }
        while self.recent_min.back().is_some_and(|&(_, m)| m >= margin) {
            self.recent_min.pop_back();
        }
        self.recent_min.push_back((now, margin));
        while self
            .recent_min
            .front()
            .is_some_and(|&(t, _)| now.saturating_duration_since(t) > self.cfg.catchup_window)
        {
            self.recent_min.pop_front();
        }
        self.stats.margin_samples = margin;
        self.stats.min_margin_samples = self.margin_min.front().map_or(margin, |&(_, m)| m);
    }

    /// Whether playback has run for a whole shrink window (the minimum means something).
    fn window_full(&self, now: Instant) -> bool {
        self.started_at
            .is_some_and(|t| now.saturating_duration_since(t) >= self.cfg.shrink_window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(media_time: u64, samples: u32) -> BufferedPacket<u32> {
        BufferedPacket {
            sequence: (media_time / 240) as u32,
            media_time,
            samples,
            capture_us: 0,
            payload: 0,
        }
    }

    /// Playing from media time 0 with 240..960 held (exactly the 20 ms prefill was there).
    fn started(now: Instant) -> JitterBuffer<u32> {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        for i in 0..4 {
            assert_eq!(jb.push(now, pkt(i * 240, 240)), PushOutcome::Accepted);
        }
        jb.observe(now, 0, 240);
        match jb.pull(now) {
            Playout::Packet { packet, .. } => assert_eq!(packet.media_time, 0),
            other => panic!("{other:?}"),
        }
        jb
    }

    #[test]
    fn silence_until_the_prefill_is_there() {
        let now = Instant::now();
        let mut jb: JitterBuffer<u32> = JitterBuffer::new(JitterConfig::default());
        assert_eq!(jb.pull(now), Playout::Silence { samples: 240 });
        // 15 ms buffered: less than the 20 ms prefill.
        for i in 0..3 {
            jb.push(now, pkt(1_000 + i * 240, 240));
        }
        assert_eq!(jb.pull(now), Playout::Silence { samples: 240 });
        jb.push(now, pkt(1_000 + 3 * 240, 240));
        assert!(matches!(jb.pull(now), Playout::Packet { .. }));
        assert!(jb.is_playing());
    }

    #[test]
    fn a_backlog_at_start_is_skipped_down_to_the_prefill() {
        let now = Instant::now();
        let mut jb: JitterBuffer<u32> = JitterBuffer::new(JitterConfig::default());
        // 100 ms arrived before the output asked for anything.
        for i in 0..20 {
            jb.push(now, pkt(i * 240, 240));
        }
        match jb.pull(now) {
            // 20 ms prefill: the newest 4 packets remain, playback starts at packet 16.
            Playout::Packet { packet, .. } => assert_eq!(packet.media_time, 16 * 240),
            other => panic!("{other:?}"),
        }
        assert_eq!(jb.stats().skipped, 16);
        assert_eq!(jb.len(), 3);
    }

    #[test]
    fn invalid_overlapping_and_duplicate_packets_are_refused() {
        let now = Instant::now();
        let mut jb = started(now);
        assert_eq!(jb.push(now, pkt(5_000, 0)), PushOutcome::Invalid);
        assert_eq!(jb.push(now, pkt(5_000, 6_000)), PushOutcome::Invalid);
        assert_eq!(jb.push(now, pkt(u64::MAX - 10, 240)), PushOutcome::Invalid);
        // Held already.
        assert_eq!(jb.push(now, pkt(480, 240)), PushOutcome::Duplicate);
        // Played already.
        assert_eq!(jb.push(now, pkt(0, 240)), PushOutcome::Duplicate);
        // Overlaps the held 480..720 from either side.
        assert_eq!(jb.push(now, pkt(600, 240)), PushOutcome::Rejected);
        assert_eq!(jb.push(now, pkt(1_190, 240)), PushOutcome::Accepted);
        assert_eq!(jb.push(now, pkt(1_000, 240)), PushOutcome::Rejected);
        // Absurdly far ahead.
        assert_eq!(jb.push(now, pkt(10_000_000, 240)), PushOutcome::Rejected);
        let s = jb.stats();
        assert_eq!((s.duplicates, s.rejected), (2, 6));
        assert_eq!(jb.len(), 4);
    }

    #[test]
    fn late_packets_are_dropped_and_counted() {
        let now = Instant::now();
        let mut jb = started(now);
        // Media 0..240 was played; a packet for 100..340 would rewrite the past.
        assert_eq!(jb.push(now, pkt(100, 240)), PushOutcome::Late);
        assert_eq!(jb.stats().late, 1);
    }

    #[test]
    fn a_gap_is_concealed_exactly_and_the_position_moves_on() {
        let now = Instant::now();
        let mut jb = started(now);
        jb.push(now, pkt(1_200, 240));
        jb.push(now, pkt(960, 100));
        for want in [240, 480, 720, 960] {
            jb.observe(now, 0, 240);
            match jb.pull(now) {
                Playout::Packet { packet, .. } => assert_eq!(packet.media_time, want),
                other => panic!("{other:?}"),
            }
        }
        // 960..1060 was played; 1060..1200 is missing.
        assert_eq!(
            jb.pull(now),
            Playout::Conceal {
                samples: 140,
                reason: ConcealReason::Lost,
                media_time: 1_060
            }
        );
        assert!(
            matches!(jb.pull(now), Playout::Packet { packet, .. } if packet.media_time == 1_200)
        );
        // Now dry: concealment that holds the position.
        assert!(matches!(
            jb.pull(now),
            Playout::Conceal {
                reason: ConcealReason::Underrun,
                media_time: 1_440,
                ..
            }
        ));
        assert!(matches!(
            jb.pull(now),
            Playout::Conceal {
                reason: ConcealReason::Underrun,
                media_time: 1_440,
                ..
            }
        ));
        // The late packet still plays.
        assert_eq!(jb.push(now, pkt(1_440, 240)), PushOutcome::Accepted);
        assert!(
            matches!(jb.pull(now), Playout::Packet { packet, .. } if packet.media_time == 1_440)
        );
    }

    #[test]
    fn a_long_dry_spell_stops_playback_until_the_prefill_is_back() {
        let now = Instant::now();
        let mut jb = started(now);
        for _ in 0..4 {
            jb.pull(now);
        }
        // Dry for more than 100 ms.
        let mut silent = false;
        for _ in 0..30 {
            if let Playout::Silence { .. } = jb.pull(now) {
                silent = true;
                break;
            }
        }
        assert!(silent);
        assert!(!jb.is_playing());
        assert_eq!(jb.stats().stalls, 1);
    }

    #[test]
    fn the_buffer_is_bounded() {
        let now = Instant::now();
        let cfg = JitterConfig {
            max_packets: 8,
            ..JitterConfig::default()
        };
        let mut jb: JitterBuffer<u32> = JitterBuffer::new(cfg);
        for i in 0..8 {
            assert_eq!(jb.push(now, pkt(i * 10, 10)), PushOutcome::Accepted);
        }
        assert_eq!(jb.push(now, pkt(80, 10)), PushOutcome::Overflow);
        assert_eq!(jb.len(), 8);
    }

    #[test]
    fn more_than_max_delay_buffered_skips_the_oldest() {
        let now = Instant::now();
        let mut jb = started(now);
        // 400 ms is 19,200 samples: push half a second more.
        for i in 4..104 {
            jb.push(now, pkt(i * 240, 240));
        }
        assert!(jb.stats().skipped > 0);
        assert!(jb.len() as u64 * 240 <= 19_200);
    }
}
