//! Audio decoders with packet-loss concealment: Opus multistream (libopus' own PLC) and 24-bit
//! PCM (the last 5 ms repeated with a fade: waveform substitution).

use opus2::MSDecoder;
use sightline_protocol::audio::pcm;
use sightline_protocol::msg::{AudioCodec, AudioConfig};

/// Why a packet could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The decoder could not be created for this configuration.
    #[error("cannot create the {codec:?} decoder: {detail}")]
    Create {
        /// Codec.
        codec: AudioCodec,
        /// libopus' words.
        detail: String,
    },
    /// A packet the decoder refused (corrupt, or not what the configuration says).
    #[error("bad audio packet: {0}")]
    Packet(String),
}

/// Decodes packets to interleaved floats in the configuration's speaker order.
pub trait AudioDecoder: Send {
    /// Channels out.
    fn channels(&self) -> usize;
    /// Appends the decoded samples of `payload` to `out`; returns samples per channel.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<f32>) -> Result<usize, DecodeError>;
    /// Appends `samples` per channel of concealment for audio that is missing.
    fn conceal(&mut self, samples: usize, out: &mut Vec<f32>);
}

/// The decoder `cfg` calls for.
pub fn open(cfg: &AudioConfig) -> Result<Box<dyn AudioDecoder>, DecodeError> {
    Ok(match (cfg.codec, &cfg.opus) {
        (AudioCodec::Opus, Some(m)) => {
            let dec =
                MSDecoder::new(48_000, m.streams, m.coupled_streams, &m.mapping).map_err(|e| {
                    DecodeError::Create {
                        codec: AudioCodec::Opus,
                        detail: e.to_string(),
                    }
                })?;
            Box::new(OpusDecoder {
                dec,
                channels: cfg.speakers.len(),
                scratch: Vec::new(),
            })
        }
        (AudioCodec::Opus, None) => {
            return Err(DecodeError::Create {
                codec: AudioCodec::Opus,
                detail: "no stream mapping".into(),
            })
        }
        (AudioCodec::Pcm24, _) => Box::new(PcmDecoder::new(cfg.speakers.len())),
    })
}

/// libopus multistream decoding; concealment is libopus' PLC (a NULL packet).
pub struct OpusDecoder {
    dec: MSDecoder,
    channels: usize,
    scratch: Vec<f32>,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

/// The most samples per channel one call produces (120 ms).
const MAX_SAMPLES: usize = 5760;

impl AudioDecoder for OpusDecoder {
    fn channels(&self) -> usize {
        self.channels
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<f32>) -> Result<usize, DecodeError> {
        if payload.is_empty() {
            return Err(DecodeError::Packet("empty Opus packet".into()));
        }
        self.scratch.resize(MAX_SAMPLES * self.channels, 0.0);
        let n = self
            .dec
            .decode_float(payload, &mut self.scratch, false)
            .map_err(|e| DecodeError::Packet(e.to_string()))?;
        out.extend_from_slice(&self.scratch[..n * self.channels]);
        Ok(n)
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<f32>) {
        // libopus conceals in steps of 2.5 ms; ask for exactly what is missing.
        let mut left = samples;
        while left > 0 {
            let n = left.min(MAX_SAMPLES);
            self.scratch.resize(n * self.channels, 0.0);
            match self.dec.decode_float(&[], &mut self.scratch, false) {
                Ok(got) if got > 0 => {
                    out.extend_from_slice(&self.scratch[..got.min(n) * self.channels]);
                    left -= got.min(n);
                }
                // PLC for a length libopus does not take: silence for the rest.
                _ => {
                    out.extend(std::iter::repeat_n(0.0, left * self.channels));
                    left = 0;
                }
            }
        }
    }
}

/// 24-bit PCM; concealment repeats the last 5 ms with a fade to silence over 20 ms.
#[derive(Debug)]
pub struct PcmDecoder {
    channels: usize,
    /// The last 240 samples per channel played (interleaved).
    history: Vec<f32>,
    /// Position in the history being repeated, and the gain, while concealing.
    repeat_at: usize,
    gain: f32,
}

const HISTORY: usize = 240;

impl PcmDecoder {
    /// A decoder for `channels` channels.
    pub fn new(channels: usize) -> Self {
        PcmDecoder {
            channels: channels.max(1),
            history: Vec::new(),
            repeat_at: 0,
            gain: 1.0,
        }
    }

