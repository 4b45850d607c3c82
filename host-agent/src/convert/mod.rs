//! The "convert" stage: captured RGB → 8-bit I420 (YCbCr 4:2:0) for the encoder.
//!
//! # Model
//!
//! * **Size.** The picture is the captured size rounded *up* to even (4:2:0 needs whole 2×2
//!   blocks). When the source is odd-sized its last column and/or row is replicated into the
//!   padding, so the encoder never sees undefined pixels and the viewer can crop.
//! * **Numbers.** Matrix and range are the ones signalled in the stream config (BT.709 limited by
//!   default). Coefficients come from [`sightline_protocol::colour::YuvCoefficients`], the same
//!   table the viewer inverts, so host and viewer agree.
//! * **Chroma.** Each Cb/Cr sample is the mean of its 2×2 block (centre siting). The mean is taken
//!   in the RGB domain, which is the same as averaging the four chroma values before rounding.
//! * **Identity** (GBR) puts G, B and R in Y, Cb and Cr with the luma quantisation (H.273); it
//!   is not a useful 4:2:0 format and always takes the [`scalar`] path.
//!
//! # Implementations
//!
//! [`scalar`] is the reference: `f32` maths with the protocol coefficients, rounded once (about
//! 26 ms for 1080p). The fast path ([`bgrx_to_i420`], [`bgrx_to_i420_rect`]) hands whole row
//! pairs to the `yuv` crate's SIMD kernels (AVX2 or SSE4.1 picked at run time, portable code
//! otherwise), `Balanced` mode. Figures from the 2-core EPYC build machine (shared and loaded,
//! source frame warm in cache; `cargo bench --bench convert`):
//!
//! | input | time |
//! |---|---|
//! | BGRX 1920×1080 | 0.45–0.9 ms |
//! | BGRX 3840×2160 | 2.8–5.1 ms |
//! | BGRX 480×240 rectangle | 31–55 µs |
//! | X2Rgb10 1920×1080 | 1.6–2.5 ms |
//!
//! (ranges: several runs while other builds shared the two cores.)
//!
//! The best fixed-point code of our own that the compiler vectorised took 1.8 ms for 1080p BGRX
//! even when built for AVX2, so the crate is used. Its results are within ±1 code of the
//! reference for every 8-bit colour (checked over all 2²⁴: luma exact for 82 % of them; chroma
//! has a −0.12-code mean bias from its 16-bit fixed point); its chroma siting and its handling of
//! an odd last column or row (paired with itself) are the same as ours.
//!
//! `X2Rgb10` is first rounded to 8-bit BGRX (exactly `round(v · 255 / 1023)`) in strips that stay
//! in L2, then converted the same way. The two roundings put about one luma sample in 10⁶
//! (limited range; 3 in 10⁵ full range) 2 codes from the 10-bit reference; chroma stays within 1.
//! The rounding pass dominates the cost; it is built for AVX2 too and picked at run time.
//!
//! The crate needs whole-stride row pairs in every slice it is given; a row pair that cannot
//! offer that (the last pair of an odd-height frame, or the bottom pair of a rectangle that
//! does not start at column 0) is converted through a small scratch buffer instead.

mod fast;
pub mod scalar;
pub mod yuv10;

pub use yuv10::{rgb_to_yuv10, rgb_to_yuv10_rect, Yuv10};

use sightline_protocol::msg::{ColourMatrix, ColourRange};

use crate::capture::{CapturedFrame, Rect};

/// An 8-bit I420 picture: full-resolution Y, then Cb and Cr at half width and half height.
///
/// `width` and `height` are even (the source size rounded up); each plane holds exactly
/// `stride × rows` bytes with tight strides.
#[derive(Clone)]
pub struct I420 {
    /// Width in pixels (even).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Luma, `y_stride × height` bytes.
    pub y: Vec<u8>,
    /// Cb, `uv_stride × height / 2` bytes.
    pub u: Vec<u8>,
    /// Cr, `uv_stride × height / 2` bytes.
    pub v: Vec<u8>,
    /// Bytes per luma row.
    pub y_stride: usize,
    /// Bytes per chroma row.
    pub uv_stride: usize,
    /// Reused by the converter (X2Rgb10 strips, edge row pairs); not part of the picture.
    scratch: Vec<u8>,
}

