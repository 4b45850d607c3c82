//! The host's QUIC endpoint: the only module that touches quinn on the host side.
//!
//! One connection per viewer. Each connection runs a [`HostSession`] (sans-IO) in its own task:
//! reader tasks turn stream bytes and datagrams into [`NetIn`] messages, the session decides, and
//! this module writes what the session wants written.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use quinn::crypto::rustls::QuicServerConfig;
use sightline_certs::{
    host_tls_config, quic_initial_suite, AuthorizedViewerVerifier, AuthorizedViewers, Fingerprint,
    Identity,
};
use sightline_protocol::msg::GoodbyeReason;
use sightline_protocol::msg::{Capabilities, InputEvent};
use sightline_protocol::msg::{CursorPosition, CursorShape, StreamConfig};
use sightline_protocol::pair::PAIR_ALPN;
use sightline_protocol::session::{HostConfig, HostEvent, HostSession, InputOrigin};
use sightline_protocol::time::{HostMicros, WireClock};
use sightline_protocol::transport::CLOSE_REFUSED;
use sightline_protocol::transport::{
    crypto_alert, tls_alert_name, ConnectStage, CLOSE_HOST_SHUTDOWN, CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR, CLOSE_REPLACED,
};
use sightline_protocol::video::{
    data_fragments, data_payload, packetize_with_parity, FecConfig, FRAGMENT_OVERHEAD,
};
use sightline_protocol::{Channel, ALPN};
use tokio::sync::{broadcast, mpsc, watch};

use crate::media_send::{AdaptConfig, MediaSender};
use crate::pipeline::{CursorUpdate, EncodedUnit, Subscription, VideoFeed};
use crate::security::{channels, Admission, HandshakeSlot, Security, SecurityOptions};
use crate::sessions::{register, Registration, SessionRegistry};
use serde_json::json;
use tracing::{debug, info, info_span, warn, Instrument};

/// Everything the network layer needs.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// Host name shown to viewers.
    pub host_name: String,
    /// Capabilities offered.
    pub capabilities: Capabilities,
    /// Authorized viewers file; re-read on every connection attempt so that authorizing and
    /// revoking take effect without a restart.
    pub authorized_path: PathBuf,
    /// Most sessions at once; further viewers are refused.
    pub max_sessions: usize,
    /// How long a connecting viewer may take to finish TLS and say hello.
    pub handshake_timeout: Duration,
    /// Session settings (timeouts, limits).
    pub session: HostConfig,
    /// The host wire clock shared with the video pipeline, so frame timestamps and clock-sync
    /// answers are on one clock.
    pub clock: WireClock,
    /// The video pipeline, when this host serves video.
    pub video: Option<VideoFeed>,
    /// Forward error correction for video fragments (the floor of adaptive FEC, or the fixed
    /// share when `adapt.adaptive_fec` is off).
    pub fec: FecConfig,
    /// Rate control, adaptive FEC and pacing per session.
    pub adapt: AdaptConfig,
    /// The audio pipeline, when this host serves audio.
    pub audio: Option<crate::audio::pipeline::AudioFeed>,
    /// Audit log, pairing, connection limits, revocation.
    pub security: SecurityOptions,
}

/// UDP socket buffers requested for the endpoint: a keyframe burst (300 KB and more) must not
/// overflow them (the kernel default is ~200 KB).
pub const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// quinn's datagram send buffer. The pacer keeps only a few milliseconds of video in it; the
/// rest is headroom for urgent datagrams.
const DATAGRAM_SEND_BUFFER: usize = 2 << 20;

