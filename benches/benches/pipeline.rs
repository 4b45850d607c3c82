//! Per-frame stage figures for the video pipeline on the synthetic source's two scenes —
//! `Desktop` (typing: one glyph and a cursor per frame over a static page) and `Busy` (the whole
//! text area scrolling, a bouncing box: ~40 % of the pixels change every frame) — at 1080p with
//! openh264's camera and screen-content tunings, and `Busy` at 2160p: synthetic render (stands
//! in for capture), convert, encode (2 threads, ~1100-byte slices), decode (openh264). Prints
//! p50/p99 per stage, the bitrate and the mean PSNR of the luma.
//!
//! `cargo bench -p sightline-benches --bench pipeline` runs 300 frames per size;
//! under `cargo test` it runs a 10-frame smoke pass.

use std::time::Instant;

use openh264::decoder::Decoder;
use openh264::OpenH264API;
use sightline_host::capture::synthetic::{Scene, SyntheticSource};
use sightline_host::capture::{CaptureOutcome, CapturedFrame, FrameSource};
use sightline_host::convert::{bgrx_to_i420, bgrx_to_i420_rect, I420};
use sightline_host::encode::openh264::OpenH264Encoder;
use sightline_host::encode::{EncoderSettings, EncoderUsage, VideoEncoder};
use sightline_protocol::msg::{ColourMatrix, ColourRange};

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

fn run(w: u32, h: u32, frames: usize, scene: Scene, usage: EncoderUsage) {
    let fps = 60;
    let mut src = SyntheticSource::new(w, h, fps)
        .with_scene(scene)
        .with_pacing(false); // one step per frame, as fast as asked
    let mut frame = CapturedFrame::new();
    let mut pic = I420::new(w, h);
    let mut enc = OpenH264Encoder::new(EncoderSettings {
        usage,
        bitrate_bps: 20_000_000,
        fps: fps as f32,
        max_slice_bytes: 1100,
        threads: 2,
    })
    .expect("encoder");
    let mut dec = Decoder::with_api_config(
        OpenH264API::from_source(),
        openh264::decoder::DecoderConfig::new(),
    )
    .expect("decoder");
    let (mut cap, mut conv, mut encs, mut decs, mut total) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut bytes = 0usize;
    let mut psnr = Vec::new();
    let mut first = true;
    for i in 0..frames {
        let t0 = Instant::now();
        let out = src
            .next_frame(&mut frame, std::time::Duration::from_secs(1))
            .expect("capture");
        assert_eq!(out, CaptureOutcome::Frame);
        let t1 = Instant::now();
        if first || frame.damage.is_empty() {
            bgrx_to_i420(&frame, ColourMatrix::Bt709, ColourRange::Limited, &mut pic);
        } else {
            for r in &frame.damage {
                bgrx_to_i420_rect(
                    &frame,
                    *r,
                    ColourMatrix::Bt709,
                    ColourRange::Limited,
                    &mut pic,
                );
            }
        }
        let t2 = Instant::now();
        let au = enc.encode(&pic, first).expect("encode").expect("a frame");
        first = false;
        let t3 = Instant::now();
        let decoded = dec.decode(&au.data).expect("decode");
        let t4 = Instant::now();
        if let (Some(d), true) = (decoded, i >= 5) {
            use openh264::formats::YUVSource;
            let ys = d.strides().0;
            let mut se = 0f64;
            for y in 0..h as usize {
                let (a, b) = (
                    &d.y()[y * ys..][..w as usize],
                    &pic.y[y * pic.y_stride..][..w as usize],
                );
                se += a
                    .iter()
                    .zip(b)
                    .map(|(p, q)| (*p as f64 - *q as f64).powi(2))
                    .sum::<f64>();
            }
            let mse = (se / (w as f64 * h as f64)).max(1e-6);
            psnr.push(10.0 * (255.0f64 * 255.0 / mse).log10());
        }
        if i >= 5 {
            // Skip the warm-up and the keyframe.
            cap.push((t1 - t0).as_secs_f64() * 1e3);
            conv.push((t2 - t1).as_secs_f64() * 1e3);
            encs.push((t3 - t2).as_secs_f64() * 1e3);
            decs.push((t4 - t3).as_secs_f64() * 1e3);
            total.push((t3 - t0).as_secs_f64() * 1e3);
            bytes += au.data.len();
        }
    }
    let n = cap.len().max(1);
    println!(
        "{w}x{h} {scene:?} scene, {n} frames (after 5 warm-up), openh264 {usage:?} usage, 2 threads:"
    );
    for (name, v) in [
        ("capture (synthetic render)", &mut cap),
        ("convert BGRX→I420", &mut conv),
        ("encode", &mut encs),
        ("capture+convert+encode", &mut total),
        ("decode", &mut decs),
    ] {
        println!(
            "  {name:<28} p50 {:7.2} ms   p99 {:7.2} ms",
            pct(v, 0.5),
            pct(v, 0.99)
        );
    }
    println!(
        "  bitrate at {fps} fps: {:.2} Mbit/s ({} bytes/frame)",
        bytes as f64 * 8.0 * fps as f64 / n as f64 / 1e6,
        bytes / n
    );
    println!(
        "  PSNR-Y mean {:.1} dB",
        psnr.iter().sum::<f64>() / psnr.len().max(1) as f64
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let frames = if full { 300 } else { 10 };
    // SIGHTLINE_BENCH_QUICK=1: only the default case (desktop scene, camera tuning at 1080p),
    // for measuring run-to-run spread.
    if std::env::var("SIGHTLINE_BENCH_QUICK").is_ok() {
        run(1920, 1080, frames, Scene::Desktop, EncoderUsage::Camera);
        return;
    }
    for scene in [Scene::Desktop, Scene::Busy] {
        for usage in [EncoderUsage::Camera, EncoderUsage::Screen] {
            run(1920, 1080, frames, scene, usage);
        }
    }
    run(
        3840,
        2160,
        if full { 120 } else { 6 },
        Scene::Busy,
        EncoderUsage::Camera,
    );
}
