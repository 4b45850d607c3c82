//! The audio thread: source → channel remap → frames → encoder → packets for every session.
//!
//! Encoded once, fanned out through a broadcast channel like video; each session sends them on
//! its own task. A source that fails (sound server restarted, device unplugged) is reopened
//! every two seconds; media time keeps counting so viewers see a gap, not a new stream.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_protocol::audio::layout::ChannelMap;
use sightline_protocol::msg::{AudioConfig, AudioPacket};
use sightline_protocol::time::{HostMicros, MediaTime, WireClock};
use tokio::sync::broadcast;
use tracing::{info, warn};

use super::encode::{self, AudioEncoder};
use super::{AudioError, AudioSettings, AudioSource};

/// Opens (and reopens) the audio source.
pub type SourceFactory = Box<dyn FnMut() -> Result<Box<dyn AudioSource>, AudioError> + Send>;

/// Counters of the audio thread.
#[derive(Debug, Default)]
pub struct AudioCounters {
    /// Packets produced.
    pub packets: AtomicU64,
    /// Payload bytes produced.
    pub bytes: AtomicU64,
    /// Total encode time, µs.
    pub encode_us: AtomicU64,
    /// Frames encoded.
    pub frames: AtomicU64,
    /// Times the source failed and was reopened.
    pub reopens: AtomicU64,
    /// Set to stop the audio thread (it closes the source).
    stop: AtomicBool,
}

/// The running audio pipeline: its configuration and its packets.
#[derive(Debug, Clone)]
pub struct AudioFeed {
    config: AudioConfig,
    packets: broadcast::Sender<Arc<AudioPacket>>,
    counters: Arc<AudioCounters>,
    describe: String,
}

impl AudioFeed {
    /// What every session announces before its first packet.
    pub fn config(&self) -> &AudioConfig {
        &self.config
    }
    /// A receiver of packets from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AudioPacket>> {
        self.packets.subscribe()
    }
    /// Counters.
    pub fn counters(&self) -> &AudioCounters {
        &self.counters
    }
    /// The source, codec and layout, for the log.
    pub fn describe(&self) -> &str {
        &self.describe
    }
    /// Stops the audio thread; it closes the source within ~200 ms.
    pub fn stop(&self) {
        self.counters.stop.store(true, Ordering::Relaxed);
    }
}

/// Opens the source once (so a missing device is reported at start), then runs the audio
/// thread.
pub fn start(
    mut open_source: SourceFactory,
    settings: AudioSettings,
    clock: WireClock,
) -> Result<AudioFeed, AudioError> {
    let source = open_source()?;
    let encoder = encode::open(&settings)?;
    let config = encoder.config();
    let (tx, _) = broadcast::channel(2048);
    let counters = Arc::new(AudioCounters::default());
    let describe = format!(
        "{} → {:?} {} {} ms{}",
        source.describe(),
        config.codec,
        config.layout.name(),
        settings.frame_ms,
        match config.codec {
            sightline_protocol::msg::AudioCodec::Opus =>
                format!(" at {} kbit/s", config.bitrate_bps / 1000),
            _ => format!(" ({:.1} Mbit/s)", config.bitrate_bps as f64 / 1e6),
        }
    );
    let feed = AudioFeed {
        config,
        packets: tx.clone(),
        counters: counters.clone(),
        describe,
    };
    std::thread::Builder::new()
        .name("sightline-audio".into())
        .spawn(move || run(source, open_source, encoder, tx, counters, clock))
        .map_err(|e| AudioError::Unavailable(format!("cannot start the audio thread: {e}")))?;
    Ok(feed)
}

/// Cuts remapped samples into encoder frames and stamps them.
struct Framer {
    channels: usize,
    frame: usize,
    pending: Vec<f32>,
    /// Capture time of `pending[0]`.
    pending_at: Option<Instant>,
    media_time: u64,
    sequence: u32,
}

impl Framer {
    fn push(&mut self, samples: &[f32], captured_at: Instant) {
        let queued = (self.pending.len() / self.channels) as u64;
        let expected = self
            .pending_at
            .map(|t| t + Duration::from_micros(queued * 1_000_000 / 48_000));
        self.pending_at = match (self.pending_at, expected) {
            (Some(at), Some(exp)) => {
                // Follow the source's timestamps slowly: they jitter by a millisecond or two,
                // but a capture clock that runs apart from ours must not accumulate.
                let err_us = captured_at.saturating_duration_since(exp).as_micros() as i64
                    - exp.saturating_duration_since(captured_at).as_micros() as i64;
                if err_us.abs() > 50_000 {
                    Some(captured_at - Duration::from_micros(queued * 1_000_000 / 48_000))
                } else if err_us >= 0 {
                    Some(at + Duration::from_micros(err_us as u64 / 16))
                } else {
                    Some(at - Duration::from_micros(err_us.unsigned_abs() / 16))
                }
            }
            _ => Some(captured_at),
        };
        self.pending.extend_from_slice(samples);
    }

    /// The next whole frame with its media time and capture time.
    fn next(&mut self) -> Option<(Vec<f32>, u64, Instant)> {
        let n = self.frame * self.channels;
        if self.pending.len() < n {
            return None;
        }
        let frame: Vec<f32> = self.pending.drain(..n).collect();
        let at = self.pending_at?;
        let mt = self.media_time;
        self.media_time += self.frame as u64;
        self.pending_at = Some(at + Duration::from_micros(self.frame as u64 * 1_000_000 / 48_000));
        Some((frame, mt, at))
    }
}

