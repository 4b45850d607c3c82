//! The whole chain as a user sees it, on the GPU present path (`--renderer gpu`, wgpu on mesa's
//! lavapipe here): host (synthetic desktop scene) → QUIC → viewer window on Xvfb, with the same
//! checks as the CPU path (see `sightline_tests::e2e_window`).

use sightline_tests::e2e_window::streamed_desktop_shows_exactly;
use sightline_viewer::app::Renderer;
use sightline_viewer::render::ActivePath;

#[test]
fn streamed_picture_shows_in_the_viewer_window_gpu() {
    streamed_desktop_shows_exactly("window-e2e-gpu", Renderer::Gpu, ActivePath::Gpu);
}
