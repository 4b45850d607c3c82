//! Dialling the host: one connection through the connect → TLS → streams → hello stages on a
//! given UDP socket, used for the first connection and for every reconnect attempt
//! ([`crate::reconnect`]), with socket buffers sized for keyframe bursts.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sightline_protocol::msg::Welcome;
use sightline_protocol::session::{ViewerConfig, ViewerEvent, ViewerSession};
use sightline_protocol::transport::CLOSE_PROTOCOL_ERROR;
use sightline_protocol::{Channel, CloseReason};
use tokio::sync::mpsc;
use tracing::{debug, info};

use crate::net::{
    classify_late, explain_after_tls, explain_handshake_error, feed, spawn_readers, viewer_clock,
    ConnectError, NetIn,
};

/// A client endpoint on `bind` with UDP buffers sized for keyframe bursts.
pub(crate) fn client_endpoint(bind: SocketAddr) -> Result<quinn::Endpoint, ConnectError> {
    let (socket, (_, rcv)) = bind_udp(bind, SOCKET_BUFFER_BYTES).map_err(ConnectError::Socket)?;
    if rcv < SOCKET_BUFFER_BYTES {
        debug!(
            recv = rcv,
            wanted = SOCKET_BUFFER_BYTES,
            "UDP receive buffer smaller than asked (net.core.rmem_max)"
        );
    }
    let runtime = quinn::default_runtime()
        .ok_or_else(|| ConnectError::Socket(std::io::Error::other("no async runtime for quinn")))?;
    quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket, runtime)
        .map_err(ConnectError::Socket)
}

/// UDP socket buffers requested: a keyframe (300 KB and more) arrives as one burst, which the
/// default ~200 KB receive buffer drops in part even on loopback.
pub const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Everything needed to open a connection to the host (again).
#[derive(Debug, Clone)]
pub(crate) struct Dialer {
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) addr: SocketAddr,
    pub(crate) server_name: String,
    pub(crate) session_cfg: ViewerConfig,
    pub(crate) timeout: Duration,
}

/// A connection through the hello stage, ready to run.
pub(crate) struct Established {
    pub(crate) conn: quinn::Connection,
    pub(crate) ctl_send: quinn::SendStream,
    pub(crate) input_send: quinn::SendStream,
    pub(crate) session: ViewerSession,
    pub(crate) in_rx: mpsc::Receiver<NetIn>,
    pub(crate) welcome: Welcome,
    pub(crate) setup_time: Duration,
}

impl std::fmt::Debug for Established {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Established")
            .field("welcome", &self.welcome)
            .finish_non_exhaustive()
    }
}

