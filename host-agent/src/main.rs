//! `host-agent`: serves this workstation's display to authorized viewers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sightline_certs::{AuthorizedViewers, Identity, Role};
use sightline_host::capture::gradient::GradientSource;
#[cfg(target_os = "linux")]
use sightline_host::capture::probe_window::ProbeWindow;
use sightline_host::capture::synthetic::{Scene, SyntheticSource};
use sightline_host::capture::FrameSource;
use sightline_host::capture::PixelFormat;
use sightline_host::config::{self, DEFAULT_PORT};
use sightline_host::encode::format::{capabilities_of, CodecPreference, FormatRequest};
use sightline_host::encode::{probe_formats, EncoderSettings, EncoderUsage};
use sightline_host::inject::jog_profile::{self, JogProfileSink};
use sightline_host::inject::service::Injector;
use sightline_host::inject::xtest::XTestSink;
use sightline_host::inject::{InputSink, LogSink, Router};
use sightline_host::media_send::AdaptConfig;
use sightline_host::net::{HostEndpoint, NetConfig, NetEvent};
use sightline_host::pipeline::{self, VideoSettings};
use sightline_host::probe::ProbeTarget;
use sightline_host::security_cli::{self, PairArgs, SecurityArgs};
use sightline_host::tiles::TileSettings;
use sightline_protocol::msg::{Capabilities, Chroma, ColourMatrix, ColourRange, InputKinds};
use sightline_protocol::session::HostConfig;
use sightline_protocol::video::FecConfig;
use tokio::sync::mpsc;

