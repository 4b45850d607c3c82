//! `viewer`: connects to a Sightline host.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sightline_certs::{Identity, Role, TrustPolicy};
use std::sync::PoisonError;

use sightline_protocol::msg::{BitDepths, Capabilities, ChromaFormats, InputKinds, StreamConfig};
use sightline_protocol::reconnect::ReconnectConfig;
use sightline_protocol::session::{ViewerConfig, ViewerEvent};
use sightline_viewer::app::{Renderer, WindowOptions};
use sightline_viewer::config::{self, HostAddr};
use sightline_viewer::headless::Recorder;
use sightline_viewer::net::{connect, connect_media, ConnectOptions, Media};
use sightline_viewer::reconnect::LinkMessages;
use sightline_viewer::stats::{current_clock, report_json, SharedClock};
use sightline_viewer::wan::WanSpec;
use sightline_viewer::window::{run_windowed_with_audio, WindowedEnd};

/// Sightline viewer: connects to a host agent over QUIC (TLS 1.3, AES-256-GCM), authenticated
/// both ways, and shows its display.
#[derive(Debug, Parser)]
#[command(name = "viewer", version, after_help = AFTER_HELP)]
struct Args {
    /// Host to connect to: HOST, HOST:PORT, [IPv6]:PORT or sightline://HOST:PORT (default port
    /// 4433). Without it: the only host in the known hosts.
    #[arg(
        value_parser = sightline_viewer::pair::parse_host_arg,
        default_value = "",
        hide_default_value = true
    )]
    host: HostAddr,
    /// Pair with the host first, with the one-time code `host-agent pair` shows there (asked
    /// for on the terminal when CODE is left out): the host authorizes this viewer and this
    /// viewer pins the host, then the session starts as usual. Creates this viewer's identity
    /// if there is none.
    #[arg(long, value_name = "CODE", num_args = 0..=1, default_missing_value = "")]
    pair: Option<String>,
    /// Directory holding this viewer's identity (cert.pem, key.pem); create it with
    /// `certs create --role viewer --dir DIR`.
    #[arg(long, value_name = "DIR")]
    identity: Option<PathBuf>,
    /// Known-hosts file with the host's pinned fingerprint.
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
    /// Accept and pin a host that is not in the known hosts yet (never a changed one).
    #[arg(long, alias = "tofu")]
    trust_on_first_use: bool,
    /// Stop after this many clock-sync pings were answered (0: run until interrupted). With
    /// this flag no video is requested: a quick link and trust check.
    #[arg(long, default_value_t = 0)]
    pings: u64,
    /// Decode without a window (for tests, CI and measurements).
    #[arg(long)]
    headless: bool,
    /// With --headless: exit after this many decoded frames (0: run until interrupted).
    #[arg(long, default_value_t = 0)]
    frames: u64,
    /// With --headless: write per-frame stage timings and a summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    stats_json: Option<PathBuf>,
    /// With --headless: give up after this many seconds without reaching --frames.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Start in borderless fullscreen (F11 toggles).
    #[arg(long)]
    fullscreen: bool,
    /// Present path: `gpu` (wgpu: planes uploaded, converted and scaled in a shader), `cpu`
    /// (converted straight into a CPU framebuffer, only what changed), or `auto`: the GPU
    /// unless wgpu's only adapter is a software one (lavapipe) or there is none.
    #[arg(long, value_enum, default_value_t = Renderer::Auto)]
    renderer: Renderer,
    /// Watch only: send no keyboard, mouse, pen or controller input to the host.
    #[arg(long)]
    view_only: bool,
    /// Show the stats overlay from the start (F3 or Ctrl+Alt+S toggles).
    #[arg(long)]
    stats: bool,
    /// Seconds to wait for the host to answer.
    #[arg(long, default_value_t = 5)]
    connect_timeout: u64,
    /// Bench mode: measure input → photon with latency probes, print a per-stage table.
    #[arg(long)]
    bench: bool,
    /// With --bench: probes to measure.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// With --bench: write the report (every sample, per-stage percentiles) as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// With --bench: write a plot (round-trip histogram and stage stack) as SVG here.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Route the session through the built-in WAN emulator, e.g.
    /// `rtt=30ms,jitter=5ms,loss=1%,rate=50mbit` (no root needed): see what a user far away
    /// would see, or measure it with --bench.
    #[arg(long, value_name = "SPEC")]
    wan: Option<WanSpec>,
    /// Do not reconnect after a network drop: the session ends when the connection does
    /// (for scripts).
    #[arg(long)]
    no_reconnect: bool,
    /// Stop reconnecting after this many seconds without the host (0: never stop).
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    reconnect_timeout: u64,
    #[command(flatten)]
    audio: sightline_viewer::audio::cli::AudioArgs,
    /// Highest bit depth to ask the host for: `10` (default: HEVC Main 10 / H.264 High 10 when
    /// the host offers it) or `8` (the 8-bit stream: less CPU, fewer bits).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(8..=10))]
    max_bit_depth: u8,
    /// Log filter (tracing EnvFilter syntax), overridden by RUST_LOG.
    #[arg(long, default_value = "warn")]
    log: String,
}

