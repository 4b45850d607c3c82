//! The CPU present path: the picture is scaled on the CPU into a softbuffer framebuffer, which
//! softbuffer shows with X11 SHM (`XShmPutImage`, else `XPutImage`) or a Wayland shm buffer.
//!
//! Used when wgpu's only adapter is a software one (mesa's lavapipe) or there is none at all, or
//! when `--renderer cpu` asks for it: on lavapipe `Pixels::render` of a 1080p frame takes
//! 20–50 ms, while scaling and pushing a framebuffer takes a few.
//!
//! # Model
//!
//! * The composed picture stays an RGBA buffer at the stream's resolution ([`CpuPresenter::rgba`]),
//!   exactly like pixels' frame on the GPU path, so the YUV conversion, the cursor, the stats
//!   panel and the save-under logic are shared unchanged.
//! * [`CpuPresenter::present`] scales that buffer into the window's framebuffer with "fill"
//!   scaling — the largest aspect-correct size that fits, centred, black bars — converting RGBA
//!   to softbuffer's `0x00RRGGBB` words on the way.
//! * Scaling is **nearest neighbour** through lookup tables built once per geometry
//!   ([`FillMap`]): window column `x` shows source column `floor((x + ½ − ox) / s)`, with `s` and
//!   `ox` exactly those of [`fill_to_stream`] (the input mapping), so a click lands on the pixel
//!   shown under the pointer. When a window axis is the stream's size (fullscreen at the stream
//!   resolution, the common case) the row is a straight 1:1 conversion with no table lookup.
//!   Bilinear filtering (what pixels does on the GPU) is a later improvement; nearest neighbour
//!   blurs nothing and is exact at 1:1.
//! * The black bars are cleared only when the geometry (window or stream size) changes, or when
//!   softbuffer hands out a buffer whose contents predate that change (`Buffer::age`).
//!
//! [`fill_to_stream`]: crate::input::devices::fill_to_stream

use std::num::NonZeroU32;
use std::sync::Arc;

use softbuffer::{Context, Surface};
use winit::window::Window;

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
    /// For each window column from `x0`: the source column's byte offset in an RGBA row.
    pub xs: Vec<usize>,
    /// For each window row from `y0`: the source row.
    pub ys: Vec<usize>,
    /// `xs` is `0, 4, 8, …` over the whole source row (1:1 horizontally).
    pub identity_x: bool,
}

impl FillMap {
    /// The tables for showing a `picture`-sized image in a `window`-sized framebuffer.
    pub fn new(window: (u32, u32), picture: (u32, u32)) -> FillMap {
        // Same scale and offsets as `fill_to_stream`.
        let (ww, wh) = (f64::from(window.0.max(1)), f64::from(window.1.max(1)));
        let (pw, ph) = (f64::from(picture.0.max(1)), f64::from(picture.1.max(1)));
        let s = (ww / pw).min(wh / ph);
        let (ox, oy) = ((ww - pw * s) / 2.0, (wh - ph * s) / 2.0);
        let (x0, xs) = axis(window.0, picture.0, s, ox);
        let (y0, ys) = axis(window.1, picture.1, s, oy);
        let identity_x =
            xs.len() == picture.0 as usize && xs.iter().enumerate().all(|(i, &x)| x == i);
        FillMap {
            window,
            picture,
            x0,
            y0,
            xs: xs.into_iter().map(|x| x * 4).collect(),
            ys,
            identity_x,
        }
    }

    /// Scales the RGBA picture `rgba` (`picture.0 × 4` bytes a row, no padding) into `dst`
    /// (`window.0` words a row), writing only the picture's rectangle (never the bars).
    ///
    /// # Panics
    ///
    /// If `rgba` or `dst` is smaller than the geometry requires.
    pub fn scale(&self, rgba: &[u8], dst: &mut [u32]) {
        let src_row_len = self.picture.0 as usize * 4;
        let ww = self.window.0 as usize;
        for (i, &sy) in self.ys.iter().enumerate() {
            let start = (self.y0 + i) * ww + self.x0;
            let out = &mut dst[start..start + self.xs.len()];
            let src = &rgba[sy * src_row_len..(sy + 1) * src_row_len];
            if self.identity_x {
                for (d, s) in out.iter_mut().zip(src.chunks_exact(4)) {
                    *d = rgba_to_0rgb([s[0], s[1], s[2], s[3]]);
                }
            } else {
                for (d, &sx) in out.iter_mut().zip(&self.xs) {
                    *d = rgba_to_0rgb([src[sx], src[sx + 1], src[sx + 2], src[sx + 3]]);
                }
            }
        }
    }
}

