//! A/V sync: how long to hold audio back so it plays with the picture it belongs to.
//!
//! Audio and video both carry host capture times; the viewer turns them into end-to-end
//! latencies (capture → played / presented) with the clock-offset estimate. Video is shown as
//! soon as it is decoded (an artist's input loop must not wait), so sync only ever *delays
//! audio*: when the picture is later than the sound, the jitter buffer's target is raised by
//! the difference. When the sound is later than the picture nothing is delayed and the offset
//! is reported. Changes smaller than [`AvSync::TOLERANCE_US`] are ignored: lip-sync errors
//! below ~15 ms are imperceptible, and chasing them would keep stretching the audio.

use std::time::Duration;

/// Tracks the audio hold-back for A/V sync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AvSync {
    extra_us: u64,
    offset_us: i64,
}

impl AvSync {
    /// Differences smaller than this are left alone, µs.
    pub const TOLERANCE_US: u64 = 15_000;
    /// Most audio is ever held back, µs.
    pub const MAX_EXTRA_US: u64 = 150_000;

    /// No hold-back.
    pub fn new() -> Self {
        Self::default()
    }

    /// The audio hold-back now in force.
    pub fn extra_delay(&self) -> Duration {
        Duration::from_micros(self.extra_us)
    }

    /// Audio latency minus video latency at the last update, µs (positive: sound is late).
    pub fn offset_us(&self) -> i64 {
        self.offset_us
    }

    /// Feeds the latest median latencies (capture → presented for video, capture → played for
    /// audio, the latter *including* the current hold-back); returns the hold-back to use.
    pub fn update(&mut self, video_latency_us: u64, audio_latency_us: u64) -> Duration {
        self.offset_us = audio_latency_us as i64 - video_latency_us as i64;
        let audio_base = audio_latency_us.saturating_sub(self.extra_us);
        let want = video_latency_us
            .saturating_sub(audio_base)
            .min(Self::MAX_EXTRA_US);
        if want.abs_diff(self.extra_us) > Self::TOLERANCE_US || want == 0 {
            self.extra_us = want;
        }
        self.extra_delay()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_video_holds_audio_back_by_the_difference() {
        let mut s = AvSync::new();
        // Video 80 ms, audio 25 ms: hold audio back 55 ms.
        assert_eq!(s.update(80_000, 25_000), Duration::from_millis(55));
        assert_eq!(s.offset_us(), -55_000);
        // Next report includes the hold-back: audio 80 ms. Stable.
        assert_eq!(s.update(80_000, 80_000), Duration::from_millis(55));
        assert_eq!(s.offset_us(), 0);
        // Small wobble in video latency: unchanged.
        assert_eq!(s.update(88_000, 80_000), Duration::from_millis(55));
        // Video got much faster: release the hold-back.
        assert_eq!(s.update(30_000, 80_000), Duration::from_millis(5));
    }

    #[test]
    fn late_audio_delays_nothing_and_reports_the_offset() {
        let mut s = AvSync::new();
        assert_eq!(s.update(17_000, 30_000), Duration::ZERO);
        assert_eq!(s.offset_us(), 13_000);
    }

    #[test]
    fn hold_back_is_capped() {
        let mut s = AvSync::new();
        assert_eq!(
            s.update(2_000_000, 20_000),
            Duration::from_micros(AvSync::MAX_EXTRA_US)
        );
    }
}
