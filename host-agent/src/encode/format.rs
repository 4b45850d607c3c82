//! Stream formats and their negotiation.
//!
//! A [`VideoFormat`] is what a stream carries: codec, bit depth, chroma and colour description
//! (matrix, range, primaries, transfer), exactly the fields of [`StreamConfig`]. The host turns
//! its flags into a [`FormatRequest`], probes encoders for it ([`super::probe_formats`]) and ends
//! up with a list of working [`Offer`]s in order of preference, the 8-bit openh264 stream always
//! last. Each viewer advertises what it decodes ([`Capabilities`]); the pipeline encodes the
//! first offer that every connected viewer accepts ([`choose`]) — encode once, fan out — and
//! switches (with a new stream configuration and a keyframe) when viewers come and go.

use sightline_protocol::msg::{
    BitDepths, Capabilities, Chroma, ChromaFormats, ColourMatrix, ColourPrimaries, ColourRange,
    StreamConfig, TransferFunction, VideoCodec, VideoCodecs,
};

/// The format of one encoded stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFormat {
    /// Codec.
    pub codec: VideoCodec,
    /// Bits per sample: 8 or 10.
    pub bit_depth: u8,
    /// Chroma subsampling.
    pub chroma: Chroma,
    /// YCbCr matrix used by the converter and signalled in the stream (and its VUI).
    pub matrix: ColourMatrix,
    /// Sample range.
    pub range: ColourRange,
    /// Colour primaries (signalled only: the converter does not change primaries).
    pub primaries: ColourPrimaries,
    /// Transfer characteristics (signalled only).
    pub transfer: TransferFunction,
}

impl VideoFormat {
    /// 8-bit H.264 4:2:0, BT.709 limited range: what every viewer decodes (openh264).
    pub const H264_8BIT: VideoFormat = VideoFormat {
        codec: VideoCodec::H264,
        bit_depth: 8,
        chroma: Chroma::Yuv420,
        matrix: ColourMatrix::Bt709,
        range: ColourRange::Limited,
        primaries: ColourPrimaries::Bt709,
        transfer: TransferFunction::Bt709,
    };

    /// Whether a viewer with (negotiated) capabilities `caps` can decode this.
    pub fn accepted_by(&self, caps: &Capabilities) -> bool {
        let codec = match self.codec {
            VideoCodec::H264 => VideoCodecs::H264,
            VideoCodec::Hevc => VideoCodecs::HEVC,
            VideoCodec::Av1 => VideoCodecs::AV1,
        };
        let depth = if self.bit_depth > 8 {
            BitDepths::TEN
        } else {
            BitDepths::EIGHT
        };
        let chroma = match self.chroma {
            Chroma::Yuv420 => ChromaFormats::YUV420,
            Chroma::Yuv444 => ChromaFormats::YUV444,
        };
        caps.video_codecs.contains(codec)
            && caps.bit_depths.contains(depth)
            && caps.chroma.contains(chroma)
    }

    /// The stream configuration for a `width × height` picture at `fps`.
    pub fn stream_config(&self, width: u32, height: u32, fps: f32) -> StreamConfig {
        StreamConfig {
            stream_id: 0,
            codec: self.codec,
            width,
            height,
            fps_millihz: (fps * 1000.0) as u32,
            bit_depth: self.bit_depth,
            chroma: self.chroma,
            matrix: self.matrix,
            range: self.range,
            primaries: self.primaries,
            transfer: self.transfer,
        }
    }

    /// The profile name, e.g. "HEVC Main 10" or "H.264 High 10 4:4:4".
    pub fn profile_name(&self) -> String {
        describe(self.codec, self.bit_depth, self.chroma)
    }
}

impl std::fmt::Display for VideoFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({:?} {:?} range)",
            self.profile_name(),
            self.matrix,
            self.range
        )
    }
}

/// "HEVC Main 10", "H.264 High 10", "HEVC Main 4:4:4 10", … for logs, stats and reports.
pub fn describe(codec: VideoCodec, bit_depth: u8, chroma: Chroma) -> String {
    sightline_protocol::msg::profile_name(codec, bit_depth, chroma)
}

/// Which codec the host should prefer for streams above 8 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CodecPreference {
    /// HEVC from a hardware encoder when one works, else H.264 High 10 on the CPU (libx264 is
    /// several times faster than libx265 at the same latency: docs/benchmarks.md), with
    /// libx265 as the next choice for viewers without H.264 10-bit.
    #[default]
    Auto,
    /// HEVC (hardware, else libx265).
    Hevc,
    /// H.264 (libx264 High 10 / High 4:4:4 for 10-bit; openh264 for 8-bit).
    H264,
}

