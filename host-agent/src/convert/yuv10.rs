//! The "convert" stage for 10-bit streams: captured RGB → planar YCbCr with 10-bit samples,
//! 4:2:0 (`yuv420p10le`, "I010") or 4:4:4 (`yuv444p10le`, "I410").
//!
//! # Model
//! The same as the 8-bit path ([`super`]): the picture is the source size rounded up to even,
//! an odd last column or row is replicated into the padding, matrix and range come from the
//! stream configuration ([`YuvCoefficients`] with `bits = 10`: limited range puts black at 64
//! and white at 940, full range uses 0..=1023), and a 4:2:0 chroma sample is the mean of its
//! 2×2 block. Samples are `u16` holding the value in their low 10 bits, as FFmpeg's
//! `yuv420p10le` / `yuv444p10le` want them.
//!
//! Sources: [`X2Rgb10`](PixelFormat::X2Rgb10) (an X11 depth-30 screen, the 10-bit synthetic
//! gradient) keeps all its bits; [`Bgrx8`](PixelFormat::Bgrx8) is widened by bit replication
//! (`v << 2 | v >> 6`, so 255 becomes 1023), which is what an 8-bit desktop looks like on a
//! 10-bit stream.
//!
//! # Implementations
//! [`scalar_rgb_to_yuv10`] is the reference: `f32` maths, rounded once per sample. The fast
//! path unpacks the region, in strips of [`STRIP_ROWS`] rows that stay in L2, into 16-bit RGBA
//! (replicating edges into the padding, so every strip is an even-sized block) and hands each
//! strip to the `yuv` crate's SIMD kernels (`rgba10_to_i010` / `rgba10_to_i410`: AVX2 or SSE4.1
//! picked at run time, 15-bit fixed point). Its results are within one code of the reference
//! (tested over random pictures for every matrix and range). Identity (GBR) always takes the
//! scalar path. Figures: `cargo bench -p sightline-benches --bench convert` (docs/benchmarks.md).

use sightline_protocol::colour::YuvCoefficients;
use sightline_protocol::msg::{Chroma, ColourMatrix, ColourRange};
use yuv::{BufferStoreMut, YuvError, YuvPlanarImageMut};

use super::fast::{yuv_matrix, yuv_range};
use super::{plan_region, source_fits, RectPlan, Region};
use crate::capture::{CapturedFrame, PixelFormat, Rect};

/// Rows per unpacked strip (even).
const STRIP_ROWS: usize = 16;

/// A planar 10-bit YCbCr picture, 4:2:0 or 4:4:4.
///
/// `width` and `height` are even (the source size rounded up); planes are tight (`stride ×
/// rows` samples), strides are in samples (`u16`), not bytes.
#[derive(Clone)]
pub struct Yuv10 {
    /// Width in pixels (even).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Chroma subsampling.
    pub chroma: Chroma,
    /// Luma, `y_stride × height` samples.
    pub y: Vec<u16>,
    /// Cb, `uv_stride × chroma rows` samples.
    pub u: Vec<u16>,
    /// Cr, `uv_stride × chroma rows` samples.
    pub v: Vec<u16>,
    /// Samples per luma row.
    pub y_stride: usize,
    /// Samples per chroma row.
    pub uv_stride: usize,
    /// Unpacked RGBA16 strip (reused).
    scratch: Vec<u16>,
}

impl std::fmt::Debug for Yuv10 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Yuv10")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("chroma", &self.chroma)
            .finish_non_exhaustive()
    }
}

impl Yuv10 {
    /// A black (limited range) picture for a `width × height` source, rounded up to even.
    pub fn new(width: u32, height: u32, chroma: Chroma) -> Yuv10 {
        let mut p = Yuv10 {
            width: 0,
            height: 0,
            chroma,
            y: Vec::new(),
            u: Vec::new(),
            v: Vec::new(),
            y_stride: 0,
            uv_stride: 0,
            scratch: Vec::new(),
        };
        p.reshape(width, height, chroma);
        p
    }

