//! Host side: one access unit → data fragments + parity fragments.

use crate::damage::{self, DamageRect, MAX_DAMAGE_RECTS};
use crate::msg::{HostStageTimes, VideoFragment, MAX_FRAGMENTS};

/// Forward error correction settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FecConfig {
    /// Parity fragments as a share of data fragments (0.0 disables FEC).
    pub ratio: f32,
    /// Fewest parity fragments per frame when FEC is on. Small frames are the common case
    /// (desktop work: 1–5 fragments); two parity fragments make a frame survive any two losses,
    /// so at 1 % random loss a frame is lost about once in 10⁵ instead of once in 10³ — each
    /// such loss costs a keyframe round trip (a visible freeze).
    pub min_parity: u16,
}

impl Default for FecConfig {
    fn default() -> Self {
        FecConfig {
            ratio: 0.10,
            min_parity: 2,
        }
    }
}

/// Why an access unit could not be packetized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketizeError {
    /// The payload size leaves no room (the datagram limit is too small).
    #[error("fragment payload of {0} bytes is too small")]
    PayloadTooSmall(usize),
    /// The frame needs more fragments than the format allows: raise the datagram size or lower
    /// the bitrate.
    #[error("access unit of {len} bytes needs {needed} fragments (limit {MAX_FRAGMENTS})")]
    TooLarge {
        /// Access unit length.
        len: usize,
        /// Fragments it would need.
        needed: usize,
    },
    /// Reed–Solomon refused the shard counts.
    #[error("forward error correction failed: {0}")]
    Fec(String),
}

/// Cuts `data` into fragments of at most `max_payload` bytes plus parity per `fec`. Fragment 0
/// and every parity fragment carry `times`, so the stage times survive the loss of fragment 0.
pub fn packetize(
    stream_id: u8,
    frame: u32,
    keyframe: bool,
    times: HostStageTimes,
    data: &[u8],
    max_payload: usize,
    fec: FecConfig,
) -> Result<Vec<VideoFragment>, PacketizeError> {
    packetize_with_damage(
        stream_id,
        frame,
        keyframe,
        times,
        None,
        data,
        max_payload,
        fec,
    )
}

/// [`packetize`] with a damage list ([`crate::damage`]) carried beside the times by fragment 0
/// and every parity fragment. `max_payload` is the budget without damage (the transport's
/// datagram size minus [`super::FRAGMENT_OVERHEAD`]); the list's bytes are taken off every
/// fragment's payload, so fragments that carry it still fit. A list longer than
/// [`MAX_DAMAGE_RECTS`] is not sent (the viewer then repaints everything).
#[allow(clippy::too_many_arguments)]
pub fn packetize_with_damage(
    stream_id: u8,
    frame: u32,
    keyframe: bool,
    times: HostStageTimes,
    damage: Option<&[DamageRect]>,
    data: &[u8],
    max_payload: usize,
    fec: FecConfig,
) -> Result<Vec<VideoFragment>, PacketizeError> {
    let k = data_fragments(data.len(), data_payload(damage, max_payload))?;
    let parity = if fec.ratio > 0.0 {
        ((k as f32 * fec.ratio).ceil() as usize).max(fec.min_parity as usize)
    } else {
        0
    };
    packetize_with_parity(
        stream_id,
        frame,
        keyframe,
        times,
        damage,
        data,
        max_payload,
        parity,
    )
}

/// The data bytes per fragment left of `max_payload` once a damage list (if it is sent) is
/// taken off: pass this to [`data_fragments`] when choosing the parity of
/// [`packetize_with_parity`].
pub fn data_payload(damage: Option<&[DamageRect]>, max_payload: usize) -> usize {
    let damage = damage.filter(|d| d.len() <= MAX_DAMAGE_RECTS);
    max_payload.saturating_sub(damage.map_or(0, damage::encoded_len))
}

/// How many data fragments `len` bytes take at `max_payload` bytes per fragment (for choosing
/// the parity of [`packetize_with_parity`]).
pub fn data_fragments(len: usize, max_payload: usize) -> Result<usize, PacketizeError> {
    // Reed–Solomon shards must have an even size.
    let shard = max_payload & !1;
    if shard < 16 {
        return Err(PacketizeError::PayloadTooSmall(max_payload));
    }
    Ok(len.div_ceil(shard).max(1))
}

/// Like [`packetize_with_damage`] with exactly `parity` parity fragments (the caller chose
/// them, e.g. from the measured loss with [`crate::congestion::parity_for`]).
#[allow(clippy::too_many_arguments)]
pub fn packetize_with_parity(
    stream_id: u8,
    frame: u32,
    keyframe: bool,
    times: HostStageTimes,
    damage: Option<&[DamageRect]>,
    data: &[u8],
    max_payload: usize,
    parity: usize,
) -> Result<Vec<VideoFragment>, PacketizeError> {
    let damage = damage.filter(|d| d.len() <= MAX_DAMAGE_RECTS);
    let max_payload = data_payload(damage, max_payload);
    let k = data_fragments(data.len(), max_payload)?;
    let shard = max_payload & !1;
    let total = k + parity;
    if total > MAX_FRAGMENTS as usize {
        return Err(PacketizeError::TooLarge {
            len: data.len(),
            needed: total,
        });
    }
    let mut out = Vec::with_capacity(total);
    let frag = |index: usize, payload: Vec<u8>, with_times: bool| VideoFragment {
        stream_id,
        frame,
        keyframe,
        fragment_index: index as u16,
        fragment_count: total as u16,
        data_fragments: k as u16,
        au_len: data.len() as u32,
        times: with_times.then_some(times),
        damage: damage.filter(|_| with_times).map(<[DamageRect]>::to_vec),
        payload,
    };
    for i in 0..k {
        let chunk = &data[(i * shard).min(data.len())..((i + 1) * shard).min(data.len())];
        out.push(frag(i, chunk.to_vec(), i == 0));
    }
    if parity > 0 {
        // Parity is computed over zero-padded, equal-size shards; data fragments go out
        // unpadded and the receiver pads them back.
        let shard_len = if k == 1 { (data.len() + 1) & !1 } else { shard }.max(2);
        let padded: Vec<Vec<u8>> = (0..k)
            .map(|i| {
                let mut s =
                    data[(i * shard).min(data.len())..((i + 1) * shard).min(data.len())].to_vec();
                s.resize(shard_len, 0);
                s
            })
            .collect();
        let recovery = reed_solomon_simd::encode(k, parity, &padded)
            .map_err(|e| PacketizeError::Fec(e.to_string()))?;
        for (j, r) in recovery.into_iter().enumerate() {
            out.push(frag(k + j, r, true));
        }
    }
    Ok(out)
}
