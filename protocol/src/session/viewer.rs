//! The viewer side of a session.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::host::describe;
use super::{decode_violation, input_allowed, Channel, CloseReason, Transmit};
use crate::coding::{Decode, Encode, FrameReader, DEFAULT_MAX_MESSAGE_LEN};
use crate::input::InputQueue;
use crate::msg::{
    AudioConfig, AudioPacket, Capabilities, Control, CursorPosition, CursorShape, Goodbye,
    GoodbyeReason, Hello, InputEvent, InputMessage, InvalidateReferences, KeyframeReason,
    KeyframeRequest, Message, Ping, StatsReport, StreamConfig, VideoFragment, Welcome,
};
use crate::session::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};
use crate::time::{ClockEstimate, ClockEstimator, ClockSample, WireClock};

/// Viewer session settings.
#[derive(Debug, Clone)]
pub struct ViewerConfig {
    /// Name the host logs.
    pub name: String,
    /// Oldest protocol revision spoken.
    pub min_version: u16,
    /// Newest protocol revision spoken.
    pub max_version: u16,
    /// What this viewer can decode and send.
    pub capabilities: Capabilities,
    /// Pings sent quickly after the welcome to get a clock estimate at once.
    pub fast_pings: u32,
    /// Spacing of the fast pings.
    pub fast_ping_interval: Duration,
    /// Spacing of pings afterwards (they are also the keep-alive the host's silence timer sees).
    pub ping_interval: Duration,
    /// Clock samples kept by the min-RTT filter.
    pub clock_window: usize,
    /// Close after this long without hearing from the host.
    pub idle_timeout: Duration,
    /// Largest framed message accepted on a stream.
    pub max_message_len: usize,
    /// Also send each input message as a datagram this long after its stream copy (revision
    /// 2 hosts; `None` disables). The delay keeps the two copies in different packets, so one
    /// lost packet does not lose both.
    pub input_datagram_copy: Option<Duration>,
    /// Extensions sent in hello (e.g. [`crate::reconnect::resume_extension`] when this session
    /// replaces one whose connection dropped).
    pub hello_extensions: Vec<crate::msg::Extension>,
}

impl Default for ViewerConfig {
    fn default() -> Self {
        ViewerConfig {
            name: "sightline-viewer".into(),
            min_version: MIN_PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            capabilities: Capabilities::ALL,
            fast_pings: 8,
            fast_ping_interval: Duration::from_millis(20),
            ping_interval: Duration::from_millis(250),
            clock_window: 128,
            idle_timeout: Duration::from_secs(10),
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            input_datagram_copy: Some(Duration::from_millis(4)),
            hello_extensions: Vec::new(),
        }
    }
}

/// What the viewer application must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewerEvent {
    /// The host accepted the session.
    Connected(Welcome),
    /// A stream's format (before its first frame).
    StreamConfig(StreamConfig),
    /// A new clock/RTT estimate.
    Clock(ClockEstimate),
    /// A video fragment for reassembly.
    Video(VideoFragment),
    /// The audio format (before the first audio packet, and on change).
    AudioConfig(AudioConfig),
    /// An audio packet for the jitter buffer.
    Audio(AudioPacket),
    /// A cursor image.
    CursorShape(CursorShape),
    /// Where the cursor is.
    CursorPosition(CursorPosition),
    /// The session is over; nothing more will be reported.
    Closed(CloseReason),
}

/// Why input could not be queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendInputError {
    /// Hello/welcome has not completed yet; input would reach nobody.
    #[error("session not established yet")]
    NotEstablished,
    /// The session has ended.
    #[error("session closed")]
    Closed,
    /// The host did not agree to this kind of input (e.g. view-only session).
    #[error("input kind not negotiated with the host")]
    NotNegotiated,
    /// The event breaks a rule of the format (e.g. a NaN pen position, shuttle beyond ±7) and
    /// the host would close the session over it.
    #[error("invalid input event: {0}")]
    Invalid(crate::coding::DecodeError),
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    AwaitingWelcome,
    Established(Welcome),
    Closed,
}

