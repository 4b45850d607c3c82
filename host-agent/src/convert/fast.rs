//! The fast path: whole row pairs through the `yuv` crate's SIMD RGB → I420 kernels.
//!
//! The crate walks its slices in `chunks_exact(2 × stride)` steps and quietly skips a row pair
//! whose slice is shorter than two whole strides. So every call here is given slices that hold
//! whole strides for each pair it converts, and a source slice that ends after the last row to
//! convert (it converts as many pairs as its slices hold, whatever its `height` says). The one
//! pair that cannot have whole strides (the bottom pair of an odd-height frame, of a frame whose
//! last row is shorter than its stride, or of a region that starts right of column 0 and reaches
//! the last row) goes through a tight scratch copy. `X2Rgb10` rows are rounded to 8-bit BGRX
//! in strips of [`STRIP_ROWS`] rows (about 120 KB at 1080p, so they stay in L2) before the
//! same call.

use sightline_protocol::msg::{ColourMatrix, ColourRange};
use yuv::{
    BufferStoreMut, YuvConversionMode, YuvError, YuvPlanarImageMut, YuvRange, YuvStandardMatrix,
};

use super::{Region, I420};
use crate::capture::{CapturedFrame, PixelFormat};

/// Rows per X2Rgb10 strip (even).
const STRIP_ROWS: usize = 16;

/// The crate's matrix for ours (same kr/kb as `YuvCoefficients`; a test checks).
pub(super) fn yuv_matrix(m: ColourMatrix) -> YuvStandardMatrix {
    match m {
        ColourMatrix::Bt601 => YuvStandardMatrix::Bt601,
        ColourMatrix::Bt709 => YuvStandardMatrix::Bt709,
        ColourMatrix::Bt2020Ncl => YuvStandardMatrix::Bt2020,
        // Never reaches the crate (the caller takes the scalar path); BT.709 keeps this total.
        ColourMatrix::Identity => YuvStandardMatrix::Bt709,
    }
}

pub(super) fn yuv_range(r: ColourRange) -> YuvRange {
    match r {
        ColourRange::Limited => YuvRange::Limited,
        ColourRange::Full => YuvRange::Full,
    }
}

/// Destination planes and where the region starts in them.
struct Target<'a> {
    y: &'a mut [u8],
    u: &'a mut [u8],
    v: &'a mut [u8],
    y_stride: usize,
    uv_stride: usize,
    x0: usize,
}

impl Target<'_> {
    /// Converts `rows` (even) rows of `cols` 8-bit BGRX pixels from `bgrx` (rows `stride` bytes
    /// apart) into the picture from row `y0`. Every row pair needs two whole strides in `bgrx`
    /// and in the planes (see the module docs), and `bgrx` must end after `rows` rows: the crate
    /// converts as many pairs as all its slices hold, whatever `height` says.
    fn convert(
        &mut self,
        bgrx: &[u8],
        stride: usize,
        cols: usize,
        rows: usize,
        y0: usize,
        conv: (YuvStandardMatrix, YuvRange),
    ) -> Result<(), YuvError> {
        let u32_of = |v: usize| u32::try_from(v).map_err(|_| YuvError::PointerOverflow);
        let (ys, us) = (self.y_stride, self.uv_stride);
        let mut image = YuvPlanarImageMut {
            y_plane: BufferStoreMut::Borrowed(&mut self.y[y0 * ys + self.x0..]),
            y_stride: u32_of(ys)?,
            u_plane: BufferStoreMut::Borrowed(&mut self.u[y0 / 2 * us + self.x0 / 2..]),
            u_stride: u32_of(us)?,
            v_plane: BufferStoreMut::Borrowed(&mut self.v[y0 / 2 * us + self.x0 / 2..]),
            v_stride: u32_of(us)?,
            width: u32_of(cols)?,
            height: u32_of(rows)?,
        };
        yuv::bgra_to_yuv420(
            &mut image,
            bgrx,
            u32_of(stride)?,
            conv.1,
            conv.0,
            YuvConversionMode::Balanced,
        )
    }
}

