//! The whole chain as a user sees it, for one renderer: host (synthetic desktop scene: a line
//! being typed, the frame counter barcode, colour bars) → openh264 → QUIC → viewer window on
//! Xvfb, checked on the screen.
//!
//! 1. The eight colour bars show within ±12 (a region of each bar, not only its centre).
//! 2. While the scene runs, most presents use the host's damage lists (only the typed line and
//!    the barcode change).
//! 3. The host stops; the last frame stays on screen. Its barcode says which source frame it
//!    is; the whole window is compared with that frame as the source rendered it, in 16×16
//!    blocks: a region the damage lists missed would still show an older frame there (a typed
//!    glyph missing, a stale barcode) and fail the comparison.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_certs::TrustPolicy;
use sightline_host::capture::synthetic::{
    read_barcode, render_frame_scene, Layout, Scene, SyntheticSource, BARS,
};
use sightline_viewer::app::{PresentRecord, Renderer, WindowOptions, WindowShared};
use sightline_viewer::render::ActivePath;
use sightline_viewer::window::{run_windowed_shared, WindowedEnd};

use crate::window::{Placement, Shot};
use crate::xvfb::{private_dir, Xvfb};
use crate::{Pki, VideoHost};

const W: u32 = 1280;
const H: u32 = 720;
const FPS: u32 = 30;

/// Runs the check with `renderer`, expecting the window to use `path`.
pub fn streamed_desktop_shows_exactly(name: &str, renderer: Renderer, path: ActivePath) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let x = Xvfb::start(W, H, 24);
    let runtime_dir = private_dir(&format!("{name}-xdg"));
    let out_dir = private_dir(name);
    // This test binary has a single test, so nothing reads the environment concurrently.
    std::env::set_var("DISPLAY", x.name());
    std::env::set_var("XDG_RUNTIME_DIR", &runtime_dir);
    std::env::remove_var("WAYLAND_DISPLAY");

    let pki = Pki::new();
    let host_rt = tokio::runtime::Runtime::new().expect("runtime");
    let scene = Scene::Desktop;
    let host = host_rt.block_on(async {
        VideoHost::start(
            &pki,
            Box::new(SyntheticSource::new(W, H, FPS).with_scene(scene)),
            FPS,
            8_000_000,
            1,
        )
    });
    let (addr, closer, feed) = (host.addr, host.closer(), host.feed.clone());
    let known = pki.known_hosts("known_hosts", addr, &pki.host);
    let opts = pki.connect_options(addr, &pki.viewer, known, TrustPolicy::PinnedOnly);

    let shared = Arc::new(WindowShared::new());
    let (tap_tx, tap) = mpsc::channel::<PresentRecord>();
    *shared.present_tap.lock().unwrap() = Some(tap_tx);
    let title = format!("sightline-{name}");
    let display = x.name();
    let checker_title = title.clone();
    let checker = std::thread::spawn(move || -> Result<Vec<String>, String> {
        let r = check(&display, &checker_title, &tap, &feed, &out_dir);
        closer.close(0u32.into(), b"test done");
        r
    });
    let viewer_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let window = WindowOptions {
        title,
        initial_size: Some((W, H)),
        renderer,
        ..WindowOptions::default()
    };
    let end = run_windowed_shared(viewer_rt, opts, window, shared.clone()).expect("window ran");
    let verdict = checker
        .join()
        .unwrap_or_else(|_| Err("checker panicked".into()));
    drop(host);
    drop(host_rt);
    println!("viewer ended: {end:?}");
    assert!(
        !matches!(end, WindowedEnd::ConnectFailed(_)),
        "viewer could not connect: {end:?}"
    );
    let info = shared.renderer().expect("a renderer was chosen");
    assert_eq!(info.path, path, "{info:?}");
    match verdict {
        Ok(lines) => {
            println!("renderer {} ({})", info.name(), info.detail);
            for l in lines {
                println!("{l}");
            }
        }
        Err(e) => panic!("{e}"),
    }
    let _ = std::fs::remove_dir_all(&runtime_dir);
}

