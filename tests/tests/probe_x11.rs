//! The bench-probe window against real Xvfb servers: a separate X client draws the probe strip,
//! the DAMAGE-driven X11 capture picks it up at once, and the strip reads back from the captured
//! pixels exactly as the viewer reads it from the decoded picture. Also times show → captured,
//! the "wait for capture" a probe pays on a real desktop.
//!
//! Each test starts its own Xvfb. A missing Xvfb binary fails the tests (see x11_capture.rs).
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use sightline_host::capture::probe_window::ProbeWindow;
use sightline_host::capture::x11::X11Source;
use sightline_host::capture::{CaptureOutcome, CapturedFrame, FrameSource, PixelFormat, Rect};
use sightline_protocol::probe;
use sightline_tests::xvfb::Xvfb;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt as _, CreateWindowAux, WindowClass};
use x11rb::rust_connection::RustConnection;

/// Luma of a captured frame: `Y ≈ (54 R + 183 G + 18 B) >> 8`, 10-bit channels rounded to 8.
fn luma(f: &CapturedFrame) -> Vec<u8> {
    f.data
        .chunks_exact(4)
        .map(|p| {
            let (r, g, b) = match f.format {
                PixelFormat::Bgrx8 => (p[2] as u32, p[1] as u32, p[0] as u32),
                PixelFormat::X2Rgb10 => {
                    let v = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
                    (v >> 22 & 0xff, v >> 12 & 0xff, v >> 2 & 0xff)
                }
            };
            ((54 * r + 183 * g + 18 * b) >> 8) as u8
        })
        .collect()
}

fn read(f: &CapturedFrame) -> Option<(u32, u32)> {
    probe::read(&luma(f), f.width as usize, f.width, f.height)
}

fn strip(width: u32) -> Rect {
    let (x, y, w, h) = probe::rect(width);
    Rect { x, y, w, h }
}

fn covers(outer: &Rect, inner: &Rect) -> bool {
    outer.x <= inner.x
        && outer.y <= inner.y
        && outer.x + outer.w >= inner.x + inner.w
        && outer.y + outer.h >= inner.y + inner.h
}

/// Captures until a `wait`-long capture times out (the screen is still).
fn settle(src: &mut X11Source, f: &mut CapturedFrame, wait: Duration) {
    for _ in 0..100 {
        match src.next_frame(f, wait).expect("capture") {
            CaptureOutcome::Timeout => return,
            CaptureOutcome::Frame => {}
            CaptureOutcome::Reinit(what) => panic!("unexpected reinit {what}"),
        }
    }
    panic!("the screen never went still");
}

/// What capturing a shown probe took.
struct Seen {
    /// `show` called → the frame's pixels were read (`capture_end`).
    to_captured: Duration,
    /// Time spent inside `show`.
    show_call: Duration,
    /// The frame that read back the probe had damage covering the whole strip by itself.
    one_frame: bool,
}

