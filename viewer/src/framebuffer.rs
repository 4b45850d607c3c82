//! The CPU path's framebuffer: a window-sized buffer of `0x00RRGGBB` words that keeps its
//! contents between presents and takes *rectangle updates*.
//!
//! * The picture is painted straight from the decoded planes ([`paint`]): YUV → words with
//!   [`crate::convert::fb`], scaled on the way with the fill mapping ([`FillMap`]: the largest
//!   aspect-correct size that fits, centred, black bars — nearest neighbour, exactly the
//!   mapping pointer input uses). No intermediate RGBA picture, no second pass.
//! * A frame that changed only some rectangles repaints only those (their window rectangles).
//! * Overlays ([`Sprite`]s: the cursor, the stats panel) are blended on top ([`draw_sprite`])
//!   and taken away by painting their rectangle from the picture again on the next present.
//!
//! Other sources of pixels fit the same shape: [`paint_words`] paints a picture rectangle that
//! arrives already in RGB (lossless tiles), scaled the same way. A tile layer also has to be a
//! repaint source: what the CPU presenter repaints from the decoded picture (under last
//! present's overlays, changed tiles) must then be painted from the tiles where they cover it.
//!
//! Everything here works on plain slices, so it is tested without a window; the softbuffer glue
//! is [`crate::present_cpu`].

use sightline_protocol::damage::DamageRect;
use sightline_protocol::msg::MAX_DIMENSION;

use crate::convert::fb::{convert_rect, convert_row, Coeffs, Span};
use crate::frame::DecodedFrame;
use crate::overlay::{blend_over, Anchor, Sprite};

/// Fill-scaling lookup tables for one (picture, window) geometry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillMap {
    /// Window size, pixels.
    pub window: (u32, u32),
    /// Picture (stream) size, pixels.
    pub picture: (u32, u32),
    /// First window column showing the picture (the left bar's width).
    pub x0: usize,
    /// First window row showing the picture (the top bar's height).
    pub y0: usize,
    /// For each window column from `x0`: the picture column it shows.
    pub xs: Vec<u32>,
    /// For each window row from `y0`: the picture row it shows.
    pub ys: Vec<u32>,
    /// `xs` is `0, 1, 2, …` over the whole picture row (1:1 horizontally).
    pub identity_x: bool,
    /// `ys` is `0, 1, 2, …` (1:1 vertically).
    pub identity_y: bool,
}

impl FillMap {
    /// The tables for showing a `picture`-sized image in a `window`-sized framebuffer.
    ///
    /// Window column `x` shows picture column `floor((x + ½ − ox) / s)`, with the scale `s` and
    /// offset `ox` of [`fill_to_stream`](crate::input::devices::fill_to_stream), so a click
    /// lands on the pixel shown under the pointer.
    pub fn new(window: (u32, u32), picture: (u32, u32)) -> FillMap {
        let (ww, wh) = (f64::from(window.0.max(1)), f64::from(window.1.max(1)));
        let (pw, ph) = (f64::from(picture.0.max(1)), f64::from(picture.1.max(1)));
        let s = (ww / pw).min(wh / ph);
        let (ox, oy) = ((ww - pw * s) / 2.0, (wh - ph * s) / 2.0);
        let (x0, xs) = axis(window.0, picture.0, s, ox);
        let (y0, ys) = axis(window.1, picture.1, s, oy);
        let identity = |v: &[u32], n: u32| {
            v.len() == n as usize && v.iter().enumerate().all(|(i, &x)| x as usize == i)
        };
        FillMap {
            window,
            picture,
            x0,
            y0,
            identity_x: identity(&xs, picture.0),
            identity_y: identity(&ys, picture.1),
            xs,
            ys,
        }
    }

    /// The window rectangle showing the picture (`None` when nothing of it is visible).
    pub fn picture_rect(&self) -> Option<DamageRect> {
        window_rect(self.x0, self.y0, self.xs.len(), self.ys.len())
    }

    /// The window rectangle showing picture rectangle `r` (every window pixel whose source lies
    /// in `r`), if any.
    pub fn to_window(&self, r: &DamageRect) -> Option<DamageRect> {
        let cols = range_of(&self.xs, u32::from(r.x), r.right());
        let rows = range_of(&self.ys, u32::from(r.y), r.bottom());
        window_rect(
            self.x0 + cols.0,
            self.y0 + rows.0,
            cols.1 - cols.0,
            rows.1 - rows.0,
        )
    }

    /// Whether a window this size can be tracked in rectangles (they are 16-bit).
    pub fn trackable(&self) -> bool {
        self.window.0 <= MAX_DIMENSION && self.window.1 <= MAX_DIMENSION
    }
}

