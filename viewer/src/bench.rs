//! Bench mode: the round trip an artist feels, input → photon, measured on the pixels.
//!
//! The viewer sends latency probes ([`InputEvent::Probe`]) at random intervals; the host shows
//! each one in the next captured frame as a strip of cells ([`sightline_protocol::probe`]) that
//! also carries the host's arrival time; the viewer finds the strip in a decoded picture. The
//! round trip runs from sending the probe to the picture that shows it being decoded (headless;
//! a window would add its present time), on the viewer's clock alone. It is split into stages
//! with the frame's host timestamps, moved onto the viewer's clock with the session's estimated
//! offset: input transit, wait for capture, capture, convert, encode, send, network, reassemble,
//! decode, present. The stages telescope: their sum is the round trip up to clamping of
//! negative stages from clock error, which the report shows as the stage-sum check.
//!
//! `--wan SPEC` puts the built-in WAN emulator ([`crate::wan`]) between viewer and host.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::debug;

use sightline_protocol::msg::InputEvent;
use sightline_protocol::probe;
use sightline_protocol::time::{ClockEstimate, HostMicros};

use crate::app::{PresentRecord, WindowOptions, WindowShared};
use crate::bench_record::Recorder;
use crate::decode::FrameSink;
use crate::frame::DecodedFrame;
use crate::net::{connect_media, resolve, viewer_clock, ConnectError, ConnectOptions, Media};
use crate::stats::{current_clock, FrameTimes, Percentiles};
use crate::wan::{WanRelay, WanSpec};

/// Stage names, in order.
pub const STAGES: [&str; 10] = [
    "input",
    "wait_capture",
    "capture",
    "convert",
    "encode",
    "send",
    "network",
    "reassemble",
    "decode",
    "present",
];

/// How to run a bench.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Probes to measure.
    pub samples: usize,
    /// Random wait between a probe's answer and the next probe, bounds.
    pub interval: (Duration, Duration),
    /// A probe not seen within this long counts as lost.
    pub probe_timeout: Duration,
    /// Route through the WAN emulator with this spec.
    pub wan: Option<WanSpec>,
    /// Print a progress bar on stderr.
    pub progress: bool,
    /// Seed for the intervals.
    pub seed: u64,
    /// Changes to the WAN emulator during the run, at offsets from the start of probing
    /// (needs `wan`): cut the path, restore it, change its rate — for measuring recovery.
    pub schedule: Vec<(Duration, WanChange)>,
}

/// A change to the emulated path during a bench run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WanChange {
    /// Cut (`true`) or restore (`false`) the path both ways.
    Blackhole(bool),
    /// New conditions from now on.
    Spec(WanSpec),
}

impl std::fmt::Display for WanChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WanChange::Blackhole(true) => write!(f, "path cut"),
            WanChange::Blackhole(false) => write!(f, "path restored"),
            WanChange::Spec(s) => {
                let s = s.to_string();
                write!(f, "path now {}", s.split(",seed=").next().unwrap_or(&s))
            }
        }
    }
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            samples: 200,
            interval: (Duration::from_millis(30), Duration::from_millis(120)),
            probe_timeout: Duration::from_secs(2),
            wan: None,
            progress: true,
            seed: 0x5157_6874,
            schedule: Vec::new(),
        }
    }
}

/// One measured probe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Probe id.
    pub id: u32,
    /// Input → photon, µs (viewer clock only).
    pub total_us: u64,
    /// Per stage, µs, in [`STAGES`] order.
    pub stages_us: [u64; 10],
    /// Clock-offset uncertainty at the time, µs.
    pub clock_uncertainty_us: u64,
    /// When the probe was sent, ms after the start of probing.
    pub sent_at_ms: u64,
}

