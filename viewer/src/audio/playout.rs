//! The playout path between the network and the sound card: jitter buffer → decoder (with
//! concealment) → delay/drift adjustment → channel mapping → volume. The network task pushes
//! packets; the device callback renders. Both hold the same `Mutex<Playout>` briefly.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sightline_protocol::audio::jitter::{
    BufferedPacket, JitterBuffer, JitterConfig, JitterStats, Playout as Next, PushOutcome,
};
use sightline_protocol::audio::layout::Speaker;
use sightline_protocol::audio::opus_packet_samples;
use sightline_protocol::audio::sync::AvSync;
use sightline_protocol::msg::{AudioCodec, AudioConfig, AudioPacket};
use sightline_protocol::time::{ClockEstimate, WireClock};

use super::decode::{self, AudioDecoder, DecodeError};
use super::mix::Mixer;
use super::stretch;

/// Latencies kept for the median.
const LATENCY_WINDOW: usize = 400;

/// Counters the playout adds to the jitter buffer's.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PlayoutCounters {
    /// Packets that did not match the configuration or did not decode.
    pub bad_packets: u64,
    /// Device callbacks served.
    pub callbacks: u64,
    /// Samples per channel handed to the device.
    pub rendered_samples: u64,
    /// Gaps between device callbacks longer than 2.5 periods (device-level dropouts).
    pub device_gaps: u64,
}

/// The viewer's audio playout for one stream configuration.
pub struct Playout {
    config: AudioConfig,
    jitter: JitterBuffer<Vec<u8>>,
    decoder: Box<dyn AudioDecoder>,
    mixer: Mixer,
    device_channels: usize,
    /// Output samples ready for the device, interleaved in device order.
    fifo: VecDeque<f32>,
    decoded: Vec<f32>,
    mapped: Vec<f32>,
    volume: f32,
    muted: bool,
    wire: WireClock,
    clock: Option<ClockEstimate>,
    /// Capture → played latencies (µs) of recent packets.
    latencies: VecDeque<u64>,
    device_delay: Duration,
    sync: AvSync,
    video_latency_us: u64,
    last_sync: Option<Instant>,
    last_callback: Option<Instant>,
    /// Insert (+) / drop (−) samples asked for by the jitter buffer and not applied yet.
    owed: i32,
    counters: PlayoutCounters,
}

impl std::fmt::Debug for Playout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Playout")
            .field("config", &self.config)
            .field("device_channels", &self.device_channels)
            .finish_non_exhaustive()
    }
}

impl Playout {
    /// A playout for `config`, rendering to a device whose channels are `device` (in the
    /// device's order), on the viewer wire clock `wire`.
    pub fn new(
        config: &AudioConfig,
        device: &[Speaker],
        wire: WireClock,
    ) -> Result<Playout, DecodeError> {
        let decoder = decode::open(config)?;
        let mixer = Mixer::new(&config.speakers, device);
        let frame = match config.codec {
            AudioCodec::Opus => config.frame_samples as u32,
            // PCM packets are short; conceal in 5 ms steps like Opus.
            AudioCodec::Pcm24 => 240,
        };
        Ok(Playout {
            config: config.clone(),
            jitter: JitterBuffer::new(JitterConfig {
                frame_samples: frame,
                ..JitterConfig::default()
            }),
            decoder,
            mixer,
            device_channels: device.len(),
            fifo: VecDeque::new(),
            decoded: Vec::new(),
            mapped: Vec::new(),
            volume: 1.0,
            muted: false,
            wire,
            clock: None,
            latencies: VecDeque::new(),
            device_delay: Duration::ZERO,
            sync: AvSync::new(),
            video_latency_us: 0,
            last_sync: None,
            last_callback: None,
            owed: 0,
            counters: PlayoutCounters::default(),
        })
    }

    // --- getters ---

    /// The stream configuration.
    pub fn config(&self) -> &AudioConfig {
        &self.config
    }
    /// Channels rendered.
    pub fn device_channels(&self) -> usize {
        self.device_channels
    }
    /// Jitter buffer figures.
    pub fn jitter_stats(&self) -> JitterStats {
        self.jitter.stats()
    }
    /// Playout counters.
    pub fn counters(&self) -> PlayoutCounters {
        self.counters
    }
    /// Median capture → played latency over recent packets, µs.
    pub fn latency_p50_us(&self) -> Option<u64> {
        if self.latencies.is_empty() {
            return None;
        }
        let mut v: Vec<u64> = self.latencies.iter().copied().collect();
        v.sort_unstable();
        Some(v[v.len() / 2])
    }
    /// The device's own output latency, as it reports it.
    pub fn device_delay(&self) -> Duration {
        self.device_delay
    }
    /// Audio latency minus video latency at the last A/V update, µs (positive: sound late).
    pub fn av_offset_us(&self) -> Option<i64> {
        (self.video_latency_us > 0).then(|| self.sync.offset_us())
    }
    /// Audio held back to meet the picture.
    pub fn av_hold_back(&self) -> Duration {
        self.sync.extra_delay()
    }
    /// Volume (1.0 = unchanged) and mute.
    pub fn volume(&self) -> (f32, bool) {
        (self.volume, self.muted)
    }

