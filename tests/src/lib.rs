//! Helpers for end-to-end tests: identities in a temporary directory and a host endpoint on a
//! loopback port, with its events collected.

pub mod audio_chain;
pub mod audit;
pub mod e2e_window;
pub mod lossless;
pub mod pulse;
pub mod relay;
pub mod window;
pub mod xlisten;
pub mod xvfb;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sightline_certs::{AuthorizedViewers, Identity, KnownHosts, Role, TrustPolicy};
use sightline_host::net::{HostEndpoint, NetConfig, NetEvent};
use sightline_protocol::msg::Capabilities;
use sightline_protocol::session::{HostConfig, ViewerConfig};
use sightline_protocol::video::FecConfig;
use sightline_viewer::config::HostAddr;
use sightline_viewer::net::ConnectOptions;
use tokio::sync::mpsc;

/// A host identity, two viewer identities (one authorized) and the files that tie them.
#[derive(Debug)]
pub struct Pki {
    /// Keeps the files alive.
    pub dir: tempfile::TempDir,
    /// The host.
    pub host: Identity,
    /// An authorized viewer.
    pub viewer: Identity,
    /// A viewer nobody authorized.
    pub stranger: Identity,
    /// The host's authorized-viewers file.
    pub authorized: PathBuf,
}

impl Pki {
    /// Generates everything.
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let host = Identity::generate(Role::Host, "test-host").expect("host identity");
        let viewer = Identity::generate(Role::Viewer, "alice").expect("viewer identity");
        let stranger = Identity::generate(Role::Viewer, "mallory").expect("viewer identity");
        let authorized = dir.path().join("authorized_viewers");
        let mut list = AuthorizedViewers::load_or_empty(&authorized).expect("empty list");
        list.authorize(viewer.fingerprint(), "alice");
        list.save(&authorized).expect("save authorized list");
        Pki {
            dir,
            host,
            viewer,
            stranger,
            authorized,
        }
    }

    /// A known-hosts file (new path each call) pinning `addr` to `identity`.
    pub fn known_hosts(&self, name: &str, addr: SocketAddr, identity: &Identity) -> PathBuf {
        let path = self.dir.path().join(name);
        let mut k = KnownHosts::load_or_empty(&path).expect("known hosts");
        k.pin(&pin_key(addr), identity.fingerprint());
        k.save(&path).expect("save known hosts");
        path
    }

    /// Options for `identity` connecting to `addr` with `known_hosts`.
    pub fn connect_options(
        &self,
        addr: SocketAddr,
        identity: &Identity,
        known_hosts: PathBuf,
        trust: TrustPolicy,
    ) -> ConnectOptions {
        ConnectOptions {
            host: HostAddr {
                host: addr.ip().to_string(),
                port: addr.port(),
            },
            identity: identity.clone(),
            known_hosts,
            trust,
            session: ViewerConfig {
                name: "test-viewer".into(),
                ..ViewerConfig::default()
            },
            connect_timeout: Duration::from_secs(5),
            via: None,
            reconnect: sightline_protocol::reconnect::ReconnectConfig::default(),
        }
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

/// The known-hosts key the viewer uses for `addr`.
pub fn pin_key(addr: SocketAddr) -> String {
    HostAddr {
        host: addr.ip().to_string(),
        port: addr.port(),
    }
    .pin_key()
}

/// Host settings for tests: 127.0.0.1 on an ephemeral port, `pki`'s authorized list.
fn loopback_config(
    pki: &Pki,
    capabilities: Capabilities,
    clock: sightline_protocol::time::WireClock,
    video: Option<sightline_host::pipeline::VideoFeed>,
) -> NetConfig {
    NetConfig {
        listen: "127.0.0.1:0".parse().expect("literal address"),
        host_name: "test-host".into(),
        capabilities,
        authorized_path: pki.authorized.clone(),
        max_sessions: 8,
        handshake_timeout: Duration::from_secs(5),
        session: HostConfig::default(),
        clock,
        video,
        fec: FecConfig::default(),
        adapt: sightline_host::media_send::AdaptConfig::default(),
        audio: None,
        security: sightline_host::security::SecurityOptions::default(),
    }
}

/// Binds and serves `cfg` with `pki`'s host identity on the current tokio runtime.
fn serve(
    pki: &Pki,
    cfg: NetConfig,
) -> (
    SocketAddr,
    mpsc::UnboundedReceiver<NetEvent>,
    quinn::Endpoint,
) {
    let endpoint = HostEndpoint::bind(&pki.host, cfg).expect("bind host endpoint");
    let addr = endpoint.local_addr().expect("local addr");
    let closer = endpoint.closer();
    let (tx, events) = mpsc::unbounded_channel();
    tokio::spawn(endpoint.serve(tx));
    (addr, events, closer)
}

/// The host agent's own input wiring, for tests: every input event the endpoint reports goes to
/// `injector`, and latency probes to `probes` (when given), until the endpoint's channel closes.
pub async fn route_input(
    events: &mut mpsc::UnboundedReceiver<NetEvent>,
    injector: Option<&sightline_host::inject::service::Injector>,
    probes: Option<&sightline_host::probe::ProbeTarget>,
) {
    while let Some(ev) = events.recv().await {
        if let NetEvent::Input {
            session_id,
            event,
            origin,
        } = ev
        {
            if probes.is_some_and(|p| p.handle(&event, &origin)) {
                continue;
            }
            if let Some(inj) = injector {
                inj.submit(session_id, event, origin);
            }
        }
    }
}

/// A host endpoint serving on 127.0.0.1 with an ephemeral port.
#[derive(Debug)]
pub struct TestHost {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it reported.
    pub events: mpsc::UnboundedReceiver<NetEvent>,
    closer: quinn::Endpoint,
}

impl TestHost {
    /// Starts serving with `pki`'s host identity; `capabilities` are offered to viewers.
    pub fn start(pki: &Pki, capabilities: Capabilities) -> TestHost {
        let clock = sightline_host::net::host_clock(std::time::Instant::now());
        let (addr, events, closer) = serve(pki, loopback_config(pki, capabilities, clock, None));
        TestHost {
            addr,
            events,
            closer,
        }
    }

    /// Like [`TestHost::start`], with the endpoint settings adjusted by `adjust` (security
    /// options, limits, …) before binding.
    pub fn start_with(
        pki: &Pki,
        capabilities: Capabilities,
        adjust: impl FnOnce(&mut NetConfig),
    ) -> TestHost {
        let clock = sightline_host::net::host_clock(std::time::Instant::now());
        let mut cfg = loopback_config(pki, capabilities, clock, None);
        adjust(&mut cfg);
        let (addr, events, closer) = serve(pki, cfg);
        TestHost {
            addr,
            events,
            closer,
        }
    }

    /// Starts serving `audio` (and no video) with `pki`'s host identity; `clock` must be the
    /// clock the audio pipeline stamps with.
    pub fn start_with_audio(
        pki: &Pki,
        audio: sightline_host::audio::pipeline::AudioFeed,
        clock: sightline_protocol::time::WireClock,
    ) -> TestHost {
        let caps = Capabilities {
            audio_layouts: audio.config().layout.capability(),
            ..Capabilities::default()
        };
        let mut cfg = loopback_config(pki, caps, clock, None);
        cfg.audio = Some(audio);
        let (addr, events, closer) = serve(pki, cfg);
        TestHost {
            addr,
            events,
            closer,
        }
    }

    /// Waits (up to 10 s) for an event that `pred` accepts, skipping others.
    pub async fn wait_for(&mut self, mut pred: impl FnMut(&NetEvent) -> bool) -> NetEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(ev)) if pred(&ev) => return ev,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("host event channel closed"),
                Err(_) => panic!("timed out waiting for a host event"),
            }
        }
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.closer.close(0u32.into(), b"test over");
    }
}

