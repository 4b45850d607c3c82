//! Where identities and trust files live by default.

use std::path::PathBuf;

/// The per-user configuration directory: `$XDG_CONFIG_HOME/sightline`, else
/// `~/.config/sightline`, else `/etc/sightline` (a service account without a home).
pub fn config_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("sightline");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(h) => PathBuf::from(h).join(".config").join("sightline"),
        None => PathBuf::from("/etc/sightline"),
    }
}

/// This machine's host name, or `fallback`.
pub fn machine_name(fallback: &str) -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| fallback.to_owned())
}
