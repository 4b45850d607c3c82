//! Viewer side: fragments → access units, with parity recovery and a stale-frame policy.
//!
//! Rules (see the design module):
//! * A frame is complete when all its data fragments are in, or when data + parity fragments
//!   reach the data count (then the missing data is recovered).
//! * When frame N completes, every incomplete frame older than N is given up: it can no longer
//!   be shown in order, and waiting for it would only add latency.
//! * An incomplete frame with nothing newer is given up when no fragment of it arrived for
//!   `max_wait_us` (a large frame paced over a slow path keeps arriving for longer than that).
//! * Each give-up is reported as [`ReassemblyEvent::Lost`], so the caller asks the host to
//!   recover (reference invalidation or a keyframe).
//! * Fragments of frames already completed or given up are ignored (late or duplicate).

use std::collections::BTreeMap;

use super::frame_newer;
use crate::damage::DamageRect;
use crate::msg::{HostStageTimes, VideoFragment};

/// Reassembly settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblerConfig {
    /// Give up an incomplete frame this long after its latest fragment when nothing newer has
    /// completed (µs).
    pub max_wait_us: u64,
    /// Most frames in flight at once; the oldest is given up beyond that.
    pub max_pending: usize,
    /// Largest access unit accepted (bytes).
    pub max_au_len: usize,
}

impl Default for ReassemblerConfig {
    fn default() -> Self {
        ReassemblerConfig {
            max_wait_us: 100_000,
            max_pending: 16,
            max_au_len: 16 << 20,
        }
    }
}

/// A complete access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// Stream.
    pub stream_id: u8,
    /// Frame number.
    pub frame: u32,
    /// IDR.
    pub keyframe: bool,
    /// Annex B bytes.
    pub data: Vec<u8>,
    /// Host stage times, when a fragment carrying them arrived or was recovered.
    pub times: Option<HostStageTimes>,
    /// What changed since the previous frame, when a fragment carrying the list arrived
    /// (`None`: unknown — repaint everything; see [`crate::damage`]).
    pub damage: Option<Vec<DamageRect>>,
    /// Viewer clock when the first fragment arrived (µs).
    pub first_packet_us: u64,
    /// Viewer clock when the frame became complete (µs).
    pub complete_us: u64,
    /// Data fragments rebuilt from parity.
    pub recovered_fragments: u16,
}

/// What the reassembler reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReassemblyEvent {
    /// A frame is ready to decode.
    Complete(AccessUnit),
    /// Frames given up (inclusive range, oldest first).
    Lost {
        /// Stream.
        stream_id: u8,
        /// First frame given up.
        first: u32,
        /// Last frame given up.
        last: u32,
    },
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Frames completed.
    pub completed: u64,
    /// Frames completed only thanks to parity.
    pub recovered: u64,
    /// Frames given up.
    pub lost: u64,
    /// Fragments ignored (late, duplicate or inconsistent).
    pub ignored_fragments: u64,
    /// Payload bytes received.
    pub bytes: u64,
}

#[derive(Debug)]
struct Partial {
    stream_id: u8,
    keyframe: bool,
    count: u16,
    data_count: u16,
    au_len: u32,
    times: Option<HostStageTimes>,
    damage: Option<Vec<DamageRect>>,
    first_packet_us: u64,
    last_packet_us: u64,
    fragments: Vec<Option<Vec<u8>>>,
    received: u16,
}

/// Reassembles one video stream.
#[derive(Debug)]
pub struct Reassembler {
    cfg: ReassemblerConfig,
    pending: BTreeMap<u32, Partial>,
    /// Newest frame completed or given up; older fragments are ignored.
    horizon: Option<u32>,
    stats: ReassemblyStats,
}

