//! The viewer's side of lossless tiles: one composed picture from decoded video and tiles,
//! by the rules in [`sightline_protocol::tiles`], handed on as an ordinary picture so both
//! present paths show it unchanged.
//!
//! The composed picture is an identity-matrix (GBR), full-range 4:4:4 picture — 8-bit for
//! 8-bit sources, 10-bit (`u16` samples) for 10-bit ones — so tiles land in it bit-exact and
//! the presenters need nothing new. Video-owned cells are converted from the decoded YUV with
//! the presenters' own converter ([`crate::convert::fb`]: 8 bits per channel; in a 10-bit
//! picture video cells are widened from 8 bits — they are lossy anyway, and refinement
//! replaces them with exact tiles once they are still).
//!
//! The proof ([`LosslessStatus`]) is updated on every hash list from the host.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use sightline_protocol::damage::DamageRect;
use sightline_protocol::msg::{ColourMatrix, ColourRange, HostStageTimes};
use sightline_protocol::tiles::{Canvas, Fidelity, TileError, TileMessage};
use sightline_protocol::time::HostMicros;

use crate::convert::fb::{convert_rect, Coeffs, Span};
use crate::frame::{DecodedFrame, PictureFormat};

/// What the viewer knows about lossless tiles now (shared with the window and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LosslessStatus {
    /// The host sends tiles (the composed picture is shown).
    pub active: bool,
    /// Share of the picture showing tiles now (0–1).
    pub lossless_share: f64,
    /// The hash proof as of the host's last hash list.
    pub fidelity: Fidelity,
    /// Tiles applied.
    pub tiles: u64,
    /// Coded tile bytes received.
    pub tile_bytes: u64,
    /// Tile-stream messages refused (the lossless layer was dropped).
    pub errors: u64,
}

impl LosslessStatus {
    /// Every pixel proven bit-exact by the last hash list.
    pub fn all_exact(&self) -> bool {
        self.active && self.fidelity.all_exact()
    }
}

/// Shared [`LosslessStatus`].
pub type SharedLossless = Arc<Mutex<LosslessStatus>>;

/// Composes video and tiles.
#[derive(Debug)]
pub struct Composer {
    canvas: Canvas,
    words: Vec<u32>,
    status: SharedLossless,
    /// Number of the last composed picture: strictly increasing over video and tile
    /// pictures (the window and the bench pair presents with pictures by it), and never
    /// below the video frame it shows.
    number: Option<u32>,
    /// Tiles applied since the last picture: (earliest batch's host times, when it arrived,
    /// changed cells). The picture is built once the queue is drained
    /// ([`Composer::take_picture`]), so a burst of tile messages costs one picture.
    pending: Option<(Option<HostStageTimes>, u64, Vec<usize>)>,
}

impl Composer {
    /// A composer for the grid of a reset.
    pub fn new(canvas: Canvas, status: SharedLossless) -> Composer {
        Composer {
            canvas,
            words: Vec::new(),
            status,
            number: None,
            pending: None,
        }
    }

    fn next_number(&mut self, video: Option<u32>) -> u32 {
        let n = match (self.number, video) {
            (None, v) => v.unwrap_or(0),
            (Some(p), Some(v)) if v.wrapping_sub(p) < 1 << 31 && v != p => v,
            (Some(p), _) => p.wrapping_add(1),
        };
        self.number = Some(n);
        n
    }

    /// The canvas.
    pub fn canvas(&self) -> &Canvas {
        &self.canvas
    }

    /// A decoded video frame: its picture goes into the video-owned cells; returns the
    /// composed picture.
    pub fn video(&mut self, f: &DecodedFrame) -> DecodedFrame {
        self.canvas.on_video_frame(f.frame);
        let g = self.canvas.grid();
        let k = Coeffs::of(f);
        let bps = g.bytes_per_sample();
        let stride = g.width as usize * bps;
        // Runs of adjacent video cells in a cell row are converted with one call each (a
        // whole-screen video picture is 17 calls at 1080p, not 510).
        let cols = g.cols() as usize;
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for i in self.canvas.video_cells() {
            match runs.last_mut() {
                Some((_, last)) if *last + 1 == i && i % cols != 0 => *last = i,
                _ => runs.push((i, i)),
            }
        }
        for (first, last) in runs {
            let (x, y, _, h) = g.cell_rect(first);
            let (lx, _, lw, _) = g.cell_rect(last);
            let w = lx + lw - x;
            // The stream may be a little larger (even-padded) or, mid-change, smaller.
            let x1 = (x + w).min(f.width);
            let y1 = (y + h).min(f.height);
            if x1 <= x || y1 <= y {
                continue;
            }
            let (w, h) = ((x1 - x) as usize, (y1 - y) as usize);
            self.words.resize(w * h, 0);
            convert_rect(
                f,
                &k,
                Span {
                    x0: x as usize,
                    x1: x1 as usize,
                    y0: y as usize,
                    y1: y1 as usize,
                },
                &mut self.words,
                w,
                (0, 0),
            );
            let [pg, pb, pr] = self.canvas.planes_mut();
            for row in 0..h {
                let at = (y as usize + row) * stride + x as usize * bps;
                let src = &self.words[row * w..(row + 1) * w];
                if bps == 1 {
                    for (j, &v) in src.iter().enumerate() {
                        pr[at + j] = (v >> 16) as u8;
                        pg[at + j] = (v >> 8) as u8;
                        pb[at + j] = v as u8;
                    }
                } else {
                    let widen = |c: u32| {
                        let c = c & 0xff;
                        ((c << 2) | (c >> 6)) as u16
                    };
                    for (j, &v) in src.iter().enumerate() {
                        let o = at + 2 * j;
                        pr[o..o + 2].copy_from_slice(&widen(v >> 16).to_le_bytes());
                        pg[o..o + 2].copy_from_slice(&widen(v >> 8).to_le_bytes());
                        pb[o..o + 2].copy_from_slice(&widen(v).to_le_bytes());
                    }
                }
            }
        }
        self.publish();
        let n = self.next_number(Some(f.frame));
        // The video picture shows every tile applied so far.
        self.pending = None;
        self.picture(n, f.host_times, None, f.decoded_us, f.decoded_at)
            .with_receipt(f.first_packet_us, f.reassembled_us)
    }

