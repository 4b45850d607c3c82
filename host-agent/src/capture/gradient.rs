//! A synthetic 10-bit source (`--source synthetic --scene gradient10`): the picture a colourist
//! checks banding with.
//!
//! Pixels are `x2 r10 g10 b10` ([`PixelFormat::X2Rgb10`], as an X11 depth-30 screen gives
//! them). The picture holds, top to bottom:
//! * the frame barcode of the synthetic source (same cells, same reader:
//!   [`read_barcode`](super::synthetic::read_barcode)), the only part that changes from frame to frame;
//! * a horizontal grey ramp over all 1024 levels ([`GradientLayout::grey`]): column `x` has
//!   level `x · 1024 / width`, so every level is present when the picture is at least 1024
//!   pixels wide; on an 8-bit stream it can keep at most 256 of them;
//! * red, green and blue ramps over the same 1024 levels (chroma and 4:4:4 checks).
//!
//! Bench probes ([`FrameSource::show_probe`]) are drawn as in the synthetic source.

use std::time::{Duration, Instant};

use sightline_protocol::probe;

use super::synthetic::{media_time_us, Layout, BARCODE_BITS, BARCODE_ROWS};
use super::{CaptureError, CaptureOutcome, CapturedFrame, FrameSource, PixelFormat, Rect};

/// Where the parts of the gradient picture are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GradientLayout {
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// The barcode block (top left; the rest of the top band is black).
    pub barcode: Rect,
    /// The grey ramp.
    pub grey: Rect,
    /// Red, green and blue ramps.
    pub colour: [Rect; 3],
}

impl GradientLayout {
    /// The layout for `width × height`.
    pub fn new(width: u32, height: u32) -> GradientLayout {
        let l = Layout::new(width, height);
        let barcode = l.barcode();
        // The probe strip (top right) and the barcode share the top band.
        let top = barcode.h.max(probe::rect(width).3);
        let rest = height.saturating_sub(top);
        let grey_h = rest / 2;
        let band = (rest - grey_h) / 3;
        let at = |i: u32| Rect {
            x: 0,
            y: top + grey_h + i * band,
            w: width,
            h: if i == 2 {
                rest - grey_h - 2 * band
            } else {
                band
            },
        };
        GradientLayout {
            width,
            height,
            barcode,
            grey: Rect {
                x: 0,
                y: top,
                w: width,
                h: grey_h,
            },
            colour: [at(0), at(1), at(2)],
        }
    }

    /// The ramp level (0..=1023) of column `x`.
    pub fn level(&self, x: u32) -> u32 {
        (x as u64 * 1024 / self.width.max(1) as u64).min(1023) as u32
    }
}

/// An `x2 r10 g10 b10` word.
fn word(r: u32, g: u32, b: u32) -> u32 {
    (r & 0x3FF) << 20 | (g & 0x3FF) << 10 | (b & 0x3FF)
}

fn fill(data: &mut [u8], stride: usize, r: Rect, w: u32) {
    for y in r.y..r.y + r.h {
        let row = &mut data[y as usize * stride + r.x as usize * 4..][..r.w as usize * 4];
        for p in row.chunks_exact_mut(4) {
            p.copy_from_slice(&w.to_le_bytes());
        }
    }
}

/// Light and dark cells (the 8-bit source's 235 and 16, widened).
const CELL_WHITE: u32 = 943;
const CELL_BLACK: u32 = 64;

/// Draws everything that does not move.
pub fn render_static(l: &GradientLayout, data: &mut [u8], stride: usize) {
    fill(
        data,
        stride,
        Rect {
            x: 0,
            y: 0,
            w: l.width,
            h: l.height,
        },
        0,
    );
    let mut ramp = |r: Rect, rgb: (bool, bool, bool)| {
        for y in r.y..r.y + r.h {
            let row = &mut data[y as usize * stride..][..l.width as usize * 4];
            for (x, p) in row.chunks_exact_mut(4).enumerate() {
                let v = l.level(x as u32);
                let c = |on: bool| if on { v } else { 0 };
                p.copy_from_slice(&word(c(rgb.0), c(rgb.1), c(rgb.2)).to_le_bytes());
            }
        }
    };
    ramp(l.grey, (true, true, true));
    ramp(l.colour[0], (true, false, false));
    ramp(l.colour[1], (false, true, false));
    ramp(l.colour[2], (false, false, true));
}

/// Draws frame `seq`'s barcode; returns its rectangle (the damage).
pub fn render_dynamic(
    l: &GradientLayout,
    seq: u64,
    fps: u32,
    data: &mut [u8],
    stride: usize,
) -> Rect {
    let cell = l.barcode.w / BARCODE_BITS;
    let t = media_time_us(seq, fps);
    let rows = [seq as u32, !(seq as u32), (t >> 32) as u32, t as u32];
    for (row, value) in rows.iter().enumerate().take(BARCODE_ROWS as usize) {
        for bit in 0..BARCODE_BITS {
            let on = value >> (BARCODE_BITS - 1 - bit) & 1 == 1;
            let v = if on { CELL_WHITE } else { CELL_BLACK };
            let r = Rect {
                x: bit * cell,
                y: row as u32 * cell,
                w: cell,
                h: cell,
            };
            fill(data, stride, r, word(v, v, v));
        }
    }
    l.barcode
}

/// The whole frame `seq` (tests).
pub fn render_frame(width: u32, height: u32, seq: u64, fps: u32) -> CapturedFrame {
    let mut f = CapturedFrame::new();
    f.reshape(width, height, PixelFormat::X2Rgb10);
    let l = GradientLayout::new(width, height);
    let stride = f.stride;
    render_static(&l, &mut f.data, stride);
    render_dynamic(&l, seq, fps, &mut f.data, stride);
    f.sequence = seq;
    f
}

