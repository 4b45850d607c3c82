//! The decode thread: access units in (in order), decoded pictures out to a [`FrameSink`].
//!
//! After a loss the decoder's references are broken, so pictures are not shown until the next
//! keyframe (the network side asks the host for one); a decoder error does the same.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use openh264::OpenH264API;
use sightline_protocol::msg::{ColourMatrix, ColourRange, StreamConfig};
use sightline_protocol::time::WireClock;
use sightline_protocol::video::AccessUnit;
use tracing::{debug, warn};

use crate::frame::DecodedFrame;

/// Where decoded pictures go (the window's slot, a headless stats recorder, a test).
pub trait FrameSink: Send {
    /// A new picture.
    fn frame(&mut self, frame: DecodedFrame);
    /// An access unit was not shown (waiting for a keyframe, or the decoder failed).
    fn skipped(&mut self, _frame: u32) {}
}

/// What the network side sends the decode thread.
#[derive(Debug)]
pub enum DecodeInput {
    /// The stream's format (before its first frame, and on change).
    Config(StreamConfig),
    /// A complete access unit.
    Unit(AccessUnit),
    /// Frames were lost: show nothing until the next keyframe.
    Lost,
}

/// A running decode thread.
#[derive(Debug)]
pub struct DecodeThread {
    tx: mpsc::Sender<DecodeInput>,
    /// Set by the thread when it needs a keyframe (decoder error); the network side clears it
    /// when it asks the host.
    pub keyframe_needed: Arc<AtomicBool>,
}

impl DecodeThread {
    /// Starts the thread; timestamps are taken on `clock` (the viewer wire clock).
    pub fn spawn(mut sink: Box<dyn FrameSink>, clock: WireClock) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<DecodeInput>();
        let keyframe_needed = Arc::new(AtomicBool::new(false));
        let need = keyframe_needed.clone();
        std::thread::Builder::new()
            .name("sightline-decode".into())
            .spawn(move || {
                let mut decoder = match Decoder::with_api_config(
                    OpenH264API::from_source(),
                    openh264::decoder::DecoderConfig::new(),
                ) {
                    Ok(d) => d,
                    Err(e) => {
                        warn!(error = %e, "cannot create the H.264 decoder");
                        return;
                    }
                };
                let mut config: Option<StreamConfig> = None;
                let mut waiting_for_key = true;
                while let Ok(msg) = rx.recv() {
                    let au = match msg {
                        DecodeInput::Config(c) => {
                            config = Some(c);
                            continue;
                        }
                        DecodeInput::Lost => {
                            waiting_for_key = true;
                            continue;
                        }
                        DecodeInput::Unit(au) => au,
                    };
                    if waiting_for_key && !au.keyframe {
                        sink.skipped(au.frame);
                        continue;
                    }
                    let (matrix, range) = config
                        .map(|c| (c.matrix, c.range))
                        .unwrap_or((ColourMatrix::Bt709, ColourRange::Limited));
                    match decoder.decode(&au.data) {
                        Ok(Some(yuv)) => {
                            waiting_for_key = false;
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
                            let now = Instant::now();
                            sink.frame(DecodedFrame {
                                width: w as u32,
                                height: h as u32,
                                format: crate::frame::PictureFormat::I420,
                                y,
                                u,
                                v,
                                y_stride: w,
                                uv_stride: cw,
                                matrix,
                                range,
                                frame: au.frame,
                                // A keyframe replaces everything, whatever a list says.
                                damage: if au.keyframe { None } else { au.damage },
                                host_times: au.times,
                                first_packet_us: au.first_packet_us,
                                reassembled_us: au.complete_us,
                                decoded_us: clock.micros(now),
                                decoded_at: now,
                            });
                        }
                        Ok(None) => debug!(frame = au.frame, "decoder buffered the unit"),
                        Err(e) => {
                            warn!(frame = au.frame, error = %e, "decode failed; waiting for a keyframe");
                            waiting_for_key = true;
                            need.store(true, Ordering::SeqCst);
                            sink.skipped(au.frame);
                        }
                    }
                }
            })?;
        Ok(DecodeThread {
            tx,
            keyframe_needed,
        })
    }

    /// Sends `input` to the thread; false when the thread has ended.
    pub fn send(&self, input: DecodeInput) -> bool {
        self.tx.send(input).is_ok()
    }
}
