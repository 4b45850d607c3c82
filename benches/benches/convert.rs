//! Colour conversion: the host's RGB → I420 stage (full frames, a damaged 480×240 rectangle,
//! 10-bit input) and the viewer's I420 → RGBA/BGRX step, on the synthetic desktop picture.
//!
//! The source frame stays in cache between iterations; a freshly captured frame is colder, so
//! treat these as lower bounds for the pipeline's convert stage.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sightline_host::capture::{synthetic, CapturedFrame, PixelFormat, Rect};
use sightline_host::convert::{bgrx_to_i420, bgrx_to_i420_rect, rgb_to_yuv10, Yuv10, I420};
use sightline_protocol::msg::{Chroma, ColourMatrix, ColourRange};
use sightline_viewer::convert::{i420_to_bgrx, i420_to_rgba};
use sightline_viewer::frame::DecodedFrame;

const MATRIX: ColourMatrix = ColourMatrix::Bt709;
const RANGE: ColourRange = ColourRange::Limited;
const SIZES: [(u32, u32); 2] = [(1920, 1080), (3840, 2160)];

/// The synthetic frame widened to `x2 r10 g10 b10` (each 8-bit value `v` becomes
/// `v << 2 | v >> 6`), as an X server of depth 30 delivers it.
fn x2rgb10(src: &CapturedFrame) -> CapturedFrame {
    let mut f = CapturedFrame::new();
    f.reshape(src.width, src.height, PixelFormat::X2Rgb10);
    for (s, d) in src.data.chunks_exact(4).zip(f.data.chunks_exact_mut(4)) {
        let ten = |v: u8| (u32::from(v) << 2) | (u32::from(v) >> 6);
        let word = (ten(s[2]) << 20) | (ten(s[1]) << 10) | ten(s[0]);
        d.copy_from_slice(&word.to_le_bytes());
    }
    f
}

/// The synthetic frame as the viewer's decoder would hand it over.
fn decoded(w: u32, h: u32) -> DecodedFrame {
    let mut p = I420::new(w, h);
    bgrx_to_i420(&synthetic::render_frame(w, h, 1, 60), MATRIX, RANGE, &mut p);
    DecodedFrame {
        width: p.width,
        height: p.height,
        format: sightline_viewer::frame::PictureFormat::I420,
        y: p.y.clone(),
        u: p.u.clone(),
        v: p.v.clone(),
        y_stride: p.y_stride,
        uv_stride: p.uv_stride,
        matrix: MATRIX,
        range: RANGE,
        frame: 1,
        host_times: None,
        first_packet_us: 0,
        reassembled_us: 0,
        decoded_us: 0,
        decoded_at: Instant::now(),
    }
}

fn bench_host(c: &mut Criterion) {
    let mut g = c.benchmark_group("convert/host");
    for (w, h) in SIZES {
        let size = format!("{w}x{h}");
        let frame = synthetic::render_frame(w, h, 1, 60);
        let mut picture = I420::new(w, h);
        g.throughput(Throughput::Elements(u64::from(w) * u64::from(h)));
        g.bench_function(BenchmarkId::new("bgrx_to_i420", &size), |b| {
            b.iter(|| bgrx_to_i420(black_box(&frame), MATRIX, RANGE, &mut picture))
        });
        let rect = Rect {
            x: w / 2 - 240,
            y: h / 2 - 120,
            w: 480,
            h: 240,
        };
        g.throughput(Throughput::Elements(rect.area()));
        g.bench_function(BenchmarkId::new("bgrx_to_i420_rect_480x240", &size), |b| {
            b.iter(|| bgrx_to_i420_rect(black_box(&frame), rect, MATRIX, RANGE, &mut picture))
        });
    }
    let (w, h) = SIZES[0];
    let frame = x2rgb10(&synthetic::render_frame(w, h, 1, 60));
    let mut picture = I420::new(w, h);
    g.throughput(Throughput::Elements(u64::from(w) * u64::from(h)));
    g.bench_function(
        BenchmarkId::new("x2rgb10_to_i420", format!("{w}x{h}")),
        |b| b.iter(|| bgrx_to_i420(black_box(&frame), MATRIX, RANGE, &mut picture)),
    );
    // 10-bit streams: X2Rgb10 (depth 30) to 10-bit 4:2:0 and 4:4:4, full range.
    for (w, h) in SIZES {
        let frame = x2rgb10(&synthetic::render_frame(w, h, 1, 60));
        for (chroma, name) in [
            (Chroma::Yuv420, "x2rgb10_to_i010"),
            (Chroma::Yuv444, "x2rgb10_to_i410"),
        ] {
            let mut picture = Yuv10::new(w, h, chroma);
            g.throughput(Throughput::Elements(u64::from(w) * u64::from(h)));
            g.bench_function(BenchmarkId::new(name, format!("{w}x{h}")), |b| {
                b.iter(|| rgb_to_yuv10(black_box(&frame), MATRIX, ColourRange::Full, &mut picture))
            });
        }
    }
    g.finish();
}

fn bench_viewer(c: &mut Criterion) {
    let mut g = c.benchmark_group("convert/viewer");
    for (w, h) in SIZES {
        let size = format!("{w}x{h}");
        let frame = decoded(w, h);
        let mut out = vec![0u8; w as usize * h as usize * 4];
        g.throughput(Throughput::Elements(u64::from(w) * u64::from(h)));
        g.bench_function(BenchmarkId::new("i420_to_rgba", &size), |b| {
            b.iter(|| i420_to_rgba(black_box(&frame), &mut out))
        });
        if w == SIZES[0].0 {
            g.bench_function(BenchmarkId::new("i420_to_bgrx", &size), |b| {
                b.iter(|| i420_to_bgrx(black_box(&frame), &mut out))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_host, bench_viewer);
criterion_main!(benches);
