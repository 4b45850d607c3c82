//! Pairing: a viewer and a host that have never met pin each other's
//! certificate after a person types a one-time code shown on the host.
//!
//! The code is never sent, in the clear or otherwise. Both sides run SPAKE2
//! (a password-authenticated key exchange) with the code as password and
//! both certificate fingerprints as the SPAKE2 identities, then prove to each
//! other that they derived the same key with HMACs keyed from it and from
//! the TLS connection's exporter secret. An active man in the middle who
//! terminated TLS with its own certificate learns nothing it could test
//! guesses against offline: each of its sessions tests exactly one guess, and
//! the host burns the code after a few failures. See [`crate::design`] for
//! the reasoning and the alternatives that were rejected.
//!
//! This module holds the parts without I/O:
//!
//! * [`PairingCode`]: eight random digits, shown as `1234-5678`;
//! * [`ViewerPairing`] / [`HostPairing`]: the key exchange and key
//!   confirmation, bound to a [`PairingBinding`] (both fingerprints and a
//!   TLS exporter value);
//! * [`PairingWindow`]: the host's one-time pairing window file (code,
//!   expiry, failure count), written by `host-agent pair` and honoured by a
//!   running host;
//! * [`PairingHostVerifier`]: the viewer's TLS verifier during pairing,
//!   which accepts the host's certificate provisionally (the key exchange
//!   authenticates it) but still refuses a host whose pinned key changed.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::rand::SecureRandom;
use ring::{hkdf, hmac};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use spake2::{Ed25519Group, Identity as SpakeId, Password, Spake2};

use crate::fsutil::{self, Mode};
use crate::verify::{signature_algorithms, tls12_refused, tls13_signature};
use crate::{CertError, Fingerprint, HostKeyRejected, PinOutcome};

/// Digits in a pairing code.
pub const PAIR_CODE_DIGITS: usize = 8;

/// Label for the TLS exporter value both sides mix into the confirmation keys
/// (RFC 8446 §7.5 / RFC 5705 keying material exporter).
pub const PAIR_EXPORTER_LABEL: &[u8] = b"EXPORTER-sightline-pair/1";

/// Length of a key-confirmation MAC (HMAC-SHA256).
pub const CONFIRM_LEN: usize = 32;

/// Default lifetime of a pairing window.
pub const DEFAULT_PAIR_TTL: Duration = Duration::from_secs(300);

/// Default number of wrong attempts after which a code is burned.
pub const DEFAULT_PAIR_MAX_FAILURES: u32 = 3;

/// A one-time pairing code: [`PAIR_CODE_DIGITS`] decimal digits from the
/// operating system's random generator. Displayed as `1234-5678`; parsing
/// ignores spaces and dashes. `Debug` does not show the digits.
#[derive(Clone, PartialEq, Eq)]
pub struct PairingCode([u8; PAIR_CODE_DIGITS]);

impl PairingCode {
    /// A fresh random code.
    pub fn generate() -> Result<PairingCode, CertError> {
        let rng = ring::rand::SystemRandom::new();
        let mut digits = [0u8; PAIR_CODE_DIGITS];
        for d in &mut digits {
            // Rejection sampling keeps every digit uniform.
            loop {
                let mut b = [0u8; 1];
                rng.fill(&mut b).map_err(|_| {
                    CertError::io(
                        "random generator",
                        std::io::Error::other("the operating system has no random source"),
                    )
                })?;
                if b[0] < 250 {
                    *d = b'0' + b[0] % 10;
                    break;
                }
            }
        }
        Ok(PairingCode(digits))
    }

    /// Parses a code as a person typed it: digits, with any spaces or dashes.
    pub fn parse(s: &str) -> Result<PairingCode, CertError> {
        let digits: Vec<u8> = s
            .bytes()
            .filter(|b| !matches!(b, b' ' | b'-' | b'\t'))
            .collect();
        if digits.len() != PAIR_CODE_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
            return Err(CertError::BadPairingCode(format!(
                "expected {PAIR_CODE_DIGITS} digits as shown by `host-agent pair` (e.g. 1234-5678)"
            )));
        }
        let mut out = [0u8; PAIR_CODE_DIGITS];
        out.copy_from_slice(&digits);
        Ok(PairingCode(out))
    }

    /// The digits without separator.
    pub fn digits(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Display for PairingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.digits();
        write!(f, "{}-{}", &d[..4], &d[4..])
    }
}

impl fmt::Debug for PairingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PairingCode(********)")
    }
}

