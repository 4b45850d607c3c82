//! The viewer's window: one winit [`ApplicationHandler`] that owns the window and the pixels
//! renderer, woken by the network/decode thread through an [`EventLoopProxy`].
//!
//! ```text
//!  network/decode thread                         window thread (this module)
//!  ─────────────────────                         ───────────────────────────
//!  shared.frame.put(frame)  ──┐                  FrameReady ─► request_redraw
//!  shared.cursor / .stats   ──┼─ Arc<WindowShared>            │ (several FrameReady → one redraw)
//!  proxy.send_event(FrameReady)                   RedrawRequested:
//!                             │                     take newest frame (latest wins, never a queue)
//!  drain shared.presented ◄───┘                     I420 → RGBA into the pixels buffer
//!  (present stage of the latency record)            cursor + stats overlay, render
//!                                                   push PresentRecord
//! ```
//!
//! Decisions, written down (alacritty's rule: pacing is a decision, not a default):
//!
//! - **No render loop.** The loop waits (`ControlFlow::Wait`); it draws only when a frame
//!   arrives, the window is resized or exposed, or the overlay is toggled. `FrameReady` with an
//!   empty slot (e.g. only the cursor or the stats changed) redraws the overlays over the last
//!   picture without converting it again ([`SaveUnder`]).
//! - **Present mode:** Mailbox when the surface offers it, else Immediate, else Fifo. Frames come
//!   at the host's pace and are drawn at once; Mailbox never blocks the window thread and shows
//!   the newest image at the next refresh without tearing — latest-wins at the swapchain too.
//!   Immediate saves at most one refresh more but tears, so it is only the fallback; Fifo would
//!   block `render()` whenever two images are queued and add up to two refreshes of latency.
//! - **Scaling:** the pixels buffer stays at the stream's resolution and pixels 0.17's
//!   [`ScalingMode::Fill`] scales it on the GPU to the largest aspect-correct size that fits the
//!   window (non-integer factors allowed, sharp-bilinear), centred, with black bars. The CPU
//!   cost of a frame is therefore independent of the window size, and the upload is the
//!   stream's size, not the window's.
//! - **Renderer:** wgpu through pixels on a hardware adapter; on a software one (lavapipe,
//!   20–50 ms to present 1080p) or none, or with `--renderer cpu`, the CPU path in
//!   [`crate::present_cpu`] (softbuffer; nearest-neighbour fill scaling on the CPU, ~2.5 ms at
//!   1080p on Xvfb). Both keep the composed picture as stream-resolution RGBA, so conversion,
//!   overlays and input mapping are shared (`Backend`).
//! - **Surface format:** a plain (non-sRGB) 8-bit surface when offered, see `build_pixels`.
//! - **Keys handled here are consumed:** F11 (borderless fullscreen), F3 and Ctrl+Alt+S (stats
//!   overlay), Ctrl+Alt+M (relative mouse mode for 3D apps). Their presses and releases are
//!   never forwarded to the host.
//! - **Input:** every other key goes to the host with its physical key and keysym; local
//!   auto-repeats are not sent (the host's X server repeats held keys itself). Pointer positions
//!   are mapped through the scaling into stream pixels (clamped at the black bars). Losing
//!   focus sends `ReleaseAll`, so a key held while the user switches windows is let go.
//!
//! When the window closes, the event loop is dropped and `EventLoopProxy::send_event` starts
//! failing with `EventLoopClosed`: that is how the network thread learns to end the session.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use pixels::wgpu::{BlendState, DeviceType, PresentMode, TextureFormat};
use pixels::{Pixels, PixelsBuilder, ScalingMode, SurfaceTexture};
use tracing::{debug, info, trace, warn};
use winit::application::ApplicationHandler;
use winit::dpi::{LogicalSize, PhysicalSize};
use winit::error::EventLoopError;
use winit::event::{DeviceEvent, DeviceId, ElementState, KeyEvent, WindowEvent};
use winit::event_loop::{
    ActiveEventLoop, ControlFlow, EventLoop, EventLoopBuilder, EventLoopProxy,
};
use winit::keyboard::{Key, KeyCode, ModifiersState, NamedKey, PhysicalKey};
use winit::window::{CursorGrabMode, Fullscreen, Window, WindowId};

use crate::convert;
use crate::frame::{CursorOverlay, DecodedFrame, LatestSlot, StatsSnapshot};
use crate::input::devices::{fill_to_stream, ExtraInputs, ScaleState};
use crate::input::keyboard;
use crate::net::InputSender;
use crate::overlay::{Canvas, SaveUnder, StatsPanel};
use crate::present_cpu::CpuPresenter;
use sightline_protocol::msg::InputEvent;

/// Events the network/decode thread sends to the window through its [`EventLoopProxy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppEvent {
    /// Something new to show: a frame in [`WindowShared::frame`], or a changed cursor or stats.
    FrameReady,
    /// The session is over (the reason is logged); the window closes.
    SessionEnded(String),
}

