//! Audio encoders: Opus multistream surround (libopus through `opus2`) and lossless 24-bit PCM.

use opus2::{Application, Bitrate, MSEncoder, Signal};
use sightline_protocol::audio::layout::{ChannelOrder, Speaker};
use sightline_protocol::audio::pcm;
use sightline_protocol::msg::{
    AudioCodec, AudioConfig, ChannelLayout, OpusMapping, AUDIO_PACKET_OVERHEAD, AUDIO_SAMPLE_RATE,
};

use super::{AudioError, AudioSettings, CodecChoice};

/// One coded packet: where it starts within the frame, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coded {
    /// Offset of its first sample from the start of the frame.
    pub offset: u32,
    /// Samples per channel it holds.
    pub samples: u32,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Turns frames of interleaved float samples into packets.
pub trait AudioEncoder: Send {
    /// What the viewer needs to decode (announced before the first packet).
    fn config(&self) -> AudioConfig;
    /// The channel order the encoder wants its input in.
    fn speakers(&self) -> &[Speaker];
    /// Samples per channel in one input frame.
    fn frame_samples(&self) -> usize;
    /// Codes one frame (exactly `frame_samples() × channels` samples) into one or more packets.
    fn encode(&mut self, frame: &[f32]) -> Result<Vec<Coded>, AudioError>;
}

/// Builds the encoder the settings ask for.
pub fn open(settings: &AudioSettings) -> Result<Box<dyn AudioEncoder>, AudioError> {
    Ok(match settings.codec {
        CodecChoice::Opus => Box::new(OpusEncoder::new(settings)?),
        CodecChoice::Pcm => Box::new(PcmEncoder::new(settings)),
    })
}

/// Opus multistream with libopus' surround analysis (mapping family 1 for 5.1/7.1), the
/// restricted-low-delay application (CELT only: 2.5 ms look-ahead), 5 or 10 ms frames.
pub struct OpusEncoder {
    enc: MSEncoder,
    layout: ChannelLayout,
    speakers: Vec<Speaker>,
    frame: usize,
    bitrate_bps: u32,
    mapping: OpusMapping,
    max_packet: usize,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("layout", &self.layout)
            .field("frame", &self.frame)
            .field("bitrate_bps", &self.bitrate_bps)
            .finish_non_exhaustive()
    }
}

impl OpusEncoder {
    /// An encoder for `settings.layout` at `settings.frame_ms`.
    pub fn new(settings: &AudioSettings) -> Result<Self, AudioError> {
        let layout = settings.layout;
        let family = match layout {
            ChannelLayout::Mono | ChannelLayout::Stereo => 0,
            ChannelLayout::Surround51 | ChannelLayout::Surround71 => 1,
        };
        let err = |what: &str, e: opus2::Error| AudioError::Encoder(format!("{what}: {e}"));
        let s = MSEncoder::new_surround(
            AUDIO_SAMPLE_RATE,
            layout.channels(),
            family,
            Application::LowDelay,
        )
        .map_err(|e| err("creating the surround encoder", e))?;
        let mut enc = s.encoder;
        let bitrate_bps = settings.opus_bitrate_bps();
        enc.set_bitrate(Bitrate::Bits(bitrate_bps as i32))
            .map_err(|e| err("bitrate", e))?;
        // Constrained VBR: packet sizes stay close to the average, so no burst queues behind
        // another; music signal; the input is 24-bit.
        enc.set_vbr(true).map_err(|e| err("vbr", e))?;
        enc.set_vbr_constraint(true)
            .map_err(|e| err("vbr constraint", e))?;
        enc.set_signal(Signal::Music)
            .map_err(|e| err("signal", e))?;
        enc.set_lsb_depth(24).map_err(|e| err("lsb depth", e))?;
        if !matches!(settings.frame_ms, 5 | 10) {
            return Err(AudioError::Encoder(format!(
                "frame length {} ms: Opus low-delay frames here are 5 or 10 ms",
                settings.frame_ms
            )));
        }
        Ok(OpusEncoder {
            enc,
            layout,
            // libopus' surround encoder takes its input in Vorbis order; its decoder puts the
            // channels out in the same order.
            speakers: ChannelOrder::Vorbis.speakers(layout).to_vec(),
            frame: settings.frame_samples() as usize,
            bitrate_bps,
            mapping: OpusMapping {
                streams: s.streams,
                coupled_streams: s.coupled_streams,
                mapping: s.mapping,
            },
            max_packet: settings
                .max_datagram
                .saturating_sub(AUDIO_PACKET_OVERHEAD)
                .max(64),
        })
    }
}

