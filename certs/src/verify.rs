//! rustls certificate verifiers implementing Sightline's trust model: the
//! viewer pins host fingerprints, the host authorizes viewer fingerprints.

use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::pairing::PairingGate;
use crate::{AuthorizedViewers, Fingerprint, KnownHosts};

/// How many recent refusals [`AuthorizedViewerVerifier`] remembers.
pub const MAX_REFUSALS: usize = 64;

/// Signature algorithms of the ring provider, used to check the TLS 1.3
/// CertificateVerify signature (proof that the peer holds the private key of
/// the certificate it presented).
pub(crate) fn signature_algorithms() -> &'static WebPkiSupportedAlgorithms {
    static ALGS: LazyLock<WebPkiSupportedAlgorithms> = LazyLock::new(|| {
        rustls::crypto::ring::default_provider().signature_verification_algorithms
    });
    &ALGS
}

pub(crate) fn tls13_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls13_signature(message, cert, dss, signature_algorithms())
}

pub(crate) fn tls12_refused() -> Result<HandshakeSignatureValid, rustls::Error> {
    // Sightline configurations only enable TLS 1.3, so this is unreachable in
    // practice; refuse rather than verify if it ever happens.
    Err(rustls::Error::General(
        "TLS 1.2 is not supported by Sightline".to_string(),
    ))
}

fn other_error(err: impl std::error::Error + Send + Sync + 'static) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(err))))
}

/// Whether the viewer should trust a host it has no pin for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustPolicy {
    /// Only connect to hosts whose fingerprint is pinned in the known hosts.
    PinnedOnly,
    /// Trust on first use: a host without a pin is accepted and pinned; a
    /// host whose pin does not match is still refused.
    TrustOnFirstUse,
}

/// What the pinning verifier decided, readable after a failed or successful
/// handshake via [`PinnedHostVerifier::outcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinOutcome {
    /// The host presented the pinned certificate.
    Matched {
        /// The host key (`host:port`) that was checked.
        host: String,
        /// Its fingerprint.
        fingerprint: Fingerprint,
    },
    /// The host had no pin and trust on first use pinned it.
    NewlyPinned {
        /// The host key (`host:port`) that was pinned.
        host: String,
        /// The fingerprint now pinned.
        fingerprint: Fingerprint,
    },
    /// The host presented a certificate other than the pinned one. The
    /// connection was refused.
    Mismatch {
        /// The host key (`host:port`) that was checked.
        host: String,
        /// The fingerprint in the known hosts.
        pinned: Fingerprint,
        /// The fingerprint the host presented.
        presented: Fingerprint,
    },
    /// The host has no pin and the policy is [`TrustPolicy::PinnedOnly`].
    /// The connection was refused.
    Unknown {
        /// The host key (`host:port`) that was checked.
        host: String,
        /// The fingerprint the host presented.
        presented: Fingerprint,
    },
}

impl PinOutcome {
    /// Whether the handshake was allowed to proceed.
    pub fn is_trusted(&self) -> bool {
        matches!(
            self,
            PinOutcome::Matched { .. } | PinOutcome::NewlyPinned { .. }
        )
    }

    /// The host key (`host:port`) the outcome is about.
    pub fn host(&self) -> &str {
        match self {
            PinOutcome::Matched { host, .. }
            | PinOutcome::NewlyPinned { host, .. }
            | PinOutcome::Mismatch { host, .. }
            | PinOutcome::Unknown { host, .. } => host,
        }
    }

    /// The fingerprint the host presented.
    pub fn presented(&self) -> Fingerprint {
        match self {
            PinOutcome::Matched { fingerprint, .. }
            | PinOutcome::NewlyPinned { fingerprint, .. } => *fingerprint,
            PinOutcome::Mismatch { presented, .. } | PinOutcome::Unknown { presented, .. } => {
                *presented
            }
        }
    }

    /// The message, with the known-hosts file named in suggested commands.
    fn describe(&self, known_hosts: Option<&Path>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = known_hosts
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "KNOWN_HOSTS".to_string());
        match self {
            PinOutcome::Matched { host, fingerprint } => {
                write!(
                    f,
                    "host {host} presented its pinned certificate {fingerprint}"
                )
            }
            PinOutcome::NewlyPinned { host, fingerprint } => write!(
                f,
                "host {host} was not known; trusted on first use and pinned {fingerprint} \
                 (compare it with `certs fingerprint` on the host)"
            ),
            PinOutcome::Mismatch {
                host,
                pinned,
                presented,
            } => write!(
                f,
                "host key for {host} changed: pinned {pinned} but host presented {presented}; \
                 someone may be intercepting the connection, or the host's identity was recreated. \
                 If this change is expected (check with `certs fingerprint` on the host), run \
                 `certs pin --known-hosts {file} --host {host} --fingerprint {presented}`"
            ),
            PinOutcome::Unknown { host, presented } => write!(
                f,
                "host {host} is not in the known hosts; it presented {presented}. \
                 Check that this matches `certs fingerprint` on the host, then pin it with \
                 `certs pin --known-hosts {file} --host {host} --fingerprint {presented}`, \
                 or connect with trust on first use"
            ),
        }
    }
}

