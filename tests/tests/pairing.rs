//! Pairing over real QUIC on 127.0.0.1: a one-time code from the host's pairing window, the
//! viewer's SPAKE2 exchange, pins both ways, limits on wrong codes, and the audit trail.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;
use sightline_certs::danger::AcceptAnyHost;
use sightline_certs::pairing::{PairingCode, PairingWindow};
use sightline_certs::{
    quic_initial_suite, viewer_tls_config, AuthorizedViewers, Identity, KnownHosts, Role,
    TrustPolicy,
};
use sightline_host::audit::AuditLog;
use sightline_host::limits::PairingLimits;
use sightline_host::net::NetEvent;
use sightline_protocol::msg::Capabilities;
use sightline_protocol::pair::PAIR_ALPN;
use sightline_protocol::session::ViewerEvent;
use sightline_protocol::transport::ConnectStage;
use sightline_tests::{audit, pin_key, Pki, TestHost};
use sightline_viewer::config::HostAddr;
use sightline_viewer::net::connect;
use sightline_viewer::pair::{pair, PairError, PairOptions, Paired};

struct Setup {
    pki: Pki,
    host: TestHost,
    pairing_file: PathBuf,
    audit_log: PathBuf,
}

fn setup(limits: PairingLimits) -> Setup {
    let pki = Pki::new();
    let pairing_file = pki.dir.path().join("pairing");
    let audit_log = pki.dir.path().join("audit.jsonl");
    let audit = AuditLog::open(&audit_log).unwrap();
    let pf = pairing_file.clone();
    let host = TestHost::start_with(&pki, Capabilities::default(), |cfg| {
        cfg.security.pairing_file = Some(pf);
        cfg.security.audit = Some(audit);
        cfg.security.pairing = limits;
    });
    Setup {
        pki,
        host,
        pairing_file,
        audit_log,
    }
}

fn options(s: &Setup, who: &Identity, known: PathBuf, code: &str) -> PairOptions {
    PairOptions {
        host: HostAddr {
            host: "127.0.0.1".into(),
            port: s.host.addr.port(),
        },
        identity: who.clone(),
        known_hosts: known,
        code: PairingCode::parse(code).unwrap(),
        viewer_name: "edit-bay-3".into(),
        timeout: Duration::from_secs(10),
        via: None,
    }
}

