//! Pairing from the viewer: `viewer HOST --pair CODE`.
//!
//! Connects with ALPN `sightline-pair/1`, accepts the host's certificate provisionally (a host
//! pinned to a *different* key is still refused, both fingerprints shown), runs the SPAKE2
//! exchange with the code and both fingerprints (`sightline_certs::pairing`), and pins the host
//! only when the host proved it knows the same code over this very TLS connection. The host
//! authorizes this viewer at the same moment. Afterwards a normal connection works both ways.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;
use sightline_certs::pairing::{
    PairingBinding, PairingCode, PairingError, PairingHostVerifier, ViewerPairing,
    PAIR_EXPORTER_LABEL,
};
use sightline_certs::{
    quic_initial_suite, viewer_tls_config, CertError, Fingerprint, HostKeyRejected, Identity,
    KnownHosts,
};
use sightline_protocol::pair::{PairMessage, PairRefusal, PAIR_ALPN, PAIR_VERSION};
use sightline_protocol::transport::{crypto_alert, tls_alert_name, CLOSE_NORMAL, CLOSE_REFUSED};
use sightline_protocol::Decode;

use crate::config::HostAddr;
use crate::net::{resolve, ConnectError};

/// What pairing needs.
#[derive(Debug, Clone)]
pub struct PairOptions {
    /// The host.
    pub host: HostAddr,
    /// This viewer's identity (its certificate is what the host authorizes).
    pub identity: Identity,
    /// Where the host's pin goes.
    pub known_hosts: PathBuf,
    /// The code the host showed.
    pub code: PairingCode,
    /// This viewer's name, offered for the host's authorized list.
    pub viewer_name: String,
    /// How long the whole exchange may take.
    pub timeout: Duration,
    /// Send the packets here instead (a relay); the host is still pinned as `host`.
    pub via: Option<SocketAddr>,
}

/// A successful pairing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paired {
    /// The host's certificate, now pinned.
    pub host_fingerprint: Fingerprint,
    /// The host's name.
    pub host_name: String,
    /// The name the host authorized this viewer under.
    pub authorized_as: String,
    /// The known-hosts key the pin was saved under.
    pub pin_key: String,
}

/// Why pairing failed.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    /// The host could not be reached (name, socket, no answer).
    #[error("{0}")]
    Connect(ConnectError),
    /// The host's key differs from the pinned one.
    #[error("TLS: {0}")]
    HostKey(HostKeyRejected),
    /// The host does not offer pairing.
    #[error(
        "pairing: the host does not accept pairing (pairing disabled, or an older host-agent); \
         ask its administrator to authorize this viewer with `certs authorize`"
    )]
    NotSupported,
    /// No pairing window is open on the host.
    #[error("pairing: {0}")]
    NoWindow(String),
    /// Too many attempts; try later.
    #[error("pairing: {message}")]
    RateLimited {
        /// When to try again.
        retry_after: Duration,
        /// The host's words.
        message: String,
    },
    /// The codes did not match (or someone intercepted the connection).
    #[error(
        "pairing: the code did not match. Check the code `host-agent pair` shows on the host and \
         try again; a few wrong tries burn it. (If the code was right, someone between this \
         viewer and the host may be intercepting the connection.)"
    )]
    WrongCode,
    /// The host refused for another reason.
    #[error("pairing: the host refused: {0}")]
    Refused(String),
    /// The exchange broke (host vanished, malformed message, timeout).
    #[error("pairing: {0}")]
    Protocol(String),
    /// The identity or known-hosts file is unusable.
    #[error("pairing: {0}")]
    Certs(#[from] CertError),
}

fn map_refusal(reason: PairRefusal, retry_after_ms: u32, message: String) -> PairError {
    match reason {
        PairRefusal::NoWindow => PairError::NoWindow(message),
        PairRefusal::RateLimited | PairRefusal::Busy => PairError::RateLimited {
            retry_after: Duration::from_millis(u64::from(retry_after_ms)),
            message,
        },
        PairRefusal::WrongCode => PairError::WrongCode,
        _ => PairError::Refused(message),
    }
}

/// A connection error after TLS, in pairing terms.
fn classify(e: &quinn::ConnectionError) -> PairError {
    match e {
        quinn::ConnectionError::ConnectionClosed(c) => {
            match crypto_alert(u64::from(c.error_code)) {
                Some(120) => PairError::NotSupported,
                Some(alert) if matches!(alert, 42..=46 | 48 | 49) => PairError::NoWindow(format!(
                "the host refused this viewer's certificate (TLS alert {}): no pairing window is \
                 open there. Run `host-agent pair` on the host and enter the code it shows",
                tls_alert_name(alert)
            )),
                Some(alert) => PairError::Protocol(format!(
                    "the host aborted the TLS handshake (alert {})",
                    tls_alert_name(alert)
                )),
                None => PairError::Protocol(format!("the host closed the connection: {c}")),
            }
        }
        quinn::ConnectionError::ApplicationClosed(a) => PairError::Protocol(format!(
            "the host closed the connection: {}",
            String::from_utf8_lossy(&a.reason)
        )),
        other => PairError::Protocol(other.to_string()),
    }
}