    /// A tile-stream message; returns whether shown pixels changed (then
    /// [`Composer::take_picture`] has a picture).
    pub fn tiles(&mut self, m: &TileMessage, received_us: u64) -> Result<bool, TileError> {
        let applied = match self.canvas.apply(m) {
            Ok(a) => a,
            Err(e) => {
                self.status
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .errors += 1;
                return Err(e);
            }
        };
        if let TileMessage::Tiles { tiles, .. } = m {
            let mut s = self.status.lock().unwrap_or_else(PoisonError::into_inner);
            s.tiles += tiles.len() as u64;
            s.tile_bytes += tiles.iter().map(|t| t.data.len() as u64).sum::<u64>();
        }
        self.publish();
        if applied.changed.is_empty() {
            return Ok(false);
        }
        let times = match m {
            TileMessage::Tiles {
                capture_start_us,
                capture_end_us,
                coded_us,
                ..
            } => Some(HostStageTimes {
                capture_start: HostMicros(*capture_start_us),
                capture_end: HostMicros(*capture_end_us),
                convert_end: HostMicros(*coded_us),
                encode_end: HostMicros(*coded_us),
                send: HostMicros(*coded_us),
            }),
            _ => None,
        };
        match &mut self.pending {
            Some((_, _, cells)) => cells.extend(applied.changed),
            None => self.pending = Some((times, received_us, applied.changed)),
        }
        Ok(true)
    }

    /// The composed picture for the tiles applied since the last picture, if any.
    pub fn take_picture(&mut self) -> Option<DecodedFrame> {
        let (times, received_us, mut cells) = self.pending.take()?;
        cells.sort_unstable();
        cells.dedup();
        let g = self.canvas.grid();
        let rects: Vec<DamageRect> = cells
            .iter()
            .filter_map(|&i| {
                let (x, y, w, h) = g.cell_rect(i);
                DamageRect::new(x, y, w, h)
            })
            .collect();
        let damage = (rects.len() <= 64).then_some(rects);
        let frame = self.next_number(None);
        Some(
            self.picture(frame, times, damage, received_us, Instant::now())
                .with_receipt(received_us, received_us),
        )
    }

    fn publish(&self) {
        let g = self.canvas.grid();
        let mut s = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        s.active = true;
        s.fidelity = self.canvas.fidelity();
        s.lossless_share =
            self.canvas.lossless_pixels() as f64 / (f64::from(g.width) * f64::from(g.height));
    }

    fn picture(
        &self,
        frame: u32,
        host_times: Option<HostStageTimes>,
        damage: Option<Vec<DamageRect>>,
        decoded_us: u64,
        decoded_at: Instant,
    ) -> DecodedFrame {
        let g = self.canvas.grid();
        let [pg, pb, pr] = self.canvas.planes();
        let bps = g.bytes_per_sample();
        DecodedFrame {
            width: g.width,
            height: g.height,
            format: if bps == 1 {
                PictureFormat::I444
            } else {
                PictureFormat::I444P10
            },
            y: pg.clone(),
            u: pb.clone(),
            v: pr.clone(),
            y_stride: g.width as usize * bps,
            uv_stride: g.width as usize * bps,
            matrix: ColourMatrix::Identity,
            range: ColourRange::Full,
            frame,
            damage,
            host_times,
            first_packet_us: 0,
            reassembled_us: 0,
            decoded_us,
            decoded_at,
        }
    }
}

trait WithReceipt {
    fn with_receipt(self, first_packet_us: u64, reassembled_us: u64) -> Self;
}

