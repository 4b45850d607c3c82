//! The audio jitter buffer on simulated time: a host capturing at its own clock rate, a seeded
//! network (delay, jitter, loss, duplicates, spikes) and a viewer device pulling fixed chunks at
//! its own clock rate. No sleeps; every run is reproducible from its seed.

use std::time::{Duration, Instant};

use sightline_protocol::audio::jitter::{
    BufferedPacket, ConcealReason, JitterBuffer, JitterConfig, JitterStats, Playout, PushOutcome,
};
use sightline_protocol::testing::Rng;

const RATE: f64 = 48_000.0;

#[derive(Debug, Clone, Copy)]
struct Scenario {
    seconds: f64,
    /// Host capture clock error, parts per million (positive: faster than nominal).
    host_ppm: f64,
    /// Viewer playback clock error, ppm.
    viewer_ppm: f64,
    frame: u32,
    /// Samples per packet (0: `frame`); PCM packets are shorter than the concealment frame.
    packet: u32,
    /// Samples the device asks for per callback.
    chunk: u32,
    base_delay_ms: f64,
    /// Each packet is delayed by a further uniform 0..jitter.
    jitter_ms: f64,
    loss: f64,
    dup: f64,
    /// Every `spike_every_s` seconds, packets sent in the next `spike_ms` are held until its end.
    spike_every_s: f64,
    spike_ms: f64,
    /// Media time jumps back to 0 at this time (host restarted its audio), if set.
    restart_at_s: Option<f64>,
    seed: u64,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            seconds: 30.0,
            host_ppm: 0.0,
            viewer_ppm: 0.0,
            frame: 240,
            packet: 0,
            chunk: 240,
            base_delay_ms: 1.0,
            jitter_ms: 0.0,
            loss: 0.0,
            dup: 0.0,
            spike_every_s: 0.0,
            spike_ms: 0.0,
            restart_at_s: None,
            seed: 7,
        }
    }
}

impl Scenario {
    fn packet_samples(&self) -> u32 {
        if self.packet == 0 {
            self.frame
        } else {
            self.packet
        }
    }
}

#[derive(Debug, Default)]
struct Outcome {
    stats: JitterStats,
    sent: u64,
    lost_on_link: u64,
    /// (viewer time s, capture → playout latency ms) for every played packet.
    latency: Vec<(f64, f64)>,
    /// Concealment events after the warm-up (first 3 s): (time, reason).
    concealed_after_warmup: Vec<(f64, ConcealReason)>,
    /// Media times played, in order.
    played: Vec<u64>,
    duplicates_pushed: u64,
    outcomes_reset: u64,
}

impl Outcome {
    /// Latency percentile over packets played in [from, to) seconds.
    fn latency_pct(&self, from: f64, to: f64, q: f64) -> f64 {
        let mut v: Vec<f64> = self
            .latency
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, l)| *l)
            .collect();
        assert!(!v.is_empty(), "no packets played in {from}..{to} s");
        v.sort_by(|a, b| a.total_cmp(b));
        v[((q * v.len() as f64) as usize).min(v.len() - 1)]
    }
    /// Lowest and highest per-second median latency over [from, to).
    fn latency_band(&self, from: f64, to: f64) -> (f64, f64) {
        let mut lo = f64::MAX;
        let mut hi = f64::MIN;
        let mut t = from;
        while t + 1.0 <= to {
            let m = self.latency_pct(t, t + 1.0, 0.5);
            lo = lo.min(m);
            hi = hi.max(m);
            t += 1.0;
        }
        (lo, hi)
    }
    fn underruns_after_warmup(&self) -> usize {
        self.concealed_after_warmup
            .iter()
            .filter(|(_, r)| *r == ConcealReason::Underrun)
            .count()
    }
}

/// A packet on the wire: (arrival time s, media time, capture time s).
type Arrival = (f64, u64, f64);

fn run(s: Scenario, cfg: JitterConfig) -> Outcome {
    run_with(s, cfg, |_, _| {})
}