/// What the network layer reports to the application.
#[derive(Debug, Clone)]
pub enum NetEvent {
    /// The endpoint is listening.
    Listening {
        /// Bound address.
        addr: SocketAddr,
    },
    /// A connection attempt failed or was refused.
    Refused {
        /// Viewer address.
        remote: SocketAddr,
        /// Where it failed.
        stage: ConnectStage,
        /// Why, for humans.
        reason: String,
        /// The viewer's certificate fingerprint, when it presented one we refused.
        fingerprint: Option<Fingerprint>,
    },
    /// A viewer completed hello.
    SessionStarted {
        /// Session id.
        session_id: u64,
        /// Viewer address.
        remote: SocketAddr,
        /// Name from the authorized-viewers file.
        authorized_as: String,
        /// Name the viewer gave in hello.
        viewer_name: String,
        /// Viewer certificate fingerprint.
        fingerprint: Fingerprint,
        /// Negotiated capabilities.
        capabilities: Capabilities,
    },
    /// Input to inject.
    Input {
        /// Session id.
        session_id: u64,
        /// The event.
        event: InputEvent,
        /// Viewer or safety release.
        origin: InputOrigin,
    },
    /// A session ended.
    SessionEnded {
        /// Session id.
        session_id: u64,
        /// Viewer address.
        remote: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// Errors that stop the host from serving at all.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The identity or authorized list could not be used.
    #[error(transparent)]
    Certs(#[from] sightline_certs::CertError),
    /// The QUIC configuration was refused (a bug in our TLS setup).
    #[error("QUIC configuration: {0}")]
    Config(String),
    /// The UDP socket could not be bound: port in use or no permission.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// A running host endpoint.
#[derive(Debug)]
pub struct HostEndpoint {
    endpoint: quinn::Endpoint,
    verifier: Arc<AuthorizedViewerVerifier>,
    authorized: Arc<RwLock<AuthorizedViewers>>,
    cfg: NetConfig,
    sessions: SessionRegistry,
    security: Arc<Security>,
}

/// Transport settings shared by the accept path.
fn transport_config(cfg: &NetConfig) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(cfg.session.idle_timeout + Duration::from_secs(2))
        .unwrap_or_else(|_| quinn::IdleTimeout::from(quinn::VarInt::from_u32(12_000)));
    t.max_idle_timeout(Some(idle));
    t.keep_alive_interval(Some(Duration::from_millis(500)));
    // Only the viewer opens streams: one control, one input.
    t.max_concurrent_bidi_streams(2u32.into());
    t.max_concurrent_uni_streams(2u32.into());
    t.datagram_receive_buffer_size(Some(1 << 20));
    // Room for one 4K keyframe burst, but no more: quinn drops the oldest datagrams when this is
    // full, and a deep buffer only turns congestion into seconds of latency (measured through
    // the WAN relay; see the design module).
    t.datagram_send_buffer_size(DATAGRAM_SEND_BUFFER);
    // BBR, not quinn's default Cubic: Cubic halves its window on every random loss, and at 1 %
    // loss with 30 ms RTT the video datagrams then queue for seconds and go stale (measured by
    // the transport_loss bench and viewer --bench --wan rtt=30ms,loss=1%); BBR paces by
    // measured bandwidth and RTT and shrugs off random loss.
    t.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
    t
}

impl HostEndpoint {
    /// Binds the endpoint with `identity` and the authorized list at `cfg.authorized_path`.
    pub fn bind(identity: &Identity, cfg: NetConfig) -> Result<Self, NetError> {
        let authorized = Arc::new(RwLock::new(AuthorizedViewers::load_or_empty(
            &cfg.authorized_path,
        )?));
        let security = Arc::new(Security::new(
            &cfg.security,
            cfg.authorized_path.clone(),
            &cfg.host_name,
            identity.fingerprint(),
        ));
        // While a pairing window is open, unknown viewers may finish TLS, but only to pair:
        // `SessionCtx::run` checks the ALPN and the authorized list before anything else.
        let (verifier, alpn): (_, &[&[u8]]) = match &security.pairing {
            Some(p) => (
                AuthorizedViewerVerifier::with_pairing(authorized.clone(), p.gate()),
                &[ALPN, PAIR_ALPN],
            ),
            None => (AuthorizedViewerVerifier::new(authorized.clone()), &[ALPN]),
        };
        let tls = host_tls_config(identity, verifier.clone(), alpn)?;
        let quic = QuicServerConfig::with_initial(Arc::new(tls), quic_initial_suite())
            .map_err(|e| NetError::Config(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
        server.transport_config(Arc::new(transport_config(&cfg)));
        let bind_err = |source| NetError::Bind {
            addr: cfg.listen,
            source,
        };
        let (socket, (snd, rcv)) =
            crate::media_send::bind_udp(cfg.listen, SOCKET_BUFFER_BYTES).map_err(bind_err)?;
        if snd < SOCKET_BUFFER_BYTES || rcv < SOCKET_BUFFER_BYTES {
            warn!(
                send = snd,
                recv = rcv,
                wanted = SOCKET_BUFFER_BYTES,
                "UDP socket buffers are smaller than asked (raise net.core.wmem_max and \
                 net.core.rmem_max): keyframe bursts may be dropped by the kernel"
            );
        } else {
            debug!(send = snd, recv = rcv, "UDP socket buffers");
        }
        let runtime = quinn::default_runtime()
            .ok_or_else(|| NetError::Config("no async runtime for quinn".into()))?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server),
            socket,
            runtime,
        )
        .map_err(bind_err)?;
        Ok(HostEndpoint {
            endpoint,
            verifier,
            authorized,
            cfg,
            sessions: SessionRegistry::default(),
            security,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Accepts viewers until the endpoint is closed, reporting to `events`.
    pub async fn serve(self, events: mpsc::UnboundedSender<NetEvent>) {
        if let Ok(addr) = self.local_addr() {
            let _ = events.send(NetEvent::Listening { addr });
        }
        let active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let watcher = self.spawn_revocation_watcher();
        while let Some(incoming) = self.endpoint.accept().await {
            let remote = incoming.remote_address();
            // Limits that cost no crypto come first.
            let slot = match self
                .security
                .admit(remote, incoming.remote_address_validated())
            {
                Admission::Go(slot) => slot,
                Admission::Retry => {
                    if incoming.retry().is_err() {
                        debug!(%remote, "retry not possible; ignoring the attempt");
                    }
                    continue;
                }
                Admission::Refuse { reason, report } => {
                    if report {
                        warn!(%remote, %reason, "refusing connection attempts");
                        let _ = events.send(NetEvent::Refused {
                            remote,
                            stage: ConnectStage::Connect,
                            reason,
                            fingerprint: None,
                        });
                    }
                    incoming.refuse();
                    continue;
                }
            };
            if active.load(std::sync::atomic::Ordering::SeqCst) >= self.cfg.max_sessions {
                let reason = format!("session limit of {} reached", self.cfg.max_sessions);
                warn!(%remote, %reason, "refusing viewer");
                self.security.audit(
                    "refused",
                    json!({"remote": remote.to_string(), "stage": "connect", "reason": reason}),
                );
                let _ = events.send(NetEvent::Refused {
                    remote,
                    stage: ConnectStage::Connect,
                    reason,
                    fingerprint: None,
                });
                incoming.refuse();
                continue;
            }
            self.reload_authorized();
            let ctx = SessionCtx {
                verifier: self.verifier.clone(),
                authorized: self.authorized.clone(),
                cfg: self.cfg.clone(),
                events: events.clone(),
                active: active.clone(),
                sessions: self.sessions.clone(),
                security: self.security.clone(),
            };
            tokio::spawn(async move { ctx.run(incoming, remote, slot).await });
        }
        watcher.abort();
    }

    /// Re-reads the authorized list when its file changes, so that revoking a viewer ends its
    /// running sessions within [`SecurityOptions::revocation_check`].
    fn spawn_revocation_watcher(&self) -> tokio::task::JoinHandle<()> {
        let path = self.cfg.authorized_path.clone();
        let authorized = self.authorized.clone();
        let security = self.security.clone();
        let period = self
            .security
            .revocation_check
            .max(Duration::from_millis(50));
        tokio::spawn(async move {
            let stamp = |p: &std::path::Path| {
                std::fs::metadata(p)
                    .ok()
                    .map(|m| (m.modified().ok(), m.len()))
            };
            let mut last = stamp(&path);
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let now = stamp(&path);
                if now == last {
                    continue;
                }
                last = now;
                reload_list(&path, &authorized, &security);
            }
        })
    }

    /// Stops accepting and closes every connection.
    pub fn close(&self) {
        self.endpoint.close(
            quinn::VarInt::from_u32(CLOSE_HOST_SHUTDOWN),
            b"host shutting down",
        );
    }

    /// A handle that can close the endpoint from elsewhere.
    pub fn closer(&self) -> quinn::Endpoint {
        self.endpoint.clone()
    }

    fn reload_authorized(&self) {
        reload_list(&self.cfg.authorized_path, &self.authorized, &self.security);
    }
}

/// Loads the authorized list from `path` into `shared`; changes are audited and revoked viewers'
/// sessions end.
fn reload_list(
    path: &std::path::Path,
    shared: &Arc<RwLock<AuthorizedViewers>>,
    security: &Security,
) {
    match AuthorizedViewers::load_or_empty(path) {
        Ok(list) => {
            let old = match shared.write() {
                Ok(mut w) => std::mem::replace(&mut *w, list.clone()),
                Err(_) => return,
            };
            if old != list {
                security.authorized_changed(&old, &list);
            }
        }
        Err(e) => warn!(error = %e, "keeping the previous authorized viewers list"),
    }
}

struct SessionCtx {
    verifier: Arc<AuthorizedViewerVerifier>,
    authorized: Arc<RwLock<AuthorizedViewers>>,
    cfg: NetConfig,
    events: mpsc::UnboundedSender<NetEvent>,
    active: Arc<std::sync::atomic::AtomicUsize>,
    sessions: SessionRegistry,
    security: Arc<Security>,
}

/// What the reader tasks hand to the session task.
enum NetIn {
    Stream(Channel, Vec<u8>),
    Datagram(bytes::Bytes),
    Lost(String),
}

impl SessionCtx {
    fn refuse(
        &self,
        remote: SocketAddr,
        stage: ConnectStage,
        reason: String,
        fp: Option<Fingerprint>,
    ) {
        warn!(%remote, %stage, %reason, "viewer refused");
        self.security.audit(
            "refused",
            json!({
                "remote": remote.to_string(),
                "stage": stage.to_string(),
                "reason": reason,
                "fingerprint": fp.map(|f| f.to_string()),
            }),
        );
        let _ = self.events.send(NetEvent::Refused {
            remote,
            stage,
            reason,
            fingerprint: fp,
        });
    }

    async fn run(self, incoming: quinn::Incoming, remote: SocketAddr, slot: HandshakeSlot) {
        let connecting = match incoming.accept() {
            Ok(c) => c,
            // The first flight already carries the TLS ClientHello, so ALPN and cipher-suite
            // refusals can surface here.
            Err(e) => {
                let stage = match &e {
                    quinn::ConnectionError::TransportError(t)
                        if crypto_alert(u64::from(t.code)).is_some() =>
                    {
                        ConnectStage::Tls
                    }
                    _ => ConnectStage::Connect,
                };
                return self.refuse(remote, stage, explain_handshake_error(&e), None);
            }
        };
        let conn = match tokio::time::timeout(self.cfg.handshake_timeout, connecting).await {
            Err(_) => {
                return self.refuse(
                    remote,
                    ConnectStage::Tls,
                    "TLS handshake timed out".into(),
                    None,
                )
            }
            Ok(Err(e)) => {
                let refusal = self.verifier.take_refusals().pop();
                let fp = refusal.as_ref().map(|r| r.fingerprint);
                if fp.is_none() && abandoned(&e) {
                    // A reconnecting viewer races several handshakes and drops the losers.
                    debug!(%remote, "viewer abandoned a handshake");
                    return;
                }
                let reason = match fp {
                    Some(fp) => format!(
                        "viewer certificate {fp} is not authorized; to allow it run `certs \
                         authorize --authorized {} --fingerprint {fp} --name NAME`",
                        self.cfg.authorized_path.display()
                    ),
                    None => explain_handshake_error(&e),
                };
                return self.refuse(remote, ConnectStage::Tls, reason, fp);
            }
            Ok(Ok(conn)) => conn,
        };
        drop(slot);
        let Some(fingerprint) = peer_fingerprint(&conn) else {
            conn.close(CLOSE_PROTOCOL_ERROR.into(), b"no viewer certificate");
            return self.refuse(
                remote,
                ConnectStage::Tls,
                "viewer presented no certificate".into(),
                None,
            );
        };
        if negotiated_alpn(&conn).as_deref() == Some(PAIR_ALPN) {
            match &self.security.pairing {
                Some(pairing) => {
                    let outcome = pairing.serve(conn, remote, fingerprint).await;
                    info!(%remote, ?outcome, "pairing connection ended");
                }
                None => conn.close(CLOSE_REFUSED.into(), b"pairing is not enabled on this host"),
            }
            return;
        }
        let Some(authorized_as) = self
            .authorized
            .read()
            .ok()
            .and_then(|a| a.lookup(&fingerprint).map(str::to_owned))
        else {
            // Only possible while a pairing window is open (the verifier let an unknown viewer
            // through for pairing) or when the viewer was revoked during its handshake.
            let reason = format!(
                "viewer certificate {fingerprint} is not authorized; to allow it run `certs \
                 authorize --authorized {} --fingerprint {fingerprint} --name NAME` or pair it",
                self.cfg.authorized_path.display()
            );
            conn.close(CLOSE_REFUSED.into(), reason.as_bytes());
            return self.refuse(remote, ConnectStage::Tls, reason, Some(fingerprint));
        };
        let mut session_cfg = self.cfg.session.clone();
        session_cfg.session_id = random_u64();
        session_cfg.host_name = self.cfg.host_name.clone();
        session_cfg.capabilities = self.cfg.capabilities;
        let session_id = session_cfg.session_id;
        let span = info_span!("session", id = %format!("{session_id:016x}"), %remote, viewer = %authorized_as);
        self.active
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let result = self
            .drive(conn, remote, session_cfg, fingerprint, authorized_as)
            .instrument(span)
            .await;
        self.active
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        if let Err((stage, reason)) = result {
            self.refuse(remote, stage, reason, Some(fingerprint));
        }
    }

    async fn drive(
        &self,
        conn: quinn::Connection,
        remote: SocketAddr,
        session_cfg: HostConfig,
        fingerprint: Fingerprint,
        authorized_as: String,
    ) -> Result<(), (ConnectStage, String)> {
        info!(%fingerprint, "TLS complete, waiting for the control stream");
        let deadline = self.cfg.handshake_timeout;
        let (mut ctl_send, ctl_recv) = match tokio::time::timeout(deadline, conn.accept_bi()).await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err((ConnectStage::Streams, e.to_string())),
            Err(_) => {
                conn.close(CLOSE_PROTOCOL_ERROR.into(), b"no control stream");
                return Err((
                    ConnectStage::Streams,
                    "viewer opened no control stream".into(),
                ));
            }
        };
        let session_id = session_cfg.session_id;
        let now = Instant::now();
        let mut session = HostSession::new(session_cfg, now, self.cfg.clock);
        let (tx, mut rx) = mpsc::channel::<NetIn>(256);
        spawn_stream_reader(ctl_recv, Channel::Control, tx.clone());
        {
            let conn = conn.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                // Only one input stream is expected; later ones are read too (and their input
                // is still sequence-checked by the session).
                while let Ok(recv) = conn.accept_uni().await {
                    spawn_stream_reader(recv, Channel::Input, tx.clone());
                }
            });
        }
        {
            let conn = conn.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                loop {
                    match conn.read_datagram().await {
                        Ok(d) => {
                            if tx.send(NetIn::Datagram(d)).await.is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(NetIn::Lost(e.to_string())).await;
                            break;
                        }
                    }
                }
            });
        }
        drop(tx);

