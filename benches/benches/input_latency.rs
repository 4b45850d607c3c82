//! Input latency on loopback: viewer event → injected on the host's X display.
//!
//! One process, one clock: a viewer session sends key presses/releases and pointer motion at
//! random 2–20 ms intervals over real QUIC to a host endpoint whose input goes through the
//! injection thread into an Xvfb with XTEST. An event's latency runs from the viewer's
//! `send_input` call to the moment the injection thread has flushed it to the X server.
//!
//! `cargo bench -p sightline-benches --bench input_latency` sends 2,000 events; under
//! `cargo test` a 60-event smoke run checks the plumbing.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sightline_certs::TrustPolicy;
use sightline_host::inject::service::Injector;
use sightline_host::inject::xtest::XTestSink;
use sightline_host::inject::{InjectError, InputSink};
use sightline_protocol::msg::{Capabilities, InputEvent, InputKinds, KeyEvent, Modifiers};
use sightline_tests::xvfb::Xvfb;
use sightline_tests::{Pki, TestHost};

/// Stamps each event when the flush that carries it to the X server returns.
struct TimingSink {
    inner: XTestSink,
    pending: usize,
    done: Arc<Mutex<Vec<Instant>>>,
}

impl InputSink for TimingSink {
    fn name(&self) -> &'static str {
        "timing"
    }
    fn kinds(&self) -> InputKinds {
        self.inner.kinds()
    }
    fn inject(&mut self, event: &InputEvent) -> Result<(), InjectError> {
        self.pending += 1;
        self.inner.inject(event)
    }
    fn flush(&mut self) -> Result<(), InjectError> {
        let r = self.inner.flush();
        let now = Instant::now();
        let mut d = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        d.extend(std::iter::repeat_n(now, self.pending));
        self.pending = 0;
        r
    }
}

fn pct(v: &[f64], q: f64) -> f64 {
    v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

/// xorshift, so the intervals are the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 2000 } else { 60 };
    let xvfb = Xvfb::start(1920, 1080, 24);
    let done = Arc::new(Mutex::new(Vec::new()));
    let sink = TimingSink {
        inner: XTestSink::open(Some(&xvfb.name())).expect("XTEST on Xvfb"),
        pending: 0,
        done: done.clone(),
    };
    let injector = Arc::new(Injector::start(Box::new(sink)).expect("injection thread"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sent = rt.block_on(async {
        let pki = Pki::new();
        let caps = Capabilities {
            input_kinds: InputKinds::KEYBOARD.union(InputKinds::MOUSE),
            ..Capabilities::default()
        };
        let mut host = TestHost::start(&pki, caps);
        let addr = host.addr;
        let inj = injector.clone();
        tokio::spawn(async move {
            sightline_tests::route_input(&mut host.events, Some(&inj), None).await;
        });
        let known = pki.known_hosts("known_hosts", addr, &pki.host);
        let conn = sightline_viewer::net::connect(pki.connect_options(
            addr,
            &pki.viewer,
            known,
            TrustPolicy::PinnedOnly,
        ))
        .await
        .expect("viewer connects");
        let mut rng = Rng(0x5167_6874);
        let mut sent = Vec::with_capacity(n);
        for i in 0..n {
            tokio::time::sleep(Duration::from_micros(2_000 + rng.next() % 18_000)).await;
            let ev = if i % 3 == 2 {
                InputEvent::PointerMove {
                    x: (rng.next() % 1920) as i32,
                    y: (rng.next() % 1080) as i32,
                }
            } else {
                InputEvent::Key(KeyEvent {
                    code: 0x04,
                    keysym: 0x61,
                    modifiers: Modifiers::EMPTY,
                    pressed: i % 3 == 0,
                })
            };
            sent.push(Instant::now());
            conn.send_input(ev).await.expect("input accepted");
        }
        let _ = conn.close("bench done").await;
        sent
    });
    assert!(
        injector.wait_for(n as u64, Duration::from_secs(10)),
        "not every event was injected: {:?} of {n}",
        {
            let s = injector.stats();
            (s.injected, s.failed, s.safety_releases)
        }
    );
    let done = done.lock().unwrap_or_else(PoisonError::into_inner).clone();
    // The session releases nothing here (every press was followed by its release).
    let mut lat: Vec<f64> = sent
        .iter()
        .zip(&done)
        .map(|(s, d)| d.duration_since(*s).as_secs_f64() * 1e3)
        .collect();
    lat.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    let mut host_part: Vec<f64> = injector
        .stats()
        .inject_us
        .iter()
        .map(|&u| u as f64 / 1e3)
        .collect();
    host_part.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    println!(
        "input latency over loopback QUIC into Xvfb (XTEST), {n} events (2/3 keys, 1/3 motion):"
    );
    println!(
        "  viewer send_input → flushed to the X server: p50 {:.3} ms  p95 {:.3}  p99 {:.3}  max {:.3}",
        pct(&lat, 0.5),
        pct(&lat, 0.95),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    );
    println!(
        "  of which host queue → injected + flushed:  p50 {:.3} ms  p99 {:.3}",
        pct(&host_part, 0.5),
        pct(&host_part, 0.99)
    );
    drop(xvfb);
}
