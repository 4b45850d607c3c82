//! Reconnecting after a network drop (sans-IO): when to give up on a silent connection, how
//! often to try a fresh one, when to stop — and the hello extension that tells the host which
//! session the new connection replaces.
//!
//! # Why race a fresh connection
//! After a multi-second blackout a surviving QUIC connection is slow to come back: its probe
//! timeout has doubled with every unanswered probe (after 3 s of silence the next probe may be
//! 1–3 s away), and its congestion window has collapsed. A new connection's first packet goes
//! out at once. So the viewer does both: while the host is silent for
//! [`ReconnectConfig::stall_after`] it keeps the old connection and starts a fresh handshake
//! every [`ReconnectConfig::attempt_interval`]; whichever answers first wins. When the path
//! returns, the next attempt (at most one interval later) completes in two round trips
//! (handshake, hello) and the host sends a keyframe at once.
//!
//! # What the host does
//! The new hello carries [`resume_extension`] with the old session's id. The host ends that
//! session at once (held input is released, its video subscription dropped) instead of
//! waiting for its idle timeout; a viewer certificate other than the old session's cannot end
//! it. Input the user gives while the link is down is dropped, not queued: delivered seconds
//! late, a click or a key press would do the wrong thing.

use std::time::{Duration, Instant};

use crate::msg::Extension;

/// Hello extension id: "this connection replaces session N" (body: the old session id, u64
/// little-endian).
pub const RESUME_EXTENSION_ID: u16 = 1;

/// The hello extension that asks the host to replace session `session_id`.
pub fn resume_extension(session_id: u64) -> Extension {
    Extension {
        id: RESUME_EXTENSION_ID,
        body: session_id.to_le_bytes().to_vec(),
    }
}

/// The session a hello asks to replace, if it carries a well-formed resume extension.
pub fn resumed_session(extensions: &[Extension]) -> Option<u64> {
    let e = extensions.iter().find(|e| e.id == RESUME_EXTENSION_ID)?;
    Some(u64::from_le_bytes(e.body.as_slice().try_into().ok()?))
}

/// Reconnect settings. Every field has a documented default ([`ReconnectConfig::default`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectConfig {
    /// Reconnect at all (`viewer --no-reconnect` turns it off). Default on.
    pub enabled: bool,
    /// Host silence that counts as a stalled link. The host answers a ping every 250 ms, so
    /// 700 ms is about three missed answers. Default 700 ms.
    pub stall_after: Duration,
    /// A fresh connection attempt this often while stalled. Default 250 ms.
    pub attempt_interval: Duration,
    /// An attempt that has not completed by then is abandoned. Default 3 s.
    pub attempt_timeout: Duration,
    /// Give up this long after the host was last heard (`None`: never). Default 60 s.
    pub give_up_after: Option<Duration>,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            enabled: true,
            stall_after: Duration::from_millis(700),
            attempt_interval: Duration::from_millis(250),
            attempt_timeout: Duration::from_secs(3),
            give_up_after: Some(Duration::from_secs(60)),
        }
    }
}

/// What the I/O layer should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconnectAction {
    /// The link just stalled: tell the user, drop input.
    Stalled,
    /// Start a fresh connection attempt (the n-th since the stall).
    Attempt(u32),
    /// Stop trying: end the session.
    GiveUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Up,
    Reconnecting {
        since: Instant,
        next_attempt: Instant,
        attempts: u32,
        /// The old connection is gone for good (not only silent).
        lost: bool,
    },
    GaveUp,
}

/// The viewer's link watchdog and reconnect schedule (see the module docs).
#[derive(Debug, Clone)]
pub struct Reconnector {
    cfg: ReconnectConfig,
    last_heard: Instant,
    phase: Phase,
    stall_reported: bool,
    reconnects: u32,
}

