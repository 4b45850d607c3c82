//! The CPU present path: the decoded picture is converted straight into a softbuffer framebuffer
//! ([`crate::framebuffer`]), which softbuffer shows with X11 SHM (`XShmPutImage`, else
//! `XPutImage`) or a Wayland shm buffer — only the rectangles that changed.
//!
//! Used when wgpu's only adapter is a software one (mesa's lavapipe) or there is none at all, or
//! when `--renderer cpu` asks for it: on lavapipe `Pixels::render` of a 1080p frame takes
//! 20–50 ms; here a full 1080p frame costs about 2–3 ms and a small change well under 1 ms.
//!
//! # What is repainted
//!
//! The framebuffer keeps its contents between presents (softbuffer's `Buffer::age` says how old
//! they are), and the presenter keeps the picture it shows. Each present repaints:
//!
//! * the **whole window** (bars included) when the buffer's contents are unknown (age 0, or
//!   older than the history kept), after a window resize, or when the new frame cannot be
//!   compared with the shown one (size, format, matrix or range changed);
//! * otherwise only what **differs** between the new frame and the shown picture
//!   ([`crate::diff`]: exact for any codec, and frames dropped by the latest-wins slot or lost
//!   on the network need no special case), plus every rectangle repainted in the presents this
//!   buffer has not seen (its age), plus where the overlays were drawn last time (painting the
//!   picture there removes them). The host's damage list only lets the comparison skip areas
//!   known to have changed.
//!
//! Then the overlays are blended on top and only the union of what changed is pushed with
//! `present_with_damage`. On X11 `present` returns once the server has copied the pixels (it
//! waits for the `XShmPutImage` to complete), so the time it reports is the real cost.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::diff::changed_rects;

use sightline_protocol::damage::{merge, DamageRect};
use softbuffer::{Context, Surface};
use winit::window::Window;

use crate::convert::fb::Coeffs;
use crate::frame::DecodedFrame;
use crate::framebuffer::{clear_bars, draw_sprite, fill, paint, FillMap, Target};
use crate::overlay::Sprite;

/// Presents kept in the history (buffer ages up to this are repainted incrementally).
const HISTORY: usize = 4;

/// Most rectangles repainted or pushed per present; more are merged.
const MAX_RECTS: usize = 16;

/// What one present did, for the present record and the stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuPresentStats {
    /// µs converting and drawing into the framebuffer.
    pub convert_us: u32,
    /// µs pushing it to the display server and waiting for it.
    pub present_us: u32,
    /// The whole window was repainted.
    pub full: bool,
    /// Rectangles repainted (0 with `full`).
    pub rects: u16,
    /// Picture pixels converted.
    pub converted_px: u32,
}

/// One present's changes, in window pixels.
#[derive(Debug, Clone, Default)]
struct Changes {
    /// Rectangles repainted from the picture (`None`: everything).
    picture: Option<Vec<DamageRect>>,
    /// Rectangles the overlays covered.
    overlays: Vec<DamageRect>,
}

/// A softbuffer surface on the window, the picture it shows and what recent presents changed.
pub struct CpuPresenter {
    // Field order: the surface goes before the context it was made from.
    surface: Surface<Arc<Window>, Arc<Window>>,
    _context: Context<Arc<Window>>,
    window: (u32, u32),
    /// The newest picture: the source every repaint reads.
    picture: Option<DecodedFrame>,
    coeffs: Option<Coeffs>,
    map: Option<FillMap>,
    history: VecDeque<Changes>,
    scratch: Vec<u32>,
    /// X11: wait for the server to finish each put (see [`CpuPresenter::present`]).
    wait_for_server: bool,
}

impl std::fmt::Debug for CpuPresenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuPresenter")
            .field("window", &self.window)
            .field(
                "picture",
                &self.picture.as_ref().map(|p| (p.width, p.height)),
            )
            .finish_non_exhaustive()
    }
}