    /// Chroma plane size in samples.
    pub fn chroma_size(&self) -> (usize, usize) {
        match self.chroma {
            Chroma::Yuv420 => (self.width as usize / 2, self.height as usize / 2),
            Chroma::Yuv444 => (self.width as usize, self.height as usize),
        }
    }

    /// Resizes for a `width × height` source (rounded up to even) in `chroma`; an unchanged
    /// shape keeps the pixels, otherwise the picture is black afterwards.
    pub fn reshape(&mut self, width: u32, height: u32, chroma: Chroma) {
        let (w, h) = super::I420::padded_size(width, height);
        if (w, h, chroma) == (self.width, self.height, self.chroma) && self.planes_fit() {
            return;
        }
        self.width = w;
        self.height = h;
        self.chroma = chroma;
        let (cw, ch) = self.chroma_size();
        self.y_stride = w as usize;
        self.uv_stride = cw;
        self.y.clear();
        self.y.resize(w as usize * h as usize, 64);
        self.u.clear();
        self.u.resize(cw * ch, 512);
        self.v.clear();
        self.v.resize(cw * ch, 512);
    }

    /// Whether the public fields describe planes the converters can write.
    fn planes_fit(&self) -> bool {
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = self.chroma_size();
        w % 2 == 0
            && h % 2 == 0
            && self.y_stride >= w
            && self.uv_stride >= cw
            && self.y.len() >= self.y_stride * h
            && self.u.len() >= self.uv_stride * ch
            && self.v.len() >= self.uv_stride * ch
    }

    /// The plane bytes as FFmpeg lays them out (little-endian `u16`), for encoders and files.
    pub fn plane_bytes(plane: &[u16]) -> Vec<u8> {
        plane.iter().flat_map(|s| s.to_le_bytes()).collect()
    }
}

/// Converts the whole of `src` into `dst` (reshaped to `src`'s padded size, keeping its chroma).
pub fn rgb_to_yuv10(
    src: &CapturedFrame,
    matrix: ColourMatrix,
    range: ColourRange,
    dst: &mut Yuv10,
) {
    dst.reshape(src.width, src.height, dst.chroma);
    if source_fits(src) {
        convert(src, Region::full(src), matrix, range, dst);
    }
}

/// Converts only `rect` of `src` (clipped, expanded to even edges), leaving the rest of `dst`;
/// converts everything when `dst` does not have `src`'s padded size.
pub fn rgb_to_yuv10_rect(
    src: &CapturedFrame,
    rect: Rect,
    matrix: ColourMatrix,
    range: ColourRange,
    dst: &mut Yuv10,
) {
    let size_ok = super::I420::padded_size(src.width, src.height) == (dst.width, dst.height)
        && dst.planes_fit();
    match plan_region(src, rect, size_ok) {
        RectPlan::Whole => rgb_to_yuv10(src, matrix, range, dst),
        RectPlan::Region(region) => convert(src, region, matrix, range, dst),
        RectPlan::Nothing => {}
    }
}

/// Reference version of [`rgb_to_yuv10`].
pub fn scalar_rgb_to_yuv10(
    src: &CapturedFrame,
    matrix: ColourMatrix,
    range: ColourRange,
    dst: &mut Yuv10,
) {
    dst.reshape(src.width, src.height, dst.chroma);
    if source_fits(src) {
        scalar_region(src, Region::full(src), matrix, range, dst);
    }
}

fn convert(
    src: &CapturedFrame,
    region: Region,
    matrix: ColourMatrix,
    range: ColourRange,
    dst: &mut Yuv10,
) {
    if matrix == ColourMatrix::Identity {
        scalar_region(src, region, matrix, range, dst);
        return;
    }
    if let Err(e) = fast_region(src, region, matrix, range, dst) {
        debug_assert!(false, "yuv crate refused a 10-bit region: {e}");
        scalar_region(src, region, matrix, range, dst);
    }
}

