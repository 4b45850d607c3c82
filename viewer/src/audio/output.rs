//! Playback through cpal, on a thread that owns the stream (cpal streams need not be `Send`).
//!
//! cpal's native PulseAudio host with a fixed 240-frame (5 ms) buffer: PulseAudio's default
//! buffer would add ~2 s, and cpal's ALSA route stalls 1–2 s at start. ALSA is the fallback
//! where no sound server runs. The device's channel order is explicit per backend (PulseAudio
//! gets its default map, i.e. WAVE order; ALSA devices use ALSA's order), and the playout maps
//! the stream's speakers onto it by name.

use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use sightline_protocol::audio::layout::{ChannelOrder, Speaker};
use sightline_protocol::msg::ChannelLayout;

use super::playout::Playout;

/// Which audio system plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Backend {
    /// PulseAudio/PipeWire when reachable, else ALSA.
    #[default]
    Auto,
    /// cpal's native PulseAudio host.
    Pulse,
    /// cpal's ALSA host.
    Alsa,
}

/// Why the output could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    /// No sound server or device.
    #[error("audio output unavailable: {0}")]
    Unavailable(String),
    /// The named device does not exist.
    #[error("no audio output matches {name:?}; available: {available}")]
    NoSuchDevice {
        /// Asked for.
        name: String,
        /// What exists.
        available: String,
    },
    /// The device refused every format tried.
    #[error("audio output {device}: {detail}")]
    Format {
        /// Device.
        device: String,
        /// Backend's words.
        detail: String,
    },
}

fn host(backend: Backend) -> Result<(cpal::Host, ChannelOrder, &'static str), OutputError> {
    let pulse = || {
        cpal::host_from_id(cpal::HostId::PulseAudio)
            .map_err(|e| OutputError::Unavailable(format!("no PulseAudio/PipeWire server ({e})")))
    };
    let alsa = || {
        cpal::host_from_id(cpal::HostId::Alsa)
            .map_err(|e| OutputError::Unavailable(format!("ALSA: {e}")))
    };
    Ok(match backend {
        Backend::Pulse => (pulse()?, ChannelOrder::Wave, "PulseAudio"),
        Backend::Alsa => (alsa()?, ChannelOrder::Alsa, "ALSA"),
        Backend::Auto => match pulse() {
            Ok(h) => (h, ChannelOrder::Wave, "PulseAudio"),
            Err(pe) => match alsa() {
                Ok(h) => (h, ChannelOrder::Alsa, "ALSA"),
                Err(ae) => return Err(OutputError::Unavailable(format!("{pe}; {ae}"))),
            },
        },
    })
}

fn device_name(d: &cpal::Device) -> String {
    d.id().map(|id| id.id().to_owned()).unwrap_or_default()
}