fn run_with(
    s: Scenario,
    cfg: JitterConfig,
    mut each_callback: impl FnMut(f64, &mut JitterBuffer<()>),
) -> Outcome {
    let mut rng = Rng::new(s.seed);
    let host_rate = RATE * (1.0 + s.host_ppm * 1e-6);
    let view_rate = RATE * (1.0 + s.viewer_ppm * 1e-6);
    let mut out = Outcome::default();

    // The host side: every packet and when it arrives.
    let mut arrivals: Vec<Arrival> = Vec::new();
    let restart_frame = s
        .restart_at_s
        .map(|r| (r * host_rate / s.packet_samples() as f64) as u64);
    for k in 0.. {
        let capture = k as f64 * s.packet_samples() as f64 / host_rate;
        if capture > s.seconds {
            break;
        }
        // Media time counts samples since the host (re)started its audio.
        let index = match restart_frame {
            Some(r) if k >= r => k - r,
            _ => k,
        };
        let media_time = index * s.packet_samples() as u64;
        push_arrival(
            &s,
            &mut rng,
            &mut arrivals,
            &mut out,
            capture,
            media_time,
            host_rate,
        );
    }
    arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));

    // The viewer side.
    let base = Instant::now();
    let at = |t: f64| base + Duration::from_secs_f64(t.max(0.0));
    let mut jb: JitterBuffer<()> = JitterBuffer::new(cfg);
    let mut next = 0usize;
    let mut fifo: i64 = 0;
    let mut i: u64 = 0;
    // Capture time by media time, for latency (after a restart media times repeat: the
    // latest capture wins, which is the one being played then).
    let mut captures = std::collections::HashMap::new();
    loop {
        let t = i as f64 * s.chunk as f64 / view_rate;
        if t > s.seconds - 0.05 {
            break;
        }
        while next < arrivals.len() && arrivals[next].0 <= t {
            let (when, mt, cap) = arrivals[next];
            captures.insert(mt, cap);
            let r = jb.push(
                at(when),
                BufferedPacket {
                    sequence: 0,
                    media_time: mt,
                    samples: s.packet_samples(),
                    capture_us: (cap * 1e6) as u64,
                    payload: (),
                },
            );
            if r == PushOutcome::Reset {
                out.outcomes_reset += 1;
            }
            next += 1;
        }
        each_callback(t, &mut jb);
        jb.observe(at(t), fifo.max(0) as u64, s.chunk as u64);
        while fifo < s.chunk as i64 {
            match jb.pull(at(t)) {
                Playout::Packet { packet, adjust } => {
                    let plays_at = t + fifo as f64 / view_rate;
                    let cap = captures[&packet.media_time];
                    out.latency.push((t, (plays_at - cap) * 1e3));
                    out.played.push(packet.media_time);
                    fifo += packet.samples as i64 + adjust as i64;
                }
                Playout::Conceal {
                    samples, reason, ..
                } => {
                    if t > 3.0 {
                        out.concealed_after_warmup.push((t, reason));
                    }
                    fifo += samples as i64;
                }
                Playout::Silence { samples } => fifo += samples as i64,
            }
        }
        fifo -= s.chunk as i64;
        i += 1;
    }
    out.stats = jb.stats();
    out
}

fn push_arrival(
    s: &Scenario,
    rng: &mut Rng,
    arrivals: &mut Vec<Arrival>,
    out: &mut Outcome,
    capture: f64,
    media_time: u64,
    host_rate: f64,
) {
    out.sent += 1;
    let sent = capture + s.packet_samples() as f64 / host_rate;
    if rng.unit() < s.loss {
        out.lost_on_link += 1;
        return;
    }
    let mut arrive = sent + s.base_delay_ms / 1e3 + rng.unit() * s.jitter_ms / 1e3;
    if s.spike_every_s > 0.0 {
        let phase = sent % s.spike_every_s;
        let start = s.spike_every_s - s.spike_ms / 1e3;
        if phase >= start && sent > 1.0 {
            arrive = arrive.max(sent - phase + s.spike_every_s + s.base_delay_ms / 1e3);
        }
    }
    arrivals.push((arrive, media_time, capture));
    if rng.unit() < s.dup {
        out.duplicates_pushed += 1;
        arrivals.push((arrive + rng.unit() * 0.005, media_time, capture));
    }
}

fn assert_in_order_once(o: &Outcome) {
    for w in o.played.windows(2) {
        assert!(
            w[0] < w[1],
            "media time played out of order or twice: {w:?}"
        );
    }
}

#[test]
fn clean_link_settles_low_and_never_conceals() {
    let o = run(Scenario::default(), JitterConfig::default());
    assert_in_order_once(&o);
    assert!(
        o.concealed_after_warmup.is_empty(),
        "{:?}",
        o.concealed_after_warmup
    );
    // Capture → playout = a frame of capture (5 ms) + the link (1 ms) + the margin (the target
    // band, 2–7.5 ms: one device callback wide) + where in the device callback the packet's
    // first sample lands (0–5 ms). After the shrink from the 20 ms prefill: ~12 ms.
    let late = o.latency_pct(20.0, 30.0, 0.99);
    assert!(late < 16.0, "latency p99 {late:.2} ms");
    let early = o.latency_pct(0.0, 0.5, 0.5);
    assert!(early > 20.0, "starts at the prefill: {early:.2} ms");
    assert!(o.stats.dropped_samples > 0 && o.stats.inserted_samples < 10);
}

