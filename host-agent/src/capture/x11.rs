//! The X11 [`FrameSource`]: MIT-SHM reads of the root window, driven by DAMAGE, with the cursor
//! from XFixes and size changes from RandR.
//!
//! # How a call to [`X11Source::next_frame`] works
//! 1. Queued events are drained: a DAMAGE notify (something was drawn), an XFixes cursor notify
//!    (the cursor image changed), a RandR screen change or a root `ConfigureNotify` (the size may
//!    have changed).
//! 2. A size change answers [`CaptureOutcome::Reinit`]; the call after it returns a full frame at
//!    the new size.
//! 3. A full frame is due on the first call, after [`FrameSource::invalidate`] and after a
//!    reinit: the whole root is read and `frame.damage` is empty (everything).
//! 4. Otherwise the source sleeps in `poll(2)` on the connection's socket until a DAMAGE notify
//!    arrives or the timeout passes ([`CaptureOutcome::Timeout`]: nothing is read while the
//!    screen is still).
//! 5. On damage, `DamageSubtract` moves the accumulated damage into an XFixes region and clears
//!    it, `FetchRegion` lists the rectangles, and each rectangle (their bounding box when there
//!    are more than [`MAX_RECTS`]) is read into `frame` at its place. The subtract happens before
//!    the read, so whatever is drawn while we read is reported by the next call.
//!
//! The damage object uses report level *NonEmpty*: the server sends one event when the damage
//! becomes non-empty and none until we subtract, so a busy screen cannot flood the connection.
//!
//! # Reading pixels
//! `ShmGetImage` writes into a shared segment: a memfd passed with `ShmAttachFd` (needs only the
//! unix socket, not a shared SysV IPC namespace), else a SysV segment (`ShmAttach`, e.g. a local
//! X server reached over TCP), else plain `GetImage` with a warning (a remote display; about 15×
//! slower). Several rectangles are requested back to back into different offsets of the segment
//! and their replies collected afterwards, so a frame costs one round trip, not one per rectangle.
//!
//! Pixels are copied as the server stores them: `Bgrx8` for depth 24/32 roots (the X byte is
//! whatever the server holds, usually 0) and `X2Rgb10` for depth 30.
//!
//! The caller must pass the same [`CapturedFrame`] on every call: only damaged areas are
//! rewritten. A buffer of another size or format is detected and gets a full frame; for two
//! alternating buffers of the same size call [`FrameSource::invalidate`].

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use x11rb::connection::{Connection, RequestConnection};
use x11rb::cookie::Cookie;
use x11rb::errors::{ConnectionError, ReplyError, ReplyOrIdError};
use x11rb::protocol::damage::{self, ConnectionExt as _};
use x11rb::protocol::randr::{self, ConnectionExt as _};
use x11rb::protocol::shm::{self, ConnectionExt as _};
use x11rb::protocol::xfixes::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{
    ChangeWindowAttributesAux, ConnectionExt as _, EventMask, ImageFormat, ImageOrder, Screen,
    Setup, Window,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::x11_utils::TryParse;

use super::{
    CaptureError, CaptureOutcome, CapturedFrame, CursorImage, CursorState, FrameSource,
    PixelFormat, Rect,
};

/// More damage rectangles than this are read as their bounding box (one request instead of
/// many small ones).
pub const MAX_RECTS: usize = 32;

/// Captures the root window of an X display.
pub struct X11Source {
    conn: RustConnection,
    display: String,
    root: Window,
    depth: u8,
    format: PixelFormat,
    width: u32,
    height: u32,
    /// `None`: plain `GetImage`.
    shm: Option<ShmBuffer>,
    damage: damage::Damage,
    /// Receives the damage on each subtract.
    region: xfixes::Region,
    /// A DAMAGE notify arrived since the last subtract; when it was first seen.
    damage_seen: Option<Instant>,
    /// A RandR or `ConfigureNotify` event arrived: re-read the root geometry.
    size_dirty: bool,
    full_next: bool,
    sequence: u64,
    /// Current XFixes cursor serial (from notify events).
    cursor_serial: u32,
    /// Serial of the last image handed out by `cursor_image`.
    sent_cursor_serial: Option<u32>,
}

impl fmt::Debug for X11Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X11Source")
            .field("display", &self.display)
            .field("size", &(self.width, self.height))
            .field("depth", &self.depth)
            .field("shm", &self.shm.as_ref().map(|s| s.kind))
            .field("sequence", &self.sequence)
            .finish_non_exhaustive()
    }
}

