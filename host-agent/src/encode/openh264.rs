//! H.264 with Cisco's openh264 (built from source, with nasm for its assembly): 8-bit 4:2:0,
//! camera or screen-content tuning ([`EncoderUsage`]), no frame skipping, no periodic IDR (keyframes on request), size-limited
//! slices so a slice fits the transport's datagrams, several threads. The bitrate changes on
//! the running encoder (`SetOption`), without a keyframe, so rate control can follow the path.

use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod,
    RateControlMode, UsageType, VuiConfig,
};
use openh264::formats::YUVSource;
use openh264::OpenH264API;
use openh264_sys2::{
    SBitrateInfo, ENCODER_OPTION_BITRATE, ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_0,
    SPATIAL_LAYER_ALL,
};
use sightline_protocol::msg::{BitDepths, ChromaFormats, VideoCodec};
use std::ffi::{c_int, c_void};

use super::{EncodeError, EncodedFrame, EncoderCaps, EncoderSettings, EncoderUsage, VideoEncoder};
use crate::convert::I420;

const NAME: &str = "openh264";

/// The openh264 backend.
pub struct OpenH264Encoder {
    encoder: Encoder,
    settings: EncoderSettings,
    /// Whether a picture was encoded: before that the native encoder is not initialised and
    /// takes its bitrate from the configuration instead of `SetOption`.
    initialised: bool,
    /// The bitrate the native encoder runs at.
    applied_bps: u32,
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
            initialised: false,
            applied_bps: settings.bitrate_bps,
        })
    }

    /// Sets the running encoder's target bitrate with `SetOption` (no new keyframe, no
    /// restart): `ENCODER_OPTION_BITRATE` for all layers and `ENCODER_OPTION_MAX_BITRATE` for
    /// layer 0 (the crate configures max = target), ordered so max ≥ target at every step —
    /// openh264 refuses a target above the max.
    fn apply_bitrate(&mut self, bps: u32) -> Result<(), EncodeError> {
        let bps = bps.clamp(MIN_BITRATE_BPS, i32::MAX as u32);
        let set = |enc: &mut Encoder, option, layer, bps: u32| -> i32 {
            let mut info = SBitrateInfo {
                iLayer: layer,
                iBitrate: bps as c_int,
            };
            // SAFETY: the encoder is initialised (a picture was encoded), `info` is a valid
            // SBitrateInfo that outlives the call, and ENCODER_OPTION_BITRATE and
            // ENCODER_OPTION_MAX_BITRATE take exactly that type (welsEncoderExt.cpp reads it
            // and copies the two fields); the crate itself never caches these values, so
            // changing them behind its back is safe.
            unsafe {
                enc.raw_api()
                    .set_option(option, (&raw mut info).cast::<c_void>())
            }
        };
        let raising = bps > self.applied_bps;
        let steps = if raising {
            [
                (ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_0),
                (ENCODER_OPTION_BITRATE, SPATIAL_LAYER_ALL),
            ]
        } else {
            [
                (ENCODER_OPTION_BITRATE, SPATIAL_LAYER_ALL),
                (ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_0),
            ]
        };
        for (option, layer) in steps {
            let rc = set(&mut self.encoder, option, layer, bps);
            if rc != 0 {
                return Err(EncodeError::Frame {
                    backend: NAME,
                    detail: format!("SetOption({option}) for {bps} bit/s returned {rc}"),
                });
            }
        }
        self.applied_bps = bps;
        Ok(())
    }

    /// The bitrate the native encoder runs at now (bits/s).
    pub fn applied_bitrate_bps(&self) -> u32 {
        self.applied_bps
    }
}

/// openh264 refuses less than one bit per frame and clamps far below this anyway.
const MIN_BITRATE_BPS: u32 = 64_000;

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
        if force_keyframe {
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
        let first = !self.initialised;
        self.initialised = true;
        if matches!(ty, FrameType::Skip | FrameType::Invalid) {
            return Ok(None);
        }
        let data = bs.to_vec();
        if first && self.settings.bitrate_bps != self.applied_bps {
            // A bitrate set before the first picture applies from the second.
            self.apply_bitrate(self.settings.bitrate_bps)?;
        }
        if data.is_empty() {
            return Ok(None);
        }
        Ok(Some(EncodedFrame {
            data,
            keyframe: ty == FrameType::IDR,
        }))
    }

    fn set_bitrate(&mut self, bitrate_bps: u32) {
        self.settings.bitrate_bps = bitrate_bps;
        if !self.initialised {
            // Not running yet: the first picture initialises the encoder from a configuration
            // that cannot be changed in place, so start over from the new settings.
            if let Ok(fresh) = OpenH264Encoder::new(self.settings) {
                *self = fresh;
            }
            return;
        }
        if bitrate_bps != self.applied_bps {
            if let Err(e) = self.apply_bitrate(bitrate_bps) {
                tracing::warn!(error = %e, "bitrate change refused; keeping {} bit/s", self.applied_bps);
            }
        }
    }
}
