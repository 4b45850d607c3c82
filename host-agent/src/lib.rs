//! # Sightline host agent
//!
//! Runs on the workstation: accepts authenticated viewers over QUIC (TLS 1.3, AES-256-GCM),
//! runs one [`sightline_protocol::HostSession`] per viewer, captures ([`capture`]), converts
//! ([`convert`]) and encodes the display. [`net`] is the only module that touches quinn.

pub mod audio;
pub mod capture;
pub mod config;
pub mod convert;
pub mod encode;
pub mod inject;
pub mod net;
pub mod pipeline;
pub mod probe;
