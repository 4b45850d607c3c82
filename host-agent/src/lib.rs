//! # Sightline host agent
//!
//! Runs on the workstation: accepts authenticated viewers over QUIC (TLS 1.3, AES-256-GCM),
//! runs one [`sightline_protocol::HostSession`] per viewer, captures ([`capture`]), converts
//! ([`convert`]) and encodes the display. [`net`] is the only module that touches quinn for
//! sessions; [`pair`] runs the pairing exchange on connections `net` hands it. [`security`],
//! [`limits`] and [`audit`] hold the admission rules, rate limits and the audit log.

pub mod audio;
pub mod audit;
pub mod capture;
pub mod config;
pub mod config_file;
pub mod convert;
pub mod damage;
pub mod encode;
pub mod inject;
pub mod limits;
pub mod media_send;
pub mod net;
pub mod pair;
pub mod pipeline;
pub mod probe;
pub mod security;
pub mod security_cli;
mod sessions;
pub mod tiles;