/// When a frame reached the screen, for the present stage of its latency record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresentRecord {
    /// Host frame number.
    pub frame: u32,
    /// When `render()` returned (the image is queued for display).
    pub presented_at: Instant,
    /// Converting to RGBA plus drawing the overlays, in µs.
    pub convert_us: u32,
    /// Uploading and presenting (`Pixels::render`), or on the CPU path scaling into the
    /// framebuffer and presenting it, in µs.
    pub present_us: u32,
    /// The CPU path's scaling, part of `present_us` (0 on the GPU path), in µs.
    pub scale_us: u32,
}

/// Records kept for the network thread at most; older ones are dropped when nobody drains.
pub const MAX_PENDING_PRESENTS: usize = 1024;

/// What the network/decode thread and the window share.
#[derive(Debug)]
pub struct WindowShared {
    /// The newest decoded picture (latest wins).
    pub frame: LatestSlot<DecodedFrame>,
    /// The host's cursor, drawn locally over the picture.
    pub cursor: Mutex<CursorOverlay>,
    /// Figures for the stats overlay.
    pub stats: Mutex<StatsSnapshot>,
    /// Frames presented since the network thread last drained this (oldest first).
    pub presented: Mutex<Vec<PresentRecord>>,
    /// Where input goes once the session is up (`None`: view only or not connected yet).
    pub input: Mutex<Option<InputSender>>,
    /// Also sends every present record here (bench mode).
    pub present_tap: Mutex<Option<std::sync::mpsc::Sender<PresentRecord>>>,
    /// Audio controls (mute, volume), when the session plays audio.
    pub audio: Mutex<Option<crate::audio::AudioHandle>>,
}

impl Default for WindowShared {
    fn default() -> Self {
        WindowShared {
            // `LatestSlot::default()` would need `DecodedFrame: Default`.
            frame: LatestSlot::new(),
            cursor: Mutex::default(),
            stats: Mutex::default(),
            presented: Mutex::default(),
            input: Mutex::default(),
            present_tap: Mutex::default(),
            audio: Mutex::default(),
        }
    }
}

impl WindowShared {
    /// Empty slot, no cursor, zero stats.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes every record pushed since the last call, oldest first.
    pub fn drain_presented(&self) -> Vec<PresentRecord> {
        std::mem::take(&mut *lock(&self.presented))
    }

    fn push_presented(&self, record: PresentRecord) {
        if let Some(tap) = lock(&self.present_tap).as_ref() {
            let _ = tap.send(record);
        }
        let mut v = lock(&self.presented);
        if v.len() >= MAX_PENDING_PRESENTS {
            let excess = v.len() + 1 - MAX_PENDING_PRESENTS;
            v.drain(..excess);
        }
        v.push(record);
    }
}

/// How to open the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowOptions {
    /// Window title.
    pub title: String,
    /// Start in borderless fullscreen on the current monitor.
    pub fullscreen: bool,
    /// Start with the stats overlay shown.
    pub show_stats: bool,
    /// Inner size in physical pixels (default: 1280×720 logical).
    pub initial_size: Option<(u32, u32)>,
    /// Send no input to the host.
    pub view_only: bool,
    /// Which present path to use.
    pub renderer: Renderer,
}

/// The present path: wgpu through pixels, or a CPU framebuffer through softbuffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Renderer {
    /// The GPU when wgpu finds a hardware adapter; the CPU path when its adapter is a software
    /// one (lavapipe: 20–50 ms a 1080p frame) or it finds none.
    #[default]
    Auto,
    /// Always wgpu (fails without an adapter).
    Gpu,
    /// Always the CPU framebuffer ([`crate::present_cpu`]).
    Cpu,
}

impl Default for WindowOptions {
    fn default() -> Self {
        WindowOptions {
            title: "Sightline".into(),
            fullscreen: false,
            show_stats: false,
            initial_size: None,
            view_only: false,
            renderer: Renderer::Auto,
        }
    }
}

