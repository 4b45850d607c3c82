//! Per-frame latency records and their summary (percentiles per stage), for the overlay, the
//! headless mode's JSON and the bench mode.

use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{json, Value};
use sightline_protocol::msg::HostStageTimes;
use sightline_protocol::stats::{FrameLatency, ViewerStageTimes, STAGES};
use sightline_protocol::time::ClockEstimate;

use crate::frame::DecodedFrame;

/// The newest clock estimate, shared between the network task and whoever turns host
/// timestamps into latencies.
pub type SharedClock = Arc<Mutex<Option<ClockEstimate>>>;

/// Reads a shared clock.
pub fn current_clock(c: &SharedClock) -> Option<ClockEstimate> {
    *c.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One shown frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRecord {
    /// Host frame number.
    pub frame: u32,
    /// Stage durations and total (capture start → presented), µs.
    pub latency: FrameLatency,
    /// Viewer clock when presented (µs).
    pub presented_us: u64,
}

impl FrameRecord {
    /// Builds the record for `f` presented at `presented_us`; `None` without host times or a
    /// clock estimate.
    pub fn new(f: &DecodedFrame, presented_us: u64, clock: &ClockEstimate) -> Option<Self> {
        FrameTimes::of(f).record(presented_us, clock)
    }
}

/// A decoded frame's timestamps without its pixels, kept until the frame is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTimes {
    /// Host frame number.
    pub frame: u32,
    /// Host stage times.
    pub host: Option<HostStageTimes>,
    /// Viewer clock (µs): first fragment.
    pub first_packet_us: u64,
    /// Viewer clock (µs): complete.
    pub reassembled_us: u64,
    /// Viewer clock (µs): decoded.
    pub decoded_us: u64,
}

impl FrameTimes {
    /// The timestamps of `f`.
    pub fn of(f: &DecodedFrame) -> Self {
        FrameTimes {
            frame: f.frame,
            host: f.host_times,
            first_packet_us: f.first_packet_us,
            reassembled_us: f.reassembled_us,
            decoded_us: f.decoded_us,
        }
    }

    /// The record for this frame presented at `presented_us`; `None` without host times.
    pub fn record(&self, presented_us: u64, clock: &ClockEstimate) -> Option<FrameRecord> {
        let host = self.host?;
        let viewer = ViewerStageTimes {
            first_packet: self.first_packet_us,
            last_packet: self.reassembled_us,
            reassembled: self.reassembled_us,
            decoded: self.decoded_us,
            presented: presented_us,
        };
        Some(FrameRecord {
            frame: self.frame,
            latency: FrameLatency::compute(&host, &viewer, clock),
            presented_us,
        })
    }
}

/// p50/p95/p99/max of a sample, in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `v` (sorted in place).
    pub fn of(v: &mut [u64]) -> Percentiles {
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_unstable();
        let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Percentiles {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: v[v.len() - 1],
        }
    }

    fn json(&self) -> Value {
        json!({
            "p50_ms": self.p50 as f64 / 1e3,
            "p95_ms": self.p95 as f64 / 1e3,
            "p99_ms": self.p99 as f64 / 1e3,
            "max_ms": self.max as f64 / 1e3,
        })
    }
}

/// Stage percentiles over a set of records.
pub fn stage_percentiles(records: &[FrameRecord]) -> ([Percentiles; 8], Percentiles) {
    let mut stages = [Percentiles::default(); 8];
    for (i, s) in stages.iter_mut().enumerate() {
        let mut v: Vec<u64> = records.iter().map(|r| r.latency.stages_us[i]).collect();
        *s = Percentiles::of(&mut v);
    }
    let mut total: Vec<u64> = records.iter().map(|r| r.latency.total_us).collect();
    (stages, Percentiles::of(&mut total))
}

/// Session-level counters that go with the records.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SessionTotals {
    /// Frames completed by reassembly.
    pub frames_received: u64,
    /// Frames given up.
    pub frames_lost: u64,
    /// Frames rebuilt with parity.
    pub frames_recovered: u64,
    /// Keyframes asked for.
    pub keyframe_requests: u64,
    /// Media bytes received.
    pub bytes: u64,
    /// Video fragments ignored by reassembly (too old, malformed, duplicate).
    pub fragments_ignored: u64,
    /// Seconds from the first to the last frame.
    pub duration_s: f64,
}

/// The JSON report: every frame's stages and a summary.
pub fn report_json(
    records: &[FrameRecord],
    totals: &SessionTotals,
    clock: Option<ClockEstimate>,
    stream: Option<(u32, u32, &str)>,
) -> Value {
    let (stages, total) = stage_percentiles(records);
    let frames: Vec<Value> = records
        .iter()
        .map(|r| {
            let mut m = serde_json::Map::new();
            m.insert("frame".into(), json!(r.frame));
            for (i, name) in STAGES.iter().enumerate() {
                m.insert(format!("{name}_us"), json!(r.latency.stages_us[i]));
            }
            m.insert("total_us".into(), json!(r.latency.total_us));
            Value::Object(m)
        })
        .collect();
    let mut stage_map = serde_json::Map::new();
    for (i, name) in STAGES.iter().enumerate() {
        stage_map.insert((*name).into(), stages[i].json());
    }
    let fps = if totals.duration_s > 0.0 {
        records.len().saturating_sub(1) as f64 / totals.duration_s
    } else {
        0.0
    };
    json!({
        "summary": {
            "frames_shown": records.len(),
            "frames_received": totals.frames_received,
            "frames_lost": totals.frames_lost,
            "frames_recovered": totals.frames_recovered,
            "keyframe_requests": totals.keyframe_requests,
            "duration_s": totals.duration_s,
            "fps": fps,
            "bitrate_mbps": if totals.duration_s > 0.0 { totals.bytes as f64 * 8.0 / totals.duration_s / 1e6 } else { 0.0 },
            "stream": stream.map(|(w, h, codec)| json!({"width": w, "height": h, "codec": codec})),
            "clock": clock.map(|c| json!({
                "offset_us": c.offset_us,
                "uncertainty_us": c.uncertainty_us,
                "min_rtt_us": c.min_rtt_us,
                "smoothed_rtt_us": c.smoothed_rtt_us,
            })),
            "stages": Value::Object(stage_map),
            "total": total.json(),
        },
        "frames": frames,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).collect();
        let p = Percentiles::of(&mut v);
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50, 95, 99, 100));
        assert_eq!(Percentiles::of(&mut []), Percentiles::default());
        assert_eq!(Percentiles::of(&mut [7]).p99, 7);
    }
}