/// What a pairing exchange is bound to: both certificates (as the TLS
/// handshake authenticated them) and the TLS connection itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairingBinding {
    /// Fingerprint of the viewer's certificate.
    pub viewer: Fingerprint,
    /// Fingerprint of the host's certificate.
    pub host: Fingerprint,
    /// 32 bytes from the TLS exporter with [`PAIR_EXPORTER_LABEL`] and an
    /// empty context.
    pub channel: [u8; 32],
}

impl PairingBinding {
    fn identities(&self) -> (SpakeId, SpakeId) {
        let mut a = b"sightline-pair/1 viewer ".to_vec();
        a.extend_from_slice(&self.viewer.0);
        let mut b = b"sightline-pair/1 host ".to_vec();
        b.extend_from_slice(&self.host.0);
        (SpakeId::new(&a), SpakeId::new(&b))
    }

    /// The two confirmation keys (host's, viewer's) from the SPAKE2 key.
    fn confirm_keys(&self, spake_key: &[u8]) -> (hmac::Key, hmac::Key) {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &self.channel).extract(spake_key);
        let expand = |info: &'static [u8]| {
            let infos = [info];
            let okm = prk
                .expand(&infos, hmac::HMAC_SHA256)
                .expect("HMAC-SHA256 key length is within HKDF's limit");
            hmac::Key::from(okm)
        };
        (
            expand(b"sightline-pair/1 host confirm"),
            expand(b"sightline-pair/1 viewer confirm"),
        )
    }
}

/// Why a pairing exchange failed, as seen by one side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairingError {
    /// The peer's key-exchange message is malformed (not a SPAKE2 message,
    /// or one from the wrong side).
    #[error("malformed key-exchange message from the peer: {0}")]
    Malformed(String),
    /// The peer's key confirmation does not match: the codes differ, or
    /// someone between the two machines terminated TLS (the fingerprints or
    /// the TLS channel differ between the two ends).
    #[error(
        "the pairing code did not match (a mistyped or expired code, or someone intercepting \
         the connection)"
    )]
    Mismatch,
}

fn transcript(msg_a: &[u8], msg_b: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(msg_a.len() + msg_b.len() + 4);
    t.extend_from_slice(&(msg_a.len() as u16).to_le_bytes());
    t.extend_from_slice(msg_a);
    t.extend_from_slice(&(msg_b.len() as u16).to_le_bytes());
    t.extend_from_slice(msg_b);
    t
}

fn tag(key: &hmac::Key, transcript: &[u8]) -> [u8; CONFIRM_LEN] {
    let mut out = [0u8; CONFIRM_LEN];
    out.copy_from_slice(hmac::sign(key, transcript).as_ref());
    out
}

/// The viewer's half of the exchange (SPAKE2 side A).
///
/// 1. [`ViewerPairing::start`] gives the first message for the host.
/// 2. [`ViewerPairing::finish`] takes the host's reply and confirmation; on
///    success it returns the viewer's confirmation for the host, and only
///    then may the viewer pin the host.
pub struct ViewerPairing {
    spake: Spake2<Ed25519Group>,
    msg_a: Vec<u8>,
    binding: PairingBinding,
}

impl fmt::Debug for ViewerPairing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViewerPairing")
            .field("binding", &self.binding)
            .finish_non_exhaustive()
    }
}

impl ViewerPairing {
    /// Starts the exchange; returns the state and the message for the host.
    pub fn start(code: &PairingCode, binding: PairingBinding) -> (ViewerPairing, Vec<u8>) {
        let (id_a, id_b) = binding.identities();
        let (spake, msg_a) =
            Spake2::<Ed25519Group>::start_a(&Password::new(code.digits()), &id_a, &id_b);
        (
            ViewerPairing {
                spake,
                msg_a: msg_a.clone(),
                binding,
            },
            msg_a,
        )
    }

    /// Checks the host's confirmation; returns the viewer's.
    pub fn finish(
        self,
        msg_b: &[u8],
        host_confirm: &[u8],
    ) -> Result<[u8; CONFIRM_LEN], PairingError> {
        let key = self
            .spake
            .finish(msg_b)
            .map_err(|e| PairingError::Malformed(format!("{e:?}")))?;
        let (host_key, viewer_key) = self.binding.confirm_keys(&key);
        let t = transcript(&self.msg_a, msg_b);
        hmac::verify(&host_key, &t, host_confirm).map_err(|_| PairingError::Mismatch)?;
        Ok(tag(&viewer_key, &t))
    }
}

