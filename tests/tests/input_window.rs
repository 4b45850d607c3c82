//! Input as a user makes it: two X servers, one the host's desktop (captured and streamed, with
//! an X client listening) and one the viewer's desk (the viewer window). XTEST on the viewer's
//! display types into and clicks on the viewer window; winit → QUIC → host → XTEST on the host
//! display; the listening client must see the same keys, and the pointer at the host position
//! that corresponds to where the viewer's pointer was over the scaled picture.

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use sightline_certs::TrustPolicy;
use sightline_host::capture::x11::X11Source;
use sightline_host::inject::service::Injector;
use sightline_host::inject::xtest::XTestSink;
use sightline_tests::xlisten::{collect, listen, Seen};
use sightline_tests::xvfb::{private_dir, Xvfb};
use sightline_tests::{Pki, VideoHost};
use sightline_viewer::app::WindowOptions;
use sightline_viewer::window::{run_windowed, WindowedEnd};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt as _, InputFocus};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::wrapper::ConnectionExt as _;

/// Host desktop size.
const HW: u16 = 640;
const HH: u16 = 480;
/// Viewer window (and viewer screen) size: the picture is scaled ×1.5 to 960×720 and centred,
/// so it starts at x = 160.
const VW: u32 = 1280;
const VH: u32 = 720;

/// Drives the viewer's display like a user: pointer over the window, keys, a click.
fn user(display: &str, seen: &std_mpsc::Receiver<Seen>) -> Result<Vec<Seen>, String> {
    let (conn, screen) = x11rb::connect(Some(display)).map_err(|e| e.to_string())?;
    let root = conn.setup().roots[screen].root;
    let fake = |ty: u8, detail: u8, x: i16, y: i16| {
        conn.xtest_fake_input(ty, detail, 0, root, x, y, 0)
            .map_err(|e| e.to_string())?;
        conn.sync().map_err(|e| e.to_string())
    };
    // Wait until the viewer window is up and the session delivers pointer motion to the host.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    let target = (160 + 150, 75); // host (100, 50) × 1.5, + the bar
    loop {
        if Instant::now() > deadline {
            return Err(format!("no pointer motion reached the host: {got:?}"));
        }
        fake(6, 0, target.0 - 3, target.1)?;
        fake(6, 0, target.0, target.1)?;
        // Collect what the host saw of this wiggle (events, up to 200 ms for them).
        let wiggle_end = Instant::now() + Duration::from_millis(200);
        while let Ok(s) = seen.recv_timeout(wiggle_end.saturating_duration_since(Instant::now())) {
            got.push(s);
        }
        // Pointer positions are only sent once the picture (and so the scaling) is known.
        if got.iter().any(|s| {
            matches!(
                s,
                Seen::Motion {
                    x: 99..=101,
                    y: 49..=51
                }
            )
        }) {
            break;
        }
    }
    // Click-to-focus, as a window manager would: give the viewer window the keyboard.
    let under = conn
        .query_pointer(root)
        .map_err(|e| e.to_string())?
        .reply()
        .map_err(|e| e.to_string())?
        .child;
    conn.set_input_focus(InputFocus::PARENT, under, x11rb::CURRENT_TIME)
        .map_err(|e| e.to_string())?;
    conn.sync().map_err(|e| e.to_string())?;
    // Type "a", then Shift+"a", then click.
    let (a, shift) = (38u8, 50u8); // evdev keycodes on the viewer's (US) keymap
    fake(2, a, 0, 0)?;
    fake(3, a, 0, 0)?;
    // The first key after the window got the focus goes through winit's X input method while
    // it starts up, and can come out after keys typed microseconds later (seen once in about
    // ten runs: Shift overtook it). Nobody types that fast after focusing a window: wait until
    // the host has the first key before the next ones.
    got.extend(collect(seen, |v| {
        v.contains(&Seen::KeyRelease { keycode: a })
    }));
    for (ty, kc) in [(2, shift), (2, a), (3, a), (3, shift)] {
        fake(ty, kc, 0, 0)?;
    }
    fake(4, 1, 0, 0)?;
    fake(5, 1, 0, 0)?;
    let rest = collect(seen, |v| v.contains(&Seen::ButtonRelease(1)));
    got.extend(rest);
    Ok(got)
}

#[test]
fn keys_and_clicks_in_the_viewer_window_reach_the_host_desktop() {
    let host_x = Xvfb::start(HW as u32, HH as u32, 24);
    let viewer_x = Xvfb::start(VW, VH, 24);
    let runtime_dir = private_dir("input-window");
    // This test binary has a single test: nothing reads the environment concurrently.
    std::env::set_var("DISPLAY", viewer_x.name());
    std::env::set_var("XDG_RUNTIME_DIR", &runtime_dir);
    std::env::remove_var("WAYLAND_DISPLAY");

    let (ready_tx, ready_rx) = std_mpsc::channel();
    let (seen_tx, seen) = std_mpsc::channel();
    let name = host_x.name();
    std::thread::spawn(move || listen(name, ready_tx, seen_tx));
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();

    let pki = Pki::new();
    let host_rt = tokio::runtime::Runtime::new().unwrap();
    let injector = std::sync::Arc::new(
        Injector::start(Box::new(XTestSink::open(Some(&host_x.name())).unwrap())).unwrap(),
    );
    let (addr, closer) = host_rt.block_on(async {
        let source = X11Source::open(Some(&host_x.name())).expect("capture the host display");
        let mut host = VideoHost::start(&pki, Box::new(source), 30, 4_000_000, 1);
        let (addr, closer) = (host.addr, host.closer());
        let inj = injector.clone();
        tokio::spawn(async move {
            let _feed = host.feed.clone();
            sightline_tests::route_input(&mut host.events, Some(&inj), None).await;
            drop(host);
        });
        (addr, closer)
    });
    let known = pki.known_hosts("known_hosts", addr, &pki.host);
    let opts = pki.connect_options(addr, &pki.viewer, known, TrustPolicy::PinnedOnly);

    let vdisplay = viewer_x.name();
    let closer2 = closer.clone();
    let driver = std::thread::spawn(move || {
        let r = user(&vdisplay, &seen);
        closer2.close(0u32.into(), b"test done");
        r
    });
    let viewer_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let end = run_windowed(
        viewer_rt,
        opts,
        WindowOptions {
            title: "sightline-input-window".into(),
            fullscreen: false,
            show_stats: false,
            initial_size: Some((VW, VH)),
            view_only: false,
            ..WindowOptions::default()
        },
    )
    .expect("window ran");
    let got = driver.join().unwrap();
    println!("viewer ended: {end:?}");
    assert!(!matches!(end, WindowedEnd::ConnectFailed(_)), "{end:?}");
    let got = got.unwrap_or_else(|e| panic!("{e}"));
    println!("{got:#?}");
    let keys: Vec<(u32, bool)> = got
        .iter()
        .filter_map(|s| match s {
            Seen::KeyPress { keysym, shift, .. } if *keysym != 0xffe1 => Some((*keysym, *shift)),
            _ => None,
        })
        .collect();
    assert_eq!(keys, vec![(0x61, false), (0x41, true)]);
    let last_motion = got
        .iter()
        .rev()
        .find_map(|s| match s {
            Seen::Motion { x, y } => Some((*x, *y)),
            _ => None,
        })
        .unwrap();
    assert!(
        (last_motion.0 - 100).abs() <= 1 && (last_motion.1 - 50).abs() <= 1,
        "pointer at {last_motion:?}, expected (100, 50)"
    );
    assert!(got.contains(&Seen::ButtonPress(1)));
    drop(host_rt);
}
