//! Lossless tiles: what a small change costs on the host, how fast a still screen converges
//! to bit-exact after full-screen motion, and what typing and scrolling cost on the wire.
//!
//! * **host**: a 480×240 change on a 1920×1080 Xvfb display — X11 capture of the damage,
//!   classification, LZ4 coding and the framed tile message (what goes on the tile stream),
//!   on the host's real tracker. p50 target ≤ 1.5 ms.
//! * **convergence**: end to end on loopback (real host, QUIC, viewer composition): 2 s of
//!   full-screen scrolling, then the time until the viewer's whole picture equals the X
//!   screen and the host's hashes prove it. Target ≤ 500 ms.
//! * **bytes**: tile and video bytes per second for typing (a few 10×20 glyphs a second) and
//!   for scrolling a text page.
//!
//! Run: `cargo bench -p sightline-benches --bench lossless` (`-- host` for the host part only).

use std::time::{Duration, Instant};

use sightline_host::capture::x11::X11Source;
use sightline_host::capture::{CaptureOutcome, CapturedFrame, FrameSource};
use sightline_host::tiles::{TileSettings, TileTracker};
use sightline_protocol::tiles::frame_message;
use sightline_tests::lossless::{desktop, noise, Rig};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Host processing of a small change: capture (damage only) → tiles → framed bytes.
fn host_small_change(rig: &Rig) {
    let mut source = X11Source::open(Some(&rig.x.name())).expect("open the display");
    let mut frame = CapturedFrame::new();
    let mut tracker = TileTracker::new(TileSettings::default(), Instant::now());
    // The first frame (whole screen) and a still period: everything lossless.
    let _ = source.next_frame(&mut frame, Duration::from_secs(2));
    tracker.on_frame(&frame, Instant::now(), 0, (0, 0, 0));
    tracker.on_still(
        &frame,
        Instant::now() + Duration::from_millis(300),
        (0, 0, 0),
    );
    let (mut capture, mut tiles, mut total, mut bytes) = (vec![], vec![], vec![], vec![]);
    for i in 0..200u32 {
        // A different 480×240 patch each time (text-like content), so nothing is cached.
        let patch = if i % 2 == 0 {
            desktop(480, 240, i)
        } else {
            noise(480, 240, i)
        };
        rig.put(400 + (i % 7) as i16 * 64, 300, 480, 240, &patch);
        std::thread::sleep(Duration::from_millis(20));
        match source.next_frame(&mut frame, Duration::from_secs(1)) {
            Ok(CaptureOutcome::Frame) => {}
            other => panic!("no frame for the change: {other:?}"),
        }
        let t0 = frame.capture_start;
        let t1 = frame.capture_end;
        // Spaced 20 ms apart: each change is a fresh, small one (not motion).
        let out = tracker.on_frame(
            &frame,
            Instant::now() + Duration::from_secs(u64::from(i)),
            0,
            (0, 0, 0),
        );
        let mut wire = 0;
        for m in &out.messages {
            wire += frame_message(m).len();
        }
        let t2 = Instant::now();
        assert!(!out.video_changed, "a small change stays off the video");
        capture.push((t1 - t0).as_secs_f64() * 1e3);
        tiles.push((t2 - t1).as_secs_f64() * 1e3);
        total.push((t2 - t0).as_secs_f64() * 1e3);
        bytes.push(wire as f64);
    }
    let every =
        |v: &[f64], skip: usize| -> Vec<f64> { v.iter().skip(skip).step_by(2).copied().collect() };
    println!(
        "host 480x240 change at 1080p (200 changes, half text-like, half noise):\n  capture p50 {:.3} ms  tiles+frame p50 {:.3} ms  capture->tile-on-wire p50 {:.3} ms p99 {:.3} ms (text p50 {:.3} ms, noise p50 {:.3} ms)  bytes p50 {:.0} (text {:.0}, noise {:.0})",
        pct(&mut capture, 0.5),
        pct(&mut tiles, 0.5),
        pct(&mut total.clone(), 0.5),
        pct(&mut total.clone(), 0.99),
        pct(&mut every(&total, 0), 0.5),
        pct(&mut every(&total, 1), 0.5),
        pct(&mut bytes.clone(), 0.5),
        {
            let mut t: Vec<f64> = bytes.iter().step_by(2).copied().collect();
            pct(&mut t, 0.5)
        },
        {
            let mut t: Vec<f64> = bytes.iter().skip(1).step_by(2).copied().collect();
            pct(&mut t, 0.5)
        },
    );
}

