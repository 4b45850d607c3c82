//! Lossless tiles beside the video stream, and the proof that the viewer's picture is
//! bit-exact.
//!
//! The screen is cut into a grid of [`CELL`]×[`CELL`] cells (the last column and row may be
//! narrower). Every cell has one **owner** at a time:
//!
//! * **video**: the viewer shows the decoded video there (lossy);
//! * **lossless**: the viewer shows the exact pixels the host sent as a tile.
//!
//! The host decides (`host-agent`'s tile tracker): small or short-lived changes go as tiles at
//! once, sustained motion goes to video, and a video cell that has been still for a moment is
//! *refined*: sent as a tile, which makes it lossless.
//!
//! # The tile stream
//!
//! Tiles ride one reliable, ordered, unidirectional QUIC stream from the host, opened when the
//! viewer offered [`EXT_LOSSLESS_TILES`] in its hello and the host echoed it. Messages are framed
//! like the control stream (`len: u32` + body, at most [`MAX_TILE_MESSAGE`] bytes). Reliable,
//! because a lost tile would leave a cell wrong with no later frame to repair it; ordered,
//! because the rules below rely on the order of tiles, ownership changes and hashes.
//!
//! # Composition rules (what the viewer shows)
//!
//! 1. [`TileMessage::Reset`] gives the grid (size, bit depth) and makes every cell video-owned;
//!    the lossless layer is discarded. The host sends it first, on a size or depth change, and
//!    whenever a viewer may have missed tiles (one joined, one fell behind).
//! 2. A tile makes its cell lossless at once, with the tile's pixels, and cancels any pending
//!    change of that cell to video announced before it (stream order is decision order).
//! 3. [`TileMessage::VideoOwns`] `{ from_frame: F, cells }` hands cells to video starting with
//!    video frame `F`: the viewer keeps showing the tile until it shows a decoded frame numbered
//!    `F` or later (frame numbers compared modulo 2³²), then shows video there. The rule makes
//!    the two channels' different speeds harmless: video datagrams that arrive before the
//!    message, or a message that arrives before frame `F`, never show video in a cell the host
//!    still considers lossless, or a tile older than the video.
//! 4. Video-owned cells show the newest decoded frame; lossless cells ignore video entirely.
//! 5. [`TileMessage::Hashes`] lists, for every cell the host holds lossless, a hash of the
//!    host's pixels of that cell as they are now. Everything before it on the stream has been
//!    applied when the viewer checks it, so a lossless cell on the viewer whose hash matches is
//!    proven bit-exact; a cell the host lists that the viewer does not hold (or holds with
//!    another hash) is a mismatch, and a cell the host does not list is video (not exact).
//!
//! The host's encoder sees the whole screen (it converts every change, as without tiles) but
//! encodes a frame only when a video-owned cell changed (or a keyframe is due), so lossless
//! changes cost no video bits and the video reference always matches what the decoder holds.
//!
//! # Tile pixels
//!
//! A cell's pixels travel as three planes G, B, R (that order: the same planes as an identity-
//! matrix 4:4:4 picture), row-major, each sample one byte (8-bit sources) or a little-endian
//! `u16` holding 10 bits (10-bit sources). [`TileCodec::Lz4Delta`] replaces each sample by its
//! difference from its left neighbour (modulo the sample size) before LZ4 block compression:
//! flat UI becomes runs of zeros, gradients nearly so. The hash ([`cell_hash`]) is XXH3-64 of
//! the raw planes (before the delta).

use std::collections::VecDeque;

use crate::coding::{Decode, DecodeError, Encode, Reader, WriteExt};
use crate::msg::MAX_DIMENSION;

/// Hello extension id: "I compose lossless tiles". The viewer offers it (empty body); a host
/// that will send tiles echoes it and opens the tile stream.
pub const EXT_LOSSLESS_TILES: u16 = 2;

/// Cell edge in pixels.
pub const CELL: u32 = 64;

/// Largest framed tile-stream message (a whole 8K screen of incompressible 10-bit cells would
/// not fit one message; the host splits batches well below this).
pub const MAX_TILE_MESSAGE: usize = 32 << 20;

/// Most cells one grid may have (16384 / 64 squared).
pub const MAX_CELLS: usize = ((MAX_DIMENSION / CELL) * (MAX_DIMENSION / CELL)) as usize;