/// Splits a probe's round trip into stages.
///
/// `sent_us`: viewer clock when the probe was sent; `host_recv`: host clock when it arrived;
/// `frame`: the first decoded frame that showed it; `presented_us`: viewer clock when that frame
/// was on screen (the decode time when headless).
pub fn stages(
    sent_us: u64,
    host_recv: HostMicros,
    frame: &FrameTimes,
    presented_us: u64,
    clock: &ClockEstimate,
) -> Option<Sample> {
    let host = frame.host?;
    let h = |t: HostMicros| clock.host_to_viewer(t);
    let points = [
        sent_us as i64,
        h(host_recv),
        h(host.capture_start),
        h(host.capture_end),
        h(host.convert_end),
        h(host.encode_end),
        h(host.send),
        frame.first_packet_us as i64,
        frame.reassembled_us as i64,
        frame.decoded_us as i64,
        presented_us as i64,
    ];
    let mut stages_us = [0u64; 10];
    for (i, s) in stages_us.iter_mut().enumerate() {
        *s = (points[i + 1] - points[i]).max(0) as u64;
    }
    Some(Sample {
        id: 0,
        total_us: presented_us.saturating_sub(sent_us),
        stages_us,
        clock_uncertainty_us: clock.uncertainty_us,
        sent_at_ms: 0,
    })
}

/// A probe seen in a decoded frame.
#[derive(Debug, Clone, Copy)]
struct Hit {
    id: u32,
    recv_low: u32,
    times: FrameTimes,
}

/// The decode thread's sink in bench mode: looks for the probe strip in every picture and
/// keeps the longest gap between decoded pictures (a freeze).
struct ProbeSink {
    last: u32,
    tx: std_mpsc::Sender<Hit>,
    prev_decoded_us: Option<u64>,
    longest_gap_us: Arc<AtomicU64>,
    /// Every picture's decode time (viewer wire clock, µs), for freezes over time.
    decoded: Arc<std::sync::Mutex<Vec<u64>>>,
    /// The window's sink, when the bench runs with a window.
    inner: Option<Box<dyn FrameSink>>,
}

impl FrameSink for ProbeSink {
    fn frame(&mut self, f: DecodedFrame) {
        if let Some(prev) = self.prev_decoded_us {
            self.longest_gap_us
                .fetch_max(f.decoded_us.saturating_sub(prev), Ordering::Relaxed);
        }
        let first = self.prev_decoded_us.is_none();
        self.prev_decoded_us = Some(f.decoded_us);
        self.decoded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(f.decoded_us);
        if first {
            // Id 0: "pictures are flowing" (no probe has id 0).
            let _ = self.tx.send(Hit {
                id: 0,
                recv_low: 0,
                times: FrameTimes::of(&f),
            });
        }
        let read = if f.format.bit_depth() > 8 {
            // 10-bit samples: read an 8-bit copy of the rows the strip is in.
            let rows = probe::rect(f.width).3.min(f.height);
            let luma = crate::decoder::luma_rows_8bit(&f, rows);
            probe::read(&luma, f.width as usize, f.width, rows)
        } else {
            probe::read(&f.y, f.y_stride, f.width, f.height)
        };
        if let Some((id, recv_low)) = read {
            if id != self.last {
                self.last = id;
                let _ = self.tx.send(Hit {
                    id,
                    recv_low,
                    times: FrameTimes::of(&f),
                });
            }
        }
        if let Some(inner) = &mut self.inner {
            inner.frame(f);
        }
    }

    fn skipped(&mut self, frame: u32) {
        if let Some(inner) = &mut self.inner {
            inner.skipped(frame);
        }
    }
}

/// What a bench run measured.
#[derive(Debug, Clone, Default)]
pub struct BenchReport {
    /// Measured probes.
    pub samples: Vec<Sample>,
    /// Probes never seen.
    pub lost: usize,
    /// Of the lost probes: never seen in a decoded picture / seen but never presented / seen
    /// before the clock estimate was in.
    pub lost_why: LostWhy,
    /// Longest gap between two decoded pictures while probes ran, µs (a freeze shows here).
    pub longest_gap_us: u64,
    /// WAN emulation used, as given.
    pub wan: Option<String>,
    /// Host name from the welcome.
    pub host: String,
    /// Picture size.
    pub size: (u32, u32),
    /// With a window: the present path (`"cpu (softbuffer; …)"`, `"gpu (…)"`).
    pub renderer: Option<String>,
    /// With a window: the present records of the frames that showed a probe.
    pub presents: Vec<PresentRecord>,
    /// Every picture's decode time, ms after the start of probing.
    pub decoded_at_ms: Vec<u64>,
    /// What happened to the path and the link, ms after the start of probing.
    pub events: Vec<(u64, String)>,
    /// Video received, Mbit/s per 250 ms, at ms after the start of probing.
    pub throughput: Vec<(u64, f64)>,
    /// When probing started (the zero of every `_ms` time above).
    pub started_at: Option<Instant>,
}

