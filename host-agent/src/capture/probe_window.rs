//! The bench-probe strip on a real X display, drawn by a separate X client.
//!
//! In bench mode the viewer times input → photon with [`InputEvent::Probe`]: the host must make
//! the picture show the probe as soon as it arrives, as the strip of
//! [`sightline_protocol::probe`] at the top right of the screen. An X11 capture cannot draw into
//! the frames it reads (and blocks in `next_frame` waiting for damage), so [`ProbeWindow`] does
//! what an application reacting to input does: on its own connection it paints the strip into
//! a small override-redirect window kept on top and flushes at once. The X server reports the
//! drawing through DAMAGE, which wakes the capture immediately, so the measured latency includes
//! the real "wait for capture" of a desktop, not a shortcut inside the pipeline.
//!
//! The window is created on the first [`ProbeWindow::show`], raised again on every show (a
//! desktop window may have covered it), follows screen size changes, and is destroyed on drop.
//! Drawing is two `PolyFillRectangle` requests (black cells, then white ones); a capture that
//! reads between them sees `old & new` in every row, which never passes the reader's `id`/`!id`
//! check unless the id did not change, so a torn read only delays detection by a frame.
//!
//! [`InputEvent::Probe`]: sightline_protocol::msg::InputEvent::Probe

use std::fmt;

use sightline_protocol::probe;
use x11rb::connection::Connection;
use x11rb::errors::{ConnectionError, ReplyError, ReplyOrIdError};
use x11rb::protocol::xproto::{
    AtomEnum, BackingStore, ChangeWindowAttributesAux, ConfigureWindowAux, ConnectionExt as _,
    CreateGCAux, CreateWindowAux, EventMask, Gcontext, PropMode, Rectangle, StackMode, VisualClass,
    Window, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

use super::{CaptureError, Rect};

/// Grey level of the strip's light cells (as the synthetic source's barcode).
pub const WHITE_LEVEL: u8 = 235;
/// Grey level of the strip's dark cells.
pub const BLACK_LEVEL: u8 = 16;

/// The pixel value of grey `level` (0–255) in a TrueColor visual with channel masks
/// `[red, green, blue]`: each channel scaled to its width with rounding. Depth 24 gives
/// `0x101010` / `0xebebeb` for the cell levels; depth 30 (`x2r10g10b10`) gives 64 / 943 per
/// channel, which an 8-bit reader (`v >> 2`) sees as 16 / 235 again.
pub fn grey_pixel(level: u8, masks: [u32; 3]) -> u32 {
    masks
        .iter()
        .filter(|&&m| m != 0)
        .map(|&m| {
            let shift = m.trailing_zeros();
            let max = u64::from(m >> shift);
            let v = (u64::from(level) * max + 127) / 255;
            ((v as u32) << shift) & m
        })
        .fold(0, |a, b| a | b)
}

/// The window and its graphics contexts, once created.
#[derive(Debug, Clone, Copy)]
struct Shown {
    window: Window,
    black: Gcontext,
    white: Gcontext,
    /// Where the window is (screen pixels).
    at: Rect,
}

/// Draws the bench-probe strip on an X display from its own connection (see the module docs).
pub struct ProbeWindow {
    /// Boxed: a connection is large, and a window is often held next to small alternatives.
    conn: Box<RustConnection>,
    display: String,
    root: Window,
    /// Screen size, kept up to date from the root's `ConfigureNotify`.
    width: u32,
    height: u32,
    /// Pixel values of the dark and light cells in the root visual.
    black_pixel: u32,
    white_pixel: u32,
    shown: Option<Shown>,
}

impl fmt::Debug for ProbeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeWindow")
            .field("display", &self.display)
            .field("size", &(self.width, self.height))
            .field("pixels", &(self.black_pixel, self.white_pixel))
            .field("shown", &self.shown)
            .finish_non_exhaustive()
    }
}

