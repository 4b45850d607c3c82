//! The X11 frame source against real Xvfb servers: damage-driven capture, the still-screen
//! timeout, 10-bit roots, the cursor, screen resizes and the plain-GetImage fallback.
//!
//! Each test starts its own Xvfb (display :90–:139, whichever is free). A missing Xvfb binary
//! fails the tests: CI installs `xvfb`, and a silent skip would hide a broken capture path.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sightline_host::capture::x11::X11Source;
use sightline_host::capture::{
    CaptureError, CaptureOutcome, CapturedFrame, FrameSource, PixelFormat, Rect,
};
use sightline_tests::xvfb::Xvfb;
use x11rb::connection::Connection;
use x11rb::protocol::randr::ConnectionExt as _;
use x11rb::protocol::xproto::{
    ConnectionExt as _, CreateGCAux, CreateWindowAux, Rectangle, Window, WindowClass,
};
use x11rb::rust_connection::RustConnection;

/// A second X client that draws, as an application would.
struct Painter {
    conn: RustConnection,
    root: Window,
}

impl Painter {
    fn new(display: &str) -> Painter {
        let (conn, screen) = RustConnection::connect(Some(display)).expect("painter connects");
        let root = conn.setup().roots[screen].root;
        Painter { conn, root }
    }

    /// Waits until the server has processed everything sent so far.
    fn sync(&self) {
        self.conn.get_input_focus().unwrap().reply().unwrap();
    }

    /// A mapped, override-redirect window with a black background.
    fn window(&self, x: i16, y: i16, w: u16, h: u16, aux: CreateWindowAux) -> Window {
        let win = self.conn.generate_id().unwrap();
        self.conn
            .create_window(
                x11rb::COPY_DEPTH_FROM_PARENT,
                win,
                self.root,
                x,
                y,
                w,
                h,
                0,
                WindowClass::INPUT_OUTPUT,
                x11rb::COPY_FROM_PARENT,
                &aux.override_redirect(1).background_pixel(0),
            )
            .unwrap();
        self.conn.map_window(win).unwrap();
        self.sync();
        win
    }

    /// Fills `rect` (window coordinates) with the raw `pixel` value.
    fn fill(&self, win: Window, pixel: u32, rect: Rectangle) {
        let gc = self.conn.generate_id().unwrap();
        self.conn
            .create_gc(gc, win, &CreateGCAux::new().foreground(pixel))
            .unwrap();
        self.conn.poly_fill_rectangle(win, gc, &[rect]).unwrap();
        self.conn.free_gc(gc).unwrap();
        self.sync();
    }
}

fn rect(x: i16, y: i16, width: u16, height: u16) -> Rectangle {
    Rectangle {
        x,
        y,
        width,
        height,
    }
}

fn pixel_at(f: &CapturedFrame, x: u32, y: u32) -> u32 {
    let i = y as usize * f.stride + x as usize * 4;
    u32::from_le_bytes(f.data[i..i + 4].try_into().unwrap())
}

/// Every pixel of `r` (screen coordinates), masked to the colour bits.
fn all_pixels(f: &CapturedFrame, r: Rect, mask: u32, want: u32) -> bool {
    (r.y..r.y + r.h).all(|y| (r.x..r.x + r.w).all(|x| pixel_at(f, x, y) & mask == want))
}

fn covers(outer: &Rect, inner: &Rect) -> bool {
    outer.x <= inner.x
        && outer.y <= inner.y
        && outer.x + outer.w >= inner.x + inner.w
        && outer.y + outer.h >= inner.y + inner.h
}

/// Captures until a `wait`-long capture times out (the screen is still). Returns the union of the
/// damage seen on the way (`None`: a full frame was among them).
fn settle(src: &mut X11Source, f: &mut CapturedFrame, wait: Duration) -> Option<Rect> {
    let mut union = Some(Rect::default());
    for _ in 0..100 {
        match src.next_frame(f, wait).expect("capture") {
            CaptureOutcome::Timeout => return union,
            CaptureOutcome::Frame if f.damage.is_empty() => union = None,
            CaptureOutcome::Frame => union = union.map(|u| u.union(&f.damage_bounds())),
            CaptureOutcome::Reinit(what) => panic!("unexpected reinit {what}"),
        }
    }
    panic!("the screen never went still");
}

