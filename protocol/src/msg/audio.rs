//! Audio packets (datagrams): one self-contained packet per 5–10 ms frame, and the audio
//! configuration the host announces on the control stream before the first packet.

use super::wire_enum;
use crate::audio::layout::{layout_of, Speaker};
use crate::coding::{Decode, DecodeError, Encode, Reader, WriteExt};
use crate::time::{HostMicros, MediaTime};

/// Largest audio payload accepted (10 ms of 8-channel 24-bit PCM at 48 kHz is 11,520 bytes;
/// in practice a packet must fit one datagram, so PCM packets carry fewer samples).
pub const MAX_AUDIO_PAYLOAD: usize = 16 * 1024;

/// The only sample rate Sightline streams at.
pub const AUDIO_SAMPLE_RATE: u32 = MediaTime::AUDIO_HZ;

/// Longest packet duration accepted: 60 ms at 48 kHz (Opus' longest packet).
pub const MAX_FRAME_SAMPLES: u16 = 2880;

wire_enum! {
    /// Channel layout of a packet.
    ChannelLayout { Mono = 0, Stereo = 1, Surround51 = 2, Surround71 = 3 }
}

impl ChannelLayout {
    /// Number of channels.
    pub fn channels(self) -> u8 {
        match self {
            ChannelLayout::Mono => 1,
            ChannelLayout::Stereo => 2,
            ChannelLayout::Surround51 => 6,
            ChannelLayout::Surround71 => 8,
        }
    }

    /// The capability bit that stands for this layout.
    pub fn capability(self) -> super::AudioLayouts {
        match self {
            ChannelLayout::Mono => super::AudioLayouts::MONO,
            ChannelLayout::Stereo => super::AudioLayouts::STEREO,
            ChannelLayout::Surround51 => super::AudioLayouts::SURROUND_5_1,
            ChannelLayout::Surround71 => super::AudioLayouts::SURROUND_7_1,
        }
    }

    /// Human name: mono, stereo, 5.1, 7.1.
    pub fn name(self) -> &'static str {
        match self {
            ChannelLayout::Mono => "mono",
            ChannelLayout::Stereo => "stereo",
            ChannelLayout::Surround51 => "5.1",
            ChannelLayout::Surround71 => "7.1",
        }
    }
}

wire_enum! {
    /// Audio coding.
    AudioCodec { Opus = 0, Pcm24 = 1 }
}

/// One audio packet.
///
/// Wire layout (revision 3; no earlier revision sent audio): `sequence u32, media_time u64,
/// layout u8, codec u8, capture_us u64, payload (u16 length + bytes)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioPacket {
    /// Sequence number, +1 per packet (wraps).
    pub sequence: u32,
    /// Media time of the first sample (48 kHz ticks; counts samples, so consecutive packets
    /// abut exactly).
    pub media_time: MediaTime,
    /// Channel layout.
    pub layout: ChannelLayout,
    /// Codec.
    pub codec: AudioCodec,
    /// Host wire clock when the first sample was captured, for latency accounting and A/V
    /// sync.
    pub capture_us: HostMicros,
    /// Coded bytes: an Opus multistream packet, or interleaved little-endian signed 24-bit
    /// samples in the order of [`AudioConfig::speakers`].
    pub payload: Vec<u8>,
}

/// Bytes an audio packet adds to its payload inside a datagram (message tag included).
pub const AUDIO_PACKET_OVERHEAD: usize = 1 + 4 + 8 + 1 + 1 + 8 + 2;

impl Encode for AudioPacket {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.sequence);
        out.put_u64(self.media_time.ticks());
        out.put_u8(self.layout.to_u8());
        out.put_u8(self.codec.to_u8());
        out.put_u64(self.capture_us.0);
        out.put_bytes_u16(&self.payload[..self.payload.len().min(MAX_AUDIO_PAYLOAD)]);
    }
}

impl Decode for AudioPacket {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(AudioPacket {
            sequence: r.u32("audio sequence")?,
            media_time: MediaTime::audio(r.u64("audio media time")?),
            layout: ChannelLayout::from_u8(r.u8("channel layout")?)?,
            codec: AudioCodec::from_u8(r.u8("audio codec")?)?,
            capture_us: HostMicros(r.u64("audio capture time")?),
            payload: r.bytes_u16("audio payload", MAX_AUDIO_PAYLOAD)?.to_vec(),
        })
    }
}

/// How an Opus multistream packet's streams map onto the decoded channels (RFC 7845 §5.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusMapping {
    /// Streams in each packet.
    pub streams: u8,
    /// How many of them are coupled (stereo).
    pub coupled_streams: u8,
    /// For each decoded channel, the stream channel it comes from (255: silence).
    pub mapping: Vec<u8>,
}

