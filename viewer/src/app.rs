//! The viewer's window: one winit [`ApplicationHandler`] that owns the window and the renderer
//! ([`crate::render`]), woken by the network/decode thread through an [`EventLoopProxy`].
//!
//! ```text
//!  network/decode thread                         window thread (this module)
//!  ─────────────────────                         ───────────────────────────
//!  shared.frame.put(frame)  ──┐                  FrameReady ─► request_redraw
//!  shared.cursor / .stats   ──┼─ Arc<WindowShared>            │ (several FrameReady → one redraw)
//!  proxy.send_event(FrameReady)                   RedrawRequested:
//!                             │                     take newest frame (latest wins, never a queue)
//!  drain shared.presented ◄───┘                     planes → GPU textures (shader converts)
//!  (present stage of the latency record)              or → CPU framebuffer (damage only)
//!                                                   cursor + stats overlay, present
//!                                                   push PresentRecord
//! ```
//!
//! Decisions, written down (alacritty's rule: pacing is a decision, not a default):
//!
//! - **No render loop.** The loop waits (`ControlFlow::Wait`); it draws only when a frame
//!   arrives, the window is resized or exposed, or the overlay is toggled. `FrameReady` with an
//!   empty slot (e.g. only the cursor or the stats changed) redraws the overlays over the last
//!   picture without converting it again.
//! - **Renderer** ([`crate::render`], `--renderer auto|gpu|cpu`): on a hardware adapter the
//!   GPU path ([`crate::present_gpu`]) uploads the planes and converts and scales in a shader
//!   (present mode Mailbox, else Immediate, else Fifo); on a software adapter (lavapipe: 20–50 ms
//!   a 1080p frame) or none, the CPU path ([`crate::present_cpu`]) converts straight into a
//!   softbuffer framebuffer and repaints only what the host's damage list says changed. Both
//!   scale with the same fill mapping (aspect kept, centred, black bars) that pointer input
//!   uses, accept 8/10-bit 4:2:0/4:4:4 pictures (10-bit dithered on 8-bit surfaces) and draw
//!   the cursor and stats panel as overlays ([`Sprite`]).
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