/// Sightline host agent: serves this workstation's display over QUIC (TLS 1.3, AES-256-GCM) to
/// viewers whose certificates are authorized.
#[derive(Debug, Parser)]
#[command(name = "host-agent", version, after_help = AFTER_HELP)]
struct Args {
    /// UDP address to listen on (ADDR:PORT; a bare port or address is completed with the
    /// defaults).
    #[arg(long, default_value = "0.0.0.0:4433", value_parser = parse_listen)]
    listen: SocketAddr,
    /// Directory holding the host identity (cert.pem, key.pem). Created on first start.
    #[arg(long, value_name = "DIR")]
    identity: Option<PathBuf>,
    /// Authorized viewers file (one "FINGERPRINT NAME" per line), re-read on every connection.
    #[arg(long, value_name = "FILE")]
    authorized: Option<PathBuf>,
    /// Name shown to viewers (default: this machine's hostname).
    #[arg(long)]
    name: Option<String>,
    /// Most viewers at once.
    #[arg(long, default_value_t = 4)]
    max_sessions: usize,
    /// Seconds a connecting viewer may take to finish TLS and say hello.
    #[arg(long, default_value_t = 10)]
    handshake_timeout: u64,
    /// What to stream: `x11` (a real X display), `synthetic` (the built-in test picture) or
    /// `none` (session only). Default: x11 when a display is reachable, else synthetic.
    #[arg(long, value_enum)]
    source: Option<SourceKind>,
    /// X display to capture with `--source x11` (default: $DISPLAY).
    #[arg(long)]
    display: Option<String>,
    /// Size of the synthetic picture, WIDTHxHEIGHT.
    #[arg(long, default_value = "1920x1080", value_parser = parse_size)]
    size: (u32, u32),
    /// Frames per second (synthetic rate; encoder rate hint).
    #[arg(long, default_value_t = 60)]
    fps: u32,
    /// What the synthetic picture shows: `desktop` (typing on a static page: little changes,
    /// like real desktop work), `busy` (the whole text area scrolls: an encoder stress test) or
    /// `gradient10` (10-bit pixels: 1024-level grey and colour ramps, for banding checks).
    #[arg(long, value_enum, default_value = "desktop")]
    scene: SceneArg,
    /// Encoder tuning: `camera` (fastest; default) or `screen` (fewest bits on text, but a
    /// slow whole-frame analysis: ~20 ms per 1080p frame on 2 cores). See docs/benchmarks.md.
    #[arg(long, value_enum, default_value = "camera")]
    encoder_usage: UsageArg,
    /// Video bitrate in Mbit/s.
    #[arg(long, default_value_t = 20.0)]
    bitrate: f64,
    /// Bits per sample of the stream: `10` (HEVC Main 10 or H.264 High 10 through FFmpeg, with
    /// 8-bit openh264 for viewers that cannot decode it), `8`, or `auto`: 10 when the source
    /// has 10-bit pixels (an X11 depth-30 screen, `--scene gradient10`), else 8.
    #[arg(long, value_enum, default_value = "auto")]
    bit_depth: BitDepthArg,
    /// Codec for streams above 8 bits: `hevc` (hardware NVENC/VA-API when present, else
    /// libx265), `h264` (libx264 High 10) or `auto`: hardware HEVC when present, else H.264
    /// High 10 (several times faster than libx265 on a CPU; see docs/benchmarks.md).
    #[arg(long, value_enum, default_value = "auto")]
    codec: CodecArg,
    /// Chroma of 10-bit streams: `420`, or `444` (full-resolution colour for text, UI and
    /// grading; falls back to 4:2:0 for viewers without it).
    #[arg(long, value_enum, default_value = "420")]
    chroma: ChromaArg,
    /// Sample range of 10-bit streams: `full` (all 1024 codes: best for screen content),
    /// `limited` (video range, 64–940), or `auto` (full). 8-bit streams stay limited range.
    #[arg(long, value_enum, default_value = "auto")]
    range: RangeArg,
    /// YCbCr matrix (and colour primaries) of 10-bit streams: `bt709` or `bt2020`.
    #[arg(long, value_enum, default_value = "bt709")]
    matrix: MatrixArg,
    /// Probe every encoder for the stream formats the flags ask for, print what works and why
    /// the others do not, and exit.
    #[arg(long)]
    list_encoders: bool,
    /// Forward error correction: `auto` sizes each frame's parity from the loss measured on
    /// that viewer's path (at least two parity fragments per frame); a number is a fixed share
    /// of data fragments (e.g. 0.1); 0 disables.
    #[arg(long, default_value = "auto", value_parser = parse_fec)]
    fec: FecArg,
    /// Keep the video bitrate at --bitrate whatever the path carries (no congestion-aware rate
    /// control).
    #[arg(long)]
    no_rate_control: bool,
    /// Also write the encoded video (Annex B: H.264 or HEVC, as streamed) to this file. When the
    /// format changes mid-session (a viewer that needs another one joined) the file holds both.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Stop encoding after this many frames (0: never); for tests and benchmarks.
    #[arg(long, default_value_t = 0)]
    max_frames: u64,
    /// Send no lossless tiles: everything goes through the video encoder (by default small
    /// changes go as lossless tiles and still areas are refined to bit-exact, for viewers
    /// that compose tiles).
    #[arg(long)]
    no_lossless: bool,
    /// Bandwidth budget for refining still areas to lossless, Mbit/s (tiles for small changes
    /// are sent at once whatever the budget, and count against it).
    #[arg(long, value_name = "MBPS", default_value_t = 100.0)]
    lossless_budget_mbps: f64,
    /// Where viewers' keyboard and mouse input goes: `xtest` (the X display, via XTEST),
    /// `log` (counted and logged, not injected) or `none` (view-only sessions). Default: xtest
    /// when streaming an X display, else log.
    #[arg(long, value_enum)]
    input: Option<InputKind>,
    /// Jog/shuttle controllers drive editor shortcuts with this profile: a built-in name
    /// (resolve, premiere, kdenlive, blender, lightworks, avid) or a TOML file. Without it they
    /// appear as a virtual jog/shuttle device (needs uinput). See docs/jog-shuttle.md.
    #[arg(long, value_name = "NAME|FILE")]
    jog_profile: Option<String>,
    /// Virtual uinput devices for pen tablets (pressure, tilt) and jog/shuttle controllers:
    /// `auto` uses them when /dev/uinput is writable, `on` requires them, `off` never.
    #[arg(long, value_enum, default_value = "auto")]
    uinput: Uinput,
    #[command(flatten)]
    audio: sightline_host::audio::cli::AudioArgs,
    /// Log filter (tracing EnvFilter syntax), overridden by RUST_LOG.
    #[arg(long, default_value = "info")]
    log: String,
    /// TOML configuration file (the package installs /etc/sightline/host.toml). Every key is
    /// one of these flags in snake_case, e.g. `max_sessions = 4`; flags given on the command
    /// line override the file; unknown keys are an error. `--print-config` writes a documented
    /// one.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print every setting as a documented TOML configuration file, with the values the flags
    /// and --config give, and exit.
    #[arg(long)]
    print_config: bool,
    /// Audit log, pairing and limits.
    #[command(flatten)]
    security: SecurityArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Open a pairing window: prints a one-time code that a viewer enters with
    /// `viewer HOST --pair CODE`; the running host-agent then authorizes that viewer and the
    /// viewer pins this host. Reads /etc/sightline/host.toml when no --config is given and it
    /// exists.
    Pair(PairArgs),
}