/// Why the window could not be opened or kept running.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    /// No display server could be reached: `DISPLAY` / `WAYLAND_DISPLAY` unset or pointing at a
    /// server that is not running or refuses the connection.
    #[error("no display available ({0}); is DISPLAY or WAYLAND_DISPLAY set to a running server?")]
    NoDisplay(String),
    /// winit allows one event loop per process; a second `run_window` call fails.
    #[error("a window event loop was already created in this process")]
    EventLoopRecreated,
    /// The event loop failed while running.
    #[error("window event loop failed: {0}")]
    EventLoop(#[source] EventLoopError),
    /// The display server refused the window.
    #[error("could not create the window: {0}")]
    CreateWindow(#[source] winit::error::OsError),
    /// wgpu found no adapter (GPU, or a software one such as lavapipe) that can present to this
    /// window; on Linux without a GPU install a Vulkan driver (`mesa-vulkan-drivers`).
    #[error("no graphics adapter can present to this window (on Linux without a GPU, install mesa-vulkan-drivers)")]
    NoAdapter,
    /// The adapter was found but refused to create a device.
    #[error("the graphics adapter refused to open a device: {0}")]
    Device(#[source] pixels::Error),
    /// The window surface could not be created or configured (e.g. an unsupported visual, such
    /// as a 30-bit X screen).
    #[error("could not set up the window surface: {0}")]
    Surface(#[source] pixels::Error),
    /// The stream is larger than the device's largest texture.
    #[error("stream size {width}x{height} exceeds what the graphics device supports: {source}")]
    StreamTooLarge {
        /// Stream width.
        width: u32,
        /// Stream height.
        height: u32,
        /// What pixels reported.
        #[source]
        source: pixels::TextureError,
    },
    /// Presenting a frame failed (a wgpu validation error or a lost device).
    #[error("presenting a frame failed: {0}")]
    Render(#[source] pixels::Error),
    /// The CPU framebuffer (softbuffer) could not be set up or presented.
    #[error("CPU framebuffer failed: {0}")]
    CpuPresent(String),
}

impl From<pixels::Error> for WindowError {
    fn from(e: pixels::Error) -> Self {
        match e {
            pixels::Error::AdapterNotFound => WindowError::NoAdapter,
            e @ pixels::Error::DeviceNotFound(_) => WindowError::Device(e),
            e => WindowError::Surface(e),
        }
    }
}

/// Opens the window and runs its event loop on the calling thread until the window is closed or
/// [`AppEvent::SessionEnded`] arrives. `on_start` gets the proxy before the loop starts (spawn
/// the network thread there).
///
/// On X11 and Wayland the loop may run on any thread (tests need that); elsewhere call this from
/// the main thread. winit allows one event loop per process.
pub fn run_window(
    opts: WindowOptions,
    shared: Arc<WindowShared>,
    on_start: impl FnOnce(EventLoopProxy<AppEvent>) + 'static,
) -> Result<(), WindowError> {
    let mut builder = EventLoop::<AppEvent>::with_user_event();
    allow_any_thread(&mut builder);
    let event_loop = builder.build().map_err(|e| match e {
        EventLoopError::Os(os) => WindowError::NoDisplay(os.to_string()),
        EventLoopError::RecreationAttempt => WindowError::EventLoopRecreated,
        e => WindowError::EventLoop(e),
    })?;
    event_loop.set_control_flow(ControlFlow::Wait);
    on_start(event_loop.create_proxy());
    let mut app = App::new(opts, shared);
    event_loop
        .run_app(&mut app)
        .map_err(WindowError::EventLoop)?;
    match app.error.take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(any(
    target_os = "linux",
    target_os = "dragonfly",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd"
))]
fn allow_any_thread(builder: &mut EventLoopBuilder<AppEvent>) {
    use winit::platform::wayland::EventLoopBuilderExtWayland;
    use winit::platform::x11::EventLoopBuilderExtX11;
    EventLoopBuilderExtX11::with_any_thread(builder, true);
    EventLoopBuilderExtWayland::with_any_thread(builder, true);
}

#[cfg(windows)]
fn allow_any_thread(builder: &mut EventLoopBuilder<AppEvent>) {
    use winit::platform::windows::EventLoopBuilderExtWindows;
    builder.with_any_thread(true);
}

#[cfg(not(any(
    windows,
    target_os = "linux",
    target_os = "dragonfly",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd"
)))]
fn allow_any_thread(_builder: &mut EventLoopBuilder<AppEvent>) {}

/// Size of the pixels buffer before the first frame arrives.
const PLACEHOLDER_SIZE: (u32, u32) = (640, 360);

/// The window, its renderer and the size of the picture in the buffer.
#[derive(Debug)]
struct Gfx {
    window: Arc<Window>,
    backend: Backend,
    buffer: (u32, u32),
}

/// The present path in use; both hold the composed picture as stream-resolution RGBA.
#[derive(Debug)]
enum Backend {
    Gpu(Box<Pixels<'static>>),
    Cpu(CpuPresenter),
}

impl Backend {
    /// The RGBA picture, `buffer.0 × buffer.1 × 4` bytes.
    fn frame_mut(&mut self) -> &mut [u8] {
        match self {
            Backend::Gpu(p) => p.frame_mut(),
            Backend::Cpu(c) => c.rgba(),
        }
    }

    fn resize_buffer(&mut self, width: u32, height: u32) -> Result<(), WindowError> {
        match self {
            Backend::Gpu(p) => {
                p.resize_buffer(width, height)
                    .map_err(|source| WindowError::StreamTooLarge {
                        width,
                        height,
                        source,
                    })
            }
            Backend::Cpu(c) => {
                c.resize_buffer(width, height);
                Ok(())
            }
        }
    }

    fn resize_surface(&mut self, width: u32, height: u32) -> Result<(), String> {
        match self {
            Backend::Gpu(p) => p.resize_surface(width, height).map_err(|e| e.to_string()),
            Backend::Cpu(c) => c.resize_surface(width, height),
        }
    }

    /// Presents the picture; returns the µs spent scaling on the CPU (0 on the GPU path).
    fn render(&mut self) -> Result<u32, WindowError> {
        match self {
            Backend::Gpu(p) => p.render().map(|()| 0).map_err(WindowError::Render),
            Backend::Cpu(c) => c.present().map_err(WindowError::CpuPresent),
        }
    }