        let mut kick = self.security.register(session_id, fingerprint);
        let _registered = Unregister(&self.security, session_id);
        let opened_at = Instant::now();
        let mut started = false;
        let mut end_reason = String::new();
        let mut end_code = "";
        let mut session_caps = None;
        let mut inputs: u64 = 0;
        let mut video: Option<Subscription> = None;
        let mut sent_config: Option<StreamConfig> = None;
        let mut frames_sent: u64 = 0;
        // Units before this session's first keyframe (encoded for other viewers while it
        // subscribed) are of no use to its decoder.
        let mut before_first_key: Option<u32> = Some(0);
        let mut sent_cursor_serial: Option<u32> = None;
        let max_bps = self
            .cfg
            .video
            .as_ref()
            .map_or(0, VideoFeed::configured_bitrate_bps);
        // Nothing is queued yet: this is the space of an empty buffer.
        let empty_space = conn.datagram_send_buffer_space();
        let mut media = MediaSender::new(
            self.cfg.adapt,
            self.cfg.fec,
            max_bps,
            empty_space,
            Instant::now(),
        );
        let superseded = Arc::new(tokio::sync::Notify::new());
        let mut close_code = CLOSE_NORMAL;
        let mut backlogged = false;
        let _registration = Registration {
            sessions: self.sessions.clone(),
            id: session_id,
        };
        // Audio goes out from its own task, so nothing this loop waits on can hold it.
        let mut audio_task: Option<tokio::task::JoinHandle<()>> = None;
        let mut tile_task: Option<tokio::task::JoinHandle<()>> = None;
        let mut video_caps = Capabilities::default();
        loop {
            let now = Instant::now();
            while let Some(t) = session.poll_transmit(now) {
                match t.channel {
                    Channel::Control => {
                        if let Err(e) = ctl_send.write_all(&t.bytes).await {
                            session.handle_connection_lost(Instant::now(), &e.to_string());
                        }
                    }
                    Channel::Datagram => media.send(&conn, now, t.bytes),
                    Channel::Input => {}
                }
            }
            media.flush(&conn, Instant::now());
            if let Some(v) = &video {
                if media.backlogged() != backlogged {
                    backlogged = media.backlogged();
                    v.set_backlogged(backlogged);
                }
            }
            while let Some(ev) = session.poll_event() {
                match ev {
                    HostEvent::Connected {
                        viewer_name,
                        version,
                        capabilities,
                    } => {
                        started = true;
                        session_caps = Some(capabilities);
                        info!(%viewer_name, version, ?capabilities, "session started");
                        register(
                            &self.sessions,
                            session_id,
                            fingerprint,
                            &superseded,
                            session.hello_extensions(),
                        );
                        self.security.audit(
                            "session_start",
                            json!({
                                "session": format!("{session_id:016x}"),
                                "viewer": authorized_as,
                                "viewer_name": viewer_name,
                                "fingerprint": fingerprint.to_string(),
                                "remote": remote.to_string(),
                                "protocol": version,
                                "channels": channels(&capabilities),
                            }),
                        );
                        video_caps = capabilities;
                        if let Some(feed) = &self.cfg.video {
                            if !capabilities.video_codecs.is_empty() {
                                let mut sub =
                                    feed.subscribe_tiles(capabilities, session.lossless_tiles());
                                if let Some(rx) = sub.tiles.take() {
                                    tile_task = Some(spawn_tile_sender(
                                        conn.clone(),
                                        rx,
                                        sub.tile_resync(),
                                    ));
                                }
                                video = Some(sub);
                            }
                        }
                        if let Some(feed) = &self.cfg.audio {
                            match session.send_audio_config(feed.config().clone()) {
                                Ok(()) => {
                                    audio_task =
                                        Some(spawn_audio_sender(conn.clone(), feed.subscribe()))
                                }
                                Err(e) => info!(reason = %e, "no audio for this session"),
                            }
                        }
                        let _ = self.events.send(NetEvent::SessionStarted {
                            session_id,
                            remote,
                            authorized_as: authorized_as.clone(),
                            viewer_name,
                            fingerprint,
                            capabilities,
                        });
                    }
                    HostEvent::Input { event, origin } => {
                        inputs += 1;
                        if let InputOrigin::Release(cause) = origin {
                            info!(?event, ?cause, "releasing held input");
                        }
                        let _ = self.events.send(NetEvent::Input {
                            session_id,
                            event,
                            origin,
                        });
                    }
                    HostEvent::KeyframeRequested(k) => {
                        if media.keyframe_queued() {
                            // One is on its way: another, as large, would only delay it.
                            debug!(?k, "keyframe requested; one is already on its way");
                        } else if let Some(v) = &video {
                            debug!(?k, "keyframe requested");
                            v.request_keyframe();
                        }
                    }
                    HostEvent::InvalidateReferences(i) => debug!(?i, "references invalidated"),
                    HostEvent::Stats(s) => {
                        debug!(?s, media = ?media.stats(), "viewer stats");
                        media.on_viewer_stats(&s);
                    }
                    HostEvent::Closed(reason) => {
                        if end_code.is_empty() {
                            end_code = end_code_of(&reason);
                        }
                        end_reason = reason.to_string();
                        info!(%reason, "session closed");
                    }
                }
            }
            if session.is_closed() {
                if let Some(t) = audio_task.take() {
                    t.abort();
                }
                if let Some(t) = tile_task.take() {
                    t.abort();
                }
                let _ = ctl_send.finish();
                // Give the goodbye a moment to reach the viewer before closing.
                let _ = tokio::time::timeout(Duration::from_millis(200), ctl_send.stopped()).await;
                conn.close(close_code.into(), end_reason.as_bytes());
                break;
            }
            let wake = session
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1))
                .min(media.poll_timeout(Instant::now()));
            let (units, cursor) = match video.as_mut() {
                Some(v) => (Some(&mut v.units), Some(&mut v.cursor)),
                None => (None, None),
            };
            let woke = tokio::select! {
                msg = rx.recv() => Wake::Net(msg),
                _ = kick.changed() => Wake::Kick(kick.borrow().clone().unwrap_or_default()),
                _ = tokio::time::sleep_until(wake.into()) => Wake::Timer,
                c = next_cursor(cursor) => Wake::Cursor(c),
                u = next_unit(units) => Wake::Unit(u),
                _ = superseded.notified() => Wake::Superseded,
            };
            let now = Instant::now();
            match woke {
                Wake::Net(Some(NetIn::Stream(ch, bytes))) => session.handle_stream(now, ch, &bytes),
                Wake::Net(Some(NetIn::Datagram(d))) => session.handle_datagram(now, &d),
                Wake::Net(Some(NetIn::Lost(why))) => session.handle_connection_lost(now, &why),
                Wake::Net(None) => session.handle_connection_lost(now, "all readers ended"),
                Wake::Timer => {
                    session.handle_timeout(now);
                    let tick = media.on_timer(&conn, now);
                    if let Some(v) = &video {
                        if let Some(limit) = tick.bitrate_limit {
                            v.set_bitrate_limit(limit);
                        }
                        if tick.frames_dropped > 0 && !media.keyframe_queued() {
                            // Frames this viewer will never see: its decoder needs a fresh
                            // start (unless a keyframe is on its way already).
                            v.request_keyframe();
                        }
                    }
                }
                Wake::Superseded => {
                    info!("the viewer reconnected on a new connection; ending this one");
                    // No goodbye: the viewer has moved on, and a goodbye arriving late on the
                    // old connection must not end its new session. Held input is released.
                    session.handle_connection_lost(now, "replaced by the viewer's new connection");
                    close_code = CLOSE_REPLACED;
                    end_code = "replaced";
                }
                Wake::Kick(why) => {
                    end_code = "revoked";
                    session.close_with(now, GoodbyeReason::Refused, &why);
                }
                Wake::Cursor(Some(c)) => {
                    self.send_cursor(&mut session, &c, &mut sent_cursor_serial)
                }
                Wake::Cursor(None) => {}
                Wake::Unit(Ok(unit))
                    if !crate::encode::format::config_accepted_by(&unit.config, &video_caps) =>
                {
                    // Encoded for other viewers before the pipeline switched to a format this
                    // one decodes too (it switches at the next frame).
                    debug!(
                        frame = unit.frame,
                        "frame in a format this viewer cannot decode"
                    );
                }
                Wake::Unit(Ok(unit)) if !unit.keyframe && before_first_key.is_some() => {
                    let skipped = before_first_key.get_or_insert(0);
                    *skipped += 1;
                    debug!(
                        frame = unit.frame,
                        "not sent: this session's first keyframe is still to come"
                    );
                    if skipped.is_multiple_of(30) {
                        // Subscribing asked for one; ask again if it never came.
                        if let Some(v) = &video {
                            v.request_keyframe();
                        }
                    }
                }
                Wake::Unit(Ok(unit)) => {
                    before_first_key = None;
                    if sent_config != Some(unit.config) {
                        if let Err(e) = session.send_stream_config(unit.config) {
                            warn!(error = %e, "stream configuration not sendable");
                        }
                        sent_config = Some(unit.config);
                    }
                    if !media.is_dead() {
                        self.send_unit(&mut session, &conn, &mut media, &unit);
                        frames_sent += 1;
                    }
                }
                Wake::Unit(Err(broadcast::error::RecvError::Lagged(n))) => {
                    // This session fell behind: the frames it missed are gone, so its decoder
                    // needs a fresh start.
                    debug!(skipped = n, "session lagged behind the encoder");
                    if let Some(v) = &video {
                        v.request_keyframe();
                    }
                }
                Wake::Unit(Err(broadcast::error::RecvError::Closed)) => {
                    info!("video pipeline ended");
                    video = None;
                }
            }
        }
        debug!(frames_sent, "session loop done");
        let stats = conn.stats();
        self.security.audit(
            if started {
                "session_end"
            } else {
                "session_failed"
            },
            json!({
                "session": format!("{session_id:016x}"),
                "viewer": authorized_as,
                "fingerprint": fingerprint.to_string(),
                "remote": remote.to_string(),
                "channels": session_caps.as_ref().map(channels),
                "duration_ms": opened_at.elapsed().as_millis() as u64,
                "bytes_in": stats.udp_rx.bytes,
                "bytes_out": stats.udp_tx.bytes,
                "frames_sent": frames_sent,
                "input_events": inputs,
                "end": if end_code.is_empty() { "closed" } else { end_code },
                "reason": end_reason,
            }),
        );
        if !started {
            return Err((ConnectStage::Hello, end_reason));
        }
        let _ = self.events.send(NetEvent::SessionEnded {
            session_id,
            remote,
            reason: end_reason,
        });
        Ok(())
    }
}