/// Connects to `display` (`None`: `$DISPLAY`): the connection, the default screen's index and
/// the display's name for messages; [`CaptureError::Open`] naming the display on failure.
pub(crate) fn connect(
    display: Option<&str>,
) -> Result<(RustConnection, usize, String), CaptureError> {
    let name = match display {
        Some(d) => d.to_owned(),
        None => std::env::var("DISPLAY").unwrap_or_else(|_| "$DISPLAY (unset)".to_owned()),
    };
    let (conn, screen_num) = RustConnection::connect(display).map_err(|e| CaptureError::Open {
        display: name.clone(),
        detail: e.to_string(),
    })?;
    Ok((conn, screen_num, name))
}

impl X11Source {
    /// Connects to `display` (`None`: `$DISPLAY`) and prepares capture of its default screen.
    ///
    /// Fails with [`CaptureError::Open`] naming the display when it cannot connect, and with
    /// [`CaptureError::MissingExtension`] when DAMAGE or XFixes is missing. A missing or unusable
    /// MIT-SHM only logs a warning (plain `GetImage` is used).
    pub fn open(display: Option<&str>) -> Result<Self, CaptureError> {
        let (conn, screen_num, name) = connect(display)?;
        let setup = conn.setup();
        let screen = setup.roots.get(screen_num).ok_or_else(|| {
            CaptureError::Other(format!("display {name} has no screen {screen_num}"))
        })?;
        let root = screen.root;
        let depth = screen.root_depth;
        let format = pixel_format(setup, screen)?;
        let (width, height) = (
            u32::from(screen.width_in_pixels),
            u32::from(screen.height_in_pixels),
        );

        for (ext, label) in [
            (xfixes::X11_EXTENSION_NAME, "XFIXES"),
            (damage::X11_EXTENSION_NAME, "DAMAGE"),
        ] {
            if conn.extension_information(ext).map_err(lost)?.is_none() {
                return Err(CaptureError::MissingExtension(label));
            }
        }
        // Each extension wants its version negotiated before use; XFixes before DAMAGE.
        reply(conn.xfixes_query_version(5, 0))?;
        reply(conn.damage_query_version(1, 1))?;

        let damage = conn.generate_id().map_err(id_err)?;
        conn.damage_create(damage, root, damage::ReportLevel::NON_EMPTY)
            .map_err(lost)?;
        let region = conn.generate_id().map_err(id_err)?;
        conn.xfixes_create_region(region, &[]).map_err(lost)?;
        conn.xfixes_select_cursor_input(root, xfixes::CursorNotifyMask::DISPLAY_CURSOR)
            .map_err(lost)?;
        let events = ChangeWindowAttributesAux::new().event_mask(EventMask::STRUCTURE_NOTIFY);
        conn.change_window_attributes(root, &events)
            .map_err(lost)?
            .check()
            .map_err(reply_err)?;
        if conn
            .extension_information(randr::X11_EXTENSION_NAME)
            .map_err(lost)?
            .is_some()
        {
            reply(conn.randr_query_version(1, 5))?;
            conn.randr_select_input(root, randr::NotifyMask::SCREEN_CHANGE)
                .map_err(lost)?;
        }
        let cursor_serial = reply(conn.xfixes_get_cursor_image()).map_or(0, |r| r.cursor_serial);

        let shm = ShmBuffer::create(&conn, &name, width as usize * height as usize * 4)?;
        let source = X11Source {
            conn,
            display: name,
            root,
            depth,
            format,
            width,
            height,
            shm,
            damage,
            region,
            damage_seen: None,
            size_dirty: false,
            full_next: true,
            sequence: 0,
            cursor_serial,
            sent_cursor_serial: None,
        };
        tracing::debug!(source = %source.describe(), "x11 capture opened");
        Ok(source)
    }

    /// Whether pixels are read through MIT-SHM (false: plain `GetImage`).
    pub fn uses_shm(&self) -> bool {
        self.shm.is_some()
    }

