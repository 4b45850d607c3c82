//! `viewer` audio flags.

use super::{output, AudioHandle, AudioOptions, Backend};

/// The viewer's audio flags (flattened into `viewer`'s).
#[derive(Debug, Clone, clap::Args)]
pub struct AudioArgs {
    /// Play no audio (the host is told not to send any).
    #[arg(long)]
    pub no_audio: bool,
    /// Output device: a PulseAudio sink name, a piece of a device's description, or an ALSA
    /// PCM (default: the system's default output).
    #[arg(long, value_name = "NAME")]
    pub audio_device: Option<String>,
    /// Audio system: `auto` (PulseAudio/PipeWire, else ALSA), `pulse` or `alsa`.
    #[arg(long, value_enum, default_value = "auto")]
    pub audio_backend: Backend,
    /// Start muted (Ctrl+Alt+V toggles in the window).
    #[arg(long)]
    pub mute: bool,
    /// Volume in percent, 0–400 (Ctrl+Alt+Plus / Ctrl+Alt+Minus change it in the window).
    #[arg(long, value_name = "PERCENT", default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=400))]
    pub volume: u32,
    /// Audio device period in ms: 5 (lowest latency; the sound server buffers two periods) or
    /// 10 (for a busy machine whose sound server misses 5 ms deadlines; +10 ms latency).
    #[arg(long, value_name = "MS", default_value_t = 5, value_parser = parse_period)]
    pub audio_period_ms: u32,
}

fn parse_period(s: &str) -> Result<u32, String> {
    match s {
        "5" => Ok(5),
        "10" => Ok(10),
        _ => Err(format!("expected 5 or 10, got {s:?}")),
    }
}

impl AudioArgs {
    /// The audio handle for this run: `None` (and a line saying why) when audio is off or no
    /// output exists, so the host is not asked for audio nobody hears. A device that was named
    /// but does not exist is an error.
    pub fn handle(&self) -> Result<Option<AudioHandle>, output::OutputError> {
        if self.no_audio {
            return Ok(None);
        }
        match output::probe(self.audio_backend, self.audio_device.as_deref()) {
            Ok(out) => {
                eprintln!("audio: playing on {out}");
                Ok(Some(AudioHandle::new(AudioOptions {
                    backend: self.audio_backend,
                    device: self.audio_device.clone(),
                    volume: self.volume as f32 / 100.0,
                    muted: self.mute,
                    period_frames: self.audio_period_ms * 48,
                })))
            }
            Err(e @ output::OutputError::NoSuchDevice { .. }) => Err(e),
            Err(e) => {
                eprintln!("audio: {e}; continuing without audio");
                Ok(None)
            }
        }
    }
}
