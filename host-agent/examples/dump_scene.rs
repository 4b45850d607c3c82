//! Writes N frames of a synthetic scene as raw I420 (for trying other encoders by hand):
//! `cargo run --release -p sightline-host-agent --example dump_scene -- desktop 120 out.yuv`.
use std::io::Write;
use std::time::Duration;

use sightline_host::capture::synthetic::{Scene, SyntheticSource};
use sightline_host::capture::{CapturedFrame, FrameSource};
use sightline_host::convert::{bgrx_to_i420, I420};
use sightline_protocol::msg::{ColourMatrix, ColourRange};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let scene = if a[1] == "busy" {
        Scene::Busy
    } else {
        Scene::Desktop
    };
    let n: usize = a[2].parse().expect("frame count");
    let (w, h) = (1920u32, 1080u32);
    let mut src = SyntheticSource::new(w, h, 60)
        .with_scene(scene)
        .with_pacing(false);
    let mut f = CapturedFrame::new();
    let mut p = I420::new(w, h);
    let mut out = std::fs::File::create(&a[3]).expect("output");
    for _ in 0..n {
        src.next_frame(&mut f, Duration::from_secs(1))
            .expect("frame");
        bgrx_to_i420(&f, ColourMatrix::Bt709, ColourRange::Limited, &mut p);
        for y in 0..h as usize {
            out.write_all(&p.y[y * p.y_stride..][..w as usize]).unwrap();
        }
        for plane in [&p.u, &p.v] {
            for y in 0..h as usize / 2 {
                out.write_all(&plane[y * p.uv_stride..][..w as usize / 2])
                    .unwrap();
            }
        }
    }
}
