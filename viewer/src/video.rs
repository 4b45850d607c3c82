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
}

impl VideoReceiver {
    /// Starts the decode thread feeding `sink`.
    pub fn new(sink: Box<dyn FrameSink>, clock: WireClock) -> std::io::Result<Self> {
        Ok(VideoReceiver {
            reassembler: Reassembler::new(ReassemblerConfig::default()),
            decode: DecodeThread::spawn(sink, clock)?,
            clock,
            awaiting_key: true,
            last_request: None,
            keyframe_requests: 0,
            config: None,
        })
    }

    /// The stream configuration.
    pub fn on_config(&mut self, cfg: StreamConfig) {
        if self.config != Some(cfg) {
            self.config = Some(cfg);
            self.decode.send(DecodeInput::Config(cfg));
        }
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
            .then(|| self.last_request.map(|t| t + KEYFRAME_REQUEST_GAP * 2))
            .flatten();
        [stale, retry].into_iter().flatten().min()
    }

    /// Reassembly counters.
    pub fn stats(&self) -> ReassemblyStats {
        self.reassembler.stats()
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
        // lost): ask again.
        if reason.is_none()
            && self.awaiting_key
            && self
                .last_request
                .is_some_and(|t| now.duration_since(t) >= KEYFRAME_REQUEST_GAP * 2)
        {
            reason = Some(KeyframeReason::FrameLost);
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
