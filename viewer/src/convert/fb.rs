//! YUV → framebuffer words for the CPU present path: `0x00RRGGBB` (softbuffer's layout, B, G, R,
//! 0 in memory), written straight into the presentation buffer, a row span at a time.
//!
//! Takes every [`PictureFormat`]: 8- and 10-bit, 4:2:0 and 4:4:4. 10-bit pictures are shown on an
//! 8-bit framebuffer with an **ordered dither** (8×8 Bayer): each output code is
//! `floor(v · 255 / max + t)` with the threshold `t = (bayer(x, y) + ½) / 64` taken at the
//! picture pixel, so a smooth 10-bit ramp averages to its exact level over every 8×8 block
//! instead of banding into 256 steps, and the mean level is kept. 8-bit pictures are rounded.
//!
//! # Implementation
//!
//! Fixed point (`i32`, 16 fractional bits) in plain Rust, eight pixels per step so the
//! compiler vectorises it, compiled twice — for AVX2 (picked at run time) and for the
//! baseline — like [`super::i420_to_rgba`]. [`reference`] is the `f32` reference it is tested
//! against (within one code). Spans start at an even picture column so 4:2:0 chroma pairs line
//! up; callers round damage outwards to even columns.
//!
//! The matrix and range are the frame's (BT.601, BT.709, BT.2020 non-constant luminance,
//! limited or full range, and identity/GBR), with the host's coefficient table
//! ([`YuvCoefficients`]).

use sightline_protocol::colour::YuvCoefficients;
use sightline_protocol::msg::{ColourMatrix, ColourRange};

use crate::frame::{DecodedFrame, PictureFormat};

/// Fractional bits of the fixed-point coefficients.
const FRAC: u32 = 16;

/// The 8×8 Bayer threshold at (`x`, `y`), `0..64`; every value appears once per 8×8 block.
pub fn bayer8(x: u32, y: u32) -> u32 {
    // Bit-reversed interleave of (x ^ y) and y.
    let (a, b) = (x ^ y, y);
    ((a & 1) << 5)
        | ((b & 1) << 4)
        | ((a & 2) << 2)
        | ((b & 2) << 1)
        | ((a & 4) >> 1)
        | ((b & 4) >> 2)
}

/// Fixed-point conversion coefficients for one frame's matrix, range and depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coeffs {
    ys: i32,
    y_off: i32,
    rv: i32,
    gu: i32,
    gv: i32,
    bu: i32,
    c_zero: i32,
    identity: bool,
    dither: bool,
}

impl Coeffs {
    /// Coefficients for `matrix`, `range` and `bits`-deep samples; 10-bit ones are dithered.
    pub fn new(matrix: ColourMatrix, range: ColourRange, bits: u8) -> Coeffs {
        let c = YuvCoefficients::new(matrix, range, bits);
        let q = |x: f32| (f64::from(x) * f64::from(1u32 << FRAC)).round() as i32;
        let ys = 255.0 / c.y_range;
        let cs = 255.0 / c.c_range;
        let identity = matrix == ColourMatrix::Identity;
        let kg = if identity { 1.0 } else { c.kg() };
        Coeffs {
            ys: q(ys),
            y_off: q(-ys * c.y_black),
            rv: q(2.0 * (1.0 - c.kr) * cs),
            gu: q(-2.0 * (1.0 - c.kb) * c.kb / kg * cs),
            gv: q(-2.0 * (1.0 - c.kr) * c.kr / kg * cs),
            bu: q(2.0 * (1.0 - c.kb) * cs),
            c_zero: c.c_zero as i32,
            identity,
            dither: bits > 8,
        }
    }

    /// Coefficients for `frame`.
    pub fn of(frame: &DecodedFrame) -> Coeffs {
        Coeffs::new(frame.matrix, frame.range, frame.format.bit_depth())
    }

    /// What is added before the final shift for the eight columns `x ≡ 0..8 (mod 8)` of row
    /// `y`: the rounding half for 8-bit, the dither thresholds for 10-bit.
    fn bias(&self, y: u32) -> [i32; 8] {
        if self.dither {
            std::array::from_fn(|x| ((2 * bayer8(x as u32, y) + 1) << (FRAC - 7)) as i32)
        } else {
            [1 << (FRAC - 1); 8]
        }
    }

