//! Three clocks, never mixed:
//!
//! * the monotonic `now: Instant` passed into every state machine call (timers only);
//! * media time with a frequency ([`MediaTime`]: 90 kHz video, 48 kHz audio);
//! * each peer's wire clock in microseconds ([`HostMicros`] on the host, plain `u64` µs on the
//!   viewer), derived from `now` by a [`WireClock`] so that tests can skew it freely.
//!
//! The viewer estimates `host − viewer` clock offset from ping/pong on the control stream with a
//! minimum-RTT filter ([`ClockEstimator`]). With one-way delays `d_up` and `d_down`, a sample's
//! offset error is `(d_up − d_down) / 2`, which can never exceed half the network round trip: the
//! estimator reports that bound as its uncertainty. No protocol can do better without an outside
//! time source; on a symmetric path the error tends to zero as low-delay samples accumulate.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A timestamp on the host's wire clock, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HostMicros(pub u64);

impl HostMicros {
    /// Microseconds from `earlier` to `self`, negative when `self` is earlier.
    pub fn since(self, earlier: HostMicros) -> i64 {
        self.0 as i64 - earlier.0 as i64
    }
}

/// A media timestamp: ticks of a clock with a stated frequency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MediaTime {
    ticks: u64,
    hz: u32,
}

impl MediaTime {
    /// Video clock rate.
    pub const VIDEO_HZ: u32 = 90_000;
    /// Audio clock rate.
    pub const AUDIO_HZ: u32 = 48_000;

    /// `ticks` of a `hz` clock. `hz` must be non-zero; zero is treated as 1 Hz.
    pub fn new(ticks: u64, hz: u32) -> Self {
        MediaTime {
            ticks,
            hz: hz.max(1),
        }
    }
    /// 90 kHz video time.
    pub fn video(ticks: u64) -> Self {
        Self::new(ticks, Self::VIDEO_HZ)
    }
    /// 48 kHz audio time.
    pub fn audio(ticks: u64) -> Self {
        Self::new(ticks, Self::AUDIO_HZ)
    }
    /// Tick count.
    pub fn ticks(self) -> u64 {
        self.ticks
    }
    /// Clock rate.
    pub fn hz(self) -> u32 {
        self.hz
    }
    /// As microseconds.
    pub fn as_micros(self) -> u64 {
        (self.ticks as u128 * 1_000_000 / self.hz as u128) as u64
    }
}

/// Maps the monotonic `now` onto a peer's wire clock: `base_us + (now − epoch)`.
#[derive(Debug, Clone, Copy)]
pub struct WireClock {
    epoch: Instant,
    base_us: u64,
}

impl WireClock {
    /// A clock reading `base_us` at `epoch`.
    pub fn new(epoch: Instant, base_us: u64) -> Self {
        WireClock { epoch, base_us }
    }
    /// The wire time at `now`, in µs. Instants before the epoch read as the base.
    pub fn micros(&self, now: Instant) -> u64 {
        self.base_us + now.saturating_duration_since(self.epoch).as_micros() as u64
    }
}

/// One completed ping/pong exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSample {
    /// Network round trip, excluding the host's turnaround, µs.
    pub rtt_us: u64,
    /// host − viewer, µs, assuming a symmetric path.
    pub offset_us: i64,
}

impl ClockSample {
    /// From NTP-style timestamps: t1 viewer send, t2 host receive, t3 host send, t4 viewer
    /// receive. `None` when the timestamps are inconsistent (a negative round trip).
    pub fn from_timestamps(t1: u64, t2: u64, t3: u64, t4: u64) -> Option<ClockSample> {
        let (t1, t2, t3, t4) = (t1 as i128, t2 as i128, t3 as i128, t4 as i128);
        let turnaround = t3 - t2;
        let rtt = (t4 - t1) - turnaround;
        if rtt < 0 || turnaround < 0 {
            return None;
        }
        let offset = ((t2 - t1) + (t3 - t4)) / 2;
        Some(ClockSample {
            rtt_us: rtt as u64,
            offset_us: i64::try_from(offset).ok()?,
        })
    }
}

/// What the viewer currently believes about the host clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockEstimate {
    /// host − viewer, µs: `host_time ≈ viewer_time + offset_us`.
    pub offset_us: i64,
    /// Bound on the offset error: half the lowest round trip in the window, µs.
    pub uncertainty_us: u64,
    /// Lowest round trip in the window, µs.
    pub min_rtt_us: u64,
    /// Smoothed round trip (RFC 6298 style, α = 1/8), µs.
    pub smoothed_rtt_us: u64,
    /// Latest round trip, µs.
    pub latest_rtt_us: u64,
    /// Samples taken in total.
    pub samples: u64,
}

