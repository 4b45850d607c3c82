//! Audio on the host: capture the workstation's output, encode it, hand it to every session.
//!
//! ```text
//!  AudioSource ──► frames of `frame_samples` ──► AudioEncoder ──► broadcast ──► each session
//!  (cpal: the default sink's monitor or a chosen device; synthetic tones)     (own task, datagrams)
//! ```
//!
//! Sources deliver interleaved `f32` samples in their own channel order with the capture time of
//! the first sample; [`pipeline`] remaps them (by speaker name) into the order the encoder wants,
//! cuts them into packets and stamps media time (a sample counter) and capture time. Audio runs
//! on its own thread and its own per-session task, so a stalled video encoder never holds it.

pub mod cli;
pub mod config;
pub mod encode;
pub mod pipeline;
pub mod rt;
pub mod synthetic;

#[cfg(any(target_os = "linux", target_os = "windows", target_os = "macos"))]
pub mod capture_cpal;

use std::time::{Duration, Instant};

use sightline_protocol::audio::layout::Speaker;

pub use config::{AudioSettings, Bitrates, CodecChoice};

/// One block of captured audio.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioBlock {
    /// Interleaved samples in [-1, 1), in the source's [`AudioSource::speakers`] order.
    pub samples: Vec<f32>,
    /// When the first sample was captured (monotonic clock).
    pub captured_at: Instant,
}

/// Why audio capture failed.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// No sound server or audio device is usable (no PulseAudio, no ALSA device).
    #[error("audio unavailable: {0}")]
    Unavailable(String),
    /// The named device does not exist; the message lists what does.
    #[error("no audio device matches {name:?}; available: {available}")]
    NoSuchDevice {
        /// What was asked for.
        name: String,
        /// Devices that exist.
        available: String,
    },
    /// The device refused the format (channels, 48 kHz, f32).
    #[error("audio device {device} refused {what}: {detail}")]
    Format {
        /// Device name.
        device: String,
        /// What was asked for.
        what: String,
        /// The backend's words.
        detail: String,
    },
    /// The stream broke while running (device unplugged, server restarted).
    #[error("audio stream failed: {0}")]
    Stream(String),
    /// The encoder could not be created or failed.
    #[error("audio encoder: {0}")]
    Encoder(String),
}

/// Something that delivers captured audio: a sound card or server, or a synthetic signal.
pub trait AudioSource: Send {
    /// Human description (device name, layout).
    fn describe(&self) -> String;
    /// The speaker of each interleaved channel.
    fn speakers(&self) -> &[Speaker];
    /// Samples per second (48,000).
    fn sample_rate(&self) -> u32;
    /// The next block, waiting at most `timeout`; `Ok(None)` when nothing came in time.
    fn next_block(&mut self, timeout: Duration) -> Result<Option<AudioBlock>, AudioError>;
}