/// A failed write, in pairing terms: the host may have closed the connection before our
/// message went out (a refused certificate arrives as a close), which says why.
fn send_error(e: quinn::WriteError) -> PairError {
    match e {
        quinn::WriteError::ConnectionLost(c) => classify(&c),
        other => PairError::Protocol(format!("cannot send: {other}")),
    }
}

async fn read_msg(recv: &mut quinn::RecvStream) -> Result<PairMessage, PairError> {
    let mut header = [0u8; 2];
    recv.read_exact(&mut header).await.map_err(|e| match e {
        quinn::ReadExactError::ReadError(quinn::ReadError::ConnectionLost(c)) => classify(&c),
        other => PairError::Protocol(format!("the host ended the exchange: {other}")),
    })?;
    let len = PairMessage::frame_len(header).map_err(|e| PairError::Protocol(e.to_string()))?;
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body)
        .await
        .map_err(|e| PairError::Protocol(format!("the host ended the exchange: {e}")))?;
    PairMessage::from_bytes(&body)
        .map_err(|e| PairError::Protocol(format!("malformed message from the host: {e}")))
}

/// Pairs with the host and pins it.
pub async fn pair(opts: PairOptions) -> Result<Paired, PairError> {
    let timeout = opts.timeout;
    match tokio::time::timeout(timeout, pair_inner(opts)).await {
        Ok(r) => r,
        Err(_) => Err(PairError::Protocol(format!(
            "no answer within {} s",
            timeout.as_secs()
        ))),
    }
}

async fn pair_inner(opts: PairOptions) -> Result<Paired, PairError> {
    let addr = match opts.via {
        Some(a) => a,
        None => resolve(&opts.host).await.map_err(PairError::Connect)?,
    };
    let pin_key = opts.host.pin_key();
    let known = KnownHosts::load_or_empty(&opts.known_hosts)?;
    let verifier = PairingHostVerifier::new(
        &pin_key,
        known.lookup(&pin_key),
        Some(opts.known_hosts.clone()),
    );
    let tls = viewer_tls_config(&opts.identity, verifier.clone(), &[PAIR_ALPN])?;
    let bind: SocketAddr = if addr.is_ipv6() {
        "[::]:0".parse().expect("literal address")
    } else {
        "0.0.0.0:0".parse().expect("literal address")
    };
    let mut endpoint =
        quinn::Endpoint::client(bind).map_err(|e| PairError::Connect(ConnectError::Socket(e)))?;
    let quic = QuicClientConfig::with_initial(Arc::new(tls), quic_initial_suite())
        .map_err(|e| PairError::Protocol(format!("QUIC TLS configuration: {e}")))?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let connecting = endpoint
        .connect(addr, &opts.host.host)
        .map_err(|e| PairError::Protocol(format!("cannot start the handshake: {e}")))?;
    let conn = match connecting.await {
        Ok(c) => c,
        Err(e) => {
            return Err(match e {
                quinn::ConnectionError::TimedOut => PairError::Connect(ConnectError::NoAnswer {
                    addr,
                    timeout: opts.timeout,
                }),
                quinn::ConnectionError::TransportError(_) => {
                    // Our own verifier refused: the host's key changed.
                    match verifier.presented() {
                        Some(presented) => match known.lookup(&pin_key) {
                            Some(pinned) if pinned != presented => {
                                PairError::HostKey(HostKeyRejected {
                                    outcome: sightline_certs::PinOutcome::Mismatch {
                                        host: pin_key.clone(),
                                        pinned,
                                        presented,
                                    },
                                    known_hosts: Some(opts.known_hosts.clone()),
                                })
                            }
                            _ => classify(&e),
                        },
                        None => classify(&e),
                    }
                }
                other => classify(&other),
            });
        }
    };
    let host_fp = verifier
        .presented()
        .ok_or_else(|| PairError::Protocol("the host presented no certificate".into()))?;
    let result = exchange(&conn, &opts, host_fp).await;
    match &result {
        Ok(_) => conn.close(CLOSE_NORMAL.into(), b"paired"),
        Err(PairError::WrongCode) => conn.close(CLOSE_REFUSED.into(), b"pairing code mismatch"),
        Err(_) => conn.close(CLOSE_REFUSED.into(), b"pairing failed"),
    }
    endpoint.wait_idle().await;
    let (host_name, authorized_as) = result?;
    // Pin only now: the host proved knowledge of the code over this TLS connection.
    let mut known = KnownHosts::load_or_empty(&opts.known_hosts)?;
    known.pin(&pin_key, host_fp);
    known.save(&opts.known_hosts)?;
    Ok(Paired {
        host_fingerprint: host_fp,
        host_name,
        authorized_as,
        pin_key,
    })
}

