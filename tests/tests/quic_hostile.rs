//! Bad input over real QUIC: garbage, oversized frames, and viewers that vanish with input held.
//! Each bad session closes alone; the host keeps serving the authorized viewer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::crypto::rustls::QuicClientConfig;
use sightline_certs::danger::AcceptAnyHost;
use sightline_certs::{quic_initial_suite, viewer_tls_config, TrustPolicy};
use sightline_host::net::NetEvent;
use sightline_protocol::coding::encode_frame;
use sightline_protocol::msg::{
    Capabilities, Control, Hello, InputEvent, InputKinds, KeyEvent, Message, Modifiers, MouseButton,
};
use sightline_protocol::session::{InputOrigin, ReleaseCause, ViewerEvent};
use sightline_protocol::transport::ConnectStage;
use sightline_protocol::ALPN;
use sightline_tests::relay::Relay;
use sightline_tests::{Pki, TestHost};
use sightline_viewer::net::connect;

/// A raw QUIC connection with the authorized viewer's certificate, for sending arbitrary bytes.
async fn raw_connection(pki: &Pki, addr: std::net::SocketAddr) -> quinn::Connection {
    let tls = viewer_tls_config(&pki.viewer, Arc::new(AcceptAnyHost), &[ALPN]).unwrap();
    let quic = QuicClientConfig::with_initial(Arc::new(tls), quic_initial_suite()).unwrap();
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    ep.connect(addr, "localhost").unwrap().await.unwrap()
}

fn hello_frame() -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(
        &Message::Control(Control::Hello(Hello {
            min_version: 1,
            max_version: 1,
            name: "raw".into(),
            capabilities: Capabilities::default(),
            extensions: vec![],
        })),
        &mut out,
    );
    out
}