/// `--fec`: adaptive or a fixed share.
#[derive(Debug, Clone, Copy, PartialEq)]
enum FecArg {
    /// Parity from the measured loss.
    Auto,
    /// A fixed share of the data fragments.
    Fixed(f32),
}

fn parse_fec(s: &str) -> Result<FecArg, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(FecArg::Auto);
    }
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() && (0.0..=4.0).contains(&v) => Ok(FecArg::Fixed(v)),
        _ => Err(format!(
            "expected `auto` or a share between 0 and 4 (e.g. 0.1), got {s:?}"
        )),
    }
}

/// Frame sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SourceKind {
    /// A real X11 display (MIT-SHM + DAMAGE).
    X11,
    /// The built-in test picture.
    Synthetic,
    /// No video (session and clock sync only).
    None,
}

/// Synthetic scenes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SceneArg {
    /// Typing on a static page.
    Desktop,
    /// Scrolling text and a bouncing box.
    Busy,
    /// 10-bit grey and colour ramps (1024 levels).
    Gradient10,
}

/// Stream bit depths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BitDepthArg {
    /// 10 for 10-bit sources, else 8.
    Auto,
    /// 8 bits.
    #[value(name = "8")]
    Eight,
    /// 10 bits.
    #[value(name = "10")]
    Ten,
}

/// Codecs for streams above 8 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CodecArg {
    /// Hardware HEVC, else H.264 High 10.
    Auto,
    /// HEVC.
    Hevc,
    /// H.264.
    H264,
}

/// Chroma formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ChromaArg {
    /// 4:2:0.
    #[value(name = "420")]
    Yuv420,
    /// 4:4:4.
    #[value(name = "444")]
    Yuv444,
}

/// Sample ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RangeArg {
    /// Full range.
    Auto,
    /// Limited (video) range.
    Limited,
    /// Full range.
    Full,
}

/// Matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum MatrixArg {
    /// BT.709.
    Bt709,
    /// BT.2020 (non-constant luminance).
    Bt2020,
}

/// Encoder tunings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum UsageArg {
    /// Real-time camera tuning.
    Camera,
    /// Screen-content tuning.
    Screen,
}

/// Input sinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum InputKind {
    /// Inject into the X display with XTEST.
    Xtest,
    /// Count and log input without injecting it.
    Log,
    /// Accept no input.
    None,
}

/// uinput use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Uinput {
    /// When /dev/uinput is available.
    Auto,
    /// Required: fail to start without it.
    On,
    /// Never.
    Off,
}

/// Builds the injection thread the flags ask for (`None`: no input accepted).
fn open_input(args: &Args, x11_display: Option<&str>) -> anyhow::Result<Option<Injector>> {
    let kind = args.input.unwrap_or(if x11_display.is_some() {
        InputKind::Xtest
    } else {
        InputKind::Log
    });
    let mut router = Router::new();
    let mut names = Vec::new();
    let display = x11_display
        .map(str::to_owned)
        .or_else(|| args.display.clone());
    let mut screen = (args.size.0, args.size.1);
    match kind {
        InputKind::None => return Ok(None),
        InputKind::Log => {
            router.add(Box::new(LogSink::default()));
            names.push("log");
        }
        InputKind::Xtest => {
            let x = XTestSink::open(display.as_deref())
                .context("keyboard and mouse injection (--input xtest)")?;
            screen = (x.screen_size().0 as u32, x.screen_size().1 as u32);
            router.add(Box::new(x));
            names.push("xtest");
        }
    }
    if let Some(spec) = &args.jog_profile {
        let profile = jog_profile::lookup(spec).context("--jog-profile")?;
        let keyboard = XTestSink::open(display.as_deref())
            .context("--jog-profile types through XTEST: it needs the X display")?;
        router.add(Box::new(JogProfileSink::new(profile, Box::new(keyboard))));
        names.push("jog profile");
    }
    if args.uinput != Uinput::Off {
        match open_uinput(screen, args.jog_profile.is_none()) {
            Ok(sinks) => {
                for s in sinks {
                    names.push(s.name());
                    router.add(s);
                }
            }
            Err(e) if args.uinput == Uinput::On => {
                return Err(anyhow::Error::new(e).context("--uinput on"))
            }
            Err(e) => {
                tracing::info!("no pen tablet or jog/shuttle injection: {e}");
            }
        }
    }
    let injector = Injector::start(Box::new(router)).context("starting the injection thread")?;
    println!(
        "input: {} ({})",
        names.join(" + "),
        injector.kinds().names().join(", ").to_lowercase()
    );
    Ok(Some(injector))
}

