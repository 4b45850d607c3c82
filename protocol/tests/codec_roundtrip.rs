//! Round-trip and error-path tests for the wire encoding.
//!
//! The proptest strategies below generate every message type and every variant, restricted to
//! values the decoder accepts (see `protocol/src/msg/*.rs` for the rules). The properties are:
//!
//! * `Message::from_bytes(&m.to_bytes()) == Ok(m)` and re-encoding gives the same bytes;
//! * the same through `encode_frame` + `FrameReader`, several messages back to back, fed in
//!   random-size chunks;
//! * every strict prefix of a valid encoding is `Truncated`, never `Ok`, never a panic.
//!
//! The unit tests pin the other error kinds: `TooLarge` for an over-long frame as soon as its
//! header is in, `TrailingBytes`, `UnknownTag`, and the field limits and range rules.

use proptest::collection::vec;
use proptest::prelude::*;

use sightline_protocol::audio::layout::Speaker;
use sightline_protocol::coding::{
    encode_frame, Decode, DecodeError, Encode, FrameReader, DEFAULT_MAX_MESSAGE_LEN,
};
use sightline_protocol::msg::*;
use sightline_protocol::time::{HostMicros, MediaTime};

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// One of the values of a `wire_enum!` type.
fn one_of<T: Copy + std::fmt::Debug + 'static>(all: &'static [T]) -> impl Strategy<Value = T> {
    proptest::sample::select(all)
}

/// A UTF-8 string of at most `max` bytes (mixed ASCII and multi-byte characters).
fn bounded_string(max_bytes: usize) -> impl Strategy<Value = String> {
    // `\PC` is any non-control char, up to 4 bytes each: `max_bytes / 4` chars always fit.
    let chars = max_bytes / 4;
    prop_oneof![
        3 => proptest::string::string_regex(&format!("\\PC{{0,{chars}}}")).unwrap(),
        1 => proptest::string::string_regex(&format!("[a-z0-9 ._-]{{0,{max_bytes}}}")).unwrap(),
    ]
    .prop_filter("within the byte limit", move |s| s.len() <= max_bytes)
}

fn capabilities() -> impl Strategy<Value = Capabilities> {
    // Unknown bits are preserved by the decoder, so any value round-trips.
    (
        any::<u16>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
    )
        .prop_map(|(v, b, c, a, i)| Capabilities {
            video_codecs: VideoCodecs(v),
            bit_depths: BitDepths(b),
            chroma: ChromaFormats(c),
            audio_layouts: AudioLayouts(a),
            input_kinds: InputKinds(i),
        })
}

fn extension() -> impl Strategy<Value = Extension> {
    let body = prop_oneof![
        8 => vec(any::<u8>(), 0..64),
        1 => vec(any::<u8>(), MAX_EXTENSION_LEN - 2..=MAX_EXTENSION_LEN),
    ];
    (any::<u16>(), body).prop_map(|(id, body)| Extension { id, body })
}

fn extensions() -> impl Strategy<Value = Vec<Extension>> {
    prop_oneof![
        4 => vec(extension(), 0..4),
        1 => vec(
            (any::<u16>(), vec(any::<u8>(), 0..8)).prop_map(|(id, body)| Extension { id, body }),
            MAX_EXTENSIONS - 1..=MAX_EXTENSIONS,
        ),
    ]
}

fn hello() -> impl Strategy<Value = Hello> {
    (
        any::<u16>(),
        any::<u16>(),
        bounded_string(MAX_NAME_LEN),
        capabilities(),
        extensions(),
    )
        .prop_map(|(a, b, name, capabilities, extensions)| Hello {
            min_version: a.min(b),
            max_version: a.max(b),
            name,
            capabilities,
            extensions,
        })
}

fn welcome() -> impl Strategy<Value = Welcome> {
    (
        any::<u16>(),
        any::<u64>(),
        bounded_string(MAX_NAME_LEN),
        capabilities(),
        extensions(),
    )
        .prop_map(
            |(version, session_id, host_name, capabilities, extensions)| Welcome {
                version,
                session_id,
                host_name,
                capabilities,
                extensions,
            },
        )
}

fn dimension() -> impl Strategy<Value = u32> {
    prop_oneof![
        1 => Just(1u32),
        1 => Just(MAX_DIMENSION),
        6 => 1..=MAX_DIMENSION,
    ]
}

fn stream_config() -> impl Strategy<Value = StreamConfig> {
    (
        (
            any::<u8>(),
            one_of(VideoCodec::ALL),
            dimension(),
            dimension(),
            any::<u32>(),
            prop_oneof![Just(8u8), Just(10u8)],
        ),
        (
            one_of(Chroma::ALL),
            one_of(ColourMatrix::ALL),
            one_of(ColourRange::ALL),
            one_of(ColourPrimaries::ALL),
            one_of(TransferFunction::ALL),
        ),
    )
        .prop_map(
            |(
                (stream_id, codec, width, height, fps_millihz, bit_depth),
                (chroma, matrix, range, primaries, transfer),
            )| StreamConfig {
                stream_id,
                codec,
                width,
                height,
                fps_millihz,
                bit_depth,
                chroma,
                matrix,
                range,
                primaries,
                transfer,
            },
        )
}

fn stats_report() -> impl Strategy<Value = StatsReport> {
    (
        (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()),
        (
            any::<u64>(),
            any::<u32>(),
            any::<i64>(),
            any::<u32>(),
            any::<u32>(),
        ),
    )
        .prop_map(
            |(
                (period_ms, frames_received, frames_decoded, frames_lost),
                (bytes_received, rtt_us, clock_offset_us, decode_p50_us, present_p50_us),
            )| StatsReport {
                period_ms,
                frames_received,
                frames_decoded,
                frames_lost,
                bytes_received,
                rtt_us,
                clock_offset_us,
                decode_p50_us,
                present_p50_us,
            },
        )
}

fn goodbye_reason() -> impl Strategy<Value = GoodbyeReason> {
    prop_oneof![
        Just(GoodbyeReason::Normal),
        (any::<u16>(), any::<u16>()).prop_map(|(min_version, max_version)| {
            GoodbyeReason::VersionMismatch {
                min_version,
                max_version,
            }
        }),
        Just(GoodbyeReason::ProtocolError),
        Just(GoodbyeReason::Timeout),
        Just(GoodbyeReason::HostShutdown),
        Just(GoodbyeReason::Refused),
    ]
}

fn goodbye() -> impl Strategy<Value = Goodbye> {
    (goodbye_reason(), bounded_string(MAX_GOODBYE_LEN))
        .prop_map(|(reason, message)| Goodbye { reason, message })
}

