//! Simulated-time tests of input handling across a session: ordering, held-input release on
//! silence, focus loss, goodbye and connection loss, loss on the input stream, repeats and
//! capability checks.

use std::time::{Duration, Instant};

use sightline_protocol::coding::encode_frame;
use sightline_protocol::msg::{
    Capabilities, GoodbyeReason, InputEvent, InputKinds, InputMessage, KeyEvent, Message,
    Modifiers, MouseButton, PenButtons, PenContact, PenEvent, PenTool,
};
use sightline_protocol::session::{InputOrigin, ReleaseCause, SendInputError};
use sightline_protocol::testing::{LinkConfig, Pair, PairConfig, Rng};
use sightline_protocol::{Channel, CloseReason, HostConfig, HostEvent, ViewerConfig, ViewerEvent};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn connected_pair(cfg: PairConfig) -> Pair {
    let mut pair = Pair::new(cfg);
    let deadline = pair.now + Duration::from_secs(2);
    while !(pair.host.is_established() && pair.viewer.is_established()) && pair.now < deadline {
        pair.run_for(ms(1));
    }
    assert!(pair.host.is_established() && pair.viewer.is_established());
    pair
}

fn key_mods(code: u16, keysym: u32, modifiers: Modifiers, pressed: bool) -> InputEvent {
    InputEvent::Key(KeyEvent {
        code,
        keysym,
        modifiers,
        pressed,
    })
}

fn key(code: u16, keysym: u32, pressed: bool) -> InputEvent {
    key_mods(code, keysym, Modifiers::EMPTY, pressed)
}

/// The key-up the host synthesises for a held key (modifiers cleared).
fn key_up(code: u16, keysym: u32) -> InputEvent {
    key(code, keysym, false)
}

fn pen(contact: PenContact, pressure: u16) -> InputEvent {
    InputEvent::Pen(PenEvent {
        tool: PenTool::Pen,
        x: 640.25,
        y: 360.5,
        pressure,
        tilt_x: 1500,
        tilt_y: -700,
        rotation: 9000,
        buttons: PenButtons::EMPTY,
        contact,
    })
}

fn button(b: MouseButton, pressed: bool) -> InputEvent {
    InputEvent::Button { button: b, pressed }
}

const SHIFT_DOWN: InputEvent = InputEvent::Key(KeyEvent {
    code: 0xE1,
    keysym: 0xFFE1,
    modifiers: Modifiers::SHIFT,
    pressed: true,
});

/// Host input events: (time, event, origin).
fn host_inputs(pair: &Pair) -> Vec<(Instant, InputEvent, InputOrigin)> {
    pair.host_events
        .iter()
        .filter_map(|(t, e)| match e {
            HostEvent::Input { event, origin } => Some((*t, *event, *origin)),
            _ => None,
        })
        .collect()
}

fn from_viewer(pair: &Pair) -> Vec<(u64, InputEvent)> {
    host_inputs(pair)
        .into_iter()
        .filter_map(|(_, e, o)| match o {
            InputOrigin::Viewer { seq, .. } => Some((seq, e)),
            InputOrigin::Release(_) => None,
        })
        .collect()
}

fn releases(pair: &Pair) -> Vec<(Instant, InputEvent, ReleaseCause)> {
    host_inputs(pair)
        .into_iter()
        .filter_map(|(t, e, o)| match o {
            InputOrigin::Release(c) => Some((t, e, c)),
            InputOrigin::Viewer { .. } => None,
        })
        .collect()
}

fn host_closed(pair: &Pair) -> Vec<(Instant, CloseReason)> {
    pair.host_events
        .iter()
        .filter_map(|(t, e)| match e {
            HostEvent::Closed(r) => Some((*t, r.clone())),
            _ => None,
        })
        .collect()
}

fn viewer_closed(pair: &Pair) -> Vec<(Instant, CloseReason)> {
    pair.viewer_events
        .iter()
        .filter_map(|(t, e)| match e {
            ViewerEvent::Closed(r) => Some((*t, r.clone())),
            _ => None,
        })
        .collect()
}