/// Starts audio capture as the flags say. No sound server means no audio (reported), not a
/// failed start; a device the user named that does not exist is an error.
fn open_audio(
    args: &Args,
    clock: sightline_protocol::time::WireClock,
) -> anyhow::Result<Option<sightline_host::audio::pipeline::AudioFeed>> {
    use sightline_host::audio::cli::{start, AudioStart};
    use sightline_host::audio::AudioError;
    match start(&args.audio, clock).map_err(|e| anyhow::anyhow!("audio settings: {e}"))? {
        AudioStart::Running(feed) => {
            println!("audio: {}", feed.describe());
            Ok(Some(feed))
        }
        AudioStart::Off => {
            println!("audio: off");
            Ok(None)
        }
        AudioStart::Unavailable(e @ AudioError::NoSuchDevice { .. }) => {
            Err(anyhow::Error::new(e).context("--audio-device"))
        }
        AudioStart::Unavailable(e) => {
            println!("audio: unavailable ({e}); serving without audio");
            Ok(None)
        }
    }
}

/// The uinput pen tablet (and the virtual jog/shuttle device when `jog` is set).
#[cfg(target_os = "linux")]
fn open_uinput(
    screen: (u32, u32),
    jog: bool,
) -> Result<Vec<Box<dyn InputSink>>, sightline_host::inject::InjectError> {
    use sightline_host::inject::uinput::{UinputJogShuttle, UinputPen};
    let mut v: Vec<Box<dyn InputSink>> = vec![Box::new(UinputPen::open(screen.0, screen.1)?)];
    if jog {
        v.push(Box::new(UinputJogShuttle::open()?));
    }
    Ok(v)
}

#[cfg(not(target_os = "linux"))]
fn open_uinput(
    _screen: (u32, u32),
    _jog: bool,
) -> Result<Vec<Box<dyn InputSink>>, sightline_host::inject::InjectError> {
    Err(sightline_host::inject::InjectError::Open {
        backend: "uinput",
        detail: "uinput exists only on Linux".into(),
    })
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("expected WIDTHxHEIGHT, got {s:?}"))?;
    let w: u32 = w.parse().map_err(|_| format!("bad width in {s:?}"))?;
    let h: u32 = h.parse().map_err(|_| format!("bad height in {s:?}"))?;
    if !(64..=3840).contains(&w) || !(64..=2160).contains(&h) {
        return Err(format!("{s}: width 64..=3840 and height 64..=2160"));
    }
    Ok((w, h))
}

/// A frame source and, when it is an X display, that display's name (input goes there too).
type Opened = (Box<dyn FrameSource>, Option<String>);

