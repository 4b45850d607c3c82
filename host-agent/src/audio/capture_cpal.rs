//! Capture through cpal: by default the monitor of PulseAudio's (or PipeWire's) default sink,
//! i.e. whatever the workstation plays; or a named device.
//!
//! cpal's native PulseAudio host is used when a PulseAudio/PipeWire server is reachable: with a
//! fixed 240-frame fragment it delivers 5 ms blocks 5–10 ms after capture, where cpal's ALSA
//! route (through the `pulse` plugin) stalls for 1–2 s at start and defaults to ~2 s buffers.
//! ALSA is the fallback for machines without a sound server; it has no "monitor", so it needs a
//! named capture device (a loopback such as `snd-aloop`).
//!
//! Channel order is explicit per backend: cpal's PulseAudio host asks for PulseAudio's default
//! map (WAVE order), ALSA devices use ALSA's order.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use sightline_protocol::audio::layout::{ChannelOrder, Speaker};
use sightline_protocol::msg::ChannelLayout;

use super::{AudioBlock, AudioError, AudioSource};

/// Which audio system to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PulseAudio (or PipeWire's PulseAudio server) when reachable, else ALSA.
    Auto,
    /// cpal's native PulseAudio host.
    Pulse,
    /// cpal's ALSA host.
    Alsa,
}

/// Picks the cpal host for `backend`; says which one and in what channel order it delivers.
pub fn host(backend: Backend) -> Result<(cpal::Host, ChannelOrder, &'static str), AudioError> {
    let pulse = || -> Result<cpal::Host, AudioError> {
        cpal::host_from_id(cpal::HostId::PulseAudio).map_err(|e| {
            AudioError::Unavailable(format!(
                "no PulseAudio/PipeWire server ({e}); is one running for this user \
                 (XDG_RUNTIME_DIR, PULSE_SERVER)?"
            ))
        })
    };
    let alsa = || -> Result<cpal::Host, AudioError> {
        cpal::host_from_id(cpal::HostId::Alsa)
            .map_err(|e| AudioError::Unavailable(format!("ALSA: {e}")))
    };
    Ok(match backend {
        Backend::Pulse => (pulse()?, ChannelOrder::Wave, "PulseAudio"),
        Backend::Alsa => (alsa()?, ChannelOrder::Alsa, "ALSA"),
        Backend::Auto => match pulse() {
            Ok(h) => (h, ChannelOrder::Wave, "PulseAudio"),
            Err(pe) => match alsa() {
                Ok(h) => (h, ChannelOrder::Alsa, "ALSA"),
                Err(ae) => return Err(AudioError::Unavailable(format!("{pe}; {ae}"))),
            },
        },
    })
}

/// The device's backend name (PulseAudio source/sink name, ALSA PCM name).
pub fn device_name(d: &cpal::Device) -> String {
    d.id().map(|id| id.id().to_owned()).unwrap_or_default()
}

/// Every capture device of `host`, as `name (description)`.
pub fn list_inputs(host: &cpal::Host) -> Vec<String> {
    host.input_devices()
        .map(|it| {
            it.map(|d| {
                let desc = d
                    .description()
                    .map(|x| x.name().to_owned())
                    .unwrap_or_default();
                format!("{} ({desc})", device_name(&d))
            })
            .collect()
        })
        .unwrap_or_default()
}

/// Finds what to capture: the default sink's monitor, or `name` — a source, or a sink (then its
/// monitor), matched by backend name or a piece of its description.
fn find_device(
    host: &cpal::Host,
    api: &str,
    name: Option<&str>,
) -> Result<cpal::Device, AudioError> {
    let inputs: Vec<cpal::Device> = host
        .input_devices()
        .map_err(|e| AudioError::Unavailable(format!("{api}: cannot list devices: {e}")))?
        .collect();
    let by_name = |n: &str| inputs.iter().find(|d| device_name(d) == n).cloned();
    match name {
        None if api == "PulseAudio" => {
            let sink = host.default_output_device().ok_or_else(|| {
                AudioError::Unavailable("PulseAudio has no default sink to capture".into())
            })?;
            let monitor = format!("{}.monitor", device_name(&sink));
            by_name(&monitor).ok_or_else(|| {
                AudioError::Unavailable(format!(
                    "the default sink has no monitor source {monitor:?}"
                ))
            })
        }
        None => Err(AudioError::Unavailable(format!(
            "{api} has no monitor of the output; name a capture device with --audio-device \
             (for example an snd-aloop loopback); available: {}",
            list_inputs(host).join(", ")
        ))),
        Some(n) => {
            if let Some(d) = by_name(n).or_else(|| by_name(&format!("{n}.monitor"))) {
                return Ok(d);
            }
            let lower = n.to_lowercase();
            inputs
                .iter()
                .find(|d| {
                    d.description()
                        .is_ok_and(|x| x.name().to_lowercase().contains(&lower))
                })
                .cloned()
                .ok_or_else(|| AudioError::NoSuchDevice {
                    name: n.to_owned(),
                    available: list_inputs(host).join(", "),
                })
        }
    }
}