/// Gaps between pictures longer than this count as freezes.
pub const FREEZE_MS: u64 = 100;

impl BenchReport {
    /// Gaps between consecutive pictures longer than [`FREEZE_MS`]: (start ms, length ms).
    pub fn freezes(&self) -> Vec<(u64, u64)> {
        self.decoded_at_ms
            .windows(2)
            .filter(|w| w[1] - w[0] > FREEZE_MS)
            .map(|w| (w[0], w[1] - w[0]))
            .collect()
    }

    /// The first picture decoded at or after `t_ms`.
    pub fn first_picture_after(&self, t_ms: u64) -> Option<u64> {
        self.decoded_at_ms.iter().copied().find(|&t| t >= t_ms)
    }

    /// The first probe sent at or after `t_ms` that came back: when it was seen (ms).
    pub fn first_probe_after(&self, t_ms: u64) -> Option<u64> {
        self.samples
            .iter()
            .filter(|s| s.sent_at_ms >= t_ms)
            .map(|s| s.sent_at_ms + s.total_us / 1000)
            .min()
    }
}

/// Where lost probes went missing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LostWhy {
    /// Not found in any decoded picture in time.
    pub not_decoded: usize,
    /// Found in a decoded picture, but no present of that picture (or a later one) in time.
    pub not_presented: usize,
    /// Found, but no clock offset estimate or host times to measure it with.
    pub no_clock: usize,
}

/// Why a bench could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Connecting failed.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The WAN relay could not start.
    #[error("WAN emulator: {0}")]
    Wan(std::io::Error),
    /// The host does not show probes (too old, no video, or input refused).
    #[error("the host does not answer latency probes: {0}")]
    NoProbes(String),
    /// No picture arrived.
    #[error("no video arrived within {0:?}")]
    NoVideo(Duration),
    /// The window could not run.
    #[error("window: {0}")]
    Window(String),
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_micros() as u64;
        lo + Duration::from_micros(if span == 0 { 0 } else { self.next() % span })
    }
}

/// Starts the WAN emulator in front of the host when `wan` asks for it and points `opts` at it.
/// Keep the returned relay alive for the session.
async fn start_wan(
    opts: &mut ConnectOptions,
    wan: Option<WanSpec>,
) -> Result<Option<Arc<WanRelay>>, BenchError> {
    let Some(spec) = wan else { return Ok(None) };
    let target = resolve(&opts.host).await?;
    let relay = WanRelay::start(target, spec)
        .await
        .map_err(BenchError::Wan)?;
    opts.via = Some(relay.addr());
    Ok(Some(Arc::new(relay)))
}

/// The probe-finding sink (forwarding pictures to `inner`), its hits and its gap meter.
fn probe_sink(
    inner: Option<Box<dyn FrameSink>>,
) -> (Box<dyn FrameSink>, std_mpsc::Receiver<Hit>, Meters) {
    let (tx, rx) = std_mpsc::channel();
    let gap = Arc::new(AtomicU64::new(0));
    let decoded = Arc::default();
    let sink = ProbeSink {
        last: 0,
        tx,
        prev_decoded_us: None,
        longest_gap_us: gap.clone(),
        decoded: Arc::clone(&decoded),
        inner,
    };
    (Box::new(sink), rx, Meters { gap, decoded })
}

/// What the probe sink measures besides probes.
#[derive(Debug, Clone)]
struct Meters {
    gap: Arc<AtomicU64>,
    decoded: Arc<std::sync::Mutex<Vec<u64>>>,
}

/// Runs a bench against the host in `opts`.
pub async fn run_bench(
    mut opts: ConnectOptions,
    b: BenchOptions,
) -> Result<BenchReport, BenchError> {
    let relay = start_wan(&mut opts, b.wan).await?;
    let (sink, rx, meters) = probe_sink(None);
    let media = Media {
        video: Some(sink),
        ..Media::default()
    };
    let clock = media.clock.clone();
    let totals = media.totals.clone();
    let conn = connect_media(opts, media).await?;
    let t0: Arc<std::sync::OnceLock<Instant>> = Arc::default();
    let recorder = Recorder::start(
        t0.clone(),
        relay.clone(),
        b.schedule.clone(),
        conn.link_state(),
        totals,
    );
    let host = conn.welcome.host_name.clone();
    let sender = conn.input_sender();
    if !sender
        .kinds()
        .contains(sightline_protocol::msg::InputKinds::PROBE)
    {
        let _ = conn.close("bench: no probes").await;
        return Err(BenchError::NoProbes(
            "it did not offer the probe input kind".into(),
        ));
    }
    let (rx, report) = tokio::task::spawn_blocking(move || {
        let r = measure(&rx, None, &sender, &clock, &meters, &b, &t0);
        (rx, r)
    })
    .await
    .expect("bench thread");
    drop(rx);
    let _ = conn.close("bench done").await;
    let mut report = report?;
    recorder.finish(&mut report);
    report.host = host;
    Ok(report)
}

