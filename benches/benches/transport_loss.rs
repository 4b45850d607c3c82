//! Video transport under loss: datagrams with Reed–Solomon parity versus one QUIC stream per
//! frame, over real quinn through the WAN emulator ([`sightline_viewer::wan`]).
//!
//! Traffic: 60 fps, a 150 KB keyframe every 5 s, P-frames of 4–12 KB (seeded), host → viewer,
//! RTT 30 ms. Each frame's latency runs from the host starting to send it to the viewer holding
//! all of it (one process, one clock). A frame counts as delivered only when it completes in
//! order: both transports drop a frame that completes after a newer one.
//!
//! * `datagram+fec10` / `datagram+fec0`: [`packetize`] fragments sized from
//!   `max_datagram_size()`, sent as `Message::Video` datagrams, rebuilt by a [`Reassembler`]
//!   (which gives a frame up after 100 ms or when a newer frame completes).
//! * `stream`: one unidirectional stream per frame. Newer groups go first (a keyframe starts a
//!   group, as in moq) and frames of a group go in order; the host resets a frame's stream when
//!   it is not acknowledged 100 ms after the frame started.
//!
//! Each cell runs with three congestion controllers, because they decide the outcome more than
//! the transport does: quinn's default Cubic (every loss shrinks the window), quinn's BBR, and a
//! fixed window that ignores loss (a stand-in for encoder-side rate control).
//!
//! Columns beyond the latency percentiles: `keyframes ms` (latency of each keyframe, or `lost`),
//! `out of order` (streams: frames that arrived whole but after a newer one, so were dropped, and
//! their median latency: what waiting for a retransmission costs), `relay loss` (packets the
//! emulator dropped towards the viewer), `kernel drops` (UDP buffer overflows during the cell,
//! from `/proc/net/snmp`; must be 0 for the cell to count), and the host's congestion window and
//! congestion events at the end.
//!
//! `cargo bench -p sightline-benches --bench transport_loss` runs 10 s per cell at 0 %, 1 % and
//! 5 % loss (about 5 minutes); under `cargo test` a 1 s smoke run at 1 % checks the plumbing.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::udp::{UdpSockRef, UdpSocketState};
use sightline_certs::danger::AcceptAnyHost;
use sightline_certs::{
    host_tls_config, quic_initial_suite, viewer_tls_config, AuthorizedViewerVerifier,
    AuthorizedViewers, Identity, Role,
};
use sightline_protocol::msg::{HostStageTimes, Message};
use sightline_protocol::time::HostMicros;
use sightline_protocol::video::{
    packetize, FecConfig, Reassembler, ReassemblerConfig, ReassemblyEvent, FRAGMENT_OVERHEAD,
};
use sightline_protocol::{Decode, Encode, ALPN};
use sightline_viewer::wan::{WanRelay, WanSpec};
use tokio::time::{sleep_until, timeout_at};

const FPS: u32 = 60;
const KEYFRAME_EVERY: Duration = Duration::from_secs(5);
const KEYFRAME_BYTES: usize = 150_000;
const P_FRAME_BYTES: std::ops::RangeInclusive<usize> = 4_000..=12_000;
/// A frame older than this is stale: the stream transport resets it, the reassembler gives up.
const STALE: Duration = Duration::from_millis(100);
const RTT: Duration = Duration::from_millis(30);
const SEED: u64 = 2026;
/// Application error code for a stream reset because its frame went stale.
const RESET_STALE: u32 = 1;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Transport {
    Datagrams { fec_ratio: f32 },
    Streams,
}

impl Transport {
    fn name(self) -> String {
        match self {
            Transport::Datagrams { fec_ratio } => {
                format!("datagram+fec{}", (fec_ratio * 100.0).round())
            }
            Transport::Streams => "stream".into(),
        }
    }
}

/// One frame of the traffic plan and what became of it.
#[derive(Debug, Clone, Copy)]
struct Frame {
    len: usize,
    keyframe: bool,
    sent: Option<Instant>,
    done: Option<Instant>,
    /// Streams only: when the frame arrived complete but after a newer one (so it was dropped).
    too_late: Option<Instant>,
}

type Frames = Arc<Mutex<Vec<Frame>>>;

