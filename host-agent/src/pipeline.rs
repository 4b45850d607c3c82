//! The video pipeline: capture → convert → encode on one named thread, encoded once and fanned
//! out to every session (a `broadcast` channel that drops what a slow session has not taken, so
//! nothing queues behind a stalled viewer).
//!
//! The thread idles (captures and encodes nothing) while no viewer is connected, and encodes
//! nothing while the screen is still (the source returns `Timeout`).
//!
//! # Bench probes
//! [`VideoFeed::mark_probe`] hands a latency probe (bench mode, input → photon) to the thread,
//! which passes the newest one to [`FrameSource::show_probe`] right before its next capture, so
//! a source that draws its own picture (the synthetic one) shows it in the next frame. An X11
//! capture cannot draw into the screen and blocks in `next_frame` waiting for damage: for X11
//! the host draws the probe with
//! [`ProbeWindow`](crate::capture::probe_window::ProbeWindow) instead — another X client
//! drawing at once, like an application reacting to input, whose damage wakes the capture.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sightline_protocol::msg::{Capabilities, HostStageTimes, StreamConfig};
use sightline_protocol::time::{HostMicros, WireClock};
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

use crate::capture::{CaptureOutcome, CapturedFrame, CursorImage, CursorState, FrameSource};
use crate::convert::{
    bgrx_to_i420, bgrx_to_i420_rect, rgb_to_yuv10, rgb_to_yuv10_rect, Yuv10, I420,
};
use crate::damage::DamageTracker;
use crate::encode::format::{choose, Offer, VideoFormat};
use crate::encode::{open_offer, EncodeError, EncoderSettings, PictureRef, VideoEncoder};
use crate::tiles::{TileOutput, TileSettings, TileTracker};
use sightline_protocol::tiles::frame_message;

/// The tile grid a captured frame would have (`None` before the first frame).
fn tracker_grid(f: &CapturedFrame) -> Option<sightline_protocol::tiles::Grid> {
    (f.width > 0 && f.height > 0).then_some(sightline_protocol::tiles::Grid {
        width: f.width,
        height: f.height,
        depth: match f.format {
            crate::capture::PixelFormat::Bgrx8 => 8,
            crate::capture::PixelFormat::X2Rgb10 => 10,
        },
    })
}

/// One encoded frame, shared by every session.
#[derive(Debug)]
pub struct EncodedUnit {
    /// Frame number (+1 per encoded frame).
    pub frame: u32,
    /// IDR.
    pub keyframe: bool,
    /// Annex B bytes.
    pub data: Vec<u8>,
    /// Stage times on the host wire clock (`send` is stamped by each session).
    pub times: HostStageTimes,
    /// The stream this frame belongs to.
    pub config: StreamConfig,
    /// Source sequence number (synthetic: the counter drawn in the picture).
    pub source_sequence: u64,
    /// Where the source changed since the previous frame (`None`: unknown); see
    /// [`crate::damage`].
    pub damage: Option<Vec<sightline_protocol::damage::DamageRect>>,
}

/// Video settings.
#[derive(Debug, Clone)]
pub struct VideoSettings {
    /// Encoder settings.
    pub encoder: EncoderSettings,
    /// Write the encoded stream (Annex B) here as well.
    pub record: Option<PathBuf>,
    /// Stop after this many encoded frames (0: never) — for tests and benchmarks.
    pub max_frames: u64,
    /// Lossless tiles beside the video ([`crate::tiles`]); used while every viewer composes
    /// them.
    pub tiles: TileSettings,
}

/// Tile-stream bytes for one captured frame (or still tick), shared by every session that
/// composes tiles.
#[derive(Debug)]
pub struct TileBatch {
    /// Framed [`sightline_protocol::tiles::TileMessage`]s, in order.
    pub bytes: Vec<u8>,
    /// Tiles in them.
    pub tiles: usize,
}

