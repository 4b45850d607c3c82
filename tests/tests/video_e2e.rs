//! Video end to end over real QUIC on loopback: synthetic 1080p60 → capture → convert → encode
//! (openh264) → fragments with parity → reassembly → decode, checked frame by frame against the
//! source picture identified by the counter drawn in its pixels.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sightline_certs::TrustPolicy;
use sightline_host::capture::synthetic::{read_barcode, render_frame, SyntheticSource};
use sightline_host::convert::{bgrx_to_i420, I420};
use sightline_host::net::NetEvent;
use sightline_protocol::msg::{ColourMatrix, ColourRange, VideoCodecs};
use sightline_tests::{Pki, VideoHost};
use sightline_viewer::decode::FrameSink;
use sightline_viewer::frame::DecodedFrame;
use sightline_viewer::net::{connect_media, Media};
use sightline_viewer::stats::SharedClock;

const W: u32 = 1920;
const H: u32 = 1080;
const FPS: u32 = 60;

/// Keeps every `keep_every`-th picture, counts all of them.
struct Collect {
    tx: std::sync::mpsc::Sender<DecodedFrame>,
    seen: Arc<Mutex<Vec<u32>>>,
    keep_every: u32,
}

impl FrameSink for Collect {
    fn frame(&mut self, f: DecodedFrame) {
        let mut seen = self.seen.lock().unwrap();
        seen.push(f.frame);
        if seen.len() as u32 % self.keep_every == 1 {
            let _ = self.tx.send(f);
        }
    }
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| {
            let d = *x as f64 - *y as f64;
            d * d
        })
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

fn plane(data: &[u8], stride: usize, w: usize, h: usize) -> Vec<u8> {
    (0..h)
        .flat_map(|r| data[r * stride..r * stride + w].iter().copied())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_1080p60_reaches_the_viewer_with_high_fidelity() {
    let pki = Pki::new();
    let mut host = VideoHost::start(
        &pki,
        Box::new(SyntheticSource::new(W, H, FPS)),
        FPS,
        20_000_000,
        2,
    );
    let addr = host.addr;
    let known = pki.known_hosts("known_hosts", addr, &pki.host);
    let (tx, rx) = std::sync::mpsc::channel();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let media = Media {
        video: Some(Box::new(Collect {
            tx,
            seen: seen.clone(),
            keep_every: 15,
        })),
        clock: SharedClock::default(),
        ..Media::default()
    };
    let totals = media.totals.clone();
    let conn = connect_media(
        pki.connect_options(addr, &pki.viewer, known, TrustPolicy::PinnedOnly),
        media,
    )
    .await
    .expect("connect");
    assert!(conn
        .welcome
        .capabilities
        .video_codecs
        .contains(VideoCodecs::H264));

    // Let 240 frames (4 s at 60 fps) through.
    let deadline = Instant::now() + Duration::from_secs(40);
    while seen.lock().unwrap().len() < 240 {
        assert!(
            Instant::now() < deadline,
            "only {} frames decoded",
            seen.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    conn.close("done").await;
    while let Ok(ev) = host.events.try_recv() {
        if let NetEvent::Refused { reason, .. } = ev {
            panic!("refused: {reason}");
        }
    }

    let seen = seen.lock().unwrap().clone();
    let first = *seen.first().unwrap();
    let last = *seen.last().unwrap();
    let sent = (last - first + 1) as f64;
    let share = seen.len() as f64 / sent;
    let t = *totals.lock().unwrap();
    println!(
        "decoded {} of {} frames sent ({:.1} %), lost {}, recovered {}, keyframe requests {}",
        seen.len(),
        sent,
        share * 100.0,
        t.frames_lost,
        t.frames_recovered,
        t.keyframe_requests
    );
    assert!(share >= 0.95, "decoded share {share:.3}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "frames in order");

    // Fidelity: each kept picture against the exact source frame its barcode names.
    let mut checked = 0;
    let mut worst = f64::MAX;
    for f in rx.try_iter() {
        assert_eq!((f.width, f.height), (W, H));
        let (seq, _) = read_barcode(&f.y, f.y_stride, W, H).expect("barcode readable");
        let src = render_frame(W, H, seq as u64, FPS);
        let mut want = I420::new(W, H);
        bgrx_to_i420(&src, ColourMatrix::Bt709, ColourRange::Limited, &mut want);
        let y_got = plane(&f.y, f.y_stride, W as usize, H as usize);
        let y_want = plane(&want.y, want.y_stride, W as usize, H as usize);
        let (cw, ch) = (W as usize / 2, H as usize / 2);
        let u = psnr(
            &plane(&f.u, f.uv_stride, cw, ch),
            &plane(&want.u, want.uv_stride, cw, ch),
        );
        let v = psnr(
            &plane(&f.v, f.uv_stride, cw, ch),
            &plane(&want.v, want.uv_stride, cw, ch),
        );
        let y = psnr(&y_got, &y_want);
        println!(
            "frame {} (source {seq}): PSNR Y {y:.2} dB, U {u:.2} dB, V {v:.2} dB",
            f.frame
        );
        worst = worst.min(y).min(u).min(v);
        checked += 1;
    }
    assert!(checked >= 8, "checked {checked} pictures");
    assert!(worst >= 35.0, "worst plane PSNR {worst:.2} dB");
}