    #[inline(always)]
    fn word(&self, y: i32, u: i32, v: i32, bias: i32) -> u32 {
        // Wrapping arithmetic: the values cannot overflow (10-bit samples, 16-bit fractions),
        // and without overflow checks the loop vectorises in test builds too.
        let l = y
            .wrapping_mul(self.ys)
            .wrapping_add(self.y_off)
            .wrapping_add(bias);
        let (u, v) = (u.wrapping_sub(self.c_zero), v.wrapping_sub(self.c_zero));
        let r = l.wrapping_add(self.rv.wrapping_mul(v));
        let g = l
            .wrapping_add(self.gu.wrapping_mul(u))
            .wrapping_add(self.gv.wrapping_mul(v));
        let b = l.wrapping_add(self.bu.wrapping_mul(u));
        let q = |c: i32| (c >> FRAC).clamp(0, 255) as u32;
        (q(r) << 16) | (q(g) << 8) | q(b)
    }

    /// Identity (GBR): Y, Cb, Cr carry G, B, R at luma scale.
    #[inline(always)]
    fn word_gbr(&self, y: i32, u: i32, v: i32, bias: i32) -> u32 {
        let n = |s: i32| {
            (s.wrapping_mul(self.ys)
                .wrapping_add(self.y_off)
                .wrapping_add(bias)
                >> FRAC)
                .clamp(0, 255) as u32
        };
        (n(v) << 16) | (n(y) << 8) | n(u)
    }
}

/// One sample layout: bytes per sample and how to read one.
trait Sample {
    const BYTES: usize;
    fn at(bytes: &[u8], i: usize) -> i32;
}

struct Eight;
impl Sample for Eight {
    const BYTES: usize = 1;
    #[inline(always)]
    fn at(bytes: &[u8], i: usize) -> i32 {
        i32::from(bytes[i])
    }
}

struct Ten;
impl Sample for Ten {
    const BYTES: usize = 2;
    #[inline(always)]
    fn at(bytes: &[u8], i: usize) -> i32 {
        // The low 10 bits; stray high bits from a broken decoder cannot overflow the math.
        i32::from(u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]) & 0x3ff)
    }
}

/// Converts `out.len()` pixels: `y` holds their luma bytes, `u`/`v` the chroma bytes from the
/// span's (even) first column; `SUB` is 1 for 4:2:0, 0 for 4:4:4; `bias[j]` belongs to the
/// span's column `j (mod 8)`.
#[inline(always)]
fn span<S: Sample, const SUB: usize>(
    k: &Coeffs,
    y: &[u8],
    u: &[u8],
    v: &[u8],
    bias: &[i32; 8],
    out: &mut [u32],
) {
    let n = out.len();
    let full = n / 8 * 8;
    if SUB == 1 && S::BYTES == 1 {
        // 8-bit 4:2:0: pairs of pixels sharing a chroma sample, with the one rounding bias of
        // undithered samples (what the vectoriser handles best for this layout).
        let round = bias[0];
        let pairs = out[..full]
            .chunks_exact_mut(2)
            .zip(y.chunks_exact(2))
            .zip(u.iter().zip(v));
        for ((o, yy), (&cu, &cv)) in pairs {
            let (cu, cv) = (i32::from(cu), i32::from(cv));
            o[0] = k.word(i32::from(yy[0]), cu, cv, round);
            o[1] = k.word(i32::from(yy[1]), cu, cv, round);
        }
    } else {
        span_lanes::<S, SUB>(k, y, u, v, bias, &mut out[..full]);
    }
    for j in full..n {
        let c = j >> SUB;
        out[j] = k.word(S::at(y, j), S::at(u, c), S::at(v, c), bias[j & 7]);
    }
}

/// Eight pixels at a time: samples into lanes first (chroma repeated for 4:2:0), then eight
/// identical lanes of arithmetic.
#[inline(always)]
fn span_lanes<S: Sample, const SUB: usize>(
    k: &Coeffs,
    y: &[u8],
    u: &[u8],
    v: &[u8],
    bias: &[i32; 8],
    out: &mut [u32],
) {
    let (yb, cb) = (8 * S::BYTES, (8 >> SUB) * S::BYTES);
    let chunks = out
        .chunks_exact_mut(8)
        .zip(y.chunks_exact(yb))
        .zip(u.chunks_exact(cb).zip(v.chunks_exact(cb)));
    for ((o, yy), (uu, vv)) in chunks {
        // Samples into lanes first (chroma repeated for 4:2:0), then eight identical lanes of
        // arithmetic: the shape the vectoriser handles for every sample size.
        let ys: [i32; 8] = std::array::from_fn(|j| S::at(yy, j));
        let us: [i32; 8] = std::array::from_fn(|j| S::at(uu, j >> SUB));
        let vs: [i32; 8] = std::array::from_fn(|j| S::at(vv, j >> SUB));
        for j in 0..8 {
            o[j] = k.word(ys[j], us[j], vs[j], bias[j]);
        }
    }
}