/// CPU time used by the calling thread.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, exclusively borrowed timespec for the call.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn first_frame(src: &mut X11Source) -> CapturedFrame {
    let mut f = CapturedFrame::new();
    let out = src
        .next_frame(&mut f, Duration::from_secs(1))
        .expect("first capture");
    assert_eq!(out, CaptureOutcome::Frame);
    assert!(f.damage.is_empty(), "the first frame is a full one");
    assert_eq!((f.width, f.height), src.size());
    assert_eq!(f.stride, f.width as usize * 4);
    f
}

#[test]
fn drawn_pixels_arrive_with_damage() {
    let x = Xvfb::start(640, 480, 24);
    let mut src = X11Source::open(Some(&x.name())).expect("open");
    assert_eq!(src.format(), PixelFormat::Bgrx8);
    assert_eq!(src.size(), (640, 480));
    assert!(src.uses_shm(), "Xvfb on a unix socket supports MIT-SHM");
    let d = src.describe();
    assert!(
        d.contains(&x.name()) && d.contains("640x480") && d.contains("MIT-SHM"),
        "{d}"
    );
    let mut f = first_frame(&mut src);
    let seq0 = f.sequence;

    let p = Painter::new(&x.name());
    let win = p.window(100, 50, 300, 200, CreateWindowAux::new());
    settle(&mut src, &mut f, Duration::from_millis(200));

    // 0xC81E5A: R 200, G 30, B 90.
    let t_draw = Instant::now();
    p.fill(win, 0x00C8_1E5A, rect(20, 30, 120, 80));
    let drawn = Rect {
        x: 120,
        y: 80,
        w: 120,
        h: 80,
    };
    let out = src
        .next_frame(&mut f, Duration::from_secs(2))
        .expect("capture");
    assert_eq!(out, CaptureOutcome::Frame);
    assert!(f.sequence > seq0);
    assert!(f.capture_start >= t_draw && f.capture_end >= f.capture_start);
    let mut seen = f.damage_bounds();
    // A draw may reach us as more than one notify; gather until still.
    if let Some(more) = settle(&mut src, &mut f, Duration::from_millis(200)) {
        seen = seen.union(&more);
    }
    assert!(!f.damage.is_empty() || seen.area() > 0);
    assert!(
        covers(&seen, &drawn),
        "damage {seen:?} must cover {drawn:?}"
    );
    assert!(
        seen.area() < 640 * 480 / 4,
        "only the drawn area is damaged: {seen:?}"
    );
    assert!(
        all_pixels(&f, drawn, 0x00FF_FFFF, 0x00C8_1E5A),
        "drawn colour read back"
    );
    let i = (drawn.y as usize * f.stride) + drawn.x as usize * 4;
    assert_eq!(&f.data[i..i + 3], &[90, 30, 200], "B, G, R byte order");
    // Just outside the drawn rectangle the window is still black.
    assert_eq!(pixel_at(&f, 119, 80) & 0xFF_FFFF, 0);
    assert_eq!(pixel_at(&f, 240, 159) & 0xFF_FFFF, 0);

    // Several draws in different places, captured incrementally, equal a full capture.
    p.fill(win, 0x0011_2233, rect(0, 0, 7, 5));
    p.fill(win, 0x00FF_FFFF, rect(250, 150, 50, 50));
    p.fill(win, 0x0000_FF00, rect(60, 170, 200, 3));
    settle(&mut src, &mut f, Duration::from_millis(200));
    let mut fresh = X11Source::open(Some(&x.name())).expect("open again");
    let full = first_frame(&mut fresh);
    assert!(
        f.data == full.data,
        "incremental frame equals a full capture"
    );

    // invalidate() makes the next frame a full one.
    src.invalidate();
    let out = src.next_frame(&mut f, Duration::from_millis(100)).unwrap();
    assert_eq!(out, CaptureOutcome::Frame);
    assert!(f.damage.is_empty());
}