/// The cell grid over one picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    /// Picture width, pixels.
    pub width: u32,
    /// Picture height, pixels.
    pub height: u32,
    /// Bits per sample: 8 or 10.
    pub depth: u8,
}

impl Grid {
    /// Columns of cells.
    pub fn cols(&self) -> u32 {
        self.width.div_ceil(CELL)
    }

    /// Rows of cells.
    pub fn rows(&self) -> u32 {
        self.height.div_ceil(CELL)
    }

    /// Number of cells.
    pub fn cells(&self) -> usize {
        (self.cols() * self.rows()) as usize
    }

    /// Bytes per sample (1 or 2).
    pub fn bytes_per_sample(&self) -> usize {
        if self.depth > 8 {
            2
        } else {
            1
        }
    }

    /// Cell `i`'s rectangle `(x, y, width, height)` in pixels.
    pub fn cell_rect(&self, i: usize) -> (u32, u32, u32, u32) {
        let cols = self.cols().max(1);
        let (cx, cy) = (i as u32 % cols, i as u32 / cols);
        let (x, y) = (cx * CELL, cy * CELL);
        (
            x,
            y,
            CELL.min(self.width - x.min(self.width)),
            CELL.min(self.height - y.min(self.height)),
        )
    }

    /// Bytes of a cell's raw planes.
    pub fn cell_raw_len(&self, i: usize) -> usize {
        let (_, _, w, h) = self.cell_rect(i);
        (w * h) as usize * 3 * self.bytes_per_sample()
    }

    /// Indices of the cells a pixel rectangle touches (clipped to the picture).
    pub fn cells_in(&self, x: u32, y: u32, w: u32, h: u32) -> impl Iterator<Item = usize> {
        let cols = self.cols();
        let x1 = x.saturating_add(w).min(self.width);
        let y1 = y.saturating_add(h).min(self.height);
        let (cx0, cy0) = (x / CELL, y / CELL);
        let (cx1, cy1) = if x1 > x && y1 > y {
            (x1.div_ceil(CELL), y1.div_ceil(CELL))
        } else {
            (cx0, cy0)
        };
        (cy0..cy1).flat_map(move |cy| (cx0..cx1).map(move |cx| (cy * cols + cx) as usize))
    }

    fn check(&self) -> Result<(), DecodeError> {
        if self.width == 0
            || self.height == 0
            || self.width > MAX_DIMENSION
            || self.height > MAX_DIMENSION
        {
            return Err(DecodeError::Invalid {
                what: "tile grid",
                detail: "size out of range",
            });
        }
        if self.depth != 8 && self.depth != 10 {
            return Err(DecodeError::Invalid {
                what: "tile grid",
                detail: "depth must be 8 or 10",
            });
        }
        Ok(())
    }
}

crate::msg::wire_enum!(
    /// How a tile's planes are coded.
    TileCodec {
        /// The raw planes.
        Raw = 0,
        /// Left-neighbour delta, then an LZ4 block.
        Lz4Delta = 1,
    }
);

/// One cell's pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tile {
    /// Cell index (row-major).
    pub cell: u16,
    /// Coding of `data`.
    pub codec: TileCodec,
    /// Coded planes.
    pub data: Vec<u8>,
}

/// Everything on the tile stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TileMessage {
    /// A new grid: every cell is video-owned, the lossless layer is gone.
    Reset(Grid),
    /// Cells that become lossless now, with their pixels.
    Tiles {
        /// Batch number (+1 per batch since the reset).
        seq: u32,
        /// Host wire clock (µs): capture start of the frame the tiles come from.
        capture_start_us: u64,
        /// Host wire clock (µs): capture end.
        capture_end_us: u64,
        /// Host wire clock (µs): the batch was coded and handed to the sessions.
        coded_us: u64,
        /// The tiles.
        tiles: Vec<Tile>,
    },
    /// Cells that go to video from frame `from_frame` on.
    VideoOwns {
        /// First video frame that shows these cells.
        from_frame: u32,
        /// Cell indices.
        cells: Vec<u16>,
    },
    /// The host's hash of every cell it holds lossless.
    Hashes {
        /// `(cell, hash)` pairs, cells ascending.
        cells: Vec<(u16, u64)>,
    },
}

const TAG_RESET: u8 = 1;
const TAG_TILES: u8 = 2;
const TAG_VIDEO_OWNS: u8 = 3;
const TAG_HASHES: u8 = 4;