fn control() -> impl Strategy<Value = Control> {
    prop_oneof![
        hello().prop_map(Control::Hello),
        welcome().prop_map(Control::Welcome),
        stream_config().prop_map(Control::StreamConfig),
        (any::<u32>(), any::<u64>()).prop_map(|(seq, viewer_send_us)| Control::Ping(Ping {
            seq,
            viewer_send_us
        })),
        (any::<u32>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(seq, viewer_send_us, host_recv_us, host_send_us)| Control::Pong(Pong {
                seq,
                viewer_send_us,
                host_recv_us,
                host_send_us,
            })
        ),
        (any::<u8>(), one_of(KeyframeReason::ALL)).prop_map(|(stream_id, reason)| {
            Control::KeyframeRequest(KeyframeRequest { stream_id, reason })
        }),
        (any::<u8>(), any::<u32>(), any::<u32>()).prop_map(
            |(stream_id, first_frame, last_frame)| {
                Control::InvalidateReferences(InvalidateReferences {
                    stream_id,
                    first_frame,
                    last_frame,
                })
            }
        ),
        stats_report().prop_map(Control::Stats),
        goodbye().prop_map(Control::Goodbye),
        audio_config().prop_map(Control::AudioConfig),
    ]
}

fn host_stage_times() -> impl Strategy<Value = HostStageTimes> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(a, b, c, d, e)| HostStageTimes {
            capture_start: HostMicros(a),
            capture_end: HostMicros(b),
            convert_end: HostMicros(c),
            encode_end: HostMicros(d),
            send: HostMicros(e),
        })
}

fn fragment_count() -> impl Strategy<Value = u16> {
    prop_oneof![
        1 => Just(1u16),
        1 => Just(MAX_FRAGMENTS),
        6 => 1..=MAX_FRAGMENTS,
    ]
}

fn damage_list() -> impl Strategy<Value = Vec<sightline_protocol::damage::DamageRect>> {
    let rect = (0u16..16384, 0u16..16384).prop_flat_map(|(x, y)| {
        (Just(x), Just(y), 1..=16384 - x, 1..=16384 - y).prop_map(|(x, y, width, height)| {
            sightline_protocol::damage::DamageRect {
                x,
                y,
                width,
                height,
            }
        })
    });
    vec(rect, 0..=sightline_protocol::damage::MAX_DAMAGE_RECTS)
}

fn video_fragment() -> impl Strategy<Value = VideoFragment> {
    let payload = prop_oneof![
        10 => vec(any::<u8>(), 0..256),
        1 => vec(any::<u8>(), 1000..1400),
    ];
    (
        any::<u8>(),
        any::<u32>(),
        any::<bool>(),
        fragment_count().prop_flat_map(|count| (0..count, Just(count), 1..=count)),
        any::<u32>(),
        proptest::option::of(host_stage_times()),
        proptest::option::of(damage_list()),
        payload,
    )
        .prop_map(
            |(
                stream_id,
                frame,
                keyframe,
                (fragment_index, fragment_count, data_fragments),
                au_len,
                times,
                damage,
                payload,
            )| {
                VideoFragment {
                    stream_id,
                    frame,
                    keyframe,
                    fragment_index,
                    fragment_count,
                    data_fragments,
                    au_len,
                    times,
                    damage,
                    payload,
                }
            },
        )
}

fn audio_packet() -> impl Strategy<Value = AudioPacket> {
    let payload = prop_oneof![
        10 => vec(any::<u8>(), 0..256),
        1 => vec(any::<u8>(), 1000..1400),
    ];
    (
        any::<u32>(),
        any::<u64>(),
        one_of(ChannelLayout::ALL),
        one_of(AudioCodec::ALL),
        any::<u64>(),
        payload,
    )
        .prop_map(
            |(sequence, ticks, layout, codec, capture, payload)| AudioPacket {
                sequence,
                media_time: MediaTime::audio(ticks),
                layout,
                codec,
                capture_us: HostMicros(capture),
                payload,
            },
        )
}

fn audio_config() -> impl Strategy<Value = AudioConfig> {
    use sightline_protocol::audio::layout::ChannelOrder;
    (
        one_of(ChannelLayout::ALL),
        any::<bool>(),
        any::<u8>(),
        1u16..=MAX_FRAME_SAMPLES,
        any::<u32>(),
        1u8..=8,
        any::<u8>(),
        any::<u64>(),
    )
        .prop_flat_map(
            |(layout, opus, stream_id, frame_samples, bitrate_bps, streams, coupled, seed)| {
                let speakers = ChannelOrder::Wave.speakers(layout).to_vec();
                Just(speakers).prop_shuffle().prop_map(move |speakers| {
                    let coupled_streams = coupled % (streams + 1);
                    let total = (streams + coupled_streams) as u64;
                    let mapping = (0..speakers.len() as u64)
                        .map(|i| match (seed >> (i * 4)) % (total + 1) {
                            v if v == total => 255,
                            v => v as u8,
                        })
                        .collect();
                    AudioConfig {
                        stream_id,
                        layout,
                        codec: if opus {
                            AudioCodec::Opus
                        } else {
                            AudioCodec::Pcm24
                        },
                        sample_rate: AUDIO_SAMPLE_RATE,
                        frame_samples,
                        bitrate_bps,
                        speakers,
                        opus: opus.then_some(OpusMapping {
                            streams,
                            coupled_streams,
                            mapping,
                        }),
                    }
                })
            },
        )
}

/// Any finite f32: normal, subnormal, ±0.
fn finite_f32() -> impl Strategy<Value = f32> {
    use proptest::num::f32 as pf32;
    prop_oneof![
        pf32::POSITIVE | pf32::NEGATIVE | pf32::NORMAL | pf32::SUBNORMAL | pf32::ZERO,
        -10_000.0f32..20_000.0,
        Just(f32::MAX),
        Just(f32::MIN),
    ]
}

/// A tilt within ±90°, the limits themselves often.
fn tilt() -> impl Strategy<Value = i16> {
    prop_oneof![
        1 => Just(-MAX_TILT),
        1 => Just(MAX_TILT),
        1 => Just(0i16),
        6 => -MAX_TILT..=MAX_TILT,
    ]
}

fn pen_event() -> impl Strategy<Value = PenEvent> {
    (
        (
            one_of(PenTool::ALL),
            finite_f32(),
            finite_f32(),
            any::<u16>(),
        ),
        (
            tilt(),
            tilt(),
            prop_oneof![
                1 => Just(0u16),
                1 => Just(ROTATION_RANGE - 1),
                6 => 0..ROTATION_RANGE,
            ],
            any::<u8>(),
            one_of(PenContact::ALL),
        ),
    )
        .prop_map(
            |((tool, x, y, pressure), (tilt_x, tilt_y, rotation, buttons, contact))| PenEvent {
                tool,
                x,
                y,
                pressure,
                tilt_x,
                tilt_y,
                rotation,
                buttons: PenButtons(buttons),
                contact,
            },
        )
}

fn key_event() -> impl Strategy<Value = KeyEvent> {
    let ids = prop_oneof![
        (1..=u16::MAX, Just(0u32)),
        (Just(0u16), 1..=u32::MAX),
        (1..=u16::MAX, 1..=u32::MAX),
    ];
    (ids, any::<u16>(), any::<bool>()).prop_map(|((code, keysym), modifiers, pressed)| KeyEvent {
        code,
        keysym,
        modifiers: Modifiers(modifiers),
        pressed,
    })
}

