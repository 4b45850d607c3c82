//! Answers bench-mode latency probes: the picture must show each probe as soon as possible.
//!
//! * Synthetic source: the pipeline draws the probe strip into the next frame it renders
//!   ([`VideoFeed::mark_probe`]); the wait is up to one frame period, as for any app.
//! * X11 desktop: a small window of our own ([`ProbeWindow`]) is repainted at once by a
//!   separate X connection, exactly like an application reacting to input; DAMAGE wakes the
//!   capture. Its colours flip between probes, so the change is real screen content.

use std::sync::Mutex;

use sightline_protocol::msg::InputEvent;
use sightline_protocol::session::InputOrigin;
use tracing::{debug, warn};

#[cfg(target_os = "linux")]
use crate::capture::probe_window::ProbeWindow;
use crate::pipeline::VideoFeed;

/// Where probes are shown.
#[derive(Debug)]
pub enum ProbeTarget {
    /// The pipeline's source draws them (synthetic).
    Feed(VideoFeed),
    /// A window on the X display being captured.
    #[cfg(target_os = "linux")]
    Window(Mutex<ProbeWindow>),
}

impl ProbeTarget {
    /// Shows `event` if it is a probe from a viewer; true when it was one (handled or not).
    pub fn handle(&self, event: &InputEvent, origin: &InputOrigin) -> bool {
        let InputEvent::Probe { id } = *event else {
            return false;
        };
        let InputOrigin::Viewer { host_recv_us, .. } = *origin else {
            return true;
        };
        debug!(id, host_recv_us, "latency probe");
        match self {
            ProbeTarget::Feed(feed) => feed.mark_probe(id, host_recv_us),
            #[cfg(target_os = "linux")]
            ProbeTarget::Window(w) => {
                let mut w = w.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Err(e) = w.show(id, host_recv_us) {
                    warn!("probe window: {e}");
                }
            }
        }
        true
    }
}