use crate::frame::{CursorOverlay, DecodedFrame, LatestSlot, StatsSnapshot};
use crate::input::devices::{fill_to_stream, ExtraInputs, ScaleState};
use crate::input::keyboard;
use crate::net::InputSender;
use crate::overlay::{Sprite, StatsPanel};
use crate::render::{planes_complete, ActivePath, Backend, PresentStats, RendererInfo};
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
    /// Converting the picture into the framebuffer (CPU path) or uploading its planes (GPU
    /// path), plus drawing the overlays, in µs.
    pub convert_us: u32,
    /// Showing it until the display server (CPU path) or the GPU finished, in µs.
    pub present_us: u32,
    /// Which path presented it.
    pub path: ActivePath,
    /// The whole picture was converted or uploaded (no usable damage list).
    pub full: bool,
    /// Damage rectangles used instead (0 with `full`).
    pub rects: u16,
    /// Picture pixels converted or uploaded.
    pub pixels: u32,
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
    /// The present path, once the window has opened it.
    pub renderer: Mutex<Option<RendererInfo>>,
    /// A line shown over the picture and in the title while the link is down
    /// ("reconnecting…"); `None` while it is up.
    pub link_banner: Mutex<Option<String>>,
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
            renderer: Mutex::default(),
            link_banner: Mutex::default(),
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

    /// The present path the window chose (`None` until it opened).
    pub fn renderer(&self) -> Option<RendererInfo> {
        lock(&self.renderer).clone()
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

/// The present path: wgpu through pixels (conversion in a shader), or a CPU framebuffer through
/// softbuffer (see [`crate::render`]).
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

/// The picture size assumed for input mapping before the first frame (nothing is sent then).
const NO_PICTURE: (u32, u32) = (640, 360);

/// The window and its renderer.
#[derive(Debug)]
struct Gfx {
    window: Arc<Window>,
    backend: Backend,
    /// The picture size (the stream's), once a frame came.
    picture: Option<(u32, u32)>,
}

#[derive(Debug)]
struct App {
    opts: WindowOptions,
    shared: Arc<WindowShared>,
    gfx: Option<Gfx>,
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
    /// The present path, once open.
    renderer: Option<RendererInfo>,
    /// Present figures for the stats panel.
    present_totals: PresentTotals,
    /// The link banner shown (and put in the title) at the last redraw.
    link_banner: Option<String>,
}

/// Frames presented and how, for the stats panel.
#[derive(Debug, Default)]
struct PresentTotals {
    frames: u64,
    damage_frames: u64,
    last_convert_us: u32,
    last_present_us: u32,
}

/// The size in window pixels of the picture shown (scaled to fit, aspect kept) in a window of
/// `size`; the whole window before the first picture.
fn shown_size(size: winit::dpi::PhysicalSize<u32>, picture: Option<(u32, u32)>) -> (u32, u32) {
    match picture {
        Some((pw, ph)) => {
            let s = (f64::from(size.width) / f64::from(pw.max(1)))
                .min(f64::from(size.height) / f64::from(ph.max(1)));
            ((f64::from(pw) * s) as u32, (f64::from(ph) * s) as u32)
        }
        None => (size.width, size.height),
    }
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl App {
    fn new(opts: WindowOptions, shared: Arc<WindowShared>) -> Self {
        App {
            show_stats: opts.show_stats,
            opts,
            shared,
            gfx: None,
            modifiers: ModifiersState::empty(),
            held_shortcuts: HashSet::new(),
            pointer_lock: false,
            scroll_carry: (0.0, 0.0),
            last_pointer: None,
            has_picture: false,
            scale: Arc::default(),
            extra: None,
            error: None,
            renderer: None,
            present_totals: PresentTotals::default(),
            link_banner: None,
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
        let (backend, info) = Backend::open(&window, self.opts.renderer)?;
        info!(renderer = info.name(), detail = %info.detail, "present path chosen");
        *lock(&self.shared.renderer) = Some(info.clone());
        self.renderer = Some(info);
        Ok(Gfx {
            window,
            backend,
            picture: None,
        })
    }
}

impl App {
    /// Presents the newest frame if there is one (else the last picture with the overlays
    /// redrawn), with the cursor and the stats panel on top.
    fn redraw(&mut self) -> Result<(), WindowError> {
        let extra = self.renderer_lines();
        let Some(gfx) = self.gfx.as_mut() else {
            return Ok(());
        };
        let frame = match self.shared.frame.take() {
            Some(f) if !planes_complete(&f) => {
                warn!(
                    frame = f.frame,
                    width = f.width,
                    height = f.height,
                    format = ?f.format,
                    "decoded frame with incomplete planes dropped"
                );
                None
            }
            other => other,
        };
        let number = frame.as_ref().map(|f| f.frame);
        if let Some(f) = &frame {
            if Some((f.width, f.height)) != gfx.picture {
                debug!(width = f.width, height = f.height, format = ?f.format, "stream size changed");
                gfx.picture = Some((f.width, f.height));
                let size = gfx.window.inner_size();
                self.scale
                    .set((size.width, size.height), (f.width, f.height));
            }
            self.has_picture = true;
        }
        let mut overlays = Vec::with_capacity(2);
        overlays.extend(Sprite::cursor(&lock(&self.shared.cursor)));
        if self.show_stats {
            let (_, shown_height) = shown_size(gfx.window.inner_size(), gfx.picture);
            let panel = StatsPanel::layout_with(&lock(&self.shared.stats), &extra, shown_height);
            overlays.push(panel.sprite());
        }
        let banner = lock(&self.shared.link_banner).clone();
        if let Some(text) = &banner {
            let (w, h) = shown_size(gfx.window.inner_size(), gfx.picture);
            overlays.push(crate::overlay::banner_sprite(text, w, h));
        }
        if banner != self.link_banner {
            let title = match &banner {
                Some(_) => format!("{} — reconnecting…", self.opts.title),
                None => self.opts.title.clone(),
            };
            gfx.window.set_title(&title);
            self.link_banner = banner;
        }
        let stats = gfx.backend.present(frame, &overlays)?;
        let presented_at = Instant::now();
        self.note_present(&stats, number.is_some());
        if let Some(frame) = number {
            let record = PresentRecord {
                frame,
                presented_at,
                convert_us: stats.convert_us,
                present_us: stats.present_us,
                path: self.renderer.as_ref().map_or(ActivePath::Cpu, |r| r.path),
                full: stats.full,
                rects: stats.rects,
                pixels: stats.pixels,
            };
            trace!(
                frame,
                convert_us = record.convert_us,
                present_us = record.present_us,
                full = record.full,
                rects = record.rects,
                "presented"
            );
            self.shared.push_presented(record);
        }
        Ok(())
    }

    /// Keeps the figures the stats panel shows about the present path.
    fn note_present(&mut self, s: &PresentStats, new_frame: bool) {
        if !new_frame {
            return;
        }
        let t = &mut self.present_totals;
        t.frames += 1;
        if !s.full {
            t.damage_frames += 1;
        }
        t.last_convert_us = s.convert_us;
        t.last_present_us = s.present_us;
    }

    /// The stats panel's lines about the renderer.
    fn renderer_lines(&self) -> Vec<String> {
        let Some(r) = &self.renderer else {
            return Vec::new();
        };
        let t = &self.present_totals;
        vec![
            format!("renderer {}", r.name()),
            format!(
                "present {:.2}+{:.2} ms",
                f64::from(t.last_convert_us) / 1e3,
                f64::from(t.last_present_us) / 1e3
            ),
            format!("partial updates {}/{}", t.damage_frames, t.frames),
        ]
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
        self.scale
            .set((size.width, size.height), gfx.picture.unwrap_or(NO_PICTURE));
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
                self.scale
                    .set((size.width, size.height), gfx.picture.unwrap_or(NO_PICTURE));
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
                let size = gfx.window.inner_size();
                let picture = gfx.picture.unwrap_or(NO_PICTURE);
                let (x, y) =
                    fill_to_stream((size.width, size.height), picture, (position.x, position.y));
                let p = (x as i32, y as i32);
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
                path: ActivePath::Cpu,
                full: true,
                rects: 0,
                pixels: 0,
            });
        }
        let v = shared.drain_presented();
        assert_eq!(v.len(), MAX_PENDING_PRESENTS);
        assert_eq!(v[0].frame, 10);
        assert!(shared.drain_presented().is_empty());
    }
}
