//! Transport-level constants and names shared by both I/O layers: connection stages, QUIC
//! application close codes, and TLS alert names as QUIC reports them.

use std::fmt;

/// Where a connection attempt failed. Both sides report failures by stage so that "it did not
/// work" always says what did not work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectStage {
    /// Name resolution, UDP reachability, limits.
    Connect,
    /// TLS 1.3 handshake: certificates, pinning, ALPN, cipher suites.
    Tls,
    /// Opening the control and input streams.
    Streams,
    /// The protocol hello/welcome exchange (versions, capabilities).
    Hello,
}

impl fmt::Display for ConnectStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectStage::Connect => "connect",
            ConnectStage::Tls => "TLS",
            ConnectStage::Streams => "streams",
            ConnectStage::Hello => "hello",
        })
    }
}

/// QUIC application close code: the session ended normally (the reason text says why).
pub const CLOSE_NORMAL: u32 = 0;
/// QUIC application close code: a protocol violation.
pub const CLOSE_PROTOCOL_ERROR: u32 = 1;
/// QUIC application close code: the host is shutting down.
pub const CLOSE_HOST_SHUTDOWN: u32 = 2;
/// QUIC application close code: refused by policy (limits, revoked).
pub const CLOSE_REFUSED: u32 = 3;
/// QUIC application close code: the viewer quit.
pub const CLOSE_VIEWER_QUIT: u32 = 4;
/// QUIC application close code: the session moved to the viewer's new connection (it
/// reconnected); the old one is closed without a goodbye.
pub const CLOSE_REPLACED: u32 = 5;

/// QUIC reports TLS alerts as transport error codes `0x100 + alert` (RFC 9001 §4.8).
pub fn crypto_alert(transport_code: u64) -> Option<u8> {
    (0x100..0x200)
        .contains(&transport_code)
        .then(|| (transport_code - 0x100) as u8)
}

/// The RFC 8446 name of a TLS alert.
pub fn tls_alert_name(alert: u8) -> &'static str {
    match alert {
        10 => "unexpected_message",
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        109 => "missing_extension",
        110 => "unsupported_extension",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => "unknown_alert",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_codes() {
        assert_eq!(crypto_alert(0x178), Some(120));
        assert_eq!(tls_alert_name(120), "no_application_protocol");
        assert_eq!(crypto_alert(0x0a), None);
        assert_eq!(crypto_alert(0x200), None);
    }
}
