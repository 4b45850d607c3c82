//! What the viewer draws over the picture, in the window's RGBA frame buffer (tight rows,
//! `width * 4` bytes each, straight alpha 255):
//!
//! - the host's cursor, blended locally from its premultiplied image so that a cursor move
//!   never waits for a video frame;
//! - the stats overlay (F3): frame rate, bitrate, round trip, the median of each pipeline stage,
//!   losses — alacritty's render timer idea, a debug aid that costs nothing when hidden.
//!
//! Text uses the public-domain 8×8 bitmap font of the `font8x8` crate (printable ASCII; anything
//! else is drawn as `?`), scaled by whole pixels.
//!
//! Drawing into the frame buffer overwrites picture pixels. When the window redraws without a
//! new picture (the cursor moved, the overlay was toggled), [`SaveUnder`] puts the covered
//! pixels back first, so the picture never has to be converted again for an overlay change.

use crate::frame::StatsSnapshot;

/// Names of the per-stage figures in [`StatsSnapshot::stage_ms`], in order.
pub const STAGE_NAMES: [&str; 8] = [
    "capture",
    "convert",
    "encode",
    "send",
    "network",
    "reassemble",
    "decode",
    "present",
];

/// Glyph cell size of the font in pixels, before scaling.
pub const GLYPH_PX: u32 = 8;

/// Background of the stats panel: black at about 70 % opacity (straight alpha).
pub const PANEL_BACKGROUND: [u8; 4] = [0, 0, 0, 180];

/// Text colour of the stats panel.
pub const PANEL_TEXT: [u8; 4] = [235, 235, 235, 255];

/// A rectangle inside a buffer, in pixels; never empty and never outside the buffer it was
/// clipped against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width (at least 1).
    pub width: u32,
    /// Height (at least 1).
    pub height: u32,
}

/// An RGBA frame buffer to draw into.
#[derive(Debug)]
pub struct Canvas<'a> {
    buf: &'a mut [u8],
    width: u32,
    height: u32,
}

impl<'a> Canvas<'a> {
    /// Wraps `buf` as `width × height` tight RGBA rows; `None` when the buffer is too small.
    pub fn new(buf: &'a mut [u8], width: u32, height: u32) -> Option<Self> {
        let needed = (width as usize)
            .checked_mul(height as usize)?
            .checked_mul(4)?;
        (buf.len() >= needed).then_some(Canvas { buf, width, height })
    }