impl AudioEncoder for OpusEncoder {
    fn config(&self) -> AudioConfig {
        AudioConfig {
            stream_id: 0,
            layout: self.layout,
            codec: AudioCodec::Opus,
            sample_rate: AUDIO_SAMPLE_RATE,
            frame_samples: self.frame as u16,
            bitrate_bps: self.bitrate_bps,
            speakers: self.speakers.clone(),
            opus: Some(self.mapping.clone()),
        }
    }

    fn speakers(&self) -> &[Speaker] {
        &self.speakers
    }

    fn frame_samples(&self) -> usize {
        self.frame
    }

    fn encode(&mut self, frame: &[f32]) -> Result<Vec<Coded>, AudioError> {
        let payload = self
            .enc
            .encode_vec_float(frame, self.max_packet)
            .map_err(|e| AudioError::Encoder(format!("encode: {e}")))?;
        Ok(vec![Coded {
            offset: 0,
            samples: self.frame as u32,
            payload,
        }])
    }
}

/// Lossless 24-bit PCM, cut into packets that each fit one datagram.
#[derive(Debug)]
pub struct PcmEncoder {
    layout: ChannelLayout,
    speakers: Vec<Speaker>,
    frame: usize,
    per_packet: usize,
}

impl PcmEncoder {
    /// An encoder for `settings.layout`; frames of `settings.frame_ms`.
    pub fn new(settings: &AudioSettings) -> Self {
        let layout = settings.layout;
        let frame = settings.frame_samples() as usize;
        let channels = layout.channels() as usize;
        let fit = settings.max_datagram.saturating_sub(AUDIO_PACKET_OVERHEAD)
            / (channels * pcm::BYTES_PER_SAMPLE);
        // The largest whole divisor of the frame that fits: packets abut on frame boundaries.
        let per_packet = (1..=frame.min(fit).max(1))
            .rev()
            .find(|n| frame.is_multiple_of(*n))
            .unwrap_or(1);
        PcmEncoder {
            layout,
            speakers: ChannelOrder::Wave.speakers(layout).to_vec(),
            frame,
            per_packet,
        }
    }

    /// Samples per channel in each packet.
    pub fn samples_per_packet(&self) -> usize {
        self.per_packet
    }
}

impl AudioEncoder for PcmEncoder {
    fn config(&self) -> AudioConfig {
        AudioConfig {
            stream_id: 0,
            layout: self.layout,
            codec: AudioCodec::Pcm24,
            sample_rate: AUDIO_SAMPLE_RATE,
            frame_samples: self.per_packet as u16,
            bitrate_bps: AUDIO_SAMPLE_RATE * 24 * self.layout.channels() as u32,
            speakers: self.speakers.clone(),
            opus: None,
        }
    }

    fn speakers(&self) -> &[Speaker] {
        &self.speakers
    }

    fn frame_samples(&self) -> usize {
        self.frame
    }

