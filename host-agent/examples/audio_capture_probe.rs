//! Prints what the audio capture delivers: block sizes, spacing, and how old each block is.
//! `cargo run -p sightline-host-agent --example audio_capture_probe -- [DEVICE] [SECONDS]`

use std::time::{Duration, Instant};

use sightline_host::audio::capture_cpal::{Backend, CpalSource};
use sightline_host::audio::AudioSource;
use sightline_protocol::msg::ChannelLayout;

fn main() {
    let mut args = std::env::args().skip(1);
    let device = args.next();
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let mut src = match CpalSource::open(Backend::Auto, device.as_deref(), ChannelLayout::Stereo) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    println!("{}", src.describe());
    let t0 = Instant::now();
    let mut last = t0;
    let mut total = 0usize;
    while t0.elapsed().as_secs_f64() < secs {
        match src.next_block(Duration::from_millis(500)) {
            Ok(Some(b)) => {
                let now = Instant::now();
                let frames = b.samples.len() / 2;
                total += frames;
                let peak = b.samples.iter().fold(0f32, |m, v| m.max(v.abs()));
                println!(
                    "t={:8.1} ms  +{:6.2} ms  {frames:4} frames  age {:6.2} ms  peak {peak:.3}  total {:.1} ms",
                    now.duration_since(t0).as_secs_f64() * 1e3,
                    now.duration_since(last).as_secs_f64() * 1e3,
                    now.saturating_duration_since(b.captured_at).as_secs_f64() * 1e3,
                    total as f64 / 48.0
                );
                last = now;
            }
            Ok(None) => println!("(nothing for 500 ms)"),
            Err(e) => {
                println!("error: {e}");
                break;
            }
        }
    }
}
