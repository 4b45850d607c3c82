//! The two trust files: the host's authorized viewers and the viewer's known
//! hosts.
//!
//! Both are UTF-8 text with one entry per line; blank lines and lines whose
//! first non-blank character is `#` are ignored. When a file is saved, the
//! comment block at its top (if it was loaded from a file that had one) is
//! kept, otherwise a default explanatory header is written; comments further
//! down are not preserved.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::fsutil::{self, Mode};
use crate::{CertError, Fingerprint};

const AUTHORIZED_HEADER: &str = "\
# Sightline authorized viewers: viewers whose certificate fingerprint is listed
# here may connect to this host. One entry per line: <fingerprint> <name>
# Manage with `certs authorize`, `certs revoke` and `certs list --authorized`.";

const KNOWN_HOSTS_HEADER: &str = "\
# Sightline known hosts: the pinned certificate fingerprint of each host this
# viewer connects to. One entry per line: <host:port> <fingerprint>
# Manage with `certs pin`, `certs unpin` and `certs list --known-hosts`.";

/// Splits a trust file into (1-based line number, trimmed content) for
/// entry lines, and the leading comment block.
fn entry_lines(text: &str) -> (Vec<String>, Vec<(usize, &str)>) {
    let mut header = Vec::new();
    let mut entries = Vec::new();
    let mut in_header = true;
    for (idx, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('#') {
            if in_header {
                header.push(raw.trim_end().to_string());
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        in_header = false;
        entries.push((idx + 1, line));
    }
    (header, entries)
}

fn render(header: &[String], default_header: &str, body: &str) -> String {
    let mut out = String::new();
    if header.is_empty() {
        out.push_str(default_header);
        out.push('\n');
    } else {
        for line in header {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(body);
    out
}

fn parse_error(path: &Path, line: usize, msg: impl Into<String>) -> CertError {
    CertError::Parse {
        path: path.to_path_buf(),
        line,
        msg: msg.into(),
    }
}

/// Replaces control characters (which would break the one-entry-per-line
/// format) with spaces and trims the result.
fn sanitize_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// The host's list of viewers allowed to connect, keyed by certificate
/// fingerprint, each with a human-readable name. Entries keep their order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizedViewers {
    entries: Vec<(Fingerprint, String)>,
    header: Vec<String>,
}

impl AuthorizedViewers {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads the list from `path`. A missing file is
    /// [`CertError::NotFound`]; the host decides whether that is fatal.
    /// A malformed line is a [`CertError::Parse`] naming the line.
    pub fn load(path: &Path) -> Result<Self, CertError> {
        match fsutil::read_optional(path)? {
            Some(text) => Self::parse(&text, path),
            None => Err(CertError::NotFound {
                path: path.to_path_buf(),
            }),
        }
    }

    /// Like [`load`](Self::load), but a missing file is an empty list.
    pub fn load_or_empty(path: &Path) -> Result<Self, CertError> {
        match fsutil::read_optional(path)? {
            Some(text) => Self::parse(&text, path),
            None => Ok(Self::new()),
        }
    }

    /// Parses the file format; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, CertError> {
        let (header, lines) = entry_lines(text);
        let mut list = AuthorizedViewers {
            entries: Vec::new(),
            header,
        };
        for (line_no, line) in lines {
            let (fp_str, name) = match line.split_once(char::is_whitespace) {
                Some((fp, name)) => (fp, name.trim()),
                None => (line, ""),
            };
            let fp: Fingerprint = fp_str.parse().map_err(|e: CertError| {
                parse_error(
                    path,
                    line_no,
                    format!("expected `<fingerprint> <name>`: {e}"),
                )
            })?;
            list.authorize(fp, name);
        }
        Ok(list)
    }

    /// Writes the list to `path` atomically (temporary file + rename),
    /// creating the parent directory if needed.
    pub fn save(&self, path: &Path) -> Result<(), CertError> {
        fsutil::write_atomic(path, self.to_text().as_bytes(), Mode::Public)
    }

    /// The file contents [`save`](Self::save) writes.
    pub fn to_text(&self) -> String {
        let mut body = String::new();
        for (fp, name) in &self.entries {
            if name.is_empty() {
                body.push_str(&format!("{fp}\n"));
            } else {
                body.push_str(&format!("{fp} {name}\n"));
            }
        }
        render(&self.header, AUTHORIZED_HEADER, &body)
    }

    /// Authorizes a viewer. Returns `false` if it was already authorized (its
    /// name is then updated). Control characters in `name` are replaced by
    /// spaces.
    pub fn authorize(&mut self, fp: Fingerprint, name: &str) -> bool {
        let name = sanitize_name(name);
        match self.entries.iter_mut().find(|(f, _)| *f == fp) {
            Some(entry) => {
                entry.1 = name;
                false
            }
            None => {
                self.entries.push((fp, name));
                true
            }
        }
    }

    /// Removes a viewer. Returns whether it was present.
    pub fn revoke(&mut self, fp: &Fingerprint) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(f, _)| f != fp);
        self.entries.len() != before
    }

    /// The name of an authorized viewer, or `None` if it is not authorized.
    pub fn lookup(&self, fp: &Fingerprint) -> Option<&str> {
        self.entries
            .iter()
            .find(|(f, _)| f == fp)
            .map(|(_, n)| n.as_str())
    }

    /// All entries, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&Fingerprint, &str)> {
        self.entries.iter().map(|(f, n)| (f, n.as_str()))
    }

    /// Number of authorized viewers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no viewer is authorized.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Normalizes a known-hosts key: trimmed and lower-cased (host names are