    /// Reads queued events into the source's state without blocking.
    fn drain_events(&mut self) -> Result<(), CaptureError> {
        while let Some(event) = self.conn.poll_for_event().map_err(lost)? {
            match event {
                Event::DamageNotify(_) => {
                    self.damage_seen.get_or_insert_with(Instant::now);
                }
                Event::XfixesCursorNotify(e) => self.cursor_serial = e.cursor_serial,
                Event::RandrScreenChangeNotify(_) => self.size_dirty = true,
                Event::ConfigureNotify(e) if e.window == self.root => self.size_dirty = true,
                Event::Error(e) => tracing::warn!(error = ?e, "x11 capture: X error"),
                _ => {}
            }
        }
        Ok(())
    }

    /// When a size event arrived, re-reads the root geometry; on a change returns the reinit
    /// description and prepares for the new size.
    fn check_size(&mut self) -> Result<Option<String>, CaptureError> {
        if !std::mem::take(&mut self.size_dirty) {
            return Ok(None);
        }
        let g = reply(self.conn.get_geometry(self.root))?;
        let (w, h) = (u32::from(g.width), u32::from(g.height));
        if (w, h) == (self.width, self.height) {
            return Ok(None);
        }
        let what = format!("{}x{} → {}x{}", self.width, self.height, w, h);
        tracing::info!(display = %self.display, change = %what, "x11 screen size changed");
        self.width = w;
        self.height = h;
        self.full_next = true;
        let need = w as usize * h as usize * 4;
        if self.shm.as_ref().is_some_and(|s| s.len < need) {
            if let Some(old) = self.shm.take() {
                old.release(&self.conn);
            }
            self.shm = ShmBuffer::create(&self.conn, &self.display, need)?;
        }
        Ok(Some(what))
    }

    /// Moves the accumulated damage into our region and lists it, clipped to the screen.
    fn take_damage(&mut self) -> Result<Vec<Rect>, CaptureError> {
        self.conn
            .damage_subtract(self.damage, x11rb::NONE, self.region)
            .map_err(lost)?;
        let region = reply(self.conn.xfixes_fetch_region(self.region))?;
        Ok(region
            .rectangles
            .iter()
            .filter_map(|r| clip(r, self.width, self.height))
            .collect())
    }

    /// Reads `rects` of the root into `frame` (already shaped for the screen).
    fn read_rects(&self, frame: &mut CapturedFrame, rects: &[Rect]) -> Result<(), CaptureError> {
        let stride = frame.stride;
        let Some(shm) = &self.shm else {
            let cookies = rects
                .iter()
                .map(|r| {
                    let (x, y, w, h) = request_rect(r);
                    self.conn
                        .get_image(ImageFormat::Z_PIXMAP, self.root, x, y, w, h, !0)
                        .map_err(lost)
                })
                .collect::<Result<Vec<_>, _>>()?;
            for (r, cookie) in rects.iter().zip(cookies) {
                let reply = cookie.reply().map_err(reply_err)?;
                check_len(r, reply.data.len())?;
                copy_rect(&reply.data, frame, stride, r);
            }
            return Ok(());
        };
        let mut rest = rects;
        while !rest.is_empty() {
            // Queue as many reads as fit in the segment, then collect the replies.
            let mut batch = Vec::new();
            let mut offset = 0usize;
            for r in rest {
                let bytes = r.area() as usize * 4;
                if offset + bytes > shm.len {
                    break;
                }
                let (x, y, w, h) = request_rect(r);
                let cookie = self
                    .conn
                    .shm_get_image(
                        self.root,
                        x,
                        y,
                        w,
                        h,
                        !0,
                        ImageFormat::Z_PIXMAP.into(),
                        shm.seg,
                        offset as u32,
                    )
                    .map_err(lost)?;
                batch.push((*r, offset, cookie));
                offset += bytes;
            }
            if batch.is_empty() {
                // Rectangles are clipped to the screen and the segment holds a whole screen.
                return Err(CaptureError::Other(format!(
                    "damage {:?} larger than the shared segment",
                    rest[0]
                )));
            }
            rest = &rest[batch.len()..];
            for (r, offset, cookie) in batch {
                let reply = cookie.reply().map_err(reply_err)?;
                check_len(&r, reply.size as usize)?;
                // SAFETY: `offset + area * 4 <= shm.len` was checked when queueing, so the range
                // lies inside our mapping. The X server writes this range only while handling
                // the ShmGetImage whose reply we now hold, and nothing writes it until we queue
                // the next request, so the bytes are initialised and stable while we read them.
                let src = unsafe {
                    std::slice::from_raw_parts(shm.ptr.as_ptr().add(offset), r.area() as usize * 4)
                };
                copy_rect(src, frame, stride, &r);
            }
        }
        Ok(())
    }

