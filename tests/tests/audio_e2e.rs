//! Audio end to end on a real PulseAudio: a distinct tone per channel is played into the host's
//! sink (pacat, explicit channel map), captured from its monitor by host-agent's cpal source,
//! encoded (Opus multistream or 24-bit PCM), sent over real QUIC on loopback, jitter-buffered,
//! decoded and played by the viewer's cpal output into a second sink, whose monitor is recorded
//! (parec, explicit channel map). Every channel must arrive on its own speaker with the others'
//! tones at least 40 dB down — for stereo, 5.1 and 7.1, with Opus and with PCM.

use std::time::{Duration, Instant};

use sightline_certs::TrustPolicy;
use sightline_host::audio::capture_cpal::{Backend as HostBackend, CpalSource};
use sightline_host::audio::pipeline::{self, AudioFeed};
use sightline_host::audio::synthetic::tone_hz;
use sightline_host::audio::{AudioSettings, AudioSource, CodecChoice};
use sightline_protocol::audio::layout::{ChannelOrder, Speaker};
use sightline_protocol::msg::ChannelLayout;
use sightline_tests::pulse::{self, NullSink, Recorder};
use sightline_tests::{Pki, TestHost};
use sightline_viewer::audio::{AudioHandle, AudioOptions, Backend as ViewerBackend};
use sightline_viewer::net::{connect_media, Media};
use sightline_viewer::stats::SharedClock;

/// Tone amplitude played into the host sink.
const AMPLITUDE: f32 = 0.3;

fn tones(speakers: &[Speaker], seconds: f64) -> Vec<f32> {
    let n = (seconds * 48_000.0) as usize;
    let mut v = Vec::with_capacity(n * speakers.len());
    for i in 0..n {
        // 10 ms fade in and out: no click to smear energy across the spectrum.
        let edge = (i.min(n - 1 - i) as f32 / 480.0).min(1.0);
        for s in speakers {
            let ph = i as f64 * tone_hz(*s) as f64 / 48_000.0;
            v.push(AMPLITUDE * edge * (ph * std::f64::consts::TAU).sin() as f32);
        }
    }
    v
}

/// Hann-windowed tone power (the window keeps a neighbour's sidelobes far below −40 dB).
fn power(x: &[f32], hz: f32) -> f64 {
    let n = x.len() as f32;
    let w: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, v)| v * (0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / n).cos()))
        .collect();
    pulse::tone_power(&w, hz as f64)
}

fn start_host_audio(
    sink: &str,
    layout: ChannelLayout,
    codec: CodecChoice,
) -> (AudioFeed, sightline_protocol::time::WireClock) {
    let clock = sightline_host::net::host_clock(Instant::now());
    let device = sink.to_owned();
    let feed = pipeline::start(
        Box::new(move || {
            Ok(
                Box::new(CpalSource::open(HostBackend::Pulse, Some(&device), layout)?)
                    as Box<dyn AudioSource>,
            )
        }),
        AudioSettings {
            layout,
            codec,
            ..AudioSettings::default()
        },
        clock,
    )
    .expect("host audio capture from the PulseAudio monitor");
    (feed, clock)
}

/// Runs one layout/codec through the whole chain; returns per-speaker (own level dBFS, worst
/// crosstalk dB).
async fn one_combo(
    pki: &Pki,
    host_sink: &NullSink,
    view_sink: &NullSink,
    layout: ChannelLayout,
    codec: CodecChoice,
) -> Vec<(Speaker, f64, f64)> {
    let (feed, clock) = start_host_audio(&host_sink.name, layout, codec);
    let host = TestHost::start_with_audio(pki, feed, clock);
    let known = pki.known_hosts("kh", host.addr, &pki.host);
    let opts = pki.connect_options(host.addr, &pki.viewer, known, TrustPolicy::PinnedOnly);
    let audio = AudioHandle::new(AudioOptions {
        backend: ViewerBackend::Pulse,
        device: Some(view_sink.name.clone()),
        ..AudioOptions::default()
    });
    let conn = connect_media(
        opts,
        Media {
            audio: Some(audio.clone()),
            clock: SharedClock::default(),
            ..Media::default()
        },
    )
    .await
    .expect("viewer connects");
    // Wait until the viewer plays the host's (silent) stream.
    let deadline = Instant::now() + Duration::from_secs(10);
    while audio.snapshot().received < 50 {
        assert!(
            Instant::now() < deadline,
            "no audio reached the viewer: {:?}",
            audio.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Record the viewer's sink in WAVE order; play into the host's sink in ALSA order: every
    // hand-off is by speaker name.
    let rec_speakers = ChannelOrder::Wave.speakers(layout);
    let play_speakers = ChannelOrder::Alsa.speakers(layout);
    let rec = Recorder::start(&view_sink.monitor(), rec_speakers);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let player = pulse::play(&host_sink.name, play_speakers, tones(play_speakers, 1.0));
    tokio::task::spawn_blocking(move || player.join())
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let chans = rec.stop();
    let snap = audio.snapshot();
    conn.close("done").await;
    drop(host);

    // The loudest 600 ms of the recording is the middle of the tones.
    let len = chans[0].len();
    let energy: Vec<f64> = (0..len)
        .map(|i| chans.iter().map(|c| (c[i] as f64).powi(2)).sum())
        .collect();
    let win = 28_800.min(len);
    let mut best = (0, -1.0);
    let mut acc: f64 = energy[..win].iter().sum();
    for start in 0..len - win {
        if acc > best.1 {
            best = (start, acc);
        }
        acc += energy[start + win] - energy[start];
    }
    let range = best.0..best.0 + win;
    rec_speakers
        .iter()
        .enumerate()
        .map(|(c, s)| {
            let x = &chans[c][range.clone()];
            let own = power(x, tone_hz(*s));
            let worst = rec_speakers
                .iter()
                .filter(|o| *o != s)
                .map(|o| 10.0 * (power(x, tone_hz(*o)) / own).log10())
                .fold(f64::MIN, f64::max);
            // A full-scale sine reads 0.25 × 0.375² (Hann) — report the level in dBFS.
            let level = 10.0 * (own / (0.25 * 0.375f64.powi(2))).log10();
            eprintln!(
                "{layout:?} {codec:?} {s:?}: level {level:.1} dBFS, worst crosstalk {worst:.1} dB (viewer: {:?} lat, {} concealed)",
                snap.latency_ms, snap.concealed
            );
            (*s, level, worst)
        })
        .collect()
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
        .unwrap();
    let mut failures = Vec::new();
    for layout in [
        ChannelLayout::Stereo,
        ChannelLayout::Surround51,
        ChannelLayout::Surround71,
    ] {
        for codec in [CodecChoice::Opus, CodecChoice::Pcm] {
            let result = rt.block_on(one_combo(&pki, &host_sink, &view_sink, layout, codec));
            assert_eq!(result.len(), layout.channels() as usize);
            for (s, level, worst) in result {
                // The tone arrives at about its sent level (−10.5 dBFS)...
                if !(-14.0..=-7.0).contains(&level) {
                    failures.push(format!("{layout:?} {codec:?} {s:?}: level {level:.1} dBFS"));
                }
                // ...and nothing of the other channels is on it.
                if worst > -40.0 {
                    failures.push(format!(
                        "{layout:?} {codec:?} {s:?}: crosstalk {worst:.1} dB"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
