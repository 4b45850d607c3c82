//! Resilience on emulated WAN paths (issue "Resilience on real networks"): the viewer's bench
//! mode (latency probes, input → decoded picture) against an in-process host streaming the
//! synthetic 1080p picture, through the built-in WAN relay.
//!
//! Scenarios (all three unless named on the command line):
//! * `loss`: 30 ms RTT, 1 % random loss each way, 60 s of probes, desktop scene. Figures:
//!   round-trip percentiles, freezes (gaps between decoded pictures over 100 ms), keyframes.
//!   Bar: no freeze over 100 ms, round-trip p99 ≤ 70 ms.
//! * `rate`: 30 ms RTT; 720p with a 320×180 block of fresh noise in every frame at a 20 Mbit/s
//!   ceiling (the synthetic scenes alone compress too well to load the link); after 8 s the
//!   path drops to a 10 Mbit/s bottleneck (the relay's 50 ms drop-tail queue). Figures: when
//!   the encoder's bitrate and the received rate fall below 10 Mbit/s, round trips
//!   before/after. Bar: adapts within 2 s, latency does not keep growing.
//! * `blackout`: 30 ms RTT, the path cut for 3 s, five times. Figures: from the path's return
//!   to the first new picture and to the first probe answered. Bar: both within 1 s.
//!
//! `cargo bench -p sightline-benches --bench resilience [-- loss|rate|blackout]`; under
//! `cargo test` (no `--bench`) a short smoke run of each checks the plumbing only.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sightline_certs::TrustPolicy;
use sightline_host::capture::synthetic::{Scene, SyntheticSource};
use sightline_host::capture::{
    CaptureError, CaptureOutcome, CapturedFrame, CursorImage, CursorState, FrameSource,
    PixelFormat, Rect,
};
use sightline_host::probe::ProbeTarget;
use sightline_tests::{Pki, VideoHost};
use sightline_viewer::bench::{run_bench, BenchOptions, BenchReport, WanChange};
use sightline_viewer::wan::WanSpec;

/// The synthetic picture with a block of fresh noise in every frame: content that needs more
/// bits than any path here carries (the synthetic scenes alone compress too well — scrolling
/// text is motion compensation's best case — to load a 10 Mbit/s link at 720p).
struct Noisy {
    inner: SyntheticSource,
    block: Rect,
    seed: u64,
}

impl FrameSource for Noisy {
    fn describe(&self) -> String {
        format!(
            "{} + noise {}x{}",
            self.inner.describe(),
            self.block.w,
            self.block.h
        )
    }
    fn size(&self) -> (u32, u32) {
        self.inner.size()
    }
    fn format(&self) -> PixelFormat {
        self.inner.format()
    }
    fn next_frame(
        &mut self,
        frame: &mut CapturedFrame,
        timeout: Duration,
    ) -> Result<CaptureOutcome, CaptureError> {
        let out = self.inner.next_frame(frame, timeout)?;
        if let CaptureOutcome::Frame = out {
            let b = self.block;
            for y in b.y..(b.y + b.h).min(frame.height) {
                let row = y as usize * frame.stride;
                for x in b.x..(b.x + b.w).min(frame.width) {
                    self.seed ^= self.seed << 13;
                    self.seed ^= self.seed >> 7;
                    self.seed ^= self.seed << 17;
                    let v = (self.seed & 0x3F) as u8 + 96;
                    let px = row + x as usize * 4;
                    frame.data[px..px + 3].copy_from_slice(&[v, v ^ 0x15, v ^ 0x2A]);
                }
            }
            if !frame.damage.is_empty() {
                frame.damage.push(b);
            }
        }
        Ok(out)
    }
    fn cursor(&mut self) -> Option<CursorState> {
        self.inner.cursor()
    }
    fn cursor_image(&mut self) -> Option<CursorImage> {
        self.inner.cursor_image()
    }
    fn invalidate(&mut self) {
        self.inner.invalidate()
    }
    fn poll_interval(&self) -> Duration {
        self.inner.poll_interval()
    }
    fn show_probe(&mut self, id: u32, host_recv_us: u64) -> bool {
        self.inner.show_probe(id, host_recv_us)
    }
}

