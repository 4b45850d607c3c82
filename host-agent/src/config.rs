//! Host agent settings and their defaults.

use std::path::PathBuf;

/// Default UDP port.
pub const DEFAULT_PORT: u16 = 4433;

pub use sightline_certs::paths::config_dir;

/// Default host identity directory.
pub fn default_identity_dir() -> PathBuf {
    config_dir().join("host-identity")
}

/// Default authorized-viewers file.
pub fn default_authorized_file() -> PathBuf {
    config_dir().join("authorized_viewers")
}

/// This machine's name, for the host's identity and hello.
pub fn machine_name() -> String {
    sightline_certs::paths::machine_name("sightline-host")
}
