//! The viewer's QUIC side: the only module that touches quinn in the viewer.
//!
//! [`connect`] walks the named stages (connect → TLS → streams → hello) and says which one failed
//! and why. After that a task drives the [`ViewerSession`]; the application talks to it through
//! a [`ViewerConnection`] (commands in, events out).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use quinn::crypto::rustls::QuicClientConfig;
use sightline_certs::{
    quic_initial_suite, viewer_tls_config, CertError, HostKeyRejected, Identity, KnownHosts,
    PinOutcome, PinnedHostVerifier, TrustPolicy,
};
use sightline_protocol::msg::{
    AudioLayouts, BitDepths, ChromaFormats, GoodbyeReason, InputEvent, InputKinds, VideoCodecs,
    Welcome,
};
use sightline_protocol::reconnect::ReconnectConfig;
use sightline_protocol::session::{SendInputError, ViewerConfig, ViewerEvent, ViewerSession};
use sightline_protocol::time::WireClock;
use sightline_protocol::transport::{
    crypto_alert, tls_alert_name, ConnectStage, CLOSE_PROTOCOL_ERROR, CLOSE_VIEWER_QUIT,
};
use sightline_protocol::{Channel, CloseReason, ALPN};
use tokio::sync::{mpsc, oneshot};
use tracing::info;

use crate::config::HostAddr;
use crate::decode::FrameSink;
pub(crate) use crate::dial::Dialer;
pub use crate::dial::SOCKET_BUFFER_BYTES;
use crate::dial::{client_endpoint, establish, Established};
use crate::reconnect::{Link, LinkState};
use crate::stats::{SessionTotals, SharedClock};
use crate::video::VideoReceiver;

/// How to reach and trust a host.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Where.
    pub host: HostAddr,
    /// Our identity (client certificate).
    pub identity: Identity,
    /// Known-hosts file with the host's pin.
    pub known_hosts: PathBuf,
    /// Whether an unknown host may be pinned on first use.
    pub trust: TrustPolicy,
    /// Session settings.
    pub session: ViewerConfig,
    /// Give up on a silent host after this long.
    pub connect_timeout: Duration,
    /// Send the packets here instead of to `host`'s address (a relay such as the WAN
    /// emulator); the host is still verified and pinned as `host`.
    pub via: Option<SocketAddr>,
    /// Reconnecting after a network drop ([`ReconnectConfig::enabled`] off: the session ends
    /// when the connection does).
    pub reconnect: ReconnectConfig,
}

/// Where media goes. Without a video sink the viewer advertises no video decoding.
#[derive(Default)]
pub struct Media {
    /// Decoded pictures.
    pub video: Option<Box<dyn FrameSink>>,
    /// The newest clock estimate, for turning host timestamps into latencies.
    pub clock: SharedClock,
    /// Video counters, refreshed as frames arrive.
    pub totals: Arc<Mutex<SessionTotals>>,
    /// Audio playback. Without it the viewer advertises no audio layouts.
    pub audio: Option<crate::audio::AudioHandle>,
    /// Lossless tiles: what the proof says (updated by the decode thread).
    pub lossless: crate::compose::SharedLossless,
    /// Do not offer to compose lossless tiles (everything comes as video).
    pub no_lossless: bool,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Media")
            .field("video", &self.video.is_some())
            .field("audio", &self.audio.is_some())
            .finish_non_exhaustive()
    }
}

