//! Helpers for viewer-window tests on a private Xvfb: known pictures in every picture format,
//! screenshots of the root window, where the window is, and a driver thread that feeds frames
//! to the window and waits for their present records.
//!
//! winit allows one event loop per process: each test binary runs one window ([`run`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use sightline_protocol::colour::YuvCoefficients;
use sightline_protocol::damage::DamageRect;
use sightline_protocol::msg::{ColourMatrix, ColourRange};
use sightline_viewer::app::{run_window, AppEvent, PresentRecord, WindowOptions, WindowShared};
use sightline_viewer::frame::{DecodedFrame, PictureFormat};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{AtomEnum, ConnectionExt as _, ImageFormat, Window};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::rust_connection::RustConnection;

use crate::xvfb::{private_dir, Xvfb};

/// SMPTE-style 75 % bars, left to right: white, yellow, cyan, green, magenta, red, blue, black.
pub const BARS: [[u8; 3]; 8] = [
    [191, 191, 191],
    [191, 191, 0],
    [0, 191, 191],
    [0, 191, 0],
    [191, 0, 191],
    [191, 0, 0],
    [0, 0, 191],
    [0, 0, 0],
];
/// Names of [`BARS`].
pub const BAR_NAMES: [&str; 8] = [
    "white", "yellow", "cyan", "green", "magenta", "red", "blue", "black",
];
/// Allowed difference per channel in a colour patch check.
pub const TOLERANCE: i32 = 12;

/// Y, Cb, Cr codes of `rgb` (0..=255) at `bits` (BT.709 limited), rounded.
pub fn ycbcr(rgb: [u8; 3], bits: u8) -> [u16; 3] {
    let c = YuvCoefficients::new(ColourMatrix::Bt709, ColourRange::Limited, bits);
    let [r, g, b] = rgb.map(|v| f32::from(v) / 255.0);
    let (y, cb, cr) = c.rgb_to_ycbcr(r, g, b);
    let max = f32::from((1u16 << bits) - 1);
    [y, cb, cr].map(|v| v.round().clamp(0.0, max) as u16)
}

/// A `w × h` picture in `format` whose pixel (x, y) has the colour `colour(x, y)`, BT.709
/// limited range (chroma of a 4:2:0 picture taken at the block's top-left pixel).
pub fn picture(
    w: u32,
    h: u32,
    format: PictureFormat,
    number: u32,
    colour: impl Fn(u32, u32) -> [u8; 3],
) -> DecodedFrame {
    let bits = format.bit_depth();
    let b = format.bytes_per_sample();
    let (cw, ch) = format.chroma_size(w, h);
    let sub = u32::from(format.is_420());
    let put = |plane: &mut Vec<u8>, v: u16| plane.extend_from_slice(&v.to_le_bytes()[..b]);
    let (mut y, mut u, mut v) = (Vec::new(), Vec::new(), Vec::new());
    for j in 0..h {
        for i in 0..w {
            put(&mut y, ycbcr(colour(i, j), bits)[0]);
        }
    }
    for j in 0..ch {
        for i in 0..cw {
            let c = ycbcr(colour(i << sub, j << sub), bits);
            put(&mut u, c[1]);
            put(&mut v, c[2]);
        }
    }
    DecodedFrame {
        width: w,
        height: h,
        format,
        y,
        u,
        v,
        y_stride: w as usize * b,
        uv_stride: cw as usize * b,
        matrix: ColourMatrix::Bt709,
        range: ColourRange::Limited,
        frame: number,
        damage: None,
        host_times: None,
        first_packet_us: 0,
        reassembled_us: 0,
        decoded_us: 0,
        decoded_at: Instant::now(),
    }
}

/// The eight bars across a `w × h` picture in `format`.
pub fn bars_frame(w: u32, h: u32, format: PictureFormat, number: u32) -> DecodedFrame {
    picture(w, h, format, number, |x, _| BARS[(x * 8 / w) as usize])
}

