//! The host side of pairing (ALPN `sightline-pair/1`).
//!
//! `host-agent pair` writes a one-time pairing window file (code, expiry). While it is open, the
//! TLS verifier lets viewers it does not know finish the handshake, and a connection that chose
//! the pairing ALPN lands here: one exchange (see `sightline_protocol::pair`), after which the
//! viewer is in the authorized list and the window is gone. Nothing else is reachable on such a
//! connection; an unknown viewer that chose the session ALPN is closed by the net module.
//!
//! Limits: one exchange at a time, per-address back-off after a failure, a global rate
//! ([`crate::limits::PairingThrottle`]); a failure is written to the window file *before* the
//! host reveals anything that depends on the code, so a crash or a dropped connection still
//! counts; the code is burned after `max_failures` wrong tries.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use sightline_certs::pairing::{
    unix_now, HostPairing, PairingBinding, PairingGate, PairingWindow, PAIR_EXPORTER_LABEL,
};
use sightline_certs::{AuthorizedViewers, Fingerprint};
use sightline_protocol::pair::{PairMessage, PairRefusal, PAIR_VERSION};
use sightline_protocol::transport::{CLOSE_NORMAL, CLOSE_REFUSED};
use tracing::{info, warn};

use crate::audit::AuditLog;
use crate::limits::{PairingDenied, PairingLimits, PairingThrottle};

/// The pairing window file, re-read when it changes. Implements [`PairingGate`] for the TLS
/// verifier.
#[derive(Debug)]
pub struct PairingWindows {
    path: PathBuf,
    cache: Mutex<(Option<FileStamp>, Option<PairingWindow>)>,
}

/// Modification time, length and inode: the file changed when any of them did.
type FileStamp = (SystemTime, u64, u64);

impl PairingWindows {
    /// Windows stored at `path`.
    pub fn new(path: PathBuf) -> Self {
        PairingWindows {
            path,
            cache: Mutex::new((None, None)),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current window, read from disk when the file changed since the last look.
    pub fn current(&self) -> Option<PairingWindow> {
        let stamp = std::fs::metadata(&self.path).ok().map(|m| {
            (
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                m.len(),
                inode(&m),
            )
        });
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if stamp.is_none() {
            *cache = (None, None);
            return None;
        }
        if cache.0 != stamp {
            let window = match PairingWindow::load(&self.path) {
                Ok(w) => w,
                Err(e) => {
                    warn!(error = %e, "unreadable pairing window file; pairing is closed");
                    None
                }
            };
            *cache = (stamp, window);
        }
        cache.1.clone()
    }
}

#[cfg(unix)]
fn inode(m: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(m)
}

#[cfg(not(unix))]
fn inode(_m: &std::fs::Metadata) -> u64 {
    0
}

impl PairingGate for PairingWindows {
    fn admits_unknown_viewers(&self) -> bool {
        self.current().is_some_and(|w| w.is_open(unix_now()))
    }
}

/// Runs pairing exchanges for the host.
#[derive(Debug)]
pub struct PairingService {
    windows: Arc<PairingWindows>,
    authorized_path: PathBuf,
    throttle: Mutex<PairingThrottle>,
    audit: Option<AuditLog>,
    host_name: String,
    host_fingerprint: Fingerprint,
}

/// How a pairing connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairOutcome {
    /// The viewer is authorized under this name.
    Paired {
        /// Name in the authorized list.
        authorized_as: String,
    },
    /// Refused; the reason's name and words.
    Refused(PairRefusal, String),
    /// The viewer went away or broke the exchange before a result.
    Abandoned(String),
}

struct Exchange {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
}

impl PairingService {
    /// A service for `windows`, adding paired viewers to `authorized_path`.
    pub fn new(
        windows: Arc<PairingWindows>,
        authorized_path: PathBuf,
        limits: PairingLimits,
        audit: Option<AuditLog>,
        host_name: String,
        host_fingerprint: Fingerprint,
    ) -> Self {
        PairingService {
            windows,
            authorized_path,
            throttle: Mutex::new(PairingThrottle::new(limits)),
            audit,
            host_name,
            host_fingerprint,
        }
    }

    /// The gate for the TLS verifier.
    pub fn gate(&self) -> Arc<PairingWindows> {
        self.windows.clone()
    }

    fn limits(&self) -> PairingLimits {
        self.throttle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .limits()
    }

    fn audit(
        &self,
        remote: SocketAddr,
        viewer: Fingerprint,
        outcome: &str,
        extra: serde_json::Value,
    ) {
        if let Some(a) = &self.audit {
            let mut fields = json!({
                "remote": remote.to_string(),
                "fingerprint": viewer.to_string(),
                "outcome": outcome,
            });
            if let (Some(f), serde_json::Value::Object(e)) = (fields.as_object_mut(), extra) {
                f.extend(e);
            }
            a.record("pair_attempt", fields);
        }
    }