impl Reconnector {
    /// A watchdog for a connection that was just established at `now`.
    pub fn new(cfg: ReconnectConfig, now: Instant) -> Self {
        Reconnector {
            cfg,
            last_heard: now,
            phase: Phase::Up,
            stall_reported: false,
            reconnects: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> ReconnectConfig {
        self.cfg
    }

    /// Whether the link is down (stalled or lost) and attempts may be running.
    pub fn is_reconnecting(&self) -> bool {
        matches!(self.phase, Phase::Reconnecting { .. })
    }

    /// Whether reconnecting was given up.
    pub fn gave_up(&self) -> bool {
        self.phase == Phase::GaveUp
    }

    /// When the link went down, while it is down.
    pub fn down_since(&self) -> Option<Instant> {
        match self.phase {
            Phase::Reconnecting { since, .. } => Some(since),
            _ => None,
        }
    }

    /// Attempts started since the link went down.
    pub fn attempts(&self) -> u32 {
        match self.phase {
            Phase::Reconnecting { attempts, .. } => attempts,
            _ => 0,
        }
    }

    /// Fresh connections that replaced a dead one so far.
    pub fn reconnects(&self) -> u32 {
        self.reconnects
    }

    /// Something arrived from the host on the current connection. Returns true when this
    /// ends a stall (the old connection came back: abandon the attempts).
    pub fn on_heard(&mut self, now: Instant) -> bool {
        self.last_heard = now;
        match self.phase {
            Phase::Reconnecting { lost: false, .. } => {
                self.phase = Phase::Up;
                self.stall_reported = false;
                true
            }
            _ => false,
        }
    }

    /// The current connection is gone for good (closed, reset, timed out). Returns whether to
    /// keep the session and reconnect (false: reconnecting is off or was given up).
    pub fn on_connection_lost(&mut self, now: Instant) -> bool {
        if !self.cfg.enabled || self.phase == Phase::GaveUp {
            return false;
        }
        match &mut self.phase {
            Phase::Reconnecting { lost, .. } => *lost = true,
            _ => {
                self.phase = Phase::Reconnecting {
                    since: now,
                    next_attempt: now,
                    attempts: 0,
                    lost: true,
                };
            }
        }
        true
    }

    /// A fresh connection won at `now`: the link is up on it.
    pub fn on_connected(&mut self, now: Instant) {
        self.last_heard = now;
        self.phase = Phase::Up;
        self.stall_reported = false;
        self.reconnects += 1;
    }

    /// An attempt failed; `fatal` when retrying cannot help (the host refused this viewer, the
    /// host key changed): then give up at once.
    pub fn on_attempt_failed(&mut self, fatal: bool) {
        if fatal && self.is_reconnecting() {
            self.phase = Phase::GaveUp;
        }
    }

    /// What to do at `now`; call until `None`, then again at [`Reconnector::poll_timeout`].
    pub fn poll(&mut self, now: Instant) -> Option<ReconnectAction> {
        match &mut self.phase {
            Phase::GaveUp => None,
            Phase::Up => {
                if !self.cfg.enabled
                    || now.saturating_duration_since(self.last_heard) < self.cfg.stall_after
                {
                    return None;
                }
                // Down since the host was last heard (what the user counts).
                self.phase = Phase::Reconnecting {
                    since: self.last_heard,
                    next_attempt: now,
                    attempts: 0,
                    lost: false,
                };
                self.stall_reported = true;
                Some(ReconnectAction::Stalled)
            }
            Phase::Reconnecting {
                since,
                next_attempt,
                attempts,
                ..
            } => {
                if !self.stall_reported {
                    self.stall_reported = true;
                    return Some(ReconnectAction::Stalled);
                }
                if self
                    .cfg
                    .give_up_after
                    .is_some_and(|g| now.saturating_duration_since(*since) >= g)
                {
                    self.phase = Phase::GaveUp;
                    return Some(ReconnectAction::GiveUp);
                }
                if now >= *next_attempt {
                    *attempts += 1;
                    // Catch up without a burst when the timer fired late.
                    *next_attempt = (*next_attempt + self.cfg.attempt_interval)
                        .max(now + self.cfg.attempt_interval / 2);
                    return Some(ReconnectAction::Attempt(*attempts));
                }
                None
            }
        }
    }

    /// When [`Reconnector::poll`] has something to do next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::GaveUp => None,
            Phase::Up => self
                .cfg
                .enabled
                .then(|| self.last_heard + self.cfg.stall_after),
            Phase::Reconnecting {
                since,
                next_attempt,
                ..
            } => {
                if !self.stall_reported {
                    return Some(since);
                }
                let give_up = self.cfg.give_up_after.map(|g| since + g);
                Some(give_up.map_or(next_attempt, |g| g.min(next_attempt)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Drives `r` from `from` to `to` in 1 ms steps, collecting (time offset, action).
    fn run(r: &mut Reconnector, t0: Instant, from: u64, to: u64) -> Vec<(u64, ReconnectAction)> {
        let mut out = Vec::new();
        for t in from..=to {
            while let Some(a) = r.poll(t0 + ms(t)) {
                out.push((t, a));
            }
        }
        out
    }

    #[test]
    fn resume_extension_round_trips_and_rejects_garbage() {
        let e = resume_extension(0x0123_4567_89AB_CDEF);
        assert_eq!(
            resumed_session(std::slice::from_ref(&e)),
            Some(0x0123_4567_89AB_CDEF)
        );
        assert_eq!(resumed_session(&[]), None);
        let short = Extension {
            id: RESUME_EXTENSION_ID,
            body: vec![1, 2, 3],
        };
        assert_eq!(resumed_session(&[short]), None);
        let other = Extension {
            id: 77,
            body: 5u64.to_le_bytes().to_vec(),
        };
        assert_eq!(resumed_session(&[other, e]), Some(0x0123_4567_89AB_CDEF));
    }

    #[test]
    fn silence_stalls_then_attempts_every_interval() {
        let t0 = Instant::now();
        let mut r = Reconnector::new(ReconnectConfig::default(), t0);
        // Heard every 250 ms for a second: nothing happens.
        for t in (0..=1000).step_by(250) {
            r.on_heard(t0 + ms(t));
            assert_eq!(r.poll(t0 + ms(t)), None);
        }
        assert_eq!(r.poll_timeout(), Some(t0 + ms(1700)));
        let actions = run(&mut r, t0, 1000, 2300);
        assert_eq!(
            actions,
            vec![
                (1700, ReconnectAction::Stalled),
                (1700, ReconnectAction::Attempt(1)),
                (1950, ReconnectAction::Attempt(2)),
                (2200, ReconnectAction::Attempt(3)),
            ]
        );
        assert!(r.is_reconnecting());
        assert_eq!(r.down_since(), Some(t0 + ms(1000)));
        // The old connection answers again: the stall is over, attempts stop.
        assert!(r.on_heard(t0 + ms(2400)));
        assert!(!r.is_reconnecting());
        assert_eq!(run(&mut r, t0, 2400, 3000), vec![]);
    }

    #[test]
    fn a_fresh_connection_wins() {
        let t0 = Instant::now();
        let mut r = Reconnector::new(ReconnectConfig::default(), t0);
        run(&mut r, t0, 0, 800);
        assert!(r.is_reconnecting());
        r.on_connected(t0 + ms(900));
        assert!(!r.is_reconnecting());
        assert_eq!(r.reconnects(), 1);
        assert_eq!(r.poll_timeout(), Some(t0 + ms(1600)));
    }

    #[test]
    fn a_lost_connection_reconnects_at_once_and_is_not_revived_by_stray_packets() {
        let t0 = Instant::now();
        let mut r = Reconnector::new(ReconnectConfig::default(), t0);
        assert!(r.on_connection_lost(t0 + ms(100)));
        assert_eq!(
            run(&mut r, t0, 100, 100),
            vec![
                (100, ReconnectAction::Stalled),
                (100, ReconnectAction::Attempt(1))
            ]
        );
        assert!(!r.on_heard(t0 + ms(120)), "a lost connection stays lost");
        assert!(r.is_reconnecting());
    }

    #[test]
    fn gives_up_after_the_limit_or_on_a_fatal_refusal() {
        let t0 = Instant::now();
        let cfg = ReconnectConfig {
            give_up_after: Some(Duration::from_secs(2)),
            ..ReconnectConfig::default()
        };
        let mut r = Reconnector::new(cfg, t0);
        let actions = run(&mut r, t0, 0, 4000);
        assert_eq!(actions.last(), Some(&(2000, ReconnectAction::GiveUp)));
        assert!(r.gave_up());
        assert!(!r.on_connection_lost(t0 + ms(4000)));
        assert_eq!(r.poll_timeout(), None);

        let mut r = Reconnector::new(cfg, t0);
        run(&mut r, t0, 0, 800);
        r.on_attempt_failed(true);
        assert!(r.gave_up());
    }

    #[test]
    fn disabled_never_stalls_nor_reconnects() {
        let t0 = Instant::now();
        let cfg = ReconnectConfig {
            enabled: false,
            ..ReconnectConfig::default()
        };
        let mut r = Reconnector::new(cfg, t0);
        assert_eq!(run(&mut r, t0, 0, 5000), vec![]);
        assert!(!r.on_connection_lost(t0 + ms(5000)));
        assert_eq!(r.poll_timeout(), None);
    }
}
