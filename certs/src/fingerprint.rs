//! SHA-256 fingerprints of DER certificates.

use std::fmt;
use std::str::FromStr;

use crate::CertError;

/// The SHA-256 digest of a DER-encoded certificate: the identity of a host or
/// viewer.
///
/// Displayed as `SHA256:` followed by 32 upper-case hex byte pairs joined with
/// `:` (the form printed by `certs fingerprint`). Parsing also accepts the hex
/// without the `SHA256:` prefix, in either case, with or without the colons.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Fingerprint of a DER-encoded certificate.
    pub fn of_der(cert_der: &[u8]) -> Fingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, cert_der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Fingerprint(out)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SHA256:")?;
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

const EXPECTED: &str = "expected SHA256: followed by 32 hex byte pairs, e.g. SHA256:AB:01:...";

impl FromStr for Fingerprint {
    type Err = CertError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| CertError::BadFingerprint(format!("{s:?}: {why}; {EXPECTED}"));
        let t = s.trim();
        let hex = match t.get(..7) {
            Some(p) if p.eq_ignore_ascii_case("sha256:") => &t[7..],
            _ => t,
        };
        let digits: Vec<u8> = if hex.contains(':') {
            let groups: Vec<&str> = hex.split(':').collect();
            if groups.len() != 32 || groups.iter().any(|g| g.len() != 2) {
                return Err(bad(
                    "colon-separated form must have 32 groups of 2 hex digits",
                ));
            }
            groups.concat().into_bytes()
        } else {
            hex.as_bytes().to_vec()
        };
        if digits.len() != 64 {
            return Err(bad(&format!(
                "has {} hex digits instead of 64",
                digits.len()
            )));
        }
        let mut out = [0u8; 32];
        for (i, pair) in digits.chunks_exact(2).enumerate() {
            match (hex_val(pair[0]), hex_val(pair[1])) {
                (Some(hi), Some(lo)) => out[i] = (hi << 4) | lo,
                _ => return Err(bad("contains a character that is not a hex digit")),
            }
        }
        Ok(Fingerprint(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Fingerprint {
        let mut b = [0u8; 32];
        for (i, x) in b.iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(37).wrapping_add(0xA5);
        }
        Fingerprint(b)
    }

    #[test]
    fn display_format() {
        let fp = Fingerprint([0xAB; 32]);
        let s = fp.to_string();
        assert!(s.starts_with("SHA256:AB:AB:"));
        assert_eq!(s.len(), 7 + 32 * 2 + 31);
        assert_eq!(format!("{fp:?}"), s);
        let fp = Fingerprint::of_der(b"");
        // SHA-256 of the empty string.
        assert!(fp.to_string().starts_with("SHA256:E3:B0:C4:42:98:FC:1C:14"));
    }

    #[test]
    fn round_trip_all_forms() {
        let fp = sample();
        let full = fp.to_string();
        assert_eq!(full.parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(full.to_lowercase().parse::<Fingerprint>().unwrap(), fp);
        let no_prefix = full.trim_start_matches("SHA256:").to_string();
        assert_eq!(no_prefix.parse::<Fingerprint>().unwrap(), fp);
        let bare = no_prefix.replace(':', "");
        assert_eq!(bare.parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(bare.to_lowercase().parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(format!("sha256:{bare}").parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(format!("  {full}\n").parse::<Fingerprint>().unwrap(), fp);
    }

    #[test]
    fn rejects_bad_input() {
        let full = sample().to_string();
        let bare = full.trim_start_matches("SHA256:").replace(':', "");
        for bad in [
            String::new(),
            "SHA256:".to_string(),
            full[..full.len() - 3].to_string(),
            format!("{full}:00"),
            bare[..62].to_string(),
            format!("{bare}00"),
            format!("G{}", &bare[1..]),
            format!("MD5:{bare}"),
            full.replacen(':', "::", 2),
            format!("SHA256:{}", "é".repeat(32)),
        ] {
            let err = bad.parse::<Fingerprint>().unwrap_err();
            assert!(matches!(err, CertError::BadFingerprint(_)), "{bad:?}");
            assert!(err.to_string().contains("SHA256:"), "{err}");
        }
    }
}