fn measure(
    rx: &std_mpsc::Receiver<Hit>,
    presents: Option<&std_mpsc::Receiver<PresentRecord>>,
    sender: &crate::net::InputSender,
    clock: &crate::stats::SharedClock,
    meters: &Meters,
    b: &BenchOptions,
    t0: &std::sync::OnceLock<Instant>,
) -> Result<BenchReport, BenchError> {
    let gap = &meters.gap;
    let wire = viewer_clock();
    let mut report = BenchReport {
        // The spec without the relay's random seed.
        wan: b.wan.map(|w| {
            let s = w.to_string();
            s.split(",seed=").next().unwrap_or(&s).to_owned()
        }),
        ..BenchReport::default()
    };
    // Wait for the first picture (the clock estimate is in by then: pings start at connect;
    // a probe answered before it would count as lost, not mis-measured).
    let first_picture = Duration::from_secs(10);
    if rx.recv_timeout(first_picture).is_err() {
        return Err(BenchError::NoVideo(first_picture));
    }
    let mut rng = Rng(b.seed | 1);
    let started = Instant::now();
    let _ = t0.set(started);
    report.started_at = Some(started);
    let started_us = wire.micros(started);
    gap.store(0, Ordering::Relaxed);
    for i in 0..b.samples {
        std::thread::sleep(rng.between(b.interval.0, b.interval.1));
        let id = i as u32 + 1;
        let sent_us = wire.micros(Instant::now());
        let sent_at_ms = sent_us.saturating_sub(started_us) / 1000;
        if !sender.send(InputEvent::Probe { id }) {
            return Err(BenchError::NoProbes("the session refused the probe".into()));
        }
        let deadline = Instant::now() + b.probe_timeout;
        let hit = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(h) if h.id == id => break Some(h),
                Ok(_) => continue,
                Err(_) => break None,
            }
        };
        let Some(hit) = hit else {
            debug!(id, "probe not seen in a decoded picture");
            report.lost += 1;
            report.lost_why.not_decoded += 1;
            continue;
        };
        let (Some(est), Some(host)) = (current_clock(clock), hit.times.host) else {
            report.lost += 1;
            report.lost_why.no_clock += 1;
            continue;
        };
        let host_recv = HostMicros(probe::widen(hit.recv_low, host.capture_start.0));
        // With a window, the photon is the first present of this frame or a later one (the
        // strip stays until the next probe, and the window may skip frames: latest wins).
        let photon_us = match presents {
            None => hit.times.decoded_us,
            Some(p) => {
                let deadline = Instant::now() + b.probe_timeout;
                let mut found = None;
                while let Ok(rec) =
                    p.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                {
                    if rec.frame >= hit.times.frame {
                        found = Some(wire.micros(rec.presented_at));
                        report.presents.push(rec);
                        break;
                    }
                }
                match found {
                    Some(t) => t,
                    None => {
                        debug!(
                            id,
                            frame = hit.times.frame,
                            "probe decoded but not presented"
                        );
                        report.lost += 1;
                        report.lost_why.not_presented += 1;
                        continue;
                    }
                }
            }
        };
        if let Some(mut s) = stages(sent_us, host_recv, &hit.times, photon_us, &est) {
            s.id = id;
            s.sent_at_ms = sent_at_ms;
            report.samples.push(s);
        }
        if b.progress {
            progress(i + 1, b.samples, started.elapsed(), &report);
        }
    }
    if b.progress {
        eprintln!();
    }
    report.longest_gap_us = gap.load(Ordering::Relaxed);
    report.decoded_at_ms = meters
        .decoded
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .filter(|&&t| t >= started_us)
        .map(|t| (t - started_us) / 1000)
        .collect();
    Ok(report)
}

