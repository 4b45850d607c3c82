//! 10-bit encode and decode per backend at 1080p and 2160p (FFmpeg: libx265 HEVC Main 10,
//! libx264 H.264 High 10, and whichever hardware encoder the probe finds), with the production
//! settings: no B-frames, no look-ahead, one-frame VBV at 20 Mbit/s, 2 threads. Decode is
//! the viewer's FFmpeg decoder (slice threads). Also one 4:4:4 row per software backend.
//!
//! Prints one table row per case: encode and decode p50 / p99 per frame, the frame rate the
//! encoder alone sustains, bitrate, and the probe report (what hardware was tried and why it
//! failed). `SIGHTLINE_BENCH_QUICK=1`: 1080p only, fewer frames; `SIGHTLINE_BENCH_ENCODER=NAME`:
//! one encoder only; `SIGHTLINE_X265_PARAMS` / `SIGHTLINE_X264_PARAMS` add encoder settings (see
//! `host_agent::encode::ffmpeg`) for tuning runs.
//!
//! `cargo bench -p sightline-benches --bench codec10`

use std::time::{Duration, Instant};

use sightline_host::capture::synthetic::{Scene, SyntheticSource};
use sightline_host::capture::{CapturedFrame, FrameSource};
use sightline_host::convert::{rgb_to_yuv10, Yuv10};
use sightline_host::encode::format::{CodecPreference, FormatRequest, VideoFormat};
use sightline_host::encode::{open_offer, probe_formats, EncoderSettings, PictureRef};
use sightline_protocol::msg::{
    Chroma, ColourMatrix, ColourPrimaries, ColourRange, StreamConfig, TransferFunction,
};
use sightline_viewer::decoder;

fn pictures(w: u32, h: u32, n: usize, scene: Scene, chroma: Chroma) -> Vec<Yuv10> {
    let mut src = SyntheticSource::new(w, h, 100_000)
        .with_scene(scene)
        .with_pacing(false);
    let mut f = CapturedFrame::new();
    (0..n)
        .map(|_| {
            src.next_frame(&mut f, Duration::from_secs(1))
                .expect("frame");
            let mut p = Yuv10::new(w, h, chroma);
            rgb_to_yuv10(&f, ColourMatrix::Bt709, ColourRange::Full, &mut p);
            p
        })
        .collect()
}