    fn remember(&mut self, samples: &[f32]) {
        self.history.extend_from_slice(samples);
        let keep = HISTORY * self.channels;
        if self.history.len() > keep {
            self.history.drain(..self.history.len() - keep);
        }
    }
}

impl AudioDecoder for PcmDecoder {
    fn channels(&self) -> usize {
        self.channels
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<f32>) -> Result<usize, DecodeError> {
        let n = pcm::frames_in(payload.len(), self.channels).ok_or_else(|| {
            DecodeError::Packet(format!(
                "{} bytes is not a whole number of {}-channel 24-bit samples",
                payload.len(),
                self.channels
            ))
        })?;
        let start = out.len();
        pcm::unpack(payload, out);
        let decoded = out[start..].to_vec();
        if self.gain < 1.0 {
            // Coming back from concealment: fade the real signal in over 2.5 ms.
            let fade = 120.min(n);
            for (i, f) in out[start..]
                .chunks_exact_mut(self.channels)
                .take(fade)
                .enumerate()
            {
                let g = self.gain + (1.0 - self.gain) * (i as f32 / fade as f32);
                f.iter_mut().for_each(|v| *v *= g);
            }
        }
        self.gain = 1.0;
        self.repeat_at = 0;
        self.remember(&decoded);
        Ok(n)
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<f32>) {
        let frames = self.history.len() / self.channels;
        if frames == 0 {
            out.extend(std::iter::repeat_n(0.0, samples * self.channels));
            self.gain = 0.0;
            return;
        }
        // Fade from the current gain to silence over 20 ms (960 samples).
        let step = 1.0 / 960.0;
        for _ in 0..samples {
            let f = self.repeat_at % frames;
            for c in 0..self.channels {
                out.push(self.history[f * self.channels + c] * self.gain);
            }
            self.repeat_at += 1;
            self.gain = (self.gain - step).max(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm_decodes_exactly_and_conceals_with_a_fade() {
        let mut d = PcmDecoder::new(2);
        // Values a 24-bit sample holds exactly.
        let samples: Vec<f32> = (0..480)
            .map(|i| ((i % 50) as f32 - 25.0) * 4096.0 / 8_388_608.0)
            .collect();
        let mut bytes = Vec::new();
        pcm::pack(&samples, &mut bytes);
        let mut out = Vec::new();
        assert_eq!(d.decode(&bytes, &mut out).unwrap(), 240);
        assert_eq!(out, samples);
        out.clear();
        d.conceal(2_000, &mut out);
        assert_eq!(out.len(), 4_000);
        // Starts like the history, ends silent.
        assert!((out[0] - samples[0]).abs() < 1e-3);
        assert!(out[3_000..].iter().all(|v| *v == 0.0));
        assert!(d.decode(&bytes[..5], &mut out).is_err());
    }

    #[test]
    fn opus_conceals_the_asked_length() {
        use sightline_protocol::audio::layout::ChannelOrder;
        use sightline_protocol::msg::{ChannelLayout, OpusMapping};
        let cfg = AudioConfig {
            stream_id: 0,
            layout: ChannelLayout::Stereo,
            codec: AudioCodec::Opus,
            sample_rate: 48_000,
            frame_samples: 240,
            bitrate_bps: 192_000,
            speakers: ChannelOrder::Vorbis
                .speakers(ChannelLayout::Stereo)
                .to_vec(),
            opus: Some(OpusMapping {
                streams: 1,
                coupled_streams: 1,
                mapping: vec![0, 1],
            }),
        };
        let mut d = open(&cfg).unwrap();
        let mut out = Vec::new();
        d.conceal(240, &mut out);
        assert_eq!(out.len(), 480);
        d.conceal(140, &mut out);
        assert_eq!(out.len(), 760);
        assert!(d.decode(&[0xff, 0xff, 0xff], &mut out).is_err() || out.len() > 760);
        assert!(d.decode(&[], &mut out).is_err());
    }
}
