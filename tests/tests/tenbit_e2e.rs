//! 10-bit video end to end over real QUIC on loopback: the synthetic 1024-level gradient →
//! 10-bit conversion → FFmpeg encoder (HEVC Main 10 / H.264 High 10) → fragments with parity →
//! reassembly → the viewer's FFmpeg decoder → a 10-bit `DecodedFrame`. Counts the luma codes the
//! grey ramp keeps: ≥ 98 % of what the signalled range allows (1024 full, 877 limited) at the
//! default bitrate, against at most 256 for the 8-bit stream. Also checks the negotiation: a
//! viewer that cannot decode 10-bit gets the 8-bit openh264 stream, and a host without 10-bit
//! encoders serves 10-bit viewers in 8-bit.

#![cfg(test)]

use std::time::{Duration, Instant};

use sightline_certs::TrustPolicy;
use sightline_host::capture::gradient::{GradientLayout, GradientSource};
use sightline_host::encode::format::{CodecPreference, FormatRequest};
use sightline_host::encode::{probe_formats, EncoderSettings};
use sightline_host::pipeline::VideoSettings;
use sightline_protocol::msg::{
    BitDepths, Capabilities, Chroma, ColourMatrix, ColourRange, StreamConfig, VideoCodec,
};
use sightline_protocol::session::ViewerEvent;
use sightline_tests::{Pki, VideoHost};
use sightline_viewer::frame::{DecodedFrame, PictureFormat};
use sightline_viewer::headless::Recorder;
use sightline_viewer::net::{connect_media, Media};
use sightline_viewer::stats::SharedClock;

/// Wide enough for one column per level; short, to keep the test quick.
/// `SIGHTLINE_GRADIENT_SIZE=1920x1080` runs the same checks at another size.
fn size() -> (u32, u32) {
    std::env::var("SIGHTLINE_GRADIENT_SIZE")
        .ok()
        .and_then(|s| {
            let (w, h) = s.split_once('x')?;
            Some((w.parse().ok()?, h.parse().ok()?))
        })
        .unwrap_or((1024, 192))
}
const FPS: u32 = 60;
/// Frames to decode before looking at the last one.
const FRAMES: u64 = 20;

struct Outcome {
    config: StreamConfig,
    last: DecodedFrame,
}

/// Streams the gradient with the formats `request` gives to a viewer limited to `viewer_caps`
/// (empty fields: everything it decodes) and returns the last decoded picture.
async fn stream_gradient(request: FormatRequest, viewer_caps: Capabilities) -> Outcome {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let settings = VideoSettings {
        encoder: EncoderSettings {
            max_slice_bytes: 1100,
            ..EncoderSettings::default()
        },
        record: None,
        max_frames: 0,
        tiles: Default::default(),
    };
    let probe = probe_formats(&request, settings.encoder, false);
    for line in &probe.report {
        println!("probe: {line}");
    }
    let pki = Pki::new();
    let host = VideoHost::start_negotiated(
        &pki,
        Box::new(GradientSource::new(size().0, size().1, FPS)),
        probe.offers,
        settings,
    );
    let known = pki.known_hosts("known_hosts", host.addr, &pki.host);
    let clock = SharedClock::default();
    let recorder = Recorder::new(clock.clone(), FRAMES, true);
    let media = Media {
        video: Some(Box::new(recorder.clone())),
        clock,
        ..Media::default()
    };
    let mut opts = pki.connect_options(host.addr, &pki.viewer, known, TrustPolicy::PinnedOnly);
    opts.session.capabilities = viewer_caps;
    let mut conn = connect_media(opts, media).await.expect("connect");
    let mut config = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = recorder.done.notified() => break,
            ev = conn.next_event() => match ev {
                Some(ViewerEvent::StreamConfig(c)) => config = Some(c),
                Some(ViewerEvent::Closed(r)) => panic!("session closed: {r}"),
                None => panic!("session ended"),
                Some(_) => {}
            },
            _ = tokio::time::sleep_until(deadline) => {
                panic!("only {} frames decoded in 60 s", recorder.decoded())
            }
        }
    }
    conn.close("done").await;
    let last = recorder
        .recording
        .lock()
        .unwrap()
        .last_frame
        .take()
        .expect("a decoded picture");
    Outcome {
        config: config.expect("a stream configuration"),
        last,
    }
}

