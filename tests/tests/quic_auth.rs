//! Authentication and refusal over real QUIC on 127.0.0.1.
//!
//! An authorized viewer stays connected through every bad attempt, and keeps getting answers.

use std::sync::Arc;
use std::time::Duration;

use sightline_certs::danger::AcceptAnyHost;
use sightline_certs::{session_provider, Identity, PinOutcome, Role, TrustPolicy};
use sightline_host::net::NetEvent;
use sightline_protocol::msg::Capabilities;
use sightline_protocol::session::{ViewerConfig, ViewerEvent};
use sightline_protocol::transport::ConnectStage;
use sightline_protocol::{CloseReason, ALPN};
use sightline_tests::{Pki, TestHost};
use sightline_viewer::net::{connect, connect_with, ConnectError, Media, ViewerConnection};

const TIMEOUT: Duration = Duration::from_secs(5);

async fn wait_clock(conn: &mut ViewerConnection, n: usize) {
    let mut seen = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen < n {
        match tokio::time::timeout_at(deadline, conn.next_event()).await {
            Ok(Some(ViewerEvent::Clock(c))) => {
                assert!(
                    c.min_rtt_us < 1_000_000,
                    "loopback RTT should be tiny: {c:?}"
                );
                seen += 1;
            }
            Ok(Some(ViewerEvent::Closed(r))) => panic!("session closed: {r}"),
            Ok(Some(_)) => {}
            Ok(None) => panic!("session ended"),
            Err(_) => panic!("no clock answer within 10 s"),
        }
    }
}

fn raw_tls(
    provider: rustls::crypto::CryptoProvider,
    identity: Option<&Identity>,
    alpn: &[u8],
) -> rustls::ClientConfig {
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyHost));
    let mut cfg = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.cert_chain(), id.key_der())
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![alpn.to_vec()];
    cfg
}