    /// Buffer width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Buffer height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The RGBA value at (`x`, `y`); `None` outside the buffer.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 4]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = self.offset(x, y);
        let mut px = [0; 4];
        px.copy_from_slice(&self.buf[i..i + 4]);
        Some(px)
    }

    /// The part of the `width × height` rectangle at (`x`, `y`) that lies inside the buffer.
    pub fn clip(&self, x: i64, y: i64, width: u32, height: u32) -> Option<Rect> {
        let x0 = x.max(0);
        let y0 = y.max(0);
        let x1 = (x + i64::from(width)).min(i64::from(self.width));
        let y1 = (y + i64::from(height)).min(i64::from(self.height));
        if x1 <= x0 || y1 <= y0 {
            return None;
        }
        // The bounds above keep every value within 0..=u32::MAX.
        Some(Rect {
            x: x0 as u32,
            y: y0 as u32,
            width: (x1 - x0) as u32,
            height: (y1 - y0) as u32,
        })
    }

    /// Blends `colour` (straight alpha) over `rect`, which must come from [`Canvas::clip`].
    pub fn fill_blend(&mut self, rect: Rect, colour: [u8; 4]) {
        let a = u32::from(colour[3]);
        for row in rect.y..rect.y + rect.height {
            let start = self.offset(rect.x, row);
            let end = start + rect.width as usize * 4;
            for px in self.buf[start..end].chunks_exact_mut(4) {
                for c in 0..3 {
                    px[c] = blend_straight(u32::from(colour[c]), u32::from(px[c]), a);
                }
                px[3] = 255;
            }
        }
    }

    /// Draws `text` with its top-left corner at (`x`, `y`), each font pixel `scale × scale`
    /// screen pixels, in `colour` (alpha ignored). Returns what it touched.
    pub fn draw_text(
        &mut self,
        x: i64,
        y: i64,
        text: &str,
        colour: [u8; 4],
        scale: u32,
    ) -> Option<Rect> {
        let scale = scale.max(1);
        let cell = i64::from(GLYPH_PX * scale);
        for (i, ch) in text.chars().enumerate() {
            let gx = x + i as i64 * cell;
            for (row, bits) in glyph(ch).iter().enumerate() {
                for col in 0..GLYPH_PX {
                    if bits & (1 << col) == 0 {
                        continue;
                    }
                    let px = gx + i64::from(col * scale);
                    let py = y + row as i64 * i64::from(scale);
                    if let Some(r) = self.clip(px, py, scale, scale) {
                        self.fill_opaque(r, colour);
                    }
                }
            }
        }
        let chars = text.chars().count() as u32;
        self.clip(x, y, chars * GLYPH_PX * scale, GLYPH_PX * scale)
    }

    /// Blends a premultiplied RGBA image (`src_width × src_height`) with its top-left corner at
    /// (`x`, `y`). Returns what it touched; `None` when it is entirely outside or `src` is
    /// shorter than its size says.
    pub fn blend_premultiplied(
        &mut self,
        x: i64,
        y: i64,
        src: &[u8],
        src_width: u32,
        src_height: u32,
    ) -> Option<Rect> {
        if src.len() < src_width as usize * src_height as usize * 4 {
            return None;
        }
        let r = self.clip(x, y, src_width, src_height)?;
        // `r` lies inside the image: clip() only shrinks it.
        let sx0 = (i64::from(r.x) - x) as usize;
        let sy0 = (i64::from(r.y) - y) as usize;
        for row in 0..r.height as usize {
            let s = ((sy0 + row) * src_width as usize + sx0) * 4;
            let d = self.offset(r.x, r.y + row as u32);
            let n = r.width as usize * 4;
            let (src_row, dst_row) = (&src[s..s + n], &mut self.buf[d..d + n]);
            for (sp, dp) in src_row.chunks_exact(4).zip(dst_row.chunks_exact_mut(4)) {
                let inv = 255 - u32::from(sp[3]);
                if inv == 255 {
                    continue;
                }
                for c in 0..3 {
                    let v = u32::from(sp[c]) + (u32::from(dp[c]) * inv + 127) / 255;
                    dp[c] = v.min(255) as u8;
                }
                dp[3] = 255;
            }
        }
        Some(r)
    }

    /// Copies the pixels of `rect` out (tight rows).
    pub fn copy_out(&self, rect: Rect) -> Vec<u8> {
        let mut out = Vec::with_capacity(rect.width as usize * rect.height as usize * 4);
        for row in rect.y..rect.y + rect.height {
            let start = self.offset(rect.x, row);
            out.extend_from_slice(&self.buf[start..start + rect.width as usize * 4]);
        }
        out
    }

    /// Writes pixels saved by [`Canvas::copy_out`] back into `rect`.
    pub fn copy_in(&mut self, rect: Rect, pixels: &[u8]) {
        let n = rect.width as usize * 4;
        for (i, row) in (rect.y..rect.y + rect.height).enumerate() {
            let start = self.offset(rect.x, row);
            self.buf[start..start + n].copy_from_slice(&pixels[i * n..(i + 1) * n]);
        }
    }

    fn fill_opaque(&mut self, rect: Rect, colour: [u8; 4]) {
        let px = [colour[0], colour[1], colour[2], 255];
        for row in rect.y..rect.y + rect.height {
            let start = self.offset(rect.x, row);
            for d in self.buf[start..start + rect.width as usize * 4].chunks_exact_mut(4) {
                d.copy_from_slice(&px);
            }
        }
    }

    fn offset(&self, x: u32, y: u32) -> usize {
        (y as usize * self.width as usize + x as usize) * 4
    }
}