struct Run {
    report: BenchReport,
    /// (when, encoder bitrate bits/s), every 100 ms.
    encoder_bps: Vec<(Instant, u32)>,
}

impl Run {
    /// The encoder samples as (ms after the start of probing, bits/s).
    fn encoder_series(&self) -> Vec<(i64, u32)> {
        let Some(t0) = self.report.started_at else {
            return Vec::new();
        };
        self.encoder_bps
            .iter()
            .map(|(t, b)| {
                let ms = if *t >= t0 {
                    (*t - t0).as_millis() as i64
                } else {
                    -((t0 - *t).as_millis() as i64)
                };
                (ms, *b)
            })
            .collect()
    }
}

fn spec(s: &str) -> WanSpec {
    s.parse().expect("valid WAN spec")
}

/// One bench run against a fresh host.
/// One bench run against a fresh host; `noise` adds a block of noise (w, h) to every frame.
async fn run(
    scene: Scene,
    size: (u32, u32),
    noise: Option<(u32, u32)>,
    bitrate_bps: u32,
    opts: BenchOptions,
) -> Run {
    let pki = Pki::new();
    let synthetic = SyntheticSource::new(size.0, size.1, 60).with_scene(scene);
    let source: Box<dyn FrameSource> = match noise {
        Some((w, h)) => Box::new(Noisy {
            inner: synthetic,
            // In the middle: clear of the probe strip (top right) and the barcode (top left).
            block: Rect {
                x: size.0 / 2 - w / 2,
                y: size.1 / 2 - h / 2,
                w,
                h,
            },
            seed: 0x9E37_79B9_7F4A_7C15,
        }),
        None => Box::new(synthetic),
    };
    let mut host = VideoHost::start(&pki, source, 60, bitrate_bps, 2);
    let feed = host.feed.clone();
    let probes = ProbeTarget::Feed(host.feed.clone());
    let addr = host.addr;
    let router = tokio::spawn(async move {
        sightline_tests::route_input(&mut host.events, None, Some(&probes)).await;
        drop(host);
    });
    let encoder_bps = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let out = encoder_bps.clone();
        let feed = feed.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                out.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((Instant::now(), feed.encoder_bitrate_bps()));
            }
        })
    };
    let known = pki.known_hosts("known_hosts", addr, &pki.host);
    let conn = pki.connect_options(addr, &pki.viewer, known, TrustPolicy::PinnedOnly);
    let report = run_bench(conn, opts).await.expect("bench ran");
    sampler.abort();
    router.abort();
    feed.stop();
    let encoder_bps =
        std::mem::take(&mut *encoder_bps.lock().unwrap_or_else(PoisonError::into_inner));
    Run {
        report,
        encoder_bps,
    }
}

fn pct(v: &mut [u64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1] as f64 / 1e3
}

fn round_trips(r: &BenchReport, from_ms: u64, to_ms: u64) -> Vec<u64> {
    r.samples
        .iter()
        .filter(|s| (from_ms..to_ms).contains(&s.sent_at_ms))
        .map(|s| s.total_us)
        .collect()
}

fn event_at(r: &BenchReport, what: &str) -> Option<u64> {
    r.events
        .iter()
        .find(|(_, e)| e.starts_with(what))
        .map(|(t, _)| *t)
}

