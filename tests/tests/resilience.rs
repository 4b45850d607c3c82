//! Resilience over real QUIC through the built-in WAN relay: a blackout the viewer survives by
//! reconnecting (pictures and input flow again, held input was released meanwhile), a session
//! that ends when reconnecting is off, a rate limit the encoder follows, and the resume
//! extension that only the same viewer can use to replace its dead session.
//!
//! No timing targets here (those are in `cargo bench -p sightline-benches --bench
//! resilience`): deadlines only bound how long a test waits for something to happen.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_certs::TrustPolicy;
use sightline_host::capture::synthetic::{Scene, SyntheticSource};
use sightline_host::net::NetEvent;
use sightline_protocol::msg::{InputEvent, KeyEvent, Modifiers};
use sightline_protocol::reconnect::{resume_extension, ReconnectConfig};
use sightline_protocol::session::{InputOrigin, ReleaseCause, ViewerEvent};
use sightline_tests::{Pki, VideoHost};
use sightline_viewer::decode::FrameSink;
use sightline_viewer::frame::DecodedFrame;
use sightline_viewer::net::{connect, connect_media, ConnectOptions, Media, ViewerConnection};
use sightline_viewer::reconnect::LinkState;
use sightline_viewer::wan::{WanRelay, WanSpec};

/// Counts decoded pictures.
struct Counter(Arc<AtomicU64>);

