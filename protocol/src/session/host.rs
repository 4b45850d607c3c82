//! The host side of a session.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::limits::{RateLimits, TokenBucket};
use super::{decode_violation, input_allowed, Channel, CloseReason, Transmit};
use crate::coding::{
    check_sendable, Decode, DecodeError, Encode, FrameReader, DEFAULT_MAX_MESSAGE_LEN,
};
use crate::input::HeldInput;
use crate::msg::{
    AudioConfig, AudioPacket, Capabilities, Control, CursorPosition, CursorShape, Extension,
    Goodbye, GoodbyeReason, Hello, InputEvent, InputMessage, InvalidateReferences, KeyframeRequest,
    Message, Pong, StatsReport, StreamConfig, VideoFragment, Welcome,
};
use crate::session::{AUDIO_MIN_VERSION, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};
use crate::time::WireClock;

/// Host session settings.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Name shown to viewers.
    pub host_name: String,
    /// Oldest protocol revision accepted.
    pub min_version: u16,
    /// Newest protocol revision spoken.
    pub max_version: u16,
    /// What this host offers.
    pub capabilities: Capabilities,
    /// Random id for this session (the I/O layer draws it).
    pub session_id: u64,
    /// With input held and nothing heard from the viewer for this long, release it all.
    pub input_release_after: Duration,
    /// Close the session after this long without hearing from the viewer.
    pub idle_timeout: Duration,
    /// Largest framed message accepted on a stream.
    pub max_message_len: usize,
    /// Input and control message rates above which the viewer is told goodbye.
    pub rate_limits: RateLimits,
    /// This host sends lossless tiles to viewers that offer
    /// [`crate::tiles::EXT_LOSSLESS_TILES`] (it echoes the extension in the welcome).
    pub lossless_tiles: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            host_name: "sightline-host".into(),
            min_version: MIN_PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            capabilities: Capabilities::ALL,
            session_id: 0,
            input_release_after: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(10),
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            rate_limits: RateLimits::default(),
            lossless_tiles: false,
        }
    }
}

/// Why the host synthesised releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseCause {
    /// The viewer asked (`ReleaseAll`, e.g. it lost focus).
    ViewerRequest,
    /// Nothing heard from the viewer for [`HostConfig::input_release_after`].
    ViewerSilent,
    /// The session ended.
    SessionEnded,
}

/// Where an input event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputOrigin {
    /// Sent by the viewer.
    Viewer {
        /// Its sequence number.
        seq: u64,
        /// Viewer clock when it happened.
        viewer_time_us: u64,
        /// Host wire clock when it arrived.
        host_recv_us: u64,
    },
    /// Made by the host to release something held.
    Release(ReleaseCause),
}

/// What the host application must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum HostEvent {
    /// Hello accepted.
    Connected {
        /// The viewer's name.
        viewer_name: String,
        /// Negotiated revision.
        version: u16,
        /// Shared capabilities.
        capabilities: Capabilities,
    },
    /// Inject this.
    Input {
        /// The event.
        event: InputEvent,
        /// Where it came from.
        origin: InputOrigin,
    },
    /// Send a keyframe.
    KeyframeRequested(KeyframeRequest),
    /// Stop referencing these frames.
    InvalidateReferences(InvalidateReferences),
    /// The viewer's report.
    Stats(StatsReport),
    /// The session is over; nothing more will be reported.
    Closed(CloseReason),
}

/// Why the host may not send audio in this session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioRefused {
    /// Hello has not been accepted, or the session is over.
    #[error("session not established")]
    NotEstablished,
    /// The viewer speaks an older revision, which has no audio.
    #[error("the viewer speaks protocol revision {0}; audio needs revision {AUDIO_MIN_VERSION}")]
    OldRevision(u16),
    /// The viewer did not advertise this channel layout (or no audio at all).
    #[error("the viewer does not play {0} audio")]
    LayoutNotNegotiated(&'static str),
    /// The configuration breaks a rule of the format.
    #[error("invalid audio configuration: {0}")]
    Invalid(DecodeError),
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    AwaitingHello,
    Established {
        capabilities: Capabilities,
        version: u16,
    },
    Closed,
}

#[derive(Debug)]
enum Pending {
    Control(Message),
    /// A pong whose send time is stamped when it is polled.
    Pong {
        seq: u32,
        viewer_send_us: u64,
        host_recv_us: u64,
    },
    Datagram(Message),
}