/// `(src * a + dst * (255 - a)) / 255`, rounded.
fn blend_straight(src: u32, dst: u32, a: u32) -> u8 {
    ((src * a + dst * (255 - a) + 127) / 255) as u8
}

/// Rows of the glyph for `ch`, bit 0 the leftmost pixel.
fn glyph(ch: char) -> [u8; 8] {
    let i = if ch.is_ascii() && !ch.is_ascii_control() {
        ch as usize
    } else {
        '?' as usize
    };
    font8x8::legacy::BASIC_LEGACY[i]
}

/// Pixels under overlays, saved before drawing them, so a redraw without a new picture can
/// restore the picture and draw the overlays again (cursor moved, overlay toggled).
#[derive(Debug, Default)]
pub struct SaveUnder {
    saved: Vec<(Rect, Vec<u8>)>,
}

impl SaveUnder {
    /// Remembers the pixels of `rect` before something is drawn over them.
    pub fn save(&mut self, canvas: &Canvas<'_>, rect: Rect) {
        self.saved.push((rect, canvas.copy_out(rect)));
    }

    /// Puts every saved rectangle back (newest first, so overlapping saves unwind correctly).
    pub fn restore(&mut self, canvas: &mut Canvas<'_>) {
        while let Some((rect, pixels)) = self.saved.pop() {
            canvas.copy_in(rect, &pixels);
        }
    }

    /// Drops what was saved: a new picture replaced the whole buffer.
    pub fn forget(&mut self) {
        self.saved.clear();
    }
}

/// Where an overlay image is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// At stream pixel (`x`, `y`), scaled with the picture (the host's cursor).
    Stream,
    /// At window pixel (`x`, `y`) from the shown picture's top-left corner, never scaled (the
    /// stats panel: crisp text whatever the window size).
    PictureCorner,
}

/// An overlay image both renderers draw over the picture: premultiplied RGBA rows
/// (`width × height × 4` bytes), placed by `anchor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sprite {
    /// Premultiplied RGBA.
    pub rgba: Vec<u8>,
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// Left edge (see `anchor`).
    pub x: i64,
    /// Top edge (see `anchor`).
    pub y: i64,
    /// Coordinate space of `x` and `y`.
    pub anchor: Anchor,
}

impl Sprite {
    /// The cursor as a sprite (its hotspot at the host's position), if it is shown.
    pub fn cursor(c: &crate::frame::CursorOverlay) -> Option<Sprite> {
        let needed = c.width as usize * c.height as usize * 4;
        if !c.visible || c.rgba.len() < needed || needed == 0 {
            return None;
        }
        Some(Sprite {
            rgba: c.rgba[..needed].to_vec(),
            width: c.width,
            height: c.height,
            x: i64::from(c.x) - i64::from(c.hot_x),
            y: i64::from(c.y) - i64::from(c.hot_y),
            anchor: Anchor::Stream,
        })
    }

    /// A cheap fingerprint of the content (FNV-1a over size and pixels), so a renderer can skip
    /// re-uploading an unchanged image.
    pub fn content_key(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let size = [self.width.to_le_bytes(), self.height.to_le_bytes()].concat();
        for b in size.iter().chain(&self.rgba) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        h
    }
}

/// Blends premultiplied RGBA `src` over an opaque pixel `dst` given as R, G, B.
#[inline]
pub fn blend_over(src: [u8; 4], dst: [u8; 3]) -> [u8; 3] {
    let inv = 255 - u32::from(src[3]);
    std::array::from_fn(|c| {
        let v = u32::from(src[c]) + (u32::from(dst[c]) * inv + 127) / 255;
        v.min(255) as u8
    })
}