/// Shared state between sessions and the pipeline thread.
#[derive(Debug)]
struct Control {
    viewers: AtomicUsize,
    keyframe: AtomicBool,
    bitrate_bps: AtomicU32,
    stop: AtomicBool,
    finished: AtomicBool,
    /// Wakes the idle thread when a viewer subscribes, a probe is marked or the pipeline is
    /// stopped.
    wake: (Mutex<()>, Condvar),
    /// The newest bench probe `(id, host_recv_us)` not yet handed to the source.
    probe: Mutex<Option<(u32, u64)>>,
    /// Per-session bitrate limits (rate control), by subscription id: the encoder follows
    /// the lowest, so the slowest viewer's path sets the rate for all.
    limits: Mutex<std::collections::HashMap<u64, u32>>,
    /// The bitrate the encoder runs at now.
    applied_bps: AtomicU32,
    /// Sessions whose send queue holds more video than their path carries in time: the
    /// encoder skips frames (lower frame rate) until none is, rather than feed a queue.
    backlogged: Mutex<std::collections::HashSet<u64>>,
    /// Frames not encoded because a session was backlogged.
    skipped_backlog: AtomicU64,
    /// What each subscribed viewer decodes (by subscription id): the stream format is the best
    /// offer all of them accept.
    viewer_caps: Mutex<Vec<(u64, Capabilities)>>,
    next_subscription: AtomicU64,
    /// Subscribed viewers that compose lossless tiles (tiles are used while all do).
    tile_viewers: AtomicUsize,
    /// A viewer may have missed tiles: start the lossless layer over.
    tiles_reset: AtomicBool,
    /// Share of the screen held lossless, in 1/10000.
    lossless_share: AtomicU32,
}

impl Control {
    fn notify(&self) {
        let _guard = self.wake.0.lock().unwrap_or_else(PoisonError::into_inner);
        self.wake.1.notify_all();
    }

    /// Blocks while nobody watches (no capture, no encode), without polling: a viewer that
    /// subscribes (or a probe to hand to the source) wakes the thread at once.
    fn wait_for_viewers(&self) {
        let guard = self.wake.0.lock().unwrap_or_else(PoisonError::into_inner);
        let _unused = self
            .wake
            .1
            .wait_while(guard, |_| {
                self.viewers.load(Ordering::SeqCst) == 0
                    && !self.stop.load(Ordering::SeqCst)
                    && self.probe_slot().is_none()
            })
            .unwrap_or_else(PoisonError::into_inner);
    }

    /// The configured bitrate, lowered to the lowest session limit.
    fn effective_bitrate(&self) -> u32 {
        let configured = self.bitrate_bps.load(Ordering::SeqCst);
        let limits = self.limits.lock().unwrap_or_else(PoisonError::into_inner);
        limits.values().copied().fold(configured, u32::min)
    }

    fn viewer_caps(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Capabilities)>> {
        self.viewer_caps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn probe_slot(&self) -> std::sync::MutexGuard<'_, Option<(u32, u64)>> {
        self.probe.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands the pending probe, if any, to `source`. Returns `false` when the source cannot
    /// show probes.
    fn pass_probe(&self, source: &mut dyn FrameSource) -> bool {
        let pending = self.probe_slot().take();
        match pending {
            Some((id, t)) => source.show_probe(id, t),
            None => true,
        }
    }
}

/// The cursor as sessions should show it: position plus the image for its serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorUpdate {
    /// Position and serial.
    pub state: CursorState,
    /// The image with `state.serial`, once the source provided it.
    pub image: Option<Arc<CursorImage>>,
}

/// A handle to the running pipeline, cheap to clone into each session.
#[derive(Debug, Clone)]
pub struct VideoFeed {
    units: broadcast::Sender<Arc<EncodedUnit>>,
    config: watch::Receiver<Option<StreamConfig>>,
    cursor: watch::Receiver<Option<CursorUpdate>>,
    tiles: broadcast::Sender<Arc<TileBatch>>,
    control: Arc<Control>,
}

/// A session's subscription; dropping it tells the pipeline one viewer fewer.
#[derive(Debug)]
pub struct Subscription {
    /// Encoded frames.
    pub units: broadcast::Receiver<Arc<EncodedUnit>>,
    /// The current stream configuration.
    pub config: watch::Receiver<Option<StreamConfig>>,
    /// The cursor.
    pub cursor: watch::Receiver<Option<CursorUpdate>>,
    /// Lossless tiles (for a session that composes them).
    pub tiles: Option<broadcast::Receiver<Arc<TileBatch>>>,
    composes_tiles: bool,
    control: Arc<Control>,
    id: u64,
}

/// Lets a tile sender start the lossless layer over when it fell behind.
#[derive(Debug, Clone)]
pub struct TileResync(Arc<Control>);