#[test]
fn jitter_grows_the_delay_and_keeps_underruns_rare() {
    let s = Scenario {
        jitter_ms: 20.0,
        seconds: 40.0,
        ..Scenario::default()
    };
    let o = run(s, JitterConfig::default());
    assert_in_order_once(&o);
    let frames = o.played.len() as f64;
    let underruns = o.underruns_after_warmup() as f64;
    assert!(
        underruns / frames < 0.005,
        "{underruns} underruns in {frames} frames"
    );
    // The delay covers the jitter (20 ms) but does not balloon.
    let p50 = o.latency_pct(10.0, 40.0, 0.5);
    assert!((21.0..40.0).contains(&p50), "latency p50 {p50:.2} ms");
    assert!(
        o.stats.jitter_us > 3_000,
        "jitter estimate {} µs",
        o.stats.jitter_us
    );
    assert_eq!(o.stats.stalls, 0);
}

#[test]
fn five_percent_loss_is_concealed_gap_by_gap() {
    let s = Scenario {
        loss: 0.05,
        jitter_ms: 2.0,
        seconds: 60.0,
        seed: 11,
        ..Scenario::default()
    };
    let o = run(s, JitterConfig::default());
    assert_in_order_once(&o);
    assert!(o.lost_on_link > 500, "{}", o.lost_on_link);
    // Every lost packet is concealed once, exactly its length (the last ones may be pending).
    let lost = o.stats.lost as i64;
    assert!(
        (lost - o.lost_on_link as i64).abs() <= 3,
        "lost {} concealed {}",
        o.lost_on_link,
        lost
    );
    // Every packet that arrived was played, but for the few still buffered at the end.
    assert!(o.stats.received - o.stats.played <= 6, "{:?}", o.stats);
    assert_eq!(o.stats.stalls, 0);
    // No drift and no growth: the latency in the last 10 s is what it was at 10–20 s.
    // A loss with nothing after it yet looks like a late packet and stretches the delay by a
    // frame, which then shrinks back: the delay moves within a few frames but does not creep.
    let a = o.latency_pct(10.0, 35.0, 0.5);
    let b = o.latency_pct(35.0, 60.0, 0.5);
    assert!(
        (a - b).abs() < 3.0,
        "latency median moved from {a:.2} to {b:.2} ms"
    );
    let (_, hi) = o.latency_band(10.0, 60.0);
    assert!(hi < 35.0, "latency {hi:.2} ms");
}

#[test]
fn clock_drift_is_absorbed_for_ten_minutes() {
    for (host, viewer) in [(300.0, -300.0), (-250.0, 250.0)] {
        let s = Scenario {
            host_ppm: host,
            viewer_ppm: viewer,
            jitter_ms: 1.0,
            seconds: 600.0,
            ..Scenario::default()
        };
        let o = run(s, JitterConfig::default());
        assert_in_order_once(&o);
        assert!(
            o.underruns_after_warmup() == 0,
            "{host} {viewer}: {:?} {:?}",
            &o.concealed_after_warmup[..o.concealed_after_warmup.len().min(10)],
            o.stats
        );
        // The delay stays inside one band (a device callback wide) for ten minutes.
        let (lo, hi) = o.latency_band(20.0, 600.0);
        assert!(
            hi - lo < 6.0,
            "{host}/{viewer} ppm: latency wandered over {lo:.2}..{hi:.2} ms"
        );
        // The host produced (host − viewer) ppm more (or fewer) samples than were played; the
        // difference went out as single-sample drops (or inserts).
        let expected = (host - viewer) * 1e-6 * RATE * 600.0;
        let net = o.stats.dropped_samples as f64 - o.stats.inserted_samples as f64;
        assert!(
            (net - expected).abs() < 0.05 * expected.abs() + 1_500.0,
            "{host}/{viewer} ppm: net drops {net} vs drift {expected}"
        );
    }
}

#[test]
fn duplicates_and_reordering_play_each_packet_once_in_order() {
    let s = Scenario {
        dup: 0.1,
        jitter_ms: 12.0,
        seconds: 20.0,
        seed: 3,
        ..Scenario::default()
    };
    let o = run(s, JitterConfig::default());
    assert_in_order_once(&o);
    assert!(o.duplicates_pushed > 300);
    // Every copy is either recognised as a duplicate or arrived after its audio played.
    assert!(o.stats.duplicates + o.stats.late >= o.duplicates_pushed - 5);
    assert!(o.stats.duplicates > o.duplicates_pushed / 2);
}

