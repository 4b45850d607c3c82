//! The whole chain as a user sees it, on the CPU present path (what `--renderer auto` picks on a
//! machine without a GPU): host (synthetic desktop scene) → QUIC → viewer window on Xvfb. The
//! bars are checked by region, most presents must use the host's damage lists, and the last
//! frame on screen must match the source's rendering of that frame everywhere (see
//! `sightline_tests::e2e_window`).

use sightline_tests::e2e_window::streamed_desktop_shows_exactly;
use sightline_viewer::app::Renderer;
use sightline_viewer::render::ActivePath;

#[test]
fn streamed_picture_shows_in_the_viewer_window_cpu() {
    streamed_desktop_shows_exactly("window-e2e-cpu", Renderer::Cpu, ActivePath::Cpu);
}
