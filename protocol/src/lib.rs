//! # Sightline protocol
//!
//! Every byte Sightline puts on the wire, the time model, and the session rules — with no I/O.
//! Like `quinn-proto` and `str0m`, this crate never touches a socket, a thread or a clock: time
//! and bytes are arguments, so every behaviour is reproducible in tests.
//!
//! ```text
//!            ┌──────────── I/O layer (host-agent/net.rs, viewer/net.rs: quinn) ───────────┐
//!  bytes ──► │ handle_stream(now, channel, bytes) / handle_datagram(now, bytes)            │
//!  timer ──► │ handle_timeout(now)                                                        │
//!            │          HostSession / ViewerSession (this crate)                          │
//!            │ poll_transmit(now) ──► Transmit { channel, bytes } ──► stream / datagram    │
//!            │ poll_event()       ──► HostEvent / ViewerEvent ──► application              │
//!            │ poll_timeout()     ──► next Instant to call handle_timeout                  │
//!            └────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! ## Run-loop contract
//! 1. Feed everything that arrived (`handle_*`), in arrival order per channel.
//! 2. Drain [`HostSession::poll_transmit`] / [`ViewerSession::poll_transmit`] until `None` and
//!    send each [`session::Transmit`] on its channel; pass `now` so clock-sync timestamps are
//!    stamped as late as possible.
//! 3. Drain `poll_event` until `None`.
//! 4. Wait until `poll_timeout()` or new input, then call `handle_timeout(now)` and loop.
//!
//! Once a `Closed` event has been returned, drain `poll_transmit` once more (it may hold a
//! goodbye) and then close the connection.
//!
//! ## Clocks
//! See [`time`]: monotonic `now` for timers, [`time::MediaTime`] for media, and per-peer wire
//! clocks ([`time::WireClock`]) for timestamps that cross the wire.
//!
//! ## Panic policy
//! Bad peer input is an error ([`coding::DecodeError`], [`session::CloseReason`]), never a
//! panic. A panic here is a bug.
//!
//! The [`design`] module is the manual: channel mapping, loss policy, versioning.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audio;
pub mod coding;
pub mod colour;
pub mod congestion;
pub mod damage;
pub mod design;
pub mod input;
pub mod msg;
pub mod pacing;
pub mod pair;
pub mod probe;
pub mod reconnect;
pub mod session;
pub mod stats;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tiles;
pub mod time;
pub mod transport;
pub mod video;

pub use coding::{Decode, DecodeError, Encode};
pub use msg::Message;
pub use session::{
    Channel, CloseReason, HostConfig, HostEvent, HostSession, Transmit, ViewerConfig, ViewerEvent,
    ViewerSession, ALPN, PROTOCOL_VERSION,
};