/// Text scale for a buffer of `height` rows: 1 up to 1079 rows, 2 at 1080p, 4 at 2160p.
pub fn text_scale(height: u32) -> u32 {
    (height / 540).clamp(1, 4)
}

/// The lines the stats overlay shows.
pub fn stats_lines(stats: &StatsSnapshot) -> Vec<String> {
    let codec = if stats.codec.is_empty() {
        "-"
    } else {
        stats.codec.as_str()
    };
    let mut lines = vec![
        format!("{}x{} {}", stats.width, stats.height, codec),
        format!("{:6.1} fps  {:7.2} Mb/s", stats.fps, stats.bitrate_mbps),
        format!("rtt {:8.2} ms", stats.rtt_ms),
    ];
    for (name, ms) in STAGE_NAMES.iter().zip(stats.stage_ms) {
        lines.push(format!("{name:<10} {ms:7.2} ms"));
    }
    let total: f64 = stats.stage_ms.iter().sum();
    lines.push(format!("{:<10} {total:7.2} ms", "total"));
    lines.push(format!(
        "lost {}  recovered {}",
        stats.lost_frames, stats.recovered_frames
    ));
    lines.push(format!("keyframe requests {}", stats.keyframe_requests));
    if let Some(a) = &stats.audio {
        lines.extend(a.overlay_lines());
    }
    if let Some(l) = &stats.lossless {
        lines.push(lossless_line(l));
    }
    lines
}

/// The lossless indicator: `LOSSLESS` when the host's last hash list proved every pixel
/// bit-exact, else the share proven exact (and mismatches, if any).
pub fn lossless_line(l: &crate::compose::LosslessStatus) -> String {
    let f = &l.fidelity;
    if l.all_exact() {
        "LOSSLESS  100% bit-exact".to_owned()
    } else if f.mismatched_cells > 0 {
        format!(
            "exact {:5.1}%  MISMATCH {} cells",
            f.exact_share() * 100.0,
            f.mismatched_cells
        )
    } else {
        format!("exact {:5.1}%  (video elsewhere)", f.exact_share() * 100.0)
    }
}

/// Where the stats panel goes in a `width × height` buffer and how its text is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsPanel {
    lines: Vec<String>,
    scale: u32,
    x: i64,
    y: i64,
    width: u32,
    height: u32,
}

impl StatsPanel {
    /// Lays out `stats` in the top-left corner of a `width × height` buffer.
    pub fn layout(stats: &StatsSnapshot, buffer_height: u32) -> Self {
        Self::layout_with(stats, &[], buffer_height)
    }