    /// Serves one pairing connection to its end.
    pub async fn serve(
        &self,
        conn: quinn::Connection,
        remote: SocketAddr,
        viewer: Fingerprint,
    ) -> PairOutcome {
        let timeout = self.limits().exchange_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let opened = tokio::time::timeout_at(deadline, conn.accept_bi()).await;
        let (send, recv) = match opened {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return self.abandoned(&conn, remote, viewer, e.to_string()),
            Err(_) => return self.abandoned(&conn, remote, viewer, "no pairing stream".into()),
        };
        let mut x = Exchange { send, recv };
        let start = match read_msg(&mut x.recv, deadline).await {
            Ok(m) => m,
            Err(e) => return self.abandoned(&conn, remote, viewer, e),
        };
        let PairMessage::Start {
            version,
            viewer_name,
            key,
        } = start
        else {
            let why = "the first pairing message must be Start".to_string();
            return self
                .refuse(&conn, &mut x, remote, viewer, PairRefusal::Protocol, 0, why)
                .await;
        };
        if version != PAIR_VERSION {
            let why =
                format!("this host speaks pairing revision {PAIR_VERSION}, the viewer {version}");
            return self
                .refuse(&conn, &mut x, remote, viewer, PairRefusal::Version, 0, why)
                .await;
        }
        let ip = remote.ip();
        let admitted = self
            .throttle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(ip, Instant::now());
        if let Err(denied) = admitted {
            let (reason, wait, why) = match denied {
                PairingDenied::Busy => (
                    PairRefusal::Busy,
                    Duration::from_secs(1),
                    "another viewer is pairing right now".to_string(),
                ),
                PairingDenied::AddressBackoff(d) => (
                    PairRefusal::RateLimited,
                    d,
                    format!(
                        "too many pairing attempts from {}; try again in {:.0} s",
                        ip,
                        d.as_secs_f64().ceil()
                    ),
                ),
                PairingDenied::Global(d) => (
                    PairRefusal::RateLimited,
                    d,
                    format!(
                        "too many pairing attempts on this host; try again in {:.0} s",
                        d.as_secs_f64().ceil()
                    ),
                ),
            };
            let ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
            return self
                .refuse(&conn, &mut x, remote, viewer, reason, ms, why)
                .await;
        }
        let result = self
            .exchange(&conn, &mut x, remote, viewer, &viewer_name, &key, deadline)
            .await;
        let success = matches!(result, PairOutcome::Paired { .. });
        self.throttle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .finish(ip, Instant::now(), success);
        result
    }

