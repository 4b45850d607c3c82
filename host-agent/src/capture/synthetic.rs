//! The embedded default source: a deterministic desktop-like test picture.
//!
//! Every frame is a pure function of its sequence number and size, so a test can regenerate
//! exactly what the host sent. The picture holds:
//! * a barcode block at the top left: four rows of 32 cells — the frame counter, its bitwise
//!   complement (to validate a read), and the frame's media time in µs (high and low 32 bits);
//! * 75 % colour bars (white, yellow, cyan, green, magenta, red, blue, black);
//! * a full-width grey ramp;
//! * a text-like area of glyph rows scrolling up by 2 px per frame;
//! * a box bouncing in the lower right.
//!
//! Only the parts that move are redrawn, and the damage says which.
//!
//! A bench probe ([`FrameSource::show_probe`]) adds the latency-probe strip of
//! [`sightline_protocol::probe`] at the top right of every later frame (see [`render_probe`]);
//! the `render_*` functions never draw it, so they stay pure functions of the sequence number.

use std::time::{Duration, Instant};

use sightline_protocol::probe;

use super::{CaptureError, CaptureOutcome, CapturedFrame, FrameSource, PixelFormat, Rect};

/// Cells per barcode row.
pub const BARCODE_BITS: u32 = 32;
/// Barcode rows: counter, !counter, time high, time low.
pub const BARCODE_ROWS: u32 = 4;

/// 75 % colour bars as (R, G, B), left to right.
pub const BARS: [(u8, u8, u8); 8] = [
    (191, 191, 191),
    (191, 191, 0),
    (0, 191, 191),
    (0, 191, 0),
    (191, 0, 191),
    (191, 0, 0),
    (0, 0, 191),
    (0, 0, 0),
];

/// What moves in the picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scene {
    /// Heavy motion: the whole text area scrolls 2 px per frame and a box bounces (about 40 % of
    /// the pixels change every frame) — a stress test for the encoder.
    #[default]
    Busy,
    /// A desktop in use: static text, one line being typed (a glyph per frame and a cursor), the
    /// barcode — a few thousand pixels change per frame, as when someone types or edits.
    Desktop,
}

/// Where everything is for a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Barcode cell side in pixels.
    pub cell: u32,
    /// Colour bars.
    pub bars: Rect,
    /// Grey ramp.
    pub ramp: Rect,
    /// Scrolling text area.
    pub text: Rect,
    /// Area the box bounces in.
    pub arena: Rect,
    /// Box side.
    pub box_side: u32,
}

impl Layout {
    /// The layout for `width × height` (at least 64 × 64).
    pub fn new(width: u32, height: u32) -> Layout {
        let cell = (width / BARCODE_BITS).clamp(2, 16);
        let top = cell * BARCODE_ROWS;
        let band = (height.saturating_sub(top) / 8).max(4);
        let bars = Rect {
            x: 0,
            y: top,
            w: width,
            h: band,
        };
        let ramp = Rect {
            x: 0,
            y: top + band,
            w: width,
            h: band,
        };
        let lower_y = top + 2 * band;
        let lower_h = height.saturating_sub(lower_y);
        let text_w = width * 2 / 3;
        Layout {
            width,
            height,
            cell,
            bars,
            ramp,
            text: Rect {
                x: 0,
                y: lower_y,
                w: text_w,
                h: lower_h,
            },
            arena: Rect {
                x: text_w,
                y: lower_y,
                w: width - text_w,
                h: lower_h,
            },
            box_side: ((width - text_w).min(lower_h) / 4).max(4),
        }
    }

    /// The barcode block.
    pub fn barcode(&self) -> Rect {
        Rect {
            x: 0,
            y: 0,
            w: self.cell * BARCODE_BITS,
            h: self.cell * BARCODE_ROWS,
        }
    }

    /// The bouncing box's rectangle in frame `seq`.
    pub fn box_at(&self, seq: u64) -> Rect {
        let a = self.arena;
        let span_x = a.w.saturating_sub(self.box_side).max(1) as u64;
        let span_y = a.h.saturating_sub(self.box_side).max(1) as u64;
        let bounce = |t: u64, span: u64| {
            let p = t % (2 * span);
            if p < span {
                p
            } else {
                2 * span - p
            }
        };
        Rect {
            x: a.x + bounce(seq * 7, span_x) as u32,
            y: a.y + bounce(seq * 5, span_y) as u32,
            w: self.box_side,
            h: self.box_side,
        }
    }
}

