//! Host and viewer session state machines.
//!
//! Both follow one run-loop contract (see the crate docs): feed what arrives with `handle_*`,
//! then drain `poll_transmit` and `poll_event`, then sleep until `poll_timeout` or the next
//! arrival and call `handle_timeout`. Nothing here blocks, spawns, reads a clock or touches a
//! socket.

mod host;
mod limits;
mod viewer;

pub use host::{
    AudioRefused, HostConfig, HostCounters, HostEvent, HostSession, InputOrigin, ReleaseCause,
};
pub use limits::{RateLimits, TokenBucket};
pub use viewer::{SendInputError, ViewerConfig, ViewerEvent, ViewerSession};

use std::fmt;
use std::time::Duration;

use crate::coding::{encode_frame, DecodeError};
use crate::msg::{Capabilities, GoodbyeReason, InputEvent, InputKinds, Message};

/// The protocol revision this build speaks. Compatible additions raise it; the range a peer
/// accepts is negotiated in hello/welcome.
///
/// * 1: the first revision.
/// * 2: the viewer may send a copy of each input message as a datagram a few milliseconds
///   after the stream copy, so a lost packet does not hold input back for a retransmission
///   (the host takes a datagram copy only when it is the next in sequence).
/// * 3: audio. The host announces the audio format with a `Control::AudioConfig` before the
///   first audio packet, and audio packets carry the host capture time. Hosts send neither to
///   an older viewer (no earlier revision sent audio, so the packet layout could change).
pub const PROTOCOL_VERSION: u16 = 3;

/// The first revision with audio ([`crate::msg::AudioConfig`] and audio packets).
pub const AUDIO_MIN_VERSION: u16 = 3;

/// The oldest revision this build still speaks.
pub const MIN_PROTOCOL_VERSION: u16 = 1;

/// The TLS ALPN id. It names the wire-incompatible generation: a peer that does not offer it is
/// refused during the TLS handshake, before any message is exchanged.
pub const ALPN: &[u8] = b"sightline/1";

/// Which QUIC channel bytes belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// The bidirectional control stream, opened by the viewer.
    Control,
    /// The unidirectional viewer → host input stream (reliable, ordered).
    Input,
    /// Unreliable datagrams (video, audio, cursor position).
    Datagram,
}

/// Bytes to hand to the transport. Stream bytes are already framed; a datagram is one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send.
    pub channel: Channel,
    /// What to send.
    pub bytes: Vec<u8>,
}

impl Transmit {
    pub(crate) fn framed(channel: Channel, msg: &Message) -> Transmit {
        let mut bytes = Vec::new();
        encode_frame(msg, &mut bytes);
        Transmit { channel, bytes }
    }
}

/// Why a session ended, as seen by the side that reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer said goodbye.
    PeerGoodbye {
        /// Its reason.
        reason: GoodbyeReason,
        /// Its words.
        message: String,
    },
    /// We closed it.
    Local {
        /// Our reason.
        reason: GoodbyeReason,
        /// Our words.
        message: String,
    },
    /// No common protocol revision.
    VersionMismatch {
        /// Viewer's oldest revision.
        viewer_min: u16,
        /// Viewer's newest revision.
        viewer_max: u16,
        /// Host's oldest revision.
        host_min: u16,
        /// Host's newest revision.
        host_max: u16,
    },
    /// The peer sent something malformed or out of place.
    ProtocolViolation(String),
    /// Nothing heard for this long.
    Timeout(Duration),
    /// The transport went away (reported by the I/O layer).
    ConnectionLost(String),
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerGoodbye { reason, message } => {
                write!(f, "peer closed the session ({reason:?}): {message}")
            }
            CloseReason::Local { reason, message } => {
                write!(f, "session closed locally ({reason:?}): {message}")
            }
            CloseReason::VersionMismatch {
                viewer_min,
                viewer_max,
                host_min,
                host_max,
            } => write!(
                f,
                "protocol version mismatch: viewer speaks {viewer_min}..={viewer_max}, \
                 host speaks {host_min}..={host_max}; upgrade the older side"
            ),
            CloseReason::ProtocolViolation(m) => write!(f, "protocol violation: {m}"),
            CloseReason::Timeout(d) => write!(f, "peer silent for {} ms", d.as_millis()),
            CloseReason::ConnectionLost(m) => write!(f, "connection lost: {m}"),
        }
    }
}

pub(crate) fn decode_violation(channel: Channel, e: &DecodeError) -> CloseReason {
    CloseReason::ProtocolViolation(format!("malformed message on {channel:?}: {e}"))
}

/// The input kind an event needs in the negotiated capabilities (`None`: always allowed).
pub fn input_kind(ev: &InputEvent) -> Option<InputKinds> {
    Some(match ev {
        InputEvent::Key(_) => InputKinds::KEYBOARD,
        InputEvent::PointerMove { .. }
        | InputEvent::PointerRelative { .. }
        | InputEvent::Button { .. }
        | InputEvent::Scroll { .. } => InputKinds::MOUSE,
        InputEvent::Pen(_) => InputKinds::PEN,
        InputEvent::Jog { .. }
        | InputEvent::Shuttle { .. }
        | InputEvent::ControllerButton { .. } => InputKinds::JOG_SHUTTLE,
        InputEvent::ReleaseAll => return None,
        InputEvent::Probe { .. } => InputKinds::PROBE,
    })
}

/// Whether `caps` allow `ev`.
pub fn input_allowed(caps: &Capabilities, ev: &InputEvent) -> bool {
    input_kind(ev).is_none_or(|k| caps.input_kinds.contains(k))
}