/// Where a span's samples start in `frame`'s planes: luma row `row`, first column `x0` (even).
#[inline(always)]
fn planes(frame: &DecodedFrame, row: usize, x0: usize, n: usize) -> (&[u8], &[u8], &[u8]) {
    let b = frame.format.bytes_per_sample();
    let (cx, cy, cn) = if frame.format.is_420() {
        (x0 / 2, row / 2, n.div_ceil(2))
    } else {
        (x0, row, n)
    };
    let y = &frame.y[row * frame.y_stride + x0 * b..][..n * b];
    let c = cy * frame.uv_stride + cx * b;
    (y, &frame.u[c..][..cn * b], &frame.v[c..][..cn * b])
}

/// One span in whatever format the frame has.
#[inline(always)]
fn any_span(k: &Coeffs, frame: &DecodedFrame, row: usize, x0: usize, out: &mut [u32]) {
    let n = out.len();
    let (y, u, v) = planes(frame, row, x0, n);
    let mut bias = k.bias(row as u32);
    bias.rotate_left(x0 & 7);
    if k.identity {
        let sub = usize::from(frame.format.is_420());
        let at = |p: &[u8], i: usize| match frame.format.bytes_per_sample() {
            1 => Eight::at(p, i),
            _ => Ten::at(p, i),
        };
        for (j, o) in out.iter_mut().enumerate() {
            let c = j >> sub;
            *o = k.word_gbr(at(y, j), at(u, c), at(v, c), bias[j & 7]);
        }
        return;
    }
    match frame.format {
        PictureFormat::I420 => span::<Eight, 1>(k, y, u, v, &bias, out),
        PictureFormat::I444 => span::<Eight, 0>(k, y, u, v, &bias, out),
        PictureFormat::I420P10 => span::<Ten, 1>(k, y, u, v, &bias, out),
        PictureFormat::I444P10 => span::<Ten, 0>(k, y, u, v, &bias, out),
    }
}

/// A rectangle of picture pixels to convert: columns `x0..x1` (x0 even) of rows `y0..y1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First column (even).
    pub x0: usize,
    /// One past the last column.
    pub x1: usize,
    /// First row.
    pub y0: usize,
    /// One past the last row.
    pub y1: usize,
}

/// Converts the picture rectangle `s` into `dst` 1:1: picture pixel (x, y) goes to word
/// `(y − s.y0 + dst_y) · dst_stride + (x − s.x0 + dst_x)`.
///
/// # Panics
/// If `s` is not inside the picture, `s.x0` is odd, the planes are shorter than the format
/// needs (the app checks frames first) or `dst` is too short.
pub fn convert_rect(
    frame: &DecodedFrame,
    k: &Coeffs,
    s: Span,
    dst: &mut [u32],
    dst_stride: usize,
    (dst_x, dst_y): (usize, usize),
) {
    check(frame, s);
    dispatch::rect(frame, k, s, dst, dst_stride, (dst_x, dst_y));
}

/// Converts columns `x0..x1` of picture row `row` into `out` (`x1 − x0` words). Same panics.
pub fn convert_row(frame: &DecodedFrame, k: &Coeffs, row: usize, x0: usize, out: &mut [u32]) {
    check(
        frame,
        Span {
            x0,
            x1: x0 + out.len(),
            y0: row,
            y1: row + 1,
        },
    );
    dispatch::row(frame, k, row, x0, out);
}

fn check(frame: &DecodedFrame, s: Span) {
    assert!(
        s.x0.is_multiple_of(2)
            && s.x0 <= s.x1
            && s.y0 <= s.y1
            && s.x1 <= frame.width as usize
            && s.y1 <= frame.height as usize,
        "span {s:?} outside the {}x{} picture or odd",
        frame.width,
        frame.height
    );
}