    /// Window position → stream pixel, clamped to the picture (fill scaling on both paths).
    fn window_to_pixel(
        &self,
        window: PhysicalSize<u32>,
        buffer: (u32, u32),
        x: f64,
        y: f64,
    ) -> (i32, i32) {
        match self {
            Backend::Gpu(p) => {
                let (x, y) = p
                    .window_pos_to_pixel((x as f32, y as f32))
                    .unwrap_or_else(|outside| p.clamp_pixel_pos(outside));
                (x as i32, y as i32)
            }
            Backend::Cpu(_) => {
                let (x, y) = fill_to_stream((window.width, window.height), buffer, (x, y));
                (x as i32, y as i32)
            }
        }
    }
}

#[derive(Debug)]
struct App {
    opts: WindowOptions,
    shared: Arc<WindowShared>,
    gfx: Option<Gfx>,
    save_under: SaveUnder,
    show_stats: bool,
    modifiers: ModifiersState,
    /// Keys whose press was a local shortcut: their release is consumed too.
    held_shortcuts: HashSet<PhysicalKey>,
    /// Relative mouse mode (pointer locked to the window, motion sent as deltas).
    pointer_lock: bool,
    /// Fractions of a scroll unit not sent yet.
    scroll_carry: (f64, f64),
    /// Last pointer position sent, stream pixels.
    last_pointer: Option<(i32, i32)>,
    /// A decoded picture is in the buffer (its size is the stream's).
    has_picture: bool,
    /// Window and picture sizes for the pen thread's mapping.
    scale: Arc<ScaleState>,
    /// Pen tablets and jog/shuttle controllers opened for this session.
    extra: Option<ExtraInputs>,
    error: Option<WindowError>,
}

/// A key combination the viewer handles itself instead of sending it to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shortcut {
    Fullscreen,
    Stats,
    PointerLock,
    /// Ctrl+Alt+V: audio mute on/off.
    Mute,
    /// Ctrl+Alt+Plus / Ctrl+Alt+Minus: audio volume ±10 %.
    Volume(i8),
}

fn shortcut(physical: PhysicalKey, logical: &Key, mods: ModifiersState) -> Option<Shortcut> {
    let is = |code: KeyCode, named: NamedKey| {
        physical == PhysicalKey::Code(code) || *logical == Key::Named(named)
    };
    if is(KeyCode::F11, NamedKey::F11) {
        return Some(Shortcut::Fullscreen);
    }
    if is(KeyCode::F3, NamedKey::F3) {
        return Some(Shortcut::Stats);
    }
    let s = physical == PhysicalKey::Code(KeyCode::KeyS)
        || matches!(logical, Key::Character(c) if c.eq_ignore_ascii_case("s"));
    if s && mods.control_key() && mods.alt_key() {
        return Some(Shortcut::Stats);
    }
    let m = physical == PhysicalKey::Code(KeyCode::KeyM)
        || matches!(logical, Key::Character(c) if c.eq_ignore_ascii_case("m"));
    if m && mods.control_key() && mods.alt_key() {
        return Some(Shortcut::PointerLock);
    }
    if mods.control_key() && mods.alt_key() {
        let ch = |c: &str| matches!(logical, Key::Character(x) if x.eq_ignore_ascii_case(c));
        if physical == PhysicalKey::Code(KeyCode::KeyV) || ch("v") {
            return Some(Shortcut::Mute);
        }
        if matches!(
            physical,
            PhysicalKey::Code(KeyCode::Equal | KeyCode::NumpadAdd)
        ) || ch("+")
            || ch("=")
        {
            return Some(Shortcut::Volume(1));
        }
        if matches!(
            physical,
            PhysicalKey::Code(KeyCode::Minus | KeyCode::NumpadSubtract)
        ) || ch("-")
        {
            return Some(Shortcut::Volume(-1));
        }
    }
    None
}

/// Lowest-latency present mode the surface offers (see the module docs for the order).
fn choose_present_mode(available: &[PresentMode]) -> PresentMode {
    [PresentMode::Mailbox, PresentMode::Immediate]
        .into_iter()
        .find(|m| available.contains(m))
        .unwrap_or(PresentMode::Fifo)
}

/// A surface format that stores bytes as they are (no sRGB encoding), if the surface has one.
fn choose_plain_format(formats: &[TextureFormat]) -> Option<TextureFormat> {
    [TextureFormat::Bgra8Unorm, TextureFormat::Rgba8Unorm]
        .into_iter()
        .find(|f| formats.contains(f))
}

/// Builds the renderer for `window` with a placeholder buffer.
///
/// With `plain_surface`, the texture is `Rgba8Unorm` and the surface that format: the stream's
/// bytes are already display-encoded, so they reach the screen untouched (at 1:1 no conversion
/// sits between the buffer and the screen, which a bit-exact lossless tile path will want) and
/// scaling interpolates them as video scalers do.
/// pixels' default, an sRGB texture on an sRGB surface, decodes and re-encodes every sample.
/// On lavapipe (idle machine) the plain path presented 640×360 in 1000×700 in 7.4–9.0 ms p50
/// against 10.1–11.8 ms, and made no clear difference at 1080p; the second build costs ~45 ms
/// once at start-up.
fn build_pixels(
    window: &Arc<Window>,
    plain_surface: Option<TextureFormat>,
) -> Result<Pixels<'static>, WindowError> {
    let size = window.inner_size();
    let surface = SurfaceTexture::new(size.width.max(1), size.height.max(1), window.clone());
    let (bw, bh) = PLACEHOLDER_SIZE;
    let mut builder = PixelsBuilder::new(bw, bh, surface)
        // The picture is opaque: replacing is cheaper than blending (it matters on lavapipe).
        .blend_state(BlendState::REPLACE);
    if let Some(format) = plain_surface {
        builder = builder
            .texture_format(TextureFormat::Rgba8Unorm)
            .surface_texture_format(format);
    }
    Ok(builder.build()?)
}

