//! Lengthens or shortens a decoded block by a few samples for the jitter buffer's delay control
//! and clock-drift correction, with a short crossfade so no click is heard. Everything outside
//! the crossfade passes through bit for bit (PCM stays lossless there).

/// Crossfade length, samples.
const FADE: usize = 64;

/// Makes `block` (interleaved, `channels` channels) about `shift` samples shorter (positive) or
/// longer (negative: −1 inserts one). Returns the shift applied: 0 when the block is too short.
///
/// Drops of a few samples splice at the block's first quarter with a crossfade. Larger drops
/// (catching up after a network stall) choose the cut length near `shift` where the audio
/// resembles itself most (SOLA: a whole number of pitch periods for a tone), so the catch-up
/// neither clicks nor shifts the pitch.
pub fn apply(block: &mut Vec<f32>, channels: usize, shift: i32) -> i32 {
    if shift == 0 || channels == 0 {
        return 0;
    }
    let n = block.len() / channels;
    let m = n / 4;
    let fade = FADE.min(n / 2).max(1);
    let mut d = shift as isize;
    if shift >= 4 {
        let room = n as isize - (m + fade) as isize;
        let lo = (d / 2).max(1);
        let hi = (d * 2).min(room);
        if lo <= hi {
            d = best_lag(block, channels, m, fade, lo as usize, hi as usize) as isize;
        }
    }
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
    d as i32
}

/// The lag in `lo..=hi` at which `fade` samples from `m` best match those `lag` later
/// (normalised cross-correlation over every channel).
fn best_lag(x: &[f32], channels: usize, m: usize, fade: usize, lo: usize, hi: usize) -> usize {
    let seg = |at: usize| &x[at * channels..(at + fade) * channels];
    let a = seg(m);
    let ea: f32 = a.iter().map(|v| v * v).sum();
    let mut best = (f32::MIN, lo);
    for lag in lo..=hi {
        let b = seg(m + lag);
        let eb: f32 = b.iter().map(|v| v * v).sum();
        let dot: f32 = a.iter().zip(b).map(|(p, q)| p * q).sum();
        let score = if ea <= 1e-12 || eb <= 1e-12 {
            // Silence matches anything: take the lag asked for.
            if lag == (lo + hi) / 2 {
                1.0
            } else {
                0.0
            }
        } else {
            dot / (ea * eb).sqrt()
        };
        if score > best.0 {
            best = (score, lag);
        }
    }
    best.1
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
        for shift in [-1, 1, 2] {
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
    fn a_large_drop_cuts_whole_periods_and_keeps_the_pitch() {
        // 1 kHz: a period of 48 samples. Asked to drop 30, it drops 48 (one period) and the
        // output is the same sine, phase-continuous.
        let f = 1_000.0 / 48_000.0;
        let x: Vec<f32> = (0..960)
            .map(|i| (i as f32 * f * std::f32::consts::TAU).sin())
            .collect();
        let mut y = x.clone();
        assert_eq!(apply(&mut y, 1, 30), 48);
        assert_eq!(y.len(), 960 - 48);
        for (i, v) in y.iter().enumerate() {
            assert!((v - x[i]).abs() < 1e-3, "sample {i}: {v} vs {}", x[i]);
        }
    }

    #[test]
    fn blocks_too_short_are_left_alone() {
        let mut y = ramp(6, 1);
        assert_eq!(apply(&mut y, 1, 1), 0);
        assert_eq!(y.len(), 6);
        let mut y = ramp(40, 8);
        assert_eq!(apply(&mut y, 8, 30), 0);
        assert_eq!(apply(&mut y, 8, 2), 2);
        assert_eq!(y.len(), 38 * 8);
    }
}
