//! Which parts of the screen go as lossless tiles and which through the video encoder
//! (see [`sightline_protocol::tiles`] for the wire rules and the viewer's composition).
//!
//! Per captured frame, from its damage, every changed cell is classified:
//!
//! * **tile now**: the change is small (the frame's changed cells cover at most
//!   [`TileSettings::max_tile_share`] of the screen) and the cell is not in sustained motion —
//!   typing, a button highlight, a cursor-adjacent repaint. Its exact pixels go out at once,
//!   and the frame costs no video encode unless a video-owned cell changed too.
//! * **video**: the cell changed in [`TileSettings::motion_changes`] or more frames within
//!   [`MOTION_WINDOW`] and the cells in such motion cover at least
//!   [`TileSettings::min_motion_share`] of the screen (a playing clip, a scrolling page; a
//!   small moving thing such as a timecode or a meter stays exact as tiles), or the change is
//!   large (a window drag, a scroll of the whole screen, a film). A lossless cell moving to video is handed over with
//!   [`TileMessage::VideoOwns`] for the next encoded frame.
//!
//! A video cell still for [`TileSettings::refine_after`] is **refined**: sent as a tile, so a
//! still picture converges to bit-exact. Refinement spends at most
//! [`TileSettings::budget_bps`] (a token bucket); tiles for small changes are never held back
//! by the budget (they are what the user is waiting for) but do use it up.
//!
//! Every tile's hash is kept; [`TileMessage::Hashes`] lists them for all lossless cells when
//! they changed (at most every [`HASH_EVERY`]) and once a second anyway, for the viewer's proof.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sightline_protocol::tiles::{cell_hash, code_cell, Grid, Tile, TileCodec, TileMessage};

use crate::capture::{CapturedFrame, PixelFormat};

/// Window over which changes count as motion.
pub const MOTION_WINDOW: Duration = Duration::from_millis(250);

/// Shortest gap between two hash lists while tiles change.
pub const HASH_EVERY: Duration = Duration::from_millis(100);

/// Hash lists are repeated this often while nothing changes.
const HASH_REPEAT: Duration = Duration::from_secs(1);

/// Lossless tile settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TileSettings {
    /// Send lossless tiles at all (to viewers that can compose them).
    pub enabled: bool,
    /// Refinement budget, bits/s.
    pub budget_bps: u64,
    /// A video cell still for this long is refined to lossless.
    pub refine_after: Duration,
    /// Changes within [`MOTION_WINDOW`] that make a cell "in motion" (video).
    pub motion_changes: usize,
    /// Changes covering more than this share of the screen go to video.
    pub max_tile_share: f64,
    /// Cells in motion go to video only when together they cover at least this share of the
    /// screen: a small moving thing (a timecode, a spinner, a blinking caret, a meter) stays
    /// exact as tiles, a playing clip or a scrolling page goes to video.
    pub min_motion_share: f64,
}

impl Default for TileSettings {
    fn default() -> Self {
        TileSettings {
            enabled: true,
            budget_bps: 100_000_000,
            refine_after: Duration::from_millis(150),
            motion_changes: 4,
            max_tile_share: 0.2,
            min_motion_share: 0.03,
        }
    }
}

#[derive(Debug, Clone)]
struct Cell {
    lossless: bool,
    /// Changed since it was last sent lossless (video cells only).
    needs_refine: bool,
    last_change: Instant,
    recent: VecDeque<Instant>,
    hash: u64,
}

/// What one frame (or a still tick) produced.
#[derive(Debug, Default)]
pub struct TileOutput {
    /// Messages for the tile stream, in order.
    pub messages: Vec<TileMessage>,
    /// A video-owned cell changed: the frame must be encoded.
    pub video_changed: bool,
    /// Tiles in `messages`.
    pub tiles: usize,
    /// Coded tile bytes in `messages`.
    pub tile_bytes: usize,
}

/// Figures for stats and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TileTotals {
    /// Tiles sent for changes.
    pub change_tiles: u64,
    /// Tiles sent to refine still video cells.
    pub refine_tiles: u64,
    /// Coded bytes of all tiles.
    pub bytes: u64,
    /// Cells handed to video.
    pub handovers: u64,
}