/// Media time of frame `seq` at `fps` in µs.
pub fn media_time_us(seq: u64, fps: u32) -> u64 {
    seq * 1_000_000 / fps.max(1) as u64
}

fn put(data: &mut [u8], stride: usize, x: u32, y: u32, rgb: (u8, u8, u8)) {
    let i = y as usize * stride + x as usize * 4;
    data[i] = rgb.2;
    data[i + 1] = rgb.1;
    data[i + 2] = rgb.0;
    data[i + 3] = 0xFF;
}

fn fill(data: &mut [u8], stride: usize, r: Rect, rgb: (u8, u8, u8)) {
    let px = [rgb.2, rgb.1, rgb.0, 0xFF];
    for y in r.y..r.y + r.h {
        let row = &mut data[y as usize * stride + r.x as usize * 4..][..r.w as usize * 4];
        for p in row.chunks_exact_mut(4) {
            p.copy_from_slice(&px);
        }
    }
}

/// A deterministic hash for glyph shapes.
fn hash(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

const BG: (u8, u8, u8) = (30, 32, 38);
const FG: (u8, u8, u8) = (220, 220, 210);

/// Height of a text line.
const LINE_H: u32 = 18;
/// Advance of a glyph.
const GLYPH_W: u32 = 9;

/// Draws the glyph pattern of line `k` starting at `top` (clipped to `clip`), glyphs `0..max`.
fn draw_line(k: u32, top: i64, x0: u32, clip: Rect, max: u32, data: &mut [u8], stride: usize) {
    let h = hash(k as u64);
    let indent = (h % 6) as u32 * GLYPH_W * 2;
    let len = (20 + (h >> 8) % 60).min(max as u64);
    for g in 0..len as u32 {
        let gh = hash(((k as u64) << 20) ^ g as u64);
        if gh.is_multiple_of(7) {
            continue; // a space
        }
        let x = x0 + 8 + indent + g * GLYPH_W;
        if x + GLYPH_W > clip.x + clip.w {
            break;
        }
        // A glyph: a 7×12 pattern of strokes from the hash.
        for gy in 0..12u32 {
            let y = top + 3 + gy as i64;
            if y < clip.y as i64 || y >= (clip.y + clip.h) as i64 {
                continue;
            }
            let bits = (gh >> (gy % 8 * 7)) as u32;
            for gx in 0..7u32 {
                let on =
                    (gy == 0 && gh & 1 == 1) || (gx == 0 && gh & 2 == 2) || bits >> gx & 1 == 1;
                if on {
                    put(data, stride, x + gx, y as u32, FG);
                }
            }
        }
    }
}

/// Draws the text area's lines scrolled up by `scroll` pixels (the area must be cleared).
fn draw_text(l: &Layout, scroll: u32, data: &mut [u8], stride: usize) {
    let a = l.text;
    let first_line = scroll / LINE_H;
    let last_line = (scroll + a.h) / LINE_H + 1;
    for k in first_line..=last_line {
        let top = a.y as i64 + (k * LINE_H) as i64 - scroll as i64;
        draw_line(k, top, a.x, a, u32::MAX, data, stride);
    }
}

/// The line being typed in [`Scene::Desktop`]: the text area's last full line.
pub fn typing_line(l: &Layout) -> Rect {
    let a = l.text;
    let lines = a.h / LINE_H;
    Rect {
        x: a.x,
        y: a.y + lines.saturating_sub(1) * LINE_H,
        w: a.w,
        h: LINE_H.min(a.h),
    }
}

/// Glyphs per typed line before it starts over.
const TYPED_PER_LINE: u64 = 90;

/// Draws the parts that never move.
pub fn render_static(l: &Layout, data: &mut [u8], stride: usize) {
    render_static_scene(l, Scene::Busy, data, stride);
}

/// Draws the parts of `scene` that never move.
pub fn render_static_scene(l: &Layout, scene: Scene, data: &mut [u8], stride: usize) {
    fill(
        data,
        stride,
        Rect {
            x: 0,
            y: 0,
            w: l.width,
            h: l.height,
        },
        BG,
    );
    let bw = l.bars.w / 8;
    for (i, c) in BARS.iter().enumerate() {
        let x = i as u32 * bw;
        let w = if i == 7 { l.bars.w - x } else { bw };
        fill(
            data,
            stride,
            Rect {
                x,
                y: l.bars.y,
                w,
                h: l.bars.h,
            },
            *c,
        );
    }
    for x in 0..l.width {
        let v = (x as u64 * 255 / (l.width.max(2) - 1) as u64) as u8;
        for y in l.ramp.y..l.ramp.y + l.ramp.h {
            put(data, stride, x, y, (v, v, v));
        }
    }
    if scene == Scene::Desktop {
        // A page of text above the typed line.
        let a = l.text;
        let page = Rect {
            h: typing_line(l).y - a.y,
            ..a
        };
        for k in 0..page.h / LINE_H {
            draw_line(
                k,
                (a.y + k * LINE_H) as i64,
                a.x,
                page,
                u32::MAX,
                data,
                stride,
            );
        }
    }
}

/// Draws the moving parts of frame `seq` and returns what changed since frame `seq − 1`.
pub fn render_dynamic(l: &Layout, seq: u64, fps: u32, data: &mut [u8], stride: usize) -> Vec<Rect> {
    render_dynamic_scene(l, Scene::Busy, seq, fps, data, stride)
}

/// [`render_dynamic`] for `scene`.
pub fn render_dynamic_scene(
    l: &Layout,
    scene: Scene,
    seq: u64,
    fps: u32,
    data: &mut [u8],
    stride: usize,
) -> Vec<Rect> {
    draw_barcode(l, seq, fps, data, stride);
    match scene {
        Scene::Busy => {
            // Text-like rows scrolling up 2 px per frame.
            let scroll = ((seq * 2) % (LINE_H as u64 * 100_000)) as u32;
            fill(data, stride, l.text, BG);
            draw_text(l, scroll, data, stride);
            // Bouncing box: clear the previous position, draw the new one.
            fill(data, stride, l.arena, BG);
            let b = l.box_at(seq);
            let (r, g, bl) = hsv((seq % 360) as f32);
            fill(data, stride, b, (r, g, bl));
            vec![l.barcode(), l.text, l.arena]
        }
        Scene::Desktop => {
            // One glyph more per frame on the typed line, then a cursor after it.
            let line = typing_line(l);
            fill(data, stride, line, BG);
            let typed = (seq % TYPED_PER_LINE) as u32;
            let k = 1_000 + (seq / TYPED_PER_LINE) as u32;
            draw_line(k, line.y as i64, line.x, line, typed, data, stride);
            let h = hash(k as u64);
            let indent = (h % 6) as u32 * GLYPH_W * 2;
            let cx = line.x + 8 + indent + typed * GLYPH_W;
            if cx + 2 <= line.x + line.w {
                fill(
                    data,
                    stride,
                    Rect {
                        x: cx,
                        y: line.y + 2,
                        w: 2,
                        h: LINE_H - 4,
                    },
                    FG,
                );
            }
            vec![l.barcode(), line]
        }
    }
}

/// Light cells of the barcode and the probe strip (R, G, B).
const CELL_WHITE: (u8, u8, u8) = (235, 235, 235);
/// Dark cells of the barcode and the probe strip (R, G, B).
const CELL_BLACK: (u8, u8, u8) = (16, 16, 16);

/// Draws the latency-probe strip for probe `id` (arrived at host time `host_recv_us`) into a
/// `width × height` BGRX picture, in the barcode's colours, clipped to the picture. Returns the
/// strip's rectangle (clipped; empty when nothing of it fits).
pub fn render_probe(
    width: u32,
    height: u32,
    id: u32,
    host_recv_us: u64,
    data: &mut [u8],
    stride: usize,
) -> Rect {
    let clip = |x: u32, y: u32, w: u32, h: u32| {
        let (x1, y1) = ((x + w).min(width), (y + h).min(height));
        (x1 > x && y1 > y).then(|| Rect {
            x,
            y,
            w: x1 - x,
            h: y1 - y,
        })
    };
    for (x, y, side, white) in probe::cells(width, id, host_recv_us) {
        if let Some(r) = clip(x, y, side, side) {
            fill(data, stride, r, if white { CELL_WHITE } else { CELL_BLACK });
        }
    }
    let (x, y, w, h) = probe::rect(width);
    clip(x, y, w, h).unwrap_or_default()
}

fn draw_barcode(l: &Layout, seq: u64, fps: u32, data: &mut [u8], stride: usize) {
    let t = media_time_us(seq, fps);
    let rows = [seq as u32, !(seq as u32), (t >> 32) as u32, t as u32];
    for (row, value) in rows.iter().enumerate() {
        for bit in 0..BARCODE_BITS {
            let on = value >> (BARCODE_BITS - 1 - bit) & 1 == 1;
            fill(
                data,
                stride,
                Rect {
                    x: bit * l.cell,
                    y: row as u32 * l.cell,
                    w: l.cell,
                    h: l.cell,
                },
                if on { CELL_WHITE } else { CELL_BLACK },
            );
        }
    }
}

fn hsv(h: f32) -> (u8, u8, u8) {
    let x = 1.0 - ((h / 60.0) % 2.0 - 1.0).abs();
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    (
        (r * 200.0) as u8 + 30,
        (g * 200.0) as u8 + 30,
        (b * 200.0) as u8 + 30,
    )
}

/// Renders frame `seq` completely (for tests that need the exact source picture).
pub fn render_frame(width: u32, height: u32, seq: u64, fps: u32) -> CapturedFrame {
    render_frame_scene(width, height, seq, fps, Scene::Busy)
}

/// [`render_frame`] for `scene`.
pub fn render_frame_scene(
    width: u32,
    height: u32,
    seq: u64,
    fps: u32,
    scene: Scene,
) -> CapturedFrame {
    let mut f = CapturedFrame::new();
    f.reshape(width, height, PixelFormat::Bgrx8);
    let l = Layout::new(width, height);
    let stride = f.stride;
    render_static_scene(&l, scene, &mut f.data, stride);
    render_dynamic_scene(&l, scene, seq, fps, &mut f.data, stride);
    f.sequence = seq;
    f
}

/// Reads the barcode from a luma plane (any 8-bit luma where light is ≥ 128). Returns the frame
/// counter and media time, or `None` when the counter and its complement disagree.
pub fn read_barcode(luma: &[u8], stride: usize, width: u32, height: u32) -> Option<(u32, u64)> {
    let l = Layout::new(width, height);
    let mut rows = [0u32; 4];
    for (row, value) in rows.iter_mut().enumerate() {
        for bit in 0..BARCODE_BITS {
            let x = bit * l.cell + l.cell / 2;
            let y = row as u32 * l.cell + l.cell / 2;
            let v = *luma.get(y as usize * stride + x as usize)?;
            *value = (*value << 1) | (v >= 128) as u32;
        }
    }
    (rows[0] == !rows[1]).then(|| (rows[0], ((rows[2] as u64) << 32) | rows[3] as u64))
}

/// The synthetic [`FrameSource`].
#[derive(Debug)]
pub struct SyntheticSource {
    layout: Layout,
    fps: u32,
    start: Instant,
    seq: u64,
    full_next: bool,
    statics: Vec<u8>,
    scene: Scene,
    paced: bool,
    redraw_now: bool,
    /// The newest bench probe `(id, host_recv_us)`, shown in every frame.
    probe: Option<(u32, u64)>,
    /// The probe the previous frame showed (its strip needs no damage while it stays).
    shown_probe: Option<(u32, u64)>,
}

impl SyntheticSource {
    /// A `width × height` source producing `fps` frames per second.
    pub fn new(width: u32, height: u32, fps: u32) -> Self {
        let width = width.max(64) & !1;
        let height = height.max(64) & !1;
        let layout = Layout::new(width, height);
        let mut statics = vec![0u8; width as usize * height as usize * 4];
        render_static(&layout, &mut statics, width as usize * 4);
        SyntheticSource {
            layout,
            fps: fps.max(1),
            start: Instant::now(),
            seq: 0,
            full_next: true,
            statics,
            scene: Scene::Busy,
            paced: true,
            probe: None,
            shown_probe: None,
            redraw_now: false,
        }
    }

    /// Without pacing every call returns the next frame at once (benchmarks: the content then
    /// moves by exactly one step per frame however long the consumer takes).
    pub fn with_pacing(mut self, paced: bool) -> Self {
        self.paced = paced;
        self
    }

    /// The same source showing `scene`.
    pub fn with_scene(mut self, scene: Scene) -> Self {
        let l = self.layout;
        render_static_scene(&l, scene, &mut self.statics, l.width as usize * 4);
        self.scene = scene;
        self.full_next = true;
        self
    }

    /// Frames per second.
    pub fn fps(&self) -> u32 {
        self.fps
    }
}

impl FrameSource for SyntheticSource {
    fn describe(&self) -> String {
        format!(
            "synthetic {}x{} @ {} fps ({:?} scene)",
            self.layout.width, self.layout.height, self.fps, self.scene
        )
    }

    fn size(&self) -> (u32, u32) {
        (self.layout.width, self.layout.height)
    }

    fn format(&self) -> PixelFormat {
        PixelFormat::Bgrx8
    }

    fn next_frame(
        &mut self,
        frame: &mut CapturedFrame,
        timeout: Duration,
    ) -> Result<CaptureOutcome, CaptureError> {
        let due = self.start + Duration::from_micros(media_time_us(self.seq, self.fps));
        let now = Instant::now();
        if !self.paced || std::mem::take(&mut self.redraw_now) {
            // Frames on demand, or a redraw because of input.
        } else if due > now {
            if due - now > timeout {
                std::thread::sleep(timeout);
                return Ok(CaptureOutcome::Timeout);
            }
            std::thread::sleep(due - now);
        } else if now - due > Duration::from_micros(1_000_000 / self.fps as u64) {
            // Behind by more than a frame (a slow consumer): show what the screen shows now,
            // like a real display would, instead of bursting through stale frames.
            let elapsed = now.duration_since(self.start).as_micros() as u64;
            self.seq = elapsed * self.fps as u64 / 1_000_000;
        }
        let l = self.layout;
        let start = Instant::now();
        let reshaped = frame.width != l.width || frame.height != l.height;
        frame.reshape(l.width, l.height, PixelFormat::Bgrx8);
        let stride = frame.stride;
        let full = self.full_next || reshaped;
        let mut damage = if full {
            frame.data.copy_from_slice(&self.statics);
            render_dynamic_scene(&l, self.scene, self.seq, self.fps, &mut frame.data, stride);
            self.full_next = false;
            Vec::new()
        } else {
            render_dynamic_scene(&l, self.scene, self.seq, self.fps, &mut frame.data, stride)
        };
        if let Some((id, t)) = self.probe {
            // Drawn last and on every frame (a few thousand pixels): where the strip overlaps
            // the barcode (narrow frames) the probe wins, and the barcode's damage covers the
            // overlap. Damage only when the probe changed (a full frame is all damage anyway).
            let strip = render_probe(l.width, l.height, id, t, &mut frame.data, stride);
            if !full && self.shown_probe != self.probe && strip.area() > 0 {
                damage.push(strip);
            }
        }
        self.shown_probe = self.probe;
        frame.damage = damage;
        frame.sequence = self.seq;
        frame.capture_start = start;
        frame.capture_end = Instant::now();
        self.seq += 1;
        Ok(CaptureOutcome::Frame)
    }

    fn invalidate(&mut self) {
        self.full_next = true;
    }

    fn show_probe(&mut self, id: u32, host_recv_us: u64) -> bool {
        self.probe = Some((id, host_recv_us));
        // Like an application reacting to input: redraw now, not at the next tick.
        self.redraw_now = true;
        true
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn luma_of(f: &CapturedFrame) -> Vec<u8> {
        f.data
            .chunks_exact(4)
            .map(|p| ((p[0] as u32 * 18 + p[1] as u32 * 183 + p[2] as u32 * 54) >> 8) as u8)
            .collect()
    }

    #[test]
    fn barcode_round_trips() {
        for seq in [0u64, 1, 77, 123_456, u32::MAX as u64] {
            let f = render_frame(1920, 1080, seq, 60);
            let (n, t) = read_barcode(&luma_of(&f), 1920, 1920, 1080).expect("readable");
            assert_eq!(n, seq as u32);
            assert_eq!(t, media_time_us(seq, 60));
        }
        let f = render_frame(640, 360, 5, 30);
        assert_eq!(
            read_barcode(&luma_of(&f), 640, 640, 360).map(|v| v.0),
            Some(5)
        );
    }

    #[test]
    fn desktop_scene_changes_little_and_renders_incrementally() {
        // Unpaced: one step per call, so the frame checked is always the same one (a paced
        // source on a loaded machine skips ahead to whatever frame is due, e.g. a line start).
        let mut src = SyntheticSource::new(1920, 1080, 1000)
            .with_scene(Scene::Desktop)
            .with_pacing(false);
        let mut f = CapturedFrame::new();
        // Past a line wrap, so the typed line starts over at least once.
        for _ in 0..(TYPED_PER_LINE + 5) {
            src.next_frame(&mut f, Duration::from_secs(1)).unwrap();
        }
        let want = render_frame_scene(1920, 1080, f.sequence, 1000, Scene::Desktop);
        assert_eq!(
            f.data, want.data,
            "damage-only redraw must equal a full render"
        );
        let damaged: u64 = f.damage.iter().map(Rect::area).sum();
        assert!(
            damaged < 1920 * 1080 / 30,
            "a desktop scene changes little: {damaged}"
        );
        let prev = render_frame_scene(1920, 1080, f.sequence - 1, 1000, Scene::Desktop);
        let changed = f
            .data
            .chunks(4)
            .zip(prev.data.chunks(4))
            .filter(|(a, b)| a != b)
            .count();
        // "A few thousand": the typed glyph and cursor (~100) plus the barcode cells that flip
        // (256 px each at 1080p; counter and time bits, 9 cells = 2304 px at frame 94).
        assert!(changed > 0 && changed < 4_000, "{changed} pixels changed");
        let luma = luma_of(&f);
        assert_eq!(
            read_barcode(&luma, 1920, 1920, 1080).map(|b| b.0 as u64),
            Some(f.sequence)
        );
    }

    #[test]
    fn incremental_frames_equal_full_renders() {
        let mut src = SyntheticSource::new(800, 600, 1000);
        let mut f = CapturedFrame::new();
        for _ in 0..5 {
            assert_eq!(
                src.next_frame(&mut f, Duration::from_secs(1)).unwrap(),
                CaptureOutcome::Frame
            );
        }
        let want = render_frame(800, 600, f.sequence, 1000);
        assert_eq!(
            f.data, want.data,
            "damage-only redraw must equal a full render"
        );
        assert!(!f.damage.is_empty());
        let damaged: u64 = f.damage.iter().map(Rect::area).sum();
        assert!(
            damaged < 800 * 600 * 3 / 4,
            "static parts are not redrawn: {damaged}"
        );
    }

    fn contains(outer: &Rect, inner: &Rect) -> bool {
        outer.x <= inner.x
            && outer.y <= inner.y
            && outer.x + outer.w >= inner.x + inner.w
            && outer.y + outer.h >= inner.y + inner.h
    }

    fn strip(width: u32) -> Rect {
        let (x, y, w, h) = probe::rect(width);
        Rect { x, y, w, h }
    }

    /// Frame `seq` as `render_frame` draws it, plus the probe strip.
    fn render_with_probe(w: u32, h: u32, seq: u64, fps: u32, id: u32, t: u64) -> CapturedFrame {
        let mut want = render_frame(w, h, seq, fps);
        let stride = want.stride;
        render_probe(w, h, id, t, &mut want.data, stride);
        want
    }

    #[test]
    fn probe_shows_from_the_next_frame_with_damage() {
        let (w, h) = (1280, 720);
        let mut src = SyntheticSource::new(w, h, 1000).with_pacing(false);
        let mut f = CapturedFrame::new();
        for _ in 0..3 {
            src.next_frame(&mut f, Duration::from_secs(1)).unwrap();
        }
        assert_eq!(probe::read(&luma_of(&f), w as usize, w, h), None);
        assert!(!f.damage.iter().any(|r| contains(r, &strip(w))));

        let t = 0x0001_2345_6789_abcd_u64;
        assert!(src.show_probe(7, t), "the synthetic source shows probes");
        src.next_frame(&mut f, Duration::from_secs(1)).unwrap();
        assert_eq!(
            probe::read(&luma_of(&f), w as usize, w, h),
            Some((7, t as u32))
        );
        assert!(
            f.damage.iter().any(|r| contains(r, &strip(w))),
            "the strip is damaged on the frame it appears: {:?}",
            f.damage
        );
        let want = render_with_probe(w, h, f.sequence, 1000, 7, t);
        assert!(
            f.data == want.data,
            "incremental frame = full redraw + strip"
        );

        // It stays, without damage while it does not change.
        src.next_frame(&mut f, Duration::from_secs(1)).unwrap();
        assert_eq!(
            probe::read(&luma_of(&f), w as usize, w, h),
            Some((7, t as u32))
        );
        assert!(!f.damage.iter().any(|r| contains(r, &strip(w))));
        let want = render_with_probe(w, h, f.sequence, 1000, 7, t);
        assert!(
            f.data == want.data,
            "incremental frame = full redraw + strip"
        );

        // A newer probe replaces it, damaged again; full frames show it too.
        src.show_probe(8, t + 16_000);
        src.next_frame(&mut f, Duration::from_secs(1)).unwrap();
        assert_eq!(
            probe::read(&luma_of(&f), w as usize, w, h),
            Some((8, (t + 16_000) as u32))
        );
        assert!(f.damage.iter().any(|r| contains(r, &strip(w))));
        src.invalidate();
        src.next_frame(&mut f, Duration::from_secs(1)).unwrap();
        assert!(f.damage.is_empty(), "a full frame");
        let want = render_with_probe(w, h, f.sequence, 1000, 8, t + 16_000);
        assert!(f.data == want.data, "full frame = full redraw + strip");
    }

    #[test]
    fn probe_wins_over_the_barcode_on_narrow_frames() {
        // At 640 px the strip overlaps the barcode, which is redrawn every frame.
        let (w, h) = (640, 360);
        let mut src = SyntheticSource::new(w, h, 1000)
            .with_pacing(false)
            .with_scene(Scene::Desktop);
        let mut f = CapturedFrame::new();
        src.next_frame(&mut f, Duration::from_secs(1)).unwrap();
        src.show_probe(0xdead_beef, 99);
        for _ in 0..3 {
            src.next_frame(&mut f, Duration::from_secs(1)).unwrap();
            assert_eq!(
                probe::read(&luma_of(&f), w as usize, w, h),
                Some((0xdead_beef, 99))
            );
        }
        let mut want = render_frame_scene(w, h, f.sequence, 1000, Scene::Desktop);
        let stride = want.stride;
        render_probe(w, h, 0xdead_beef, 99, &mut want.data, stride);
        assert!(
            f.data == want.data,
            "incremental frame = full redraw + strip"
        );
    }

    #[test]
    fn probe_strip_is_clipped_to_tiny_frames() {
        let mut src = SyntheticSource::new(64, 64, 1000).with_pacing(false);
        let mut f = CapturedFrame::new();
        src.show_probe(1, 2);
        src.next_frame(&mut f, Duration::from_secs(1)).unwrap();
        src.show_probe(3, 4);
        src.next_frame(&mut f, Duration::from_secs(1)).unwrap();
        for r in &f.damage {
            assert!(r.x + r.w <= 64 && r.y + r.h <= 64, "{r:?}");
        }
    }

    #[test]
    fn frames_differ_and_bars_are_exact() {
        let a = render_frame(1280, 720, 10, 60);
        let b = render_frame(1280, 720, 11, 60);
        assert_ne!(a.data, b.data);
        let l = Layout::new(1280, 720);
        let mid = |i: u32| {
            let x = i * (l.bars.w / 8) + l.bars.w / 16;
            let y = l.bars.y + l.bars.h / 2;
            let p = &a.data[(y * 1280 * 4 + x * 4) as usize..][..3];
            (p[2], p[1], p[0])
        };
        for (i, c) in BARS.iter().enumerate() {
            assert_eq!(mid(i as u32), *c);
        }
    }
}
