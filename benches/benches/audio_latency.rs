//! Capture → playback latency of audio, end to end on a real PulseAudio, and its stability over
//! a minute with 5 % packet loss through the WAN emulator.
//!
//! How it is measured: a click train (1 ms bursts every 250 ms over a quiet tone) is played into
//! the host's null sink. Two recorders in this process capture the monitor of the host's sink
//! (what the workstation plays) and the monitor of the viewer's sink (what the viewer's speakers
//! get), each sample stamped with the monotonic clock from cpal's capture timestamps. The delay
//! of every click from one to the other is the capture → playback latency: host capture (5 ms
//! fragments), framing and encoding, QUIC on loopback, the jitter buffer, decoding and the
//! viewer's output buffer (two device periods). Both recorders are stamped the same way, so
//! their own latency cancels; the calibration line measures what is left (two recorders on one
//! monitor).
//!
//! `cargo bench -p sightline-benches --bench audio_latency` (needs PulseAudio: it uses
//! `PULSE_SERVER` or starts a private one). `SIGHTLINE_BENCH_QUICK=1`, or running it without
//! `--bench` (as `cargo test --all-targets` does): short runs, no minute.

use std::time::{Duration, Instant};

use sightline_host::audio::CodecChoice;
use sightline_protocol::audio::layout::Speaker;
use sightline_protocol::msg::ChannelLayout;
use sightline_tests::audio_chain::{click_delays, AudioChain, HostAudio, TimedRecorder};
use sightline_tests::pulse::{self, NullSink};
use sightline_tests::Pki;
use sightline_viewer::wan::WanSpec;

const CLICK_EVERY: Duration = Duration::from_millis(250);

struct Case {
    name: &'static str,
    layout: ChannelLayout,
    codec: CodecChoice,
    period_frames: u32,
    wan: Option<&'static str>,
    seconds: f64,
}

#[derive(Default)]
struct Figures {
    delays_ms: Vec<(f64, Option<f64>)>,
}

