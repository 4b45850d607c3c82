//! The viewer's video receive path, run inside the network task: fragments → reassembly (with
//! parity recovery and the stale-frame policy) → the decode thread; losses turn into keyframe
//! requests, rate-limited so a burst of losses asks once.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sightline_protocol::msg::{KeyframeReason, StreamConfig, VideoFragment};
use sightline_protocol::time::WireClock;
use sightline_protocol::video::{Reassembler, ReassemblerConfig, ReassemblyEvent, ReassemblyStats};
use tracing::debug;

use crate::decode::{DecodeInput, DecodeThread, FrameSink};

/// Least time between two keyframe requests.
const KEYFRAME_REQUEST_GAP: Duration = Duration::from_millis(150);

/// A keyframe asked for and not arriving after this long (or three round trips, whichever is
/// longer) is asked for again — unless its fragments are still coming in.
const KEYFRAME_RETRY: Duration = Duration::from_millis(300);

/// Reassembly + decode for one stream.
#[derive(Debug)]
pub struct VideoReceiver {
    reassembler: Reassembler,
    decode: DecodeThread,
    clock: WireClock,
    awaiting_key: bool,
    last_request: Option<Instant>,
    keyframe_requests: u64,
    config: Option<StreamConfig>,
    /// Counters of reassemblers replaced by [`VideoReceiver::restart`].
    carried: ReassemblyStats,
    /// The session's smoothed round-trip time, for the keyframe retry.
    rtt: Duration,
}

impl VideoReceiver {
    /// Starts the decode thread feeding `sink`.
    pub fn new(sink: Box<dyn FrameSink>, clock: WireClock) -> std::io::Result<Self> {
        Self::new_with(sink, clock, crate::compose::SharedLossless::default())
    }

    /// [`VideoReceiver::new`] that composes lossless tiles, reporting the proof in `lossless`.
    pub fn new_with(
        sink: Box<dyn FrameSink>,
        clock: WireClock,
        lossless: crate::compose::SharedLossless,
    ) -> std::io::Result<Self> {
        Ok(VideoReceiver {
            reassembler: Reassembler::new(ReassemblerConfig::default()),
            decode: DecodeThread::spawn_with(sink, clock, lossless)?,
            clock,
            awaiting_key: true,
            last_request: None,
            keyframe_requests: 0,
            config: None,
            carried: ReassemblyStats::default(),
            rtt: Duration::ZERO,
        })
    }

    /// A sender into the decode thread's queue, for the tile-stream reader.
    pub fn tile_sender(&self) -> std::sync::mpsc::Sender<DecodeInput> {
        self.decode.sender()
    }

    /// The stream configuration.
    pub fn on_config(&mut self, cfg: StreamConfig) {
        if self.config != Some(cfg) {
            self.config = Some(cfg);
            self.decode.send(DecodeInput::Config(cfg));
        }
    }

    /// The session's round-trip time (from clock sync).
    pub fn set_rtt(&mut self, rtt: Duration) {
        self.rtt = rtt;
    }

    fn retry_after(&self) -> Duration {
        KEYFRAME_RETRY.max(self.rtt * 3)
    }

    /// The current stream configuration.
    pub fn config(&self) -> Option<StreamConfig> {
        self.config
    }

    /// A fragment arrived; returns a keyframe request to send, if one is due.
    pub fn on_fragment(&mut self, now: Instant, frag: VideoFragment) -> Option<KeyframeReason> {
        let now_us = self.clock.micros(now);
        let events = self.reassembler.push(now_us, frag);
        self.handle(now, events)
    }

    /// Timers: stale frames, repeated keyframe requests.
    pub fn on_timeout(&mut self, now: Instant) -> Option<KeyframeReason> {
        let now_us = self.clock.micros(now);
        let events = self.reassembler.handle_timeout(now_us);
        self.handle(now, events)
    }

    /// When [`VideoReceiver::on_timeout`] should run next.
    pub fn next_timeout(&self, now: Instant) -> Option<Instant> {
        let now_us = self.clock.micros(now);
        let stale = self
            .reassembler
            .next_timeout_us()
            .map(|t| now + Duration::from_micros(t.saturating_sub(now_us)));
        let retry = self
            .awaiting_key
            .then(|| self.last_request.map(|t| t + self.retry_after()))
            .flatten();
        [stale, retry].into_iter().flatten().min()
    }

    /// Reassembly counters (over every connection of the session).
    pub fn stats(&self) -> ReassemblyStats {
        let (a, b) = (self.carried, self.reassembler.stats());
        ReassemblyStats {
            completed: a.completed + b.completed,
            recovered: a.recovered + b.recovered,
            lost: a.lost + b.lost,
            ignored_fragments: a.ignored_fragments + b.ignored_fragments,
            bytes: a.bytes + b.bytes,
        }
    }

    /// Starts over after the link dropped (a new connection, or the old one back after a
    /// stall): frames in flight are given up and nothing is shown until a keyframe. The
    /// decoder and its sink stay (the window keeps its last picture).
    pub fn restart(&mut self) {
        self.carried = self.stats();
        self.reassembler = Reassembler::new(ReassemblerConfig::default());
        self.awaiting_key = true;
        self.last_request = None;
        self.decode.send(DecodeInput::Lost);
    }

    /// Keyframes asked for so far.
    pub fn keyframe_requests(&self) -> u64 {
        self.keyframe_requests
    }

    fn handle(&mut self, now: Instant, events: Vec<ReassemblyEvent>) -> Option<KeyframeReason> {
        let mut reason = None;
        for ev in events {
            match ev {
                ReassemblyEvent::Complete(au) => {
                    if au.keyframe {
                        self.awaiting_key = false;
                        // Frames lost before a keyframe need nothing: it starts over.
                        reason = None;
                    }
                    self.decode.send(DecodeInput::Unit(au));
                }
                ReassemblyEvent::Lost { first, last, .. } => {
                    debug!(first, last, "frames lost");
                    self.awaiting_key = true;
                    self.decode.send(DecodeInput::Lost);
                    reason = Some(KeyframeReason::FrameLost);
                }
            }
        }
        if self.decode.keyframe_needed.swap(false, Ordering::SeqCst) {
            self.awaiting_key = true;
            reason = Some(KeyframeReason::DecoderError);
        }
        // Still waiting for a keyframe that did not come (the request or the keyframe was
        // lost): ask again — but not while one is arriving (a slow path takes a while).
        let now_us = self.clock.micros(now);
        let arriving = self
            .reassembler
            .keyframe_arriving(now_us, KEYFRAME_RETRY.as_micros() as u64);
        if reason.is_none()
            && self.awaiting_key
            && !arriving
            && self
                .last_request
                .is_some_and(|t| now.duration_since(t) >= self.retry_after())
        {
            reason = Some(KeyframeReason::FrameLost);
        }
        if arriving && reason == Some(KeyframeReason::FrameLost) {
            // The loss is behind a keyframe already on its way.
            return None;
        }
        let reason = reason?;
        if self
            .last_request
            .is_some_and(|t| now.duration_since(t) < KEYFRAME_REQUEST_GAP)
        {
            return None;
        }
        self.last_request = Some(now);
        self.keyframe_requests += 1;
        Some(reason)
    }
}
