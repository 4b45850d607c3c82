//! Video decoders behind one trait: access unit in, picture out.
//!
//! * [`openh264`]: 8-bit 4:2:0 H.264 (always built; the baseline every host can send).
//! * [`ffmpeg`] (feature `ffmpeg`, default): HEVC and H.264 at 8 or 10 bits, 4:2:0 or 4:4:4,
//!   through FFmpeg's libavcodec with slice threads (frame threads would hold pictures back a
//!   frame per thread).
//!
//! [`open_for`] picks the decoder for a stream configuration; [`capabilities`] is what this
//! viewer advertises to hosts.

#[cfg(feature = "ffmpeg")]
pub mod ffmpeg;
pub mod openh264;

use sightline_protocol::msg::{
    BitDepths, Chroma, ChromaFormats, StreamConfig, VideoCodec, VideoCodecs,
};

use crate::frame::PictureFormat;

/// A decoded picture's planes (tight rows; strides in bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Sample layout.
    pub format: PictureFormat,
    /// Luma.
    pub y: Vec<u8>,
    /// Cb.
    pub u: Vec<u8>,
    /// Cr.
    pub v: Vec<u8>,
    /// Bytes per luma row.
    pub y_stride: usize,
    /// Bytes per chroma row.
    pub uv_stride: usize,
}

/// Why a decoder could not be made or failed on a unit.
#[derive(Debug, thiserror::Error)]
pub enum DecoderError {
    /// This viewer cannot decode the stream (codec not built in, FFmpeg lacks it).
    #[error("{decoder}: cannot decode {what}")]
    Unsupported {
        /// Decoder.
        decoder: &'static str,
        /// The stream.
        what: String,
    },
    /// The decoder could not be created.
    #[error("{decoder}: cannot initialise: {detail}")]
    Init {
        /// Decoder.
        decoder: &'static str,
        /// Cause.
        detail: String,
    },
    /// The unit was not decodable (corrupt, or references lost).
    #[error("{decoder}: {detail}")]
    Unit {
        /// Decoder.
        decoder: &'static str,
        /// Cause.
        detail: String,
    },
}

/// A video decoder.
pub trait VideoDecoder: Send {
    /// Name for logs and stats ("openh264", "ffmpeg hevc").
    fn name(&self) -> &'static str;

    /// Decodes one access unit (Annex B). `Ok(None)` when it produced no picture (yet).
    fn decode(&mut self, data: &[u8]) -> Result<Option<Picture>, DecoderError>;
}

/// Whether the window's renderers present 10-bit and 4:4:4 pictures. Both present paths (the
/// CPU framebuffer and the GPU shader) take [`PictureFormat::I420P10`] /
/// [`PictureFormat::I444P10`] / [`PictureFormat::I444`], so a windowed viewer asks for every
/// format it decodes; were a renderer added that cannot, it would clear this.
pub const WINDOW_PRESENTS_HIGH_BIT_DEPTH: bool = true;

/// What this viewer decodes: codecs, bit depths, chroma formats.
pub fn capabilities() -> (VideoCodecs, BitDepths, ChromaFormats) {
    #[cfg(feature = "ffmpeg")]
    if let Some(c) = ffmpeg::capabilities() {
        return c;
    }
    (VideoCodecs::H264, BitDepths::EIGHT, ChromaFormats::YUV420)
}

/// The decoder for `cfg` (openh264 for 8-bit 4:2:0 H.264 or before any configuration, FFmpeg for
/// everything else).
pub fn open_for(cfg: Option<&StreamConfig>) -> Result<Box<dyn VideoDecoder>, DecoderError> {
    let baseline = cfg.is_none_or(|c| DecoderKind::of(c) == BASELINE);
    if baseline {
        return Ok(Box::new(openh264::OpenH264Decoder::new()?));
    }
    let cfg = cfg.copied().ok_or_else(|| DecoderError::Unsupported {
        decoder: "none",
        what: "an unconfigured stream".into(),
    })?;
    #[cfg(feature = "ffmpeg")]
    {
        Ok(Box::new(ffmpeg::FfmpegDecoder::new(&cfg)?))
    }
    #[cfg(not(feature = "ffmpeg"))]
    {
        Err(DecoderError::Unsupported {
            decoder: "openh264",
            what: format!(
                "{:?} {}-bit {:?} (this viewer was built without FFmpeg)",
                cfg.codec, cfg.bit_depth, cfg.chroma
            ),
        })
    }
}

/// Whether two configurations need different decoders (codec, depth or chroma changed).
pub fn needs_new_decoder(old: Option<&StreamConfig>, new: &StreamConfig) -> bool {
    old.is_none_or(|o| DecoderKind::of(o) != DecoderKind::of(new))
}

