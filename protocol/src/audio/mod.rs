//! Audio helpers shared by host and viewer: speaker positions and channel orders
//! ([`layout`]), 24-bit PCM packing ([`pcm`]), the viewer's adaptive jitter buffer
//! ([`jitter`]) and A/V sync ([`sync`]). No I/O; time is an argument.

pub mod jitter;
pub mod layout;
pub mod pcm;
pub mod sync;

pub use jitter::{ConcealReason, JitterBuffer, JitterConfig, JitterStats, Playout, PushOutcome};
pub use layout::{ChannelMap, ChannelOrder, Speaker};

/// Samples (per channel, at 48 kHz) in one Opus packet, read from its TOC byte (RFC 6716
/// §3.1). For a multistream packet this is the first stream's duration, which every stream
/// shares. `None` for an empty or malformed packet.
pub fn opus_packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // Frame duration in 48 kHz samples: SILK, hybrid, then CELT-only configurations.
    let frame: u32 = match config {
        0..=11 => [480, 960, 1920, 2880][(config % 4) as usize],
        12..=15 => [480, 960][(config % 2) as usize],
        _ => [120, 240, 480, 960][(config % 4) as usize],
    };
    let frames: u32 = match toc & 0x3 {
        0 => 1,
        1 | 2 => 2,
        _ => (*packet.get(1)? & 0x3F) as u32,
    };
    let total = frame * frames;
    // RFC 6716: a packet holds at most 120 ms.
    (frames > 0 && total <= 5760).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_toc_durations() {
        // CELT-only fullband 5 ms (config 29), one frame.
        assert_eq!(opus_packet_samples(&[29 << 3, 0, 0]), Some(240));
        // CELT 2.5 ms (config 28), two frames (code 1).
        assert_eq!(opus_packet_samples(&[(28 << 3) | 1]), Some(240));
        // CELT 10 ms (config 30), code 3 with 3 frames.
        assert_eq!(opus_packet_samples(&[(30 << 3) | 3, 3]), Some(1440));
        // SILK 20 ms (config 1).
        assert_eq!(opus_packet_samples(&[1 << 3]), Some(960));
        // Hybrid 10 ms (config 12).
        assert_eq!(opus_packet_samples(&[12 << 3]), Some(480));
        assert_eq!(opus_packet_samples(&[]), None);
        // Code 3 without its count byte, or with zero frames.
        assert_eq!(opus_packet_samples(&[(30 << 3) | 3]), None);
        assert_eq!(opus_packet_samples(&[(30 << 3) | 3, 0]), None);
        // 63 frames of 60 ms is far beyond 120 ms.
        assert_eq!(opus_packet_samples(&[(3 << 3) | 3, 63]), None);
    }
}