#[test]
fn a_network_stall_is_ridden_out_then_the_delay_shrinks_back() {
    // A 150 ms hold every 20 s: playback stalls and re-buffers or stretches, then returns to a
    // low delay before the next spike.
    let s = Scenario {
        spike_every_s: 20.0,
        spike_ms: 150.0,
        seconds: 60.0,
        jitter_ms: 1.0,
        ..Scenario::default()
    };
    let o = run(s, JitterConfig::default());
    assert_in_order_once(&o);
    let before = o.latency_pct(15.0, 19.8, 0.5);
    let after = o.latency_pct(35.0, 39.8, 0.5);
    assert!(
        before < 16.0 && after < before + 5.5,
        "{before:.2} {after:.2}"
    );
    assert!(o.stats.underruns > 0 || o.stats.stalls > 0);
    assert!(o.stats.late == 0, "late {}", o.stats.late);
}

#[test]
fn host_restart_reanchors_the_stream() {
    let s = Scenario {
        restart_at_s: Some(10.0),
        seconds: 20.0,
        ..Scenario::default()
    };
    let o = run(s, JitterConfig::default());
    assert_eq!(o.outcomes_reset, 1, "{:?}", o.stats);
    // Audio keeps playing after the restart.
    let after = o.latency.iter().filter(|(t, _)| *t > 11.0).count();
    assert!(after > 1500, "{after} packets after the restart");
}

#[test]
fn extra_delay_for_av_sync_raises_latency_promptly() {
    let s = Scenario {
        seconds: 20.0,
        ..Scenario::default()
    };
    let o = run_with(s, JitterConfig::default(), |t, jb| {
        if (10.0..10.01).contains(&t) {
            jb.set_extra_delay(Duration::from_millis(50));
        }
    });
    let before = o.latency_pct(8.0, 10.0, 0.5);
    let after = o.latency_pct(11.0, 20.0, 0.5);
    // 50 ms more, to within a device callback.
    assert!(
        (after - before - 50.0).abs() < 6.0,
        "before {before:.2} after {after:.2}"
    );
    assert!(o.stats.stretches >= 8, "{:?}", o.stats);
}

#[test]
fn device_chunks_unlike_packet_frames_still_play_cleanly() {
    // 10 ms packets, a device asking for 441 samples at a time, slight drift and jitter.
    let s = Scenario {
        frame: 480,
        chunk: 441,
        host_ppm: 80.0,
        jitter_ms: 3.0,
        seconds: 60.0,
        ..Scenario::default()
    };
    let cfg = JitterConfig {
        frame_samples: 480,
        ..JitterConfig::default()
    };
    let o = run(s, cfg);
    assert_in_order_once(&o);
    assert_eq!(o.underruns_after_warmup(), 0);
    // The band is one device callback (9.2 ms) wide.
    let (lo, hi) = o.latency_band(10.0, 60.0);
    assert!(hi - lo < 11.0, "latency wandered over {lo:.2}..{hi:.2} ms");
}

#[test]
fn short_pcm_packets_are_corrected_no_faster_than_opus_frames() {
    // 7.1 PCM: 40-sample packets, 5 ms concealment frames; 300 ppm of drift to correct.
    let s = Scenario {
        packet: 40,
        host_ppm: 300.0,
        jitter_ms: 1.0,
        seconds: 40.0,
        ..Scenario::default()
    };
    let mut at_10 = None;
    let mut changes: Vec<(f64, u64)> = Vec::new();
    let o = run_with(s, JitterConfig::default(), |t, jb| {
        if at_10.is_none() && t >= 10.0 {
            at_10 = Some(jb.stats());
        }
        let st = jb.stats();
        changes.push((t, st.dropped_samples + st.inserted_samples));
    });
    // Never faster than ~one sample in 240 (0.4 %) once settled: at most ~25 changes in any
    // 100 ms window after the start-up shrink.
    let mut worst = 0;
    for (i, &(t, c)) in changes.iter().enumerate() {
        if t < 10.0 {
            continue;
        }
        if let Some(&(_, c0)) = changes[..i].iter().rev().find(|(t0, _)| t - t0 >= 0.1) {
            worst = worst.max(c - c0);
        }
    }
    assert!(worst <= 25, "{worst} samples changed within 100 ms");
    assert_in_order_once(&o);
    let a = at_10.unwrap();
    let b = o.stats;
    let changed =
        (b.dropped_samples - a.dropped_samples) + (b.inserted_samples - a.inserted_samples);
    // Drift alone needs 300e-6 × 48,000 × 30 s = 432 samples; the control may dither around it
    // but never approaches one sample per packet (36,000 in 30 s, a 2.5 % pitch shift).
    assert!(
        (300..1_500).contains(&changed),
        "{changed} samples dropped or inserted in 30 s: {b:?}"
    );
    let (lo, hi) = o.latency_band(10.0, 40.0);
    assert!(hi - lo < 6.0, "latency wandered over {lo:.2}..{hi:.2} ms");
}