/// Whether the planes hold a whole `width × height` I420 picture (guards the converter).
fn planes_complete(f: &DecodedFrame) -> bool {
    let (w, h) = (f.width as usize, f.height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let fits = |len: usize, stride: usize, w: usize, h: usize| {
        stride >= w && (h == 0 || len >= stride * (h - 1) + w)
    };
    w > 0
        && h > 0
        && fits(f.y.len(), f.y_stride, w, h)
        && fits(f.u.len(), f.uv_stride, cw, ch)
        && fits(f.v.len(), f.uv_stride, cw, ch)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn micros(d: std::time::Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl App {
    fn new(opts: WindowOptions, shared: Arc<WindowShared>) -> Self {
        App {
            show_stats: opts.show_stats,
            opts,
            shared,
            gfx: None,
            save_under: SaveUnder::default(),
            modifiers: ModifiersState::empty(),
            held_shortcuts: HashSet::new(),
            pointer_lock: false,
            scroll_carry: (0.0, 0.0),
            last_pointer: None,
            has_picture: false,
            scale: Arc::default(),
            extra: None,
            error: None,
        }
    }

    fn fail(&mut self, event_loop: &ActiveEventLoop, e: WindowError) {
        warn!(error = %e, "window closing on error");
        self.error.get_or_insert(e);
        event_loop.exit();
    }

    fn open(&mut self, event_loop: &ActiveEventLoop) -> Result<Gfx, WindowError> {
        let mut attrs = Window::default_attributes().with_title(self.opts.title.clone());
        attrs = match self.opts.initial_size {
            Some((w, h)) => attrs.with_inner_size(PhysicalSize::new(w.max(1), h.max(1))),
            None => attrs.with_inner_size(LogicalSize::new(1280.0, 720.0)),
        };
        if self.opts.fullscreen {
            attrs = attrs.with_fullscreen(Some(Fullscreen::Borderless(None)));
        }
        let window = Arc::new(
            event_loop
                .create_window(attrs)
                .map_err(WindowError::CreateWindow)?,
        );
        let init_started = Instant::now();
        let backend = match self.opts.renderer {
            Renderer::Cpu => open_cpu(&window)?,
            Renderer::Gpu => {
                Backend::Gpu(Box::new(open_gpu(&window, build_pixels(&window, None)?)?))
            }
            Renderer::Auto => match build_pixels(&window, None) {
                Ok(p) if p.adapter().get_info().device_type != DeviceType::Cpu => {
                    Backend::Gpu(Box::new(open_gpu(&window, p)?))
                }
                Ok(p) => {
                    let adapter = p.adapter().get_info().name;
                    info!(%adapter, "software graphics adapter: presenting from the CPU");
                    drop(p);
                    open_cpu(&window)?
                }
                Err(e) => {
                    info!(error = %e, "no usable graphics adapter: presenting from the CPU");
                    open_cpu(&window).map_err(|_| e)?
                }
            },
        };
        debug!(
            init_ms = init_started.elapsed().as_millis() as u64,
            "renderer built"
        );
        let mut gfx = Gfx {
            window,
            backend,
            buffer: PLACEHOLDER_SIZE,
        };
        fill_opaque_black(gfx.backend.frame_mut());
        Ok(gfx)
    }
}

/// Opens the CPU framebuffer on `window`.
fn open_cpu(window: &Arc<Window>) -> Result<Backend, WindowError> {
    let c = CpuPresenter::new(window.clone(), PLACEHOLDER_SIZE).map_err(WindowError::CpuPresent)?;
    info!("renderer ready: CPU framebuffer (softbuffer)");
    Ok(Backend::Cpu(c))
}

/// Finishes setting up the GPU renderer from the first `pixels` built on `window`.
fn open_gpu(
    window: &Arc<Window>,
    mut pixels: Pixels<'static>,
) -> Result<Pixels<'static>, WindowError> {
    let size = window.inner_size();
    // Prefer a plain (non-sRGB) surface when there is one; see `build_pixels`. The format
    // list is only known once a surface exists, hence the second build.
    // (pixels itself always picks an sRGB surface format.)
    let formats = &pixels.context().surface_capabilities.formats;
    if let Some(plain) = choose_plain_format(formats) {
        drop(pixels);
        pixels = build_pixels(window, Some(plain))?;
    }
    debug!(surface_format = ?pixels.surface_texture_format(), "surface format");
    let info = pixels.adapter().get_info();
    info!(
        adapter = %info.name,
        backend = ?info.backend,
        device_type = ?info.device_type,
        "renderer ready"
    );
    let available = pixels.context().surface_capabilities.present_modes.clone();
    let mode = choose_present_mode(&available);
    pixels.set_present_mode(mode);
    debug!(chosen = ?mode, ?available, "present mode");
    pixels.set_scaling_mode(ScalingMode::Fill);
    // set_scaling_mode only takes effect with the next resize: apply it now.
    if size.width > 0 && size.height > 0 {
        if let Err(e) = pixels.resize_surface(size.width, size.height) {
            warn!(error = %e, "window size not supported by the device");
        }
    }
    Ok(pixels)
}

impl App {
    /// Composes and presents: the newest frame if there is one (else the last picture with the
    /// overlays redrawn), then the cursor and the stats panel.
    fn redraw(&mut self) -> Result<(), WindowError> {
        let Some(gfx) = self.gfx.as_mut() else {
            return Ok(());
        };
        let started = Instant::now();
        let frame = match self.shared.frame.take() {
            Some(f) if !planes_complete(&f) => {
                warn!(
                    frame = f.frame,
                    width = f.width,
                    height = f.height,
                    "decoded frame with incomplete planes dropped"
                );
                None
            }
            other => other,
        };
        if let Some(f) = &frame {
            if (f.width, f.height) != gfx.buffer {
                gfx.backend.resize_buffer(f.width, f.height)?;
                debug!(width = f.width, height = f.height, "stream size changed");
                gfx.buffer = (f.width, f.height);
                let size = gfx.window.inner_size();
                self.scale.set((size.width, size.height), gfx.buffer);
            }
            convert::i420_to_rgba(f, gfx.backend.frame_mut());
            self.has_picture = true;
            self.save_under.forget();
        }
        let (bw, bh) = gfx.buffer;
        // Invariant: the picture buffer is always bw × bh × 4 bytes (both backends size it so).
        let mut canvas =
            Canvas::new(gfx.backend.frame_mut(), bw, bh).expect("picture buffer matches its size");
        if frame.is_none() {
            self.save_under.restore(&mut canvas);
        }
        draw_cursor(
            &lock(&self.shared.cursor),
            &mut canvas,
            &mut self.save_under,
        );
        if self.show_stats {
            let panel = StatsPanel::layout(&lock(&self.shared.stats), bh);
            if let Some(r) = panel.rect(&canvas) {
                self.save_under.save(&canvas, r);
                panel.draw(&mut canvas);
            }
        }
        let composed = Instant::now();
        let scale_us = gfx.backend.render()?;
        let presented_at = Instant::now();
        if let Some(f) = frame {
            let record = PresentRecord {
                frame: f.frame,
                presented_at,
                convert_us: micros(composed - started),
                present_us: micros(presented_at - composed),
                scale_us,
            };
            trace!(
                frame = f.frame,
                convert_us = record.convert_us,
                present_us = record.present_us,
                scale_us = record.scale_us,
                "presented"
            );
            self.shared.push_presented(record);
        }
        Ok(())
    }

    /// Handles a local shortcut; true when the key event is consumed (never sent to the host).
    fn handle_shortcut(&mut self, event: &KeyEvent) -> bool {
        match event.state {
            ElementState::Released => self.held_shortcuts.remove(&event.physical_key),
            ElementState::Pressed => {
                let Some(s) = shortcut(event.physical_key, &event.logical_key, self.modifiers)
                else {
                    return false;
                };
                self.held_shortcuts.insert(event.physical_key);
                if !event.repeat {
                    self.apply(s);
                }
                true
            }
        }
    }

    fn apply(&mut self, s: Shortcut) {
        let Some(gfx) = &self.gfx else { return };
        match s {
            Shortcut::Fullscreen => {
                let next = match gfx.window.fullscreen() {
                    Some(_) => None,
                    None => Some(Fullscreen::Borderless(None)),
                };
                debug!(fullscreen = next.is_some(), "toggle fullscreen");
                gfx.window.set_fullscreen(next);
            }
            Shortcut::Stats => {
                self.show_stats = !self.show_stats;
                debug!(show = self.show_stats, "toggle stats overlay");
                gfx.window.request_redraw();
            }
            Shortcut::PointerLock => self.set_pointer_lock(!self.pointer_lock),
            Shortcut::Mute => {
                if let Some(a) = lock(&self.shared.audio).as_ref() {
                    info!(muted = a.toggle_mute(), "audio mute (Ctrl+Alt+V toggles)");
                }
            }
            Shortcut::Volume(step) => {
                if let Some(a) = lock(&self.shared.audio).as_ref() {
                    let (v, _) = a.volume();
                    let v = ((v * 10.0).round() + step as f32).clamp(0.0, 40.0) / 10.0;
                    a.set_volume(v);
                    info!(volume_percent = (v * 100.0).round(), "audio volume");
                }
            }
        }
    }

    /// Relative mouse mode on or off: the pointer is locked (or, where locking is not
    /// supported, confined) to the window and hidden; motion goes out as deltas.
    fn set_pointer_lock(&mut self, on: bool) {
        let Some(gfx) = &self.gfx else { return };
        if on {
            let grabbed = gfx
                .window
                .set_cursor_grab(CursorGrabMode::Locked)
                .or_else(|_| gfx.window.set_cursor_grab(CursorGrabMode::Confined));
            if let Err(e) = grabbed {
                warn!(error = %e, "pointer lock not available");
                return;
            }
            gfx.window.set_cursor_visible(false);
        } else {
            let _ = gfx.window.set_cursor_grab(CursorGrabMode::None);
            gfx.window.set_cursor_visible(true);
        }
        info!(on, "relative mouse mode (Ctrl+Alt+M toggles)");
        self.pointer_lock = on;
    }

    /// Opens pen tablets and jog/shuttle controllers when the host takes that input.
    fn start_devices(&mut self, gfx: &Gfx) {
        use sightline_protocol::msg::InputKinds;
        let kinds = match lock(&self.shared.input).as_ref() {
            Some(tx) if !self.opts.view_only => tx.kinds(),
            _ => return,
        };
        let size = gfx.window.inner_size();
        self.scale.set((size.width, size.height), gfx.buffer);
        let x11_window = x11_window_id(&gfx.window);
        let shared = self.shared.clone();
        let send = Arc::new(move |ev: InputEvent| {
            if let Some(tx) = lock(&shared.input).as_ref() {
                tx.send(ev);
            }
        });
        self.extra = Some(ExtraInputs::start(
            x11_window,
            self.scale.clone(),
            kinds.contains(InputKinds::PEN),
            kinds.contains(InputKinds::JOG_SHUTTLE),
            send,
        ));
    }

    /// Sends input to the host unless the session is view only or not up yet.
    fn send(&self, event: InputEvent) {
        if self.opts.view_only {
            return;
        }
        if let Some(tx) = lock(&self.shared.input).as_ref() {
            tx.send(event);
        }
    }
}

/// The X11 window id behind a winit window (None on other platforms or on Wayland).
fn x11_window_id(window: &Window) -> Option<u32> {
    use winit::raw_window_handle::{HasWindowHandle, RawWindowHandle};
    match window.window_handle().ok()?.as_raw() {
        RawWindowHandle::Xlib(h) => u32::try_from(h.window).ok(),
        RawWindowHandle::Xcb(h) => Some(h.window.get()),
        _ => None,
    }
}

fn draw_cursor(cursor: &CursorOverlay, canvas: &mut Canvas<'_>, save_under: &mut SaveUnder) {
    if !cursor.visible || cursor.rgba.is_empty() {
        return;
    }
    let x = i64::from(cursor.x) - i64::from(cursor.hot_x);
    let y = i64::from(cursor.y) - i64::from(cursor.hot_y);
    if let Some(r) = canvas.clip(x, y, cursor.width, cursor.height) {
        save_under.save(canvas, r);
        canvas.blend_premultiplied(x, y, &cursor.rgba, cursor.width, cursor.height);
    }
}

fn fill_opaque_black(buf: &mut [u8]) {
    for px in buf.chunks_exact_mut(4) {
        px.copy_from_slice(&[0, 0, 0, 255]);
    }
}

impl ApplicationHandler<AppEvent> for App {
    fn device_event(&mut self, _: &ActiveEventLoop, _: DeviceId, event: DeviceEvent) {
        if let (true, DeviceEvent::MouseMotion { delta }) = (self.pointer_lock, event) {
            let (dx, dy) = (delta.0.round() as i32, delta.1.round() as i32);
            if dx != 0 || dy != 0 {
                self.send(InputEvent::PointerRelative { dx, dy });
            }
        }
    }

    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.gfx.is_some() {
            return;
        }
        match self.open(event_loop) {
            Ok(gfx) => {
                // A frame may already be waiting.
                gfx.window.request_redraw();
                self.start_devices(&gfx);
                self.gfx = Some(gfx);
            }
            Err(e) => self.fail(event_loop, e),
        }
    }

    fn user_event(&mut self, event_loop: &ActiveEventLoop, event: AppEvent) {
        match event {
            AppEvent::FrameReady => {
                if let Some(gfx) = &self.gfx {
                    gfx.window.request_redraw();
                }
            }
            AppEvent::SessionEnded(reason) => {
                info!(%reason, "session ended; closing the window");
                event_loop.exit();
            }
        }
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        match event {
            WindowEvent::CloseRequested => {
                debug!("window closed by the user");
                event_loop.exit();
            }
            WindowEvent::Resized(size) => {
                let Some(gfx) = self.gfx.as_mut() else { return };
                if size.width == 0 || size.height == 0 {
                    return;
                }
                if let Err(e) = gfx.backend.resize_surface(size.width, size.height) {
                    warn!(error = %e, width = size.width, height = size.height, "resize ignored");
                }
                self.scale.set((size.width, size.height), gfx.buffer);
                gfx.window.request_redraw();
            }
            WindowEvent::RedrawRequested => {
                if let Err(e) = self.redraw() {
                    self.fail(event_loop, e);
                }
            }
            WindowEvent::ModifiersChanged(m) => self.modifiers = m.state(),
            WindowEvent::KeyboardInput { event, .. } if self.handle_shortcut(&event) => {
                // A local shortcut: consumed, never sent to the host.
            }
            WindowEvent::KeyboardInput { event, .. } => {
                // The host's own auto-repeat repeats held keys; local repeats are not sent.
                if event.repeat {
                    return;
                }
                if let Some(k) = keyboard::key_event(
                    event.physical_key,
                    &event.logical_key,
                    event.location,
                    event.state,
                    self.modifiers,
                ) {
                    self.send(InputEvent::Key(k));
                }
            }
            WindowEvent::CursorMoved { position, .. } if !self.pointer_lock => {
                let Some(gfx) = &self.gfx else { return };
                // Until a picture arrived the scaling (and so the position) is unknown.
                if !self.has_picture || self.extra.as_ref().is_some_and(|e| e.pen_in_range()) {
                    return;
                }
                let p = gfx.backend.window_to_pixel(
                    gfx.window.inner_size(),
                    gfx.buffer,
                    position.x,
                    position.y,
                );
                if self.last_pointer != Some(p) {
                    self.last_pointer = Some(p);
                    self.send(InputEvent::PointerMove { x: p.0, y: p.1 });
                }
            }
            WindowEvent::MouseInput { state, button, .. } => {
                if let Some(button) = keyboard::mouse_button(button) {
                    self.send(InputEvent::Button {
                        button,
                        pressed: state == ElementState::Pressed,
                    });
                }
            }
            WindowEvent::MouseWheel { delta, .. } => {
                if let Some((dx, dy)) = keyboard::scroll(delta, &mut self.scroll_carry) {
                    self.send(InputEvent::Scroll { dx, dy });
                }
            }
            WindowEvent::Focused(false) => {
                // Keys released while another window has focus never reach us: the host lets
                // go of everything now rather than keep a key held.
                self.send(InputEvent::ReleaseAll);
                if self.pointer_lock {
                    self.set_pointer_lock(false);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_protocol::msg::{ColourMatrix, ColourRange};

    #[test]
    fn present_mode_prefers_mailbox_then_immediate_then_fifo() {
        use PresentMode::*;
        assert_eq!(choose_present_mode(&[Fifo, Immediate, Mailbox]), Mailbox);
        assert_eq!(choose_present_mode(&[Fifo, Immediate]), Immediate);
        assert_eq!(choose_present_mode(&[Fifo, FifoRelaxed]), Fifo);
        assert_eq!(choose_present_mode(&[]), Fifo);
    }

    #[test]
    fn plain_surface_format_when_offered() {
        use TextureFormat::*;
        assert_eq!(
            choose_plain_format(&[Bgra8UnormSrgb, Bgra8Unorm]),
            Some(Bgra8Unorm)
        );
        assert_eq!(
            choose_plain_format(&[Rgba8UnormSrgb, Rgba8Unorm]),
            Some(Rgba8Unorm)
        );
        assert_eq!(choose_plain_format(&[Bgra8UnormSrgb, Rgb10a2Unorm]), None);
    }

    #[test]
    fn shortcuts() {
        let none = ModifiersState::empty();
        let ctrl_alt = ModifiersState::CONTROL | ModifiersState::ALT;
        let f = |code, key: Key, mods| shortcut(PhysicalKey::Code(code), &key, mods);
        assert_eq!(
            f(KeyCode::F11, Key::Named(NamedKey::F11), none),
            Some(Shortcut::Fullscreen)
        );
        assert_eq!(
            f(KeyCode::F3, Key::Named(NamedKey::F3), none),
            Some(Shortcut::Stats)
        );
        assert_eq!(
            f(KeyCode::KeyS, Key::Character("s".into()), ctrl_alt),
            Some(Shortcut::Stats)
        );
        assert_eq!(f(KeyCode::KeyS, Key::Character("s".into()), none), None);
        assert_eq!(
            f(
                KeyCode::KeyS,
                Key::Character("s".into()),
                ModifiersState::CONTROL
            ),
            None
        );
        assert_eq!(f(KeyCode::KeyA, Key::Character("a".into()), ctrl_alt), None);
    }

    fn frame(w: u32, h: u32) -> DecodedFrame {
        let (cw, ch) = (w.div_ceil(2) as usize, h.div_ceil(2) as usize);
        DecodedFrame {
            width: w,
            height: h,
            format: crate::frame::PictureFormat::I420,
            y: vec![16; w as usize * h as usize],
            u: vec![128; cw * ch],
            v: vec![128; cw * ch],
            y_stride: w as usize,
            uv_stride: cw,
            matrix: ColourMatrix::Bt709,
            range: ColourRange::Limited,
            frame: 1,
            host_times: None,
            first_packet_us: 0,
            reassembled_us: 0,
            decoded_us: 0,
            decoded_at: Instant::now(),
        }
    }

    #[test]
    fn incomplete_planes_are_detected() {
        assert!(planes_complete(&frame(5, 3)));
        let mut f = frame(6, 4);
        f.v.pop();
        assert!(!planes_complete(&f));
        let mut f = frame(6, 4);
        f.y_stride = 5;
        assert!(!planes_complete(&f));
        assert!(!planes_complete(&frame(0, 4)));
    }

    #[test]
    fn pending_presents_are_bounded() {
        let shared = WindowShared::new();
        let now = Instant::now();
        for i in 0..(MAX_PENDING_PRESENTS as u32 + 10) {
            shared.push_presented(PresentRecord {
                frame: i,
                presented_at: now,
                convert_us: 0,
                present_us: 0,
                scale_us: 0,
            });
        }
        let v = shared.drain_presented();
        assert_eq!(v.len(), MAX_PENDING_PRESENTS);
        assert_eq!(v[0].frame, 10);
        assert!(shared.drain_presented().is_empty());
    }
}
