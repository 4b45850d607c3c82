//! The video pipeline: capture → convert → encode on one named thread, encoded once and fanned
//! out to every session (a `broadcast` channel that drops what a slow session has not taken, so
//! nothing queues behind a stalled viewer).
//!
//! The thread idles (captures and encodes nothing) while no viewer is connected, and encodes
//! nothing while the screen is still (the source returns `Timeout`).

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sightline_protocol::msg::{
    Chroma, ColourMatrix, ColourPrimaries, ColourRange, HostStageTimes, StreamConfig,
    TransferFunction,
};
use sightline_protocol::time::{HostMicros, WireClock};
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

use crate::capture::{CaptureOutcome, CapturedFrame, CursorImage, CursorState, FrameSource};
use crate::convert::{bgrx_to_i420, bgrx_to_i420_rect, I420};
use crate::encode::{EncoderSettings, VideoEncoder};

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
}

/// Shared state between sessions and the pipeline thread.
#[derive(Debug)]
struct Control {
    viewers: AtomicUsize,
    keyframe: AtomicBool,
    bitrate_bps: AtomicU32,
    stop: AtomicBool,
    finished: AtomicBool,
    /// Wakes the idle thread when a viewer subscribes or the pipeline is stopped.
    wake: (Mutex<()>, Condvar),
}

impl Control {
    fn notify(&self) {
        let _guard = self.wake.0.lock().unwrap_or_else(PoisonError::into_inner);
        self.wake.1.notify_all();
    }

    /// Blocks while nobody watches (no capture, no encode), without polling: a viewer that
    /// subscribes wakes the thread at once.
    fn wait_for_viewers(&self) {
        let guard = self.wake.0.lock().unwrap_or_else(PoisonError::into_inner);
        let _unused = self
            .wake
            .1
            .wait_while(guard, |_| {
                self.viewers.load(Ordering::SeqCst) == 0 && !self.stop.load(Ordering::SeqCst)
            })
            .unwrap_or_else(PoisonError::into_inner);
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
    control: Arc<Control>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.control.viewers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Subscription {
    /// Asks for a keyframe (a viewer joined, lost frames, or its decoder failed).
    pub fn request_keyframe(&self) {
        self.control.keyframe.store(true, Ordering::SeqCst);
    }
}

impl VideoFeed {
    /// Subscribes a session; the next frame will be a keyframe.
    pub fn subscribe(&self) -> Subscription {
        self.control.viewers.fetch_add(1, Ordering::SeqCst);
        self.control.keyframe.store(true, Ordering::SeqCst);
        self.control.notify();
        let mut cursor = self.cursor.clone();
        // A new session must get the current cursor even though it did not change.
        cursor.mark_changed();
        Subscription {
            units: self.units.subscribe(),
            config: self.config.clone(),
            cursor,
            control: self.control.clone(),
        }
    }

    /// Changes the encoder's target bitrate.
    pub fn set_bitrate(&self, bps: u32) {
        self.control.bitrate_bps.store(bps, Ordering::SeqCst);
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

/// Starts the pipeline thread over `source` with the encoder `make_encoder` builds for a size.
pub fn start(
    mut source: Box<dyn FrameSource>,
    mut make_encoder: impl FnMut(u32, u32) -> Result<Box<dyn VideoEncoder>, crate::encode::EncodeError>
        + Send
        + 'static,
    settings: VideoSettings,
    clock: WireClock,
) -> std::io::Result<VideoFeed> {
    let (units, _) = broadcast::channel(4);
    let (config_tx, config) = watch::channel(None);
    let (cursor_tx, cursor) = watch::channel::<Option<CursorUpdate>>(None);
    let control = Arc::new(Control {
        viewers: AtomicUsize::new(0),
        keyframe: AtomicBool::new(true),
        bitrate_bps: AtomicU32::new(settings.encoder.bitrate_bps),
        stop: AtomicBool::new(false),
        finished: AtomicBool::new(false),
        wake: (Mutex::new(()), Condvar::new()),
    });
    let feed = VideoFeed {
        units: units.clone(),
        config,
        cursor,
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
            let mut encoder: Option<Box<dyn VideoEncoder>> = None;
            let mut bitrate = settings.encoder.bitrate_bps;
            let mut frame_number: u32 = 0;
            let mut cursor_image: Option<Arc<CursorImage>> = None;
            let mut encoded: u64 = 0;
            let matrix = ColourMatrix::Bt709;
            let range = ColourRange::Limited;
            while !control.stop.load(Ordering::SeqCst) {
                if control.viewers.load(Ordering::SeqCst) == 0 {
                    control.wait_for_viewers();
                    continue;
                }
                let want_key = control.keyframe.load(Ordering::SeqCst);
                if want_key {
                    source.invalidate();
                }
                // A short timeout keeps cursor updates flowing while the screen is still.
                let outcome = match source.next_frame(&mut frame, Duration::from_millis(16)) {
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
                let size_changed = picture.width != (w + 1) & !1 || picture.height != (h + 1) & !1;
                if encoder.is_none() || size_changed {
                    match make_encoder(w, h) {
                        Ok(e) => {
                            let caps = e.caps();
                            let cfg = StreamConfig {
                                stream_id: 0,
                                codec: caps.codec,
                                width: (w + 1) & !1,
                                height: (h + 1) & !1,
                                fps_millihz: (settings.encoder.fps * 1000.0) as u32,
                                bit_depth: 8,
                                chroma: Chroma::Yuv420,
                                matrix,
                                range,
                                primaries: ColourPrimaries::Bt709,
                                transfer: TransferFunction::Bt709,
                            };
                            info!(
                                encoder = caps.name,
                                width = cfg.width,
                                height = cfg.height,
                                "encoder ready"
                            );
                            let _ = config_tx.send(Some(cfg));
                            encoder = Some(e);
                            picture = I420::new(w, h);
                            // The whole picture must be converted for the first frame.
                            frame.damage.clear();
                        }
                        Err(e) => {
                            warn!(error = %e, "no encoder for this size; retrying in 1 s");
                            std::thread::sleep(Duration::from_secs(1));
                            continue;
                        }
                    }
                }
                let Some(enc) = encoder.as_mut() else {
                    continue;
                };
                let want_bitrate = control.bitrate_bps.load(Ordering::SeqCst);
                if want_bitrate != bitrate {
                    bitrate = want_bitrate;
                    enc.set_bitrate(bitrate);
                }
                if frame.damage.is_empty() || size_changed {
                    bgrx_to_i420(&frame, matrix, range, &mut picture);
                } else {
                    for r in &frame.damage {
                        bgrx_to_i420_rect(&frame, *r, matrix, range, &mut picture);
                    }
                }
                let convert_end = Instant::now();
                let force = control.keyframe.swap(false, Ordering::SeqCst);
                let out = match enc.encode(&picture, force) {
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