/// Counters for diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostCounters {
    /// Input events passed on.
    pub inputs: u64,
    /// Input events dropped as repeats (incl. the second copy of one sent both ways).
    pub duplicate_inputs: u64,
    /// Input events taken from their datagram copy (it beat the stream copy).
    pub datagram_inputs: u64,
    /// Datagram copies ignored because an earlier input was still missing.
    pub early_datagram_inputs: u64,
    /// Input events dropped because their kind was not negotiated.
    pub refused_inputs: u64,
    /// Synthesised releases.
    pub releases: u64,
}

/// Host half of a session (sans-IO).
#[derive(Debug)]
pub struct HostSession {
    cfg: HostConfig,
    clock: WireClock,
    state: State,
    control_rx: FrameReader,
    input_rx: FrameReader,
    pending: VecDeque<Pending>,
    events: VecDeque<HostEvent>,
    held: HeldInput,
    last_heard: Instant,
    last_input_seq: u64,
    counters: HostCounters,
    /// The viewer offered [`crate::damage::EXT_DAMAGE_RECTS`]: video fragments may carry damage.
    damage_rects: bool,
    /// Lossless tiles were negotiated ([`crate::tiles`]).
    lossless_tiles: bool,
    hello_extensions: Vec<crate::msg::Extension>,
    input_rate: TokenBucket,
    control_rate: TokenBucket,
}

impl HostSession {
    /// A session that waits for the viewer's hello. `clock` gives the host wire time.
    pub fn new(cfg: HostConfig, now: Instant, clock: WireClock) -> Self {
        let max = cfg.max_message_len;
        let limits = cfg.rate_limits;
        HostSession {
            input_rate: TokenBucket::new(limits.input_per_s, limits.input_burst, now),
            control_rate: TokenBucket::new(limits.control_per_s, limits.control_burst, now),
            cfg,
            clock,
            state: State::AwaitingHello,
            control_rx: FrameReader::new(max),
            input_rx: FrameReader::new(max),
            pending: VecDeque::new(),
            events: VecDeque::new(),
            held: HeldInput::new(),
            last_heard: now,
            last_input_seq: 0,
            counters: HostCounters::default(),
            damage_rects: false,
            lossless_tiles: false,
            hello_extensions: Vec::new(),
        }
    }

    // --- getters ---

