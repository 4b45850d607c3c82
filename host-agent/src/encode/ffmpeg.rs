//! HEVC and H.264 (8/10-bit, 4:2:0/4:4:4) through FFmpeg's libavcodec (`ffmpeg-next` against the
//! system FFmpeg; Debian 12 ships 5.1).
//!
//! One type, [`FfmpegEncoder`], drives any of the encoders the probe tries:
//!
//! | encoder | input | notes |
//! |---|---|---|
//! | `hevc_nvenc` | P010 / YUV444P16 (10-bit samples shifted up) | needs NVIDIA's driver (libcuda, libnvidia-encode) |
//! | `hevc_vaapi` | P010 surfaces uploaded to the GPU | needs a VA-API driver and a render node (/dev/dri) |
//! | `libx265` | yuv420p10le / yuv444p10le | CPU; Main 10 / Main 4:4:4 10 |
//! | `libx264` | yuv420p10le / yuv444p10le | CPU; High 10 / High 4:4:4 (x264 ≥ r3000 has every depth in one library) |
//!
//! Every encoder is set up for interactive latency: no B-frames, no look-ahead, no periodic
//! keyframes (keyframes only when asked: `forced-idr`), a one-frame VBV (`rc_buffer_size` =
//! bitrate / fps, `rc_max_rate` = bitrate) so no frame is far larger than its share, and the
//! stream's matrix, range, primaries and transfer in the VUI. Parameter sets are repeated with
//! every keyframe, so a viewer can join at any keyframe. The picture size is taken from the
//! first picture (and a new size reopens the encoder).

use std::ffi::CString;
use std::ptr;
use std::sync::Once;

use ff::ffi;
use ffmpeg_next as ff;
use sightline_protocol::msg::{
    BitDepths, Chroma, ChromaFormats, ColourMatrix, ColourPrimaries, ColourRange, TransferFunction,
};

use super::format::VideoFormat;
use super::{EncodeError, EncodedFrame, EncoderCaps, EncoderSettings, PictureRef, VideoEncoder};
use crate::convert::{Yuv10, I420};

/// Initialises FFmpeg once and keeps its log quiet (errors only; we report ourselves).
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = ff::init();
        ff::util::log::set_level(ff::util::log::Level::Fatal);
    });
}

/// Kinds of FFmpeg encoders, by how they take pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    X265,
    X264,
    Nvenc,
    Vaapi,
}

fn kind_of(name: &str) -> Option<Kind> {
    Some(match name {
        "libx265" => Kind::X265,
        "libx264" => Kind::X264,
        "hevc_nvenc" | "h264_nvenc" => Kind::Nvenc,
        "hevc_vaapi" | "h264_vaapi" => Kind::Vaapi,
        _ => return None,
    })
}

/// The pixel format the encoder is given for `format`.
fn input_pixel(kind: Kind, format: &VideoFormat) -> Result<ff::format::Pixel, String> {
    use ff::format::Pixel;
    let ten = format.bit_depth > 8;
    let c444 = format.chroma == Chroma::Yuv444;
    Ok(match (kind, ten, c444) {
        (Kind::X265 | Kind::X264, true, false) => Pixel::YUV420P10LE,
        (Kind::X265 | Kind::X264, true, true) => Pixel::YUV444P10LE,
        (Kind::X265 | Kind::X264, false, false) => Pixel::YUV420P,
        (Kind::Nvenc, true, false) => Pixel::P010LE,
        (Kind::Nvenc, true, true) => Pixel::YUV444P16LE,
        (Kind::Nvenc, false, false) => Pixel::YUV420P,
        (Kind::Vaapi, true, false) => Pixel::P010LE,
        (Kind::Vaapi, false, false) => Pixel::NV12,
        (_, false, true) => return Err("8-bit 4:4:4 is not offered (4:4:4 is 10-bit)".into()),
        (Kind::Vaapi, true, true) => {
            return Err("4:4:4 over VA-API is not supported here (no common surface format)".into())
        }
    })
}