    /// Captures `rects` (empty: the whole screen) into `frame`, handling a size change that
    /// raced with the read.
    fn capture(
        &mut self,
        frame: &mut CapturedFrame,
        rects: Vec<Rect>,
        start: Instant,
    ) -> Result<CaptureOutcome, CaptureError> {
        let full = [Rect {
            x: 0,
            y: 0,
            w: self.width,
            h: self.height,
        }];
        let read = if rects.is_empty() {
            &full[..]
        } else {
            &rects[..]
        };
        if let Err(e) = self.read_rects(frame, read) {
            // The damage is gone and `frame` may be half written: the next frame is a full one.
            self.full_next = true;
            // A read outside a screen that just shrank fails with BadMatch: look for the
            // resize before reporting an error.
            if !matches!(e, CaptureError::Lost(_)) {
                self.drain_events()?;
                self.size_dirty = true;
                if let Some(what) = self.check_size()? {
                    return Ok(CaptureOutcome::Reinit(what));
                }
            }
            return Err(e);
        }
        frame.damage = rects;
        frame.capture_start = start;
        frame.capture_end = Instant::now();
        frame.sequence = self.sequence;
        self.sequence += 1;
        tracing::trace!(
            seq = frame.sequence,
            rects = frame.damage.len(),
            us = (frame.capture_end - start).as_micros() as u64,
            "x11 frame"
        );
        Ok(CaptureOutcome::Frame)
    }

    /// Sleeps until the connection's socket is readable or `timeout` passes.
    fn wait_readable(&self, timeout: Duration) -> Result<(), CaptureError> {
        self.conn.flush().map_err(lost)?;
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let mut pfd = libc::pollfd {
            fd: self.conn.stream().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is a valid, exclusively borrowed pollfd for the duration of the call and
        // nfds is 1; the fd stays open because `self.conn` owns it.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(CaptureError::Lost(format!("poll on the X connection: {e}")));
            }
        }
        Ok(())
    }
}

impl FrameSource for X11Source {
    fn describe(&self) -> String {
        format!(
            "x11 {} {}x{} depth {} ({}, DAMAGE)",
            self.display,
            self.width,
            self.height,
            self.depth,
            if self.shm.is_some() {
                "MIT-SHM"
            } else {
                "GetImage"
            }
        )
    }

    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn format(&self) -> PixelFormat {
        self.format
    }

    fn next_frame(
        &mut self,
        frame: &mut CapturedFrame,
        timeout: Duration,
    ) -> Result<CaptureOutcome, CaptureError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain_events()?;
            if let Some(what) = self.check_size()? {
                return Ok(CaptureOutcome::Reinit(what));
            }
            let shaped = frame.width == self.width
                && frame.height == self.height
                && frame.format == self.format
                && frame.data.len() == frame.stride * frame.height as usize;
            if self.full_next || !shaped {
                let start = Instant::now();
                frame.reshape(self.width, self.height, self.format);
                // Clear the damage so the next call reports only what follows this read.
                self.conn
                    .damage_subtract(self.damage, x11rb::NONE, x11rb::NONE)
                    .map_err(lost)?;
                self.damage_seen = None;
                self.full_next = false;
                return self.capture(frame, Vec::new(), start);
            }
            if let Some(seen) = self.damage_seen.take() {
                let mut rects = self.take_damage()?;
                if !rects.is_empty() {
                    if rects.len() > MAX_RECTS {
                        rects = vec![rects.iter().fold(Rect::default(), |a, r| a.union(r))];
                    }
                    return self.capture(frame, rects, seen);
                }
                // The notify was for damage an earlier subtract already took.
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(CaptureOutcome::Timeout);
            }
            self.wait_readable(deadline - now)?;
        }
    }

    fn cursor(&mut self) -> Option<CursorState> {
        if let Err(e) = self.drain_events() {
            tracing::debug!(error = %e, "x11 cursor: events");
        }
        let p = self.conn.query_pointer(self.root).ok()?.reply().ok()?;
        Some(CursorState {
            x: i32::from(p.root_x),
            y: i32::from(p.root_y),
            serial: self.cursor_serial,
            visible: p.same_screen,
        })
    }

    fn cursor_image(&mut self) -> Option<CursorImage> {
        if let Err(e) = self.drain_events() {
            tracing::debug!(error = %e, "x11 cursor: events");
        }
        if self.sent_cursor_serial == Some(self.cursor_serial) {
            return None;
        }
        let r = self.conn.xfixes_get_cursor_image().ok()?.reply().ok()?;
        self.cursor_serial = r.cursor_serial;
        if self.sent_cursor_serial == Some(r.cursor_serial) {
            return None;
        }
        self.sent_cursor_serial = Some(r.cursor_serial);
        Some(CursorImage {
            serial: r.cursor_serial,
            width: r.width,
            height: r.height,
            hot_x: r.xhot,
            hot_y: r.yhot,
            rgba: argb_to_rgba(&r.cursor_image),
        })
    }

    fn invalidate(&mut self) {
        self.full_next = true;
    }
}