fn fast_region(
    src: &CapturedFrame,
    region: Region,
    matrix: ColourMatrix,
    range: ColourRange,
    dst: &mut Yuv10,
) -> Result<(), YuvError> {
    let u32_of = |v: usize| u32::try_from(v).map_err(|_| YuvError::PointerOverflow);
    let (m, r) = (yuv_matrix(matrix), yuv_range(range));
    let cols = region.x1 - region.x0;
    let sub420 = dst.chroma == Chroma::Yuv420;
    let (xs, ys) = if sub420 { (2, 2) } else { (1, 1) };
    let Yuv10 {
        y,
        u,
        v,
        y_stride,
        uv_stride,
        scratch,
        ..
    } = dst;
    scratch.resize(STRIP_ROWS * cols * 4, 0);
    for top in (region.y0..region.y1).step_by(STRIP_ROWS) {
        let rows = STRIP_ROWS.min(region.y1 - top);
        for (i, out) in scratch.chunks_exact_mut(cols * 4).take(rows).enumerate() {
            unpack_row(src, top + i, region.x0, out);
        }
        let mut image = YuvPlanarImageMut {
            y_plane: BufferStoreMut::Borrowed(&mut y[top * *y_stride + region.x0..]),
            y_stride: u32_of(*y_stride)?,
            u_plane: BufferStoreMut::Borrowed(&mut u[top / ys * *uv_stride + region.x0 / xs..]),
            u_stride: u32_of(*uv_stride)?,
            v_plane: BufferStoreMut::Borrowed(&mut v[top / ys * *uv_stride + region.x0 / xs..]),
            v_stride: u32_of(*uv_stride)?,
            width: u32_of(cols)?,
            height: u32_of(rows)?,
        };
        let rgba = &scratch[..rows * cols * 4];
        let stride = u32_of(cols * 4)?;
        if sub420 {
            yuv::rgba10_to_i010(&mut image, rgba, stride, r, m)?;
        } else {
            yuv::rgba10_to_i410(&mut image, rgba, stride, r, m)?;
        }
    }
    Ok(())
}

/// Unpacks picture row `row` from column `x0` into `out` (RGBA, 10-bit values in `u16`),
/// replicating the source's last row and column into the padding.
fn unpack_row(src: &CapturedFrame, row: usize, x0: usize, out: &mut [u16]) {
    let (w, h) = (src.width as usize, src.height as usize);
    let start = row.min(h - 1) * src.stride;
    let cols = out.len() / 4;
    let inside = cols.min(w - x0);
    let bytes = &src.data[start + x0 * 4..start + (x0 + inside) * 4];
    let (body, pad) = out.split_at_mut(inside * 4);
    match src.format {
        PixelFormat::X2Rgb10 => unpack_x2rgb10(bytes, body),
        PixelFormat::Bgrx8 => widen_bgrx8(bytes, body),
    }
    if !pad.is_empty() {
        let last = [
            body[body.len() - 4],
            body[body.len() - 3],
            body[body.len() - 2],
            1023,
        ];
        for px in pad.chunks_exact_mut(4) {
            px.copy_from_slice(&last);
        }
    }
}

/// `x2 r10 g10 b10` little-endian words → R, G, B, A (1023) samples.
fn unpack_x2rgb10(src: &[u8], dst: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the function needs nothing beyond the AVX2 instructions it was compiled
        // with, and the running CPU has them (checked just above).
        return unsafe { unpack_x2rgb10_avx2(src, dst) };
    }
    unpack_x2rgb10_portable(src, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn unpack_x2rgb10_avx2(src: &[u8], dst: &mut [u16]) {
    unpack_x2rgb10_portable(src, dst)
}

#[inline(always)]
fn unpack_x2rgb10_portable(src: &[u8], dst: &mut [u16]) {
    for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(4)) {
        let w = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        d[0] = ((w >> 20) & 0x3FF) as u16;
        d[1] = ((w >> 10) & 0x3FF) as u16;
        d[2] = (w & 0x3FF) as u16;
        d[3] = 1023;
    }
}