impl ProbeWindow {
    /// Connects to `display` (`None`: `$DISPLAY`). Nothing is drawn until the first
    /// [`show`](Self::show).
    ///
    /// Fails with [`CaptureError::Open`] naming the display when it cannot connect, and with
    /// [`CaptureError::Other`] when the root visual is not TrueColor.
    pub fn open(display: Option<&str>) -> Result<Self, CaptureError> {
        let (conn, screen_num, name) = super::x11::connect(display)?;
        let screen = conn.setup().roots.get(screen_num).ok_or_else(|| {
            CaptureError::Other(format!("display {name} has no screen {screen_num}"))
        })?;
        let root = screen.root;
        let (width, height) = (
            u32::from(screen.width_in_pixels),
            u32::from(screen.height_in_pixels),
        );
        let visual = screen
            .allowed_depths
            .iter()
            .flat_map(|d| &d.visuals)
            .find(|v| v.visual_id == screen.root_visual)
            .ok_or_else(|| CaptureError::Other(format!("display {name}: root visual not found")))?;
        if visual.class != VisualClass::TRUE_COLOR {
            return Err(CaptureError::Other(format!(
                "display {name}: the root visual is {:?}, not TrueColor; cannot draw the probe",
                visual.class
            )));
        }
        let masks = [visual.red_mask, visual.green_mask, visual.blue_mask];
        let (black_pixel, white_pixel) = (
            grey_pixel(BLACK_LEVEL, masks),
            grey_pixel(WHITE_LEVEL, masks),
        );
        // The root's ConfigureNotify tells us about screen size changes (RandR).
        let events = ChangeWindowAttributesAux::new().event_mask(EventMask::STRUCTURE_NOTIFY);
        conn.change_window_attributes(root, &events)
            .map_err(lost)?
            .check()
            .map_err(reply_err)?;
        tracing::debug!(display = %name, width, height, "probe window connection opened");
        Ok(ProbeWindow {
            conn: Box::new(conn),
            display: name,
            root,
            width,
            height,
            black_pixel,
            white_pixel,
            shown: None,
        })
    }

    /// Where the strip goes on the current screen (clipped to it).
    pub fn strip(&self) -> Rect {
        let (x, y, w, h) = probe::rect(self.width);
        Rect {
            x,
            y,
            w: w.min(self.width - x),
            h: h.min(self.height.saturating_sub(y)),
        }
    }

    /// Shows probe `id` that arrived at host wire-clock time `host_recv_us` (µs): creates the
    /// window on the first call, raises it above everything, paints the cells and flushes.
    ///
    /// Does not wait for the server except on the first call (the window's creation is
    /// checked), so it is cheap to call from the input path.
    pub fn show(&mut self, id: u32, host_recv_us: u64) -> Result<(), CaptureError> {
        self.drain_events()?;
        let at = self.strip();
        if at.area() == 0 {
            return Ok(());
        }
        let shown = match self.shown {
            Some(s) => {
                let mut aux = ConfigureWindowAux::new().stack_mode(StackMode::ABOVE);
                if s.at != at {
                    aux = aux.x(at.x as i32).y(at.y as i32).width(at.w).height(at.h);
                }
                self.conn.configure_window(s.window, &aux).map_err(lost)?;
                Shown { at, ..s }
            }
            None => self.create(at)?,
        };
        self.shown = Some(shown);
        let (mut black, mut white) = (Vec::new(), Vec::new());
        for (x, y, side, is_white) in probe::cells(self.width, id, host_recv_us) {
            // Window coordinates; X clips whatever lies outside the window.
            let r = Rectangle {
                x: (x as i64 - at.x as i64) as i16,
                y: (y as i64 - at.y as i64) as i16,
                width: side as u16,
                height: side as u16,
            };
            if is_white {
                white.push(r);
            } else {
                black.push(r);
            }
        }
        for (gc, rects) in [(shown.black, &black), (shown.white, &white)] {
            if !rects.is_empty() {
                self.conn
                    .poly_fill_rectangle(shown.window, gc, rects)
                    .map_err(lost)?;
            }
        }
        self.conn.flush().map_err(lost)?;
        Ok(())
    }