/// CPU time of the whole process (all threads: the encoders' pools too), in ms.
fn cpu_ms() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given and nothing else.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, exclusively borrowed rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    ms(u.ru_utime) + ms(u.ru_stime)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test` (no `--bench`) a smoke run at a small
    // size checks that every backend still encodes and decodes.
    let full = std::env::args().any(|a| a == "--bench");
    let quick = std::env::var_os("SIGHTLINE_BENCH_QUICK").is_some() || !full;
    let settings = EncoderSettings {
        bitrate_bps: 20_000_000,
        fps: 60.0,
        max_slice_bytes: 1100,
        threads: 2,
        ..EncoderSettings::default()
    };
    let mut offers = Vec::new();
    for codec in [CodecPreference::Hevc, CodecPreference::H264] {
        for chroma in [Chroma::Yuv420, Chroma::Yuv444] {
            let req = FormatRequest {
                codec,
                bit_depth: 10,
                chroma,
                matrix: ColourMatrix::Bt709,
                range: ColourRange::Full,
            };
            let probe = probe_formats(&req, settings, true);
            for line in probe.report {
                println!("probe: {line}");
            }
            let first = probe.offers.first().copied();
            offers.extend(first.filter(|o| o.format.bit_depth == 10 && o.format.chroma == chroma));
        }
    }
    offers.dedup();
    // SIGHTLINE_BENCH_ENCODER=libx265: only that encoder (for tuning runs).
    if let Ok(only) = std::env::var("SIGHTLINE_BENCH_ENCODER") {
        offers.retain(|o| o.encoder == only);
    }
    let sizes: &[(u32, u32, &str)] = match (full, quick) {
        (false, _) => &[(320, 180, "180p")],
        (true, true) => &[(1920, 1080, "1080p")],
        (true, false) => &[(1920, 1080, "1080p"), (3840, 2160, "2160p")],
    };
    let frames = match (full, quick) {
        (false, _) => 6,
        (true, true) => 30,
        (true, false) => 90,
    };
    println!(
        "\n{:<28} {:<7} {:<8} {:>15} {:>9} {:>8} {:>15} {:>8} {:>8}",
        "format (encoder)",
        "size",
        "scene",
        "encode p50/p99",
        "enc fps",
        "enc cpu",
        "decode p50/p99",
        "dec cpu",
        "Mbit/s"
    );
    println!("(ms per frame; cpu: CPU time of all threads per frame, steadier than wall time under load)");
    for &(w, h, label) in sizes {
        for scene in [Scene::Desktop, Scene::Busy] {
            for chroma in [Chroma::Yuv420, Chroma::Yuv444] {
                if chroma == Chroma::Yuv444 && (!full || h > 1080 || scene == Scene::Busy) {
                    continue;
                }
                let pics = pictures(w, h, frames, scene, chroma);
                for offer in offers.iter().filter(|o| o.format.chroma == chroma) {
                    run_case(offer, settings, &pics, label, scene);
                }
            }
        }
    }
}

fn run_case(
    offer: &sightline_host::encode::format::Offer,
    settings: EncoderSettings,
    pics: &[Yuv10],
    label: &str,
    scene: Scene,
) {
    let mut enc = open_offer(offer, settings).expect("open encoder");
    let mut units = Vec::new();
    let mut enc_ms = Vec::new();
    let mut bytes = 0usize;
    let mut enc_cpu = 0.0;
    for (i, p) in pics.iter().enumerate() {
        let cpu = cpu_ms();
        let t = Instant::now();
        let out = enc
            .encode_frame(PictureRef::Yuv10(p), i == 0)
            .expect("encode");
        enc_ms.push(t.elapsed().as_secs_f64() * 1e3);
        if i > 0 {
            enc_cpu += cpu_ms() - cpu;
        }
        if let Some(u) = out {
            bytes += u.data.len();
            units.push(u.data);
        }
    }
    // The keyframe is not a steady-state frame.
    enc_ms.remove(0);
    let f: VideoFormat = offer.format;
    let cfg = StreamConfig {
        stream_id: 0,
        codec: f.codec,
        width: pics[0].width,
        height: pics[0].height,
        fps_millihz: 60_000,
        bit_depth: 10,
        chroma: f.chroma,
        matrix: ColourMatrix::Bt709,
        range: ColourRange::Full,
        primaries: ColourPrimaries::Bt709,
        transfer: TransferFunction::Bt709,
    };
    let mut dec = decoder::open_for(Some(&cfg)).expect("decoder");
    let mut dec_ms = Vec::new();
    let dec_cpu = cpu_ms();
    for u in &units {
        let t = Instant::now();
        let pic = dec.decode(u).expect("decode");
        dec_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(pic.is_some(), "a picture per unit");
    }
    let dec_cpu = (cpu_ms() - dec_cpu) / units.len() as f64;
    let enc_cpu = enc_cpu / (pics.len() - 1) as f64;
    dec_ms.remove(0);
    let mbps = bytes as f64 * 8.0 * 60.0 / pics.len() as f64 / 1e6;
    let e50 = pct(&mut enc_ms, 0.5);
    println!(
        "{:<28} {:<7} {:<8} {:>6.1} / {:>6.1} {:>9.1} {:>8.1} {:>6.1} / {:>6.1} {:>8.1} {:>8.2}",
        format!("{} ({})", f.profile_name(), offer.encoder),
        label,
        format!("{scene:?}"),
        e50,
        pct(&mut enc_ms, 0.99),
        1000.0 / e50,
        enc_cpu,
        pct(&mut dec_ms, 0.5),
        pct(&mut dec_ms, 0.99),
        dec_cpu,
        mbps
    );
}