fn lock(frames: &Frames) -> std::sync::MutexGuard<'_, Vec<Frame>> {
    frames.lock().unwrap_or_else(PoisonError::into_inner)
}

/// SplitMix64, for reproducible frame sizes.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn plan(duration: Duration) -> Vec<Frame> {
    let mut rng = SEED;
    let count = (duration.as_secs_f64() * FPS as f64).round() as u32;
    let key_every = KEYFRAME_EVERY.as_secs() as u32 * FPS;
    (0..count)
        .map(|i| {
            let keyframe = i % key_every == 0;
            let span = (P_FRAME_BYTES.end() - P_FRAME_BYTES.start() + 1) as u64;
            let len = if keyframe {
                KEYFRAME_BYTES
            } else {
                P_FRAME_BYTES.start() + (splitmix(&mut rng) % span) as usize
            };
            Frame {
                len,
                keyframe,
                sent: None,
                done: None,
                too_late: None,
            }
        })
        .collect()
}

/// The bytes of frame `index`: recognisable, so the viewer can check what it got.
fn access_unit(index: u32, len: usize) -> Vec<u8> {
    let mut state = u64::from(index) ^ 0xA11CE;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&splitmix(&mut state).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Marks frame `index` complete at `now` when `data` is what was sent; returns whether it was.
fn complete(frames: &Frames, index: u32, data: &[u8], now: Instant) -> bool {
    let mut frames = lock(frames);
    let Some(frame) = frames.get_mut(index as usize) else {
        return false;
    };
    if frame.done.is_some() || data.len() != frame.len || data != access_unit(index, frame.len) {
        return false;
    }
    frame.done = Some(now);
    true
}

/// A loopback socket with 8 MiB kernel buffers: with the defaults, loopback drops bursts of
/// datagrams (2–8 %) in the kernel, which would blur the emulated loss. The relay's sockets need
/// this as much as quinn's.
fn bind_udp() -> BenchResult<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    // quinn-udp only offers the buffer setters on a socket state, and making a state switches
    // on GRO for its socket, which the relay's plain `recv` cannot take apart. So the state
    // belongs to a throwaway socket; the setters act on the socket passed to them.
    let scratch = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    let state = UdpSocketState::new(UdpSockRef::from(&scratch))?;
    state.set_recv_buffer_size(UdpSockRef::from(&socket), 8 << 20)?;
    state.set_send_buffer_size(UdpSockRef::from(&socket), 8 << 20)?;
    Ok(socket)
}

/// The congestion controller both endpoints use.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cc {
    /// quinn's default (loss-based: every loss shrinks the window).
    Cubic,
    /// quinn's BBR (marked experimental in quinn 0.11).
    Bbr,
    /// A fixed window that ignores loss (see [`FixedWindow`]).
    Fixed,
}

impl Cc {
    fn name(self) -> &'static str {
        match self {
            Cc::Cubic => "cubic",
            Cc::Bbr => "bbr",
            Cc::Fixed => "fixed",
        }
    }
}

/// A congestion window that never shrinks: stands in for a sender that does its own rate control
/// (the encoder's bitrate follows measured delay and loss, as WebRTC's congestion control does),
/// so random loss does not throttle the connection. Only for this comparison: on a shared network
/// a window that ignores loss is only safe together with such rate control.
#[derive(Debug, Clone, Copy)]
struct FixedWindow(u64);