    /// The exchange proper, once admitted.
    #[allow(clippy::too_many_arguments)]
    async fn exchange(
        &self,
        conn: &quinn::Connection,
        x: &mut Exchange,
        remote: SocketAddr,
        viewer: Fingerprint,
        viewer_name: &str,
        key: &[u8],
        deadline: tokio::time::Instant,
    ) -> PairOutcome {
        let now_s = unix_now();
        let path = self.windows.path().to_path_buf();
        let mut window = match PairingWindow::load(&path) {
            Ok(Some(w)) if w.is_open(now_s) => w,
            Ok(Some(w)) => {
                let why = format!(
                    "the pairing code on this host has {}; open a new window with `host-agent pair`",
                    w.closed_reason(now_s).unwrap_or("closed")
                );
                let _ = PairingWindow::remove(&path);
                return self
                    .refuse(conn, x, remote, viewer, PairRefusal::NoWindow, 0, why)
                    .await;
            }
            Ok(None) => {
                let why = "no pairing window is open on this host; run `host-agent pair` there \
                           and enter the code it shows"
                    .to_string();
                return self
                    .refuse(conn, x, remote, viewer, PairRefusal::NoWindow, 0, why)
                    .await;
            }
            Err(e) => {
                warn!(error = %e, "pairing window unreadable");
                let why = "the host cannot read its pairing window".to_string();
                return self
                    .refuse(conn, x, remote, viewer, PairRefusal::HostError, 0, why)
                    .await;
            }
        };
        let mut channel = [0u8; 32];
        if conn
            .export_keying_material(&mut channel, PAIR_EXPORTER_LABEL, b"")
            .is_err()
        {
            let why = "TLS keying material unavailable".to_string();
            return self
                .refuse(conn, x, remote, viewer, PairRefusal::HostError, 0, why)
                .await;
        }
        let binding = PairingBinding {
            viewer,
            host: self.host_fingerprint,
            channel,
        };
        let (host, reply) = match HostPairing::respond(&window.code, binding, key) {
            Ok(r) => r,
            Err(e) => {
                return self
                    .refuse(
                        conn,
                        x,
                        remote,
                        viewer,
                        PairRefusal::Protocol,
                        0,
                        e.to_string(),
                    )
                    .await
            }
        };
        // Count this attempt as a failure before anything that depends on the code leaves the
        // host: a viewer that learns from the reply that its guess was wrong and vanishes has
        // still used up a try.
        window.failures += 1;
        if let Err(e) = window.save(&path) {
            warn!(error = %e, "cannot record the pairing attempt; refusing to pair");
            let why = "the host cannot update its pairing window".to_string();
            return self
                .refuse(conn, x, remote, viewer, PairRefusal::HostError, 0, why)
                .await;
        }
        let msg = PairMessage::Reply {
            host_name: self.host_name.clone(),
            key: reply.msg_b,
            confirm: reply.confirm,
        };
        if let Err(e) = x.send.write_all(&msg.to_frame()).await {
            return self.failed(remote, viewer, &window, &path, format!("viewer left: {e}"));
        }
        let confirm = match read_msg(&mut x.recv, deadline).await {
            Ok(PairMessage::Confirm { confirm }) => confirm,
            Ok(other) => {
                let why = format!("unexpected {other:?} instead of the confirmation");
                return self.failed(remote, viewer, &window, &path, why);
            }
            Err(e) => {
                let why = format!("no confirmation from the viewer ({e}): wrong code on its side?");
                return self.failed(remote, viewer, &window, &path, why);
            }
        };
        if host.verify(&confirm).is_err() {
            let outcome = self.failed(
                remote,
                viewer,
                &window,
                &path,
                "the viewer's confirmation did not match".into(),
            );
            let _ = x
                .send
                .write_all(
                    &PairMessage::Refused {
                        reason: PairRefusal::WrongCode,
                        retry_after_ms: 0,
                        message: "the pairing code did not match".into(),
                    }
                    .to_frame(),
                )
                .await;
            let _ = x.send.finish();
            conn.close(CLOSE_REFUSED.into(), b"pairing code did not match");
            return outcome;
        }
        // Paired: authorize, close the window, tell the viewer.
        let name = window
            .name
            .clone()
            .unwrap_or_else(|| paired_name(viewer_name));
        let saved = AuthorizedViewers::load_or_empty(&self.authorized_path).and_then(|mut list| {
            list.authorize(viewer, &name);
            list.save(&self.authorized_path)
        });
        if let Err(e) = saved {
            warn!(error = %e, "cannot write the authorized viewers list");
            let why = "the host could not save its authorized list".to_string();
            return self
                .refuse(conn, x, remote, viewer, PairRefusal::HostError, 0, why)
                .await;
        }
        if let Err(e) = PairingWindow::remove(&path) {
            warn!(error = %e, "could not delete the used pairing window");
        }
        info!(%remote, fingerprint = %viewer, %name, "viewer paired and authorized");
        self.audit(
            remote,
            viewer,
            "paired",
            json!({"viewer_name": viewer_name, "authorized_as": name}),
        );
        let _ = x
            .send
            .write_all(
                &PairMessage::Done {
                    authorized_as: name.clone(),
                }
                .to_frame(),
            )
            .await;
        let _ = x.send.finish();
        // Let the viewer read Done and close first.
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
        conn.close(CLOSE_NORMAL.into(), b"paired");
        PairOutcome::Paired {
            authorized_as: name,
        }
    }

    /// A counted failure (the window file already holds it); burns the code when it was the
    /// last try.
    fn failed(
        &self,
        remote: SocketAddr,
        viewer: Fingerprint,
        window: &PairingWindow,
        path: &Path,
        why: String,
    ) -> PairOutcome {
        warn!(%remote, fingerprint = %viewer, failures = window.failures, "pairing failed: {why}");
        self.audit(
            remote,
            viewer,
            "wrong_code",
            json!({"detail": why, "failures": window.failures, "max_failures": window.max_failures}),
        );
        if !window.is_open(unix_now()) {
            let _ = PairingWindow::remove(path);
            warn!(
                "pairing code burned after {} failed attempts",
                window.failures
            );
            if let Some(a) = &self.audit {
                a.record(
                    "pair_window_closed",
                    json!({"reason": "burned", "failures": window.failures}),
                );
            }
        }
        PairOutcome::Refused(PairRefusal::WrongCode, why)
    }