async fn expect_refused(host: &mut TestHost, stage: ConnectStage) -> (String, Option<String>) {
    match host
        .wait_for(|e| matches!(e, NetEvent::Refused { .. }))
        .await
    {
        NetEvent::Refused {
            stage: s,
            reason,
            fingerprint,
            ..
        } => {
            assert_eq!(s, stage, "host refused at the wrong stage: {reason}");
            (reason, fingerprint.map(|f| f.to_string()))
        }
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorized_viewer_connects_and_bad_ones_are_refused_meanwhile() {
    let pki = Pki::new();
    let mut host = TestHost::start(&pki, Capabilities::default());
    let known = pki.known_hosts("known_hosts", host.addr, &pki.host);

    // 1. The authorized viewer completes the session and gets clock answers.
    let mut good = connect(pki.connect_options(
        host.addr,
        &pki.viewer,
        known.clone(),
        TrustPolicy::PinnedOnly,
    ))
    .await
    .expect("authorized viewer connects");
    assert_eq!(good.welcome.host_name, "test-host");
    assert_eq!(good.welcome.version, sightline_protocol::PROTOCOL_VERSION);
    match host
        .wait_for(|e| matches!(e, NetEvent::SessionStarted { .. }))
        .await
    {
        NetEvent::SessionStarted {
            authorized_as,
            fingerprint,
            viewer_name,
            ..
        } => {
            assert_eq!(authorized_as, "alice");
            assert_eq!(viewer_name, "test-viewer");
            assert_eq!(fingerprint, pki.viewer.fingerprint());
        }
        _ => unreachable!(),
    }
    wait_clock(&mut good, 3).await;

    // 2. Unknown certificate: refused at TLS on both sides, with the fingerprint.
    let err = connect(pki.connect_options(
        host.addr,
        &pki.stranger,
        known.clone(),
        TrustPolicy::PinnedOnly,
    ))
    .await
    .expect_err("stranger must be refused");
    assert_eq!(err.stage(), ConnectStage::Tls, "{err}");
    let msg = err.to_string();
    assert!(matches!(err, ConnectError::NotAuthorized { .. }), "{msg}");
    assert!(
        msg.contains(&pki.stranger.fingerprint().to_string()),
        "{msg}"
    );
    let (reason, fp) = expect_refused(&mut host, ConnectStage::Tls).await;
    assert_eq!(fp, Some(pki.stranger.fingerprint().to_string()));
    assert!(reason.contains("not authorized"), "{reason}");

    // 3. No certificate at all.
    let err = connect_with(
        host.addr,
        "localhost",
        raw_tls((*session_provider()).clone(), None, ALPN),
        ViewerConfig::default(),
        TIMEOUT,
        Media::default(),
    )
    .await
    .expect_err("viewer without certificate must be refused");
    assert_eq!(err.stage(), ConnectStage::Tls, "{err}");
    let (reason, _) = expect_refused(&mut host, ConnectStage::Tls).await;
    assert!(
        reason.to_lowercase().contains("certificate"),
        "host should say a certificate was missing: {reason}"
    );

    // 4. Wrong ALPN (another protocol generation).
    let err = connect_with(
        host.addr,
        "localhost",
        raw_tls(
            (*session_provider()).clone(),
            Some(&pki.viewer),
            b"sightline/0",
        ),
        ViewerConfig::default(),
        TIMEOUT,
        Media::default(),
    )
    .await
    .expect_err("wrong ALPN must be refused");
    let msg = err.to_string();
    assert_eq!(err.stage(), ConnectStage::Tls, "{msg}");
    assert!(msg.contains("no_application_protocol"), "{msg}");
    let (reason, _) = expect_refused(&mut host, ConnectStage::Tls).await;
    assert!(reason.contains("protocol"), "{reason}");

    // 5. A viewer that offers only AES-128-GCM.
    let aes128_only = rustls::crypto::CryptoProvider {
        cipher_suites: vec![rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256],
        ..rustls::crypto::ring::default_provider()
    };
    let err = connect_with(
        host.addr,
        "localhost",
        raw_tls(aes128_only, Some(&pki.viewer), ALPN),
        ViewerConfig::default(),
        TIMEOUT,
        Media::default(),
    )
    .await
    .expect_err("AES-128-only viewer must be refused");
    let msg = err.to_string();
    assert_eq!(err.stage(), ConnectStage::Tls, "{msg}");
    assert!(msg.contains("AES_256"), "{msg}");
    let (reason, _) = expect_refused(&mut host, ConnectStage::Tls).await;
    assert!(
        reason.contains("handshake_failure") || reason.contains("cipher"),
        "{reason}"
    );

    // 6. Protocol revision mismatch: refused at hello, both ranges named.
    let mut opts = pki.connect_options(
        host.addr,
        &pki.viewer,
        known.clone(),
        TrustPolicy::PinnedOnly,
    );
    opts.session.min_version = 7;
    opts.session.max_version = 9;
    let err = connect(opts).await.expect_err("version mismatch");
    assert_eq!(err.stage(), ConnectStage::Hello, "{err}");
    match &err {
        ConnectError::Hello(CloseReason::VersionMismatch {
            viewer_min,
            viewer_max,
            host_min,
            host_max,
        }) => {
            assert_eq!((*viewer_min, *viewer_max), (7, 9));
            assert_eq!(
                (*host_min, *host_max),
                (
                    sightline_protocol::session::MIN_PROTOCOL_VERSION,
                    sightline_protocol::PROTOCOL_VERSION
                )
            );
        }
        other => panic!("expected a version mismatch, got {other}"),
    }
    let (reason, _) = expect_refused(&mut host, ConnectStage::Hello).await;
    assert!(
        reason.contains("7..=9")
            && reason.contains(&format!(
                "{}..={}",
                sightline_protocol::session::MIN_PROTOCOL_VERSION,
                sightline_protocol::PROTOCOL_VERSION
            )),
        "{reason}"
    );

    // The authorized viewer was served all along and still is.
    wait_clock(&mut good, 2).await;
    let reason = good.close("test done").await;
    assert!(matches!(reason, CloseReason::Local { .. }), "{reason}");
    match host
        .wait_for(|e| matches!(e, NetEvent::SessionEnded { .. }))
        .await
    {
        NetEvent::SessionEnded { reason, .. } => assert!(reason.contains("test done"), "{reason}"),
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_refuses_a_host_whose_key_does_not_match_the_pin() {
    let pki = Pki::new();
    let mut host = TestHost::start(&pki, Capabilities::default());
    let impostor = Identity::generate(Role::Host, "impostor").unwrap();
    // The viewer has pinned a different key for this address.
    let known = pki.known_hosts("known_hosts", host.addr, &impostor);
    let err = connect(pki.connect_options(
        host.addr,
        &pki.viewer,
        known,
        TrustPolicy::TrustOnFirstUse, // never overrides an existing pin
    ))
    .await
    .expect_err("pin mismatch must be refused");
    assert_eq!(err.stage(), ConnectStage::Tls, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&impostor.fingerprint().to_string()),
        "pinned missing: {msg}"
    );
    assert!(
        msg.contains(&pki.host.fingerprint().to_string()),
        "presented missing: {msg}"
    );
    match &err {
        ConnectError::HostKey(rejected) => assert!(matches!(
            rejected.outcome,
            PinOutcome::Mismatch { pinned, presented, .. }
                if pinned == impostor.fingerprint() && presented == pki.host.fingerprint()
        )),
        other => panic!("expected HostKey, got {other}"),
    }
    let (reason, _) = expect_refused(&mut host, ConnectStage::Tls).await;
    assert!(reason.contains("viewer aborted"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_needs_a_pin_or_trust_on_first_use() {
    let pki = Pki::new();
    let host = TestHost::start(&pki, Capabilities::default());
    let known = pki.dir.path().join("empty_known_hosts");

    let err = connect(pki.connect_options(
        host.addr,
        &pki.viewer,
        known.clone(),
        TrustPolicy::PinnedOnly,
    ))
    .await
    .expect_err("unknown host must be refused without TOFU");
    assert!(
        matches!(&err, ConnectError::HostKey(r) if matches!(r.outcome, PinOutcome::Unknown { .. })),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&pki.host.fingerprint().to_string()),
        "{err}"
    );

    let conn = connect(pki.connect_options(
        host.addr,
        &pki.viewer,
        known.clone(),
        TrustPolicy::TrustOnFirstUse,
    ))
    .await
    .expect("TOFU connects");
    conn.close("bye").await;
    let pinned = std::fs::read_to_string(&known).expect("TOFU wrote the known hosts");
    assert!(
        pinned.contains(&pki.host.fingerprint().to_string()),
        "{pinned}"
    );

    // Now pinned: a strict viewer connects.
    let conn = connect(pki.connect_options(host.addr, &pki.viewer, known, TrustPolicy::PinnedOnly))
        .await
        .expect("pinned host connects");
    conn.close("bye").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorizing_and_revoking_take_effect_on_the_next_connection() {
    let pki = Pki::new();
    let mut host = TestHost::start(&pki, Capabilities::default());
    let known = pki.known_hosts("known_hosts", host.addr, &pki.host);
    let addr = host.addr;
    let opts = || pki.connect_options(addr, &pki.stranger, known.clone(), TrustPolicy::PinnedOnly);
    assert!(connect(opts()).await.is_err());
    expect_refused(&mut host, ConnectStage::Tls).await;

    let mut list = sightline_certs::AuthorizedViewers::load(&pki.authorized).unwrap();
    list.authorize(pki.stranger.fingerprint(), "mallory");
    list.save(&pki.authorized).unwrap();
    let conn = connect(opts()).await.expect("authorized without a restart");
    conn.close("bye").await;

    let mut list = sightline_certs::AuthorizedViewers::load(&pki.authorized).unwrap();
    assert!(list.revoke(&pki.stranger.fingerprint()));
    list.save(&pki.authorized).unwrap();
    let err = connect(opts())
        .await
        .expect_err("revoked viewer is refused");
    assert!(matches!(err, ConnectError::NotAuthorized { .. }), "{err}");
}