/// The bars (even `i`) or the bars mirrored (odd `i`): consecutive frames differ everywhere.
pub fn alternating(w: u32, h: u32, i: usize) -> DecodedFrame {
    if i.is_multiple_of(2) {
        bars_frame(w, h, PictureFormat::I420, 0)
    } else {
        picture(w, h, PictureFormat::I420, 0, |x, _| {
            BARS[7 - (x * 8 / w) as usize]
        })
    }
}

/// The root window read back as RGB.
#[derive(Debug, Clone)]
pub struct Shot {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// `width × height` R, G, B.
    pub rgb: Vec<u8>,
}

impl Shot {
    /// Reads the `width × height` top-left of the root (a depth-24 screen).
    pub fn take(
        conn: &RustConnection,
        root: Window,
        (width, height): (u32, u32),
    ) -> Result<Shot, String> {
        let reply = conn
            .get_image(
                ImageFormat::Z_PIXMAP,
                root,
                0,
                0,
                width as u16,
                height as u16,
                !0,
            )
            .map_err(|e| e.to_string())?
            .reply()
            .map_err(|e| e.to_string())?;
        if reply.depth != 24 || reply.data.len() != (width * height * 4) as usize {
            return Err(format!(
                "unexpected root image: depth {} with {} bytes",
                reply.depth,
                reply.data.len()
            ));
        }
        // Depth 24 at 32 bits per pixel, little-endian: B, G, R, X.
        let rgb = reply
            .data
            .chunks_exact(4)
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect();
        Ok(Shot { width, height, rgb })
    }

    /// The pixel at (`x`, `y`), clamped to the screen.
    pub fn px(&self, x: i32, y: i32) -> [u8; 3] {
        let (x, y) = (
            x.clamp(0, self.width as i32 - 1),
            y.clamp(0, self.height as i32 - 1),
        );
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// Every pixel of the 5×5 patch around (`x`, `y`) within [`TOLERANCE`] of `want`.
    pub fn check_patch(&self, x: i32, y: i32, want: [u8; 3], what: &str) -> Result<(), String> {
        for dy in -2..=2 {
            for dx in -2..=2 {
                let got = self.px(x + dx, y + dy);
                if (0..3).any(|c| (i32::from(got[c]) - i32::from(want[c])).abs() > TOLERANCE) {
                    return Err(format!(
                        "{what} at ({}, {}): got {got:?}, want {want:?} ±{TOLERANCE}",
                        x + dx,
                        y + dy
                    ));
                }
            }
        }
        Ok(())
    }

    /// Writes a PNG (through ImageMagick) or, without it, the PPM; returns the path.
    pub fn save(&self, dir: &Path, name: &str) -> PathBuf {
        let ppm = dir.join(format!("{name}.ppm"));
        let mut f = std::fs::File::create(&ppm).expect("create ppm");
        write!(f, "P6\n{} {}\n255\n", self.width, self.height).expect("write ppm");
        f.write_all(&self.rgb).expect("write ppm");
        drop(f);
        let png = dir.join(format!("{name}.png"));
        let converted = Command::new("/usr/bin/convert")
            .arg(&ppm)
            .arg(&png)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if converted {
            let _ = std::fs::remove_file(&ppm);
            png
        } else {
            ppm
        }
    }
}

/// Where the window is on the root, found by its title.
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    /// The X window.
    pub id: Window,
    /// Left edge on the root.
    pub x: i32,
    /// Top edge on the root.
    pub y: i32,
    /// Inner width.
    pub width: u32,
    /// Inner height.
    pub height: u32,
}