impl fmt::Display for PinOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.describe(None, f)
    }
}

/// The error inside the `rustls::Error` returned when the pinning verifier
/// refuses a host. Its message is the [`PinOutcome`] text, with the known
/// hosts file named when known. Downcast it from
/// `rustls::OtherError`, or simply call [`PinnedHostVerifier::outcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeyRejected {
    /// The refusing decision ([`PinOutcome::Mismatch`] or [`PinOutcome::Unknown`]).
    pub outcome: PinOutcome,
    /// The known hosts file, if the verifier has one.
    pub known_hosts: Option<PathBuf>,
}

impl fmt::Display for HostKeyRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.outcome.describe(self.known_hosts.as_deref(), f)
    }
}

impl std::error::Error for HostKeyRejected {}

/// The viewer's host verifier: accepts the host iff the SHA-256 fingerprint
/// of its certificate equals the pin for the host key given at construction.
///
/// Certificate names, validity dates, key usages and chains are ignored on
/// purpose (see [`crate::design`]): identities are self-signed and trusted by
/// fingerprint only. The TLS 1.3 handshake signature is still verified, so
/// the host must hold the private key of the pinned certificate.
#[derive(Debug)]
pub struct PinnedHostVerifier {
    known_hosts_path: Option<PathBuf>,
    known_hosts: Mutex<KnownHosts>,
    host: String,
    policy: TrustPolicy,
    outcome: Mutex<Option<PinOutcome>>,
}

impl PinnedHostVerifier {
    /// A verifier for connections to `host` (the `host:port` string the
    /// viewer uses as known-hosts key — not the TLS server name, which is
    /// ignored). With [`TrustPolicy::TrustOnFirstUse`], a new pin is saved to
    /// `known_hosts_path` when one is given.
    pub fn new(
        known_hosts_path: Option<PathBuf>,
        known_hosts: KnownHosts,
        host: &str,
        policy: TrustPolicy,
    ) -> Arc<Self> {
        Arc::new(PinnedHostVerifier {
            known_hosts_path,
            known_hosts: Mutex::new(known_hosts),
            host: host.trim().to_string(),
            policy,
            outcome: Mutex::new(None),
        })
    }

