//! Drives a `HostSession` with what a hostile viewer could send.
//!
//! Input layout: `flags: u8`, then records `op: u8, len: u8, bytes[len]` (the last record takes
//! what is left). Unless `flags & 1`, a valid hello frame is fed first so that most inputs get
//! past the handshake. Ops (`op % 8`):
//!
//! 0. raw bytes on the control stream      1. raw bytes on the input stream
//! 2. a datagram                          3. `bytes` framed (`len: u32` added) on control
//! 4. `bytes` framed on the input stream  5. time passes (`len` × 10 ms), then a timeout
//! 6. the host sends `bytes` if they decode as a message it may send, else the connection is lost
//! 7. the host closes the session
//!
//! Checks: nothing panics; every byte the host transmits decodes; nothing is reported after
//! `Closed`; a closed session stays closed and asks for no timer.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sightline_protocol::coding::{encode_frame, Decode, FrameReader, DEFAULT_MAX_MESSAGE_LEN};
use sightline_protocol::msg::{Capabilities, Control, GoodbyeReason, Hello};
use sightline_protocol::time::WireClock;
use sightline_protocol::{Channel, HostConfig, HostEvent, HostSession, Message, PROTOCOL_VERSION};

struct Harness {
    host: HostSession,
    now: Instant,
    /// What the viewer would read from the host's control stream.
    from_host: FrameReader,
    closed: bool,
}

impl Harness {
    fn drain(&mut self) {
        while let Some(t) = self.host.poll_transmit(self.now) {
            match t.channel {
                Channel::Control => {
                    self.from_host.push(&t.bytes);
                    while let Some(m) = self
                        .from_host
                        .next_message()
                        .expect("host sent a malformed control frame")
                    {
                        let _ = m;
                    }
                }
                Channel::Datagram => {
                    Message::from_bytes(&t.bytes).expect("host sent a malformed datagram");
                }
                Channel::Input => panic!("host transmitted on the viewer's input stream"),
            }
        }
        while let Some(ev) = self.host.poll_event() {
            assert!(!self.closed, "event after Closed: {ev:?}");
            if let HostEvent::Closed(_) = ev {
                self.closed = true;
            }
        }
        if self.closed {
            assert!(self.host.is_closed());
            assert_eq!(self.host.poll_timeout(), None);
        }
    }
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let mut h = Harness {
        host: HostSession::new(HostConfig::default(), now, WireClock::new(now, 0)),
        now,
        from_host: FrameReader::new(DEFAULT_MAX_MESSAGE_LEN),
        closed: false,
    };

    if flags & 1 == 0 {
        let hello = Message::Control(Control::Hello(Hello {
            min_version: PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            name: "fuzz viewer".into(),
            capabilities: Capabilities::ALL,
            extensions: Vec::new(),
        }));
        let mut frame = Vec::new();
        encode_frame(&hello, &mut frame);
        h.host.handle_stream(h.now, Channel::Control, &frame);
        h.drain();
        assert!(h.host.is_established(), "valid hello refused");
    }

    while let Some((&op, tail)) = rest.split_first() {
        let (len, tail) = match tail.split_first() {
            Some((&len, tail)) => (usize::from(len).min(tail.len()), tail),
            None => (0, tail),
        };
        let (bytes, tail) = tail.split_at(len);
        rest = tail;
        match op % 8 {
            0 => h.host.handle_stream(h.now, Channel::Control, bytes),
            1 => h.host.handle_stream(h.now, Channel::Input, bytes),
            2 => h.host.handle_datagram(h.now, bytes),
            3 => h
                .host
                .handle_stream(h.now, Channel::Control, &framed(bytes)),
            4 => h.host.handle_stream(h.now, Channel::Input, &framed(bytes)),
            5 => {
                h.now += Duration::from_millis(len as u64 * 10);
                h.host.handle_timeout(h.now);
            }
            6 => match Message::from_bytes(bytes) {
                Ok(Message::Control(Control::StreamConfig(c))) => {
                    // Anything the decoder accepted is sendable.
                    assert!(h.host.send_stream_config(c).is_ok());
                }
                Ok(Message::CursorShape(s)) => {
                    assert!(h.host.send_cursor_shape(s).is_ok());
                }
                Ok(Message::Video(v)) => h.host.send_video(v),
                Ok(Message::Audio(a)) => h.host.send_audio(a),
                Ok(Message::CursorPosition(p)) => h.host.send_cursor_position(p),
                _ => h
                    .host
                    .handle_connection_lost(h.now, "fuzz: connection lost"),
            },
            _ => h
                .host
                .close_with(h.now, GoodbyeReason::HostShutdown, "fuzz: host closes"),
        }
        h.drain();
    }
});
