//! Audio on the viewer: jitter buffer → decoder with concealment → device, with the channel
//! order mapped by speaker name, A/V sync against the picture, mute and volume.
//!
//! ```text
//!  net task: AudioConfig ─► open output (own thread) + Playout ─┐
//!            AudioPacket ─► Playout::push ─► jitter buffer      ├─ Mutex<Option<Playout>>
//!  device callback (cpal) ─► Playout::render ◄──────────────────┘
//! ```
//!
//! [`AudioHandle`] is the application's side: what to play on, mute/volume, the video latency for
//! A/V sync, and the figures for the overlay and the JSON report.

pub mod cli;
pub mod decode;
pub mod mix;
pub mod output;
pub mod playout;
pub mod rt;
pub mod stretch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde_json::{json, Value};
use sightline_protocol::msg::{AudioCodec, AudioConfig, AudioPacket};
use sightline_protocol::time::WireClock;

use crate::stats::{current_clock, SharedClock};
pub use output::{AudioOutput, Backend, OutputError, SharedPlayout};
pub use playout::Playout;

/// What the user chose.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioOptions {
    /// Audio system.
    pub backend: Backend,
    /// Output device (default: the system's default output).
    pub device: Option<String>,
    /// Volume, 1.0 = as sent.
    pub volume: f32,
    /// Start muted.
    pub muted: bool,
    /// Samples per device callback (the sound server buffers two): 240 (5 ms) for the lowest
    /// latency, 480 (10 ms) where a busy machine misses 5 ms deadlines.
    pub period_frames: u32,
}

impl Default for AudioOptions {
    fn default() -> Self {
        AudioOptions {
            backend: Backend::Auto,
            device: None,
            volume: 1.0,
            muted: false,
            period_frames: 240,
        }
    }
}

/// The figures the overlay and the JSON report show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioSnapshot {
    /// Stream: layout, codec, bitrate.
    pub stream: String,
    /// Output device, or why there is none.
    pub output: String,
    /// Capture → played (median over recent packets), ms.
    pub latency_ms: Option<f64>,
    /// Audio buffered (jitter buffer), ms.
    pub buffer_ms: f64,
    /// The device's own output latency, ms.
    pub device_ms: f64,
    /// Interarrival jitter, ms.
    pub jitter_ms: f64,
    /// Times the buffer ran dry.
    pub underruns: u64,
    /// Stretches of concealment played (lost packets + underruns + A/V stretches).
    pub concealed: u64,
    /// Packets lost (gaps concealed).
    pub lost: u64,
    /// Packets that came after their audio was played.
    pub late: u64,
    /// Samples inserted / dropped for delay control and clock drift.
    pub inserted_samples: u64,
    /// See `inserted_samples`.
    pub dropped_samples: u64,
    /// Packets received.
    pub received: u64,
    /// Device callbacks served.
    pub callbacks: u64,
    /// Gaps between device callbacks longer than 2.5 periods: the sound server (or this
    /// machine) missed a deadline and the listener heard a dropout.
    pub device_gaps: u64,
    /// Audio minus video latency, ms (positive: sound late), when both are known.
    pub av_offset_ms: Option<f64>,
    /// Audio held back to meet the picture, ms.
    pub hold_back_ms: f64,
    /// Volume and mute.
    pub volume: f32,
    /// Muted.
    pub muted: bool,
}

impl AudioSnapshot {
    /// One line for the overlay.
    pub fn overlay_lines(&self) -> Vec<String> {
        let lat = self
            .latency_ms
            .map_or("-".to_owned(), |l| format!("{l:.1} ms"));
        let mut v = vec![
            format!("audio {}", self.stream),
            format!(
                "audio lat {lat} buf {:.1} ms{}",
                self.buffer_ms,
                if self.muted {
                    " MUTED".to_owned()
                } else if self.volume != 1.0 {
                    format!(" vol {:.0}%", self.volume * 100.0)
                } else {
                    String::new()
                }
            ),
            format!(
                "audio underruns {} concealed {} late {} gaps {}",
                self.underruns, self.concealed, self.late, self.device_gaps
            ),
        ];
        if let Some(av) = self.av_offset_ms {
            v.push(format!("a/v {av:+.1} ms hold {:.1} ms", self.hold_back_ms));
        }
        v
    }