/// Borrowed planes of an [`I420`], for an encoder.
#[derive(Debug, Clone, Copy)]
pub struct Planes<'a> {
    /// Width in pixels (even).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Luma, exactly `y_stride × height` bytes.
    pub y: &'a [u8],
    /// Cb, exactly `uv_stride × height / 2` bytes.
    pub u: &'a [u8],
    /// Cr, exactly `uv_stride × height / 2` bytes.
    pub v: &'a [u8],
    /// Bytes per luma row.
    pub y_stride: usize,
    /// Bytes per chroma row.
    pub uv_stride: usize,
}

impl I420 {
    /// A black picture for a `width × height` source (each rounded up to even).
    pub fn new(width: u32, height: u32) -> I420 {
        let mut p = I420 {
            width: 0,
            height: 0,
            y: Vec::new(),
            u: Vec::new(),
            v: Vec::new(),
            y_stride: 0,
            uv_stride: 0,
            scratch: Vec::new(),
        };
        p.reshape(width, height);
        p
    }

    /// The picture size for a `width × height` source: both rounded up to even.
    pub fn padded_size(width: u32, height: u32) -> (u32, u32) {
        (width.saturating_add(1) & !1, height.saturating_add(1) & !1)
    }

    /// Resizes for a `width × height` source (rounded up to even) with tight strides, keeping the
    /// allocations when they are large enough. An unchanged size keeps the pixels; otherwise the
    /// picture is black (limited-range codes) afterwards.
    pub fn reshape(&mut self, width: u32, height: u32) {
        let (w, h) = Self::padded_size(width, height);
        if (w, h) == (self.width, self.height) && self.planes_fit() {
            return;
        }
        self.width = w;
        self.height = h;
        self.y_stride = w as usize;
        self.uv_stride = w as usize / 2;
        self.y.clear();
        self.y.resize(self.y_stride * h as usize, 16);
        self.u.clear();
        self.u.resize(self.uv_stride * h as usize / 2, 128);
        self.v.clear();
        self.v.resize(self.uv_stride * h as usize / 2, 128);
    }

    /// The three planes, each sliced to exactly `stride × rows` (panics if the public fields
    /// were changed to describe more than the vectors hold).
    pub fn planes(&self) -> Planes<'_> {
        let (h, ch) = (self.height as usize, self.height as usize / 2);
        Planes {
            width: self.width,
            height: self.height,
            y: &self.y[..self.y_stride * h],
            u: &self.u[..self.uv_stride * ch],
            v: &self.v[..self.uv_stride * ch],
            y_stride: self.y_stride,
            uv_stride: self.uv_stride,
        }
    }

    /// Whether the public fields describe planes the converters can write (they are public, so
    /// a caller may have changed them).
    fn planes_fit(&self) -> bool {
        let (w, h) = (self.width as usize, self.height as usize);
        w % 2 == 0
            && h % 2 == 0
            && self.y_stride >= w
            && self.uv_stride >= w / 2
            && self.y.len() >= self.y_stride * h
            && self.u.len() >= self.uv_stride * h / 2
            && self.v.len() >= self.uv_stride * h / 2
    }
}

impl std::fmt::Debug for I420 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("I420")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("y_stride", &self.y_stride)
            .field("uv_stride", &self.uv_stride)
            .finish_non_exhaustive()
    }
}

/// A block of the picture to convert, in picture pixels, all edges even.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Region {
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
}

impl Region {
    /// The whole picture for `src`.
    fn full(src: &CapturedFrame) -> Region {
        let (w, h) = I420::padded_size(src.width, src.height);
        Region {
            x0: 0,
            y0: 0,
            x1: w as usize,
            y1: h as usize,
        }
    }

    /// `rect` clipped to `src` and expanded outwards to even edges (a rectangle touching the
    /// last column or row of an odd-sized source takes the padding with it). `None` when empty.
    fn from_rect(src: &CapturedFrame, rect: Rect) -> Option<Region> {
        let (w, h) = (src.width as u64, src.height as u64);
        let x1 = (rect.x as u64 + rect.w as u64).min(w);
        let y1 = (rect.y as u64 + rect.h as u64).min(h);
        let (x0, y0) = (rect.x as u64, rect.y as u64);
        if x0 >= x1 || y0 >= y1 {
            return None;
        }
        Some(Region {
            x0: (x0 & !1) as usize,
            y0: (y0 & !1) as usize,
            x1: ((x1 + 1) & !1) as usize,
            y1: ((y1 + 1) & !1) as usize,
        })
    }
}