    /// [`StatsPanel::layout`] with `extra` lines after the figures (the renderer's own).
    pub fn layout_with(stats: &StatsSnapshot, extra: &[String], buffer_height: u32) -> Self {
        let mut lines = stats_lines(stats);
        lines.extend(extra.iter().cloned());
        let scale = text_scale(buffer_height);
        let pad = 4 * scale;
        let line_h = (GLYPH_PX + 2) * scale;
        let cols = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0) as u32;
        StatsPanel {
            scale,
            x: i64::from(8 * scale),
            y: i64::from(8 * scale),
            width: cols * GLYPH_PX * scale + 2 * pad,
            height: lines.len() as u32 * line_h + 2 * pad - 2 * scale,
            lines,
        }
    }

    /// The part of the panel inside `canvas` (what [`StatsPanel::draw`] will touch).
    pub fn rect(&self, canvas: &Canvas<'_>) -> Option<Rect> {
        canvas.clip(self.x, self.y, self.width, self.height)
    }

    /// The panel as an overlay image at its place from the picture's top-left corner:
    /// translucent black (premultiplied) with opaque text.
    pub fn sprite(&self) -> Sprite {
        let (w, h) = (self.width.max(1), self.height.max(1));
        let bg = [0, 0, 0, PANEL_BACKGROUND[3]];
        let mut rgba = bg.repeat(w as usize * h as usize);
        let mut canvas = Canvas::new(&mut rgba, w, h).expect("sized above");
        let pad = i64::from(4 * self.scale);
        let line_h = i64::from((GLYPH_PX + 2) * self.scale);
        for (i, line) in self.lines.iter().enumerate() {
            canvas.draw_text(pad, pad + i as i64 * line_h, line, PANEL_TEXT, self.scale);
        }
        Sprite {
            rgba,
            width: w,
            height: h,
            x: self.x,
            y: self.y,
            anchor: Anchor::PictureCorner,
        }
    }

    /// Draws the panel: a translucent dark box with the text on it.
    pub fn draw(&self, canvas: &mut Canvas<'_>) -> Option<Rect> {
        let rect = self.rect(canvas)?;
        canvas.fill_blend(rect, PANEL_BACKGROUND);
        let pad = i64::from(4 * self.scale);
        let line_h = i64::from((GLYPH_PX + 2) * self.scale);
        for (i, line) in self.lines.iter().enumerate() {
            canvas.draw_text(
                self.x + pad,
                self.y + pad + i as i64 * line_h,
                line,
                PANEL_TEXT,
                self.scale,
            );
        }
        Some(rect)
    }
}

/// Where [`draw_banner`] puts `text`: centred near the top of the picture.
pub fn banner_rect(canvas: &Canvas<'_>, text: &str) -> Option<Rect> {
    let (x, y, w, h, _) = banner_layout(canvas, text);
    canvas.clip(x, y, w, h)
}

/// Draws a one-line notice (e.g. "reconnecting…") centred near the top of the picture, on the
/// stats panel's translucent background. Returns what it touched.
pub fn draw_banner(canvas: &mut Canvas<'_>, text: &str) -> Option<Rect> {
    let (x, y, _, _, scale) = banner_layout(canvas, text);
    let rect = banner_rect(canvas, text)?;
    canvas.fill_blend(rect, PANEL_BACKGROUND);
    let pad = i64::from(4 * scale);
    canvas.draw_text(x + pad, y + pad, text, PANEL_TEXT, scale);
    Some(rect)
}

/// The banner of [`draw_banner`] as an overlay image for the renderers: centred near the top of
/// a picture shown `shown_width × shown_height` window pixels large, never scaled.
pub fn banner_sprite(text: &str, shown_width: u32, shown_height: u32) -> Sprite {
    let scale = text_scale(shown_height) + 1;
    let pad = 4 * scale;
    let w = (text.chars().count() as u32 * GLYPH_PX * scale + 2 * pad).max(1);
    let h = GLYPH_PX * scale + 2 * pad;
    let bg = [0, 0, 0, PANEL_BACKGROUND[3]];
    let mut rgba = bg.repeat(w as usize * h as usize);
    let mut canvas = Canvas::new(&mut rgba, w, h).expect("sized above");
    canvas.draw_text(i64::from(pad), i64::from(pad), text, PANEL_TEXT, scale);
    Sprite {
        rgba,
        width: w,
        height: h,
        x: ((i64::from(shown_width) - i64::from(w)) / 2).max(0),
        y: i64::from(shown_height / 12),
        anchor: Anchor::PictureCorner,
    }
}

