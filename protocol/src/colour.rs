//! YCbCr coefficients for the matrices and ranges a stream can signal, shared by the host's
//! RGB → YUV conversion and the viewer's YUV → RGB conversion so both use the same numbers.

use crate::msg::{ColourMatrix, ColourRange};

/// Coefficients of one matrix/range pair, for `bits`-bit samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YuvCoefficients {
    /// Red weight in luma.
    pub kr: f32,
    /// Blue weight in luma.
    pub kb: f32,
    /// Luma code of black.
    pub y_black: f32,
    /// Luma codes from black to white.
    pub y_range: f32,
    /// Chroma code of zero colour difference.
    pub c_zero: f32,
    /// Chroma codes from −0.5 to +0.5 colour difference.
    pub c_range: f32,
}

impl YuvCoefficients {
    /// Coefficients for `matrix`, `range` and sample depth `bits` (8 or 10).
    pub fn new(matrix: ColourMatrix, range: ColourRange, bits: u8) -> Self {
        let (kr, kb) = match matrix {
            ColourMatrix::Bt601 => (0.299, 0.114),
            ColourMatrix::Bt709 => (0.2126, 0.0722),
            ColourMatrix::Bt2020Ncl => (0.2627, 0.0593),
            // Identity (GBR) has no luma weights; callers treat it separately.
            ColourMatrix::Identity => (0.0, 0.0),
        };
        let scale = (1u32 << (bits.clamp(8, 16) - 8)) as f32;
        let max = ((1u32 << bits.clamp(8, 16)) - 1) as f32;
        let (y_black, y_range, c_range) = match range {
            ColourRange::Limited => (16.0 * scale, 219.0 * scale, 224.0 * scale),
            ColourRange::Full => (0.0, max, max),
        };
        YuvCoefficients {
            kr,
            kb,
            y_black,
            y_range,
            c_zero: 128.0 * scale,
            c_range,
        }
    }

    /// Green weight in luma.
    pub fn kg(&self) -> f32 {
        1.0 - self.kr - self.kb
    }

    /// Converts normalised RGB (0..=1) to YCbCr codes (unrounded).
    pub fn rgb_to_ycbcr(&self, r: f32, g: f32, b: f32) -> (f32, f32, f32) {
        let y = self.kr * r + self.kg() * g + self.kb * b;
        let cb = (b - y) / (2.0 * (1.0 - self.kb));
        let cr = (r - y) / (2.0 * (1.0 - self.kr));
        (
            self.y_black + self.y_range * y,
            self.c_zero + self.c_range * cb,
            self.c_zero + self.c_range * cr,
        )
    }

    /// Converts YCbCr codes to normalised RGB (unclamped).
    pub fn ycbcr_to_rgb(&self, y: f32, cb: f32, cr: f32) -> (f32, f32, f32) {
        let y = (y - self.y_black) / self.y_range;
        let cb = (cb - self.c_zero) / self.c_range;
        let cr = (cr - self.c_zero) / self.c_range;
        let r = y + 2.0 * (1.0 - self.kr) * cr;
        let b = y + 2.0 * (1.0 - self.kb) * cb;
        let g = (y - self.kr * r - self.kb * b) / self.kg();
        (r, g, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bt709_limited_white_black_grey() {
        let c = YuvCoefficients::new(ColourMatrix::Bt709, ColourRange::Limited, 8);
        let (y, cb, cr) = c.rgb_to_ycbcr(1.0, 1.0, 1.0);
        assert!((y - 235.0).abs() < 1e-3 && (cb - 128.0).abs() < 1e-3 && (cr - 128.0).abs() < 1e-3);
        let (y, _, _) = c.rgb_to_ycbcr(0.0, 0.0, 0.0);
        assert!((y - 16.0).abs() < 1e-3);
        let (r, g, b) = c.ycbcr_to_rgb(126.0, 128.0, 128.0);
        assert!((r - g).abs() < 1e-4 && (g - b).abs() < 1e-4);
    }

    #[test]
    fn round_trip_colours() {
        for m in [
            ColourMatrix::Bt601,
            ColourMatrix::Bt709,
            ColourMatrix::Bt2020Ncl,
        ] {
            for range in [ColourRange::Limited, ColourRange::Full] {
                let c = YuvCoefficients::new(m, range, 10);
                let (y, cb, cr) = c.rgb_to_ycbcr(0.9, 0.2, 0.4);
                let (r, g, b) = c.ycbcr_to_rgb(y, cb, cr);
                assert!((r - 0.9).abs() < 1e-4 && (g - 0.2).abs() < 1e-4 && (b - 0.4).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn bt709_pure_red_limited() {
        let c = YuvCoefficients::new(ColourMatrix::Bt709, ColourRange::Limited, 8);
        let (y, cb, cr) = c.rgb_to_ycbcr(1.0, 0.0, 0.0);
        // Reference values for BT.709 limited range: Y 63, Cb 102, Cr 240.
        assert_eq!((y.round(), cb.round(), cr.round()), (63.0, 102.0, 240.0));
    }
}