/// An FFmpeg encoder; opened on the first picture.
pub struct FfmpegEncoder {
    name: &'static str,
    kind: Kind,
    format: VideoFormat,
    settings: EncoderSettings,
    pixel: ff::format::Pixel,
    open: Option<Opened>,
    reconfigure: bool,
}

struct Opened {
    encoder: ff::encoder::Video,
    frame: ff::frame::Video,
    width: u32,
    height: u32,
    pts: i64,
    vaapi: Option<Vaapi>,
}

impl std::fmt::Debug for FfmpegEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FfmpegEncoder")
            .field("name", &self.name)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

fn init_err(name: &'static str, detail: impl std::fmt::Display) -> EncodeError {
    EncodeError::Init {
        backend: name,
        detail: detail.to_string(),
    }
}

fn frame_err(name: &'static str, detail: impl std::fmt::Display) -> EncodeError {
    EncodeError::Frame {
        backend: name,
        detail: detail.to_string(),
    }
}

impl FfmpegEncoder {
    /// An encoder named `name` (an FFmpeg encoder name) for `format`. Fails at once when this
    /// libavcodec lacks the encoder or cannot take the format; device and driver problems show
    /// on the first picture (so probe with a test encode).
    pub fn new(
        name: &'static str,
        format: VideoFormat,
        settings: EncoderSettings,
    ) -> Result<Self, EncodeError> {
        init();
        let kind =
            kind_of(name).ok_or_else(|| init_err(name, "not an encoder Sightline drives"))?;
        if ff::encoder::find_by_name(name).is_none() {
            return Err(init_err(name, "not compiled into this libavcodec"));
        }
        let pixel = input_pixel(kind, &format).map_err(|e| init_err(name, e))?;
        Ok(FfmpegEncoder {
            name,
            kind,
            format,
            settings,
            pixel,
            open: None,
            reconfigure: false,
        })
    }

    /// The stream format.
    pub fn format(&self) -> VideoFormat {
        self.format
    }