#[derive(Debug)]
enum Pending {
    Control(Message),
    /// Stamped with the viewer clock when polled.
    Ping(u32),
}

/// Viewer half of a session (sans-IO).
#[derive(Debug)]
pub struct ViewerSession {
    cfg: ViewerConfig,
    clock: WireClock,
    state: State,
    control_rx: FrameReader,
    pending: VecDeque<Pending>,
    input: InputQueue,
    events: VecDeque<ViewerEvent>,
    estimator: ClockEstimator,
    next_ping_seq: u32,
    pings_sent: u32,
    next_ping_at: Option<Instant>,
    last_heard: Instant,
    /// Datagram copies of sent input, with when they are due (revision 2).
    input_copies: VecDeque<(Instant, InputMessage)>,
}

impl ViewerSession {
    /// A session that has queued its hello. `clock` gives the viewer wire time.
    pub fn new(cfg: ViewerConfig, now: Instant, clock: WireClock) -> Self {
        let mut pending = VecDeque::new();
        pending.push_back(Pending::Control(Message::Control(Control::Hello(Hello {
            min_version: cfg.min_version,
            max_version: cfg.max_version,
            name: cfg.name.clone(),
            capabilities: cfg.capabilities,
            // The viewer understands damage lists in video fragments.
            extensions: cfg
                .hello_extensions
                .iter()
                .cloned()
                .chain([crate::msg::Extension {
                    id: crate::damage::EXT_DAMAGE_RECTS,
                    body: Vec::new(),
                }])
                .collect(),
        }))));
        ViewerSession {
            control_rx: FrameReader::new(cfg.max_message_len),
            estimator: ClockEstimator::new(cfg.clock_window),
            cfg,
            clock,
            state: State::AwaitingWelcome,
            pending,
            input: InputQueue::new(),
            events: VecDeque::new(),
            next_ping_seq: 1,
            pings_sent: 0,
            next_ping_at: None,
            last_heard: now,
            input_copies: VecDeque::new(),
        }
    }

    // --- getters ---