    /// The JSON form.
    pub fn json(&self) -> Value {
        json!({
            "stream": self.stream,
            "output": self.output,
            "latency_ms": self.latency_ms,
            "buffer_ms": self.buffer_ms,
            "device_ms": self.device_ms,
            "jitter_ms": self.jitter_ms,
            "received": self.received,
            "callbacks": self.callbacks,
            "device_gaps": self.device_gaps,
            "underruns": self.underruns,
            "concealed": self.concealed,
            "lost": self.lost,
            "late": self.late,
            "inserted_samples": self.inserted_samples,
            "dropped_samples": self.dropped_samples,
            "av_offset_ms": self.av_offset_ms,
            "hold_back_ms": self.hold_back_ms,
            "volume": self.volume,
            "muted": self.muted,
        })
    }
}

/// The application's handle on audio: controls and figures. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AudioHandle {
    opts: Arc<Mutex<AudioOptions>>,
    playout: SharedPlayout,
    output: Arc<Mutex<Option<AudioOutput>>>,
    status: Arc<Mutex<String>>,
    video_latency_us: Arc<AtomicU64>,
}

impl AudioHandle {
    /// A handle playing as `opts` say (nothing is opened until the host announces audio).
    pub fn new(opts: AudioOptions) -> Self {
        AudioHandle {
            opts: Arc::new(Mutex::new(opts)),
            playout: Arc::default(),
            output: Arc::default(),
            status: Arc::new(Mutex::new("waiting for the host's audio".into())),
            video_latency_us: Arc::default(),
        }
    }

    /// Sets the volume (1.0 = as sent; up to 4.0).
    pub fn set_volume(&self, volume: f32) {
        let mut o = lock(&self.opts);
        o.volume = volume.clamp(0.0, 4.0);
        self.apply(&o);
    }

    /// Mutes or unmutes.
    pub fn set_muted(&self, muted: bool) {
        let mut o = lock(&self.opts);
        o.muted = muted;
        self.apply(&o);
    }

    /// Flips mute; returns the new state.
    pub fn toggle_mute(&self) -> bool {
        let muted = !lock(&self.opts).muted;
        self.set_muted(muted);
        muted
    }

    /// Current volume and mute.
    pub fn volume(&self) -> (f32, bool) {
        let o = lock(&self.opts);
        (o.volume, o.muted)
    }

    /// The picture's capture → presented latency (median, µs) for A/V sync.
    pub fn set_video_latency_us(&self, us: u64) {
        self.video_latency_us.store(us, Ordering::Relaxed);
    }

    /// The current figures.
    pub fn snapshot(&self) -> AudioSnapshot {
        let (volume, muted) = self.volume();
        let output = lock(&self.output)
            .as_ref()
            .map_or_else(|| lock(&self.status).clone(), |o| o.describe.clone());
        let guard = lock(&self.playout);
        let Some(p) = guard.as_ref() else {
            return AudioSnapshot {
                output,
                volume,
                muted,
                ..AudioSnapshot::default()
            };
        };
        let j = p.jitter_stats();
        let cfg = p.config();
        AudioSnapshot {
            stream: describe(cfg),
            output,
            latency_ms: p.latency_p50_us().map(|u| u as f64 / 1e3),
            buffer_ms: j.depth_samples as f64 / 48.0,
            device_ms: p.device_delay().as_secs_f64() * 1e3,
            jitter_ms: j.jitter_us as f64 / 1e3,
            underruns: j.underruns,
            concealed: j.lost + j.underruns + j.stretches,
            lost: j.lost,
            late: j.late,
            inserted_samples: j.inserted_samples,
            dropped_samples: j.dropped_samples,
            received: j.received,
            callbacks: p.counters().callbacks,
            device_gaps: p.counters().device_gaps,
            av_offset_ms: p.av_offset_us().map(|u| u as f64 / 1e3),
            hold_back_ms: p.av_hold_back().as_secs_f64() * 1e3,
            volume,
            muted,
        }
    }