fn input_event() -> impl Strategy<Value = InputEvent> {
    prop_oneof![
        key_event().prop_map(InputEvent::Key),
        (any::<i32>(), any::<i32>()).prop_map(|(x, y)| InputEvent::PointerMove { x, y }),
        (any::<i32>(), any::<i32>()).prop_map(|(dx, dy)| InputEvent::PointerRelative { dx, dy }),
        (1..=u8::MAX, any::<bool>()).prop_map(|(b, pressed)| InputEvent::Button {
            button: MouseButton(b),
            pressed
        }),
        (any::<i32>(), any::<i32>()).prop_map(|(dx, dy)| InputEvent::Scroll { dx, dy }),
        pen_event().prop_map(InputEvent::Pen),
        any::<i16>().prop_map(|delta| InputEvent::Jog { delta }),
        (-SHUTTLE_MAX..=SHUTTLE_MAX).prop_map(|position| InputEvent::Shuttle { position }),
        (any::<u8>(), any::<bool>())
            .prop_map(|(index, pressed)| InputEvent::ControllerButton { index, pressed }),
        Just(InputEvent::ReleaseAll),
        (1..=u32::MAX).prop_map(|id| InputEvent::Probe { id }),
    ]
}

fn input_message() -> impl Strategy<Value = InputMessage> {
    (any::<u64>(), any::<u64>(), input_event()).prop_map(|(seq, viewer_time_us, event)| {
        InputMessage {
            seq,
            viewer_time_us,
            event,
        }
    })
}

fn cursor_side() -> impl Strategy<Value = u16> {
    prop_oneof![
        2 => Just(0u16),
        2 => Just(1u16),
        1 => Just(MAX_CURSOR_SIDE),
        10 => 0..=48u16,
    ]
}

fn cursor_shape() -> impl Strategy<Value = CursorShape> {
    (cursor_side(), cursor_side())
        .prop_flat_map(|(w, h)| {
            // With a zero side any hotspot is accepted; otherwise it must lie in the image.
            let hx = if w == 0 {
                any::<u16>().boxed()
            } else {
                (0..w).boxed()
            };
            let hy = if h == 0 {
                any::<u16>().boxed()
            } else {
                (0..h).boxed()
            };
            let len = w as usize * h as usize * 4;
            (
                any::<u32>(),
                Just(w),
                Just(h),
                hx,
                hy,
                vec(any::<u8>(), len..=len),
            )
        })
        .prop_map(|(id, width, height, hot_x, hot_y, rgba)| CursorShape {
            id,
            width,
            height,
            hot_x,
            hot_y,
            rgba,
        })
}

fn cursor_position() -> impl Strategy<Value = CursorPosition> {
    (any::<u32>(), any::<i32>(), any::<i32>(), any::<bool>())
        .prop_map(|(id, x, y, visible)| CursorPosition { id, x, y, visible })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        4 => control().prop_map(Message::Control),
        2 => video_fragment().prop_map(Message::Video),
        2 => audio_packet().prop_map(Message::Audio),
        4 => input_message().prop_map(Message::Input),
        1 => cursor_shape().prop_map(Message::CursorShape),
        2 => cursor_position().prop_map(Message::CursorPosition),
    ]
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

fn assert_every_prefix_truncated(bytes: &[u8]) {
    for cut in 0..bytes.len() {
        match Message::from_bytes(&bytes[..cut]) {
            Err(DecodeError::Truncated { needed, .. }) => {
                assert!(
                    needed > 0,
                    "prefix of {cut}/{} bytes: needed 0",
                    bytes.len()
                );
                assert!(
                    needed <= bytes.len() - cut,
                    "prefix of {cut}/{} bytes claims {needed} more bytes needed",
                    bytes.len()
                );
            }
            other => panic!(
                "prefix of {cut}/{} bytes of {:02x?}: expected Truncated, got {other:?}",
                bytes.len(),
                bytes
            ),
        }
    }
}

/// Feeds `stream` to a fresh reader in chunks whose sizes cycle through `chunks`, collecting every
/// message.
fn read_chunked(stream: &[u8], chunks: &[usize]) -> Vec<Message> {
    let mut reader = FrameReader::new(DEFAULT_MAX_MESSAGE_LEN);
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < stream.len() {
        let n = chunks[i % chunks.len()].clamp(1, stream.len() - pos);
        i += 1;
        reader.push(&stream[pos..pos + n]);
        pos += n;
        while let Some(m) = reader.next_message().expect("valid stream must decode") {
            out.push(m);
        }
    }
    assert_eq!(reader.buffered(), 0, "bytes left in the reader");
    assert_eq!(reader.next_message(), Ok(None));
    out
}

proptest! {
    // No regression files: a failure prints its minimal input, which a unit test can pin.
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn message_round_trip(msg in message()) {
        let bytes = msg.to_bytes();
        let decoded = Message::from_bytes(&bytes);
        prop_assert_eq!(decoded.as_ref(), Ok(&msg));
        // The encoding is canonical: the decoded value encodes to the same bytes.
        prop_assert_eq!(decoded.unwrap().to_bytes(), bytes);
    }

    #[test]
    fn control_round_trip(c in control()) {
        let msg = Message::Control(c);
        prop_assert_eq!(Message::from_bytes(&msg.to_bytes()), Ok(msg));
    }

    #[test]
    fn input_round_trip(m in input_message()) {
        let msg = Message::Input(m);
        let bytes = msg.to_bytes();
        // Compare bit patterns too: -0.0 == 0.0 would hide a sign lost on the wire.
        let decoded = Message::from_bytes(&bytes).unwrap();
        if let (Message::Input(a), Message::Input(b)) = (&decoded, &msg) {
            if let (InputEvent::Pen(p), InputEvent::Pen(q)) = (a.event, b.event) {
                prop_assert_eq!(p.x.to_bits(), q.x.to_bits());
                prop_assert_eq!(p.y.to_bits(), q.y.to_bits());
            }
        }
        prop_assert_eq!(decoded, msg);
    }

    #[test]
    fn every_prefix_is_truncated(msg in message()) {
        assert_every_prefix_truncated(&msg.to_bytes());
    }

    #[test]
    fn framed_round_trip_in_random_chunks(
        msgs in vec(message(), 1..8),
        chunks in vec(prop_oneof![3 => 1usize..8, 2 => 8usize..200, 1 => 200usize..5000], 1..16),
    ) {
        let mut stream = Vec::new();
        for m in &msgs {
            encode_frame(m, &mut stream);
        }
        prop_assert_eq!(read_chunked(&stream, &chunks), msgs.clone());
        // All at once, and one byte at a time, agree.
        prop_assert_eq!(read_chunked(&stream, &[usize::MAX]), msgs.clone());
        prop_assert_eq!(read_chunked(&stream, &[1]), msgs);
    }

    #[test]
    fn encode_frame_appends_length_prefixed_message(msg in message(), prefix in vec(any::<u8>(), 0..8)) {
        let mut out = prefix.clone();
        encode_frame(&msg, &mut out);
        prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
        let body = msg.to_bytes();
        let len = u32::from_le_bytes(out[prefix.len()..prefix.len() + 4].try_into().unwrap());
        prop_assert_eq!(len as usize, body.len());
        prop_assert_eq!(&out[prefix.len() + 4..], &body[..]);
    }

    #[test]
    fn trailing_bytes_are_rejected(msg in message(), extra in vec(any::<u8>(), 1..16)) {
        let mut bytes = msg.to_bytes();
        bytes.extend_from_slice(&extra);
        match Message::from_bytes(&bytes) {
            Err(DecodeError::TrailingBytes { count, .. }) => prop_assert_eq!(count, extra.len()),
            other => prop_assert!(false, "expected TrailingBytes, got {:?}", other),
        }
    }

    #[test]
    fn truncated_frame_waits_for_more(msg in message(), cut_seed in any::<usize>()) {
        let mut stream = Vec::new();
        encode_frame(&msg, &mut stream);
        let cut = cut_seed % stream.len();
        let mut reader = FrameReader::new(DEFAULT_MAX_MESSAGE_LEN);
        reader.push(&stream[..cut]);
        prop_assert_eq!(reader.next_message(), Ok(None));
        prop_assert_eq!(reader.buffered(), cut);
        reader.push(&stream[cut..]);
        prop_assert_eq!(reader.next_message(), Ok(Some(msg)));
        prop_assert_eq!(reader.next_message(), Ok(None));
    }
}

