//! Simulated-time tests of the host and viewer session state machines: handshake, version
//! negotiation, clock-offset estimation, malformed input and the datagram path.
//!
//! Everything runs on the seeded [`Pair`] driver, so simulated minutes cost milliseconds and every
//! run is reproducible. Input handling (held keys, releases, ordering) is in `session_input.rs`.

use std::time::{Duration, Instant};

use sightline_protocol::coding::{
    encode_frame, DecodeError, Encode, FrameReader, DEFAULT_MAX_MESSAGE_LEN,
};
use sightline_protocol::msg::{
    AudioLayouts, BitDepths, Capabilities, ChromaFormats, Control, GoodbyeReason, InputEvent,
    InputKinds, InputMessage, KeyEvent, Message, Modifiers, VideoCodecs, VideoFragment,
};
use sightline_protocol::testing::{LinkConfig, Pair, PairConfig};
use sightline_protocol::time::WireClock;
use sightline_protocol::{
    Channel, CloseReason, HostConfig, HostEvent, HostSession, ViewerConfig, ViewerEvent,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Steps the pair until both sides are established (or `limit` passes).
fn run_until_established(pair: &mut Pair, limit: Duration) {
    let deadline = pair.now + limit;
    while !(pair.host.is_established() && pair.viewer.is_established()) && pair.now < deadline {
        pair.run_for(ms(1));
    }
    assert!(pair.host.is_established(), "host not established");
    assert!(pair.viewer.is_established(), "viewer not established");
}

fn connected_pair(cfg: PairConfig) -> Pair {
    let mut pair = Pair::new(cfg);
    run_until_established(&mut pair, Duration::from_secs(2));
    pair
}

fn host_closed(pair: &Pair) -> Vec<CloseReason> {
    pair.host_events
        .iter()
        .filter_map(|(_, e)| match e {
            HostEvent::Closed(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn viewer_closed(pair: &Pair) -> Vec<CloseReason> {
    pair.viewer_events
        .iter()
        .filter_map(|(_, e)| match e {
            ViewerEvent::Closed(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn video(frame: u32) -> VideoFragment {
    VideoFragment {
        stream_id: 0,
        frame,
        keyframe: frame == 0,
        fragment_index: 0,
        fragment_count: 1,
        data_fragments: 1,
        au_len: 100,
        times: None,
        damage: None,
        payload: vec![frame as u8; 100],
    }
}

fn key(code: u16, keysym: u32, pressed: bool) -> InputEvent {
    InputEvent::Key(KeyEvent {
        code,
        keysym,
        modifiers: Modifiers::EMPTY,
        pressed,
    })
}

fn framed(msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(msg, &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// 1. Handshake
// ---------------------------------------------------------------------------------------------

#[test]
fn handshake_negotiates_version_capabilities_and_identity() {
    // The host offers less than the viewer (which has every depth, chroma and layout); codecs and
    // input kinds overlap only partly, so the intersection differs from both sides.
    let host_caps = Capabilities {
        video_codecs: VideoCodecs::H264.union(VideoCodecs::HEVC),
        bit_depths: BitDepths::EIGHT,
        chroma: ChromaFormats::YUV420,
        audio_layouts: AudioLayouts::STEREO,
        input_kinds: InputKinds::KEYBOARD.union(InputKinds::MOUSE),
    };
    let viewer_caps = Capabilities {
        video_codecs: VideoCodecs::HEVC.union(VideoCodecs::AV1),
        input_kinds: InputKinds::MOUSE.union(InputKinds::PEN),
        ..Capabilities::ALL
    };
    let expected = Capabilities {
        video_codecs: VideoCodecs::HEVC,
        bit_depths: BitDepths::EIGHT,
        chroma: ChromaFormats::YUV420,
        audio_layouts: AudioLayouts::STEREO,
        input_kinds: InputKinds::MOUSE,
    };
    let cfg = PairConfig {
        host: HostConfig {
            host_name: "studio-7".into(),
            session_id: 0x5EED_CAFE_F00D_0042,
            capabilities: host_caps,
            ..HostConfig::default()
        },
        viewer: ViewerConfig {
            name: "edit-bay-laptop".into(),
            capabilities: viewer_caps,
            ..ViewerConfig::default()
        },
        ..PairConfig::default()
    };
    let mut pair = Pair::new(cfg);
    let t0 = pair.now;
    pair.run_for(ms(100));

    // Host side.
    let host_connected: Vec<_> = pair
        .host_events
        .iter()
        .filter(|(_, e)| matches!(e, HostEvent::Connected { .. }))
        .collect();
    assert_eq!(host_connected.len(), 1);
    assert_eq!(
        host_connected[0].1,
        HostEvent::Connected {
            viewer_name: "edit-bay-laptop".into(),
            version: sightline_protocol::PROTOCOL_VERSION,
            capabilities: expected,
        }
    );
    // Hello travels one 5 ms hop.
    assert_eq!(host_connected[0].0 - t0, ms(5));
    assert_eq!(pair.host.capabilities(), Some(expected));
    assert!(pair.host.is_established());

    // Viewer side.
    let (i_conn, welcome) = pair
        .viewer_events
        .iter()
        .enumerate()
        .find_map(|(i, (_, e))| match e {
            ViewerEvent::Connected(w) => Some((i, w.clone())),
            _ => None,
        })
        .expect("viewer Connected");
    assert_eq!(i_conn, 0, "Connected is the viewer's first event");
    assert_eq!(welcome.version, sightline_protocol::PROTOCOL_VERSION);
    assert_eq!(welcome.session_id, 0x5EED_CAFE_F00D_0042);
    assert_eq!(welcome.host_name, "studio-7");
    assert_eq!(welcome.capabilities, expected);
    assert_eq!(pair.viewer.welcome(), Some(&welcome));

    // One round trip (5 ms + 5 ms) after the start, the viewer is connected.
    let t_conn = pair.viewer_events[i_conn].0;
    assert_eq!(t_conn - t0, ms(10));

    // A Clock event follows: ping/pong starts at once.
    let clock = pair
        .viewer_events
        .iter()
        .skip(i_conn + 1)
        .find_map(|(t, e)| match e {
            ViewerEvent::Clock(c) => Some((*t, *c)),
            _ => None,
        })
        .expect("a Clock event after Connected");
    assert_eq!(clock.0 - t_conn, ms(10), "first clock sample one RTT later");
    assert_eq!(clock.1.min_rtt_us, 10_000, "5 ms each way, no jitter");
    assert_eq!(clock.1.samples, 1);
    assert!(viewer_closed(&pair).is_empty());
    assert!(host_closed(&pair).is_empty());
}

// ---------------------------------------------------------------------------------------------
// 2. Version negotiation
// ---------------------------------------------------------------------------------------------

#[test]
fn version_mismatch_closes_both_sides_naming_both_ranges() {
    let cfg = PairConfig {
        host: HostConfig {
            min_version: 1,
            max_version: 1,
            ..HostConfig::default()
        },
        viewer: ViewerConfig {
            min_version: 2,
            max_version: 3,
            ..ViewerConfig::default()
        },
        ..PairConfig::default()
    };
    let mut pair = Pair::new(cfg);
    pair.run_for(ms(100));

    let expected = CloseReason::VersionMismatch {
        viewer_min: 2,
        viewer_max: 3,
        host_min: 1,
        host_max: 1,
    };
    assert_eq!(host_closed(&pair), vec![expected.clone()]);
    assert_eq!(viewer_closed(&pair), vec![expected.clone()]);
    assert!(!pair
        .host_events
        .iter()
        .any(|(_, e)| matches!(e, HostEvent::Connected { .. })));
    assert!(!pair
        .viewer_events
        .iter()
        .any(|(_, e)| matches!(e, ViewerEvent::Connected(_))));
    assert!(pair.host.is_closed() && pair.viewer.is_closed());
    assert_eq!(pair.host.poll_timeout(), None);
    assert_eq!(pair.viewer.poll_timeout(), None);

    let text = expected.to_string();
    assert!(text.contains("2..=3"), "{text}");
    assert!(text.contains("1..=1"), "{text}");
    assert!(text.contains("viewer speaks 2..=3"), "{text}");
    assert!(text.contains("host speaks 1..=1"), "{text}");
}

#[test]
fn overlapping_versions_pick_the_newest_common() {
    let cfg = PairConfig {
        host: HostConfig {
            min_version: 1,
            max_version: 2,
            ..HostConfig::default()
        },
        viewer: ViewerConfig {
            min_version: 1,
            max_version: 3,
            ..ViewerConfig::default()
        },
        ..PairConfig::default()
    };
    let pair = connected_pair(cfg);
    assert_eq!(pair.viewer.welcome().unwrap().version, 2);
    assert!(pair
        .host_events
        .iter()
        .any(|(_, e)| matches!(e, HostEvent::Connected { version: 2, .. })));
}

// ---------------------------------------------------------------------------------------------
// 3, 4. Clock offset
// ---------------------------------------------------------------------------------------------

fn clock_cfg(seed: u64, up: LinkConfig, down: LinkConfig) -> PairConfig {
    PairConfig {
        uplink: up,
        downlink: down,
        viewer_clock_base_us: 7_000_000,
        host_clock_base_us: 7_000_000 + 123_456_789,
        seed,
        ..PairConfig::default()
    }
}

/// Runs `secs` of simulated time and returns (estimate, error vs truth).
fn run_clock(cfg: PairConfig, secs: u64) -> (sightline_protocol::time::ClockEstimate, i64) {
    let truth = Pair::true_offset_us(&cfg);
    let mut pair = Pair::new(cfg);
    pair.run_for(Duration::from_secs(secs));
    let est = pair.viewer.clock_estimate().expect("an estimate");
    // The last reported Clock event is the current estimate.
    let last = pair
        .viewer_events
        .iter()
        .rev()
        .find_map(|(_, e)| match e {
            ViewerEvent::Clock(c) => Some(*c),
            _ => None,
        })
        .expect("Clock events");
    assert_eq!(last, est);
    assert!(viewer_closed(&pair).is_empty());
    (est, est.offset_us - truth)
}

#[test]
fn clock_offset_converges_on_a_symmetric_jittery_path() {
    let link = LinkConfig {
        delay: ms(15),
        jitter: ms(5),
        loss: 0.0,
    };
    assert_eq!(Pair::true_offset_us(&clock_cfg(0, link, link)), 123_456_789);
    for seed in 1..=10u64 {
        let (est, err) = run_clock(clock_cfg(seed, link, link), 60);
        assert!(
            err.abs() < 1_000,
            "seed {seed}: error {err} µs, estimate {est:?}"
        );
        // 8 fast pings, then 4 per second for ~60 s.
        assert!(est.samples >= 240, "seed {seed}: {est:?}");
        // RTT is 30 ms ± 10 ms; the best sample is well below the mean.
        assert!(
            (20_000..30_000).contains(&est.min_rtt_us),
            "seed {seed}: {est:?}"
        );
        assert!(
            (25_000..35_000).contains(&est.smoothed_rtt_us),
            "seed {seed}: {est:?}"
        );
        assert!(est.uncertainty_us >= err.unsigned_abs());
    }
}

#[test]
fn clock_offset_error_on_an_asymmetric_path_is_half_the_asymmetry_and_bounded() {
    // 5 ms up, 25 ms down: every sample says host − viewer is 10 ms less than it is.
    let (est, err) = run_clock(
        clock_cfg(3, LinkConfig::fixed(ms(5)), LinkConfig::fixed(ms(25))),
        20,
    );
    assert!(err.abs() <= 10_500, "error {err}");
    assert!(err.abs() >= 9_500, "error {err} should be ~ -10 ms");
    assert!(
        err < 0,
        "the slow downlink makes the host look behind: {err}"
    );
    assert_eq!(est.min_rtt_us, 30_000);
    assert!(est.uncertainty_us >= err.unsigned_abs(), "{est:?} vs {err}");
    assert!(est.uncertainty_us <= 16_000, "{est:?}");

    // With ±2 ms jitter each way the reported uncertainty still bounds the error.
    for seed in 1..=5u64 {
        let up = LinkConfig {
            delay: ms(5),
            jitter: ms(2),
            loss: 0.0,
        };
        let down = LinkConfig {
            delay: ms(25),
            jitter: ms(2),
            loss: 0.0,
        };
        let (est, err) = run_clock(clock_cfg(seed, up, down), 30);
        assert!(
            est.uncertainty_us >= err.unsigned_abs(),
            "seed {seed}: {est:?} vs error {err}"
        );
        assert!(err.abs() <= 12_000, "seed {seed}: error {err}");
        assert!(est.uncertainty_us <= 16_000, "seed {seed}: {est:?}");
    }
}

#[test]
fn min_rtt_filter_rejects_one_sided_queueing() {
    // 10 ms up; 10..30 ms down (queueing on the downlink only). Averaging every sample would be
    // 5 ms off; the min-RTT filter keeps the samples whose downlink was fast.
    for seed in 1..=5u64 {
        let down = LinkConfig {
            delay: ms(20),
            jitter: ms(10),
            loss: 0.0,
        };
        let (est, err) = run_clock(clock_cfg(seed, LinkConfig::fixed(ms(10)), down), 60);
        assert!(err.abs() < 1_000, "seed {seed}: error {err}, {est:?}");
        assert!(est.uncertainty_us >= err.unsigned_abs());
        assert!(
            (20_000..21_000).contains(&est.min_rtt_us),
            "seed {seed}: {est:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Malformed input
// ---------------------------------------------------------------------------------------------

#[test]
fn garbage_on_the_control_stream_closes_with_a_violation_and_a_goodbye() {
    let mut pair = connected_pair(PairConfig::default());
    pair.run_for(ms(50));
    // A well-formed frame header around an unknown message tag, then more junk.
    let garbage = [5u8, 0, 0, 0, 0xEE, 0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3];
    let now = pair.now;
    pair.host.handle_stream(now, Channel::Control, &garbage);
    pair.run_for(ms(50));

    let host = host_closed(&pair);
    assert_eq!(host.len(), 1, "{host:?}");
    let CloseReason::ProtocolViolation(msg) = &host[0] else {
        panic!("expected a violation, got {:?}", host[0]);
    };
    assert!(msg.contains("Control"), "names the channel: {msg}");
    assert!(msg.contains("unknown message tag 238"), "{msg}");

    let viewer = viewer_closed(&pair);
    assert_eq!(viewer.len(), 1, "{viewer:?}");
    match &viewer[0] {
        CloseReason::PeerGoodbye { reason, message } => {
            assert_eq!(*reason, GoodbyeReason::ProtocolError);
            assert!(message.contains("Control"), "{message}");
        }
        other => panic!("expected PeerGoodbye, got {other:?}"),
    }
    // Nothing after Closed.
    assert!(matches!(
        pair.host_events.last(),
        Some((_, HostEvent::Closed(_)))
    ));
    assert!(matches!(
        pair.viewer_events.last(),
        Some((_, ViewerEvent::Closed(_)))
    ));
}

#[test]
fn oversized_frame_header_is_refused_before_the_body_arrives() {
    let cfg = PairConfig {
        host: HostConfig {
            max_message_len: 4096,
            ..HostConfig::default()
        },
        ..PairConfig::default()
    };
    let mut pair = connected_pair(cfg);
    // Only the 4-byte header: announcing 4097 bytes is enough to be refused.
    let now = pair.now;
    pair.host
        .handle_stream(now, Channel::Input, &4097u32.to_le_bytes());
    assert!(pair.host.is_closed(), "refused on the header alone");
    pair.run_for(ms(20));
    let host = host_closed(&pair);
    let expected = DecodeError::TooLarge {
        what: "frame",
        len: 4097,
        max: 4096,
    }
    .to_string();
    match host.as_slice() {
        [CloseReason::ProtocolViolation(m)] => {
            assert!(m.contains("Input"), "{m}");
            assert!(m.contains(&expected), "{m} / {expected}");
        }
        other => panic!("{other:?}"),
    }
    // Further bytes (the would-be body) are ignored, not buffered.
    let now = pair.now;
    pair.host
        .handle_stream(now, Channel::Input, &vec![0u8; 10_000]);
    assert_eq!(host_closed(&pair).len(), 1);

    // The default limit also applies to the viewer's control stream: u32::MAX is refused.
    let mut pair = connected_pair(PairConfig::default());
    let now = pair.now;
    pair.viewer
        .handle_stream(now, Channel::Control, &u32::MAX.to_le_bytes());
    pair.run_for(ms(20));
    match viewer_closed(&pair).as_slice() {
        [CloseReason::ProtocolViolation(m)] => {
            let e = DecodeError::TooLarge {
                what: "frame",
                len: u32::MAX as usize,
                max: DEFAULT_MAX_MESSAGE_LEN,
            };
            assert!(m.contains(&e.to_string()), "{m}");
        }
        other => panic!("{other:?}"),
    }
    // The host hears the viewer's goodbye.
    assert!(matches!(
        host_closed(&pair).as_slice(),
        [CloseReason::PeerGoodbye {
            reason: GoodbyeReason::ProtocolError,
            ..
        }]
    ));
}

#[test]
fn a_datagram_from_the_viewer_other_than_an_input_copy_is_a_violation() {
    let mut pair = connected_pair(PairConfig::default());
    let now = pair.now;
    let dgram = Message::Video(video(1)).to_bytes();
    pair.host.handle_datagram(now, &dgram);
    pair.run_for(ms(20));
    match host_closed(&pair).as_slice() {
        [CloseReason::ProtocolViolation(m)] => {
            assert!(m.contains("unexpected video fragment datagram"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        viewer_closed(&pair).as_slice(),
        [CloseReason::PeerGoodbye {
            reason: GoodbyeReason::ProtocolError,
            ..
        }]
    ));
}

#[test]
fn input_before_hello_is_a_violation() {
    let now = Instant::now();
    let mut host = HostSession::new(HostConfig::default(), now, WireClock::new(now, 0));
    let bytes = framed(&Message::Input(InputMessage {
        seq: 1,
        viewer_time_us: 5,
        event: key(0x04, 0x61, true),
    }));
    host.handle_stream(now, Channel::Input, &bytes);
    assert!(host.is_closed());
    let events: Vec<_> = std::iter::from_fn(|| host.poll_event()).collect();
    match events.as_slice() {
        [HostEvent::Closed(CloseReason::ProtocolViolation(m))] => {
            assert!(m.contains("input event"), "{m}");
            assert!(m.contains("before hello"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert!(host.held().is_empty(), "the key was not injected");
    assert_eq!(host.counters().inputs, 0);
    // The goodbye is queued for the viewer.
    let t = host.poll_transmit(now).expect("a goodbye");
    assert_eq!(t.channel, Channel::Control);
    let mut rx = FrameReader::new(1 << 16);
    rx.push(&t.bytes);
    match rx.next_message() {
        Ok(Some(Message::Control(Control::Goodbye(g)))) => {
            assert_eq!(g.reason, GoodbyeReason::ProtocolError)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn garbage_datagram_to_the_viewer_closes_it_with_a_violation() {
    let mut pair = connected_pair(PairConfig::default());
    let now = pair.now;
    pair.viewer.handle_datagram(now, &[0x02, 0x00, 0x01]);
    pair.run_for(ms(20));
    match viewer_closed(&pair).as_slice() {
        [CloseReason::ProtocolViolation(m)] => {
            assert!(m.contains("Datagram"), "{m}");
            assert!(m.contains("truncated"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        host_closed(&pair).as_slice(),
        [CloseReason::PeerGoodbye {
            reason: GoodbyeReason::ProtocolError,
            ..
        }]
    ));
}

#[test]
fn stream_bytes_to_the_viewer_off_the_control_stream_are_a_violation() {
    let mut pair = connected_pair(PairConfig::default());
    let now = pair.now;
    let bytes = framed(&Message::Input(InputMessage {
        seq: 1,
        viewer_time_us: 0,
        event: key(0x04, 0x61, true),
    }));
    pair.viewer.handle_stream(now, Channel::Input, &bytes);
    pair.run_for(ms(20));
    match viewer_closed(&pair).as_slice() {
        [CloseReason::ProtocolViolation(m)] => assert!(m.contains("Input"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Like every violation, it is explained to the peer.
    match host_closed(&pair).as_slice() {
        [CloseReason::PeerGoodbye {
            reason: GoodbyeReason::ProtocolError,
            message,
        }] => assert!(message.contains("Input"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn arbitrary_bytes_never_panic_either_side() {
    // A cheap deterministic sweep: many random byte strings into every entry point.
    let mut rng = sightline_protocol::testing::Rng::new(42);
    for round in 0..300 {
        let mut pair = connected_pair(PairConfig::default());
        let len = (rng.next_u64() % 64) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let now = pair.now;
        match round % 4 {
            0 => pair.host.handle_stream(now, Channel::Control, &bytes),
            1 => pair.host.handle_stream(now, Channel::Input, &bytes),
            2 => pair.viewer.handle_stream(now, Channel::Control, &bytes),
            _ => pair.viewer.handle_datagram(now, &bytes),
        }
        pair.run_for(ms(50));
    }
}

// ---------------------------------------------------------------------------------------------
// 10. Datagram path
// ---------------------------------------------------------------------------------------------

fn viewer_video_frames(pair: &Pair) -> Vec<u32> {
    pair.viewer_events
        .iter()
        .filter_map(|(_, e)| match e {
            ViewerEvent::Video(v) => Some(v.frame),
            _ => None,
        })
        .collect()
}

#[test]
fn video_flows_only_after_the_handshake() {
    let mut pair = Pair::new(PairConfig::default());
    // Before hello: nowhere to send it; dropped, not queued.
    pair.host.send_video(video(0));
    assert_eq!(pair.host.poll_transmit(pair.now), None);
    pair.run_for(ms(3));
    pair.host.send_video(video(1));
    run_until_established(&mut pair, ms(100));
    for f in 2..12 {
        pair.host.send_video(video(f));
        pair.run_for(ms(16));
    }
    assert_eq!(viewer_video_frames(&pair), (2..12).collect::<Vec<_>>());
    let i_conn = pair
        .viewer_events
        .iter()
        .position(|(_, e)| matches!(e, ViewerEvent::Connected(_)))
        .unwrap();
    let i_video = pair
        .viewer_events
        .iter()
        .position(|(_, e)| matches!(e, ViewerEvent::Video(_)))
        .unwrap();
    assert!(i_video > i_conn);
    assert!(viewer_closed(&pair).is_empty());
}

#[test]
fn video_sent_as_soon_as_the_host_accepts_may_overtake_the_welcome() {
    // A host starts streaming the moment it accepts hello. On a jittery path the first
    // datagrams can beat the welcome (which rides the control stream); the viewer must not
    // treat that race as a protocol violation.
    let mut races = 0;
    for seed in 1..=20u64 {
        let link = LinkConfig {
            delay: ms(20),
            jitter: ms(10),
            loss: 0.0,
        };
        let mut pair = Pair::new(PairConfig {
            uplink: link,
            downlink: link,
            seed,
            ..PairConfig::default()
        });
        let mut frame = 0;
        while !pair.host.is_established() {
            pair.run_for(ms(1));
        }
        for _ in 0..30 {
            pair.host.send_video(video(frame));
            frame += 1;
            pair.run_for(ms(1));
        }
        pair.run_for(ms(100));
        assert!(
            viewer_closed(&pair).is_empty(),
            "seed {seed}: {:?}",
            viewer_closed(&pair)
        );
        assert!(pair.viewer.is_established());
        // Whatever arrived after the welcome was delivered (jitter reorders datagrams); the
        // last one sent was certainly in time.
        let got = viewer_video_frames(&pair);
        assert!(got.contains(&29), "seed {seed}: {got:?}");
        // No loss: a missing frame is one that beat the welcome and was dropped.
        if got.len() < 30 {
            races += 1;
        }
    }
    assert!(races > 0, "no seed exercised the race");
}

#[test]
fn datagram_loss_drops_roughly_its_share() {
    let mut pair = connected_pair(PairConfig {
        downlink: LinkConfig {
            delay: ms(5),
            jitter: Duration::ZERO,
            loss: 0.10,
        },
        seed: 9,
        ..PairConfig::default()
    });
    let lost_before = pair.downlink.datagrams_lost;
    const N: u32 = 2_000;
    for f in 0..N {
        pair.host.send_video(video(f));
        if f % 4 == 3 {
            pair.run_for(ms(1));
        }
    }
    pair.run_for(ms(100));
    let got = viewer_video_frames(&pair);
    let lost = pair.downlink.datagrams_lost - lost_before;
    assert_eq!(got.len() as u64 + lost, N as u64);
    assert!(
        (140..=260).contains(&lost),
        "10 % of {N} is 200; lost {lost}"
    );
    // Each surviving frame arrived once, in order (no jitter, so no reordering).
    assert!(got.windows(2).all(|w| w[0] < w[1]));
    assert!(viewer_closed(&pair).is_empty());
    // Reliable streams were retransmitted, never lost: pongs still arrive.
    assert!(pair.viewer.clock_estimate().unwrap().samples > 8);
}

// ---------------------------------------------------------------------------------------------
// 11. Damage lists (hello extension)
// ---------------------------------------------------------------------------------------------

fn damaged(frame: u32) -> VideoFragment {
    VideoFragment {
        damage: Some(vec![sightline_protocol::damage::DamageRect {
            x: 16,
            y: 32,
            width: 480,
            height: 240,
        }]),
        ..video(frame)
    }
}

#[test]
fn damage_lists_reach_a_viewer_that_offered_the_extension() {
    use sightline_protocol::damage::EXT_DAMAGE_RECTS;
    let mut pair = connected_pair(PairConfig::default());
    assert!(pair.host.damage_rects());
    let welcome = pair.viewer.welcome().expect("established");
    assert!(welcome.extensions.iter().any(|e| e.id == EXT_DAMAGE_RECTS));
    pair.host.send_video(damaged(1));
    pair.run_for(ms(50));
    let got: Vec<_> = pair
        .viewer_events
        .iter()
        .filter_map(|(_, e)| match e {
            ViewerEvent::Video(v) => Some(v.damage.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![damaged(1).damage]);
}

#[test]
fn an_older_viewer_never_gets_a_damage_list() {
    use sightline_protocol::coding::Decode;
    use sightline_protocol::msg::Hello;
    let now = Instant::now();
    let mut host = HostSession::new(HostConfig::default(), now, WireClock::new(now, 0));
    // A hello without the extension, as a viewer from before damage lists sends it.
    let hello = Message::Control(Control::Hello(Hello {
        min_version: 1,
        max_version: 2,
        name: "old viewer".into(),
        capabilities: Capabilities::ALL,
        extensions: Vec::new(),
    }));
    host.handle_stream(now, Channel::Control, &framed(&hello));
    assert!(host.is_established());
    assert!(!host.damage_rects());
    host.send_video(damaged(1));
    let mut fragments = 0;
    while let Some(t) = host.poll_transmit(now) {
        if t.channel == Channel::Datagram {
            match Message::from_bytes(&t.bytes) {
                Ok(Message::Video(f)) => {
                    assert_eq!(f.damage, None, "the list is stripped");
                    // The flag byte carries no damage bit an older viewer would refuse.
                    assert_eq!(t.bytes[6] & 4, 0);
                    fragments += 1;
                }
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(fragments, 1);
}