fn send_all(pair: &mut Pair, events: &[InputEvent]) -> Vec<u64> {
    let now = pair.now;
    events
        .iter()
        .map(|e| pair.viewer.send_input(now, *e).expect("input accepted"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 5. A dead link releases held input
// ---------------------------------------------------------------------------------------------

#[test]
fn dead_link_releases_everything_held_then_times_out() {
    let mut pair = connected_pair(PairConfig::default()); // 5 ms each way, no jitter
    pair.run_for(ms(100));

    let held = [
        key(0x04, 0x61, true), // 'a'
        SHIFT_DOWN,
        key_mods(0x05, 0x42, Modifiers::SHIFT, true), // shifted 'B'
        button(MouseButton::LEFT, true),
        pen(PenContact::Contact, 30_000),
        InputEvent::Shuttle { position: 5 },
        InputEvent::ControllerButton {
            index: 3,
            pressed: true,
        },
    ];
    let t_send = pair.now;
    let viewer_t = pair.viewer.wire_time(t_send);
    let seqs = send_all(&mut pair, &held);
    assert_eq!(seqs, (1..=7).collect::<Vec<u64>>());
    pair.run_for(ms(20));

    // Every event arrived, in the order sent, each stamped.
    let got: Vec<_> = host_inputs(&pair);
    assert_eq!(got.len(), held.len());
    for (i, (t, ev, origin)) in got.iter().enumerate() {
        assert_eq!(*ev, held[i], "event {i}");
        assert_eq!(*t - t_send, ms(5), "one 5 ms hop");
        assert_eq!(
            *origin,
            InputOrigin::Viewer {
                seq: i as u64 + 1,
                viewer_time_us: viewer_t,
                host_recv_us: pair.host.wire_time(t_send + ms(5)),
            }
        );
    }
    assert_eq!(pair.host.held().keys().count(), 3);
    assert_eq!(
        pair.host.held().buttons().copied().collect::<Vec<_>>(),
        vec![MouseButton::LEFT]
    );

    // The last thing the viewer ever sends: a (non-held) pointer move. Then the path dies.
    let now = pair.now;
    pair.viewer
        .send_input(now, InputEvent::PointerMove { x: 10, y: 20 })
        .unwrap();
    pair.flush();
    let t_cut = pair.now;
    pair.uplink.set_up(false);
    pair.downlink.set_up(false);
    let last_heard = t_cut + ms(5);

    pair.run_for(ms(1_500));
    let rel = releases(&pair);
    let expected = vec![
        pen(PenContact::Hover, 0),
        pen(PenContact::Leave, 0),
        button(MouseButton::LEFT, false),
        InputEvent::ControllerButton {
            index: 3,
            pressed: false,
        },
        InputEvent::Shuttle { position: 0 },
        key_up(0x04, 0x61),
        key_up(0x05, 0x42),
        key_up(0xE1, 0xFFE1), // modifiers last
    ];
    assert_eq!(
        rel.iter().map(|r| r.1).collect::<Vec<_>>(),
        expected,
        "every held thing released, pen and modifiers in a safe order"
    );
    for (t, _, cause) in &rel {
        assert_eq!(*cause, ReleaseCause::ViewerSilent);
        assert!(
            *t >= last_heard + Duration::from_secs(1),
            "not before 1 s of silence"
        );
        assert!(*t - t_cut <= ms(1_250), "all by 1.25 s");
        assert_eq!(*t, last_heard + Duration::from_secs(1));
    }
    assert!(pair.host.held().is_empty());
    assert_eq!(pair.host.counters().releases, 8);
    assert!(host_closed(&pair).is_empty() && viewer_closed(&pair).is_empty());

    // Idle timeout (10 s) closes both sides.
    pair.run_for(Duration::from_secs(10));
    match host_closed(&pair).as_slice() {
        [(t, CloseReason::Timeout(d))] => {
            assert_eq!(*d, Duration::from_secs(10));
            assert_eq!(*t, last_heard + Duration::from_secs(10));
        }
        other => panic!("{other:?}"),
    }
    match viewer_closed(&pair).as_slice() {
        [(t, CloseReason::Timeout(d))] => {
            assert!(*d >= Duration::from_secs(10));
            // Pongs stopped arriving at the latest at the cut, at the earliest a ping interval
            // before it.
            assert!(*t <= t_cut + Duration::from_secs(10), "{:?}", *t - t_cut);
            assert!(*t >= t_cut + ms(9_700), "{:?}", *t - t_cut);
        }
        other => panic!("{other:?}"),
    }
    // Nothing was released twice.
    assert_eq!(releases(&pair).len(), 8);
}

// ---------------------------------------------------------------------------------------------
// 6. Connection loss, ReleaseAll, goodbye
// ---------------------------------------------------------------------------------------------

fn pair_holding(events: &[InputEvent]) -> Pair {
    let mut pair = connected_pair(PairConfig::default());
    send_all(&mut pair, events);
    pair.run_for(ms(20));
    assert_eq!(from_viewer(&pair).len(), events.len());
    assert!(!pair.host.held().is_empty());
    pair
}

#[test]
fn connection_lost_releases_with_session_ended() {
    let mut pair = pair_holding(&[
        key(0x04, 0x61, true),
        SHIFT_DOWN,
        button(MouseButton::RIGHT, true),
    ]);
    let now = pair.now;
    pair.host.handle_connection_lost(now, "quic: timed out");
    pair.flush();
    let rel = releases(&pair);
    assert_eq!(
        rel.iter().map(|r| (r.1, r.2)).collect::<Vec<_>>(),
        vec![
            (
                button(MouseButton::RIGHT, false),
                ReleaseCause::SessionEnded
            ),
            (key_up(0x04, 0x61), ReleaseCause::SessionEnded),
            (key_up(0xE1, 0xFFE1), ReleaseCause::SessionEnded),
        ]
    );
    assert!(pair.host.held().is_empty());
    assert_eq!(
        pair.host_events.last().map(|e| &e.1),
        Some(&HostEvent::Closed(CloseReason::ConnectionLost(
            "quic: timed out".into()
        )))
    );
    // Releases come before Closed, and nothing after it.
    let n = pair.host_events.len();
    assert!(matches!(
        pair.host_events[n - 2].1,
        HostEvent::Input {
            origin: InputOrigin::Release(_),
            ..
        }
    ));
    assert_eq!(pair.host.poll_timeout(), None);
}

#[test]
fn release_all_from_the_viewer_releases_with_viewer_request() {
    let mut pair = pair_holding(&[
        key(0x1D, 0x7A, true), // 'z'
        button(MouseButton::LEFT, true),
        InputEvent::Shuttle { position: -3 },
    ]);
    let now = pair.now;
    pair.viewer.send_input(now, InputEvent::ReleaseAll).unwrap();
    pair.run_for(ms(20));
    let rel = releases(&pair);
    assert_eq!(
        rel.iter().map(|r| (r.1, r.2)).collect::<Vec<_>>(),
        vec![
            (
                button(MouseButton::LEFT, false),
                ReleaseCause::ViewerRequest
            ),
            (
                InputEvent::Shuttle { position: 0 },
                ReleaseCause::ViewerRequest
            ),
            (key_up(0x1D, 0x7A), ReleaseCause::ViewerRequest),
        ]
    );
    assert!(pair.host.held().is_empty());
    assert!(
        !pair.host.is_closed(),
        "focus loss does not end the session"
    );
    // ReleaseAll itself is not passed on as an input.
    assert!(!from_viewer(&pair)
        .iter()
        .any(|(_, e)| *e == InputEvent::ReleaseAll));

    // Input keeps working afterwards, and a second silence finds nothing to release.
    let now = pair.now;
    let seq = pair.viewer.send_input(now, key(0x1D, 0x7A, true)).unwrap();
    pair.run_for(ms(20));
    assert_eq!(
        from_viewer(&pair).last(),
        Some(&(seq, key(0x1D, 0x7A, true)))
    );
    let now = pair.now;
    pair.viewer.send_input(now, key(0x1D, 0x7A, false)).unwrap();
    pair.run_for(ms(20));
    assert!(pair.host.held().is_empty());
    pair.run_for(Duration::from_secs(3));
    assert_eq!(releases(&pair).len(), 3);
}

#[test]
fn viewer_goodbye_releases_and_closes_the_host() {
    let mut pair = pair_holding(&[key(0x04, 0x61, true), button(MouseButton::MIDDLE, true)]);
    pair.viewer
        .close_with(GoodbyeReason::Normal, "user closed the window");
    pair.run_for(ms(20));
    assert_eq!(
        viewer_closed(&pair)
            .into_iter()
            .map(|c| c.1)
            .collect::<Vec<_>>(),
        vec![CloseReason::Local {
            reason: GoodbyeReason::Normal,
            message: "user closed the window".into()
        }]
    );
    let rel = releases(&pair);
    assert_eq!(
        rel.iter().map(|r| (r.1, r.2)).collect::<Vec<_>>(),
        vec![
            (
                button(MouseButton::MIDDLE, false),
                ReleaseCause::SessionEnded
            ),
            (key_up(0x04, 0x61), ReleaseCause::SessionEnded),
        ]
    );
    assert!(pair.host.held().is_empty());
    assert_eq!(
        host_closed(&pair)
            .into_iter()
            .map(|c| c.1)
            .collect::<Vec<_>>(),
        vec![CloseReason::PeerGoodbye {
            reason: GoodbyeReason::Normal,
            message: "user closed the window".into()
        }]
    );
    // After closing, input is refused on the viewer.
    let now = pair.now;
    assert_eq!(
        pair.viewer.send_input(now, key(0x04, 0x61, true)),
        Err(SendInputError::Closed)
    );
}

// ---------------------------------------------------------------------------------------------
// 7b. Datagram copies cut the delay a lost packet adds to input
// ---------------------------------------------------------------------------------------------

/// Sends 400 key events 10 ms apart over a 15 ms link with 5 % loss; returns each event's
/// delay (send → host event), sorted.
fn input_delays(
    copy: Option<Duration>,
) -> (Vec<Duration>, sightline_protocol::session::HostCounters) {
    let mut pair = connected_pair(PairConfig {
        uplink: LinkConfig {
            delay: ms(15),
            jitter: ms(0),
            loss: 0.05,
        },
        downlink: LinkConfig::fixed(ms(15)),
        viewer: ViewerConfig {
            input_datagram_copy: copy,
            ..ViewerConfig::default()
        },
        seed: 5,
        ..PairConfig::default()
    });
    let mut sent = std::collections::HashMap::new();
    for i in 0..400u32 {
        let now = pair.now;
        let seq = pair
            .viewer
            .send_input(now, key(0x04, 0x61, i % 2 == 0))
            .unwrap();
        sent.insert(seq, now);
        pair.run_for(ms(10));
    }
    pair.run_for(Duration::from_secs(2));
    let mut d: Vec<Duration> = host_inputs(&pair)
        .into_iter()
        .filter_map(|(t, _, o)| match o {
            InputOrigin::Viewer { seq, .. } => Some(t - sent[&seq]),
            InputOrigin::Release(_) => None,
        })
        .collect();
    assert_eq!(d.len(), 400, "every event arrives, copies or not");
    d.sort();
    (d, pair.host.counters())
}

#[test]
fn datagram_copies_cut_the_delay_of_lost_input() {
    let (without, c0) = input_delays(None);
    let (with, c1) = input_delays(Some(ms(4)));
    let p99 = |v: &[Duration]| v[v.len() * 99 / 100];
    println!(
        "input delay over 15 ms with 5 % loss: p50/p99/max without copies {:?}/{:?}/{:?}, with {:?}/{:?}/{:?}; {c1:?}",
        without[200], p99(&without), without[399], with[200], p99(&with), with[399]
    );
    assert_eq!((c0.datagram_inputs, c0.duplicate_inputs), (0, 0));
    assert!(c1.datagram_inputs > 0);
    assert!(
        p99(&with) < p99(&without),
        "copies must shorten the tail: {:?} vs {:?}",
        p99(&with),
        p99(&without)
    );
    // Within two one-way delays: no retransmission round trip in the tail.
    assert!(p99(&with) <= ms(30), "p99 {:?}", p99(&with));
}

// ---------------------------------------------------------------------------------------------
// 7. Presses and releases survive stream loss, in order
// ---------------------------------------------------------------------------------------------

#[test]
fn presses_and_releases_survive_stream_loss_in_order() {
    let mut pair = connected_pair(PairConfig {
        uplink: LinkConfig {
            delay: ms(10),
            jitter: ms(3),
            loss: 0.20,
        },
        downlink: LinkConfig::fixed(ms(10)),
        seed: 77,
        ..PairConfig::default()
    });
    let mut rng = Rng::new(2024);
    let keys: [(u16, u32); 5] = [
        (0x04, 0x61),
        (0x05, 0x62),
        (0x06, 0x63),
        (0xE1, 0xFFE1),
        (0x2C, 0x20),
    ];
    let buttons = [MouseButton::LEFT, MouseButton::RIGHT];
    let mut key_down = [false; 5];
    let mut button_down = [false; 2];

    let mut sent_discrete = Vec::new();
    let mut sent_moves = Vec::new();
    let mut last_seq = 0;
    while sent_discrete.len() < 200 {
        let now = pair.now;
        let r = rng.next_u64() % 10;
        let ev = if r < 4 {
            let x = (rng.next_u64() % 1920) as i32;
            let y = (rng.next_u64() % 1080) as i32;
            InputEvent::PointerMove { x, y }
        } else if r < 8 {
            let i = (rng.next_u64() % 5) as usize;
            key_down[i] = !key_down[i];
            key(keys[i].0, keys[i].1, key_down[i])
        } else {
            let i = (rng.next_u64() % 2) as usize;
            button_down[i] = !button_down[i];
            button(buttons[i], button_down[i])
        };
        let seq = pair.viewer.send_input(now, ev).unwrap();
        assert!(seq > last_seq);
        last_seq = seq;
        match ev {
            InputEvent::PointerMove { .. } => sent_moves.push(ev),
            _ => sent_discrete.push(ev),
        }
        // Sometimes several events go out together (moves among them coalesce), sometimes
        // they are spread out.
        if rng.next_u64().is_multiple_of(3) {
            pair.run_for(ms(rng.next_u64() % 8));
        }
    }
    let last_move = InputEvent::PointerMove { x: 1234, y: 567 };
    let now = pair.now;
    pair.viewer
        .send_input(now, InputEvent::PointerMove { x: 1, y: 1 })
        .unwrap();
    pair.viewer.send_input(now, last_move).unwrap();
    sent_moves.push(last_move);
    pair.run_for(Duration::from_secs(2));

    assert!(
        pair.uplink.stream_retransmits >= 40,
        "the uplink was lossy: {}",
        pair.uplink.stream_retransmits
    );
    assert!(pair.viewer.coalesced_inputs() >= 1, "moves were coalesced");

    let got = from_viewer(&pair);
    assert!(
        got.windows(2).all(|w| w[0].0 < w[1].0),
        "seq strictly increasing"
    );
    let got_discrete: Vec<_> = got
        .iter()
        .map(|g| g.1)
        .filter(|e| !matches!(e, InputEvent::PointerMove { .. }))
        .collect();
    assert_eq!(got_discrete.len(), 200);
    assert_eq!(got_discrete, sent_discrete, "every press/release, in order");

    let got_moves: Vec<_> = got
        .iter()
        .map(|g| g.1)
        .filter(|e| matches!(e, InputEvent::PointerMove { .. }))
        .collect();
    assert_eq!(
        got_moves.last(),
        Some(&last_move),
        "the final position arrives"
    );
    assert!(got_moves.len() < sent_moves.len(), "some moves were merged");
    // What arrived is a subsequence of what was sent (coalescing only drops, never invents).
    let mut it = sent_moves.iter();
    for m in &got_moves {
        assert!(it.any(|s| s == m), "{m:?} was never sent (or out of order)");
    }

    let c = pair.host.counters();
    // Datagram copies (revision 2) beat some lost stream packets; the other copy of each
    // event is dropped as a repeat, and copies that came early were left to the stream.
    assert!(c.datagram_inputs > 0, "{c:?}");
    assert!(c.duplicate_inputs > 0, "{c:?}");
    assert_eq!(c.inputs as usize, got.len());
    assert_eq!(c.releases, 0, "a lossy path is not a silent one");
    // The host's record matches what the viewer left pressed.
    assert_eq!(
        pair.host.held().keys().count(),
        key_down.iter().filter(|d| **d).count()
    );
    assert_eq!(
        pair.host.held().buttons().count(),
        button_down.iter().filter(|d| **d).count()
    );
}

// ---------------------------------------------------------------------------------------------
// 9. Repeats and capabilities
// ---------------------------------------------------------------------------------------------

fn framed_input(seq: u64, event: InputEvent) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(
        &Message::Input(InputMessage {
            seq,
            viewer_time_us: 1_000 + seq,
            event,
        }),
        &mut out,
    );
    out
}

#[test]
fn a_repeated_input_sequence_number_is_dropped() {
    let mut pair = connected_pair(PairConfig::default());
    let bytes = framed_input(1, key(0x04, 0x61, true));
    let now = pair.now;
    pair.host.handle_stream(now, Channel::Input, &bytes);
    pair.host.handle_stream(now, Channel::Input, &bytes);
    pair.flush();
    assert_eq!(from_viewer(&pair), vec![(1, key(0x04, 0x61, true))]);
    let c = pair.host.counters();
    assert_eq!(c.duplicate_inputs, 1);
    assert_eq!(c.inputs, 1);
    assert!(!pair.host.is_closed(), "a repeat is not a violation");

    // The next sequence number goes through; an older one is a repeat too.
    pair.host.handle_stream(
        now,
        Channel::Input,
        &framed_input(2, key(0x04, 0x61, false)),
    );
    pair.host
        .handle_stream(now, Channel::Input, &framed_input(1, key(0x05, 0x62, true)));
    pair.flush();
    assert_eq!(
        from_viewer(&pair),
        vec![(1, key(0x04, 0x61, true)), (2, key(0x04, 0x61, false))]
    );
    assert_eq!(pair.host.counters().duplicate_inputs, 2);
    assert!(pair.host.held().is_empty());
}

#[test]
fn input_kinds_not_negotiated_are_refused() {
    let host_caps = Capabilities {
        input_kinds: InputKinds::KEYBOARD.union(InputKinds::MOUSE),
        ..Capabilities::ALL
    };
    let mut pair = Pair::new(PairConfig {
        host: HostConfig {
            capabilities: host_caps,
            ..HostConfig::default()
        },
        viewer: ViewerConfig::default(),
        ..PairConfig::default()
    });
    let now = pair.now;
    assert_eq!(
        pair.viewer.send_input(now, key(0x04, 0x61, true)),
        Err(SendInputError::NotEstablished)
    );
    pair.run_for(ms(50));
    assert!(pair.viewer.is_established());
    let now = pair.now;
    assert_eq!(
        pair.viewer.send_input(now, pen(PenContact::Hover, 0)),
        Err(SendInputError::NotNegotiated)
    );
    assert_eq!(
        pair.viewer
            .send_input(now, InputEvent::Shuttle { position: 1 }),
        Err(SendInputError::NotNegotiated)
    );
    assert_eq!(pair.viewer.send_input(now, key(0x04, 0x61, true)), Ok(1));
    assert_eq!(
        pair.viewer.send_input(now, button(MouseButton::LEFT, true)),
        Ok(2)
    );
    // ReleaseAll needs no capability.
    assert_eq!(pair.viewer.send_input(now, InputEvent::ReleaseAll), Ok(3));
    pair.run_for(ms(20));
    assert_eq!(
        from_viewer(&pair),
        vec![
            (1, key(0x04, 0x61, true)),
            (2, button(MouseButton::LEFT, true))
        ]
    );

    // A viewer that ignores the negotiation is refused by the host too (dropped and counted).
    let now = pair.now;
    pair.host.handle_stream(
        now,
        Channel::Input,
        &framed_input(10, pen(PenContact::Contact, 9)),
    );
    pair.flush();
    assert_eq!(pair.host.counters().refused_inputs, 1);
    assert_eq!(from_viewer(&pair).len(), 2);
    assert!(pair.host.held().is_empty());
    assert!(!pair.host.is_closed());
}

#[test]
fn events_the_host_would_refuse_are_refused_at_the_viewer() {
    let mut pair = connected_pair(PairConfig::default());
    let now = pair.now;
    let err = pair
        .viewer
        .send_input(now, InputEvent::Shuttle { position: 9 })
        .unwrap_err();
    assert!(matches!(err, SendInputError::Invalid(_)), "{err}");
    let err = pair
        .viewer
        .send_input(
            now,
            InputEvent::Button {
                button: sightline_protocol::msg::MouseButton(0),
                pressed: true,
            },
        )
        .unwrap_err();
    assert!(matches!(err, SendInputError::Invalid(_)), "{err}");
    // The session is untouched and still accepts valid input.
    assert!(pair
        .viewer
        .send_input(now, InputEvent::Shuttle { position: 7 })
        .is_ok());
    pair.run_for(Duration::from_millis(50));
    assert!(pair.host.is_established());
}

#[test]
fn host_refuses_to_send_a_stream_config_the_viewer_would_reject() {
    use sightline_protocol::msg::{
        Chroma, ColourMatrix, ColourPrimaries, ColourRange, StreamConfig, TransferFunction,
        VideoCodec,
    };
    let mut pair = connected_pair(PairConfig::default());
    let bad = StreamConfig {
        stream_id: 0,
        codec: VideoCodec::H264,
        width: 0,
        height: 1080,
        fps_millihz: 60_000,
        bit_depth: 8,
        chroma: Chroma::Yuv420,
        matrix: ColourMatrix::Bt709,
        range: ColourRange::Limited,
        primaries: ColourPrimaries::Bt709,
        transfer: TransferFunction::Bt709,
    };
    assert!(pair.host.send_stream_config(bad).is_err());
    assert!(pair
        .host
        .send_stream_config(StreamConfig { width: 1920, ..bad })
        .is_ok());
    pair.run_for(Duration::from_millis(50));
    assert!(pair
        .viewer_events
        .iter()
        .any(|(_, e)| matches!(e, ViewerEvent::StreamConfig(c) if c.width == 1920)));
    assert!(pair.viewer.is_established());
}

#[test]
fn no_datagram_copies_to_a_revision_1_host() {
    let mut pair = connected_pair(PairConfig {
        host: HostConfig {
            max_version: 1,
            ..HostConfig::default()
        },
        ..PairConfig::default()
    });
    assert_eq!(pair.viewer.welcome().unwrap().version, 1);
    for i in 0..20 {
        let now = pair.now;
        pair.viewer
            .send_input(now, key(0x04, 0x61, i % 2 == 0))
            .unwrap();
        pair.run_for(ms(10));
    }
    pair.run_for(ms(200));
    let c = pair.host.counters();
    assert_eq!(c.inputs, 20);
    assert_eq!((c.datagram_inputs, c.duplicate_inputs), (0, 0), "{c:?}");
}
