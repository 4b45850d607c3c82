//! Audio packets (datagrams): one self-contained packet per 5–10 ms frame.

use super::wire_enum;
use crate::coding::{Decode, DecodeError, Encode, Reader, WriteExt};
use crate::time::MediaTime;

/// Largest audio payload accepted (10 ms of 8-channel 24-bit PCM at 48 kHz is 11,520 bytes).
pub const MAX_AUDIO_PAYLOAD: usize = 16 * 1024;

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
}

wire_enum! {
    /// Audio coding.
    AudioCodec { Opus = 0, Pcm24 = 1 }
}

/// One audio packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioPacket {
    /// Sequence number, +1 per packet (wraps).
    pub sequence: u32,
    /// Media time of the first sample (48 kHz ticks).
    pub media_time: MediaTime,
    /// Channel layout.
    pub layout: ChannelLayout,
    /// Codec.
    pub codec: AudioCodec,
    /// Coded bytes.
    pub payload: Vec<u8>,
}

impl Encode for AudioPacket {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.sequence);
        out.put_u64(self.media_time.ticks());
        out.put_u8(self.layout.to_u8());
        out.put_u8(self.codec.to_u8());
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
            payload: r.bytes_u16("audio payload", MAX_AUDIO_PAYLOAD)?.to_vec(),
        })
    }
}
