//! Per-frame latency records: host stages (from [`HostStageTimes`]) plus the viewer's own
//! stages, put on one clock with the estimated offset.

use crate::msg::HostStageTimes;
use crate::time::ClockEstimate;

/// The stages a frame passes through, in order.
pub const STAGES: [&str; 8] = [
    "capture",
    "convert",
    "encode",
    "send",
    "network",
    "reassemble",
    "decode",
    "present",
];

/// Viewer-side timestamps of one frame (viewer wire clock, µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ViewerStageTimes {
    /// First fragment arrived.
    pub first_packet: u64,
    /// Last needed fragment arrived.
    pub last_packet: u64,
    /// Access unit complete.
    pub reassembled: u64,
    /// Decoder returned the picture.
    pub decoded: u64,
    /// Picture handed to the display.
    pub presented: u64,
}

/// Stage durations of one frame in µs, in [`STAGES`] order. `network` is corrected by the clock
/// offset and so carries its uncertainty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLatency {
    /// Durations, µs (negative values from clock error are clamped to 0).
    pub stages_us: [u64; 8],
    /// Capture start → presented, µs.
    pub total_us: u64,
}

impl FrameLatency {
    /// Combines host and viewer times using `clock` (host − viewer offset).
    pub fn compute(
        host: &HostStageTimes,
        viewer: &ViewerStageTimes,
        clock: &ClockEstimate,
    ) -> Self {
        let h = |t: crate::time::HostMicros| clock.host_to_viewer(t);
        let points = [
            h(host.capture_start),
            h(host.capture_end),
            h(host.convert_end),
            h(host.encode_end),
            h(host.send),
            viewer.first_packet as i64,
            viewer.reassembled as i64,
            viewer.decoded as i64,
            viewer.presented as i64,
        ];
        let mut stages_us = [0u64; 8];
        for (i, s) in stages_us.iter_mut().enumerate() {
            *s = (points[i + 1] - points[i]).max(0) as u64;
        }
        FrameLatency {
            stages_us,
            total_us: (points[8] - points[0]).max(0) as u64,
        }
    }
}