fn progress(done: usize, total: usize, elapsed: Duration, r: &BenchReport) {
    let width = 30;
    let filled = done * width / total.max(1);
    let last = r.samples.last().map_or(0.0, |s| s.total_us as f64 / 1e3);
    eprint!(
        "\r[{}{}] {done}/{total}  last {last:5.1} ms  lost {}  {:.0} s",
        "#".repeat(filled),
        " ".repeat(width - filled),
        r.lost,
        elapsed.as_secs_f64()
    );
}

impl BenchReport {
    /// Percentiles of each stage and of the total.
    pub fn percentiles(&self) -> ([Percentiles; 10], Percentiles) {
        let col = |f: &dyn Fn(&Sample) -> u64| {
            let mut v: Vec<u64> = self.samples.iter().map(f).collect();
            Percentiles::of(&mut v)
        };
        let stages = std::array::from_fn(|i| col(&|s: &Sample| s.stages_us[i]));
        (stages, col(&|s: &Sample| s.total_us))
    }

    /// Median stage sum over median round trip: 1.0 when the stages explain every µs.
    pub fn stage_sum_ratio(&self) -> f64 {
        let mut r: Vec<f64> = self
            .samples
            .iter()
            .map(|s| s.stages_us.iter().sum::<u64>() as f64 / s.total_us.max(1) as f64)
            .collect();
        if r.is_empty() {
            return 0.0;
        }
        r.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
        r[r.len() / 2]
    }