/// Bench mode: with a window (the round trip ends at present) when a display is available and
/// `--headless` is not given, else headless (it ends at decode).
fn run_bench_mode(
    rt: tokio::runtime::Runtime,
    opts: ConnectOptions,
    args: &Args,
    windowed: bool,
) -> anyhow::Result<()> {
    use sightline_viewer::bench::{run_bench, run_bench_windowed, BenchOptions};
    let b = BenchOptions {
        samples: args.samples.max(1),
        wan: args.wan,
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ..BenchOptions::default()
    };
    let result = if windowed {
        let window = WindowOptions {
            title: String::new(),
            fullscreen: args.fullscreen,
            show_stats: false,
            initial_size: None,
            view_only: false,
            renderer: args.renderer,
        };
        run_bench_windowed(rt, opts, b, window)
    } else {
        rt.block_on(run_bench(opts, b))
    };
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("viewer: bench against {} failed: {e}", args.host);
            std::process::exit(2);
        }
    };
    print!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report.json())?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("JSON: {}", path.display());
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, report.svg())
            .with_context(|| format!("writing {}", path.display()))?;
        println!("plot: {}", path.display());
    }
    if report.samples.is_empty() {
        anyhow::bail!("no probe came back ({} lost)", report.lost);
    }
    Ok(())
}

const AFTER_HELP: &str = "\
Examples:
  viewer workstation.example:4433 --identity ~/.config/sightline/viewer-identity --known-hosts ~/.config/sightline/known_hosts
  viewer 127.0.0.1 --pings 10
  viewer 127.0.0.1 --bench --samples 300 --json bench.json --plot bench.svg
  viewer 127.0.0.1 --bench --wan rtt=30ms,jitter=5ms,loss=1%,rate=50mbit