impl quinn::congestion::Controller for FixedWindow {
    fn on_congestion_event(&mut self, _: Instant, _: Instant, _: bool, _: u64) {}
    fn on_mtu_update(&mut self, _: u16) {}
    fn window(&self) -> u64 {
        self.0
    }
    fn clone_box(&self) -> Box<dyn quinn::congestion::Controller> {
        Box::new(*self)
    }
    fn initial_window(&self) -> u64 {
        self.0
    }
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

impl quinn::congestion::ControllerFactory for FixedWindow {
    fn build(self: Arc<Self>, _: Instant, _: u16) -> Box<dyn quinn::congestion::Controller> {
        Box::new(*self)
    }
}

/// Window of [`Cc::Fixed`]: a keyframe and a few P-frames in flight at once.
const FIXED_WINDOW_BYTES: u64 = 256 * 1024;

fn transport_config(cc: Cc) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    match cc {
        Cc::Cubic => {}
        Cc::Bbr => {
            t.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
        }
        Cc::Fixed => {
            t.congestion_controller_factory(Arc::new(FixedWindow(FIXED_WINDOW_BYTES)));
        }
    }
    // Streams of one priority go out in the order they were written (see `send_streams`).
    t.send_fairness(false);
    t.max_concurrent_uni_streams(1_000u32.into());
    t.datagram_send_buffer_size(16 << 20);
    t.datagram_receive_buffer_size(Some(16 << 20));
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(Duration::from_secs(10)).expect("10 s fits a VarInt"),
    ));
    Arc::new(t)
}

struct Pki {
    host: Identity,
    viewer: Identity,
}

/// A connected pair through a WAN relay: (host side, viewer side, relay, endpoints to keep).
struct Link {
    host: quinn::Connection,
    viewer: quinn::Connection,
    relay: WanRelay,
    _endpoints: [quinn::Endpoint; 2],
}

async fn connect(
    pki: &Pki,
    relay_rt: &tokio::runtime::Handle,
    spec: WanSpec,
    cc: Cc,
) -> BenchResult<Link> {
    let mut authorized = AuthorizedViewers::new();
    authorized.authorize(pki.viewer.fingerprint(), "bench-viewer");
    let verifier = AuthorizedViewerVerifier::new(Arc::new(RwLock::new(authorized)));
    let host_tls = host_tls_config(&pki.host, verifier, &[ALPN])?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::with_initial(
        Arc::new(host_tls),
        quic_initial_suite(),
    )?));
    server.transport_config(transport_config(cc));
    let runtime = Arc::new(quinn::TokioRuntime);
    let host_ep = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server),
        bind_udp()?,
        runtime.clone(),
    )?;

    let viewer_tls = viewer_tls_config(&pki.viewer, Arc::new(AcceptAnyHost), &[ALPN])?;
    let mut client = quinn::ClientConfig::new(Arc::new(QuicClientConfig::with_initial(
        Arc::new(viewer_tls),
        quic_initial_suite(),
    )?));
    client.transport_config(transport_config(cc));
    let mut viewer_ep =
        quinn::Endpoint::new(quinn::EndpointConfig::default(), None, bind_udp()?, runtime)?;
    viewer_ep.set_default_client_config(client);

    // The relay runs on its own runtime so its timing does not queue behind quinn's work.
    let target = host_ep.local_addr()?;
    let (front, back) = (bind_udp()?, bind_udp()?);
    let relay = relay_rt
        .spawn(WanRelay::start_on(front, back, target, spec))
        .await??;
    let connecting = viewer_ep.connect(relay.addr(), "localhost")?;
    let incoming = host_ep.accept().await.ok_or("host endpoint closed")?;
    let (host, viewer) = tokio::try_join!(async { incoming.await }, connecting)?;
    Ok(Link {
        host,
        viewer,
        relay,
        _endpoints: [host_ep, viewer_ep],
    })
}

/// Host: sends the plan as datagrams, one fragment per datagram.
async fn send_datagrams(
    conn: quinn::Connection,
    frames: Frames,
    fec: FecConfig,
    epoch: Instant,
) -> BenchResult<()> {
    let plan: Vec<Frame> = lock(&frames).clone();
    let period = Duration::from_secs(1) / FPS;
    let start = tokio::time::Instant::now();
    for (i, frame) in plan.iter().enumerate() {
        sleep_until(start + period * i as u32).await;
        let index = i as u32;
        let au = access_unit(index, frame.len);
        // Path-MTU discovery raises the limit during the run: ask before every frame.
        let max = conn
            .max_datagram_size()
            .ok_or("datagrams disabled by the viewer")?;
        let now = Instant::now();
        let times = HostStageTimes {
            send: HostMicros((now - epoch).as_micros() as u64),
            ..HostStageTimes::default()
        };
        let fragments = packetize(
            0,
            index,
            frame.keyframe,
            times,
            &au,
            max - FRAGMENT_OVERHEAD,
            fec,
        )?;
        lock(&frames)[i].sent = Some(now);
        for fragment in fragments {
            conn.send_datagram(Message::Video(fragment).to_bytes().into())?;
        }
    }
    Ok(())
}