impl FrameSink for Counter {
    fn frame(&mut self, _frame: DecodedFrame) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn key(code: u16, keysym: u32, pressed: bool) -> InputEvent {
    InputEvent::Key(KeyEvent {
        code,
        keysym,
        modifiers: Modifiers::EMPTY,
        pressed,
    })
}

/// Logs as `RUST_LOG` says (none by default).
fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A host streaming the synthetic picture, a WAN relay in front of it, and options for the
/// viewer to connect through the relay (still pinning the host).
async fn setup(
    scene: Scene,
    size: (u32, u32),
    bitrate_bps: u32,
    wan: &str,
) -> (Pki, VideoHost, WanRelay, ConnectOptions) {
    logs();
    let pki = Pki::new();
    let source = SyntheticSource::new(size.0, size.1, 30).with_scene(scene);
    let host = VideoHost::start(&pki, Box::new(source), 30, bitrate_bps, 2);
    let spec: WanSpec = wan.parse().expect("WAN spec");
    let relay = WanRelay::start(host.addr, spec).await.expect("relay");
    let known = pki.known_hosts("known_hosts", host.addr, &pki.host);
    let mut opts = pki.connect_options(host.addr, &pki.viewer, known, TrustPolicy::PinnedOnly);
    opts.via = Some(relay.addr());
    (pki, host, relay, opts)
}

/// Waits until `count` has grown by `n` (or panics after `limit`).
async fn frames_grow(count: &AtomicU64, n: u64, limit: Duration, what: &str) {
    let start = count.load(Ordering::SeqCst);
    let deadline = Instant::now() + limit;
    while count.load(Ordering::SeqCst) < start + n {
        assert!(
            Instant::now() < deadline,
            "{what}: no {n} new pictures within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Everything the host reported, so a later check can find an event an earlier wait passed.
#[derive(Default)]
struct HostLog(Vec<NetEvent>);

impl HostLog {
    /// Waits for a host event `pred` accepts (one seen before counts; panics after `limit`).
    async fn wait(
        &mut self,
        host: &mut VideoHost,
        limit: Duration,
        mut pred: impl FnMut(&NetEvent) -> bool,
    ) -> NetEvent {
        if let Some(i) = self.0.iter().position(&mut pred) {
            return self.0.remove(i);
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, host.events.recv()).await {
                Ok(Some(ev)) if pred(&ev) => return ev,
                Ok(Some(ev)) => self.0.push(ev),
                Ok(None) => panic!("host event channel closed"),
                Err(_) => panic!("no such host event within {limit:?}; seen {:#?}", self.0),
            }
        }
    }
}

/// Waits for a host event `pred` accepts, skipping others (panics after `limit`).
async fn host_event(
    host: &mut VideoHost,
    limit: Duration,
    pred: impl FnMut(&NetEvent) -> bool,
) -> NetEvent {
    HostLog::default().wait(host, limit, pred).await
}

/// Waits until the link state satisfies `pred`.
async fn link_becomes(conn: &ViewerConnection, limit: Duration, pred: impl Fn(&LinkState) -> bool) {
    let mut rx = conn.link_state();
    let deadline = tokio::time::Instant::now() + limit;
    while !pred(&rx.borrow_and_update()) {
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("link state channel closed"),
            Err(_) => panic!(
                "link state not reached within {limit:?}: {:?}",
                *rx.borrow()
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_blackout_the_viewer_reconnects_and_pictures_and_input_flow_again() {
    let (_pki, mut host, relay, mut opts) =
        setup(Scene::Desktop, (320, 240), 2_000_000, "rtt=10ms").await;
    opts.reconnect = ReconnectConfig::default();
    let frames = Arc::new(AtomicU64::new(0));
    let media = Media {
        video: Some(Box::new(Counter(frames.clone()))),
        ..Media::default()
    };
    let mut conn = connect_media(opts, media).await.expect("connect");
    let first_session = conn.welcome.session_id;
    let mut log = HostLog::default();
    frames_grow(&frames, 5, Duration::from_secs(10), "before the blackout").await;

    // Hold a key, then cut the path.
    conn.send_input(key(0x04, 0x61, true)).await.expect("input");
    log.wait(&mut host, Duration::from_secs(5), |e| {
        matches!(e, NetEvent::Input { event, origin: InputOrigin::Viewer { .. }, .. } if *event == key(0x04, 0x61, true))
    })
    .await;
    relay.set_blackhole(true);
    let cut = Instant::now();
    // The host lets go of the key after its 1 s of silence.
    log.wait(&mut host, Duration::from_secs(5), |e| {
        matches!(e, NetEvent::Input { event, origin: InputOrigin::Release(ReleaseCause::ViewerSilent), .. } if *event == key(0x04, 0x61, false))
    })
    .await;
    // The viewer notices and starts reconnecting, keeping the session for the application.
    link_becomes(&conn, Duration::from_secs(5), |s| {
        matches!(s, LinkState::Reconnecting { .. })
    })
    .await;
    assert!(
        conn.send_input(key(0x05, 0x62, true)).await.is_err(),
        "input while the link is down is refused, not queued"
    );
    let blackout = Duration::from_secs(3);
    tokio::time::sleep(blackout.saturating_sub(cut.elapsed())).await;
    relay.set_blackhole(false);
    let restored = Instant::now();

    // Pictures come back.
    frames_grow(&frames, 5, Duration::from_secs(10), "after the blackout").await;
    link_becomes(&conn, Duration::from_secs(10), |s| {
        matches!(s, LinkState::Up { .. })
    })
    .await;
    // And input reaches the host again.
    conn.send_input(key(0x06, 0x63, true))
        .await
        .expect("input after the link is back");
    conn.send_input(key(0x06, 0x63, false))
        .await
        .expect("input after the link is back");
    log.wait(&mut host, Duration::from_secs(5), |e| {
        matches!(e, NetEvent::Input { event, origin: InputOrigin::Viewer { .. }, .. } if *event == key(0x06, 0x63, false))
    })
    .await;
    let reconnected =
        matches!(*conn.link_state().borrow(), LinkState::Up { reconnects, .. } if reconnects > 0);
    println!(
        "pictures and input back {:.0} ms after the path returned ({})",
        restored.elapsed().as_secs_f64() * 1e3,
        if reconnected {
            "new connection"
        } else {
            "same connection"
        }
    );
    if reconnected {
        // The host ended the dead session at once, not after its idle timeout.
        let ended = log.wait(&mut host, Duration::from_secs(5), |e| {
            matches!(e, NetEvent::SessionEnded { session_id, .. } if *session_id == first_session)
        })
        .await;
        if let NetEvent::SessionEnded { reason, .. } = ended {
            assert!(reason.contains("replaced"), "{reason}");
        }
        // The application was told of the new session and never saw it end.
        let mut saw_connected = false;
        while let Ok(Some(ev)) =
            tokio::time::timeout(Duration::from_millis(50), conn.next_event()).await
        {
            assert!(!matches!(ev, ViewerEvent::Closed(_)), "{ev:?}");
            saw_connected |= matches!(ev, ViewerEvent::Connected(_));
        }
        assert!(saw_connected);
    }
    assert!(relay.stats().to_target.dropped_blackhole > 0);
    conn.close("test done").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reconnect_a_dead_path_ends_the_session() {
    let (_pki, _host, relay, mut opts) =
        setup(Scene::Desktop, (320, 240), 2_000_000, "rtt=10ms").await;
    opts.reconnect = ReconnectConfig {
        enabled: false,
        ..ReconnectConfig::default()
    };
    opts.session.idle_timeout = Duration::from_secs(2);
    let mut conn = connect(opts).await.expect("connect");
    relay.set_blackhole(true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let reason = loop {
        match tokio::time::timeout_at(deadline, conn.next_event()).await {
            Ok(Some(ViewerEvent::Closed(r))) => break r,
            Ok(Some(_)) => {}
            Ok(None) => panic!("events ended without a close"),
            Err(_) => panic!("the session did not end"),
        }
    };
    println!("ended: {reason}");
    link_becomes(&conn, Duration::from_secs(5), |s| *s == LinkState::Ended).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_rate_limit_the_encoder_bitrate_drops_below_it_and_pictures_keep_coming() {
    // The busy scene wants far more than 3 Mbit/s at 640x360 with an 8 Mbit/s target.
    let (_pki, host, relay, opts) =
        setup(Scene::Busy, (640, 360), 8_000_000, "rtt=20ms,rate=3mbit").await;
    let frames = Arc::new(AtomicU64::new(0));
    let media = Media {
        video: Some(Box::new(Counter(frames.clone()))),
        ..Media::default()
    };
    let conn = connect_media(opts, media).await.expect("connect");
    frames_grow(&frames, 3, Duration::from_secs(10), "at start").await;
    let limit = 3_000_000;
    let deadline = Instant::now() + Duration::from_secs(20);
    while host.feed.encoder_bitrate_bps() >= limit {
        assert!(
            Instant::now() < deadline,
            "encoder still at {} bit/s",
            host.feed.encoder_bitrate_bps()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "encoder bitrate now {} bit/s",
        host.feed.encoder_bitrate_bps()
    );
    // The stream keeps flowing at the lower rate.
    frames_grow(&frames, 10, Duration::from_secs(10), "under the limit").await;
    assert!(host.feed.encoder_bitrate_bps() < limit);
    assert!(relay.stats().to_peer.forwarded > 0);
    conn.close("test done").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_same_viewer_can_replace_its_session() {
    let pki = Pki::new();
    let mut host = VideoHost::start(
        &pki,
        Box::new(SyntheticSource::new(160, 120, 10)),
        10,
        500_000,
        1,
    );
    // A second authorized viewer.
    let mut list = sightline_certs::AuthorizedViewers::load_or_empty(&pki.authorized).unwrap();
    list.authorize(pki.stranger.fingerprint(), "bob");
    list.save(&pki.authorized).unwrap();
    let known = pki.known_hosts("known_hosts", host.addr, &pki.host);
    let alice = connect(pki.connect_options(
        host.addr,
        &pki.viewer,
        known.clone(),
        TrustPolicy::PinnedOnly,
    ))
    .await
    .expect("alice");
    let old = alice.welcome.session_id;

    // Bob names Alice's session: refused, Alice's session lives on.
    let mut bob_opts = pki.connect_options(
        host.addr,
        &pki.stranger,
        known.clone(),
        TrustPolicy::PinnedOnly,
    );
    bob_opts.session.hello_extensions = vec![resume_extension(old)];
    let bob = connect(bob_opts).await.expect("bob");
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(ev) = host.events.try_recv() {
        assert!(
            !matches!(ev, NetEvent::SessionEnded { session_id, .. } if session_id == old),
            "another viewer ended Alice's session"
        );
    }

    // Alice again (a reconnect): her old session ends at once.
    let mut again = pki.connect_options(host.addr, &pki.viewer, known, TrustPolicy::PinnedOnly);
    again.session.hello_extensions = vec![resume_extension(old)];
    let alice2 = connect(again).await.expect("alice again");
    let ended = host_event(
        &mut host,
        Duration::from_secs(5),
        |e| matches!(e, NetEvent::SessionEnded { session_id, .. } if *session_id == old),
    )
    .await;
    if let NetEvent::SessionEnded { reason, .. } = ended {
        assert!(reason.contains("replaced"), "{reason}");
    }
    alice.abort();
    bob.close("done").await;
    alice2.close("done").await;
}