impl Reassembler {
    /// A reassembler with `cfg`.
    pub fn new(cfg: ReassemblerConfig) -> Self {
        Reassembler {
            cfg,
            pending: BTreeMap::new(),
            horizon: None,
            stats: ReassemblyStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> ReassemblyStats {
        self.stats
    }

    /// Adds a fragment received at `now_us` (viewer clock); returns what it completed or gave up.
    pub fn push(&mut self, now_us: u64, f: VideoFragment) -> Vec<ReassemblyEvent> {
        let mut events = Vec::new();
        if self.horizon.is_some_and(|h| !frame_newer(f.frame, h)) {
            self.stats.ignored_fragments += 1;
            return events;
        }
        if f.au_len as usize > self.cfg.max_au_len
            || f.data_fragments == 0
            || f.data_fragments > f.fragment_count
        {
            self.stats.ignored_fragments += 1;
            return events;
        }
        self.stats.bytes += f.payload.len() as u64;
        let p = self.pending.entry(f.frame).or_insert_with(|| Partial {
            stream_id: f.stream_id,
            keyframe: f.keyframe,
            count: f.fragment_count,
            data_count: f.data_fragments,
            au_len: f.au_len,
            times: None,
            damage: None,
            first_packet_us: now_us,
            last_packet_us: now_us,
            fragments: vec![None; f.fragment_count as usize],
            received: 0,
        });
        if p.count != f.fragment_count || p.data_count != f.data_fragments || p.au_len != f.au_len {
            self.stats.ignored_fragments += 1;
            return events;
        }
        let slot = &mut p.fragments[f.fragment_index as usize];
        if slot.is_some() {
            self.stats.ignored_fragments += 1;
            return events;
        }
        *slot = Some(f.payload);
        p.received += 1;
        p.last_packet_us = now_us;
        if p.times.is_none() {
            p.times = f.times;
        }
        if p.damage.is_none() {
            p.damage = f.damage;
        }
        if p.received >= p.data_count {
            let frame = f.frame;
            let p = self
                .pending
                .remove(&frame)
                .expect("entry present: inserted above");
            match assemble(p, frame, now_us) {
                Some(au) => {
                    self.give_up_older_than(frame, &mut events);
                    self.horizon = Some(frame);
                    self.stats.completed += 1;
                    if au.recovered_fragments > 0 {
                        self.stats.recovered += 1;
                    }
                    events.push(ReassemblyEvent::Complete(au));
                }
                None => {
                    // Parity did not reconstruct (inconsistent data): treat as lost.
                    self.give_up_older_than(frame, &mut events);
                    self.horizon = Some(frame);
                    self.stats.lost += 1;
                    push_lost(&mut events, f.stream_id, frame);
                }
            }
        }
        while self.pending.len() > self.cfg.max_pending {
            let (&oldest, _) = self.pending.iter().next().expect("non-empty");
            let p = self.pending.remove(&oldest).expect("present");
            self.mark_lost(oldest, p.stream_id, &mut events);
        }
        events
    }

    /// Gives up frames that waited too long; call when no fragment arrives for a while.
    pub fn handle_timeout(&mut self, now_us: u64) -> Vec<ReassemblyEvent> {
        let mut events = Vec::new();
        let expired: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| now_us.saturating_sub(p.last_packet_us) >= self.cfg.max_wait_us)
            .map(|(f, _)| *f)
            .collect();
        for frame in expired {
            let p = self.pending.remove(&frame).expect("listed above");
            self.mark_lost(frame, p.stream_id, &mut events);
        }
        events
    }

    /// Whether a keyframe is arriving: one is incomplete and got a fragment within
    /// `within_us` of `now_us` (a slow path takes a while to carry one; asking for another
    /// meanwhile would only slow it down).
    pub fn keyframe_arriving(&self, now_us: u64, within_us: u64) -> bool {
        self.pending
            .values()
            .any(|p| p.keyframe && now_us.saturating_sub(p.last_packet_us) <= within_us)
    }

    /// When [`Reassembler::handle_timeout`] should next be called (viewer clock, µs).
    pub fn next_timeout_us(&self) -> Option<u64> {
        self.pending
            .values()
            .map(|p| p.last_packet_us + self.cfg.max_wait_us)
            .min()
    }

    fn give_up_older_than(&mut self, frame: u32, events: &mut Vec<ReassemblyEvent>) {
        // Frames between the newest one settled and `frame` were all lost, including those of
        // which no fragment ever arrived (all lost, or never sent to us): the decoder must not
        // take `frame` as if they had been decoded.
        if let Some(h) = self.horizon {
            let first = h.wrapping_add(1);
            if frame != first && frame_newer(frame, first) {
                let last = frame.wrapping_sub(1);
                let stream_id = self.pending.values().next().map_or(0, |p| p.stream_id);
                self.pending.retain(|f, _| !frame_newer(frame, *f));
                self.stats.lost += u64::from(last.wrapping_sub(first)) + 1;
                self.horizon = Some(last);
                events.push(ReassemblyEvent::Lost {
                    stream_id,
                    first,
                    last,
                });
                return;
            }
        }
        let older: Vec<u32> = self
            .pending
            .keys()
            .copied()
            .filter(|f| frame_newer(frame, *f))
            .collect();
        for f in older {
            let p = self.pending.remove(&f).expect("listed above");
            self.mark_lost(f, p.stream_id, events);
        }
    }

    fn mark_lost(&mut self, frame: u32, stream_id: u8, events: &mut Vec<ReassemblyEvent>) {
        self.stats.lost += 1;
        if self.horizon.is_none_or(|h| frame_newer(frame, h)) {
            self.horizon = Some(frame);
        }
        push_lost(events, stream_id, frame);
    }
}

fn push_lost(events: &mut Vec<ReassemblyEvent>, stream_id: u8, frame: u32) {
    if let Some(ReassemblyEvent::Lost { last, .. }) = events.last_mut() {
        if last.wrapping_add(1) == frame {
            *last = frame;
            return;
        }
    }
    events.push(ReassemblyEvent::Lost {
        stream_id,
        first: frame,
        last: frame,
    });
}

fn assemble(p: Partial, frame: u32, now_us: u64) -> Option<AccessUnit> {
    let k = p.data_count as usize;
    let missing: Vec<usize> = (0..k).filter(|i| p.fragments[*i].is_none()).collect();
    let mut recovered_fragments = 0u16;
    let mut fragments = p.fragments;
    if !missing.is_empty() {
        let parity = fragments.len() - k;
        let shard_len = fragments[k..].iter().flatten().map(Vec::len).next()?;
        let originals = fragments[..k].iter().enumerate().filter_map(|(i, s)| {
            s.as_ref().map(|s| {
                let mut v = s.clone();
                v.resize(shard_len, 0);
                (i, v)
            })
        });
        let recovery = fragments[k..]
            .iter()
            .enumerate()
            .filter_map(|(j, s)| s.as_ref().map(|s| (j, s.clone())));
        let restored = reed_solomon_simd::decode(k, parity, originals, recovery).ok()?;
        for (i, shard) in restored {
            if i < k {
                fragments[i] = Some(shard);
                recovered_fragments += 1;
            }
        }
    }
    let mut data = Vec::with_capacity(p.au_len as usize);
    for s in fragments.into_iter().take(k) {
        data.extend_from_slice(&s?);
    }
    if data.len() < p.au_len as usize {
        return None;
    }
    data.truncate(p.au_len as usize);
    Some(AccessUnit {
        stream_id: p.stream_id,
        frame,
        keyframe: p.keyframe,
        data,
        times: p.times,
        damage: p.damage,
        first_packet_us: p.first_packet_us,
        complete_us: now_us,
        recovered_fragments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;
    use crate::video::{packetize, FecConfig};

    fn au(len: usize, seed: u64) -> Vec<u8> {
        let mut r = Rng::new(seed);
        (0..len).map(|_| r.next_u64() as u8).collect()
    }

    fn frags(frame: u32, data: &[u8], fec: FecConfig) -> Vec<VideoFragment> {
        packetize(0, frame, false, HostStageTimes::default(), data, 1100, fec).unwrap()
    }

    #[test]
    fn in_order_without_loss() {
        let mut r = Reassembler::new(ReassemblerConfig::default());
        let data = au(5000, 1);
        let mut out = Vec::new();
        for f in frags(1, &data, FecConfig::default()) {
            out.extend(r.push(10, f));
        }
        assert_eq!(out.len(), 1);
        match &out[0] {
            ReassemblyEvent::Complete(a) => {
                assert_eq!(a.data, data);
                assert_eq!(a.recovered_fragments, 0);
                assert!(a.times.is_some());
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn parity_recovers_lost_fragments_including_the_first() {
        for len in [1usize, 2, 700, 1100, 1101, 20_000, 300_000] {
            let data = au(len, len as u64);
            let fec = FecConfig {
                ratio: 0.2,
                min_parity: 1,
            };
            let mut fs = frags(7, &data, fec);
            let k = fs[0].data_fragments as usize;
            let parity = fs.len() - k;
            // Drop `parity` data fragments, including fragment 0 (which carries the times).
            let drop: Vec<usize> = (0..parity.min(k))
                .map(|i| i * k / parity.min(k).max(1))
                .collect();
            let mut i = 0;
            fs.retain(|_| {
                let keep = !drop.contains(&i);
                i += 1;
                keep
            });
            let mut r = Reassembler::new(ReassemblerConfig::default());
            let events: Vec<_> = fs.into_iter().flat_map(|f| r.push(0, f)).collect();
            match events.as_slice() {
                [ReassemblyEvent::Complete(a)] => {
                    assert_eq!(a.data, data, "len {len}");
                    assert!(a.recovered_fragments > 0);
                    assert!(a.times.is_some(), "times survive via parity fragments");
                }
                e => panic!("len {len}: {e:?}"),
            }
            assert_eq!(r.stats().recovered, 1);
        }
    }

    #[test]
    fn too_much_loss_is_reported_when_a_newer_frame_completes() {
        let mut r = Reassembler::new(ReassemblerConfig::default());
        let a = frags(1, &au(5000, 1), FecConfig::default());
        let b = frags(2, &au(5000, 2), FecConfig::default());
        let mut ev = r.push(0, a[0].clone());
        ev.extend(r.push(0, a[1].clone()));
        assert!(ev.is_empty());
        for f in b {
            ev.extend(r.push(5, f));
        }
        assert_eq!(
            ev[0],
            ReassemblyEvent::Lost {
                stream_id: 0,
                first: 1,
                last: 1
            }
        );
        assert!(matches!(&ev[1], ReassemblyEvent::Complete(a) if a.frame == 2));
        // Late fragments of frame 1 are ignored.
        assert!(r.push(6, a[2].clone()).is_empty());
        assert_eq!(r.stats().lost, 1);
    }

    #[test]
    fn frames_never_seen_are_reported_lost() {
        let mut r = Reassembler::new(ReassemblerConfig::default());
        let mut ev = Vec::new();
        for f in frags(1, &au(500, 1), FecConfig::default()) {
            ev.extend(r.push(0, f));
        }
        // Frame 2 vanished entirely, frame 3 is partial, frame 4 completes.
        let three = frags(3, &au(5000, 3), FecConfig::default());
        ev.extend(r.push(1, three[0].clone()));
        for f in frags(4, &au(500, 4), FecConfig::default()) {
            ev.extend(r.push(2, f));
        }
        assert!(matches!(&ev[0], ReassemblyEvent::Complete(a) if a.frame == 1));
        assert_eq!(
            ev[1],
            ReassemblyEvent::Lost {
                stream_id: 0,
                first: 2,
                last: 3
            }
        );
        assert!(matches!(&ev[2], ReassemblyEvent::Complete(a) if a.frame == 4));
        assert_eq!(r.stats().lost, 2);
        assert!(
            r.push(3, three[1].clone()).is_empty(),
            "late fragment ignored"
        );
        // Across the wrap of the frame counter.
        let mut r = Reassembler::new(ReassemblerConfig::default());
        let mut ev = Vec::new();
        for f in frags(u32::MAX, &au(100, 5), FecConfig::default()) {
            ev.extend(r.push(0, f));
        }
        for f in frags(1, &au(100, 6), FecConfig::default()) {
            ev.extend(r.push(1, f));
        }
        assert_eq!(
            ev[1],
            ReassemblyEvent::Lost {
                stream_id: 0,
                first: 0,
                last: 0
            }
        );
    }

    #[test]
    fn a_frame_still_arriving_is_not_given_up() {
        let mut r = Reassembler::new(ReassemblerConfig {
            max_wait_us: 50_000,
            ..Default::default()
        });
        // A keyframe paced over 200 ms: a fragment every 20 ms.
        let fs = frags(9, &au(11_000, 9), FecConfig::default());
        let n = fs.len() as u64;
        let mut done = Vec::new();
        for (i, f) in fs.into_iter().enumerate() {
            let t = i as u64 * 20_000;
            assert!(r.handle_timeout(t).is_empty(), "given up at {t} µs");
            done.extend(r.push(t, f));
        }
        assert!(
            matches!(done.as_slice(), [ReassemblyEvent::Complete(a)] if a.frame == 9),
            "{n} {done:?}"
        );
    }

    #[test]
    fn stale_frame_times_out() {
        let mut r = Reassembler::new(ReassemblerConfig {
            max_wait_us: 50_000,
            ..Default::default()
        });
        let a = frags(3, &au(5000, 3), FecConfig::default());
        assert!(r.push(1_000, a[0].clone()).is_empty());
        assert_eq!(r.next_timeout_us(), Some(51_000));
        assert!(r.handle_timeout(50_000).is_empty());
        assert_eq!(
            r.handle_timeout(51_000),
            vec![ReassemblyEvent::Lost {
                stream_id: 0,
                first: 3,
                last: 3
            }]
        );
    }

    #[test]
    fn inconsistent_fragments_are_ignored_not_trusted() {
        let mut r = Reassembler::new(ReassemblerConfig::default());
        let mut a = frags(4, &au(3000, 4), FecConfig::default());
        let first = a.remove(0);
        r.push(0, first.clone());
        let mut liar = a[0].clone();
        liar.au_len += 1;
        assert!(r.push(0, liar).is_empty());
        assert!(r.push(0, first).is_empty(), "duplicate ignored");
        assert_eq!(r.stats().ignored_fragments, 2);
    }

    #[test]
    fn damage_rides_fragment_zero_and_parity_and_still_fits() {
        use crate::coding::Encode;
        use crate::damage::DamageRect;
        use crate::video::{packetize_with_damage, FRAGMENT_OVERHEAD};
        let damage = vec![
            DamageRect {
                x: 10,
                y: 20,
                width: 480,
                height: 240,
            };
            crate::damage::MAX_DAMAGE_RECTS
        ];
        let datagram = 1200;
        let data = au(20_000, 9);
        let fs = packetize_with_damage(
            0,
            11,
            false,
            HostStageTimes::default(),
            Some(&damage),
            &data,
            datagram - FRAGMENT_OVERHEAD,
            FecConfig::default(),
        )
        .unwrap();
        let k = fs[0].data_fragments as usize;
        for (i, f) in fs.iter().enumerate() {
            assert_eq!(f.damage.is_some(), i == 0 || i >= k, "fragment {i}");
            let mut wire = Vec::new();
            crate::msg::Message::Video(f.clone()).encode(&mut wire);
            assert!(wire.len() <= datagram, "fragment {i}: {} bytes", wire.len());
        }
        // Fragment 0 lost: the list still arrives with a parity fragment.
        let mut r = Reassembler::new(ReassemblerConfig::default());
        let events: Vec<_> = fs.into_iter().skip(1).flat_map(|f| r.push(0, f)).collect();
        match events.as_slice() {
            [ReassemblyEvent::Complete(a)] => {
                assert_eq!(a.data, data);
                assert_eq!(a.damage.as_deref(), Some(&damage[..]));
            }
            e => panic!("{e:?}"),
        }
        // Without a list the unit's damage is unknown.
        let mut r = Reassembler::new(ReassemblerConfig::default());
        let events: Vec<_> = frags(12, &data, FecConfig::default())
            .into_iter()
            .flat_map(|f| r.push(0, f))
            .collect();
        assert!(matches!(&events[..], [ReassemblyEvent::Complete(a)] if a.damage.is_none()));
    }
}
