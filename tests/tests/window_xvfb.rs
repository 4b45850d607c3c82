//! The viewer's window on a private Xvfb: 75 % colour bars go through the latest-wins slot, the
//! I420 → RGBA conversion, pixels (lavapipe, no GPU needed) and the aspect-fit scaling, and the
//! test reads the X screen back and checks every bar, the letterbox, the local cursor and the
//! stats overlay (toggled with a real F3 key press through XTEST).
//!
//! winit allows one event loop per process: keep this the only window test in this binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use sightline_protocol::colour::YuvCoefficients;
use sightline_protocol::msg::{ColourMatrix, ColourRange};
use sightline_tests::xvfb::{private_dir, Xvfb};
use sightline_viewer::app::{run_window, AppEvent, PresentRecord, WindowOptions, WindowShared};
use sightline_viewer::frame::{CursorOverlay, DecodedFrame, StatsSnapshot};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{AtomEnum, ConnectionExt as _, ImageFormat, InputFocus, Window};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

/// SMPTE-style 75 % bars, left to right: white, yellow, cyan, green, magenta, red, blue, black.
const BARS: [[u8; 3]; 8] = [
    [191, 191, 191],
    [191, 191, 0],
    [0, 191, 191],
    [0, 191, 0],
    [191, 0, 191],
    [191, 0, 0],
    [0, 0, 191],
    [0, 0, 0],
];
const BAR_NAMES: [&str; 8] = [
    "white", "yellow", "cyan", "green", "magenta", "red", "blue", "black",
];
const TOLERANCE: i32 = 12;
const WINDOW_SIZE: (u32, u32) = (1000, 700);
const SCREEN_SIZE: (u32, u32) = (1280, 720);

/// A `w × h` I420 picture of the eight bars, BT.709 limited range.
fn bars_frame(w: u32, h: u32, number: u32) -> DecodedFrame {
    let c = YuvCoefficients::new(ColourMatrix::Bt709, ColourRange::Limited, 8);
    let codes: Vec<[u8; 3]> = BARS
        .iter()
        .map(|rgb| {
            let [r, g, b] = rgb.map(|v| f32::from(v) / 255.0);
            let (y, cb, cr) = c.rgb_to_ycbcr(r, g, b);
            [y, cb, cr].map(|v| v.round().clamp(0.0, 255.0) as u8)
        })
        .collect();
    let bar = |x: u32| (x * 8 / w) as usize;
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let y_row: Vec<u8> = (0..w).map(|x| codes[bar(x)][0]).collect();
    let u_row: Vec<u8> = (0..cw).map(|x| codes[bar(2 * x)][1]).collect();
    let v_row: Vec<u8> = (0..cw).map(|x| codes[bar(2 * x)][2]).collect();
    DecodedFrame {
        width: w,
        height: h,
        format: sightline_viewer::frame::PictureFormat::I420,
        y: y_row.repeat(h as usize),
        u: u_row.repeat(ch as usize),
        v: v_row.repeat(ch as usize),
        y_stride: w as usize,
        uv_stride: cw as usize,
        matrix: ColourMatrix::Bt709,
        range: ColourRange::Limited,
        frame: number,
        host_times: None,
        first_packet_us: 0,
        reassembled_us: 0,
        decoded_us: 0,
        decoded_at: Instant::now(),
    }
}