impl ClockEstimate {
    /// Converts a host timestamp to the viewer clock.
    pub fn host_to_viewer(&self, host: HostMicros) -> i64 {
        host.0 as i64 - self.offset_us
    }
}

/// Minimum-RTT clock-offset filter over a sliding window of samples.
///
/// The sample with the lowest round trip has the least room for path asymmetry and queueing, so
/// its offset is the best estimate; samples within 10 % (and 200 µs) of that minimum are averaged
/// to reduce granularity noise. The window slides so that clock drift and route changes are
/// followed.
#[derive(Debug, Clone)]
pub struct ClockEstimator {
    window: VecDeque<ClockSample>,
    capacity: usize,
    smoothed_rtt_us: Option<u64>,
    latest_rtt_us: u64,
    samples: u64,
}

impl Default for ClockEstimator {
    fn default() -> Self {
        Self::new(128)
    }
}

impl ClockEstimator {
    /// An estimator over the last `capacity` samples (at least 1).
    pub fn new(capacity: usize) -> Self {
        ClockEstimator {
            window: VecDeque::with_capacity(capacity.max(1)),
            capacity: capacity.max(1),
            smoothed_rtt_us: None,
            latest_rtt_us: 0,
            samples: 0,
        }
    }

    /// Adds a sample.
    pub fn add(&mut self, s: ClockSample) {
        if self.window.len() == self.capacity {
            self.window.pop_front();
        }
        self.window.push_back(s);
        self.latest_rtt_us = s.rtt_us;
        self.smoothed_rtt_us = Some(match self.smoothed_rtt_us {
            None => s.rtt_us,
            Some(srtt) => (srtt * 7 + s.rtt_us) / 8,
        });
        self.samples += 1;
    }

    /// The current estimate, `None` before the first sample.
    pub fn estimate(&self) -> Option<ClockEstimate> {
        let min_rtt = self.window.iter().map(|s| s.rtt_us).min()?;
        let tolerance = (min_rtt / 10).min(200);
        let (sum, n) = self
            .window
            .iter()
            .filter(|s| s.rtt_us <= min_rtt + tolerance)
            .fold((0i128, 0i128), |(sum, n), s| {
                (sum + s.offset_us as i128, n + 1)
            });
        Some(ClockEstimate {
            offset_us: (sum / n) as i64,
            uncertainty_us: (min_rtt + tolerance).div_ceil(2),
            min_rtt_us: min_rtt,
            smoothed_rtt_us: self.smoothed_rtt_us.unwrap_or(min_rtt),
            latest_rtt_us: self.latest_rtt_us,
            samples: self.samples,
        })
    }
}

/// Microseconds in a duration, saturating.
pub fn duration_us(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_math_symmetric() {
        // Host is 1000 µs ahead, 10 ms each way, 1 ms turnaround.
        let s = ClockSample::from_timestamps(0, 11_000, 12_000, 21_000).unwrap();
        assert_eq!(s.rtt_us, 20_000);
        assert_eq!(s.offset_us, 1_000);
    }

    #[test]
    fn inconsistent_sample_rejected() {
        assert!(ClockSample::from_timestamps(100, 0, 0, 50).is_none());
        assert!(ClockSample::from_timestamps(0, 10, 5, 50).is_none());
    }

    #[test]
    fn min_rtt_wins() {
        let mut e = ClockEstimator::new(8);
        e.add(ClockSample {
            rtt_us: 50_000,
            offset_us: 9_000,
        });
        e.add(ClockSample {
            rtt_us: 10_000,
            offset_us: 1_000,
        });
        e.add(ClockSample {
            rtt_us: 40_000,
            offset_us: -7_000,
        });
        let est = e.estimate().unwrap();
        assert_eq!(est.offset_us, 1_000);
        assert_eq!(est.min_rtt_us, 10_000);
        assert!(est.uncertainty_us >= 5_000);
    }

    #[test]
    fn window_slides() {
        let mut e = ClockEstimator::new(2);
        e.add(ClockSample {
            rtt_us: 1,
            offset_us: 5,
        });
        e.add(ClockSample {
            rtt_us: 100,
            offset_us: 7,
        });
        e.add(ClockSample {
            rtt_us: 100,
            offset_us: 7,
        });
        assert_eq!(e.estimate().unwrap().offset_us, 7);
    }

    #[test]
    fn media_time_micros() {
        assert_eq!(MediaTime::video(90_000).as_micros(), 1_000_000);
        assert_eq!(MediaTime::audio(480).as_micros(), 10_000);
    }
}