    // --- mutators ---

    /// Sets the volume (0.0–4.0) and mute.
    pub fn set_volume(&mut self, volume: f32, muted: bool) {
        self.volume = if volume.is_finite() {
            volume.clamp(0.0, 4.0)
        } else {
            1.0
        };
        self.muted = muted;
    }

    /// The newest clock estimate (for latency accounting).
    pub fn set_clock(&mut self, c: Option<ClockEstimate>) {
        self.clock = c;
    }

    /// The video's capture → presented latency (median, µs; 0: unknown). Audio is held back to
    /// meet a later picture.
    pub fn set_video_latency(&mut self, us: u64) {
        self.video_latency_us = us;
    }

    /// A packet arrived at `now`.
    pub fn push(&mut self, now: Instant, p: AudioPacket) -> PushOutcome {
        let samples = match self.packet_samples(&p) {
            Some(n) => n,
            None => {
                self.counters.bad_packets += 1;
                return PushOutcome::Invalid;
            }
        };
        self.jitter.push(
            now,
            BufferedPacket {
                sequence: p.sequence,
                media_time: p.media_time.ticks(),
                samples,
                capture_us: p.capture_us.0,
                payload: p.payload,
            },
        )
    }

    /// Fills `out` (interleaved, device channels) for a device callback at `now`; the device
    /// plays it `device_delay` later.
    pub fn render(&mut self, now: Instant, device_delay: Duration, out: &mut [f32]) {
        self.counters.callbacks += 1;
        self.device_delay = device_delay;
        let ch = self.device_channels.max(1);
        let want = out.len() / ch;
        let period = Duration::from_micros(want as u64 * 1_000_000 / 48_000);
        if self
            .last_callback
            .is_some_and(|t| now.saturating_duration_since(t) > period * 5 / 2)
        {
            self.counters.device_gaps += 1;
        }
        self.last_callback = Some(now);
        self.jitter
            .observe(now, (self.fifo.len() / ch) as u64, want as u64);
        while self.fifo.len() < want * ch {
            let before = self.fifo.len() / ch;
            self.next_block(now, device_delay, before);
        }
        self.apply_owed(now, device_delay);
        // A drop may have taken the output below what the device asked for.
        while self.fifo.len() < want * ch {
            let before = self.fifo.len() / ch;
            self.next_block(now, device_delay, before);
        }
        let gain = if self.muted { 0.0 } else { self.volume };
        for (o, v) in out.iter_mut().zip(self.fifo.drain(..want * ch)) {
            *o = if gain == 1.0 { v } else { v * gain };
        }
        self.counters.rendered_samples += want as u64;
        self.update_sync(now);
    }

    // --- internals ---

    fn packet_samples(&self, p: &AudioPacket) -> Option<u32> {
        if p.layout != self.config.layout || p.codec != self.config.codec {
            return None;
        }
        match p.codec {
            AudioCodec::Opus => opus_packet_samples(&p.payload),
            AudioCodec::Pcm24 => sightline_protocol::audio::pcm::frames_in(
                p.payload.len(),
                self.config.speakers.len(),
            )
            .filter(|n| *n > 0)
            .map(|n| n as u32),
        }
    }

    /// Decodes (or conceals) the next block into the FIFO.
    fn next_block(&mut self, now: Instant, device_delay: Duration, queued: usize) {
        self.decoded.clear();
        let dch = self.decoder.channels();
        let mut adjust = 0;
        match self.jitter.pull(now) {
            Next::Packet {
                packet,
                adjust: asked,
            } => {
                adjust = asked;
                match self.decoder.decode(&packet.payload, &mut self.decoded) {
                    Ok(n) if n == packet.samples as usize => {}
                    Ok(n) => {
                        // The decoder disagrees about the length: keep the timeline.
                        self.counters.bad_packets += 1;
                        self.decoded.resize(packet.samples as usize * dch, 0.0);
                        let _ = n;
                    }
                    Err(_) => {
                        self.counters.bad_packets += 1;
                        self.decoded.clear();
                        self.decoder
                            .conceal(packet.samples as usize, &mut self.decoded);
                    }
                }
                self.record_latency(now, device_delay, queued, packet.capture_us);
            }
            Next::Conceal { samples, .. } => {
                self.decoder.conceal(samples as usize, &mut self.decoded);
            }
            Next::Silence { samples } => {
                self.decoded
                    .extend(std::iter::repeat_n(0.0, samples as usize * dch));
            }
        }
        self.mapped.clear();
        self.mixer.apply(&self.decoded, &mut self.mapped);
        self.fifo.extend(self.mapped.iter().copied());
        self.owed += adjust;
    }