#[inline(always)]
fn rect_generic(
    frame: &DecodedFrame,
    k: &Coeffs,
    s: Span,
    dst: &mut [u32],
    stride: usize,
    (dx, dy): (usize, usize),
) {
    let n = s.x1 - s.x0;
    for (i, row) in (s.y0..s.y1).enumerate() {
        let at = (dy + i) * stride + dx;
        any_span(k, frame, row, s.x0, &mut dst[at..at + n]);
    }
}

/// Picks the AVX2 build when the CPU has it.
#[cfg(target_arch = "x86_64")]
mod dispatch {
    use super::{any_span, rect_generic, Coeffs, DecodedFrame, Span};

    pub(super) fn rect(
        f: &DecodedFrame,
        k: &Coeffs,
        s: Span,
        dst: &mut [u32],
        stride: usize,
        at: (usize, usize),
    ) {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: `rect_avx2` needs nothing beyond the AVX2 instructions it was compiled
            // with, and the running CPU has them (checked just above).
            unsafe { rect_avx2(f, k, s, dst, stride, at) }
        } else {
            rect_generic(f, k, s, dst, stride, at)
        }
    }

    pub(super) fn row(f: &DecodedFrame, k: &Coeffs, row: usize, x0: usize, out: &mut [u32]) {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            unsafe { row_avx2(f, k, row, x0, out) }
        } else {
            any_span(k, f, row, x0, out)
        }
    }

    #[target_feature(enable = "avx2")]
    fn rect_avx2(
        f: &DecodedFrame,
        k: &Coeffs,
        s: Span,
        dst: &mut [u32],
        stride: usize,
        at: (usize, usize),
    ) {
        rect_generic(f, k, s, dst, stride, at)
    }

    #[target_feature(enable = "avx2")]
    fn row_avx2(f: &DecodedFrame, k: &Coeffs, row: usize, x0: usize, out: &mut [u32]) {
        any_span(k, f, row, x0, out)
    }
}

/// Other targets: the portable build (NEON on aarch64 is part of the baseline).
#[cfg(not(target_arch = "x86_64"))]
mod dispatch {
    use super::{any_span, rect_generic, Coeffs, DecodedFrame, Span};

    pub(super) fn rect(
        f: &DecodedFrame,
        k: &Coeffs,
        s: Span,
        dst: &mut [u32],
        stride: usize,
        at: (usize, usize),
    ) {
        rect_generic(f, k, s, dst, stride, at)
    }

    pub(super) fn row(f: &DecodedFrame, k: &Coeffs, row: usize, x0: usize, out: &mut [u32]) {
        any_span(k, f, row, x0, out)
    }
}