/// What woke the session loop.
enum Wake {
    Net(Option<NetIn>),
    Timer,
    Superseded,
    Kick(String),
    Cursor(Option<CursorUpdate>),
    Unit(Result<Arc<EncodedUnit>, broadcast::error::RecvError>),
}

/// The next encoded frame, or never when the session has no video.
async fn next_unit(
    units: Option<&mut broadcast::Receiver<Arc<EncodedUnit>>>,
) -> Result<Arc<EncodedUnit>, broadcast::error::RecvError> {
    match units {
        Some(u) => u.recv().await,
        None => std::future::pending().await,
    }
}

/// The next cursor change, or never when the session has no video.
async fn next_cursor(
    cursor: Option<&mut watch::Receiver<Option<CursorUpdate>>>,
) -> Option<CursorUpdate> {
    match cursor {
        Some(c) => {
            if c.changed().await.is_err() {
                return std::future::pending().await;
            }
            c.borrow_and_update().clone()
        }
        None => std::future::pending().await,
    }
}

impl SessionCtx {
    /// Sends the cursor image once per serial (reliably) and the position as a datagram.
    fn send_cursor(&self, session: &mut HostSession, c: &CursorUpdate, sent: &mut Option<u32>) {
        if let Some(img) = &c.image {
            if *sent != Some(img.serial) {
                let shape = CursorShape {
                    id: img.serial,
                    width: img.width,
                    height: img.height,
                    hot_x: img.hot_x,
                    hot_y: img.hot_y,
                    rgba: img.rgba.clone(),
                };
                match session.send_cursor_shape(shape) {
                    Ok(()) => *sent = Some(img.serial),
                    Err(e) => debug!(error = %e, "cursor image not sendable"),
                }
            }
        }
        session.send_cursor_position(CursorPosition {
            id: c.state.serial,
            x: c.state.x,
            y: c.state.y,
            visible: c.state.visible,
        });
    }