/// The 10-bit gradient [`FrameSource`].
#[derive(Debug)]
pub struct GradientSource {
    layout: GradientLayout,
    fps: u32,
    start: Instant,
    seq: u64,
    full_next: bool,
    statics: Vec<u8>,
    redraw_now: bool,
    probe: Option<(u32, u64)>,
    shown_probe: Option<(u32, u64)>,
}

impl GradientSource {
    /// A `width × height` source (rounded down to even, at least 64 × 64) at `fps`.
    pub fn new(width: u32, height: u32, fps: u32) -> Self {
        let width = width.max(64) & !1;
        let height = height.max(64) & !1;
        let layout = GradientLayout::new(width, height);
        let mut statics = vec![0u8; width as usize * height as usize * 4];
        render_static(&layout, &mut statics, width as usize * 4);
        GradientSource {
            layout,
            fps: fps.max(1),
            start: Instant::now(),
            seq: 0,
            full_next: true,
            statics,
            redraw_now: false,
            probe: None,
            shown_probe: None,
        }
    }

    /// The layout (where the ramps are).
    pub fn layout(&self) -> GradientLayout {
        self.layout
    }
}

impl FrameSource for GradientSource {
    fn describe(&self) -> String {
        format!(
            "synthetic 10-bit gradient {}x{} @ {} fps",
            self.layout.width, self.layout.height, self.fps
        )
    }

    fn size(&self) -> (u32, u32) {
        (self.layout.width, self.layout.height)
    }

    fn format(&self) -> PixelFormat {
        PixelFormat::X2Rgb10
    }

    fn next_frame(
        &mut self,
        frame: &mut CapturedFrame,
        timeout: Duration,
    ) -> Result<CaptureOutcome, CaptureError> {
        let due = self.start + Duration::from_micros(media_time_us(self.seq, self.fps));
        let now = Instant::now();
        if std::mem::take(&mut self.redraw_now) {
            // A probe arrived: redraw now, like an application reacting to input.
        } else if due > now {
            if due - now > timeout {
                std::thread::sleep(timeout);
                return Ok(CaptureOutcome::Timeout);
            }
            std::thread::sleep(due - now);
        } else if now - due > Duration::from_micros(1_000_000 / self.fps as u64) {
            let elapsed = now.duration_since(self.start).as_micros() as u64;
            self.seq = elapsed * self.fps as u64 / 1_000_000;
        }
        let l = self.layout;
        let start = Instant::now();
        let reshaped = frame.width != l.width
            || frame.height != l.height
            || frame.format != PixelFormat::X2Rgb10;
        frame.reshape(l.width, l.height, PixelFormat::X2Rgb10);
        let stride = frame.stride;
        let full = self.full_next || reshaped;
        if full {
            frame.data.copy_from_slice(&self.statics);
            self.full_next = false;
        }
        let mut damage = vec![render_dynamic(
            &l,
            self.seq,
            self.fps,
            &mut frame.data,
            stride,
        )];
        if let Some((id, t)) = self.probe {
            for (x, y, side, white) in probe::cells(l.width, id, t) {
                let v = if white { CELL_WHITE } else { CELL_BLACK };
                let r = Rect {
                    x,
                    y,
                    w: side.min(l.width.saturating_sub(x)),
                    h: side.min(l.height.saturating_sub(y)),
                };
                fill(&mut frame.data, stride, r, word(v, v, v));
            }
            if self.shown_probe != self.probe {
                let (x, y, w, h) = probe::rect(l.width);
                damage.push(Rect { x, y, w, h });
            }
        }
        self.shown_probe = self.probe;
        frame.damage = if full { Vec::new() } else { damage };
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

    #[test]
    fn every_level_is_in_the_grey_ramp_at_1024_and_wider() {
        for w in [1024, 1920] {
            let f = render_frame(w, 128, 3, 60);
            let l = GradientLayout::new(w, 128);
            assert!(l.grey.h >= 16 && l.colour.iter().all(|r| r.h >= 8), "{l:?}");
            let row = l.grey.y as usize + 1;
            let mut levels: Vec<u32> = f.data[row * f.stride..][..w as usize * 4]
                .chunks_exact(4)
                .map(|p| {
                    let v = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
                    assert_eq!(v & 0x3FF, (v >> 10) & 0x3FF, "grey");
                    v & 0x3FF
                })
                .collect();
            levels.dedup();
            assert_eq!(levels, (0..1024).collect::<Vec<_>>(), "width {w}");
        }
    }

    #[test]
    fn frames_change_only_in_the_barcode() {
        let mut s = GradientSource::new(1024, 96, 1000);
        let mut f = CapturedFrame::new();
        assert_eq!(
            s.next_frame(&mut f, Duration::from_secs(1)).unwrap(),
            CaptureOutcome::Frame
        );
        assert!(f.damage.is_empty(), "the first frame is all new");
        assert_eq!(f.format, PixelFormat::X2Rgb10);
        let first = f.clone();
        s.next_frame(&mut f, Duration::from_secs(1)).unwrap();
        assert_eq!(f.damage, vec![GradientLayout::new(1024, 96).barcode]);
        let want = render_frame(1024, 96, f.sequence, 1000);
        assert_eq!(f.data, want.data, "a pure function of the sequence number");
        let barcode_end = GradientLayout::new(1024, 96).barcode.h as usize * f.stride;
        assert_eq!(f.data[barcode_end..], first.data[barcode_end..]);
    }
}