impl Encode for TileMessage {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            TileMessage::Reset(g) => {
                out.put_u8(TAG_RESET);
                out.put_u16(g.width as u16);
                out.put_u16(g.height as u16);
                out.put_u8(g.depth);
            }
            TileMessage::Tiles {
                seq,
                capture_start_us,
                capture_end_us,
                coded_us,
                tiles,
            } => {
                out.put_u8(TAG_TILES);
                out.put_u32(*seq);
                out.put_u64(*capture_start_us);
                out.put_u64(*capture_end_us);
                out.put_u64(*coded_us);
                out.put_u16(tiles.len() as u16);
                for t in tiles {
                    out.put_u16(t.cell);
                    out.put_u8(t.codec.to_u8());
                    out.put_bytes_u32(&t.data);
                }
            }
            TileMessage::VideoOwns { from_frame, cells } => {
                out.put_u8(TAG_VIDEO_OWNS);
                out.put_u32(*from_frame);
                out.put_u16(cells.len() as u16);
                for c in cells {
                    out.put_u16(*c);
                }
            }
            TileMessage::Hashes { cells } => {
                out.put_u8(TAG_HASHES);
                out.put_u16(cells.len() as u16);
                for (c, h) in cells {
                    out.put_u16(*c);
                    out.put_u64(*h);
                }
            }
        }
    }
}

impl Decode for TileMessage {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8("tile message tag")? {
            TAG_RESET => {
                let g = Grid {
                    width: u32::from(r.u16("grid width")?),
                    height: u32::from(r.u16("grid height")?),
                    depth: r.u8("grid depth")?,
                };
                g.check()?;
                TileMessage::Reset(g)
            }
            TAG_TILES => {
                let seq = r.u32("tile seq")?;
                let capture_start_us = r.u64("tile capture start")?;
                let capture_end_us = r.u64("tile capture end")?;
                let coded_us = r.u64("tile coded")?;
                let n = r.u16("tile count")? as usize;
                let mut tiles = Vec::with_capacity(n.min(r.remaining() / 7));
                for _ in 0..n {
                    let cell = r.u16("tile cell")?;
                    let codec = TileCodec::from_u8(r.u8("tile codec")?)?;
                    let data = r.bytes_u32("tile data", MAX_TILE_MESSAGE)?.to_vec();
                    tiles.push(Tile { cell, codec, data });
                }
                TileMessage::Tiles {
                    seq,
                    capture_start_us,
                    capture_end_us,
                    coded_us,
                    tiles,
                }
            }
            TAG_VIDEO_OWNS => {
                let from_frame = r.u32("video-owns frame")?;
                let n = r.u16("video-owns count")? as usize;
                let mut cells = Vec::with_capacity(n.min(r.remaining() / 2));
                for _ in 0..n {
                    cells.push(r.u16("video-owns cell")?);
                }
                TileMessage::VideoOwns { from_frame, cells }
            }
            TAG_HASHES => {
                let n = r.u16("hash count")? as usize;
                let mut cells = Vec::with_capacity(n.min(r.remaining() / 10));
                for _ in 0..n {
                    cells.push((r.u16("hash cell")?, r.u64("hash")?));
                }
                TileMessage::Hashes { cells }
            }
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "tile message",
                    tag: u32::from(tag),
                })
            }
        })
    }
}

/// A tile-stream message framed for the stream (`len: u32` + body).
pub fn frame_message(m: &TileMessage) -> Vec<u8> {
    let mut out = Vec::new();
    out.put_u32(0);
    m.encode(&mut out);
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    out
}

/// The hash the proof compares: XXH3-64 of a cell's raw planes.
pub fn cell_hash(raw: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(raw)
}

/// Codes a cell's raw planes (`w × h` samples per plane, `bps` bytes each): LZ4 over the
/// left-neighbour delta, or the raw planes when that is not smaller.
pub fn code_cell(raw: &[u8], w: usize, bps: usize, scratch: &mut Vec<u8>) -> (TileCodec, Vec<u8>) {
    delta_into(raw, scratch, w, bps);
    // Noise-like content (film grain, a photo) does not compress: a probe over the first
    // eighth finds that at an eighth of the cost of trying the whole cell.
    let probe = scratch.len() / 8;
    if probe >= 1024 && lz4_flex::block::compress(&scratch[..probe]).len() * 10 > probe * 9 {
        return (TileCodec::Raw, raw.to_vec());
    }
    let packed = lz4_flex::block::compress(scratch);
    if packed.len() < raw.len() {
        (TileCodec::Lz4Delta, packed)
    } else {
        (TileCodec::Raw, raw.to_vec())
    }
}

