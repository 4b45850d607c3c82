//! Self-signed host and viewer identities.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::SecureRandom;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::fsutil::{self, Mode};
use crate::{CertError, Fingerprint};

/// File name of the certificate (PEM) inside an identity directory.
pub const CERT_FILE: &str = "cert.pem";
/// File name of the private key (PKCS#8 PEM, mode 0600) inside an identity directory.
pub const KEY_FILE: &str = "key.pem";
/// File name of the human-readable identity name inside an identity directory.
pub const NAME_FILE: &str = "name";

/// How long a generated certificate is valid. Validity is not checked by the
/// peers (see [`crate::design`]), but other tools inspecting the certificate
/// may; 20 years keeps them quiet for the lifetime of a machine.
const VALIDITY_YEARS: i32 = 20;

/// Which side of a Sightline connection an identity belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The workstation agent that captures and streams its display.
    Host,
    /// The desktop application that shows a host's display.
    Viewer,
}

impl Role {
    /// Lower-case name as used on the command line (`host` / `viewer`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Host => "host",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A host's or viewer's long-term identity: a self-signed ECDSA P-256
/// certificate, its private key and a human-readable name.
///
/// On disk an identity is a directory holding [`CERT_FILE`], [`KEY_FILE`]
/// and [`NAME_FILE`]. The `Debug` output never contains the private key.
pub struct Identity {
    /// Human-readable name (by default the machine's host name).
    pub name: String,
    /// The self-signed certificate, DER encoded.
    pub cert_der: CertificateDer<'static>,
    key_der: PrivatePkcs8KeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            name: self.name.clone(),
            cert_der: self.cert_der.clone(),
            key_der: self.key_der.clone_key(),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("name", &self.name)
            .field("fingerprint", &self.fingerprint())
            .field("key_der", &"<redacted>")
            .finish()
    }
}

/// Checks that a name can be stored on one line of a text file.
pub(crate) fn validate_name(name: &str) -> Result<&str, CertError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(CertError::BadName("the name is empty".into()));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(CertError::BadName(format!(
            "{name:?} contains a line break or another control character"
        )));
    }
    Ok(trimmed)
}

/// Whether `name` can be used as a DNS subject alternative name.
fn is_dns_like(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Today's date (UTC) as (year, month, day).
fn today_utc() -> (i32, u8, u8) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    civil_from_days((secs / 86_400) as i64)
}

/// Converts days since 1970-01-01 into a proleptic Gregorian date
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
}

fn read_pem_file(path: &Path, dir: &Path) -> Result<Vec<u8>, CertError> {
    match fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(CertError::NoIdentity {
            dir: dir.to_path_buf(),
            missing: path.to_path_buf(),
        }),
        Err(e) => Err(CertError::io(path, e)),
    }
}

/// Reads the first certificate of a PEM file.
pub fn load_cert_pem(path: &Path) -> Result<CertificateDer<'static>, CertError> {
    let bytes = fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            CertError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            CertError::io(path, e)
        }
    })?;
    parse_cert_pem(&bytes, path)
}

fn parse_cert_pem(bytes: &[u8], path: &Path) -> Result<CertificateDer<'static>, CertError> {
    CertificateDer::from_pem_slice(bytes).map_err(|e| CertError::Pem {
        path: path.to_path_buf(),
        msg: format!("no usable CERTIFICATE block ({e})"),
    })
}

impl Identity {
    /// Generates a new identity: an ECDSA P-256 key and a self-signed
    /// certificate with common name `name`, valid for 20 years from
    /// yesterday.
    ///
    /// The certificate carries `name` as a DNS subject alternative name when
    /// it is a valid DNS name (host identities also get `localhost`), key
    /// usage digitalSignature, and extended key usage serverAuth (host) or
    /// clientAuth (viewer). None of these are checked by Sightline peers,
    /// which only compare fingerprints; they make the certificate look
    /// sensible to other tools.
    pub fn generate(role: Role, name: &str) -> Result<Identity, CertError> {
        let name = validate_name(name)?.to_string();
        let key_pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;

        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name.as_str());
        dn.push(DnType::OrganizationName, "Sightline");
        params.distinguished_name = dn;

        let mut sans = Vec::new();
        if is_dns_like(&name) {
            sans.push(SanType::DnsName(name.as_str().try_into()?));
        }
        if role == Role::Host && !name.eq_ignore_ascii_case("localhost") {
            sans.push(SanType::DnsName("localhost".try_into()?));
        }
        params.subject_alt_names = sans;