/// Why connecting failed, by stage.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The host name did not resolve.
    #[error("connect: cannot resolve {host}: {detail}")]
    Resolve {
        /// The name.
        host: String,
        /// Resolver error.
        detail: String,
    },
    /// No local UDP socket (permissions, no IPv6 on this machine).
    #[error("connect: cannot open a local UDP socket: {0}")]
    Socket(std::io::Error),
    /// Our identity or known-hosts file is unusable.
    #[error("TLS: {0}")]
    Certs(#[from] CertError),
    /// Nothing answered.
    #[error(
        "connect: no answer from {addr} within {secs} s — is host-agent running there and is \
         UDP port {port} reachable?",
        secs = .timeout.as_secs(),
        port = .addr.port()
    )]
    NoAnswer {
        /// Address tried.
        addr: SocketAddr,
        /// How long we waited.
        timeout: Duration,
    },
    /// The host's certificate is not the pinned one, or the host is unknown.
    #[error("TLS: {0}")]
    HostKey(HostKeyRejected),
    /// The host does not accept this viewer's certificate.
    #[error(
        "TLS: the host refused this viewer's certificate{} (TLS alert {alert}); ask the host's \
         administrator to run `certs authorize --authorized FILE --fingerprint {}`",
        .fingerprint.map(|f| format!(" {f}")).unwrap_or_default(),
        .fingerprint.map(|f| f.to_string()).unwrap_or_else(|| "FP".into())
    )]
    NotAuthorized {
        /// The alert the host sent.
        alert: &'static str,
        /// Our certificate's fingerprint.
        fingerprint: Option<sightline_certs::Fingerprint>,
    },
    /// The TLS handshake failed for another reason (explained).
    #[error("TLS: {0}")]
    Tls(String),
    /// The control or input stream could not be opened.
    #[error("streams: {0}")]
    Streams(String),
    /// The host did not accept our hello (version mismatch, refusal, …).
    #[error("hello: {0}")]
    Hello(CloseReason),
}

impl ConnectError {
    /// The stage that failed.
    pub fn stage(&self) -> ConnectStage {
        match self {
            ConnectError::Resolve { .. }
            | ConnectError::Socket(_)
            | ConnectError::NoAnswer { .. } => ConnectStage::Connect,
            ConnectError::Certs(_)
            | ConnectError::HostKey(_)
            | ConnectError::NotAuthorized { .. }
            | ConnectError::Tls(_) => ConnectStage::Tls,
            ConnectError::Streams(_) => ConnectStage::Streams,
            ConnectError::Hello(_) => ConnectStage::Hello,
        }
    }
}

/// Commands from the application to the session task.
#[derive(Debug)]
enum Command {
    Input(InputEvent, oneshot::Sender<Result<u64, SendInputError>>),
    Close(String),
}

/// A live session.
#[derive(Debug)]
pub struct ViewerConnection {
    /// The host's welcome.
    pub welcome: Welcome,
    /// The host's address.
    pub remote: SocketAddr,
    /// How long connect → welcome took.
    pub setup_time: Duration,
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<ViewerEvent>,
    task: tokio::task::JoinHandle<CloseReason>,
    /// The current connection (a reconnect replaces it).
    connection: Arc<Mutex<quinn::Connection>>,
    link: tokio::sync::watch::Receiver<LinkState>,
}

/// A cheap handle for sending input from another thread (the window's event loop) without
/// waiting: events are queued in order; ones the session refuses are counted, not reported.
#[derive(Debug, Clone)]
pub struct InputSender {
    commands: mpsc::UnboundedSender<Command>,
    kinds: InputKinds,
}

impl InputSender {
    /// Queues `event` if its kind was negotiated; false when it was not or the session is over.
    pub fn send(&self, event: InputEvent) -> bool {
        if !sightline_protocol::session::input_kind(&event).is_none_or(|k| self.kinds.contains(k)) {
            return false;
        }
        let (tx, _rx) = oneshot::channel();
        self.commands.send(Command::Input(event, tx)).is_ok()
    }

    /// The input kinds both ends agreed on.
    pub fn kinds(&self) -> InputKinds {
        self.kinds
    }
}

impl ViewerConnection {
    /// A handle for sending input from another thread.
    pub fn input_sender(&self) -> InputSender {
        InputSender {
            commands: self.commands.clone(),
            kinds: self.welcome.capabilities.input_kinds,
        }
    }

