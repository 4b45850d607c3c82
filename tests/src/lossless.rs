//! Lossless tiles end to end on a real X display: a host with tiles on, a viewer that keeps
//! its newest composed picture, an X client that draws, and exact comparison of the viewer's
//! picture with the X server's own pixels.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sightline_certs::TrustPolicy;
use sightline_host::capture::x11::X11Source;
use sightline_host::tiles::TileSettings;
use sightline_viewer::compose::{LosslessStatus, SharedLossless};
use sightline_viewer::decode::FrameSink;
use sightline_viewer::frame::DecodedFrame;
use sightline_viewer::net::{connect_media, Media, ViewerConnection};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConnectionExt as _, CreateGCAux, CreateWindowAux, ImageFormat, WindowClass,
};
use x11rb::rust_connection::RustConnection;

use crate::xvfb::Xvfb;
use crate::{Pki, VideoHost};

/// Keeps the newest picture and counts them.
#[derive(Clone, Default)]
pub struct Latest(pub Arc<Mutex<(u64, Option<DecodedFrame>)>>);

impl FrameSink for Latest {
    fn frame(&mut self, f: DecodedFrame) {
        let mut g = self.0.lock().unwrap();
        g.0 += 1;
        g.1 = Some(f);
    }
}

impl std::fmt::Debug for Latest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Latest({} pictures)", self.count())
    }
}

impl std::fmt::Debug for Rig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rig")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Latest {
    /// Pictures so far.
    pub fn count(&self) -> u64 {
        self.0.lock().unwrap().0
    }
}

/// A host streaming an Xvfb display with tiles on, and a connected viewer.
pub struct Rig {
    /// The X server.
    pub x: Xvfb,
    /// The host.
    pub host: VideoHost,
    /// The viewer's connection.
    pub conn: ViewerConnection,
    /// The viewer's newest picture.
    pub latest: Latest,
    /// The viewer's proof.
    pub lossless: SharedLossless,
    /// The viewer's video counters.
    pub totals: std::sync::Arc<std::sync::Mutex<sightline_viewer::stats::SessionTotals>>,
    /// An X client that draws.
    pub xc: RustConnection,
    /// Its full-screen window.
    pub win: u32,
    gc: u32,
    /// Screen size.
    pub size: (u32, u32),
    _pki: Pki,
}

impl Rig {
    /// Starts Xvfb at `w × h`, the host, the viewer, and maps a full-screen window.
    pub async fn start(w: u32, h: u32, tiles: TileSettings) -> Rig {
        let x = Xvfb::start(w, h, 24);
        let pki = Pki::new();
        let source = X11Source::open(Some(&x.name())).expect("open the Xvfb display");
        let host = VideoHost::start_lossless(&pki, Box::new(source), 60, 20_000_000, tiles);
        let latest = Latest::default();
        let lossless = SharedLossless::default();
        let media = Media {
            video: Some(Box::new(latest.clone())),
            lossless: lossless.clone(),
            ..Media::default()
        };
        let totals = media.totals.clone();
        let known = pki.known_hosts("known_hosts", host.addr, &pki.host);
        let conn = connect_media(
            pki.connect_options(host.addr, &pki.viewer, known, TrustPolicy::PinnedOnly),
            media,
        )
        .await
        .expect("connect");
        let (xc, screen) = x11rb::connect(Some(&x.name())).expect("X client");
        let s = &xc.setup().roots[screen];
        let (root, depth, visual) = (s.root, s.root_depth, s.root_visual);
        let win = xc.generate_id().unwrap();
        xc.create_window(
            depth,
            win,
            root,
            0,
            0,
            w as u16,
            h as u16,
            0,
            WindowClass::INPUT_OUTPUT,
            visual,
            &CreateWindowAux::new()
                .background_pixel(0x203040)
                .override_redirect(1),
        )
        .unwrap();
        xc.map_window(win).unwrap();
        let gc = xc.generate_id().unwrap();
        xc.create_gc(gc, win, &CreateGCAux::new()).unwrap();
        xc.flush().unwrap();
        Rig {
            x,
            host,
            conn,
            latest,
            lossless,
            totals,
            xc,
            win,
            gc,
            size: (w, h),
            _pki: pki,
        }
    }

    /// Video frames the viewer received.
    pub fn conn_frames(&self) -> u64 {
        self.totals.lock().unwrap().frames_received
    }

    /// The viewer's proof now.
    pub fn status(&self) -> LosslessStatus {
        *self.lossless.lock().unwrap()
    }

