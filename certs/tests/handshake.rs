//! Real rustls handshakes between a host and a viewer configuration, pumped
//! in memory (no sockets).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use sightline_certs::rustls::client::danger::ServerCertVerifier;
use sightline_certs::rustls::pki_types::{ServerName, UnixTime};
use sightline_certs::rustls::server::danger::ClientCertVerifier;
use sightline_certs::rustls::{self, CertificateError, ClientConnection, ServerConnection};
use sightline_certs::*;

const ALPN: &[&[u8]] = &[b"sightline/test"];

struct Pair {
    viewer: ClientConnection,
    host: ServerConnection,
}

#[derive(Debug, Default)]
struct Result2 {
    viewer: Option<rustls::Error>,
    host: Option<rustls::Error>,
}

/// Moves bytes in both directions until nothing moves any more; records the
/// first error of each side.
fn pump(pair: &mut Pair) -> Result2 {
    let mut res = Result2::default();
    for _ in 0..64 {
        let mut moved = false;
        // viewer -> host
        while pair.viewer.wants_write() {
            let mut buf = Vec::new();
            pair.viewer.write_tls(&mut buf).unwrap();
            if buf.is_empty() {
                break;
            }
            moved = true;
            if res.host.is_none() {
                let mut rd = &buf[..];
                while !rd.is_empty() {
                    if pair.host.read_tls(&mut rd).is_err() {
                        break;
                    }
                    if let Err(e) = pair.host.process_new_packets() {
                        res.host = Some(e);
                        break;
                    }
                }
            }
        }
        // host -> viewer
        while pair.host.wants_write() {
            let mut buf = Vec::new();
            pair.host.write_tls(&mut buf).unwrap();
            if buf.is_empty() {
                break;
            }
            moved = true;
            if res.viewer.is_none() {
                let mut rd = &buf[..];
                while !rd.is_empty() {
                    if pair.viewer.read_tls(&mut rd).is_err() {
                        break;
                    }
                    if let Err(e) = pair.viewer.process_new_packets() {
                        res.viewer = Some(e);
                        break;
                    }
                }
            }
        }
        if !moved {
            break;
        }
    }
    res
}

struct Setup {
    host_id: Identity,
    viewer_id: Identity,
    authorized: Arc<RwLock<AuthorizedViewers>>,
    host_verifier: Arc<AuthorizedViewerVerifier>,
}

impl Setup {
    fn new() -> Setup {
        let host_id = Identity::generate(Role::Host, "workstation").unwrap();
        let viewer_id = Identity::generate(Role::Viewer, "laptop").unwrap();
        let authorized = Arc::new(RwLock::new(AuthorizedViewers::new()));
        let host_verifier = AuthorizedViewerVerifier::new(authorized.clone());
        Setup {
            host_id,
            viewer_id,
            authorized,
            host_verifier,
        }
    }

    fn authorize_viewer(&self) {
        self.authorized
            .write()
            .unwrap()
            .authorize(self.viewer_id.fingerprint(), "laptop");
    }

    fn connect(&self, verifier: Arc<dyn ServerCertVerifier>) -> (Pair, Result2) {
        self.connect_with(&self.viewer_id, verifier)
    }

    fn connect_with(
        &self,
        viewer_id: &Identity,
        verifier: Arc<dyn ServerCertVerifier>,
    ) -> (Pair, Result2) {
        let host_cfg = host_tls_config(&self.host_id, self.host_verifier.clone(), ALPN).unwrap();
        let viewer_cfg = viewer_tls_config(viewer_id, verifier, ALPN).unwrap();
        // The TLS server name is deliberately unrelated to the certificate:
        // it must not matter.
        let name = ServerName::try_from("not-the-host-name.invalid").unwrap();
        let mut pair = Pair {
            viewer: ClientConnection::new(Arc::new(viewer_cfg), name).unwrap(),
            host: ServerConnection::new(Arc::new(host_cfg)).unwrap(),
        };
        let res = pump(&mut pair);
        (pair, res)
    }
}

fn pinned(host_fp: Fingerprint, policy: TrustPolicy) -> Arc<PinnedHostVerifier> {
    let mut known = KnownHosts::new();
    known.pin("workstation:4433", host_fp);
    PinnedHostVerifier::new(None, known, "workstation:4433", policy)
}

