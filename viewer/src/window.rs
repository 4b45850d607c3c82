//! Glue between the network task and the window: a [`FrameSink`] that hands pictures to the
//! window's latest-wins slot and wakes it, and a stats task that turns what was presented into
//! the overlay's figures (including the present stage).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use winit::event_loop::EventLoopProxy;

use crate::app::{AppEvent, WindowShared};
use crate::decode::FrameSink;
use crate::frame::{DecodedFrame, StatsSnapshot};
use crate::net::viewer_clock;
use crate::stats::{
    current_clock, stage_percentiles, FrameRecord, FrameTimes, SessionTotals, SharedClock,
};

/// Timestamps of frames handed to the window, until they are presented.
pub type PendingTimes = Arc<Mutex<VecDeque<FrameTimes>>>;

/// Puts decoded pictures in the window's slot and wakes the window.
#[derive(Debug)]
pub struct WindowSink {
    shared: Arc<WindowShared>,
    proxy: WindowProxy,
    pending: PendingTimes,
}

/// The window's proxy, set once the window exists (the session may start before it).
pub type WindowProxy = Arc<OnceLock<EventLoopProxy<AppEvent>>>;

/// Wakes the window, if there is one yet.
pub fn wake(proxy: &WindowProxy, ev: AppEvent) {
    if let Some(p) = proxy.get() {
        // The window may be gone; the network side notices on its own.
        let _ = p.send_event(ev);
    }
}

impl WindowSink {
    /// A sink for `shared`, waking through `proxy`.
    pub fn new(shared: Arc<WindowShared>, proxy: WindowProxy, pending: PendingTimes) -> Self {
        WindowSink {
            shared,
            proxy,
            pending,
        }
    }
}

impl FrameSink for WindowSink {
    fn frame(&mut self, frame: DecodedFrame) {
        {
            let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            if p.len() >= 256 {
                p.pop_front();
            }
            p.push_back(FrameTimes::of(&frame));
        }
        self.shared.frame.put(frame);
        wake(&self.proxy, AppEvent::FrameReady);
    }
}

/// Recomputes the overlay's figures from what was presented since the last call.
#[derive(Debug)]
pub struct StatsUpdater {
    shared: Arc<WindowShared>,
    pending: PendingTimes,
    clock: SharedClock,
    totals: Arc<Mutex<SessionTotals>>,
    last: Instant,
    last_bytes: u64,
    window: VecDeque<FrameRecord>,
}

impl StatsUpdater {
    /// An updater over the given shared state.
    pub fn new(
        shared: Arc<WindowShared>,
        pending: PendingTimes,
        clock: SharedClock,
        totals: Arc<Mutex<SessionTotals>>,
    ) -> Self {
        StatsUpdater {
            shared,
            pending,
            clock,
            totals,
            last: Instant::now(),
            last_bytes: 0,
            window: VecDeque::new(),
        }
    }

    /// Folds in new presents and publishes a snapshot; `codec` and size describe the stream.
    pub fn update(&mut self, codec: &str, size: (u32, u32)) {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64().max(1e-3);
        self.last = now;
        let presented = self.shared.drain_presented();
        let clock = current_clock(&self.clock);
        let wire = viewer_clock();
        {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            for p in &presented {
                // Frames presented are a subset of those handed over (latest wins); drop the
                // ones that were replaced before they were shown.
                while pending.front().is_some_and(|t| t.frame != p.frame) {
                    pending.pop_front();
                }
                if let (Some(t), Some(c)) = (pending.pop_front(), clock) {
                    if let Some(r) = t.record(wire.micros(p.presented_at), &c) {
                        self.window.push_back(r);
                    }
                }
            }
        }
        while self.window.len() > 240 {
            self.window.pop_front();
        }
        let records: Vec<FrameRecord> = self.window.iter().copied().collect();
        let (stages, _) = stage_percentiles(&records);
        let totals = *self.totals.lock().unwrap_or_else(PoisonError::into_inner);
        let bytes = totals.bytes.saturating_sub(self.last_bytes);
        self.last_bytes = totals.bytes;
        let mut snap = StatsSnapshot {
            fps: presented.len() as f64 / dt,
            bitrate_mbps: bytes as f64 * 8.0 / dt / 1e6,
            rtt_ms: clock.map_or(0.0, |c| c.smoothed_rtt_us as f64 / 1e3),
            stage_ms: [0.0; 8],
            lost_frames: totals.frames_lost,
            recovered_frames: totals.frames_recovered,
            keyframe_requests: totals.keyframe_requests,
            width: size.0,
            height: size.1,
            codec: codec.to_owned(),
        };
        for (i, s) in stages.iter().enumerate() {
            snap.stage_ms[i] = s.p50 as f64 / 1e3;
        }
        *self
            .shared
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = snap;
    }
}

/// How often the overlay's figures are refreshed.
pub const STATS_INTERVAL: Duration = Duration::from_millis(500);
