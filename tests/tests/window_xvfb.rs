//! The viewer's window on a private Xvfb with `--renderer auto`: on this kind of machine (no GPU,
//! wgpu finds only mesa's lavapipe) auto must pick the CPU path, and the CPU path must show
//! everything right — colour bars upscaled and downscaled with letterboxes, the local cursor,
//! the stats overlay toggled by a real F3 press, every picture format, a 10-bit ramp without
//! banding — read back from the X screen.
//!
//! winit allows one event loop per process: keep this the only window test in this binary.

use sightline_tests::window::{run, standard_checks};
use sightline_viewer::app::{Renderer, WindowOptions};
use sightline_viewer::render::{probe_adapter, ActivePath};

#[test]
fn auto_picks_the_cpu_path_for_a_software_adapter_and_shows_everything() {
    let opts = WindowOptions {
        initial_size: Some((1000, 700)),
        renderer: Renderer::Auto,
        ..WindowOptions::default()
    };
    run("window-auto", (1280, 720), opts, move |mut d, env| {
        // What wgpu finds on its own decides what auto must pick.
        let adapter = probe_adapter();
        let want = match &adapter {
            Some(a) if !a.software => ActivePath::Gpu,
            _ => ActivePath::Cpu,
        };
        let info = d.renderer()?;
        if info.path != want {
            return Err(format!(
                "auto chose {info:?}, expected {want:?} for adapter {adapter:?}"
            ));
        }
        let mut report = vec![
            format!("wgpu adapter: {adapter:?}"),
            format!("auto chose {} ({})", info.name(), info.detail),
        ];
        report.extend(standard_checks(&mut d, env)?);
        Ok(report)
    });
}
