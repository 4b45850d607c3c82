//! Audio end to end on a real PulseAudio: host-agent's cpal source captures the monitor of the
//! host's null sink, encodes (Opus multistream or 24-bit PCM), sends over real QUIC on
//! loopback; the viewer jitter-buffers, decodes and plays through its cpal output into a second
//! null sink, whose monitor is recorded. The test signal goes in with `pacat` and is recorded
//! with `parec`, both with an explicit `--channel-map` (ALSA order in, WAVE order out), so the
//! check never depends on Sightline's own channel handling.
//!
//! Each channel gets its own tone (its own frequency) in its own time slot, the others silent.
//! For every slot the tone must come out on exactly its speaker: on every other recorded channel
//! the slot's tone is at least 40 dB below — for stereo, 5.1 and 7.1, with Opus and with PCM.
//! (Playing one channel at a time measures crosstalk in the classical way: a timing glitch on the
//! driven channel, such as a sample dropped for drift, cannot be mistaken for leakage.)

use std::time::Duration;

use sightline_host::audio::synthetic::tone_hz;
use sightline_host::audio::CodecChoice;
use sightline_protocol::audio::layout::{ChannelOrder, Speaker};
use sightline_protocol::msg::ChannelLayout;
use sightline_tests::audio_chain::{AudioChain, HostAudio};
use sightline_tests::pulse::{self, NullSink, Recorder};
use sightline_tests::Pki;
use sightline_viewer::audio::{AudioOptions, AudioSnapshot};

/// Tone amplitude played into the host sink (−10.5 dBFS).
const AMPLITUDE: f32 = 0.3;
/// Each channel's burst, and the silence after it.
const BURST_S: f64 = 0.25;
const GAP_S: f64 = 0.1;

/// One burst per speaker in `order`, each on its own channel (interleaved in `order`).
fn bursts(order: &[Speaker]) -> Vec<f32> {
    let burst = (BURST_S * 48_000.0) as usize;
    let gap = (GAP_S * 48_000.0) as usize;
    let ch = order.len();
    let mut v = vec![0.0f32; (burst + gap) * ch * ch];
    for (k, s) in order.iter().enumerate() {
        let hz = tone_hz(*s) as f64;
        for i in 0..burst {
            // 5 ms fades: no click to smear the tone across the spectrum.
            let edge = (i.min(burst - 1 - i) as f32 / 240.0).min(1.0);
            let ph = i as f64 * hz / 48_000.0;
            let at = ((k * (burst + gap)) + i) * ch + k;
            v[at] = AMPLITUDE * edge * (ph * std::f64::consts::TAU).sin() as f32;
        }
    }
    v
}

/// Level of the tone near `hz` in `x` (Hann window), dBFS of a sine: the strongest component
/// within ±8 % of `hz`, so a tone played slightly faster while the jitter buffer catches up
/// after a stall of the loaded machine still counts as that tone.
fn level_db(x: &[f32], hz: f32) -> f64 {
    let n = x.len() as f32;
    let w: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, v)| v * (0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / n).cos()))
        .collect();
    let mut best = 0.0f64;
    let mut f = hz * 0.92;
    while f <= hz * 1.08 {
        best = best.max(pulse::tone_power(&w, f as f64));
        f += 2.0;
    }
    // A full-scale sine through a Hann window reads 0.25 × 0.5².
    10.0 * (best / (0.25 * 0.25)).log10()
}

/// Where channel `c` of the recording is loud: first to last loud 5 ms block (a dropout
/// inside the burst does not split it).
fn loud_span(chan: &[f32]) -> Option<(usize, usize)> {
    let block = 240;
    let loud: Vec<usize> = (0..chan.len() / block)
        .filter(|b| {
            chan[b * block..(b + 1) * block]
                .iter()
                .any(|v| v.abs() > 0.05)
        })
        .collect();
    Some((*loud.first()? * block, (*loud.last()? + 1) * block))
}

/// What one layout/codec run measured.
#[derive(Debug)]
struct Combo {
    /// Per speaker: its tone's level on its own speaker (dBFS; `None`: its channel stayed
    /// silent), and the loudest other speaker's level of that tone relative to it (dB).
    bursts: Vec<(Speaker, Option<(f64, f64)>)>,
    snapshot: AudioSnapshot,
}