impl Placement {
    /// Finds the top-level window titled `title`.
    pub fn find(conn: &RustConnection, root: Window, title: &str) -> Result<Placement, String> {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        let net_wm_name = conn
            .intern_atom(false, b"_NET_WM_NAME")
            .map_err(|x| e(&x))?
            .reply()
            .map_err(|x| e(&x))?
            .atom;
        let tree = conn
            .query_tree(root)
            .map_err(|x| e(&x))?
            .reply()
            .map_err(|x| e(&x))?;
        for &w in &tree.children {
            for prop in [net_wm_name, AtomEnum::WM_NAME.into()] {
                let Ok(cookie) = conn.get_property(false, w, prop, AtomEnum::ANY, 0, 256) else {
                    continue;
                };
                let Ok(reply) = cookie.reply() else { continue };
                if reply.value != title.as_bytes() {
                    continue;
                }
                let geo = conn
                    .get_geometry(w)
                    .map_err(|x| e(&x))?
                    .reply()
                    .map_err(|x| e(&x))?;
                let pos = conn
                    .translate_coordinates(w, root, 0, 0)
                    .map_err(|x| e(&x))?
                    .reply()
                    .map_err(|x| e(&x))?;
                return Ok(Placement {
                    id: w,
                    x: i32::from(pos.dst_x),
                    y: i32::from(pos.dst_y),
                    width: u32::from(geo.width),
                    height: u32::from(geo.height),
                });
            }
        }
        Err(format!("no top-level window titled {title:?}"))
    }

    /// Screen position of stream pixel (`sx`, `sy`) for a `sw × sh` stream fitted into the
    /// window with its aspect ratio kept and centred.
    pub fn map(&self, (sw, sh): (u32, u32), sx: f64, sy: f64) -> (i32, i32) {
        let scale =
            (f64::from(self.width) / f64::from(sw)).min(f64::from(self.height) / f64::from(sh));
        let ox = (f64::from(self.width) - f64::from(sw) * scale) / 2.0;
        let oy = (f64::from(self.height) - f64::from(sh) * scale) / 2.0;
        (
            self.x + (ox + sx * scale).floor() as i32,
            self.y + (oy + sy * scale).floor() as i32,
        )
    }
}