        let (y, m, d) = today_utc();
        // Start yesterday so that a peer with a slightly late clock does not
        // see a certificate from the future (matters only to other tools).
        let (by, bm, bd) = civil_from_days(days_from_civil(y, m, d) - 1);
        params.not_before = rcgen::date_time_ymd(by, bm, bd);
        params.not_after = rcgen::date_time_ymd(y + VALIDITY_YEARS, m, d.min(28));

        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match role {
            Role::Host => ExtendedKeyUsagePurpose::ServerAuth,
            Role::Viewer => ExtendedKeyUsagePurpose::ClientAuth,
        }];

        let mut serial = [0u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut serial)
            .map_err(|_| rcgen::Error::RingUnspecified)?;
        serial[0] &= 0x7F; // positive
        serial[0] |= 0x40; // and exactly 16 bytes long
        params.serial_number = Some(SerialNumber::from_slice(&serial));

        let cert = params.self_signed(&key_pair)?;
        Ok(Identity {
            name,
            cert_der: cert.der().clone(),
            key_der: PrivatePkcs8KeyDer::from(key_pair.serialize_der()),
        })
    }

    /// Writes the identity into `dir` (created with mode 0700 if missing):
    /// `cert.pem`, `key.pem` (mode 0600) and `name`. Existing files are
    /// replaced atomically.
    pub fn save(&self, dir: &Path) -> Result<(), CertError> {
        fsutil::create_private_dir(dir)?;
        let key_pem = pem_key(&self.key_der);
        fsutil::write_atomic(&dir.join(KEY_FILE), key_pem.as_bytes(), Mode::Private)?;
        let cert_pem = fsutil::pem_encode("CERTIFICATE", self.cert_der.as_ref());
        fsutil::write_atomic(&dir.join(CERT_FILE), cert_pem.as_bytes(), Mode::Public)?;
        fsutil::write_atomic(
            &dir.join(NAME_FILE),
            format!("{}\n", self.name).as_bytes(),
            Mode::Public,
        )?;
        Ok(())
    }

    /// Loads the identity stored in `dir` and checks that its key belongs to
    /// its certificate. A missing `cert.pem` or `key.pem` yields
    /// [`CertError::NoIdentity`], whose message suggests `certs create`. A
    /// missing `name` file is tolerated (the directory name is used).
    pub fn load(dir: &Path) -> Result<Identity, CertError> {
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        let cert_pem = read_pem_file(&cert_path, dir)?;
        let key_pem = read_pem_file(&key_path, dir)?;
        let cert_der = parse_cert_pem(&cert_pem, &cert_path)?;
        let key_der = PrivatePkcs8KeyDer::from_pem_slice(&key_pem).map_err(|e| CertError::Pem {
            path: key_path.clone(),
            msg: format!("no usable unencrypted PKCS#8 PRIVATE KEY block ({e})"),
        })?;

        let name_path = dir.join(NAME_FILE);
        let name = match fsutil::read_optional(&name_path)? {
            Some(text) => validate_name(&text)
                .map_err(|e| CertError::Pem {
                    path: name_path.clone(),
                    msg: e.to_string(),
                })?
                .to_string(),
            None => dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "sightline".to_string()),
        };

        let identity = Identity {
            name,
            cert_der,
            key_der,
        };
        rustls::sign::CertifiedKey::from_der(
            identity.cert_chain(),
            identity.key_der(),
            &crate::session_provider(),
        )
        .map_err(|source| CertError::KeyMismatch {
            dir: dir.to_path_buf(),
            source,
        })?;
        Ok(identity)
    }

    /// Loads the identity in `dir`, or generates and saves a new one if the
    /// directory holds no identity at all. Returns the identity and whether
    /// it was created. A directory holding only some of the identity files
    /// is an error rather than being overwritten.
    pub fn load_or_create(
        dir: &Path,
        role: Role,
        name: &str,
    ) -> Result<(Identity, bool), CertError> {
        if Identity::exists_in(dir) {
            return Ok((Identity::load(dir)?, false));
        }
        let identity = Identity::generate(role, name)?;
        identity.save(dir)?;
        tracing::info!(
            dir = %dir.display(),
            fingerprint = %identity.fingerprint(),
            "created new {role} identity {:?}",
            identity.name
        );
        Ok((identity, true))
    }

    /// Whether `dir` holds (some of) an identity: `cert.pem` or `key.pem`.
    pub fn exists_in(dir: &Path) -> bool {
        dir.join(CERT_FILE).exists() || dir.join(KEY_FILE).exists()
    }

    /// The SHA-256 fingerprint of the certificate: what peers pin or authorize.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_der(self.cert_der.as_ref())
    }

    /// A copy of the private key, for rustls.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_der.clone_key())
    }

    /// The certificate chain to present: just the self-signed certificate.
    pub fn cert_chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert_der.clone()]
    }

    /// Path of the certificate file of the identity stored in `dir`.
    pub fn cert_path(dir: &Path) -> PathBuf {
        dir.join(CERT_FILE)
    }
}

