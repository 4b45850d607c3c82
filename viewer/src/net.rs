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
use sightline_protocol::session::{SendInputError, ViewerConfig, ViewerEvent, ViewerSession};
use sightline_protocol::time::WireClock;
use sightline_protocol::transport::{
    crypto_alert, tls_alert_name, ConnectStage, CLOSE_PROTOCOL_ERROR, CLOSE_VIEWER_QUIT,
};
use sightline_protocol::{Channel, CloseReason, ALPN};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info};

use crate::config::HostAddr;
use crate::decode::FrameSink;
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
    connection: quinn::Connection,
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
        self.connection.rtt()
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
        self.connection
            .close(CLOSE_PROTOCOL_ERROR.into(), b"viewer aborted");
        self.task.abort();
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
    let result = connect_with(
        addr,
        &opts.host.host,
        tls,
        opts.session,
        opts.connect_timeout,
        media,
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

/// Connects with a ready TLS configuration (tests use this to offer odd configurations).
pub async fn connect_with(
    addr: SocketAddr,
    server_name: &str,
    tls: rustls::ClientConfig,
    mut session_cfg: ViewerConfig,
    timeout: Duration,
    media: Media,
) -> Result<ViewerConnection, ConnectError> {
    let started = Instant::now();
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
    let mut endpoint = quinn::Endpoint::client(bind).map_err(ConnectError::Socket)?;
    let quic = QuicClientConfig::with_initial(Arc::new(tls), quic_initial_suite())
        .map_err(|e| ConnectError::Tls(format!("QUIC TLS configuration: {e}")))?;
    let mut client = quinn::ClientConfig::new(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(session_cfg.idle_timeout + Duration::from_secs(2))
        .unwrap_or_else(|_| quinn::IdleTimeout::from(quinn::VarInt::from_u32(12_000)));
    transport.max_idle_timeout(Some(idle));
    transport.keep_alive_interval(Some(Duration::from_millis(500)));
    transport.datagram_receive_buffer_size(Some(8 << 20));
    client.transport_config(Arc::new(transport));
    endpoint.set_default_client_config(client);

    // Stage: connect + TLS.
    let connecting = endpoint
        .connect(addr, server_name)
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
        ctl_send
            .write_all(&t.bytes)
            .await
            .map_err(|e| ConnectError::Streams(e.to_string()))?;
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
        "connected"
    );

    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let video = match media.video {
        Some(sink) => Some(
            VideoReceiver::new(sink, clock)
                .map_err(|e| ConnectError::Streams(format!("cannot start the decoder: {e}")))?,
        ),
        None => None,
    };
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
                .map(|h| crate::audio::AudioReceiver::new(h, media.clock.clone(), clock)),
            clock: media.clock,
            totals: media.totals,
        },
    ));
    Ok(ViewerConnection {
        welcome,
        remote: addr,
        setup_time,
        commands: cmd_tx,
        events: ev_rx,
        task,
        connection: conn,
    })
}

enum NetIn {
    Stream(Vec<u8>),
    Datagram(bytes::Bytes),
    Lost(String),
}

fn feed(session: &mut ViewerSession, msg: NetIn) {
    let now = Instant::now();
    match msg {
        NetIn::Stream(b) => session.handle_stream(now, Channel::Control, &b),
        NetIn::Datagram(d) => session.handle_datagram(now, &d),
        NetIn::Lost(why) => session.handle_connection_lost(now, &why),
    }
}

fn spawn_readers(
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

    fn publish(&self) {
        if let Some(v) = &self.video {
            let s = v.stats();
            let mut t = self.totals.lock().unwrap_or_else(PoisonError::into_inner);
            t.frames_received = s.completed;
            t.frames_lost = s.lost;
            t.frames_recovered = s.recovered;
            t.bytes = s.bytes;
            t.keyframe_requests = v.keyframe_requests();
        }
    }
}

async fn run(
    mut session: ViewerSession,
    streams: Streams,
    mut net_rx: mpsc::Receiver<NetIn>,
    mut cmd_rx: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<ViewerEvent>,
    mut media: MediaState,
) -> CloseReason {
    let Streams {
        conn,
        mut ctl_send,
        mut input_send,
        endpoint,
    } = streams;
    let mut closing: Option<CloseReason> = None;
    let mut commands_open = true;
    loop {
        while let Some(ev) = session.poll_event() {
            if let ViewerEvent::Closed(reason) = &ev {
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
        let wake = [session.poll_timeout(), media.next_timeout(now)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| now + Duration::from_secs(1));
        tokio::select! {
            msg = net_rx.recv() => match msg {
                Some(m) => feed(&mut session, m),
                None => session.handle_connection_lost(Instant::now(), "readers ended"),
            },
            cmd = cmd_rx.recv(), if commands_open => match cmd {
                Some(Command::Input(ev, reply)) => {
                    let _ = reply.send(session.send_input(Instant::now(), ev));
                }
                Some(Command::Close(message)) => {
                    // Streams are not ordered with each other: let the host have every input
                    // already written before it reads the goodbye, or it would drop the last
                    // events (a key release among them) with the closed session.
                    let _ = input_send.finish();
                    let _ = tokio::time::timeout(Duration::from_millis(300), input_send.stopped()).await;
                    session.close_with(GoodbyeReason::Normal, &message)
                }
                None => {
                    commands_open = false;
                    session.close_with(GoodbyeReason::Normal, "viewer closed");
                }
            },
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                if session.poll_timeout().is_some_and(|t| t <= now) {
                    session.handle_timeout(now);
                }
                media.on_timeout(now, &mut session);
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
fn classify_late(e: &quinn::ConnectionError, otherwise: ConnectError) -> ConnectError {
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
