//! What changed between the picture on screen and the next decoded one, found by comparing
//! their planes — exact for any codec.
//!
//! The host's damage list says where its *source* changed, but a lossy encoder also changes
//! decoded pixels elsewhere (refinement after a keyframe or a change, deblocking, rate control;
//! openh264 in camera tuning keeps touching static areas every frame). Repainting only the
//! host's rectangles would leave those pixels stale, so the presenters ask [`changed_rects`]
//! instead: it compares the two pictures in tiles of [`TILE_W`]×[`TILE_H`] pixels (whole rows
//! first, so unchanged rows cost one `memcmp`), skipping tiles inside the host's rectangles
//! (they are repainted anyway), and returns the changed tiles merged into a few rectangles.
//!
//! Comparing against the picture *shown* (not the previous frame number) also makes frames the
//! latest-wins slot dropped, or lost on the network, harmless: whatever differs is repainted.

use sightline_protocol::damage::{merge, DamageRect};

use crate::frame::DecodedFrame;

/// Tile width in pixels (even, so 4:2:0 chroma splits evenly).
pub const TILE_W: usize = 64;
/// Tile height in pixels (a macroblock row).
pub const TILE_H: usize = 16;

/// Rectangles (picture pixels) covering every pixel where `new` differs from `old`, at most
/// `max` of them; empty when nothing changed. `hints` are rectangles known to have changed
/// (repainted without comparing). `None` when the two cannot be compared: a different size,
/// format, matrix or range (repaint everything).
pub fn changed_rects(
    old: &DecodedFrame,
    new: &DecodedFrame,
    hints: Option<&[DamageRect]>,
    max: usize,
) -> Option<Vec<DamageRect>> {
    let same = (old.width, old.height, old.format, old.matrix, old.range)
        == (new.width, new.height, new.format, new.matrix, new.range);
    if !same {
        return None;
    }
    let (w, h) = (new.width as usize, new.height as usize);
    let b = new.format.bytes_per_sample();
    let (tx, ty) = (w.div_ceil(TILE_W), h.div_ceil(TILE_H));
    let mut marked = vec![false; tx * ty];
    for r in hints
        .unwrap_or(&[])
        .iter()
        .filter_map(|r| r.clip(new.width, new.height))
    {
        for j in usize::from(r.y) / TILE_H..(r.bottom() as usize).div_ceil(TILE_H) {
            for i in usize::from(r.x) / TILE_W..(r.right() as usize).div_ceil(TILE_W) {
                marked[j * tx + i] = true;
            }
        }
    }
    // Luma.
    for y in 0..h {
        let a = &old.y[y * old.y_stride..][..w * b];
        let c = &new.y[y * new.y_stride..][..w * b];
        if a != c {
            mark_row(&mut marked[y / TILE_H * tx..][..tx], a, c, TILE_W * b);
        }
    }
    // Chroma: a chroma row covers one luma row (4:4:4) or two (4:2:0); a tile column holds
    // TILE_W / 2 chroma samples in 4:2:0.
    let (cw, ch) = new.format.chroma_size(new.width, new.height);
    let (cw, ch) = (cw as usize, ch as usize);
    let sub = usize::from(new.format.is_420());
    for cy in 0..ch {
        let tile = &mut marked[(cy << sub) / TILE_H * tx..][..tx];
        for (a, c) in [(&old.u, &new.u), (&old.v, &new.v)] {
            let a = &a[cy * old.uv_stride..][..cw * b];
            let c = &c[cy * new.uv_stride..][..cw * b];
            if a != c {
                mark_row(tile, a, c, (TILE_W >> sub) * b);
            }
        }
    }
    // Runs of marked tiles per tile row, then merged.
    let mut runs = Vec::new();
    for j in 0..ty {
        let mut i = 0;
        while i < tx {
            if !marked[j * tx + i] {
                i += 1;
                continue;
            }
            let start = i;
            while i < tx && marked[j * tx + i] {
                i += 1;
            }
            let (x0, y0) = (start * TILE_W, j * TILE_H);
            let (x1, y1) = ((i * TILE_W).min(w), ((j + 1) * TILE_H).min(h));
            runs.extend(DamageRect::new(
                x0 as u32,
                y0 as u32,
                (x1 - x0) as u32,
                (y1 - y0) as u32,
            ));
        }
    }
    Some(merge(&runs, max))
}

