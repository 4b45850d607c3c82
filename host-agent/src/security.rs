//! Security plumbing around the host's QUIC endpoint: admission before any TLS work
//! (per-address throttling, a cap on handshakes in flight, QUIC Retry when busy), pairing,
//! the audit trail, and ending running sessions of a viewer that was revoked.
//!
//! `net` stays the only quinn user for sessions; it asks this module what to do at each step.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sightline_certs::{AuthorizedViewers, Fingerprint};
use sightline_protocol::msg::Capabilities;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::audit::AuditLog;
use crate::limits::{ConnectDecision, ConnectLimits, ConnectThrottle, PairingLimits};
use crate::pair::{PairingService, PairingWindows};

/// Security settings of the host endpoint.
#[derive(Debug, Clone)]
pub struct SecurityOptions {
    /// Where audit records go (`None`: no audit log; the binary always sets one).
    pub audit: Option<AuditLog>,
    /// The pairing window file `host-agent pair` writes (`None`: pairing disabled).
    pub pairing_file: Option<PathBuf>,
    /// Pairing attempt limits.
    pub pairing: PairingLimits,
    /// Connection attempt limits.
    pub connect: ConnectLimits,
    /// How often the authorized list is checked for changes, so that a revoked viewer's
    /// running sessions end (it is also re-read on every connection attempt).
    pub revocation_check: Duration,
}

impl Default for SecurityOptions {
    fn default() -> Self {
        SecurityOptions {
            audit: None,
            pairing_file: None,
            pairing: PairingLimits::default(),
            connect: ConnectLimits::default(),
            revocation_check: Duration::from_secs(1),
        }
    }
}

/// What to do with a new connection attempt.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Start the handshake; the slot is held until TLS finishes.
    Go(HandshakeSlot),
    /// Ask the peer to prove its address first (QUIC Retry).
    Retry,
    /// Refuse without TLS. `report` says whether to log/audit this one.
    Refuse {
        /// For humans.
        reason: String,
        /// Whether this refusal should be reported (throttled reports).
        report: bool,
    },
}

/// A handshake in flight; released on drop.
#[derive(Debug)]
pub(crate) struct HandshakeSlot(Arc<AtomicUsize>);

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct Running {
    fingerprint: Fingerprint,
    kick: watch::Sender<Option<String>>,
}

/// The endpoint's security state.
#[derive(Debug)]
pub(crate) struct Security {
    pub audit: Option<AuditLog>,
    pub pairing: Option<Arc<PairingService>>,
    pub revocation_check: Duration,
    throttle: Mutex<ConnectThrottle>,
    handshakes: Arc<AtomicUsize>,
    sessions: Mutex<HashMap<u64, Running>>,
}

impl Security {
    pub fn new(
        opts: &SecurityOptions,
        authorized_path: PathBuf,
        host_name: &str,
        host_fingerprint: Fingerprint,
    ) -> Self {
        let pairing = opts.pairing_file.as_ref().map(|path| {
            Arc::new(PairingService::new(
                Arc::new(PairingWindows::new(path.clone())),
                authorized_path,
                opts.pairing,
                opts.audit.clone(),
                host_name.to_owned(),
                host_fingerprint,
            ))
        });
        Security {
            audit: opts.audit.clone(),
            pairing,
            revocation_check: opts.revocation_check,
            throttle: Mutex::new(ConnectThrottle::new(opts.connect)),
            handshakes: Arc::new(AtomicUsize::new(0)),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Writes an audit record when there is an audit log.
    pub fn audit(&self, event: &str, fields: Value) {
        if let Some(a) = &self.audit {
            a.record(event, fields);
        }
    }

    /// Decides on a connection attempt from its first packet, before any TLS work.
    pub fn admit(&self, remote: SocketAddr, validated: bool) -> Admission {
        let decision = self
            .throttle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .check(remote.ip(), Instant::now());
        let limits = self
            .throttle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .limits();
        if let ConnectDecision::Refuse { report } = decision {
            let reason = match report {
                Some(n) => format!(
                    "too many connection attempts from {} ({n} refused; limit {} per second, \
                     burst {})",
                    remote.ip(),
                    limits.per_address_per_s,
                    limits.per_address_burst
                ),
                None => "too many connection attempts".to_owned(),
            };
            if let Some(n) = report {
                self.audit(
                    "throttled",
                    json!({"remote": remote.to_string(), "refused": n, "reason": reason}),
                );
            }
            return Admission::Refuse {
                reason,
                report: report.is_some(),
            };
        }
        let in_flight = self.handshakes.load(Ordering::SeqCst);
        if in_flight >= limits.max_handshakes.max(1) {
            let reason = format!(
                "{in_flight} handshakes already in progress (limit {})",
                limits.max_handshakes
            );
            return Admission::Refuse {
                reason,
                report: false,
            };
        }
        if !validated && in_flight >= limits.max_handshakes.div_ceil(2) {
            return Admission::Retry;
        }
        self.handshakes.fetch_add(1, Ordering::SeqCst);
        Admission::Go(HandshakeSlot(self.handshakes.clone()))
    }

    /// Handshakes in flight now.
    #[cfg(test)]
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }

    /// Tracks a running session; the receiver gets a reason when it must end (revoked).
    pub fn register(&self, id: u64, fingerprint: Fingerprint) -> watch::Receiver<Option<String>> {
        let (kick, rx) = watch::channel(None);
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Running { fingerprint, kick });
        rx
    }

