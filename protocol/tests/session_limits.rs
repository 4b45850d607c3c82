//! Per-session rate limits on simulated time: a flooding viewer gets a goodbye that names the
//! limit, held input is released, and a viewer within the limits is never bothered.

use std::time::{Duration, Instant};

use sightline_protocol::coding::{encode_frame, FrameReader, DEFAULT_MAX_MESSAGE_LEN};
use sightline_protocol::msg::{
    Capabilities, Control, GoodbyeReason, Hello, InputEvent, InputMessage, KeyEvent, Message,
    Modifiers, Ping,
};
use sightline_protocol::session::{CloseReason, HostEvent, InputOrigin, RateLimits};
use sightline_protocol::time::WireClock;
use sightline_protocol::{Channel, HostConfig, HostSession, PROTOCOL_VERSION};

fn frame(m: Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&m, &mut out);
    out
}

fn host(limits: RateLimits, now: Instant) -> HostSession {
    let mut h = HostSession::new(
        HostConfig {
            rate_limits: limits,
            ..HostConfig::default()
        },
        now,
        WireClock::new(now, 0),
    );
    h.handle_stream(
        now,
        Channel::Control,
        &frame(Message::Control(Control::Hello(Hello {
            min_version: PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            name: "flood".into(),
            capabilities: Capabilities::ALL,
            extensions: vec![],
        }))),
    );
    assert!(h.is_established());
    h
}

fn key(seq: u64, pressed: bool) -> Vec<u8> {
    frame(Message::Input(InputMessage {
        seq,
        viewer_time_us: seq,
        event: InputEvent::Key(KeyEvent {
            code: 0x04 + (seq % 20) as u16,
            keysym: 0x61,
            modifiers: Modifiers::EMPTY,
            pressed,
        }),
    }))
}

/// Drains events; returns (viewer inputs, releases, close reason).
fn drain(h: &mut HostSession) -> (usize, usize, Option<CloseReason>) {
    let (mut inputs, mut releases, mut closed) = (0, 0, None);
    while let Some(ev) = h.poll_event() {
        match ev {
            HostEvent::Input {
                origin: InputOrigin::Viewer { .. },
                ..
            } => inputs += 1,
            HostEvent::Input {
                origin: InputOrigin::Release(_),
                ..
            } => releases += 1,
            HostEvent::Closed(r) => closed = Some(r),
            _ => {}
        }
    }
    (inputs, releases, closed)
}

fn goodbye_sent(h: &mut HostSession, now: Instant) -> Option<(GoodbyeReason, String)> {
    let mut rx = FrameReader::new(DEFAULT_MAX_MESSAGE_LEN);
    while let Some(t) = h.poll_transmit(now) {
        if t.channel == Channel::Control {
            rx.push(&t.bytes);
        }
    }
    while let Ok(Some(m)) = rx.next_message() {
        if let Message::Control(Control::Goodbye(g)) = m {
            return Some((g.reason, g.message));
        }
    }
    None
}

#[test]
fn input_flood_is_cut_off_with_a_goodbye_and_releases() {
    let t0 = Instant::now();
    let limits = RateLimits {
        input_per_s: 100,
        input_burst: 200,
        ..RateLimits::default()
    };
    let mut h = host(limits, t0);
    // 300 presses at one instant: 200 pass (the burst), the 201st closes the session.
    let mut bytes = Vec::new();
    for seq in 1..=300 {
        bytes.extend_from_slice(&key(seq, true));
    }
    h.handle_stream(t0, Channel::Input, &bytes);
    let (inputs, releases, closed) = drain(&mut h);
    assert_eq!(inputs, 200);
    assert!(releases > 0, "held keys are released");
    match closed {
        Some(CloseReason::Local {
            reason: GoodbyeReason::Refused,
            message,
        }) => assert!(
            message.contains("100 input messages per second"),
            "{message}"
        ),
        other => panic!("expected a rate-limit close, got {other:?}"),
    }
    let (reason, message) = goodbye_sent(&mut h, t0).expect("goodbye sent");
    assert_eq!(reason, GoodbyeReason::Refused);
    assert!(message.contains("rate limit"), "{message}");
    assert!(h.is_closed());
}

#[test]
fn datagram_copies_count_too() {
    let t0 = Instant::now();
    let mut h = host(
        RateLimits {
            input_per_s: 10,
            input_burst: 10,
            ..RateLimits::default()
        },
        t0,
    );
    for seq in 1..=11u64 {
        let dg = Message::Input(InputMessage {
            seq,
            viewer_time_us: 0,
            event: InputEvent::ReleaseAll,
        });
        use sightline_protocol::Encode;
        h.handle_datagram(t0, &dg.to_bytes());
    }
    assert!(h.is_closed());
}

#[test]
fn steady_input_within_the_limit_is_never_refused() {
    let t0 = Instant::now();
    let mut h = host(
        RateLimits {
            input_per_s: 1000,
            input_burst: 1000,
            control_per_s: 10,
            control_burst: 10,
        },
        t0,
    );
    // 10 s of 900 events per second, and 5 pings per second.
    let mut now = t0;
    let mut seq = 0;
    for ms in 0..10_000u64 {
        now = t0 + Duration::from_millis(ms);
        let mut bytes = Vec::new();
        if ms % 10 != 0 {
            seq += 1;
            bytes.extend_from_slice(&key(seq, seq % 2 == 1));
        }
        h.handle_stream(now, Channel::Input, &bytes);
        if ms % 200 == 0 {
            h.handle_stream(
                now,
                Channel::Control,
                &frame(Message::Control(Control::Ping(Ping {
                    seq: ms as u32,
                    viewer_send_us: ms,
                }))),
            );
        }
        while h.poll_transmit(now).is_some() {}
        let (_, _, closed) = drain(&mut h);
        assert_eq!(closed, None, "closed at {ms} ms");
    }
    assert!(h.is_established(), "{now:?}");
}

#[test]
fn control_flood_is_cut_off() {
    let t0 = Instant::now();
    let mut h = host(
        RateLimits {
            control_per_s: 5,
            control_burst: 5,
            ..RateLimits::default()
        },
        t0,
    );
    let mut bytes = Vec::new();
    for seq in 0..10 {
        bytes.extend_from_slice(&frame(Message::Control(Control::Ping(Ping {
            seq,
            viewer_send_us: 0,
        }))));
    }
    h.handle_stream(t0, Channel::Control, &bytes);
    let (_, _, closed) = drain(&mut h);
    match closed {
        Some(CloseReason::Local { message, .. }) => {
            assert!(message.contains("control messages"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}