impl WithReceipt for DecodedFrame {
    fn with_receipt(mut self, first_packet_us: u64, reassembled_us: u64) -> Self {
        self.first_packet_us = first_packet_us;
        self.reassembled_us = reassembled_us;
        self
    }
}

/// Reads one composed pixel as `[r, g, b]` at the picture's depth (tests, checks).
pub fn pixel(f: &DecodedFrame, x: u32, y: u32) -> [u16; 3] {
    let b = f.format.bytes_per_sample();
    let at = y as usize * f.y_stride + x as usize * b;
    let get = |p: &[u8]| {
        if b == 1 {
            u16::from(p[at])
        } else {
            u16::from_le_bytes([p[at], p[at + 1]])
        }
    };
    [get(&f.v), get(&f.y), get(&f.u)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::fb::convert_row;
    use sightline_protocol::tiles::{code_cell, Grid, Tile};

    fn yuv_frame(w: u32, h: u32, luma: u8, frame: u32) -> DecodedFrame {
        let (cw, ch) = ((w / 2) as usize, (h / 2) as usize);
        DecodedFrame {
            width: w,
            height: h,
            format: PictureFormat::I420,
            y: vec![luma; (w * h) as usize],
            u: vec![128; cw * ch],
            v: vec![128; cw * ch],
            y_stride: w as usize,
            uv_stride: cw,
            matrix: ColourMatrix::Bt709,
            range: ColourRange::Limited,
            frame,
            damage: None,
            host_times: None,
            first_packet_us: 0,
            reassembled_us: 0,
            decoded_us: 0,
            decoded_at: Instant::now(),
        }
    }

    #[test]
    fn video_fills_video_cells_tiles_stay_exact_and_present_exactly() {
        let g = Grid {
            width: 128,
            height: 64,
            depth: 8,
        };
        let status = SharedLossless::default();
        let mut c = Composer::new(Canvas::new(g), status.clone());
        let grey = c.video(&yuv_frame(128, 64, 126, 1));
        // Video everywhere: mid grey.
        let p = pixel(&grey, 100, 10);
        assert!(p.iter().all(|&v| (126..=130).contains(&v)), "{p:?}");
        // A tile on cell 0: exact pixels.
        let mut raw = Vec::new();
        for plane in 0..3u32 {
            for y in 0..64u32 {
                for x in 0..64u32 {
                    raw.push((x * 4 + y + plane * 60) as u8);
                }
            }
        }
        let (codec, data) = code_cell(&raw, 64, 1, &mut Vec::new());
        assert!(c
            .tiles(
                &TileMessage::Tiles {
                    seq: 1,
                    capture_start_us: 0,
                    capture_end_us: 0,
                    coded_us: 0,
                    tiles: vec![Tile {
                        cell: 0,
                        codec,
                        data,
                    }],
                },
                5,
            )
            .unwrap());
        let out = c.take_picture().expect("a new picture");
        assert!(c.take_picture().is_none(), "one picture per burst");
        assert_eq!(
            pixel(&out, 3, 2),
            [(12 + 2 + 120) as u16, 14, (12 + 2 + 60) as u16]
        );
        // The next video frame (black) leaves the tile alone.
        let out = c.video(&yuv_frame(128, 64, 16, 2));
        assert_eq!(pixel(&out, 3, 2), [134, 14, 74]);
        assert_eq!(pixel(&out, 100, 10), [0, 0, 0]);
        // The presenter's own converter shows the composed picture exactly.
        let k = Coeffs::of(&out);
        let mut row = vec![0u32; 128];
        convert_row(&out, &k, 2, 0, &mut row);
        assert_eq!(row[3], (134 << 16) | (14 << 8) | 74);
        // The proof.
        let mut host_raw = raw.clone();
        host_raw.truncate(raw.len());
        c.tiles(
            &TileMessage::Hashes {
                cells: vec![(0, sightline_protocol::tiles::cell_hash(&host_raw))],
            },
            6,
        )
        .unwrap();
        let s = *status.lock().unwrap();
        assert!(s.active && s.fidelity.matched_cells == 1 && !s.all_exact());
        assert!((s.lossless_share - 0.5).abs() < 1e-9);
    }

    #[test]
    fn picture_numbers_increase_over_video_and_tiles() {
        let g = Grid {
            width: 64,
            height: 64,
            depth: 8,
        };
        let mut c = Composer::new(Canvas::new(g), SharedLossless::default());
        assert_eq!(c.next_number(Some(50)), 50);
        assert_eq!(c.next_number(None), 51);
        assert_eq!(c.next_number(None), 52);
        // Video frame 51 after tile pictures took 51 and 52: the next number, not 51.
        assert_eq!(c.next_number(Some(51)), 53);
        assert_eq!(c.next_number(Some(60)), 60);
        assert_eq!(c.next_number(None), 61);
    }
}