    /// Cuts a frame into datagram-sized fragments (with parity sized for this session's
    /// path) and queues them.
    fn send_unit(
        &self,
        session: &mut HostSession,
        conn: &quinn::Connection,
        media: &mut MediaSender,
        unit: &EncodedUnit,
    ) {
        let max = conn.max_datagram_size().unwrap_or(1200);
        let payload = max.saturating_sub(FRAGMENT_OVERHEAD);
        let now = Instant::now();
        let mut times = unit.times;
        times.send = HostMicros(self.cfg.clock.micros(now));
        // Damage lists only for a viewer that negotiated them (others refuse the flag).
        let damage = unit.damage.as_deref().filter(|_| session.damage_rects());
        let parity = data_fragments(unit.data.len(), data_payload(damage, payload))
            .map_or(0, |k| media.parity_for(k));
        match packetize_with_parity(
            unit.config.stream_id,
            unit.frame,
            unit.keyframe,
            times,
            damage,
            &unit.data,
            payload,
            parity,
        ) {
            Ok(frags) => {
                let wire: usize = frags
                    .iter()
                    .map(|f| f.payload.len() + FRAGMENT_OVERHEAD)
                    .sum();
                media.on_frame(now, unit.data.len(), wire, unit.keyframe);
                for f in frags {
                    session.send_video(f);
                }
            }
            Err(e) => warn!(frame = unit.frame, error = %e, "frame not sent"),
        }
    }
}