/// Opens the frame source the flags ask for.
fn open_source(args: &Args) -> anyhow::Result<Option<Opened>> {
    let synthetic = || -> Opened {
        let (w, h, fps) = (args.size.0, args.size.1, args.fps);
        let scene = match args.scene {
            SceneArg::Desktop => Scene::Desktop,
            SceneArg::Busy => Scene::Busy,
            SceneArg::Gradient10 => return (Box::new(GradientSource::new(w, h, fps)), None),
        };
        (
            Box::new(SyntheticSource::new(w, h, fps).with_scene(scene)),
            None,
        )
    };
    let x11 = |d: Option<String>| -> anyhow::Result<Opened> {
        let d = d.or_else(|| std::env::var("DISPLAY").ok());
        Ok((open_x11(d.as_deref())?, d))
    };
    match args.source {
        Some(SourceKind::None) => Ok(None),
        Some(SourceKind::Synthetic) => Ok(Some(synthetic())),
        Some(SourceKind::X11) => Ok(Some(x11(args.display.clone())?)),
        None => {
            let display = args
                .display
                .clone()
                .or_else(|| std::env::var("DISPLAY").ok());
            match display {
                Some(d) if !d.is_empty() => match x11(Some(d)) {
                    Ok(s) => Ok(Some(s)),
                    Err(e) => {
                        tracing::warn!(error = %e, "no usable X display; streaming the synthetic picture");
                        Ok(Some(synthetic()))
                    }
                },
                _ => {
                    tracing::info!("no display; streaming the synthetic picture");
                    Ok(Some(synthetic()))
                }
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn open_x11(display: Option<&str>) -> anyhow::Result<Box<dyn FrameSource>> {
    Ok(Box::new(sightline_host::capture::x11::X11Source::open(
        display,
    )?))
}

#[cfg(not(target_os = "linux"))]
fn open_x11(_display: Option<&str>) -> anyhow::Result<Box<dyn FrameSource>> {
    anyhow::bail!("X11 capture is only built on Linux")
}

const AFTER_HELP: &str = "\
Examples:
  host-agent                                   # listen on 0.0.0.0:4433 with default paths
  host-agent --listen 127.0.0.1:4433 --identity /etc/sightline/host --authorized /etc/sightline/authorized_viewers

Authorize a viewer (on the host):   certs authorize --authorized FILE --cert viewer-cert.pem --name alice
Print the host fingerprint:         certs fingerprint IDENTITY_DIR";

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    Err(format!("expected ADDR:PORT, ADDR or PORT, got {s:?}"))
}

/// Parses the command line merged with the configuration file (when there is one).
fn parse_args() -> anyhow::Result<(Args, clap::ArgMatches)> {
    use clap::{CommandFactory, FromArgMatches};
    let cmd = Args::command();
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let first = cmd
        .clone()
        .try_get_matches_from(&argv)
        .unwrap_or_else(|e| e.exit());
    let mut config_path = first.get_one::<PathBuf>("config").cloned();
    if config_path.is_none()
        && first.subcommand_name() == Some("pair")
        && std::path::Path::new(config::SYSTEM_CONFIG).exists()
    {
        config_path = Some(PathBuf::from(config::SYSTEM_CONFIG));
        argv.splice(1..1, ["--config".into(), config::SYSTEM_CONFIG.into()]);
    }
    if let Some(path) = &config_path {
        argv = sightline_host::config_file::merge(&cmd, &argv, path)?;
    }
    let matches = cmd.try_get_matches_from(&argv).unwrap_or_else(|e| e.exit());
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    Ok((args, matches))
}

/// The stream formats the flags ask for, for a source with `pixels`.
fn format_request(args: &Args, pixels: Option<PixelFormat>) -> FormatRequest {
    let bit_depth = match args.bit_depth {
        BitDepthArg::Eight => 8,
        BitDepthArg::Ten => 10,
        BitDepthArg::Auto if pixels == Some(PixelFormat::X2Rgb10) => 10,
        BitDepthArg::Auto => 8,
    };
    FormatRequest {
        codec: match args.codec {
            CodecArg::Auto => CodecPreference::Auto,
            CodecArg::Hevc => CodecPreference::Hevc,
            CodecArg::H264 => CodecPreference::H264,
        },
        bit_depth,
        chroma: match args.chroma {
            ChromaArg::Yuv420 => Chroma::Yuv420,
            ChromaArg::Yuv444 => Chroma::Yuv444,
        },
        matrix: match args.matrix {
            MatrixArg::Bt709 => ColourMatrix::Bt709,
            MatrixArg::Bt2020 => ColourMatrix::Bt2020Ncl,
        },
        range: match args.range {
            RangeArg::Limited => ColourRange::Limited,
            RangeArg::Auto | RangeArg::Full => ColourRange::Full,
        },
    }
}

fn encoder_settings(args: &Args) -> EncoderSettings {
    EncoderSettings {
        usage: match args.encoder_usage {
            UsageArg::Camera => EncoderUsage::Camera,
            UsageArg::Screen => EncoderUsage::Screen,
        },
        bitrate_bps: (args.bitrate * 1e6) as u32,
        fps: args.fps as f32,
        max_slice_bytes: 1100,
        threads: 2,
    }
}

/// `--list-encoders`: probe every candidate (10-bit 4:4:4 and 4:2:0 in both codecs, and the
/// formats the flags ask for) and print the report.
fn list_encoders(args: &Args) {
    let settings = encoder_settings(args);
    let all = FormatRequest {
        codec: CodecPreference::Hevc,
        bit_depth: 10,
        chroma: Chroma::Yuv444,
        ..format_request(args, None)
    };
    println!("Encoder probe (a real test encode each; first working one per format is used):");
    for line in probe_formats(&all, settings, true).report {
        println!("  {line}");
    }
    let request = format_request(args, Some(PixelFormat::X2Rgb10));
    let probe = probe_formats(&request, settings, false);
    println!("With these flags a 10-bit source would offer, best first:");
    for o in &probe.offers {
        println!("  {} via {}", o.format, o.encoder);
    }
}

fn main() -> anyhow::Result<()> {
    let (args, matches) = parse_args()?;
    if args.print_config {
        use clap::CommandFactory;
        print!(
            "{}",
            sightline_host::config_file::render(
                &Args::command(),
                &matches,
                security_cli::CONFIG_HEADER
            )
        );
        return Ok(());
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&args.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if args.list_encoders {
        list_encoders(&args);
        return Ok(());
    }

    let identity_dir = args
        .identity
        .clone()
        .unwrap_or_else(config::default_identity_dir);
    let authorized_path = args
        .authorized
        .clone()
        .unwrap_or_else(config::default_authorized_file);
    let name = args.name.clone().unwrap_or_else(config::machine_name);
    if let Some(Command::Pair(pair)) = &args.command {
        return security_cli::run_pair(pair, &args.security, &identity_dir, &authorized_path);
    }
    let (identity, created) = Identity::load_or_create(&identity_dir, Role::Host, &name)
        .with_context(|| format!("host identity in {}", identity_dir.display()))?;
    if created {
        tracing::info!(dir = %identity_dir.display(), "created a new host identity");
    }
    let authorized = AuthorizedViewers::load_or_empty(&authorized_path)
        .with_context(|| format!("authorized viewers in {}", authorized_path.display()))?;
    if authorized.is_empty() {
        tracing::warn!(
            file = %authorized_path.display(),
            "no viewer is authorized yet: every connection will be refused until you run \
             `certs authorize --authorized {} --cert VIEWER_CERT.pem`",
            authorized_path.display()
        );
    }

    let clock = sightline_host::net::host_clock(std::time::Instant::now());
    let mut capabilities = Capabilities::default();
    let mut x11_display = None;
    let video = match open_source(&args)? {
        Some((source, display)) => {
            x11_display = display;
            println!("video source: {}", source.describe());
            let settings = VideoSettings {
                encoder: encoder_settings(&args),
                record: args.record.clone(),
                max_frames: args.max_frames,
                tiles: TileSettings {
                    enabled: !args.no_lossless,
                    budget_bps: (args.lossless_budget_mbps.max(0.1) * 1e6) as u64,
                    ..TileSettings::default()
                },
            };
            let request = format_request(&args, Some(source.format()));
            let probe = probe_formats(&request, settings.encoder, false);
            for line in &probe.report {
                println!("encoder probe: {line}");
            }
            if probe.offers.is_empty() {
                anyhow::bail!("no working video encoder: {}", probe.report.join("; "));
            }
            for (i, o) in probe.offers.iter().enumerate() {
                println!(
                    "stream format {}: {} via {}",
                    if i == 0 { "offered" } else { "fallback" },
                    o.format,
                    o.encoder
                );
            }
            (
                capabilities.video_codecs,
                capabilities.bit_depths,
                capabilities.chroma,
            ) = capabilities_of(&probe.offers);
            let feed = pipeline::start_negotiated(source, probe.offers, settings, clock)?;
            Some(feed)
        }
        None => None,
    };
    let audio = open_audio(&args, clock)?;
    if let Some(feed) = &audio {
        capabilities.audio_layouts = feed.config().layout.capability();
    }
    let injector = open_input(&args, x11_display.as_deref())?;
    capabilities.input_kinds = injector.as_ref().map_or(InputKinds::EMPTY, Injector::kinds);
    // Bench-mode latency probes: drawn by a probe window on an X display, else by the source.
    let probes = match (&video, x11_display.as_deref()) {
        (None, _) => None,
        #[cfg(target_os = "linux")]
        (Some(_), Some(d)) => match ProbeWindow::open(Some(d)) {
            Ok(w) => Some(ProbeTarget::Window(std::sync::Mutex::new(w))),
            Err(e) => {
                tracing::warn!("no latency probes (bench mode) on {d}: {e}");
                None
            }
        },
        (Some(feed), _) => Some(ProbeTarget::Feed(feed.clone())),
    };
    if probes.is_some() {
        capabilities.input_kinds = capabilities.input_kinds.union(InputKinds::PROBE);
    }
    let security = security_cli::open(&args.security, &authorized_path)?;
    let cfg = NetConfig {
        listen: args.listen,
        host_name: name,
        // Offer only what this host can do: the stream formats its encoders produced in the
        // probe when a source is open, the input kinds its sink injects.
        capabilities,
        authorized_path,
        max_sessions: args.max_sessions.max(1),
        handshake_timeout: Duration::from_secs(args.handshake_timeout.max(1)),
        session: security_cli::session_config(
            &args.security,
            HostConfig {
                lossless_tiles: !args.no_lossless,
                ..HostConfig::default()
            },
        ),
        clock,
        video,
        fec: match args.fec {
            FecArg::Auto => FecConfig::default(),
            FecArg::Fixed(share) => FecConfig {
                ratio: share.max(0.0),
                min_parity: if share > 0.0 {
                    FecConfig::default().min_parity
                } else {
                    0
                },
            },
        },
        adapt: AdaptConfig {
            rate_control: !args.no_rate_control,
            adaptive_fec: args.fec == FecArg::Auto,
            ..AdaptConfig::default()
        },
        audio,
        security: security.options.clone(),
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sightline-net")
        .build()?;
    rt.block_on(async move {
        let endpoint = HostEndpoint::bind(&identity, cfg)?;
        let addr = endpoint.local_addr()?;
        println!(
            "host-agent listening on {addr} (QUIC, TLS 1.3 AES-256-GCM)\nhost fingerprint: {}",
            identity.fingerprint()
        );
        let closer = endpoint.closer();
        security.started(addr, identity.fingerprint(), args.config.as_deref());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let serve = tokio::spawn(endpoint.serve(tx));
        let report = tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                match ev {
                    NetEvent::SessionStarted {
                        session_id,
                        remote,
                        authorized_as,
                        viewer_name,
                        fingerprint,
                        ..
                    } => println!(
                        "session {session_id:016x} started: viewer {viewer_name:?} \
                         (authorized as {authorized_as:?}, {fingerprint}) from {remote}"
                    ),
                    NetEvent::SessionEnded {
                        session_id, reason, ..
                    } => println!("session {session_id:016x} ended: {reason}"),
                    NetEvent::Refused {
                        remote,
                        stage,
                        reason,
                        ..
                    } => println!("refused {remote} at {stage}: {reason}"),
                    NetEvent::Input {
                        session_id,
                        event,
                        origin,
                    } => {
                        if probes.as_ref().is_some_and(|p| p.handle(&event, &origin)) {
                            continue;
                        }
                        if let Some(inj) = &injector {
                            inj.submit(session_id, event, origin);
                        }
                    }
                    NetEvent::Listening { .. } => {}
                }
            }
        });
        security_cli::wait_for_shutdown(&security).await;
        println!("shutting down");
        closer.close(
            quinn::VarInt::from_u32(sightline_protocol::transport::CLOSE_HOST_SHUTDOWN),
            b"host shutting down",
        );
        closer.wait_idle().await;
        security.stopped();
        serve.abort();
        report.abort();
        anyhow::Ok(())
    })
}