fn pem_key(key: &PrivatePkcs8KeyDer<'_>) -> String {
    fsutil::pem_encode("PRIVATE KEY", key.secret_pkcs8_der())
}

/// Inverse of [`civil_from_days`].
fn days_from_civil(y: i32, m: u8, d: u8) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_conversion() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        for days in [-800_000i64, -1, 0, 59, 60, 365, 10_000, 20_000, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        let (y, _, _) = today_utc();
        assert!(y >= 2024);
    }

    #[test]
    fn name_validation() {
        assert_eq!(validate_name("  laptop ").unwrap(), "laptop");
        assert!(validate_name("").is_err());
        assert!(validate_name("a\nb").is_err());
        assert!(is_dns_like("work-station.lan"));
        assert!(!is_dns_like("Alice's laptop"));
        assert!(!is_dns_like("a..b"));
    }

    #[test]
    fn generate_save_load_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("nested/host-id");
        let id = Identity::generate(Role::Host, "workstation").unwrap();
        id.save(&dir).unwrap();
        let loaded = Identity::load(&dir).unwrap();
        assert_eq!(loaded.name, "workstation");
        assert_eq!(loaded.cert_der, id.cert_der);
        assert_eq!(loaded.fingerprint(), id.fingerprint());
        assert_eq!(loaded.key_der().secret_der(), id.key_der().secret_der());
        // Loading twice gives the same fingerprint.
        assert_eq!(
            Identity::load(&dir).unwrap().fingerprint(),
            id.fingerprint()
        );
        // And the key is usable by rustls.
        let provider = crate::session_provider();
        rustls::sign::CertifiedKey::from_der(loaded.cert_chain(), loaded.key_der(), &provider)
            .unwrap()
            .keys_match()
            .unwrap();

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
            assert_eq!(mode(&dir), 0o700);
            // Saving again over an existing identity keeps the key private.
            loaded.save(&dir).unwrap();
            assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
        }
    }

    #[test]
    fn generated_identities_differ_and_names_with_spaces_work() {
        let a = Identity::generate(Role::Viewer, "Alice's laptop").unwrap();
        let b = Identity::generate(Role::Viewer, "Alice's laptop").unwrap();
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.name, "Alice's laptop");
        assert!(matches!(
            Identity::generate(Role::Viewer, " \n"),
            Err(CertError::BadName(_))
        ));
    }

    #[test]
    fn debug_does_not_print_key() {
        let id = Identity::generate(Role::Viewer, "v").unwrap();
        let dbg = format!("{id:?}");
        assert!(dbg.contains("redacted"));
        assert!(dbg.contains(&id.fingerprint().to_string()));
        let key_pem = pem_key(&id.key_der);
        let body: String = key_pem.lines().nth(1).unwrap().chars().take(20).collect();
        assert!(!dbg.contains(&body));
        let der = id.key_der().secret_der().to_vec();
        assert!(!dbg.contains(&format!("{:?}", &der[..8])));
    }

    #[test]
    fn load_missing_names_file_and_suggests_create() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Identity::load(tmp.path()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, CertError::NoIdentity { .. }));
        assert!(msg.contains(CERT_FILE), "{msg}");
        assert!(msg.contains("certs create"), "{msg}");

        let id = Identity::generate(Role::Viewer, "v").unwrap();
        id.save(tmp.path()).unwrap();
        fs::remove_file(tmp.path().join(KEY_FILE)).unwrap();
        let msg = Identity::load(tmp.path()).unwrap_err().to_string();
        assert!(msg.contains(KEY_FILE), "{msg}");
    }

    #[test]
    fn load_detects_mismatched_key() {
        let tmp = tempfile::tempdir().unwrap();
        let a = Identity::generate(Role::Viewer, "a").unwrap();
        let b = Identity::generate(Role::Viewer, "b").unwrap();
        a.save(tmp.path()).unwrap();
        fs::write(tmp.path().join(KEY_FILE), pem_key(&b.key_der)).unwrap();
        assert!(matches!(
            Identity::load(tmp.path()),
            Err(CertError::KeyMismatch { .. })
        ));
        fs::write(tmp.path().join(KEY_FILE), "garbage").unwrap();
        assert!(matches!(
            Identity::load(tmp.path()),
            Err(CertError::Pem { .. })
        ));
    }

    #[test]
    fn load_or_create_creates_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("id");
        let (a, created) = Identity::load_or_create(&dir, Role::Host, "h").unwrap();
        assert!(created);
        let (b, created) = Identity::load_or_create(&dir, Role::Host, "other").unwrap();
        assert!(!created);
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(b.name, "h");
        // A partial identity is not silently replaced.
        fs::remove_file(dir.join(CERT_FILE)).unwrap();
        assert!(matches!(
            Identity::load_or_create(&dir, Role::Host, "h"),
            Err(CertError::NoIdentity { .. })
        ));
    }
}