/// The root window read back as RGB.
struct Shot {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Shot {
    fn take(conn: &RustConnection, root: Window) -> Result<Shot, String> {
        let (width, height) = SCREEN_SIZE;
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

    fn px(&self, x: i32, y: i32) -> [u8; 3] {
        let (x, y) = (
            x.clamp(0, self.width as i32 - 1),
            y.clamp(0, self.height as i32 - 1),
        );
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// Every pixel of the 5×5 patch around (`x`, `y`) within the tolerance of `want`.
    fn check_patch(&self, x: i32, y: i32, want: [u8; 3], what: &str) -> Result<(), String> {
        for dy in -2..=2 {
            for dx in -2..=2 {
                let got = self.px(x + dx, y + dy);
                let off =
                    (0..3).any(|c| (i32::from(got[c]) - i32::from(want[c])).abs() > TOLERANCE);
                if off {
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
    fn save(&self, dir: &Path, name: &str) -> PathBuf {
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
struct Placement {
    id: Window,
    x: i32,
    y: i32,
    width: u32,
    height: u32,
}

impl Placement {
    fn find(conn: &RustConnection, root: Window, title: &str) -> Result<Placement, String> {
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
    fn map(&self, (sw, sh): (u32, u32), sx: f64, sy: f64) -> (i32, i32) {
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
fn check_bars(shot: &Shot, win: Placement, stream: (u32, u32)) -> Result<(), String> {
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

/// Repeats `check` on fresh screenshots for up to 3 s (presentation is asynchronous).
fn eventually(
    conn: &RustConnection,
    root: Window,
    check: impl Fn(&Shot) -> Result<(), String>,
) -> Result<Shot, String> {
    eventually_within(conn, root, Duration::from_secs(3), check)
}

fn eventually_within(
    conn: &RustConnection,
    root: Window,
    within: Duration,
    check: impl Fn(&Shot) -> Result<(), String>,
) -> Result<Shot, String> {
    let deadline = Instant::now() + within;
    loop {
        thread::sleep(Duration::from_millis(150));
        let shot = Shot::take(conn, root)?;
        match check(&shot) {
            Ok(()) => return Ok(shot),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => {}
        }
    }
}

struct Driver {
    shared: Arc<WindowShared>,
    proxy: winit::event_loop::EventLoopProxy<AppEvent>,
    next_frame: u32,
}

impl Driver {
    /// Puts a frame, wakes the window and waits for its PresentRecord.
    fn show(&mut self, mut frame: DecodedFrame) -> Result<PresentRecord, String> {
        self.next_frame += 1;
        frame.frame = self.next_frame;
        self.shared.frame.put(frame);
        self.wake()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(r) = self
                .shared
                .drain_presented()
                .into_iter()
                .find(|r| r.frame == self.next_frame)
            {
                return Ok(r);
            }
            thread::sleep(Duration::from_millis(2));
        }
        Err(format!(
            "frame {} was not presented within 20 s",
            self.next_frame
        ))
    }

    fn wake(&self) -> Result<(), String> {
        self.proxy
            .send_event(AppEvent::FrameReady)
            .map_err(|_| "window event loop is gone".to_string())
    }
}

fn timings(label: &str, records: &[PresentRecord]) -> String {
    let stats = |mut v: Vec<u32>| {
        v.sort_unstable();
        (v[v.len() / 2], v[v.len() * 9 / 10], v[v.len() - 1])
    };
    let c = stats(records.iter().map(|r| r.convert_us).collect());
    let p = stats(records.iter().map(|r| r.present_us).collect());
    format!(
        "{label}: {} frames; convert+overlay p50 {:.2} ms p90 {:.2} ms max {:.2} ms; \
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

fn key_tap(conn: &RustConnection, root: Window, keysym: u32) -> Result<(), String> {
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

fn drive(mut d: Driver, display: u32, title: &str, out_dir: &Path) -> Result<Vec<String>, String> {
    let mut report = Vec::new();
    let (conn, screen) = x11rb::connect(Some(&format!(":{display}"))).map_err(|e| e.to_string())?;
    let root = conn.setup().roots[screen].root;

    // 1. 640×360 bars, upscaled by a non-integer factor into 1000×700 (letterboxed).
    let first = d.show(bars_frame(640, 360, 0))?;
    report.push(format!(
        "first frame: convert {} µs, present {} µs",
        first.convert_us, first.present_us
    ));
    let win = Placement::find(&conn, root, title)?;
    report.push(format!("window at {win:?}"));
    let shot = eventually(&conn, root, |s| check_bars(s, win, (640, 360)))?;
    report.push(format!(
        "screenshot 640x360: {}",
        shot.save(out_dir, "bars-640x360").display()
    ));

    // 2. Timings at 640×360.
    let mut recs = Vec::new();
    for _ in 0..40 {
        recs.push(d.show(bars_frame(640, 360, 0))?);
    }
    report.push(timings("640x360 in 1000x700", &recs));

    // 3. The stream size changes to 1920×1080 (buffer resize), downscaled to fit.
    d.show(bars_frame(1920, 1080, 0))?;
    let shot = eventually(&conn, root, |s| check_bars(s, win, (1920, 1080)))?;
    report.push(format!(
        "screenshot 1920x1080: {}",
        shot.save(out_dir, "bars-1920x1080").display()
    ));
    let mut recs = Vec::new();
    for _ in 0..30 {
        recs.push(d.show(bars_frame(1920, 1080, 0))?);
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
    eventually(&conn, root, |s| {
        s.check_patch(px, py, [255, 0, 0], "cursor")
    })?;
    d.shared.cursor.lock().unwrap().y = cy + 200;
    d.wake()?;
    let (qx, qy) = at(cx, cy + 200);
    eventually(&conn, root, |s| {
        s.check_patch(px, py, [0, 0, 0], "where the cursor was")?;
        s.check_patch(qx, qy, [255, 0, 0], "moved cursor")
    })?;
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
        match eventually_within(&conn, root, Duration::from_millis(1500), panel_shown) {
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
        shot.save(out_dir, "overlay-1920x1080").display()
    ));
    key_tap(&conn, root, XK_F3)?;
    eventually(&conn, root, |s| {
        s.check_patch(
            ax + 20,
            ay + 20,
            BARS[0],
            "white bar after hiding the overlay",
        )?;
        check_bars(s, win, stream)
    })?;
    report.push("F3 showed and hid the stats overlay".into());
    Ok(report)
}

#[test]
fn window_shows_colour_bars_on_xvfb() {
    // RUST_LOG=sightline_viewer=debug shows the adapter and the chosen present mode.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let xvfb = Xvfb::start(SCREEN_SIZE.0, SCREEN_SIZE.1, 24);
    let runtime_dir = private_dir("xdg-runtime");
    let out_dir = private_dir("window-test");
    // Only test in this binary, and set before the event loop or any other thread starts.
    std::env::set_var("DISPLAY", format!(":{}", xvfb.display));
    std::env::set_var("XDG_RUNTIME_DIR", &runtime_dir);
    std::env::remove_var("WAYLAND_DISPLAY");

    let title = format!("Sightline window test {}", std::process::id());
    let opts = WindowOptions {
        title: title.clone(),
        fullscreen: false,
        show_stats: false,
        initial_size: Some(WINDOW_SIZE),
        view_only: false,
        ..WindowOptions::default()
    };
    let shared = Arc::new(WindowShared::new());
    let (tx, rx) = mpsc::channel();
    let display = xvfb.display;
    let driver_shared = shared.clone();
    let started = Instant::now();
    let result = run_window(opts, shared, move |proxy| {
        thread::Builder::new()
            .name("test-driver".into())
            .spawn(move || {
                let d = Driver {
                    shared: driver_shared,
                    proxy: proxy.clone(),
                    next_frame: 0,
                };
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    drive(d, display, &title, &out_dir)
                }))
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
            println!("window test took {:.1} s", started.elapsed().as_secs_f64());
        }
        Err(e) => panic!("{e}"),
    }
    drop(xvfb);
    let _ = std::fs::remove_dir_all(&runtime_dir);
}
