//! Bench mode's recorder of what happens on its own during a run: the WAN emulator's schedule
//! (cut, restore, new conditions), link changes (down, reconnected), the video rate received,
//! and at the end the emulator's and the video's counters — all stamped in ms after the start
//! of probing, for [`crate::bench::BenchReport`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bench::{BenchReport, WanChange};
use crate::wan::WanRelay;

/// Things that happen on their own during a run: the WAN schedule, link changes, throughput;
/// all stamped in ms after `t0`.
pub(crate) struct Recorder {
    events: Arc<std::sync::Mutex<Vec<(u64, String)>>>,
    throughput: Arc<std::sync::Mutex<Vec<(u64, f64)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    relay: Option<Arc<WanRelay>>,
    t0: Arc<std::sync::OnceLock<Instant>>,
    totals: Arc<std::sync::Mutex<crate::stats::SessionTotals>>,
}

impl Recorder {
    pub(crate) fn start(
        t0: Arc<std::sync::OnceLock<Instant>>,
        relay: Option<Arc<WanRelay>>,
        schedule: Vec<(Duration, WanChange)>,
        mut link: tokio::sync::watch::Receiver<crate::reconnect::LinkState>,
        totals: Arc<std::sync::Mutex<crate::stats::SessionTotals>>,
    ) -> Recorder {
        let events: Arc<std::sync::Mutex<Vec<(u64, String)>>> = Arc::default();
        let throughput: Arc<std::sync::Mutex<Vec<(u64, f64)>>> = Arc::default();
        let push = |v: &std::sync::Mutex<Vec<(u64, String)>>,
                    t0: &std::sync::OnceLock<Instant>,
                    what: String| {
            let at = t0.get().map_or(0, |t| t.elapsed().as_millis() as u64);
            v.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((at, what));
        };
        let mut tasks = Vec::new();
        let kept = (relay.clone(), t0.clone(), totals.clone());
        {
            let (t0, events) = (t0.clone(), events.clone());
            tasks.push(tokio::spawn(async move {
                // Wait for probing to start.
                while t0.get().is_none() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let start = *t0.get().expect("set above");
                for (at, change) in schedule {
                    tokio::time::sleep_until((start + at).into()).await;
                    if let Some(r) = &relay {
                        match change {
                            WanChange::Blackhole(on) => r.set_blackhole(on),
                            WanChange::Spec(spec) => r.set_spec(spec),
                        }
                    }
                    push(&events, &t0, change.to_string());
                }
            }));
        }
        {
            let (t0, events) = (t0.clone(), events.clone());
            tasks.push(tokio::spawn(async move {
                let mut last_kind = String::new();
                while link.changed().await.is_ok() {
                    let what = match &*link.borrow_and_update() {
                        crate::reconnect::LinkState::Up { reconnects, .. } => {
                            format!("link up (reconnects {reconnects})")
                        }
                        crate::reconnect::LinkState::Reconnecting { attempts, .. } => {
                            format!("link down (attempts {attempts})")
                        }
                        crate::reconnect::LinkState::Ended => "link ended".into(),
                    };
                    // One line per change of state, not per attempt.
                    let kind: String = what.split(" (").next().unwrap_or_default().into();
                    if kind != last_kind {
                        push(&events, &t0, what);
                        last_kind = kind;
                    }
                }
            }));
        }
        {
            let (t0, out) = (t0.clone(), throughput.clone());
            tasks.push(tokio::spawn(async move {
                let period = Duration::from_millis(250);
                let mut last = 0u64;
                let mut tick = tokio::time::interval(period);
                loop {
                    tick.tick().await;
                    let bytes = totals
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .bytes;
                    if let Some(t) = t0.get() {
                        let mbps =
                            bytes.saturating_sub(last) as f64 * 8.0 / period.as_secs_f64() / 1e6;
                        out.lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push((t.elapsed().as_millis() as u64, mbps));
                    }
                    last = bytes;
                }
            }));
        }
        Recorder {
            events,
            throughput,
            tasks,
            relay: kept.0,
            t0: kept.1,
            totals: kept.2,
        }
    }

    pub(crate) fn finish(self, report: &mut BenchReport) {
        for t in &self.tasks {
            t.abort();
        }
        let mut events = std::mem::take(
            &mut *self
                .events
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let at = self.t0.get().map_or(0, |t| t.elapsed().as_millis() as u64);
        let t = *self
            .totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        events.push((
            at,
            format!(
                "video: {} frames complete ({} of them rebuilt from parity), {} lost, {} keyframe \
                 requests; {} bytes, {} fragments ignored",
                t.frames_received,
                t.frames_recovered,
                t.frames_lost,
                t.keyframe_requests,
                t.bytes,
                t.fragments_ignored
            ),
        ));
        if let Some(r) = &self.relay {
            let s = r.stats();
            events.push((
                at,
                format!(
                    "emulator to viewer: {} packets, dropped {} by loss, {} by the queue, {} in \
                     blackouts; to host: {} packets, dropped {} by loss, {} by the queue",
                    s.to_peer.forwarded,
                    s.to_peer.dropped_loss,
                    s.to_peer.dropped_queue,
                    s.to_peer.dropped_blackhole,
                    s.to_target.forwarded,
                    s.to_target.dropped_loss,
                    s.to_target.dropped_queue
                ),
            ));
        }
        report.events = events;
        report.throughput = std::mem::take(
            &mut *self
                .throughput
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
    }
}
