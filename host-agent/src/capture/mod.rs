//! Frame capture behind the [`FrameSource`] trait.
//!
//! A source fills a caller-owned [`CapturedFrame`] (so buffers are reused, never reallocated per
//! frame) and answers with a [`CaptureOutcome`]: a new frame, nothing changed within the timeout,
//! or "reinit" (size or format changed; the pipeline rebuilds its encoder and asks again).
//! Sources know nothing about X11 types outside their own module, so Wayland (PipeWire) and
//! Windows (DXGI) sources fit the same trait.

use std::time::{Duration, Instant};

pub mod gradient;
#[cfg(target_os = "linux")]
pub mod probe_window;
pub mod synthetic;
#[cfg(target_os = "linux")]
pub mod x11;

/// A rectangle in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rect {
    /// Left.
    pub x: u32,
    /// Top.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

impl Rect {
    /// Area in pixels.
    pub fn area(&self) -> u64 {
        self.w as u64 * self.h as u64
    }
    /// Smallest rectangle holding both.
    pub fn union(&self, o: &Rect) -> Rect {
        if self.area() == 0 {
            return *o;
        }
        if o.area() == 0 {
            return *self;
        }
        let x0 = self.x.min(o.x);
        let y0 = self.y.min(o.y);
        let x1 = (self.x + self.w).max(o.x + o.w);
        let y1 = (self.y + self.h).max(o.y + o.h);
        Rect {
            x: x0,
            y: y0,
            w: x1 - x0,
            h: y1 - y0,
        }
    }
}

/// Pixel layout of a captured frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// 8-bit B, G, R, X per pixel (little-endian `0xXXRRGGBB` words), as X11 depth 24/32.
    Bgrx8,
    /// 10-bit per channel packed in little-endian u32 words: `x2 r10 g10 b10` (X11 depth 30).
    X2Rgb10,
}

impl PixelFormat {
    /// Bytes per pixel.
    pub fn bytes_per_pixel(self) -> usize {
        4
    }
}

/// A cursor image (premultiplied RGBA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorImage {
    /// Changes whenever the image changes (sources may use the X11 cursor serial).
    pub serial: u32,
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
    /// Hotspot x.
    pub hot_x: u16,
    /// Hotspot y.
    pub hot_y: u16,
    /// `width * height * 4` bytes of premultiplied RGBA.
    pub rgba: Vec<u8>,
}

/// Where the cursor is and which image it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorState {
    /// Hotspot position in frame pixels.
    pub x: i32,
    /// Hotspot position in frame pixels.
    pub y: i32,
    /// Serial of the image (see [`CursorImage::serial`]).
    pub serial: u32,
    /// Whether the cursor is shown.
    pub visible: bool,
}

/// A frame buffer owned by the pipeline and filled by a source.
#[derive(Debug, Clone)]
pub struct CapturedFrame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row.
    pub stride: usize,
    /// Layout.
    pub format: PixelFormat,
    /// `stride * height` bytes. The whole frame is always valid, not only the damage.
    pub data: Vec<u8>,
    /// What changed since the previous frame this source returned (empty: unknown → everything).
    pub damage: Vec<Rect>,
    /// When the source started reading pixels.
    pub capture_start: Instant,
    /// When the pixels were in `data`.
    pub capture_end: Instant,
    /// Sequence number the source assigns (synthetic: frame counter drawn into the pixels).
    pub sequence: u64,
}

impl CapturedFrame {
    /// An empty buffer.
    pub fn new() -> Self {
        let now = Instant::now();
        CapturedFrame {
            width: 0,
            height: 0,
            stride: 0,
            format: PixelFormat::Bgrx8,
            data: Vec::new(),
            damage: Vec::new(),
            capture_start: now,
            capture_end: now,
            sequence: 0,
        }
    }

    /// Resizes for `width × height` in `format` with a tight stride; keeps the allocation when
    /// it is large enough.
    pub fn reshape(&mut self, width: u32, height: u32, format: PixelFormat) {
        self.width = width;
        self.height = height;
        self.format = format;
        self.stride = width as usize * format.bytes_per_pixel();
        self.data.resize(self.stride * height as usize, 0);
    }

    /// The union of the damage, or the whole frame when the damage is unknown.
    pub fn damage_bounds(&self) -> Rect {
        let full = Rect {
            x: 0,
            y: 0,
            w: self.width,
            h: self.height,
        };
        if self.damage.is_empty() {
            return full;
        }
        self.damage.iter().fold(Rect::default(), |a, r| a.union(r))
    }
}

impl Default for CapturedFrame {
    fn default() -> Self {
        Self::new()
    }
}

/// What a capture call produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureOutcome {
    /// `frame` holds a new picture.
    Frame,
    /// Nothing changed within the timeout (the screen is still): nothing to encode.
    Timeout,
    /// The source changed size or format; the string says what. Call again after rebuilding.
    Reinit(String),
}

/// Why capture failed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The display could not be opened: wrong `--display`, no X server, no permission.
    #[error("cannot open display {display}: {detail}")]
    Open {
        /// Display name.
        display: String,
        /// Cause.
        detail: String,
    },
    /// A required extension is missing (e.g. MIT-SHM, DAMAGE on this X server).
    #[error("the display lacks the {0} extension")]
    MissingExtension(&'static str),
    /// The display connection failed mid-stream (server gone).
    #[error("display connection lost: {0}")]
    Lost(String),
    /// Anything else the platform reported.
    #[error("capture failed: {0}")]
    Other(String),
}

/// A source of frames: a real display or a synthetic test pattern.
pub trait FrameSource: Send {
    /// Human-readable description for logs (e.g. "x11 :0 1920x1080 depth 24 (SHM)").
    fn describe(&self) -> String;

    /// Current size in pixels.
    fn size(&self) -> (u32, u32);

    /// Pixel format of the frames.
    fn format(&self) -> PixelFormat;

    /// Waits up to `timeout` for a change and captures it into `frame`. The first call after
    /// creation or reinit always returns a full frame.
    fn next_frame(
        &mut self,
        frame: &mut CapturedFrame,
        timeout: Duration,
    ) -> Result<CaptureOutcome, CaptureError>;

    /// The cursor's position and image serial now, if the source tracks a cursor.
    fn cursor(&mut self) -> Option<CursorState> {
        None
    }

    /// The image for `serial`, if it is new since the last call (sent once, cached by the
    /// viewer).
    fn cursor_image(&mut self) -> Option<CursorImage> {
        None
    }

    /// Makes the next frame a full one (a viewer joined or asked for a keyframe).
    fn invalidate(&mut self) {}

    /// How long the pipeline may block in [`FrameSource::next_frame`] before it looks for
    /// cursor changes and bench probes again. Sources that redraw on probes (synthetic) want a
    /// short one, so a probe is picked up within a couple of milliseconds.
    fn poll_interval(&self) -> Duration {
        Duration::from_millis(16)
    }

    /// Shows bench probe `id`, which arrived at host wire-clock time `host_recv_us` (µs), in
    /// every frame from the next one on, as the strip of [`sightline_protocol::probe::cells`]
    /// (a newer probe replaces it). Returns whether the source can do this.
    ///
    /// The default is unsupported (`false`): a source that captures a real display cannot
    /// draw into it. For X11 the host draws the strip with [`probe_window::ProbeWindow`]
    /// instead: a separate X client reacting to the probe at once, exactly like an application
    /// reacting to input, whose drawing reaches the capture through DAMAGE.
    fn show_probe(&mut self, id: u32, host_recv_us: u64) -> bool {
        let _ = (id, host_recv_us);
        false
    }
}