    fn apply(&self, o: &AudioOptions) {
        if let Some(p) = lock(&self.playout).as_mut() {
            p.set_volume(o.volume, o.muted);
        }
    }
}

/// `7.1 Opus 512 kb/s`.
pub fn describe(cfg: &AudioConfig) -> String {
    match cfg.codec {
        AudioCodec::Opus => format!(
            "{} Opus {} kb/s {:.1} ms",
            cfg.layout.name(),
            cfg.bitrate_bps / 1000,
            cfg.frame_us() as f64 / 1e3
        ),
        AudioCodec::Pcm24 => format!("{} PCM 24-bit", cfg.layout.name()),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The network task's side: turns configurations and packets into playback.
#[derive(Debug)]
pub struct AudioReceiver {
    handle: AudioHandle,
    clock: SharedClock,
    wire: WireClock,
    config: Option<AudioConfig>,
    /// Packets dropped because no configuration (or no output) was ready.
    pub unready_packets: u64,
}

impl AudioReceiver {
    /// A receiver feeding `handle`, turning host timestamps into latencies with `clock`.
    pub fn new(handle: AudioHandle, clock: SharedClock, wire: WireClock) -> Self {
        AudioReceiver {
            handle,
            clock,
            wire,
            config: None,
            unready_packets: 0,
        }
    }

    /// The host announced (or changed) the audio format: (re)open the output on its own
    /// thread, so a slow sound server never holds the network task.
    pub fn on_config(&mut self, cfg: AudioConfig) {
        if self.config.as_ref() == Some(&cfg) {
            return;
        }
        self.config = Some(cfg.clone());
        *lock(&self.handle.playout) = None;
        let h = self.handle.clone();
        let wire = self.wire;
        let spawned = std::thread::Builder::new()
            .name("sightline-audio-open".into())
            .spawn(move || {
                let opts = lock(&h.opts).clone();
                // Reuse an open output of the same layout; reopen otherwise.
                let mut out = lock(&h.output);
                let reuse = out
                    .as_ref()
                    .is_some_and(|o| o.speakers.len() == cfg.layout.channels() as usize);
                if !reuse {
                    *out = None;
                    let t0 = Instant::now();
                    let opened = AudioOutput::open(
                        opts.backend,
                        opts.device.as_deref(),
                        cfg.layout,
                        opts.period_frames,
                        h.playout.clone(),
                    );
                    match opened {
                        Ok(o) => {
                            tracing::info!(
                                output = %o.describe,
                                stream = %describe(&cfg),
                                open_ms = t0.elapsed().as_secs_f64() * 1e3,
                                "audio playing"
                            );
                            *out = Some(o);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "no audio playback");
                            *lock(&h.status) = format!("unavailable: {e}");
                            return;
                        }
                    }
                }
                let Some(o) = out.as_ref() else { return };
                match Playout::new(&cfg, &o.speakers, wire) {
                    Ok(mut p) => {
                        p.set_volume(opts.volume, opts.muted);
                        *lock(&h.playout) = Some(p);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "no audio decoder");
                        *lock(&h.status) = format!("unavailable: {e}");
                    }
                }
            });
        if let Err(e) = spawned {
            *lock(&self.handle.status) = format!("unavailable: {e}");
        }
    }

    /// An audio packet arrived.
    pub fn on_packet(&mut self, now: Instant, pkt: AudioPacket) {
        let mut guard = lock(&self.handle.playout);
        match guard.as_mut() {
            Some(p) => {
                p.set_clock(current_clock(&self.clock));
                p.set_video_latency(self.handle.video_latency_us.load(Ordering::Relaxed));
                p.push(now, pkt);
            }
            None => self.unready_packets += 1,
        }
    }
}
