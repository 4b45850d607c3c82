//! Glue between the network task and the window: a [`FrameSink`] that hands pictures to the
//! window's latest-wins slot and wakes it, and a stats task that turns what was presented into
//! the overlay's figures (including the present stage).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use std::collections::HashMap;

use sightline_protocol::msg::{CursorShape, StreamConfig};
use sightline_protocol::session::ViewerEvent;
use winit::event_loop::EventLoopProxy;

use crate::app::{run_window, AppEvent, WindowError, WindowOptions, WindowShared};
use crate::decode::FrameSink;
use crate::frame::CursorOverlay;
use crate::frame::{DecodedFrame, StatsSnapshot};
use crate::net::viewer_clock;
use crate::net::{connect_media, ConnectOptions, Media};
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
    lossless: crate::compose::SharedLossless,
    last: Instant,
    last_bytes: u64,
    window: VecDeque<FrameRecord>,
    audio: Option<crate::audio::AudioHandle>,
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
            lossless: Default::default(),
            last: Instant::now(),
            last_bytes: 0,
            window: VecDeque::new(),
            audio: None,
        }
    }

    /// Also shows `audio`'s figures and feeds it the video latency for A/V sync.
    pub fn with_audio(mut self, audio: Option<crate::audio::AudioHandle>) -> Self {
        self.audio = audio;
        self
    }

    /// Shows the lossless-tile proof from `lossless` in the overlay.
    pub fn with_lossless(mut self, lossless: crate::compose::SharedLossless) -> Self {
        self.lossless = lossless;
        self
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
        let (stages, total) = stage_percentiles(&records);
        if let Some(a) = &self.audio {
            a.set_video_latency_us(total.p50);
        }
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
            audio: self.audio.as_ref().map(|a| a.snapshot()),
            lossless: Some(*self.lossless.lock().unwrap_or_else(PoisonError::into_inner))
                .filter(|l| l.active),
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

/// Connects, then runs the window on this thread and the session on a network thread until
/// either ends. No window is opened when the connection fails.
pub fn run_windowed(
    rt: tokio::runtime::Runtime,
    opts: ConnectOptions,
    window: WindowOptions,
) -> Result<WindowedEnd, WindowError> {
    run_windowed_shared(rt, opts, window, Arc::new(WindowShared::new()))
}

/// [`run_windowed`] with audio playback (`None`: no audio).
pub fn run_windowed_with_audio(
    rt: tokio::runtime::Runtime,
    opts: ConnectOptions,
    window: WindowOptions,
    audio: Option<crate::audio::AudioHandle>,
) -> Result<WindowedEnd, WindowError> {
    let shared = Arc::new(WindowShared::new());
    *shared.audio.lock().unwrap_or_else(PoisonError::into_inner) = audio;
    run_windowed_shared(rt, opts, window, shared)
}

/// [`run_windowed`] with the window's shared state given, so the caller can watch what is
/// presented (records, renderer) while it runs; audio plays when `shared.audio` holds a
/// handle.
pub fn run_windowed_shared(
    rt: tokio::runtime::Runtime,
    opts: ConnectOptions,
    window: WindowOptions,
    shared: Arc<WindowShared>,
) -> Result<WindowedEnd, WindowError> {
    let audio = shared
        .audio
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let proxy: WindowProxy = Arc::default();
    let window_closed = Arc::new(tokio::sync::Notify::new());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<String, String>>();
    let net = {
        let (shared, proxy, window_closed) = (shared.clone(), proxy.clone(), window_closed.clone());
        std::thread::Builder::new()
            .name("sightline-session".into())
            .spawn(move || {
                rt.block_on(session_for_window(
                    opts,
                    shared,
                    proxy,
                    window_closed,
                    ready_tx,
                    audio,
                ))
            })
            .map_err(|e| WindowError::NoDisplay(format!("cannot start the session thread: {e}")))?
    };
    let title = match ready_rx.recv() {
        Ok(Ok(title)) => title,
        Ok(Err(e)) => return Ok(WindowedEnd::ConnectFailed(e)),
        Err(_) => {
            return Ok(WindowedEnd::ConnectFailed(
                "the session thread ended before connecting".into(),
            ))
        }
    };
    let opts = WindowOptions {
        title: if window.title.is_empty() {
            title
        } else {
            window.title
        },
        ..window
    };
    let proxy_slot = proxy.clone();
    let result = run_window(opts, shared, move |p| {
        let _ = proxy_slot.set(p);
    });
    window_closed.notify_one();
    let ended = net.join().unwrap_or(None);
    result?;
    Ok(match ended {
        Some(reason) => WindowedEnd::SessionEnded(reason),
        None => WindowedEnd::WindowClosed,
    })
}

/// How a windowed session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowedEnd {
    /// The connection failed (the error says at which stage); no window was opened.
    ConnectFailed(String),
    /// The host ended the session or the connection dropped.
    SessionEnded(String),
    /// The user closed the window.
    WindowClosed,
}

