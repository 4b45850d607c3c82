//! The whole audio chain for tests and benches: host-agent's audio pipeline (capturing a
//! PulseAudio monitor, or synthetic tones), a host endpoint on loopback QUIC, optionally the
//! WAN emulator, and a viewer playing into a PulseAudio sink; plus a recorder that stamps every
//! captured sample with the monotonic clock, for latency measurements.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use sightline_certs::TrustPolicy;
use sightline_host::audio::capture_cpal::{Backend as HostBackend, CpalSource};
use sightline_host::audio::pipeline::{self, AudioFeed};
use sightline_host::audio::synthetic::SyntheticAudio;
use sightline_host::audio::{AudioSettings, AudioSource, CodecChoice};
use sightline_protocol::msg::ChannelLayout;
use sightline_viewer::audio::{AudioHandle, AudioOptions, Backend as ViewerBackend};
use sightline_viewer::net::{connect_media, Media, ViewerConnection};
use sightline_viewer::stats::SharedClock;
use sightline_viewer::wan::{WanRelay, WanSpec};

use crate::{Pki, TestHost};

/// Where the host's audio comes from.
#[derive(Debug, Clone)]
pub enum HostAudio {
    /// The monitor of this PulseAudio sink.
    Sink(String),
    /// Synthetic tones.
    Synthetic,
}

/// A running host → viewer audio session.
#[derive(Debug)]
pub struct AudioChain {
    /// The viewer's audio (figures, controls).
    pub audio: AudioHandle,
    /// The viewer's connection.
    pub conn: Option<ViewerConnection>,
    /// The WAN emulator, when used.
    pub relay: Option<WanRelay>,
    feed: AudioFeed,
    _host: TestHost,
}

