//! rustls configurations for Sightline sessions.

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::Resumption;
use rustls::crypto::ring::{cipher_suite, kx_group};
use rustls::crypto::CryptoProvider;
use rustls::server::NoServerSessionStorage;

use crate::{AuthorizedViewerVerifier, CertError, Identity};

/// The crypto provider for Sightline sessions: ring, with
/// `TLS13_AES_256_GCM_SHA384` as the only cipher suite and X25519, secp256r1
/// and secp384r1 key exchange.
///
/// Note for QUIC: quinn derives the keys of QUIC *initial* packets from
/// `TLS13_AES_128_GCM_SHA256` (RFC 9001 §5.2 fixes AES-128-GCM for them), so
/// it cannot find an initial suite in this provider; wrap configurations with
/// `QuicServerConfig::with_initial(cfg, quic_initial_suite())` /
/// `QuicClientConfig::with_initial(cfg, quic_initial_suite())` rather than
/// `try_from`.
pub fn session_provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![cipher_suite::TLS13_AES_256_GCM_SHA384];
    provider.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
    Arc::new(provider)
}

/// The QUIC initial-packet suite: `TLS13_AES_128_GCM_SHA256` from the ring
/// provider.
///
/// RFC 9001 §5 protects QUIC initial packets with keys derived from the
/// connection ID using AES-128-GCM and SHA-256, whatever suite the handshake
/// later negotiates. Initial packets only carry the ClientHello/ServerHello
/// and are readable by anyone who sees the connection ID (they provide no
/// confidentiality by design); everything after them, including the whole
/// session, is protected with the negotiated `TLS13_AES_256_GCM_SHA384`.
pub fn quic_initial_suite() -> rustls::quic::Suite {
    cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .and_then(|suite| suite.quic_suite())
        .expect("ring's TLS13_AES_128_GCM_SHA256 supports QUIC")
}

fn alpn_list(alpn: &[&[u8]]) -> Vec<Vec<u8>> {
    alpn.iter().map(|p| p.to_vec()).collect()
}

/// TLS configuration for the host: TLS 1.3 only with
/// [`session_provider`], presents `identity`, requires a viewer certificate
/// accepted by `verifier`, offers the `alpn` protocols, no 0-RTT.
///
/// Session resumption is disabled (no tickets, no session cache): a resumed
/// session would skip `verifier`, so a viewer revoked after its first
/// connection could resume without being checked again.
pub fn host_tls_config(
    identity: &Identity,
    verifier: Arc<AuthorizedViewerVerifier>,
    alpn: &[&[u8]],
) -> Result<rustls::ServerConfig, CertError> {
    let mut config = rustls::ServerConfig::builder_with_provider(session_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.cert_chain(), identity.key_der())?;
    config.alpn_protocols = alpn_list(alpn);
    config.max_early_data_size = 0;
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    Ok(config)
}

/// TLS configuration for the viewer: TLS 1.3 only with
/// [`session_provider`], host checked by `verifier` (normally a
/// [`PinnedHostVerifier`](crate::PinnedHostVerifier)), presents `identity` as
/// client certificate, offers the `alpn` protocols, no 0-RTT, no session
/// resumption (every connection checks the host's pin).
pub fn viewer_tls_config(
    identity: &Identity,
    verifier: Arc<dyn ServerCertVerifier>,
    alpn: &[&[u8]],
) -> Result<rustls::ClientConfig, CertError> {
    let mut config = rustls::ClientConfig::builder_with_provider(session_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(identity.cert_chain(), identity.key_der())?;
    config.alpn_protocols = alpn_list(alpn);
    config.enable_early_data = false;
    config.resumption = Resumption::disabled();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_has_only_aes256() {
        let p = session_provider();
        assert_eq!(p.cipher_suites.len(), 1);
        assert_eq!(
            p.cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
        );
        assert_eq!(p.kx_groups.len(), 3);
        assert_eq!(
            quic_initial_suite().suite.common.suite,
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        );
    }
}
