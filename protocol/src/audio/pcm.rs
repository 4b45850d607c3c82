//! Lossless 24-bit PCM: interleaved little-endian signed 24-bit samples.
//!
//! Samples travel as `f32` in [-1, 1) inside Sightline; a 24-bit integer `s` is the float
//! `s / 2^23`, which `f32` (24-bit significand) holds exactly, so a 24-bit (or 16-bit) source
//! arrives bit for bit.

/// Bytes per sample.
pub const BYTES_PER_SAMPLE: usize = 3;

const SCALE: f32 = 8_388_608.0; // 2^23

/// One float sample as a 24-bit integer (clamped; NaN becomes 0).
pub fn to_i24(x: f32) -> i32 {
    if x.is_nan() {
        return 0;
    }
    (x * SCALE).round().clamp(-8_388_608.0, 8_388_607.0) as i32
}

/// Appends `samples` as little-endian signed 24-bit integers.
pub fn pack(samples: &[f32], out: &mut Vec<u8>) {
    out.reserve(samples.len() * BYTES_PER_SAMPLE);
    for &x in samples {
        let v = to_i24(x);
        out.extend_from_slice(&v.to_le_bytes()[..3]);
    }
}

/// Appends the samples in `bytes` (a trailing partial sample is ignored) as floats.
pub fn unpack(bytes: &[u8], out: &mut Vec<f32>) {
    out.reserve(bytes.len() / BYTES_PER_SAMPLE);
    for b in bytes.chunks_exact(BYTES_PER_SAMPLE) {
        // Sign-extend from 24 bits.
        let v = i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8;
        out.push(v as f32 / SCALE);
    }
}

/// Samples per channel in a PCM payload of `len` bytes with `channels` channels; `None` when
/// the length is not a whole number of sample frames.
pub fn frames_in(len: usize, channels: usize) -> Option<usize> {
    let frame = channels.checked_mul(BYTES_PER_SAMPLE)?;
    (frame > 0 && len.is_multiple_of(frame)).then(|| len / frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_24_bit_value_round_trips_exactly() {
        // Extremes, zero, and a stride through the whole range.
        let mut ints: Vec<i32> = vec![-8_388_608, -1, 0, 1, 8_388_607];
        ints.extend((-8_388_608..8_388_607).step_by(9_973));
        let floats: Vec<f32> = ints.iter().map(|&i| i as f32 / SCALE).collect();
        let mut bytes = Vec::new();
        pack(&floats, &mut bytes);
        assert_eq!(bytes.len(), ints.len() * 3);
        let mut back = Vec::new();
        unpack(&bytes, &mut back);
        assert_eq!(back, floats);
        assert_eq!(back.iter().map(|&x| to_i24(x)).collect::<Vec<_>>(), ints);
    }

    #[test]
    fn out_of_range_and_nan_are_clamped() {
        assert_eq!(to_i24(1.0), 8_388_607);
        assert_eq!(to_i24(-1.0), -8_388_608);
        assert_eq!(to_i24(7.0), 8_388_607);
        assert_eq!(to_i24(f32::NEG_INFINITY), -8_388_608);
        assert_eq!(to_i24(f32::NAN), 0);
    }

    #[test]
    fn frame_counts() {
        assert_eq!(frames_in(48, 8), Some(2));
        assert_eq!(frames_in(47, 8), None);
        assert_eq!(frames_in(0, 2), Some(0));
        assert_eq!(frames_in(6, 0), None);
    }
}