impl Drop for X11Source {
    fn drop(&mut self) {
        let _ = self.conn.damage_destroy(self.damage);
        let _ = self.conn.xfixes_destroy_region(self.region);
        if let Some(shm) = self.shm.take() {
            shm.release(&self.conn);
        }
        let _ = self.conn.flush();
    }
}

/// The frame format for the root's depth and visual.
fn pixel_format(setup: &Setup, screen: &Screen) -> Result<PixelFormat, CaptureError> {
    let depth = screen.root_depth;
    let bpp = setup
        .pixmap_formats
        .iter()
        .find(|f| f.depth == depth)
        .map(|f| f.bits_per_pixel);
    if bpp != Some(32) {
        return Err(CaptureError::Other(format!(
            "root depth {depth} stores {bpp:?} bits per pixel; only 32-bit pixels are supported"
        )));
    }
    if setup.image_byte_order != ImageOrder::LSB_FIRST {
        return Err(CaptureError::Other(
            "the X server sends images most-significant byte first; not supported".into(),
        ));
    }
    let masks = screen
        .allowed_depths
        .iter()
        .flat_map(|d| &d.visuals)
        .find(|v| v.visual_id == screen.root_visual)
        .map(|v| (v.red_mask, v.green_mask, v.blue_mask));
    match (depth, masks) {
        (24 | 32, Some((0xff_0000, 0xff00, 0xff))) => Ok(PixelFormat::Bgrx8),
        (30, Some((0x3ff0_0000, 0xf_fc00, 0x3ff))) => Ok(PixelFormat::X2Rgb10),
        _ => Err(CaptureError::Other(format!(
            "unsupported root visual: depth {depth}, RGB masks {masks:x?}"
        ))),
    }
}

/// An X rectangle clipped to the screen, or `None` when nothing is left.
fn clip(r: &x11rb::protocol::xproto::Rectangle, width: u32, height: u32) -> Option<Rect> {
    let x0 = i64::from(r.x).clamp(0, i64::from(width));
    let y0 = i64::from(r.y).clamp(0, i64::from(height));
    let x1 = (i64::from(r.x) + i64::from(r.width)).clamp(0, i64::from(width));
    let y1 = (i64::from(r.y) + i64::from(r.height)).clamp(0, i64::from(height));
    (x1 > x0 && y1 > y0).then(|| Rect {
        x: x0 as u32,
        y: y0 as u32,
        w: (x1 - x0) as u32,
        h: (y1 - y0) as u32,
    })
}

/// A rectangle in X request types (X screens are at most 32767 pixels on a side).
fn request_rect(r: &Rect) -> (i16, i16, u16, u16) {
    (r.x as i16, r.y as i16, r.w as u16, r.h as u16)
}

fn check_len(r: &Rect, got: usize) -> Result<(), CaptureError> {
    let want = r.area() as usize * 4;
    if got < want {
        return Err(CaptureError::Other(format!(
            "GetImage of {r:?} returned {got} bytes, expected {want}"
        )));
    }
    Ok(())
}

/// Copies a tightly packed 32-bit image of `r` into `frame` at `r`'s place.
fn copy_rect(src: &[u8], frame: &mut CapturedFrame, stride: usize, r: &Rect) {
    let row = r.w as usize * 4;
    if row == stride {
        // Full-width rows are contiguous in both: one large copy is ~3.5× faster here than
        // row-sized ones (glibc switches to non-temporal stores for large copies).
        let at = r.y as usize * stride;
        let len = row * r.h as usize;
        frame.data[at..at + len].copy_from_slice(&src[..len]);
        return;
    }
    for (i, line) in src.chunks_exact(row).take(r.h as usize).enumerate() {
        let at = (r.y as usize + i) * stride + r.x as usize * 4;
        frame.data[at..at + row].copy_from_slice(line);
    }
}

