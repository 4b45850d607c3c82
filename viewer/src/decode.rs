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

use crate::compose::{Composer, SharedLossless};
use crate::decoder::{self, VideoDecoder};
use crate::frame::DecodedFrame;
use crate::render::planes_complete;
use sightline_protocol::tiles::{Canvas, TileMessage};

/// Consecutive units without a picture after which the decoder is restarted at a keyframe.
const SILENT_UNITS_BEFORE_RESET: u32 = 3;

/// While waiting for a keyframe, every this many skipped units the thread asks (again) for one.
const KEYFRAME_ASK_EVERY: u32 = 30;

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
    /// A tile-stream message (lossless tiles, [`crate::compose`]) and when it arrived (viewer
    /// clock, µs).
    Tiles(sightline_protocol::tiles::TileMessage, u64),
    /// The tile stream broke (a malformed message): show video only until the next reset.
    TilesEnded,
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
    pub fn spawn(sink: Box<dyn FrameSink>, clock: WireClock) -> std::io::Result<Self> {
        Self::spawn_with(sink, clock, SharedLossless::default())
    }

    /// [`DecodeThread::spawn`] that composes lossless tiles when the host sends them,
    /// reporting the proof in `lossless`.
    pub fn spawn_with(
        mut sink: Box<dyn FrameSink>,
        clock: WireClock,
        lossless: SharedLossless,
    ) -> std::io::Result<Self> {
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
                let mut skipped_waiting = 0u32;
                let mut composer: Option<Composer> = None;
                loop {
                    // Tile pictures wait until the queue is drained: a burst of tile messages
                    // (a refinement) costs one composed picture, not one each.
                    let msg = match rx.try_recv() {
                        Ok(m) => m,
                        Err(mpsc::TryRecvError::Empty) => {
                            if let Some(p) = composer.as_mut().and_then(Composer::take_picture) {
                                sink.frame(p);
                            }
                            match rx.recv() {
                                Ok(m) => m,
                                Err(_) => break,
                            }
                        }
                        Err(mpsc::TryRecvError::Disconnected) => break,
                    };
                    let au = match msg {
                        DecodeInput::TilesEnded => {
                            composer = None;
                            lossless
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .active = false;
                            continue;
                        }
                        DecodeInput::Tiles(m, received_us) => {
                            if let TileMessage::Reset(g) = &m {
                                // A new grid starts from black; the same grid keeps its pixels
                                // (all video now) until the video repaints them.
                                let keep = composer.as_ref().is_some_and(|c| c.canvas().grid() == *g);
                                if !keep {
                                    composer = Some(Composer::new(Canvas::new(*g), lossless.clone()));
                                }
                            }
                            let Some(c) = composer.as_mut() else {
                                debug!("tile message before the grid; ignored");
                                continue;
                            };
                            match c.tiles(&m, received_us) {
                                Ok(_) => {}
                                Err(e) => {
                                    warn!(error = %e, "bad tile-stream message; showing video only");
                                    composer = None;
                                }
                            }
                            continue;
                        }
                        DecodeInput::Config(c) => {
                            // A decoder opened before any configuration arrived (the control
                            // stream can lag the first keyframe's datagrams) is the baseline
                            // one: keep it when the configuration says baseline too.
                            let running = match (&decoder, config.as_ref()) {
                                (Some(_), None) => Some(decoder::BASELINE),
                                (_, old) => old.map(decoder::DecoderKind::of),
                            };
                            if running != Some(decoder::DecoderKind::of(&c)) {
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
                        // Whatever made us wait (a new decoder, a loss, an error), units that
                        // cannot be shown keep arriving: make sure a keyframe was asked for,
                        // or the picture would stay frozen until the next loss. The network
                        // side rate-limits the requests.
                        if skipped_waiting.is_multiple_of(KEYFRAME_ASK_EVERY) {
                            need.store(true, Ordering::SeqCst);
                        }
                        skipped_waiting += 1;
                        sink.skipped(au.frame);
                        continue;
                    }
                    skipped_waiting = 0;
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
                            let picture = DecodedFrame {
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
                                // A keyframe replaces everything, whatever a list says.
                                damage: if au.keyframe { None } else { au.damage },
                                host_times: au.times,
                                first_packet_us: au.first_packet_us,
                                reassembled_us: au.complete_us,
                                decoded_us: clock.micros(now),
                                decoded_at: now,
                            };
                            match composer.as_mut() {
                                Some(c) if planes_complete(&picture) => sink.frame(c.video(&picture)),
                                _ => sink.frame(picture),
                            }
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

    /// A sender into the thread's queue (the tile-stream reader feeds it directly).
    pub fn sender(&self) -> mpsc::Sender<DecodeInput> {
        self.tx.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openh264::encoder::{Encoder, EncoderConfig};
    use openh264::formats::YUVBuffer;
    use openh264::OpenH264API;
    use sightline_protocol::msg::{Chroma, ColourPrimaries, TransferFunction, VideoCodec};
    use std::time::Duration;

    /// Decoded frame numbers as `Ok`, skipped ones as `Err`.
    struct ChanSink(mpsc::Sender<Result<u32, u32>>);

    impl FrameSink for ChanSink {
        fn frame(&mut self, frame: DecodedFrame) {
            let _ = self.0.send(Ok(frame.frame));
        }
        fn skipped(&mut self, frame: u32) {
            let _ = self.0.send(Err(frame));
        }
    }

    fn config(codec: VideoCodec, bit_depth: u8) -> StreamConfig {
        StreamConfig {
            stream_id: 0,
            codec,
            width: 64,
            height: 64,
            fps_millihz: 60_000,
            bit_depth,
            chroma: Chroma::Yuv420,
            matrix: ColourMatrix::Bt709,
            range: ColourRange::Limited,
            primaries: ColourPrimaries::Bt709,
            transfer: TransferFunction::Bt709,
        }
    }

    /// `n` real H.264 units of a 64×64 picture that changes every frame (the first an IDR).
    fn units(n: u32) -> Vec<AccessUnit> {
        let mut enc = Encoder::with_api_config(OpenH264API::from_source(), EncoderConfig::new())
            .expect("encoder");
        (0..n)
            .map(|i| {
                let mut yuv = vec![128u8; 64 * 64 * 3 / 2];
                for (j, p) in yuv[..64 * 64].iter_mut().enumerate() {
                    *p = ((j as u32 + i * 7) % 200) as u8 + 16;
                }
                let bs = enc
                    .encode(&YUVBuffer::from_vec(yuv, 64, 64))
                    .expect("encode");
                AccessUnit {
                    stream_id: 0,
                    frame: i,
                    keyframe: i == 0,
                    data: bs.to_vec(),
                    times: None,
                    damage: None,
                    first_packet_us: 0,
                    complete_us: 0,
                    recovered_fragments: 0,
                }
            })
            .collect()
    }

    fn next(rx: &mpsc::Receiver<Result<u32, u32>>) -> Result<u32, u32> {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the decode thread reports every unit")
    }

    #[test]
    fn a_configuration_after_the_first_keyframe_keeps_the_running_decoder() {
        let (tx, rx) = mpsc::channel();
        let t = DecodeThread::spawn(Box::new(ChanSink(tx)), WireClock::new(Instant::now(), 0))
            .expect("spawn");
        let mut u = units(3).into_iter();
        // The control stream lagged: the keyframe arrives before the configuration.
        t.send(DecodeInput::Unit(u.next().unwrap()));
        assert_eq!(next(&rx), Ok(0));
        t.send(DecodeInput::Config(config(VideoCodec::H264, 8)));
        t.send(DecodeInput::Unit(u.next().unwrap()));
        assert_eq!(next(&rx), Ok(1), "the baseline decoder goes on");
        t.send(DecodeInput::Unit(u.next().unwrap()));
        assert_eq!(next(&rx), Ok(2));
        assert!(!t.keyframe_needed.load(Ordering::SeqCst));
    }

    #[test]
    fn units_skipped_while_waiting_for_a_keyframe_ask_for_one() {
        let (tx, rx) = mpsc::channel();
        let t = DecodeThread::spawn(Box::new(ChanSink(tx)), WireClock::new(Instant::now(), 0))
            .expect("spawn");
        let mut u = units(3).into_iter();
        t.send(DecodeInput::Config(config(VideoCodec::H264, 8)));
        t.send(DecodeInput::Unit(u.next().unwrap()));
        assert_eq!(next(&rx), Ok(0));
        // A new format: a new decoder that must start at a keyframe. Nothing was lost, so
        // only the decode thread knows one is needed.
        t.send(DecodeInput::Config(config(VideoCodec::Hevc, 10)));
        t.send(DecodeInput::Unit(u.next().unwrap()));
        assert_eq!(next(&rx), Err(1));
        assert!(
            t.keyframe_needed.swap(false, Ordering::SeqCst),
            "a skipped unit asks for a keyframe"
        );
        t.send(DecodeInput::Unit(u.next().unwrap()));
        assert_eq!(next(&rx), Err(2));
        assert!(
            !t.keyframe_needed.load(Ordering::SeqCst),
            "not again for every unit (every {KEYFRAME_ASK_EVERY})"
        );
    }
}