/// The `f32` reference: one pixel of `frame` as a framebuffer word, with the same dither.
pub fn reference(frame: &DecodedFrame, x: usize, y: usize) -> u32 {
    let f = frame.format;
    let b = f.bytes_per_sample();
    let sample = |p: &[u8], at: usize| -> f32 {
        if b == 1 {
            f32::from(p[at])
        } else {
            f32::from(u16::from_le_bytes([p[at], p[at + 1]]) & 0x3ff)
        }
    };
    let (cx, cy) = if f.is_420() { (x / 2, y / 2) } else { (x, y) };
    let yy = sample(&frame.y, y * frame.y_stride + x * b);
    let u = sample(&frame.u, cy * frame.uv_stride + cx * b);
    let v = sample(&frame.v, cy * frame.uv_stride + cx * b);
    let c = YuvCoefficients::new(frame.matrix, frame.range, f.bit_depth());
    let (r, g, bl) = if frame.matrix == ColourMatrix::Identity {
        let n = |s: f32| (s - c.y_black) / c.y_range;
        (n(v), n(yy), n(u))
    } else {
        c.ycbcr_to_rgb(yy, u, v)
    };
    let q = |v: f32| -> u32 {
        let code = if f.bit_depth() > 8 {
            let t = (bayer8(x as u32, y as u32) as f32 + 0.5) / 64.0;
            (v * 255.0 + t).floor()
        } else {
            (v * 255.0).round()
        };
        code.clamp(0.0, 255.0) as u32
    };
    (q(r) << 16) | (q(g) << 8) | q(bl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A `w × h` frame in `format` with random samples (10-bit ones within 0..1024).
    pub(crate) fn random_frame(
        w: u32,
        h: u32,
        format: PictureFormat,
        pad: usize,
        seed: u64,
    ) -> DecodedFrame {
        let b = format.bytes_per_sample();
        let (cw, ch) = format.chroma_size(w, h);
        let (y_stride, uv_stride) = ((w as usize + pad) * b, (cw as usize + pad) * b);
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut plane = |len: usize| -> Vec<u8> {
            if b == 1 {
                (0..len).map(|_| next() as u8).collect()
            } else {
                (0..len / 2)
                    .flat_map(|_| ((next() % 1024) as u16).to_le_bytes())
                    .collect()
            }
        };
        DecodedFrame {
            width: w,
            height: h,
            format,
            y: plane(y_stride * h as usize),
            u: plane(uv_stride * ch as usize),
            v: plane(uv_stride * ch as usize),
            y_stride,
            uv_stride,
            matrix: ColourMatrix::Bt709,
            range: ColourRange::Limited,
            frame: 0,
            damage: None,
            host_times: None,
            first_packet_us: 0,
            reassembled_us: 0,
            decoded_us: 0,
            decoded_at: Instant::now(),
        }
    }

    const FORMATS: [PictureFormat; 4] = [
        PictureFormat::I420,
        PictureFormat::I444,
        PictureFormat::I420P10,
        PictureFormat::I444P10,
    ];

    fn channels_close(a: u32, b: u32) -> bool {
        (0..3).all(|c| ((a >> (8 * c)) & 0xff).abs_diff((b >> (8 * c)) & 0xff) <= 1)
    }

    #[test]
    fn bayer_is_a_permutation_per_block() {
        let mut seen = [false; 64];
        for y in 0..8 {
            for x in 0..8 {
                let v = bayer8(x, y) as usize;
                assert!(!seen[v]);
                seen[v] = true;
                assert_eq!(bayer8(x + 8, y + 16), v as u32, "period 8");
            }
        }
        // The 2×2 corner is the classic [[0, 2], [3, 1]] pattern, scaled by 16: neighbours are
        // far apart (the point of an ordered dither).
        assert_eq!(
            [bayer8(0, 0), bayer8(1, 0), bayer8(0, 1), bayer8(1, 1)],
            [0, 32, 48, 16]
        );
    }

    #[test]
    fn every_format_matches_the_reference_within_one_code() {
        for (n, format) in FORMATS.into_iter().enumerate() {
            for (w, h) in [(1, 1), (2, 2), (7, 3), (33, 17), (64, 9), (319, 11)] {
                for pad in [0, 5] {
                    let mut f = random_frame(w, h, format, pad, (n * 100 + w as usize) as u64);
                    for matrix in [
                        ColourMatrix::Bt709,
                        ColourMatrix::Bt601,
                        ColourMatrix::Bt2020Ncl,
                        ColourMatrix::Identity,
                    ] {
                        for range in [ColourRange::Limited, ColourRange::Full] {
                            f.matrix = matrix;
                            f.range = range;
                            let k = Coeffs::of(&f);
                            let (w, h) = (w as usize, h as usize);
                            let mut out = vec![0xDEAD_BEEF; w * h];
                            let s = Span {
                                x0: 0,
                                x1: w,
                                y0: 0,
                                y1: h,
                            };
                            convert_rect(&f, &k, s, &mut out, w, (0, 0));
                            for y in 0..h {
                                for x in 0..w {
                                    let (got, want) = (out[y * w + x], reference(&f, x, y));
                                    assert!(
                                        channels_close(got, want) && got >> 24 == 0,
                                        "{format:?} {w}x{h} pad {pad} {matrix:?} {range:?} \
                                         ({x}, {y}): {got:06x} vs {want:06x}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn sub_rectangles_and_rows_equal_the_full_conversion() {
        for format in FORMATS {
            let f = random_frame(70, 21, format, 3, 42);
            let k = Coeffs::of(&f);
            let mut full = vec![0; 70 * 21];
            let all = Span {
                x0: 0,
                x1: 70,
                y0: 0,
                y1: 21,
            };
            convert_rect(&f, &k, all, &mut full, 70, (0, 0));
            // A rectangle at (10, 5) of 23×9 written at (1, 2) of a 40-wide buffer.
            let mut part = vec![0; 40 * 12];
            let s = Span {
                x0: 10,
                x1: 33,
                y0: 5,
                y1: 14,
            };
            convert_rect(&f, &k, s, &mut part, 40, (1, 2));
            for y in 5..14 {
                for x in 10..33 {
                    assert_eq!(
                        part[(y - 5 + 2) * 40 + x - 10 + 1],
                        full[y * 70 + x],
                        "{format:?}"
                    );
                }
            }
            let mut row = vec![0; 36];
            convert_row(&f, &k, 20, 34, &mut row);
            assert_eq!(&row[..], &full[20 * 70 + 34..20 * 70 + 70]);
        }
    }

    #[test]
    fn known_colours_in_every_format() {
        // BT.709 limited 75 % red (51, 109, 212) at 8 bits, ×4 at 10 bits → R 191, G 0, B 0.
        for format in FORMATS {
            let mut f = random_frame(8, 8, format, 0, 1);
            let scale = if format.bit_depth() > 8 { 4u16 } else { 1 };
            let put = |p: &mut Vec<u8>, v: u16| {
                let b = format.bytes_per_sample();
                for px in p.chunks_exact_mut(b) {
                    px.copy_from_slice(&(v * scale).to_le_bytes()[..b]);
                }
            };
            put(&mut f.y, 51);
            put(&mut f.u, 109);
            put(&mut f.v, 212);
            let mut out = vec![0; 64];
            let s = Span {
                x0: 0,
                x1: 8,
                y0: 0,
                y1: 8,
            };
            convert_rect(&f, &Coeffs::of(&f), s, &mut out, 8, (0, 0));
            for w in out {
                let (r, g, b) = (w >> 16, (w >> 8) & 0xff, w & 0xff);
                assert!(
                    r.abs_diff(191) <= 1 && g <= 1 && b <= 1,
                    "{format:?}: {w:06x}"
                );
            }
        }
    }

    /// A horizontal 10-bit luma ramp (grey, 4:4:4 and 4:2:0): averaged over the dither period
    /// the shown levels follow the 10-bit input (more than 256 distinct means, overall mean
    /// kept), where rounding to 8 bits would give at most 256 levels.
    #[test]
    fn ten_bit_ramp_does_not_band() {
        for format in [PictureFormat::I444P10, PictureFormat::I420P10] {
            let (w, h) = (1024u32, 16u32);
            let mut f = random_frame(w, h, format, 0, 1);
            f.range = ColourRange::Full;
            for row in f.y.chunks_exact_mut(w as usize * 2) {
                for (x, px) in row.chunks_exact_mut(2).enumerate() {
                    px.copy_from_slice(&(x as u16).to_le_bytes());
                }
            }
            for c in f.u.chunks_exact_mut(2).chain(f.v.chunks_exact_mut(2)) {
                c.copy_from_slice(&512u16.to_le_bytes());
            }
            let mut out = vec![0; (w * h) as usize];
            let s = Span {
                x0: 0,
                x1: w as usize,
                y0: 0,
                y1: h as usize,
            };
            convert_rect(&f, &Coeffs::of(&f), s, &mut out, w as usize, (0, 0));
            // Each column holds one input level; its mean over the 8 rows of the dither period
            // is what the eye averages. Rounding would give the same code in every row, so at
            // most 256 distinct column means; the dither gives fractions of a code.
            let mut means = Vec::new();
            let mut worst: f64 = 0.0;
            for x in 0..w as usize {
                let sum: u32 = (0..8).map(|y| (out[y * w as usize + x] >> 8) & 0xff).sum();
                let col = f64::from(sum) / 8.0;
                worst = worst.max((col - x as f64 * 255.0 / 1023.0).abs());
                means.push(col);
            }
            assert!(worst <= 0.5, "{format:?}: a column mean is off by {worst}");
            let mut distinct: Vec<u64> = means.iter().map(|m| (m * 8.0) as u64).collect();
            distinct.sort_unstable();
            distinct.dedup();
            assert!(
                distinct.len() > 256,
                "{format:?}: only {} distinct levels",
                distinct.len()
            );
            let total_in: f64 = (0..w).map(|x| f64::from(x) * 255.0 / 1023.0).sum::<f64>() * 8.0;
            let total_out: f64 = means.iter().sum::<f64>() * 8.0;
            assert!(
                ((total_out - total_in) / total_in).abs() < 1e-3,
                "{format:?}: mean level moved ({total_out} vs {total_in})"
            );
        }
    }

    #[test]
    #[should_panic(expected = "odd")]
    fn odd_first_column_panics() {
        let f = random_frame(8, 2, PictureFormat::I420, 0, 1);
        let mut out = vec![0; 4];
        convert_row(&f, &Coeffs::of(&f), 0, 1, &mut out);
    }
}