    /// Forgets a session.
    pub fn unregister(&self, id: u64) {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// Records what changed between two versions of the authorized list and ends the running
    /// sessions of viewers that are no longer in it.
    pub fn authorized_changed(&self, old: &AuthorizedViewers, new: &AuthorizedViewers) {
        let added: Vec<Value> = new
            .iter()
            .filter(|(fp, _)| old.lookup(fp).is_none())
            .map(|(fp, name)| json!({"fingerprint": fp.to_string(), "name": name}))
            .collect();
        let removed: Vec<Value> = old
            .iter()
            .filter(|(fp, _)| new.lookup(fp).is_none())
            .map(|(fp, name)| json!({"fingerprint": fp.to_string(), "name": name}))
            .collect();
        if added.is_empty() && removed.is_empty() {
            return;
        }
        info!(
            added = added.len(),
            removed = removed.len(),
            "authorized viewers changed"
        );
        self.audit(
            "authorized_changed",
            json!({"added": added, "removed": removed}),
        );
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        for (id, s) in sessions.iter() {
            if new.lookup(&s.fingerprint).is_none() {
                warn!(session = %format!("{id:016x}"), fingerprint = %s.fingerprint, "viewer revoked: ending its session");
                let _ = s.kick.send(Some(format!(
                    "viewer {} was revoked on the host",
                    s.fingerprint
                )));
            }
        }
    }
}

/// The channels a session has, from its negotiated capabilities, for the audit log.
pub fn channels(caps: &Capabilities) -> Value {
    let lower =
        |v: Vec<&'static str>| -> Vec<String> { v.into_iter().map(str::to_lowercase).collect() };
    json!({
        "video": lower(caps.video_codecs.names()),
        "input": lower(caps.input_kinds.names()),
        "audio": lower(caps.audio_layouts.names()),
        // The protocol has no clipboard channel yet; recorded so that the field exists when it
        // does.
        "clipboard": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_caps_handshakes_and_asks_for_retry_when_busy() {
        let sec = Security::new(
            &SecurityOptions {
                connect: ConnectLimits {
                    per_address_per_s: 1000,
                    per_address_burst: 1000,
                    max_handshakes: 4,
                },
                ..SecurityOptions::default()
            },
            PathBuf::from("authorized"),
            "h",
            Fingerprint([0; 32]),
        );
        let remote: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut slots = Vec::new();
        for _ in 0..2 {
            match sec.admit(remote, false) {
                Admission::Go(s) => slots.push(s),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(sec.admit(remote, false), Admission::Retry));
        for _ in 0..2 {
            match sec.admit(remote, true) {
                Admission::Go(s) => slots.push(s),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(sec.admit(remote, true), Admission::Refuse { .. }));
        assert_eq!(sec.handshakes(), 4);
        slots.clear();
        assert_eq!(sec.handshakes(), 0);
        assert!(matches!(sec.admit(remote, false), Admission::Go(_)));
    }

    #[test]
    fn revocation_kicks_only_that_viewer() {
        let sec = Security::new(
            &SecurityOptions::default(),
            PathBuf::from("authorized"),
            "h",
            Fingerprint([0; 32]),
        );
        let (a, b) = (Fingerprint([1; 32]), Fingerprint([2; 32]));
        let mut old = AuthorizedViewers::new();
        old.authorize(a, "alice");
        old.authorize(b, "bob");
        let rx_a = sec.register(1, a);
        let rx_b = sec.register(2, b);
        let mut new = old.clone();
        new.revoke(&a);
        sec.authorized_changed(&old, &new);
        assert!(rx_a.borrow().as_deref().unwrap().contains("revoked"));
        assert_eq!(*rx_b.borrow(), None);
    }

    #[test]
    fn channel_names() {
        let caps = Capabilities {
            input_kinds: sightline_protocol::msg::InputKinds::KEYBOARD,
            ..Capabilities::default()
        };
        let v = channels(&caps);
        assert_eq!(v["input"], json!(["keyboard"]));
        assert_eq!(v["audio"], json!([]));
        assert_eq!(v["clipboard"], false);
    }
}
