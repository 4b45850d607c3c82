//! Lengthens or shortens a decoded block by a few samples for the jitter buffer's delay control
//! and clock-drift correction, with a short crossfade so no click is heard. Everything outside
//! the crossfade passes through bit for bit (PCM stays lossless there).

/// Crossfade length, samples.
const FADE: usize = 64;

/// Makes `block` (interleaved, `channels` channels) `shift` samples shorter (positive) or longer
/// (negative: −1 inserts one). Returns the shift applied: 0 when the block is too short for it.
pub fn apply(block: &mut Vec<f32>, channels: usize, shift: i32) -> i32 {
    if shift == 0 || channels == 0 {
        return 0;
    }
    let n = block.len() / channels;
    let d = shift as isize;
    // Splice a quarter of the way in; the fade must fit before the end and after the start.
    let m = n / 4;
    let fade = FADE.min(n / 2).max(1);
    let end_ok = (m + fade) as isize + d.max(0) <= n as isize;
    let start_ok = m as isize + d.min(0) >= 0;
    if n < 8 || d.unsigned_abs() > n / 2 || !end_ok || !start_ok {
        return 0;
    }
    let x = block.clone();
    let out_len = (n as isize - d) as usize;
    block.clear();
    block.reserve(out_len * channels);
    for k in 0..out_len {
        let shifted = (k as isize + d) as usize;
        if k < m {
            block.extend_from_slice(&x[k * channels..(k + 1) * channels]);
        } else if k < m + fade {
            let w = (k - m) as f32 / fade as f32 + 0.5 / fade as f32;
            for c in 0..channels {
                let a = x[k * channels + c];
                let b = x[shifted * channels + c];
                block.push(a + (b - a) * w);
            }
        } else {
            block.extend_from_slice(&x[shifted * channels..(shifted + 1) * channels]);
        }
    }
    shift
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize, ch: usize) -> Vec<f32> {
        (0..n * ch)
            .map(|i| (i / ch) as f32 + (i % ch) as f32 * 1000.0)
            .collect()
    }

    #[test]
    fn drop_and_insert_change_the_length_and_keep_the_ends_exact() {
        for shift in [-1, 1, 2, 60] {
            let x = ramp(240, 2);
            let mut y = x.clone();
            assert_eq!(apply(&mut y, 2, shift), shift);
            assert_eq!(y.len(), (240 - shift as isize) as usize * 2);
            // Before the splice: untouched.
            assert_eq!(&y[..60 * 2], &x[..60 * 2]);
            // After the fade: the input shifted by `shift`.
            let k = 60 + FADE;
            let src = (k as isize + shift as isize) as usize;
            assert_eq!(y[k * 2], x[src * 2]);
            assert_eq!(y[k * 2 + 1], x[src * 2 + 1]);
            assert_eq!(*y.last().unwrap(), *x.last().unwrap());
        }
    }

    #[test]
    fn a_sine_stays_smooth_across_a_one_sample_drop() {
        let f = 1_000.0 / 48_000.0;
        let x: Vec<f32> = (0..480)
            .map(|i| (i as f32 * f * std::f32::consts::TAU).sin())
            .collect();
        let mut y = x.clone();
        apply(&mut y, 1, 1);
        // No step larger than the sine's own largest step (plus a little).
        let max_step = x
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0, f32::max);
        for w in y.windows(2) {
            assert!((w[1] - w[0]).abs() <= max_step * 1.2);
        }
    }

    #[test]
    fn blocks_too_short_are_left_alone() {
        let mut y = ramp(6, 1);
        assert_eq!(apply(&mut y, 1, 1), 0);
        assert_eq!(y.len(), 6);
        let mut y = ramp(40, 8);
        assert_eq!(apply(&mut y, 8, 30), 0);
        assert_eq!(apply(&mut y, 8, 10), 10);
        assert_eq!(y.len(), 30 * 8);
    }
}