impl AudioChain {
    /// Starts everything; returns once the viewer's output has played `min_callbacks` device
    /// callbacks (panics after 10 s). Call inside a tokio runtime.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        pki: &Pki,
        source: HostAudio,
        layout: ChannelLayout,
        codec: CodecChoice,
        viewer_sink: &str,
        period_frames: u32,
        wan: Option<WanSpec>,
    ) -> AudioChain {
        let clock = sightline_host::net::host_clock(Instant::now());
        let feed = pipeline::start(
            Box::new(move || -> Result<Box<dyn AudioSource>, _> {
                Ok(match &source {
                    HostAudio::Sink(sink) => {
                        Box::new(CpalSource::open(HostBackend::Pulse, Some(sink), layout)?)
                    }
                    HostAudio::Synthetic => Box::new(SyntheticAudio::new(layout)),
                })
            }),
            AudioSettings {
                layout,
                codec,
                ..AudioSettings::default()
            },
            clock,
        )
        .expect("host audio pipeline");
        let host = TestHost::start_with_audio(pki, feed.clone(), clock);
        let known = pki.known_hosts("kh-audio", host.addr, &pki.host);
        let mut opts = pki.connect_options(host.addr, &pki.viewer, known, TrustPolicy::PinnedOnly);
        let relay = match wan {
            Some(spec) => {
                let r = WanRelay::start(host.addr, spec).await.expect("WAN relay");
                opts.via = Some(r.addr());
                Some(r)
            }
            None => None,
        };
        let audio = AudioHandle::new(AudioOptions {
            backend: ViewerBackend::Pulse,
            device: Some(viewer_sink.to_owned()),
            period_frames,
            ..AudioOptions::default()
        });
        let conn = connect_media(
            opts,
            Media {
                audio: Some(audio.clone()),
                clock: SharedClock::default(),
                ..Media::default()
            },
        )
        .await
        .expect("viewer connects");
        let deadline = Instant::now() + Duration::from_secs(10);
        while audio.snapshot().callbacks < 40 {
            assert!(
                Instant::now() < deadline,
                "the viewer is not playing: {:?}",
                audio.snapshot()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        AudioChain {
            audio,
            conn: Some(conn),
            relay,
            feed,
            _host: host,
        }
    }

    /// Says goodbye and stops the host's audio thread.
    pub async fn stop(mut self) {
        if let Some(c) = self.conn.take() {
            c.close("done").await;
        }
        self.feed.stop();
    }
}

/// Captured blocks, each with the monotonic time of its first sample.
type StampedBlocks = Arc<Mutex<Vec<(Instant, Vec<f32>)>>>;

/// Samples of one channel of a PulseAudio source, each block stamped with the monotonic time
/// its first sample was captured (cpal's capture timestamp, converted at the callback).
#[derive(Debug)]
pub struct TimedRecorder {
    blocks: StampedBlocks,
    stop: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TimedRecorder {
    /// Records `source` (a PulseAudio source name) as stereo in 5 ms fragments and keeps the
    /// front-left channel.
    pub fn start(source: &str) -> TimedRecorder {
        let blocks: StampedBlocks = Arc::default();
        let (stop, stop_rx) = std::sync::mpsc::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let b = blocks.clone();
        let source = source.to_owned();
        let thread = std::thread::spawn(move || {
            let opened = (|| -> Result<cpal::Stream, String> {
                let host =
                    cpal::host_from_id(cpal::HostId::PulseAudio).map_err(|e| e.to_string())?;
                let dev = host
                    .input_devices()
                    .map_err(|e| e.to_string())?
                    .find(|d| d.id().map(|i| i.id() == source).unwrap_or(false))
                    .ok_or_else(|| format!("no source {source}"))?;
                let stream = dev
                    .build_input_stream::<f32, _, _>(
                        cpal::StreamConfig {
                            channels: 2,
                            sample_rate: 48_000,
                            buffer_size: cpal::BufferSize::Fixed(240),
                        },
                        move |data: &[f32], info: &cpal::InputCallbackInfo| {
                            let ts = info.timestamp();
                            let age = ts.callback.saturating_duration_since(ts.capture);
                            let at = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
                            let left: Vec<f32> = data.iter().step_by(2).copied().collect();
                            b.lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push((at, left));
                        },
                        |e| eprintln!("recorder: {e}"),
                        Some(Duration::from_secs(5)),
                    )
                    .map_err(|e| e.to_string())?;
                stream.play().map_err(|e| e.to_string())?;
                Ok(stream)
            })();
            match opened {
                Ok(stream) => {
                    let _ = ready_tx.send(Ok(()));
                    let _ = stop_rx.recv();
                    drop(stream);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("recorder thread")
            .expect("recorder opens");
        TimedRecorder {
            blocks,
            stop,
            thread: Some(thread),
        }
    }

    /// When the signal first rose above `threshold` after each quiet stretch of at least
    /// `quiet`: the onset of every click.
    pub fn onsets(&self, threshold: f32, quiet: Duration) -> Vec<Instant> {
        let blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        let mut last_loud: Option<Instant> = None;
        for (at, samples) in blocks.iter() {
            for (i, v) in samples.iter().enumerate() {
                if v.abs() < threshold {
                    continue;
                }
                let t = *at + Duration::from_micros(i as u64 * 1_000_000 / 48_000);
                if last_loud.is_none_or(|l| t.saturating_duration_since(l) >= quiet) {
                    out.push(t);
                }
                last_loud = Some(t);
            }
        }
        out
    }

    /// Seconds recorded so far.
    pub fn seconds(&self) -> f64 {
        let blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        blocks.iter().map(|(_, s)| s.len()).sum::<usize>() as f64 / 48_000.0
    }

    /// Every sample recorded (left channel), in order.
    pub fn samples(&self) -> Vec<f32> {
        let blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        blocks.iter().flat_map(|(_, s)| s.iter().copied()).collect()
    }
}

impl Drop for TimedRecorder {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Matches each click onset in `sent` with the first onset in `got` within `window` after it;
/// returns the delays (`None` for a click that never arrived).
pub fn click_delays(sent: &[Instant], got: &[Instant], window: Duration) -> Vec<Option<Duration>> {
    sent.iter()
        .map(|s| {
            got.iter()
                .find(|g| **g >= *s && g.saturating_duration_since(*s) <= window)
                .map(|g| g.saturating_duration_since(*s))
        })
        .collect()
}