async fn one_combo(
    pki: &Pki,
    host_sink: &NullSink,
    view_sink: &NullSink,
    layout: ChannelLayout,
    codec: CodecChoice,
) -> Combo {
    let chain = AudioChain::start(
        pki,
        HostAudio::Sink(host_sink.name.clone()),
        layout,
        codec,
        &view_sink.name,
        AudioOptions::default().period_frames,
        None,
    )
    .await;
    let rec_speakers = ChannelOrder::Wave.speakers(layout);
    let play_speakers = ChannelOrder::Alsa.speakers(layout);
    let rec = Recorder::start(&view_sink.monitor(), rec_speakers);
    let dump = std::env::var("SIGHTLINE_AUDIO_DUMP").ok();
    let rec_host = dump
        .as_ref()
        .map(|_| Recorder::start(&host_sink.monitor(), rec_speakers));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let player = pulse::play(&host_sink.name, play_speakers, bursts(play_speakers));
    tokio::task::spawn_blocking(move || player.join())
        .await
        .expect("player thread")
        .expect("pacat");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let chans = rec.stop();
    if let (Some(dir), Some(r)) = (&dump, rec_host) {
        let write = |name: &str, c: &[Vec<f32>]| {
            let mut bytes = Vec::new();
            for i in 0..c[0].len() {
                for ch in c {
                    bytes.extend_from_slice(&ch[i].to_le_bytes());
                }
            }
            let _ = std::fs::write(
                format!("{dir}/{}-{codec:?}-{name}.raw", layout.name()),
                bytes,
            );
        };
        write("host", &r.stop());
        write("view", &chans);
    }
    let snapshot = chain.audio.snapshot();
    chain.stop().await;

    let bursts = play_speakers
        .iter()
        .map(|s| {
            let own_ch = rec_speakers
                .iter()
                .position(|r| r == s)
                .expect("speaker recorded");
            let Some((a, b)) = loud_span(&chans[own_ch]) else {
                return (*s, None);
            };
            // The middle of the burst: clear of its fades and of any edge jitter.
            let margin = (b - a) / 5;
            let range = a + margin..b - margin;
            let hz = tone_hz(*s);
            let own = level_db(&chans[own_ch][range.clone()], hz);
            let worst = (0..rec_speakers.len())
                .filter(|c| *c != own_ch)
                .map(|c| level_db(&chans[c][range.clone()], hz) - own)
                .fold(f64::MIN, f64::max);
            // Exact zeros on every other speaker (lossless PCM) have no level in dB.
            let others = if worst < -300.0 {
                "every other speaker exactly silent".to_owned()
            } else {
                format!("worst other speaker {worst:.1} dB")
            };
            eprintln!(
                "{} {codec:?} {s:?}: {own:.1} dBFS on its own speaker, {others}",
                layout.name()
            );
            (*s, Some((own, worst)))
        })
        .collect();
    Combo { bursts, snapshot }
}

#[test]
fn every_channel_arrives_in_its_place_stereo_51_71_opus_and_pcm() {
    let host_sink = NullSink::new("sl_host");
    let view_sink = NullSink::new("sl_view");
    let pki = Pki::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut failures = Vec::new();
    for layout in [
        ChannelLayout::Stereo,
        ChannelLayout::Surround51,
        ChannelLayout::Surround71,
    ] {
        for codec in [CodecChoice::Opus, CodecChoice::Pcm] {
            let c = rt.block_on(one_combo(&pki, &host_sink, &view_sink, layout, codec));
            let n = layout.channels() as usize;
            eprintln!("{} {codec:?}: viewer {:?}", layout.name(), c.snapshot);
            assert_eq!(c.bursts.len(), n);
            for (s, m) in c.bursts {
                let Some((own, worst)) = m else {
                    failures.push(format!(
                        "{} {codec:?} {s:?}: nothing on its speaker",
                        layout.name()
                    ));
                    continue;
                };
                // The tone arrives: at −10.5 dBFS when nothing disturbed it; a dropout of the
                // loaded machine's sound server inside the burst (counted as a device gap) costs
                // a few dB...
                if !(-24.0..=-7.0).contains(&own) {
                    failures.push(format!("{} {codec:?} {s:?}: {own:.1} dBFS", layout.name()));
                }
                // ...and on no other speaker.
                if worst > -40.0 {
                    failures.push(format!(
                        "{} {codec:?} {s:?}: crosstalk {worst:.1} dB",
                        layout.name()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