    fn options(&self) -> ff::Dictionary<'static> {
        let mut o = ff::Dictionary::new();
        let s = &self.settings;
        match self.kind {
            Kind::X265 => {
                o.set("preset", "ultrafast");
                o.set("tune", "zerolatency");
                o.set("forced-idr", "1");
                o.set(
                    "x265-params",
                    &with_extra(x265_params(s), "SIGHTLINE_X265_PARAMS"),
                );
            }
            Kind::X264 => {
                o.set("preset", "ultrafast");
                o.set("tune", "zerolatency");
                o.set("forced-idr", "1");
                let mut p = "scenecut=0:bframes=0:rc-lookahead=0:sync-lookahead=0".to_string();
                if s.max_slice_bytes > 0 {
                    p.push_str(&format!(":slice-max-size={}", s.max_slice_bytes));
                }
                o.set("x264-params", &with_extra(p, "SIGHTLINE_X264_PARAMS"));
            }
            Kind::Nvenc => {
                o.set("preset", "p1");
                o.set("tune", "ull");
                o.set("rc", "cbr");
                o.set("zerolatency", "1");
                o.set("delay", "0");
                o.set("forced-idr", "1");
                o.set("bf", "0");
            }
            Kind::Vaapi => {
                o.set("rc_mode", "CBR");
                o.set("async_depth", "1");
            }
        }
        o
    }

    fn open_for(&mut self, width: u32, height: u32) -> Result<Opened, EncodeError> {
        let name = self.name;
        let codec = ff::encoder::find_by_name(name)
            .ok_or_else(|| init_err(name, "not compiled into this libavcodec"))?;
        let mut enc = ff::codec::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(|e| init_err(name, e))?;
        let s = self.settings;
        let fps = s.fps.round().max(1.0) as i32;
        enc.set_width(width);
        enc.set_height(height);
        enc.set_format(self.pixel);
        enc.set_time_base(ff::Rational(1, fps));
        enc.set_frame_rate(Some(ff::Rational(fps, 1)));
        enc.set_bit_rate(s.bitrate_bps as usize);
        enc.set_max_bit_rate(s.bitrate_bps as usize);
        enc.set_max_b_frames(0);
        // x264's "infinite" keyframe interval; the others take it as "very long".
        enc.set_gop(1 << 30);
        enc.set_colorspace(match self.format.matrix {
            ColourMatrix::Bt601 => ff::color::Space::BT470BG,
            ColourMatrix::Bt709 => ff::color::Space::BT709,
            ColourMatrix::Bt2020Ncl => ff::color::Space::BT2020NCL,
            ColourMatrix::Identity => ff::color::Space::RGB,
        });
        enc.set_color_range(match self.format.range {
            ColourRange::Limited => ff::color::Range::MPEG,
            ColourRange::Full => ff::color::Range::JPEG,
        });
        enc.set_color_primaries(match self.format.primaries {
            ColourPrimaries::Bt709 => ff::color::Primaries::BT709,
            ColourPrimaries::Bt2020 => ff::color::Primaries::BT2020,
            ColourPrimaries::DisplayP3 => ff::color::Primaries::SMPTE432,
        });
        enc.set_color_transfer_characteristic(match self.format.transfer {
            TransferFunction::Bt709 => ff::color::TransferCharacteristic::BT709,
            TransferFunction::Srgb => ff::color::TransferCharacteristic::IEC61966_2_1,
            TransferFunction::Pq => ff::color::TransferCharacteristic::SMPTE2084,
            TransferFunction::Hlg => ff::color::TransferCharacteristic::ARIB_STD_B67,
        });
        if self.kind == Kind::X264 {
            // Sliced threads: every thread works on the same frame, so threads add no frames
            // of latency (frame threads would).
            let mut t = ff::codec::threading::Config::kind(ff::codec::threading::Type::Slice);
            t.count = s.threads.max(1) as usize;
            enc.set_threading(t);
        }
        // SAFETY: the pointer is the valid, not yet opened codec context owned by `enc`; these
        // are plain integer fields that avcodec_open2 reads.
        let ctx = unsafe { enc.as_mut_ptr() };
        // SAFETY: as above.
        unsafe {
            (*ctx).rc_buffer_size = (s.bitrate_bps as f32 / s.fps.max(1.0)) as i32;
            (*ctx).flags |= ffi::AV_CODEC_FLAG_LOW_DELAY as i32;
        }
        let vaapi = if self.kind == Kind::Vaapi {
            let sw = if self.format.bit_depth > 8 {
                ffi::AVPixelFormat::AV_PIX_FMT_P010LE
            } else {
                ffi::AVPixelFormat::AV_PIX_FMT_NV12
            };
            let v = Vaapi::new(width, height, sw).map_err(|e| init_err(name, e))?;
            // SAFETY: as above; the context takes its own reference to the frames context.
            unsafe {
                (*ctx).pix_fmt = ffi::AVPixelFormat::AV_PIX_FMT_VAAPI;
                (*ctx).hw_frames_ctx = ffi::av_buffer_ref(v.frames);
            }
            Some(v)
        } else {
            None
        };
        let encoder = enc
            .open_with(self.options())
            .map_err(|e| init_err(name, explain_open_error(self.kind, &e)))?;
        Ok(Opened {
            encoder,
            frame: ff::frame::Video::new(self.pixel, width, height),
            width,
            height,
            pts: 0,
            vaapi,
        })
    }

    fn encode_planes(
        &mut self,
        width: u32,
        height: u32,
        fill: impl FnOnce(&mut ff::frame::Video),
        force_keyframe: bool,
    ) -> Result<Option<EncodedFrame>, EncodeError> {
        let name = self.name;
        let size_changed = self
            .open
            .as_ref()
            .is_some_and(|o| (o.width, o.height) != (width, height));
        let mut force = force_keyframe;
        if self.open.is_none() || size_changed || self.reconfigure {
            // New size or bitrate: reopen and start with a keyframe (not every backend takes a
            // new bitrate mid-stream through this API).
            self.open = None;
            self.reconfigure = false;
            self.open = Some(self.open_for(width, height)?);
            force = true;
        }
        let Some(o) = self.open.as_mut() else {
            return Ok(None);
        };
        fill(&mut o.frame);
        o.frame.set_pts(Some(o.pts));
        o.pts += 1;
        o.frame.set_kind(if force {
            ff::picture::Type::I
        } else {
            ff::picture::Type::None
        });
        let sent = match &o.vaapi {
            Some(v) => v.upload(&o.frame).and_then(|hw| {
                // SAFETY: `hw` is a valid frame owned here; the encoder's context is open.
                let r = unsafe { ffi::avcodec_send_frame(o.encoder.as_mut_ptr(), hw.0) };
                if r < 0 {
                    Err(ff::Error::from(r).to_string())
                } else {
                    Ok(())
                }
            }),
            None => o.encoder.send_frame(&o.frame).map_err(|e| e.to_string()),
        };
        sent.map_err(|e| frame_err(name, e))?;
        let mut data = Vec::new();
        let mut keyframe = false;
        let mut packet = ff::Packet::empty();
        loop {
            match o.encoder.receive_packet(&mut packet) {
                Ok(()) => {
                    keyframe |= packet.is_key();
                    if let Some(d) = packet.data() {
                        data.extend_from_slice(d);
                    }
                }
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => break,
                Err(ff::Error::Eof) => break,
                Err(e) => return Err(frame_err(name, e)),
            }
        }
        if data.is_empty() {
            return Ok(None);
        }
        Ok(Some(EncodedFrame { data, keyframe }))
    }
}