    /// Creates, names, maps and raises the window at `at`, with its two GCs.
    fn create(&mut self, at: Rect) -> Result<Shown, CaptureError> {
        let window = self.conn.generate_id().map_err(id_err)?;
        let aux = CreateWindowAux::new()
            .override_redirect(1)
            .background_pixel(self.black_pixel)
            .backing_store(BackingStore::WHEN_MAPPED);
        self.conn
            .create_window(
                x11rb::COPY_DEPTH_FROM_PARENT,
                window,
                self.root,
                at.x as i16,
                at.y as i16,
                at.w as u16,
                at.h as u16,
                0,
                WindowClass::INPUT_OUTPUT,
                x11rb::COPY_FROM_PARENT,
                &aux,
            )
            .map_err(lost)?
            .check()
            .map_err(reply_err)?;
        let mut gcs = [0; 2];
        for (gc, pixel) in gcs.iter_mut().zip([self.black_pixel, self.white_pixel]) {
            *gc = self.conn.generate_id().map_err(id_err)?;
            let aux = CreateGCAux::new().foreground(pixel).graphics_exposures(0);
            self.conn.create_gc(*gc, window, &aux).map_err(lost)?;
        }
        self.conn
            .change_property8(
                PropMode::REPLACE,
                window,
                AtomEnum::WM_NAME,
                AtomEnum::STRING,
                b"sightline latency probe",
            )
            .map_err(lost)?;
        self.conn.map_window(window).map_err(lost)?;
        let raise = ConfigureWindowAux::new().stack_mode(StackMode::ABOVE);
        self.conn.configure_window(window, &raise).map_err(lost)?;
        tracing::debug!(display = %self.display, ?at, window, "probe window created");
        Ok(Shown {
            window,
            black: gcs[0],
            white: gcs[1],
            at,
        })
    }

    /// Reads queued events without blocking: root size changes, and errors of earlier
    /// (unchecked) requests, which are logged.
    fn drain_events(&mut self) -> Result<(), CaptureError> {
        while let Some(event) = self.conn.poll_for_event().map_err(lost)? {
            match event {
                Event::ConfigureNotify(e) if e.window == self.root => {
                    self.width = u32::from(e.width);
                    self.height = u32::from(e.height);
                }
                Event::Error(e) => tracing::warn!(error = ?e, "probe window: X error"),
                _ => {}
            }
        }
        Ok(())
    }
}

impl Drop for ProbeWindow {
    fn drop(&mut self) {
        if let Some(s) = self.shown.take() {
            let _ = self.conn.free_gc(s.black);
            let _ = self.conn.free_gc(s.white);
            let _ = self.conn.destroy_window(s.window);
            let _ = self.conn.flush();
        }
    }
}

fn lost(e: ConnectionError) -> CaptureError {
    CaptureError::Lost(e.to_string())
}

fn reply_err(e: ReplyError) -> CaptureError {
    match e {
        ReplyError::ConnectionError(e) => lost(e),
        ReplyError::X11Error(e) => CaptureError::Other(format!("X error {e:?}")),
    }
}

fn id_err(e: ReplyOrIdError) -> CaptureError {
    match e {
        ReplyOrIdError::ConnectionError(e) => lost(e),
        other => CaptureError::Other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_pixels_for_depth_24_and_30() {
        let d24 = [0xff_0000, 0xff00, 0xff];
        assert_eq!(grey_pixel(BLACK_LEVEL, d24), 0x10_1010);
        assert_eq!(grey_pixel(WHITE_LEVEL, d24), 0xeb_ebeb);
        let d30 = [0x3ff0_0000, 0xf_fc00, 0x3ff];
        let (b, w) = (grey_pixel(BLACK_LEVEL, d30), grey_pixel(WHITE_LEVEL, d30));
        assert_eq!(b, 64 << 20 | 64 << 10 | 64);
        assert_eq!(w, 943 << 20 | 943 << 10 | 943);
        // An 8-bit reader of the 10-bit channels sees the 8-bit levels again.
        for shift in [0, 10, 20] {
            assert_eq!((b >> shift & 0x3ff) >> 2, u32::from(BLACK_LEVEL));
            assert_eq!((w >> shift & 0x3ff) >> 2, u32::from(WHITE_LEVEL));
        }
        // 16-bit 565.
        assert_eq!(grey_pixel(255, [0xf800, 0x07e0, 0x1f]), 0xffff);
        assert_eq!(grey_pixel(0, [0xf800, 0x07e0, 0x1f]), 0);
    }
}
