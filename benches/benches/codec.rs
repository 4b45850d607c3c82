//! Encode and decode (openh264) on desktop-like content at 1080p and 2160p: the synthetic
//! source's scrolling text, moving box, bars and ramp. Each iteration encodes the next frame (a
//! P-frame) with the production settings: screen content, 2 threads, ~1100-byte slices.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use openh264::decoder::Decoder;
use openh264::OpenH264API;
use sightline_host::capture::synthetic::SyntheticSource;
use sightline_host::capture::{CapturedFrame, FrameSource};
use sightline_host::convert::{bgrx_to_i420, I420};
use sightline_host::encode::openh264::OpenH264Encoder;
use sightline_host::encode::{EncoderSettings, VideoEncoder};
use sightline_protocol::msg::{ColourMatrix, ColourRange};

/// `n` consecutive converted pictures of the synthetic source.
fn pictures(w: u32, h: u32, n: usize) -> Vec<I420> {
    let mut src = SyntheticSource::new(w, h, 100_000);
    let mut f = CapturedFrame::new();
    (0..n)
        .map(|_| {
            src.next_frame(&mut f, Duration::from_secs(1))
                .expect("frame");
            let mut p = I420::new(w, h);
            bgrx_to_i420(&f, ColourMatrix::Bt709, ColourRange::Limited, &mut p);
            p
        })
        .collect()
}

fn settings() -> EncoderSettings {
    EncoderSettings {
        usage: Default::default(),
        bitrate_bps: 20_000_000,
        fps: 60.0,
        max_slice_bytes: 1100,
        threads: 2,
    }
}

fn bench(c: &mut Criterion) {
    for (w, h, label) in [(1920, 1080, "1080p"), (3840, 2160, "2160p")] {
        let pics = pictures(w, h, 60);
        let mut g = c.benchmark_group(format!("codec/{label}"));
        g.sample_size(20);
        let mut enc = OpenH264Encoder::new(settings()).expect("encoder");
        let mut i = 0;
        enc.encode(&pics[0], true).expect("encode");
        g.bench_function("encode_p_frame", |b| {
            b.iter(|| {
                i = (i + 1) % pics.len();
                black_box(enc.encode(&pics[i], false).expect("encode"))
            })
        });
        // A stream to decode: one keyframe then P-frames, decoded in a loop (the keyframe
        // restarts the decoder's references each round).
        let mut enc = OpenH264Encoder::new(settings()).expect("encoder");
        let units: Vec<Vec<u8>> = pics
            .iter()
            .enumerate()
            .filter_map(|(k, p)| enc.encode(p, k == 0).expect("encode").map(|u| u.data))
            .collect();
        let mut dec = Decoder::with_api_config(
            OpenH264API::from_source(),
            openh264::decoder::DecoderConfig::new(),
        )
        .expect("decoder");
        let mut j = 0;
        g.bench_function("decode", |b| {
            b.iter(|| {
                let r = dec.decode(&units[j]).expect("decode").is_some();
                j = (j + 1) % units.len();
                black_box(r)
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