fn check(
    display: &str,
    title: &str,
    tap: &mpsc::Receiver<PresentRecord>,
    feed: &sightline_host::pipeline::VideoFeed,
    out_dir: &std::path::Path,
) -> Result<Vec<String>, String> {
    use x11rb::connection::Connection as _;
    let mut report = Vec::new();
    let (conn, screen) = x11rb::connect(Some(display)).map_err(|e| e.to_string())?;
    let root = conn.setup().roots[screen].root;
    let l = Layout::new(W, H);
    // 1. The bars, as regions (the middle half of each bar, a few rows).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last_err = String::from("no window yet");
    let win = loop {
        if Instant::now() >= deadline {
            return Err(format!("the bars never showed: {last_err}"));
        }
        // Look again after the next present (or 300 ms without one).
        let _ = tap.recv_timeout(Duration::from_millis(300));
        let win = match Placement::find(&conn, root, title) {
            Ok(w) => w,
            Err(e) => {
                last_err = e;
                continue;
            }
        };
        let shot = Shot::take(&conn, root, (W, H))?;
        match bars_ok(&shot, win, &l) {
            Ok(()) => break win,
            Err(e) => last_err = e,
        }
    };
    report.push("bars: every bar's middle half within ±12".into());

    // 2. Damage use while the scene runs.
    while tap.try_recv().is_ok() {}
    let counting = Instant::now() + Duration::from_secs(3);
    let (mut frames, mut damaged, mut px) = (0u32, 0u32, 0u64);
    while Instant::now() < counting {
        if let Ok(r) = tap.recv_timeout(Duration::from_millis(100)) {
            frames += 1;
            if !r.full {
                damaged += 1;
                px += u64::from(r.pixels);
            }
        }
    }
    if frames < 20 {
        return Err(format!("only {frames} frames presented in 3 s"));
    }
    if damaged * 2 < frames {
        return Err(format!(
            "only {damaged} of {frames} presents used damage lists"
        ));
    }
    report.push(format!(
        "{damaged} of {frames} presents were partial updates (mean {} px converted or uploaded)",
        px / u64::from(damaged.max(1))
    ));

    // 3. Stop the host; compare the last frame with the source's rendering of it.
    feed.stop();
    // Frames in flight still arrive: wait until presents stop (300 ms without one).
    let settle = Instant::now() + Duration::from_secs(5);
    while tap.recv_timeout(Duration::from_millis(300)).is_ok() && Instant::now() < settle {}
    let shot = Shot::take(&conn, root, (W, H))?;
    let saved = shot.save(out_dir, "last-frame");
    let green: Vec<u8> = (0..H as i32)
        .flat_map(|y| (0..W as i32).map(move |x| (x, y)))
        .map(|(x, y)| shot.px(win.x + x, win.y + y)[1])
        .collect();
    let (seq, _) = read_barcode(&green, W as usize, W, H)
        .ok_or_else(|| format!("no barcode on screen ({})", saved.display()))?;
    let want = render_frame_scene(W, H, u64::from(seq), FPS, Scene::Desktop);
    let (mut worst, mut at) = (0f64, (0, 0));
    for by in 0..H / 16 {
        for bx in 0..W / 16 {
            let mut sum = 0u64;
            for y in by * 16..by * 16 + 16 {
                for x in bx * 16..bx * 16 + 16 {
                    let got = shot.px(win.x + x as i32, win.y + y as i32);
                    let i = y as usize * want.stride + x as usize * 4;
                    let exp = [want.data[i + 2], want.data[i + 1], want.data[i]];
                    sum += (0..3)
                        .map(|c| u64::from(got[c].abs_diff(exp[c])))
                        .sum::<u64>();
                }
            }
            let mean = sum as f64 / (16.0 * 16.0 * 3.0);
            if mean > worst {
                worst = mean;
                at = (bx * 16, by * 16);
            }
        }
    }
    if worst > 12.0 {
        return Err(format!(
            "frame {seq} on screen differs from the source in the 16x16 block at {at:?}: \
             mean {worst:.1} codes ({})",
            saved.display()
        ));
    }
    report.push(format!(
        "last frame {seq} matches the source: worst 16x16 block mean error {worst:.1} codes at \
         {at:?} ({})",
        saved.display()
    ));
    Ok(report)
}

/// The middle half of each bar, over five rows at the band's centre, within ±12.
fn bars_ok(shot: &Shot, win: Placement, l: &Layout) -> Result<(), String> {
    let bw = l.bars.w / 8;
    let y = (l.bars.y + l.bars.h / 2) as i32;
    let mut bad = Vec::new();
    for (i, want) in BARS.iter().enumerate() {
        let want = [want.0, want.1, want.2];
        let x0 = (i as u32 * bw + bw / 4) as i32;
        'bar: for dy in -2..=2 {
            for x in x0..x0 + (bw / 2) as i32 {
                let got = shot.px(win.x + x, win.y + y + dy);
                if got
                    .iter()
                    .zip(want)
                    .any(|(g, w)| (i32::from(*g) - i32::from(w)).abs() > 12)
                {
                    bad.push(format!(
                        "bar {i} at ({x}, {}): got {got:?} want {want:?}",
                        y + dy
                    ));
                    break 'bar;
                }
            }
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("; "))
    }
}
