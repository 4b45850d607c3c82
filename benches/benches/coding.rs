//! Wire coding and session hot paths: encode/decode of the messages sent per frame and per
//! input event, stream framing, and the clock estimator.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sightline_protocol::coding::{encode_frame, FrameReader, DEFAULT_MAX_MESSAGE_LEN};
use sightline_protocol::msg::{
    HostStageTimes, InputEvent, InputMessage, Message, PenButtons, PenContact, PenEvent, PenTool,
    VideoFragment,
};
use sightline_protocol::time::{ClockEstimator, ClockSample, HostMicros};
use sightline_protocol::{Decode, Encode};

fn fragment() -> Message {
    Message::Video(VideoFragment {
        stream_id: 0,
        frame: 123_456,
        keyframe: false,
        fragment_index: 0,
        fragment_count: 12,
        data_fragments: 11,
        au_len: 12_000,
        times: Some(HostStageTimes {
            capture_start: HostMicros(1),
            capture_end: HostMicros(2),
            convert_end: HostMicros(3),
            encode_end: HostMicros(4),
            send: HostMicros(5),
        }),
        damage: None,
        payload: vec![0xAB; 1150],
    })
}

fn pen() -> Message {
    Message::Input(InputMessage {
        seq: 99,
        viewer_time_us: 1_000_000,
        event: InputEvent::Pen(PenEvent {
            tool: PenTool::Pen,
            x: 812.25,
            y: 455.5,
            pressure: 40_000,
            tilt_x: -1200,
            tilt_y: 800,
            rotation: 9000,
            buttons: PenButtons::EMPTY,
            contact: PenContact::Contact,
        }),
    })
}

fn bench_coding(c: &mut Criterion) {
    let mut g = c.benchmark_group("coding");
    for (name, msg) in [("video_fragment_1150B", fragment()), ("pen_input", pen())] {
        let bytes = msg.to_bytes();
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        let mut out = Vec::with_capacity(2048);
        g.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| {
                out.clear();
                black_box(&msg).encode(&mut out);
                black_box(out.len())
            })
        });
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| Message::from_bytes(black_box(&bytes)).expect("valid"))
        });
    }
    g.finish();

    // A stream of 64 input messages arriving in 1 KiB pieces.
    let mut stream = Vec::new();
    for _ in 0..64 {
        encode_frame(&pen(), &mut stream);
    }
    let mut g = c.benchmark_group("framing");
    g.throughput(Throughput::Elements(64));
    g.bench_function("frame_reader/64_inputs", |b| {
        b.iter(|| {
            let mut r = FrameReader::new(DEFAULT_MAX_MESSAGE_LEN);
            let mut n = 0;
            for chunk in stream.chunks(1024) {
                r.push(chunk);
                while let Ok(Some(m)) = r.next_message() {
                    black_box(&m);
                    n += 1;
                }
            }
            assert_eq!(n, 64);
        })
    });
    g.finish();

    c.bench_function("clock_estimator/add+estimate(window 128)", |b| {
        let mut e = ClockEstimator::new(128);
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            e.add(ClockSample {
                rtt_us: 20_000 + (i * 7919) % 5000,
                offset_us: 1_000 + (i % 13) as i64,
            });
            black_box(e.estimate())
        })
    });
}

criterion_group!(benches, bench_coding);
criterion_main!(benches);