async fn exchange(
    conn: &quinn::Connection,
    opts: &PairOptions,
    host_fp: Fingerprint,
) -> Result<(String, String), PairError> {
    let mut channel = [0u8; 32];
    conn.export_keying_material(&mut channel, PAIR_EXPORTER_LABEL, b"")
        .map_err(|_| PairError::Protocol("TLS keying material unavailable".into()))?;
    let binding = PairingBinding {
        viewer: opts.identity.fingerprint(),
        host: host_fp,
        channel,
    };
    let (state, msg_a) = ViewerPairing::start(&opts.code, binding);
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| classify(&e))?;
    let start = PairMessage::Start {
        version: PAIR_VERSION,
        viewer_name: opts.viewer_name.clone(),
        key: msg_a,
    };
    send.write_all(&start.to_frame())
        .await
        .map_err(send_error)?;
    let (host_name, msg_b, host_confirm) = match read_msg(&mut recv).await? {
        PairMessage::Reply {
            host_name,
            key,
            confirm,
        } => (host_name, key, confirm),
        PairMessage::Refused {
            reason,
            retry_after_ms,
            message,
        } => return Err(map_refusal(reason, retry_after_ms, message)),
        other => return Err(PairError::Protocol(format!("unexpected {other:?}"))),
    };
    let confirm = match state.finish(&msg_b, &host_confirm) {
        Ok(c) => c,
        Err(PairingError::Mismatch) => return Err(PairError::WrongCode),
        Err(e) => return Err(PairError::Protocol(e.to_string())),
    };
    send.write_all(&PairMessage::Confirm { confirm }.to_frame())
        .await
        .map_err(send_error)?;
    match read_msg(&mut recv).await? {
        PairMessage::Done { authorized_as } => Ok((host_name, authorized_as)),
        PairMessage::Refused {
            reason,
            retry_after_ms,
            message,
        } => Err(map_refusal(reason, retry_after_ms, message)),
        other => Err(PairError::Protocol(format!("unexpected {other:?}"))),
    }
}

/// The HOST argument: `HOST`, `HOST:PORT`, `[IPv6]:PORT` or a `sightline://HOST:PORT/` link
/// (what the desktop entry passes). Empty means "not given" (an empty host name).
pub fn parse_host_arg(s: &str) -> Result<HostAddr, String> {
    let s = s.trim();
    let s = s
        .strip_prefix("sightline://")
        .map(|rest| rest.trim_end_matches('/'))
        .unwrap_or(s);
    if s.is_empty() {
        return Ok(HostAddr {
            host: String::new(),
            port: 0,
        });
    }
    HostAddr::parse(s)
}

/// The host to use when none was given: the only one in the known hosts.
pub fn only_known_host(known_hosts: &std::path::Path) -> Result<HostAddr, String> {
    let known = KnownHosts::load_or_empty(known_hosts).map_err(|e| e.to_string())?;
    let hosts: Vec<&str> = known.iter().map(|(h, _)| h).collect();
    match hosts.as_slice() {
        [one] => HostAddr::parse(one),
        [] => Err(format!(
            "no HOST given and no host is pinned in {}; run `viewer HOST --pair CODE` with the \
             code `host-agent pair` shows on the host",
            known_hosts.display()
        )),
        many => Err(format!(
            "no HOST given and {} hosts are pinned ({}); say which one",
            many.len(),
            many.join(", ")
        )),
    }
}

/// Asks for the pairing code on the terminal.
pub fn prompt_code() -> std::io::Result<String> {
    use std::io::{BufRead, Write};
    eprint!("pairing code shown by `host-agent pair` on the host: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_argument_forms() {
        let h = parse_host_arg("sightline://grading-01.example:4500/").unwrap();
        assert_eq!((h.host.as_str(), h.port), ("grading-01.example", 4500));
        assert_eq!(parse_host_arg("").unwrap().host, "");
        assert_eq!(parse_host_arg("10.0.0.2").unwrap().port, 4433);
    }

    #[test]
    fn only_known_host_picks_the_single_pin() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("known_hosts");
        assert!(only_known_host(&path).unwrap_err().contains("--pair"));
        let mut k = KnownHosts::load_or_empty(&path).unwrap();
        k.pin("ws.example:4433", Fingerprint([1; 32]));
        k.save(&path).unwrap();
        assert_eq!(only_known_host(&path).unwrap().host, "ws.example");
        k.pin("other:4433", Fingerprint([2; 32]));
        k.save(&path).unwrap();
        assert!(only_known_host(&path).unwrap_err().contains("2 hosts"));
    }
}