fn pct(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

async fn run_case(pki: &Pki, host: &NullSink, view: &NullSink, c: &Case) -> (Figures, String) {
    let wan: Option<WanSpec> = c.wan.map(|w| w.parse().expect("WAN spec"));
    let chain = AudioChain::start(
        pki,
        HostAudio::Sink(host.name.clone()),
        c.layout,
        c.codec,
        &view.name,
        c.period_frames,
        wan,
    )
    .await;
    // Let the jitter buffer settle from its 20 ms start.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = TimedRecorder::start(&host.monitor());
    let got = TimedRecorder::start(&view.monitor());
    let t0 = Instant::now();
    let player = pulse::play(
        &host.name,
        &[Speaker::FrontLeft, Speaker::FrontRight],
        pulse::tone_with_clicks(c.seconds, CLICK_EVERY),
    );
    tokio::task::spawn_blocking(move || player.join())
        .await
        .expect("player thread")
        .expect("pacat");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let snap = chain.audio.snapshot();
    chain.stop().await;
    let sent_at = sent.onsets(0.5, Duration::from_millis(100));
    let got_at = got.onsets(0.5, Duration::from_millis(100));
    let delays = click_delays(&sent_at, &got_at, Duration::from_millis(200));
    let mut f = Figures::default();
    for (s, d) in sent_at.iter().zip(&delays) {
        f.delays_ms.push((
            s.saturating_duration_since(t0).as_secs_f64(),
            d.map(|d| d.as_secs_f64() * 1e3),
        ));
    }
    let viewer = format!(
        "viewer: {} concealed ({} lost, {} underruns), {} late, device gaps {}, \
         drift/delay control {}+ {}- samples, jitter {:.2} ms",
        snap.concealed,
        snap.lost,
        snap.underruns,
        snap.late,
        snap.device_gaps,
        snap.inserted_samples,
        snap.dropped_samples,
        snap.jitter_ms
    );
    (f, viewer)
}

fn main() {
    // `cargo bench` passes `--bench`; without it (`cargo test --all-targets` runs this binary
    // too) it is a short smoke run, as with SIGHTLINE_BENCH_QUICK.
    let quick = std::env::var_os("SIGHTLINE_BENCH_QUICK").is_some()
        || !std::env::args().any(|a| a == "--bench");
    pulse::ensure_server();
    let host = NullSink::new("sl_bench_host");
    let view = NullSink::new("sl_bench_view");
    let pki = Pki::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    // Calibration: both recorders on the same monitor.
    let cal = rt.block_on(async {
        let a = TimedRecorder::start(&host.monitor());
        let b = TimedRecorder::start(&host.monitor());
        let player = pulse::play(
            &host.name,
            &[Speaker::FrontLeft, Speaker::FrontRight],
            pulse::tone_with_clicks(3.0, CLICK_EVERY),
        );
        let _ = tokio::task::spawn_blocking(move || player.join()).await;
        let a_at = a.onsets(0.5, Duration::from_millis(100));
        let b_at = b.onsets(0.5, Duration::from_millis(100));
        let d: Vec<f64> = a_at
            .iter()
            .zip(&b_at)
            .map(|(x, y)| {
                (y.saturating_duration_since(*x).as_secs_f64()
                    - x.saturating_duration_since(*y).as_secs_f64())
                    * 1e3
            })
            .collect();
        (
            pct(&d, 0.5),
            pct(&d.iter().map(|v| v.abs()).collect::<Vec<_>>(), 1.0),
        )
    });
    println!(
        "calibration (two recorders on one monitor): median {:+.2} ms, worst {:.2} ms",
        cal.0, cal.1
    );

    let secs = if quick { 5.0 } else { 12.0 };
    let mut cases = vec![
        Case {
            name: "stereo Opus 5 ms, loopback, 5 ms device period",
            layout: ChannelLayout::Stereo,
            codec: CodecChoice::Opus,
            period_frames: 240,
            wan: None,
            seconds: secs,
        },
        Case {
            name: "stereo PCM 24-bit, loopback, 5 ms device period",
            layout: ChannelLayout::Stereo,
            codec: CodecChoice::Pcm,
            period_frames: 240,
            wan: None,
            seconds: secs,
        },
        Case {
            name: "7.1 Opus 5 ms, loopback, 5 ms device period",
            layout: ChannelLayout::Surround71,
            codec: CodecChoice::Opus,
            period_frames: 240,
            wan: None,
            seconds: secs,
        },
        Case {
            name: "stereo Opus 5 ms, loopback, 10 ms device period",
            layout: ChannelLayout::Stereo,
            codec: CodecChoice::Opus,
            period_frames: 480,
            wan: None,
            seconds: secs,
        },
    ];
    if !quick {
        cases.push(Case {
            name: "stereo Opus 5 ms, WAN loss=5% (both ways), 10 ms device period, 60 s",
            layout: ChannelLayout::Stereo,
            codec: CodecChoice::Opus,
            period_frames: 480,
            wan: Some("loss=5%"),
            seconds: 60.0,
        });
    }
    println!(
        "\n{:<72} {:>6} {:>6} {:>6} {:>6} {:>9}",
        "case (capture → playback, ms)", "p50", "p95", "max", "min", "clicks"
    );
    for c in &cases {
        let (f, viewer) = rt.block_on(run_case(&pki, &host, &view, c));
        let got: Vec<f64> = f.delays_ms.iter().filter_map(|(_, d)| *d).collect();
        println!(
            "{:<72} {:>6.1} {:>6.1} {:>6.1} {:>6.1} {:>4}/{:<4}",
            c.name,
            pct(&got, 0.5),
            pct(&got, 0.95),
            pct(&got, 1.0),
            pct(&got, 0.0),
            got.len(),
            f.delays_ms.len()
        );
        println!("    {viewer}");
        if c.seconds >= 30.0 {
            // Drift: the latency floor (10th percentile) and median per 10 s, and the slope of
            // a least-squares line through every click.
            let mut line = String::from("    per 10 s (p10/p50):");
            let mut t = 0.0;
            while t < c.seconds {
                let w: Vec<f64> = f
                    .delays_ms
                    .iter()
                    .filter(|(s, _)| *s >= t && *s < t + 10.0)
                    .filter_map(|(_, d)| *d)
                    .collect();
                line += &format!(" {:.0}/{:.0}", pct(&w, 0.1), pct(&w, 0.5));
                t += 10.0;
            }
            let pts: Vec<(f64, f64)> = f
                .delays_ms
                .iter()
                .filter_map(|(s, d)| d.map(|d| (*s, d)))
                .collect();
            let n = pts.len() as f64;
            let (mx, my) = (
                pts.iter().map(|p| p.0).sum::<f64>() / n,
                pts.iter().map(|p| p.1).sum::<f64>() / n,
            );
            let slope = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>()
                / pts.iter().map(|p| (p.0 - mx).powi(2)).sum::<f64>();
            println!("{line}");
            println!(
                "    slope {slope:+.3} ms per s ({:+.1} ms over the run)",
                slope * c.seconds
            );
        }
    }
}