/// case-insensitive).
fn normalize_host(host: &str) -> String {
    host.trim().to_ascii_lowercase()
}

fn check_host(host: &str) -> Result<(), CertError> {
    if host.is_empty()
        || host.starts_with('#')
        || host.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(CertError::BadHost(host.to_string()));
    }
    Ok(())
}

/// The viewer's pinned host fingerprints, keyed by the host string the
/// viewer connects to (`host:port`, compared case-insensitively).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownHosts {
    hosts: BTreeMap<String, Fingerprint>,
    header: Vec<String>,
    path: Option<PathBuf>,
}

impl KnownHosts {
    /// An empty set of pins.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads the pins from `path`; a missing file is an empty set. A
    /// malformed line, or the same host pinned to two different fingerprints,
    /// is a [`CertError::Parse`] naming the line.
    pub fn load_or_empty(path: &Path) -> Result<Self, CertError> {
        let mut known = match fsutil::read_optional(path)? {
            Some(text) => Self::parse(&text, path)?,
            None => Self::new(),
        };
        known.path = Some(path.to_path_buf());
        Ok(known)
    }

    /// Parses the file format; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, CertError> {
        let (header, lines) = entry_lines(text);
        let mut known = KnownHosts {
            hosts: BTreeMap::new(),
            header,
            path: None,
        };
        for (line_no, line) in lines {
            let mut fields = line.split_whitespace();
            let (Some(host), Some(fp_str), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(parse_error(
                    path,
                    line_no,
                    "expected `<host:port> <fingerprint>`",
                ));
            };
            let fp: Fingerprint = fp_str
                .parse()
                .map_err(|e: CertError| parse_error(path, line_no, e.to_string()))?;
            let host = normalize_host(host);
            if let Some(old) = known.hosts.insert(host.clone(), fp) {
                if old != fp {
                    return Err(parse_error(
                        path,
                        line_no,
                        format!(
                            "{host} is pinned twice, to {old} and to {fp}; remove one of the lines"
                        ),
                    ));
                }
            }
        }
        Ok(known)
    }

    /// Writes the pins to `path` atomically (temporary file + rename),
    /// creating the parent directory if needed. Fails with
    /// [`CertError::BadHost`] if a pinned host is empty or contains white
    /// space (it could not be read back).
    pub fn save(&self, path: &Path) -> Result<(), CertError> {
        let text = self.to_text()?;
        fsutil::write_atomic(path, text.as_bytes(), Mode::Public)
    }

    /// The file contents [`save`](Self::save) writes.
    pub fn to_text(&self) -> Result<String, CertError> {
        let mut body = String::new();
        for (host, fp) in &self.hosts {
            check_host(host)?;
            body.push_str(&format!("{host} {fp}\n"));
        }
        Ok(render(&self.header, KNOWN_HOSTS_HEADER, &body))
    }

    /// Pins `host` to `fp`, returning the previous pin if any.
    pub fn pin(&mut self, host: &str, fp: Fingerprint) -> Option<Fingerprint> {
        self.hosts.insert(normalize_host(host), fp)
    }

    /// Removes the pin for `host`. Returns whether there was one.
    pub fn unpin(&mut self, host: &str) -> bool {
        self.hosts.remove(&normalize_host(host)).is_some()
    }

    /// The pinned fingerprint of `host`.
    pub fn lookup(&self, host: &str) -> Option<Fingerprint> {
        self.hosts.get(&normalize_host(host)).copied()
    }

    /// All pins, sorted by host.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Fingerprint)> {
        self.hosts.iter().map(|(h, f)| (h.as_str(), f))
    }

    /// Number of pinned hosts.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether no host is pinned.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The file this set was loaded from, if it came from
    /// [`load_or_empty`](Self::load_or_empty).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(n: u8) -> Fingerprint {
        Fingerprint([n; 32])
    }

    #[test]
    fn authorized_viewers_round_trip_and_revoke() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("authorized_viewers");
        assert!(matches!(
            AuthorizedViewers::load(&path),
            Err(CertError::NotFound { path: p }) if p == path
        ));
        let mut list = AuthorizedViewers::load_or_empty(&path).unwrap();
        assert!(list.is_empty());
        assert!(list.authorize(fp(1), "Alice's laptop"));
        assert!(list.authorize(fp(2), "bob"));
        assert!(!list.authorize(fp(1), "alice\nnew"));
        assert_eq!(list.lookup(&fp(1)), Some("alice new"));
        list.save(&path).unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# Sightline authorized viewers"));
        let mut loaded = AuthorizedViewers::load(&path).unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded.lookup(&fp(2)), Some("bob"));
        let order: Vec<_> = loaded.iter().map(|(f, _)| *f).collect();
        assert_eq!(order, vec![fp(1), fp(2)]);

        assert!(loaded.revoke(&fp(1)));
        assert!(!loaded.revoke(&fp(1)));
        assert_eq!(loaded.lookup(&fp(1)), None);
        loaded.save(&path).unwrap();
        let again = AuthorizedViewers::load(&path).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again, loaded);
    }

    #[test]
    fn authorized_viewers_keeps_custom_header_and_accepts_variants() {
        let path = Path::new("av");
        let fp_bare = fp(0xAB)
            .to_string()
            .trim_start_matches("SHA256:")
            .replace(':', "")
            .to_lowercase();
        let text = format!(
            "# my header\n#second line\n\n{}   spaced  name \n  # later comment\n{fp_bare}\n",
            fp(7)
        );
        let list = AuthorizedViewers::parse(&text, path).unwrap();
        assert_eq!(list.lookup(&fp(7)), Some("spaced  name"));
        assert_eq!(list.lookup(&fp(0xAB)), Some(""));
        let out = list.to_text();
        assert!(out.starts_with("# my header\n#second line\n"));
        assert!(!out.contains("later comment"));
        assert_eq!(AuthorizedViewers::parse(&out, path).unwrap(), list);
    }

    #[test]
    fn authorized_viewers_malformed_line() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("av");
        std::fs::write(
            &path,
            format!("# header\n\n{} ok\nSHA256:12:34 broken\n", fp(1)),
        )
        .unwrap();
        let err = AuthorizedViewers::load(&path).unwrap_err();
        match &err {
            CertError::Parse { path: p, line, .. } => {
                assert_eq!(p, &path);
                assert_eq!(*line, 4);
            }
            other => panic!("unexpected {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains(&format!("{}:4:", path.display())), "{msg}");
    }

    #[test]
    fn known_hosts_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("dir/known_hosts");
        let mut known = KnownHosts::load_or_empty(&path).unwrap();
        assert!(known.is_empty());
        assert_eq!(known.path(), Some(path.as_path()));
        assert_eq!(known.pin("Workstation.lan:4433", fp(1)), None);
        assert_eq!(known.pin("workstation.lan:4433", fp(2)), Some(fp(1)));
        assert_eq!(known.pin("[::1]:4433", fp(3)), None);
        known.save(&path).unwrap();
        let loaded = KnownHosts::load_or_empty(&path).unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded.lookup("WORKSTATION.LAN:4433"), Some(fp(2)));
        assert_eq!(loaded.lookup("[::1]:4433"), Some(fp(3)));
        assert_eq!(loaded.lookup("other:1"), None);
        let hosts: Vec<_> = loaded.iter().map(|(h, _)| h.to_string()).collect();
        assert_eq!(hosts, vec!["[::1]:4433", "workstation.lan:4433"]);

        let mut loaded = loaded;
        assert!(loaded.unpin("[::1]:4433"));
        assert!(!loaded.unpin("[::1]:4433"));
        loaded.save(&path).unwrap();
        assert_eq!(KnownHosts::load_or_empty(&path).unwrap().len(), 1);
    }

    #[test]
    fn known_hosts_malformed_lines() {
        let path = Path::new("kh");
        let good = format!("a:1 {}\n", fp(1));
        for (text, line) in [
            (format!("{good}\nb:2\n"), 3),
            (format!("{good}b:2 {} extra\n", fp(2)), 2),
            (format!("# c\n{good}b:2 SHA256:zz\n"), 3),
            (format!("{good}A:1 {}\n", fp(2)), 2),
        ] {
            match KnownHosts::parse(&text, path) {
                Err(CertError::Parse { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("unexpected {other:?} for {text:?}"),
            }
        }
        // The same pin twice is harmless.
        assert_eq!(
            KnownHosts::parse(&format!("{good}{good}"), path)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn known_hosts_refuses_unsavable_host() {
        let mut known = KnownHosts::new();
        known.pin("bad host:1", fp(1));
        assert!(matches!(known.to_text(), Err(CertError::BadHost(_))));
    }
}
