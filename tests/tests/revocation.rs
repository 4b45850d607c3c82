//! Revocation over real QUIC: `certs revoke` (rewriting the authorized list) ends the viewer's
//! running session and refuses its next connection; every step is in the audit log.

use std::time::Duration;

use sightline_certs::{AuthorizedViewers, TrustPolicy};
use sightline_host::audit::AuditLog;
use sightline_host::net::NetEvent;
use sightline_protocol::msg::{Capabilities, GoodbyeReason};
use sightline_protocol::session::ViewerEvent;
use sightline_protocol::CloseReason;
use sightline_tests::{audit, Pki, TestHost};
use sightline_viewer::net::{connect, ConnectError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_ends_the_running_session_and_refuses_the_next_connection() {
    let pki = Pki::new();
    let log = pki.dir.path().join("audit.jsonl");
    let a = AuditLog::open(&log).unwrap();
    let mut host = TestHost::start_with(&pki, Capabilities::default(), |cfg| {
        cfg.security.audit = Some(a);
        cfg.security.revocation_check = Duration::from_millis(100);
    });
    let known = pki.known_hosts("known_hosts", host.addr, &pki.host);
    let addr = host.addr;
    let opts = || pki.connect_options(addr, &pki.viewer, known.clone(), TrustPolicy::PinnedOnly);
    let mut conn = connect(opts()).await.expect("authorized viewer connects");
    host.wait_for(|e| matches!(e, NetEvent::SessionStarted { .. }))
        .await;

    // What `certs revoke` does: rewrite the list atomically.
    let mut list = AuthorizedViewers::load(&pki.authorized).unwrap();
    assert!(list.revoke(&pki.viewer.fingerprint()));
    list.save(&pki.authorized).unwrap();

    // The running session ends with a goodbye that says why.
    let reason = loop {
        match tokio::time::timeout(Duration::from_secs(10), conn.next_event()).await {
            Ok(Some(ViewerEvent::Closed(r))) => break r,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("session ended without a reason"),
            Err(_) => panic!("revocation did not end the running session"),
        }
    };
    println!("viewer saw: {reason}");
    match &reason {
        CloseReason::PeerGoodbye { reason, message } => {
            assert_eq!(*reason, GoodbyeReason::Refused);
            assert!(message.contains("revoked"), "{message}");
        }
        other => panic!("expected the host's goodbye, got {other}"),
    }
    // And the next connection is refused at TLS.
    let err = connect(opts()).await.expect_err("revoked viewer refused");
    assert!(matches!(err, ConnectError::NotAuthorized { .. }), "{err}");

    // Authorizing again takes effect on the next connection too.
    let mut list = AuthorizedViewers::load(&pki.authorized).unwrap();
    list.authorize(pki.viewer.fingerprint(), "alice again");
    list.save(&pki.authorized).unwrap();
    let conn = connect(opts()).await.expect("re-authorized");
    conn.close("bye").await;

    let fp = pki.viewer.fingerprint().to_string();
    let end = audit::wait_for(&log, "revoked session end", |r| {
        r["event"] == "session_end" && r["end"] == "revoked"
    })
    .await;
    assert_eq!(end["fingerprint"], fp.as_str());
    assert_eq!(end["viewer"], "alice");
    assert!(end["duration_ms"].is_u64());
    let change = audit::wait_for(&log, "list change", |r| r["event"] == "authorized_changed").await;
    assert_eq!(change["removed"][0]["fingerprint"], fp.as_str());
    audit::wait_for(&log, "refusal", |r| {
        r["event"] == "refused" && r["stage"] == "TLS" && r["fingerprint"] == fp.as_str()
    })
    .await;
    audit::wait_for(&log, "second session", |r| {
        r["event"] == "session_end" && r["viewer"] == "alice again" && r["end"] == "viewer_closed"
    })
    .await;
    // Every session that started also ended in the log.
    let all = audit::records(&log);
    let starts = audit::events(&all, "session_start");
    let ends = audit::events(&all, "session_end");
    assert_eq!(starts.len(), 2, "{all:#?}");
    assert_eq!(ends.len(), 2, "{all:#?}");
    for s in &starts {
        assert!(s["remote"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(s["ts"].as_str().unwrap().ends_with('Z'));
    }
}
