//! Bench mode with the viewer window (on Xvfb, wgpu on lavapipe): the round trip ends when the
//! picture showing the probe was presented, so the present stage is measured too.

use std::time::Duration;

use sightline_certs::TrustPolicy;
use sightline_host::capture::synthetic::{Scene, SyntheticSource};
use sightline_host::probe::ProbeTarget;
use sightline_tests::xvfb::{private_dir, Xvfb};
use sightline_tests::{Pki, VideoHost};
use sightline_viewer::app::WindowOptions;
use sightline_viewer::bench::{run_bench_windowed, BenchOptions, STAGES};

#[test]
fn windowed_bench_measures_the_present_stage() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let x = Xvfb::start(1280, 720, 24);
    let runtime_dir = private_dir("bench-window");
    // This test binary has a single test: nothing reads the environment concurrently.
    std::env::set_var("DISPLAY", x.name());
    std::env::set_var("XDG_RUNTIME_DIR", &runtime_dir);
    std::env::remove_var("WAYLAND_DISPLAY");

    let pki = Pki::new();
    let host_rt = tokio::runtime::Runtime::new().unwrap();
    let addr = host_rt.block_on(async {
        let source = SyntheticSource::new(640, 360, 60).with_scene(Scene::Desktop);
        let mut host = VideoHost::start(&pki, Box::new(source), 60, 4_000_000, 2);
        let probes = ProbeTarget::Feed(host.feed.clone());
        let addr = host.addr;
        tokio::spawn(async move {
            sightline_tests::route_input(&mut host.events, None, Some(&probes)).await;
            drop(host);
        });
        addr
    });
    let known = pki.known_hosts("known_hosts", addr, &pki.host);
    let opts = pki.connect_options(addr, &pki.viewer, known, TrustPolicy::PinnedOnly);
    let viewer_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = run_bench_windowed(
        viewer_rt,
        opts,
        BenchOptions {
            samples: 20,
            interval: (Duration::from_millis(30), Duration::from_millis(80)),
            progress: false,
            ..BenchOptions::default()
        },
        WindowOptions {
            title: "sightline-bench-window".into(),
            initial_size: Some((1280, 720)),
            ..WindowOptions::default()
        },
    )
    .expect("bench ran");
    print!("{}", report.table());
    assert!(report.samples.len() >= 15, "lost {}", report.lost);
    let present = STAGES.iter().position(|s| *s == "present").unwrap();
    for s in &report.samples {
        assert!(
            s.stages_us[present] > 0,
            "probe {}: no present time in {:?}",
            s.id,
            s.stages_us
        );
    }
    let ratio = report.stage_sum_ratio();
    assert!(
        (0.8..=1.2).contains(&ratio),
        "stage sum / round trip = {ratio}"
    );
    drop(host_rt);
}
