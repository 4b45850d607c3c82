//! A real PulseAudio server for audio tests, and 8-channel null sinks on it.
//!
//! `scripts/test.sh` starts one PulseAudio (as root, private runtime dir, remixing off) and
//! exports `PULSE_SERVER`; a test binary run on its own starts a private one the first time it
//! is needed. Each test loads its own null sinks (unique names) so tests run in parallel without
//! hearing each other; they are unloaded when the [`NullSink`] is dropped.
//!
//! Playing into a sink and recording a sink's monitor go through `pacat`/`parec` with an
//! explicit `--channel-map`, so the reference signal and the measurement never depend on the
//! channel order Sightline itself uses.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sightline_protocol::audio::layout::Speaker;

/// The PulseAudio name of a speaker position.
pub fn pa_position(s: Speaker) -> &'static str {
    match s {
        Speaker::Mono => "mono",
        Speaker::FrontLeft => "front-left",
        Speaker::FrontRight => "front-right",
        Speaker::FrontCenter => "front-center",
        Speaker::Lfe => "lfe",
        Speaker::BackLeft => "rear-left",
        Speaker::BackRight => "rear-right",
        Speaker::SideLeft => "side-left",
        Speaker::SideRight => "side-right",
    }
}

/// `--channel-map` for `speakers`.
pub fn channel_map(speakers: &[Speaker]) -> String {
    speakers
        .iter()
        .map(|s| pa_position(*s))
        .collect::<Vec<_>>()
        .join(",")
}

const SINK_MAP: &str =
    "front-left,front-right,front-center,lfe,rear-left,rear-right,side-left,side-right";

/// A private PulseAudio started by this process (killed at exit by the OS: it is our child and
/// exits when its socket directory goes; `scripts/test.sh` cleans up its own).
struct Private {
    _dir: PathBuf,
    _child: Child,
}

static SERVER: OnceLock<Result<Option<Private>, String>> = OnceLock::new();

/// Makes sure a PulseAudio server is reachable through `PULSE_SERVER`, starting a private one
/// when none is configured. Panics with the reason when that is impossible (PulseAudio is part
/// of the suite's dependencies: `scripts/deps.sh` installs it).
pub fn ensure_server() {
    let r = SERVER.get_or_init(|| {
        if std::env::var_os("PULSE_SERVER").is_some() && pactl(&["info"]).is_ok() {
            return Ok(None);
        }
        start_private().map(Some)
    });
    if let Err(e) = r {
        panic!("no PulseAudio for the audio tests: {e}");
    }
}

