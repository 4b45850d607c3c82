//! Speaker positions and channel orders.
//!
//! Every place that touches interleaved audio has its own idea of which channel is which, and
//! they disagree (7.1 shown):
//!
//! | order | channels |
//! |---|---|
//! | Opus / Vorbis (mapping family 1) | FL FC FR SL SR BL BR LFE |
//! | WAVE / SMPTE, PulseAudio's default map, WASAPI, Core Audio | FL FR FC LFE BL BR SL SR |
//! | ALSA's default map (`hw`, `plug`, the `pulse` plugin) | FL FR BL BR FC LFE SL SR |
//!
//! (5.1 is the same without SL/SR; PulseAudio and ALSA call BL/BR "rear".) So nothing in
//! Sightline relies on an implicit order: the host declares, in
//! [`crate::msg::AudioConfig::speakers`], which speaker each decoded channel is, and each side
//! maps between that and its device with a [`ChannelMap`] built from named positions.

use crate::msg::ChannelLayout;

/// A speaker position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Speaker {
    /// A single channel meant for every speaker.
    Mono = 0,
    /// Front left.
    FrontLeft = 1,
    /// Front right.
    FrontRight = 2,
    /// Front centre.
    FrontCenter = 3,
    /// Low-frequency effects.
    Lfe = 4,
    /// Back (rear) left: the surround left of 5.1.
    BackLeft = 5,
    /// Back (rear) right: the surround right of 5.1.
    BackRight = 6,
    /// Side left (7.1).
    SideLeft = 7,
    /// Side right (7.1).
    SideRight = 8,
}

impl Speaker {
    /// Every position, in wire order.
    pub const ALL: [Speaker; 9] = [
        Speaker::Mono,
        Speaker::FrontLeft,
        Speaker::FrontRight,
        Speaker::FrontCenter,
        Speaker::Lfe,
        Speaker::BackLeft,
        Speaker::BackRight,
        Speaker::SideLeft,
        Speaker::SideRight,
    ];

    /// The wire value.
    pub fn to_u8(self) -> u8 {
        self as u8
    }

    /// From the wire value.
    pub fn from_u8(v: u8) -> Option<Speaker> {
        Speaker::ALL.get(v as usize).copied()
    }

    /// Short name (FL, FR, FC, LFE, BL, BR, SL, SR, M).
    pub fn short_name(self) -> &'static str {
        match self {
            Speaker::Mono => "M",
            Speaker::FrontLeft => "FL",
            Speaker::FrontRight => "FR",
            Speaker::FrontCenter => "FC",
            Speaker::Lfe => "LFE",
            Speaker::BackLeft => "BL",
            Speaker::BackRight => "BR",
            Speaker::SideLeft => "SL",
            Speaker::SideRight => "SR",
        }
    }
}

use Speaker::*;

/// A convention for the order of interleaved channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelOrder {
    /// Opus multistream mapping family 0/1 (the Vorbis order): the order the Opus surround
    /// encoder expects its input in.
    Vorbis,
    /// WAVE (`WAVEFORMATEXTENSIBLE`) / SMPTE order. Also PulseAudio's default channel map for
    /// 1, 2, 6 and 8 channels (what cpal's native PulseAudio host asks for), WASAPI and Core
    /// Audio.
    Wave,
    /// ALSA's default channel map, used by `hw`/`plug` devices and the ALSA `pulse` plugin
    /// (what cpal's ALSA host gets).
    Alsa,
}