/// Checks the centre of each bar and, when the picture is letterboxed, the black bands.
pub fn check_bars(shot: &Shot, win: Placement, stream: (u32, u32)) -> Result<(), String> {
    let mut errors = Vec::new();
    for (i, want) in BARS.iter().enumerate() {
        let sx = (i as f64 + 0.5) * f64::from(stream.0) / 8.0;
        let (x, y) = win.map(stream, sx, f64::from(stream.1) / 2.0);
        if let Err(e) = shot.check_patch(x, y, *want, BAR_NAMES[i]) {
            errors.push(e);
        }
    }
    let (_, top) = win.map(stream, 0.0, 0.0);
    let (_, bottom) = win.map(stream, 0.0, f64::from(stream.1));
    let mid_x = win.x + win.width as i32 / 2;
    if top - win.y >= 10 {
        if let Err(e) = shot.check_patch(mid_x, (win.y + top) / 2, [0, 0, 0], "top letterbox") {
            errors.push(e);
        }
    }
    if win.y + win.height as i32 - bottom >= 10 {
        let y = (bottom + win.y + win.height as i32) / 2;
        if let Err(e) = shot.check_patch(mid_x, y, [0, 0, 0], "bottom letterbox") {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

/// Repeats `check` on fresh screenshots for up to `within` (presentation is asynchronous).
pub fn eventually_within(
    conn: &RustConnection,
    root: Window,
    screen: (u32, u32),
    within: Duration,
    check: impl Fn(&Shot) -> Result<(), String>,
) -> Result<Shot, String> {
    let deadline = Instant::now() + within;
    loop {
        thread::sleep(Duration::from_millis(150));
        let shot = Shot::take(conn, root, screen)?;
        match check(&shot) {
            Ok(()) => return Ok(shot),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => {}
        }
    }
}

/// Feeds frames to the window from the test's thread.
#[derive(Debug)]
pub struct Driver {
    /// What the window shares.
    pub shared: Arc<WindowShared>,
    /// Wakes the window.
    pub proxy: winit::event_loop::EventLoopProxy<AppEvent>,
    /// Frame number of the last frame shown.
    pub frame: u32,
}

impl Driver {
    /// Numbers `frame` as the next frame, puts it, wakes the window and waits for its record.
    pub fn show(&mut self, mut frame: DecodedFrame) -> Result<PresentRecord, String> {
        self.frame = self.frame.wrapping_add(1);
        frame.frame = self.frame;
        self.show_as_is(frame)
    }

    /// Shows `frame` with the number it has (to test gaps).
    pub fn show_as_is(&mut self, frame: DecodedFrame) -> Result<PresentRecord, String> {
        let number = frame.frame;
        self.frame = number;
        self.shared.frame.put(frame);
        self.wake()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(r) = self
                .shared
                .drain_presented()
                .into_iter()
                .find(|r| r.frame == number)
            {
                return Ok(r);
            }
            thread::sleep(Duration::from_millis(2));
        }
        Err(format!("frame {number} was not presented within 20 s"))
    }

    /// The present path the window chose (waits for the window to open it).
    pub fn renderer(&self) -> Result<sightline_viewer::render::RendererInfo, String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(r) = self.shared.renderer() {
                return Ok(r);
            }
            if Instant::now() >= deadline {
                return Err("the window reported no renderer within 20 s".into());
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Asks the window to redraw (overlays changed).
    pub fn wake(&self) -> Result<(), String> {
        self.proxy
            .send_event(AppEvent::FrameReady)
            .map_err(|_| "window event loop is gone".to_string())
    }
}

/// `label: N frames; convert p50 … present p50 …` over `records`.
pub fn timings(label: &str, records: &[PresentRecord]) -> String {
    let stats = |mut v: Vec<u32>| {
        v.sort_unstable();
        (v[v.len() / 2], v[v.len() * 9 / 10], v[v.len() - 1])
    };
    let c = stats(records.iter().map(|r| r.convert_us).collect());
    let p = stats(records.iter().map(|r| r.present_us).collect());
    format!(
        "{label}: {} frames; convert p50 {:.2} ms p90 {:.2} ms max {:.2} ms; \
         present p50 {:.2} ms p90 {:.2} ms max {:.2} ms",
        records.len(),
        f64::from(c.0) / 1e3,
        f64::from(c.1) / 1e3,
        f64::from(c.2) / 1e3,
        f64::from(p.0) / 1e3,
        f64::from(p.1) / 1e3,
        f64::from(p.2) / 1e3,
    )
}

/// Presses and releases the key giving `keysym` through XTEST.
pub fn key_tap(conn: &RustConnection, root: Window, keysym: u32) -> Result<(), String> {
    use x11rb::wrapper::ConnectionExt as _;
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let setup = conn.setup();
    let (min, max) = (setup.min_keycode, setup.max_keycode);
    let map = conn
        .get_keyboard_mapping(min, max - min + 1)
        .map_err(|x| e(&x))?
        .reply()
        .map_err(|x| e(&x))?;
    let per = usize::from(map.keysyms_per_keycode);
    let index = map
        .keysyms
        .chunks(per)
        .position(|syms| syms.contains(&keysym))
        .ok_or_else(|| format!("keysym {keysym:#x} has no keycode"))?;
    let code = min + index as u8;
    for kind in [
        x11rb::protocol::xproto::KEY_PRESS_EVENT,
        x11rb::protocol::xproto::KEY_RELEASE_EVENT,
    ] {
        conn.xtest_fake_input(kind, code, 0, root, 0, 0, 0)
            .map_err(|x| e(&x))?;
        // A round trip: the server has processed the fake event before the next one.
        conn.sync().map_err(|x| e(&x))?;
    }
    Ok(())
}

/// What a window test's driver gets.
#[derive(Debug)]
pub struct Env {
    /// The X display number.
    pub display: u32,
    /// The window's title.
    pub title: String,
    /// Where screenshots go.
    pub out_dir: PathBuf,
    /// Screen size.
    pub screen: (u32, u32),
}

/// Starts Xvfb (`screen`, depth 24), opens the viewer window with `opts` (its title is set
/// here) and runs `drive` on its own thread; panics with the driver's error, prints its report.
///
/// Only one call per test binary (winit allows one event loop per process); it sets `DISPLAY`
/// and `XDG_RUNTIME_DIR` for the process.
pub fn run(
    name: &str,
    screen: (u32, u32),
    opts: WindowOptions,
    drive: impl FnOnce(Driver, &Env) -> Result<Vec<String>, String> + Send + 'static,
) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let xvfb = Xvfb::start(screen.0, screen.1, 24);
    let runtime_dir = private_dir(&format!("{name}-xdg"));
    let out_dir = private_dir(name);
    // Set before the event loop or any other thread starts.
    std::env::set_var("DISPLAY", xvfb.name());
    std::env::set_var("XDG_RUNTIME_DIR", &runtime_dir);
    std::env::remove_var("WAYLAND_DISPLAY");
    let title = format!("Sightline {name} {}", std::process::id());
    let opts = WindowOptions {
        title: title.clone(),
        ..opts
    };
    let env = Env {
        display: xvfb.display,
        title,
        out_dir,
        screen,
    };
    let shared = Arc::new(WindowShared::new());
    let (tx, rx) = mpsc::channel();
    let driver_shared = shared.clone();
    let started = Instant::now();
    let result = run_window(opts, shared, move |proxy| {
        thread::Builder::new()
            .name("test-driver".into())
            .spawn(move || {
                let d = Driver {
                    shared: driver_shared,
                    proxy: proxy.clone(),
                    frame: 0,
                };
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drive(d, &env)))
                        .unwrap_or_else(|_| Err("test driver panicked".into()));
                // Close the window whatever happened, so the test never hangs.
                let _ = proxy.send_event(AppEvent::SessionEnded("test finished".into()));
                let _ = tx.send(outcome);
            })
            .expect("spawn test driver");
    });
    result.expect("run_window");
    let outcome = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("test driver reported");
    match outcome {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            println!("{name} took {:.1} s", started.elapsed().as_secs_f64());
        }
        Err(e) => panic!("{e}"),
    }
    drop(xvfb);
    let _ = std::fs::remove_dir_all(&runtime_dir);
}

