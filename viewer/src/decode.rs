//! The decode thread: access units in (in order), decoded pictures out to a [`FrameSink`].
//!
//! After a loss the decoder's references are broken, so pictures are not shown until the next
//! keyframe (the network side asks the host for one); a decoder error does the same.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use sightline_protocol::msg::{ColourMatrix, ColourRange, StreamConfig};
use sightline_protocol::time::WireClock;
use sightline_protocol::video::AccessUnit;
use tracing::{debug, warn};

use crate::decoder::{self, VideoDecoder};
use crate::frame::DecodedFrame;

/// Consecutive units without a picture after which the decoder is restarted at a keyframe.
const SILENT_UNITS_BEFORE_RESET: u32 = 3;

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
                let mut decoder: Option<Box<dyn VideoDecoder>> = None;
                let mut config: Option<StreamConfig> = None;
                let mut waiting_for_key = true;
                let mut silent_units = 0u32;
                while let Ok(msg) = rx.recv() {
                    let au = match msg {
                        DecodeInput::Config(c) => {
                            if decoder::needs_new_decoder(config.as_ref(), &c) {
                                // A new codec, depth or chroma: a new decoder, and nothing to
                                // show until its first keyframe.
                                decoder = None;
                                waiting_for_key = true;
                            }
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
                    if decoder.is_none() {
                        match decoder::open_for(config.as_ref()) {
                            Ok(d) => {
                                debug!(decoder = d.name(), "decoder ready");
                                decoder = Some(d);
                            }
                            Err(e) => {
                                warn!(error = %e, "no decoder for this stream");
                                sink.skipped(au.frame);
                                continue;
                            }
                        }
                    }
                    let Some(dec) = decoder.as_mut() else {
                        continue;
                    };
                    match dec.decode(&au.data) {
                        Ok(Some(p)) => {
                            waiting_for_key = false;
                            silent_units = 0;
                            let now = Instant::now();
                            sink.frame(DecodedFrame {
                                width: p.width,
                                height: p.height,
                                format: p.format,
                                y: p.y,
                                u: p.u,
                                v: p.v,
                                y_stride: p.y_stride,
                                uv_stride: p.uv_stride,
                                matrix,
                                range,
                                frame: au.frame,
                                host_times: au.times,
                                first_packet_us: au.first_packet_us,
                                reassembled_us: au.complete_us,
                                decoded_us: clock.micros(now),
                                decoded_at: now,
                            });
                        }
                        Ok(None) => {
                            // Streams have no B-frames and the decoders run without delay:
                            // every unit gives its picture back. Units that keep giving none
                            // mean a decoder stuck on broken references, which would otherwise
                            // never be noticed (no error, no picture).
                            silent_units += 1;
                            debug!(frame = au.frame, silent_units, "no picture for this unit");
                            if silent_units >= SILENT_UNITS_BEFORE_RESET {
                                warn!(frame = au.frame, "the decoder gives no pictures; restarting it at a keyframe");
                                silent_units = 0;
                                decoder = None;
                                waiting_for_key = true;
                                need.store(true, Ordering::SeqCst);
                            }
                            sink.skipped(au.frame);
                        }
                        Err(e) => {
                            warn!(frame = au.frame, error = %e, "decode failed; restarting the decoder at a keyframe");
                            // A fresh decoder: some keep bad state after an error.
                            decoder = None;
                            silent_units = 0;
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