    /// Whether the host accepted and the session is not closed.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established(_))
    }
    /// Whether the session is over.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }
    /// The host's welcome, once established.
    pub fn welcome(&self) -> Option<&Welcome> {
        match &self.state {
            State::Established(w) => Some(w),
            _ => None,
        }
    }
    /// The current clock estimate.
    pub fn clock_estimate(&self) -> Option<ClockEstimate> {
        self.estimator.estimate()
    }
    /// The viewer wire clock at `now` (µs).
    pub fn wire_time(&self, now: Instant) -> u64 {
        self.clock.micros(now)
    }
    /// Input events merged away by coalescing so far.
    pub fn coalesced_inputs(&self) -> u64 {
        self.input.coalesced()
    }

    // --- inputs ---

    /// Bytes that arrived on a stream (only the control stream carries host → viewer bytes).
    pub fn handle_stream(&mut self, now: Instant, channel: Channel, bytes: &[u8]) {
        if self.is_closed() {
            return;
        }
        self.last_heard = now;
        if channel != Channel::Control {
            return self.fail(CloseReason::ProtocolViolation(format!(
                "host sent stream bytes on the {channel:?} channel"
            )));
        }
        self.control_rx.push(bytes);
        while !self.is_closed() {
            match self.control_rx.next_message() {
                Ok(Some(m)) => self.handle_message(now, Channel::Control, m),
                Ok(None) => break,
                Err(e) => self.fail(decode_violation(Channel::Control, &e)),
            }
        }
    }

    /// A datagram arrived.
    pub fn handle_datagram(&mut self, now: Instant, bytes: &[u8]) {
        if self.is_closed() {
            return;
        }
        self.last_heard = now;
        match Message::from_bytes(bytes) {
            Ok(m) => self.handle_message(now, Channel::Datagram, m),
            Err(e) => self.fail(decode_violation(Channel::Datagram, &e)),
        }
    }

    /// Timers: pings, idle timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_closed() {
            return;
        }
        let silent = now.saturating_duration_since(self.last_heard);
        if silent >= self.cfg.idle_timeout {
            self.queue_goodbye(GoodbyeReason::Timeout, "no traffic from the host");
            self.close(CloseReason::Timeout(silent));
            return;
        }
        if let Some(at) = self.next_ping_at {
            if now >= at {
                self.pending.push_back(Pending::Ping(self.next_ping_seq));
                self.next_ping_seq = self.next_ping_seq.wrapping_add(1);
                self.pings_sent += 1;
                let gap = if self.pings_sent < self.cfg.fast_pings {
                    self.cfg.fast_ping_interval
                } else {
                    self.cfg.ping_interval
                };
                // Catch up without a burst when timers fired late.
                let mut next = at + gap;
                if next <= now {
                    next = now + gap;
                }
                self.next_ping_at = Some(next);
            }
        }
    }

    /// The transport is gone.
    pub fn handle_connection_lost(&mut self, _now: Instant, detail: &str) {
        if !self.is_closed() {
            self.close(CloseReason::ConnectionLost(detail.to_owned()));
        }
    }

    // --- mutators ---

    /// Queues an input event (motion may be coalesced while it waits). Returns its sequence
    /// number.
    pub fn send_input(&mut self, now: Instant, event: InputEvent) -> Result<u64, SendInputError> {
        let caps = match &self.state {
            State::Established(w) => w.capabilities,
            State::AwaitingWelcome => return Err(SendInputError::NotEstablished),
            State::Closed => return Err(SendInputError::Closed),
        };
        if !input_allowed(&caps, &event) {
            return Err(SendInputError::NotNegotiated);
        }
        let probe = Message::Input(crate::msg::InputMessage {
            seq: 1,
            viewer_time_us: 0,
            event,
        });
        crate::coding::check_sendable(&probe).map_err(SendInputError::Invalid)?;
        Ok(self.input.push(self.clock.micros(now), event))
    }

    /// Asks for a keyframe.
    pub fn request_keyframe(&mut self, stream_id: u8, reason: KeyframeReason) {
        self.queue_control(Control::KeyframeRequest(KeyframeRequest {
            stream_id,
            reason,
        }));
    }

    /// Reports lost frames so the encoder can avoid referencing them.
    pub fn invalidate_references(&mut self, stream_id: u8, first_frame: u32, last_frame: u32) {
        self.queue_control(Control::InvalidateReferences(InvalidateReferences {
            stream_id,
            first_frame,
            last_frame,
        }));
    }

    /// Sends a stats report.
    pub fn send_stats(&mut self, stats: StatsReport) {
        self.queue_control(Control::Stats(stats));
    }

    /// Ends the session with a goodbye.
    pub fn close_with(&mut self, reason: GoodbyeReason, message: &str) {
        if self.is_closed() {
            return;
        }
        self.queue_goodbye(reason, message);
        self.close(CloseReason::Local {
            reason,
            message: message.to_owned(),
        });
    }

    // --- outputs ---

    /// Next bytes to send. Input goes first: it is small and the user feels it.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if let Some(m) = self.input.pop() {
            if let (Some(delay), State::Established(w)) =
                (self.cfg.input_datagram_copy, &self.state)
            {
                if w.version >= 2 {
                    self.input_copies.push_back((now + delay, m));
                }
            }
            return Some(Transmit::framed(Channel::Input, &Message::Input(m)));
        }
        if self
            .input_copies
            .front()
            .is_some_and(|(due, _)| *due <= now)
        {
            let (_, m) = self.input_copies.pop_front()?;
            return Some(Transmit {
                channel: Channel::Datagram,
                bytes: Message::Input(m).to_bytes(),
            });
        }
        Some(match self.pending.pop_front()? {
            Pending::Control(m) => Transmit::framed(Channel::Control, &m),
            Pending::Ping(seq) => Transmit::framed(
                Channel::Control,
                &Message::Control(Control::Ping(Ping {
                    seq,
                    viewer_send_us: self.clock.micros(now),
                })),
            ),
        })
    }

    /// Next event for the application.
    pub fn poll_event(&mut self) -> Option<ViewerEvent> {
        self.events.pop_front()
    }

    /// When [`ViewerSession::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        let idle = self.last_heard + self.cfg.idle_timeout;
        let t = self.next_ping_at.map_or(idle, |p| p.min(idle));
        Some(self.input_copies.front().map_or(t, |(due, _)| t.min(*due)))
    }

    // --- internals ---

    fn handle_message(&mut self, now: Instant, channel: Channel, msg: Message) {
        let established = self.is_established();
        match (channel, msg) {
            (Channel::Control, Message::Control(Control::Welcome(w))) if !established => {
                if w.version < self.cfg.min_version || w.version > self.cfg.max_version {
                    return self.fail(CloseReason::ProtocolViolation(format!(
                        "host chose protocol revision {} outside our {}..={}",
                        w.version, self.cfg.min_version, self.cfg.max_version
                    )));
                }
                self.state = State::Established(w.clone());
                self.next_ping_at = Some(now);
                self.events.push_back(ViewerEvent::Connected(w));
            }
            (Channel::Control, Message::Control(Control::Goodbye(g))) => self.on_goodbye(g),
            (Channel::Control, Message::Control(Control::Pong(p))) if established => {
                let t4 = self.clock.micros(now);
                if let Some(s) = ClockSample::from_timestamps(
                    p.viewer_send_us,
                    p.host_recv_us,
                    p.host_send_us,
                    t4,
                ) {
                    self.estimator.add(s);
                    if let Some(e) = self.estimator.estimate() {
                        self.events.push_back(ViewerEvent::Clock(e));
                    }
                }
            }
            (Channel::Control, Message::Control(Control::StreamConfig(c))) if established => {
                self.events.push_back(ViewerEvent::StreamConfig(c))
            }
            (Channel::Control, Message::Control(Control::AudioConfig(a))) if established => {
                self.events.push_back(ViewerEvent::AudioConfig(a))
            }
            (Channel::Control, Message::CursorShape(s)) if established => {
                self.events.push_back(ViewerEvent::CursorShape(s))
            }
            (Channel::Datagram, Message::Video(v)) if established => {
                self.events.push_back(ViewerEvent::Video(v))
            }
            (Channel::Datagram, Message::Audio(a)) if established => {
                self.events.push_back(ViewerEvent::Audio(a))
            }
            (Channel::Datagram, Message::CursorPosition(p)) if established => {
                self.events.push_back(ViewerEvent::CursorPosition(p))
            }
            // Datagrams are not ordered with the control stream: media the host sent right after
            // its welcome can arrive before it. That is a race, not a violation: drop it.
            (
                Channel::Datagram,
                Message::Video(_) | Message::Audio(_) | Message::CursorPosition(_),
            ) if !established => {}
            (channel, msg) => {
                let when = if established {
                    "in an established session"
                } else {
                    "before welcome"
                };
                self.fail(CloseReason::ProtocolViolation(format!(
                    "unexpected {} on the {channel:?} channel {when}",
                    describe(&msg)
                )))
            }
        }
    }

    fn on_goodbye(&mut self, g: Goodbye) {
        let reason = match g.reason {
            GoodbyeReason::VersionMismatch {
                min_version,
                max_version,
            } => CloseReason::VersionMismatch {
                viewer_min: self.cfg.min_version,
                viewer_max: self.cfg.max_version,
                host_min: min_version,
                host_max: max_version,
            },
            reason => CloseReason::PeerGoodbye {
                reason,
                message: g.message,
            },
        };
        self.close(reason);
    }

    fn fail(&mut self, reason: CloseReason) {
        let msg = reason.to_string();
        self.queue_goodbye(GoodbyeReason::ProtocolError, &msg);
        self.close(reason);
    }

    fn queue_goodbye(&mut self, reason: GoodbyeReason, message: &str) {
        self.pending
            .push_back(Pending::Control(Message::Control(Control::Goodbye(
                Goodbye {
                    reason,
                    message: message.to_owned(),
                },
            ))));
    }

    fn queue_control(&mut self, c: Control) {
        if self.is_established() {
            self.pending
                .push_back(Pending::Control(Message::Control(c)));
        }
    }

    fn close(&mut self, reason: CloseReason) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.next_ping_at = None;
            self.events.push_back(ViewerEvent::Closed(reason));
        }
    }
}