/// Host → viewer (control stream, revision 3): the format of the audio stream. Sent before
/// its first packet and whenever it changes, so the viewer can open its decoder and output
/// device before audio arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioConfig {
    /// Which audio stream (0 is the workstation's output).
    pub stream_id: u8,
    /// Channel layout.
    pub layout: ChannelLayout,
    /// Codec.
    pub codec: AudioCodec,
    /// Samples per second; always [`AUDIO_SAMPLE_RATE`].
    pub sample_rate: u32,
    /// Samples per packet (per channel): the Opus frame size, or the most a PCM packet holds.
    pub frame_samples: u16,
    /// Target bitrate in bits per second (PCM: the actual rate).
    pub bitrate_bps: u32,
    /// The speaker of each decoded channel, in the order the channels come out of the decoder
    /// (PCM: the order in the payload). A permutation of the layout's speakers.
    pub speakers: Vec<Speaker>,
    /// Opus stream mapping; present exactly when `codec` is Opus.
    pub opus: Option<OpusMapping>,
}

impl AudioConfig {
    /// Duration of `frame_samples`, µs.
    pub fn frame_us(&self) -> u64 {
        self.frame_samples as u64 * 1_000_000 / self.sample_rate.max(1) as u64
    }
}

impl Encode for AudioConfig {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(self.stream_id);
        out.put_u8(self.layout.to_u8());
        out.put_u8(self.codec.to_u8());
        out.put_u32(self.sample_rate);
        out.put_u16(self.frame_samples);
        out.put_u32(self.bitrate_bps);
        let n = self.speakers.len().min(u8::MAX as usize);
        out.put_u8(n as u8);
        for s in &self.speakers[..n] {
            out.put_u8(s.to_u8());
        }
        match &self.opus {
            Some(m) => {
                out.put_u8(1);
                out.put_u8(m.streams);
                out.put_u8(m.coupled_streams);
                let n = m.mapping.len().min(u8::MAX as usize);
                out.put_u8(n as u8);
                out.extend_from_slice(&m.mapping[..n]);
            }
            None => out.put_u8(0),
        }
    }
}

impl Decode for AudioConfig {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let stream_id = r.u8("audio stream id")?;
        let layout = ChannelLayout::from_u8(r.u8("channel layout")?)?;
        let codec = AudioCodec::from_u8(r.u8("audio codec")?)?;
        let sample_rate = r.u32("audio sample rate")?;
        let frame_samples = r.u16("audio frame samples")?;
        let bitrate_bps = r.u32("audio bitrate")?;
        let n = r.u8("speaker count")? as usize;
        let mut speakers = Vec::with_capacity(n);
        for _ in 0..n {
            let v = r.u8("speaker")?;
            speakers.push(Speaker::from_u8(v).ok_or(DecodeError::UnknownTag {
                what: "Speaker",
                tag: v as u32,
            })?);
        }
        let opus = match r.u8("opus mapping flag")? {
            0 => None,
            1 => {
                let streams = r.u8("opus streams")?;
                let coupled_streams = r.u8("opus coupled streams")?;
                let n = r.u8("opus mapping length")? as usize;
                let mapping = r.take(n, "opus mapping")?.to_vec();
                Some(OpusMapping {
                    streams,
                    coupled_streams,
                    mapping,
                })
            }
            _ => {
                return Err(DecodeError::Invalid {
                    what: "opus mapping flag",
                    detail: "must be 0 or 1",
                })
            }
        };
        if sample_rate != AUDIO_SAMPLE_RATE {
            return Err(DecodeError::Invalid {
                what: "audio sample rate",
                detail: "must be 48000",
            });
        }
        if frame_samples == 0 || frame_samples > MAX_FRAME_SAMPLES {
            return Err(DecodeError::Invalid {
                what: "audio frame samples",
                detail: "must be 1..=2880",
            });
        }
        if layout_of(&speakers) != Some(layout) {
            return Err(DecodeError::Invalid {
                what: "audio speakers",
                detail: "must name each speaker of the layout exactly once",
            });
        }
        match (&opus, codec) {
            (None, AudioCodec::Pcm24) => {}
            (Some(m), AudioCodec::Opus) => {
                let total = m.streams as usize + m.coupled_streams as usize;
                if m.streams == 0
                    || m.coupled_streams > m.streams
                    || total > u8::MAX as usize
                    || m.mapping.len() != speakers.len()
                    || m.mapping.iter().any(|&c| c != 255 && c as usize >= total)
                {
                    return Err(DecodeError::Invalid {
                        what: "opus mapping",
                        detail: "stream counts and mapping do not fit the channels",
                    });
                }
            }
            _ => {
                return Err(DecodeError::Invalid {
                    what: "opus mapping",
                    detail: "present exactly when the codec is Opus",
                })
            }
        }
        Ok(AudioConfig {
            stream_id,
            layout,
            codec,
            sample_rate,
            frame_samples,
            bitrate_bps,
            speakers,
            opus,
        })
    }
}
