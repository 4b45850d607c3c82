//! Writes the seed corpus: `cargo run --manifest-path protocol/fuzz/Cargo.toml --example
//! seed_corpus` (from the repository root; the files land in `protocol/fuzz/corpus/`).

use std::fs;
use std::path::Path;

use sightline_protocol::coding::{encode_frame, Encode};
use sightline_protocol::msg::*;
use sightline_protocol::time::{HostMicros, MediaTime};

fn messages() -> Vec<(&'static str, Message)> {
    let input = |seq: u64, event: InputEvent| {
        Message::Input(InputMessage {
            seq,
            viewer_time_us: seq * 1000,
            event,
        })
    };
    vec![
        (
            "hello",
            Message::Control(Control::Hello(Hello {
                min_version: 1,
                max_version: 1,
                name: "viewer".into(),
                capabilities: Capabilities::ALL,
                extensions: vec![Extension {
                    id: 1,
                    body: vec![1, 2, 3],
                }],
            })),
        ),
        (
            "welcome",
            Message::Control(Control::Welcome(Welcome {
                version: 1,
                session_id: 42,
                host_name: "host".into(),
                capabilities: Capabilities::ALL,
                extensions: vec![],
            })),
        ),
        (
            "stream_config",
            Message::Control(Control::StreamConfig(StreamConfig {
                stream_id: 0,
                codec: VideoCodec::Hevc,
                width: 1920,
                height: 1080,
                fps_millihz: 60_000,
                bit_depth: 10,
                chroma: Chroma::Yuv420,
                matrix: ColourMatrix::Bt709,
                range: ColourRange::Limited,
                primaries: ColourPrimaries::Bt709,
                transfer: TransferFunction::Bt709,
            })),
        ),
        (
            "ping",
            Message::Control(Control::Ping(Ping {
                seq: 1,
                viewer_send_us: 1000,
            })),
        ),
        (
            "pong",
            Message::Control(Control::Pong(Pong {
                seq: 1,
                viewer_send_us: 1000,
                host_recv_us: 2000,
                host_send_us: 2100,
            })),
        ),
        (
            "keyframe_request",
            Message::Control(Control::KeyframeRequest(KeyframeRequest {
                stream_id: 0,
                reason: KeyframeReason::FrameLost,
            })),
        ),
        (
            "invalidate",
            Message::Control(Control::InvalidateReferences(InvalidateReferences {
                stream_id: 0,
                first_frame: 5,
                last_frame: 7,
            })),
        ),
        (
            "stats",
            Message::Control(Control::Stats(StatsReport {
                period_ms: 1000,
                frames_received: 60,
                ..StatsReport::default()
            })),
        ),
        (
            "goodbye",
            Message::Control(Control::Goodbye(Goodbye {
                reason: GoodbyeReason::VersionMismatch {
                    min_version: 1,
                    max_version: 2,
                },
                message: "bye".into(),
            })),
        ),
        (
            "video",
            Message::Video(VideoFragment {
                stream_id: 0,
                frame: 1,
                keyframe: true,
                fragment_index: 0,
                fragment_count: 2,
                data_fragments: 1,
                au_len: 6,
                times: Some(HostStageTimes {
                    capture_start: HostMicros(1),
                    capture_end: HostMicros(2),
                    convert_end: HostMicros(3),
                    encode_end: HostMicros(4),
                    send: HostMicros(5),
                }),
                damage: None,
                payload: vec![0, 0, 0, 1, 0x40, 0x01],
            }),
        ),
        (
            "audio",
            Message::Audio(AudioPacket {
                sequence: 1,
                media_time: MediaTime::audio(480),
                layout: ChannelLayout::Stereo,
                codec: AudioCodec::Opus,
                capture_us: HostMicros(1_700_000_000_000_000),
                payload: vec![0xFC, 0xFF, 0xFE],
            }),
        ),
        (
            "input_key",
            input(
                1,
                InputEvent::Key(KeyEvent {
                    code: 0x04,
                    keysym: 0x61,
                    modifiers: Modifiers::SHIFT,
                    pressed: true,
                }),
            ),
        ),
        (
            "input_button",
            input(
                2,
                InputEvent::Button {
                    button: MouseButton::LEFT,
                    pressed: true,
                },
            ),
        ),
        (
            "input_pen",
            input(
                3,
                InputEvent::Pen(PenEvent {
                    tool: PenTool::Pen,
                    x: 10.5,
                    y: 20.25,
                    pressure: 30_000,
                    tilt_x: -1200,
                    tilt_y: 800,
                    rotation: 9000,
                    buttons: PenButtons::BARREL1,
                    contact: PenContact::Contact,
                }),
            ),
        ),
        (
            "input_shuttle",
            input(4, InputEvent::Shuttle { position: -3 }),
        ),
        ("input_release_all", input(5, InputEvent::ReleaseAll)),
        (
            "cursor_shape",
            Message::CursorShape(CursorShape {
                id: 1,
                width: 2,
                height: 2,
                hot_x: 0,
                hot_y: 1,
                rgba: vec![0xFF; 16],
            }),
        ),
        (
            "cursor_position",
            Message::CursorPosition(CursorPosition {
                id: 1,
                x: 100,
                y: 200,
                visible: true,
            }),
        ),
    ]
}