enum Msg {
    Block(AudioBlock),
    Error(String),
}

/// Captures with cpal on its own thread (cpal streams need not be `Send`).
pub struct CpalSource {
    rx: mpsc::Receiver<Msg>,
    speakers: Vec<Speaker>,
    describe: String,
    stop: mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for CpalSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpalSource")
            .field("describe", &self.describe)
            .finish_non_exhaustive()
    }
}

impl CpalSource {
    /// Opens `layout` at 48 kHz in 5 ms fragments from `device` (default: the default sink's
    /// monitor).
    pub fn open(
        backend: Backend,
        device: Option<&str>,
        layout: ChannelLayout,
    ) -> Result<CpalSource, AudioError> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(Vec<Speaker>, String), AudioError>>();
        let (tx, rx) = mpsc::sync_channel::<Msg>(256);
        let (stop, stop_rx) = mpsc::channel::<()>();
        let device = device.map(str::to_owned);
        let thread = std::thread::Builder::new()
            .name("sightline-audio-capture".into())
            .spawn(move || {
                let opened = open_stream(backend, device.as_deref(), layout, tx);
                match opened {
                    Ok((stream, speakers, describe)) => {
                        let _ = ready_tx.send(Ok((speakers, describe)));
                        // Keep the stream alive until asked to stop (or the source is dropped).
                        let _ = stop_rx.recv();
                        drop(stream);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| {
                AudioError::Unavailable(format!("cannot start the capture thread: {e}"))
            })?;
        let (speakers, describe) =
            ready_rx
                .recv_timeout(Duration::from_secs(10))
                .map_err(|_| {
                    AudioError::Unavailable("the audio server did not answer in 10 s".into())
                })??;
        Ok(CpalSource {
            rx,
            speakers,
            describe,
            stop,
            thread: Some(thread),
        })
    }
}

fn open_stream(
    backend: Backend,
    device: Option<&str>,
    layout: ChannelLayout,
    tx: mpsc::SyncSender<Msg>,
) -> Result<(cpal::Stream, Vec<Speaker>, String), AudioError> {
    let (host, order, api) = host(backend)?;
    let dev = find_device(&host, api, device)?;
    let name = device_name(&dev);
    let channels = layout.channels() as u16;
    let mut config = cpal::StreamConfig {
        channels,
        sample_rate: 48_000,
        buffer_size: cpal::BufferSize::Fixed(240),
    };
    let build = |config: cpal::StreamConfig, tx: mpsc::SyncSender<Msg>| {
        let etx = tx.clone();
        dev.build_input_stream::<f32, _, _>(
            config,
            move |data: &[f32], info: &cpal::InputCallbackInfo| {
                super::rt::promote_current_thread();
                let ts = info.timestamp();
                let age = ts.callback.saturating_duration_since(ts.capture);
                let captured_at = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
                // A full queue means the encoder thread is stuck: drop rather than block the
                // audio server's callback.
                let _ = tx.try_send(Msg::Block(AudioBlock {
                    samples: data.to_vec(),
                    captured_at,
                }));
            },
            move |e| {
                let _ = etx.try_send(Msg::Error(e.to_string()));
            },
            Some(Duration::from_secs(5)),
        )
    };
    let stream = match build(config, tx.clone()) {
        Ok(s) => s,
        Err(first) => {
            // Some ALSA devices refuse a fixed period; take the device's own.
            config.buffer_size = cpal::BufferSize::Default;
            build(config, tx).map_err(|e| AudioError::Format {
                device: name.clone(),
                what: format!("{channels} channels of f32 at 48 kHz"),
                detail: format!("{first}; with the default buffer: {e}"),
            })?
        }
    };
    stream
        .play()
        .map_err(|e| AudioError::Stream(format!("starting capture from {name}: {e}")))?;
    let speakers = order.speakers(layout).to_vec();
    let describe = format!("{api} {name} ({} at 48 kHz)", layout.name());
    Ok((stream, speakers, describe))
}

impl AudioSource for CpalSource {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn speakers(&self) -> &[Speaker] {
        &self.speakers
    }

    fn sample_rate(&self) -> u32 {
        48_000
    }

    fn next_block(&mut self, timeout: Duration) -> Result<Option<AudioBlock>, AudioError> {
        match self.rx.recv_timeout(timeout) {
            Ok(Msg::Block(b)) => Ok(Some(b)),
            Ok(Msg::Error(e)) => Err(AudioError::Stream(e)),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(AudioError::Stream("the capture stream ended".into()))
            }
        }
    }
}

impl Drop for CpalSource {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
