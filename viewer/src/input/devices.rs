//! The input devices beyond keyboard and mouse that a viewer window opens for its session: pen
//! tablets (XInput2 valuators on X11) and jog/shuttle controllers (evdev, hotplugged).
//!
//! Pen positions arrive in window pixels and are mapped into stream pixels with the same
//! aspect-correct "fill" scaling the renderer uses ([`fill_to_stream`]); the window keeps the
//! current window and picture sizes in a [`ScaleState`] the pen thread reads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use sightline_protocol::msg::{InputEvent, PenContact};
use tracing::{info, warn};

/// Window and picture sizes, shared with the pen thread.
#[derive(Debug, Default)]
pub struct ScaleState {
    sizes: Mutex<((u32, u32), (u32, u32))>,
}

impl ScaleState {
    /// Records the window's inner size and the picture's size.
    pub fn set(&self, window: (u32, u32), picture: (u32, u32)) {
        *self.sizes.lock().unwrap_or_else(PoisonError::into_inner) = (window, picture);
    }

    /// Maps a window position into the picture.
    pub fn map(&self, x: f64, y: f64) -> (f32, f32) {
        let (w, p) = *self.sizes.lock().unwrap_or_else(PoisonError::into_inner);
        fill_to_stream(w, p, (x, y))
    }
}

/// Window position → stream position under "fill" scaling: the picture scaled by the largest
/// factor that fits, centred; positions over the bars are clamped to the picture's edge.
pub fn fill_to_stream(window: (u32, u32), picture: (u32, u32), p: (f64, f64)) -> (f32, f32) {
    let (ww, wh) = (window.0.max(1) as f64, window.1.max(1) as f64);
    let (pw, ph) = (picture.0.max(1) as f64, picture.1.max(1) as f64);
    let s = (ww / pw).min(wh / ph);
    let (ox, oy) = ((ww - pw * s) / 2.0, (wh - ph * s) / 2.0);
    let x = ((p.0 - ox) / s).clamp(0.0, pw - 1.0 / 256.0);
    let y = ((p.1 - oy) / s).clamp(0.0, ph - 1.0 / 256.0);
    (x as f32, y as f32)
}

/// Devices opened for a session; dropping it closes them (releasing what they hold).
#[derive(Debug, Default)]
pub struct ExtraInputs {
    #[cfg(target_os = "linux")]
    jog: Option<super::jog::WatchHandle>,
    #[cfg(all(unix, not(target_os = "macos")))]
    pen: Option<super::pen_x11::X11PenInput>,
    pen_in_range: Arc<AtomicBool>,
}

impl ExtraInputs {
    /// Starts what `wants` asks for: `pen` on the X11 window `x11_window` (when the window is an
    /// X11 one), `jog` watching for controllers. Every event goes to `send`.
    pub fn start(
        x11_window: Option<u32>,
        scale: Arc<ScaleState>,
        pen: bool,
        jog: bool,
        send: Arc<dyn Fn(InputEvent) + Send + Sync>,
    ) -> ExtraInputs {
        let mut out = ExtraInputs::default();
        #[cfg(target_os = "linux")]
        if jog {
            let send = send.clone();
            out.jog = Some(super::jog::watch(Box::new(move |ev| send(ev))));
            info!("watching for jog/shuttle controllers");
        }
        #[cfg(not(target_os = "linux"))]
        let _ = jog;
        #[cfg(all(unix, not(target_os = "macos")))]
        if let (true, Some(win)) = (pen, x11_window) {
            let in_range = out.pen_in_range.clone();
            let send = send.clone();
            let started = super::pen_x11::X11PenInput::new(
                win,
                Box::new(move |x, y| scale.map(x, y)),
                Box::new(move |ev| {
                    if let InputEvent::Pen(p) = &ev {
                        in_range.store(p.contact != PenContact::Leave, Ordering::Relaxed);
                    }
                    send(ev)
                }),
            );
            match started {
                Ok(p) => out.pen = Some(p),
                Err(e) => warn!("pen input unavailable: {e}"),
            }
        }
        #[cfg(not(all(unix, not(target_os = "macos"))))]
        let _ = (pen, x11_window, scale);
        out
    }

    /// A pen is in range: the core pointer it also moves must not be sent as mouse motion.
    pub fn pen_in_range(&self) -> bool {
        self.pen_in_range.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_mapping_matches_the_renderer() {
        // 640×480 in 1280×720: ×1.5, 960×720 starting at x = 160.
        let m = |x, y| fill_to_stream((1280, 720), (640, 480), (x, y));
        assert_eq!(m(160.0, 0.0), (0.0, 0.0));
        assert_eq!(m(310.0, 75.0), (100.0, 50.0));
        // Over the left bar: clamped to the edge.
        assert_eq!(m(10.0, 75.0), (0.0, 50.0));
        let (x, y) = m(1279.0, 719.0);
        assert!(x < 640.0 && x > 639.0 && y < 480.0 && y > 479.0);
        let s = ScaleState::default();
        s.set((1280, 720), (640, 480));
        assert_eq!(s.map(310.0, 75.0), (100.0, 50.0));
    }
}