impl ChannelOrder {
    /// The speakers of `layout` in this order.
    pub fn speakers(self, layout: ChannelLayout) -> &'static [Speaker] {
        match (layout, self) {
            (ChannelLayout::Mono, _) => &[Mono],
            (ChannelLayout::Stereo, _) => &[FrontLeft, FrontRight],
            (ChannelLayout::Surround51, ChannelOrder::Vorbis) => {
                &[FrontLeft, FrontCenter, FrontRight, BackLeft, BackRight, Lfe]
            }
            (ChannelLayout::Surround51, ChannelOrder::Wave) => {
                &[FrontLeft, FrontRight, FrontCenter, Lfe, BackLeft, BackRight]
            }
            (ChannelLayout::Surround51, ChannelOrder::Alsa) => {
                &[FrontLeft, FrontRight, BackLeft, BackRight, FrontCenter, Lfe]
            }
            (ChannelLayout::Surround71, ChannelOrder::Vorbis) => &[
                FrontLeft,
                FrontCenter,
                FrontRight,
                SideLeft,
                SideRight,
                BackLeft,
                BackRight,
                Lfe,
            ],
            (ChannelLayout::Surround71, ChannelOrder::Wave) => &[
                FrontLeft,
                FrontRight,
                FrontCenter,
                Lfe,
                BackLeft,
                BackRight,
                SideLeft,
                SideRight,
            ],
            (ChannelLayout::Surround71, ChannelOrder::Alsa) => &[
                FrontLeft,
                FrontRight,
                BackLeft,
                BackRight,
                FrontCenter,
                Lfe,
                SideLeft,
                SideRight,
            ],
        }
    }
}

/// The layout whose speakers are exactly `speakers` (in any order), if any.
pub fn layout_of(speakers: &[Speaker]) -> Option<ChannelLayout> {
    ChannelLayout::ALL.iter().copied().find(|l| {
        let want = ChannelOrder::Wave.speakers(*l);
        want.len() == speakers.len()
            && want.iter().all(|s| speakers.contains(s))
            && !has_duplicates(speakers)
    })
}

fn has_duplicates(s: &[Speaker]) -> bool {
    s.iter()
        .enumerate()
        .any(|(i, a)| s[..i].iter().any(|b| a == b))
}

/// Why two channel orders cannot be mapped onto each other.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// A target speaker has no source channel.
    #[error("no source channel for speaker {0:?}")]
    Missing(Speaker),
    /// A speaker appears twice in one order.
    #[error("speaker {0:?} appears twice")]
    Duplicate(Speaker),
}

/// A permutation from one interleaved channel order to another, built from speaker names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelMap {
    /// For each output channel, the input channel it takes.
    source_of: Vec<usize>,
    inputs: usize,
}