First time with a new host: compare `certs fingerprint` on the host with what the viewer
reports, then `certs pin --known-hosts FILE --host HOST:PORT --fingerprint FP`
(or pass --trust-on-first-use once).";

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&args.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let identity_dir = args
        .identity
        .clone()
        .unwrap_or_else(config::default_identity_dir);
    let known_hosts = args
        .known_hosts
        .clone()
        .unwrap_or_else(config::default_known_hosts);
    if args.host.host.is_empty() {
        args.host = sightline_viewer::pair::only_known_host(&known_hosts)
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    let identity = if args.pair.is_some() {
        let (id, created) =
            Identity::load_or_create(&identity_dir, Role::Viewer, &config_name())
                .with_context(|| format!("viewer identity in {}", identity_dir.display()))?;
        if created {
            eprintln!(
                "viewer: created this viewer's identity in {} ({})",
                identity_dir.display(),
                id.fingerprint()
            );
        }
        id
    } else {
        Identity::load(&identity_dir)
            .with_context(|| format!("viewer identity in {}", identity_dir.display()))?
    };
    let opts = ConnectOptions {
        host: args.host.clone(),
        identity,
        known_hosts: known_hosts.clone(),
        trust: if args.trust_on_first_use {
            TrustPolicy::TrustOnFirstUse
        } else {
            TrustPolicy::PinnedOnly
        },
        session: ViewerConfig {
            name: config_name(),
            // Video capabilities are added by the connection when a video sink is attached.
            capabilities: Capabilities {
                input_kinds: if args.view_only {
                    InputKinds::EMPTY
                } else {
                    InputKinds::ALL
                },
                // Codecs and chroma: whatever the decoders here handle (filled in on connect).
                bit_depths: if args.max_bit_depth < 10 {
                    BitDepths::EIGHT
                } else {
                    BitDepths::EMPTY
                },
                ..Capabilities::default()
            },
            ..ViewerConfig::default()
        },
        connect_timeout: Duration::from_secs(args.connect_timeout.max(1)),
        via: None,
        reconnect: ReconnectConfig {
            enabled: !args.no_reconnect,
            give_up_after: (args.reconnect_timeout > 0)
                .then(|| Duration::from_secs(args.reconnect_timeout)),
            ..ReconnectConfig::default()
        },
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("sightline-net")
        .build()?;
    if let Some(code) = &args.pair {
        run_pairing(&rt, &opts, code)?;
    }
    // Outside bench mode (which starts its own), --wan puts the emulator under any session.
    let mut opts = opts;
    let _relay = match (args.wan, args.bench) {
        (Some(spec), false) => {
            let relay = rt.block_on(async {
                let target = sightline_viewer::net::resolve(&opts.host).await?;
                Ok::<_, anyhow::Error>(sightline_viewer::wan::WanRelay::start(target, spec).await?)
            })?;
            eprintln!("viewer: WAN emulation {spec} via {}", relay.addr());
            opts.via = Some(relay.addr());
            Some(relay)
        }
        _ => None,
    };
    if args.bench {
        let windowed = !args.headless
            && (std::env::var_os("DISPLAY").is_some()
                || std::env::var_os("WAYLAND_DISPLAY").is_some());
        if windowed {
            limit_to_presentable(&mut opts);
        }
        return run_bench_mode(rt, opts, &args, windowed);
    }
    if args.headless {
        return rt.block_on(run_headless(opts, &args));
    }
    if args.pings == 0 {
        limit_to_presentable(&mut opts);
    }
    if args.pings == 0 {
        let window = WindowOptions {
            title: String::new(),
            fullscreen: args.fullscreen,
            show_stats: args.stats,
            initial_size: None,
            view_only: args.view_only,
            renderer: args.renderer,
        };
        let audio = audio_handle(&args);
        match run_windowed_with_audio(rt, opts, window, audio)? {
            WindowedEnd::ConnectFailed(e) => {
                eprintln!("viewer: cannot connect to {}: {e}", args.host);
                std::process::exit(2);
            }
            WindowedEnd::SessionEnded(reason) => eprintln!("viewer: session ended: {reason}"),
            WindowedEnd::WindowClosed => {}
        }
        return Ok(());
    }
    rt.block_on(async move {
        let mut conn = match connect(opts).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("viewer: cannot connect to {}: {e}", args.host);
                std::process::exit(2);
            }
        };
        println!(
            "connected to {:?} at {} (session {:016x}, protocol {}) in {:.1} ms",
            conn.welcome.host_name,
            conn.remote,
            conn.welcome.session_id,
            conn.welcome.version,
            conn.setup_time.as_secs_f64() * 1e3
        );
        let caps = conn.welcome.capabilities;
        if caps == Capabilities::default() {
            println!("negotiated: session and clock sync only (no media or input channels yet)");
        } else {
            println!("negotiated: {caps:?}");
        }
        let mut answered = 0u64;
        let mut link = conn.link_state();
        let mut link_msg = LinkMessages::default();
        loop {
            tokio::select! {
                Ok(()) = link.changed() => {
                    if let Some(m) = link_msg.report(&link.borrow_and_update()) {
                        eprintln!("viewer: {m}");
                    }
                }
                ev = conn.next_event() => match ev {
                    Some(ViewerEvent::Clock(c)) => {
                        answered += 1;
                        println!(
                            "rtt {:.3} ms (min {:.3}, smoothed {:.3}; QUIC {:.3})  clock offset {:+.3} ms ± {:.3} ms",
                            c.latest_rtt_us as f64 / 1e3,
                            c.min_rtt_us as f64 / 1e3,
                            c.smoothed_rtt_us as f64 / 1e3,
                            conn.quic_rtt().as_secs_f64() * 1e3,
                            c.offset_us as f64 / 1e3,
                            c.uncertainty_us as f64 / 1e3,
                        );
                        if args.pings > 0 && answered >= args.pings {
                            let reason = conn.close("done").await;
                            println!("closed: {reason}");
                            return anyhow::Ok(());
                        }
                    }
                    Some(ViewerEvent::Closed(reason)) => {
                        eprintln!("viewer: session ended: {reason}");
                        std::process::exit(3);
                    }
                    Some(_) => {}
                    None => return anyhow::Ok(()),
                },
                _ = tokio::signal::ctrl_c() => {
                    let reason = conn.close("user quit").await;
                    println!("closed: {reason}");
                    return anyhow::Ok(());
                }
            }
        }
    })
}