/// 8-bit B, G, R, X → 10-bit R, G, B, A by bit replication (`v << 2 | v >> 6`).
fn widen_bgrx8(src: &[u8], dst: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: as in `unpack_x2rgb10`: AVX2 is present (checked just above).
        return unsafe { widen_bgrx8_avx2(src, dst) };
    }
    widen_bgrx8_portable(src, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn widen_bgrx8_avx2(src: &[u8], dst: &mut [u16]) {
    widen_bgrx8_portable(src, dst)
}

#[inline(always)]
fn widen_bgrx8_portable(src: &[u8], dst: &mut [u16]) {
    let widen = |v: u8| ((v as u16) << 2) | ((v as u16) >> 6);
    for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(4)) {
        d[0] = widen(s[2]);
        d[1] = widen(s[1]);
        d[2] = widen(s[0]);
        d[3] = 1023;
    }
}

/// Normalised R, G, B of source pixel (`x`, `y`) clamped to the edge, as the fast path sees it
/// (8-bit widened by replication, then over 1023).
fn rgb_at(src: &CapturedFrame, x: usize, y: usize) -> (f32, f32, f32) {
    let x = x.min(src.width as usize - 1);
    let y = y.min(src.height as usize - 1);
    let mut px = [0u16; 4];
    let i = y * src.stride + x * 4;
    match src.format {
        PixelFormat::X2Rgb10 => unpack_x2rgb10_portable(&src.data[i..i + 4], &mut px),
        PixelFormat::Bgrx8 => widen_bgrx8_portable(&src.data[i..i + 4], &mut px),
    }
    let n = |v: u16| v as f32 / 1023.0;
    (n(px[0]), n(px[1]), n(px[2]))
}