/// XFixes cursor pixels (`0xAARRGGBB` words, premultiplied as X stores cursor images) to
/// premultiplied RGBA bytes. Colour is clamped to alpha so the result is valid premultiplied
/// data even if a server hands out straight alpha.
pub fn argb_to_rgba(argb: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(argb.len() * 4);
    for &p in argb {
        let a = (p >> 24) as u8;
        out.extend_from_slice(&[
            ((p >> 16) as u8).min(a),
            ((p >> 8) as u8).min(a),
            (p as u8).min(a),
            a,
        ]);
    }
    out
}

/// Waits for the reply to a request.
fn reply<R: TryParse>(
    cookie: Result<Cookie<'_, RustConnection, R>, ConnectionError>,
) -> Result<R, CaptureError> {
    cookie.map_err(lost)?.reply().map_err(reply_err)
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

/// How a shared segment was made (and must be unmapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShmKind {
    /// memfd + mmap, passed with ShmAttachFd.
    Memfd,
    /// SysV shmget + shmat, passed with ShmAttach.
    SysV,
}

/// A shared segment the X server writes images into; mapped read-only on our side.
struct ShmBuffer {
    seg: shm::Seg,
    ptr: NonNull<u8>,
    len: usize,
    kind: ShmKind,
}

// SAFETY: the mapping is owned by this value alone (no other handle to it exists in this
// process), so moving it to another thread moves sole access with it.
unsafe impl Send for ShmBuffer {}

impl ShmBuffer {
    /// A `len`-byte segment attached to the server, or `None` (with a warning) when MIT-SHM is
    /// unavailable.
    fn create(
        conn: &RustConnection,
        display_name: &str,
        len: usize,
    ) -> Result<Option<ShmBuffer>, CaptureError> {
        let version = match conn.extension_information(shm::X11_EXTENSION_NAME) {
            Ok(Some(_)) => conn.shm_query_version().map_err(lost)?.reply().ok(),
            Ok(None) => None,
            Err(e) => return Err(lost(e)),
        };
        let Some(version) = version else {
            tracing::warn!(
                display = %display_name,
                "MIT-SHM is not available; using plain GetImage (slow)"
            );
            return Ok(None);
        };
        let fd_passing = (version.major_version, version.minor_version) >= (1, 2);
        let mut why = Vec::new();
        if fd_passing {
            match Self::memfd(conn, len) {
                Ok(b) => return Ok(Some(b)),
                Err(e) => why.push(format!("memfd: {e}")),
            }
        }
        match Self::sysv(conn, len) {
            Ok(b) => return Ok(Some(b)),
            Err(e) => why.push(format!("SysV: {e}")),
        }
        tracing::warn!(
            display = %display_name,
            reason = %why.join("; "),
            "MIT-SHM cannot share memory with this X server (remote display?); using plain GetImage (slow)"
        );
        Ok(None)
    }

