//! The whole chain as a user sees it: host (synthetic source) → QUIC → viewer window on Xvfb
//! (wgpu on mesa's lavapipe), checked by a screenshot of the screen against the known colour
//! bars of the synthetic picture.

use std::time::{Duration, Instant};

use sightline_certs::TrustPolicy;
use sightline_host::capture::synthetic::{Layout, SyntheticSource, BARS};
use sightline_tests::xvfb::{private_dir, Xvfb};
use sightline_tests::{Pki, VideoHost};
use sightline_viewer::app::WindowOptions;
use sightline_viewer::window::{run_windowed, WindowedEnd};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat};

const W: u32 = 1280;
const H: u32 = 720;

/// The root window's pixels as (R, G, B) rows.
fn screenshot(display: &str) -> Result<Vec<[u8; 3]>, String> {
    let (conn, screen) = x11rb::connect(Some(display)).map_err(|e| e.to_string())?;
    let root = conn.setup().roots[screen].root;
    let img = conn
        .get_image(ImageFormat::Z_PIXMAP, root, 0, 0, W as u16, H as u16, !0)
        .map_err(|e| e.to_string())?
        .reply()
        .map_err(|e| e.to_string())?;
    Ok(img
        .data
        .chunks_exact(4)
        .map(|p| [p[2], p[1], p[0]])
        .collect())
}

fn save_ppm(path: &std::path::Path, px: &[[u8; 3]]) {
    let mut out = format!("P6\n{W} {H}\n255\n").into_bytes();
    for p in px {
        out.extend_from_slice(p);
    }
    let _ = std::fs::write(path, out);
}

#[test]
fn streamed_picture_shows_in_the_viewer_window() {
    let x = Xvfb::start(W, H, 24);
    let runtime_dir = private_dir("window-e2e");
    // SAFETY-free env changes: this test binary has a single test, so nothing reads the
    // environment concurrently.
    std::env::set_var("DISPLAY", x.name());
    std::env::set_var("XDG_RUNTIME_DIR", &runtime_dir);
    std::env::remove_var("WAYLAND_DISPLAY");

    let pki = Pki::new();
    // Host: its own runtime on its own thread.
    let host_rt = tokio::runtime::Runtime::new().unwrap();
    let host = host_rt.block_on(async {
        VideoHost::start(
            &pki,
            Box::new(SyntheticSource::new(W, H, 30)),
            30,
            8_000_000,
            1,
        )
    });
    let (addr, closer) = (host.addr, host.closer());
    let known = pki.known_hosts("known_hosts", addr, &pki.host);
    let opts = pki.connect_options(addr, &pki.viewer, known, TrustPolicy::PinnedOnly);

    // Checker: waits for the picture, compares, then ends the session from the host side.
    let display = x.name();
    let shot_path = runtime_dir.join("viewer-window.ppm");
    let shot_path2 = shot_path.clone();
    let checker = std::thread::spawn(move || -> Result<String, String> {
        let l = Layout::new(W, H);
        let bar_w = l.bars.w / 8;
        let y = l.bars.y + l.bars.h / 2;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last_err = String::from("no screenshot yet");
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
            let px = match screenshot(&display) {
                Ok(p) => p,
                Err(e) => {
                    last_err = e;
                    continue;
                }
            };
            let mut bad = Vec::new();
            for (i, want) in BARS.iter().enumerate() {
                let cx = i as u32 * bar_w + bar_w / 2;
                let got = px[(y * W + cx) as usize];
                let want = [want.0, want.1, want.2];
                if got
                    .iter()
                    .zip(want)
                    .any(|(g, w)| (*g as i32 - w as i32).abs() > 12)
                {
                    bad.push(format!("bar {i}: got {got:?} want {want:?}"));
                }
            }
            save_ppm(&shot_path2, &px);
            if bad.is_empty() {
                return Ok(format!("all 8 bars within ±12 at y={y}"));
            }
            last_err = bad.join("; ");
        }
        Err(last_err)
    });
    let closer2 = closer.clone();
    let stopper = std::thread::spawn(move || {
        let r = checker
            .join()
            .unwrap_or_else(|_| Err("checker panicked".into()));
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
            title: "sightline-window-e2e".into(),
            fullscreen: false,
            show_stats: false,
            initial_size: Some((W, H)),
            view_only: false,
            ..WindowOptions::default()
        },
    )
    .expect("window ran");
    let verdict = stopper.join().unwrap();
    drop(host);
    drop(host_rt);
    println!("screenshot: {} (PPM)", shot_path.display());
    println!("viewer ended: {end:?}");
    assert!(
        !matches!(end, WindowedEnd::ConnectFailed(_)),
        "viewer could not connect: {end:?}"
    );
    match verdict {
        Ok(msg) => println!("{msg}"),
        Err(e) => panic!("the window never showed the streamed bars: {e}"),
    }
}
