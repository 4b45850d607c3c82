//! `--record` writes an H.264 Annex B stream that an independent decoder (FFmpeg) reads back
//! frame for frame.

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