/// A host serving video from `source` on 127.0.0.1 (ephemeral port), with the pipeline running.
#[derive(Debug)]
pub struct VideoHost {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The pipeline (stop it at the end).
    pub feed: sightline_host::pipeline::VideoFeed,
    /// What the endpoint reported.
    pub events: mpsc::UnboundedReceiver<NetEvent>,
    closer: quinn::Endpoint,
}

impl VideoHost {
    /// Starts the pipeline over `source` (openh264, `bitrate_bps`, `fps`, `threads`) and the
    /// endpoint; call from inside a tokio runtime.
    pub fn start(
        pki: &Pki,
        source: Box<dyn sightline_host::capture::FrameSource>,
        fps: u32,
        bitrate_bps: u32,
        threads: u16,
    ) -> VideoHost {
        let clock = sightline_host::net::host_clock(std::time::Instant::now());
        Self::start_with_clock(pki, source, fps, bitrate_bps, threads, clock)
    }

    /// [`VideoHost::start`] with the host's wire clock given (tests skew it).
    pub fn start_with_clock(
        pki: &Pki,
        source: Box<dyn sightline_host::capture::FrameSource>,
        fps: u32,
        bitrate_bps: u32,
        threads: u16,
        clock: sightline_protocol::time::WireClock,
    ) -> VideoHost {
        use sightline_host::encode::{probe, EncoderSettings};
        use sightline_host::pipeline::{self, VideoSettings};
        use sightline_protocol::msg::{BitDepths, ChromaFormats, VideoCodecs};
        let settings = VideoSettings {
            encoder: EncoderSettings {
                usage: Default::default(),
                bitrate_bps,
                fps: fps as f32,
                max_slice_bytes: 1100,
                threads,
            },
            record: None,
            max_frames: 0,
            tiles: Default::default(),
        };
        let enc = settings.encoder;
        let feed = pipeline::start(
            source,
            move |_, _| probe(64, 64, enc).map(|(e, _)| e),
            settings,
            clock,
        )
        .expect("start the video pipeline");
        let caps = Capabilities {
            video_codecs: VideoCodecs::H264,
            bit_depths: BitDepths::EIGHT,
            chroma: ChromaFormats::YUV420,
            // Input is reported as NetEvent::Input; tests that inject wire it to a sink.
            input_kinds: sightline_protocol::msg::InputKinds::KEYBOARD
                .union(sightline_protocol::msg::InputKinds::MOUSE)
                .union(sightline_protocol::msg::InputKinds::PROBE),
            ..Capabilities::default()
        };
        let (addr, events, closer) =
            serve(pki, loopback_config(pki, caps, clock, Some(feed.clone())));
        VideoHost {
            addr,
            feed,
            events,
            closer,
        }
    }