/// Audio playback as the flags ask; exits with a clear message when a named device is missing.
fn audio_handle(args: &Args) -> Option<sightline_viewer::audio::AudioHandle> {
    match args.audio.handle() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("viewer: --audio-device: {e}");
            std::process::exit(2);
        }
    }
}

async fn run_headless(opts: ConnectOptions, args: &Args) -> anyhow::Result<()> {
    let clock = SharedClock::default();
    let recorder = Recorder::new(clock.clone(), args.frames, false);
    let audio = audio_handle(args);
    let media = Media {
        video: Some(Box::new(recorder.clone())),
        clock: clock.clone(),
        audio: audio.clone(),
        ..Media::default()
    };
    let totals = media.totals.clone();
    let mut conn = match connect_media(opts, media).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("viewer: cannot connect to {}: {e}", args.host);
            std::process::exit(2);
        }
    };
    let mut stream: Option<StreamConfig> = None;
    eprintln!(
        "connected to {:?} (session {:016x}); decoding{}",
        conn.welcome.host_name,
        conn.welcome.session_id,
        if args.frames > 0 {
            format!(" {} frames", args.frames)
        } else {
            String::new()
        }
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout.max(1));
    let mut ended: Option<String> = None;
    let mut link = conn.link_state();
    let mut link_msg = LinkMessages::default();
    loop {
        tokio::select! {
            Ok(()) = link.changed() => {
                    if let Some(m) = link_msg.report(&link.borrow_and_update()) {
                        eprintln!("viewer: {m}");
                    }
                }
            _ = recorder.done.notified() => break,
            ev = conn.next_event() => match ev {
                Some(ViewerEvent::StreamConfig(c)) => stream = Some(c),
                Some(ViewerEvent::Closed(r)) => { ended = Some(r.to_string()); break; }
                None => { ended = Some("session ended".into()); break; }
                Some(_) => {}
            },
            _ = tokio::time::sleep_until(deadline) => {
                ended = Some(format!("timed out after {} s with {} frames decoded", args.timeout, recorder.decoded()));
                break;
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    if ended.is_none() {
        conn.close("headless run complete").await;
    }
    let rec = recorder
        .recording
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let mut t = *totals.lock().unwrap_or_else(PoisonError::into_inner);
    t.duration_s = match (rec.first_at, rec.last_at) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    let codec = stream.map(|c| format!("{:?}", c.codec)).unwrap_or_default();
    let mut report = report_json(
        &rec.records,
        &t,
        current_clock(&clock),
        stream.map(|c| (c.width, c.height, codec.as_str())),
    );
    if let (Some(c), Some(s)) = (stream, report.get_mut("stream")) {
        // What the stream carried, for checks of the negotiated format.
        s["profile"] = serde_json::json!(c.profile_name());
        s["bit_depth"] = serde_json::json!(c.bit_depth);
        s["chroma"] = serde_json::json!(format!("{:?}", c.chroma));
        s["range"] = serde_json::json!(format!("{:?}", c.range));
        s["matrix"] = serde_json::json!(format!("{:?}", c.matrix));
    }
    if let Some(c) = stream {
        println!(
            "stream: {}x{} {}",
            c.width,
            c.height,
            sightline_viewer::decoder::stream_label(&c)
        );
    }
    if let Some(a) = &audio {
        let snap = a.snapshot();
        eprintln!("{}", snap.overlay_lines().join("\n"));
        report["audio"] = snap.json();
    }
    print_summary(&report);
    if let Some(path) = &args.stats_json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("stats written to {}", path.display());
    }
    if let Some(why) = ended {
        eprintln!("viewer: {why}");
        if args.frames > 0 && (rec.records.len() as u64 + rec.unrecorded) < args.frames {
            std::process::exit(3);
        }
    }
    Ok(())
}

fn print_summary(report: &serde_json::Value) {
    let s = &report["summary"];
    println!(
        "frames shown {} (received {}, lost {}, recovered by FEC {}, keyframe requests {}) in {:.2} s: {:.1} fps, {:.2} Mbit/s",
        s["frames_shown"], s["frames_received"], s["frames_lost"], s["frames_recovered"],
        s["keyframe_requests"], s["duration_s"].as_f64().unwrap_or(0.0),
        s["fps"].as_f64().unwrap_or(0.0), s["bitrate_mbps"].as_f64().unwrap_or(0.0)
    );
    println!(
        "{:<12} {:>9} {:>9} {:>9} {:>9}",
        "stage (ms)", "p50", "p95", "p99", "max"
    );
    let row = |name: &str, v: &serde_json::Value| {
        println!(
            "{:<12} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            name,
            v["p50_ms"].as_f64().unwrap_or(0.0),
            v["p95_ms"].as_f64().unwrap_or(0.0),
            v["p99_ms"].as_f64().unwrap_or(0.0),
            v["max_ms"].as_f64().unwrap_or(0.0)
        )
    };
    for name in sightline_protocol::stats::STAGES {
        row(name, &s["stages"][name]);
    }
    row("total", &s["total"]);
}

/// `--pair`: pairs (asking for the code when none was given), pins the host, says so.
fn run_pairing(
    rt: &tokio::runtime::Runtime,
    opts: &ConnectOptions,
    code: &str,
) -> anyhow::Result<()> {
    use sightline_viewer::pair::{pair, prompt_code, PairOptions};
    let code = if code.is_empty() {
        prompt_code().context("reading the pairing code")?
    } else {
        code.to_owned()
    };
    let code = sightline_certs::pairing::PairingCode::parse(&code)?;
    let result = rt.block_on(pair(PairOptions {
        host: opts.host.clone(),
        identity: opts.identity.clone(),
        known_hosts: opts.known_hosts.clone(),
        code,
        viewer_name: opts.session.name.clone(),
        timeout: opts.connect_timeout.max(Duration::from_secs(10)),
        via: None,
    }));
    match result {
        Ok(p) => {
            println!(
                "paired with {:?} at {}: host key {} pinned in {}; the host authorized this viewer \
                 as {:?}",
                p.host_name,
                p.pin_key,
                p.host_fingerprint,
                opts.known_hosts.display(),
                p.authorized_as
            );
            Ok(())
        }
        Err(e) => {
            eprintln!("viewer: cannot pair with {}: {e}", opts.host);
            std::process::exit(2);
        }
    }
}

/// A window can only show what its renderers present: until they take 10-bit and 4:4:4
/// pictures, a windowed viewer asks for 8-bit 4:2:0 (headless mode decodes everything).
fn limit_to_presentable(opts: &mut ConnectOptions) {
    if !sightline_viewer::decoder::WINDOW_PRESENTS_HIGH_BIT_DEPTH {
        let c = &mut opts.session.capabilities;
        c.bit_depths = BitDepths::EIGHT;
        c.chroma = ChromaFormats::YUV420;
    }
}

fn config_name() -> String {
    sightline_certs::paths::machine_name("sightline-viewer")
}
