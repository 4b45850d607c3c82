//! 8-bit 4:2:0 H.264 with Cisco's openh264 (built from source).

use openh264::decoder::{Decoder, DecoderConfig};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use super::{DecoderError, Picture, VideoDecoder};
use crate::frame::PictureFormat;

const NAME: &str = "openh264";

/// The openh264 decoder.
pub struct OpenH264Decoder {
    decoder: Decoder,
}

impl std::fmt::Debug for OpenH264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenH264Decoder").finish_non_exhaustive()
    }
}

impl OpenH264Decoder {
    /// A new decoder.
    pub fn new() -> Result<Self, DecoderError> {
        let decoder = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
            .map_err(|e| DecoderError::Init {
                decoder: NAME,
                detail: e.to_string(),
            })?;
        Ok(OpenH264Decoder { decoder })
    }
}

impl VideoDecoder for OpenH264Decoder {
    fn name(&self) -> &'static str {
        NAME
    }

    fn decode(&mut self, data: &[u8]) -> Result<Option<Picture>, DecoderError> {
        let Some(yuv) = self.decoder.decode(data).map_err(|e| DecoderError::Unit {
            decoder: NAME,
            detail: e.to_string(),
        })?
        else {
            return Ok(None);
        };
        let (w, h) = yuv.dimensions();
        let (ys, us, _) = yuv.strides();
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut y = Vec::with_capacity(w * h);
        for row in 0..h {
            y.extend_from_slice(&yuv.y()[row * ys..row * ys + w]);
        }
        let mut u = Vec::with_capacity(cw * ch);
        let mut v = Vec::with_capacity(cw * ch);
        for row in 0..ch {
            u.extend_from_slice(&yuv.u()[row * us..row * us + cw]);
            v.extend_from_slice(&yuv.v()[row * us..row * us + cw]);
        }
        Ok(Some(Picture {
            width: w as u32,
            height: h as u32,
            format: PictureFormat::I420,
            y,
            u,
            v,
            y_stride: w,
            uv_stride: cw,
        }))
    }
}