/// Window pixels `0..win` whose centres fall on the picture: the first one and, for each, the
/// source index `floor((x + ½ − off) / s)`. The indices grow with `x`, so the pixels form one run.
fn axis(win: u32, pic: u32, s: f64, off: f64) -> (usize, Vec<usize>) {
    let mut first = None;
    let mut v = Vec::new();
    for x in 0..win {
        let sx = ((f64::from(x) + 0.5 - off) / s).floor();
        if sx >= 0.0 && sx < f64::from(pic) {
            first.get_or_insert(x as usize);
            v.push(sx as usize);
        }
    }
    (first.unwrap_or(0), v)
}

/// R, G, B, A bytes → softbuffer's `0x00RRGGBB`.
#[inline(always)]
fn rgba_to_0rgb(px: [u8; 4]) -> u32 {
    let v = u32::from_le_bytes(px); // 0xAABBGGRR
    ((v & 0xFF) << 16) | (v & 0xFF00) | ((v >> 16) & 0xFF)
}

/// A softbuffer surface on the window plus the stream-resolution RGBA picture it shows.
pub struct CpuPresenter {
    // Field order: the surface goes before the context it was made from.
    surface: Surface<Arc<Window>, Arc<Window>>,
    _context: Context<Arc<Window>>,
    rgba: Vec<u8>,
    picture: (u32, u32),
    window: (u32, u32),
    map: Option<FillMap>,
    /// Presents since the geometry last changed (for deciding whether a buffer's bars are stale).
    presents_since_change: u32,
}