async fn expect_violation(host: &mut TestHost, needle: &str) {
    let ev = host
        .wait_for(|e| matches!(e, NetEvent::SessionEnded { .. } | NetEvent::Refused { .. }))
        .await;
    let reason = match ev {
        NetEvent::SessionEnded { reason, .. } => reason,
        NetEvent::Refused { reason, stage, .. } => {
            assert_eq!(stage, ConnectStage::Hello);
            reason
        }
        _ => unreachable!(),
    };
    println!("host closed the bad session: {reason}");
    assert!(reason.contains("protocol violation"), "{reason}");
    assert!(reason.contains(needle), "expected {needle:?} in {reason:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_messages_close_only_their_own_session() {
    let pki = Pki::new();
    let mut host = TestHost::start(&pki, Capabilities::default());
    let known = pki.known_hosts("known_hosts", host.addr, &pki.host);
    let mut good =
        connect(pki.connect_options(host.addr, &pki.viewer, known, TrustPolicy::PinnedOnly))
            .await
            .unwrap();
    host.wait_for(|e| matches!(e, NetEvent::SessionStarted { .. }))
        .await;

    // Garbage instead of hello.
    let conn = raw_connection(&pki, host.addr).await;
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(&[5, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0x01])
        .await
        .unwrap();
    expect_violation(&mut host, "unknown message tag 222").await;

    // A frame announcing 512 MiB: refused from the header alone.
    let conn2 = raw_connection(&pki, host.addr).await;
    let (mut send, _recv) = conn2.open_bi().await.unwrap();
    send.write_all(&hello_frame()).await.unwrap();
    host.wait_for(|e| matches!(e, NetEvent::SessionStarted { .. }))
        .await;
    send.write_all(&(512u32 << 20).to_le_bytes()).await.unwrap();
    send.write_all(&[0u8; 100]).await.unwrap();
    expect_violation(&mut host, "exceeds the limit").await;

    // Garbage on the input stream after a valid hello.
    let conn3 = raw_connection(&pki, host.addr).await;
    let (mut send, _recv) = conn3.open_bi().await.unwrap();
    send.write_all(&hello_frame()).await.unwrap();
    host.wait_for(|e| matches!(e, NetEvent::SessionStarted { .. }))
        .await;
    let mut uni = conn3.open_uni().await.unwrap();
    uni.write_all(&[9, 0, 0, 0, 4, 1, 2, 3, 4, 5, 6, 7, 8])
        .await
        .unwrap();
    expect_violation(&mut host, "Input").await;

    // A datagram of noise.
    let conn4 = raw_connection(&pki, host.addr).await;
    let (mut send, _recv) = conn4.open_bi().await.unwrap();
    send.write_all(&hello_frame()).await.unwrap();
    host.wait_for(|e| matches!(e, NetEvent::SessionStarted { .. }))
        .await;
    conn4.send_datagram(vec![0xff; 40].into()).unwrap();
    expect_violation(&mut host, "datagram").await;

    // The authorized viewer never noticed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut clocks = 0;
    while clocks < 3 {
        match tokio::time::timeout_at(deadline, good.next_event())
            .await
            .unwrap()
        {
            Some(ViewerEvent::Clock(_)) => clocks += 1,
            Some(ViewerEvent::Closed(r)) => panic!("good session closed: {r}"),
            _ => {}
        }
    }
    good.close("done").await;
}

fn key(code: u16, keysym: u32, pressed: bool) -> InputEvent {
    InputEvent::Key(KeyEvent {
        code,
        keysym,
        modifiers: Modifiers::EMPTY,
        pressed,
    })
}

async fn collect_releases(host: &mut TestHost, n: usize) -> Vec<(InputEvent, ReleaseCause)> {
    let mut out = Vec::new();
    while out.len() < n {
        if let NetEvent::Input {
            event,
            origin: InputOrigin::Release(cause),
            ..
        } = host.wait_for(|e| matches!(e, NetEvent::Input { .. })).await
        {
            out.push((event, cause));
        }
    }
    out
}

async fn press_keys_and_button(
    conn: &sightline_viewer::net::ViewerConnection,
    host: &mut TestHost,
) {
    conn.send_input(key(0xE1, 0xFFE1, true)).await.unwrap(); // left shift
    conn.send_input(key(0x04, 0x41, true)).await.unwrap(); // 'A'
    conn.send_input(InputEvent::Button {
        button: MouseButton::LEFT,
        pressed: true,
    })
    .await
    .unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        if let NetEvent::Input {
            event,
            origin: InputOrigin::Viewer { .. },
            ..
        } = host.wait_for(|e| matches!(e, NetEvent::Input { .. })).await
        {
            got.push(event);
        }
    }
    assert_eq!(got[0], key(0xE1, 0xFFE1, true));
    assert_eq!(got[1], key(0x04, 0x41, true));
}