/// Decodes a tile's data into `raw` (which must be the cell's raw length).
pub fn decode_cell(
    codec: TileCodec,
    data: &[u8],
    raw: &mut [u8],
    w: usize,
    bps: usize,
) -> Result<(), TileError> {
    match codec {
        TileCodec::Raw => {
            if data.len() != raw.len() {
                return Err(TileError::BadTile("raw tile of the wrong length"));
            }
            raw.copy_from_slice(data);
        }
        TileCodec::Lz4Delta => {
            let n = lz4_flex::block::decompress_into(data, raw)
                .map_err(|_| TileError::BadTile("LZ4 data does not decode"))?;
            if n != raw.len() {
                return Err(TileError::BadTile("LZ4 tile of the wrong length"));
            }
            delta(raw, w, bps, false);
        }
    }
    Ok(())
}

/// The forward delta of `raw` into `out` in one pass (rows of `w` samples of `bps` bytes).
fn delta_into(raw: &[u8], out: &mut Vec<u8>, w: usize, bps: usize) {
    out.clear();
    out.resize(raw.len(), 0);
    let row = w * bps;
    if row == 0 {
        return;
    }
    for (src, dst) in raw.chunks_exact(row).zip(out.chunks_exact_mut(row)) {
        if bps == 1 {
            dst[0] = src[0];
            for ((d, &cur), &prev) in dst[1..].iter_mut().zip(&src[1..]).zip(src) {
                *d = cur.wrapping_sub(prev);
            }
        } else {
            dst[..2].copy_from_slice(&src[..2]);
            for j in 1..w {
                let cur = u16::from_le_bytes([src[2 * j], src[2 * j + 1]]);
                let prev = u16::from_le_bytes([src[2 * j - 2], src[2 * j - 1]]);
                dst[2 * j..2 * j + 2].copy_from_slice(&cur.wrapping_sub(prev).to_le_bytes());
            }
        }
    }
}

/// Left-neighbour delta (`forward`) or its inverse over rows of `w` samples of `bps` bytes.
fn delta(buf: &mut [u8], w: usize, bps: usize, forward: bool) {
    let row = w * bps;
    if row == 0 {
        return;
    }
    for r in buf.chunks_exact_mut(row) {
        if bps == 1 {
            if forward {
                for i in (1..r.len()).rev() {
                    r[i] = r[i].wrapping_sub(r[i - 1]);
                }
            } else {
                for i in 1..r.len() {
                    r[i] = r[i].wrapping_add(r[i - 1]);
                }
            }
        } else {
            let get = |r: &[u8], i: usize| u16::from_le_bytes([r[2 * i], r[2 * i + 1]]);
            if forward {
                for i in (1..w).rev() {
                    let d = get(r, i).wrapping_sub(get(r, i - 1));
                    r[2 * i..2 * i + 2].copy_from_slice(&d.to_le_bytes());
                }
            } else {
                for i in 1..w {
                    let s = get(r, i).wrapping_add(get(r, i - 1));
                    r[2 * i..2 * i + 2].copy_from_slice(&s.to_le_bytes());
                }
            }
        }
    }
}

/// Why a tile-stream message was refused. The stream is then out of step: the viewer drops
/// the lossless layer (everything video) and says so; the host resets on its next keyframe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    /// Tiles or hashes before any grid.
    #[error("tile message before the grid was set")]
    NoGrid,
    /// A cell index outside the grid.
    #[error("cell {0} outside the grid")]
    BadCell(u16),
    /// Tile data that does not decode to the cell's size.
    #[error("bad tile: {0}")]
    BadTile(&'static str),
}

/// The fidelity proof as of the last hash check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fidelity {
    /// Hash checks done.
    pub checks: u64,
    /// Cells the host held lossless at the last check.
    pub host_lossless_cells: u32,
    /// Of those, cells whose hash matched the viewer's pixels.
    pub matched_cells: u32,
    /// Cells the host held lossless that did not match (missing or different).
    pub mismatched_cells: u32,
    /// Mismatched cells over all checks.
    pub mismatches_total: u64,
    /// Pixels in matched cells.
    pub exact_pixels: u64,
    /// Pixels in the picture.
    pub total_pixels: u64,
}

