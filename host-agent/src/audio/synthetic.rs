//! A synthetic audio source: a distinct tone on every channel (and optionally a click train),
//! delivered in real time like a sound card, for tests, benches and machines without sound.

use std::time::{Duration, Instant};

use sightline_protocol::audio::layout::{ChannelOrder, Speaker};
use sightline_protocol::msg::ChannelLayout;

use super::{AudioBlock, AudioError, AudioSource};

/// The test tone of each speaker, Hz: far apart, no two in a simple harmonic ratio, the LFE low.
pub fn tone_hz(s: Speaker) -> f32 {
    match s {
        Speaker::Mono => 500.0,
        Speaker::FrontLeft => 410.0,
        Speaker::FrontRight => 630.0,
        Speaker::FrontCenter => 850.0,
        Speaker::Lfe => 70.0,
        Speaker::BackLeft => 1_070.0,
        Speaker::BackRight => 1_290.0,
        Speaker::SideLeft => 1_510.0,
        Speaker::SideRight => 1_730.0,
    }
}

/// Tones per channel, paced by the monotonic clock.
#[derive(Debug)]
pub struct SyntheticAudio {
    speakers: Vec<Speaker>,
    block: usize,
    amplitude: f32,
    click_every: Option<u64>,
    start: Option<Instant>,
    produced: u64,
    paced: bool,
}

impl SyntheticAudio {
    /// `layout` in WAVE order, 5 ms blocks, tones at −12 dBFS.
    pub fn new(layout: ChannelLayout) -> Self {
        SyntheticAudio {
            speakers: ChannelOrder::Wave.speakers(layout).to_vec(),
            block: 240,
            amplitude: 0.25,
            click_every: None,
            start: None,
            produced: 0,
            paced: true,
        }
    }

    /// Channels in this order instead (to test remapping).
    pub fn with_order(mut self, order: ChannelOrder) -> Self {
        if let Some(l) = sightline_protocol::audio::layout::layout_of(&self.speakers) {
            self.speakers = order.speakers(l).to_vec();
        }
        self
    }

    /// Silence with a one-sample-wide full-scale click on every channel every `period`
    /// (latency measurements) instead of tones.
    pub fn with_clicks(mut self, period: Duration) -> Self {
        self.click_every = Some((period.as_micros() as u64 * 48 / 1000).max(1));
        self
    }

    /// Deliver blocks as fast as asked (no real-time pacing; capture times still advance at
    /// 48 kHz from the first call).
    pub fn unpaced(mut self) -> Self {
        self.paced = false;
        self
    }

    /// The sample at frame `n` of channel `ch`.
    fn sample(&self, n: u64, ch: usize) -> f32 {
        match self.click_every {
            Some(every) => {
                if n.is_multiple_of(every) {
                    0.9
                } else {
                    0.0
                }
            }
            None => {
                let f = tone_hz(self.speakers[ch]) as f64;
                let phase = (n as f64 * f / 48_000.0).fract();
                (self.amplitude as f64 * (phase * std::f64::consts::TAU).sin()) as f32
            }
        }
    }
}

impl AudioSource for SyntheticAudio {
    fn describe(&self) -> String {
        let names: Vec<&str> = self.speakers.iter().map(|s| s.short_name()).collect();
        format!(
            "synthetic {} ({})",
            if self.click_every.is_some() {
                "clicks"
            } else {
                "tones"
            },
            names.join(" ")
        )
    }

    fn speakers(&self) -> &[Speaker] {
        &self.speakers
    }

    fn sample_rate(&self) -> u32 {
        48_000
    }

    fn next_block(&mut self, timeout: Duration) -> Result<Option<AudioBlock>, AudioError> {
        let start = *self.start.get_or_insert_with(Instant::now);
        let first = self.produced;
        let captured_at = start + Duration::from_micros(first * 1_000_000 / 48_000);
        if self.paced {
            // A block is available once its last sample has been "captured".
            let ready =
                start + Duration::from_micros((first + self.block as u64) * 1_000_000 / 48_000);
            let now = Instant::now();
            if ready > now {
                if ready - now > timeout {
                    std::thread::sleep(timeout);
                    return Ok(None);
                }
                std::thread::sleep(ready - now);
            }
        }
        let ch = self.speakers.len();
        let mut samples = Vec::with_capacity(self.block * ch);
        for i in 0..self.block as u64 {
            for c in 0..ch {
                samples.push(self.sample(first + i, c));
            }
        }
        self.produced += self.block as u64;
        Ok(Some(AudioBlock {
            samples,
            captured_at,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_channel_carries_its_own_tone() {
        let mut s = SyntheticAudio::new(ChannelLayout::Surround51).unpaced();
        let b = s.next_block(Duration::from_secs(1)).unwrap().unwrap();
        assert_eq!(b.samples.len(), 240 * 6);
        // Channel 3 is the LFE (WAVE order): 70 Hz, so its first samples are small but rising.
        assert_eq!(s.speakers()[3], Speaker::Lfe);
        assert!(b.samples[6 * 10 + 3] > 0.0 && b.samples[6 * 10 + 3] < 0.05);
        // Peaks reach the amplitude on every channel over a second.
        let mut peak = [0f32; 6];
        for _ in 0..200 {
            let b = s.next_block(Duration::from_secs(1)).unwrap().unwrap();
            for f in b.samples.chunks(6) {
                for (p, v) in peak.iter_mut().zip(f) {
                    *p = p.max(v.abs());
                }
            }
        }
        assert!(peak.iter().all(|p| (0.24..=0.25).contains(p)), "{peak:?}");
    }

    #[test]
    fn capture_times_advance_at_48_khz_and_pacing_waits() {
        let mut s = SyntheticAudio::new(ChannelLayout::Stereo);
        let t0 = Instant::now();
        let a = s.next_block(Duration::from_secs(1)).unwrap().unwrap();
        let b = s.next_block(Duration::from_secs(1)).unwrap().unwrap();
        assert_eq!(b.captured_at - a.captured_at, Duration::from_millis(5));
        assert!(t0.elapsed() >= Duration::from_millis(10));
    }

    #[test]
    fn clicks_are_single_samples() {
        let mut s = SyntheticAudio::new(ChannelLayout::Mono)
            .with_clicks(Duration::from_millis(2))
            .unpaced();
        let b = s.next_block(Duration::from_secs(1)).unwrap().unwrap();
        let clicks: Vec<usize> = b
            .samples
            .iter()
            .enumerate()
            .filter(|(_, v)| **v > 0.5)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(clicks, vec![0, 96, 192]);
    }
}
