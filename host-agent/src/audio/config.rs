//! Audio settings: layout, codec, frame length, per-layout Opus bitrates (TOML file + flags).

use std::path::Path;

use serde::Deserialize;
use sightline_protocol::msg::ChannelLayout;

/// Opus or lossless PCM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecChoice {
    /// Opus multistream (surround coding for 5.1/7.1), restricted-low-delay.
    Opus,
    /// Lossless 24-bit PCM (for mixing sessions; ~1.2 Mbit/s per channel).
    Pcm,
}

/// Opus bitrates per layout, kbit/s. Restricted-low-delay Opus uses CELT only, which needs a
/// little more than Opus' usual music rates at 5 ms frames to stay transparent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bitrates {
    /// Mono (default 96).
    pub mono: u32,
    /// Stereo (default 192).
    pub stereo: u32,
    /// 5.1 (default 384).
    #[serde(rename = "5.1")]
    pub surround51: u32,
    /// 7.1 (default 512).
    #[serde(rename = "7.1")]
    pub surround71: u32,
}

impl Default for Bitrates {
    fn default() -> Self {
        Bitrates {
            mono: 96,
            stereo: 192,
            surround51: 384,
            surround71: 512,
        }
    }
}

impl Bitrates {
    /// The rate for `layout`, kbit/s.
    pub fn for_layout(&self, layout: ChannelLayout) -> u32 {
        match layout {
            ChannelLayout::Mono => self.mono,
            ChannelLayout::Stereo => self.stereo,
            ChannelLayout::Surround51 => self.surround51,
            ChannelLayout::Surround71 => self.surround71,
        }
    }
}

/// The audio configuration file (`host-agent --audio-config FILE`). Unknown keys are an error.
///
/// ```toml
/// [bitrate_kbps]
/// stereo = 256
/// "7.1" = 640
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioConfigFile {
    /// Opus bitrate per layout.
    pub bitrate_kbps: Bitrates,
}

impl AudioConfigFile {
    /// Reads and checks a file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let f: AudioConfigFile =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for (name, v) in [
            ("mono", f.bitrate_kbps.mono),
            ("stereo", f.bitrate_kbps.stereo),
            ("5.1", f.bitrate_kbps.surround51),
            ("7.1", f.bitrate_kbps.surround71),
        ] {
            check_bitrate(v)
                .map_err(|e| format!("{}: bitrate_kbps.{name}: {e}", path.display()))?;
        }
        Ok(f)
    }
}

/// Opus accepts 6–510 kbit/s per channel pair; we allow 6..=4096 kbit/s for a whole stream.
pub fn check_bitrate(kbps: u32) -> Result<u32, String> {
    if (6..=4096).contains(&kbps) {
        Ok(kbps)
    } else {
        Err(format!("{kbps} kbit/s is outside 6..=4096"))
    }
}

/// Everything the audio pipeline needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSettings {
    /// Channel layout to capture and send.
    pub layout: ChannelLayout,
    /// Codec.
    pub codec: CodecChoice,
    /// Packet length: 5 or 10 ms.
    pub frame_ms: u32,
    /// Opus bitrates per layout.
    pub bitrates: Bitrates,
    /// Override of the layout's bitrate, kbit/s.
    pub bitrate_override_kbps: Option<u32>,
    /// Largest datagram payload a packet may need (PCM packets are cut to fit).
    pub max_datagram: usize,
}

impl Default for AudioSettings {
    fn default() -> Self {
        AudioSettings {
            layout: ChannelLayout::Stereo,
            codec: CodecChoice::Opus,
            frame_ms: 5,
            bitrates: Bitrates::default(),
            bitrate_override_kbps: None,
            // quinn's smallest datagram payload before path-MTU discovery is ~1,160 bytes.
            max_datagram: 1_150,
        }
    }
}

impl AudioSettings {
    /// Samples per channel in one Opus frame.
    pub fn frame_samples(&self) -> u32 {
        48 * self.frame_ms
    }

    /// Opus bitrate in bit/s for the configured layout.
    pub fn opus_bitrate_bps(&self) -> u32 {
        self.bitrate_override_kbps
            .unwrap_or_else(|| self.bitrates.for_layout(self.layout))
            * 1000
    }
}

/// Parses `mono|stereo|5.1|7.1`.
pub fn parse_layout(s: &str) -> Result<ChannelLayout, String> {
    match s {
        "mono" | "1.0" => Ok(ChannelLayout::Mono),
        "stereo" | "2.0" => Ok(ChannelLayout::Stereo),
        "5.1" => Ok(ChannelLayout::Surround51),
        "7.1" => Ok(ChannelLayout::Surround71),
        _ => Err(format!("expected mono, stereo, 5.1 or 7.1, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_overrides_some_layouts_and_refuses_unknown_keys() {
        let f: AudioConfigFile =
            toml::from_str("[bitrate_kbps]\nstereo = 256\n\"7.1\" = 640\n").unwrap();
        assert_eq!(f.bitrate_kbps.stereo, 256);
        assert_eq!(f.bitrate_kbps.surround71, 640);
        assert_eq!(f.bitrate_kbps.mono, 96);
        assert!(toml::from_str::<AudioConfigFile>("[bitrate_kbps]\nquad = 1\n").is_err());
        assert!(toml::from_str::<AudioConfigFile>("volume = 1\n").is_err());
    }

    #[test]
    fn bitrate_per_layout_and_override() {
        let mut s = AudioSettings {
            layout: ChannelLayout::Surround71,
            ..AudioSettings::default()
        };
        assert_eq!(s.opus_bitrate_bps(), 512_000);
        s.bitrate_override_kbps = Some(700);
        assert_eq!(s.opus_bitrate_bps(), 700_000);
        assert_eq!(s.frame_samples(), 240);
        assert!(check_bitrate(5).is_err() && check_bitrate(5000).is_err());
    }

    #[test]
    fn layouts_parse() {
        assert_eq!(parse_layout("5.1"), Ok(ChannelLayout::Surround51));
        assert_eq!(parse_layout("stereo"), Ok(ChannelLayout::Stereo));
        assert!(parse_layout("quad").is_err());
    }
}
