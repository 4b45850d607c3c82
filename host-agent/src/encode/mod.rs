//! Video encoders behind the [`VideoEncoder`] trait (push a picture, get an access unit).
//!
//! Encoders are probed with a real test encode at start-up ([`probe`]), never trusted from their
//! name alone; each states its capabilities (codec, bit depths, chroma, whether it can invalidate
//! references instead of sending a keyframe).

#[cfg(feature = "ffmpeg")]
pub mod ffmpeg;
pub mod format;
pub mod openh264;
pub mod probe;

use sightline_protocol::msg::{BitDepths, ChromaFormats, VideoCodec};

use crate::convert::{Yuv10, I420};

pub use probe::{open_offer, probe_formats, FormatProbe};

/// A picture to encode: 8-bit 4:2:0 or 10-bit 4:2:0/4:4:4.
#[derive(Debug, Clone, Copy)]
pub enum PictureRef<'a> {
    /// 8-bit 4:2:0.
    I420(&'a I420),
    /// 10-bit, 4:2:0 or 4:4:4.
    Yuv10(&'a Yuv10),
}

impl PictureRef<'_> {
    /// Picture size in pixels.
    pub fn size(&self) -> (u32, u32) {
        match self {
            PictureRef::I420(p) => (p.width, p.height),
            PictureRef::Yuv10(p) => (p.width, p.height),
        }
    }
}

/// What an encoder can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderCaps {
    /// Codec produced.
    pub codec: VideoCodec,
    /// Bit depths accepted.
    pub bit_depths: BitDepths,
    /// Chroma formats accepted.
    pub chroma: ChromaFormats,
    /// Whether lost frames can be excluded from reference without a keyframe.
    pub reference_invalidation: bool,
    /// Backend name for logs and stats (e.g. "openh264").
    pub name: &'static str,
}

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncoderSettings {
    /// Target bitrate, bits per second.
    pub bitrate_bps: u32,
    /// Nominal frame rate.
    pub fps: f32,
    /// Upper bound for one slice/NAL, bytes (so a slice fits the transport's datagrams); 0 for
    /// one slice per frame.
    pub max_slice_bytes: u32,
    /// Encoder threads (0: the backend decides).
    pub threads: u16,
    /// What the encoder is tuned for.
    pub usage: EncoderUsage,
}

/// The encoder's tuning (openh264's usage type).
///
/// Measured on a 2-core EPYC at 1080p (`cargo bench -p sightline-benches --bench pipeline`, see
/// docs/benchmarks.md): screen-content mode spends 17–20 ms per frame in single-threaded
/// whole-frame analysis even when one glyph changed, camera mode ~6 ms for the same frame with
/// two threads — at a higher bitrate for the same target (it spends the budget on quality:
/// 55 dB against 43 dB). Latency comes first, so camera mode is the default; screen mode is the
/// choice for thin links where bits matter more than milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncoderUsage {
    /// Real-time camera tuning: fastest, multi-threaded, more bits.
    #[default]
    Camera,
    /// Screen-content tuning: fewest bits on text, slow whole-frame analysis.
    Screen,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        EncoderSettings {
            bitrate_bps: 20_000_000,
            fps: 60.0,
            max_slice_bytes: 0,
            threads: 2,
            usage: EncoderUsage::default(),
        }
    }
}

/// One encoded access unit in Annex B format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// Annex B NAL units (start codes included).
    pub data: Vec<u8>,
    /// Whether this is an IDR (decodable on its own).
    pub keyframe: bool,
}

/// Why encoding failed.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The backend could not be created or configured (missing library, bad parameters).
    #[error("{backend}: cannot initialise: {detail}")]
    Init {
        /// Backend.
        backend: &'static str,
        /// Cause.
        detail: String,
    },
    /// The picture is not something this encoder takes (size limits, odd dimensions).
    #[error("{backend}: unsupported input: {detail}")]
    Unsupported {
        /// Backend.
        backend: &'static str,
        /// Cause.
        detail: String,
    },
    /// The backend failed on a frame.
    #[error("{backend}: encode failed: {detail}")]
    Frame {
        /// Backend.
        backend: &'static str,
        /// Cause.
        detail: String,
    },
}

/// A video encoder.
pub trait VideoEncoder: Send {
    /// What it can do.
    fn caps(&self) -> EncoderCaps;

    /// Encodes `picture`; `force_keyframe` makes it an IDR. `Ok(None)` when the encoder chose to
    /// emit nothing for this picture.
    fn encode(
        &mut self,
        picture: &I420,
        force_keyframe: bool,
    ) -> Result<Option<EncodedFrame>, EncodeError>;

    /// Changes the target bitrate from the next frame on.
    fn set_bitrate(&mut self, bitrate_bps: u32);

    /// Encodes any picture type; the default takes 8-bit 4:2:0 only (through
    /// [`VideoEncoder::encode`]) and refuses the rest.
    fn encode_frame(
        &mut self,
        picture: PictureRef<'_>,
        force_keyframe: bool,
    ) -> Result<Option<EncodedFrame>, EncodeError> {
        match picture {
            PictureRef::I420(p) => self.encode(p, force_keyframe),
            PictureRef::Yuv10(p) => Err(EncodeError::Unsupported {
                backend: self.caps().name,
                detail: format!("10-bit {:?} pictures", p.chroma),
            }),
        }
    }
}

/// Creates the best working 8-bit encoder by test-encoding a small frame with each candidate.
/// Returns the encoder and one line per candidate saying why it was or was not chosen.
pub fn probe(
    width: u32,
    height: u32,
    settings: EncoderSettings,
) -> Result<(Box<dyn VideoEncoder>, Vec<String>), EncodeError> {
    let mut report = Vec::new();
    let mut test = I420::new(64, 64);
    test.y.fill(100);
    match openh264::OpenH264Encoder::new(settings) {
        Ok(mut enc) => match enc.encode(&test, true) {
            Ok(Some(f)) if f.keyframe && !f.data.is_empty() => {
                report.push(format!(
                    "openh264: ok (test IDR of {} bytes); chosen for {width}x{height}",
                    f.data.len()
                ));
                // A fresh instance so the real stream starts clean at its own size.
                let enc = openh264::OpenH264Encoder::new(settings)?;
                return Ok((Box::new(enc), report));
            }
            Ok(_) => report.push("openh264: test encode produced no IDR".into()),
            Err(e) => report.push(format!("openh264: test encode failed: {e}")),
        },
        Err(e) => report.push(format!("openh264: {e}")),
    }
    Err(EncodeError::Init {
        backend: "probe",
        detail: report.join("; "),
    })
}
