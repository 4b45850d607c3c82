//! Host agent settings and their defaults.

use std::path::PathBuf;

/// Default UDP port.
pub const DEFAULT_PORT: u16 = 4433;

/// The per-user configuration directory: `$XDG_CONFIG_HOME/sightline` or `~/.config/sightline`.
pub fn config_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("sightline");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(h) => PathBuf::from(h).join(".config").join("sightline"),
        None => PathBuf::from("/etc/sightline"),
    }
}

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
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "sightline-host".into())
}