fn run(
    mut source: Box<dyn AudioSource>,
    mut open_source: SourceFactory,
    mut encoder: Box<dyn AudioEncoder>,
    tx: broadcast::Sender<Arc<AudioPacket>>,
    counters: Arc<AudioCounters>,
    clock: WireClock,
) {
    let config = encoder.config();
    let channels = encoder.speakers().len();
    let mut framer = Framer {
        channels,
        frame: encoder.frame_samples(),
        pending: Vec::new(),
        pending_at: None,
        media_time: 0,
        sequence: 0,
    };
    let mut remapped = Vec::new();
    loop {
        let map = match ChannelMap::new(source.speakers(), encoder.speakers()) {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, source = %source.describe(), "audio source cannot feed the encoder");
                return;
            }
        };
        let failure = loop {
            if counters.stop.load(Ordering::Relaxed) {
                return;
            }
            match source.next_block(Duration::from_millis(200)) {
                Ok(Some(block)) => {
                    remapped.clear();
                    map.apply(&block.samples, &mut remapped);
                    framer.push(&remapped, block.captured_at);
                    while let Some((frame, media_time, at)) = framer.next() {
                        let t0 = Instant::now();
                        let coded = match encoder.encode(&frame) {
                            Ok(c) => c,
                            // libopus fails only on bad arguments: nothing to retry.
                            Err(e) => {
                                warn!(error = %e, "audio encoder failed; audio stops");
                                return;
                            }
                        };
                        counters
                            .encode_us
                            .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
                        counters.frames.fetch_add(1, Ordering::Relaxed);
                        for c in coded {
                            let capture =
                                at + Duration::from_micros(c.offset as u64 * 1_000_000 / 48_000);
                            counters.packets.fetch_add(1, Ordering::Relaxed);
                            counters
                                .bytes
                                .fetch_add(c.payload.len() as u64, Ordering::Relaxed);
                            let pkt = AudioPacket {
                                sequence: framer.sequence,
                                media_time: MediaTime::audio(media_time + c.offset as u64),
                                layout: config.layout,
                                codec: config.codec,
                                capture_us: HostMicros(clock.micros(capture)),
                                payload: c.payload,
                            };
                            framer.sequence = framer.sequence.wrapping_add(1);
                            // No receivers (no session) is fine: the packet is dropped.
                            let _ = tx.send(Arc::new(pkt));
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => break e,
            }
        };
        warn!(error = %failure, "audio capture failed; reopening in 2 s");
        counters.reopens.fetch_add(1, Ordering::Relaxed);
        loop {
            std::thread::sleep(Duration::from_secs(2));
            if counters.stop.load(Ordering::Relaxed) {
                return;
            }
            match open_source() {
                Ok(s) => {
                    info!(source = %s.describe(), "audio capture reopened");
                    source = s;
                    framer.pending.clear();
                    framer.pending_at = None;
                    break;
                }
                Err(e) => warn!(error = %e, "audio capture still unavailable"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::synthetic::SyntheticAudio;
    use super::super::CodecChoice;
    use super::*;
    use sightline_protocol::audio::layout::ChannelOrder;
    use sightline_protocol::audio::pcm;
    use sightline_protocol::msg::ChannelLayout;

    #[test]
    fn pcm_packets_carry_the_source_remapped_into_the_announced_order() {
        // The source speaks ALSA order; the PCM stream is announced in WAVE order.
        let settings = AudioSettings {
            layout: ChannelLayout::Surround51,
            codec: CodecChoice::Pcm,
            ..AudioSettings::default()
        };
        let clock = WireClock::new(Instant::now(), 1_000_000);
        let feed = start(
            Box::new(|| {
                Ok(Box::new(
                    SyntheticAudio::new(ChannelLayout::Surround51).with_order(ChannelOrder::Alsa),
                ) as Box<dyn AudioSource>)
            }),
            settings,
            clock,
        )
        .unwrap();
        let cfg = feed.config().clone();
        assert_eq!(
            cfg.speakers,
            ChannelOrder::Wave.speakers(ChannelLayout::Surround51)
        );
        let mut rx = feed.subscribe();
        let mut got = Vec::new();
        while got.len() < 40 {
            got.push(rx.blocking_recv().unwrap());
        }
        // Abutting media times, increasing sequence, capture times 1.25 ms apart (60 samples).
        for w in got.windows(2) {
            assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
            assert_eq!(w[1].media_time.ticks(), w[0].media_time.ticks() + 60);
            let dt = w[1].capture_us.0 as i64 - w[0].capture_us.0 as i64;
            assert!((1_200..=1_300).contains(&dt), "{dt}");
        }
        // The reference: the same synthetic source in WAVE order.
        let mut reference = SyntheticAudio::new(ChannelLayout::Surround51).unpaced();
        let mut want = Vec::new();
        while want.len() < got.len() * 60 * 6 + 6 * 240 {
            want.extend(
                reference
                    .next_block(Duration::ZERO)
                    .unwrap()
                    .unwrap()
                    .samples,
            );
        }
        let first = got[0].media_time.ticks() as usize;
        let mut decoded = Vec::new();
        for p in &got {
            pcm::unpack(&p.payload, &mut decoded);
        }
        for (i, v) in decoded.iter().enumerate() {
            let w = pcm::to_i24(want[first * 6 + i]) as f32 / 8_388_608.0;
            assert_eq!(*v, w, "sample {i}");
        }
    }
}