/// Indices `i` with `lo ≤ v[i] < hi` (`v` is sorted), as a half-open range.
fn range_of(v: &[u32], lo: u32, hi: u32) -> (usize, usize) {
    (
        v.partition_point(|&s| s < lo),
        v.partition_point(|&s| s < hi),
    )
}

fn window_rect(x: usize, y: usize, w: usize, h: usize) -> Option<DamageRect> {
    let c = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    DamageRect::new(c(x), c(y), c(w), c(h))
}

/// Window pixels `0..win` whose centres fall on the picture: the first one and, for each, the
/// source index `floor((x + ½ − off) / s)`. The indices grow with `x`, so the pixels form one run.
fn axis(win: u32, pic: u32, s: f64, off: f64) -> (usize, Vec<u32>) {
    let mut first = None;
    let mut v = Vec::new();
    for x in 0..win {
        let sx = ((f64::from(x) + 0.5 - off) / s).floor();
        if sx >= 0.0 && sx < f64::from(pic) {
            first.get_or_insert(x as usize);
            v.push(sx as u32);
        }
    }
    (first.unwrap_or(0), v)
}

/// A window-sized buffer of `0x00RRGGBB` words, row-major, `width` words per row.
#[derive(Debug)]
pub struct Target<'a> {
    /// The words (at least `width × height`).
    pub words: &'a mut [u32],
    /// Row length in words.
    pub width: usize,
    /// Rows.
    pub height: usize,
}

/// Fills window rectangle `r` with `word`.
pub fn fill(t: &mut Target<'_>, r: &DamageRect, word: u32) {
    for y in u32::from(r.y)..r.bottom().min(t.height as u32) {
        let row = y as usize * t.width;
        let (a, b) = (usize::from(r.x), (r.right() as usize).min(t.width));
        if a < b {
            t.words[row + a..row + b].fill(word);
        }
    }
}

/// Paints black everywhere the picture is not shown (the bars).
pub fn clear_bars(map: &FillMap, t: &mut Target<'_>) {
    let (w, h) = (t.width, t.height);
    let Some(p) = map.picture_rect() else {
        t.words[..w * h].fill(0);
        return;
    };
    let (x0, x1) = (usize::from(p.x), p.right() as usize);
    for y in 0..h {
        let row = &mut t.words[y * w..(y + 1) * w];
        if y < usize::from(p.y) || y >= p.bottom() as usize {
            row.fill(0);
        } else {
            row[..x0.min(w)].fill(0);
            row[x1.min(w)..].fill(0);
        }
    }
}

/// Paints window rectangle `r` (clipped to the picture) from `frame`; returns the picture
/// pixels converted. `scratch` is reused between calls (scaled rows are converted into it).
///
/// The frame must be the map's picture size with complete planes (the app checks).
pub fn paint(
    frame: &DecodedFrame,
    k: &Coeffs,
    map: &FillMap,
    r: &DamageRect,
    t: &mut Target<'_>,
    scratch: &mut Vec<u32>,
) -> u64 {
    let Some(pic) = map.picture_rect() else {
        return 0;
    };
    let (wx0, wx1) = (
        u32::from(r.x).max(u32::from(pic.x)),
        r.right().min(pic.right()),
    );
    let (wy0, wy1) = (
        u32::from(r.y).max(u32::from(pic.y)),
        r.bottom().min(pic.bottom()),
    );
    if wx0 >= wx1 || wy0 >= wy1 {
        return 0;
    }
    let (wx0, wx1, wy0, wy1) = (wx0 as usize, wx1 as usize, wy0 as usize, wy1 as usize);
    let (c0, c1) = (wx0 - map.x0, wx1 - map.x0);
    let sx0 = (map.xs[c0] & !1) as usize;
    let sx1 = map.xs[c1 - 1] as usize + 1;
    let n = sx1 - sx0;
    let w = t.width;
    if map.identity_x && map.identity_y {
        // 1:1 in both directions: one call converts the block (window = picture + offset).
        let (sy0, sy1) = (wy0 - map.y0, wy1 - map.y0);
        let s = Span {
            x0: sx0,
            x1: sx1,
            y0: sy0,
            y1: sy1,
        };
        convert_rect(frame, k, s, t.words, w, (map.x0 + sx0, wy0));
        return (n * (sy1 - sy0)) as u64;
    }
    let mut converted = 0u64;
    for wy in wy0..wy1 {
        let sy = map.ys[wy - map.y0] as usize;
        let row = wy * w;
        if wy > wy0 && map.ys[wy - 1 - map.y0] as usize == sy {
            // Same source row as the row above (upscaling): copy it.
            let (a, b) = if map.identity_x {
                (map.x0 + sx0, map.x0 + sx1)
            } else {
                (wx0, wx1)
            };
            t.words.copy_within(row - w + a..row - w + b, row + a);
            continue;
        }
        converted += n as u64;
        if map.identity_x {
            let at = row + map.x0 + sx0;
            convert_row(frame, k, sy, sx0, &mut t.words[at..at + n]);
        } else {
            scratch.resize(n, 0);
            convert_row(frame, k, sy, sx0, scratch);
            let out = &mut t.words[row + wx0..row + wx1];
            for (o, &sx) in out.iter_mut().zip(&map.xs[c0..c1]) {
                *o = scratch[sx as usize - sx0];
            }
        }
    }
    converted
}