/// Connect → TLS → streams → hello on `d`'s endpoint; `resume` names the session this one
/// replaces (a reconnect).
pub(crate) async fn establish(
    d: &Dialer,
    resume: Option<u64>,
) -> Result<Established, ConnectError> {
    let started = Instant::now();
    let (addr, timeout) = (d.addr, d.timeout);
    let mut session_cfg = d.session_cfg.clone();
    if let Some(old) = resume {
        session_cfg
            .hello_extensions
            .push(sightline_protocol::reconnect::resume_extension(old));
    }
    // Stage: connect + TLS.
    let connecting = d
        .endpoint
        .connect(addr, &d.server_name)
        .map_err(|e| ConnectError::Tls(format!("cannot start the handshake: {e}")))?;
    let conn = match tokio::time::timeout(timeout, connecting).await {
        Err(_) => return Err(ConnectError::NoAnswer { addr, timeout }),
        Ok(Err(quinn::ConnectionError::TimedOut)) => {
            return Err(ConnectError::NoAnswer { addr, timeout })
        }
        Ok(Err(e)) => return Err(ConnectError::Tls(explain_handshake_error(&e))),
        Ok(Ok(c)) => c,
    };
    debug!(%addr, "TLS complete");

    // Stage: streams.
    let (mut ctl_send, ctl_recv) = conn
        .open_bi()
        .await
        .map_err(|e| classify_late(&e, ConnectError::Streams(explain_after_tls(&e))))?;
    let input_send = conn
        .open_uni()
        .await
        .map_err(|e| classify_late(&e, ConnectError::Streams(explain_after_tls(&e))))?;
    // Input must never wait behind anything else this connection sends.
    let _ = input_send.set_priority(10);

    // Stage: hello.
    let now = Instant::now();
    let clock = viewer_clock();
    let mut session = ViewerSession::new(session_cfg, now, clock);
    while let Some(t) = session.poll_transmit(now) {
        ctl_send.write_all(&t.bytes).await.map_err(|e| match e {
            // The host refused our certificate after the handshake (TLS 1.3 checks it
            // late) and closed before the hello went out: say why, not "connection lost".
            quinn::WriteError::ConnectionLost(c) => {
                classify_late(&c, ConnectError::Streams(explain_after_tls(&c)))
            }
            other => ConnectError::Streams(other.to_string()),
        })?;
    }
    let (in_tx, mut in_rx) = mpsc::channel::<NetIn>(1024);
    spawn_readers(&conn, ctl_recv, in_tx);
    let deadline = tokio::time::Instant::now() + timeout;
    let welcome = loop {
        if let Some(ev) = session.poll_event() {
            match ev {
                ViewerEvent::Connected(w) => break w,
                ViewerEvent::Closed(reason) => {
                    while let Some(t) = session.poll_transmit(Instant::now()) {
                        let _ = ctl_send.write_all(&t.bytes).await;
                    }
                    conn.close(CLOSE_PROTOCOL_ERROR.into(), reason.to_string().as_bytes());
                    return Err(ConnectError::Hello(reason));
                }
                other => debug!(?other, "event before welcome"),
            }
            continue;
        }
        match tokio::time::timeout_at(deadline, in_rx.recv()).await {
            Err(_) => {
                return Err(ConnectError::Hello(CloseReason::Timeout(timeout)));
            }
            Ok(None) => {
                return Err(ConnectError::Hello(CloseReason::ConnectionLost(
                    "connection ended before welcome".into(),
                )))
            }
            Ok(Some(NetIn::Lost(why))) => {
                // The readers race: the connection's end can be reported before the control
                // stream's last bytes (the host's goodbye, which says why) were handed over.
                // Take what is still coming briefly before settling for "connection lost".
                let grace = tokio::time::Instant::now() + Duration::from_millis(100);
                while let Ok(Some(msg)) = tokio::time::timeout_at(grace, in_rx.recv()).await {
                    if let NetIn::Stream(b) = msg {
                        session.handle_stream(Instant::now(), Channel::Control, &b);
                    }
                }
                while let Some(ev) = session.poll_event() {
                    if let ViewerEvent::Closed(reason) = ev {
                        return Err(ConnectError::Hello(reason));
                    }
                }
                let fallback = ConnectError::Hello(CloseReason::ConnectionLost(why.clone()));
                return Err(match conn.close_reason() {
                    Some(e) => classify_late(&e, fallback),
                    None => fallback,
                });
            }
            Ok(Some(msg)) => feed(&mut session, msg),
        }
    };
    let setup_time = started.elapsed();
    info!(
        host = %welcome.host_name,
        session = %format!("{:016x}", welcome.session_id),
        version = welcome.version,
        setup_ms = setup_time.as_secs_f64() * 1e3,
        resumed = resume.is_some(),
        "connected"
    );
    Ok(Established {
        conn,
        ctl_send,
        input_send,
        session,
        in_rx,
        welcome,
        setup_time,
    })
}

/// Binds a UDP socket with send and receive buffers of `buffer_bytes` (the kernel may grant
/// less: Linux caps them at `net.core.wmem_max` / `rmem_max`); returns the socket and the
/// sizes granted (Linux reports twice what it books).
pub fn bind_udp(
    addr: SocketAddr,
    buffer_bytes: usize,
) -> std::io::Result<(std::net::UdpSocket, (usize, usize))> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Reach IPv4 hosts too when bound to [::].
        let _ = socket.set_only_v6(false);
    }
    // Not fatal: a smaller buffer only costs burst loss.
    let _ = socket.set_send_buffer_size(buffer_bytes);
    let _ = socket.set_recv_buffer_size(buffer_bytes);
    socket.bind(&addr.into())?;
    let granted = (
        socket.send_buffer_size().unwrap_or(0),
        socket.recv_buffer_size().unwrap_or(0),
    );
    Ok((socket.into(), granted))
}
