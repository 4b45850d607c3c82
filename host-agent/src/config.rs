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

/// The configuration file the Debian package installs; `host-agent pair` reads it when no
/// `--config` is given, so that it finds the running service's pairing file.
pub const SYSTEM_CONFIG: &str = "/etc/sightline/host.toml";

/// Default audit log: `audit.jsonl` next to the authorized-viewers file.
pub fn default_audit_log(authorized: &std::path::Path) -> PathBuf {
    sibling(authorized, "audit.jsonl")
}

/// Default pairing window file: `pairing` next to the authorized-viewers file.
pub fn default_pairing_file(authorized: &std::path::Path) -> PathBuf {
    sibling(authorized, "pairing")
}

fn sibling(path: &std::path::Path, name: &str) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(name),
        _ => PathBuf::from(name),
    }
}
