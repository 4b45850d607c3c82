//! The viewer's window with `--renderer gpu` on a private Xvfb (wgpu on mesa's lavapipe, no GPU
//! needed): the planes go to textures and a shader converts and scales them. Same checks as the
//! CPU path (bars, letterboxes, cursor, stats overlay, every picture format, a 10-bit ramp
//! without banding), plus a damaged frame that uploads only its rectangle.
//!
//! winit allows one event loop per process: keep this the only window test in this binary.

use std::time::Duration;

use sightline_tests::window::{
    bars_frame, check_bars, connect, damage, eventually_within, picture, run, standard_checks,
    Placement, BARS,
};
use sightline_viewer::app::{Renderer, WindowOptions};
use sightline_viewer::frame::PictureFormat;
use sightline_viewer::render::ActivePath;

#[test]
fn gpu_path_shows_everything_on_lavapipe() {
    let opts = WindowOptions {
        initial_size: Some((1000, 700)),
        renderer: Renderer::Gpu,
        ..WindowOptions::default()
    };
    run("window-gpu", (1280, 720), opts, |mut d, env| {
        let info = d.renderer()?;
        if info.path != ActivePath::Gpu {
            return Err(format!("--renderer gpu opened {info:?}"));
        }
        let mut report = vec![format!("renderer {} ({})", info.name(), info.detail)];
        report.extend(standard_checks(&mut d, env)?);

        // A 1280×720 picture, then the same with a 160×96 red patch and a damage list: only the
        // patch's tiles are uploaded, and the screen shows the whole new picture.
        let (conn, root) = connect(env)?;
        let win = Placement::find(&conn, root, &env.title)?;
        let (w, h) = (1280, 720);
        let full = d.show(bars_frame(w, h, PictureFormat::I420, 0))?;
        if !full.full {
            return Err("a frame without a damage list was not uploaded in full".into());
        }
        let patch = |x: u32, y: u32| (320..480).contains(&x) && (96..192).contains(&y);
        let mut f = picture(w, h, PictureFormat::I420, 0, |x, y| {
            if patch(x, y) {
                [255, 0, 0]
            } else {
                BARS[(x * 8 / w) as usize]
            }
        });
        f.damage = damage(320, 96, 160, 96);
        let rec = d.show(f)?;
        // Changes are found in 64×16 tiles: the patch spans 192×96 pixels of them.
        if rec.full || rec.rects != 1 || rec.pixels != 192 * 96 {
            return Err(format!(
                "damaged frame not uploaded as a rectangle: {rec:?}"
            ));
        }
        let (px, py) = win.map((w, h), 400.0, 144.0);
        let shot = eventually_within(&conn, root, env.screen, Duration::from_secs(3), |s| {
            s.check_patch(px, py, [255, 0, 0], "damaged patch")?;
            check_bars(s, win, (w, h))
        })?;
        report.push(format!(
            "damage upload: {} px in {} rect, convert {} µs, present {} µs ({})",
            rec.pixels,
            rec.rects,
            rec.convert_us,
            rec.present_us,
            shot.save(&env.out_dir, "gpu-damage").display()
        ));
        Ok(report)
    });
}
