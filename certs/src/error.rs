//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while creating, loading or using identities,
/// trust files and TLS configurations.
///
/// Every variant's message is meant to be shown to a person as is: it names
/// the file involved and, where there is an obvious fix, suggests it.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum CertError {
    /// A file or directory could not be read or written.
    ///
    /// Likely causes: wrong permissions, a read-only file system, a full disk,
    /// or a path that points at a directory instead of a file (or vice versa).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory that was being accessed.
        path: PathBuf,
        /// The underlying operating system error.
        #[source]
        source: io::Error,
    },

    /// A required trust file does not exist.
    ///
    /// Likely cause: the path is misspelled, or nobody has created the file yet
    /// (for the authorized viewers file: no viewer has been authorized with
    /// `certs authorize`). Callers decide whether that is fatal; use the
    /// `load_or_empty` constructors to treat it as an empty list.
    #[error("{} does not exist", path.display())]
    NotFound {
        /// The missing file.
        path: PathBuf,
    },

    /// An identity directory lacks one of its files.
    ///
    /// Likely cause: the identity was never created in this directory, the
    /// directory path is wrong, or only some of its files were copied.
    #[error(
        "no identity in {}: {} is missing; create one with `certs create --role host|viewer --dir {}` \
         (add --force to replace a partial identity)",
        dir.display(),
        missing.display(),
        dir.display()
    )]
    NoIdentity {
        /// The identity directory.
        dir: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },

    /// A line of a trust file (authorized viewers or known hosts) is malformed.
    ///
    /// Likely cause: a hand edit with a typo, a truncated fingerprint, or a
    /// file of some other format given by mistake.
    #[error("{}:{line}: {msg}", path.display())]
    Parse {
        /// The file being parsed.
        path: PathBuf,
        /// 1-based line number of the offending line.
        line: usize,
        /// What is wrong with it.
        msg: String,
    },

    /// A PEM file does not contain what it should (a certificate or a PKCS#8
    /// private key).
    ///
    /// Likely cause: the wrong file was given (e.g. the key instead of the
    /// certificate), the file is truncated, or the key is in a format other
    /// than unencrypted PKCS#8 (`-----BEGIN PRIVATE KEY-----`).
    #[error("{}: {msg}", path.display())]
    Pem {
        /// The PEM file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },

    /// The private key of an identity does not belong to its certificate.
    ///
    /// Likely cause: `cert.pem` and `key.pem` come from two different
    /// identities (files copied from different places).
    #[error(
        "{}: the private key does not match the certificate ({source}); \
         recreate the identity with `certs create --force`",
        dir.display()
    )]
    KeyMismatch {
        /// The identity directory.
        dir: PathBuf,
        /// What rustls reported.
        #[source]
        source: rustls::Error,
    },

    /// Generating a key pair or a certificate failed.
    ///
    /// Likely cause: the operating system's random number generator is not
    /// available, or the requested name cannot be encoded in a certificate.
    #[error("could not generate the identity: {0}")]
    Generate(#[from] rcgen::Error),

    /// Building a TLS configuration failed.
    ///
    /// Likely cause: the identity's key is not usable with the session crypto
    /// provider (only ECDSA P-256/P-384, Ed25519 and RSA keys are), or the
    /// certificate is corrupt.
    #[error("TLS configuration error: {0}")]
    Tls(#[from] rustls::Error),

    /// A fingerprint string could not be parsed.
    ///
    /// Likely cause: a copy/paste that lost characters. A fingerprint is 32
    /// bytes of hex, e.g. `SHA256:AB:01:...` as printed by `certs fingerprint`.
    #[error("invalid fingerprint: {0}")]
    BadFingerprint(String),

    /// An identity or viewer name is unusable.
    ///
    /// Likely cause: an empty name, or one containing line breaks or other
    /// control characters (names are stored one per line).
    #[error("invalid name: {0}")]
    BadName(String),

    /// A known-hosts key is unusable.
    ///
    /// Likely cause: an empty host, or one containing white space (the file
    /// format is `<host:port> <fingerprint>`).
    #[error("invalid host {0:?}: expected HOST:PORT without white space")]
    BadHost(String),

    /// A pairing code is unusable.
    ///
    /// Likely cause: a typo or a missing digit; codes are the eight digits
    /// `host-agent pair` printed on the host.
    #[error("invalid pairing code: {0}")]
    BadPairingCode(String),
}

impl CertError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        CertError::Io {
            path: path.into(),
            source,
        }
    }
}