    /// Queues an input event; returns its sequence number.
    pub async fn send_input(&self, event: InputEvent) -> Result<u64, SendInputError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Input(event, tx))
            .map_err(|_| SendInputError::Closed)?;
        rx.await.unwrap_or(Err(SendInputError::Closed))
    }

    /// The next session event; `None` once the session has ended and all events were read.
    pub async fn next_event(&mut self) -> Option<ViewerEvent> {
        self.events.recv().await
    }

    /// QUIC's own RTT estimate.
    pub fn quic_rtt(&self) -> Duration {
        self.current_connection().rtt()
    }

    /// Whether the link is up or the viewer is reconnecting; changes are signalled.
    pub fn link_state(&self) -> tokio::sync::watch::Receiver<LinkState> {
        self.link.clone()
    }

    fn current_connection(&self) -> quinn::Connection {
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Says goodbye and waits for the session to end.
    pub async fn close(self, message: &str) -> CloseReason {
        let _ = self.commands.send(Command::Close(message.to_owned()));
        let reason = self
            .task
            .await
            .unwrap_or_else(|e| CloseReason::ConnectionLost(format!("session task failed: {e}")));
        reason
    }

    /// Drops the connection without a goodbye (as a crash or network loss would).
    pub fn abort(self) {
        self.task.abort();
        self.current_connection()
            .close(CLOSE_PROTOCOL_ERROR.into(), b"viewer aborted");
    }
}

/// Resolves, pins and connects (no media).
pub async fn connect(opts: ConnectOptions) -> Result<ViewerConnection, ConnectError> {
    connect_media(opts, Media::default()).await
}

/// Resolves, pins and connects, delivering media to `media`.
pub async fn connect_media(
    opts: ConnectOptions,
    media: Media,
) -> Result<ViewerConnection, ConnectError> {
    let addr = match opts.via {
        Some(a) => a,
        None => resolve(&opts.host).await?,
    };
    let known = KnownHosts::load_or_empty(&opts.known_hosts)?;
    let verifier = PinnedHostVerifier::new(
        Some(opts.known_hosts.clone()),
        known,
        &opts.host.pin_key(),
        opts.trust,
    );
    let tls = viewer_tls_config(&opts.identity, verifier.clone(), &[ALPN])?;
    let result = connect_reconnecting(
        addr,
        &opts.host.host,
        tls,
        opts.session,
        opts.connect_timeout,
        media,
        opts.reconnect,
    )
    .await;
    match (result, verifier.outcome()) {
        (Err(ConnectError::Tls(_)), Some(outcome)) if !outcome.is_trusted() => {
            Err(ConnectError::HostKey(HostKeyRejected {
                outcome,
                known_hosts: Some(opts.known_hosts),
            }))
        }
        (Err(ConnectError::NotAuthorized { alert, .. }), _) => Err(ConnectError::NotAuthorized {
            alert,
            fingerprint: Some(opts.identity.fingerprint()),
        }),
        (Ok(c), Some(PinOutcome::NewlyPinned { host, fingerprint })) => {
            info!(%host, %fingerprint, "host trusted on first use and pinned");
            Ok(c)
        }
        (r, _) => r,
    }
}

/// The first address of `h`.
pub async fn resolve(h: &HostAddr) -> Result<SocketAddr, ConnectError> {
    let mut addrs = tokio::net::lookup_host((h.host.as_str(), h.port))
        .await
        .map_err(|e| ConnectError::Resolve {
            host: h.host.clone(),
            detail: e.to_string(),
        })?;
    addrs.next().ok_or_else(|| ConnectError::Resolve {
        host: h.host.clone(),
        detail: "no addresses".into(),
    })
}

/// Connects with a ready TLS configuration (tests use this to offer odd configurations); no
/// reconnecting.
pub async fn connect_with(
    addr: SocketAddr,
    server_name: &str,
    tls: rustls::ClientConfig,
    session_cfg: ViewerConfig,
    timeout: Duration,
    media: Media,
) -> Result<ViewerConnection, ConnectError> {
    let off = ReconnectConfig {
        enabled: false,
        ..ReconnectConfig::default()
    };
    connect_reconnecting(addr, server_name, tls, session_cfg, timeout, media, off).await
}