#[test]
fn authorized_viewer_connects_with_aes256() {
    let s = Setup::new();
    s.authorize_viewer();
    let pins = pinned(s.host_id.fingerprint(), TrustPolicy::PinnedOnly);
    let (mut pair, res) = s.connect(pins.clone());
    assert!(res.viewer.is_none() && res.host.is_none(), "{res:?}");
    assert!(!pair.viewer.is_handshaking());
    assert!(!pair.host.is_handshaking());
    for suite in [
        pair.viewer.negotiated_cipher_suite().unwrap().suite(),
        pair.host.negotiated_cipher_suite().unwrap().suite(),
    ] {
        assert_eq!(suite, rustls::CipherSuite::TLS13_AES_256_GCM_SHA384);
    }
    assert_eq!(
        pair.viewer.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(pair.viewer.alpn_protocol(), Some(&b"sightline/test"[..]));
    assert_eq!(
        pins.outcome(),
        Some(PinOutcome::Matched {
            host: "workstation:4433".into(),
            fingerprint: s.host_id.fingerprint()
        })
    );
    // The host can identify the viewer from the presented certificate.
    let peer = pair.host.peer_certificates().unwrap();
    assert_eq!(
        Fingerprint::of_der(peer[0].as_ref()),
        s.viewer_id.fingerprint()
    );
    assert!(s.host_verifier.take_refusals().is_empty());

    // Application data flows both ways.
    pair.viewer.writer().write_all(b"hello host").unwrap();
    pair.host.writer().write_all(b"hello viewer").unwrap();
    let res = pump(&mut pair);
    assert!(res.viewer.is_none() && res.host.is_none(), "{res:?}");
    let mut buf = [0u8; 32];
    let n = pair.host.reader().read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello host");
    let n = pair.viewer.reader().read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello viewer");
}

fn assert_other_error_contains(err: &rustls::Error, needles: &[String]) {
    match err {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            let text = other.to_string();
            for n in needles {
                assert!(text.contains(n.as_str()), "{text:?} lacks {n:?}");
            }
        }
        other => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn unauthorized_viewer_is_refused_and_recorded() {
    let s = Setup::new();
    let pins = pinned(s.host_id.fingerprint(), TrustPolicy::PinnedOnly);
    let (pair, res) = s.connect(pins);
    let viewer_fp = s.viewer_id.fingerprint();
    let host_err = res.host.expect("host must refuse");
    assert_other_error_contains(
        &host_err,
        &[
            viewer_fp.to_string(),
            "not in the authorized viewers list".into(),
            "certs authorize".into(),
        ],
    );
    assert!(pair.host.is_handshaking());
    let refusals = s.host_verifier.take_refusals();
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].fingerprint, viewer_fp);
    assert!(refusals[0].reason.contains(&viewer_fp.to_string()));
    assert!(s.host_verifier.take_refusals().is_empty(), "drained");
}

#[test]
fn revocation_takes_effect_at_runtime() {
    let s = Setup::new();
    s.authorize_viewer();
    let host_fp = s.host_id.fingerprint();
    let (_, res) = s.connect(pinned(host_fp, TrustPolicy::PinnedOnly));
    assert!(res.host.is_none(), "{res:?}");
    assert!(s
        .authorized
        .write()
        .unwrap()
        .revoke(&s.viewer_id.fingerprint()));
    let (_, res) = s.connect(pinned(host_fp, TrustPolicy::PinnedOnly));
    assert!(res.host.is_some(), "revoked viewer must be refused");
    assert_eq!(s.host_verifier.take_refusals().len(), 1);
}

#[test]
fn viewer_without_certificate_is_refused() {
    let s = Setup::new();
    let host_cfg = host_tls_config(&s.host_id, s.host_verifier.clone(), ALPN).unwrap();
    let viewer_cfg = rustls::ClientConfig::builder_with_provider(session_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(danger::AcceptAnyHost))
        .with_no_client_auth();
    let mut pair = Pair {
        viewer: ClientConnection::new(
            Arc::new(viewer_cfg),
            ServerName::try_from("workstation").unwrap(),
        )
        .unwrap(),
        host: ServerConnection::new(Arc::new(host_cfg)).unwrap(),
    };
    let res = pump(&mut pair);
    assert!(
        matches!(res.host, Some(rustls::Error::NoCertificatesPresented)),
        "{res:?}"
    );
}

#[test]
fn pin_mismatch_is_refused_with_both_fingerprints() {
    let s = Setup::new();
    s.authorize_viewer();
    let other = Identity::generate(Role::Host, "impostor").unwrap();
    let pins = pinned(other.fingerprint(), TrustPolicy::TrustOnFirstUse);
    let (pair, res) = s.connect(pins.clone());
    let viewer_err = res.viewer.expect("viewer must refuse");
    assert!(pair.viewer.is_handshaking());
    let pinned_fp = other.fingerprint();
    let presented = s.host_id.fingerprint();
    assert_other_error_contains(
        &viewer_err,
        &[
            pinned_fp.to_string(),
            presented.to_string(),
            "certs pin".into(),
        ],
    );
    let outcome = pins.outcome().unwrap();
    assert_eq!(
        outcome,
        PinOutcome::Mismatch {
            host: "workstation:4433".into(),
            pinned: pinned_fp,
            presented,
        }
    );
    assert!(!outcome.is_trusted());
    let text = outcome.to_string();
    assert!(
        text.contains("host key for workstation:4433 changed"),
        "{text}"
    );
    assert!(text.contains(&format!("pinned {pinned_fp}")), "{text}");
    assert!(
        text.contains(&format!("host presented {presented}")),
        "{text}"
    );
    // The host sees the alert, not an authorization problem.
    assert!(s.host_verifier.take_refusals().is_empty());
    assert!(res.host.is_some());
}

