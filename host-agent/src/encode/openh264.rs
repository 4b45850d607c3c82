//! H.264 with Cisco's openh264 (built from source, with nasm for its assembly): 8-bit 4:2:0,
//! camera or screen-content tuning ([`EncoderUsage`]), no frame skipping, no periodic IDR (keyframes on request), size-limited
//! slices so a slice fits the transport's datagrams, several threads.

use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod,
    RateControlMode, UsageType, VuiConfig,
};
use openh264::formats::YUVSource;
use openh264::OpenH264API;
use sightline_protocol::msg::{BitDepths, ChromaFormats, VideoCodec};

use super::{EncodeError, EncodedFrame, EncoderCaps, EncoderSettings, EncoderUsage, VideoEncoder};
use crate::convert::I420;

const NAME: &str = "openh264";

/// The openh264 backend.
pub struct OpenH264Encoder {
    encoder: Encoder,
    settings: EncoderSettings,
    reconfigure: bool,
}

impl std::fmt::Debug for OpenH264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenH264Encoder")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn config_for(s: &EncoderSettings) -> EncoderConfig {
    let screen = s.usage == EncoderUsage::Screen;
    let mut c = EncoderConfig::new()
        .usage_type(if screen {
            UsageType::ScreenContentRealTime
        } else {
            UsageType::CameraVideoRealTime
        })
        .rate_control_mode(RateControlMode::Bitrate)
        .bitrate(BitRate::from_bps(s.bitrate_bps))
        .max_frame_rate(FrameRate::from_hz(s.fps))
        .skip_frames(false)
        .intra_frame_period(IntraFramePeriod::from_num_frames(0))
        .complexity(Complexity::Low)
        // Screen-content mode wants scene-change detection; camera mode goes without (it costs
        // a whole-frame pass and we never insert keyframes on our own). Neither uses background
        // detection or adaptive quantisation.
        .scene_change_detect(screen)
        .background_detection(false)
        .adaptive_quantization(false)
        .num_threads(s.threads)
        .vui(VuiConfig::bt709());
    if s.max_slice_bytes > 0 {
        c = c.max_slice_len(s.max_slice_bytes);
    }
    c
}

impl OpenH264Encoder {
    /// A new encoder; the picture size is taken from the first picture.
    pub fn new(settings: EncoderSettings) -> Result<Self, EncodeError> {
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config_for(&settings))
            .map_err(|e| EncodeError::Init {
            backend: NAME,
            detail: e.to_string(),
        })?;
        Ok(OpenH264Encoder {
            encoder,
            settings,
            reconfigure: false,
        })
    }
}

struct Planes<'a>(&'a I420);

impl YUVSource for Planes<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width as usize, self.0.height as usize)
    }
    fn strides(&self) -> (usize, usize, usize) {
        (self.0.y_stride, self.0.uv_stride, self.0.uv_stride)
    }
    fn y(&self) -> &[u8] {
        &self.0.y
    }
    fn u(&self) -> &[u8] {
        &self.0.u
    }
    fn v(&self) -> &[u8] {
        &self.0.v
    }
}

impl VideoEncoder for OpenH264Encoder {
    fn caps(&self) -> EncoderCaps {
        EncoderCaps {
            codec: VideoCodec::H264,
            bit_depths: BitDepths::EIGHT,
            chroma: ChromaFormats::YUV420,
            reference_invalidation: false,
            name: NAME,
        }
    }

    fn encode(
        &mut self,
        picture: &I420,
        force_keyframe: bool,
    ) -> Result<Option<EncodedFrame>, EncodeError> {
        if picture.width > 3840 || picture.height > 2160 || picture.width % 2 == 1 {
            return Err(EncodeError::Unsupported {
                backend: NAME,
                detail: format!(
                    "{}x{} (openh264 takes even sizes up to 3840x2160)",
                    picture.width, picture.height
                ),
            });
        }
        let rebuilt = self.reconfigure;
        if rebuilt {
            // This binding exposes no bitrate setter: rebuild with the new target and start
            // with a keyframe so the stream stays decodable.
            *self = OpenH264Encoder::new(self.settings)?;
        }
        if force_keyframe || rebuilt {
            self.encoder.force_intra_frame();
        }
        let bs = self
            .encoder
            .encode(&Planes(picture))
            .map_err(|e| EncodeError::Frame {
                backend: NAME,
                detail: e.to_string(),
            })?;
        let ty = bs.frame_type();
        if matches!(ty, FrameType::Skip | FrameType::Invalid) {
            return Ok(None);
        }
        let data = bs.to_vec();
        if data.is_empty() {
            return Ok(None);
        }
        Ok(Some(EncodedFrame {
            data,
            keyframe: ty == FrameType::IDR,
        }))
    }

    fn set_bitrate(&mut self, bitrate_bps: u32) {
        if bitrate_bps != self.settings.bitrate_bps {
            self.settings.bitrate_bps = bitrate_bps;
            self.reconfigure = true;
        }
    }
}