fn start_private() -> Result<Private, String> {
    let dir = std::env::temp_dir().join(format!("sightline-pulse-{}", std::process::id()));
    let runtime = dir.join("runtime");
    let config = dir.join("config").join("pulse");
    std::fs::create_dir_all(&runtime).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&config).map_err(|e| e.to_string())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700));
    }
    std::fs::write(config.join("daemon.conf"), DAEMON_CONF).map_err(|e| e.to_string())?;
    let socket = runtime.join("native");
    let child = Command::new("pulseaudio")
        .args([
            "-n",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--disallow-exit",
            "--log-target=stderr",
            "--log-level=error",
        ])
        .arg(format!(
            "--load=module-native-protocol-unix auth-anonymous=1 socket={}",
            socket.display()
        ))
        .env("PULSE_CONFIG", config.join("daemon.conf"))
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("HOME", &dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run pulseaudio ({e}); install it with scripts/deps.sh"))?;
    // Statics are never dropped: a watcher stops the server and removes its directory once
    // this test process has exited, so running a test binary on its own leaves nothing behind.
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; kill {} 2>/dev/null; sleep 1; rm -rf '{}'",
            std::process::id(),
            child.id(),
            dir.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    // The env var is set once, before any audio client exists in this process.
    std::env::set_var("PULSE_SERVER", format!("unix:{}", socket.display()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while pactl(&["info"]).is_err() {
        if Instant::now() > deadline {
            return Err("pulseaudio did not come up within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Private {
        _dir: dir,
        _child: child,
    })
}

/// The daemon configuration the suite uses (also written by `scripts/test.sh`): streams are
/// mapped onto sinks by channel name only (no up- or downmixing), 48 kHz float.
pub const DAEMON_CONF: &str = "\
enable-remixing = no
remixing-produce-lfe = no
remixing-consume-lfe = no
default-sample-format = float32le
default-sample-rate = 48000
alternate-sample-rate = 48000
flat-volumes = no
";

/// Runs `pactl` with the server from the environment.
pub fn pactl(args: &[&str]) -> Result<String, String> {
    let out = Command::new("pactl")
        .args(args)
        .output()
        .map_err(|e| format!("pactl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// An 8-channel null sink, unloaded on drop.
///
/// An idle PulseAudio null sink renders in ~2 s blocks, so a stream that connects to it waits up
/// to 2 s before it runs (measured: a cpal output stream got no callback for over a second). A
/// low-latency recorder on the monitor, started with the sink and kept until it is dropped, keeps
/// it rendering in small blocks, as a real sink with a client would be.
#[derive(Debug)]
pub struct NullSink {
    /// Its sink name (its monitor is `NAME.monitor`).
    pub name: String,
    module: String,
    keepalive: Option<Child>,
}

impl NullSink {
    /// Loads a sink named `prefix-PID-N`.
    pub fn new(prefix: &str) -> NullSink {
        ensure_server();
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let module = pactl(&[
            "load-module",
            "module-null-sink",
            &format!("sink_name={name}"),
            "channels=8",
            &format!("channel_map={SINK_MAP}"),
            "rate=48000",
            "format=float32le",
        ])
        .unwrap_or_else(|e| panic!("cannot load a null sink: {e}"));
        let mut keepalive = Command::new("parec")
            .args([
                &format!("--device={name}.monitor"),
                "--format=float32le",
                "--rate=48000",
                "--channels=1",
                "--latency-msec=5",
                "--raw",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("parec (pulseaudio-utils)");
        // Wait until the sink renders for it, then keep draining in the background.
        let mut out = keepalive.stdout.take().expect("parec stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut first = Some(tx);
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Some(tx) = first.take() {
                    let _ = tx.send(());
                }
            }
        });
        if rx.recv_timeout(Duration::from_secs(5)).is_err() {
            panic!("null sink {name} did not start rendering within 5 s");
        }
        NullSink {
            name,
            module,
            keepalive: Some(keepalive),
        }
    }

    /// Its monitor source.
    pub fn monitor(&self) -> String {
        format!("{}.monitor", self.name)
    }
}

impl Drop for NullSink {
    fn drop(&mut self) {
        if let Some(mut k) = self.keepalive.take() {
            let _ = k.kill();
            let _ = k.wait();
        }
        let _ = pactl(&["unload-module", &self.module]);
    }
}

/// Plays interleaved float samples into `sink` with the given speakers (on a thread; returns at
/// once). The write is paced by the server.
pub fn play(sink: &str, speakers: &[Speaker], samples: Vec<f32>) -> std::thread::JoinHandle<()> {
    let mut child = Command::new("pacat")
        .args([
            "--playback",
            &format!("--device={sink}"),
            "--format=float32le",
            "--rate=48000",
            &format!("--channels={}", speakers.len()),
            &format!("--channel-map={}", channel_map(speakers)),
            "--latency-msec=200",
            "--raw",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pacat (pulseaudio-utils)");
    let mut stdin = child.stdin.take().expect("pacat stdin");
    std::thread::spawn(move || {
        let bytes: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
        let _ = stdin.write_all(&bytes);
        drop(stdin);
        let _ = child.wait();
    })
}

/// Records `source` with the given speakers until stopped.
#[derive(Debug)]
pub struct Recorder {
    child: Child,
    reader: std::thread::JoinHandle<Vec<u8>>,
    /// Channels recorded.
    pub channels: usize,
    /// When recording started (the first sample is roughly then).
    pub started: Instant,
}

impl Recorder {
    /// Starts `parec` on `source`.
    pub fn start(source: &str, speakers: &[Speaker]) -> Recorder {
        let mut child = Command::new("parec")
            .args([
                &format!("--device={source}"),
                "--format=float32le",
                "--rate=48000",
                &format!("--channels={}", speakers.len()),
                &format!("--channel-map={}", channel_map(speakers)),
                "--latency-msec=50",
                "--raw",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("parec (pulseaudio-utils)");
        let mut out = child.stdout.take().expect("parec stdout");
        let reader = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = out.read_to_end(&mut v);
            v
        });
        Recorder {
            child,
            reader,
            channels: speakers.len(),
            started: Instant::now(),
        }
    }

    /// Stops and returns the samples, one vector per channel.
    pub fn stop(mut self) -> Vec<Vec<f32>> {
        // SIGINT lets parec write out what it still holds (SIGKILL would lose its buffers).
        // SAFETY: signalling our own child by its pid; `kill` has no memory effects.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let bytes = self.reader.join().unwrap_or_default();
        let mut chans = vec![Vec::new(); self.channels];
        for (i, b) in bytes.chunks_exact(4).enumerate() {
            chans[i % self.channels].push(f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        }
        chans
    }
}

/// Power of `hz` in `x` (Goertzel), normalised so a full-scale sine reads 0.25.
pub fn tone_power(x: &[f32], hz: f64) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    let w = std::f64::consts::TAU * hz / 48_000.0;
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s0 = v as f64 + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2) / (x.len() as f64).powi(2)
}

/// A quiet 300 Hz tone (−20 dBFS) with a loud 1 ms burst (a "click", 2 kHz at −2 dBFS) every
/// `every`, on the front channels, for `seconds`: the tone shows that audio keeps flowing, the
/// clicks are landmarks for latency.
pub fn tone_with_clicks(seconds: f64, every: Duration) -> Vec<f32> {
    let n = (seconds * 48_000.0) as usize;
    let period = (every.as_secs_f64() * 48_000.0) as usize;
    let mut v = Vec::with_capacity(n * 2);
    for i in 0..n {
        let t = i as f64 / 48_000.0;
        let mut x = 0.1 * (t * 300.0 * std::f64::consts::TAU).sin();
        let in_click = i % period;
        if i >= period && in_click < 48 {
            x = 0.8
                * (in_click as f64 * 2_000.0 / 48_000.0 * std::f64::consts::TAU)
                    .sin()
                    .signum()
                * 0.99;
        }
        v.push(x as f32);
        v.push(x as f32);
    }
    v
}