fn banner_layout(canvas: &Canvas<'_>, text: &str) -> (i64, i64, u32, u32, u32) {
    let scale = text_scale(canvas.height()) + 1;
    let pad = 4 * scale;
    let w = text.chars().count() as u32 * GLYPH_PX * scale + 2 * pad;
    let h = GLYPH_PX * scale + 2 * pad;
    let x = (i64::from(canvas.width()) - i64::from(w)) / 2;
    let y = i64::from(canvas.height() / 12);
    (x.max(0), y, w, h, scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREY: [u8; 4] = [100, 100, 100, 255];

    fn grey_buffer(w: u32, h: u32) -> Vec<u8> {
        GREY.repeat((w * h) as usize)
    }

    #[test]
    fn text_sets_glyph_pixels_and_nothing_else() {
        let (w, h) = (40, 20);
        let mut buf = grey_buffer(w, h);
        let mut c = Canvas::new(&mut buf, w, h).unwrap();
        let r = c.draw_text(2, 3, "L", [255, 0, 0, 255], 1).unwrap();
        assert_eq!(
            r,
            Rect {
                x: 2,
                y: 3,
                width: 8,
                height: 8
            }
        );
        // font8x8 'L' (serif): 0x0F, 0x06, 0x06, 0x06, 0x46, 0x66, 0x7F, 0x00; bit 0 is the
        // leftmost column.
        let lit = |x: u32, y: u32| c.pixel(x, y).unwrap() == [255, 0, 0, 255];
        assert!(lit(2, 3) && lit(5, 3) && !lit(6, 3));
        assert!(lit(2 + 6, 3 + 6) && !lit(2 + 7, 3 + 6));
        assert!(!lit(2, 3 + 7));
        let mut red = 0;
        for y in 0..h {
            for x in 0..w {
                let p = c.pixel(x, y).unwrap();
                if p == [255, 0, 0, 255] {
                    red += 1;
                    assert!((2..10).contains(&x) && (3..11).contains(&y), "({x},{y})");
                } else {
                    assert_eq!(p, GREY);
                }
            }
        }
        assert_eq!(red, 4 + 2 + 2 + 2 + 3 + 4 + 7);
    }

    #[test]
    fn scaled_text_is_bigger_and_clipped_at_edges() {
        let (w, h) = (20, 12);
        let mut buf = grey_buffer(w, h);
        let mut c = Canvas::new(&mut buf, w, h).unwrap();
        let r = c.draw_text(-4, 0, "AB", [0, 255, 0, 255], 2).unwrap();
        assert_eq!(
            r,
            Rect {
                x: 0,
                y: 0,
                width: 20,
                height: 12
            }
        );
        // 'A' row 0 = 0x0C: columns 2 and 3 → screen x (-4 + 4 .. -4 + 8) = 0..4 at scale 2.
        assert_eq!(c.pixel(0, 0).unwrap(), [0, 255, 0, 255]);
        assert_eq!(c.pixel(3, 1).unwrap(), [0, 255, 0, 255]);
        assert_eq!(c.pixel(4, 0).unwrap(), GREY);
    }

    #[test]
    fn unknown_characters_draw_a_question_mark() {
        assert_eq!(glyph('µ'), glyph('?'));
        assert_ne!(glyph('?'), [0; 8]);
    }

    #[test]
    fn fill_blend_darkens_and_keeps_alpha_opaque() {
        let (w, h) = (4, 4);
        let mut buf = grey_buffer(w, h);
        let mut c = Canvas::new(&mut buf, w, h).unwrap();
        let r = c.clip(1, 1, 10, 10).unwrap();
        assert_eq!(
            r,
            Rect {
                x: 1,
                y: 1,
                width: 3,
                height: 3
            }
        );
        c.fill_blend(r, [0, 0, 0, 128]);
        assert_eq!(c.pixel(0, 0).unwrap(), GREY);
        assert_eq!(c.pixel(1, 1).unwrap(), [50, 50, 50, 255]);
        assert!(c.clip(4, 0, 1, 1).is_none());
        assert!(c.clip(-2, 0, 2, 1).is_none());
    }

    #[test]
    fn premultiplied_blend_at_hotspot_offset() {
        let (w, h) = (8, 8);
        let mut buf = grey_buffer(w, h);
        let mut c = Canvas::new(&mut buf, w, h).unwrap();
        // 2×2 cursor: opaque white, half-transparent white (premultiplied 128), transparent,
        // opaque black.
        let cursor = [
            255, 255, 255, 255, 128, 128, 128, 128, //
            0, 0, 0, 0, 0, 0, 0, 255,
        ];
        let r = c.blend_premultiplied(7, 7, &cursor, 2, 2).unwrap();
        assert_eq!(
            r,
            Rect {
                x: 7,
                y: 7,
                width: 1,
                height: 1
            }
        );
        assert_eq!(c.pixel(7, 7).unwrap(), [255, 255, 255, 255]);
        c.blend_premultiplied(2, 3, &cursor, 2, 2).unwrap();
        assert_eq!(c.pixel(2, 3).unwrap(), [255, 255, 255, 255]);
        assert_eq!(c.pixel(3, 3).unwrap(), [178, 178, 178, 255]);
        assert_eq!(c.pixel(2, 4).unwrap(), GREY);
        assert_eq!(c.pixel(3, 4).unwrap(), [0, 0, 0, 255]);
        // Partly off the top-left edge: the visible part is the image's bottom-right pixel.
        c.blend_premultiplied(-1, -1, &cursor, 2, 2).unwrap();
        assert_eq!(c.pixel(0, 0).unwrap(), [0, 0, 0, 255]);
        assert!(c.blend_premultiplied(0, 0, &cursor[..8], 2, 2).is_none());
    }

    #[test]
    fn save_under_restores_the_picture() {
        let (w, h) = (64, 64);
        let mut buf: Vec<u8> = (0..w * h * 4).map(|i| (i % 251) as u8).collect();
        let original = buf.clone();
        let mut c = Canvas::new(&mut buf, w, h).unwrap();
        let mut saved = SaveUnder::default();
        let a = c.clip(10, 10, 30, 30).unwrap();
        saved.save(&c, a);
        c.fill_blend(a, [0, 0, 0, 200]);
        let b = c.clip(20, 20, 30, 30).unwrap();
        saved.save(&c, b);
        c.fill_blend(b, [255, 0, 0, 255]);
        saved.restore(&mut c);
        assert!(buf == original);
    }

    #[test]
    fn stats_panel_shows_every_figure() {
        let stats = StatsSnapshot {
            fps: 59.94,
            bitrate_mbps: 12.5,
            rtt_ms: 1.25,
            stage_ms: [1.0, 2.0, 3.0, 0.1, 0.5, 0.2, 2.9, 3.3],
            lost_frames: 4,
            recovered_frames: 7,
            keyframe_requests: 2,
            width: 1920,
            height: 1080,
            codec: "H264".into(),
            lossless: None,
            audio: Some(crate::audio::AudioSnapshot {
                stream: "7.1 Opus 512 kb/s 5.0 ms".into(),
                latency_ms: Some(23.4),
                buffer_ms: 7.5,
                underruns: 3,
                concealed: 9,
                late: 1,
                volume: 1.0,
                ..Default::default()
            }),
        };
        let text = stats_lines(&stats).join("\n");
        for needle in [
            "1920x1080 H264",
            "59.9 fps",
            "12.50 Mb/s",
            "rtt     1.25 ms",
            "reassemble",
            "present       3.30 ms",
            "audio 7.1 Opus 512 kb/s",
            "audio lat 23.4 ms buf 7.5 ms",
            "audio underruns 3 concealed 9 late 1",
            "total        13.00 ms",
            "lost 4  recovered 7",
            "keyframe requests 2",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
        for name in STAGE_NAMES {
            assert!(text.contains(name));
        }
    }

    #[test]
    fn stats_panel_draws_a_dark_box_with_light_text() {
        let (w, h) = (640, 360);
        let mut buf = grey_buffer(w, h);
        let mut c = Canvas::new(&mut buf, w, h).unwrap();
        let panel = StatsPanel::layout(&StatsSnapshot::default(), h);
        let r = panel.draw(&mut c).unwrap();
        assert_eq!((r.x, r.y), (8, 8));
        assert!(r.width > 100 && r.height > 100 && r.x + r.width < w && r.y + r.height < h);
        let (mut dark, mut text) = (0, 0);
        for y in 0..h {
            for x in 0..w {
                let p = c.pixel(x, y).unwrap();
                let inside =
                    (r.x..r.x + r.width).contains(&x) && (r.y..r.y + r.height).contains(&y);
                if !inside {
                    assert_eq!(p, GREY, "({x},{y}) outside the panel changed");
                } else if p == PANEL_TEXT {
                    text += 1;
                } else {
                    assert!(p[0] < 40, "({x},{y}) {p:?}");
                    dark += 1;
                }
            }
        }
        assert!(text > 500, "{text} text pixels");
        assert!(dark > text);
        // The first glyph of the first line ("0x0 -") sits inside the padding.
        let first_line = c.clip(12, 12, 8, 8).unwrap();
        let lit = (0..8)
            .flat_map(|dy| (0..8).map(move |dx| (dx, dy)))
            .filter(|&(dx, dy)| c.pixel(first_line.x + dx, first_line.y + dy) == Some(PANEL_TEXT))
            .count();
        assert!(lit > 10, "{lit}");
    }

    #[test]
    fn text_scale_follows_buffer_height() {
        assert_eq!(text_scale(360), 1);
        assert_eq!(text_scale(1080), 2);
        assert_eq!(text_scale(2160), 4);
        assert_eq!(text_scale(8640), 4);
    }

    #[test]
    fn panel_sprite_matches_the_drawn_panel() {
        let (w, h) = (640, 360);
        let stats = StatsSnapshot::default();
        let extra = vec!["renderer cpu".to_string()];
        let panel = StatsPanel::layout_with(&stats, &extra, h);
        let mut buf = grey_buffer(w, h);
        let mut c = Canvas::new(&mut buf, w, h).unwrap();
        let r = panel.draw(&mut c).unwrap();
        let sprite = panel.sprite();
        assert_eq!((sprite.x, sprite.y), (i64::from(r.x), i64::from(r.y)));
        assert_eq!((sprite.width, sprite.height), (r.width, r.height));
        assert_eq!(sprite.anchor, Anchor::PictureCorner);
        // Blending the sprite over grey gives what `draw` drew.
        for y in 0..r.height {
            for x in 0..r.width {
                let i = ((y * r.width + x) * 4) as usize;
                let s = [
                    sprite.rgba[i],
                    sprite.rgba[i + 1],
                    sprite.rgba[i + 2],
                    sprite.rgba[i + 3],
                ];
                let got = blend_over(s, [100, 100, 100]);
                let want = c.pixel(r.x + x, r.y + y).unwrap();
                assert!(
                    (0..3).all(|k| got[k].abs_diff(want[k]) <= 1),
                    "({x},{y}) {got:?} vs {want:?}"
                );
            }
        }
        assert!(stats_lines(&stats).len() + 1 == panel.lines.len());
    }

    #[test]
    fn cursor_sprite_sits_at_the_hotspot() {
        use crate::frame::CursorOverlay;
        let mut c = CursorOverlay {
            rgba: vec![255; 4 * 6],
            width: 2,
            height: 3,
            hot_x: 1,
            hot_y: 2,
            x: 10,
            y: 20,
            visible: true,
        };
        let s = Sprite::cursor(&c).unwrap();
        assert_eq!((s.x, s.y, s.anchor), (9, 18, Anchor::Stream));
        let key = s.content_key();
        c.rgba[0] = 0;
        assert_ne!(Sprite::cursor(&c).unwrap().content_key(), key);
        c.visible = false;
        assert!(Sprite::cursor(&c).is_none());
        c.visible = true;
        c.rgba.truncate(8);
        assert!(Sprite::cursor(&c).is_none(), "image shorter than its size");
    }
}