/// Shows probe `id` and captures (within 1 s) until a frame reads it back; the damage since the
/// show must cover the strip.
fn show_and_capture(
    win: &mut ProbeWindow,
    src: &mut X11Source,
    f: &mut CapturedFrame,
    id: u32,
    t: u64,
) -> Seen {
    let want = strip(f.width);
    let shown = Instant::now();
    win.show(id, t).expect("show the probe");
    let show_call = shown.elapsed();
    let deadline = shown + Duration::from_secs(1);
    let mut damage = Rect::default();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "probe {id} not captured within 1 s");
        match src.next_frame(f, left).expect("capture") {
            CaptureOutcome::Frame => {}
            CaptureOutcome::Timeout => panic!("probe {id}: no damage within 1 s"),
            CaptureOutcome::Reinit(what) => panic!("unexpected reinit {what}"),
        }
        assert!(f.capture_start >= shown);
        damage = damage.union(&f.damage_bounds());
        if read(f) == Some((id, t as u32)) {
            assert!(
                covers(&damage, &want),
                "damage {damage:?} must cover the strip {want:?}"
            );
            return Seen {
                to_captured: f.capture_end - shown,
                show_call,
                one_frame: covers(&f.damage_bounds(), &want),
            };
        }
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[test]
fn probe_window_is_captured_at_once() {
    let x = Xvfb::start(1280, 720, 24);
    let clock = sightline_host::net::host_clock(Instant::now());
    let mut src = X11Source::open(Some(&x.name())).expect("open capture");
    let mut f = CapturedFrame::new();
    assert_eq!(
        src.next_frame(&mut f, Duration::from_secs(1))
            .expect("first"),
        CaptureOutcome::Frame
    );
    assert!(f.damage.is_empty(), "a full first frame");
    assert_eq!(read(&f), None, "no probe on an empty screen");

    let mut win = ProbeWindow::open(Some(&x.name())).expect("open probe window");
    assert_eq!(win.strip(), strip(1280));
    let t = clock.micros(Instant::now());
    let first = show_and_capture(&mut win, &mut src, &mut f, 42, t);
    // The next probe: same window, new cells.
    let t = clock.micros(Instant::now());
    let second = show_and_capture(&mut win, &mut src, &mut f, 43, t);
    println!(
        "probe 42 (creates the window): show → captured {:.0} µs (show call {:.0} µs); \
         probe 43: {:.0} µs (show call {:.0} µs)",
        micros(first.to_captured),
        micros(first.show_call),
        micros(second.to_captured),
        micros(second.show_call),
    );

    // More probes for a distribution.
    let mut times = Vec::new();
    let mut single = 0;
    for id in 100..200u32 {
        let t = clock.micros(Instant::now());
        let seen = show_and_capture(&mut win, &mut src, &mut f, id, t);
        times.push(micros(seen.to_captured));
        single += usize::from(seen.one_frame);
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    println!(
        "show → captured over {} probes (Xvfb 1280x720x24, MIT-SHM): min {:.0} µs, median {:.0} µs, \
         p90 {:.0} µs, max {:.0} µs; read back from the first frame after the show in {single}",
        times.len(),
        pct(0.0),
        pct(0.5),
        pct(0.9),
        pct(1.0),
    );

    // Dropping the window uncovers the root again: the strip is gone.
    drop(win);
    let out = src
        .next_frame(&mut f, Duration::from_secs(1))
        .expect("capture");
    assert_eq!(out, CaptureOutcome::Frame, "the destroyed window damages");
    settle(&mut src, &mut f, Duration::from_millis(100));
    assert_eq!(read(&f), None, "the strip is gone with the window");
}

#[test]
fn covered_probe_window_is_raised_on_show() {
    let x = Xvfb::start(1280, 720, 24);
    let mut src = X11Source::open(Some(&x.name())).expect("open capture");
    let mut f = CapturedFrame::new();
    src.next_frame(&mut f, Duration::from_secs(1))
        .expect("first");
    let mut win = ProbeWindow::open(Some(&x.name())).expect("open probe window");
    show_and_capture(&mut win, &mut src, &mut f, 1, 1_000);

    // Another application's window covers the corner.
    let (conn, screen) = RustConnection::connect(Some(&x.name())).expect("connect");
    let root = conn.setup().roots[screen].root;
    let other = conn.generate_id().unwrap();
    conn.create_window(
        x11rb::COPY_DEPTH_FROM_PARENT,
        other,
        root,
        600,
        0,
        680,
        300,
        0,
        WindowClass::INPUT_OUTPUT,
        x11rb::COPY_FROM_PARENT,
        &CreateWindowAux::new()
            .override_redirect(1)
            .background_pixel(0x80_8080),
    )
    .unwrap();
    conn.map_window(other).unwrap();
    conn.get_input_focus().unwrap().reply().unwrap();
    settle(&mut src, &mut f, Duration::from_millis(100));
    assert_eq!(read(&f), None, "the probe is covered");

    show_and_capture(&mut win, &mut src, &mut f, 2, 2_000);
}

#[test]
fn probe_window_on_a_10_bit_root() {
    let x = Xvfb::start(1920, 1080, 30);
    let mut src = X11Source::open(Some(&x.name())).expect("open capture");
    assert_eq!(src.format(), PixelFormat::X2Rgb10);
    let mut f = CapturedFrame::new();
    src.next_frame(&mut f, Duration::from_secs(1))
        .expect("first");
    let mut win = ProbeWindow::open(Some(&x.name())).expect("open probe window");
    let t = 0x0000_0007_8765_4321;
    show_and_capture(&mut win, &mut src, &mut f, 0xabcd_0123, t);
    // The cells are the 10-bit equivalents of 16 and 235.
    let s = strip(1920);
    let px = |x: u32, y: u32| {
        let i = y as usize * f.stride + x as usize * 4;
        u32::from_le_bytes(f.data[i..i + 4].try_into().unwrap()) & 0x3fff_ffff
    };
    let c = probe::cell_size(1920);
    let grey = |v: u32| v << 20 | v << 10 | v;
    // Row 0 holds 0xabcd0123, most significant bit first: 0xa = 1010, white then black.
    assert_eq!(px(s.x + c / 2, c / 2), grey(943));
    assert_eq!(px(s.x + c + c / 2, c / 2), grey(64));
}