/// A session record: `op`, `len`, bytes (see fuzz_targets/session.rs).
fn record(out: &mut Vec<u8>, op: u8, bytes: &[u8]) {
    assert!(bytes.len() <= 255);
    out.push(op);
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let decode_dir = root.join("decode_msg");
    let session_dir = root.join("session");
    fs::create_dir_all(&decode_dir)?;
    fs::create_dir_all(&session_dir)?;

    let msgs = messages();
    for (name, m) in &msgs {
        // decode_msg: the whole input is one message (and, after the knob byte, a stream).
        fs::write(decode_dir.join(name), m.to_bytes())?;
    }
    // A stream: knob byte (chunks of 8), then every message framed.
    let mut stream = vec![7u8];
    for (_, m) in &msgs {
        encode_frame(m, &mut stream);
    }
    fs::write(decode_dir.join("stream_all"), &stream)?;

    // session: hello is fed by the harness (flags bit 0 clear); then viewer traffic.
    let body = |name: &str| {
        msgs.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| m.to_bytes())
            .unwrap()
    };
    let mut s = vec![0u8];
    record(&mut s, 3, &body("ping"));
    record(&mut s, 4, &body("input_key"));
    record(&mut s, 4, &body("input_button"));
    record(&mut s, 4, &body("input_pen"));
    record(&mut s, 5, &[120]);
    record(&mut s, 4, &body("input_shuttle"));
    record(&mut s, 3, &body("keyframe_request"));
    record(&mut s, 3, &body("stats"));
    record(&mut s, 6, &body("video"));
    record(&mut s, 4, &body("input_release_all"));
    record(&mut s, 3, &body("goodbye"));
    fs::write(session_dir.join("viewer_traffic"), &s)?;

    // No automatic hello: the fuzzer must send its own.
    let mut s = vec![1u8];
    record(&mut s, 3, &body("hello"));
    record(&mut s, 3, &body("ping"));
    record(&mut s, 7, &[]);
    fs::write(session_dir.join("own_hello"), &s)?;

    // Idle until the input-release and idle timers fire.
    let mut s = vec![0u8];
    record(&mut s, 4, &body("input_key"));
    record(&mut s, 5, &[200]);
    record(&mut s, 5, &[255]);
    fs::write(session_dir.join("timeouts"), &s)?;

    // pair_msg: one of each pairing message (committed, like decode_msg).
    use sightline_protocol::pair::{PairMessage, PairRefusal, PAIR_VERSION};
    let pair_dir = root.join("pair_msg");
    fs::create_dir_all(&pair_dir)?;
    for (name, m) in [
        (
            "start",
            PairMessage::Start {
                version: PAIR_VERSION,
                viewer_name: "edit-bay".into(),
                key: vec![0x41; 33],
            },
        ),
        (
            "reply",
            PairMessage::Reply {
                host_name: "grading-01".into(),
                key: vec![0x42; 33],
                confirm: [7; 32],
            },
        ),
        ("confirm", PairMessage::Confirm { confirm: [9; 32] }),
        (
            "done",
            PairMessage::Done {
                authorized_as: "alice".into(),
            },
        ),
        (
            "refused",
            PairMessage::Refused {
                reason: PairRefusal::RateLimited,
                retry_after_ms: 2000,
                message: "too many attempts".into(),
            },
        ),
    ] {
        fs::write(pair_dir.join(name), m.to_bytes())?;
    }

    // reassemble: real frames (op 2) with some losses, duplicates (op 3), timeouts (op 1);
    // flags bit 0 set keeps the strict check on.
    let reassemble_dir = root.join("reassemble");
    fs::create_dir_all(&reassemble_dir)?;
    let mut s = vec![1u8];
    record(&mut s, 2, &[20, 1, 2, 3, 4, 5, 6, 7, 8]);
    record(&mut s, 2, &[60, 0x81, 2, 3, 0x84, 5, 6, 7, 8, 9]);
    record(&mut s, 3, &[5, 9, 9, 9]);
    record(&mut s, 1, &[150]);
    record(&mut s, 2, &[200, 0xff, 0xff, 0xff, 1]);
    fs::write(reassemble_dir.join("lossy_frames"), &s)?;
    // Hostile fragments mixed in (flags bit 0 clear).
    let mut s = vec![0u8];
    record(&mut s, 0, &body("video"));
    record(&mut s, 2, &[30, 1, 2, 3]);
    record(&mut s, 0, &body("video"));
    record(&mut s, 1, &[200]);
    fs::write(reassemble_dir.join("hostile_mix"), &s)?;

    println!("wrote the corpus under {}", root.display());
    Ok(())
}
