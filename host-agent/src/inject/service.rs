//! The injection thread: owns the [`InputSink`], injects events in arrival order, flushes after
//! each batch, and keeps latency figures (arrival at the host → injected).

use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sightline_protocol::msg::{InputEvent, InputKinds};
use sightline_protocol::session::InputOrigin;
use tracing::{debug, warn};

use super::{event_kind, InputSink};

/// One event to inject.
#[derive(Debug, Clone, Copy)]
pub struct InjectJob {
    /// Which session sent it.
    pub session_id: u64,
    /// The event.
    pub event: InputEvent,
    /// Viewer or a safety release.
    pub origin: InputOrigin,
    /// When the host handed it over.
    pub queued: Instant,
}

/// Figures kept by the injection thread.
#[derive(Debug, Clone, Default)]
pub struct InjectStats {
    /// Events injected.
    pub injected: u64,
    /// Events the sink refused or failed on.
    pub failed: u64,
    /// Releases the host made on its own (viewer gone or silent).
    pub safety_releases: u64,
    /// Queue → injected-and-flushed, µs, newest last (at most 10 000 kept).
    pub inject_us: Vec<u32>,
}

/// Handle to the injection thread; dropping it stops the thread after the queue drains.
#[derive(Debug)]
pub struct Injector {
    tx: Option<mpsc::Sender<InjectJob>>,
    /// The figures, and a condition signalled after every batch.
    stats: Arc<(Mutex<InjectStats>, Condvar)>,
    kinds: InputKinds,
    thread: Option<JoinHandle<()>>,
}

impl Injector {
    /// Starts the thread with `sink`.
    pub fn start(mut sink: Box<dyn InputSink>) -> std::io::Result<Injector> {
        let (tx, rx) = mpsc::channel::<InjectJob>();
        let stats = Arc::new((Mutex::new(InjectStats::default()), Condvar::new()));
        let kinds = sink.kinds();
        let st = stats.clone();
        let thread = std::thread::Builder::new()
            .name("sightline-inject".into())
            .spawn(move || {
                let mut warned = 0u32;
                while let Ok(first) = rx.recv() {
                    // Inject everything already waiting, then flush once.
                    let mut batch = vec![first];
                    while let Ok(j) = rx.try_recv() {
                        batch.push(j);
                    }
                    let mut ok = 0u64;
                    let mut failed = 0u64;
                    let mut releases = 0u64;
                    for j in &batch {
                        if matches!(j.origin, InputOrigin::Release(_)) {
                            releases += 1;
                        }
                        match sink.inject(&j.event) {
                            Ok(()) => ok += 1,
                            Err(e) => {
                                failed += 1;
                                if warned < 20 {
                                    warned += 1;
                                    warn!(
                                        session = format_args!("{:016x}", j.session_id),
                                        kind = event_kind(&j.event),
                                        "input not injected: {e}"
                                    );
                                }
                            }
                        }
                    }
                    if let Err(e) = sink.flush() {
                        warn!("input flush failed: {e}");
                    }
                    let done = Instant::now();
                    let mut s = st.0.lock().expect("inject stats");
                    s.injected += ok;
                    s.failed += failed;
                    s.safety_releases += releases;
                    for j in &batch {
                        if s.inject_us.len() >= 10_000 {
                            s.inject_us.drain(..5_000);
                        }
                        let us = done.duration_since(j.queued).as_micros();
                        s.inject_us.push(us.min(u32::MAX as u128) as u32);
                    }
                    drop(s);
                    st.1.notify_all();
                }
                debug!("injection thread ends; releasing everything");
                let _ = sink.inject(&InputEvent::ReleaseAll);
                let _ = sink.flush();
            })?;
        Ok(Injector {
            tx: Some(tx),
            stats,
            kinds,
            thread: Some(thread),
        })
    }

    /// What the sink can inject.
    pub fn kinds(&self) -> InputKinds {
        self.kinds
    }

    /// Queues an event; never blocks.
    pub fn submit(&self, session_id: u64, event: InputEvent, origin: InputOrigin) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(InjectJob {
                session_id,
                event,
                origin,
                queued: Instant::now(),
            });
        }
    }

    /// A copy of the figures.
    pub fn stats(&self) -> InjectStats {
        self.stats.0.lock().expect("inject stats").clone()
    }

    /// Waits until `n` events were handled (injected or failed), up to `timeout`.
    pub fn wait_for(&self, n: u64, timeout: Duration) -> bool {
        let (lock, cond) = &*self.stats;
        let guard = lock.lock().expect("inject stats");
        let (guard, _) = cond
            .wait_timeout_while(guard, timeout, |s| s.injected + s.failed < n)
            .expect("inject stats");
        guard.injected + guard.failed >= n
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inject::RecordingSink;
    use sightline_protocol::msg::MouseButton;
    use sightline_protocol::session::ReleaseCause;

    #[test]
    fn injects_in_order_and_releases_on_stop() {
        let rec = RecordingSink::new();
        let inj = Injector::start(Box::new(rec.clone())).unwrap();
        let press = InputEvent::Button {
            button: MouseButton::LEFT,
            pressed: true,
        };
        let release = InputEvent::Button {
            button: MouseButton::LEFT,
            pressed: false,
        };
        inj.submit(
            1,
            press,
            InputOrigin::Viewer {
                seq: 1,
                viewer_time_us: 0,
                host_recv_us: 0,
            },
        );
        inj.submit(1, release, InputOrigin::Release(ReleaseCause::SessionEnded));
        assert!(inj.wait_for(2, Duration::from_secs(5)));
        let s = inj.stats();
        assert_eq!((s.injected, s.failed, s.safety_releases), (2, 0, 1));
        assert_eq!(s.inject_us.len(), 2);
        drop(inj);
        assert_eq!(rec.events(), vec![press, release, InputEvent::ReleaseAll]);
    }
}