fn scalar_region(
    src: &CapturedFrame,
    region: Region,
    matrix: ColourMatrix,
    range: ColourRange,
    dst: &mut Yuv10,
) {
    let c = YuvCoefficients::new(matrix, range, 10);
    let identity = matrix == ColourMatrix::Identity;
    let ycbcr = |x: usize, y: usize| {
        let (r, g, b) = rgb_at(src, x, y);
        if identity {
            let q = |v: f32| c.y_black + c.y_range * v;
            (q(g), q(b), q(r))
        } else {
            c.rgb_to_ycbcr(r, g, b)
        }
    };
    let q = |v: f32| v.round().clamp(0.0, 1023.0) as u16;
    let sub420 = dst.chroma == Chroma::Yuv420;
    for y in region.y0..region.y1 {
        for x in region.x0..region.x1 {
            let (luma, cb, cr) = ycbcr(x, y);
            dst.y[y * dst.y_stride + x] = q(luma);
            if !sub420 {
                dst.u[y * dst.uv_stride + x] = q(cb);
                dst.v[y * dst.uv_stride + x] = q(cr);
            }
        }
    }
    if sub420 {
        for cy in region.y0 / 2..region.y1 / 2 {
            for cx in region.x0 / 2..region.x1 / 2 {
                let (mut cb, mut cr) = (0.0, 0.0);
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let (_, b, r) = ycbcr(2 * cx + dx, 2 * cy + dy);
                    cb += b;
                    cr += r;
                }
                dst.u[cy * dst.uv_stride + cx] = q(cb / 4.0);
                dst.v[cy * dst.uv_stride + cx] = q(cr / 4.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MATRICES: [ColourMatrix; 3] = [
        ColourMatrix::Bt709,
        ColourMatrix::Bt2020Ncl,
        ColourMatrix::Bt601,
    ];
    const RANGES: [ColourRange; 2] = [ColourRange::Limited, ColourRange::Full];

    fn random_frame(w: u32, h: u32, format: PixelFormat, seed: u64) -> CapturedFrame {
        let mut f = CapturedFrame::new();
        f.reshape(w, h, format);
        let mut s = seed | 1;
        for (i, px) in f.data.chunks_exact_mut(4).enumerate() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            // Every third row a smooth ramp, so flat areas are covered too.
            let word = if (i / w as usize).is_multiple_of(3) {
                let v = (i % w as usize * 1023 / w as usize) as u32;
                match format {
                    PixelFormat::X2Rgb10 => v << 20 | v << 10 | (1023 - v),
                    PixelFormat::Bgrx8 => (v >> 2) * 0x0001_0101,
                }
            } else {
                s as u32
            };
            px.copy_from_slice(&word.to_le_bytes());
        }
        f
    }

    fn max_diff(a: &[u16], b: &[u16]) -> u16 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0)
    }

    fn fast_vs_scalar(
        f: &CapturedFrame,
        chroma: Chroma,
        m: ColourMatrix,
        r: ColourRange,
    ) -> [u16; 3] {
        let mut fast = Yuv10::new(1, 1, chroma);
        let mut reference = Yuv10::new(1, 1, chroma);
        rgb_to_yuv10(f, m, r, &mut fast);
        scalar_rgb_to_yuv10(f, m, r, &mut reference);
        [
            max_diff(&fast.y, &reference.y),
            max_diff(&fast.u, &reference.u),
            max_diff(&fast.v, &reference.v),
        ]
    }

    #[test]
    fn fast_matches_scalar_for_every_matrix_range_and_chroma() {
        for format in [PixelFormat::X2Rgb10, PixelFormat::Bgrx8] {
            for (w, h) in [(130, 66), (33, 17), (64, 2)] {
                let f = random_frame(w, h, format, w as u64 + h as u64);
                for chroma in [Chroma::Yuv420, Chroma::Yuv444] {
                    for m in MATRICES {
                        for r in RANGES {
                            let d = fast_vs_scalar(&f, chroma, m, r);
                            assert!(
                                d.iter().all(|&d| d <= 1),
                                "{format:?} {w}x{h} {chroma:?} {m:?} {r:?}: {d:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    fn solid10(w: u32, h: u32, rgb: (u32, u32, u32)) -> CapturedFrame {
        let mut f = CapturedFrame::new();
        f.reshape(w, h, PixelFormat::X2Rgb10);
        let word = rgb.0 << 20 | rgb.1 << 10 | rgb.2;
        for px in f.data.chunks_exact_mut(4) {
            px.copy_from_slice(&word.to_le_bytes());
        }
        f
    }

    #[test]
    fn known_10_bit_codes() {
        // BT.709 / BT.2020 limited: black 64, white 940, chroma 512; full: 0 and 1023.
        for m in MATRICES {
            for chroma in [Chroma::Yuv420, Chroma::Yuv444] {
                let mut p = Yuv10::new(1, 1, chroma);
                for (rgb, range, want) in [
                    ((1023, 1023, 1023), ColourRange::Limited, 940),
                    ((0, 0, 0), ColourRange::Limited, 64),
                    ((1023, 1023, 1023), ColourRange::Full, 1023),
                    ((0, 0, 0), ColourRange::Full, 0),
                ] {
                    rgb_to_yuv10(&solid10(8, 4, rgb), m, range, &mut p);
                    assert!(p.y.iter().all(|&y| y == want), "{m:?} {range:?} {rgb:?}");
                    assert!(p.u.iter().chain(&p.v).all(|&c| c == 512), "{m:?} {rgb:?}");
                }
            }
        }
        // BT.709 limited pure red: Y 250, Cb 409, Cr 960 (the 8-bit 63/102/240 × 4, rounded
        // from the exact values).
        let mut p = Yuv10::new(1, 1, Chroma::Yuv420);
        scalar_rgb_to_yuv10(
            &solid10(4, 2, (1023, 0, 0)),
            ColourMatrix::Bt709,
            ColourRange::Limited,
            &mut p,
        );
        assert_eq!((p.y[0], p.u[0], p.v[0]), (250, 409, 960));
    }

    #[test]
    fn a_1024_level_ramp_keeps_every_level() {
        // One level per column: full range keeps all 1024 luma codes, limited range all 877.
        let mut f = CapturedFrame::new();
        f.reshape(1024, 2, PixelFormat::X2Rgb10);
        for (i, px) in f.data.chunks_exact_mut(4).enumerate() {
            let v = (i % 1024) as u32;
            px.copy_from_slice(&(v << 20 | v << 10 | v).to_le_bytes());
        }
        for (range, want) in [(ColourRange::Full, 1024), (ColourRange::Limited, 877)] {
            let mut p = Yuv10::new(1, 1, Chroma::Yuv420);
            rgb_to_yuv10(&f, ColourMatrix::Bt709, range, &mut p);
            let mut codes = p.y.clone();
            codes.sort_unstable();
            codes.dedup();
            assert_eq!(codes.len(), want, "{range:?}");
        }
    }

    #[test]
    fn rect_conversion_matches_a_full_one_and_touches_nothing_else() {
        for chroma in [Chroma::Yuv420, Chroma::Yuv444] {
            let f = random_frame(67, 45, PixelFormat::X2Rgb10, 3);
            let mut full = Yuv10::new(1, 1, chroma);
            rgb_to_yuv10(&f, ColourMatrix::Bt709, ColourRange::Full, &mut full);
            for rect in [
                Rect {
                    x: 11,
                    y: 7,
                    w: 19,
                    h: 9,
                },
                Rect {
                    x: 60,
                    y: 40,
                    w: 50,
                    h: 50,
                },
                Rect {
                    x: 0,
                    y: 44,
                    w: 67,
                    h: 1,
                },
                Rect {
                    x: 5,
                    y: 0,
                    w: 1,
                    h: 45,
                },
            ] {
                let mut p = Yuv10::new(67, 45, chroma);
                for plane in [&mut p.y, &mut p.u, &mut p.v] {
                    plane.fill(7);
                }
                rgb_to_yuv10_rect(&f, rect, ColourMatrix::Bt709, ColourRange::Full, &mut p);
                let region = Region::from_rect(&f, rect).expect("non-empty");
                let (xs, ys) = if chroma == Chroma::Yuv420 {
                    (2, 2)
                } else {
                    (1, 1)
                };
                let planes = [
                    (&p.y, &full.y, p.y_stride, 1, 1),
                    (&p.u, &full.u, p.uv_stride, xs, ys),
                    (&p.v, &full.v, p.uv_stride, xs, ys),
                ];
                for (n, (got, want, stride, sx, sy)) in planes.into_iter().enumerate() {
                    for (i, (&g, &w)) in got.iter().zip(want.iter()).enumerate() {
                        let (x, y) = (i % stride, i / stride);
                        let inside = (region.x0 / sx..region.x1 / sx).contains(&x)
                            && (region.y0 / sy..region.y1 / sy).contains(&y);
                        if inside {
                            assert_eq!(g, w, "{chroma:?} plane {n} ({x},{y}) in {rect:?}");
                        } else {
                            assert_eq!(g, 7, "{chroma:?} plane {n} ({x},{y}) outside {rect:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn odd_sizes_replicate_edges_and_shapes_are_tight() {
        let p = Yuv10::new(5, 3, Chroma::Yuv420);
        assert_eq!((p.width, p.height, p.y.len(), p.u.len()), (6, 4, 24, 6));
        let p = Yuv10::new(5, 3, Chroma::Yuv444);
        assert_eq!((p.uv_stride, p.u.len()), (6, 24));
        let f = random_frame(33, 17, PixelFormat::X2Rgb10, 9);
        let mut p = Yuv10::new(1, 1, Chroma::Yuv444);
        rgb_to_yuv10(&f, ColourMatrix::Bt709, ColourRange::Limited, &mut p);
        for y in 0..18 {
            assert_eq!(p.y[y * 34 + 33], p.y[y * 34 + 32], "row {y}");
        }
        assert_eq!(p.y[17 * 34..18 * 34], p.y[16 * 34..17 * 34]);
    }
}