/// [`host_small_change`] with the streaming pipeline stopped first, so that only the measured
/// tracker works on the change (as on a host with one pipeline).
async fn host_alone(rig: &Rig) {
    rig.host.feed.stop();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !rig.host.feed.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the streaming pipeline did not stop"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    host_small_change(rig);
}

async fn convergence(rig: &Rig, runs: usize) {
    let (w, h) = rig.size;
    let tall = desktop(w, h * 2, 5);
    let stride = (w * 4) as usize;
    let mut times = Vec::new();
    for run in 0..runs {
        let frames0 = rig.conn_frames();
        let v0 = rig.totals.lock().unwrap().bytes;
        let s0 = rig.status();
        let start = Instant::now();
        let mut step = run * 37;
        while start.elapsed() < Duration::from_secs(2) {
            let off = (step * 12) % h as usize;
            rig.put(
                0,
                0,
                w as u16,
                h as u16,
                &tall[off * stride..(off + h as usize) * stride],
            );
            step += 1;
            tokio::time::sleep(Duration::from_millis(16)).await;
        }
        let stopped = Instant::now();
        let video = rig.conn_frames() - frames0;
        let vbytes = rig.totals.lock().unwrap().bytes - v0;
        let checks = rig.status().fidelity.checks;
        let exact = rig
            .wait_exact(checks, Duration::from_secs(10))
            .await
            .expect("converged");
        let ms = (exact - stopped).as_secs_f64() * 1e3;
        let s1 = rig.status();
        println!(
            "  run {run}: {video} video frames in 2 s of motion ({:.1} Mbit/s video incl. keyframes), bit-exact and proven {ms:.0} ms after motion stopped, refinement {} tiles {:.2} MB",
            vbytes as f64 * 8.0 / 2.0 / 1e6,
            s1.tiles - s0.tiles,
            (s1.tile_bytes - s0.tile_bytes) as f64 / 1e6
        );
        times.push(ms);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    println!(
        "convergence after 2 s full-screen motion ({runs} runs): p50 {:.0} ms, max {:.0} ms",
        pct(&mut times.clone(), 0.5),
        pct(&mut times, 1.0)
    );
}

/// Tile and video bytes per second for a scenario run for `secs`.
async fn scenario(rig: &Rig, name: &str, secs: f64, mut step: impl FnMut(&Rig, u32)) {
    let s0 = rig.status();
    let v0 = rig.totals.lock().unwrap().bytes;
    let f0 = rig.conn_frames();
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed().as_secs_f64() < secs {
        step(rig, i);
        i += 1;
        tokio::time::sleep(Duration::from_millis(16)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let dt = start.elapsed().as_secs_f64();
    let s1 = rig.status();
    let v1 = rig.totals.lock().unwrap().bytes;
    println!(
        "{name}: tiles {:.1} kB/s ({} tiles), video {:.1} kB/s ({} frames), picture exact at the end: {}",
        (s1.tile_bytes - s0.tile_bytes) as f64 / dt / 1e3,
        s1.tiles - s0.tiles,
        (v1 - v0) as f64 / dt / 1e3,
        rig.conn_frames() - f0,
        s1.all_exact()
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (w, h) = (1920u32, 1080u32);
        let rig = Rig::start(w, h, TileSettings::default()).await;
        rig.put(0, 0, w as u16, h as u16, &desktop(w, h, 0));
        // `-- host` measures only the host's processing of a small change.
        if std::env::args().any(|a| a == "host") {
            host_alone(&rig).await;
            return;
        }
        rig.wait_exact(0, Duration::from_secs(20))
            .await
            .expect("first exact picture");
        convergence(&rig, 5).await;
        // Typing: a 10×20 glyph every 100 ms (10 chars/s), a text line across the page.
        scenario(&rig, "typing 10 chars/s", 5.0, |r, i| {
            if i % 6 == 0 {
                let n = i / 6;
                let glyph = noise(10, 20, n)
                    .iter()
                    .map(|b| if *b > 128 { 0x10 } else { 0xf0 })
                    .collect::<Vec<u8>>();
                r.put(
                    100 + (n % 150) as i16 * 10,
                    200 + (n / 150) as i16 * 24,
                    10,
                    20,
                    &glyph,
                );
            }
        })
        .await;
        // Scrolling a text page: a 1200×800 region moves up 24 px every frame.
        let page = desktop(1200, 3000, 9);
        scenario(
            &rig,
            "scrolling a 1200x800 text page at 60 Hz",
            3.0,
            |r, i| {
                let off = (i as usize * 24) % 2200;
                r.put(
                    300,
                    100,
                    1200,
                    800,
                    &page[off * 1200 * 4..(off + 800) * 1200 * 4],
                );
            },
        )
        .await;
        // Last: the host's own processing.
        host_alone(&rig).await;
    });
}