/// Viewer: reassembles datagrams into frames until the connection closes.
async fn receive_datagrams(conn: quinn::Connection, frames: Frames, epoch: Instant) {
    let mut reassembler = Reassembler::new(ReassemblerConfig {
        max_wait_us: STALE.as_micros() as u64,
        ..ReassemblerConfig::default()
    });
    let micros = |t: Instant| (t - epoch).as_micros() as u64;
    loop {
        let wake = reassembler
            .next_timeout_us()
            .map(|us| tokio::time::Instant::from_std(epoch + Duration::from_micros(us)));
        let events = tokio::select! {
            datagram = conn.read_datagram() => match datagram {
                Ok(bytes) => match Message::from_bytes(&bytes) {
                    Ok(Message::Video(fragment)) => reassembler.push(micros(Instant::now()), fragment),
                    other => panic!("unexpected datagram: {other:?}"),
                },
                Err(_) => return,
            },
            () = async { sleep_until(wake.expect("guarded")).await }, if wake.is_some() => {
                reassembler.handle_timeout(micros(Instant::now()))
            }
        };
        let now = Instant::now();
        for event in events {
            if let ReassemblyEvent::Complete(au) = event {
                assert!(
                    complete(&frames, au.frame, &au.data, now),
                    "frame {} corrupt",
                    au.frame
                );
            }
        }
    }
}