impl Fidelity {
    /// Share of the picture proven bit-exact at the last check (0–1).
    pub fn exact_share(&self) -> f64 {
        if self.total_pixels == 0 {
            0.0
        } else {
            self.exact_pixels as f64 / self.total_pixels as f64
        }
    }

    /// Every pixel proven bit-exact at the last check.
    pub fn all_exact(&self) -> bool {
        self.total_pixels > 0 && self.exact_pixels == self.total_pixels
    }
}

/// What applying a message changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// Cells whose shown pixels changed (tiles written).
    pub changed: Vec<usize>,
    /// The grid was reset.
    pub reset: bool,
    /// A hash check was done.
    pub checked: bool,
}

/// The viewer's composed picture: three planes (G, B, R) with per-cell owners. Video pixels
/// are written by the caller into video-owned cells ([`Canvas::video_cells`]); tiles by
/// [`Canvas::apply`].
#[derive(Debug, Clone)]
pub struct Canvas {
    grid: Grid,
    planes: [Vec<u8>; 3],
    lossless: Vec<bool>,
    pending: VecDeque<(u32, Vec<u16>)>,
    fidelity: Fidelity,
    scratch: Vec<u8>,
    /// The newest video frame shown (pending hand-overs at or before it apply at once).
    last_video_frame: Option<u32>,
}

/// `a` is frame `b` or later (modulo 2³²).
fn at_or_after(a: u32, b: u32) -> bool {
    a.wrapping_sub(b) < 1 << 31
}

impl Canvas {
    /// A black canvas with every cell video-owned.
    pub fn new(grid: Grid) -> Canvas {
        let n = (grid.width * grid.height) as usize * grid.bytes_per_sample();
        Canvas {
            grid,
            planes: [vec![0; n], vec![0; n], vec![0; n]],
            lossless: vec![false; grid.cells()],
            pending: VecDeque::new(),
            fidelity: Fidelity {
                total_pixels: u64::from(grid.width) * u64::from(grid.height),
                ..Fidelity::default()
            },
            scratch: Vec::new(),
            last_video_frame: None,
        }
    }

    /// The grid.
    pub fn grid(&self) -> Grid {
        self.grid
    }

    /// Planes G, B, R (`width × bytes_per_sample` bytes per row).
    pub fn planes(&self) -> &[Vec<u8>; 3] {
        &self.planes
    }

    /// Planes for writing video pixels (only into [`Canvas::video_cells`]).
    pub fn planes_mut(&mut self) -> &mut [Vec<u8>; 3] {
        &mut self.planes
    }

    /// Whether cell `i` shows a tile.
    pub fn is_lossless(&self, i: usize) -> bool {
        self.lossless.get(i).copied().unwrap_or(false)
    }