/// x265 settings for interactive use on few cores (see docs/benchmarks.md for the figures
/// behind them): one frame thread (frame threads add a frame of latency each), wavefront
/// parallelism across the pool instead, no look-ahead or scene cuts, keyframes on request.
fn x265_params(s: &EncoderSettings) -> String {
    let mut p = vec![
        "log-level=error".to_string(),
        "keyint=-1".into(),
        "min-keyint=1".into(),
        "scenecut=0".into(),
        "bframes=0".into(),
        "rc-lookahead=0".into(),
        "frame-threads=1".into(),
        "wpp=1".into(),
        "repeat-headers=1".into(),
        "aud=0".into(),
        "info=0".into(),
    ];
    if s.threads > 0 {
        p.push(format!("pools={}", s.threads));
    }
    p.join(":")
}

/// `params` with the `key=value:…` list in the environment variable `var` appended (later
/// settings win): a tuning knob for experiments and benchmarks, e.g.
/// `SIGHTLINE_X265_PARAMS=ctu=16:rd=1`.
fn with_extra(params: String, var: &str) -> String {
    match std::env::var(var) {
        Ok(extra) if !extra.trim().is_empty() => format!("{params}:{}", extra.trim()),
        _ => params,
    }
}

fn explain_open_error(kind: Kind, e: &ff::Error) -> String {
    let hint = match kind {
        Kind::Nvenc => match ["libcuda.so.1", "libnvidia-encode.so.1"]
            .into_iter()
            .find(|lib| !loadable(lib))
        {
            Some(lib) => format!(" ({lib} cannot be loaded: no NVIDIA driver)"),
            None => " (NVIDIA driver present: no NVENC-capable GPU, or it is busy)".into(),
        },
        Kind::Vaapi => " (VA-API needs a GPU driver with an HEVC encode entry point)".into(),
        _ => String::new(),
    };
    format!("cannot open the encoder: {e}{hint}")
}

/// Whether the dynamic library `name` can be loaded (what FFmpeg does for NVENC).
fn loadable(name: &str) -> bool {
    let Ok(c) = CString::new(name) else {
        return false;
    };
    // SAFETY: dlopen with a valid C string; the handle is closed at once. RTLD_LAZY resolves
    // nothing eagerly, and the driver libraries have no constructors that matter here.
    unsafe {
        let h = libc::dlopen(c.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL);
        if h.is_null() {
            return false;
        }
        libc::dlclose(h);
    }
    true
}