/// What the host's flags ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatRequest {
    /// Codec preference.
    pub codec: CodecPreference,
    /// Bits per sample of the preferred stream (8 or 10).
    pub bit_depth: u8,
    /// Chroma of the preferred stream (4:4:4 only with 10 bits).
    pub chroma: Chroma,
    /// Matrix (primaries follow: BT.2020 matrix → BT.2020 primaries).
    pub matrix: ColourMatrix,
    /// Range of streams above 8 bits (the 8-bit fallback stays limited range).
    pub range: ColourRange,
}

impl Default for FormatRequest {
    fn default() -> Self {
        FormatRequest {
            codec: CodecPreference::Auto,
            bit_depth: 8,
            chroma: Chroma::Yuv420,
            matrix: ColourMatrix::Bt709,
            range: ColourRange::Limited,
        }
    }
}

impl FormatRequest {
    /// The formats to try, best first, each with the encoders to try for it (in order). The
    /// 8-bit openh264 stream is always last, so every viewer gets a picture.
    pub fn candidates(&self) -> Vec<(VideoFormat, &'static [&'static str])> {
        let primaries = match self.matrix {
            ColourMatrix::Bt2020Ncl => ColourPrimaries::Bt2020,
            _ => ColourPrimaries::Bt709,
        };
        let fmt = |codec, bit_depth, chroma| VideoFormat {
            codec,
            bit_depth,
            chroma,
            matrix: self.matrix,
            range: self.range,
            primaries,
            transfer: TransferFunction::Bt709,
        };
        let mut out: Vec<(VideoFormat, &'static [&'static str])> = Vec::new();
        let mut chromas = vec![self.chroma];
        if self.chroma == Chroma::Yuv444 {
            chromas.push(Chroma::Yuv420);
        }
        if self.bit_depth > 8 {
            for &chroma in &chromas {
                let hevc = (fmt(VideoCodec::Hevc, 10, chroma), HEVC_ENCODERS);
                let hevc_hw = (fmt(VideoCodec::Hevc, 10, chroma), HEVC_HARDWARE);
                let hevc_sw = (fmt(VideoCodec::Hevc, 10, chroma), HEVC_SOFTWARE);
                let h264 = (fmt(VideoCodec::H264, 10, chroma), H264_HIGH_BIT_DEPTH);
                match self.codec {
                    CodecPreference::Hevc => out.extend([hevc, h264]),
                    CodecPreference::H264 => out.extend([h264, hevc]),
                    CodecPreference::Auto => out.extend([hevc_hw, h264, hevc_sw]),
                }
            }
        } else if self.codec == CodecPreference::Hevc {
            out.push((fmt(VideoCodec::Hevc, 8, Chroma::Yuv420), HEVC_ENCODERS));
        }
        out.push((VideoFormat::H264_8BIT, &["openh264"]));
        out
    }
}

/// HEVC encoders in the order the issue asks for: hardware first, then libx265.
pub const HEVC_ENCODERS: &[&str] = &["hevc_nvenc", "hevc_vaapi", "libx265"];
/// Hardware HEVC encoders only.
pub const HEVC_HARDWARE: &[&str] = &["hevc_nvenc", "hevc_vaapi"];
/// Software HEVC.
pub const HEVC_SOFTWARE: &[&str] = &["libx265"];
/// H.264 encoders for more than 8 bits or 4:4:4 (NVENC and VAAPI have no H.264 High 10).
pub const H264_HIGH_BIT_DEPTH: &[&str] = &["libx264"];

/// A format this host can produce, and the encoder that produced it in the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    /// The stream format.
    pub format: VideoFormat,
    /// Encoder name ("openh264", or an FFmpeg encoder name such as "libx265").
    pub encoder: &'static str,
}

/// The first offer every viewer in `viewers` accepts; with no viewers (or none common to all)
/// the first offer the most viewers accept, ties to the better offer.
pub fn choose<'a>(offers: &'a [Offer], viewers: &[Capabilities]) -> Option<&'a Offer> {
    offers
        .iter()
        .enumerate()
        .max_by_key(|(i, o)| {
            let n = viewers.iter().filter(|c| o.format.accepted_by(c)).count();
            (n, std::cmp::Reverse(*i))
        })
        .map(|(_, o)| o)
}

/// Whether a viewer with (negotiated) capabilities `caps` can decode a stream configured as
/// `cfg`.
pub fn config_accepted_by(cfg: &StreamConfig, caps: &Capabilities) -> bool {
    VideoFormat {
        codec: cfg.codec,
        bit_depth: cfg.bit_depth,
        chroma: cfg.chroma,
        ..VideoFormat::H264_8BIT
    }
    .accepted_by(caps)
}

