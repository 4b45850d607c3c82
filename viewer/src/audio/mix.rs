//! From the stream's channels to the device's: a permutation by speaker name when the device has
//! every speaker of the stream (bit for bit), otherwise a downmix (ITU-R BS.775 coefficients,
//! each output row normalised so nothing clips).

use sightline_protocol::audio::layout::{ChannelMap, Speaker};

/// Maps interleaved stream channels onto device channels.
#[derive(Debug, Clone, PartialEq)]
pub enum Mixer {
    /// Every device channel takes one stream channel (or is silent).
    Route {
        /// For each device channel, the stream channel (None: silence).
        source_of: Vec<Option<usize>>,
        /// Stream channels.
        inputs: usize,
    },
    /// Weighted sums: `weights[out][in]`.
    Matrix {
        /// Weights.
        weights: Vec<Vec<f32>>,
        /// Stream channels.
        inputs: usize,
    },
}

const HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;

impl Mixer {
    /// A mixer from `from` (stream order) to `to` (device order).
    pub fn new(from: &[Speaker], to: &[Speaker]) -> Mixer {
        use Speaker::*;
        let inputs = from.len();
        // Same speakers on both sides: a permutation.
        if from.len() == to.len() {
            if let Ok(m) = ChannelMap::new(from, to) {
                return Mixer::Route {
                    source_of: (0..m.outputs()).map(|i| Some(m.source_of(i))).collect(),
                    inputs,
                };
            }
        }
        let pos = |s: Speaker| from.iter().position(|f| *f == s);
        // A device with more speakers than the stream: route what exists, the rest silent
        // (a mono stream goes to both front speakers).
        if from.iter().all(|s| to.contains(s) || *s == Mono) {
            let source_of = to
                .iter()
                .map(|t| match (pos(*t), pos(Mono)) {
                    (Some(i), _) => Some(i),
                    (None, Some(m)) if matches!(t, FrontLeft | FrontRight) => Some(m),
                    _ => None,
                })
                .collect();
            return Mixer::Route { source_of, inputs };
        }
        // Downmix.
        let weights = to
            .iter()
            .map(|t| {
                let mut row = vec![0.0f32; inputs];
                for (i, s) in from.iter().enumerate() {
                    row[i] = match (t, s) {
                        (a, b) if a == b => 1.0,
                        (Mono, Lfe) => 0.0,
                        (Mono, _) => 1.0,
                        (FrontLeft, FrontCenter | Mono) | (FrontRight, FrontCenter | Mono) => HALF,
                        (FrontLeft, BackLeft | SideLeft) | (FrontRight, BackRight | SideRight) => {
                            HALF
                        }
                        (BackLeft, SideLeft) | (BackRight, SideRight) => 1.0,
                        (SideLeft, BackLeft) | (SideRight, BackRight) => 1.0,
                        _ => 0.0,
                    };
                }
                let sum: f32 = row.iter().sum();
                if sum > 1.0 {
                    row.iter_mut().for_each(|w| *w /= sum);
                }
                row
            })
            .collect();
        Mixer::Matrix { weights, inputs }
    }

    /// Whether this is a pure routing (no arithmetic on samples).
    pub fn is_route(&self) -> bool {
        matches!(self, Mixer::Route { .. })
    }

    /// Appends `input` (interleaved stream channels) mapped to device channels to `out`.
    pub fn apply(&self, input: &[f32], out: &mut Vec<f32>) {
        match self {
            Mixer::Route { source_of, inputs } => {
                if *inputs == 0 {
                    return;
                }
                for f in input.chunks_exact(*inputs) {
                    out.extend(source_of.iter().map(|s| s.map_or(0.0, |i| f[i])));
                }
            }
            Mixer::Matrix { weights, inputs } => {
                if *inputs == 0 {
                    return;
                }
                for f in input.chunks_exact(*inputs) {
                    for row in weights {
                        out.push(row.iter().zip(f).map(|(w, x)| w * x).sum());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_protocol::audio::layout::ChannelOrder;
    use sightline_protocol::msg::ChannelLayout;

    #[test]
    fn same_speakers_route_by_name() {
        let m = Mixer::new(
            ChannelOrder::Vorbis.speakers(ChannelLayout::Surround71),
            ChannelOrder::Wave.speakers(ChannelLayout::Surround71),
        );
        assert!(m.is_route());
        let mut out = Vec::new();
        m.apply(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], &mut out);
        // Vorbis FL FC FR SL SR BL BR LFE → WAVE FL FR FC LFE BL BR SL SR.
        assert_eq!(out, vec![0.0, 2.0, 1.0, 7.0, 5.0, 6.0, 3.0, 4.0]);
    }

    #[test]
    fn mono_goes_to_both_fronts_of_a_bigger_device() {
        let m = Mixer::new(
            &[Speaker::Mono],
            ChannelOrder::Wave.speakers(ChannelLayout::Surround51),
        );
        let mut out = Vec::new();
        m.apply(&[0.5], &mut out);
        assert_eq!(out, vec![0.5, 0.5, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn surround_downmixes_to_stereo_without_clipping() {
        let from = ChannelOrder::Wave.speakers(ChannelLayout::Surround71);
        let m = Mixer::new(from, ChannelOrder::Wave.speakers(ChannelLayout::Stereo));
        assert!(!m.is_route());
        let mut out = Vec::new();
        m.apply(&[1.0; 8], &mut out);
        assert!(out.iter().all(|v| (*v - 1.0).abs() < 1e-6), "{out:?}");
        // Left-only content stays left.
        out.clear();
        m.apply(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], &mut out);
        assert!(out[0] > 0.3 && out[1] == 0.0);
        // LFE is not folded into the fronts.
        out.clear();
        m.apply(&[0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0], &mut out);
        assert_eq!(out, vec![0.0, 0.0]);
    }
}
