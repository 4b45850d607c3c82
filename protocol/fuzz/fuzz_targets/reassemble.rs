//! Video reassembly under hostile and lossy input.
//!
//! Input layout: `flags: u8`, then records `op: u8, len: u8, bytes[len]` (the last record takes
//! what is left). Ops (`op % 4`):
//!
//! 0. `bytes` decoded as a `VideoFragment` and pushed (anything a peer could send; skipped
//!    when `flags & 1` so that the strict check below applies)
//! 1. time passes (`len` × 1 ms), then a timeout
//! 2. `bytes` become a real access unit: packetized with parity (payload size from the first
//!    byte), then its fragments are pushed in an order and with losses chosen by the next
//!    bytes
//! 3. like 2, but the fragments are pushed twice (duplicates)
//!
//! Checks: nothing panics; every completed access unit is as long as its fragments said and
//! within the limit; with `flags & 1` (only real frames), a frame of which at least
//! `data_fragments` fragments arrived completes with exactly its bytes, unless a newer frame
//! completed first (then it may be given up as stale), and a frame is completed at most once.

#![no_main]

use std::collections::{HashMap, HashSet};

use libfuzzer_sys::fuzz_target;
use sightline_protocol::msg::{HostStageTimes, VideoFragment};
use sightline_protocol::video::{
    packetize, FecConfig, Reassembler, ReassemblerConfig, ReassemblyEvent,
};
use sightline_protocol::Decode;

const MAX_AU: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let only_real = flags & 1 == 1;
    let mut r = Reassembler::new(ReassemblerConfig {
        max_wait_us: 100_000,
        max_pending: 16,
        max_au_len: MAX_AU,
    });
    let mut now_us: u64 = 1_000_000;
    let mut next_frame: u32 = u32::from(flags >> 1) * 1000;
    // Real frames: their bytes, and whether enough fragments were pushed to rebuild them.
    let mut sent: HashMap<u32, (Vec<u8>, bool)> = HashMap::new();
    let mut completed: HashSet<u32> = HashSet::new();
    let mut newest_completed: Option<u32> = None;
    let mut given_up: HashSet<u32> = HashSet::new();

    let check = |events: Vec<ReassemblyEvent>,
                 completed: &mut HashSet<u32>,
                 newest: &mut Option<u32>,
                 given_up: &mut HashSet<u32>,
                 sent: &HashMap<u32, (Vec<u8>, bool)>| {
        for ev in events {
            match ev {
                ReassemblyEvent::Complete(au) => {
                    assert!(au.data.len() <= MAX_AU, "access unit over the limit");
                    if only_real {
                        let (bytes, _) = sent.get(&au.frame).expect("completed a frame never sent");
                        assert_eq!(&au.data, bytes, "frame {} rebuilt wrong", au.frame);
                        assert!(
                            completed.insert(au.frame),
                            "frame {} completed twice",
                            au.frame
                        );
                        *newest = Some(newest.map_or(au.frame, |n| n.max(au.frame)));
                    }
                }
                ReassemblyEvent::Lost { first, last, .. } => {
                    if only_real && last.wrapping_sub(first) < 1 << 20 {
                        let mut f = first;
                        loop {
                            given_up.insert(f);
                            if f == last {
                                break;
                            }
                            f = f.wrapping_add(1);
                        }
                    }
                }
            }
        }
    };

    while let Some((&op, tail)) = rest.split_first() {
        let (len, tail) = match tail.split_first() {
            Some((&len, tail)) => (usize::from(len).min(tail.len()), tail),
            None => (0, tail),
        };
        let (bytes, tail) = tail.split_at(len);
        rest = tail;
        now_us += 50;
        match op % 4 {
            0 => {
                if only_real {
                    continue;
                }
                if let Ok(f) = VideoFragment::from_bytes(bytes) {
                    let ev = r.push(now_us, f);
                    check(
                        ev,
                        &mut completed,
                        &mut newest_completed,
                        &mut given_up,
                        &sent,
                    );
                }
            }
            1 => {
                now_us += len as u64 * 1000;
                let ev = r.handle_timeout(now_us);
                check(
                    ev,
                    &mut completed,
                    &mut newest_completed,
                    &mut given_up,
                    &sent,
                );
            }
            _ => {
                // A few dozen real frames per input keep runs fast (Reed–Solomon per frame).
                if sent.len() >= 48 {
                    continue;
                }
                let Some((&size_knob, body)) = bytes.split_first() else {
                    continue;
                };
                if body.is_empty() {
                    continue;
                }
                // The access unit: the body repeated to a size between a few bytes and ~10 KB.
                let target = 1 + usize::from(size_knob) * 40;
                let au: Vec<u8> = body.iter().copied().cycle().take(target).collect();
                let payload = 256 + usize::from(size_knob % 16) * 64;
                let frame = next_frame;
                next_frame = next_frame.wrapping_add(1);
                let Ok(frags) = packetize(
                    0,
                    frame,
                    frame % 7 == 0,
                    HostStageTimes::default(),
                    &au,
                    payload,
                    FecConfig {
                        ratio: 0.25,
                        min_parity: 2,
                    },
                ) else {
                    continue;
                };
                let data_count = usize::from(frags[0].data_fragments);
                // Order and losses from the body's bytes: fragment i is dropped when its byte
                // has the top bit set, and the survivors are rotated.
                let keep: Vec<VideoFragment> = frags
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| body[i % body.len()] & 0x80 == 0)
                    .map(|(_, f)| f.clone())
                    .collect();
                let rot = usize::from(size_knob) % keep.len().max(1);
                let mut order = keep.clone();
                order.rotate_left(rot);
                if op % 4 == 3 {
                    order.extend(keep.iter().cloned());
                }
                sent.insert(frame, (au, keep.len() >= data_count));
                for f in order {
                    let ev = r.push(now_us, f);
                    check(
                        ev,
                        &mut completed,
                        &mut newest_completed,
                        &mut given_up,
                        &sent,
                    );
                }
            }
        }
    }

    if only_real {
        // Every frame that had enough fragments either completed or was given up because a
        // newer one completed first (or it timed out while waiting behind a gap).
        for (frame, (_, enough)) in &sent {
            if *enough && !completed.contains(frame) {
                assert!(
                    given_up.contains(frame) || newest_completed.is_some_and(|n| n > *frame),
                    "frame {frame} had enough fragments but neither completed nor was given up"
                );
            }
        }
    }
});
