//! # Sightline host agent
//!
//! Runs on the workstation: accepts authenticated viewers over QUIC (TLS 1.3, AES-256-GCM),
//! runs one [`sightline_protocol::HostSession`] per viewer, and (in later stages) captures,
//! encodes and injects. [`net`] is the only module that touches quinn.

pub mod config;
pub mod net;
