//! Headless mode: decode without a window, record every frame's stage timings, stop after N
//! frames. Used by tests, CI and benchmarks, and by anyone checking a link without a display.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

use crate::decode::FrameSink;
use crate::frame::DecodedFrame;
use crate::stats::{current_clock, FrameRecord, SharedClock};

/// What the recorder has seen.
#[derive(Debug, Default)]
pub struct Recording {
    /// One record per decoded frame (presented = decoded in headless mode).
    pub records: Vec<FrameRecord>,
    /// Frames decoded but without a record (no clock estimate yet, or no host times).
    pub unrecorded: u64,
    /// Access units not shown (waiting for a keyframe after a loss).
    pub skipped: u64,
    /// When the first and last frames were decoded.
    pub first_at: Option<Instant>,
    /// When the last frame was decoded.
    pub last_at: Option<Instant>,
    /// The last decoded picture, kept for checks (`keep_last`).
    pub last_frame: Option<DecodedFrame>,
}

/// A [`FrameSink`] that records timings and wakes `done` after `target` frames.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// Shared recording.
    pub recording: Arc<Mutex<Recording>>,
    /// Notified once `target` frames were decoded.
    pub done: Arc<Notify>,
    clock: SharedClock,
    target: u64,
    keep_last: bool,
}

impl Recorder {
    /// Records until `target` frames (0: forever) using `clock` for host-time conversion.
    pub fn new(clock: SharedClock, target: u64, keep_last: bool) -> Self {
        Recorder {
            recording: Arc::default(),
            done: Arc::new(Notify::new()),
            clock,
            target,
            keep_last,
        }
    }

    /// Frames decoded so far.
    pub fn decoded(&self) -> u64 {
        let r = self
            .recording
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        r.records.len() as u64 + r.unrecorded
    }
}

impl FrameSink for Recorder {
    fn frame(&mut self, frame: DecodedFrame) {
        let clock = current_clock(&self.clock);
        let mut r = self
            .recording
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        r.first_at.get_or_insert(now);
        r.last_at = Some(now);
        match clock.and_then(|c| FrameRecord::new(&frame, frame.decoded_us, &c)) {
            Some(rec) => r.records.push(rec),
            None => r.unrecorded += 1,
        }
        if self.keep_last {
            r.last_frame = Some(frame);
        }
        let n = r.records.len() as u64 + r.unrecorded;
        drop(r);
        if self.target > 0 && n >= self.target {
            self.done.notify_one();
        }
    }

    fn skipped(&mut self, _frame: u32) {
        self.recording
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .skipped += 1;
    }
}