/// Opens the tile stream and writes every tile batch on it until the connection ends. A
/// session that falls behind (the path is slower than the tiles) skips batches and asks for
/// the lossless layer to start over, as it would ask for a keyframe.
fn spawn_tile_sender(
    conn: quinn::Connection,
    mut batches: broadcast::Receiver<Arc<crate::pipeline::TileBatch>>,
    resync: crate::pipeline::TileResync,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut send = match conn.open_uni().await {
            Ok(s) => s,
            Err(e) => {
                debug!(error = %e, "no tile stream");
                return;
            }
        };
        // Tiles come before bulk refinement of other streams but after control and input.
        let _ = send.set_priority(-1);
        loop {
            match batches.recv().await {
                Ok(b) => {
                    if let Err(e) = send.write_all(&b.bytes).await {
                        debug!(error = %e, "tile stream closed");
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    debug!(
                        skipped = n,
                        "tile stream fell behind; starting the lossless layer over"
                    );
                    resync.request();
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}

/// Sends every audio packet of `packets` as a datagram until the connection ends. A session
/// that falls behind skips packets (the viewer conceals them) instead of queueing.
fn spawn_audio_sender(
    conn: quinn::Connection,
    mut packets: broadcast::Receiver<Arc<sightline_protocol::msg::AudioPacket>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(
        async move {
            let mut skipped = 0u64;
            loop {
                match packets.recv().await {
                    Ok(p) => {
                        let bytes = sightline_protocol::msg::audio_datagram(&p);
                        if conn.max_datagram_size().is_some_and(|m| bytes.len() > m) {
                            debug!(len = bytes.len(), "audio packet larger than a datagram");
                            continue;
                        }
                        match conn.send_datagram(bytes.into()) {
                            Ok(()) => {}
                            Err(quinn::SendDatagramError::ConnectionLost(_)) => break,
                            Err(e) => debug!(error = %e, "audio datagram not sent"),
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        skipped += n;
                        debug!(skipped, "audio sender lagged");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }
        .instrument(tracing::Span::current()),
    )
}

fn spawn_stream_reader(mut recv: quinn::RecvStream, channel: Channel, tx: mpsc::Sender<NetIn>) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match recv.read(&mut buf).await {
                Ok(Some(n)) => {
                    if tx
                        .send(NetIn::Stream(channel, buf[..n].to_vec()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                Ok(None) => {
                    if channel == Channel::Control {
                        let _ = tx
                            .send(NetIn::Lost("viewer closed the control stream".into()))
                            .await;
                    }
                    break;
                }
                Err(e) => {
                    let _ = tx.send(NetIn::Lost(e.to_string())).await;
                    break;
                }
            }
        }
    });
}

/// The host wire clock: microseconds since the Unix epoch, advanced by the monotonic clock so it
/// never jumps while the agent runs.
pub fn host_clock(now: Instant) -> WireClock {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    WireClock::new(now, since_epoch.as_micros() as u64)
}

fn random_u64() -> u64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    // SystemRandom only fails when the OS has no entropy source; a zero id is still unique
    // enough for logs.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    u64::from_le_bytes(b)
}

/// Forgets a session in the security registry when the session task ends.
struct Unregister<'a>(&'a Security, u64);

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.0.unregister(self.1);
    }
}

/// A short machine-readable name for how a session ended (audit records).
fn end_code_of(reason: &sightline_protocol::CloseReason) -> &'static str {
    use sightline_protocol::CloseReason as R;
    match reason {
        R::PeerGoodbye { .. } => "viewer_closed",
        R::Local {
            reason: GoodbyeReason::Refused,
            message,
        } if message.starts_with("rate limit") => "rate_limited",
        R::Local {
            reason: GoodbyeReason::HostShutdown,
            ..
        } => "host_shutdown",
        R::Local { .. } => "host_closed",
        R::VersionMismatch { .. } => "version_mismatch",
        R::ProtocolViolation(_) => "protocol_violation",
        R::Timeout(_) => "timeout",
        R::ConnectionLost(_) => "connection_lost",
    }
}

/// The ALPN the handshake settled on.
fn negotiated_alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol
}

fn peer_fingerprint(conn: &quinn::Connection) -> Option<Fingerprint> {
    let certs = conn
        .peer_identity()?
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    certs.first().map(|c| Fingerprint::of_der(c))
}

/// Whether the viewer itself closed the connection during the handshake, without a TLS alert.
fn abandoned(e: &quinn::ConnectionError) -> bool {
    matches!(e, quinn::ConnectionError::ConnectionClosed(c)
        if c.error_code == quinn::TransportErrorCode::APPLICATION_ERROR)
}

/// Turns a failed handshake into words an operator can act on.
pub fn explain_handshake_error(e: &quinn::ConnectionError) -> String {
    match e {
        quinn::ConnectionError::TransportError(t) => {
            let code = u64::from(t.code);
            match crypto_alert(code) {
                Some(alert) => format!("TLS failed ({}): {}", tls_alert_name(alert), t.reason),
                None => format!("transport error: {t}"),
            }
        }
        quinn::ConnectionError::ConnectionClosed(c) => {
            let code = u64::from(c.error_code);
            match crypto_alert(code) {
                Some(alert) => format!(
                    "viewer aborted the TLS handshake with alert {} (it does not trust this \
                     host's certificate: pin mismatch or unknown host)",
                    tls_alert_name(alert)
                ),
                None => format!("viewer closed the connection: {c}"),
            }
        }
        other => other.to_string(),
    }
}