/// Paints picture rectangle `r` from `words` (`0x00RRGGBB`, `stride` words per row, its first
/// word the picture pixel at `r`'s top-left) — for pixels that arrive already in RGB, such as
/// lossless tiles — scaled like the picture; returns the window rectangle it covered.
pub fn paint_words(
    map: &FillMap,
    r: &DamageRect,
    words: &[u32],
    stride: usize,
    t: &mut Target<'_>,
) -> Option<DamageRect> {
    let r = r.clip(map.picture.0, map.picture.1)?;
    let (rw, rh) = (usize::from(r.width), usize::from(r.height));
    if stride < rw || words.len() < stride * (rh - 1) + rw {
        return None;
    }
    let wr = map.to_window(&r)?;
    for wy in u32::from(wr.y)..wr.bottom() {
        let sy = map.ys[wy as usize - map.y0] as usize - usize::from(r.y);
        let src = &words[sy * stride..];
        let row = wy as usize * t.width;
        for wx in u32::from(wr.x)..wr.right() {
            let sx = map.xs[wx as usize - map.x0] as usize - usize::from(r.x);
            t.words[row + wx as usize] = src[sx];
        }
    }
    Some(wr)
}

/// Blends `sprite` over the framebuffer; returns the window rectangle it touched.
pub fn draw_sprite(map: &FillMap, sprite: &Sprite, t: &mut Target<'_>) -> Option<DamageRect> {
    let (sw, sh) = (sprite.width as usize, sprite.height as usize);
    if sprite.rgba.len() < sw * sh * 4 {
        return None;
    }
    let px = |x: usize, y: usize| -> [u8; 4] {
        let i = (y * sw + x) * 4;
        [
            sprite.rgba[i],
            sprite.rgba[i + 1],
            sprite.rgba[i + 2],
            sprite.rgba[i + 3],
        ]
    };
    let blend = |word: &mut u32, s: [u8; 4]| {
        if s[3] == 0 && s[..3] == [0, 0, 0] {
            return;
        }
        let d = [(*word >> 16) as u8, (*word >> 8) as u8, *word as u8];
        let [r, g, b] = blend_over(s, d);
        *word = (u32::from(r) << 16) | (u32::from(g) << 8) | u32::from(b);
    };
    match sprite.anchor {
        Anchor::PictureCorner => {
            let x = map.x0 as i64 + sprite.x;
            let y = map.y0 as i64 + sprite.y;
            let (x0, y0) = (x.max(0), y.max(0));
            let x1 = (x + sw as i64).min(t.width as i64);
            let y1 = (y + sh as i64).min(t.height as i64);
            if x0 >= x1 || y0 >= y1 {
                return None;
            }
            for wy in y0..y1 {
                let row = wy as usize * t.width;
                for wx in x0..x1 {
                    let s = px((wx - x) as usize, (wy - y) as usize);
                    blend(&mut t.words[row + wx as usize], s);
                }
            }
            window_rect(
                x0 as usize,
                y0 as usize,
                (x1 - x0) as usize,
                (y1 - y0) as usize,
            )
        }
        Anchor::Stream => {
            let (px0, py0) = (sprite.x.max(0), sprite.y.max(0));
            let px1 = (sprite.x + sw as i64).min(i64::from(map.picture.0));
            let py1 = (sprite.y + sh as i64).min(i64::from(map.picture.1));
            if px0 >= px1 || py0 >= py1 {
                return None;
            }
            let r = DamageRect::new(
                px0 as u32,
                py0 as u32,
                (px1 - px0) as u32,
                (py1 - py0) as u32,
            )?;
            let wr = map.to_window(&r)?;
            for wy in u32::from(wr.y)..wr.bottom() {
                let sy = map.ys[wy as usize - map.y0] as i64 - sprite.y;
                let row = wy as usize * t.width;
                for wx in u32::from(wr.x)..wr.right() {
                    let sx = map.xs[wx as usize - map.x0] as i64 - sprite.x;
                    blend(
                        &mut t.words[row + wx as usize],
                        px(sx as usize, sy as usize),
                    );
                }
            }
            Some(wr)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::PictureFormat;
    use crate::input::devices::fill_to_stream;
    use sightline_protocol::msg::{ColourMatrix, ColourRange};
    use std::time::Instant;

    /// A picture whose pixel (x, y) has luma 16 + (x + 3y) % 200 and neutral chroma (grey).
    fn frame(w: u32, h: u32, format: PictureFormat) -> DecodedFrame {
        let b = format.bytes_per_sample();
        let (cw, ch) = format.chroma_size(w, h);
        let scale = if b == 2 { 4 } else { 1 };
        let mut y = Vec::new();
        for j in 0..h {
            for i in 0..w {
                let v = (16 + (i + 3 * j) % 200) as u16 * scale;
                y.extend_from_slice(&v.to_le_bytes()[..b]);
            }
        }
        let c: Vec<u8> = (0..cw * ch)
            .flat_map(|_| (128u16 * scale).to_le_bytes()[..b].to_vec())
            .collect();
        DecodedFrame {
            width: w,
            height: h,
            format,
            y,
            u: c.clone(),
            v: c,
            y_stride: w as usize * b,
            uv_stride: cw as usize * b,
            matrix: ColourMatrix::Bt709,
            range: ColourRange::Full,
            frame: 0,
            damage: None,
            host_times: None,
            first_packet_us: 0,
            reassembled_us: 0,
            decoded_us: 0,
            decoded_at: Instant::now(),
        }
    }

    fn rect(x: u16, y: u16, width: u16, height: u16) -> DamageRect {
        DamageRect {
            x,
            y,
            width,
            height,
        }
    }

    /// Paints the whole window; returns the words.
    fn painted(window: (u32, u32), f: &DecodedFrame) -> Vec<u32> {
        let map = FillMap::new(window, (f.width, f.height));
        let mut words = vec![0xDEAD_BEEF; (window.0 * window.1) as usize];
        let mut t = Target {
            words: &mut words,
            width: window.0 as usize,
            height: window.1 as usize,
        };
        clear_bars(&map, &mut t);
        let all = rect(0, 0, window.0 as u16, window.1 as u16);
        paint(f, &Coeffs::of(f), &map, &all, &mut t, &mut Vec::new());
        words
    }

    #[test]
    fn one_to_one_and_bars() {
        let map = FillMap::new((9, 3), (6, 3));
        assert!(map.identity_x && map.identity_y);
        assert_eq!((map.x0, map.y0), (1, 0));
        let f = frame(6, 3, PictureFormat::I420);
        let words = painted((9, 3), &f);
        let k = Coeffs::of(&f);
        for y in 0..3 {
            assert_eq!(words[y * 9], 0, "left bar");
            assert_eq!(&words[y * 9 + 7..y * 9 + 9], &[0, 0], "right bar");
            for x in 0..6 {
                let mut one = [0u32; 2];
                convert_row(&f, &k, y, x & !1, &mut one);
                assert_eq!(words[y * 9 + 1 + x], one[x & 1], "({x},{y})");
            }
        }
    }

    #[test]
    fn every_shown_pixel_is_the_source_pixel_input_maps_to() {
        for format in [PictureFormat::I420, PictureFormat::I444P10] {
            for (window, pic) in [
                ((100, 70), (64, 36)),
                ((192, 108), (128, 72)),
                ((80, 90), (192, 108)),
                ((33, 33), (17, 6)),
            ] {
                let f = frame(pic.0, pic.1, format);
                let k = Coeffs::of(&f);
                let map = FillMap::new(window, pic);
                let words = painted(window, &f);
                for (i, &sx) in map.xs.iter().enumerate() {
                    let x = map.x0 + i;
                    for (j, &sy) in map.ys.iter().enumerate() {
                        let y = map.y0 + j;
                        let (mx, my) =
                            fill_to_stream(window, pic, (x as f64 + 0.5, y as f64 + 0.5));
                        assert_eq!((mx as u32, my as u32), (sx, sy), "{window:?} {pic:?}");
                        let x0 = sx as usize & !1;
                        let mut one = vec![0u32; (pic.0 as usize - x0).min(2)];
                        convert_row(&f, &k, sy as usize, x0, &mut one);
                        assert_eq!(words[y * window.0 as usize + x], one[sx as usize & 1]);
                    }
                }
                // Centred: bars differ by at most one pixel; bars are black.
                let right = window.0 as usize - map.x0 - map.xs.len();
                let bottom = window.1 as usize - map.y0 - map.ys.len();
                assert!(right.abs_diff(map.x0) <= 1 && bottom.abs_diff(map.y0) <= 1);
                assert!(map.x0 == 0 || words[0] == 0);
            }
        }
    }

    #[test]
    fn painting_a_damaged_rect_touches_only_its_window_rect() {
        for (window, pic) in [
            ((64, 36), (64, 36)),
            ((100, 70), (64, 36)),
            ((50, 30), (64, 36)),
        ] {
            let old = frame(pic.0, pic.1, PictureFormat::I420);
            let mut new = old.clone();
            // Change a 10×6 block at (21, 13) of the picture.
            let damage = rect(21, 13, 10, 6);
            for y in 13..19 {
                for x in 21..31 {
                    new.y[y * pic.0 as usize + x] = 235;
                }
            }
            let map = FillMap::new(window, pic);
            let mut words = painted(window, &old);
            let before = words.clone();
            let wr = map.to_window(&damage).unwrap();
            let mut t = Target {
                words: &mut words,
                width: window.0 as usize,
                height: window.1 as usize,
            };
            paint(&new, &Coeffs::of(&new), &map, &wr, &mut t, &mut Vec::new());
            assert_eq!(
                words,
                painted(window, &new),
                "{window:?}: same as a full repaint"
            );
            // Nothing outside the rect (grown to an even source column) changed.
            for y in 0..window.1 as usize {
                for x in 0..window.0 as usize {
                    let inside = (usize::from(wr.x).saturating_sub(2)..wr.right() as usize)
                        .contains(&x)
                        && (usize::from(wr.y)..wr.bottom() as usize).contains(&y);
                    if !inside {
                        assert_eq!(
                            words[y * window.0 as usize + x],
                            before[y * window.0 as usize + x]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn stream_sprites_scale_with_the_picture_and_corner_sprites_do_not() {
        let (window, pic) = ((200, 100), (100, 50));
        let f = frame(pic.0, pic.1, PictureFormat::I420);
        let map = FillMap::new(window, pic);
        let mut words = painted(window, &f);
        let mut t = Target {
            words: &mut words,
            width: 200,
            height: 100,
        };
        let red = Sprite {
            rgba: [255, 0, 0, 255].repeat(4 * 4),
            width: 4,
            height: 4,
            x: 10,
            y: 20,
            anchor: Anchor::Stream,
        };
        assert_eq!(draw_sprite(&map, &red, &mut t), Some(rect(20, 40, 8, 8)));
        let half = Sprite {
            rgba: [0, 0, 0, 128].repeat(3),
            width: 3,
            height: 1,
            x: 1,
            y: 2,
            anchor: Anchor::PictureCorner,
        };
        let before = t.words[2 * 200 + 1];
        assert_eq!(draw_sprite(&map, &half, &mut t), Some(rect(1, 2, 3, 1)));
        assert_eq!(t.words[40 * 200 + 20], 0xFF_0000);
        assert_eq!(t.words[47 * 200 + 27], 0xFF_0000);
        assert_ne!(t.words[48 * 200 + 27], 0xFF_0000);
        let dimmed = t.words[2 * 200 + 1];
        assert!(dimmed & 0xff < before & 0xff && dimmed & 0xff > 0);
        // Off the picture: nothing drawn.
        let off = Sprite {
            x: 500,
            ..red.clone()
        };
        assert_eq!(draw_sprite(&map, &off, &mut t), None);
    }

    #[test]
    fn rgb_tiles_paint_scaled_like_the_picture() {
        // A 4×2 tile at (8, 6) of a 32×16 picture shown 2× in a 64×32 window.
        let map = FillMap::new((64, 32), (32, 16));
        let mut words = vec![0; 64 * 32];
        let mut t = Target {
            words: &mut words,
            width: 64,
            height: 32,
        };
        let tile: Vec<u32> = (0..8).map(|i| 0x10_0000 * (i + 1)).collect();
        let wr = paint_words(&map, &rect(8, 6, 4, 2), &tile, 4, &mut t).unwrap();
        assert_eq!(wr, rect(16, 12, 8, 4));
        assert_eq!(t.words[12 * 64 + 16], tile[0]);
        assert_eq!(t.words[13 * 64 + 17], tile[0]);
        assert_eq!(t.words[15 * 64 + 23], tile[7]);
        assert_eq!(t.words[16 * 64 + 16], 0, "nothing below the tile");
        assert!(paint_words(&map, &rect(8, 6, 4, 2), &tile[..5], 4, &mut t).is_none());
    }
}