fn find_device(host: &cpal::Host, name: Option<&str>) -> Result<cpal::Device, OutputError> {
    let Some(name) = name else {
        return host
            .default_output_device()
            .ok_or_else(|| OutputError::Unavailable("no default output device".into()));
    };
    let outputs: Vec<cpal::Device> = host
        .output_devices()
        .map_err(|e| OutputError::Unavailable(format!("cannot list outputs: {e}")))?
        .collect();
    let lower = name.to_lowercase();
    outputs
        .iter()
        .find(|d| device_name(d) == name)
        .or_else(|| {
            outputs.iter().find(|d| {
                d.description()
                    .is_ok_and(|x| x.name().to_lowercase().contains(&lower))
            })
        })
        .cloned()
        .ok_or_else(|| OutputError::NoSuchDevice {
            name: name.to_owned(),
            available: outputs
                .iter()
                .map(device_name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Checks that an output exists (so the viewer only asks for audio it can play); returns its
/// description.
pub fn probe(backend: Backend, device: Option<&str>) -> Result<String, OutputError> {
    let (h, _, api) = host(backend)?;
    let d = find_device(&h, device)?;
    Ok(format!("{api} {}", device_name(&d)))
}

/// Where the playout lives: the network task swaps it on a new configuration, the device
/// callback renders from it (silence while there is none).
pub type SharedPlayout = Arc<Mutex<Option<Playout>>>;

/// A running output stream.
#[derive(Debug)]
pub struct AudioOutput {
    stop: mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Channels the device was opened with, in its order.
    pub speakers: Vec<Speaker>,
    /// `API device (layout)`.
    pub describe: String,
}

impl AudioOutput {
    /// Opens `device` (default: the default output) for `layout` with `period_frames` per
    /// callback (the sound server buffers two periods) and renders from `playout`. Falls back to
    /// stereo (the playout downmixes) when the device refuses the layout.
    pub fn open(
        backend: Backend,
        device: Option<&str>,
        layout: ChannelLayout,
        period_frames: u32,
        playout: SharedPlayout,
    ) -> Result<AudioOutput, OutputError> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop, stop_rx) = mpsc::channel::<()>();
        let device = device.map(str::to_owned);
        let thread = std::thread::Builder::new()
            .name("sightline-audio-out".into())
            .spawn(move || {
                match open_stream(backend, device.as_deref(), layout, period_frames, playout) {
                    Ok((stream, speakers, describe)) => {
                        let _ = ready_tx.send(Ok((speakers, describe)));
                        let _ = stop_rx.recv();
                        drop(stream);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| {
                OutputError::Unavailable(format!("cannot start the output thread: {e}"))
            })?;
        let (speakers, describe) =
            ready_rx
                .recv_timeout(Duration::from_secs(10))
                .map_err(|_| {
                    OutputError::Unavailable("the audio server did not answer in 10 s".into())
                })??;
        Ok(AudioOutput {
            stop,
            thread: Some(thread),
            speakers,
            describe,
        })
    }
}

impl Drop for AudioOutput {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn open_stream(
    backend: Backend,
    device: Option<&str>,
    layout: ChannelLayout,
    period_frames: u32,
    playout: SharedPlayout,
) -> Result<(cpal::Stream, Vec<Speaker>, String), OutputError> {
    let (h, order, api) = host(backend)?;
    let dev = find_device(&h, device)?;
    let name = device_name(&dev);
    let mut errors = Vec::new();
    // The stream's own layout first; stereo as the fallback the playout downmixes to.
    let mut tries = vec![layout];
    if layout != ChannelLayout::Stereo {
        tries.push(ChannelLayout::Stereo);
    }
    for l in tries {
        let speakers = order.speakers(l).to_vec();
        for buffer in [
            cpal::BufferSize::Fixed(period_frames),
            cpal::BufferSize::Default,
        ] {
            let config = cpal::StreamConfig {
                channels: l.channels() as u16,
                sample_rate: 48_000,
                buffer_size: buffer,
            };
            let p = playout.clone();
            let stream = dev.build_output_stream::<f32, _, _>(
                config,
                move |out: &mut [f32], info: &cpal::OutputCallbackInfo| {
                    super::rt::promote_current_thread();
                    let now = Instant::now();
                    let ts = info.timestamp();
                    let delay = ts.playback.saturating_duration_since(ts.callback);
                    let mut guard = p.lock().unwrap_or_else(PoisonError::into_inner);
                    match guard.as_mut() {
                        Some(playout) if playout.device_channels() == config.channels as usize => {
                            playout.render(now, delay, out)
                        }
                        _ => out.fill(0.0),
                    }
                },
                |e| tracing::warn!(error = %e, "audio output error"),
                Some(Duration::from_secs(5)),
            );
            match stream {
                Ok(s) => {
                    s.play().map_err(|e| OutputError::Format {
                        device: name.clone(),
                        detail: format!("cannot start playback: {e}"),
                    })?;
                    let describe = format!("{api} {name} ({})", l.name());
                    return Ok((s, speakers, describe));
                }
                Err(e) => errors.push(format!("{} {buffer:?}: {e}", l.name())),
            }
        }
    }
    Err(OutputError::Format {
        device: name,
        detail: errors.join("; "),
    })
}
