//! # Design: why Sightline trusts fingerprints, not certificate authorities
//!
//! This module contains no code; it records the reasoning behind the trust
//! model implemented by this crate.
//!
//! ## Identities
//!
//! Every host (the workstation agent) and every viewer (the desktop
//! application) owns one long-term identity: an ECDSA P-256 key pair and a
//! **self-signed** certificate for it, created once with `certs create` (or
//! [`Identity::load_or_create`](crate::Identity::load_or_create)). There is
//! no certificate authority. An identity is named by its *fingerprint*: the
//! SHA-256 digest of the DER-encoded certificate, printed as
//! `SHA256:AB:01:…` ([`Fingerprint`](crate::Fingerprint)).
//!
//! This is the SSH model. A CA would have to be run, backed up and kept
//! secret by whoever deploys Sightline, typically one person with a
//! workstation and a laptop; the fingerprint model needs nothing but
//! comparing a short string once, out of band.
//!
//! ## Viewer → host: pinning (known hosts)
//!
//! The viewer keeps a *known hosts* file ([`KnownHosts`](crate::KnownHosts))
//! mapping the `host:port` it connects to onto the expected host
//! fingerprint. [`PinnedHostVerifier`](crate::PinnedHostVerifier) accepts the
//! connection only if the certificate the host presents has exactly that
//! fingerprint. The key is the string the viewer was asked to connect to,
//! not the TLS server name, so the same pin applies however the address is
//! resolved.
//!
//! A host without a pin is refused ([`TrustPolicy::PinnedOnly`](crate::TrustPolicy)),
//! with a message explaining how to pin it (`certs pin`). Trust on first use
//! ([`TrustPolicy::TrustOnFirstUse`](crate::TrustPolicy)) — accept and pin
//! whatever the host presents the first time — is only used when the person
//! explicitly asks for it, because the first connection is then
//! unauthenticated. A changed fingerprint is **always** refused, whatever
//! the policy, with both fingerprints in the message: either someone is
//! intercepting the connection or the host's identity was recreated, and
//! only a person can tell which.
//!
//! ## Host → viewer: authorization (authorized viewers)
//!
//! The host requires every viewer to present its certificate (TLS client
//! authentication is mandatory) and accepts it only if its fingerprint is in
//! the *authorized viewers* file
//! ([`AuthorizedViewers`](crate::AuthorizedViewers)), which plays the role of
//! SSH's `authorized_keys`. The list is shared behind a lock so that the host
//! can reload it and revoke viewers while running; every handshake consults
//! the current list. Refused viewers are recorded
//! ([`Refusal`](crate::Refusal)) so the host can tell its user which
//! fingerprint to authorize.
//!
//! ## Why names and validity dates are not checked
//!
//! X.509 name and date checks exist to make statements by a *third party*
//! (a CA) meaningful: "this key belongs to that name, until then". With
//! self-signed certificates the subject vouches for itself, so:
//!
//! * the certificate's names say nothing an attacker could not also write
//!   into their own certificate — the only meaningful check is that the
//!   certificate is *the very one* that was pinned or authorized, and the
//!   SHA-256 fingerprint of the whole DER certificate establishes exactly
//!   that (it covers the key, the names and the dates);
//! * expiry is a CA's revocation mechanism; here revocation is explicit
//!   (`certs revoke`, `certs unpin`), and expiry would only make a working
//!   setup fail one day for no security gain. Certificates are generated
//!   with a 20-year validity so that other tools inspecting them are content,
//!   but Sightline ignores the dates, the subject alternative names, the key
//!   usages and any chain;
//! * hosts are reached by IP address, `.local` names or SSH tunnels, which
//!   name checks would break.
//!
//! What *is* checked: the TLS 1.3 CertificateVerify signature, made with the
//! private key of the presented certificate over the handshake transcript. So
//! presenting a pinned certificate is useless without its private key, which
//! never leaves its machine (`key.pem`, mode 0600).
//!
//! ## Protocol choices
//!
//! * **TLS 1.3 only.** TLS 1.2 is never offered; verifiers refuse TLS 1.2
//!   signatures outright.
//! * **One session suite: `TLS13_AES_256_GCM_SHA384`**
//!   ([`session_provider`](crate::session_provider)), with X25519,
//!   secp256r1 or secp384r1 key exchange, all from the ring provider. A
//!   single suite leaves nothing to negotiate down.
//! * **QUIC initial packets use AES-128-GCM** ([`quic_initial_suite`](crate::quic_initial_suite)):
//!   RFC 9001 §5 mandates it for initial packets, whose keys derive from
//!   public connection IDs anyway. The session itself uses the suite above.
//! * **No 0-RTT and no session resumption.** 0-RTT data can be replayed, and
//!   a resumed session would skip the pin and authorization checks (a revoked
//!   viewer could come back with an old ticket). Full handshakes are cheap
//!   compared with a display session.