    /// Draws `bgrx` (`w × h` pixels) at `(x, y)` in the window, in strips that fit a request.
    pub fn put(&self, x: i16, y: i16, w: u16, h: u16, bgrx: &[u8]) {
        let rows_per = (200_000 / (usize::from(w) * 4)).max(1);
        let mut row = 0usize;
        while row < usize::from(h) {
            let n = rows_per.min(usize::from(h) - row);
            let at = row * usize::from(w) * 4;
            self.xc
                .put_image(
                    ImageFormat::Z_PIXMAP,
                    self.win,
                    self.gc,
                    w,
                    n as u16,
                    x,
                    y + row as i16,
                    0,
                    24,
                    &bgrx[at..at + n * usize::from(w) * 4],
                )
                .unwrap();
            row += n;
        }
        // A round trip: the server has drawn it when this returns (like a client that waits
        // for the server before drawing its next frame).
        self.xc.get_input_focus().unwrap().reply().unwrap();
    }

    /// The X server's pixels of the screen (BGRX).
    pub fn screen(&self) -> Vec<u8> {
        let (w, h) = self.size;
        let root = self.xc.setup().roots[0].root;
        self.xc
            .get_image(ImageFormat::Z_PIXMAP, root, 0, 0, w as u16, h as u16, !0)
            .unwrap()
            .reply()
            .unwrap()
            .data
    }

    /// Pixels where the viewer's newest picture differs from `bgrx` inside `(x, y, w, h)`
    /// (`bgrx` is the whole screen when `full`, else just the rectangle); `None` when the
    /// viewer has no composed picture yet.
    pub fn differing(
        &self,
        bgrx: &[u8],
        (x, y, w, h): (u32, u32, u32, u32),
        full: bool,
    ) -> Option<u64> {
        let g = self.latest.0.lock().unwrap();
        let f = g.1.as_ref()?;
        if f.matrix != sightline_protocol::msg::ColourMatrix::Identity
            || f.width < x + w
            || f.height < y + h
        {
            return None;
        }
        let stride = if full { self.size.0 } else { w } as usize * 4;
        let mut bad = 0;
        for row in 0..h as usize {
            for col in 0..w as usize {
                let (sx, sy) = if full {
                    (x as usize + col, y as usize + row)
                } else {
                    (col, row)
                };
                let px = &bgrx[sy * stride + sx * 4..sy * stride + sx * 4 + 3];
                let at = (y as usize + row) * f.y_stride + x as usize + col;
                if f.u[at] != px[0] || f.y[at] != px[1] || f.v[at] != px[2] {
                    bad += 1;
                }
            }
        }
        Some(bad)
    }

    /// Waits until the viewer's whole picture equals the X screen and the host's latest hash
    /// list proves it (a check after `since`); returns when, or `None` after `limit`.
    pub async fn wait_exact(&self, since: u64, limit: Duration) -> Option<Instant> {
        let t0 = Instant::now();
        let (w, h) = self.size;
        let screen = self.screen();
        while t0.elapsed() < limit {
            let s = self.status();
            if s.all_exact()
                && s.fidelity.checks > since
                && self.differing(&screen, (0, 0, w, h), true) == Some(0)
            {
                return Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        None
    }
}

/// A desktop-like picture (`w × h` BGRX): flat panels, a gradient, and text-like speckle.
pub fn desktop(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut v = vec![0u8; (w * h * 4) as usize];
    for y in 0..h {
        for x in 0..w {
            let at = ((y * w + x) * 4) as usize;
            let panel = (x / 320 + y / 180 + seed) % 3;
            let mut px = match panel {
                0 => [0xf0, 0xf0, 0xf0],
                1 => [(x % 256) as u8, (y % 256) as u8, 0x80],
                _ => [0x30, 0x30, 0x38],
            };
            let h = (x / 3)
                .wrapping_mul(2_654_435_761)
                .wrapping_add((y / 4).wrapping_mul(40_503))
                .wrapping_add(seed);
            if (y % 20) < 12 && (h >> 28) < 5 {
                px = [0x10, 0x10, 0x10];
            }
            v[at..at + 3].copy_from_slice(&px);
        }
    }
    v
}

/// Noise (`w × h` BGRX): what a codec is worst at and tiles carry exactly.
pub fn noise(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut s = seed.wrapping_mul(747_796_405).wrapping_add(1);
    (0..w * h * 4)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s as u8
        })
        .collect()
}