impl VideoEncoder for FfmpegEncoder {
    fn caps(&self) -> EncoderCaps {
        EncoderCaps {
            codec: self.format.codec,
            bit_depths: if self.format.bit_depth > 8 {
                BitDepths::TEN
            } else {
                BitDepths::EIGHT
            },
            chroma: match self.format.chroma {
                Chroma::Yuv420 => ChromaFormats::YUV420,
                Chroma::Yuv444 => ChromaFormats::YUV444,
            },
            reference_invalidation: false,
            name: self.name,
        }
    }

    fn encode(
        &mut self,
        picture: &I420,
        force_keyframe: bool,
    ) -> Result<Option<EncodedFrame>, EncodeError> {
        self.encode_frame(PictureRef::I420(picture), force_keyframe)
    }

    fn encode_frame(
        &mut self,
        picture: PictureRef<'_>,
        force_keyframe: bool,
    ) -> Result<Option<EncodedFrame>, EncodeError> {
        let unsupported = |detail: String| EncodeError::Unsupported {
            backend: self.name,
            detail,
        };
        match picture {
            PictureRef::I420(p) => {
                if self.format.bit_depth != 8 {
                    return Err(unsupported("an 8-bit picture for a 10-bit stream".into()));
                }
                let pixel = self.pixel;
                self.encode_planes(
                    p.width,
                    p.height,
                    |f| fill_8bit(f, pixel, p),
                    force_keyframe,
                )
            }
            PictureRef::Yuv10(p) => {
                if self.format.bit_depth == 8 || p.chroma != self.format.chroma {
                    return Err(unsupported(format!(
                        "a 10-bit {:?} picture for a {}",
                        p.chroma,
                        self.format.profile_name()
                    )));
                }
                let pixel = self.pixel;
                self.encode_planes(
                    p.width,
                    p.height,
                    |f| fill_10bit(f, pixel, p),
                    force_keyframe,
                )
            }
        }
    }

    fn set_bitrate(&mut self, bitrate_bps: u32) {
        if bitrate_bps != self.settings.bitrate_bps {
            self.settings.bitrate_bps = bitrate_bps;
            self.reconfigure = true;
        }
    }
}

/// Copies `rows` rows of `row_bytes` from `src` (rows `src_stride` apart) into `dst`.
fn copy_rows(dst: &mut [u8], dst_stride: usize, src: &[u8], src_stride: usize, row_bytes: usize) {
    for (d, s) in dst.chunks_mut(dst_stride).zip(src.chunks(src_stride)) {
        d[..row_bytes].copy_from_slice(&s[..row_bytes]);
    }
}

fn fill_8bit(f: &mut ff::frame::Video, pixel: ff::format::Pixel, p: &I420) {
    let (w, h) = (p.width as usize, p.height as usize);
    let ys = f.stride(0);
    copy_rows(f.data_mut(0), ys, &p.y, p.y_stride, w);
    if pixel == ff::format::Pixel::NV12 {
        let s = f.stride(1);
        let uv = f.data_mut(1);
        for r in 0..h / 2 {
            let row = &mut uv[r * s..r * s + w];
            for (i, pair) in row.chunks_exact_mut(2).enumerate() {
                pair[0] = p.u[r * p.uv_stride + i];
                pair[1] = p.v[r * p.uv_stride + i];
            }
        }
        return;
    }
    for (plane, src) in [(1, &p.u), (2, &p.v)] {
        let s = f.stride(plane);
        copy_rows(f.data_mut(plane), s, src, p.uv_stride, w / 2);
    }
}