/// What a decoder is opened for: codec, bit depth and chroma (a change needs a new decoder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderKind {
    /// Codec.
    pub codec: VideoCodec,
    /// Bits per sample.
    pub bit_depth: u8,
    /// Chroma subsampling.
    pub chroma: Chroma,
}

impl DecoderKind {
    /// The kind `cfg` needs.
    pub fn of(cfg: &StreamConfig) -> DecoderKind {
        DecoderKind {
            codec: cfg.codec,
            bit_depth: cfg.bit_depth,
            chroma: cfg.chroma,
        }
    }
}

/// What [`open_for`] opens without a configuration: 8-bit 4:2:0 H.264 (openh264).
pub const BASELINE: DecoderKind = DecoderKind {
    codec: VideoCodec::H264,
    bit_depth: 8,
    chroma: Chroma::Yuv420,
};

/// The top `rows` rows of `f`'s luma as 8-bit samples (10-bit values rounded to 8 bits), with
/// a stride of `f.width` bytes; 8-bit frames are copied as they are. For readers of marks drawn
/// in the picture (the bench's probe strip, the synthetic barcode) that expect 8-bit luma.
pub fn luma_rows_8bit(f: &crate::frame::DecodedFrame, rows: u32) -> Vec<u8> {
    let (w, rows) = (f.width as usize, rows.min(f.height) as usize);
    let mut out = Vec::with_capacity(w * rows);
    for r in 0..rows {
        let row = &f.y[r * f.y_stride..];
        if f.format.bit_depth() > 8 {
            out.extend(row.chunks_exact(2).take(w).map(|s| {
                let v = u16::from_le_bytes([s[0], s[1]]).min(1023);
                ((v + 2) >> 2).min(255) as u8
            }));
        } else {
            out.extend_from_slice(&row[..w]);
        }
    }
    out
}

/// "HEVC Main 10, full range" for the overlay and reports.
pub fn stream_label(cfg: &StreamConfig) -> String {
    format!(
        "{}, {} range",
        cfg.profile_name(),
        match cfg.range {
            sightline_protocol::msg::ColourRange::Limited => "limited",
            sightline_protocol::msg::ColourRange::Full => "full",
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::DecodedFrame;

    #[test]
    fn ten_bit_luma_rows_round_to_8_bits() {
        let samples: Vec<u16> = vec![0, 1, 2, 512, 1021, 1023, 940, 64];
        let y: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let f = DecodedFrame {
            width: 4,
            height: 2,
            format: PictureFormat::I420P10,
            y,
            u: vec![0; 4],
            v: vec![0; 4],
            y_stride: 8,
            uv_stride: 4,
            matrix: sightline_protocol::msg::ColourMatrix::Bt709,
            range: sightline_protocol::msg::ColourRange::Full,
            frame: 0,
            host_times: None,
            first_packet_us: 0,
            reassembled_us: 0,
            decoded_us: 0,
            decoded_at: std::time::Instant::now(),
            damage: None,
        };
        assert_eq!(luma_rows_8bit(&f, 2), vec![0, 0, 1, 128, 255, 255, 235, 16]);
        assert_eq!(luma_rows_8bit(&f, 9).len(), 8, "clamped to the picture");
    }

    #[test]
    fn every_stream_has_a_decoder_and_the_baseline_is_openh264() {
        let mut cfg = StreamConfig {
            stream_id: 0,
            codec: VideoCodec::H264,
            width: 64,
            height: 64,
            fps_millihz: 60_000,
            bit_depth: 8,
            chroma: Chroma::Yuv420,
            matrix: sightline_protocol::msg::ColourMatrix::Bt709,
            range: sightline_protocol::msg::ColourRange::Limited,
            primaries: sightline_protocol::msg::ColourPrimaries::Bt709,
            transfer: sightline_protocol::msg::TransferFunction::Bt709,
        };
        assert_eq!(open_for(Some(&cfg)).unwrap().name(), "openh264");
        assert_eq!(open_for(None).unwrap().name(), "openh264");
        cfg.bit_depth = 10;
        cfg.codec = VideoCodec::Hevc;
        let ten = open_for(Some(&cfg));
        #[cfg(feature = "ffmpeg")]
        assert_eq!(ten.unwrap().name(), "ffmpeg hevc");
        #[cfg(not(feature = "ffmpeg"))]
        assert!(ten.is_err());
        assert!(needs_new_decoder(None, &cfg));
        assert!(!needs_new_decoder(Some(&cfg), &cfg));
        assert_eq!(stream_label(&cfg), "HEVC Main 10, limited range");
    }
}
