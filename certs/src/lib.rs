//! Identities, trust files and TLS configuration for Sightline.
//!
//! Sightline connects a **host** (the workstation agent that streams its
//! display) and a **viewer** (the desktop application). Both authenticate
//! with self-signed certificates identified by their SHA-256
//! [`Fingerprint`], as in SSH:
//!
//! * **Host identity is pinned by the viewer.** The viewer keeps a known
//!   hosts file ([`KnownHosts`]) and [`PinnedHostVerifier`] accepts a host
//!   only if its certificate's fingerprint equals the pin for the
//!   `host:port` being connected to. Unknown hosts are refused unless trust
//!   on first use is explicitly requested ([`TrustPolicy::TrustOnFirstUse`]);
//!   a changed fingerprint is always refused.
//! * **Viewer identity is authorized by the host.** The host keeps an
//!   authorized viewers file ([`AuthorizedViewers`]) and
//!   [`AuthorizedViewerVerifier`] requires a viewer certificate whose
//!   fingerprint is listed.
//! * **TLS 1.3 only**, with `TLS13_AES_256_GCM_SHA384` as the only session
//!   cipher suite ([`session_provider`]); QUIC initial packets use the
//!   AES-128 suite RFC 9001 requires ([`quic_initial_suite`]).
//! * Certificate names and validity dates are **not** checked: identities
//!   are self-signed and pinned by the SHA-256 of the whole DER certificate,
//!   so names and dates add nothing (see [`design`] for the full rationale).
//!
//! Identities live in a directory ([`Identity::save`] / [`Identity::load`]),
//! and the `certs` command-line tool creates them and manages both trust
//! files.
//!
//! ```no_run
//! use std::path::Path;
//! use std::sync::{Arc, RwLock};
//! use sightline_certs::*;
//!
//! # fn main() -> Result<(), CertError> {
//! // Host side.
//! let (host_id, _) = Identity::load_or_create(Path::new("host-id"), Role::Host, "workstation")?;
//! let authorized = Arc::new(RwLock::new(AuthorizedViewers::load_or_empty(
//!     Path::new("authorized_viewers"),
//! )?));
//! let verifier = AuthorizedViewerVerifier::new(authorized);
//! let host_config = host_tls_config(&host_id, verifier, &[b"sightline/1"])?;
//!
//! // Viewer side.
//! let viewer_id = Identity::load(Path::new("viewer-id"))?;
//! let known_path = Path::new("known_hosts");
//! let known = KnownHosts::load_or_empty(known_path)?;
//! let pins = PinnedHostVerifier::new(
//!     Some(known_path.to_path_buf()),
//!     known,
//!     "workstation.lan:4433",
//!     TrustPolicy::PinnedOnly,
//! );
//! let viewer_config = viewer_tls_config(&viewer_id, pins.clone(), &[b"sightline/1"])?;
//! # let _ = (host_config, viewer_config);
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod design;
mod error;
mod fingerprint;
mod fsutil;
mod identity;
pub mod pairing;
pub mod paths;
mod tls;
mod trust;
mod verify;

pub use error::CertError;
pub use fingerprint::Fingerprint;
pub use identity::{load_cert_pem, Identity, Role, CERT_FILE, KEY_FILE, NAME_FILE};
pub use tls::{host_tls_config, quic_initial_suite, session_provider, viewer_tls_config};
pub use trust::{AuthorizedViewers, KnownHosts};
pub use verify::{
    danger, AuthorizedViewerVerifier, HostKeyRejected, PinOutcome, PinnedHostVerifier, Refusal,
    TrustPolicy, MAX_REFUSALS,
};

/// Re-exports of the rustls and pki-types versions this crate is built
/// against, for callers that need to name their types.
pub use rustls;
pub use rustls_pki_types;