impl ChannelMap {
    /// Maps interleaved `from` to interleaved `to`. Every speaker of `to` must be in `from`;
    /// speakers of `from` that `to` lacks are dropped.
    pub fn new(from: &[Speaker], to: &[Speaker]) -> Result<ChannelMap, MapError> {
        for order in [from, to] {
            if let Some((_, s)) = order
                .iter()
                .enumerate()
                .find(|(i, s)| order[..*i].contains(s))
            {
                return Err(MapError::Duplicate(*s));
            }
        }
        let source_of = to
            .iter()
            .map(|s| {
                from.iter()
                    .position(|f| f == s)
                    .ok_or(MapError::Missing(*s))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ChannelMap {
            source_of,
            inputs: from.len(),
        })
    }

    /// Channels in.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Channels out.
    pub fn outputs(&self) -> usize {
        self.source_of.len()
    }

    /// Whether the map changes nothing.
    pub fn is_identity(&self) -> bool {
        self.inputs == self.source_of.len()
            && self.source_of.iter().enumerate().all(|(i, s)| i == *s)
    }

    /// For output channel `i`, the input channel it comes from.
    pub fn source_of(&self, i: usize) -> usize {
        self.source_of[i]
    }

    /// Appends `input` (interleaved, `inputs()` channels; a trailing partial frame is ignored)
    /// to `out` in the target order.
    pub fn apply<T: Copy>(&self, input: &[T], out: &mut Vec<T>) {
        if self.inputs == 0 {
            return;
        }
        let frames = input.len() / self.inputs;
        out.reserve(frames * self.source_of.len());
        for f in input.chunks_exact(self.inputs) {
            out.extend(self.source_of.iter().map(|&s| f[s]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_order_has_every_speaker_of_its_layout_once() {
        for &l in ChannelLayout::ALL {
            for o in [ChannelOrder::Vorbis, ChannelOrder::Wave, ChannelOrder::Alsa] {
                let s = o.speakers(l);
                assert_eq!(s.len(), l.channels() as usize, "{l:?} {o:?}");
                assert_eq!(layout_of(s), Some(l), "{l:?} {o:?}");
            }
        }
    }

    #[test]
    fn vorbis_71_to_wave_is_the_documented_permutation() {
        // Vorbis FL FC FR SL SR BL BR LFE → WAVE FL FR FC LFE BL BR SL SR.
        let m = ChannelMap::new(
            ChannelOrder::Vorbis.speakers(ChannelLayout::Surround71),
            ChannelOrder::Wave.speakers(ChannelLayout::Surround71),
        )
        .unwrap();
        let input: Vec<u8> = (0..8).collect();
        let mut out = Vec::new();
        m.apply(&input, &mut out);
        assert_eq!(out, vec![0, 2, 1, 7, 5, 6, 3, 4]);
    }

    #[test]
    fn wave_71_to_alsa_moves_centre_and_lfe_behind_the_rears() {
        let m = ChannelMap::new(
            ChannelOrder::Wave.speakers(ChannelLayout::Surround71),
            ChannelOrder::Alsa.speakers(ChannelLayout::Surround71),
        )
        .unwrap();
        let mut out = Vec::new();
        m.apply(
            &[
                10, 11, 12, 13, 14, 15, 16, 17, 20, 21, 22, 23, 24, 25, 26, 27,
            ],
            &mut out,
        );
        assert_eq!(
            out,
            vec![10, 11, 14, 15, 12, 13, 16, 17, 20, 21, 24, 25, 22, 23, 26, 27]
        );
    }

    #[test]
    fn vorbis_51_to_alsa() {
        let m = ChannelMap::new(
            ChannelOrder::Vorbis.speakers(ChannelLayout::Surround51),
            ChannelOrder::Alsa.speakers(ChannelLayout::Surround51),
        )
        .unwrap();
        // Vorbis FL FC FR BL BR LFE → ALSA FL FR BL BR FC LFE.
        assert_eq!(
            (0..6).map(|i| m.source_of(i)).collect::<Vec<_>>(),
            vec![0, 2, 3, 4, 1, 5]
        );
    }

    #[test]
    fn identity_and_errors() {
        let s = ChannelOrder::Wave.speakers(ChannelLayout::Stereo);
        assert!(ChannelMap::new(s, s).unwrap().is_identity());
        assert_eq!(
            ChannelMap::new(&[FrontLeft], &[FrontLeft, FrontRight]),
            Err(MapError::Missing(FrontRight))
        );
        assert_eq!(
            ChannelMap::new(&[FrontLeft, FrontLeft], &[FrontLeft]),
            Err(MapError::Duplicate(FrontLeft))
        );
        assert_eq!(layout_of(&[FrontLeft, FrontLeft]), None);
        assert_eq!(layout_of(&[FrontLeft, Lfe]), None);
    }

    #[test]
    fn maps_compose_back_to_identity() {
        for &l in ChannelLayout::ALL {
            for a in [ChannelOrder::Vorbis, ChannelOrder::Wave, ChannelOrder::Alsa] {
                for b in [ChannelOrder::Vorbis, ChannelOrder::Wave, ChannelOrder::Alsa] {
                    let ab = ChannelMap::new(a.speakers(l), b.speakers(l)).unwrap();
                    let ba = ChannelMap::new(b.speakers(l), a.speakers(l)).unwrap();
                    let input: Vec<usize> = (0..l.channels() as usize * 3).collect();
                    let (mut mid, mut back) = (Vec::new(), Vec::new());
                    ab.apply(&input, &mut mid);
                    ba.apply(&mid, &mut back);
                    assert_eq!(back, input, "{l:?} {a:?} {b:?}");
                }
            }
        }
    }
}