fn fill_10bit(f: &mut ff::frame::Video, pixel: ff::format::Pixel, p: &Yuv10) {
    use ff::format::Pixel;
    let (w, h) = (p.width as usize, p.height as usize);
    let (cw, ch) = p.chroma_size();
    // P010 and the 16-bit formats keep the 10 bits at the top of each sample.
    let shift = if matches!(pixel, Pixel::P010LE | Pixel::YUV444P16LE) {
        6
    } else {
        0
    };
    let put = |dst: &mut [u8],
               stride: usize,
               src: &[u16],
               src_stride: usize,
               cols: usize,
               rows: usize| {
        for r in 0..rows {
            let d = &mut dst[r * stride..r * stride + cols * 2];
            for (o, s) in d
                .chunks_exact_mut(2)
                .zip(&src[r * src_stride..r * src_stride + cols])
            {
                o.copy_from_slice(&(s << shift).to_le_bytes());
            }
        }
    };
    let ys = f.stride(0);
    put(f.data_mut(0), ys, &p.y, p.y_stride, w, h);
    if pixel == Pixel::P010LE {
        let s = f.stride(1);
        let uv = f.data_mut(1);
        for r in 0..ch {
            let row = &mut uv[r * s..r * s + cw * 4];
            for (i, px) in row.chunks_exact_mut(4).enumerate() {
                px[..2].copy_from_slice(&(p.u[r * p.uv_stride + i] << 6).to_le_bytes());
                px[2..].copy_from_slice(&(p.v[r * p.uv_stride + i] << 6).to_le_bytes());
            }
        }
        return;
    }
    for (plane, src) in [(1, &p.u), (2, &p.v)] {
        let s = f.stride(plane);
        put(f.data_mut(plane), s, src, p.uv_stride, cw, ch);
    }
}

/// A VA-API device and a pool of GPU surfaces the pictures are uploaded to.
struct Vaapi {
    device: *mut ffi::AVBufferRef,
    frames: *mut ffi::AVBufferRef,
}

// SAFETY: the buffers are reference-counted FFmpeg objects used only by the thread that owns the
// encoder (the pipeline thread); nothing else holds these pointers.
unsafe impl Send for Vaapi {}

/// A hardware frame owned by us, freed on drop.
struct HwFrame(*mut ffi::AVFrame);

impl Drop for HwFrame {
    fn drop(&mut self) {
        // SAFETY: the frame was allocated by av_frame_alloc and is freed exactly once.
        unsafe { ffi::av_frame_free(&mut self.0) }
    }
}

impl Vaapi {
    /// Opens the default VA-API device (`SIGHTLINE_VAAPI_DEVICE` or /dev/dri/renderD128) and a
    /// pool of `sw`-format surfaces.
    fn new(width: u32, height: u32, sw: ffi::AVPixelFormat) -> Result<Vaapi, String> {
        let node = std::env::var("SIGHTLINE_VAAPI_DEVICE")
            .unwrap_or_else(|_| "/dev/dri/renderD128".into());
        if !std::path::Path::new(&node).exists() {
            return Err(format!("no VA-API render node ({node} does not exist)"));
        }
        let c_node = CString::new(node.clone()).map_err(|e| e.to_string())?;
        let mut device = ptr::null_mut();
        // SAFETY: plain FFmpeg calls with valid out-pointers; every failure path frees what was
        // created (the `Vaapi` value's Drop frees both buffers once it exists).
        unsafe {
            let r = ffi::av_hwdevice_ctx_create(
                &mut device,
                ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_VAAPI,
                c_node.as_ptr(),
                ptr::null_mut(),
                0,
            );
            if r < 0 {
                return Err(format!(
                    "cannot open VA-API device {node}: {}",
                    ff::Error::from(r)
                ));
            }
            let frames = ffi::av_hwframe_ctx_alloc(device);
            let v = Vaapi { device, frames };
            if frames.is_null() {
                return Err("cannot allocate VA-API frames".into());
            }
            let fc = (*frames).data as *mut ffi::AVHWFramesContext;
            (*fc).format = ffi::AVPixelFormat::AV_PIX_FMT_VAAPI;
            (*fc).sw_format = sw;
            (*fc).width = width as i32;
            (*fc).height = height as i32;
            (*fc).initial_pool_size = 4;
            let r = ffi::av_hwframe_ctx_init(frames);
            if r < 0 {
                return Err(format!("VA-API surfaces: {}", ff::Error::from(r)));
            }
            Ok(v)
        }
    }