/// Host: one unidirectional stream per frame, reset when not acknowledged in time.
async fn send_streams(conn: quinn::Connection, frames: Frames) -> BenchResult<()> {
    let plan: Vec<Frame> = lock(&frames).clone();
    let period = Duration::from_secs(1) / FPS;
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(plan.len());
    for (i, frame) in plan.iter().enumerate() {
        sleep_until(start + period * i as u32).await;
        let index = i as u32;
        let group = index / (KEYFRAME_EVERY.as_secs() as u32 * FPS);
        let mut data = index.to_be_bytes().to_vec();
        data.extend_from_slice(&access_unit(index, frame.len));
        let sent = Instant::now();
        lock(&frames)[i].sent = Some(sent);
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            let deadline = tokio::time::Instant::from_std(sent + STALE);
            let Ok(Ok(mut stream)) = timeout_at(deadline, conn.open_uni()).await else {
                return;
            };
            // Newer groups first (a keyframe starts a group, as in moq); within a group frames go
            // in order (fairness off), so a P-frame never overtakes the keyframe it depends on.
            let _ = stream.set_priority(group as i32);
            let delivered = timeout_at(deadline, async {
                stream.write_all(&data).await.ok()?;
                stream.finish().ok()?;
                // Completes once the viewer acknowledged every byte.
                stream.stopped().await.ok()
            })
            .await;
            if delivered.is_err() {
                let _ = stream.reset(RESET_STALE.into());
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    Ok(())
}

/// A frame's stream being read.
struct Incoming {
    stream: quinn::RecvStream,
    data: Vec<u8>,
}

/// Reads from every open stream, oldest first; returns the position of the first that ended and
/// whether it was finished (rather than reset or broken).
fn poll_streams(open: &mut [Incoming], cx: &mut Context<'_>) -> Poll<(usize, bool)> {
    let mut buf = [0u8; 16 * 1024];
    for (i, incoming) in open.iter_mut().enumerate() {
        loop {
            match incoming.stream.poll_read(cx, &mut buf) {
                Poll::Ready(Ok(0)) => return Poll::Ready((i, true)),
                Poll::Ready(Ok(n)) if incoming.data.len() + n <= KEYFRAME_BYTES * 2 => {
                    incoming.data.extend_from_slice(&buf[..n]);
                }
                Poll::Ready(_) => return Poll::Ready((i, false)),
                Poll::Pending => break,
            }
        }
    }
    Poll::Pending
}

/// Viewer: reads each stream to its end, in one task so that frames complete in the order their
/// last bytes arrived; a frame that completes after a newer one is dropped.
async fn receive_streams(conn: quinn::Connection, frames: Frames) {
    let mut open: Vec<Incoming> = Vec::new();
    let mut newest: Option<u32> = None;
    loop {
        tokio::select! {
            biased;
            (i, finished) = std::future::poll_fn(|cx| poll_streams(&mut open, cx)) => {
                let now = Instant::now();
                let Incoming { data, .. } = open.remove(i);
                // A reset (stale frame) or a closed connection ends the read unfinished.
                let Some((header, au)) = data.split_first_chunk::<4>().filter(|_| finished) else {
                    continue;
                };
                let index = u32::from_be_bytes(*header);
                if newest.is_some_and(|n| n > index) {
                    if let Some(frame) = lock(&frames).get_mut(index as usize) {
                        frame.too_late = Some(now);
                    }
                    continue;
                }
                newest = Some(index);
                assert!(complete(&frames, index, au, now), "frame {index} corrupt");
            }
            accepted = conn.accept_uni() => match accepted {
                Ok(stream) => open.push(Incoming { stream, data: Vec::new() }),
                Err(_) => return,
            },
        }
    }
}

/// Kernel UDP drops so far (receive + send buffer overflows), from `/proc/net/snmp`.
fn kernel_udp_drops() -> u64 {
    let Ok(snmp) = std::fs::read_to_string("/proc/net/snmp") else {
        return 0;
    };
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .filter(|(n, _)| *n == "RcvbufErrors" || *n == "SndbufErrors")
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum()
}

struct Row {
    cc: Cc,
    transport: Transport,
    loss: f64,
    frames: Vec<Frame>,
    relay_lost: u64,
    relay_packets: u64,
    kernel_drops: u64,
    /// The host's quinn path state at the end: congestion window, congestion events, packets
    /// quinn declared lost.
    path: quinn::PathStats,
}

/// One cell: congestion controller, transport, loss, traffic duration, time to drain after.
type Cell = (Cc, Transport, f64, Duration, Duration);

async fn run(pki: &Pki, relay_rt: &tokio::runtime::Handle, cell: Cell) -> BenchResult<Row> {
    let (cc, transport, loss, duration, drain) = cell;
    let spec = WanSpec {
        rtt: RTT,
        loss,
        ..WanSpec::default()
    };
    let kernel_before = kernel_udp_drops();
    let link = connect(pki, relay_rt, spec, cc).await?;
    let frames: Frames = Arc::new(Mutex::new(plan(duration)));
    let epoch = Instant::now();
    let receiver = match transport {
        Transport::Datagrams { .. } => tokio::spawn(receive_datagrams(
            link.viewer.clone(),
            frames.clone(),
            epoch,
        )),
        Transport::Streams => tokio::spawn(receive_streams(link.viewer.clone(), frames.clone())),
    };
    match transport {
        Transport::Datagrams { fec_ratio } => {
            let fec = FecConfig {
                ratio: fec_ratio,
                ..FecConfig::default()
            };
            send_datagrams(link.host.clone(), frames.clone(), fec, epoch).await?
        }
        Transport::Streams => send_streams(link.host.clone(), frames.clone()).await?,
    }
    tokio::time::sleep(drain).await;
    let path = link.host.stats().path;
    link.viewer.close(0u32.into(), b"done");
    link.host.close(0u32.into(), b"done");
    receiver.await?;
    let stats = link.relay.stats().to_peer;
    let frames = lock(&frames).clone();
    Ok(Row {
        cc,
        transport,
        loss,
        frames,
        relay_lost: stats.dropped_loss,
        relay_packets: stats.dropped_loss + stats.forwarded,
        kernel_drops: kernel_udp_drops().saturating_sub(kernel_before),
        path,
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Row {
    fn delivered(&self) -> f64 {
        let n = self.frames.iter().filter(|f| f.done.is_some()).count();
        n as f64 / self.frames.len().max(1) as f64
    }

    fn print(&self) {
        let mut ms: Vec<f64> = self
            .frames
            .iter()
            .filter_map(|f| Some((f.done? - f.sent?).as_secs_f64() * 1e3))
            .collect();
        ms.sort_by(f64::total_cmp);
        let late = ms
            .iter()
            .filter(|&&m| m > STALE.as_secs_f64() * 1e3)
            .count();
        let keys: Vec<String> = self
            .frames
            .iter()
            .filter(|f| f.keyframe)
            .map(|f| match (f.sent, f.done) {
                (Some(s), Some(d)) => format!("{:.0}", (d - s).as_secs_f64() * 1e3),
                _ => "lost".into(),
            })
            .collect();
        let mut too_late: Vec<f64> = self
            .frames
            .iter()
            .filter_map(|f| Some((f.too_late? - f.sent?).as_secs_f64() * 1e3))
            .collect();
        too_late.sort_by(f64::total_cmp);
        let too_late = match self.transport {
            Transport::Streams if too_late.is_empty() => "0".to_string(),
            Transport::Streams => {
                format!("{} ({:.0})", too_late.len(), percentile(&too_late, 50.0))
            }
            Transport::Datagrams { .. } => "–".into(),
        };
        let cells = [
            self.cc.name().to_string(),
            self.transport.name(),
            format!("{:.0}%", self.loss * 100.0),
            self.frames.len().to_string(),
            format!("{:.1}%", self.delivered() * 100.0),
            format!("{:.1}", percentile(&ms, 50.0)),
            format!("{:.1}", percentile(&ms, 95.0)),
            format!("{:.1}", percentile(&ms, 99.0)),
            format!("{:.1}", ms.last().copied().unwrap_or(f64::NAN)),
            late.to_string(),
            keys.join(" / "),
            too_late,
            format!(
                "{:.2}%",
                self.relay_lost as f64 * 100.0 / self.relay_packets.max(1) as f64
            ),
            self.kernel_drops.to_string(),
            format!("{:.1}", self.path.cwnd as f64 / 1000.0),
            self.path.congestion_events.to_string(),
        ];
        println!("| {} |", cells.join(" | "));
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?");
    format!("{cpu}, {cores} cores, Linux {}, load {load}", kernel.trim())
}

fn main() -> BenchResult<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let (duration, drain, losses, ccs): (_, _, &[f64], &[Cc]) = if full {
        let (ten, one) = (Duration::from_secs(10), Duration::from_secs(1));
        (
            ten,
            one,
            &[0.0, 0.01, 0.05],
            &[Cc::Cubic, Cc::Bbr, Cc::Fixed],
        )
    } else {
        // Fixed window: the smoke check must not depend on how Cubic's first second went.
        (
            Duration::from_secs(1),
            Duration::from_millis(300),
            &[0.01],
            &[Cc::Fixed],
        )
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let relay_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("wan-relay")
        .enable_all()
        .build()?;
    let pki = Pki {
        host: Identity::generate(Role::Host, "bench-host")?,
        viewer: Identity::generate(Role::Viewer, "bench-viewer")?,
    };
    let transports = [
        Transport::Datagrams { fec_ratio: 0.10 },
        Transport::Datagrams { fec_ratio: 0.0 },
        Transport::Streams,
    ];
    println!(
        "transport_loss: {} s per cell at 60 fps, RTT {} ms, keyframe {} KB every {} s, \
         P-frames {}–{} KB; {}",
        duration.as_secs_f64(),
        RTT.as_millis(),
        KEYFRAME_BYTES / 1000,
        KEYFRAME_EVERY.as_secs(),
        P_FRAME_BYTES.start() / 1000,
        P_FRAME_BYTES.end() / 1000,
        machine()
    );
    println!(
        "| cc | transport | loss | frames | delivered | p50 ms | p95 ms | p99 ms | max ms | \
         > 100 ms | keyframes ms | out of order (p50 ms) | relay loss | kernel drops | cwnd KB at end | congestion events |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &cc in ccs {
        for &loss in losses {
            for transport in transports {
                let (relay, cfg) = (relay_rt.handle(), (cc, transport, loss, duration, drain));
                let row = rt.block_on(run(&pki, relay, cfg))?;
                row.print();
                if !full {
                    // Smoke check: the plumbing works end to end.
                    let name = transport.name();
                    assert!(row.delivered() > 0.5, "{name} delivered too little");
                }
            }
        }
    }
    Ok(())
}