/// Converts `region` of `src` (consistent, `Bgrx8` or `X2Rgb10`) into `dst` (already `src`'s
/// padded size). Errors only if the crate refuses a slice, which would be a bug here.
pub(super) fn convert_region(
    src: &CapturedFrame,
    region: Region,
    matrix: ColourMatrix,
    range: ColourRange,
    dst: &mut I420,
) -> Result<(), YuvError> {
    let conv = (yuv_matrix(matrix), yuv_range(range));
    let (w, h) = (src.width as usize, src.height as usize);
    // Source columns inside the region; odd when the region ends in the padding column (the
    // crate then pairs the last column with itself, which is our replication rule).
    let cols = region.x1.min(w) - region.x0;
    // The bottom pair lacks two whole source strides when it starts right of column 0, when the
    // source has an odd height (its second row is a copy), or when the last row is short.
    let short_last_row = src.data.len() < h * src.stride;
    let edge_pair =
        region.y1 == dst.height as usize && (region.x0 > 0 || h % 2 == 1 || short_last_row);
    let body_end = if edge_pair { region.y1 - 2 } else { region.y1 };

    let I420 {
        y,
        u,
        v,
        y_stride,
        uv_stride,
        scratch,
        ..
    } = dst;
    let mut target = Target {
        y,
        u,
        v,
        y_stride: *y_stride,
        uv_stride: *uv_stride,
        x0: region.x0,
    };
    let row_bytes = |row: usize| {
        let start = row.min(h - 1) * src.stride + region.x0 * 4;
        &src.data[start..start + cols * 4]
    };

    if body_end > region.y0 {
        match src.format {
            PixelFormat::Bgrx8 => {
                // Every body pair has two whole source strides after its start (see module docs).
                let start = region.y0 * src.stride + region.x0 * 4;
                let rows = body_end - region.y0;
                let bgrx = &src.data[start..start + rows * src.stride];
                target.convert(bgrx, src.stride, cols, rows, region.y0, conv)?;
            }
            PixelFormat::X2Rgb10 => {
                let tight = cols * 4;
                scratch.resize(STRIP_ROWS * tight, 0);
                for strip in (region.y0..body_end).step_by(STRIP_ROWS) {
                    let rows = STRIP_ROWS.min(body_end - strip);
                    for (i, out) in scratch.chunks_exact_mut(tight).take(rows).enumerate() {
                        unpack_x2rgb10(row_bytes(strip + i), out);
                    }
                    target.convert(&scratch[..rows * tight], tight, cols, rows, strip, conv)?;
                }
            }
        }
    }

    if edge_pair {
        let top = region.y1 - 2;
        let (tight, half) = (cols * 4, cols.div_ceil(2));
        scratch.resize(2 * tight + 2 * cols + 2 * half, 0);
        let (bgrx, planes) = scratch.split_at_mut(2 * tight);
        for (i, out) in bgrx.chunks_exact_mut(tight).enumerate() {
            let row = row_bytes(top + i);
            match src.format {
                PixelFormat::Bgrx8 => out.copy_from_slice(row),
                PixelFormat::X2Rgb10 => unpack_x2rgb10(row, out),
            }
        }
        let (py, chroma) = planes.split_at_mut(2 * cols);
        let (pu, pv) = chroma.split_at_mut(half);
        let mut tight_target = Target {
            y: py,
            u: pu,
            v: pv,
            y_stride: cols,
            uv_stride: half,
            x0: 0,
        };
        tight_target.convert(bgrx, tight, cols, 2, 0, conv)?;
        for (i, row) in py.chunks_exact(cols).enumerate() {
            let at = (top + i) * target.y_stride + region.x0;
            target.y[at..at + cols].copy_from_slice(row);
        }
        let at = top / 2 * target.uv_stride + region.x0 / 2;
        target.u[at..at + half].copy_from_slice(pu);
        target.v[at..at + half].copy_from_slice(pv);
    }

    if region.x1 > w {
        // Odd source width: the padding column repeats the last luma column.
        for row in target.y[region.y0 * target.y_stride..region.y1 * target.y_stride]
            .chunks_exact_mut(target.y_stride)
        {
            row[w] = row[w - 1];
        }
    }
    Ok(())
}

/// Rounds one row of little-endian `x2 r10 g10 b10` words to 8-bit B, G, R, 0xFF.
///
/// Compiled twice: for AVX2 (picked at run time; 1.2 ms per 1080p frame on the build machine)
/// and for the baseline target (about 4 ms with SSE2 only).
#[cfg(target_arch = "x86_64")]
fn unpack_x2rgb10(src: &[u8], dst: &mut [u8]) {
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: `unpack_x2rgb10_avx2` has no requirement beyond the AVX2 instructions it was
        // compiled with, and the running CPU has them (checked just above).
        unsafe { unpack_x2rgb10_avx2(src, dst) }
    } else {
        unpack_x2rgb10_portable(src, dst)
    }
}

/// Rounds one row of little-endian `x2 r10 g10 b10` words to 8-bit B, G, R, 0xFF.
#[cfg(not(target_arch = "x86_64"))]
fn unpack_x2rgb10(src: &[u8], dst: &mut [u8]) {
    unpack_x2rgb10_portable(src, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn unpack_x2rgb10_avx2(src: &[u8], dst: &mut [u8]) {
    unpack_x2rgb10_portable(src, dst)
}

#[inline(always)]
fn unpack_x2rgb10_portable(src: &[u8], dst: &mut [u8]) {
    for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(4)) {
        let w = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        let px = ten_to_eight(w & 0x3FF)
            | (ten_to_eight((w >> 10) & 0x3FF) << 8)
            | (ten_to_eight((w >> 20) & 0x3FF) << 16)
            | 0xFF00_0000;
        d.copy_from_slice(&px.to_le_bytes());
    }
}

/// `round(v · 255 / 1023)` for `v` in 0..=1023: `(v · 1021 + 2048) >> 12`, with the multiply
/// spelt as shifts (cheaper than a 32-bit vector multiply). Exact for every input (tested).
#[inline(always)]
fn ten_to_eight(v: u32) -> u32 {
    ((v << 10) - (v << 1) - v + 2048) >> 12
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_to_eight_rounds_exactly() {
        for v in 0..=1023u32 {
            let want = (f64::from(v) * 255.0 / 1023.0).round() as u32;
            assert_eq!(ten_to_eight(v), want, "{v}");
        }
    }

    #[test]
    fn unpack_orders_b_g_r_x() {
        let word: u32 = (1023 << 20) | (512 << 10) | 4;
        let mut out = [0u8; 4];
        unpack_x2rgb10(&word.to_le_bytes(), &mut out);
        assert_eq!(out, [1, 128, 255, 255]);
        let mut portable = [0u8; 4];
        unpack_x2rgb10_portable(&word.to_le_bytes(), &mut portable);
        assert_eq!(out, portable);
    }
}
