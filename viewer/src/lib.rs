//! # Sightline viewer
//!
//! Connects to a host agent over QUIC (TLS 1.3, AES-256-GCM, mutual certificates, the host
//! pinned by fingerprint), runs a [`sightline_protocol::ViewerSession`], and (in later stages)
//! decodes, presents and sends input. [`net`] is the only module that touches quinn.

pub mod app;
pub mod audio;
pub mod bench;
pub mod bench_plot;
mod bench_record;
pub mod compose;
pub mod config;
pub mod convert;
pub mod decode;
pub mod decoder;
mod dial;
pub mod diff;
pub mod frame;
pub mod framebuffer;
pub mod headless;
pub mod input;
pub mod net;
pub mod overlay;
pub mod pair;
pub mod present_cpu;
pub mod present_gpu;
pub mod reconnect;
pub mod render;
pub mod stats;
pub mod video;
pub mod wan;
pub mod window;