    /// A host whose pipeline encodes the best of `offers` (from
    /// [`sightline_host::encode::probe_formats`]) that every viewer decodes, and offers their
    /// formats to viewers — what `host-agent` does.
    pub fn start_negotiated(
        pki: &Pki,
        source: Box<dyn sightline_host::capture::FrameSource>,
        offers: Vec<sightline_host::encode::format::Offer>,
        settings: sightline_host::pipeline::VideoSettings,
    ) -> VideoHost {
        let clock = sightline_host::net::host_clock(std::time::Instant::now());
        let (video_codecs, bit_depths, chroma) =
            sightline_host::encode::format::capabilities_of(&offers);
        let feed = sightline_host::pipeline::start_negotiated(source, offers, settings, clock)
            .expect("start the video pipeline");
        let caps = Capabilities {
            video_codecs,
            bit_depths,
            chroma,
            input_kinds: sightline_protocol::msg::InputKinds::PROBE,
            ..Capabilities::default()
        };
        let (addr, events, closer) =
            serve(pki, loopback_config(pki, caps, clock, Some(feed.clone())));
        VideoHost {
            addr,
            feed,
            events,
            closer,
        }
    }

    /// A host like [`VideoHost::start`] (openh264, 8-bit) that also sends lossless tiles
    /// with `tiles` to viewers that compose them — what `host-agent` does by default.
    pub fn start_lossless(
        pki: &Pki,
        source: Box<dyn sightline_host::capture::FrameSource>,
        fps: u32,
        bitrate_bps: u32,
        tiles: sightline_host::tiles::TileSettings,
    ) -> VideoHost {
        use sightline_host::encode::{probe, EncoderSettings};
        use sightline_host::pipeline::{self, VideoSettings};
        use sightline_protocol::msg::{BitDepths, ChromaFormats, VideoCodecs};
        let clock = sightline_host::net::host_clock(std::time::Instant::now());
        let settings = VideoSettings {
            encoder: EncoderSettings {
                usage: Default::default(),
                bitrate_bps,
                fps: fps as f32,
                max_slice_bytes: 1100,
                threads: 2,
            },
            record: None,
            max_frames: 0,
            tiles,
        };
        let enc = settings.encoder;
        let feed = pipeline::start(
            source,
            move |_, _| probe(64, 64, enc).map(|(e, _)| e),
            settings,
            clock,
        )
        .expect("start the video pipeline");
        let caps = Capabilities {
            video_codecs: VideoCodecs::H264,
            bit_depths: BitDepths::EIGHT,
            chroma: ChromaFormats::YUV420,
            input_kinds: sightline_protocol::msg::InputKinds::PROBE,
            ..Capabilities::default()
        };
        let mut cfg = loopback_config(pki, caps, clock, Some(feed.clone()));
        cfg.session.lossless_tiles = true;
        let (addr, events, closer) = serve(pki, cfg);
        VideoHost {
            addr,
            feed,
            events,
            closer,
        }
    }

    /// A handle that closes the endpoint (ending every session).
    pub fn closer(&self) -> quinn::Endpoint {
        self.closer.clone()
    }
}

impl Drop for VideoHost {
    fn drop(&mut self) {
        self.feed.stop();
        self.closer.close(0u32.into(), b"test over");
    }
}
