//! Bench mode end to end over real QUIC: a host streaming the synthetic desktop answers latency
//! probes; the viewer's bench measures input → photon per stage. Checks the JSON has every stage
//! and that the stages add up to the measured round trip (±20 %) — once with the host's clock
//! where the viewer's is, once with the host's clock 7,000 s ahead, which only the clock-offset
//! correction can take out of the stages.

use std::time::{Duration, Instant};

use sightline_certs::TrustPolicy;
use sightline_host::capture::synthetic::{Scene, SyntheticSource};
use sightline_host::probe::ProbeTarget;
use sightline_protocol::time::WireClock;
use sightline_tests::{Pki, VideoHost};
use sightline_viewer::bench::{run_bench, BenchOptions, BenchReport, STAGES};

async fn bench_against(skew_s: u64) -> BenchReport {
    let pki = Pki::new();
    let now = Instant::now();
    let real = sightline_host::net::host_clock(now);
    let clock = WireClock::new(now, real.micros(now) + skew_s * 1_000_000);
    let source = SyntheticSource::new(640, 360, 60).with_scene(Scene::Desktop);
    let mut host = VideoHost::start_with_clock(&pki, Box::new(source), 60, 4_000_000, 2, clock);
    let probes = ProbeTarget::Feed(host.feed.clone());
    let addr = host.addr;
    let router = tokio::spawn(async move {
        sightline_tests::route_input(&mut host.events, None, Some(&probes)).await;
        drop(host);
    });
    let known = pki.known_hosts("known_hosts", addr, &pki.host);
    let opts = pki.connect_options(addr, &pki.viewer, known, TrustPolicy::PinnedOnly);
    let report = run_bench(
        opts,
        BenchOptions {
            samples: 25,
            interval: (Duration::from_millis(20), Duration::from_millis(60)),
            progress: false,
            ..BenchOptions::default()
        },
    )
    .await
    .expect("bench ran");
    router.abort();
    print!("{}", report.table());
    report
}

fn check(report: &BenchReport) {
    assert!(report.samples.len() >= 20, "lost {} of 25", report.lost);
    let json = report.json();
    for stage in STAGES {
        assert!(
            json["summary"]["stages"][stage]["p50_us"].is_u64(),
            "stage {stage} missing from {json}"
        );
    }
    assert!(json["summary"]["total"]["p99_us"].is_u64());
    assert_eq!(
        json["samples"].as_array().unwrap().len(),
        report.samples.len()
    );
    let ratio = report.stage_sum_ratio();
    assert!(
        (0.8..=1.2).contains(&ratio),
        "stage sum / round trip = {ratio}"
    );
    // Every probe's stages: none absurd (a clock error of seconds would show as one stage of
    // seconds and the sum far above the round trip).
    for s in &report.samples {
        let sum: u64 = s.stages_us.iter().sum();
        assert!(
            sum as f64 <= s.total_us as f64 * 1.2 + 2_000.0,
            "probe {}: stages {:?} sum {sum} µs, round trip {} µs",
            s.id,
            s.stages_us,
            s.total_us
        );
        assert!(s.total_us < 2_000_000, "{s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reports_every_stage_and_they_add_up() {
    check(&bench_against(0).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_offset_correction_handles_a_skewed_host_clock() {
    let r = bench_against(7_000).await;
    check(&r);
    // The input stage is a loopback transit: it cannot be near the 7,000 s skew.
    let mut input: Vec<u64> = r.samples.iter().map(|s| s.stages_us[0]).collect();
    input.sort_unstable();
    assert!(input[input.len() / 2] < 50_000, "input stage {input:?}");
}