    /// The last decision, or `None` if no certificate has been checked yet.
    pub fn outcome(&self) -> Option<PinOutcome> {
        self.outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The host key this verifier checks.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn record(&self, outcome: PinOutcome) {
        *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
    }

    fn reject(&self, outcome: PinOutcome) -> rustls::Error {
        tracing::warn!(host = %self.host, "{outcome}");
        self.record(outcome.clone());
        other_error(HostKeyRejected {
            outcome,
            known_hosts: self.known_hosts_path.clone(),
        })
    }

    /// Trust on first use: pin in memory and persist. The file is re-read
    /// first so that pins written by other viewers meanwhile are kept.
    fn pin_first_use(&self, known: &mut KnownHosts, presented: Fingerprint) {
        known.pin(&self.host, presented);
        let Some(path) = &self.known_hosts_path else {
            return;
        };
        let result = KnownHosts::load_or_empty(path).and_then(|mut on_disk| {
            if on_disk.lookup(&self.host).is_none() {
                on_disk.pin(&self.host, presented);
                on_disk.save(path)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::warn!(
                host = %self.host,
                "could not save the new pin to the known hosts ({e}); \
                 this host will be trusted on first use again next time"
            );
        }
    }
}

impl ServerCertVerifier for PinnedHostVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = Fingerprint::of_der(end_entity.as_ref());
        let host = self.host.clone();
        let mut known = self
            .known_hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match known.lookup(&host) {
            Some(pinned) if pinned == presented => {
                tracing::debug!(host = %host, fingerprint = %presented, "host matches its pin");
                self.record(PinOutcome::Matched {
                    host,
                    fingerprint: presented,
                });
                Ok(ServerCertVerified::assertion())
            }
            Some(pinned) => Err(self.reject(PinOutcome::Mismatch {
                host,
                pinned,
                presented,
            })),
            None => match self.policy {
                TrustPolicy::PinnedOnly => {
                    Err(self.reject(PinOutcome::Unknown { host, presented }))
                }
                TrustPolicy::TrustOnFirstUse => {
                    self.pin_first_use(&mut known, presented);
                    let outcome = PinOutcome::NewlyPinned {
                        host,
                        fingerprint: presented,
                    };
                    tracing::warn!("{outcome}");
                    self.record(outcome);
                    Ok(ServerCertVerified::assertion())
                }
            },
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        signature_algorithms().supported_schemes()
    }
}

/// Why the host refused a viewer certificate, readable by the host's network
/// code via [`AuthorizedViewerVerifier::take_refusals`]. Its `Display` is the
/// reason; it is also the error inside the `rustls::Error` the verifier
/// returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Fingerprint of the refused viewer certificate.
    pub fingerprint: Fingerprint,
    /// Human-readable reason, including how to authorize the viewer.
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Refusal {}

/// The host's viewer verifier: requires a viewer certificate and accepts it
/// iff its SHA-256 fingerprint is in the authorized viewers list.
///
/// The list is shared (`Arc<RwLock<_>>`) so the host can reload it or revoke
/// viewers at runtime; each handshake reads the current list. Names,
/// validity dates and chains are ignored on purpose (see [`crate::design`]);
/// the TLS 1.3 handshake signature is verified.
#[derive(Debug)]
pub struct AuthorizedViewerVerifier {
    authorized: Arc<RwLock<AuthorizedViewers>>,
    refusals: Mutex<VecDeque<Refusal>>,
    pairing: Option<Arc<dyn PairingGate>>,
}

impl AuthorizedViewerVerifier {
    /// A verifier checking viewers against `authorized`.
    pub fn new(authorized: Arc<RwLock<AuthorizedViewers>>) -> Arc<Self> {
        Arc::new(AuthorizedViewerVerifier {
            authorized,
            refusals: Mutex::new(VecDeque::new()),
            pairing: None,
        })
    }

    /// Like [`new`](Self::new), but while `gate` says a pairing window is
    /// open, a viewer that is not authorized completes the TLS handshake
    /// (its certificate signature is still verified). The host must then
    /// check the negotiated ALPN and the authorized list itself: such a
    /// connection may only carry the pairing exchange, and the host closes
    /// it otherwise. With no window open the behaviour is exactly
    /// [`new`](Self::new)'s: unknown viewers are refused during TLS.
    pub fn with_pairing(
        authorized: Arc<RwLock<AuthorizedViewers>>,
        gate: Arc<dyn PairingGate>,
    ) -> Arc<Self> {
        Arc::new(AuthorizedViewerVerifier {
            authorized,
            refusals: Mutex::new(VecDeque::new()),
            pairing: Some(gate),
        })
    }

    /// Removes and returns the recorded refusals, oldest first. At most
    /// [`MAX_REFUSALS`] are kept; older ones are dropped.
    pub fn take_refusals(&self) -> Vec<Refusal> {
        self.refusals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect()
    }

    /// The shared authorized viewers list.
    pub fn authorized(&self) -> &Arc<RwLock<AuthorizedViewers>> {
        &self.authorized
    }
}

impl ClientCertVerifier for AuthorizedViewerVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let fingerprint = Fingerprint::of_der(end_entity.as_ref());
        let name = self
            .authorized
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .lookup(&fingerprint)
            .map(str::to_owned);
        if let Some(name) = name {
            tracing::info!(viewer = %name, %fingerprint, "authorized viewer presented its certificate");
            return Ok(ClientCertVerified::assertion());
        }
        if self
            .pairing
            .as_ref()
            .is_some_and(|g| g.admits_unknown_viewers())
        {
            tracing::info!(%fingerprint, "unknown viewer admitted for the pairing exchange only");
            return Ok(ClientCertVerified::assertion());
        }
        let refusal = Refusal {
            fingerprint,
            reason: format!(
                "viewer certificate {fingerprint} is not in the authorized viewers list; \
                 on the host run `certs authorize --authorized AUTHORIZED_VIEWERS \
                 --fingerprint {fingerprint} --name NAME` if you trust this viewer"
            ),
        };
        tracing::warn!(%fingerprint, "refused viewer: {refusal}");
        {
            let mut queue = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
            while queue.len() >= MAX_REFUSALS {
                queue.pop_front();
            }
            queue.push_back(refusal.clone());
        }
        Err(other_error(refusal))
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        signature_algorithms().supported_schemes()
    }
}

/// Verifiers that weaken the trust model. Nothing in here may be used for a
/// real Sightline session.
pub mod danger {
    use super::*;

    /// A host verifier that accepts **any** host certificate (it still checks
    /// the TLS 1.3 handshake signature, so the host must own the certificate
    /// it presents).
    ///
    /// Only for tests and for probing a host's fingerprint (read it from
    /// `peer_certificates()` after the handshake and show it to a person to
    /// compare before pinning). It provides no authentication at all.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct AcceptAnyHost;

    impl ServerCertVerifier for AcceptAnyHost {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            tracing::warn!(
                fingerprint = %Fingerprint::of_der(end_entity.as_ref()),
                "accepting a host certificate without any check (AcceptAnyHost)"
            );
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            _message: &[u8],
            _cert: &CertificateDer<'_>,
            _dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            tls12_refused()
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            signature_algorithms().supported_schemes()
        }
    }
}