/// Marks the tiles of one row whose bytes differ (`bytes` per tile), skipping marked ones.
fn mark_row(tiles: &mut [bool], a: &[u8], c: &[u8], bytes: usize) {
    for (i, t) in tiles.iter_mut().enumerate() {
        if *t {
            continue;
        }
        let (s, e) = ((i * bytes).min(a.len()), ((i + 1) * bytes).min(a.len()));
        if a[s..e] != c[s..e] {
            *t = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::PictureFormat;
    use sightline_protocol::msg::{ColourMatrix, ColourRange};
    use std::time::Instant;

    fn frame(w: u32, h: u32, format: PictureFormat, pad: usize) -> DecodedFrame {
        let b = format.bytes_per_sample();
        let (cw, ch) = format.chroma_size(w, h);
        let (ys, cs) = ((w as usize + pad) * b, (cw as usize + pad) * b);
        DecodedFrame {
            width: w,
            height: h,
            format,
            y: (0..ys * h as usize).map(|i| (i * 7 % 251) as u8).collect(),
            u: (0..cs * ch as usize).map(|i| (i * 3 % 253) as u8).collect(),
            v: (0..cs * ch as usize).map(|i| (i * 5 % 241) as u8).collect(),
            y_stride: ys,
            uv_stride: cs,
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

    fn inside(rects: &[DamageRect], x: usize, y: usize) -> bool {
        rects.iter().any(|r| {
            (usize::from(r.x)..r.right() as usize).contains(&x)
                && (usize::from(r.y)..r.bottom() as usize).contains(&y)
        })
    }

    #[test]
    fn identical_pictures_changed_nowhere() {
        let a = frame(300, 200, PictureFormat::I420, 3);
        assert_eq!(changed_rects(&a, &a.clone(), None, 8), Some(vec![]));
    }

    #[test]
    fn every_changed_sample_is_covered_in_every_format() {
        let mut seed = 1u64;
        let mut rnd = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for format in [
            PictureFormat::I420,
            PictureFormat::I444,
            PictureFormat::I420P10,
            PictureFormat::I444P10,
        ] {
            for _ in 0..20 {
                let old = frame(333, 181, format, 5);
                let mut new = old.clone();
                let b = format.bytes_per_sample();
                let (cw, ch) = format.chroma_size(333, 181);
                // A few luma samples and a few chroma samples change.
                let mut pixels = Vec::new();
                for _ in 0..3 {
                    let (x, y) = (rnd(333), rnd(181));
                    new.y[y * new.y_stride + x * b] ^= 0x55;
                    pixels.push((x, y));
                }
                let sub = usize::from(format.is_420());
                let (cx, cy) = (rnd(cw as usize), rnd(ch as usize));
                new.v[cy * new.uv_stride + cx * b] ^= 0x0f;
                pixels.push((cx << sub, cy << sub));
                let rects = changed_rects(&old, &new, None, 8).unwrap();
                assert!(!rects.is_empty() && rects.len() <= 8);
                for &(x, y) in &pixels {
                    assert!(
                        inside(&rects, x, y),
                        "{format:?} ({x}, {y}) not in {rects:?}"
                    );
                }
                let area: u64 = rects.iter().map(DamageRect::area).sum();
                assert!(area < 333 * 181, "{format:?}: {area}");
            }
        }
    }

    #[test]
    fn one_small_change_gives_its_tile() {
        let old = frame(1920, 1080, PictureFormat::I420, 0);
        let mut new = old.clone();
        new.y[500 * 1920 + 700] ^= 1;
        let rects = changed_rects(&old, &new, None, 8).unwrap();
        assert_eq!(
            rects,
            vec![DamageRect {
                x: 640,
                y: 496,
                width: 64,
                height: 16
            }]
        );
    }

    #[test]
    fn hinted_tiles_count_as_changed_and_other_changes_still_show() {
        let old = frame(640, 360, PictureFormat::I420, 0);
        let mut new = old.clone();
        new.y[300 * 640 + 600] ^= 1;
        let hint = DamageRect {
            x: 0,
            y: 0,
            width: 10,
            height: 10,
        };
        let rects = changed_rects(&old, &new, Some(&[hint]), 8).unwrap();
        assert!(
            inside(&rects, 5, 5),
            "the hinted area is repainted: {rects:?}"
        );
        assert!(
            inside(&rects, 600, 300),
            "a change outside the hint is found: {rects:?}"
        );
    }

    #[test]
    fn other_geometry_or_colour_cannot_be_compared() {
        let a = frame(64, 32, PictureFormat::I420, 0);
        let mut b = a.clone();
        b.range = ColourRange::Full;
        assert_eq!(changed_rects(&a, &b, None, 8), None);
        assert_eq!(
            changed_rects(&a, &frame(64, 34, PictureFormat::I420, 0), None, 8),
            None
        );
        assert_eq!(
            changed_rects(&a, &frame(64, 32, PictureFormat::I444, 0), None, 8),
            None
        );
    }
}