async fn loss(full: bool) {
    let samples = if full { 800 } else { 40 };
    let run = run(
        Scene::Desktop,
        (1920, 1080),
        None,
        20_000_000,
        BenchOptions {
            samples,
            // ~75 ms apart on average: 800 probes ≈ 60 s.
            interval: (Duration::from_millis(30), Duration::from_millis(120)),
            wan: Some(spec("rtt=30ms,loss=1%")),
            progress: full,
            ..BenchOptions::default()
        },
    )
    .await;
    let r = &run.report;
    print!("{}", r.table());
    let mut all: Vec<u64> = r.samples.iter().map(|s| s.total_us).collect();
    let span = r.decoded_at_ms.last().copied().unwrap_or(0);
    let freezes = r.freezes();
    println!(
        "loss: rtt=30ms,loss=1% for {:.1} s: {} probes, {} lost; round trip p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
         longest gap between pictures {:.1} ms; freezes over 100 ms: {}",
        span as f64 / 1e3,
        r.samples.len(),
        r.lost,
        pct(&mut all, 0.5),
        pct(&mut all, 0.99),
        pct(&mut all, 1.0),
        r.longest_gap_us as f64 / 1e3,
        freezes.len()
    );
}

async fn rate(full: bool) {
    let (before_s, after_s) = if full { (8, 22) } else { (2, 4) };
    let step = Duration::from_secs(before_s);
    let samples = ((before_s + after_s) * 1000 / 45) as usize;
    let run = run(
        Scene::Desktop,
        (1280, 720),
        Some((320, 180)),
        20_000_000,
        BenchOptions {
            samples,
            interval: (Duration::from_millis(20), Duration::from_millis(60)),
            probe_timeout: Duration::from_millis(1500),
            wan: Some(spec("rtt=30ms")),
            schedule: vec![(step, WanChange::Spec(spec("rtt=30ms,rate=10mbit")))],
            progress: full,
            ..BenchOptions::default()
        },
    )
    .await;
    let r = &run.report;
    print!("{}", r.table());
    let Some(step_ms) = event_at(r, "path now") else {
        println!("rate: the rate limit was never applied (run too short)");
        return;
    };
    // The encoder samples are on the host's clock from its start; align them on the bench's
    // by the offset between the two starts (the first decoded picture ≈ host start + setup).
    let limit = 10_000_000u32;
    let first_pic = r.decoded_at_ms.first().copied().unwrap_or(0);
    let enc = run.encoder_series();
    let enc_below = enc
        .iter()
        .find(|(t, b)| *t > step_ms as i64 && *b < limit)
        .map(|(t, _)| t - step_ms as i64);
    let received_below = r
        .throughput
        .iter()
        .filter(|(t, _)| *t > step_ms)
        .find(|(_, mbps)| *mbps < 10.0 * 0.95)
        .map(|(t, _)| t - step_ms);
    let peak_before = r
        .throughput
        .iter()
        .filter(|(t, _)| *t > first_pic + 1000 && *t < step_ms)
        .map(|(_, m)| *m)
        .fold(0.0, f64::max);
    let enc_before = enc
        .iter()
        .filter(|(t, _)| *t > 0 && *t < step_ms as i64)
        .map(|(_, b)| *b)
        .min()
        .unwrap_or(0);
    let enc_after: Vec<u32> = enc
        .iter()
        .filter(|(t, _)| *t > step_ms as i64 + 2000)
        .map(|(_, b)| *b)
        .collect();
    let enc_after_max = enc_after.iter().copied().max().unwrap_or(0);
    let enc_after_min = enc_after.iter().copied().min().unwrap_or(0);
    let after = step_ms + 2000;
    let end = r.samples.last().map_or(after, |s| s.sent_at_ms);
    let mid = after + (end.saturating_sub(after)) / 2;
    let mut before_rt = round_trips(r, first_pic, step_ms);
    let mut early = round_trips(r, after, mid);
    let mut late = round_trips(r, mid, end + 1);
    let mut transition = round_trips(r, step_ms, after);
    println!(
        "rate: 720p + noise, 20 Mbit/s ceiling, path 30 ms RTT then 10 Mbit/s at {:.1} s: received {:.1} Mbit/s peak before; \
         encoder target below 10 Mbit/s {} after the step, received rate below 9.5 Mbit/s {} after; \
         encoder target before ≥ {:.1} Mbit/s, from 2 s after the step {:.1}–{:.1} Mbit/s",
        step_ms as f64 / 1e3,
        peak_before,
        enc_below.map_or("never".into(), |d| format!("{d} ms")),
        received_below.map_or("never".into(), |d| format!("{d} ms")),
        f64::from(enc_before) / 1e6,
        f64::from(enc_after_min) / 1e6,
        f64::from(enc_after_max) / 1e6,
    );
    println!(
        "rate: round trip p50/p99 (ms): before {:.1}/{:.1}; first 2 s after {:.1}/{:.1}; then {:.1}/{:.1} ({} probes) and later {:.1}/{:.1} ({} probes); lost {}",
        pct(&mut before_rt, 0.5),
        pct(&mut before_rt, 0.99),
        pct(&mut transition, 0.5),
        pct(&mut transition, 0.99),
        pct(&mut early, 0.5),
        pct(&mut early, 0.99),
        early.len(),
        pct(&mut late, 0.5),
        pct(&mut late, 0.99),
        late.len(),
        r.lost
    );
    let series: Vec<String> = r
        .throughput
        .iter()
        .filter(|(t, _)| *t + 1000 >= step_ms && *t <= step_ms + 4000)
        .map(|(t, m)| format!("{:+.2}s {m:.1}", (*t as f64 - step_ms as f64) / 1e3))
        .collect();
    println!(
        "rate: received Mbit/s around the step: {}",
        series.join(", ")
    );
}