impl TileResync {
    /// Starts the lossless layer over (a reset to every tile viewer, then refinement).
    pub fn request(&self) {
        self.0.tiles_reset.store(true, Ordering::SeqCst);
        self.0.notify();
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.set_bitrate_limit(None);
        self.set_backlogged(false);
        self.control.viewer_caps().retain(|(id, _)| *id != self.id);
        if self.composes_tiles {
            self.control.tile_viewers.fetch_sub(1, Ordering::SeqCst);
        }
        self.control.viewers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Subscription {
    /// Asks for a keyframe (a viewer joined, lost frames, or its decoder failed).
    pub fn request_keyframe(&self) {
        self.control.keyframe.store(true, Ordering::SeqCst);
    }

    /// This session missed tiles (it fell behind the tile stream): the lossless layer starts
    /// over for every viewer (a reset, then refinement) — like a keyframe for the tiles.
    pub fn request_tiles_reset(&self) {
        self.tile_resync().request();
    }

    /// A handle for [`Subscription::request_tiles_reset`] that a tile-sending task can keep.
    pub fn tile_resync(&self) -> TileResync {
        TileResync(self.control.clone())
    }

    /// Share of the screen the host holds lossless now (0–1).
    pub fn lossless_share(&self) -> f64 {
        f64::from(self.control.lossless_share.load(Ordering::Relaxed)) / 10_000.0
    }

    /// Limits the encoder's bitrate for this session's sake (its rate controller's target),
    /// or lifts the limit (`None`). The encoder runs at the lowest limit of all sessions,
    /// never above the configured bitrate; the change takes effect on the next frame, without
    /// a keyframe.
    pub fn set_bitrate_limit(&self, bps: Option<u32>) {
        let mut limits = self
            .control
            .limits
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match bps {
            Some(b) => limits.insert(self.id, b),
            None => limits.remove(&self.id),
        };
    }

    /// The bitrate the encoder runs at now (bits/s).
    pub fn encoder_bitrate_bps(&self) -> u32 {
        self.control.applied_bps.load(Ordering::SeqCst)
    }

    /// This session's send queue holds more video than its path carries in time (`true`):
    /// the encoder skips frames until it drains. Keyframes are still made when asked for
    /// (one replaces everything queued).
    pub fn set_backlogged(&self, on: bool) {
        let mut b = self
            .control
            .backlogged
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if on {
            b.insert(self.id);
        } else {
            b.remove(&self.id);
        }
    }
}

impl VideoFeed {
    /// Subscribes a session that decodes anything offered; the next frame will be a keyframe.
    pub fn subscribe(&self) -> Subscription {
        self.subscribe_with(Capabilities::ALL)
    }

    /// Subscribes a session whose viewer decodes what `caps` (the session's negotiated
    /// capabilities) say: the stream switches to the best format every subscriber accepts
    /// (a new stream configuration and a keyframe) when needed. The next frame is a keyframe.
    pub fn subscribe_with(&self, caps: Capabilities) -> Subscription {
        self.subscribe_tiles(caps, false)
    }

    /// [`VideoFeed::subscribe_with`] for a session that composes lossless tiles (`tiles`):
    /// its subscription carries the tile batches, and the lossless layer starts over so it
    /// gets every lossless cell.
    pub fn subscribe_tiles(&self, caps: Capabilities, tiles: bool) -> Subscription {
        let tiles = tiles.then(|| self.tiles.subscribe());
        if tiles.is_some() {
            self.control.tile_viewers.fetch_add(1, Ordering::SeqCst);
        }
        self.control.tiles_reset.store(true, Ordering::SeqCst);
        // Receive before the pipeline hears of this viewer: it may encode the keyframe at
        // once, and a receiver made after the send would miss it (the session would start on
        // a frame it cannot decode).
        let units = self.units.subscribe();
        let id = self
            .control
            .next_subscription
            .fetch_add(1, Ordering::SeqCst);
        self.control.viewer_caps().push((id, caps));
        self.control.viewers.fetch_add(1, Ordering::SeqCst);
        self.control.keyframe.store(true, Ordering::SeqCst);
        self.control.notify();
        let mut cursor = self.cursor.clone();
        // A new session must get the current cursor even though it did not change.
        cursor.mark_changed();
        Subscription {
            units,
            config: self.config.clone(),
            cursor,
            composes_tiles: tiles.is_some(),
            tiles,
            control: self.control.clone(),
            id,
        }
    }

    /// Shows bench probe `id`, which arrived at host wire-clock time `host_recv_us` (µs, the
    /// clock of [`HostStageTimes`]), in the next captured frame: the newest probe replaces one
    /// not yet taken, and an idle thread is woken to hand it to the source. Only sources that
    /// draw their own picture can do this ([`FrameSource::show_probe`], e.g. the synthetic
    /// one); for X11 use [`ProbeWindow`](crate::capture::probe_window::ProbeWindow), which
    /// draws the strip at once from another X client (the X11 capture blocks in `next_frame`
    /// waiting for damage and cannot draw into the screen).
    pub fn mark_probe(&self, id: u32, host_recv_us: u64) {
        *self.control.probe_slot() = Some((id, host_recv_us));
        self.control.notify();
    }

    /// Changes the encoder's target bitrate (the ceiling; sessions' rate control may keep it
    /// lower, see [`Subscription::set_bitrate_limit`]).
    pub fn set_bitrate(&self, bps: u32) {
        self.control.bitrate_bps.store(bps, Ordering::SeqCst);
    }

    /// The bitrate the encoder runs at now (bits/s).
    pub fn encoder_bitrate_bps(&self) -> u32 {
        self.control.applied_bps.load(Ordering::SeqCst)
    }

    /// Frames not encoded because a session's send queue was backlogged.
    pub fn frames_skipped_for_backlog(&self) -> u64 {
        self.control.skipped_backlog.load(Ordering::SeqCst)
    }

    /// The configured bitrate (the ceiling rate control works under), bits/s.
    pub fn configured_bitrate_bps(&self) -> u32 {
        self.control.bitrate_bps.load(Ordering::SeqCst)
    }

    /// Stops the thread.
    pub fn stop(&self) {
        self.control.stop.store(true, Ordering::SeqCst);
        self.control.notify();
    }

    /// Whether the thread has ended (stopped, or its frame limit reached); the record file is
    /// complete then.
    pub fn is_finished(&self) -> bool {
        self.control.finished.load(Ordering::SeqCst)
    }
}

/// Where the pipeline gets its encoders.
enum Encoders {
    /// One 8-bit H.264 stream from a caller's constructor (size in, encoder out).
    Fixed(MakeEncoder),
    /// Negotiated: the probe's offers, best first.
    Offers(Vec<Offer>),
}

type MakeEncoder = Box<dyn FnMut(u32, u32) -> Result<Box<dyn VideoEncoder>, EncodeError> + Send>;

impl Encoders {
    /// The format to encode for these viewers.
    fn wanted(&self, control: &Control) -> Option<Offer> {
        match self {
            Encoders::Fixed(_) => Some(Offer {
                format: VideoFormat::H264_8BIT,
                encoder: "caller's",
            }),
            Encoders::Offers(offers) => {
                let caps: Vec<Capabilities> = control.viewer_caps().iter().map(|c| c.1).collect();
                choose(offers, &caps).copied()
            }
        }
    }

    fn open(
        &mut self,
        offer: &Offer,
        settings: EncoderSettings,
        w: u32,
        h: u32,
    ) -> Result<Box<dyn VideoEncoder>, EncodeError> {
        match self {
            Encoders::Fixed(make) => make(w, h),
            Encoders::Offers(_) => open_offer(offer, settings),
        }
    }
}

/// Whether the encoder should move from `current` to `wanted` bits/s now, `since_last` after
/// its last change. Rate control nudges the target every 50 ms: an encoder that changes its
/// rate in place follows every change that matters (2 %); one that restarts the stream for it
/// (a keyframe each time) only changes by 15 % or more, at most once a second, and goes up
/// only after 3 s — a keyframe is what a congested path can least afford.
fn bitrate_step_due(
    current: u32,
    wanted: u32,
    reopens: bool,
    since_last: Option<Duration>,
) -> bool {
    let diff = u64::from(current.abs_diff(wanted));
    if !reopens {
        return diff * 50 > u64::from(current);
    }
    let min_gap = if wanted > current {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(1)
    };
    diff * 100 >= u64::from(current) * 15 && since_last.is_none_or(|t| t >= min_gap)
}

/// Starts the pipeline thread over `source` with the encoder `make_encoder` builds for a size
/// (an 8-bit 4:2:0 H.264 stream, BT.709 limited range).
pub fn start(
    source: Box<dyn FrameSource>,
    make_encoder: impl FnMut(u32, u32) -> Result<Box<dyn VideoEncoder>, EncodeError> + Send + 'static,
    settings: VideoSettings,
    clock: WireClock,
) -> std::io::Result<VideoFeed> {
    run(
        source,
        Encoders::Fixed(Box::new(make_encoder)),
        settings,
        clock,
    )
}

/// Starts the pipeline thread over `source`, encoding the best of `offers` (from
/// [`crate::encode::probe_formats`], best first) that every subscribed viewer decodes.
pub fn start_negotiated(
    source: Box<dyn FrameSource>,
    offers: Vec<Offer>,
    settings: VideoSettings,
    clock: WireClock,
) -> std::io::Result<VideoFeed> {
    if offers.is_empty() {
        return Err(std::io::Error::other("no stream format to offer"));
    }
    run(source, Encoders::Offers(offers), settings, clock)
}

fn run(
    mut source: Box<dyn FrameSource>,
    mut encoders: Encoders,
    settings: VideoSettings,
    clock: WireClock,
) -> std::io::Result<VideoFeed> {
    let (units, _) = broadcast::channel(4);
    let (tiles_tx, _) = broadcast::channel::<Arc<TileBatch>>(64);
    let (config_tx, config) = watch::channel(None);
    let (cursor_tx, cursor) = watch::channel::<Option<CursorUpdate>>(None);
    let control = Arc::new(Control {
        viewers: AtomicUsize::new(0),
        keyframe: AtomicBool::new(true),
        bitrate_bps: AtomicU32::new(settings.encoder.bitrate_bps),
        stop: AtomicBool::new(false),
        finished: AtomicBool::new(false),
        wake: (Mutex::new(()), Condvar::new()),
        probe: Mutex::new(None),
        limits: Mutex::default(),
        applied_bps: AtomicU32::new(settings.encoder.bitrate_bps),
        backlogged: Mutex::default(),
        skipped_backlog: AtomicU64::new(0),
        viewer_caps: Mutex::new(Vec::new()),
        next_subscription: AtomicU64::new(0),
        tile_viewers: AtomicUsize::new(0),
        tiles_reset: AtomicBool::new(false),
        lossless_share: AtomicU32::new(0),
    });
    let feed = VideoFeed {
        units: units.clone(),
        config,
        cursor,
        tiles: tiles_tx.clone(),
        control: control.clone(),
    };
    std::thread::Builder::new()
        .name("sightline-video".into())
        .spawn(move || {
            let mut record = settings
                .record
                .as_ref()
                .and_then(|p| match File::create(p) {
                    Ok(f) => Some(std::io::BufWriter::new(f)),
                    Err(e) => {
                        warn!(path = %p.display(), error = %e, "cannot create the record file");
                        None
                    }
                });
            info!(source = %source.describe(), "video pipeline ready");
            let mut frame = CapturedFrame::new();
            let mut picture = I420::new(2, 2);
            let mut picture10 = Yuv10::new(2, 2, sightline_protocol::msg::Chroma::Yuv420);
            let mut encoder: Option<Box<dyn VideoEncoder>> = None;
            let mut damage = DamageTracker::new(sightline_protocol::msg::VideoCodec::H264, 0, 0);
            // The format being encoded (set with the encoder).
            let mut current: Option<Offer> = None;
            let mut size = (0u32, 0u32);
            let mut bitrate = settings.encoder.bitrate_bps;
            let mut last_bitrate_change: Option<Instant> = None;
            let mut frame_number: u32 = 0;
            let mut cursor_image: Option<Arc<CursorImage>> = None;
            let mut encoded: u64 = 0;
            let mut probe_warned = false;
            let mut tracker = TileTracker::new(settings.tiles, Instant::now());
            let mut tiles_live = false;
            let stamps = |f: &CapturedFrame| {
                (
                    clock.micros(f.capture_start),
                    clock.micros(f.capture_end),
                    clock.micros(Instant::now()),
                )
            };
            let publish = |out: TileOutput| {
                if out.messages.is_empty() {
                    return;
                }
                let mut bytes = Vec::new();
                for m in &out.messages {
                    bytes.extend_from_slice(&frame_message(m));
                }
                let _ = tiles_tx.send(Arc::new(TileBatch {
                    bytes,
                    tiles: out.tiles,
                }));
            };
            let mut pass_probe = |source: &mut dyn FrameSource| {
                if !control.pass_probe(source) && !std::mem::replace(&mut probe_warned, true) {
                    warn!(
                        source = %source.describe(),
                        "this source cannot show bench probes (X11: draw them with ProbeWindow)"
                    );
                }
            };
            while !control.stop.load(Ordering::SeqCst) {
                if control.viewers.load(Ordering::SeqCst) == 0 {
                    // A probe marked while idle goes to the source now (the first frame a
                    // viewer gets shows it), so it cannot keep the wait from sleeping.
                    pass_probe(source.as_mut());
                    control.wait_for_viewers();
                    continue;
                }
                let want_key = control.keyframe.load(Ordering::SeqCst);
                if want_key {
                    source.invalidate();
                }
                pass_probe(source.as_mut());
                // A short timeout keeps cursor updates flowing while the screen is still.
                let poll = source.poll_interval();
                let outcome = match source.next_frame(&mut frame, poll) {
                    Ok(o) => o,
                    Err(e) => {
                        warn!(error = %e, "capture failed; retrying");
                        std::thread::sleep(Duration::from_millis(200));
                        continue;
                    }
                };
                if let Some(img) = source.cursor_image() {
                    cursor_image = Some(Arc::new(img));
                }
                if let Some(state) = source.cursor() {
                    let image = cursor_image.clone().filter(|i| i.serial == state.serial);
                    let update = CursorUpdate { state, image };
                    cursor_tx.send_if_modified(|c| {
                        let changed = c.as_ref() != Some(&update);
                        if changed {
                            *c = Some(update);
                        }
                        changed
                    });
                }
                // Lossless tiles while every viewer composes them; a viewer that does not
                // (or tiles switched off) sends everything through video again.
                let viewers = control.viewers.load(Ordering::SeqCst);
                let tiles_on = settings.tiles.enabled
                    && viewers > 0
                    && control.tile_viewers.load(Ordering::SeqCst) == viewers;
                if control.tiles_reset.swap(false, Ordering::SeqCst) || (tiles_live && !tiles_on) {
                    if let (true, Some(g)) = (tiles_live, tracker_grid(&frame)) {
                        // Everything back to video for the viewers that compose tiles.
                        publish(TileOutput {
                            messages: vec![sightline_protocol::tiles::TileMessage::Reset(g)],
                            ..TileOutput::default()
                        });
                    }
                    tracker.reset();
                    control.lossless_share.store(0, Ordering::Relaxed);
                }
                tiles_live = tiles_on;
                let mut video_changed = true;
                if tiles_on {
                    let out = match outcome {
                        CaptureOutcome::Frame => {
                            tracker.on_frame(&frame, Instant::now(), frame_number, stamps(&frame))
                        }
                        CaptureOutcome::Timeout => {
                            // Refinement reads the last capture, whose pixels are still
                            // current (nothing was damaged since): stamp it as captured now,
                            // or the latency figures would count the time the screen was still.
                            let n = clock.micros(Instant::now());
                            tracker.on_still(&frame, Instant::now(), (n, n, n))
                        }
                        CaptureOutcome::Reinit(_) => TileOutput::default(),
                    };
                    video_changed = out.video_changed;
                    if !out.messages.is_empty() {
                        control.lossless_share.store(
                            (tracker.lossless_share() * 10_000.0) as u32,
                            Ordering::Relaxed,
                        );
                    }
                    publish(out);
                }
                match outcome {
                    CaptureOutcome::Timeout => continue,
                    CaptureOutcome::Reinit(why) => {
                        info!(%why, "source changed; rebuilding the encoder");
                        encoder = None;
                        continue;
                    }
                    CaptureOutcome::Frame => {}
                }
                let (w, h) = (frame.width, frame.height);
                let size_changed = I420::padded_size(w, h) != size;
                let Some(wanted) = encoders.wanted(&control) else {
                    continue;
                };
                if current.is_some_and(|c| c.format != wanted.format) {
                    info!(from = %current.map(|c| c.format.to_string()).unwrap_or_default(), to = %wanted.format, "viewers changed; switching the stream format");
                    encoder = None;
                }
                if encoder.is_none() || size_changed {
                    match encoders.open(&wanted, settings.encoder, w, h) {
                        Ok(e) => {
                            let caps = e.caps();
                            size = I420::padded_size(w, h);
                            let cfg = wanted.format.stream_config(size.0, size.1, settings.encoder.fps);
                            info!(
                                encoder = caps.name,
                                format = %wanted.format,
                                width = cfg.width,
                                height = cfg.height,
                                "encoder ready"
                            );
                            let _ = config_tx.send(Some(cfg));
                            damage = DamageTracker::new(caps.codec, cfg.width, cfg.height);
                            let mut e = e;
                            // A new encoder starts from the configured bitrate; rate control
                            // may have it lower.
                            if bitrate != settings.encoder.bitrate_bps {
                                e.set_bitrate(bitrate);
                            }
                            encoder = Some(e);
                            current = Some(wanted);
                            if wanted.format.bit_depth > 8 {
                                picture10 = Yuv10::new(w, h, wanted.format.chroma);
                            } else {
                                picture = I420::new(w, h);
                            }
                            // The whole picture must be converted for the first frame, and it
                            // must be a keyframe.
                            frame.damage.clear();
                            control.keyframe.store(true, Ordering::SeqCst);
                        }
                        Err(e) => {
                            warn!(error = %e, "no encoder for this size; retrying in 1 s");
                            std::thread::sleep(Duration::from_secs(1));
                            continue;
                        }
                    }
                }
                let (Some(enc), Some(offer)) = (encoder.as_mut(), current) else {
                    continue;
                };
                let want_bitrate = control.effective_bitrate();
                if bitrate_step_due(
                    bitrate,
                    want_bitrate,
                    enc.bitrate_change_reopens(),
                    last_bitrate_change.map(|t| t.elapsed()),
                ) {
                    debug!(from = bitrate, to = want_bitrate, "encoder bitrate");
                    bitrate = want_bitrate;
                    enc.set_bitrate(bitrate);
                    control.applied_bps.store(bitrate, Ordering::SeqCst);
                    last_bitrate_change = Some(Instant::now());
                }
                let (matrix, range) = (offer.format.matrix, offer.format.range);
                let ten = offer.format.bit_depth > 8;
                match (ten, frame.damage.is_empty() || size_changed) {
                    (false, true) => bgrx_to_i420(&frame, matrix, range, &mut picture),
                    (false, false) => {
                        for r in &frame.damage {
                            bgrx_to_i420_rect(&frame, *r, matrix, range, &mut picture);
                        }
                    }
                    (true, true) => rgb_to_yuv10(&frame, matrix, range, &mut picture10),
                    (true, false) => {
                        for r in &frame.damage {
                            rgb_to_yuv10_rect(&frame, *r, matrix, range, &mut picture10);
                        }
                    }
                }
                let convert_end = Instant::now();
                damage.captured(if size_changed { &[] } else { &frame.damage });
                let backlogged = !control
                    .backlogged
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_empty();
                if !video_changed && !control.keyframe.load(Ordering::SeqCst) {
                    // Only lossless cells changed: the tiles carry it, the video has nothing
                    // to say (the picture is converted, so a later frame stays consistent).
                    continue;
                }
                if backlogged && !control.keyframe.load(Ordering::SeqCst) {
                    // A viewer's path cannot take what is already queued: a lower frame rate
                    // (the picture is converted, so the next frame shows everything).
                    control.skipped_backlog.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let force = control.keyframe.swap(false, Ordering::SeqCst);
                let input = if ten {
                    PictureRef::Yuv10(&picture10)
                } else {
                    PictureRef::I420(&picture)
                };
                let out = match enc.encode_frame(input, force) {
                    Ok(Some(out)) => out,
                    Ok(None) => continue,
                    Err(e) => {
                        warn!(error = %e, "encode failed; rebuilding the encoder");
                        encoder = None;
                        control.keyframe.store(true, Ordering::SeqCst);
                        continue;
                    }
                };
                let encode_end = Instant::now();
                let Some(cfg) = *config_tx.borrow() else {
                    continue;
                };
                let at = |t: Instant| HostMicros(clock.micros(t));
                let unit = EncodedUnit {
                    frame: frame_number,
                    keyframe: out.keyframe,
                    times: HostStageTimes {
                        capture_start: at(frame.capture_start),
                        capture_end: at(frame.capture_end),
                        convert_end: at(convert_end),
                        encode_end: at(encode_end),
                        send: at(encode_end),
                    },
                    config: cfg,
                    source_sequence: frame.sequence,
                    damage: damage.encoded(out.keyframe),
                    data: out.data,
                };
                if let Some(w) = record.as_mut() {
                    if let Err(e) = w.write_all(&unit.data).and_then(|_| w.flush()) {
                        warn!(error = %e, "recording stopped");
                        record = None;
                    }
                }
                debug!(
                    frame = frame_number,
                    bytes = unit.data.len(),
                    key = unit.keyframe,
                    "encoded"
                );
                frame_number = frame_number.wrapping_add(1);
                encoded += 1;
                // No receivers (between sessions) is fine: the frame is simply not sent.
                let _ = units.send(Arc::new(unit));
                if settings.max_frames > 0 && encoded >= settings.max_frames {
                    info!(
                        frames = encoded,
                        "frame limit reached; video pipeline stops"
                    );
                    break;
                }
            }
            if let Some(mut w) = record.take() {
                let _ = w.flush();
            }
            control.finished.store(true, Ordering::SeqCst);
        })?;
    Ok(feed)
}

#[cfg(test)]
mod tests {
    use ::openh264::decoder::{Decoder, DecoderConfig};
    use ::openh264::formats::YUVSource;
    use ::openh264::OpenH264API;
    use sightline_protocol::probe;

    use super::*;
    use crate::capture::synthetic::SyntheticSource;
    use crate::encode::EncoderSettings;

    const W: u32 = 640;
    const H: u32 = 360;

    fn start_synthetic() -> (VideoFeed, WireClock) {
        let settings = VideoSettings {
            encoder: EncoderSettings {
                usage: Default::default(),
                bitrate_bps: 8_000_000,
                fps: 60.0,
                max_slice_bytes: 0,
                threads: 1,
            },
            record: None,
            max_frames: 0,
            tiles: TileSettings::default(),
        };
        let enc = settings.encoder;
        let clock = WireClock::new(Instant::now(), 1_000_000_000);
        let feed = start(
            Box::new(SyntheticSource::new(W, H, 60)),
            move |_, _| crate::encode::probe(64, 64, enc).map(|(e, _)| e),
            settings,
            clock,
        )
        .expect("start the pipeline");
        (feed, clock)
    }

    /// Receives units (keeping up with the thread) and decodes them; returns the unit and the
    /// probe its decoded picture shows.
    struct Watcher {
        sub: Subscription,
        decoder: Decoder,
    }

    impl Watcher {
        fn new(feed: &VideoFeed) -> Watcher {
            Watcher {
                sub: feed.subscribe(),
                decoder: Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
                    .expect("decoder"),
            }
        }

        fn next(&mut self) -> (Arc<EncodedUnit>, Option<(u32, u32)>) {
            let unit = match self.sub.units.blocking_recv() {
                Ok(u) => u,
                Err(e) => panic!("no unit (lagged or the feed ended): {e}"),
            };
            let yuv = self
                .decoder
                .decode(&unit.data)
                .expect("decode")
                .expect("a picture per unit");
            let (w, h) = yuv.dimensions();
            let read = probe::read(yuv.y(), yuv.strides().0, w as u32, h as u32);
            (unit, read)
        }
    }

    #[test]
    fn marked_probe_shows_within_three_frames() {
        let (feed, clock) = start_synthetic();
        let mut watch = Watcher::new(&feed);
        for _ in 0..5 {
            let (_, read) = watch.next();
            assert_eq!(read, None, "no probe shown before one is marked");
        }
        let t = clock.micros(Instant::now()) + (1 << 33);
        let marked = clock.micros(Instant::now());
        feed.mark_probe(7, t);
        // Frames captured after the mark; the first may have been waiting for its due time
        // when the probe came, the next ones must show it.
        let mut after = 0;
        loop {
            let (unit, read) = watch.next();
            if unit.times.capture_start.0 < marked {
                continue;
            }
            after += 1;
            if read == Some((7, t as u32)) {
                break;
            }
            assert!(
                after < 3,
                "probe not shown in {after} frames captured after the mark"
            );
        }
        // It stays, and a newer probe replaces it.
        assert_eq!(watch.next().1, Some((7, t as u32)));
        feed.mark_probe(8, t + 1);
        let shown = (0..4).any(|_| watch.next().1 == Some((8, (t + 1) as u32)));
        assert!(shown, "the newer probe replaces the old one");
        feed.stop();
    }

    #[test]
    fn probe_marked_while_idle_shows_on_the_first_frame() {
        let (feed, _) = start_synthetic();
        feed.mark_probe(99, 12_345);
        // The idle thread takes it without any viewer (wait for that, up to a deadline).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while feed.control.probe_slot().is_some() && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(
            *feed.control.probe_slot(),
            None,
            "the idle thread took the probe"
        );
        let mut watch = Watcher::new(&feed);
        let (unit, read) = watch.next();
        assert!(unit.keyframe);
        assert_eq!(read, Some((99, 12_345)));
        feed.stop();
    }

    #[test]
    fn encoders_that_reopen_change_bitrate_in_fewer_larger_steps() {
        let s = Duration::from_secs;
        // In place: every change over 2 %, at once.
        assert!(bitrate_step_due(10_000_000, 9_700_000, false, Some(s(0))));
        assert!(!bitrate_step_due(10_000_000, 9_900_000, false, None));
        // Reopening: 15 % or more, down after 1 s, up after 3 s.
        assert!(!bitrate_step_due(10_000_000, 9_000_000, true, None));
        assert!(bitrate_step_due(10_000_000, 8_000_000, true, None));
        assert!(!bitrate_step_due(10_000_000, 8_000_000, true, Some(s(0))));
        assert!(bitrate_step_due(10_000_000, 8_000_000, true, Some(s(1))));
        assert!(!bitrate_step_due(8_000_000, 10_000_000, true, Some(s(2))));
        assert!(bitrate_step_due(8_000_000, 10_000_000, true, Some(s(3))));
    }
}
