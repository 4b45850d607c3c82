//! HEVC and H.264 (8/10-bit, 4:2:0/4:4:4) with FFmpeg's libavcodec.
//!
//! Slice threads only: HEVC streams from the host use wavefront parallel processing and H.264
//! streams several slices, both of which slice threads decode in parallel within one picture;
//! frame threads would add a frame of delay per thread. `AV_CODEC_FLAG_LOW_DELAY` and streams
//! without B-frames mean every access unit gives its picture back at once.

use std::sync::Once;

use ffmpeg_next as ff;
use sightline_protocol::msg::{BitDepths, ChromaFormats, StreamConfig, VideoCodec, VideoCodecs};

use super::{DecoderError, Picture, VideoDecoder};
use crate::frame::PictureFormat;

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = ff::init();
        ff::util::log::set_level(ff::util::log::Level::Fatal);
    });
}

/// What libavcodec here decodes (`None` when it has neither H.264 nor HEVC).
pub fn capabilities() -> Option<(VideoCodecs, BitDepths, ChromaFormats)> {
    init();
    let mut codecs = VideoCodecs::EMPTY;
    if ff::decoder::find(ff::codec::Id::H264).is_some() {
        codecs = codecs.union(VideoCodecs::H264);
    }
    if ff::decoder::find(ff::codec::Id::HEVC).is_some() {
        codecs = codecs.union(VideoCodecs::HEVC);
    }
    (!codecs.is_empty()).then_some((codecs, BitDepths::ALL, ChromaFormats::ALL))
}

/// An FFmpeg decoder for one codec.
pub struct FfmpegDecoder {
    name: &'static str,
    decoder: ff::decoder::Video,
    frame: ff::frame::Video,
}

impl std::fmt::Debug for FfmpegDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FfmpegDecoder")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl FfmpegDecoder {
    /// A decoder for `cfg`'s codec with two slice threads.
    pub fn new(cfg: &StreamConfig) -> Result<Self, DecoderError> {
        init();
        let (id, name) = match cfg.codec {
            VideoCodec::Hevc => (ff::codec::Id::HEVC, "ffmpeg hevc"),
            VideoCodec::H264 => (ff::codec::Id::H264, "ffmpeg h264"),
            VideoCodec::Av1 => {
                return Err(DecoderError::Unsupported {
                    decoder: "ffmpeg",
                    what: "AV1".into(),
                })
            }
        };
        let codec = ff::decoder::find(id).ok_or_else(|| DecoderError::Unsupported {
            decoder: name,
            what: format!("{:?} (not in this libavcodec)", cfg.codec),
        })?;
        let mut ctx = ff::codec::Context::new_with_codec(codec);
        let mut threads = ff::codec::threading::Config::kind(ff::codec::threading::Type::Slice);
        threads.count = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 4);
        ctx.set_threading(threads);
        ctx.set_flags(ff::codec::Flags::LOW_DELAY);
        let decoder = ctx.decoder().video().map_err(|e| DecoderError::Init {
            decoder: name,
            detail: e.to_string(),
        })?;
        Ok(FfmpegDecoder {
            name,
            decoder,
            frame: ff::frame::Video::empty(),
        })
    }
}

impl VideoDecoder for FfmpegDecoder {
    fn name(&self) -> &'static str {
        self.name
    }

    fn decode(&mut self, data: &[u8]) -> Result<Option<Picture>, DecoderError> {
        let name = self.name;
        let err = |e: ff::Error| DecoderError::Unit {
            decoder: name,
            detail: e.to_string(),
        };
        self.decoder
            .send_packet(&ff::Packet::copy(data))
            .map_err(err)?;
        let mut out = None;
        loop {
            match self.decoder.receive_frame(&mut self.frame) {
                Ok(()) => out = Some(copy_picture(name, &self.frame)?),
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => break,
                Err(ff::Error::Eof) => break,
                Err(e) => return Err(err(e)),
            }
        }
        Ok(out)
    }
}

/// Copies a decoded frame into tight planes.
fn copy_picture(name: &'static str, f: &ff::frame::Video) -> Result<Picture, DecoderError> {
    use ff::format::Pixel;
    let format = match f.format() {
        Pixel::YUV420P | Pixel::YUVJ420P => PictureFormat::I420,
        Pixel::YUV444P | Pixel::YUVJ444P => PictureFormat::I444,
        Pixel::YUV420P10LE => PictureFormat::I420P10,
        Pixel::YUV444P10LE => PictureFormat::I444P10,
        other => {
            return Err(DecoderError::Unsupported {
                decoder: name,
                what: format!("pictures in {other:?}"),
            })
        }
    };
    let (w, h) = (f.width(), f.height());
    let (cw, ch) = format.chroma_size(w, h);
    let bps = format.bytes_per_sample();
    let plane = |i: usize, cols: u32, rows: u32| {
        let (stride, row) = (f.stride(i), cols as usize * bps);
        let data = f.data(i);
        let mut out = Vec::with_capacity(row * rows as usize);
        for r in 0..rows as usize {
            out.extend_from_slice(&data[r * stride..r * stride + row]);
        }
        out
    };
    Ok(Picture {
        width: w,
        height: h,
        format,
        y: plane(0, w, h),
        u: plane(1, cw, ch),
        v: plane(2, cw, ch),
        y_stride: w as usize * bps,
        uv_stride: cw as usize * bps,
    })
}