/// Connects to the test's display; the root window.
pub fn connect(env: &Env) -> Result<(RustConnection, Window), String> {
    let (conn, screen) =
        x11rb::connect(Some(&format!(":{}", env.display))).map_err(|e| e.to_string())?;
    let root = conn.setup().roots[screen].root;
    Ok((conn, root))
}

/// A damage list with one rectangle.
pub fn damage(x: u16, y: u16, width: u16, height: u16) -> Option<Vec<DamageRect>> {
    Some(vec![DamageRect {
        x,
        y,
        width,
        height,
    }])
}

/// The checks every renderer must pass, in a 1000×700 window on a 1280×720 screen: bars
/// letterboxed when upscaled and downscaled, the local cursor drawn and taken away, the stats
/// panel toggled by a real F3 key press, bars in every picture format, and a 10-bit ramp that
/// does not band.
pub fn standard_checks(d: &mut Driver, env: &Env) -> Result<Vec<String>, String> {
    use sightline_viewer::frame::{CursorOverlay, StatsSnapshot};
    use x11rb::protocol::xproto::InputFocus;
    let mut report = Vec::new();
    let (conn, root) = connect(env)?;
    let screen = env.screen;
    let eventually = |check: &dyn Fn(&Shot) -> Result<(), String>| {
        eventually_within(&conn, root, screen, Duration::from_secs(3), check)
    };

    // 1. 640×360 bars, upscaled by a non-integer factor into 1000×700 (letterboxed).
    let first = d.show(bars_frame(640, 360, PictureFormat::I420, 0))?;
    report.push(format!(
        "first frame: convert {} µs, present {} µs",
        first.convert_us, first.present_us
    ));
    let win = Placement::find(&conn, root, &env.title)?;
    report.push(format!("window at {win:?}"));
    let shot = eventually(&|s| check_bars(s, win, (640, 360)))?;
    report.push(format!(
        "screenshot 640x360: {}",
        shot.save(&env.out_dir, "bars-640x360").display()
    ));

    // 2. Timings at 640×360, every frame different everywhere (bars, then mirrored bars).
    let mut recs = Vec::new();
    for i in 0..30 {
        recs.push(d.show(alternating(640, 360, i))?);
    }
    report.push(timings("640x360 in 1000x700", &recs));

    // 3. The stream size changes to 1920×1080, downscaled to fit.
    d.show(bars_frame(1920, 1080, PictureFormat::I420, 0))?;
    let shot = eventually(&|s| check_bars(s, win, (1920, 1080)))?;
    report.push(format!(
        "screenshot 1920x1080: {}",
        shot.save(&env.out_dir, "bars-1920x1080").display()
    ));
    let mut recs = Vec::new();
    for i in 1..21 {
        recs.push(d.show(alternating(1920, 1080, i))?);
    }
    report.push(timings("1920x1080 in 1000x700", &recs));

    // 4. The local cursor: a 24×24 opaque red square, hotspot (4, 4), over the black bar; then
    //    moved without a new frame — its old place must show the picture again.
    let stream = (1920, 1080);
    let (cx, cy) = (1800, 540);
    *d.shared.cursor.lock().unwrap() = CursorOverlay {
        rgba: [255, 0, 0, 255].repeat(24 * 24),
        width: 24,
        height: 24,
        hot_x: 4,
        hot_y: 4,
        x: cx,
        y: cy,
        visible: true,
    };
    d.wake()?;
    let at = |x: i32, y: i32| win.map(stream, f64::from(x - 4 + 12), f64::from(y - 4 + 12));
    let (px, py) = at(cx, cy);
    eventually(&|s| s.check_patch(px, py, [255, 0, 0], "cursor"))?;
    d.shared.cursor.lock().unwrap().y = cy + 200;
    d.wake()?;
    let (qx, qy) = at(cx, cy + 200);
    eventually(&|s| {
        s.check_patch(px, py, [0, 0, 0], "where the cursor was")?;
        s.check_patch(qx, qy, [255, 0, 0], "moved cursor")
    })?;
    d.shared.cursor.lock().unwrap().visible = false;
    report.push("cursor drawn, moved, and the picture under it restored".into());

    // 5. F3 through XTEST (pointer over the window so it has the keyboard focus).
    *d.shared.stats.lock().unwrap() = StatsSnapshot {
        fps: 59.94,
        bitrate_mbps: 18.25,
        rtt_ms: 0.42,
        stage_ms: [1.1, 2.2, 7.8, 0.1, 0.4, 0.2, 2.9, 3.0],
        lost_frames: 1,
        recovered_frames: 3,
        keyframe_requests: 2,
        width: 1920,
        height: 1080,
        codec: "H264".into(),
        audio: None,
        lossless: None,
    };
    let (wx, wy) = (win.x + win.width as i32 / 2, win.y + win.height as i32 / 2);
    conn.xtest_fake_input(
        x11rb::protocol::xproto::MOTION_NOTIFY_EVENT,
        0,
        0,
        root,
        wx as i16,
        wy as i16,
        0,
    )
    .map_err(|e| e.to_string())?;
    conn.flush().map_err(|e| e.to_string())?;
    // No window manager: give the window the keyboard focus ourselves.
    conn.set_input_focus(InputFocus::PARENT, win.id, x11rb::CURRENT_TIME)
        .map_err(|e| e.to_string())?;
    let focus = conn
        .get_input_focus()
        .map_err(|e| e.to_string())?
        .reply()
        .map_err(|e| e.to_string())?;
    if focus.focus != win.id {
        return Err(format!("focus went to {:#x}, not the window", focus.focus));
    }
    const XK_F3: u32 = 0xffc0;
    // The panel's top-left area lies over the white bar: with it, most pixels are dark and
    // some are text; without it, everything is the bar's 191 grey.
    let (ax, ay) = win.map(stream, 24.0, 24.0);
    let (bx, by) = win.map(stream, 200.0, 200.0);
    let panel_shown = |s: &Shot| {
        let (mut dark, mut light, mut n) = (0, 0, 0);
        for y in ay..by {
            for x in ax..bx {
                let p = s.px(x, y);
                n += 1;
                dark += usize::from(p.iter().all(|&c| c < 100));
                light += usize::from(p.iter().all(|&c| c > 150));
            }
        }
        if dark * 10 > n * 3 && light > 20 {
            Ok(())
        } else {
            Err(format!(
                "overlay not visible: {dark} dark, {light} light of {n}"
            ))
        }
    };
    // winit on X11 passes keys through the X input method, which can swallow the very first key
    // while it starts up on a loaded machine: tap again (at most twice more) if nothing shows.
    let mut shot = None;
    let mut last_err = String::new();
    for attempt in 1..=3 {
        key_tap(&conn, root, XK_F3)?;
        match eventually_within(
            &conn,
            root,
            screen,
            Duration::from_millis(1500),
            panel_shown,
        ) {
            Ok(s) => {
                if attempt > 1 {
                    report.push(format!("F3 took {attempt} taps"));
                }
                shot = Some(s);
                break;
            }
            Err(e) => last_err = e,
        }
    }
    let shot = shot.ok_or(last_err)?;
    report.push(format!(
        "screenshot with overlay: {}",
        shot.save(&env.out_dir, "overlay-1920x1080").display()
    ));
    key_tap(&conn, root, XK_F3)?;
    eventually(&|s| {
        s.check_patch(
            ax + 20,
            ay + 20,
            BARS[0],
            "white bar after hiding the overlay",
        )?;
        check_bars(s, win, stream)
    })?;
    report.push("F3 showed and hid the stats overlay".into());

    // 6. Every picture format shows the bars.
    for format in [
        PictureFormat::I444,
        PictureFormat::I420P10,
        PictureFormat::I444P10,
    ] {
        d.show(bars_frame(1280, 720, format, 0))?;
        eventually(&|s| check_bars(s, win, (1280, 720)).map_err(|e| format!("{format:?}: {e}")))?;
        report.push(format!("{format:?} bars shown"));
    }

    // 7. A 10-bit grey ramp at 1:1 (1000×560 in the 1000×700 window): averaged over the dither
    //    period (8 rows) the columns take more than 256 distinct levels, and follow the ramp.
    let (rw, rh) = (1000u32, 560u32);
    let ramp_code = |x: u32| 64 + x * (940 - 64) / (rw - 1);
    let mut ramp = bars_frame(rw, rh, PictureFormat::I444P10, 0);
    for row in ramp.y.chunks_exact_mut(rw as usize * 2) {
        for (x, px) in row.chunks_exact_mut(2).enumerate() {
            px.copy_from_slice(&(ramp_code(x as u32) as u16).to_le_bytes());
        }
    }
    for c in ramp.u.chunks_exact_mut(2).chain(ramp.v.chunks_exact_mut(2)) {
        c.copy_from_slice(&512u16.to_le_bytes());
    }
    d.show(ramp)?;
    let (_, ry) = win.map((rw, rh), 0.0, f64::from(rh) / 2.0);
    let (rx0, _) = win.map((rw, rh), 0.0, 0.0);
    let levels = |s: &Shot| -> Result<usize, String> {
        let mut sums = Vec::new();
        let mut worst = 0f64;
        for x in 0..rw as i32 {
            let sum: u32 = (0..8).map(|dy| u32::from(s.px(rx0 + x, ry + dy)[1])).sum();
            let want = f64::from(ramp_code(x as u32) - 64) / 876.0 * 255.0;
            worst = worst.max((f64::from(sum) / 8.0 - want).abs());
            sums.push(sum);
        }
        if worst > 1.5 {
            return Err(format!("ramp off by {worst:.2} codes"));
        }
        sums.sort_unstable();
        sums.dedup();
        if sums.len() <= 256 {
            return Err(format!("10-bit ramp bands: {} distinct levels", sums.len()));
        }
        Ok(sums.len())
    };
    let shot = eventually(&|s| levels(s).map(|_| ()))?;
    report.push(format!(
        "10-bit ramp: {} distinct levels over the dither period ({})",
        levels(&shot)?,
        shot.save(&env.out_dir, "ramp-10bit").display()
    ));
    Ok(report)
}