/// Runs the session behind the window; returns why it ended when the host ended it.
async fn session_for_window(
    opts: ConnectOptions,
    shared: Arc<WindowShared>,
    proxy: WindowProxy,
    window_closed: Arc<tokio::sync::Notify>,
    ready: std::sync::mpsc::Sender<Result<String, String>>,
    audio: Option<crate::audio::AudioHandle>,
) -> Option<String> {
    let pending = PendingTimes::default();
    let clock = SharedClock::default();
    let media = Media {
        video: Some(Box::new(WindowSink::new(
            shared.clone(),
            proxy.clone(),
            pending.clone(),
        ))),
        clock: clock.clone(),
        audio: audio.clone(),
        ..Media::default()
    };
    let totals = media.totals.clone();
    let lossless = media.lossless.clone();
    let host = opts.host.clone();
    let mut conn = match connect_media(opts, media).await {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return None;
        }
    };
    let _ = ready.send(Ok(format!(
        "{} — Sightline ({host})",
        conn.welcome.host_name
    )));
    *shared.input.lock().unwrap_or_else(PoisonError::into_inner) = Some(conn.input_sender());
    let mut updater = StatsUpdater::new(shared.clone(), pending, clock, totals)
        .with_audio(audio)
        .with_lossless(lossless);
    let mut tick = tokio::time::interval(STATS_INTERVAL);
    let mut link = conn.link_state();
    let mut link_msg = crate::reconnect::LinkMessages::default();
    let mut stream: Option<StreamConfig> = None;
    let mut cursor_shapes: HashMap<u32, CursorShape> = HashMap::new();
    let mut cur_id = u32::MAX;
    loop {
        tokio::select! {
            ev = conn.next_event() => match ev {
                Some(ViewerEvent::StreamConfig(c)) => stream = Some(c),
                Some(ViewerEvent::CursorShape(c)) => {
                    let mut cur = shared.cursor.lock().unwrap_or_else(PoisonError::into_inner);
                    if cursor_shapes.len() >= 64 {
                        cursor_shapes.clear();
                    }
                    cursor_shapes.insert(c.id, c);
                    if let Some(s) = cursor_shapes.get(&cur_id) { apply_shape(&mut cur, s); }
                    drop(cur);
                    wake(&proxy, AppEvent::FrameReady);
                }
                Some(ViewerEvent::CursorPosition(p)) => {
                    let mut cur = shared.cursor.lock().unwrap_or_else(PoisonError::into_inner);
                    cur.x = p.x;
                    cur.y = p.y;
                    cur.visible = p.visible;
                    if p.id != cur_id {
                        cur_id = p.id;
                        if let Some(s) = cursor_shapes.get(&cur_id) { apply_shape(&mut cur, s); }
                    }
                    drop(cur);
                    wake(&proxy, AppEvent::FrameReady);
                }
                Some(ViewerEvent::Closed(r)) => {
                    wake(&proxy, AppEvent::SessionEnded(r.to_string()));
                    return Some(r.to_string());
                }
                Some(_) => {}
                None => {
                    wake(&proxy, AppEvent::SessionEnded("session ended".into()));
                    return Some("session ended".into());
                }
            },
            _ = tick.tick() => {
                let (codec, size) = stream.map_or((String::new(), (0, 0)), |c| (crate::decoder::stream_label(&c), (c.width, c.height)));
                updater.update(&codec, size);
                // The banner counts the seconds while the link is down.
                show_link(&shared, &link.borrow());
                wake(&proxy, AppEvent::FrameReady);
            }
            Ok(()) = link.changed() => {
                let state = link.borrow_and_update().clone();
                if let Some(m) = link_msg.report(&state) {
                    tracing::warn!("{m}");
                }
                show_link(&shared, &state);
                wake(&proxy, AppEvent::FrameReady);
            }
            _ = window_closed.notified() => {
                conn.close("window closed").await;
                return None;
            }
        }
    }
}

/// Puts the link's banner ("reconnecting…") where the window draws it and titles from.
fn show_link(shared: &WindowShared, state: &crate::reconnect::LinkState) {
    *shared
        .link_banner
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = state.banner(Instant::now());
}

fn apply_shape(cur: &mut CursorOverlay, s: &CursorShape) {
    cur.rgba = s.rgba.clone();
    cur.width = s.width as u32;
    cur.height = s.height as u32;
    cur.hot_x = s.hot_x as u32;
    cur.hot_y = s.hot_y as u32;
}