    fn encode(&mut self, frame: &[f32]) -> Result<Vec<Coded>, AudioError> {
        let ch = self.speakers.len();
        Ok(frame
            .chunks(self.per_packet * ch)
            .enumerate()
            .map(|(i, chunk)| {
                let mut payload = Vec::with_capacity(chunk.len() * pcm::BYTES_PER_SAMPLE);
                pcm::pack(chunk, &mut payload);
                Coded {
                    offset: (i * self.per_packet) as u32,
                    samples: (chunk.len() / ch) as u32,
                    payload,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opus2::MSDecoder;

    fn settings(layout: ChannelLayout, codec: CodecChoice) -> AudioSettings {
        AudioSettings {
            layout,
            codec,
            ..AudioSettings::default()
        }
    }

    #[test]
    fn pcm_packets_fit_a_datagram_and_abut() {
        for (layout, per) in [
            (ChannelLayout::Mono, 240),
            (ChannelLayout::Stereo, 120),
            (ChannelLayout::Surround51, 60),
            (ChannelLayout::Surround71, 40),
        ] {
            let mut e = PcmEncoder::new(&settings(layout, CodecChoice::Pcm));
            assert_eq!(e.samples_per_packet(), per, "{layout:?}");
            let ch = layout.channels() as usize;
            let frame: Vec<f32> = (0..240 * ch).map(|i| i as f32 / 1e4).collect();
            let out = e.encode(&frame).unwrap();
            assert_eq!(out.len(), 240 / per);
            for (i, c) in out.iter().enumerate() {
                assert_eq!(c.offset as usize, i * per);
                assert!(c.payload.len() + AUDIO_PACKET_OVERHEAD <= 1_150);
            }
            let mut back = Vec::new();
            for c in &out {
                pcm::unpack(&c.payload, &mut back);
            }
            let exact: Vec<f32> = frame
                .iter()
                .map(|&x| pcm::to_i24(x) as f32 / 8_388_608.0)
                .collect();
            assert_eq!(back, exact);
        }
    }

    /// Encodes a distinct tone per channel through Opus 7.1 and decodes with the announced
    /// mapping: every channel's energy stays on its own speaker.
    #[test]
    fn opus_71_keeps_every_channel_in_place() {
        let mut e = OpusEncoder::new(&settings(ChannelLayout::Surround71, CodecChoice::Opus))
            .expect("libopus surround encoder");
        let cfg = e.config();
        let m = cfg.opus.clone().unwrap();
        assert_eq!((m.streams, m.coupled_streams), (5, 3));
        let mut dec = MSDecoder::new(48_000, m.streams, m.coupled_streams, &m.mapping).unwrap();
        let speakers = cfg.speakers.clone();
        let ch = speakers.len();
        let tone = |s: Speaker| super::super::synthetic::tone_hz(s) as f64;
        let mut out_all = vec![Vec::new(); ch];
        for f in 0..200u64 {
            let frame: Vec<f32> = (0..240u64)
                .flat_map(|i| {
                    let n = f * 240 + i;
                    speakers.iter().map(move |s| {
                        (0.25 * (n as f64 * tone(*s) / 48_000.0 * std::f64::consts::TAU).sin())
                            as f32
                    })
                })
                .collect();
            let coded = e.encode(&frame).unwrap();
            assert_eq!(coded.len(), 1);
            assert!(coded[0].payload.len() < 600, "{}", coded[0].payload.len());
            let mut pcm = vec![0f32; 240 * ch];
            let n = dec
                .decode_float(&coded[0].payload, &mut pcm, false)
                .unwrap();
            assert_eq!(n, 240);
            for (i, v) in pcm.iter().enumerate() {
                out_all[i % ch].push(*v);
            }
        }
        // Skip the first 100 ms (codec start-up), then check each channel's tone powers.
        for (c, s) in speakers.iter().enumerate() {
            let x = &out_all[c][4_800..];
            let own = goertzel(x, tone(*s));
            for other in speakers.iter().filter(|o| *o != s) {
                let leak = goertzel(x, tone(*other));
                assert!(
                    10.0 * (leak / own).log10() < -40.0,
                    "{s:?} carries {other:?} at {:.1} dB",
                    10.0 * (leak / own).log10()
                );
            }
        }
    }

    fn goertzel(x: &[f32], hz: f64) -> f64 {
        let w = std::f64::consts::TAU * hz / 48_000.0;
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in x {
            let s0 = v as f64 + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        (s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2) / (x.len() as f64).powi(2)
    }

    #[test]
    fn frame_length_must_be_5_or_10_ms() {
        let mut s = settings(ChannelLayout::Stereo, CodecChoice::Opus);
        s.frame_ms = 20;
        assert!(OpusEncoder::new(&s).is_err());
        s.frame_ms = 10;
        let e = OpusEncoder::new(&s).unwrap();
        assert_eq!(e.frame_samples(), 480);
        assert_eq!(e.config().frame_samples, 480);
    }
}
