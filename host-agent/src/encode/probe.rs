//! Start-up encoder probe: every candidate encoder for every requested format does a real test
//! encode (a small picture, forced keyframe); the first that works for a format is its offer,
//! and the report says for each candidate why it was or was not chosen — a missing driver, a
//! missing device, an encoder not compiled in.

use std::time::Instant;

use sightline_protocol::msg::Chroma;

use super::format::{FormatRequest, Offer, VideoFormat};
use super::{EncodeError, EncoderSettings, PictureRef, VideoEncoder};
use crate::convert::{Yuv10, I420};

/// What the probe found.
#[derive(Debug, Clone, Default)]
pub struct FormatProbe {
    /// Working formats, best first (each with the encoder that produced it).
    pub offers: Vec<Offer>,
    /// One line per candidate tried.
    pub report: Vec<String>,
}

/// Test size: big enough for every hardware encoder's minimum, small enough to be quick.
const TEST_W: u32 = 256;
const TEST_H: u32 = 144;

/// Probes the candidates of `request` in order. With `exhaustive` every encoder is tried even
/// when an earlier one already covers its format (for `host-agent --list-encoders`).
pub fn probe_formats(
    request: &FormatRequest,
    settings: EncoderSettings,
    exhaustive: bool,
) -> FormatProbe {
    let mut probe = FormatProbe::default();
    for (format, encoders) in request.candidates() {
        let covered = probe.offers.iter().any(|o| o.format == format);
        if covered && !exhaustive {
            continue;
        }
        for &name in encoders {
            let started = Instant::now();
            let what = format.profile_name();
            match test_encode(name, format, settings) {
                Ok(bytes) => {
                    let ms = started.elapsed().as_secs_f64() * 1e3;
                    let chosen = !probe.offers.iter().any(|o| o.format == format);
                    probe.report.push(format!(
                        "{what}: {name}: ok (test keyframe of {bytes} bytes in {ms:.0} ms){}",
                        if chosen {
                            ""
                        } else {
                            "; not needed, an earlier encoder covers it"
                        }
                    ));
                    if chosen {
                        probe.offers.push(Offer {
                            format,
                            encoder: name,
                        });
                    }
                    if !exhaustive {
                        break;
                    }
                }
                Err(e) => probe.report.push(format!("{what}: {name}: {}", reason(&e))),
            }
        }
    }
    probe
}

fn reason(e: &EncodeError) -> String {
    match e {
        EncodeError::Init { detail, .. }
        | EncodeError::Unsupported { detail, .. }
        | EncodeError::Frame { detail, .. } => detail.clone(),
    }
}

/// Opens the encoder an offer names, for the real stream.
pub fn open_offer(
    offer: &Offer,
    settings: EncoderSettings,
) -> Result<Box<dyn VideoEncoder>, EncodeError> {
    open(offer.encoder, offer.format, settings)
}

fn open(
    name: &'static str,
    format: VideoFormat,
    settings: EncoderSettings,
) -> Result<Box<dyn VideoEncoder>, EncodeError> {
    if name == "openh264" {
        if format != VideoFormat::H264_8BIT {
            return Err(EncodeError::Unsupported {
                backend: "openh264",
                detail: format!("{format} (openh264 is 8-bit 4:2:0 BT.709 limited only)"),
            });
        }
        return Ok(Box::new(super::openh264::OpenH264Encoder::new(settings)?));
    }
    #[cfg(feature = "ffmpeg")]
    {
        Ok(Box::new(super::ffmpeg::FfmpegEncoder::new(
            name, format, settings,
        )?))
    }
    #[cfg(not(feature = "ffmpeg"))]
    {
        let _ = settings;
        Err(EncodeError::Init {
            backend: name,
            detail: "this host-agent was built without FFmpeg (feature \"ffmpeg\")".into(),
        })
    }
}

/// One test keyframe from `name` for `format`; its size in bytes.
fn test_encode(
    name: &'static str,
    format: VideoFormat,
    settings: EncoderSettings,
) -> Result<usize, EncodeError> {
    let mut enc = open(name, format, settings)?;
    let frame = if format.bit_depth > 8 {
        let mut p = Yuv10::new(TEST_W, TEST_H, format.chroma);
        p.y.iter_mut()
            .enumerate()
            .for_each(|(i, s)| *s = 64 + (i % 876) as u16);
        enc.encode_frame(PictureRef::Yuv10(&p), true)?
    } else {
        if format.chroma != Chroma::Yuv420 {
            return Err(EncodeError::Unsupported {
                backend: name,
                detail: "8-bit 4:4:4".into(),
            });
        }
        let mut p = I420::new(TEST_W, TEST_H);
        p.y.iter_mut().enumerate().for_each(|(i, s)| *s = i as u8);
        enc.encode_frame(PictureRef::I420(&p), true)?
    };
    match frame {
        Some(f) if f.keyframe && !f.data.is_empty() => Ok(f.data.len()),
        Some(_) => Err(EncodeError::Frame {
            backend: name,
            detail: "the test encode gave no keyframe".into(),
        }),
        None => Err(EncodeError::Frame {
            backend: name,
            detail: "the test encode gave nothing (the encoder buffers frames)".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_protocol::msg::{ColourRange, VideoCodec};

    #[test]
    fn the_8_bit_fallback_is_always_offered_and_hardware_failures_are_explained() {
        let req = FormatRequest {
            bit_depth: 10,
            codec: super::super::format::CodecPreference::Hevc,
            range: ColourRange::Full,
            ..FormatRequest::default()
        };
        let p = probe_formats(&req, EncoderSettings::default(), true);
        for line in &p.report {
            println!("{line}");
        }
        assert_eq!(
            p.offers.last().map(|o| o.format),
            Some(VideoFormat::H264_8BIT)
        );
        // Every candidate has its line: NVENC, VA-API, libx265, libx264, openh264.
        for name in ["hevc_nvenc", "hevc_vaapi", "libx265", "libx264", "openh264"] {
            assert!(
                p.report.iter().any(|l| l.contains(&format!(": {name}: "))),
                "{name} missing from {:?}",
                p.report
            );
        }
        #[cfg(feature = "ffmpeg")]
        {
            let first = p.offers[0];
            assert_eq!(
                (first.format.codec, first.format.bit_depth),
                (VideoCodec::Hevc, 10)
            );
            // Whatever probed first for HEVC, a working encoder was chosen and it said ok.
            assert!(p
                .report
                .iter()
                .any(|l| l.contains(&format!("{}: ok", first.encoder))));
        }
    }
}