/// Whether `src` describes its pixels consistently (stride, length, size); a capture source bug
/// otherwise.
fn source_fits(src: &CapturedFrame) -> bool {
    let (w, h) = (src.width as usize, src.height as usize);
    let row = w * src.format.bytes_per_pixel();
    w > 0 && h > 0 && src.stride >= row && src.data.len() >= src.stride * (h - 1) + row
}

/// Converts the whole of `src` into `dst` (reshaped to `src`'s size rounded up to even).
///
/// Handles [`Bgrx8`](crate::capture::PixelFormat::Bgrx8) and
/// [`X2Rgb10`](crate::capture::PixelFormat::X2Rgb10) (rounded to 8 bits). An empty or
/// inconsistent source (data shorter than its stride says) leaves `dst` reshaped but unwritten.
pub fn bgrx_to_i420(src: &CapturedFrame, matrix: ColourMatrix, range: ColourRange, dst: &mut I420) {
    dst.reshape(src.width, src.height);
    if !source_fits(src) {
        debug_assert!(
            src.width == 0 || src.height == 0,
            "inconsistent captured frame"
        );
        return;
    }
    convert_region(src, Region::full(src), matrix, range, dst);
}

/// Converts only `rect` of `src` (clipped to the source, expanded to even edges) and leaves the
/// rest of `dst` untouched: for frames where only a damaged region changed.
///
/// When `dst` does not have `src`'s (padded) size it is reshaped and the whole frame converted,
/// since the untouched part would be meaningless.
pub fn bgrx_to_i420_rect(
    src: &CapturedFrame,
    rect: Rect,
    matrix: ColourMatrix,
    range: ColourRange,
    dst: &mut I420,
) {
    match plan_rect(src, rect, dst) {
        RectPlan::Whole => bgrx_to_i420(src, matrix, range, dst),
        RectPlan::Region(region) => convert_region(src, region, matrix, range, dst),
        RectPlan::Nothing => {}
    }
}

/// What a rectangle conversion has to do; shared by the fast path and the scalar reference.
enum RectPlan {
    /// `dst` does not match `src`: convert everything (the rest would be meaningless).
    Whole,
    /// Convert this region only.
    Region(Region),
    /// Nothing to convert (empty rectangle or an empty source).
    Nothing,
}

fn plan_rect(src: &CapturedFrame, rect: Rect, dst: &I420) -> RectPlan {
    let size = I420::padded_size(src.width, src.height);
    plan_region(
        src,
        rect,
        size == (dst.width, dst.height) && dst.planes_fit(),
    )
}

/// The plan for any picture type: `dst_fits` says whether the destination already has the
/// source's padded size and consistent planes.
fn plan_region(src: &CapturedFrame, rect: Rect, dst_fits: bool) -> RectPlan {
    if !dst_fits {
        return RectPlan::Whole;
    }
    if !source_fits(src) {
        debug_assert!(
            src.width == 0 || src.height == 0,
            "inconsistent captured frame"
        );
        return RectPlan::Nothing;
    }
    Region::from_rect(src, rect).map_or(RectPlan::Nothing, RectPlan::Region)
}

