//! The audit log: one JSON object per line for everything security-relevant the host does.
//!
//! Who connected, from where, when, with which channels, how much went each way and how it
//! ended; every refusal (with the stage and the fingerprint when there was one); every pairing
//! attempt and its outcome; changes to the authorized list. Studios stream unreleased content:
//! this file is what answers "who saw it".
//!
//! Each record is written with a single `write(2)` on a file opened with `O_APPEND`, under an
//! exclusive `flock(2)`, so records from several processes (the running host and `host-agent
//! pair`) never interleave, and each is in the kernel before `record` returns (no user-space
//! buffering; a crash loses nothing already recorded). Records are never rewritten.
//!
//! Rotation: rename or compress the file, then send the host `SIGHUP` (`systemctl reload
//! sightline-host`); it reopens the path. The Debian package installs a logrotate rule that does
//! exactly this (see `packaging/`). Writers that still hold the old file keep appending to it
//! until they reopen, so no record is lost across a rotation.
//!
//! Every record has `ts` (UTC, RFC 3339 with milliseconds) and `event`; the other fields depend
//! on the event (see `docs/audit-log.md`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// A shared handle on the audit log file. Cloning shares the file.
#[derive(Debug, Clone)]
pub struct AuditLog {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    file: Option<File>,
    failures: u64,
}

fn open_append(path: &Path) -> io::Result<File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut opts = OpenOptions::new();
    opts.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Readable by the owner and its group (adm-style review), not by everyone.
        opts.mode(0o640);
    }
    opts.open(path)
}

impl AuditLog {
    /// Opens (creating if needed) the log at `path` for appending.
    pub fn open(path: &Path) -> io::Result<AuditLog> {
        let file = open_append(path)?;
        Ok(AuditLog {
            inner: Arc::new(Mutex::new(Inner {
                path: path.to_path_buf(),
                file: Some(file),
                failures: 0,
            })),
        })
    }

    /// The log's path.
    pub fn path(&self) -> PathBuf {
        self.lock().path.clone()
    }

    /// Reopens the path (after rotation). On failure the old file stays in use.
    pub fn reopen(&self) -> io::Result<()> {
        let mut inner = self.lock();
        let file = open_append(&inner.path)?;
        inner.file = Some(file);
        Ok(())
    }

    /// Records that could not be written since the start (disk full, file removed, …).
    pub fn failures(&self) -> u64 {
        self.lock().failures
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one record: `{"ts": …, "event": event, …fields}`. `fields` should be a JSON
    /// object; anything else is stored under `"data"`. Never fails the caller: a write error is
    /// logged (and counted) and the host goes on.
    pub fn record(&self, event: &str, fields: Value) {
        let line = render(event, fields, SystemTime::now());
        let mut inner = self.lock();
        let result = match inner.file.as_mut() {
            Some(f) => write_line(f, line.as_bytes()),
            None => Err(io::Error::other("no audit file open")),
        };
        if let Err(e) = result {
            inner.failures += 1;
            tracing::error!(path = %inner.path.display(), error = %e, event, "audit record not written");
        }
    }
}

/// One record as a line (with the trailing newline).
pub fn render(event: &str, fields: Value, at: SystemTime) -> String {
    let mut obj = Map::new();
    obj.insert("ts".into(), Value::String(rfc3339_utc(at)));
    obj.insert("event".into(), Value::String(event.to_owned()));
    match fields {
        Value::Object(m) => {
            for (k, v) in m {
                if k != "ts" && k != "event" {
                    obj.insert(k, v);
                }
            }
        }
        Value::Null => {}
        other => {
            obj.insert("data".into(), other);
        }
    }
    // Control characters inside strings are escaped by serde_json, so a record is always one
    // line whatever a peer put in its name.
    let mut line = Value::Object(obj).to_string();
    line.push('\n');
    line
}

#[cfg(unix)]
fn write_line(f: &mut File, line: &[u8]) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    // SAFETY: `fd` is the open descriptor owned by `f`, which outlives both calls; flock only
    // takes an advisory lock on it.
    let locked = unsafe { libc::flock(fd, libc::LOCK_EX) } == 0;
    let result = f.write_all(line);
    if locked {
        // SAFETY: as above.
        unsafe { libc::flock(fd, libc::LOCK_UN) };
    }
    result
}

#[cfg(not(unix))]
fn write_line(f: &mut File, line: &[u8]) -> io::Result<()> {
    f.write_all(line)
}

/// `2026-11-03T14:05:09.123Z`.
pub fn rfc3339_utc(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_123); // 2000-02-29
        assert_eq!(rfc3339_utc(t), "2000-02-29T00:00:00.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_767_225_599); // last second of 2025
        assert_eq!(rfc3339_utc(t), "2025-12-31T23:59:59.000Z");
    }

    #[test]
    fn records_are_single_lines_and_keep_their_fields() {
        let line = render(
            "session_start",
            serde_json::json!({"viewer": "evil\nname", "event": "spoofed", "bytes_in": 5}),
            UNIX_EPOCH,
        );
        assert_eq!(line.matches('\n').count(), 1);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "session_start");
        assert_eq!(v["viewer"], "evil\nname");
        assert_eq!(v["bytes_in"], 5);
        assert_eq!(v["ts"], "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn concurrent_writers_and_reopen_after_rotation() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("logs/audit.jsonl");
        let a = AuditLog::open(&path).unwrap();
        // A second, independent handle: another process would look like this.
        let b = AuditLog::open(&path).unwrap();
        let threads: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .enumerate()
            .map(|(i, log)| {
                std::thread::spawn(move || {
                    for n in 0..500 {
                        log.record(
                            "test",
                            serde_json::json!({"writer": i, "n": n, "pad": "x".repeat(300)}),
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1000);
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).expect("every line is whole JSON");
            assert_eq!(v["event"], "test");
        }
        // Rotation: rename, reopen, keep writing.
        let rotated = tmp.path().join("logs/audit.jsonl.1");
        std::fs::rename(&path, &rotated).unwrap();
        a.record("before_reopen", Value::Null);
        a.reopen().unwrap();
        a.record("after_reopen", Value::Null);
        assert!(std::fs::read_to_string(&rotated)
            .unwrap()
            .contains("before_reopen"));
        let fresh = std::fs::read_to_string(&path).unwrap();
        assert!(fresh.contains("after_reopen") && !fresh.contains("before_reopen"));
        assert_eq!(a.failures(), 0);
    }
}