fn check_releases(rel: &[(InputEvent, ReleaseCause)], cause: ReleaseCause) {
    assert!(rel.iter().all(|(_, c)| *c == cause), "{rel:?}");
    let events: Vec<_> = rel.iter().map(|(e, _)| *e).collect();
    assert!(events.contains(&InputEvent::Button {
        button: MouseButton::LEFT,
        pressed: false
    }));
    let a = events
        .iter()
        .position(|e| *e == key(0x04, 0x41, false))
        .expect("A released");
    let shift = events
        .iter()
        .position(|e| *e == key(0xE1, 0xFFE1, false))
        .expect("shift released");
    assert!(a < shift, "modifier released last: {events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_that_vanishes_mid_keypress_has_everything_released() {
    let pki = Pki::new();
    let caps = Capabilities {
        input_kinds: InputKinds::KEYBOARD.union(InputKinds::MOUSE),
        ..Capabilities::default()
    };
    let mut host = TestHost::start(&pki, caps);
    let known = pki.known_hosts("known_hosts", host.addr, &pki.host);

    // Case 1: the connection is torn down (process crash with a close, or network error).
    let conn = connect(pki.connect_options(
        host.addr,
        &pki.viewer,
        known.clone(),
        TrustPolicy::PinnedOnly,
    ))
    .await
    .unwrap();
    assert_eq!(conn.welcome.capabilities.input_kinds, caps.input_kinds);
    press_keys_and_button(&conn, &mut host).await;
    conn.abort();
    let rel = collect_releases(&mut host, 3).await;
    check_releases(&rel, ReleaseCause::SessionEnded);

    // Case 2: the path goes dead without any close (cable pulled, laptop lid shut): the host
    // releases after one second of silence, long before the session times out.
    let relay = Relay::start(host.addr).await.unwrap();
    let mut opts = pki.connect_options(
        relay.addr,
        &pki.viewer,
        known.clone(),
        TrustPolicy::PinnedOnly,
    );
    opts.host.host = "127.0.0.1".into();
    // Pin the relay's address to the same host key.
    let mut k = sightline_certs::KnownHosts::load_or_empty(&known).unwrap();
    k.pin(
        &sightline_tests::pin_key(relay.addr),
        pki.host.fingerprint(),
    );
    k.save(&known).unwrap();
    let conn = connect(opts).await.unwrap();
    press_keys_and_button(&conn, &mut host).await;
    relay.set_blackhole(true);
    let cut = Instant::now();
    let rel = collect_releases(&mut host, 3).await;
    let after = cut.elapsed();
    println!(
        "released {} held inputs {:.0} ms after the path went dead",
        rel.len(),
        after.as_secs_f64() * 1e3
    );
    check_releases(&rel, ReleaseCause::ViewerSilent);
    assert!(after < Duration::from_secs(3), "release took {after:?}");
    assert!(relay.dropped() > 0);
    drop(conn);
}

/// A client endpoint on `bind` presenting `identity`, trusting any host (an attacker's view).
fn attacker_endpoint(bind: &str, identity: &sightline_certs::Identity) -> quinn::Endpoint {
    let tls = viewer_tls_config(identity, Arc::new(AcceptAnyHost), &[ALPN]).unwrap();
    let quic = QuicClientConfig::with_initial(Arc::new(tls), quic_initial_suite()).unwrap();
    let mut ep = quinn::Endpoint::client(bind.parse().unwrap()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    ep
}

async fn still_served(good: &mut sightline_viewer::net::ViewerConnection, clocks: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen = 0;
    while seen < clocks {
        match tokio::time::timeout_at(deadline, good.next_event())
            .await
            .expect("the authorized viewer kept getting answers")
        {
            Some(ViewerEvent::Clock(_)) => seen += 1,
            Some(ViewerEvent::Closed(r)) => panic!("good session closed: {r}"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connection_attempts_and_udp_noise_leave_the_authorized_viewer_served() {
    let pki = Pki::new();
    let mut host = TestHost::start(&pki, Capabilities::default());
    let known = pki.known_hosts("known_hosts", host.addr, &pki.host);
    let addr = host.addr;
    let opts = || pki.connect_options(addr, &pki.viewer, known.clone(), TrustPolicy::PinnedOnly);
    let mut good = connect(opts()).await.unwrap();
    host.wait_for(|e| matches!(e, NetEvent::SessionStarted { .. }))
        .await;

    // 1,000 connection attempts as fast as they can be started, from another loopback address
    // (127.0.0.2: Linux routes all of 127/8 to lo), with a certificate nobody authorized.
    let ep = attacker_endpoint("127.0.0.2:0", &pki.stranger);
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let connecting = ep.connect(host.addr, "localhost").unwrap();
        attempts.spawn(async move {
            match tokio::time::timeout(Duration::from_secs(10), connecting).await {
                Err(_) => "timeout",
                Ok(Err(_)) => "refused",
                // TLS 1.3: the viewer side finishes before the host checked its certificate;
                // the refusal follows as a close.
                Ok(Ok(conn)) => {
                    let _ = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await;
                    "handshake then closed"
                }
            }
        });
    }
    // Meanwhile, UDP noise: random-looking packets of every size at the host's port.
    let noise = tokio::net::UdpSocket::bind("127.0.0.3:0").await.unwrap();
    let mut x: u32 = 0x9E37_79B9;
    for n in 0..1000usize {
        let len = 1 + (n * 37) % 1400;
        let pkt: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let _ = noise.send_to(&pkt, host.addr).await;
    }
    // The authorized viewer is served during the flood, and a new one gets in.
    still_served(&mut good, 3).await;
    let second = connect(opts())
        .await
        .expect("new authorized session during the flood");

    let mut outcomes = std::collections::BTreeMap::new();
    while let Some(r) = attempts.join_next().await {
        *outcomes.entry(r.unwrap()).or_insert(0) += 1;
    }
    println!("1,000 attempts from 127.0.0.2: {outcomes:?}");
    assert_eq!(outcomes.get("timeout"), None, "every attempt was answered");
    // Only the per-address burst (plus what refilled meanwhile) got to TLS at all.
    let tls = outcomes.get("handshake then closed").copied().unwrap_or(0);
    assert!(tls <= 40, "{tls} attempts reached TLS");
    assert!(outcomes.get("refused").copied().unwrap_or(0) >= 900);

    // The host reported the throttling (once per address per interval, not 1,000 times).
    let mut throttled_reports = 0;
    while let Ok(Some(ev)) =
        tokio::time::timeout(Duration::from_millis(200), host.events.recv()).await
    {
        if let NetEvent::Refused { stage, reason, .. } = ev {
            if stage == ConnectStage::Connect && reason.contains("too many connection attempts") {
                throttled_reports += 1;
            }
        }
    }
    assert!(
        (1..=3).contains(&throttled_reports),
        "{throttled_reports} throttle reports"
    );
    still_served(&mut good, 2).await;
    second.close("done").await;
    good.close("done").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_flood_over_the_rate_limit_ends_only_that_session() {
    use sightline_protocol::msg::InputMessage;
    use sightline_protocol::session::RateLimits;
    let pki = Pki::new();
    let log = pki.dir.path().join("audit.jsonl");
    let audit_log = sightline_host::audit::AuditLog::open(&log).unwrap();
    let caps = Capabilities {
        input_kinds: InputKinds::KEYBOARD.union(InputKinds::MOUSE),
        ..Capabilities::default()
    };
    let mut host = TestHost::start_with(&pki, caps, |cfg| {
        cfg.session.rate_limits = RateLimits {
            input_per_s: 500,
            input_burst: 1000,
            ..RateLimits::default()
        };
        cfg.security.audit = Some(audit_log);
    });
    let known = pki.known_hosts("known_hosts", host.addr, &pki.host);
    let mut good =
        connect(pki.connect_options(host.addr, &pki.viewer, known, TrustPolicy::PinnedOnly))
            .await
            .unwrap();
    host.wait_for(|e| matches!(e, NetEvent::SessionStarted { .. }))
        .await;

    // An authorized but hostile viewer: 20,000 pointer moves in one go.
    let conn = raw_connection(&pki, host.addr).await;
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let mut hello = Vec::new();
    encode_frame(
        &Message::Control(Control::Hello(Hello {
            min_version: 1,
            max_version: 2,
            name: "flood".into(),
            capabilities: caps,
            extensions: vec![],
        })),
        &mut hello,
    );
    send.write_all(&hello).await.unwrap();
    host.wait_for(|e| matches!(e, NetEvent::SessionStarted { .. }))
        .await;
    let mut uni = conn.open_uni().await.unwrap();
    let mut flood = Vec::new();
    for seq in 1..=20_000u64 {
        encode_frame(
            &Message::Input(InputMessage {
                seq,
                viewer_time_us: seq,
                event: InputEvent::PointerMove {
                    x: (seq % 1000) as i32,
                    y: 1,
                },
            }),
            &mut flood,
        );
    }
    let _ = uni.write_all(&flood).await;
    let ended = host
        .wait_for(|e| matches!(e, NetEvent::SessionEnded { .. }))
        .await;
    let NetEvent::SessionEnded { reason, .. } = ended else {
        unreachable!()
    };
    println!("host ended the flooding session: {reason}");
    assert!(reason.contains("rate limit"), "{reason}");
    assert!(reason.contains("500 input messages per second"), "{reason}");
    // The flooder read the goodbye on its control stream.
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        while let Ok(Some(n)) = recv.read(&mut buf).await {
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(
        String::from_utf8_lossy(&got).contains("rate limit"),
        "goodbye with the limit"
    );
    still_served(&mut good, 2).await;
    good.close("done").await;
    sightline_tests::audit::wait_for(&log, "rate-limited end", |r| {
        r["event"] == "session_end" && r["end"] == "rate_limited"
    })
    .await;
}
