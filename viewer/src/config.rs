//! Viewer settings and their defaults.

use std::path::PathBuf;

/// Default host UDP port.
pub const DEFAULT_PORT: u16 = 4433;

pub use sightline_certs::paths::config_dir;

/// Default viewer identity directory.
pub fn default_identity_dir() -> PathBuf {
    config_dir().join("viewer-identity")
}

/// Default known-hosts file.
pub fn default_known_hosts() -> PathBuf {
    config_dir().join("known_hosts")
}

/// A host address as the user gave it: `HOST`, `HOST:PORT`, `[V6]:PORT` or a bare IPv6 address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddr {
    /// Name or address, without brackets.
    pub host: String,
    /// UDP port.
    pub port: u16,
}

impl HostAddr {
    /// Parses `s`, defaulting the port to 4433.
    pub fn parse(s: &str) -> Result<HostAddr, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty host".into());
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (h, tail) = rest
                .split_once(']')
                .ok_or_else(|| format!("missing ']' in {s:?}"))?;
            let port = match tail.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| format!("bad port in {s:?}"))?,
                None if tail.is_empty() => DEFAULT_PORT,
                None => return Err(format!("unexpected {tail:?} after ']' in {s:?}")),
            };
            return Ok(HostAddr {
                host: h.to_owned(),
                port,
            });
        }
        if s.parse::<std::net::Ipv6Addr>().is_ok() {
            return Ok(HostAddr {
                host: s.to_owned(),
                port: DEFAULT_PORT,
            });
        }
        match s.rsplit_once(':') {
            Some((h, p)) => Ok(HostAddr {
                host: h.to_owned(),
                port: p.parse().map_err(|_| format!("bad port in {s:?}"))?,
            }),
            None => Ok(HostAddr {
                host: s.to_owned(),
                port: DEFAULT_PORT,
            }),
        }
    }

    /// The key used in the known-hosts file: `host:port` (`[v6]:port` for IPv6), host in lower
    /// case.
    pub fn pin_key(&self) -> String {
        let h = self.host.to_ascii_lowercase();
        if h.contains(':') {
            format!("[{h}]:{}", self.port)
        } else {
            format!("{h}:{}", self.port)
        }
    }
}

impl std::fmt::Display for HostAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.pin_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_forms() {
        assert_eq!(
            HostAddr::parse("example.org").unwrap(),
            HostAddr {
                host: "example.org".into(),
                port: 4433
            }
        );
        assert_eq!(HostAddr::parse("10.0.0.1:5000").unwrap().port, 5000);
        assert_eq!(HostAddr::parse("[::1]:7").unwrap().host, "::1");
        assert_eq!(HostAddr::parse("::1").unwrap().port, 4433);
        assert_eq!(HostAddr::parse("[::1]:7").unwrap().pin_key(), "[::1]:7");
        assert_eq!(
            HostAddr::parse("Ws.Example:1").unwrap().pin_key(),
            "ws.example:1"
        );
        assert!(HostAddr::parse("host:notaport").is_err());
        assert!(HostAddr::parse("").is_err());
    }
}