// ---------------------------------------------------------------------------------------------
// Fixed examples: one of each variant
// ---------------------------------------------------------------------------------------------

fn caps_all() -> Capabilities {
    Capabilities::ALL
}

/// One message of every type and variant, each field set to something other than zero.
fn examples() -> Vec<Message> {
    let mut v = vec![
        Message::Control(Control::Hello(Hello {
            min_version: 1,
            max_version: 3,
            name: "viewer ✓".into(),
            capabilities: caps_all(),
            extensions: vec![
                Extension {
                    id: 7,
                    body: vec![1, 2, 3],
                },
                Extension {
                    id: 0xffff,
                    body: vec![],
                },
            ],
        })),
        Message::Control(Control::Welcome(Welcome {
            version: 1,
            session_id: 0x0123_4567_89ab_cdef,
            host_name: "host".into(),
            capabilities: caps_all(),
            extensions: vec![Extension {
                id: 1,
                body: vec![9; 10],
            }],
        })),
        Message::Control(Control::StreamConfig(StreamConfig {
            stream_id: 1,
            codec: VideoCodec::Hevc,
            width: 3840,
            height: 2160,
            fps_millihz: 59_940,
            bit_depth: 10,
            chroma: Chroma::Yuv444,
            matrix: ColourMatrix::Bt2020Ncl,
            range: ColourRange::Full,
            primaries: ColourPrimaries::Bt2020,
            transfer: TransferFunction::Pq,
        })),
        Message::Control(Control::AudioConfig(opus_71_config())),
        Message::Control(Control::AudioConfig(AudioConfig {
            stream_id: 0,
            layout: ChannelLayout::Stereo,
            codec: AudioCodec::Pcm24,
            sample_rate: AUDIO_SAMPLE_RATE,
            frame_samples: 120,
            bitrate_bps: 2_304_000,
            speakers: vec![Speaker::FrontLeft, Speaker::FrontRight],
            opus: None,
        })),
        Message::Control(Control::Ping(Ping {
            seq: 5,
            viewer_send_us: 123_456,
        })),
        Message::Control(Control::Pong(Pong {
            seq: 5,
            viewer_send_us: 123_456,
            host_recv_us: 200_000,
            host_send_us: 200_010,
        })),
        Message::Control(Control::KeyframeRequest(KeyframeRequest {
            stream_id: 0,
            reason: KeyframeReason::FrameLost,
        })),
        Message::Control(Control::InvalidateReferences(InvalidateReferences {
            stream_id: 0,
            first_frame: 10,
            last_frame: 12,
        })),
        Message::Control(Control::Stats(StatsReport {
            period_ms: 1000,
            frames_received: 60,
            frames_decoded: 59,
            frames_lost: 1,
            bytes_received: 1_000_000,
            rtt_us: 1500,
            clock_offset_us: -42,
            decode_p50_us: 2000,
            present_p50_us: 3000,
        })),
        Message::Video(VideoFragment {
            stream_id: 0,
            frame: 77,
            keyframe: true,
            fragment_index: 0,
            fragment_count: 3,
            data_fragments: 1,
            au_len: 1000,
            times: Some(HostStageTimes {
                capture_start: HostMicros(1),
                capture_end: HostMicros(2),
                convert_end: HostMicros(3),
                encode_end: HostMicros(4),
                send: HostMicros(5),
            }),
            damage: None,
            payload: vec![0xAB; 40],
        }),
        Message::Video(VideoFragment {
            stream_id: 0,
            frame: 77,
            keyframe: false,
            fragment_index: 2,
            fragment_count: 3,
            data_fragments: 1,
            au_len: 1000,
            times: None,
            damage: None,
            payload: vec![0xCD; 7],
        }),
        Message::CursorShape(CursorShape {
            id: 3,
            width: 2,
            height: 3,
            hot_x: 1,
            hot_y: 2,
            rgba: (0..24).collect(),
        }),
        Message::CursorPosition(CursorPosition {
            id: 3,
            x: -5,
            y: 700,
            visible: true,
        }),
    ];
    for reason in [
        GoodbyeReason::Normal,
        GoodbyeReason::VersionMismatch {
            min_version: 2,
            max_version: 4,
        },
        GoodbyeReason::ProtocolError,
        GoodbyeReason::Timeout,
        GoodbyeReason::HostShutdown,
        GoodbyeReason::Refused,
    ] {
        v.push(Message::Control(Control::Goodbye(Goodbye {
            reason,
            message: "bye".into(),
        })));
    }
    for &layout in ChannelLayout::ALL {
        for &codec in AudioCodec::ALL {
            v.push(Message::Audio(AudioPacket {
                sequence: 9,
                media_time: MediaTime::audio(480),
                layout,
                codec,
                capture_us: HostMicros(1_700_000_000_000_000),
                payload: vec![layout.channels(); 12],
            }));
        }
    }
    let events = [
        InputEvent::Key(KeyEvent {
            code: 0x04,
            keysym: 0x61,
            modifiers: Modifiers::SHIFT,
            pressed: true,
        }),
        InputEvent::Key(KeyEvent {
            code: 0,
            keysym: 0x0100_20AC,
            modifiers: Modifiers::EMPTY,
            pressed: false,
        }),
        InputEvent::PointerMove { x: 10, y: -20 },
        InputEvent::PointerRelative { dx: -3, dy: 4 },
        InputEvent::Button {
            button: MouseButton::RIGHT,
            pressed: true,
        },
        InputEvent::Scroll { dx: 0, dy: -120 },
        InputEvent::Pen(PenEvent {
            tool: PenTool::Eraser,
            x: 100.25,
            y: -0.5,
            pressure: 40_000,
            tilt_x: -MAX_TILT,
            tilt_y: MAX_TILT,
            rotation: ROTATION_RANGE - 1,
            buttons: PenButtons::BARREL2,
            contact: PenContact::Contact,
        }),
        InputEvent::Pen(PenEvent {
            tool: PenTool::Pen,
            x: -0.0,
            y: f32::MAX,
            pressure: 0,
            tilt_x: MAX_TILT,
            tilt_y: -MAX_TILT,
            rotation: 0,
            buttons: PenButtons::EMPTY,
            contact: PenContact::Leave,
        }),
        InputEvent::Jog { delta: -3 },
        InputEvent::Shuttle {
            position: -SHUTTLE_MAX,
        },
        InputEvent::ControllerButton {
            index: 4,
            pressed: true,
        },
        InputEvent::ReleaseAll,
    ];
    for (i, event) in events.into_iter().enumerate() {
        v.push(Message::Input(InputMessage {
            seq: i as u64 + 1,
            viewer_time_us: 1000 * i as u64,
            event,
        }));
    }
    v
}