#[test]
fn still_screen_times_out_then_a_draw_wakes_it() {
    let x = Xvfb::start(320, 240, 24);
    let mut src = X11Source::open(Some(&x.name())).expect("open");
    let mut f = first_frame(&mut src);
    let p = Painter::new(&x.name());
    let win = p.window(10, 10, 100, 100, CreateWindowAux::new());
    settle(&mut src, &mut f, Duration::from_millis(200));

    let seq = f.sequence;
    let t0 = Instant::now();
    let cpu0 = thread_cpu_time();
    let out = src.next_frame(&mut f, Duration::from_millis(200)).unwrap();
    let cpu = thread_cpu_time() - cpu0;
    let waited = t0.elapsed();
    assert!(
        cpu < Duration::from_millis(20),
        "sleeps, no busy wait: {cpu:?} CPU in 200 ms"
    );
    assert_eq!(out, CaptureOutcome::Timeout);
    assert_eq!(f.sequence, seq, "nothing captured while still");
    assert!(
        waited >= Duration::from_millis(195),
        "waited the timeout: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(400),
        "did not oversleep: {waited:?}"
    );
    assert_eq!(
        src.next_frame(&mut f, Duration::ZERO).unwrap(),
        CaptureOutcome::Timeout
    );
    // Moving the pointer is not a screen change: the viewer draws the cursor itself.
    p.conn
        .warp_pointer(x11rb::NONE, p.root, 0, 0, 0, 0, 50, 60)
        .unwrap();
    p.sync();
    assert_eq!(
        src.next_frame(&mut f, Duration::from_millis(100)).unwrap(),
        CaptureOutcome::Timeout,
        "pointer motion alone does not produce frames"
    );

    // A draw from another thread wakes a waiting capture promptly.
    let display = x.name();
    let drawer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let p = Painter::new(&display);
        p.fill(win, 0x00AB_CDEF, rect(5, 5, 20, 20));
        Instant::now()
    });
    let out = src.next_frame(&mut f, Duration::from_secs(3)).unwrap();
    let woke = Instant::now();
    let drawn_at = drawer.join().unwrap();
    assert_eq!(out, CaptureOutcome::Frame);
    assert_eq!(f.sequence, seq + 1);
    assert!(
        woke.duration_since(drawn_at) < Duration::from_millis(100),
        "woke promptly"
    );
    assert!(all_pixels(
        &f,
        Rect {
            x: 15,
            y: 15,
            w: 20,
            h: 20
        },
        0xFF_FFFF,
        0xAB_CDEF
    ));
    assert!(covers(
        &f.damage_bounds(),
        &Rect {
            x: 15,
            y: 15,
            w: 20,
            h: 20
        }
    ));
}

#[test]
fn depth_30_reads_10_bit_values() {
    let x = Xvfb::start(320, 240, 30);
    let mut src = X11Source::open(Some(&x.name())).expect("open");
    assert_eq!(src.format(), PixelFormat::X2Rgb10);
    assert!(src.describe().contains("depth 30"), "{}", src.describe());
    let mut f = first_frame(&mut src);
    assert_eq!(f.format, PixelFormat::X2Rgb10);
    let p = Painter::new(&x.name());
    let win = p.window(0, 0, 200, 200, CreateWindowAux::new());
    settle(&mut src, &mut f, Duration::from_millis(200));

    // Values an 8-bit path would lose: R 0x3FF, G 0x201, B 0x0AB.
    let pixel = (0x3FF << 20) | (0x201 << 10) | 0x0AB;
    p.fill(win, pixel, rect(30, 40, 64, 32));
    settle(&mut src, &mut f, Duration::from_millis(200));
    let r = Rect {
        x: 30,
        y: 40,
        w: 64,
        h: 32,
    };
    assert!(
        all_pixels(&f, r, 0x3FFF_FFFF, pixel),
        "got {:#010x}",
        pixel_at(&f, 30, 40)
    );
    let v = pixel_at(&f, 50, 50);
    assert_eq!(
        (v >> 20 & 0x3FF, v >> 10 & 0x3FF, v & 0x3FF),
        (0x3FF, 0x201, 0x0AB)
    );
}