/// The per-cell state machine on the host.
#[derive(Debug)]
pub struct TileTracker {
    settings: TileSettings,
    grid: Option<Grid>,
    cells: Vec<Cell>,
    seq: u32,
    tokens: f64,
    last_refill: Instant,
    hashes_dirty: bool,
    last_hashes: Option<Instant>,
    /// Gather and delta buffers, one pair per coding thread (kept: no page faults per frame).
    bufs: [Buffers; 2],
    totals: TileTotals,
    /// Coded / raw size of recent tiles (for estimating what refinement will cost).
    ratio: f64,
}

impl TileTracker {
    /// A tracker with no grid yet (the first frame sets it and sends a reset).
    pub fn new(settings: TileSettings, now: Instant) -> TileTracker {
        TileTracker {
            settings,
            grid: None,
            cells: Vec::new(),
            seq: 0,
            tokens: 0.0,
            last_refill: now,
            hashes_dirty: false,
            last_hashes: None,
            bufs: Default::default(),
            totals: TileTotals::default(),
            ratio: 0.25,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &TileSettings {
        &self.settings
    }

    /// Totals so far.
    pub fn totals(&self) -> TileTotals {
        self.totals
    }

    /// Forgets every lossless cell: the next frame sends a reset (a viewer joined or missed
    /// tiles; the grid changed).
    pub fn reset(&mut self) {
        self.grid = None;
    }

    /// Share of the screen (by pixels) held lossless.
    pub fn lossless_share(&self) -> f64 {
        let Some(g) = self.grid else { return 0.0 };
        let px: u64 = (0..self.cells.len())
            .filter(|&i| self.cells[i].lossless)
            .map(|i| {
                let (_, _, w, h) = g.cell_rect(i);
                u64::from(w * h)
            })
            .sum();
        px as f64 / (f64::from(g.width) * f64::from(g.height))
    }

    /// Classifies `frame`'s damage (its whole area when the damage is empty/unknown), codes
    /// the tiles, refines still cells within the budget. `next_video_frame` is the number the
    /// next encoded frame will carry (hand-overs name it). `times_us` are the host wire-clock
    /// stamps (capture start, capture end, now) for the tile batch.
    pub fn on_frame(
        &mut self,
        frame: &CapturedFrame,
        now: Instant,
        next_video_frame: u32,
        times_us: (u64, u64, u64),
    ) -> TileOutput {
        let mut out = TileOutput::default();
        let depth = match frame.format {
            PixelFormat::Bgrx8 => 8,
            PixelFormat::X2Rgb10 => 10,
        };
        let grid = Grid {
            width: frame.width,
            height: frame.height,
            depth,
        };
        if self.grid != Some(grid) {
            self.start(grid, now, &mut out);
        }
        self.refill(now);
        let mut changed: Vec<usize> = Vec::new();
        let mut seen = vec![false; grid.cells()];
        if frame.damage.is_empty() {
            // Unknown damage (a keyframe's full capture, a source without DAMAGE): lossless
            // cells whose pixels still hash the same did not change — a keyframe request
            // does not throw the lossless layer away.
            for i in 0..grid.cells() {
                if self.cells[i].lossless {
                    gather(frame, grid, i, &mut self.bufs[0].raw);
                    if cell_hash(&self.bufs[0].raw) == self.cells[i].hash {
                        continue;
                    }
                }
                changed.push(i);
            }
        } else {
            for r in &frame.damage {
                for i in grid.cells_in(r.x, r.y, r.w, r.h) {
                    if !std::mem::replace(&mut seen[i], true) {
                        changed.push(i);
                    }
                }
            }
        }
        let area: u64 = changed
            .iter()
            .map(|&i| {
                let (_, _, w, h) = grid.cell_rect(i);
                u64::from(w * h)
            })
            .sum();
        let screen = f64::from(grid.width * grid.height);
        let big = area as f64 > self.settings.max_tile_share * screen;
        let mut now_tiles = Vec::new();
        let mut handover = Vec::new();
        let mut moving = vec![false; changed.len()];
        let mut moving_area = 0u64;
        for (k, &i) in changed.iter().enumerate() {
            let c = &mut self.cells[i];
            while c
                .recent
                .front()
                .is_some_and(|&t| now.duration_since(t) > MOTION_WINDOW)
            {
                c.recent.pop_front();
            }
            c.recent.push_back(now);
            c.last_change = now;
            if c.recent.len() >= self.settings.motion_changes {
                moving[k] = true;
                let (_, _, w, h) = grid.cell_rect(i);
                moving_area += u64::from(w * h);
            }
        }
        let motion_counts = moving_area as f64 >= self.settings.min_motion_share * screen;
        for (k, &i) in changed.iter().enumerate() {
            let c = &mut self.cells[i];
            if big || (moving[k] && motion_counts) {
                if c.lossless {
                    c.lossless = false;
                    handover.push(i as u16);
                }
                c.needs_refine = true;
                out.video_changed = true;
            } else {
                now_tiles.push(i);
            }
        }
        if !handover.is_empty() {
            self.totals.handovers += handover.len() as u64;
            self.hashes_dirty = true;
            out.messages.push(TileMessage::VideoOwns {
                from_frame: next_video_frame,
                cells: handover,
            });
        }
        let n_change = now_tiles.len();
        self.refinable(now, &mut now_tiles);
        let refined = now_tiles.len() > n_change;
        self.emit(frame, grid, &now_tiles, n_change, times_us, &mut out);
        self.hashes(now, refined, &mut out);
        out
    }

    /// A tick with no new frame (the screen is still): refines what is due from the last
    /// captured `frame` and repeats the hashes.
    pub fn on_still(
        &mut self,
        frame: &CapturedFrame,
        now: Instant,
        times_us: (u64, u64, u64),
    ) -> TileOutput {
        let mut out = TileOutput::default();
        let Some(grid) = self.grid else { return out };
        if frame.width != grid.width || frame.height != grid.height {
            return out;
        }
        self.refill(now);
        let mut cells = Vec::new();
        self.refinable(now, &mut cells);
        let refined = !cells.is_empty();
        self.emit(frame, grid, &cells, 0, times_us, &mut out);
        self.hashes(now, refined, &mut out);
        out
    }

    fn start(&mut self, grid: Grid, now: Instant, out: &mut TileOutput) {
        self.grid = Some(grid);
        self.cells = vec![
            Cell {
                lossless: false,
                needs_refine: true,
                last_change: now,
                recent: VecDeque::new(),
                hash: 0,
            };
            grid.cells()
        ];
        self.seq = 0;
        self.hashes_dirty = true;
        out.messages.push(TileMessage::Reset(grid));
        out.video_changed = true;
    }

    fn refill(&mut self, now: Instant) {
        let per_s = self.settings.budget_bps as f64 / 8.0;
        let dt = now.duration_since(self.last_refill).as_secs_f64();
        self.last_refill = now;
        // Up to a quarter second of budget may be spent at once.
        self.tokens = (self.tokens + per_s * dt).min(per_s / 4.0);
    }

    /// Appends the video cells due for refinement (still long enough) while tokens last
    /// (each estimated at the recent coded/raw ratio).
    fn refinable(&mut self, now: Instant, cells: &mut Vec<usize>) {
        let Some(grid) = self.grid else { return };
        let mut tokens = self.tokens;
        for (i, c) in self.cells.iter().enumerate() {
            if tokens <= 0.0 {
                break;
            }
            if !c.lossless
                && c.needs_refine
                && now.duration_since(c.last_change) >= self.settings.refine_after
                && !cells.contains(&i)
            {
                cells.push(i);
                tokens -= grid.cell_raw_len(i) as f64 * self.ratio;
            }
        }
    }

    /// Codes `cells` from `frame` into one batch (the first `n_change` are change tiles, the
    /// rest refinement).
    fn emit(
        &mut self,
        frame: &CapturedFrame,
        grid: Grid,
        cells: &[usize],
        n_change: usize,
        (capture_start_us, capture_end_us, coded_us): (u64, u64, u64),
        out: &mut TileOutput,
    ) {
        if cells.is_empty() {
            return;
        }
        let coded = code_cells(frame, grid, cells, &mut self.bufs);
        let mut tiles = Vec::with_capacity(cells.len());
        for (k, (&i, (hash, raw_len, codec, data))) in cells.iter().zip(coded).enumerate() {
            let c = &mut self.cells[i];
            c.hash = hash;
            c.lossless = true;
            c.needs_refine = false;
            self.tokens -= data.len() as f64;
            self.ratio = 0.9 * self.ratio + 0.1 * (data.len() as f64 / raw_len.max(1) as f64);
            out.tile_bytes += data.len();
            if k < n_change {
                self.totals.change_tiles += 1;
            } else {
                self.totals.refine_tiles += 1;
            }
            tiles.push(Tile {
                cell: i as u16,
                codec,
                data,
            });
        }
        self.totals.bytes += out.tile_bytes as u64;
        out.tiles += tiles.len();
        self.hashes_dirty = true;
        self.seq = self.seq.wrapping_add(1);
        // Batches stay well under the message limit: split every 4 MiB of tile data.
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        for t in tiles {
            bytes += t.data.len();
            batch.push(t);
            if bytes >= 4 << 20 {
                out.messages.push(TileMessage::Tiles {
                    seq: self.seq,
                    capture_start_us,
                    capture_end_us,
                    coded_us,
                    tiles: std::mem::take(&mut batch),
                });
                bytes = 0;
            }
        }
        if !batch.is_empty() {
            out.messages.push(TileMessage::Tiles {
                seq: self.seq,
                capture_start_us,
                capture_end_us,
                coded_us,
                tiles: batch,
            });
        }
    }

    /// Appends the hash list when due: at most every [`HASH_EVERY`] while tiles change, at
    /// once when a refinement just made the last video cell lossless (the proof of a
    /// converged picture should not wait), and every [`HASH_REPEAT`] anyway.
    fn hashes(&mut self, now: Instant, refined: bool, out: &mut TileOutput) {
        let since = self.last_hashes.map(|t| now.duration_since(t));
        let converged = refined && self.cells.iter().all(|c| c.lossless || !c.needs_refine);
        let due = match since {
            None => true,
            Some(d) => (self.hashes_dirty && (d >= HASH_EVERY || converged)) || d >= HASH_REPEAT,
        };
        if !due {
            return;
        }
        self.last_hashes = Some(now);
        self.hashes_dirty = false;
        out.messages.push(TileMessage::Hashes {
            cells: self
                .cells
                .iter()
                .enumerate()
                .filter(|(_, c)| c.lossless)
                .map(|(i, c)| (i as u16, c.hash))
                .collect(),
        });
    }
}

/// Codes `cells` of `frame`: `(hash, raw length, codec, data)` per cell, in order. Eight or
/// more cells are split over two threads (the pipeline's and one scoped helper): a 480×240
/// change touches ~40 cells, and coding is most of the host's cost for it.
fn code_cells(
    frame: &CapturedFrame,
    grid: Grid,
    cells: &[usize],
    bufs: &mut [Buffers; 2],
) -> Vec<(u64, usize, TileCodec, Vec<u8>)> {
    fn run(
        frame: &CapturedFrame,
        grid: Grid,
        cells: &[usize],
        bufs: &mut Buffers,
    ) -> Vec<(u64, usize, TileCodec, Vec<u8>)> {
        let bps = grid.bytes_per_sample();
        cells
            .iter()
            .map(|&i| {
                gather(frame, grid, i, &mut bufs.raw);
                let (_, _, w, _) = grid.cell_rect(i);
                let (codec, data) = code_cell(&bufs.raw, w as usize, bps, &mut bufs.scratch);
                (cell_hash(&bufs.raw), bufs.raw.len(), codec, data)
            })
            .collect()
    }
    let [mine, theirs] = bufs;
    if cells.len() < 8 {
        return run(frame, grid, cells, mine);
    }
    let (a, b) = cells.split_at(cells.len() / 2);
    std::thread::scope(|s| {
        let helper = s.spawn(|| run(frame, grid, b, theirs));
        let mut first = run(frame, grid, a, mine);
        match helper.join() {
            Ok(second) => first.extend(second),
            // The helper cannot panic on valid cells; if it did, code its half here.
            Err(_) => first.extend(run(frame, grid, b, mine)),
        }
        first
    })
}

/// One coding thread's working buffers.
#[derive(Debug, Default)]
struct Buffers {
    raw: Vec<u8>,
    scratch: Vec<u8>,
}

/// Cell `i` of `frame` as raw planes G, B, R.
pub fn gather(frame: &CapturedFrame, grid: Grid, i: usize, raw: &mut Vec<u8>) {
    let (x, y, w, h) = grid.cell_rect(i);
    let (w, h) = (w as usize, h as usize);
    let n = w * h;
    let bps = grid.bytes_per_sample();
    raw.clear();
    raw.resize(n * 3 * bps, 0);
    let (g, rest) = raw.split_at_mut(n * bps);
    let (b, r) = rest.split_at_mut(n * bps);
    for row in 0..h {
        let at = (y as usize + row) * frame.stride + x as usize * 4;
        let src = &frame.data[at..at + w * 4];
        match frame.format {
            PixelFormat::Bgrx8 => {
                let o = row * w;
                let planes = g[o..o + w]
                    .iter_mut()
                    .zip(&mut b[o..o + w])
                    .zip(&mut r[o..o + w]);
                for (((g, b), r), px) in planes.zip(src.chunks_exact(4)) {
                    *b = px[0];
                    *g = px[1];
                    *r = px[2];
                }
            }
            PixelFormat::X2Rgb10 => {
                let o = row * w * 2;
                for (j, px) in src.chunks_exact(4).enumerate() {
                    let v = u32::from_le_bytes([px[0], px[1], px[2], px[3]]);
                    let put = |p: &mut [u8], s: u32| {
                        p[o + 2 * j..o + 2 * j + 2].copy_from_slice(&(s as u16).to_le_bytes())
                    };
                    put(r, (v >> 20) & 0x3ff);
                    put(g, (v >> 10) & 0x3ff);
                    put(b, v & 0x3ff);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Rect;
    use sightline_protocol::tiles::{Canvas, TileMessage};

    fn frame(w: u32, h: u32, seed: u32) -> CapturedFrame {
        let mut f = CapturedFrame::new();
        f.reshape(w, h, PixelFormat::Bgrx8);
        // xorshift noise: incompressible.
        let mut v = seed.wrapping_mul(747_796_405) | 1;
        for px in f.data.chunks_exact_mut(4) {
            v ^= v << 13;
            v ^= v >> 17;
            v ^= v << 5;
            px.copy_from_slice(&v.to_le_bytes());
        }
        f
    }

    fn tiles_in(out: &TileOutput) -> usize {
        out.messages
            .iter()
            .map(|m| match m {
                TileMessage::Tiles { tiles, .. } => tiles.len(),
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn small_changes_go_as_tiles_motion_to_video_and_stillness_refines() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut tr = TileTracker::new(TileSettings::default(), t0);
        let mut f = frame(640, 360, 0);
        // First frame: a reset, everything video.
        let out = tr.on_frame(&f, t0, 0, (0, 0, 0));
        assert!(matches!(out.messages[0], TileMessage::Reset(_)));
        assert!(out.video_changed);
        assert_eq!(tiles_in(&out), 0);
        // Still for the refine time: every cell is refined.
        let out = tr.on_still(&f, ms(200), (0, 0, 0));
        assert_eq!(tiles_in(&out), 60, "10 x 6 cells");
        assert_eq!(tr.lossless_share(), 1.0);
        // A small change: tiles at once, no video.
        f.damage = vec![Rect {
            x: 10,
            y: 10,
            w: 100,
            h: 20,
        }];
        let out = tr.on_frame(&f, ms(210), 1, (0, 0, 0));
        assert_eq!(tiles_in(&out), 2);
        assert!(!out.video_changed);
        // The same cells changing every frame: motion → handed to video at frame 1.
        let mut handed = false;
        for k in 0..4 {
            let out = tr.on_frame(&f, ms(226 + 16 * k), 1, (0, 0, 0));
            if out.messages.iter().any(
                |m| matches!(m, TileMessage::VideoOwns { from_frame: 1, cells } if cells == &vec![0, 1]),
            ) {
                handed = true;
                assert!(out.video_changed);
            }
        }
        assert!(handed, "sustained change goes to video");
        // A big change goes to video at once.
        f.damage = vec![Rect {
            x: 0,
            y: 0,
            w: 640,
            h: 200,
        }];
        let out = tr.on_frame(&f, ms(400), 2, (0, 0, 0));
        assert!(out.video_changed);
        assert_eq!(tiles_in(&out), 0);
        // Still again: refined within the budget, and the hashes list every lossless cell.
        let out = tr.on_still(&f, ms(600), (0, 0, 0));
        assert!(tiles_in(&out) > 0);
        assert_eq!(tr.lossless_share(), 1.0);
        assert!(out
            .messages
            .iter()
            .any(|m| matches!(m, TileMessage::Hashes { cells } if cells.len() == 60)));
    }

    #[test]
    fn a_small_moving_thing_stays_lossless() {
        let t0 = Instant::now();
        let mut tr = TileTracker::new(TileSettings::default(), t0);
        let mut f = frame(1920, 1080, 2);
        tr.on_frame(&f, t0, 0, (0, 0, 0));
        tr.on_still(&f, t0 + Duration::from_millis(200), (0, 0, 0));
        // A 200×40 timecode changing at 60 Hz: 4 cells, 0.8 % of the screen.
        f.damage = vec![Rect {
            x: 1000,
            y: 900,
            w: 200,
            h: 40,
        }];
        for k in 0..30u64 {
            let out = tr.on_frame(&f, t0 + Duration::from_millis(300 + 16 * k), 1, (0, 0, 0));
            assert!(!out.video_changed, "frame {k}: stays tiles");
            assert_eq!(tiles_in(&out), 4);
        }
        assert_eq!(tr.lossless_share(), 1.0);
    }

    #[test]
    fn unknown_damage_keeps_lossless_cells_whose_pixels_did_not_change() {
        let t0 = Instant::now();
        let mut tr = TileTracker::new(TileSettings::default(), t0);
        let mut f = frame(640, 360, 1);
        tr.on_frame(&f, t0, 0, (0, 0, 0));
        tr.on_still(&f, t0 + Duration::from_millis(200), (0, 0, 0));
        assert_eq!(tr.lossless_share(), 1.0);
        // A whole-frame capture (keyframe) with one cell really changed.
        f.data[0] ^= 0xff;
        f.damage.clear();
        let out = tr.on_frame(&f, t0 + Duration::from_millis(300), 1, (0, 0, 0));
        assert_eq!(tiles_in(&out), 1, "only the changed cell is sent");
        assert!(!out.video_changed);
        assert_eq!(tr.lossless_share(), 1.0);
    }

    #[test]
    fn a_viewer_canvas_fed_the_messages_matches_the_frame_bit_for_bit() {
        for format in [PixelFormat::Bgrx8, PixelFormat::X2Rgb10] {
            let t0 = Instant::now();
            let mut tr = TileTracker::new(TileSettings::default(), t0);
            let mut f = frame(200, 100, 7);
            f.format = format;
            let mut canvas: Option<Canvas> = None;
            let feed = |out: TileOutput, canvas: &mut Option<Canvas>| {
                for m in out.messages {
                    if let TileMessage::Reset(g) = m {
                        *canvas = Some(Canvas::new(g));
                    }
                    canvas.as_mut().unwrap().apply(&m).unwrap();
                }
            };
            feed(tr.on_frame(&f, t0, 0, (0, 0, 0)), &mut canvas);
            feed(
                tr.on_still(&f, t0 + Duration::from_millis(300), (0, 0, 0)),
                &mut canvas,
            );
            let c = canvas.as_mut().unwrap();
            assert!(c.fidelity().all_exact(), "{format:?}: {:?}", c.fidelity());
            // Independently: every pixel of the canvas equals the frame.
            let g = c.grid();
            let bps = g.bytes_per_sample();
            for y in 0..100usize {
                for x in 0..200usize {
                    let v = u32::from_le_bytes(
                        f.data[y * f.stride + x * 4..y * f.stride + x * 4 + 4]
                            .try_into()
                            .unwrap(),
                    );
                    let want = match format {
                        PixelFormat::Bgrx8 => [(v >> 8) & 255, v & 255, (v >> 16) & 255],
                        PixelFormat::X2Rgb10 => [(v >> 10) & 1023, v & 1023, (v >> 20) & 1023],
                    };
                    for (p, w) in want.iter().enumerate() {
                        let at = (y * 200 + x) * bps;
                        let got = if bps == 1 {
                            u32::from(c.planes()[p][at])
                        } else {
                            u32::from(u16::from_le_bytes([
                                c.planes()[p][at],
                                c.planes()[p][at + 1],
                            ]))
                        };
                        assert_eq!(got, *w, "{format:?} ({x},{y}) plane {p}");
                    }
                }
            }
        }
    }

    #[test]
    fn refinement_keeps_to_its_budget() {
        let t0 = Instant::now();
        let settings = TileSettings {
            budget_bps: 8_000_000,
            ..TileSettings::default()
        };
        let mut tr = TileTracker::new(settings, t0);
        // Noise does not compress: ~48 KB per cell raw.
        let f = frame(1280, 720, 3);
        tr.on_frame(&f, t0, 0, (0, 0, 0));
        let mut bytes = 0;
        for k in 1..=10 {
            let out = tr.on_still(&f, t0 + Duration::from_millis(150 + 100 * k), (0, 0, 0));
            bytes += out.tile_bytes;
        }
        // 1 MB/s for ~1.1 s, plus at most one cell over.
        assert!(bytes <= 1_200_000, "{bytes} bytes");
        assert!(bytes > 300_000, "{bytes} bytes: the budget is used");
        assert!(tr.lossless_share() < 1.0);
    }
}
