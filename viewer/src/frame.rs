//! What the network/decode threads hand to the window: the newest decoded picture (latest-wins,
//! never a queue), the cursor, and the figures the overlay shows.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Instant;

use sightline_protocol::msg::{ColourMatrix, ColourRange, HostStageTimes};

/// Sample layout of a decoded picture's planes.
///
/// 8-bit formats store one byte per sample. 10-bit formats store each sample as a little-endian
/// `u16` holding the value in its low 10 bits (FFmpeg's `yuv420p10le` / `yuv444p10le`), so a
/// plane's bytes are twice its samples and strides are in bytes either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PictureFormat {
    /// 8-bit 4:2:0 (chroma half width, half height, rounded up).
    #[default]
    I420,
    /// 8-bit 4:4:4 (chroma full size).
    I444,
    /// 10-bit 4:2:0 in little-endian `u16` samples.
    I420P10,
    /// 10-bit 4:4:4 in little-endian `u16` samples.
    I444P10,
}

impl PictureFormat {
    /// Bits per sample.
    pub fn bit_depth(self) -> u8 {
        match self {
            PictureFormat::I420 | PictureFormat::I444 => 8,
            PictureFormat::I420P10 | PictureFormat::I444P10 => 10,
        }
    }

    /// Bytes per stored sample (1 or 2).
    pub fn bytes_per_sample(self) -> usize {
        if self.bit_depth() > 8 {
            2
        } else {
            1
        }
    }

    /// Whether chroma is subsampled 2×2.
    pub fn is_420(self) -> bool {
        matches!(self, PictureFormat::I420 | PictureFormat::I420P10)
    }

    /// Chroma plane size in samples for a `width`×`height` picture.
    pub fn chroma_size(self, width: u32, height: u32) -> (u32, u32) {
        if self.is_420() {
            (width.div_ceil(2), height.div_ceil(2))
        } else {
            (width, height)
        }
    }
}

/// A decoded picture with its timing. `format` says how the planes are laid out; most of the
/// pipeline sees 8-bit 4:2:0 ([`PictureFormat::I420`]).
#[derive(Debug, Clone)]
pub struct DecodedFrame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Sample layout of `y`, `u` and `v`.
    pub format: PictureFormat,
    /// Luma plane.
    pub y: Vec<u8>,
    /// Cb plane (see [`PictureFormat::chroma_size`]).
    pub u: Vec<u8>,
    /// Cr plane.
    pub v: Vec<u8>,
    /// Bytes per luma row.
    pub y_stride: usize,
    /// Bytes per chroma row.
    pub uv_stride: usize,
    /// Matrix signalled by the host.
    pub matrix: ColourMatrix,
    /// Range signalled by the host.
    pub range: ColourRange,
    /// Host frame number.
    pub frame: u32,
    /// Where the host's source changed since frame `frame - 1` (`None`: unknown). A hint for
    /// codec frames (see [`sightline_protocol::damage`]): the presenters compare pictures
    /// themselves ([`crate::diff`]) and use it to skip comparing where change is certain.
    pub damage: Option<Vec<sightline_protocol::damage::DamageRect>>,
    /// Host stage timestamps (host clock).
    pub host_times: Option<HostStageTimes>,
    /// Viewer clock (µs) when the first fragment arrived.
    pub first_packet_us: u64,
    /// Viewer clock (µs) when the access unit was complete.
    pub reassembled_us: u64,
    /// Viewer clock (µs) when the decoder returned the picture.
    pub decoded_us: u64,
    /// Monotonic time of decode completion (for present latency).
    pub decoded_at: Instant,
}

/// A single-value mailbox: the writer replaces, the reader takes the newest. Older values that
/// were never read are dropped (and counted) — the renderer must never fall behind a queue.
#[derive(Debug, Default)]
pub struct LatestSlot<T> {
    inner: Mutex<SlotInner<T>>,
    ready: Condvar,
}

#[derive(Debug)]
struct SlotInner<T> {
    value: Option<T>,
    replaced: u64,
    closed: bool,
}

impl<T> Default for SlotInner<T> {
    fn default() -> Self {
        SlotInner {
            value: None,
            replaced: 0,
            closed: false,
        }
    }
}

impl<T> LatestSlot<T> {
    /// An empty slot.
    pub fn new() -> Self {
        LatestSlot {
            inner: Mutex::new(SlotInner::default()),
            ready: Condvar::new(),
        }
    }

    /// Stores `v`, dropping an unread older value. Returns true when one was dropped.
    pub fn put(&self, v: T) -> bool {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let dropped = g.value.replace(v).is_some();
        if dropped {
            g.replaced += 1;
        }
        drop(g);
        self.ready.notify_all();
        dropped
    }

    /// Takes the newest value, if any.
    pub fn take(&self) -> Option<T> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .value
            .take()
    }

    /// Waits up to `timeout` for a value; `None` on timeout or when closed and empty.
    pub fn wait_take(&self, timeout: std::time::Duration) -> Option<T> {
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut g, _) = self
            .ready
            .wait_timeout_while(g, timeout, |s| s.value.is_none() && !s.closed)
            .unwrap_or_else(PoisonError::into_inner);
        g.value.take()
    }

    /// Values overwritten before anyone read them.
    pub fn replaced(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replaced
    }

    /// Wakes waiters for good (the producer is gone).
    pub fn close(&self) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        self.ready.notify_all();
    }
}

/// The cursor as the host last described it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CursorOverlay {
    /// Premultiplied RGBA image (`width * height * 4`), empty when none yet.
    pub rgba: Vec<u8>,
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// Hotspot x.
    pub hot_x: u32,
    /// Hotspot y.
    pub hot_y: u32,
    /// Hotspot position in stream pixels.
    pub x: i32,
    /// Hotspot position in stream pixels.
    pub y: i32,
    /// Whether to draw it.
    pub visible: bool,
}

/// Figures for the stats overlay, refreshed about twice a second by the network thread.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsSnapshot {
    /// Decoded frames per second.
    pub fps: f64,
    /// Received video bitrate.
    pub bitrate_mbps: f64,
    /// Network round trip.
    pub rtt_ms: f64,
    /// Median per-stage milliseconds: capture, convert, encode, send, network, reassemble,
    /// decode, present.
    pub stage_ms: [f64; 8],
    /// Frames lost (not recovered) since the session started.
    pub lost_frames: u64,
    /// Frames recovered by forward error correction.
    pub recovered_frames: u64,
    /// Keyframes requested.
    pub keyframe_requests: u64,
    /// Stream size.
    pub width: u32,
    /// Stream size.
    pub height: u32,
    /// Codec name.
    pub codec: String,
    /// Audio figures, when the session plays audio.
    pub audio: Option<crate::audio::AudioSnapshot>,
    /// Lossless tiles: what the proof says (`None`: the host sends none).
    pub lossless: Option<crate::compose::LosslessStatus>,
}