async fn blackout(full: bool) {
    let cycles: u64 = if full { 5 } else { 1 };
    let period = 9_000u64;
    let mut schedule = Vec::new();
    for i in 0..cycles {
        let cut = 3_000 + i * period;
        schedule.push((Duration::from_millis(cut), WanChange::Blackhole(true)));
        schedule.push((
            Duration::from_millis(cut + 3_000),
            WanChange::Blackhole(false),
        ));
    }
    let total_ms = 3_000 + cycles * period;
    let run = run(
        Scene::Desktop,
        (1920, 1080),
        None,
        20_000_000,
        BenchOptions {
            samples: (total_ms / 40) as usize,
            interval: (Duration::from_millis(10), Duration::from_millis(40)),
            probe_timeout: Duration::from_millis(400),
            wan: Some(spec("rtt=30ms")),
            schedule,
            progress: full,
            ..BenchOptions::default()
        },
    )
    .await;
    let r = &run.report;
    print!("{}", r.table());
    let restores: Vec<u64> = r
        .events
        .iter()
        .filter(|(_, e)| e == "path restored")
        .map(|(t, _)| *t)
        .collect();
    for (i, at) in restores.iter().enumerate() {
        let picture = r.first_picture_after(*at).map(|t| t - at);
        let input = r.first_probe_after(*at).map(|t| t - at);
        let fmt = |v: Option<u64>| v.map_or("none".into(), |v| format!("{v} ms"));
        println!(
            "blackout {}: 3 s cut, path back at {:.1} s: picture after {}, input (probe sent after the return, seen) after {}",
            i + 1,
            *at as f64 / 1e3,
            fmt(picture),
            fmt(input)
        );
    }
}

fn main() {
    // RUST_LOG=sightline_host::media_send=debug shows every rate decision.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench");
    let named: Vec<&str> = args
        .iter()
        .skip(1)
        .map(String::as_str)
        .filter(|a| ["loss", "rate", "blackout"].contains(a))
        .collect();
    let want = |n: &str| named.is_empty() || named.contains(&n);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        if want("loss") {
            loss(full).await;
        }
        if want("rate") {
            rate(full).await;
        }
        if want("blackout") {
            blackout(full).await;
        }
    });
}
