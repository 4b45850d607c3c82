//! Opens cpal's PulseAudio output several times in a row and counts the callbacks of each.
//! `cargo run -p sightline-viewer --example audio_output_probe -- [DEVICE] [ROUNDS]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

fn main() {
    let mut args = std::env::args().skip(1);
    let device = args.next();
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    let same_host = std::env::var_os("SAME_HOST").is_some();
    let shared_host = cpal::host_from_id(cpal::HostId::PulseAudio).expect("pulse host");
    for round in 0..rounds {
        let host = if same_host {
            None
        } else {
            Some(cpal::host_from_id(cpal::HostId::PulseAudio).expect("pulse host"))
        };
        let h = host.as_ref().unwrap_or(&shared_host);
        let dev = match &device {
            Some(n) => h
                .output_devices()
                .unwrap()
                .find(|d| d.id().map(|i| i.id() == n).unwrap_or(false))
                .expect("device"),
            None => h.default_output_device().expect("default output"),
        };
        let count = Arc::new(AtomicU64::new(0));
        let c = count.clone();
        let stream = dev
            .build_output_stream::<f32, _, _>(
                cpal::StreamConfig {
                    channels: 2,
                    sample_rate: 48_000,
                    buffer_size: cpal::BufferSize::Fixed(
                        std::env::var("FRAMES")
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(240),
                    ),
                },
                move |out: &mut [f32], _| {
                    c.fetch_add(1, Ordering::Relaxed);
                    out.fill(0.0);
                },
                |e| eprintln!("error: {e}"),
                Some(Duration::from_secs(5)),
            )
            .expect("stream");
        stream.play().expect("play");
        std::thread::sleep(Duration::from_millis(1000));
        println!(
            "round {round}: {} callbacks in 1 s",
            count.load(Ordering::Relaxed)
        );
        drop(stream);
        std::thread::sleep(Duration::from_millis(200));
    }
}