    /// The human table.
    pub fn table(&self) -> String {
        let (stages, total) = self.percentiles();
        let ms = |us: u64| us as f64 / 1e3;
        let mut out = format!(
            "bench: {} probes measured, {} lost{}, host {:?}{}\n",
            self.samples.len(),
            self.lost,
            if self.lost > 0 {
                let w = self.lost_why;
                format!(
                    " (not decoded {}, decoded but not presented {}, no clock {})",
                    w.not_decoded, w.not_presented, w.no_clock
                )
            } else {
                String::new()
            },
            self.host,
            self.wan
                .as_ref()
                .map(|w| format!(", WAN {w}"))
                .unwrap_or_default()
        );
        out += &format!(
            "{:<14}{:>9}{:>9}{:>9}{:>9}\n",
            "stage (ms)", "p50", "p95", "p99", "max"
        );
        for (name, p) in STAGES
            .iter()
            .zip(stages.iter())
            .chain([("total", &total)].iter().map(|(n, p)| (n, *p)))
        {
            out += &format!(
                "{:<14}{:>9.2}{:>9.2}{:>9.2}{:>9.2}\n",
                name,
                ms(p.p50),
                ms(p.p95),
                ms(p.p99),
                ms(p.max)
            );
        }
        out += &format!(
            "stage sum / round trip (median): {:.3}; longest gap between pictures: {:.1} ms\n",
            self.stage_sum_ratio(),
            ms(self.longest_gap_us)
        );
        if let Some(r) = &self.renderer {
            out += &format!("renderer: {r}\n");
        }
        if let Some((convert, show, damage)) = self.present_summary() {
            out += &format!(
                "present: convert/upload p50 {:.2} ms p99 {:.2} ms, show p50 {:.2} ms p99 {:.2} ms, \
                 partial updates {damage}/{}\n",
                ms(convert.p50),
                ms(convert.p99),
                ms(show.p50),
                ms(show.p99),
                self.presents.len()
            );
        }
        let freezes = self.freezes();
        if !freezes.is_empty() {
            out += &format!(
                "freezes over {FREEZE_MS} ms: {} (at {})\n",
                freezes.len(),
                freezes
                    .iter()
                    .take(8)
                    .map(|(at, len)| format!("{:.1} s for {len} ms", *at as f64 / 1e3))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for (at, what) in &self.events {
            out += &format!("  {:>8.3} s  {what}\n", *at as f64 / 1e3);
        }
        out
    }

    /// Percentiles of the present records' convert and show times, and how many used damage.
    pub fn present_summary(&self) -> Option<(Percentiles, Percentiles, usize)> {
        if self.presents.is_empty() {
            return None;
        }
        let mut c: Vec<u64> = self
            .presents
            .iter()
            .map(|p| u64::from(p.convert_us))
            .collect();
        let mut s: Vec<u64> = self
            .presents
            .iter()
            .map(|p| u64::from(p.present_us))
            .collect();
        let damage = self.presents.iter().filter(|p| !p.full).count();
        Some((Percentiles::of(&mut c), Percentiles::of(&mut s), damage))
    }

    /// The JSON document.
    pub fn json(&self) -> serde_json::Value {
        let (stages, total) = self.percentiles();
        let pct = |p: &Percentiles| serde_json::json!({"p50_us": p.p50, "p95_us": p.p95, "p99_us": p.p99, "max_us": p.max});
        let mut summary = serde_json::Map::new();
        for (name, p) in STAGES.iter().zip(stages.iter()) {
            summary.insert((*name).into(), pct(p));
        }
        serde_json::json!({
            "host": self.host,
            "wan": self.wan,
            "measured": self.samples.len(),
            "lost": self.lost,
            "stages": STAGES,
            "summary": {"stages": summary, "total": pct(&total)},
            "stage_sum_ratio": self.stage_sum_ratio(),
            "renderer": self.renderer,
            "present": self.present_summary().map(|(c, s, damage)| serde_json::json!({
                "convert": pct(&c),
                "show": pct(&s),
                "frames": self.presents.len(),
                "partial_updates": damage,
            })),
            "longest_gap_us": self.longest_gap_us,
            "freezes_ms": self.freezes(),
            "events": self.events,
            "throughput_mbps": self.throughput,
            "samples": self.samples.iter().map(|s| serde_json::json!({
                "id": s.id,
                "sent_at_ms": s.sent_at_ms,
                "total_us": s.total_us,
                "stages_us": s.stages_us,
                "clock_uncertainty_us": s.clock_uncertainty_us,
            })).collect::<Vec<_>>(),
        })
    }

    /// An SVG with the round-trip histogram (left) and the median stage stack (right).
    pub fn svg(&self) -> String {
        crate::bench_plot::svg(self)
    }
}

/// Runs a bench with the viewer window open, so the round trip ends when the picture that
/// shows the probe was presented. The window's event loop runs on this thread (call it from the
/// main thread outside X11/Wayland); the session runs on `rt` in another thread.
pub fn run_bench_windowed(
    rt: tokio::runtime::Runtime,
    mut opts: ConnectOptions,
    b: BenchOptions,
    window: WindowOptions,
) -> Result<BenchReport, BenchError> {
    use crate::window::{wake, PendingTimes, WindowProxy, WindowSink};
    let shared = Arc::new(WindowShared::new());
    let proxy: WindowProxy = Arc::default();
    let (present_tx, present_rx) = std_mpsc::channel();
    *shared
        .present_tap
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(present_tx);
    let (ready_tx, ready_rx) = std_mpsc::channel::<Result<String, BenchError>>();
    let session = {
        let (shared, proxy) = (shared.clone(), proxy.clone());
        std::thread::Builder::new()
            .name("sightline-bench".into())
            .spawn(move || -> Result<BenchReport, BenchError> {
                rt.block_on(async move {
                    let relay = match start_wan(&mut opts, b.wan).await {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return Err(BenchError::NoVideo(Duration::ZERO));
                        }
                    };
                    let pending: PendingTimes = Arc::default();
                    let window_sink = WindowSink::new(shared.clone(), proxy.clone(), pending);
                    let (sink, rx, meters) = probe_sink(Some(Box::new(window_sink)));
                    let media = Media {
                        video: Some(sink),
                        ..Media::default()
                    };
                    let clock = media.clock.clone();
                    let totals = media.totals.clone();
                    let host = opts.host.clone();
                    let conn = match connect_media(opts, media).await {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                            return Err(BenchError::NoVideo(Duration::ZERO));
                        }
                    };
                    let _ = ready_tx.send(Ok(format!(
                        "{} — Sightline bench ({host})",
                        conn.welcome.host_name
                    )));
                    let sender = conn.input_sender();
                    let t0: Arc<std::sync::OnceLock<Instant>> = Arc::default();
                    let recorder = Recorder::start(
                        t0.clone(),
                        relay.clone(),
                        b.schedule.clone(),
                        conn.link_state(),
                        totals,
                    );
                    let result = if sender
                        .kinds()
                        .contains(sightline_protocol::msg::InputKinds::PROBE)
                    {
                        let host_name = conn.welcome.host_name.clone();
                        let r = tokio::task::spawn_blocking(move || {
                            let r =
                                measure(&rx, Some(&present_rx), &sender, &clock, &meters, &b, &t0);
                            drop(rx);
                            r
                        })
                        .await
                        .expect("bench thread");
                        r.map(|mut r| {
                            r.host = host_name;
                            recorder.finish(&mut r);
                            r
                        })
                    } else {
                        Err(BenchError::NoProbes(
                            "it did not offer the probe input kind".into(),
                        ))
                    };
                    let _ = conn.close("bench done").await;
                    wake(
                        &proxy,
                        crate::app::AppEvent::SessionEnded("bench done".into()),
                    );
                    result
                })
            })
            .map_err(|e| BenchError::Wan(std::io::Error::other(e)))?
    };
    let title = match ready_rx.recv() {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            let _ = session.join();
            return Err(e);
        }
        Err(_) => {
            return session
                .join()
                .unwrap_or(Err(BenchError::NoVideo(Duration::ZERO)))
        }
    };
    let opts = WindowOptions {
        title: if window.title.is_empty() {
            title
        } else {
            window.title
        },
        ..window
    };
    let proxy_slot = proxy.clone();
    let ran = crate::app::run_window(opts, shared.clone(), move |p| {
        let _ = proxy_slot.set(p);
    });
    let report = session
        .join()
        .unwrap_or(Err(BenchError::NoVideo(Duration::ZERO)));
    if let Err(e) = ran {
        return Err(BenchError::Window(e.to_string()));
    }
    report.map(|mut r| {
        r.renderer = shared
            .renderer()
            .map(|i| format!("{} ({})", i.name(), i.detail));
        r
    })
}

