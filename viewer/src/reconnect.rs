//! The viewer's side of surviving a network drop: watches the link, races fresh connections
//! while it is down, and tells the application (`LinkState`) — the I/O glue around
//! `sightline_protocol::reconnect::Reconnector` (the schedule, sans-IO).
//!
//! The session task ([`crate::net`]) owns a [`Link`]: it reports what it hears
//! ([`Link::on_heard`]), asks whether a closed session should be kept ([`Link::keep_after_close`]),
//! runs the timer ([`Link::on_timer`], which starts attempts) and takes the first attempt that
//! completes ([`Link::next_connection`]). Each attempt is a full connect → TLS → streams →
//! hello on the same UDP socket, with the resume extension naming the old session so the host
//! ends it at once.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sightline_protocol::msg::{GoodbyeReason, Welcome};
use sightline_protocol::reconnect::{ReconnectAction, ReconnectConfig, Reconnector};
use sightline_protocol::transport::CLOSE_REPLACED;
use sightline_protocol::CloseReason;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::dial::{establish, Dialer, Established};
use crate::net::ConnectError;

/// Whether the link to the host is up, as the window title, overlay and logs show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Connected; `reconnects` fresh connections replaced dropped ones so far.
    Up {
        /// The current session.
        session_id: u64,
        /// Reconnects so far.
        reconnects: u32,
    },
    /// The host went silent or the connection dropped; fresh connections are being tried.
    Reconnecting {
        /// When the link went down.
        since: Instant,
        /// Attempts started so far.
        attempts: u32,
        /// Why the last attempt failed, if one did.
        last_error: Option<String>,
    },
    /// The session is over.
    Ended,
}

impl LinkState {
    /// A line for the user: `None` while the link is up.
    pub fn banner(&self, now: Instant) -> Option<String> {
        match self {
            LinkState::Reconnecting { since, .. } => Some(format!(
                "connection lost - reconnecting... {:.0} s",
                now.saturating_duration_since(*since).as_secs_f64().floor()
            )),
            _ => None,
        }
    }
}

/// The session task's link watchdog (see the module docs).
#[derive(Debug)]
pub(crate) struct Link {
    rc: Reconnector,
    dialer: Dialer,
    attempts: JoinSet<Result<Established, ConnectError>>,
    /// Attempts in flight, oldest first (only the newest few are kept).
    in_flight: std::collections::VecDeque<tokio::task::AbortHandle>,
    state: watch::Sender<LinkState>,
    session_id: u64,
    /// The connection the application's handle reaches (updated on a reconnect).
    current: Arc<Mutex<quinn::Connection>>,
    last_error: Option<String>,
    dropped_inputs: u64,
}

impl Link {
    /// A watchdog for the session `session_id` just established with `dialer`.
    pub(crate) fn new(
        cfg: ReconnectConfig,
        dialer: Dialer,
        session_id: u64,
        current: Arc<Mutex<quinn::Connection>>,
    ) -> (Link, watch::Receiver<LinkState>) {
        let (state, rx) = watch::channel(LinkState::Up {
            session_id,
            reconnects: 0,
        });
        let link = Link {
            rc: Reconnector::new(cfg, Instant::now()),
            dialer,
            attempts: JoinSet::new(),
            in_flight: std::collections::VecDeque::new(),
            state,
            session_id,
            current,
            last_error: None,
            dropped_inputs: 0,
        };
        (link, rx)
    }

    /// Whether the link is down (input is dropped meanwhile).
    pub fn is_down(&self) -> bool {
        self.rc.is_reconnecting() || self.rc.gave_up()
    }

    /// One input event was dropped because the link is down.
    pub fn input_dropped(&mut self) {
        self.dropped_inputs += 1;
    }

    /// Something arrived on the current connection. True when this ends a stall (the old
    /// connection came back first: the attempts are abandoned).
    pub fn on_heard(&mut self, now: Instant) -> bool {
        if !self.rc.on_heard(now) {
            return false;
        }
        // Attempts already under way finish (or time out): one that completes replaces this
        // connection all the same (the host may already have moved the session to it), which
        // costs a keyframe and nothing else.
        info!("host heard again on the same connection; link back");
        self.publish_up();
        true
    }