#[test]
fn examples_round_trip() {
    for m in examples() {
        assert_eq!(Message::from_bytes(&m.to_bytes()), Ok(m.clone()), "{m:?}");
    }
}

#[test]
fn every_prefix_of_every_example_is_truncated() {
    for m in examples() {
        assert_every_prefix_truncated(&m.to_bytes());
    }
}

#[test]
fn examples_back_to_back_in_one_stream() {
    let msgs = examples();
    let mut stream = Vec::new();
    for m in &msgs {
        encode_frame(m, &mut stream);
    }
    for chunk in [1, 2, 3, 5, 7, 13, 64, 1000, stream.len()] {
        assert_eq!(read_chunked(&stream, &[chunk]), msgs, "chunk size {chunk}");
    }
}

#[test]
fn long_stream_through_one_reader() {
    // Several hundred KiB through one reader, so that it compacts its buffer (it does past
    // 64 KiB consumed) while frames straddle chunk boundaries.
    let msgs: Vec<Message> = (0..300u32)
        .map(|i| {
            if i % 3 == 0 {
                Message::CursorPosition(CursorPosition {
                    id: i,
                    x: i as i32,
                    y: -(i as i32),
                    visible: i % 2 == 0,
                })
            } else {
                Message::Video(VideoFragment {
                    stream_id: 0,
                    frame: i,
                    keyframe: false,
                    fragment_index: 0,
                    fragment_count: 1,
                    data_fragments: 1,
                    au_len: 1000,
                    times: None,
                    damage: None,
                    payload: (0..(i as usize * 37) % 4000)
                        .map(|b| (b ^ i as usize) as u8)
                        .collect(),
                })
            }
        })
        .collect();
    let mut stream = Vec::new();
    for m in &msgs {
        encode_frame(m, &mut stream);
    }
    assert!(stream.len() > 3 * 64 * 1024);
    for chunks in [
        &[1usize, 7, 100, 4096, 3, 65_536][..],
        &[999],
        &[70_000],
        &[usize::MAX],
    ] {
        assert_eq!(read_chunked(&stream, chunks), msgs, "chunks {chunks:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Frame limits
// ---------------------------------------------------------------------------------------------

#[test]
fn over_long_frame_is_refused_as_soon_as_the_header_arrives() {
    let max = 100;
    let header = ((max + 1) as u32).to_le_bytes();
    let mut reader = FrameReader::new(max);
    for (i, b) in header.iter().enumerate() {
        // Three header bytes are not enough to know the length yet.
        assert_eq!(reader.next_message(), Ok(None), "after {i} header bytes");
        reader.push(&[*b]);
    }
    let expected = Err(DecodeError::TooLarge {
        what: "frame",
        len: max + 1,
        max,
    });
    assert_eq!(reader.next_message(), expected);
    // Nothing of the body was needed, and the reader keeps refusing.
    assert_eq!(reader.buffered(), 4);
    assert_eq!(reader.next_message(), expected);
}

#[test]
fn over_long_frame_refused_with_the_default_limit() {
    for len in [DEFAULT_MAX_MESSAGE_LEN as u32 + 1, u32::MAX] {
        let mut reader = FrameReader::new(DEFAULT_MAX_MESSAGE_LEN);
        reader.push(&len.to_le_bytes());
        assert_eq!(
            reader.next_message(),
            Err(DecodeError::TooLarge {
                what: "frame",
                len: len as usize,
                max: DEFAULT_MAX_MESSAGE_LEN,
            })
        );
    }
}

#[test]
fn frame_of_exactly_the_limit_is_accepted() {
    // A Goodbye whose frame is exactly `max` bytes long.
    let msg = Message::Control(Control::Goodbye(Goodbye {
        reason: GoodbyeReason::Normal,
        message: "x".repeat(40),
    }));
    let max = msg.to_bytes().len();
    let mut stream = Vec::new();
    encode_frame(&msg, &mut stream);
    let mut reader = FrameReader::new(max);
    reader.push(&stream);
    assert_eq!(reader.next_message(), Ok(Some(msg.clone())));
    let mut reader = FrameReader::new(max - 1);
    reader.push(&stream);
    assert!(matches!(
        reader.next_message(),
        Err(DecodeError::TooLarge { what: "frame", .. })
    ));
}

#[test]
fn empty_frame_is_truncated_message() {
    let mut reader = FrameReader::new(DEFAULT_MAX_MESSAGE_LEN);
    reader.push(&0u32.to_le_bytes());
    assert!(matches!(
        reader.next_message(),
        Err(DecodeError::Truncated { .. })
    ));
}

#[test]
fn frame_with_trailing_bytes_is_rejected() {
    let msg = Message::CursorPosition(CursorPosition {
        id: 1,
        x: 2,
        y: 3,
        visible: false,
    });
    let mut body = msg.to_bytes();
    body.extend_from_slice(&[0, 0]);
    let mut stream = (body.len() as u32).to_le_bytes().to_vec();
    stream.extend_from_slice(&body);
    let mut reader = FrameReader::new(DEFAULT_MAX_MESSAGE_LEN);
    reader.push(&stream);
    assert!(matches!(
        reader.next_message(),
        Err(DecodeError::TrailingBytes { count: 2, .. })
    ));
}

#[test]
fn trailing_bytes_after_every_example() {
    for m in examples() {
        let mut bytes = m.to_bytes();
        bytes.push(0);
        assert!(
            matches!(
                Message::from_bytes(&bytes),
                Err(DecodeError::TrailingBytes { count: 1, .. })
            ),
            "{m:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Unknown tags
// ---------------------------------------------------------------------------------------------

fn expect_unknown(bytes: &[u8], what: &str, tag: u32) {
    match Message::from_bytes(bytes) {
        Err(DecodeError::UnknownTag { what: w, tag: t }) => {
            assert_eq!((w, t), (what, tag), "{bytes:02x?}")
        }
        other => panic!("{bytes:02x?}: expected UnknownTag {what} {tag}, got {other:?}"),
    }
}

/// The encoding of `m` with the byte at `offset` replaced.
fn patched(m: &Message, offset: usize, value: u8) -> Vec<u8> {
    let mut b = m.to_bytes();
    b[offset] = value;
    b
}

#[test]
fn unknown_message_tags() {
    for tag in [0u8, 7, 8, 100, 255] {
        expect_unknown(&[tag], "message", tag as u32);
        expect_unknown(&[tag, 1, 2, 3], "message", tag as u32);
    }
}

#[test]
fn unknown_control_tags() {
    for tag in [10u8, 11, 200, 255] {
        expect_unknown(&[1, tag], "control message", tag as u32);
    }
}

#[test]
fn unknown_input_tags() {
    let m = Message::Input(InputMessage {
        seq: 1,
        viewer_time_us: 2,
        event: InputEvent::ReleaseAll,
    });
    for tag in [11u8, 12, 255] {
        // tag(1) + seq(8) + time(8) → the event tag is at offset 17.
        expect_unknown(&patched(&m, 17, tag), "input event", tag as u32);
    }
}

#[test]
fn unknown_goodbye_reason() {
    let m = Message::Control(Control::Goodbye(Goodbye {
        reason: GoodbyeReason::Normal,
        message: String::new(),
    }));
    expect_unknown(&patched(&m, 2, 6), "goodbye reason", 6);
    expect_unknown(&patched(&m, 2, 255), "goodbye reason", 255);
}

#[test]
fn unknown_enum_values() {
    let sc = examples()
        .into_iter()
        .find(|m| matches!(m, Message::Control(Control::StreamConfig(_))))
        .unwrap();
    // 1 tag, 1 control tag, 1 stream id, then codec at 3; width/height/fps 4..16; bit depth 16;
    // chroma 17, matrix 18, range 19, primaries 20, transfer 21.
    expect_unknown(&patched(&sc, 3, 3), "VideoCodec", 3);
    expect_unknown(&patched(&sc, 17, 2), "Chroma", 2);
    expect_unknown(&patched(&sc, 18, 4), "ColourMatrix", 4);
    expect_unknown(&patched(&sc, 19, 2), "ColourRange", 2);
    expect_unknown(&patched(&sc, 20, 3), "ColourPrimaries", 3);
    expect_unknown(&patched(&sc, 21, 4), "TransferFunction", 4);

    let kf = Message::Control(Control::KeyframeRequest(KeyframeRequest {
        stream_id: 0,
        reason: KeyframeReason::User,
    }));
    expect_unknown(&patched(&kf, 3, 4), "KeyframeReason", 4);

    let audio = Message::Audio(AudioPacket {
        sequence: 0,
        media_time: MediaTime::audio(0),
        layout: ChannelLayout::Stereo,
        codec: AudioCodec::Opus,
        capture_us: HostMicros(0),
        payload: vec![],
    });
    // tag(1) + sequence(4) + media time(8): layout at 13, codec at 14.
    expect_unknown(&patched(&audio, 13, 4), "ChannelLayout", 4);
    expect_unknown(&patched(&audio, 14, 2), "AudioCodec", 2);

    let pen = pen_message(PenEvent {
        tool: PenTool::Pen,
        x: 1.0,
        y: 2.0,
        pressure: 0,
        tilt_x: 0,
        tilt_y: 0,
        rotation: 0,
        buttons: PenButtons::EMPTY,
        contact: PenContact::Hover,
    });
    // tag(1) + seq(8) + time(8) + event tag(1): tool at 18; contact is the last byte.
    expect_unknown(&patched(&pen, 18, 2), "PenTool", 2);
    let last = pen.to_bytes().len() - 1;
    expect_unknown(&patched(&pen, last, 3), "PenContact", 3);
}

// ---------------------------------------------------------------------------------------------
// Range rules and field limits
// ---------------------------------------------------------------------------------------------

fn expect_invalid(bytes: &[u8], what: &str) {
    match Message::from_bytes(bytes) {
        Err(DecodeError::Invalid { what: w, .. }) => assert_eq!(w, what, "{bytes:02x?}"),
        other => panic!("{bytes:02x?}: expected Invalid {what}, got {other:?}"),
    }
}

fn expect_too_large(bytes: &[u8], what: &'static str, len: usize, max: usize) {
    assert_eq!(
        Message::from_bytes(bytes),
        Err(DecodeError::TooLarge { what, len, max }),
        "{bytes:02x?}"
    );
}

fn pen_message(p: PenEvent) -> Message {
    Message::Input(InputMessage {
        seq: 1,
        viewer_time_us: 1,
        event: InputEvent::Pen(p),
    })
}

/// Encodes with `encode`, bypassing `Message`'s own encoder so that out-of-range values can be
/// written (the encoders clamp some of them).
fn raw(tag: u8, body: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = vec![tag];
    body(&mut v);
    v
}

#[test]
fn stream_config_ranges() {
    let sc = examples()
        .into_iter()
        .find(|m| matches!(m, Message::Control(Control::StreamConfig(_))))
        .unwrap();
    let with_u32 = |offset: usize, v: u32| {
        let mut b = sc.to_bytes();
        b[offset..offset + 4].copy_from_slice(&v.to_le_bytes());
        b
    };
    for bad in [0, MAX_DIMENSION + 1, u32::MAX] {
        expect_invalid(&with_u32(4, bad), "stream size");
        expect_invalid(&with_u32(8, bad), "stream size");
    }
    for bad in [0u8, 7, 9, 12, 16, 255] {
        expect_invalid(&patched(&sc, 16, bad), "bit depth");
    }
}

/// 7.1 Opus as the surround encoder sets it up (Vorbis order, 5 streams, 3 coupled).
fn opus_71_config() -> AudioConfig {
    use sightline_protocol::audio::layout::ChannelOrder;
    AudioConfig {
        stream_id: 0,
        layout: ChannelLayout::Surround71,
        codec: AudioCodec::Opus,
        sample_rate: AUDIO_SAMPLE_RATE,
        frame_samples: 240,
        bitrate_bps: 512_000,
        speakers: ChannelOrder::Vorbis
            .speakers(ChannelLayout::Surround71)
            .to_vec(),
        opus: Some(OpusMapping {
            streams: 5,
            coupled_streams: 3,
            mapping: vec![0, 6, 1, 2, 3, 4, 5, 7],
        }),
    }
}

#[test]
fn audio_config_rules() {
    let check = |f: &dyn Fn(&mut AudioConfig), what: &str| {
        let mut c = opus_71_config();
        f(&mut c);
        expect_invalid(&Message::Control(Control::AudioConfig(c)).to_bytes(), what);
    };
    check(&|c| c.sample_rate = 44_100, "audio sample rate");
    check(&|c| c.frame_samples = 0, "audio frame samples");
    check(
        &|c| c.frame_samples = MAX_FRAME_SAMPLES + 1,
        "audio frame samples",
    );
    check(&|c| c.speakers[1] = Speaker::FrontLeft, "audio speakers");
    check(
        &|c| {
            c.speakers.pop();
        },
        "audio speakers",
    );
    check(&|c| c.layout = ChannelLayout::Surround51, "audio speakers");
    check(&|c| c.opus = None, "opus mapping");
    check(&|c| c.codec = AudioCodec::Pcm24, "opus mapping");
    check(&|c| c.opus.as_mut().unwrap().mapping[0] = 8, "opus mapping");
    check(
        &|c| c.opus.as_mut().unwrap().coupled_streams = 6,
        "opus mapping",
    );
    check(&|c| c.opus.as_mut().unwrap().streams = 0, "opus mapping");
    check(
        &|c| {
            c.opus.as_mut().unwrap().mapping.pop();
        },
        "opus mapping",
    );
    // 255 (a silent channel) is a valid mapping entry.
    let mut c = opus_71_config();
    c.opus.as_mut().unwrap().mapping[7] = 255;
    let m = Message::Control(Control::AudioConfig(c));
    assert_eq!(Message::from_bytes(&m.to_bytes()), Ok(m));
    // An unknown speaker value.
    let mut b = Message::Control(Control::AudioConfig(opus_71_config())).to_bytes();
    // tag, control tag, stream, layout, codec, rate(4), frame(2), bitrate(4), count: speakers
    // start at 16.
    b[16] = 9;
    expect_unknown(&b, "Speaker", 9);
}

#[test]
fn hello_versions_must_be_ordered() {
    let m = Message::Control(Control::Hello(Hello {
        min_version: 1,
        max_version: 1,
        name: String::new(),
        capabilities: Capabilities::default(),
        extensions: vec![],
    }));
    // min_version at 2..4 (LE), max_version at 4..6.
    expect_invalid(&patched(&m, 2, 2), "hello versions");
}

#[test]
fn name_and_message_limits() {
    use sightline_protocol::coding::WriteExt;
    let hello_with_name = |len: usize| {
        raw(1, |v| {
            v.put_u8(0);
            v.put_u16(1);
            v.put_u16(1);
            v.put_bytes_u16(&vec![b'a'; len]);
            Capabilities::ALL.encode(v);
            v.put_u8(0);
        })
    };
    assert!(Message::from_bytes(&hello_with_name(MAX_NAME_LEN)).is_ok());
    expect_too_large(
        &hello_with_name(MAX_NAME_LEN + 1),
        "viewer name",
        MAX_NAME_LEN + 1,
        MAX_NAME_LEN,
    );

    let goodbye_with = |len: usize| {
        raw(1, |v| {
            v.put_u8(8);
            v.put_u8(0);
            v.put_bytes_u16(&vec![b'z'; len]);
        })
    };
    assert!(Message::from_bytes(&goodbye_with(MAX_GOODBYE_LEN)).is_ok());
    expect_too_large(
        &goodbye_with(MAX_GOODBYE_LEN + 1),
        "goodbye message",
        MAX_GOODBYE_LEN + 1,
        MAX_GOODBYE_LEN,
    );

    // Not UTF-8.
    let mut bad = goodbye_with(2);
    let n = bad.len();
    bad[n - 2..].copy_from_slice(&[0xC3, 0x28]);
    expect_invalid(&bad, "goodbye message");
}

#[test]
fn extension_limits() {
    use sightline_protocol::coding::WriteExt;
    let welcome_with = |count: usize, body: usize| {
        raw(1, |v| {
            v.put_u8(1);
            v.put_u16(1);
            v.put_u64(7);
            v.put_str("h");
            Capabilities::ALL.encode(v);
            v.put_u8(count as u8);
            for i in 0..count {
                v.put_u16(i as u16);
                v.put_bytes_u16(&vec![1u8; body]);
            }
        })
    };
    assert!(Message::from_bytes(&welcome_with(MAX_EXTENSIONS, 0)).is_ok());
    assert!(Message::from_bytes(&welcome_with(1, MAX_EXTENSION_LEN)).is_ok());
    expect_too_large(
        &welcome_with(MAX_EXTENSIONS + 1, 0),
        "extension list",
        MAX_EXTENSIONS + 1,
        MAX_EXTENSIONS,
    );
    expect_too_large(
        &welcome_with(1, MAX_EXTENSION_LEN + 1),
        "extension body",
        MAX_EXTENSION_LEN + 1,
        MAX_EXTENSION_LEN,
    );
}

#[test]
fn payload_limits() {
    use sightline_protocol::coding::WriteExt;
    let audio_with = |len: usize| {
        raw(3, |v| {
            v.put_u32(0);
            v.put_u64(0);
            v.put_u8(0);
            v.put_u8(0);
            v.put_u64(0);
            v.put_bytes_u16(&vec![0u8; len]);
        })
    };
    assert!(Message::from_bytes(&audio_with(MAX_AUDIO_PAYLOAD)).is_ok());
    expect_too_large(
        &audio_with(MAX_AUDIO_PAYLOAD + 1),
        "audio payload",
        MAX_AUDIO_PAYLOAD + 1,
        MAX_AUDIO_PAYLOAD,
    );

    // The largest fragment payload a u16 length can carry round-trips.
    let big = Message::Video(VideoFragment {
        stream_id: 0,
        frame: 0,
        keyframe: false,
        fragment_index: MAX_FRAGMENTS - 1,
        fragment_count: MAX_FRAGMENTS,
        data_fragments: 1,
        au_len: 1000,
        times: None,
        damage: None,
        payload: vec![0x5A; u16::MAX as usize],
    });
    assert_eq!(Message::from_bytes(&big.to_bytes()), Ok(big));
}

#[test]
fn fragment_rules() {
    let m = Message::Video(VideoFragment {
        stream_id: 0,
        frame: 0,
        keyframe: false,
        fragment_index: 0,
        fragment_count: 1,
        data_fragments: 1,
        au_len: 1000,
        times: None,
        damage: None,
        payload: vec![],
    });
    // tag(1) + stream(1) + frame(4): flags at 6, index at 7..9, count at 9..11.
    for flags in [8u8, 0x10, 0x80, 0xFF] {
        expect_invalid(&patched(&m, 6, flags), "fragment flags");
    }
    // Flag 4 announces a damage list (after the fixed header at 17): a count over the limit,
    // an empty rectangle or one past 16384 is refused.
    let with_damage = |list: &[u8]| {
        let mut b = patched(&m, 6, 4);
        b.splice(17..17, list.iter().copied());
        b
    };
    expect_too_large(
        &with_damage(&[9]),
        "damage rect list",
        9,
        sightline_protocol::damage::MAX_DAMAGE_RECTS,
    );
    expect_invalid(&with_damage(&[1, 0, 0, 0, 0, 0, 0, 1, 0]), "damage rect");
    expect_invalid(&with_damage(&[1, 0, 0x40, 0, 0, 1, 0, 1, 0]), "damage rect");
    let ok = Message::from_bytes(&with_damage(&[1, 1, 0, 2, 0, 3, 0, 4, 0])).expect("valid list");
    match ok {
        Message::Video(f) => assert_eq!(
            f.damage,
            Some(vec![sightline_protocol::damage::DamageRect {
                x: 1,
                y: 2,
                width: 3,
                height: 4
            }])
        ),
        other => panic!("{other:?}"),
    }
    let with = |index: u16, count: u16| {
        let mut b = m.to_bytes();
        b[7..9].copy_from_slice(&index.to_le_bytes());
        b[9..11].copy_from_slice(&count.to_le_bytes());
        b
    };
    expect_invalid(&with(0, 0), "fragment index");
    expect_invalid(&with(1, 1), "fragment index");
    expect_invalid(&with(5, 3), "fragment index");
    expect_invalid(&with(0, MAX_FRAGMENTS + 1), "fragment index");
    expect_invalid(&with(u16::MAX, u16::MAX), "fragment index");
    assert!(Message::from_bytes(&with(MAX_FRAGMENTS - 1, MAX_FRAGMENTS)).is_ok());

    // data_fragments (11..13) must be 1..=fragment_count.
    let with_data = |index: u16, count: u16, data: u16| {
        let mut b = with(index, count);
        b[11..13].copy_from_slice(&data.to_le_bytes());
        b
    };
    expect_invalid(&with_data(0, 1, 0), "data fragment count");
    expect_invalid(&with_data(0, 3, 4), "data fragment count");
    expect_invalid(&with_data(0, 3, u16::MAX), "data fragment count");
    assert!(Message::from_bytes(&with_data(2, 3, 3)).is_ok());
    assert!(Message::from_bytes(&with_data(2, 3, 1)).is_ok());
}

#[test]
fn input_rules() {
    let base = PenEvent {
        tool: PenTool::Pen,
        x: 1.0,
        y: 2.0,
        pressure: 0,
        tilt_x: 0,
        tilt_y: 0,
        rotation: 0,
        buttons: PenButtons::EMPTY,
        contact: PenContact::Hover,
    };
    let enc = |p: PenEvent| pen_message(p).to_bytes();
    for bad in [MAX_TILT + 1, -MAX_TILT - 1, i16::MIN, i16::MAX] {
        expect_invalid(
            &enc(PenEvent {
                tilt_x: bad,
                ..base
            }),
            "pen tilt",
        );
        expect_invalid(
            &enc(PenEvent {
                tilt_y: bad,
                ..base
            }),
            "pen tilt",
        );
    }
    for bad in [ROTATION_RANGE, u16::MAX] {
        expect_invalid(
            &enc(PenEvent {
                rotation: bad,
                ..base
            }),
            "pen rotation",
        );
    }
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        expect_invalid(&enc(PenEvent { x: bad, ..base }), "pen x");
        expect_invalid(&enc(PenEvent { y: bad, ..base }), "pen y");
    }

    let input = |event: InputEvent| {
        Message::Input(InputMessage {
            seq: 1,
            viewer_time_us: 1,
            event,
        })
        .to_bytes()
    };
    expect_invalid(
        &input(InputEvent::Key(KeyEvent {
            code: 0,
            keysym: 0,
            modifiers: Modifiers::EMPTY,
            pressed: true,
        })),
        "key",
    );
    expect_invalid(
        &input(InputEvent::Button {
            button: MouseButton(0),
            pressed: true,
        }),
        "button",
    );
    for bad in [SHUTTLE_MAX + 1, -SHUTTLE_MAX - 1, i8::MIN, i8::MAX] {
        expect_invalid(
            &input(InputEvent::Shuttle { position: bad }),
            "shuttle position",
        );
    }
    // Booleans are 0 or 1.
    let mut b = input(InputEvent::ControllerButton {
        index: 1,
        pressed: true,
    });
    *b.last_mut().unwrap() = 2;
    expect_invalid(&b, "controller button state");
}

#[test]
fn cursor_rules() {
    use sightline_protocol::coding::WriteExt;
    let shape = |w: u16, h: u16, hx: u16, hy: u16, len: usize| {
        raw(5, |v| {
            v.put_u32(1);
            v.put_u16(w);
            v.put_u16(h);
            v.put_u16(hx);
            v.put_u16(hy);
            v.put_bytes_u32(&vec![0u8; len]);
        })
    };
    let max = MAX_CURSOR_SIDE;
    let full = max as usize * max as usize * 4;
    assert!(Message::from_bytes(&shape(max, max, max - 1, max - 1, full)).is_ok());
    assert!(Message::from_bytes(&shape(0, 0, 999, 999, 0)).is_ok());
    expect_invalid(
        &shape(max + 1, 1, 0, 0, (max as usize + 1) * 4),
        "cursor size",
    );
    expect_invalid(
        &shape(1, max + 1, 0, 0, (max as usize + 1) * 4),
        "cursor size",
    );
    expect_invalid(&shape(2, 2, 2, 0, 16), "cursor hotspot");
    expect_invalid(&shape(2, 2, 0, 2, 16), "cursor hotspot");
    expect_invalid(&shape(2, 2, 0, 0, 15), "cursor pixels");
    expect_too_large(&shape(2, 2, 0, 0, 17), "cursor pixels", 17, 16);

    let mut pos = Message::CursorPosition(CursorPosition {
        id: 0,
        x: 0,
        y: 0,
        visible: false,
    })
    .to_bytes();
    *pos.last_mut().unwrap() = 2;
    expect_invalid(&pos, "cursor visible");
}

#[test]
fn huge_length_prefix_is_truncated_not_allocated() {
    use sightline_protocol::coding::WriteExt;
    // A cursor shape of 256x256 announcing 4 GiB of pixels: refused by the limit.
    let b = raw(5, |v| {
        v.put_u32(1);
        v.put_u16(MAX_CURSOR_SIDE);
        v.put_u16(MAX_CURSOR_SIDE);
        v.put_u16(0);
        v.put_u16(0);
        v.put_u32(u32::MAX);
    });
    assert!(matches!(
        Message::from_bytes(&b),
        Err(DecodeError::TooLarge { .. })
    ));
    // Within the limit but more than was sent: truncated.
    let b = raw(5, |v| {
        v.put_u32(1);
        v.put_u16(MAX_CURSOR_SIDE);
        v.put_u16(MAX_CURSOR_SIDE);
        v.put_u16(0);
        v.put_u16(0);
        v.put_u32(MAX_CURSOR_SIDE as u32 * MAX_CURSOR_SIDE as u32 * 4);
    });
    assert!(matches!(
        Message::from_bytes(&b),
        Err(DecodeError::Truncated {
            context: "cursor pixels",
            needed: 262_144
        })
    ));
}