/// The host's half of the exchange (SPAKE2 side B).
pub struct HostPairing {
    viewer_key: hmac::Key,
    transcript: Vec<u8>,
}

impl fmt::Debug for HostPairing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostPairing").finish_non_exhaustive()
    }
}

/// What the host sends back: its SPAKE2 message and its key confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostReply {
    /// SPAKE2 side B message.
    pub msg_b: Vec<u8>,
    /// HMAC proving the host derived the key.
    pub confirm: [u8; CONFIRM_LEN],
}

impl HostPairing {
    /// Answers the viewer's first message.
    pub fn respond(
        code: &PairingCode,
        binding: PairingBinding,
        msg_a: &[u8],
    ) -> Result<(HostPairing, HostReply), PairingError> {
        let (id_a, id_b) = binding.identities();
        let (spake, msg_b) =
            Spake2::<Ed25519Group>::start_b(&Password::new(code.digits()), &id_a, &id_b);
        let key = spake
            .finish(msg_a)
            .map_err(|e| PairingError::Malformed(format!("{e:?}")))?;
        let (host_key, viewer_key) = binding.confirm_keys(&key);
        let t = transcript(msg_a, &msg_b);
        let confirm = tag(&host_key, &t);
        Ok((
            HostPairing {
                viewer_key,
                transcript: t,
            },
            HostReply { msg_b, confirm },
        ))
    }

    /// Checks the viewer's confirmation (constant time).
    pub fn verify(&self, viewer_confirm: &[u8]) -> Result<(), PairingError> {
        hmac::verify(&self.viewer_key, &self.transcript, viewer_confirm)
            .map_err(|_| PairingError::Mismatch)
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A host's pairing window: the one-time code, when it expires, and how many
/// wrong attempts it has seen. Stored in a private file (0600) that
/// `host-agent pair` writes and the running host reads on every pairing
/// attempt; the host deletes it when a viewer paired, when it expired, or
/// when it was burned by [`max_failures`](Self::max_failures) wrong attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingWindow {
    /// The code.
    pub code: PairingCode,
    /// When it was opened (Unix seconds).
    pub opened_unix_s: u64,
    /// When it closes (Unix seconds).
    pub expires_unix_s: u64,
    /// Name to authorize the viewer under (else the viewer's own name).
    pub name: Option<String>,
    /// Wrong attempts so far.
    pub failures: u32,
    /// Wrong attempts that burn the code.
    pub max_failures: u32,
}

const WINDOW_HEADER: &str =
    "# Sightline pairing window: a one-time code for `viewer HOST --pair CODE`.\n\
# Written by `host-agent pair`; deleted when used, expired or after too many wrong codes.\n";

impl PairingWindow {
    /// A new window with a fresh code, open for `ttl` from `now_unix_s`.
    pub fn open(
        ttl: Duration,
        name: Option<&str>,
        max_failures: u32,
        now_unix_s: u64,
    ) -> Result<PairingWindow, CertError> {
        let name = match name {
            Some(n) => Some(crate::identity::validate_name(n)?.to_owned()),
            None => None,
        };
        Ok(PairingWindow {
            code: PairingCode::generate()?,
            opened_unix_s: now_unix_s,
            expires_unix_s: now_unix_s.saturating_add(ttl.as_secs().max(1)),
            name,
            failures: 0,
            max_failures: max_failures.max(1),
        })
    }

    /// Whether the code may still be used at `now_unix_s`.
    pub fn is_open(&self, now_unix_s: u64) -> bool {
        now_unix_s < self.expires_unix_s && self.failures < self.max_failures
    }

    /// Why the window is closed at `now_unix_s`, if it is.
    pub fn closed_reason(&self, now_unix_s: u64) -> Option<&'static str> {
        if self.failures >= self.max_failures {
            Some("burned after too many wrong codes")
        } else if now_unix_s >= self.expires_unix_s {
            Some("expired")
        } else {
            None
        }
    }

    /// The file contents.
    pub fn to_text(&self) -> String {
        let mut s = String::from(WINDOW_HEADER);
        s.push_str(&format!("code {}\n", self.code.digits()));
        s.push_str(&format!("opened {}\n", self.opened_unix_s));
        s.push_str(&format!("expires {}\n", self.expires_unix_s));
        s.push_str(&format!("failures {}\n", self.failures));
        s.push_str(&format!("max_failures {}\n", self.max_failures));
        if let Some(n) = &self.name {
            s.push_str(&format!("name {n}\n"));
        }
        s
    }