/// [`connect_with`] that reconnects by itself after a network drop, per `reconnect`.
pub async fn connect_reconnecting(
    addr: SocketAddr,
    server_name: &str,
    tls: rustls::ClientConfig,
    mut session_cfg: ViewerConfig,
    timeout: Duration,
    media: Media,
    reconnect: ReconnectConfig,
) -> Result<ViewerConnection, ConnectError> {
    if media.video.is_some() && !media.no_lossless {
        session_cfg
            .hello_extensions
            .push(sightline_protocol::msg::Extension {
                id: sightline_protocol::tiles::EXT_LOSSLESS_TILES,
                body: Vec::new(),
            });
    }
    if media.video.is_some() {
        // Advertise what the decoders here handle; a caller that already named codecs, depths
        // or chroma formats (a user's limit, a test) keeps only those of them.
        let (codecs, depths, chroma) = crate::decoder::capabilities();
        let c = &mut session_cfg.capabilities;
        let limit = |asked: u8, have: u8| if asked == 0 { have } else { asked & have };
        c.video_codecs = VideoCodecs(if c.video_codecs.is_empty() {
            codecs.0
        } else {
            c.video_codecs.0 & codecs.0
        });
        c.bit_depths = BitDepths(limit(c.bit_depths.0, depths.0));
        c.chroma = ChromaFormats(limit(c.chroma.0, chroma.0));
    } else {
        session_cfg.capabilities.video_codecs = VideoCodecs::EMPTY;
    }
    // Audio only when something plays it: every layout (the playout downmixes what the device
    // cannot take) unless the caller narrowed them.
    if media.audio.is_none() {
        session_cfg.capabilities.audio_layouts = AudioLayouts::EMPTY;
    } else if session_cfg.capabilities.audio_layouts.is_empty() {
        session_cfg.capabilities.audio_layouts = AudioLayouts::ALL;
    }
    let bind: SocketAddr = if addr.is_ipv6() {
        "[::]:0".parse().expect("literal address")
    } else {
        "0.0.0.0:0".parse().expect("literal address")
    };
    let endpoint = client_endpoint(bind)?;
    let quic = QuicClientConfig::with_initial(Arc::new(tls), quic_initial_suite())
        .map_err(|e| ConnectError::Tls(format!("QUIC TLS configuration: {e}")))?;
    let mut client = quinn::ClientConfig::new(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(session_cfg.idle_timeout + Duration::from_secs(2))
        .unwrap_or_else(|_| quinn::IdleTimeout::from(quinn::VarInt::from_u32(12_000)));
    transport.max_idle_timeout(Some(idle));
    transport.keep_alive_interval(Some(Duration::from_millis(500)));
    transport.datagram_receive_buffer_size(Some(8 << 20));
    // A handshake packet lost (a reconnect attempt while the path is still down) is sent again
    // after ~3 × this instead of quinn's ~1 s default.
    transport.initial_rtt(Duration::from_millis(100));
    client.transport_config(Arc::new(transport));
    let mut endpoint = endpoint;
    endpoint.set_default_client_config(client);

    let dialer = Dialer {
        endpoint: endpoint.clone(),
        addr,
        server_name: server_name.to_owned(),
        session_cfg,
        timeout,
    };
    let est = establish(&dialer, None).await?;
    let Established {
        conn,
        ctl_send,
        input_send,
        session,
        in_rx,
        welcome,
        setup_time,
    } = est;

    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let video = match media.video {
        Some(sink) => Some(
            VideoReceiver::new_with(sink, viewer_clock(), media.lossless.clone())
                .map_err(|e| ConnectError::Streams(format!("cannot start the decoder: {e}")))?,
        ),
        None => None,
    };
    if let Some(v) = &video {
        spawn_tile_reader(&conn, v.tile_sender());
    }
    let current = Arc::new(Mutex::new(conn.clone()));
    let (link, link_rx) = Link::new(reconnect, dialer, welcome.session_id, current.clone());
    let task = tokio::spawn(run(
        session,
        Streams {
            conn: conn.clone(),
            ctl_send,
            input_send,
            endpoint,
        },
        in_rx,
        cmd_rx,
        ev_tx,
        MediaState {
            video,
            audio: media
                .audio
                .map(|h| crate::audio::AudioReceiver::new(h, media.clock.clone(), viewer_clock())),
            clock: media.clock,
            totals: media.totals,
        },
        link,
    ));
    Ok(ViewerConnection {
        welcome,
        remote: addr,
        setup_time,
        commands: cmd_tx,
        events: ev_rx,
        task,
        connection: current,
        link: link_rx,
    })
}

/// Reads the host's tile streams ([`sightline_protocol::tiles`]) on `conn` into the decode
/// thread, in stream order. A message that does not decode ends that stream (the composer
/// is told by the error and shows video only until the next reset).
fn spawn_tile_reader(
    conn: &quinn::Connection,
    to: std::sync::mpsc::Sender<crate::decode::DecodeInput>,
) {
    use sightline_protocol::tiles::{TileMessage, MAX_TILE_MESSAGE};
    use sightline_protocol::Decode;
    let conn = conn.clone();
    tokio::spawn(async move {
        while let Ok(mut recv) = conn.accept_uni().await {
            let to = to.clone();
            tokio::spawn(async move {
                let mut buf: Vec<u8> = Vec::new();
                let mut chunk = vec![0u8; 256 * 1024];
                loop {
                    let n = match recv.read(&mut chunk).await {
                        Ok(Some(n)) => n,
                        Ok(None) | Err(_) => return,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    let mut start = 0;
                    while buf.len() - start >= 4 {
                        let len = u32::from_le_bytes([
                            buf[start],
                            buf[start + 1],
                            buf[start + 2],
                            buf[start + 3],
                        ]) as usize;
                        if len > MAX_TILE_MESSAGE {
                            tracing::warn!(len, "tile message over the limit; tile stream dropped");
                            let _ = to.send(crate::decode::DecodeInput::TilesEnded);
                            let _ = recv.stop(0u32.into());
                            return;
                        }
                        if buf.len() - start - 4 < len {
                            break;
                        }
                        let body = &buf[start + 4..start + 4 + len];
                        start += 4 + len;
                        match TileMessage::from_bytes(body) {
                            Ok(m) => {
                                let at = viewer_clock().micros(Instant::now());
                                if to.send(crate::decode::DecodeInput::Tiles(m, at)).is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "malformed tile message; tile stream dropped");
                                let _ = to.send(crate::decode::DecodeInput::TilesEnded);
                                let _ = recv.stop(0u32.into());
                                return;
                            }
                        }
                    }
                    buf.drain(..start);
                }
            });
        }
    });
}

pub(crate) enum NetIn {
    Stream(Vec<u8>),
    Datagram(bytes::Bytes),
    Lost(String),
}

pub(crate) fn feed(session: &mut ViewerSession, msg: NetIn) {
    let now = Instant::now();
    match msg {
        NetIn::Stream(b) => session.handle_stream(now, Channel::Control, &b),
        NetIn::Datagram(d) => session.handle_datagram(now, &d),
        NetIn::Lost(why) => session.handle_connection_lost(now, &why),
    }
}

pub(crate) fn spawn_readers(
    conn: &quinn::Connection,
    mut ctl_recv: quinn::RecvStream,
    tx: mpsc::Sender<NetIn>,
) {
    let tx2 = tx.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match ctl_recv.read(&mut buf).await {
                Ok(Some(n)) => {
                    if tx2.send(NetIn::Stream(buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
                Ok(None) => {
                    let _ = tx2
                        .send(NetIn::Lost("host closed the control stream".into()))
                        .await;
                    break;
                }
                Err(e) => {
                    let _ = tx2.send(NetIn::Lost(describe_read_error(&e))).await;
                    break;
                }
            }
        }
    });
    let conn = conn.clone();
    tokio::spawn(async move {
        loop {
            match conn.read_datagram().await {
                Ok(d) => {
                    if tx.send(NetIn::Datagram(d)).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(NetIn::Lost(explain_after_tls(&e))).await;
                    break;
                }
            }
        }
    });
}

fn describe_read_error(e: &quinn::ReadError) -> String {
    match e {
        quinn::ReadError::ConnectionLost(c) => explain_after_tls(c),
        other => other.to_string(),
    }
}

struct Streams {
    conn: quinn::Connection,
    ctl_send: quinn::SendStream,
    input_send: quinn::SendStream,
    endpoint: quinn::Endpoint,
}

struct MediaState {
    video: Option<VideoReceiver>,
    audio: Option<crate::audio::AudioReceiver>,
    clock: SharedClock,
    totals: Arc<Mutex<SessionTotals>>,
}

impl MediaState {
    /// Handles media events itself; returns the events the application should see.
    fn filter(
        &mut self,
        now: Instant,
        session: &mut ViewerSession,
        ev: ViewerEvent,
    ) -> Option<ViewerEvent> {
        match ev {
            ViewerEvent::Video(frag) => {
                if let Some(v) = self.video.as_mut() {
                    if let Some(reason) = v.on_fragment(now, frag) {
                        session.request_keyframe(0, reason);
                    }
                    self.publish();
                }
                None
            }
            ViewerEvent::StreamConfig(c) => {
                if let Some(v) = self.video.as_mut() {
                    v.on_config(c);
                }
                Some(ViewerEvent::StreamConfig(c))
            }
            ViewerEvent::Clock(c) => {
                if let Some(v) = self.video.as_mut() {
                    v.set_rtt(Duration::from_micros(c.smoothed_rtt_us));
                }
                *self.clock.lock().unwrap_or_else(PoisonError::into_inner) = Some(c);
                Some(ViewerEvent::Clock(c))
            }
            ViewerEvent::AudioConfig(c) => {
                if let Some(a) = self.audio.as_mut() {
                    a.on_config(c.clone());
                }
                Some(ViewerEvent::AudioConfig(c))
            }
            ViewerEvent::Audio(p) => {
                if let Some(a) = self.audio.as_mut() {
                    a.on_packet(now, p);
                }
                None
            }
            other => Some(other),
        }
    }

    fn on_timeout(&mut self, now: Instant, session: &mut ViewerSession) {
        if let Some(v) = self.video.as_mut() {
            if let Some(reason) = v.on_timeout(now) {
                session.request_keyframe(0, reason);
            }
            self.publish();
        }
    }

    fn next_timeout(&self, now: Instant) -> Option<Instant> {
        self.video.as_ref().and_then(|v| v.next_timeout(now))
    }

    /// The session moved to a new connection: frames in flight are gone and the host starts
    /// the new session with a keyframe.
    fn on_reconnected(&mut self, _session: &mut ViewerSession) {
        if let Some(v) = self.video.as_mut() {
            v.restart();
            self.publish();
        }
    }

    /// The old connection came back after a stall: ask for a keyframe now rather than after
    /// the lost frames time out.
    fn on_link_back(&mut self, session: &mut ViewerSession) {
        if let Some(v) = self.video.as_mut() {
            v.restart();
            session.request_keyframe(0, sightline_protocol::msg::KeyframeReason::FrameLost);
        }
    }

    fn publish(&self) {
        if let Some(v) = &self.video {
            let s = v.stats();
            let mut t = self.totals.lock().unwrap_or_else(PoisonError::into_inner);
            t.frames_received = s.completed;
            t.frames_lost = s.lost;
            t.frames_recovered = s.recovered;
            t.bytes = s.bytes;
            t.fragments_ignored = s.ignored_fragments;
            t.keyframe_requests = v.keyframe_requests();
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    mut session: ViewerSession,
    streams: Streams,
    mut net_rx: mpsc::Receiver<NetIn>,
    mut cmd_rx: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<ViewerEvent>,
    mut media: MediaState,
    mut link: Link,
) -> CloseReason {
    let Streams {
        mut conn,
        mut ctl_send,
        mut input_send,
        endpoint,
    } = streams;
    let mut closing: Option<CloseReason> = None;
    let mut commands_open = true;
    // The current connection's readers still report (after a drop they end).
    let mut net_open = true;
    loop {
        while let Some(ev) = session.poll_event() {
            if let ViewerEvent::Closed(reason) = &ev {
                // A network drop is not the end of the session when reconnecting is on: the
                // application keeps its window and hears of it through the link state.
                if link.keep_after_close(Instant::now(), reason, &conn) {
                    continue;
                }
                closing = Some(reason.clone());
            }
            if let Some(ev) = media.filter(Instant::now(), &mut session, ev) {
                let _ = events.send(ev);
            }
        }
        let now = Instant::now();
        while let Some(t) = session.poll_transmit(now) {
            let res = match t.channel {
                Channel::Control => ctl_send.write_all(&t.bytes).await,
                Channel::Input => input_send.write_all(&t.bytes).await,
                Channel::Datagram => {
                    let _ = conn.send_datagram(t.bytes.into());
                    Ok(())
                }
            };
            if let Err(e) = res {
                session.handle_connection_lost(Instant::now(), &e.to_string());
            }
        }
        if let Some(reason) = closing.take() {
            link.ended();
            let _ = ctl_send.finish();
            let _ = input_send.finish();
            // Wait (briefly) until the host has both streams' data, so the goodbye and the
            // last input (a key release!) are not cut off by the connection close.
            let _ = tokio::time::timeout(Duration::from_millis(300), async {
                let _ = ctl_send.stopped().await;
                let _ = input_send.stopped().await;
            })
            .await;
            conn.close(CLOSE_VIEWER_QUIT.into(), reason.to_string().as_bytes());
            let _ = tokio::time::timeout(Duration::from_millis(500), endpoint.wait_idle()).await;
            return reason;
        }
        let now = Instant::now();
        let wake = [
            session.poll_timeout(),
            media.next_timeout(now),
            link.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| now + Duration::from_secs(1));
        tokio::select! {
            msg = net_rx.recv(), if net_open => match msg {
                Some(m) => {
                    if link.on_heard(Instant::now()) {
                        // The old connection came back before a new one: the frames lost
                        // meanwhile need a keyframe.
                        media.on_link_back(&mut session);
                    }
                    feed(&mut session, m)
                }
                None => {
                    net_open = false;
                    session.handle_connection_lost(Instant::now(), "readers ended")
                }
            },
            cmd = cmd_rx.recv(), if commands_open => match cmd {
                Some(Command::Input(ev, reply)) => {
                    // While the link is down input is dropped, not queued: seconds late, a
                    // click does the wrong thing (the host has released what was held).
                    let res = if link.is_down() {
                        link.input_dropped();
                        Err(SendInputError::NotEstablished)
                    } else {
                        session.send_input(Instant::now(), ev)
                    };
                    let _ = reply.send(res);
                }
                Some(Command::Close(message)) => {
                    if session.is_closed() {
                        closing = Some(CloseReason::Local { reason: GoodbyeReason::Normal, message });
                        continue;
                    }
                    // Streams are not ordered with each other: let the host have every input
                    // already written before it reads the goodbye, or it would drop the last
                    // events (a key release among them) with the closed session.
                    let _ = input_send.finish();
                    let _ = tokio::time::timeout(Duration::from_millis(300), input_send.stopped()).await;
                    session.close_with(GoodbyeReason::Normal, &message)
                }
                None => {
                    commands_open = false;
                    if session.is_closed() {
                        closing = Some(CloseReason::Local { reason: GoodbyeReason::Normal, message: "viewer closed".into() });
                        continue;
                    }
                    session.close_with(GoodbyeReason::Normal, "viewer closed");
                }
            },
            won = link.next_connection(), if link.has_attempts() => match won {
                Ok(est) => {
                    // A fresh connection answered first: move the session onto it.
                    let old = std::mem::replace(&mut conn, est.conn.clone());
                    old.close(CLOSE_VIEWER_QUIT.into(), b"replaced by a new connection");
                    let welcome = est.welcome.clone();
                    (session, ctl_send, input_send, net_rx) = (est.session, est.ctl_send, est.input_send, est.in_rx);
                    net_open = true;
                    link.on_connected(Instant::now(), &welcome, &conn);
                    if let Some(v) = &media.video {
                        spawn_tile_reader(&conn, v.tile_sender());
                    }
                    media.on_reconnected(&mut session);
                    let _ = events.send(ViewerEvent::Connected(welcome));
                }
                Err(e) => link.on_attempt_failed(&e),
            },
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                if session.poll_timeout().is_some_and(|t| t <= now) {
                    session.handle_timeout(now);
                }
                media.on_timeout(now, &mut session);
                if let Some(reason) = link.on_timer(now) {
                    // Reconnecting was given up.
                    if session.is_closed() {
                        let _ = events.send(ViewerEvent::Closed(reason.clone()));
                        closing = Some(reason);
                    } else {
                        session.close_with(GoodbyeReason::Timeout, &reason.to_string());
                    }
                }
            }
        }
    }
}

/// The viewer wire clock: microseconds since the Unix epoch when first asked, advanced by the
/// monotonic clock. One per process, so every part of the viewer stamps on the same clock.
pub fn viewer_clock() -> WireClock {
    static CLOCK: std::sync::OnceLock<WireClock> = std::sync::OnceLock::new();
    *CLOCK.get_or_init(|| {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        WireClock::new(Instant::now(), since_epoch.as_micros() as u64)
    })
}

/// Turns a failed handshake into words a user can act on.
pub fn explain_handshake_error(e: &quinn::ConnectionError) -> String {
    match e {
        quinn::ConnectionError::TransportError(t) => match crypto_alert(u64::from(t.code)) {
            Some(alert) => format!(
                "this viewer aborted the handshake ({}): {}",
                tls_alert_name(alert),
                t.reason
            ),
            None => format!("transport error: {t}"),
        },
        quinn::ConnectionError::ConnectionClosed(c) => {
            match crypto_alert(u64::from(c.error_code)) {
                Some(alert) => explain_host_alert(alert),
                None => format!("host closed the connection: {c}"),
            }
        }
        other => explain_after_tls(other),
    }
}

/// Alerts a host sends when it does not accept the viewer's certificate.
fn is_certificate_alert(alert: u8) -> bool {
    matches!(alert, 42..=46 | 48 | 49)
}

fn explain_host_alert(alert: u8) -> String {
    let name = tls_alert_name(alert);
    let why = match alert {
        120 => format!(
            "the host does not speak {} (ALPN): host and viewer are different protocol \
             generations; upgrade the older side",
            String::from_utf8_lossy(ALPN)
        ),
        40 | 71 | 70 => "no common TLS parameters: the host accepts only TLS 1.3 with \
                         TLS13_AES_256_GCM_SHA384"
            .to_owned(),
        116 => "the host requires a viewer certificate (pass --identity)".to_owned(),
        a if is_certificate_alert(a) => "the host refused this viewer's certificate: ask \
             the host's administrator to authorize it (`certs authorize --authorized FILE \
             --fingerprint FP`, with FP from `certs fingerprint` on this viewer's identity)"
            .to_owned(),
        _ => "the host aborted the TLS handshake".to_owned(),
    };
    format!("host refused the connection with TLS alert {name}: {why}")
}

/// In TLS 1.3 the viewer finishes its half of the handshake before the host has checked the
/// viewer's certificate, so a refusal arrives as a TLS alert *after* `connect` returned. Such a
/// close is still a TLS-stage failure.
pub(crate) fn classify_late(e: &quinn::ConnectionError, otherwise: ConnectError) -> ConnectError {
    match e {
        quinn::ConnectionError::ConnectionClosed(c) => {
            match crypto_alert(u64::from(c.error_code)) {
                Some(alert) if is_certificate_alert(alert) => ConnectError::NotAuthorized {
                    alert: tls_alert_name(alert),
                    fingerprint: None,
                },
                Some(alert) => ConnectError::Tls(explain_host_alert(alert)),
                None => otherwise,
            }
        }
        _ => otherwise,
    }
}

/// Describes a connection error after the handshake.
pub fn explain_after_tls(e: &quinn::ConnectionError) -> String {
    match e {
        quinn::ConnectionError::ApplicationClosed(a) => format!(
            "host closed the session: {}",
            String::from_utf8_lossy(&a.reason)
        ),
        quinn::ConnectionError::TimedOut => "the host stopped answering (idle timeout)".into(),
        other => other.to_string(),
    }
}
