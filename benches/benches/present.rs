//! Present cost of the viewer's two renderers on Xvfb at 1920×1080 (window = screen = stream):
//! what one frame costs from taking it out of the latest-wins slot to the display server (CPU
//! path) or GPU (GPU path) having finished — conversion or upload plus showing it.
//!
//! Cases, each frame waited for before the next is handed over:
//! * `full`: every frame differs everywhere (no damage list), 8-bit 4:2:0;
//! * `damage 480x240`: a 480×240 patch changes, with its damage list;
//! * `full 10-bit`: every frame differs, 10-bit 4:2:0 (dithered to the 8-bit screen).
//!
//! `cargo bench -p sightline-benches --bench present` runs 300 frames per case on each
//! renderer (`SIGHTLINE_PRESENT_RENDERERS=cpu` for one); under `cargo test` a few frames per
//! case check the plumbing. winit allows one window per process, so each renderer runs in a
//! child process of this one.

use std::process::Command;

use sightline_tests::window::{bars_frame, damage, picture, run, BARS};
use sightline_viewer::app::{PresentRecord, Renderer, WindowOptions};
use sightline_viewer::frame::PictureFormat;

const CHILD: &str = "SIGHTLINE_PRESENT_BENCH_CHILD";
const SIZE: (u32, u32) = (1920, 1080);

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

fn summary(name: &str, recs: &[PresentRecord]) -> String {
    let ms = |f: &dyn Fn(&PresentRecord) -> u32| -> Vec<f64> {
        recs.iter().map(|r| f64::from(f(r)) / 1e3).collect()
    };
    let mut total = ms(&|r| r.convert_us + r.present_us);
    let mut convert = ms(&|r| r.convert_us);
    let mut show = ms(&|r| r.present_us);
    let damaged = recs.iter().filter(|r| !r.full).count();
    format!(
        "{name:<16} {:>5} frames  total p50 {:6.2} p99 {:6.2} max {:6.2} ms   \
         convert p50 {:6.2} p99 {:6.2}   show p50 {:6.2} p99 {:6.2}   partial {damaged}",
        recs.len(),
        pct(&mut total, 0.5),
        pct(&mut total, 0.99),
        pct(&mut total, 1.0),
        pct(&mut convert, 0.5),
        pct(&mut convert, 0.99),
        pct(&mut show, 0.5),
        pct(&mut show, 0.99),
    )
}

fn child(renderer: Renderer, frames: usize) {
    let opts = WindowOptions {
        initial_size: Some(SIZE),
        renderer,
        ..WindowOptions::default()
    };
    let name = format!("present-bench-{renderer:?}").to_lowercase();
    run(&name, SIZE, opts, move |mut d, _env| {
        let info = d.renderer()?;
        let mut out = vec![format!("renderer {} ({})", info.name(), info.detail)];
        let (w, h) = SIZE;
        // Two pictures that differ in every pixel: the bars and the bars mirrored.
        let a = bars_frame(w, h, PictureFormat::I420, 0);
        let b = picture(w, h, PictureFormat::I420, 0, |x, _| {
            BARS[7 - (x * 8 / w) as usize]
        });
        let warm = 10;
        let mut recs = Vec::new();
        for i in 0..frames + warm {
            let r = d.show(if i % 2 == 0 { a.clone() } else { b.clone() })?;
            if i >= warm {
                recs.push(r);
            }
        }
        out.push(summary("full", &recs));
        // A 480×240 patch toggling between red and the bars, with its damage list.
        let (px, py) = (720u32, 420u32);
        let patched = picture(w, h, PictureFormat::I420, 0, |x, y| {
            if (px..px + 480).contains(&x) && (py..py + 240).contains(&y) {
                [255, 0, 0]
            } else {
                BARS[(x * 8 / w) as usize]
            }
        });
        d.show(a.clone())?;
        let mut recs = Vec::new();
        for i in 0..frames + warm {
            let mut f = if i % 2 == 0 {
                patched.clone()
            } else {
                a.clone()
            };
            f.damage = damage(px as u16, py as u16, 480, 240);
            let r = d.show(f)?;
            if i >= warm {
                recs.push(r);
            }
        }
        out.push(summary("damage 480x240", &recs));
        let a10 = bars_frame(w, h, PictureFormat::I420P10, 0);
        let b10 = picture(w, h, PictureFormat::I420P10, 0, |x, _| {
            BARS[7 - (x * 8 / w) as usize]
        });
        let mut recs = Vec::new();
        for i in 0..frames + warm {
            let r = d.show(if i % 2 == 0 { a10.clone() } else { b10.clone() })?;
            if i >= warm {
                recs.push(r);
            }
        }
        out.push(summary("full 10-bit", &recs));
        Ok(out)
    });
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let frames = if full { 300 } else { 8 };
    if let Ok(r) = std::env::var(CHILD) {
        let renderer = if r == "gpu" {
            Renderer::Gpu
        } else {
            Renderer::Cpu
        };
        child(renderer, frames);
        return;
    }
    let renderers =
        std::env::var("SIGHTLINE_PRESENT_RENDERERS").unwrap_or_else(|_| "cpu,gpu".into());
    println!(
        "present bench: {}x{} window on Xvfb, {frames} frames per case",
        SIZE.0, SIZE.1
    );
    for r in renderers
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        let exe = std::env::current_exe().expect("own path");
        let mut cmd = Command::new(exe);
        cmd.env(CHILD, r);
        if full {
            cmd.arg("--bench");
        }
        // The window helper prints its report through the test harness' capture; run it
        // uncaptured so the figures reach this output.
        let out = cmd.output().expect("run the bench child");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
            panic!("the {r} present bench failed");
        }
    }
}