    #[allow(clippy::too_many_arguments)]
    async fn refuse(
        &self,
        conn: &quinn::Connection,
        x: &mut Exchange,
        remote: SocketAddr,
        viewer: Fingerprint,
        reason: PairRefusal,
        retry_after_ms: u32,
        message: String,
    ) -> PairOutcome {
        info!(%remote, fingerprint = %viewer, reason = reason.name(), "pairing refused: {message}");
        self.audit(
            remote,
            viewer,
            reason.name(),
            json!({"detail": message, "retry_after_ms": retry_after_ms}),
        );
        let frame = PairMessage::Refused {
            reason,
            retry_after_ms,
            message: message.clone(),
        }
        .to_frame();
        let _ = x.send.write_all(&frame).await;
        let _ = x.send.finish();
        let _ = tokio::time::timeout(Duration::from_millis(500), conn.closed()).await;
        conn.close(CLOSE_REFUSED.into(), b"pairing refused");
        PairOutcome::Refused(reason, message)
    }

    fn abandoned(
        &self,
        conn: &quinn::Connection,
        remote: SocketAddr,
        viewer: Fingerprint,
        why: String,
    ) -> PairOutcome {
        self.audit(remote, viewer, "abandoned", json!({"detail": why}));
        conn.close(CLOSE_REFUSED.into(), b"pairing abandoned");
        PairOutcome::Abandoned(why)
    }
}

/// Opens a pairing window at `path` (what `host-agent pair` does): a fresh code valid for
/// `ttl`, burned after `max_failures` wrong tries, the viewer to be authorized as `name`.
///
/// When run as root for a host that runs as another user (the packaged service runs as
/// `sightline`), the file is handed to the owner of its directory so the host can read it;
/// it stays private (0600) either way.
pub fn open_window(
    path: &Path,
    ttl: Duration,
    name: Option<&str>,
    max_failures: u32,
) -> Result<PairingWindow, sightline_certs::CertError> {
    let window = PairingWindow::open(ttl, name, max_failures, unix_now())?;
    window.save(path)?;
    #[cfg(unix)]
    hand_to_directory_owner(path);
    Ok(window)
}

/// Gives `path` to the owner of its directory (when run as root for a service user).
#[cfg(unix)]
pub fn hand_to_directory_owner(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return;
    };
    let (Ok(dir_meta), Ok(file_meta)) = (std::fs::metadata(dir), std::fs::metadata(path)) else {
        return;
    };
    if dir_meta.uid() != file_meta.uid() || dir_meta.gid() != file_meta.gid() {
        if let Err(e) = std::os::unix::fs::chown(path, Some(dir_meta.uid()), Some(dir_meta.gid())) {
            warn!(path = %path.display(), error = %e, "could not hand the file to the host's user");
        }
    }
}

/// The authorized-list name for a viewer that paired under its own name.
fn paired_name(viewer_name: &str) -> String {
    let clean: String = viewer_name
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    let clean = clean.trim();
    if clean.is_empty() {
        "paired viewer".to_owned()
    } else {
        format!("{clean} (paired)")
    }
}

/// Reads one framed pairing message before `deadline`.
pub async fn read_msg(
    recv: &mut quinn::RecvStream,
    deadline: tokio::time::Instant,
) -> Result<PairMessage, String> {
    use sightline_protocol::Decode;
    let read = async {
        let mut header = [0u8; 2];
        recv.read_exact(&mut header)
            .await
            .map_err(|e| e.to_string())?;
        let len = PairMessage::frame_len(header).map_err(|e| e.to_string())?;
        let mut body = vec![0u8; len];
        recv.read_exact(&mut body)
            .await
            .map_err(|e| e.to_string())?;
        PairMessage::from_bytes(&body).map_err(|e| format!("malformed pairing message: {e}"))
    };
    tokio::time::timeout_at(deadline, read)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_for_paired_viewers() {
        assert_eq!(paired_name("alice"), "alice (paired)");
        assert_eq!(paired_name(" \n"), "paired viewer");
        assert_eq!(paired_name("a\u{7}b"), "ab (paired)");
        assert!(paired_name(&"x".repeat(500)).len() < 80);
    }

    #[test]
    fn gate_follows_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("pairing");
        let windows = PairingWindows::new(path.clone());
        assert!(!windows.admits_unknown_viewers());
        let w = PairingWindow::open(Duration::from_secs(60), None, 3, unix_now()).unwrap();
        w.save(&path).unwrap();
        assert!(windows.admits_unknown_viewers());
        let mut burned = w.clone();
        burned.failures = 3;
        burned.save(&path).unwrap();
        assert!(!windows.admits_unknown_viewers());
        PairingWindow::remove(&path).unwrap();
        assert!(!windows.admits_unknown_viewers());
    }
}
