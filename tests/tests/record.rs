//! `--record` writes an Annex B stream (H.264, or HEVC Main 10 / Main 4:4:4 10 for 10-bit
//! streams) that an independent decoder (FFmpeg) reads back frame for frame, with the colour
//! description the stream configuration signals.

use std::process::Command;
use std::time::{Duration, Instant};

use sightline_host::capture::synthetic::SyntheticSource;
use sightline_host::encode::{probe, EncoderSettings};
use sightline_host::pipeline::{self, VideoSettings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_stream_decodes_with_ffmpeg_to_the_same_frame_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.h264");
    const FRAMES: u64 = 45;
    let settings = VideoSettings {
        encoder: EncoderSettings {
            usage: Default::default(),
            bitrate_bps: 4_000_000,
            fps: 60.0,
            max_slice_bytes: 1100,
            threads: 2,
        },
        record: Some(path.clone()),
        max_frames: FRAMES,
        tiles: Default::default(),
    };
    let enc = settings.encoder;
    let feed = pipeline::start(
        Box::new(SyntheticSource::new(640, 360, 60)),
        move |_, _| probe(64, 64, enc).map(|(e, _)| e),
        settings,
        sightline_host::net::host_clock(Instant::now()),
    )
    .unwrap();
    let mut sub = feed.subscribe();
    let mut got = 0u64;
    let mut keyframes = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got < FRAMES {
        let unit = tokio::time::timeout_at(deadline, sub.units.recv())
            .await
            .expect("pipeline produced frames in time")
            .expect("pipeline running");
        keyframes += unit.keyframe as u32;
        got += 1;
    }
    assert!(keyframes >= 1, "the stream starts with a keyframe");
    // The pipeline stops after FRAMES and closes the file.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !feed.is_finished() {
        assert!(
            Instant::now() < deadline,
            "pipeline did not stop at its frame limit"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(sub);

    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(&path)
        .output()
        .expect("ffprobe must be installed (apt-get install ffmpeg; scripts/deps.sh does it)");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("ffprobe: {text}");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("codec_name=h264"), "{text}");
    assert!(
        text.contains("width=640") && text.contains("height=360"),
        "{text}"
    );
    assert!(text.contains(&format!("nb_read_frames={FRAMES}")), "{text}");
}

/// Runs the pipeline over the 10-bit gradient with `request` until `frames` were encoded,
/// recording to `path`.
async fn record_10_bit(
    request: sightline_host::encode::format::FormatRequest,
    path: &std::path::Path,
    frames: u64,
) {
    use sightline_host::capture::gradient::GradientSource;
    let settings = VideoSettings {
        encoder: EncoderSettings::default(),
        record: Some(path.to_owned()),
        max_frames: frames,
        tiles: Default::default(),
    };
    let probe = sightline_host::encode::probe_formats(&request, settings.encoder, false);
    let feed = pipeline::start_negotiated(
        Box::new(GradientSource::new(320, 180, 60)),
        probe.offers,
        settings,
        sightline_host::net::host_clock(Instant::now()),
    )
    .unwrap();
    let mut sub = feed.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for _ in 0..frames {
        let unit = tokio::time::timeout_at(deadline, sub.units.recv())
            .await
            .expect("frames in time")
            .expect("pipeline running");
        assert_eq!(unit.config.bit_depth, 10);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !feed.is_finished() {
        assert!(Instant::now() < deadline, "pipeline did not stop");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn ffprobe_stream(path: &std::path::Path) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,profile,pix_fmt,color_range,color_space,color_primaries,width,height,nb_read_frames",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(path)
        .output()
        .expect("ffprobe must be installed (apt-get install ffmpeg; scripts/deps.sh does it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("ffprobe {}: {text}", path.display());
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_10_bit_hevc_is_main_10_yuv420p10le_with_its_colour_signalled() {
    use sightline_host::encode::format::{CodecPreference, FormatRequest};
    use sightline_protocol::msg::{Chroma, ColourMatrix, ColourRange};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.hevc");
    let request = FormatRequest {
        codec: CodecPreference::Hevc,
        bit_depth: 10,
        chroma: Chroma::Yuv420,
        matrix: ColourMatrix::Bt709,
        range: ColourRange::Full,
    };
    record_10_bit(request, &path, 12).await;
    let text = ffprobe_stream(&path);
    for want in [
        "codec_name=hevc",
        "profile=Main 10",
        "pix_fmt=yuv420p10le",
        "color_range=pc",
        "color_space=bt709",
        "color_primaries=bt709",
        "width=320",
        "nb_read_frames=12",
    ] {
        assert!(text.contains(want), "{want} missing in {text}");
    }
    // BT.2020, limited range and 4:4:4 are signalled too.
    let path = dir.path().join("rec444.hevc");
    let request = FormatRequest {
        chroma: Chroma::Yuv444,
        matrix: ColourMatrix::Bt2020Ncl,
        range: ColourRange::Limited,
        ..request
    };
    record_10_bit(request, &path, 4).await;
    let text = ffprobe_stream(&path);
    for want in [
        "profile=Rext",
        "pix_fmt=yuv444p10le",
        "color_range=tv",
        "color_space=bt2020nc",
        "color_primaries=bt2020",
    ] {
        assert!(text.contains(want), "{want} missing in {text}");
    }
}