/// Converts `region` with the fast path, or the scalar one for Identity (and, should the SIMD
/// crate ever refuse the slices it is given — a bug here, asserted in debug builds — for the
/// whole region).
fn convert_region(
    src: &CapturedFrame,
    region: Region,
    matrix: ColourMatrix,
    range: ColourRange,
    dst: &mut I420,
) {
    if matrix == ColourMatrix::Identity {
        scalar::convert_region(src, region, matrix, range, dst);
        return;
    }
    if let Err(e) = fast::convert_region(src, region, matrix, range, dst) {
        debug_assert!(false, "yuv crate refused a region: {e}");
        scalar::convert_region(src, region, matrix, range, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{synthetic, PixelFormat};

    const BT709: ColourMatrix = ColourMatrix::Bt709;
    const LIMITED: ColourRange = ColourRange::Limited;

    /// A deterministic pseudo-random frame: noise in some rows, gradients and flat areas in
    /// others, so both busy and smooth content are covered.
    fn random_frame(w: u32, h: u32, format: PixelFormat, seed: u64) -> CapturedFrame {
        let mut f = CapturedFrame::new();
        f.reshape(w, h, format);
        let mut s = seed | 1;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for y in 0..h as usize {
            for x in 0..w as usize {
                let word = match (y / 3) % 3 {
                    0 => next() as u32,
                    1 => {
                        let v = ((x * 7 + y * 3) % 1024) as u32;
                        match format {
                            PixelFormat::Bgrx8 => (v >> 2) * 0x0001_0101,
                            PixelFormat::X2Rgb10 => v | (v << 10) | ((1023 - v) << 20),
                        }
                    }
                    _ => (next() as u32) & 0xFF00_FF00,
                };
                let i = y * f.stride + x * 4;
                f.data[i..i + 4].copy_from_slice(&word.to_le_bytes());
            }
        }
        f
    }

    fn solid(w: u32, h: u32, rgb: (u8, u8, u8)) -> CapturedFrame {
        let mut f = CapturedFrame::new();
        f.reshape(w, h, PixelFormat::Bgrx8);
        for px in f.data.chunks_exact_mut(4) {
            px.copy_from_slice(&[rgb.2, rgb.1, rgb.0, 0xFF]);
        }
        f
    }

    /// Allowed |fast − scalar| per plane. The crate is within 1 of the reference for every 8-bit
    /// colour. X2Rgb10 is rounded to 8-bit RGB first (up to half a code per channel) and then
    /// converted (up to about half a code more), so a luma sample can land 2 away — measured
    /// on 1024×1024 random 10-bit pixels: 1 in 10⁶ samples in limited range, 3 in 10⁵ in full.
    /// Chroma averages four pixels and stays within 1.
    fn tolerance(format: PixelFormat) -> [u8; 3] {
        match format {
            PixelFormat::Bgrx8 => [1, 1, 1],
            PixelFormat::X2Rgb10 => [2, 1, 1],
        }
    }

    fn within(d: [u8; 3], format: PixelFormat) -> bool {
        d.iter().zip(tolerance(format)).all(|(d, t)| *d <= t)
    }

    fn max_diff(a: &[u8], b: &[u8]) -> u8 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0)
    }

    /// Largest per-plane difference between the fast and the scalar conversion of `f`.
    fn fast_vs_scalar(f: &CapturedFrame, matrix: ColourMatrix, range: ColourRange) -> [u8; 3] {
        let mut fast = I420::new(1, 1);
        let mut reference = I420::new(1, 1);
        bgrx_to_i420(f, matrix, range, &mut fast);
        scalar::bgrx_to_i420(f, matrix, range, &mut reference);
        assert_eq!(
            (fast.width, fast.height),
            (reference.width, reference.height)
        );
        [
            max_diff(&fast.y, &reference.y),
            max_diff(&fast.u, &reference.u),
            max_diff(&fast.v, &reference.v),
        ]
    }

    #[test]
    fn sizes_round_up_to_even() {
        let p = I420::new(5, 3);
        assert_eq!((p.width, p.height, p.y_stride, p.uv_stride), (6, 4, 6, 3));
        assert_eq!((p.y.len(), p.u.len(), p.v.len()), (24, 6, 6));
        let planes = p.planes();
        assert_eq!((planes.y.len(), planes.u.len()), (24, 6));
        let mut p = I420::new(1920, 1080);
        let cap = p.y.capacity();
        p.reshape(1280, 720);
        assert_eq!((p.width, p.height), (1280, 720));
        assert_eq!(p.y.capacity(), cap, "shrinking keeps the allocation");
        assert_eq!(I420::new(0, 0).y.len(), 0);
    }

    #[test]
    fn the_crate_uses_the_protocol_coefficients() {
        use sightline_protocol::colour::YuvCoefficients;
        for m in [
            ColourMatrix::Bt601,
            ColourMatrix::Bt709,
            ColourMatrix::Bt2020Ncl,
        ] {
            let ours = YuvCoefficients::new(m, LIMITED, 8);
            let theirs = fast::yuv_matrix(m).get_kr_kb();
            assert_eq!((ours.kr, ours.kb), (theirs.kr, theirs.kb), "{m:?}");
        }
    }

    #[test]
    fn fast_matches_scalar_on_random_images() {
        for (w, h) in [(640, 360), (256, 64), (96, 34)] {
            for seed in [1, 7] {
                let f = random_frame(w, h, PixelFormat::Bgrx8, seed);
                for range in [LIMITED, ColourRange::Full] {
                    for m in [BT709, ColourMatrix::Bt601, ColourMatrix::Bt2020Ncl] {
                        let d = fast_vs_scalar(&f, m, range);
                        assert!(
                            within(d, PixelFormat::Bgrx8),
                            "{w}x{h} {m:?} {range:?}: {d:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn fast_matches_scalar_on_odd_sizes() {
        for (w, h) in [
            (1, 1),
            (1, 2),
            (2, 1),
            (3, 3),
            (5, 4),
            (4, 5),
            (33, 17),
            (67, 45),
        ] {
            for format in [PixelFormat::Bgrx8, PixelFormat::X2Rgb10] {
                let f = random_frame(w, h, format, 3);
                let d = fast_vs_scalar(&f, BT709, LIMITED);
                assert!(within(d, format), "{w}x{h} {format:?}: {d:?}");
            }
        }
    }

    #[test]
    fn odd_sizes_replicate_the_last_column_and_row() {
        let f = random_frame(33, 17, PixelFormat::Bgrx8, 5);
        let mut p = I420::new(1, 1);
        bgrx_to_i420(&f, BT709, LIMITED, &mut p);
        assert_eq!((p.width, p.height), (34, 18));
        for y in 0..18 {
            assert_eq!(
                p.y[y * p.y_stride + 33],
                p.y[y * p.y_stride + 32],
                "row {y}"
            );
        }
        assert_eq!(
            p.y[17 * p.y_stride..18 * p.y_stride],
            p.y[16 * p.y_stride..17 * p.y_stride]
        );
        // The last chroma column and row come from a block whose missing half is a copy: a
        // frame with those pixels really duplicated converts to the same picture.
        let mut even = CapturedFrame::new();
        even.reshape(34, 18, PixelFormat::Bgrx8);
        for y in 0..18usize {
            for x in 0..34usize {
                let s = y.min(16) * f.stride + x.min(32) * 4;
                let d = y * even.stride + x * 4;
                even.data[d..d + 4].copy_from_slice(&f.data[s..s + 4]);
            }
        }
        let mut q = I420::new(1, 1);
        bgrx_to_i420(&even, BT709, LIMITED, &mut q);
        assert_eq!((p.y == q.y, p.u == q.u, p.v == q.v), (true, true, true));
    }

    #[test]
    fn known_colours_bt709_limited() {
        // 75 % bars as drawn by the synthetic source (191 = 0.749), then the usual extremes.
        // Expected values: BT.709 8-bit limited range, as in SMPTE RP 219's 75 % bars.
        let expected: [(u8, u8, u8); 8] = [
            (180, 128, 128),
            (168, 44, 136),
            (145, 147, 44),
            (133, 63, 52),
            (63, 193, 204),
            (51, 109, 212),
            (28, 212, 120),
            (16, 128, 128),
        ];
        let cases = synthetic::BARS.iter().copied().zip(expected).chain([
            ((255, 255, 255), (235, 128, 128)),
            ((0, 0, 0), (16, 128, 128)),
            ((255, 0, 0), (63, 102, 240)),
        ]);
        for (rgb, want) in cases {
            let f = solid(4, 2, rgb);
            let mut reference = I420::new(1, 1);
            scalar::bgrx_to_i420(&f, BT709, LIMITED, &mut reference);
            let got = (reference.y[0], reference.u[0], reference.v[0]);
            assert_eq!(got, want, "scalar {rgb:?}");
            let mut fast = I420::new(1, 1);
            bgrx_to_i420(&f, BT709, LIMITED, &mut fast);
            let got = (fast.y[0], fast.u[0], fast.v[0]);
            let close = got.0.abs_diff(want.0) <= 1
                && got.1.abs_diff(want.1) <= 1
                && got.2.abs_diff(want.2) <= 1;
            assert!(close, "fast {rgb:?}: {got:?} vs {want:?}");
            assert!(fast.y.iter().all(|&y| y == fast.y[0]), "uniform {rgb:?}");
        }
        // White and black are exact on both paths.
        for (rgb, want) in [((255, 255, 255), 235), ((0, 0, 0), 16)] {
            let mut fast = I420::new(1, 1);
            bgrx_to_i420(&solid(64, 4, rgb), BT709, LIMITED, &mut fast);
            assert!(fast.y.iter().all(|&y| y == want), "{rgb:?}");
            assert!(fast.u.iter().chain(&fast.v).all(|&c| c == 128), "{rgb:?}");
        }
    }

    #[test]
    fn full_range_extremes() {
        let mut p = I420::new(1, 1);
        bgrx_to_i420(
            &solid(8, 2, (255, 255, 255)),
            BT709,
            ColourRange::Full,
            &mut p,
        );
        assert_eq!((p.y[0], p.u[0], p.v[0]), (255, 128, 128));
        bgrx_to_i420(&solid(8, 2, (0, 0, 0)), BT709, ColourRange::Full, &mut p);
        assert_eq!((p.y[0], p.u[0], p.v[0]), (0, 128, 128));
    }

    #[test]
    fn identity_puts_g_b_r_in_y_cb_cr() {
        let mut p = I420::new(1, 1);
        bgrx_to_i420(
            &solid(4, 2, (255, 0, 128)),
            ColourMatrix::Identity,
            LIMITED,
            &mut p,
        );
        // Limited range maps each channel to 16..=235: 128 → 16 + 219·128/255 = 125.9.
        assert_eq!((p.y[0], p.u[0], p.v[0]), (16, 126, 235));
    }

    #[test]
    fn x2rgb10_matches_scalar_and_known_colours() {
        for (w, h) in [(640, 360), (130, 66)] {
            let f = random_frame(w, h, PixelFormat::X2Rgb10, 11);
            for range in [LIMITED, ColourRange::Full] {
                let d = fast_vs_scalar(&f, BT709, range);
                assert!(within(d, PixelFormat::X2Rgb10), "{w}x{h} {range:?}: {d:?}");
            }
        }
        let mut f = CapturedFrame::new();
        f.reshape(8, 2, PixelFormat::X2Rgb10);
        let mut p = I420::new(1, 1);
        for (word, want) in [
            (0x3FFF_FFFFu32, (235, 128, 128)),
            (0xC000_0000, (16, 128, 128)),
            (0x3FF0_0000, (63, 102, 240)),
        ] {
            for px in f.data.chunks_exact_mut(4) {
                px.copy_from_slice(&word.to_le_bytes());
            }
            scalar::bgrx_to_i420(&f, BT709, LIMITED, &mut p);
            assert_eq!((p.y[0], p.u[0], p.v[0]), want, "scalar {word:#x}");
            bgrx_to_i420(&f, BT709, LIMITED, &mut p);
            let got = [p.y[0], p.u[0], p.v[0]];
            let close = got
                .iter()
                .zip([want.0, want.1, want.2])
                .all(|(g, w)| g.abs_diff(w) <= 1);
            assert!(close, "fast {word:#x}: {got:?} vs {want:?}");
        }
    }

    /// Converts `rect` into a picture pre-filled with a marker; checks that the rectangle
    /// (expanded to even edges) matches a full conversion and nothing else changed.
    fn check_rect(f: &CapturedFrame, rect: Rect) {
        let mut full = I420::new(1, 1);
        bgrx_to_i420(f, BT709, LIMITED, &mut full);
        let mut p = I420::new(f.width, f.height);
        for plane in [&mut p.y, &mut p.u, &mut p.v] {
            plane.fill(0x5A);
        }
        bgrx_to_i420_rect(f, rect, BT709, LIMITED, &mut p);
        let r = Region::from_rect(f, rect);
        let inside = |x: usize, y: usize, scale: usize| {
            r.is_some_and(|r| {
                (r.x0 / scale..r.x1 / scale).contains(&x)
                    && (r.y0 / scale..r.y1 / scale).contains(&y)
            })
        };
        let planes = [
            (&p.y, &full.y, p.y_stride, 1),
            (&p.u, &full.u, p.uv_stride, 2),
            (&p.v, &full.v, p.uv_stride, 2),
        ];
        for (n, (got, want, stride, scale)) in planes.into_iter().enumerate() {
            for (i, (&g, &w)) in got.iter().zip(want.iter()).enumerate() {
                let (x, y) = (i % stride, i / stride);
                if inside(x, y, scale) {
                    assert_eq!(g, w, "plane {n} ({x},{y}) inside {rect:?}");
                } else {
                    assert_eq!(g, 0x5A, "plane {n} ({x},{y}) outside {rect:?} was written");
                }
            }
        }
    }

    #[test]
    fn rect_touches_only_the_rect() {
        for format in [PixelFormat::Bgrx8, PixelFormat::X2Rgb10] {
            for (w, h) in [(64, 48), (67, 45)] {
                let f = random_frame(w, h, format, 9);
                let rects = [
                    Rect {
                        x: 10,
                        y: 6,
                        w: 20,
                        h: 10,
                    },
                    Rect {
                        x: 11,
                        y: 7,
                        w: 19,
                        h: 9,
                    },
                    Rect {
                        x: 0,
                        y: 0,
                        w: 1,
                        h: 1,
                    },
                    Rect {
                        x: 5,
                        y: h - 3,
                        w: 9,
                        h: 3,
                    },
                    Rect {
                        x: w - 3,
                        y: h - 5,
                        w: 3,
                        h: 5,
                    },
                    Rect {
                        x: 0,
                        y: h - 2,
                        w,
                        h: 2,
                    },
                    Rect {
                        x: 3,
                        y: 0,
                        w: w - 3,
                        h,
                    },
                    Rect {
                        x: w - 1,
                        y: 0,
                        w: 50,
                        h: 50,
                    },
                    Rect { x: 0, y: 0, w, h },
                    Rect {
                        x: w,
                        y: 0,
                        w: 4,
                        h: 4,
                    },
                    Rect {
                        x: 4,
                        y: 4,
                        w: 0,
                        h: 4,
                    },
                ];
                for rect in rects {
                    check_rect(&f, rect);
                }
            }
        }
    }

    #[test]
    fn padded_stride_and_short_last_row() {
        // An X11-style padded stride, with the buffer ending right after the last row's pixels.
        for format in [PixelFormat::Bgrx8, PixelFormat::X2Rgb10] {
            let tight = random_frame(30, 12, format, 4);
            let mut f = tight.clone();
            f.stride = 30 * 4 + 24;
            f.data = vec![0xEE; f.stride * 11 + 30 * 4];
            for y in 0..12 {
                let (s, d) = (y * tight.stride, y * f.stride);
                f.data[d..d + 120].copy_from_slice(&tight.data[s..s + 120]);
            }
            let d = fast_vs_scalar(&f, BT709, LIMITED);
            assert!(within(d, format), "{format:?}: {d:?}");
            let mut a = I420::new(1, 1);
            let mut b = I420::new(1, 1);
            bgrx_to_i420(&f, BT709, LIMITED, &mut a);
            bgrx_to_i420(&tight, BT709, LIMITED, &mut b);
            assert_eq!((a.y == b.y, a.u == b.u, a.v == b.v), (true, true, true));
            check_rect(
                &f,
                Rect {
                    x: 0,
                    y: 6,
                    w: 30,
                    h: 6,
                },
            );
            check_rect(
                &f,
                Rect {
                    x: 4,
                    y: 0,
                    w: 8,
                    h: 12,
                },
            );
        }
    }

    #[test]
    fn rect_on_a_picture_of_another_size_converts_everything() {
        let f = random_frame(20, 10, PixelFormat::Bgrx8, 2);
        let mut p = I420::new(8, 8);
        bgrx_to_i420_rect(
            &f,
            Rect {
                x: 0,
                y: 0,
                w: 2,
                h: 2,
            },
            BT709,
            LIMITED,
            &mut p,
        );
        let mut full = I420::new(1, 1);
        bgrx_to_i420(&f, BT709, LIMITED, &mut full);
        assert_eq!((p.width, p.height), (20, 10));
        assert_eq!(
            (p.y == full.y, p.u == full.u, p.v == full.v),
            (true, true, true)
        );
    }

    #[test]
    fn synthetic_frame_converts_and_keeps_its_barcode() {
        let f = synthetic::render_frame(640, 360, 42, 60);
        let mut p = I420::new(1, 1);
        bgrx_to_i420(&f, BT709, LIMITED, &mut p);
        let d = fast_vs_scalar(&f, BT709, LIMITED);
        assert!(within(d, PixelFormat::Bgrx8), "{d:?}");
        let (counter, _) = synthetic::read_barcode(&p.y, p.y_stride, p.width, p.height)
            .expect("barcode readable from luma");
        assert_eq!(counter, 42);
    }
}