impl CpuPresenter {
    /// Opens a framebuffer on `window` (black until the first frame).
    pub fn new(window: Arc<Window>) -> Result<CpuPresenter, String> {
        let context = Context::new(window.clone()).map_err(|e| e.to_string())?;
        let surface = Surface::new(&context, window.clone()).map_err(|e| e.to_string())?;
        let size = window.inner_size();
        let mut p = CpuPresenter {
            surface,
            _context: context,
            window: (0, 0),
            picture: None,
            coeffs: None,
            map: None,
            history: VecDeque::new(),
            scratch: Vec::new(),
            wait_for_server: is_x11(&window),
        };
        p.resize_surface(size.width, size.height)?;
        Ok(p)
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

    /// The picture size shown (the stream's), if a frame came.
    pub fn picture_size(&self) -> Option<(u32, u32)> {
        self.picture.as_ref().map(|p| (p.width, p.height))
    }

    /// Shows `frame` (or, with `None`, the last picture again) with `overlays` on top.
    pub fn present(
        &mut self,
        frame: Option<DecodedFrame>,
        overlays: &[Sprite],
    ) -> Result<CpuPresentStats, String> {
        if self.window.0 == 0 || self.window.1 == 0 {
            return Ok(CpuPresentStats::default());
        }
        let started = Instant::now();
        let mut full = self.map.is_none();
        let mut picture_rects: Vec<DamageRect> = Vec::new();
        if let Some(f) = frame {
            let changed = self
                .picture
                .as_ref()
                .and_then(|p| changed_rects(p, &f, f.damage.as_deref(), MAX_RECTS));
            match changed {
                // Most of the picture changed: one full pass is cheaper than many rectangles.
                Some(rects) if area(&rects) * 4 <= 3 * u64::from(f.width) * u64::from(f.height) => {
                    picture_rects = rects
                }
                _ => full = true,
            }
            if self.picture_size() != Some((f.width, f.height)) {
                self.map = None;
            }
            self.coeffs = Some(Coeffs::of(&f));
            self.picture = Some(f);
        }
        let picture_size = self.picture_size().unwrap_or((1, 1));
        let map = match self.map.take() {
            Some(m) => m,
            None => {
                full = true;
                FillMap::new(self.window, picture_size)
            }
        };
        full |= !map.trackable();
        let window_picture: Vec<DamageRect> = picture_rects
            .iter()
            .filter_map(|r| map.to_window(r))
            .collect();

        let mut buffer = self.surface.buffer_mut().map_err(|e| e.to_string())?;
        let age = usize::from(buffer.age());
        if age == 0 || age > self.history.len() {
            full = true;
        }
        let window_rect =
            DamageRect::new(0, 0, self.window.0, self.window.1).expect("non-empty window");
        // What to repaint from the picture.
        let mut repaint: Vec<DamageRect> = Vec::new();
        if !full {
            repaint.extend(&window_picture);
            // The buffer last showed present n−age: its overlays, and every picture change since.
            let h = self.history.len();
            for (i, c) in self.history.iter().enumerate() {
                if i + age == h {
                    repaint.extend(&c.overlays);
                }
                if i + age > h {
                    match &c.picture {
                        Some(p) => repaint.extend(p),
                        None => full = true,
                    }
                    repaint.extend(&c.overlays);
                }
            }
        }
        let mut stats = CpuPresentStats {
            full,
            ..CpuPresentStats::default()
        };
        let (w, hgt) = (self.window.0 as usize, self.window.1 as usize);
        let mut t = Target {
            words: &mut buffer[..],
            width: w,
            height: hgt,
        };
        let mut converted = 0u64;
        let repaint = if full {
            vec![window_rect]
        } else {
            merge(&repaint, MAX_RECTS)
        };
        match (&self.picture, &self.coeffs) {
            (Some(p), Some(k)) => {
                if full {
                    clear_bars(&map, &mut t);
                }
                for r in &repaint {
                    converted += paint(p, k, &map, r, &mut t, &mut self.scratch);
                }
            }
            _ => fill(&mut t, &window_rect, 0),
        }
        let mut overlay_rects = Vec::new();
        for s in overlays {
            if let Some(r) = draw_sprite(&map, s, &mut t) {
                overlay_rects.push(r);
            }
        }
        stats.converted_px = u32::try_from(converted).unwrap_or(u32::MAX);
        stats.rects = if full { 0 } else { repaint.len() as u16 };
        stats.convert_us = micros(started.elapsed());
        let pushed = Instant::now();
        if full {
            buffer.present().map_err(|e| e.to_string())?;
        } else {
            let mut push = repaint.clone();
            push.extend(&overlay_rects);
            let push: Vec<softbuffer::Rect> = merge(&push, MAX_RECTS)
                .iter()
                .filter_map(to_softbuffer)
                .collect();
            if !push.is_empty() {
                buffer
                    .present_with_damage(&push)
                    .map_err(|e| e.to_string())?;
            }
        }
        // X11: wait until the server has copied the pixels (softbuffer's next `buffer_mut`
        // waits for the SHM put to complete), so the present time is the real one and the next
        // frame never waits behind this one. (On Wayland the compositor reads the buffer when it
        // composes; there is nothing to wait for here.)
        if self.wait_for_server {
            let _done = self.surface.buffer_mut().map_err(|e| e.to_string())?;
        }
        stats.present_us = micros(pushed.elapsed());
        self.history.push_back(Changes {
            picture: (!full).then_some(repaint),
            overlays: overlay_rects,
        });
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
        self.map = Some(map);
        Ok(stats)
    }
}

fn is_x11(window: &Window) -> bool {
    use winit::raw_window_handle::{HasWindowHandle, RawWindowHandle};
    matches!(
        window.window_handle().map(|h| h.as_raw()),
        Ok(RawWindowHandle::Xlib(_) | RawWindowHandle::Xcb(_))
    )
}

fn to_softbuffer(r: &DamageRect) -> Option<softbuffer::Rect> {
    Some(softbuffer::Rect {
        x: u32::from(r.x),
        y: u32::from(r.y),
        width: NonZeroU32::new(u32::from(r.width))?,
        height: NonZeroU32::new(u32::from(r.height))?,
    })
}

fn area(rects: &[DamageRect]) -> u64 {
    rects.iter().map(DamageRect::area).sum()
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}