    /// The session closed with `reason`: true when it is a network drop that reconnecting
    /// should survive (not a goodbye, not a refusal, not a closed application), and
    /// reconnecting is on.
    pub fn keep_after_close(
        &mut self,
        now: Instant,
        reason: &CloseReason,
        conn: &quinn::Connection,
    ) -> bool {
        let network = match reason {
            CloseReason::ConnectionLost(_) | CloseReason::Timeout(_) => match conn.close_reason() {
                // Still open (our idle timer fired) or dropped by the network.
                None
                | Some(quinn::ConnectionError::TimedOut)
                | Some(quinn::ConnectionError::Reset)
                | Some(quinn::ConnectionError::TransportError(_)) => true,
                // The host moved the session to a connection of ours that is about to be
                // taken (an attempt that completed).
                Some(quinn::ConnectionError::ApplicationClosed(a))
                    if a.error_code == CLOSE_REPLACED.into() =>
                {
                    true
                }
                // The host (or we) closed it on purpose.
                Some(_) => false,
            },
            _ => false,
        };
        if !network || !self.rc.on_connection_lost(now) {
            return false;
        }
        if self.has_attempts() {
            // Expected: the host moved the session to an attempt that is about to be taken.
            debug!(%reason, "old connection ended while a reconnect attempt is running");
        } else {
            info!(%reason, "connection to the host lost; reconnecting");
        }
        self.publish_down();
        true
    }

    /// Timers: stall detection, attempts, giving up. Returns the reason to end the session
    /// when reconnecting was given up.
    pub fn on_timer(&mut self, now: Instant) -> Option<CloseReason> {
        while let Some(action) = self.rc.poll(now) {
            match action {
                ReconnectAction::Stalled => {
                    info!(
                        silent_ms = self.rc.config().stall_after.as_millis() as u64,
                        "no packet from the host; reconnecting (input is dropped until the link is back)"
                    );
                    self.publish_down();
                }
                ReconnectAction::Attempt(n) => self.start_attempt(n),
                ReconnectAction::GiveUp => {
                    self.attempts.abort_all();
                    let waited = self
                        .rc
                        .config()
                        .give_up_after
                        .map_or(String::new(), |g| format!(" for {} s", g.as_secs()));
                    let why = self
                        .last_error
                        .clone()
                        .unwrap_or_else(|| "no answer".into());
                    return Some(CloseReason::ConnectionLost(format!(
                        "connection lost; reconnecting{waited} failed (last attempt: {why})"
                    )));
                }
            }
        }
        if self.rc.gave_up() && !self.attempts.is_empty() {
            self.attempts.abort_all();
        }
        if self.rc.gave_up() {
            let why = self.last_error.clone().unwrap_or_else(|| "refused".into());
            return Some(CloseReason::ConnectionLost(format!(
                "connection lost; reconnecting stopped: {why}"
            )));
        }
        None
    }

    /// When [`Link::on_timer`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.rc.poll_timeout()
    }

    /// Whether attempts are running (so [`Link::next_connection`] can complete).
    pub fn has_attempts(&self) -> bool {
        !self.attempts.is_empty()
    }

    /// The next attempt to finish: the first success wins (the rest are abandoned by
    /// [`Link::on_connected`]).
    pub async fn next_connection(&mut self) -> Result<Established, ConnectError> {
        loop {
            match self.attempts.join_next().await {
                Some(Ok(r)) => return r,
                // Aborted (abandoned) or panicked: look at the next.
                Some(Err(e)) => debug!(error = %e, "reconnect attempt ended"),
                None => return std::future::pending().await,
            }
        }
    }

    /// An attempt failed.
    pub fn on_attempt_failed(&mut self, e: &ConnectError) {
        let fatal = is_fatal(e);
        debug!(error = %e, fatal, "reconnect attempt failed");
        self.last_error = Some(e.to_string());
        self.rc.on_attempt_failed(fatal);
        if fatal {
            warn!(error = %e, "reconnecting stopped: the host refused this viewer");
        }
        if let LinkState::Reconnecting {
            since, attempts, ..
        } = *self.state.borrow()
        {
            let _ = self.state.send(LinkState::Reconnecting {
                since,
                attempts,
                last_error: self.last_error.clone(),
            });
        }
    }

    /// The session moved onto `conn` (an attempt won).
    pub fn on_connected(&mut self, now: Instant, welcome: &Welcome, conn: &quinn::Connection) {
        self.attempts.abort_all();
        let down = self
            .rc
            .down_since()
            .map(|t| now.saturating_duration_since(t));
        self.rc.on_connected(now);
        self.session_id = welcome.session_id;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = conn.clone();
        info!(
            session = %format!("{:016x}", welcome.session_id),
            down_ms = down.map_or(0, |d| d.as_millis() as u64),
            dropped_inputs = self.dropped_inputs,
            "reconnected to the host"
        );
        self.last_error = None;
        self.publish_up();
    }

    /// The session is over.
    pub fn ended(&mut self) {
        self.attempts.abort_all();
        let _ = self.state.send(LinkState::Ended);
    }

    fn start_attempt(&mut self, n: u32) {
        let dialer = self.dialer.clone();
        let old = self.session_id;
        let limit = self.rc.config().attempt_timeout;
        debug!(attempt = n, "reconnect attempt");
        // An old attempt whose first packets went into the dead path would only be resent
        // after its backed-off timer; the newest ones carry the reconnect. Keep three.
        while self.in_flight.len() >= MAX_ATTEMPTS_IN_FLIGHT {
            if let Some(old) = self.in_flight.pop_front() {
                old.abort();
            }
        }
        self.in_flight.retain(|h| !h.is_finished());
        let handle = self.attempts.spawn(async move {
            match tokio::time::timeout(limit, establish(&dialer, Some(old))).await {
                Ok(r) => r,
                Err(_) => Err(ConnectError::NoAnswer {
                    addr: dialer.addr,
                    timeout: limit,
                }),
            }
        });
        self.in_flight.push_back(handle);
        self.publish_down();
    }

    fn publish_down(&self) {
        let since = self.rc.down_since().unwrap_or_else(Instant::now);
        let _ = self.state.send(LinkState::Reconnecting {
            since,
            attempts: self.rc.attempts(),
            last_error: self.last_error.clone(),
        });
    }

    fn publish_up(&self) {
        let _ = self.state.send(LinkState::Up {
            session_id: self.session_id,
            reconnects: self.rc.reconnects(),
        });
    }
}