/// Where to write the outputs.
#[derive(Debug, Clone, Default)]
pub struct BenchOutputs {
    /// JSON report.
    pub json: Option<PathBuf>,
    /// SVG plot.
    pub plot: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_protocol::msg::HostStageTimes;

    fn frame(host_base: u64) -> FrameTimes {
        FrameTimes {
            frame: 1,
            host: Some(HostStageTimes {
                capture_start: HostMicros(host_base + 8_000),
                capture_end: HostMicros(host_base + 8_500),
                convert_end: HostMicros(host_base + 9_000),
                encode_end: HostMicros(host_base + 16_000),
                send: HostMicros(host_base + 16_100),
            }),
            first_packet_us: 1_000_000 + 16_600,
            reassembled_us: 1_000_000 + 17_000,
            decoded_us: 1_000_000 + 21_000,
        }
    }

    #[test]
    fn stages_telescope_to_the_round_trip() {
        // Host clock = viewer clock + 5 s; the probe left the viewer at 1 s and arrived 0.4 ms
        // later; the network takes 0.5 ms each way.
        let offset = 5_000_000i64;
        let host_base = (1_000_000 + offset) as u64;
        let clock = ClockEstimate {
            offset_us: offset,
            uncertainty_us: 50,
            min_rtt_us: 100,
            smoothed_rtt_us: 100,
            latest_rtt_us: 100,
            samples: 10,
        };
        let s = stages(
            1_000_000,
            HostMicros(host_base + 400),
            &frame(host_base),
            1_000_000 + 21_000,
            &clock,
        )
        .unwrap();
        assert_eq!(s.total_us, 21_000);
        assert_eq!(
            s.stages_us,
            [400, 7_600, 500, 500, 7_000, 100, 500, 400, 4_000, 0]
        );
        assert_eq!(s.stages_us.iter().sum::<u64>(), s.total_us);
    }

    #[test]
    fn a_wrong_offset_moves_time_between_input_and_network_only() {
        let offset = 5_000_000i64;
        let host_base = (1_000_000 + offset) as u64;
        let est = ClockEstimate {
            offset_us: offset + 300, // 0.3 ms off
            uncertainty_us: 300,
            min_rtt_us: 600,
            smoothed_rtt_us: 600,
            latest_rtt_us: 600,
            samples: 10,
        };
        let s = stages(
            1_000_000,
            HostMicros(host_base + 400),
            &frame(host_base),
            1_000_000 + 21_000,
            &est,
        )
        .unwrap();
        assert_eq!(s.stages_us[0], 100);
        assert_eq!(s.stages_us[6], 800);
        assert_eq!(s.stages_us.iter().sum::<u64>(), s.total_us);
    }
}
