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
