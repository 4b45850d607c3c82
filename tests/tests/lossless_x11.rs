//! Lossless tiles on a real X display (Xvfb, 1920×1080): a small change reaches the viewer's
//! picture bit-exact as tiles (no video frame needed), full-screen motion goes through video,
//! and once the motion stops the whole picture converges to bit-exact, proven by the host's
//! hashes and checked here against the X server's own pixels.
//!
//! Times are printed, not asserted (the `lossless` bench measures them); the deadlines below
//! only keep a broken build from hanging.

use std::time::{Duration, Instant};

use sightline_host::tiles::TileSettings;
use sightline_tests::lossless::{desktop, noise, Rig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_changes_are_exact_motion_is_video_and_stillness_converges_proven() {
    let (w, h) = (1920u32, 1080u32);
    let rig = Rig::start(w, h, TileSettings::default()).await;
    rig.put(0, 0, w as u16, h as u16, &desktop(w, h, 0));
    let first = rig
        .wait_exact(0, Duration::from_secs(20))
        .await
        .expect("the still desktop never became bit-exact on the viewer");
    let s = rig.status();
    println!(
        "still desktop exact after start; tiles {} ({} bytes), checks {}",
        s.tiles, s.tile_bytes, s.fidelity.checks
    );
    let _ = first;

    // 1. A small change: 480×240 of noise (a codec's worst case) — exact, and no video.
    let video_before = rig.conn_frames();
    let patch = noise(480, 240, 7);
    let t0 = Instant::now();
    rig.put(700, 400, 480, 240, &patch);
    let mut arrived = None;
    while t0.elapsed() < Duration::from_secs(10) {
        if rig.differing(&patch, (700, 400, 480, 240), false) == Some(0) {
            arrived = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    let arrived = arrived.expect("the 480x240 change never arrived bit-exact");
    println!(
        "480x240 noise bit-exact on the viewer after {:.1} ms",
        arrived.as_secs_f64() * 1e3
    );
    let checks = rig.status().fidelity.checks;
    rig.wait_exact(checks, Duration::from_secs(10))
        .await
        .expect("after the small change the picture is proven exact again");
    assert_eq!(
        rig.conn_frames(),
        video_before,
        "a small change needed no video frame"
    );

    // 2. Full-screen motion for 2 s (a scrolling desktop): video carries it.
    let tall = desktop(w, h * 2, 3);
    let stride = (w * 4) as usize;
    let motion_start = Instant::now();
    let mut step = 0usize;
    while motion_start.elapsed() < Duration::from_secs(2) {
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
    let during = rig.status();
    let video_frames = rig.conn_frames() - video_before;
    println!(
        "motion: {step} screens drawn, {video_frames} video frames, lossless share at the end {:.0} %",
        during.lossless_share * 100.0
    );
    assert!(
        video_frames >= 10,
        "full-screen motion went through video ({video_frames} frames)"
    );
    assert!(
        during.lossless_share < 0.5,
        "during motion most of the screen is video ({:.2})",
        during.lossless_share
    );

    // 3. Motion stops: the whole picture becomes bit-exact, proven.
    let stopped = Instant::now();
    let checks = rig.status().fidelity.checks;
    let exact = rig
        .wait_exact(checks, Duration::from_secs(10))
        .await
        .expect("the still picture never became bit-exact after the motion");
    let s = rig.status();
    println!(
        "after motion: bit-exact and proven {:.0} ms after it stopped (hash checks {}, mismatches so far {})",
        (exact - stopped).as_secs_f64() * 1e3,
        s.fidelity.checks,
        s.fidelity.mismatches_total
    );
    assert!(s.fidelity.all_exact());
}