    /// Applies the owed insert/drop (the jitter buffer's delay and drift control) to the newest
    /// output. A cut of more than a few samples needs room (it picks whole pitch periods): the
    /// next packets are decoded ahead until the output holds four times the cut.
    fn apply_owed(&mut self, now: Instant, device_delay: Duration) {
        if self.owed == 0 {
            return;
        }
        let ch = self.device_channels.max(1);
        let need = 4 * self.owed.unsigned_abs() as usize + 64;
        let mut extra = 0;
        while self.fifo.len() / ch < need && extra < 8 {
            let before = self.fifo.len() / ch;
            self.next_block(now, device_delay, before);
            extra += 1;
        }
        let tail = (self.fifo.len() / ch).min(need.max(960)) * ch;
        let start = self.fifo.len() - tail;
        let mut block: Vec<f32> = self.fifo.drain(start..).collect();
        let applied = -stretch::apply(&mut block, ch, -self.owed);
        self.fifo.extend(block);
        self.jitter.adjusted(self.owed, applied);
        self.owed = 0;
    }

    fn record_latency(
        &mut self,
        now: Instant,
        device_delay: Duration,
        queued: usize,
        capture_us: u64,
    ) {
        let Some(c) = self.clock else {
            return;
        };
        let plays_at = self.wire.micros(now) as i64
            + device_delay.as_micros() as i64
            + (queued as i64 * 1_000_000 / 48_000);
        let captured = capture_us as i64 - c.offset_us;
        let latency = plays_at - captured;
        if latency < 0 {
            return;
        }
        if self.latencies.len() >= LATENCY_WINDOW {
            self.latencies.pop_front();
        }
        self.latencies.push_back(latency as u64);
    }