    /// Cells that show video.
    pub fn video_cells(&self) -> impl Iterator<Item = usize> + '_ {
        self.lossless
            .iter()
            .enumerate()
            .filter(|(_, l)| !**l)
            .map(|(i, _)| i)
    }

    /// Share of cells (by pixels) that show tiles now.
    pub fn lossless_pixels(&self) -> u64 {
        (0..self.lossless.len())
            .filter(|&i| self.lossless[i])
            .map(|i| {
                let (_, _, w, h) = self.grid.cell_rect(i);
                u64::from(w * h)
            })
            .sum()
    }

    /// The proof as of the last hash check.
    pub fn fidelity(&self) -> Fidelity {
        self.fidelity
    }

    /// Video frame `frame` is about to be shown: cells handed to video from it (or earlier) go
    /// to video now. Returns them.
    pub fn on_video_frame(&mut self, frame: u32) -> Vec<usize> {
        self.last_video_frame = Some(frame);
        let mut moved = Vec::new();
        self.pending.retain(|(from, cells)| {
            if at_or_after(frame, *from) {
                moved.extend(cells.iter().map(|&c| c as usize));
                false
            } else {
                true
            }
        });
        for &c in &moved {
            if let Some(l) = self.lossless.get_mut(c) {
                *l = false;
            }
        }
        moved
    }

    /// Applies a tile-stream message (after a [`TileMessage::Reset`], which the caller turns
    /// into a new canvas).
    pub fn apply(&mut self, m: &TileMessage) -> Result<Applied, TileError> {
        let mut out = Applied::default();
        match m {
            TileMessage::Reset(_) => {
                // The caller makes a new canvas for a new grid; the same grid keeps the
                // pixels (they are still the best picture) but every cell goes to video.
                self.lossless.iter_mut().for_each(|l| *l = false);
                self.pending.clear();
                out.reset = true;
            }
            TileMessage::Tiles { tiles, .. } => {
                let bps = self.grid.bytes_per_sample();
                for t in tiles {
                    let i = usize::from(t.cell);
                    if i >= self.lossless.len() {
                        return Err(TileError::BadCell(t.cell));
                    }
                    let (x, y, w, h) = self.grid.cell_rect(i);
                    let mut raw = std::mem::take(&mut self.scratch);
                    raw.resize(self.grid.cell_raw_len(i), 0);
                    let res = decode_cell(t.codec, &t.data, &mut raw, w as usize, bps);
                    if res.is_ok() {
                        self.write_raw(x, y, w, h, &raw);
                    }
                    self.scratch = raw;
                    res?;
                    self.lossless[i] = true;
                    for (_, cells) in self.pending.iter_mut() {
                        cells.retain(|&c| c != t.cell);
                    }
                    out.changed.push(i);
                }
                self.pending.retain(|(_, c)| !c.is_empty());
            }
            TileMessage::VideoOwns { from_frame, cells } => {
                if let Some(&bad) = cells
                    .iter()
                    .find(|&&c| usize::from(c) >= self.lossless.len())
                {
                    return Err(TileError::BadCell(bad));
                }
                if self
                    .last_video_frame
                    .is_some_and(|f| at_or_after(f, *from_frame))
                {
                    // The frame is already shown (the message was slower than the video).
                    for &c in cells {
                        self.lossless[usize::from(c)] = false;
                    }
                } else {
                    self.pending.push_back((*from_frame, cells.clone()));
                }
            }
            TileMessage::Hashes { cells } => {
                self.check(cells)?;
                out.checked = true;
            }
        }
        Ok(out)
    }

    fn check(&mut self, cells: &[(u16, u64)]) -> Result<(), TileError> {
        let (mut matched, mut mismatched, mut exact) = (0u32, 0u32, 0u64);
        for &(c, h) in cells {
            let i = usize::from(c);
            if i >= self.lossless.len() {
                return Err(TileError::BadCell(c));
            }
            if self.lossless[i] && self.hash_of(i) == h {
                matched += 1;
                let (_, _, w, hh) = self.grid.cell_rect(i);
                exact += u64::from(w * hh);
            } else {
                mismatched += 1;
            }
        }
        let f = &mut self.fidelity;
        f.checks += 1;
        f.host_lossless_cells = cells.len() as u32;
        f.matched_cells = matched;
        f.mismatched_cells = mismatched;
        f.mismatches_total += u64::from(mismatched);
        f.exact_pixels = exact;
        Ok(())
    }

    /// Hash of cell `i` as the canvas holds it.
    pub fn hash_of(&mut self, i: usize) -> u64 {
        let mut raw = std::mem::take(&mut self.scratch);
        self.read_raw(i, &mut raw);
        let h = cell_hash(&raw);
        self.scratch = raw;
        h
    }

    /// Cell `i`'s raw planes as the canvas holds them.
    pub fn read_raw(&self, i: usize, raw: &mut Vec<u8>) {
        let (x, y, w, h) = self.grid.cell_rect(i);
        let bps = self.grid.bytes_per_sample();
        let stride = self.grid.width as usize * bps;
        let row = w as usize * bps;
        raw.clear();
        for p in &self.planes {
            for yy in y..y + h {
                let at = yy as usize * stride + x as usize * bps;
                raw.extend_from_slice(&p[at..at + row]);
            }
        }
    }

    fn write_raw(&mut self, x: u32, y: u32, w: u32, h: u32, raw: &[u8]) {
        let bps = self.grid.bytes_per_sample();
        let stride = self.grid.width as usize * bps;
        let row = w as usize * bps;
        let plane = row * h as usize;
        for (k, p) in self.planes.iter_mut().enumerate() {
            let src = &raw[k * plane..(k + 1) * plane];
            for (j, yy) in (y..y + h).enumerate() {
                let at = yy as usize * stride + x as usize * bps;
                p[at..at + row].copy_from_slice(&src[j * row..(j + 1) * row]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Grid {
        Grid {
            width: 150,
            height: 70,
            depth: 8,
        }
    }

    /// Raw planes of cell `i` filled from `f(x, y, plane)`.
    fn raw_of(g: &Grid, i: usize, f: impl Fn(u32, u32, usize) -> u16) -> Vec<u8> {
        let (x, y, w, h) = g.cell_rect(i);
        let mut raw = Vec::new();
        for p in 0..3 {
            for yy in y..y + h {
                for xx in x..x + w {
                    let v = f(xx, yy, p);
                    if g.bytes_per_sample() == 1 {
                        raw.push(v as u8);
                    } else {
                        raw.extend_from_slice(&v.to_le_bytes());
                    }
                }
            }
        }
        raw
    }

    fn tiles(g: &Grid, cells: &[usize], f: impl Fn(u32, u32, usize) -> u16) -> TileMessage {
        let mut scratch = Vec::new();
        TileMessage::Tiles {
            seq: 1,
            capture_start_us: 1,
            capture_end_us: 2,
            coded_us: 3,
            tiles: cells
                .iter()
                .map(|&i| {
                    let raw = raw_of(g, i, &f);
                    let (w, ..) = (g.cell_rect(i).2,);
                    let (codec, data) =
                        code_cell(&raw, w as usize, g.bytes_per_sample(), &mut scratch);
                    Tile {
                        cell: i as u16,
                        codec,
                        data,
                    }
                })
                .collect(),
        }
    }

    #[test]
    fn grid_covers_the_picture_with_narrow_edge_cells() {
        let g = grid();
        assert_eq!((g.cols(), g.rows(), g.cells()), (3, 2, 6));
        assert_eq!(g.cell_rect(2), (128, 0, 22, 64));
        assert_eq!(g.cell_rect(5), (128, 64, 22, 6));
        let touched: Vec<usize> = g.cells_in(60, 60, 10, 10).collect();
        assert_eq!(touched, vec![0, 1, 3, 4]);
        assert_eq!(g.cells_in(149, 69, 50, 50).collect::<Vec<_>>(), vec![5]);
        assert_eq!(g.cells_in(200, 0, 5, 5).count(), 0);
    }

    #[test]
    fn messages_round_trip_and_garbage_is_refused() {
        let g = grid();
        for m in [
            TileMessage::Reset(g),
            tiles(&g, &[0, 5], |x, y, p| (x * 3 + y + p as u32) as u16),
            TileMessage::VideoOwns {
                from_frame: u32::MAX,
                cells: vec![1, 2],
            },
            TileMessage::Hashes {
                cells: vec![(0, 7), (4, u64::MAX)],
            },
        ] {
            let b = m.to_bytes();
            assert_eq!(TileMessage::from_bytes(&b).unwrap(), m);
            for cut in 0..b.len() {
                assert!(TileMessage::from_bytes(&b[..cut]).is_err(), "cut at {cut}");
            }
        }
        assert!(TileMessage::from_bytes(&[9]).is_err());
        let mut bad = TileMessage::Reset(g).to_bytes();
        bad[5] = 12;
        assert!(TileMessage::from_bytes(&bad).is_err(), "depth 12 refused");
    }

    #[test]
    fn coding_is_lossless_for_both_depths() {
        for depth in [8u8, 10] {
            let g = Grid {
                width: 100,
                height: 64,
                depth,
            };
            let max = if depth == 8 { 255 } else { 1023 };
            let f =
                |x: u32, y: u32, p: usize| ((x * 7 + y * 13 + p as u32 * 101) % (max + 1)) as u16;
            for i in 0..g.cells() {
                let raw = raw_of(&g, i, f);
                let w = g.cell_rect(i).2 as usize;
                let (codec, data) = code_cell(&raw, w, g.bytes_per_sample(), &mut Vec::new());
                let mut back = vec![0; raw.len()];
                decode_cell(codec, &data, &mut back, w, g.bytes_per_sample()).unwrap();
                assert_eq!(back, raw, "depth {depth} cell {i}");
            }
        }
        // Flat content compresses hard.
        let g = grid();
        let raw = raw_of(&g, 0, |_, _, _| 200);
        let (codec, data) = code_cell(&raw, 64, 1, &mut Vec::new());
        assert_eq!(codec, TileCodec::Lz4Delta);
        assert!(data.len() * 50 < raw.len(), "{} bytes", data.len());
        // Corrupt data is an error, not a panic or a wrong picture.
        let mut back = vec![0; raw.len()];
        assert!(decode_cell(
            TileCodec::Lz4Delta,
            &data[..data.len() / 2],
            &mut back,
            64,
            1
        )
        .is_err());
        assert!(decode_cell(TileCodec::Raw, &raw[1..], &mut back, 64, 1).is_err());
    }

    #[test]
    fn tiles_make_cells_lossless_and_hashes_prove_them() {
        let g = grid();
        let f = |x: u32, y: u32, p: usize| ((x + 2 * y + 50 * p as u32) % 256) as u16;
        let mut c = Canvas::new(g);
        assert_eq!(c.video_cells().count(), 6);
        let a = c.apply(&tiles(&g, &[0, 1, 5], f)).unwrap();
        assert_eq!(a.changed, vec![0, 1, 5]);
        assert!(c.is_lossless(5) && !c.is_lossless(2));
        // The host's hashes of its own pixels.
        let host = |cells: &[usize]| TileMessage::Hashes {
            cells: cells
                .iter()
                .map(|&i| (i as u16, cell_hash(&raw_of(&g, i, f))))
                .collect(),
        };
        c.apply(&host(&[0, 1, 5])).unwrap();
        let fid = c.fidelity();
        assert_eq!((fid.matched_cells, fid.mismatched_cells), (3, 0));
        assert_eq!(fid.exact_pixels, 64 * 64 * 2 + 22 * 6);
        assert!(!fid.all_exact());
        // A cell the host holds lossless but the viewer shows video: a mismatch.
        c.apply(&host(&[0, 1, 2, 5])).unwrap();
        assert_eq!(c.fidelity().mismatched_cells, 1);
        // Pixels that differ by one bit: a mismatch.
        c.planes_mut()[1][0] ^= 1;
        c.apply(&host(&[0])).unwrap();
        assert_eq!(c.fidelity().mismatched_cells, 1);
        assert_eq!(c.fidelity().mismatches_total, 2);
        // Everything lossless and equal: all exact.
        c.apply(&tiles(&g, &[0, 1, 2, 3, 4, 5], f)).unwrap();
        c.apply(&host(&[0, 1, 2, 3, 4, 5])).unwrap();
        assert!(c.fidelity().all_exact());
        assert_eq!(c.fidelity().exact_share(), 1.0);
        // Bad cells are errors.
        assert_eq!(
            c.apply(&TileMessage::Hashes {
                cells: vec![(6, 0)]
            }),
            Err(TileError::BadCell(6))
        );
    }

    #[test]
    fn hand_over_to_video_waits_for_its_frame_and_a_later_tile_cancels_it() {
        let g = grid();
        let f = |_: u32, _: u32, _: usize| 9u16;
        let mut c = Canvas::new(g);
        c.on_video_frame(10);
        c.apply(&tiles(&g, &[0, 1, 2], f)).unwrap();
        c.apply(&TileMessage::VideoOwns {
            from_frame: 12,
            cells: vec![0, 1],
        })
        .unwrap();
        // Frame 11 was encoded before the hand-over: the tiles stay.
        assert!(c.on_video_frame(11).is_empty());
        assert!(c.is_lossless(0));
        // A tile for cell 1 after the hand-over (it went still again): it stays lossless.
        c.apply(&tiles(&g, &[1], f)).unwrap();
        assert_eq!(c.on_video_frame(12), vec![0]);
        assert!(!c.is_lossless(0) && c.is_lossless(1) && c.is_lossless(2));
        // A hand-over for a frame already shown applies at once.
        c.apply(&TileMessage::VideoOwns {
            from_frame: 12,
            cells: vec![2],
        })
        .unwrap();
        assert!(!c.is_lossless(2));
        // Across the u32 wrap.
        let mut c = Canvas::new(g);
        c.on_video_frame(u32::MAX - 1);
        c.apply(&tiles(&g, &[3], f)).unwrap();
        c.apply(&TileMessage::VideoOwns {
            from_frame: 1,
            cells: vec![3],
        })
        .unwrap();
        assert!(c.on_video_frame(u32::MAX).is_empty());
        assert_eq!(c.on_video_frame(1), vec![3]);
        // A reset hands everything to video.
        c.apply(&tiles(&g, &[4], f)).unwrap();
        assert!(c.apply(&TileMessage::Reset(g)).unwrap().reset);
        assert_eq!(c.video_cells().count(), 6);
    }
}