    fn upload(&self, sw: &ff::frame::Video) -> Result<HwFrame, String> {
        // SAFETY: `frames` is an initialised frames context; `hw` is freed by HwFrame's drop;
        // `sw` is a valid software frame of the pool's size and format.
        unsafe {
            let hw = HwFrame(ffi::av_frame_alloc());
            if hw.0.is_null() {
                return Err("out of memory".into());
            }
            let r = ffi::av_hwframe_get_buffer(self.frames, hw.0, 0);
            if r < 0 {
                return Err(format!("no VA-API surface: {}", ff::Error::from(r)));
            }
            let r = ffi::av_hwframe_transfer_data(hw.0, sw.as_ptr(), 0);
            if r < 0 {
                return Err(format!("upload to VA-API: {}", ff::Error::from(r)));
            }
            (*hw.0).pts = (*sw.as_ptr()).pts;
            (*hw.0).pict_type = (*sw.as_ptr()).pict_type;
            Ok(hw)
        }
    }
}

impl Drop for Vaapi {
    fn drop(&mut self) {
        // SAFETY: both references were created in `new` and are released exactly once.
        unsafe {
            ffi::av_buffer_unref(&mut self.frames);
            ffi::av_buffer_unref(&mut self.device);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::format::VideoFormat;
    use sightline_protocol::msg::{ColourRange, VideoCodec};

    fn ten(codec: VideoCodec, chroma: Chroma) -> VideoFormat {
        VideoFormat {
            codec,
            bit_depth: 10,
            chroma,
            range: ColourRange::Full,
            ..VideoFormat::H264_8BIT
        }
    }

    fn settings() -> EncoderSettings {
        EncoderSettings {
            bitrate_bps: 4_000_000,
            threads: 2,
            ..EncoderSettings::default()
        }
    }

    #[test]
    fn software_encoders_produce_keyframes_on_request_in_10_bit() {
        for (name, codec) in [("libx265", VideoCodec::Hevc), ("libx264", VideoCodec::H264)] {
            for chroma in [Chroma::Yuv420, Chroma::Yuv444] {
                let mut e = FfmpegEncoder::new(name, ten(codec, chroma), settings()).unwrap();
                let mut p = Yuv10::new(256, 128, chroma);
                let first = e
                    .encode_frame(PictureRef::Yuv10(&p), false)
                    .unwrap()
                    .unwrap();
                assert!(first.keyframe, "{name}: the stream starts with a keyframe");
                p.y.iter_mut()
                    .enumerate()
                    .for_each(|(i, s)| *s = (i % 1024) as u16);
                let next = e
                    .encode_frame(PictureRef::Yuv10(&p), false)
                    .unwrap()
                    .unwrap();
                assert!(!next.keyframe, "{name}: no keyframe unless asked");
                let key = e
                    .encode_frame(PictureRef::Yuv10(&p), true)
                    .unwrap()
                    .unwrap();
                assert!(key.keyframe, "{name} {chroma:?}: keyframe on request");
                // Annex B with parameter sets in the keyframe (HEVC VPS = NAL type 32; H.264
                // SPS = 7).
                assert!(
                    key.data.starts_with(&[0, 0, 1]) || key.data.starts_with(&[0, 0, 0, 1]),
                    "{name}: Annex B"
                );
                let has_headers = key.data.windows(4).any(|w| {
                    w[..3] == [0, 0, 1]
                        && match codec {
                            VideoCodec::Hevc => (w[3] >> 1) & 0x3F == 32,
                            _ => w[3] & 0x1F == 7,
                        }
                });
                assert!(
                    has_headers,
                    "{name}: parameter sets repeated with the keyframe"
                );
            }
        }
    }

    #[test]
    fn wrong_pictures_and_unknown_encoders_are_errors() {
        assert!(FfmpegEncoder::new(
            "no_such_encoder",
            ten(VideoCodec::Hevc, Chroma::Yuv420),
            settings()
        )
        .is_err());
        let mut e =
            FfmpegEncoder::new("libx265", ten(VideoCodec::Hevc, Chroma::Yuv420), settings())
                .unwrap();
        let i420 = I420::new(64, 64);
        assert!(matches!(
            e.encode_frame(PictureRef::I420(&i420), false),
            Err(EncodeError::Unsupported { .. })
        ));
        let p444 = Yuv10::new(64, 64, Chroma::Yuv444);
        assert!(e.encode_frame(PictureRef::Yuv10(&p444), false).is_err());
    }
}