    /// Parses the file format; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<PairingWindow, CertError> {
        let err = |line: usize, msg: &str| CertError::Parse {
            path: path.to_path_buf(),
            line,
            msg: msg.to_owned(),
        };
        let (mut code, mut opened, mut expires, mut failures, mut max, mut name) =
            (None, None, None, 0u32, DEFAULT_PAIR_MAX_FAILURES, None);
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            let value = value.trim();
            let num = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| err(line_no, "expected a number"))
            };
            match key {
                "code" => {
                    code =
                        Some(PairingCode::parse(value).map_err(|e| err(line_no, &e.to_string()))?)
                }
                "opened" => opened = Some(num(value)?),
                "expires" => expires = Some(num(value)?),
                "failures" => failures = num(value)?.min(u64::from(u32::MAX)) as u32,
                "max_failures" => max = num(value)?.clamp(1, u64::from(u32::MAX)) as u32,
                "name" => name = Some(value.to_owned()).filter(|n| !n.is_empty()),
                _ => return Err(err(line_no, &format!("unknown key {key:?}"))),
            }
        }
        let missing = |what: &str| err(0, &format!("no `{what}` line"));
        Ok(PairingWindow {
            code: code.ok_or_else(|| missing("code"))?,
            opened_unix_s: opened.ok_or_else(|| missing("opened"))?,
            expires_unix_s: expires.ok_or_else(|| missing("expires"))?,
            name,
            failures,
            max_failures: max,
        })
    }

    /// Loads the window at `path`; `None` when there is none.
    pub fn load(path: &Path) -> Result<Option<PairingWindow>, CertError> {
        match fsutil::read_optional(path)? {
            Some(text) => Self::parse(&text, path).map(Some),
            None => Ok(None),
        }
    }

    /// Writes the window atomically, readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), CertError> {
        fsutil::write_atomic(path, self.to_text().as_bytes(), Mode::Private)
    }

    /// Deletes the window file; a missing file is fine.
    pub fn remove(path: &Path) -> Result<(), CertError> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(CertError::io(path, e)),
        }
    }
}

/// The viewer's host verifier while pairing.
///
/// A host without a pin is accepted *provisionally*: the TLS 1.3 signature is
/// still checked (the host owns the certificate it shows), and the pairing
/// exchange that follows authenticates that certificate through the code.
/// Nothing but pairing messages may be exchanged on such a connection, and
/// the host is pinned only after the exchange succeeded. A host that is
/// pinned to a *different* key is refused, exactly as in a normal session
/// ([`PinOutcome::Mismatch`], both fingerprints shown).
#[derive(Debug)]
pub struct PairingHostVerifier {
    host: String,
    pinned: Option<Fingerprint>,
    known_hosts: Option<std::path::PathBuf>,
    presented: Mutex<Option<Fingerprint>>,
}

impl PairingHostVerifier {
    /// A verifier for pairing with `host` (`host:port`), whose current pin
    /// (if any) is `pinned`.
    pub fn new(
        host: &str,
        pinned: Option<Fingerprint>,
        known_hosts: Option<std::path::PathBuf>,
    ) -> Arc<Self> {
        Arc::new(PairingHostVerifier {
            host: host.to_owned(),
            pinned,
            known_hosts,
            presented: Mutex::new(None),
        })
    }

    /// The fingerprint the host presented, once the handshake got that far.
    pub fn presented(&self) -> Option<Fingerprint> {
        *self
            .presented
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl ServerCertVerifier for PairingHostVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = Fingerprint::of_der(end_entity.as_ref());
        *self
            .presented
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(presented);
        match self.pinned {
            Some(pinned) if pinned != presented => {
                let outcome = PinOutcome::Mismatch {
                    host: self.host.clone(),
                    pinned,
                    presented,
                };
                tracing::warn!(host = %self.host, "{outcome}");
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    OtherError(Arc::new(HostKeyRejected {
                        outcome,
                        known_hosts: self.known_hosts.clone(),
                    })),
                )))
            }
            _ => Ok(ServerCertVerified::assertion()),
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

/// Whether the host currently admits viewers it does not know, for pairing
/// only (see [`AuthorizedViewerVerifier::with_pairing`](crate::AuthorizedViewerVerifier::with_pairing)).
pub trait PairingGate: Send + Sync + fmt::Debug {
    /// True while a pairing window is open.
    fn admits_unknown_viewers(&self) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding() -> PairingBinding {
        PairingBinding {
            viewer: Fingerprint([1; 32]),
            host: Fingerprint([2; 32]),
            channel: [3; 32],
        }
    }