    /// Whether hello has been accepted and the session is not closed.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established { .. })
    }
    /// Whether the session is over.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }
    /// Negotiated capabilities, once established.
    pub fn capabilities(&self) -> Option<Capabilities> {
        match &self.state {
            State::Established { capabilities, .. } => Some(*capabilities),
            _ => None,
        }
    }
    /// Negotiated protocol revision, once established.
    pub fn version(&self) -> Option<u16> {
        match &self.state {
            State::Established { version, .. } => Some(*version),
            _ => None,
        }
    }
    /// Whether audio in `layout` may be sent: established, revision 3 or newer, and the
    /// viewer advertised the layout.
    pub fn audio_allowed(&self, layout: crate::msg::ChannelLayout) -> Result<(), AudioRefused> {
        match &self.state {
            State::Established {
                capabilities,
                version,
            } => {
                if *version < AUDIO_MIN_VERSION {
                    Err(AudioRefused::OldRevision(*version))
                } else if !capabilities.audio_layouts.contains(layout.capability()) {
                    Err(AudioRefused::LayoutNotNegotiated(layout.name()))
                } else {
                    Ok(())
                }
            }
            _ => Err(AudioRefused::NotEstablished),
        }
    }
    /// What the viewer holds now.
    pub fn held(&self) -> &HeldInput {
        &self.held
    }
    /// The extensions the viewer's hello carried (e.g.
    /// [`crate::reconnect::resume_extension`]); empty before hello.
    pub fn hello_extensions(&self) -> &[crate::msg::Extension] {
        &self.hello_extensions
    }
    /// Diagnostics.
    pub fn counters(&self) -> HostCounters {
        self.counters
    }
    /// The host wire clock at `now` (µs).
    pub fn wire_time(&self, now: Instant) -> u64 {
        self.clock.micros(now)
    }

    // --- inputs ---

    /// Bytes that arrived on a stream.
    pub fn handle_stream(&mut self, now: Instant, channel: Channel, bytes: &[u8]) {
        if self.is_closed() {
            return;
        }
        self.last_heard = now;
        let rx = match channel {
            Channel::Control => &mut self.control_rx,
            Channel::Input => &mut self.input_rx,
            Channel::Datagram => return self.handle_datagram(now, bytes),
        };
        rx.push(bytes);
        loop {
            let rx = match channel {
                Channel::Control => &mut self.control_rx,
                _ => &mut self.input_rx,
            };
            match rx.next_message() {
                Ok(Some(msg)) => self.handle_message(now, channel, msg),
                Ok(None) => break,
                Err(e) => {
                    let reason = decode_violation(channel, &e);
                    self.fail(now, reason);
                    break;
                }
            }
            if self.is_closed() {
                break;
            }
        }
    }

    /// A datagram arrived. The viewer sends none yet; any is a protocol violation.
    pub fn handle_datagram(&mut self, now: Instant, bytes: &[u8]) {
        if self.is_closed() {
            return;
        }
        self.last_heard = now;
        if !self.input_rate.take(now) {
            return self.rate_exceeded(now, Channel::Datagram);
        }
        // Revision 2: a datagram copy of an input message. It is taken only when it is the
        // next in sequence — an earlier one still missing will come on the stream, and taking
        // a later one first would reorder input (or drop the earlier one as a repeat).
        let violation = match (&self.state, Message::from_bytes(bytes)) {
            (State::Established { capabilities, .. }, Ok(Message::Input(m))) => {
                let caps: Capabilities = *capabilities;
                if m.seq == self.last_input_seq + 1 {
                    self.counters.datagram_inputs += 1;
                    self.on_input(now, &caps, m);
                } else if m.seq <= self.last_input_seq {
                    self.counters.duplicate_inputs += 1;
                } else {
                    self.counters.early_datagram_inputs += 1;
                }
                return;
            }
            (_, Ok(other)) => format!("unexpected {} datagram from the viewer", describe(&other)),
            (_, Err(e)) => format!(
                "malformed {}-byte datagram from the viewer: {e}",
                bytes.len()
            ),
        };
        self.fail(now, CloseReason::ProtocolViolation(violation));
    }

    /// Timers: input release on silence, idle timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_closed() {
            return;
        }
        let silent = now.saturating_duration_since(self.last_heard);
        if silent >= self.cfg.idle_timeout {
            self.release_held(ReleaseCause::SessionEnded);
            self.queue_goodbye(GoodbyeReason::Timeout, "no traffic from the viewer");
            self.close(CloseReason::Timeout(silent));
            return;
        }
        if silent >= self.cfg.input_release_after && !self.held.is_empty() {
            self.release_held(ReleaseCause::ViewerSilent);
        }
    }

    /// The transport is gone: release everything and close.
    pub fn handle_connection_lost(&mut self, _now: Instant, detail: &str) {
        if self.is_closed() {
            return;
        }
        self.release_held(ReleaseCause::SessionEnded);
        self.close(CloseReason::ConnectionLost(detail.to_owned()));
    }

    // --- mutators ---

    /// Announces a video stream's format. Refused (and not sent) when the viewer would reject
    /// it.
    pub fn send_stream_config(&mut self, cfg: StreamConfig) -> Result<(), DecodeError> {
        self.queue_checked(Message::Control(Control::StreamConfig(cfg)))
    }
    /// Sends a cursor image (reliably). Refused (and not sent) when the viewer would reject it.
    pub fn send_cursor_shape(&mut self, shape: CursorShape) -> Result<(), DecodeError> {
        self.queue_checked(Message::CursorShape(shape))
    }
    /// Sends a video fragment as a datagram.
    /// A damage list is stripped unless the viewer negotiated [`HostSession::damage_rects`].
    pub fn send_video(&mut self, mut frag: VideoFragment) {
        if !self.damage_rects {
            frag.damage = None;
        }
        self.queue_datagram(Message::Video(frag));
    }

    /// Whether the viewer takes damage lists in video fragments (it offered
    /// [`crate::damage::EXT_DAMAGE_RECTS`] and the welcome echoed it).
    pub fn damage_rects(&self) -> bool {
        self.damage_rects
    }

    /// Whether this session gets lossless tiles (the viewer offered
    /// [`crate::tiles::EXT_LOSSLESS_TILES`], the host's configuration allows them, and the
    /// welcome echoed it): the I/O layer opens the tile stream.
    pub fn lossless_tiles(&self) -> bool {
        self.lossless_tiles
    }
    /// Announces the audio format (control stream). Refused (and not sent) unless
    /// [`HostSession::audio_allowed`] and the viewer would accept it.
    pub fn send_audio_config(&mut self, cfg: AudioConfig) -> Result<(), AudioRefused> {
        self.audio_allowed(cfg.layout)?;
        self.queue_checked(Message::Control(Control::AudioConfig(cfg)))
            .map_err(AudioRefused::Invalid)
    }
    /// Sends an audio packet as a datagram (dropped unless [`HostSession::audio_allowed`]).
    pub fn send_audio(&mut self, pkt: AudioPacket) {
        if self.audio_allowed(pkt.layout).is_ok() {
            self.queue_datagram(Message::Audio(pkt));
        }
    }
    /// Sends the cursor position as a datagram.
    pub fn send_cursor_position(&mut self, pos: CursorPosition) {
        self.queue_datagram(Message::CursorPosition(pos));
    }

    /// Ends the session: releases held input, says goodbye.
    pub fn close_with(&mut self, _now: Instant, reason: GoodbyeReason, message: &str) {
        if self.is_closed() {
            return;
        }
        self.release_held(ReleaseCause::SessionEnded);
        self.queue_goodbye(reason, message);
        self.close(CloseReason::Local {
            reason,
            message: message.to_owned(),
        });
    }

    // --- outputs ---

    /// Next bytes to send.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        Some(match self.pending.pop_front()? {
            Pending::Control(m) => Transmit::framed(Channel::Control, &m),
            Pending::Pong {
                seq,
                viewer_send_us,
                host_recv_us,
            } => Transmit::framed(
                Channel::Control,
                &Message::Control(Control::Pong(Pong {
                    seq,
                    viewer_send_us,
                    host_recv_us,
                    host_send_us: self.clock.micros(now).max(host_recv_us),
                })),
            ),
            Pending::Datagram(m) => Transmit {
                channel: Channel::Datagram,
                bytes: m.to_bytes(),
            },
        })
    }

    /// Next event for the application.
    pub fn poll_event(&mut self) -> Option<HostEvent> {
        self.events.pop_front()
    }

    /// When [`HostSession::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        let idle = self.last_heard + self.cfg.idle_timeout;
        if self.held.is_empty() {
            Some(idle)
        } else {
            Some(idle.min(self.last_heard + self.cfg.input_release_after))
        }
    }

    // --- internals ---

    fn handle_message(&mut self, now: Instant, channel: Channel, msg: Message) {
        let within = match channel {
            Channel::Control => self.control_rate.take(now),
            _ => self.input_rate.take(now),
        };
        if !within {
            return self.rate_exceeded(now, channel);
        }
        match (channel, &self.state, msg) {
            (Channel::Control, State::AwaitingHello, Message::Control(Control::Hello(h))) => {
                self.on_hello(h)
            }
            (Channel::Control, State::Established { .. }, Message::Control(c)) => match c {
                Control::Ping(p) => self.pending.push_back(Pending::Pong {
                    seq: p.seq,
                    viewer_send_us: p.viewer_send_us,
                    host_recv_us: self.clock.micros(now),
                }),
                Control::KeyframeRequest(k) => {
                    self.events.push_back(HostEvent::KeyframeRequested(k))
                }
                Control::InvalidateReferences(i) => {
                    self.events.push_back(HostEvent::InvalidateReferences(i))
                }
                Control::Stats(s) => self.events.push_back(HostEvent::Stats(s)),
                Control::Goodbye(g) => {
                    self.release_held(ReleaseCause::SessionEnded);
                    self.close(CloseReason::PeerGoodbye {
                        reason: g.reason,
                        message: g.message,
                    });
                }
                other => self.fail(
                    now,
                    CloseReason::ProtocolViolation(format!(
                        "unexpected {} from the viewer in an established session",
                        control_name(&other)
                    )),
                ),
            },
            (Channel::Input, State::Established { capabilities, .. }, Message::Input(m)) => {
                let caps = *capabilities;
                self.on_input(now, &caps, m)
            }
            (Channel::Control, State::AwaitingHello, Message::Control(Control::Goodbye(g))) => self
                .close(CloseReason::PeerGoodbye {
                    reason: g.reason,
                    message: g.message,
                }),
            (channel, state, msg) => {
                let what = describe(&msg);
                let when = match state {
                    State::AwaitingHello => "before hello",
                    _ => "in an established session",
                };
                self.fail(
                    now,
                    CloseReason::ProtocolViolation(format!(
                        "unexpected {what} on the {channel:?} channel {when}"
                    )),
                )
            }
        }
    }

    fn on_hello(&mut self, h: Hello) {
        let lo = h.min_version.max(self.cfg.min_version);
        let hi = h.max_version.min(self.cfg.max_version);
        if lo > hi {
            let reason = CloseReason::VersionMismatch {
                viewer_min: h.min_version,
                viewer_max: h.max_version,
                host_min: self.cfg.min_version,
                host_max: self.cfg.max_version,
            };
            self.queue_goodbye(
                GoodbyeReason::VersionMismatch {
                    min_version: self.cfg.min_version,
                    max_version: self.cfg.max_version,
                },
                &reason.to_string(),
            );
            self.close(reason);
            return;
        }
        let capabilities = self.cfg.capabilities.intersection(&h.capabilities);
        // Extensions this host understands are echoed; unknown ones are ignored.
        self.damage_rects = h
            .extensions
            .iter()
            .any(|e| e.id == crate::damage::EXT_DAMAGE_RECTS);
        self.lossless_tiles = self.cfg.lossless_tiles
            && h.extensions
                .iter()
                .any(|e| e.id == crate::tiles::EXT_LOSSLESS_TILES);
        let echo = |id: u16| Extension {
            id,
            body: Vec::new(),
        };
        let mut extensions = Vec::new();
        if self.damage_rects {
            extensions.push(echo(crate::damage::EXT_DAMAGE_RECTS));
        }
        if self.lossless_tiles {
            extensions.push(echo(crate::tiles::EXT_LOSSLESS_TILES));
        }
        self.hello_extensions = h.extensions;
        self.pending
            .push_back(Pending::Control(Message::Control(Control::Welcome(
                Welcome {
                    version: hi,
                    session_id: self.cfg.session_id,
                    host_name: self.cfg.host_name.clone(),
                    capabilities,
                    extensions,
                },
            ))));
        self.state = State::Established {
            capabilities,
            version: hi,
        };
        self.events.push_back(HostEvent::Connected {
            viewer_name: h.name,
            version: hi,
            capabilities,
        });
    }

    fn on_input(&mut self, now: Instant, caps: &Capabilities, m: InputMessage) {
        if m.seq <= self.last_input_seq {
            self.counters.duplicate_inputs += 1;
            return;
        }
        self.last_input_seq = m.seq;
        if !input_allowed(caps, &m.event) {
            self.counters.refused_inputs += 1;
            return;
        }
        if m.event == InputEvent::ReleaseAll {
            self.release_held(ReleaseCause::ViewerRequest);
            return;
        }
        self.held.apply(&m.event);
        self.counters.inputs += 1;
        self.events.push_back(HostEvent::Input {
            event: m.event,
            origin: InputOrigin::Viewer {
                seq: m.seq,
                viewer_time_us: m.viewer_time_us,
                host_recv_us: self.clock.micros(now),
            },
        });
    }

    fn release_held(&mut self, cause: ReleaseCause) {
        for event in self.held.release_all() {
            self.counters.releases += 1;
            self.events.push_back(HostEvent::Input {
                event,
                origin: InputOrigin::Release(cause),
            });
        }
    }

    /// The viewer sent more than its rate limit allows: goodbye, with the limit named.
    fn rate_exceeded(&mut self, now: Instant, channel: Channel) {
        let l = self.cfg.rate_limits;
        let message = match channel {
            Channel::Control => format!(
                "rate limit exceeded: more than {} control messages per second (burst {})",
                l.control_per_s, l.control_burst
            ),
            _ => format!(
                "rate limit exceeded: more than {} input messages per second (burst {})",
                l.input_per_s, l.input_burst
            ),
        };
        self.close_with(now, GoodbyeReason::Refused, &message);
    }

    fn fail(&mut self, _now: Instant, reason: CloseReason) {
        self.release_held(ReleaseCause::SessionEnded);
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

    fn queue_checked(&mut self, m: Message) -> Result<(), DecodeError> {
        check_sendable(&m)?;
        self.queue_control(m);
        Ok(())
    }

    fn queue_control(&mut self, m: Message) {
        if !self.is_closed() {
            self.pending.push_back(Pending::Control(m));
        }
    }

    fn queue_datagram(&mut self, m: Message) {
        if self.is_established() {
            self.pending.push_back(Pending::Datagram(m));
        }
    }

    fn close(&mut self, reason: CloseReason) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.events.push_back(HostEvent::Closed(reason));
        }
    }
}

pub(crate) fn control_name(c: &Control) -> &'static str {
    match c {
        Control::Hello(_) => "Hello",
        Control::Welcome(_) => "Welcome",
        Control::StreamConfig(_) => "StreamConfig",
        Control::Ping(_) => "Ping",
        Control::Pong(_) => "Pong",
        Control::KeyframeRequest(_) => "KeyframeRequest",
        Control::InvalidateReferences(_) => "InvalidateReferences",
        Control::Stats(_) => "Stats",
        Control::Goodbye(_) => "Goodbye",
        Control::AudioConfig(_) => "AudioConfig",
    }
}

pub(crate) fn describe(m: &Message) -> &'static str {
    match m {
        Message::Control(c) => control_name(c),
        Message::Video(_) => "video fragment",
        Message::Audio(_) => "audio packet",
        Message::Input(_) => "input event",
        Message::CursorShape(_) => "cursor shape",
        Message::CursorPosition(_) => "cursor position",
    }
}
