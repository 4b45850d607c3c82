//! The host's live sessions, so a reconnecting viewer's new session can end its dead one at
//! once (see `sightline_protocol::reconnect`): only a session of the same viewer certificate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sightline_certs::Fingerprint;
use sightline_protocol::msg::Extension;
use sightline_protocol::reconnect::resumed_session;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

/// Live sessions by id: the viewer certificate and a handle that ends the session.
pub(crate) type SessionRegistry = Arc<Mutex<HashMap<u64, (Fingerprint, Arc<Notify>)>>>;

/// Lists a started session, and ends the one it replaces when the viewer reconnected (its
/// hello names the old session, and the certificate matches).
pub(crate) fn register(
    sessions: &SessionRegistry,
    session_id: u64,
    fingerprint: Fingerprint,
    superseded: &Arc<Notify>,
    hello_extensions: &[Extension],
) {
    let mut sessions = sessions.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(old) = resumed_session(hello_extensions) {
        match sessions.get(&old) {
            Some((fp, end)) if *fp == fingerprint => {
                info!(old = %format!("{old:016x}"), "viewer reconnected; replacing its old session");
                end.notify_one();
            }
            Some(_) => {
                warn!(old = %format!("{old:016x}"), "resume of another viewer's session refused")
            }
            None => debug!(old = %format!("{old:016x}"), "resumed session already gone"),
        }
    }
    sessions.insert(session_id, (fingerprint, superseded.clone()));
}

/// Removes a session from the registry when its task ends.
pub(crate) struct Registration {
    pub(crate) sessions: SessionRegistry,
    pub(crate) id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}