fn other_code(code: &PairingCode) -> String {
    let d = code.digits();
    let last = (d.as_bytes()[7] - b'0' + 1) % 10;
    format!("{}{}", &d[..7], last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_code_pins_both_ways_and_the_viewer_then_connects_normally() {
    let mut s = setup(PairingLimits::default());
    let newcomer = Identity::generate(Role::Viewer, "newcomer").unwrap();
    let known = s.pki.dir.path().join("newcomer_known_hosts");

    // No window open: the host refuses the unknown certificate during TLS, as always.
    let err = pair(options(&s, &newcomer, known.clone(), "12345678"))
        .await
        .expect_err("no window, no pairing");
    assert!(matches!(err, PairError::NoWindow(_)), "{err}");
    assert!(err.to_string().contains("host-agent pair"), "{err}");

    let window = sightline_host::pair::open_window(
        &s.pairing_file,
        Duration::from_secs(60),
        Some("newcomer's bay"),
        3,
    )
    .unwrap();
    let code = window.code.to_string();
    let paired: Paired = pair(options(&s, &newcomer, known.clone(), &code))
        .await
        .expect("right code pairs");
    println!("{paired:?}");
    assert_eq!(paired.host_fingerprint, s.pki.host.fingerprint());
    assert_eq!(paired.authorized_as, "newcomer's bay");
    assert_eq!(paired.host_name, "test-host");

    // Both pins are in place.
    let k = KnownHosts::load_or_empty(&known).unwrap();
    assert_eq!(
        k.lookup(&pin_key(s.host.addr)),
        Some(s.pki.host.fingerprint())
    );
    let list = AuthorizedViewers::load(&s.pki.authorized).unwrap();
    assert_eq!(list.lookup(&newcomer.fingerprint()), Some("newcomer's bay"));
    assert_eq!(list.lookup(&s.pki.viewer.fingerprint()), Some("alice"));
    assert!(!s.pairing_file.exists(), "the code works once");

    // A normal, strictly pinned session now works.
    let mut conn = connect(s.pki.connect_options(
        s.host.addr,
        &newcomer,
        known.clone(),
        TrustPolicy::PinnedOnly,
    ))
    .await
    .expect("paired viewer connects");
    match s
        .host
        .wait_for(|e| matches!(e, NetEvent::SessionStarted { .. }))
        .await
    {
        NetEvent::SessionStarted { authorized_as, .. } => {
            assert_eq!(authorized_as, "newcomer's bay")
        }
        _ => unreachable!(),
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, conn.next_event()).await {
            Ok(Some(ViewerEvent::Clock(_))) => break,
            Ok(Some(ViewerEvent::Closed(r))) => panic!("closed: {r}"),
            Ok(Some(_)) => {}
            other => panic!("no clock answer: {other:?}"),
        }
    }
    conn.close("done").await;

    // The same code again: the window is gone.
    let again = Identity::generate(Role::Viewer, "latecomer").unwrap();
    let err = pair(options(
        &s,
        &again,
        s.pki.dir.path().join("late_known"),
        &code,
    ))
    .await
    .expect_err("used code");
    assert!(matches!(err, PairError::NoWindow(_)), "{err}");

    // The audit trail has it all.
    let log = &s.audit_log;
    let fp = newcomer.fingerprint().to_string();
    let refused = audit::wait_for(log, "refusal before the window", |r| {
        r["event"] == "refused" && r["fingerprint"] == fp.as_str()
    })
    .await;
    assert_eq!(refused["stage"], "TLS");
    let paired = audit::wait_for(log, "pairing", |r| {
        r["event"] == "pair_attempt" && r["outcome"] == "paired"
    })
    .await;
    assert_eq!(paired["fingerprint"], fp.as_str());
    assert_eq!(paired["authorized_as"], "newcomer's bay");
    assert_eq!(paired["viewer_name"], "edit-bay-3");
    assert!(paired["remote"].as_str().unwrap().starts_with("127.0.0.1:"));
    let start = audit::wait_for(log, "session start", |r| {
        r["event"] == "session_start" && r["fingerprint"] == fp.as_str()
    })
    .await;
    assert_eq!(start["viewer"], "newcomer's bay");
    assert_eq!(start["viewer_name"], "test-viewer");
    assert_eq!(start["channels"]["clipboard"], false);
    assert!(start["channels"]["input"].is_array());
    let end = audit::wait_for(log, "session end", |r| {
        r["event"] == "session_end" && r["fingerprint"] == fp.as_str()
    })
    .await;
    assert_eq!(end["session"], start["session"]);
    assert_eq!(end["end"], "viewer_closed");
    assert!(end["bytes_in"].as_u64().unwrap() > 0, "{end}");
    assert!(end["bytes_out"].as_u64().unwrap() > 0, "{end}");
    assert!(end["reason"].as_str().unwrap().contains("done"), "{end}");
    audit::wait_for(log, "second use of the code", |r| {
        r["event"] == "refused" || (r["event"] == "pair_attempt" && r["outcome"] == "no_window")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_are_refused_rate_limited_and_burn_the_code() {
    let mut s = setup(PairingLimits {
        retry_delay: Duration::from_millis(300),
        max_retry_delay: Duration::from_millis(600),
        per_minute: 30,
        exchange_timeout: Duration::from_secs(5),
    });
    let mallory = Identity::generate(Role::Viewer, "mallory").unwrap();
    let known = s.pki.dir.path().join("mallory_known_hosts");
    let window =
        sightline_host::pair::open_window(&s.pairing_file, Duration::from_secs(60), None, 3)
            .unwrap();
    let wrong = other_code(&window.code);

    // While the window is open, an unknown viewer still cannot start a session: only the
    // pairing exchange is reachable.
    let err = connect(s.pki.connect_options(
        s.host.addr,
        &mallory,
        s.pki.known_hosts("mk", s.host.addr, &s.pki.host),
        TrustPolicy::PinnedOnly,
    ))
    .await
    .expect_err("unknown viewer, session ALPN");
    println!("session attempt during the window: {err}");
    match s
        .host
        .wait_for(|e| matches!(e, NetEvent::Refused { .. }))
        .await
    {
        NetEvent::Refused {
            stage,
            reason,
            fingerprint,
            ..
        } => {
            assert_eq!(stage, ConnectStage::Tls);
            assert_eq!(fingerprint, Some(mallory.fingerprint()));
            assert!(reason.contains("not authorized"), "{reason}");
        }
        _ => unreachable!(),
    }

    // Wrong code: refused.
    let err = pair(options(&s, &mallory, known.clone(), &wrong))
        .await
        .expect_err("wrong code");
    assert!(matches!(err, PairError::WrongCode), "{err}");
    // Straight again from the same address: rate limited, the code is not even tried.
    let err = pair(options(&s, &mallory, known.clone(), &wrong))
        .await
        .expect_err("too soon");
    let wait = match &err {
        PairError::RateLimited { retry_after, .. } => *retry_after,
        other => panic!("expected a rate limit, got {other}"),
    };
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(300),
        "{wait:?}"
    );
    assert_eq!(
        PairingWindow::load(&s.pairing_file)
            .unwrap()
            .unwrap()
            .failures,
        1
    );
    // Two more wrong codes (waiting out the back-off each time) burn it.
    for n in 2..=3 {
        tokio::time::sleep(Duration::from_millis(650)).await;
        let err = pair(options(&s, &mallory, known.clone(), &wrong))
            .await
            .expect_err("wrong code");
        assert!(matches!(err, PairError::WrongCode), "attempt {n}: {err}");
    }
    assert!(!s.pairing_file.exists(), "burned after 3 wrong codes");
    tokio::time::sleep(Duration::from_millis(650)).await;
    let err = pair(options(
        &s,
        &mallory,
        known.clone(),
        &window.code.to_string(),
    ))
    .await
    .expect_err("burned code");
    assert!(matches!(err, PairError::NoWindow(_)), "{err}");

    // Nothing was pinned or authorized.
    assert!(KnownHosts::load_or_empty(&known).unwrap().is_empty());
    let list = AuthorizedViewers::load(&s.pki.authorized).unwrap();
    assert_eq!(list.lookup(&mallory.fingerprint()), None);

    // The authorized viewer was never affected.
    let known_good = s.pki.known_hosts("kg", s.host.addr, &s.pki.host);
    let conn = connect(s.pki.connect_options(
        s.host.addr,
        &s.pki.viewer,
        known_good,
        TrustPolicy::PinnedOnly,
    ))
    .await
    .expect("authorized viewer connects");
    conn.close("done").await;

    let log = &s.audit_log;
    audit::wait_for(log, "burn", |r| {
        r["event"] == "pair_window_closed" && r["reason"] == "burned"
    })
    .await;
    let all = audit::records(log);
    let attempts = audit::events(&all, "pair_attempt");
    let count = |o: &str| attempts.iter().filter(|r| r["outcome"] == o).count();
    assert_eq!(count("wrong_code"), 3, "{attempts:#?}");
    assert_eq!(count("rate_limited"), 1, "{attempts:#?}");
    let last_wrong = attempts
        .iter()
        .rfind(|r| r["outcome"] == "wrong_code")
        .unwrap();
    assert_eq!(last_wrong["failures"], 3);
    assert_eq!(last_wrong["fingerprint"], mallory.fingerprint().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_refuses_a_host_whose_pinned_key_changed() {
    let s = setup(PairingLimits::default());
    let newcomer = Identity::generate(Role::Viewer, "newcomer").unwrap();
    let impostor = Identity::generate(Role::Host, "impostor").unwrap();
    let known = s.pki.known_hosts("kh", s.host.addr, &impostor);
    let window =
        sightline_host::pair::open_window(&s.pairing_file, Duration::from_secs(60), None, 3)
            .unwrap();
    let err = pair(options(
        &s,
        &newcomer,
        known.clone(),
        &window.code.to_string(),
    ))
    .await
    .expect_err("changed host key");
    let msg = err.to_string();
    assert!(matches!(err, PairError::HostKey(_)), "{msg}");
    assert!(msg.contains(&impostor.fingerprint().to_string()), "{msg}");
    assert!(msg.contains(&s.pki.host.fingerprint().to_string()), "{msg}");
    // The pin was not touched and the code was not spent.
    let k = KnownHosts::load_or_empty(&known).unwrap();
    assert_eq!(
        k.lookup(&pin_key(s.host.addr)),
        Some(impostor.fingerprint())
    );
    assert_eq!(
        PairingWindow::load(&s.pairing_file)
            .unwrap()
            .unwrap()
            .failures,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_pairing_stream_closes_only_that_connection() {
    let s = setup(PairingLimits::default());
    sightline_host::pair::open_window(&s.pairing_file, Duration::from_secs(60), None, 3).unwrap();
    let stranger = Identity::generate(Role::Viewer, "fuzzer").unwrap();
    let tls = viewer_tls_config(&stranger, Arc::new(AcceptAnyHost), &[PAIR_ALPN]).unwrap();
    let quic = QuicClientConfig::with_initial(Arc::new(tls), quic_initial_suite()).unwrap();
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    for garbage in [
        vec![0xff, 0xff, 1, 2, 3],          // a frame over the limit
        vec![3, 0, 9, 9, 9],                // an unknown message
        vec![2, 0, 3, 0],                   // a Confirm before Start
        b"GET / HTTP/1.1\r\n\r\n".to_vec(), // not this protocol at all
    ] {
        let conn = ep.connect(s.host.addr, "localhost").unwrap().await.unwrap();
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        send.write_all(&garbage).await.unwrap();
        let _ = send.finish();
        let why = tokio::time::timeout(Duration::from_secs(10), conn.closed())
            .await
            .expect("the host closes a garbage pairing connection");
        println!("{garbage:?}: {why}");
    }
    // The code survived (garbage is not a guess) and a real viewer still pairs with it.
    let w = PairingWindow::load(&s.pairing_file).unwrap().unwrap();
    assert_eq!(w.failures, 0);
    let newcomer = Identity::generate(Role::Viewer, "newcomer").unwrap();
    let known = s.pki.dir.path().join("kh");
    // The garbage connections that got as far as a message were refused without a back-off
    // for the address (they never tested a code), so the real attempt goes straight through.
    let paired = pair(options(&s, &newcomer, known, &w.code.to_string()))
        .await
        .expect("pairs after the garbage");
    assert_eq!(paired.host_fingerprint, s.pki.host.fingerprint());
}
