//! The reference conversion: `f32` maths with [`YuvCoefficients`], rounded once per sample.
//!
//! Slow (tens of milliseconds for 1080p) and obviously right: the fast path is tested against
//! it. Each chroma sample is the mean of the four chroma values of its 2×2 block; pixels outside
//! an odd-sized source are copies of the nearest edge pixel.

use sightline_protocol::colour::YuvCoefficients;
use sightline_protocol::msg::{ColourMatrix, ColourRange};

use super::{source_fits, Region, I420};
use crate::capture::{CapturedFrame, PixelFormat, Rect};

/// Reference version of [`super::bgrx_to_i420`].
pub fn bgrx_to_i420(src: &CapturedFrame, matrix: ColourMatrix, range: ColourRange, dst: &mut I420) {
    dst.reshape(src.width, src.height);
    if source_fits(src) {
        convert_region(src, Region::full(src), matrix, range, dst);
    }
}

/// Reference version of [`super::bgrx_to_i420_rect`].
pub fn bgrx_to_i420_rect(
    src: &CapturedFrame,
    rect: Rect,
    matrix: ColourMatrix,
    range: ColourRange,
    dst: &mut I420,
) {
    match super::plan_rect(src, rect, dst) {
        super::RectPlan::Whole => bgrx_to_i420(src, matrix, range, dst),
        super::RectPlan::Region(region) => convert_region(src, region, matrix, range, dst),
        super::RectPlan::Nothing => {}
    }
}

/// Converts `region` (even edges, inside `dst`) of a consistent `src`.
pub(super) fn convert_region(
    src: &CapturedFrame,
    region: Region,
    matrix: ColourMatrix,
    range: ColourRange,
    dst: &mut I420,
) {
    let c = YuvCoefficients::new(matrix, range, 8);
    let identity = matrix == ColourMatrix::Identity;
    let ycbcr = |x: usize, y: usize| {
        let (r, g, b) = rgb_at(src, x, y);
        if identity {
            // H.273 MatrixCoefficients 0: G, B, R with the luma quantisation.
            let q = |v: f32| c.y_black + c.y_range * v;
            (q(g), q(b), q(r))
        } else {
            c.rgb_to_ycbcr(r, g, b)
        }
    };
    for cy in region.y0 / 2..region.y1 / 2 {
        for cx in region.x0 / 2..region.x1 / 2 {
            let (mut cb, mut cr) = (0.0, 0.0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let (x, y) = (2 * cx + dx, 2 * cy + dy);
                let (luma, b, r) = ycbcr(x, y);
                dst.y[y * dst.y_stride + x] = quantise(luma);
                cb += b;
                cr += r;
            }
            dst.u[cy * dst.uv_stride + cx] = quantise(cb / 4.0);
            dst.v[cy * dst.uv_stride + cx] = quantise(cr / 4.0);
        }
    }
}

/// Normalised (0..=1) R, G, B of pixel (`x`, `y`), clamped to the source's edge.
fn rgb_at(src: &CapturedFrame, x: usize, y: usize) -> (f32, f32, f32) {
    let x = x.min(src.width as usize - 1);
    let y = y.min(src.height as usize - 1);
    let i = y * src.stride + x * 4;
    let w = u32::from_le_bytes([
        src.data[i],
        src.data[i + 1],
        src.data[i + 2],
        src.data[i + 3],
    ]);
    match src.format {
        PixelFormat::Bgrx8 => {
            let c = |shift: u32| ((w >> shift) & 0xFF) as f32 / 255.0;
            (c(16), c(8), c(0))
        }
        PixelFormat::X2Rgb10 => {
            let c = |shift: u32| ((w >> shift) & 0x3FF) as f32 / 1023.0;
            (c(20), c(10), c(0))
        }
    }
}

/// Rounds a code to the nearest 8-bit value.
fn quantise(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}