/// The capabilities a host offering `offers` advertises (the union of their formats).
pub fn capabilities_of(offers: &[Offer]) -> (VideoCodecs, BitDepths, ChromaFormats) {
    let mut c = (VideoCodecs::EMPTY, BitDepths::EMPTY, ChromaFormats::EMPTY);
    for o in offers {
        let f = o.format;
        c.0 = c.0.union(match f.codec {
            VideoCodec::H264 => VideoCodecs::H264,
            VideoCodec::Hevc => VideoCodecs::HEVC,
            VideoCodec::Av1 => VideoCodecs::AV1,
        });
        c.1 = c.1.union(if f.bit_depth > 8 {
            BitDepths::TEN
        } else {
            BitDepths::EIGHT
        });
        c.2 = c.2.union(match f.chroma {
            Chroma::Yuv420 => ChromaFormats::YUV420,
            Chroma::Yuv444 => ChromaFormats::YUV444,
        });
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(codecs: VideoCodecs, depths: BitDepths, chroma: ChromaFormats) -> Capabilities {
        Capabilities {
            video_codecs: codecs,
            bit_depths: depths,
            chroma,
            ..Capabilities::default()
        }
    }

    fn offers() -> Vec<Offer> {
        let req = FormatRequest {
            codec: CodecPreference::Hevc,
            bit_depth: 10,
            chroma: Chroma::Yuv444,
            range: ColourRange::Full,
            ..FormatRequest::default()
        };
        req.candidates()
            .into_iter()
            .map(|(format, enc)| Offer {
                format,
                encoder: enc[enc.len() - 1],
            })
            .collect()
    }

    #[test]
    fn candidates_fall_back_to_420_then_8_bit() {
        let o = offers();
        let names: Vec<String> = o.iter().map(|o| o.format.profile_name()).collect();
        assert_eq!(
            names,
            [
                "HEVC Main 4:4:4 10",
                "H.264 High 4:4:4 (10-bit)",
                "HEVC Main 10",
                "H.264 High 10",
                "H.264 (8-bit 4:2:0)"
            ]
        );
        assert_eq!(o.last().unwrap().format, VideoFormat::H264_8BIT);
        assert_eq!(o[0].format.range, ColourRange::Full);
        let auto = FormatRequest {
            bit_depth: 10,
            ..FormatRequest::default()
        }
        .candidates();
        let order: Vec<&[&str]> = auto.iter().map(|c| c.1).collect();
        assert_eq!(
            order,
            [
                HEVC_HARDWARE,
                H264_HIGH_BIT_DEPTH,
                HEVC_SOFTWARE,
                &["openh264"]
            ]
        );
        assert_eq!(FormatRequest::default().candidates().len(), 1);
    }

    #[test]
    fn choose_the_best_format_every_viewer_decodes() {
        let o = offers();
        let all = caps(VideoCodecs::ALL, BitDepths::ALL, ChromaFormats::ALL);
        let no444 = caps(VideoCodecs::ALL, BitDepths::ALL, ChromaFormats::YUV420);
        let h264_only = caps(VideoCodecs::H264, BitDepths::ALL, ChromaFormats::YUV420);
        let eight = caps(VideoCodecs::H264, BitDepths::EIGHT, ChromaFormats::YUV420);
        let pick = |v: &[Capabilities]| choose(&o, v).unwrap().format.profile_name();
        assert_eq!(pick(&[all]), "HEVC Main 4:4:4 10");
        assert_eq!(pick(&[all, no444]), "HEVC Main 10");
        assert_eq!(pick(&[h264_only]), "H.264 High 10");
        assert_eq!(pick(&[all, eight]), "H.264 (8-bit 4:2:0)");
        assert_eq!(pick(&[]), "HEVC Main 4:4:4 10");
        // A viewer that decodes nothing offered does not drag the others down.
        let nothing = caps(VideoCodecs::AV1, BitDepths::EIGHT, ChromaFormats::YUV420);
        assert_eq!(pick(&[all, nothing]), "HEVC Main 4:4:4 10");
    }

    #[test]
    fn advertised_capabilities_are_the_union() {
        let (codecs, depths, chroma) = capabilities_of(&offers());
        assert_eq!(codecs, VideoCodecs::H264.union(VideoCodecs::HEVC));
        assert_eq!(depths, BitDepths::ALL);
        assert_eq!(chroma, ChromaFormats::ALL);
    }
}