    fn update_sync(&mut self, now: Instant) {
        if self.video_latency_us == 0
            || self
                .last_sync
                .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_millis(500))
        {
            return;
        }
        self.last_sync = Some(now);
        if let Some(audio) = self.latency_p50_us() {
            let hold = self.sync.update(self.video_latency_us, audio);
            self.jitter.set_extra_delay(hold);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_protocol::audio::layout::ChannelOrder;
    use sightline_protocol::audio::pcm;
    use sightline_protocol::msg::ChannelLayout;
    use sightline_protocol::time::{HostMicros, MediaTime};

    fn pcm_71() -> AudioConfig {
        AudioConfig {
            stream_id: 0,
            layout: ChannelLayout::Surround71,
            codec: AudioCodec::Pcm24,
            sample_rate: 48_000,
            frame_samples: 40,
            bitrate_bps: 9_216_000,
            speakers: ChannelOrder::Wave
                .speakers(ChannelLayout::Surround71)
                .to_vec(),
            opus: None,
        }
    }

    /// PCM 7.1 in WAVE order rendered to an ALSA-ordered device: each channel's constant value
    /// lands on its own speaker, bit for bit, after the prefill.
    #[test]
    fn pcm_lands_on_the_right_device_channels() {
        let cfg = pcm_71();
        let device = ChannelOrder::Alsa.speakers(ChannelLayout::Surround71);
        let t0 = Instant::now();
        let mut p = Playout::new(&cfg, device, WireClock::new(t0, 0)).unwrap();
        // Channel i carries the value (i + 1) / 16 in the stream's (WAVE) order.
        let frame: Vec<f32> = (0..40)
            .flat_map(|_| (0..8).map(|c| (c + 1) as f32 / 16.0))
            .collect();
        let mut payload = Vec::new();
        pcm::pack(&frame, &mut payload);
        for seq in 0..60u32 {
            let pkt = AudioPacket {
                sequence: seq,
                media_time: MediaTime::audio(seq as u64 * 40),
                layout: ChannelLayout::Surround71,
                codec: AudioCodec::Pcm24,
                capture_us: HostMicros(0),
                payload: payload.clone(),
            };
            assert_eq!(p.push(t0, pkt), PushOutcome::Accepted);
        }
        let mut out = vec![9.0f32; 240 * 8];
        p.render(t0, Duration::ZERO, &mut out);
        // Started (20 ms prefill is there): the first callback already plays the stream.
        let want: Vec<f32> = device
            .iter()
            .map(|s| {
                let i = cfg.speakers.iter().position(|x| x == s).unwrap();
                (i + 1) as f32 / 16.0
            })
            .collect();
        for f in out.chunks(8) {
            assert_eq!(f, &want[..]);
        }
    }

    #[test]
    fn mismatched_and_malformed_packets_are_refused() {
        let cfg = pcm_71();
        let t0 = Instant::now();
        let mut p = Playout::new(
            &cfg,
            ChannelOrder::Wave.speakers(ChannelLayout::Surround71),
            WireClock::new(t0, 0),
        )
        .unwrap();
        let mut pkt = AudioPacket {
            sequence: 0,
            media_time: MediaTime::audio(0),
            layout: ChannelLayout::Stereo,
            codec: AudioCodec::Pcm24,
            capture_us: HostMicros(0),
            payload: vec![0; 48],
        };
        assert_eq!(p.push(t0, pkt.clone()), PushOutcome::Invalid);
        pkt.layout = ChannelLayout::Surround71;
        pkt.payload = vec![0; 47];
        assert_eq!(p.push(t0, pkt.clone()), PushOutcome::Invalid);
        pkt.payload = vec![];
        assert_eq!(p.push(t0, pkt), PushOutcome::Invalid);
        assert_eq!(p.counters().bad_packets, 3);
        // Rendering with nothing buffered is silence, not a panic.
        let mut out = vec![1.0f32; 100 * 8];
        p.render(t0, Duration::ZERO, &mut out);
        assert!(out.iter().all(|v| *v == 0.0));
    }

    /// A backlog makes the jitter buffer cut whole frames; whatever the device asks for, the
    /// playout fills exactly that, never panics, and the backlog goes.
    #[test]
    fn catching_up_fills_every_request_exactly() {
        let mut cfg = pcm_71();
        cfg.layout = ChannelLayout::Stereo;
        cfg.speakers = ChannelOrder::Wave.speakers(ChannelLayout::Stereo).to_vec();
        cfg.frame_samples = 120;
        let t0 = Instant::now();
        let mut p = Playout::new(&cfg, &cfg.speakers.clone(), WireClock::new(t0, 0)).unwrap();
        let tone: Vec<f32> = (0..120 * 2)
            .map(|i| ((i / 2) as f32 * 0.13).sin() * 0.5)
            .collect();
        let mut payload = Vec::new();
        pcm::pack(&tone, &mut payload);
        let packet = |seq: u32| AudioPacket {
            sequence: seq,
            media_time: MediaTime::audio(seq as u64 * 120),
            layout: ChannelLayout::Stereo,
            codec: AudioCodec::Pcm24,
            capture_us: HostMicros(0),
            payload: payload.clone(),
        };
        let mut seq = 0u32;
        let mut played = 0u64;
        let sizes = [240usize, 1, 7, 441, 960, 120, 33];
        let mut k = 0;
        // 8 s of simulated time; packets arrive on time, plus a 150 ms burst at 3 s.
        while played < 8 * 48_000 {
            let now = t0 + Duration::from_micros(played * 1_000_000 / 48_000);
            let due = (played / 120) as u32 + 2 + if played > 3 * 48_000 { 60 } else { 0 };
            while seq < due {
                p.push(now, packet(seq));
                seq += 1;
            }
            let want = sizes[k % sizes.len()];
            k += 1;
            let mut out = vec![0.0f32; want * 2];
            p.render(now, Duration::ZERO, &mut out);
            played += want as u64;
        }
        let j = p.jitter_stats();
        // Most of the burst was cut (what is left is within one 20 ms device request of the
        // target: this device asks for up to 960 samples at a time).
        assert!(j.dropped_samples > 5_000, "{j:?}");
        assert!(j.depth_samples < 48 * 60, "backlog left: {j:?}");
    }

    #[test]
    fn mute_and_volume() {
        let cfg = pcm_71();
        let t0 = Instant::now();
        let mut p = Playout::new(
            &cfg,
            ChannelOrder::Wave.speakers(ChannelLayout::Surround71),
            WireClock::new(t0, 0),
        )
        .unwrap();
        let frame = vec![0.5f32; 40 * 8];
        let mut payload = Vec::new();
        pcm::pack(&frame, &mut payload);
        for seq in 0..60u32 {
            p.push(
                t0,
                AudioPacket {
                    sequence: seq,
                    media_time: MediaTime::audio(seq as u64 * 40),
                    layout: ChannelLayout::Surround71,
                    codec: AudioCodec::Pcm24,
                    capture_us: HostMicros(0),
                    payload: payload.clone(),
                },
            );
        }
        let mut out = vec![0.0f32; 40 * 8];
        p.set_volume(0.5, false);
        p.render(t0, Duration::ZERO, &mut out);
        assert!(out.iter().all(|v| *v == 0.25));
        p.set_volume(0.5, true);
        p.render(t0, Duration::ZERO, &mut out);
        assert!(out.iter().all(|v| *v == 0.0));
    }
}