/// Distinct luma codes in the middle rows of the grey ramp (away from its edges, where the
/// codec blends it with its neighbours).
fn grey_codes(f: &DecodedFrame) -> Vec<u16> {
    let l = GradientLayout::new(f.width, f.height);
    let rows = l.grey.y + 4..l.grey.y + l.grey.h - 4;
    let mut codes = Vec::new();
    for r in rows {
        let row = &f.y[r as usize * f.y_stride..];
        match f.format.bytes_per_sample() {
            2 => codes.extend(
                row.chunks_exact(2)
                    .take(f.width as usize)
                    .map(|s| u16::from_le_bytes([s[0], s[1]])),
            ),
            _ => codes.extend(row[..f.width as usize].iter().map(|&s| s as u16)),
        }
    }
    codes.sort_unstable();
    codes.dedup();
    codes
}

fn ten_bit(codec: CodecPreference, range: ColourRange) -> FormatRequest {
    FormatRequest {
        codec,
        bit_depth: 10,
        chroma: Chroma::Yuv420,
        matrix: ColourMatrix::Bt709,
        range,
    }
}

fn check_levels(o: &Outcome, range: ColourRange) -> usize {
    assert_eq!(o.config.bit_depth, 10, "{:?}", o.config);
    assert_eq!(o.config.range, range);
    assert_eq!(o.last.format, PictureFormat::I420P10);
    assert_eq!((o.last.width, o.last.height), size());
    let codes = grey_codes(&o.last);
    let (lo, hi) = match range {
        ColourRange::Full => (0u16, 1023u16),
        ColourRange::Limited => (64, 940),
    };
    let allowed = (hi - lo + 1) as usize;
    let kept = codes.iter().filter(|c| (lo..=hi).contains(c)).count();
    println!(
        "{}: {kept} of {allowed} luma codes kept ({:.1} %)",
        o.config.profile_name(),
        kept as f64 * 100.0 / allowed as f64
    );
    assert!(
        kept as f64 >= 0.98 * allowed as f64,
        "{}: only {kept} of {allowed} codes kept",
        o.config.profile_name()
    );
    kept
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hevc_main10_full_range_keeps_the_1024_levels() {
    let o = stream_gradient(
        ten_bit(CodecPreference::Hevc, ColourRange::Full),
        Capabilities::default(),
    )
    .await;
    assert_eq!(o.config.codec, VideoCodec::Hevc);
    check_levels(&o, ColourRange::Full);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_high10_limited_range_keeps_the_877_levels() {
    let o = stream_gradient(
        ten_bit(CodecPreference::H264, ColourRange::Limited),
        Capabilities::default(),
    )
    .await;
    assert_eq!(o.config.codec, VideoCodec::H264);
    check_levels(&o, ColourRange::Limited);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_8_bit_viewer_gets_the_8_bit_stream_and_at_most_256_levels() {
    // The host offers HEVC Main 10 first; this viewer decodes 8-bit only, so the host falls
    // back to openh264 — and the same count shows what 8 bits do to the ramp.
    let eight_only = Capabilities {
        bit_depths: BitDepths::EIGHT,
        ..Capabilities::default()
    };
    let o = stream_gradient(
        ten_bit(CodecPreference::Hevc, ColourRange::Full),
        eight_only,
    )
    .await;
    assert_eq!(
        (o.config.codec, o.config.bit_depth),
        (VideoCodec::H264, 8),
        "{:?}",
        o.config
    );
    assert_eq!(o.last.format, PictureFormat::I420);
    let codes = grey_codes(&o.last);
    println!("8-bit stream: {} luma codes in the ramp", codes.len());
    assert!(codes.len() <= 256, "{} codes", codes.len());
    assert!(
        (codes.len() as f64) < 0.98 * 877.0,
        "the count must tell 8 from 10 bits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_without_10_bit_serves_a_10_bit_viewer_in_8_bit() {
    let started = Instant::now();
    let o = stream_gradient(FormatRequest::default(), Capabilities::default()).await;
    assert_eq!((o.config.codec, o.config.bit_depth), (VideoCodec::H264, 8));
    assert_eq!(o.last.format, PictureFormat::I420);
    println!("8-bit fallback in {:?}", started.elapsed());
}