/// Reconnect attempts running at once, at most.
const MAX_ATTEMPTS_IN_FLIGHT: usize = 3;

/// Failures retrying cannot fix: the host refused this viewer or its key changed.
fn is_fatal(e: &ConnectError) -> bool {
    match e {
        ConnectError::HostKey(_) | ConnectError::NotAuthorized { .. } | ConnectError::Certs(_) => {
            true
        }
        ConnectError::Hello(CloseReason::PeerGoodbye { reason, .. }) => {
            matches!(
                reason,
                GoodbyeReason::Refused | GoodbyeReason::VersionMismatch { .. }
            )
        }
        ConnectError::Hello(CloseReason::VersionMismatch { .. }) => true,
        _ => false,
    }
}

/// Turns link changes into one line when the link goes down and one when it is back (for the
/// viewer's output); every other change (another attempt, a new error) says nothing.
#[derive(Debug, Default)]
pub struct LinkMessages {
    down_since: Option<Instant>,
}

impl LinkMessages {
    /// The line to print for `state`, if it is a change worth one.
    pub fn report(&mut self, state: &LinkState) -> Option<String> {
        match state {
            LinkState::Reconnecting { since, .. } if self.down_since.is_none() => {
                self.down_since = Some(*since);
                Some(
                    "connection to the host lost; reconnecting (input is not sent until the \
                     link is back)"
                        .into(),
                )
            }
            LinkState::Up { reconnects, .. } => {
                let since = self.down_since.take()?;
                Some(format!(
                    "{} after {:.1} s without the host",
                    if *reconnects > 0 {
                        "reconnected"
                    } else {
                        "link back"
                    },
                    since.elapsed().as_secs_f64()
                ))
            }
            _ => None,
        }
    }
}

/// How long the link has been down, for messages.
pub fn down_for(state: &LinkState, now: Instant) -> Option<Duration> {
    match state {
        LinkState::Reconnecting { since, .. } => Some(now.saturating_duration_since(*since)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_only_while_down() {
        let now = Instant::now();
        assert_eq!(
            LinkState::Up {
                session_id: 1,
                reconnects: 0
            }
            .banner(now),
            None
        );
        let down = LinkState::Reconnecting {
            since: now - Duration::from_millis(2500),
            attempts: 3,
            last_error: None,
        };
        assert_eq!(
            down.banner(now).as_deref(),
            Some("connection lost - reconnecting... 2 s")
        );
        assert_eq!(down_for(&down, now), Some(Duration::from_millis(2500)));
    }

    #[test]
    fn refusals_are_fatal_silence_is_not() {
        let addr: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(!is_fatal(&ConnectError::NoAnswer {
            addr,
            timeout: Duration::from_secs(1)
        }));
        assert!(is_fatal(&ConnectError::NotAuthorized {
            alert: "certificate_unknown",
            fingerprint: None
        }));
        assert!(is_fatal(&ConnectError::Hello(CloseReason::PeerGoodbye {
            reason: GoodbyeReason::Refused,
            message: String::new()
        })));
        assert!(!is_fatal(&ConnectError::Hello(CloseReason::Timeout(
            Duration::from_secs(1)
        ))));
    }
}