    fn run(
        viewer_code: &PairingCode,
        viewer_binding: PairingBinding,
        host_code: &PairingCode,
        host_binding: PairingBinding,
    ) -> Result<(), PairingError> {
        let (viewer, msg_a) = ViewerPairing::start(viewer_code, viewer_binding);
        let (host, reply) = HostPairing::respond(host_code, host_binding, &msg_a)?;
        let confirm = viewer.finish(&reply.msg_b, &reply.confirm)?;
        host.verify(&confirm)
    }

    #[test]
    fn code_format_and_parsing() {
        let c = PairingCode::generate().unwrap();
        assert_eq!(c.digits().len(), 8);
        let shown = c.to_string();
        assert_eq!(shown.len(), 9);
        assert_eq!(&shown[4..5], "-");
        assert_eq!(PairingCode::parse(&shown).unwrap(), c);
        assert_eq!(
            PairingCode::parse(" 1234 5678 ").unwrap().digits(),
            "12345678"
        );
        assert!(PairingCode::parse("1234-567").is_err());
        assert!(PairingCode::parse("1234-567a").is_err());
        assert!(!format!("{c:?}").contains(c.digits()));
        // Codes differ (the chance of 8 equal draws is 1e-56).
        let many: std::collections::HashSet<_> = (0..8)
            .map(|_| PairingCode::generate().unwrap().digits().to_owned())
            .collect();
        assert!(many.len() > 1);
    }

    #[test]
    fn right_code_pairs() {
        let code = PairingCode::parse("12345678").unwrap();
        run(&code, binding(), &code, binding()).unwrap();
    }

    #[test]
    fn wrong_code_fails_on_both_sides() {
        let right = PairingCode::parse("12345678").unwrap();
        let wrong = PairingCode::parse("12345679").unwrap();
        let (viewer, msg_a) = ViewerPairing::start(&wrong, binding());
        let (host, reply) = HostPairing::respond(&right, binding(), &msg_a).unwrap();
        assert_eq!(
            viewer.finish(&reply.msg_b, &reply.confirm),
            Err(PairingError::Mismatch)
        );
        // A viewer that lies about its confirmation is caught by the host too.
        assert_eq!(host.verify(&[0u8; 32]), Err(PairingError::Mismatch));
    }

    #[test]
    fn man_in_the_middle_with_the_right_code_still_fails() {
        // Even an attacker who somehow knew the code cannot make both ends agree when it
        // terminated TLS: the ends see different fingerprints and channels.
        let code = PairingCode::parse("87654321").unwrap();
        let mut seen_by_host = binding();
        seen_by_host.viewer = Fingerprint([9; 32]); // the attacker's certificate
        assert_eq!(
            run(&code, binding(), &code, seen_by_host),
            Err(PairingError::Mismatch)
        );
        let mut other_channel = binding();
        other_channel.channel = [4; 32];
        assert_eq!(
            run(&code, binding(), &code, other_channel),
            Err(PairingError::Mismatch)
        );
    }

    #[test]
    fn malformed_messages_are_errors() {
        let code = PairingCode::parse("12345678").unwrap();
        assert!(matches!(
            HostPairing::respond(&code, binding(), b"short"),
            Err(PairingError::Malformed(_))
        ));
        let (viewer, msg_a) = ViewerPairing::start(&code, binding());
        // Our own message reflected back is from the wrong side.
        assert!(matches!(
            viewer.finish(&msg_a, &[0; 32]),
            Err(PairingError::Malformed(_))
        ));
    }

    #[test]
    fn window_file_round_trip_and_expiry() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("pairing");
        assert_eq!(PairingWindow::load(&path).unwrap(), None);
        let w = PairingWindow::open(Duration::from_secs(60), Some("alice"), 3, 1000).unwrap();
        w.save(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let mut back = PairingWindow::load(&path).unwrap().unwrap();
        assert_eq!(back, w);
        assert!(back.is_open(1059));
        assert!(!back.is_open(1060));
        assert_eq!(back.closed_reason(1060), Some("expired"));
        back.failures = 3;
        assert!(!back.is_open(1001));
        assert_eq!(
            back.closed_reason(1001),
            Some("burned after too many wrong codes")
        );
        PairingWindow::remove(&path).unwrap();
        PairingWindow::remove(&path).unwrap();
        assert_eq!(PairingWindow::load(&path).unwrap(), None);
        assert!(PairingWindow::parse("code 1\n", &path).is_err());
        assert!(PairingWindow::parse("bogus 1\n", &path).is_err());
    }
}
