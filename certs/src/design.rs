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
//!
//! ## Pairing: a one-time code instead of comparing fingerprints
//!
//! Comparing two 95-character fingerprints by eye is the step people skip. Pairing replaces it
//! with a short code the host shows and the person types on the viewer: `host-agent pair`
//! prints `1234-5678`, `viewer HOST --pair 1234-5678` ends with the host's key pinned on the
//! viewer and the viewer's key in the host's authorized list ([`crate::pairing`]).
//!
//! **The code never crosses the wire, and an attacker gets one guess per connection.** The
//! obvious scheme — one side sends `HMAC(code, viewer_fp ‖ host_fp)` — is broken by an active
//! man in the middle: it terminates TLS on both sides with its own certificate, receives the
//! MAC, and then tries all 10⁸ codes *offline* against it (milliseconds for 8 digits; a 6-digit
//! code falls even faster). Any scheme in which one message lets the attacker test guesses
//! without talking to the host again has this flaw, whatever hash is used.
//!
//! So pairing is a password-authenticated key exchange: SPAKE2 over Ed25519 (the RustCrypto
//! `spake2` crate, pure Rust: no second TLS provider, no aws-lc), with the code as password:
//!
//! * The SPAKE2 identities are `"sightline-pair/1 viewer" ‖ viewer_fp` and
//!   `"sightline-pair/1 host" ‖ host_fp`, the fingerprints as each side saw them in the TLS
//!   handshake. The key confirmation keys come from HKDF-SHA256 over the SPAKE2 key, salted
//!   with 32 bytes of the TLS exporter (`EXPORTER-sightline-pair/1`), and each side sends
//!   `HMAC(confirm_key, msg_A ‖ msg_B)`. A man in the middle who terminated TLS sees other
//!   fingerprints and another exporter on each side, so even knowing the code would not let it
//!   make the two ends agree; without the code, each of its connections is one online guess:
//!   SPAKE2's messages are uniformly random group elements that reveal nothing testable about
//!   the code.
//! * The host proves itself first (its confirmation comes with its SPAKE2 reply); the viewer
//!   checks it before sending its own and before pinning anything. The host records the attempt
//!   as a failure in the window file *before* it sends its reply, so a client that learns from
//!   the reply that its guess was wrong and hangs up has still spent a try, even if the host
//!   crashed meanwhile.
//! * The code is 8 random digits (26.6 bits), valid once, for 5 minutes by default, and burned
//!   after 3 wrong tries: an attacker's chance per window is 3 in 10⁸.
//!
//! **Rate limits** (the host agent's `limits` module): one pairing exchange at a time
//! (the failure counter cannot be raced), after a failure the same address (IPv6: /64) waits
//! 2 s, doubling up to a minute, and at most 10 attempts per minute overall.
//!
//! **What an unknown viewer can reach.** The viewer certificate verifier normally refuses an
//! unknown certificate during the TLS handshake. Only while a pairing window is open
//! ([`PairingGate`](crate::pairing::PairingGate)) does it let an unknown certificate finish the
//! handshake (its CertificateVerify signature is still checked). rustls' verifier cannot see the
//! ALPN, so the host checks after the handshake: a connection that chose `sightline-pair/1`
//! goes to the pairing exchange, which accepts nothing but its own four messages (each at most
//! 1 KiB, with a deadline); an unknown viewer that chose `sightline/1` is closed at once with
//! "not authorized", before any stream is read. No session, video or input is reachable
//! without an authorized certificate.
//!
//! **The viewer's side.** During pairing the viewer accepts the host's certificate
//! provisionally ([`PairingHostVerifier`](crate::pairing::PairingHostVerifier)) — the exchange
//! is what authenticates it — except when that host is already pinned to another key: a changed
//! host key is refused here exactly as in a session, both fingerprints shown, and pairing does
//! not override the pin (`certs unpin` first, after checking why the key changed). The pin is
//! written only after the host's confirmation verified.
//!
//! The window lives in a file (`pairing`, mode 0600, next to the authorized list) that
//! `host-agent pair` writes and the running host re-reads when it changes, like the authorized
//! list: no control socket, and it works for a host run by systemd as another user (the file is
//! handed to the owner of its directory when root writes it).
//!
//! ## Revocation
//!
//! `certs revoke` rewrites the authorized list atomically. The host re-reads it on every
//! connection attempt (the next connection is refused during TLS) and checks it for changes
//! every second, ending the running sessions of every viewer no longer in it with a goodbye
//! ("viewer … was revoked on the host"), releasing its held keys. Session resumption is off, so
//! no ticket outlives a revocation. Every change to the list (added, removed) is in the audit
//! log.
//!
//! ## Limits: a bad peer costs only its own session
//!
//! * Before any TLS work, per source address (IPv6 per /64): a token bucket of new connections
//!   (2 per second, burst 10), refused with a QUIC `CONNECTION_REFUSED`; a cap on handshakes in
//!   flight (32), past half of which an address that has not proven it can receive packets
//!   must answer a QUIC Retry first, so spoofed sources cannot hold handshakes open. The TLS
//!   handshake has a deadline (`--handshake-timeout`).
//! * Per session (sans-IO, in `sightline_protocol::session`): input messages (20,000 per
//!   second, twice that in a burst; each event counts twice when datagram copies are on) and
//!   control messages (200 per second); over the limit the session ends with a goodbye that
//!   names the limit. Framed messages are refused from their length header above 1 MiB; pairing
//!   messages above 1 KiB. An idle session is closed (`--idle-timeout`, 10 s).
//! * Throttled refusals are reported once per address every 10 s with a count, so a flood cannot
//!   fill the disk with audit records.
//!
//! ## The audit log
//!
//! The host writes one JSON object per line (`--audit-log`, `/var/log/sightline/audit.jsonl`
//! for the service): sessions (start and end, viewer name and fingerprint, address, negotiated
//! channels, bytes each way, duration, end reason), refusals with stage and fingerprint,
//! throttling, every pairing attempt and its outcome, pairing windows opened and closed, and
//! authorized-list changes. Codes and keys are never written. Each record is one `write(2)` on an
//! `O_APPEND` file under `flock(2)`, so the host and `host-agent pair` never interleave records;
//! SIGHUP reopens the file for log rotation. The field reference is `docs/audit-log.md`.