#[test]
fn trust_on_first_use_pins_and_writes_file() {
    let s = Setup::new();
    s.authorize_viewer();
    let tmp = tempfile::tempdir().unwrap();
    let path: PathBuf = tmp.path().join("viewer/known_hosts");
    let known = KnownHosts::load_or_empty(&path).unwrap();
    let pins = PinnedHostVerifier::new(
        Some(path.clone()),
        known,
        "workstation:4433",
        TrustPolicy::TrustOnFirstUse,
    );
    let (_, res) = s.connect(pins.clone());
    assert!(res.viewer.is_none() && res.host.is_none(), "{res:?}");
    let host_fp = s.host_id.fingerprint();
    assert_eq!(
        pins.outcome(),
        Some(PinOutcome::NewlyPinned {
            host: "workstation:4433".into(),
            fingerprint: host_fp
        })
    );
    let saved = KnownHosts::load_or_empty(&path).unwrap();
    assert_eq!(saved.lookup("workstation:4433"), Some(host_fp));

    // Next time the pin is used, even with trust on first use.
    let pins = PinnedHostVerifier::new(
        Some(path.clone()),
        saved.clone(),
        "workstation:4433",
        TrustPolicy::TrustOnFirstUse,
    );
    let (_, res) = s.connect(pins.clone());
    assert!(res.viewer.is_none(), "{res:?}");
    assert!(matches!(pins.outcome(), Some(PinOutcome::Matched { .. })));

    // A different host behind the same address is refused despite TOFU.
    let s2 = Setup::new();
    s2.authorized
        .write()
        .unwrap()
        .authorize(s.viewer_id.fingerprint(), "laptop");
    let pins = PinnedHostVerifier::new(
        Some(path.clone()),
        saved,
        "workstation:4433",
        TrustPolicy::TrustOnFirstUse,
    );
    let (_, res) = s2.connect_with(&s.viewer_id, pins.clone());
    assert!(res.viewer.is_some());
    assert!(matches!(pins.outcome(), Some(PinOutcome::Mismatch { .. })));
    assert_eq!(
        KnownHosts::load_or_empty(&path)
            .unwrap()
            .lookup("workstation:4433"),
        Some(host_fp),
        "a mismatch must not overwrite the pin"
    );
}

#[test]
fn pinned_only_refuses_unknown_host() {
    let s = Setup::new();
    s.authorize_viewer();
    let pins = PinnedHostVerifier::new(
        Some(PathBuf::from("/nonexistent/known_hosts")),
        KnownHosts::new(),
        "workstation:4433",
        TrustPolicy::PinnedOnly,
    );
    let (_, res) = s.connect(pins.clone());
    let presented = s.host_id.fingerprint();
    let err = res.viewer.expect("viewer must refuse");
    assert_other_error_contains(
        &err,
        &[
            presented.to_string(),
            "certs pin --known-hosts /nonexistent/known_hosts --host workstation:4433".into(),
        ],
    );
    let outcome = pins.outcome().unwrap();
    assert_eq!(
        outcome,
        PinOutcome::Unknown {
            host: "workstation:4433".into(),
            presented,
        }
    );
    let text = outcome.to_string();
    assert!(text.contains("certs pin"), "{text}");
    assert!(text.contains("trust on first use"), "{text}");
    // Nothing was written.
    assert!(!std::path::Path::new("/nonexistent/known_hosts").exists());
}

#[test]
fn accept_any_host_still_connects() {
    let s = Setup::new();
    s.authorize_viewer();
    let (pair, res) = s.connect(Arc::new(danger::AcceptAnyHost));
    assert!(res.viewer.is_none() && res.host.is_none(), "{res:?}");
    let peer = pair.viewer.peer_certificates().unwrap();
    assert_eq!(
        Fingerprint::of_der(peer[0].as_ref()),
        s.host_id.fingerprint()
    );
}

#[test]
fn refusal_queue_is_bounded() {
    let authorized = Arc::new(RwLock::new(AuthorizedViewers::new()));
    let verifier = AuthorizedViewerVerifier::new(authorized);
    assert!(verifier.offer_client_auth());
    assert!(verifier.client_auth_mandatory());
    assert!(verifier.root_hint_subjects().is_empty());
    let id = Identity::generate(Role::Viewer, "v").unwrap();
    for _ in 0..MAX_REFUSALS + 10 {
        assert!(verifier
            .verify_client_cert(&id.cert_der, &[], UnixTime::now())
            .is_err());
    }
    let refusals = verifier.take_refusals();
    assert_eq!(refusals.len(), MAX_REFUSALS);
    assert!(verifier.take_refusals().is_empty());
}
