//! `host-agent` audio flags and start-up: a missing sound server means "no audio", never a
//! failed start.

use std::path::PathBuf;

use sightline_protocol::msg::ChannelLayout;
use sightline_protocol::time::WireClock;

use super::config::{check_bitrate, parse_layout, AudioConfigFile};
use super::pipeline::{self, AudioFeed};
use super::synthetic::SyntheticAudio;
use super::{AudioError, AudioSettings, AudioSource, CodecChoice};

/// Audio on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AudioSwitch {
    /// Capture and stream audio when a sound server or device is usable.
    On,
    /// No audio.
    Off,
}

/// Where audio comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AudioSourceKind {
    /// PulseAudio/PipeWire when reachable, else ALSA.
    Auto,
    /// PulseAudio (or PipeWire's PulseAudio server), natively.
    Pulse,
    /// ALSA (needs --audio-device: ALSA has no monitor of the output).
    Alsa,
    /// A distinct test tone on every channel.
    Synthetic,
}

/// Audio codecs on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CodecArg {
    /// Opus multistream (surround-coded 5.1/7.1), restricted-low-delay.
    Opus,
    /// Lossless 24-bit PCM (1.15 Mbit/s per channel).
    Pcm,
}

/// The host's audio flags (flattened into `host-agent`'s).
#[derive(Debug, Clone, clap::Args)]
pub struct AudioArgs {
    /// Stream the workstation's audio output: `on` (default; without a sound server the host
    /// runs without audio and says so) or `off`.
    #[arg(long, value_enum, default_value = "on")]
    pub audio: AudioSwitch,
    /// Audio system: `auto` (PulseAudio/PipeWire, else ALSA), `pulse`, `alsa`, or `synthetic`
    /// (a test tone per channel).
    #[arg(long, value_enum, default_value = "auto")]
    pub audio_source: AudioSourceKind,
    /// What to capture: a PulseAudio source or sink name (a sink means its monitor), a piece of
    /// a device's description, or an ALSA PCM. Default: the monitor of the default sink, i.e.
    /// everything the workstation plays.
    #[arg(long, value_name = "NAME")]
    pub audio_device: Option<String>,
    /// Channel layout: mono, stereo, 5.1 or 7.1.
    #[arg(long, value_name = "LAYOUT", default_value = "stereo", value_parser = parse_layout)]
    pub audio_layout: ChannelLayout,
    /// Audio codec: `opus` or `pcm` (lossless 24-bit, for mixing sessions).
    #[arg(long, value_enum, default_value = "opus")]
    pub audio_codec: CodecArg,
    /// Audio packet length in ms: 5 (lowest latency) or 10 (fewer packets).
    #[arg(long, value_name = "MS", default_value_t = 5, value_parser = parse_frame_ms)]
    pub audio_frame_ms: u32,
    /// Opus bitrate in kbit/s (default per layout: mono 96, stereo 192, 5.1 384, 7.1 512; see
    /// --audio-config).
    #[arg(long, value_name = "KBPS", value_parser = parse_kbps)]
    pub audio_bitrate: Option<u32>,
    /// TOML file with per-layout Opus bitrates: `[bitrate_kbps]` with keys mono, stereo,
    /// "5.1", "7.1".
    #[arg(long, value_name = "FILE")]
    pub audio_config: Option<PathBuf>,
}

fn parse_frame_ms(s: &str) -> Result<u32, String> {
    match s {
        "5" => Ok(5),
        "10" => Ok(10),
        _ => Err(format!("expected 5 or 10, got {s:?}")),
    }
}

fn parse_kbps(s: &str) -> Result<u32, String> {
    check_bitrate(
        s.parse()
            .map_err(|_| format!("expected kbit/s, got {s:?}"))?,
    )
}

impl AudioArgs {
    /// The pipeline settings these flags ask for.
    pub fn settings(&self) -> Result<AudioSettings, String> {
        let bitrates = match &self.audio_config {
            Some(p) => AudioConfigFile::load(p)?.bitrate_kbps,
            None => Default::default(),
        };
        Ok(AudioSettings {
            layout: self.audio_layout,
            codec: match self.audio_codec {
                CodecArg::Opus => CodecChoice::Opus,
                CodecArg::Pcm => CodecChoice::Pcm,
            },
            frame_ms: self.audio_frame_ms,
            bitrates,
            bitrate_override_kbps: self.audio_bitrate,
            ..AudioSettings::default()
        })
    }
}

/// What became of audio at start-up.
#[derive(Debug)]
pub enum AudioStart {
    /// Running.
    Running(AudioFeed),
    /// Switched off.
    Off,
    /// Wanted but not possible here; the reason is for the log.
    Unavailable(AudioError),
}

/// Starts audio as the flags say. A bad flag value (an unreadable config file) is an error;
/// a missing sound server is [`AudioStart::Unavailable`].
pub fn start(args: &AudioArgs, clock: WireClock) -> Result<AudioStart, String> {
    if args.audio == AudioSwitch::Off {
        return Ok(AudioStart::Off);
    }
    let settings = args.settings()?;
    let layout = settings.layout;
    let kind = args.audio_source;
    let device = args.audio_device.clone();
    let factory: pipeline::SourceFactory =
        Box::new(move || -> Result<Box<dyn AudioSource>, AudioError> {
            match kind {
                AudioSourceKind::Synthetic => Ok(Box::new(SyntheticAudio::new(layout))),
                #[cfg(any(target_os = "linux", target_os = "windows", target_os = "macos"))]
                other => {
                    use super::capture_cpal::{Backend, CpalSource};
                    let backend = match other {
                        AudioSourceKind::Pulse => Backend::Pulse,
                        AudioSourceKind::Alsa => Backend::Alsa,
                        _ => Backend::Auto,
                    };
                    Ok(Box::new(CpalSource::open(
                        backend,
                        device.as_deref(),
                        layout,
                    )?))
                }
                #[cfg(not(any(target_os = "linux", target_os = "windows", target_os = "macos")))]
                _ => Err(AudioError::Unavailable(
                    "no audio capture on this platform".into(),
                )),
            }
        });
    Ok(match pipeline::start(factory, settings, clock) {
        Ok(feed) => AudioStart::Running(feed),
        Err(e) => AudioStart::Unavailable(e),
    })
}
