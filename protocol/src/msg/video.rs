//! Video access-unit fragments (datagrams).

use crate::coding::{Decode, DecodeError, Encode, Reader, WriteExt};
use crate::damage::{self, DamageRect, MAX_DAMAGE_RECTS};
use crate::time::HostMicros;

/// Largest fragment payload accepted (a datagram is far smaller; this bounds stream use too).
pub const MAX_FRAGMENT_PAYLOAD: usize = 64 * 1024;
/// Most fragments one access unit may be cut into.
pub const MAX_FRAGMENTS: u16 = 4096;

/// Host stage timestamps of one frame, all on the host clock (µs). The viewer adds its own stages
/// and converts with the estimated clock offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostStageTimes {
    /// Capture started.
    pub capture_start: HostMicros,
    /// Capture finished (pixels in memory).
    pub capture_end: HostMicros,
    /// Colour conversion finished.
    pub convert_end: HostMicros,
    /// Encoder returned the access unit.
    pub encode_end: HostMicros,
    /// First fragment handed to the transport.
    pub send: HostMicros,
}

impl Encode for HostStageTimes {
    fn encode(&self, out: &mut Vec<u8>) {
        for t in [
            self.capture_start,
            self.capture_end,
            self.convert_end,
            self.encode_end,
            self.send,
        ] {
            out.put_u64(t.0);
        }
    }
}

impl Decode for HostStageTimes {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(HostStageTimes {
            capture_start: HostMicros(r.u64("capture start")?),
            capture_end: HostMicros(r.u64("capture end")?),
            convert_end: HostMicros(r.u64("convert end")?),
            encode_end: HostMicros(r.u64("encode end")?),
            send: HostMicros(r.u64("send time")?),
        })
    }
}

pub(crate) const FLAG_KEYFRAME: u8 = 1;
const FLAG_TIMES: u8 = 2;
/// The fragment carries a damage list ([`crate::damage`]); only sent to a viewer that offered
/// [`crate::damage::EXT_DAMAGE_RECTS`].
const FLAG_DAMAGE: u8 = 4;

/// One fragment of an encoded access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFragment {
    /// Stream (0 is the main display).
    pub stream_id: u8,
    /// Frame number, increasing by one per encoded frame (wraps).
    pub frame: u32,
    /// Whether the access unit is a keyframe (IDR).
    pub keyframe: bool,
    /// Index of this fragment, `< fragment_count`.
    pub fragment_index: u16,
    /// Fragments in the access unit: data fragments first, then parity.
    pub fragment_count: u16,
    /// How many of the fragments carry data (`1..=fragment_count`); the rest are Reed–Solomon
    /// parity over the data fragments zero-padded to the parity fragments' length.
    pub data_fragments: u16,
    /// Length of the whole access unit in bytes.
    pub au_len: u32,
    /// Host stage times; carried by fragment 0 (others may omit them).
    pub times: Option<HostStageTimes>,
    /// What changed since the previous frame, carried like `times` (fragment 0 and parity);
    /// `None`: unknown, or not carried by this fragment. See [`crate::damage`] for the contract.
    /// A list longer than [`MAX_DAMAGE_RECTS`] is not sent at all (unknown).
    pub damage: Option<Vec<DamageRect>>,
    /// Bytes of the access unit.
    pub payload: Vec<u8>,
}

impl Encode for VideoFragment {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(self.stream_id);
        out.put_u32(self.frame);
        let mut flags = 0;
        if self.keyframe {
            flags |= FLAG_KEYFRAME;
        }
        if self.times.is_some() {
            flags |= FLAG_TIMES;
        }
        let damage = self
            .damage
            .as_deref()
            .filter(|d| d.len() <= MAX_DAMAGE_RECTS);
        if damage.is_some() {
            flags |= FLAG_DAMAGE;
        }
        out.put_u8(flags);
        out.put_u16(self.fragment_index);
        out.put_u16(self.fragment_count);
        out.put_u16(self.data_fragments);
        out.put_u32(self.au_len);
        if let Some(t) = &self.times {
            t.encode(out);
        }
        if let Some(d) = damage {
            damage::encode(d, out);
        }
        out.put_bytes_u16(&self.payload[..self.payload.len().min(MAX_FRAGMENT_PAYLOAD - 1)]);
    }
}

impl Decode for VideoFragment {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let stream_id = r.u8("stream id")?;
        let frame = r.u32("frame number")?;
        let flags = r.u8("fragment flags")?;
        if flags & !(FLAG_KEYFRAME | FLAG_TIMES | FLAG_DAMAGE) != 0 {
            return Err(DecodeError::Invalid {
                what: "fragment flags",
                detail: "unknown flag bits",
            });
        }
        let fragment_index = r.u16("fragment index")?;
        let fragment_count = r.u16("fragment count")?;
        if fragment_count == 0 || fragment_count > MAX_FRAGMENTS || fragment_index >= fragment_count
        {
            return Err(DecodeError::Invalid {
                what: "fragment index",
                detail: "index must be below count, count 1..=4096",
            });
        }
        let data_fragments = r.u16("data fragment count")?;
        if data_fragments == 0 || data_fragments > fragment_count {
            return Err(DecodeError::Invalid {
                what: "data fragment count",
                detail: "must be 1..=fragment count",
            });
        }
        let au_len = r.u32("access unit length")?;
        let times = if flags & FLAG_TIMES != 0 {
            Some(HostStageTimes::decode(r)?)
        } else {
            None
        };
        let damage = if flags & FLAG_DAMAGE != 0 {
            Some(damage::decode(r)?)
        } else {
            None
        };
        let payload = r
            .bytes_u16("fragment payload", MAX_FRAGMENT_PAYLOAD)?
            .to_vec();
        Ok(VideoFragment {
            stream_id,
            frame,
            keyframe: flags & FLAG_KEYFRAME != 0,
            fragment_index,
            fragment_count,
            data_fragments,
            au_len,
            times,
            damage,
            payload,
        })
    }
}