#[test]
fn cursor_position_and_image_follow_the_pointer() {
    let x = Xvfb::start(640, 480, 24);
    let mut src = X11Source::open(Some(&x.name())).expect("open");
    let p = Painter::new(&x.name());
    p.conn
        .warp_pointer(x11rb::NONE, p.root, 0, 0, 0, 0, 123, 321)
        .unwrap();
    p.sync();
    let c = src.cursor().expect("cursor state");
    assert_eq!((c.x, c.y), (123, 321));
    assert!(c.visible);

    // xdotool moves it as an input-injection tool would.
    let ok = Command::new("xdotool")
        .args(["mousemove", "400", "200"])
        .env("DISPLAY", x.name())
        .status()
        .map(|s| s.success());
    match ok {
        Ok(true) => {
            let c = src.cursor().unwrap();
            assert_eq!((c.x, c.y), (400, 200));
        }
        other => {
            eprintln!("xdotool unavailable ({other:?}); position checked with WarpPointer only")
        }
    }

    let img = src
        .cursor_image()
        .expect("the first call returns the current image");
    assert_eq!(img.serial, c.serial);
    assert_eq!(img.rgba.len(), img.width as usize * img.height as usize * 4);
    assert!(img
        .rgba
        .chunks_exact(4)
        .all(|px| px[0] <= px[3] && px[1] <= px[3] && px[2] <= px[3]));
    assert_eq!(
        src.cursor_image(),
        None,
        "unchanged image is not sent again"
    );

    // A window with its own cursor: moving into it changes the cursor image and serial.
    let font = p.conn.generate_id().unwrap();
    p.conn.open_font(font, b"cursor").unwrap();
    let hand = p.conn.generate_id().unwrap();
    // Glyph 60 of the cursor font is XC_hand2 (61 its mask).
    p.conn
        .create_glyph_cursor(hand, font, font, 60, 61, 0, 0, 0, 0xFFFF, 0xFFFF, 0xFFFF)
        .unwrap();
    p.window(200, 200, 100, 100, CreateWindowAux::new().cursor(hand));
    p.conn
        .warp_pointer(x11rb::NONE, p.root, 0, 0, 0, 0, 250, 260)
        .unwrap();
    p.sync();
    let deadline = Instant::now() + Duration::from_secs(2);
    let new = loop {
        if let Some(img) = src.cursor_image() {
            break img;
        }
        assert!(Instant::now() < deadline, "cursor change not reported");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_ne!(new.serial, img.serial);
    assert!(new.width > 0 && new.height > 0);
    assert!(
        new.rgba.chunks_exact(4).any(|px| px[3] == 0xFF),
        "the hand is opaque somewhere"
    );
    let c = src.cursor().unwrap();
    assert_eq!((c.x, c.y, c.serial), (250, 260, new.serial));
    assert_eq!(src.cursor_image(), None);
}

/// Xvfb's RandR allows screen sizes up to the size it started with and refuses to shrink the
/// screen below an active CRTC (BadMatch), so the test switches the CRTC off, shrinks the screen,
/// grows it back and switches the CRTC on again, as `xrandr --fb` would.
#[test]
fn randr_resize_reinits_then_full_frame() {
    let x = Xvfb::start(1024, 768, 24);
    let mut src = X11Source::open(Some(&x.name())).expect("open");
    let mut f = first_frame(&mut src);
    let p = Painter::new(&x.name());
    p.conn.randr_query_version(1, 5).unwrap().reply().unwrap();
    let res = p
        .conn
        .randr_get_screen_resources(p.root)
        .unwrap()
        .reply()
        .unwrap();
    let crtc = *res.crtcs.first().expect("Xvfb has a CRTC");
    let info = p
        .conn
        .randr_get_crtc_info(crtc, res.config_timestamp)
        .unwrap()
        .reply()
        .unwrap();
    let off = p
        .conn
        .randr_set_crtc_config(
            crtc,
            info.timestamp,
            res.config_timestamp,
            0,
            0,
            0,
            info.rotation,
            &[],
        )
        .unwrap()
        .reply()
        .unwrap();
    p.conn
        .randr_set_screen_size(p.root, 640, 480, 169, 127)
        .unwrap()
        .check()
        .expect("shrink");
    let out = src.next_frame(&mut f, Duration::from_secs(2)).unwrap();
    assert_eq!(out, CaptureOutcome::Reinit("1024x768 → 640x480".into()));
    assert_eq!(src.size(), (640, 480));
    let out = src.next_frame(&mut f, Duration::from_secs(1)).unwrap();
    assert_eq!(out, CaptureOutcome::Frame);
    assert!(f.damage.is_empty(), "a full frame follows the reinit");
    assert_eq!((f.width, f.height, f.stride), (640, 480, 640 * 4));
    assert!(src.describe().contains("640x480"));
    let win = p.window(600, 440, 40, 40, CreateWindowAux::new());
    p.fill(win, 0x0065_4321, rect(0, 0, 40, 40));
    settle(&mut src, &mut f, Duration::from_millis(200));
    assert!(all_pixels(
        &f,
        Rect {
            x: 600,
            y: 440,
            w: 40,
            h: 40
        },
        0xFF_FFFF,
        0x65_4321
    ));

    // Back to the original size: the shared segment must grow again and pixels still land.
    p.conn
        .randr_set_screen_size(p.root, 1024, 768, 270, 203)
        .unwrap()
        .check()
        .expect("grow");
    p.conn
        .randr_set_crtc_config(
            crtc,
            off.timestamp,
            res.config_timestamp,
            0,
            0,
            info.mode,
            info.rotation,
            &info.outputs,
        )
        .unwrap()
        .reply()
        .unwrap();
    assert_eq!(
        src.next_frame(&mut f, Duration::from_secs(2)).unwrap(),
        CaptureOutcome::Reinit("640x480 → 1024x768".into())
    );
    assert_eq!(
        src.next_frame(&mut f, Duration::from_secs(1)).unwrap(),
        CaptureOutcome::Frame
    );
    assert_eq!((f.width, f.height), (1024, 768));
    let win = p.window(900, 700, 100, 50, CreateWindowAux::new());
    p.fill(win, 0x0012_3456, rect(0, 0, 100, 50));
    settle(&mut src, &mut f, Duration::from_millis(200));
    assert!(all_pixels(
        &f,
        Rect {
            x: 900,
            y: 700,
            w: 100,
            h: 50
        },
        0xFF_FFFF,
        0x12_3456
    ));
}

#[test]
fn without_mit_shm_plain_getimage_still_works() {
    let x = Xvfb::start_with(320, 240, 24, &["-extension", "MIT-SHM"]);
    let mut src = X11Source::open(Some(&x.name())).expect("open");
    assert!(!src.uses_shm());
    assert!(src.describe().contains("GetImage"), "{}", src.describe());
    let mut f = first_frame(&mut src);
    let p = Painter::new(&x.name());
    let win = p.window(0, 0, 320, 240, CreateWindowAux::new());
    p.fill(win, 0x0080_4020, rect(10, 20, 30, 40));
    settle(&mut src, &mut f, Duration::from_millis(200));
    assert!(all_pixels(
        &f,
        Rect {
            x: 10,
            y: 20,
            w: 30,
            h: 40
        },
        0xFF_FFFF,
        0x80_4020
    ));
}

#[test]
fn unreachable_display_is_a_clear_error() {
    let n = (150..250)
        .find(|n| !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists())
        .expect("a free display number");
    let name = format!(":{n}");
    let err = X11Source::open(Some(&name)).expect_err("no X server there");
    assert!(matches!(err, CaptureError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains(&name), "{err}");
}