impl std::fmt::Debug for CpuPresenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuPresenter")
            .field("picture", &self.picture)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl CpuPresenter {
    /// Opens a framebuffer on `window` showing a black `picture`-sized image.
    pub fn new(window: Arc<Window>, picture: (u32, u32)) -> Result<CpuPresenter, String> {
        let context = Context::new(window.clone()).map_err(|e| e.to_string())?;
        let surface = Surface::new(&context, window.clone()).map_err(|e| e.to_string())?;
        let size = window.inner_size();
        let mut p = CpuPresenter {
            surface,
            _context: context,
            rgba: Vec::new(),
            picture: (0, 0),
            window: (0, 0),
            map: None,
            presents_since_change: 0,
        };
        p.resize_buffer(picture.0, picture.1);
        p.resize_surface(size.width, size.height)?;
        Ok(p)
    }

    /// The RGBA picture, `width × height × 4` bytes (not cleared on resize).
    pub fn rgba(&mut self) -> &mut [u8] {
        &mut self.rgba
    }

    /// Resizes the picture (the stream size changed).
    pub fn resize_buffer(&mut self, width: u32, height: u32) {
        self.rgba.resize(width as usize * height as usize * 4, 0);
        self.picture = (width, height);
        self.map = None;
    }

    /// Resizes the framebuffer to the window's new inner size (ignored when empty).
    pub fn resize_surface(&mut self, width: u32, height: u32) -> Result<(), String> {
        let (Some(w), Some(h)) = (NonZeroU32::new(width), NonZeroU32::new(height)) else {
            return Ok(());
        };
        self.surface.resize(w, h).map_err(|e| e.to_string())?;
        self.window = (width, height);
        self.map = None;
        Ok(())
    }

    /// Scales the picture into the framebuffer and shows it. Returns the µs spent scaling (the
    /// rest of the call is softbuffer's present).
    pub fn present(&mut self) -> Result<u32, String> {
        if self.window.0 == 0 || self.window.1 == 0 {
            return Ok(0);
        }
        if self.map.is_none() {
            self.map = Some(FillMap::new(self.window, self.picture));
            self.presents_since_change = 0;
        }
        let map = self.map.as_ref().expect("built above");
        let mut buf = self.surface.buffer_mut().map_err(|e| e.to_string())?;
        let started = std::time::Instant::now();
        // age 0: undefined contents; age n: last shown n presents ago, so before the geometry
        // change when n exceeds the presents since.
        let age = u32::from(buf.age());
        if age == 0 || age > self.presents_since_change {
            buf.fill(0);
        }
        map.scale(&self.rgba, &mut buf);
        let scale_us = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        buf.present().map_err(|e| e.to_string())?;
        self.presents_since_change = self.presents_since_change.saturating_add(1);
        Ok(scale_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::devices::fill_to_stream;

    /// An RGBA picture whose pixel (x, y) is (x, y, 7, 255).
    fn picture(w: u32, h: u32) -> Vec<u8> {
        let mut v = Vec::new();
        for y in 0..h {
            for x in 0..w {
                v.extend_from_slice(&[x as u8, y as u8, 7, 255]);
            }
        }
        v
    }

    fn scaled(window: (u32, u32), pic: (u32, u32)) -> Vec<u32> {
        let mut dst = vec![0xDEAD_BEEF; window.0 as usize * window.1 as usize];
        FillMap::new(window, pic).scale(&picture(pic.0, pic.1), &mut dst);
        dst
    }

    #[test]
    fn pixel_layout_is_0rgb() {
        assert_eq!(rgba_to_0rgb([0x12, 0x34, 0x56, 0xFF]), 0x0012_3456);
    }

    #[test]
    fn one_to_one_copies() {
        let map = FillMap::new((5, 3), (5, 3));
        assert!(map.identity_x);
        assert_eq!((map.x0, map.y0), (0, 0));
        let dst = scaled((5, 3), (5, 3));
        for y in 0..3u32 {
            for x in 0..5u32 {
                assert_eq!(dst[(y * 5 + x) as usize], (x << 16) | (y << 8) | 7);
            }
        }
    }

    #[test]
    fn wider_window_has_side_bars_and_1to1_rows() {
        let map = FillMap::new((9, 3), (5, 3));
        assert!(map.identity_x);
        assert_eq!((map.x0, map.y0, map.xs.len(), map.ys.len()), (2, 0, 5, 3));
        let dst = scaled((9, 3), (5, 3));
        // Bars untouched by `scale` (cleared separately).
        assert_eq!(dst[0], 0xDEAD_BEEF);
        assert_eq!(dst[8], 0xDEAD_BEEF);
        assert_eq!(dst[2], 7);
    }

    #[test]
    fn doubling_repeats_pixels() {
        let dst = scaled((8, 4), (4, 2));
        let row: Vec<u32> = dst[..8].iter().map(|p| p >> 16).collect();
        assert_eq!(row, [0, 0, 1, 1, 2, 2, 3, 3]);
        assert_eq!(dst[3 * 8] >> 8 & 0xFF, 1);
    }

    #[test]
    fn shown_pixel_matches_input_mapping() {
        for (window, pic) in [
            ((1000, 700), (640, 360)),
            ((1920, 1080), (1280, 720)),
            ((800, 900), (1920, 1080)),
            ((333, 333), (17, 5)),
        ] {
            let map = FillMap::new(window, pic);
            let dst = scaled(window, pic);
            for (i, &sx) in map.xs.iter().enumerate() {
                let x = map.x0 + i;
                for (j, &sy) in map.ys.iter().enumerate().step_by(7) {
                    let y = map.y0 + j;
                    let (mx, my) = fill_to_stream(window, pic, (x as f64 + 0.5, y as f64 + 0.5));
                    assert_eq!(
                        (mx as usize, my as usize),
                        (sx / 4, sy),
                        "{window:?} {pic:?}"
                    );
                    let px = dst[y * window.0 as usize + x];
                    assert_eq!(px >> 16, (sx / 4) as u32 & 0xFF);
                }
            }
            // The picture is centred: bars differ by at most one pixel.
            let right = window.0 as usize - map.x0 - map.xs.len();
            let bottom = window.1 as usize - map.y0 - map.ys.len();
            assert!(right.abs_diff(map.x0) <= 1 && bottom.abs_diff(map.y0) <= 1);
        }
    }
}
