//! The latency-probe strip: how a host shows a bench probe in its picture and how a viewer
//! reads it back from the decoded frame (input → photon, measured on the pixels themselves).
//!
//! The strip sits in the top-right corner of the stream: [`ROWS`] rows of [`BITS`] square cells
//! holding, most significant bit first, the probe id, its bitwise complement (a read is valid
//! only when both agree), and the low 32 bits of the host wire clock (µs) when the probe
//! arrived. Cells are black or white and [`cell_size`] pixels wide (16 at 1080p), which survives
//! any sane bitrate; the reader samples the centre of each cell's luma and thresholds at mid-grey.
//! Pure functions: the host draws with [`cells`], the viewer reads with [`read`].

/// Cells per row.
pub const BITS: u32 = 32;
/// Rows: id, !id, arrival time (low 32 bits of the host µs clock).
pub const ROWS: u32 = 3;

/// Side of a cell in pixels for a `width`-pixel-wide stream.
pub fn cell_size(width: u32) -> u32 {
    (width / 120).clamp(4, 16)
}

/// Where the strip is: `(x, y, w, h)` in stream pixels (top-right corner).
pub fn rect(width: u32) -> (u32, u32, u32, u32) {
    let c = cell_size(width);
    let w = c * BITS;
    (width.saturating_sub(w), 0, w, c * ROWS)
}

/// The row values for probe `id` that arrived at host time `host_recv_us`.
pub fn rows(id: u32, host_recv_us: u64) -> [u32; ROWS as usize] {
    [id, !id, host_recv_us as u32]
}

/// Every cell as `(x, y, side, white)` in stream pixels, for the host to paint.
pub fn cells(width: u32, id: u32, host_recv_us: u64) -> Vec<(u32, u32, u32, bool)> {
    let c = cell_size(width);
    let (x0, y0, _, _) = rect(width);
    let mut out = Vec::with_capacity((BITS * ROWS) as usize);
    for (row, v) in rows(id, host_recv_us).iter().enumerate() {
        for bit in 0..BITS {
            let white = v >> (BITS - 1 - bit) & 1 == 1;
            out.push((x0 + bit * c, y0 + row as u32 * c, c, white));
        }
    }
    out
}

/// Reads the strip from a luma plane: `(id, low 32 bits of the arrival time)`, or `None` when
/// no valid probe is shown (id 0, or the complement row disagrees).
pub fn read(luma: &[u8], stride: usize, width: u32, height: u32) -> Option<(u32, u32)> {
    let c = cell_size(width);
    let (x0, y0, _, h) = rect(width);
    if h > height || width < c * BITS {
        return None;
    }
    let mut vals = [0u32; ROWS as usize];
    for (row, v) in vals.iter_mut().enumerate() {
        for bit in 0..BITS {
            let x = (x0 + bit * c + c / 2) as usize;
            let y = (y0 + row as u32 * c + c / 2) as usize;
            let px = *luma.get(y * stride + x)?;
            *v = *v << 1 | u32::from(px >= 128);
        }
    }
    (vals[0] != 0 && vals[1] == !vals[0]).then_some((vals[0], vals[2]))
}

/// The full host time whose low 32 bits are `low`, taken as the latest such time not after
/// `reference` (a host time known to come later, e.g. the frame's capture start).
pub fn widen(low: u32, reference: u64) -> u64 {
    let candidate = (reference & !0xffff_ffff) | low as u64;
    if candidate <= reference {
        candidate
    } else {
        candidate.wrapping_sub(1 << 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paint(width: u32, height: u32, id: u32, t: u64) -> Vec<u8> {
        let mut luma = vec![60u8; (width * height) as usize];
        for (x, y, side, white) in cells(width, id, t) {
            for yy in y..y + side {
                for xx in x..x + side {
                    luma[(yy * width + xx) as usize] = if white { 235 } else { 16 };
                }
            }
        }
        luma
    }

    #[test]
    fn strip_round_trips_at_common_sizes() {
        for (w, h) in [(640, 360), (1280, 720), (1920, 1080), (3840, 2160)] {
            let t = 0x1234_5678_9abc_u64;
            let luma = paint(w, h, 77, t);
            assert_eq!(
                read(&luma, w as usize, w, h),
                Some((77, t as u32)),
                "{w}x{h}"
            );
        }
    }

    #[test]
    fn no_probe_reads_as_none() {
        let luma = vec![60u8; 1920 * 1080];
        assert_eq!(read(&luma, 1920, 1920, 1080), None);
        // A corrupted complement row is refused.
        let mut luma = paint(1920, 1080, 5, 1);
        let c = cell_size(1920) as usize;
        let (x0, _, _, _) = rect(1920);
        let y = c + c / 2; // complement row
        let x = x0 as usize + 31 * c + c / 2;
        luma[y * 1920 + x] = 255 - luma[y * 1920 + x];
        assert_eq!(read(&luma, 1920, 1920, 1080), None);
    }

    #[test]
    fn widening_picks_the_latest_time_before_the_reference() {
        let t = 0x0000_0005_ffff_fff0_u64;
        assert_eq!(widen(t as u32, t + 100), t);
        // The reference wrapped past a 2^32 boundary after the probe arrived.
        assert_eq!(widen(t as u32, 0x0000_0006_0000_0010), t);
        assert_eq!(widen(7, 7), 7);
    }
}