    fn memfd(conn: &RustConnection, len: usize) -> Result<ShmBuffer, String> {
        // SAFETY: the name is a NUL-terminated literal and the flags are valid.
        let raw = unsafe { libc::memfd_create(c"sightline-capture".as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error().to_string());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: plain syscall on our own descriptor.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
            return Err(io::Error::last_os_error().to_string());
        }
        // SAFETY: a fresh shared read-only mapping of `len` bytes of our memfd; no Rust object
        // aliases it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error().to_string());
        }
        // Owns the mapping from here on (unmapped on drop if attaching fails).
        let mut buffer = ShmBuffer {
            seg: 0,
            // mmap never returns null on success.
            ptr: NonNull::new(ptr.cast()).ok_or("mmap returned null")?,
            len,
            kind: ShmKind::Memfd,
        };
        let seg = conn.generate_id().map_err(|e| e.to_string())?;
        // The server writes images into the segment, so it is attached read-write.
        conn.shm_attach_fd(seg, fd, false)
            .map_err(|e| e.to_string())?
            .check()
            .map_err(|e| e.to_string())?;
        buffer.seg = seg;
        Ok(buffer)
    }

    fn sysv(conn: &RustConnection, len: usize) -> Result<ShmBuffer, String> {
        // SAFETY: plain syscall creating a private segment.
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, len, libc::IPC_CREAT | 0o600) };
        if id < 0 {
            return Err(io::Error::last_os_error().to_string());
        }
        // SAFETY: attaches the segment we just created, read-only, at an address the kernel
        // picks.
        let ptr = unsafe { libc::shmat(id, std::ptr::null(), libc::SHM_RDONLY) };
        let attached = if ptr as isize == -1 {
            Err(io::Error::last_os_error().to_string())
        } else {
            Ok(())
        };
        let result = attached.and_then(|()| {
            // Owns the attachment from here on (detached on drop if the server refuses it).
            let mut buffer = ShmBuffer {
                seg: 0,
                ptr: NonNull::new(ptr.cast()).ok_or("shmat returned null")?,
                len,
                kind: ShmKind::SysV,
            };
            let seg = conn.generate_id().map_err(|e| e.to_string())?;
            conn.shm_attach(seg, id as u32, false)
                .map_err(|e| e.to_string())?
                .check()
                .map_err(|e| e.to_string())?;
            buffer.seg = seg;
            Ok(buffer)
        });
        // Mark the segment for removal now: it lives until the server and we detach, and
        // cannot leak if either process dies.
        // SAFETY: plain syscall on our segment id; a null buffer is allowed for IPC_RMID.
        unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
        result
    }

    /// Detaches the segment from the server (then unmaps it on drop).
    fn release(self, conn: &RustConnection) {
        if self.seg != 0 {
            let _ = conn.shm_detach(self.seg);
        }
    }
}

impl Drop for ShmBuffer {
    fn drop(&mut self) {
        match self.kind {
            // SAFETY: `ptr`/`len` are exactly the mapping made in `memfd`, unmapped only here.
            ShmKind::Memfd => unsafe {
                libc::munmap(self.ptr.as_ptr().cast(), self.len);
            },
            // SAFETY: `ptr` is the address `shmat` returned in `sysv`, detached only here.
            ShmKind::SysV => unsafe {
                libc::shmdt(self.ptr.as_ptr().cast());
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x11rb::protocol::xproto::Rectangle;

    #[test]
    fn clip_keeps_rects_inside_the_screen() {
        let r = |x, y, width, height| Rectangle {
            x,
            y,
            width,
            height,
        };
        assert_eq!(
            clip(&r(10, 20, 30, 40), 100, 100),
            Some(Rect {
                x: 10,
                y: 20,
                w: 30,
                h: 40
            })
        );
        assert_eq!(
            clip(&r(-5, 90, 30, 40), 100, 100),
            Some(Rect {
                x: 0,
                y: 90,
                w: 25,
                h: 10
            })
        );
        assert_eq!(clip(&r(100, 0, 5, 5), 100, 100), None);
        assert_eq!(clip(&r(-10, -10, 5, 5), 100, 100), None);
    }

    #[test]
    fn cursor_pixels_become_premultiplied_rgba() {
        let px = argb_to_rgba(&[0xFF10_2030, 0x8040_5060, 0x0000_0000, 0x40FF_FFFF]);
        assert_eq!(
            px,
            [0x10, 0x20, 0x30, 0xFF, 0x40, 0x50, 0x60, 0x80, 0, 0, 0, 0, 0x40, 0x40, 0x40, 0x40]
        );
    }

    #[test]
    fn copy_rect_places_rows() {
        let mut f = CapturedFrame::new();
        f.reshape(4, 3, PixelFormat::Bgrx8);
        let r = Rect {
            x: 1,
            y: 1,
            w: 2,
            h: 2,
        };
        let src: Vec<u8> = (0..16).collect();
        let stride = f.stride;
        copy_rect(&src, &mut f, stride, &r);
        assert_eq!(&f.data[16 + 4..16 + 12], &src[0..8]);
        assert_eq!(&f.data[32 + 4..32 + 12], &src[8..16]);
        assert!(f.data[..16].iter().all(|&b| b == 0));
        // Full-width rows take the single-copy path.
        let r = Rect {
            x: 0,
            y: 1,
            w: 4,
            h: 2,
        };
        let src: Vec<u8> = (100..132).collect();
        copy_rect(&src, &mut f, stride, &r);
        assert_eq!(&f.data[16..48], &src[..]);
        assert!(f.data[..16].iter().all(|&b| b == 0));
    }
}
