//! The damage list the host sends with each encoded frame: where the *source* changed since the
//! previous encoded frame (see [`sightline_protocol::damage`] for the wire format).
//!
//! Capture knows which rectangles of the captured picture changed (X11 DAMAGE, the synthetic
//! source's redraws). [`DamageTracker`] turns that into one list per encoded frame:
//!
//! * the captured damage since the previous *encoded* frame (captures the encoder emitted
//!   nothing for are folded into the next one),
//! * aligned outwards to the codec's block grid ([`block_grid`]: the encoder codes whole
//!   blocks, so the decoded change spans them),
//! * merged to at most [`MAX_DAMAGE_RECTS`] rectangles,
//! * and *unknown* (no list) for a keyframe, the first frame, a capture with unknown damage, or
//!   when the list would cover more than half the picture.
//!
//! # A hint, not a guarantee
//!
//! A lossy encoder also changes decoded pixels the source did not change: it refines areas
//! coded coarsely before (after a keyframe, everywhere), its deblocking filter reaches into
//! neighbouring blocks, and rate control re-spends bits on static content. Measured with
//! openh264 on the synthetic desktop scene (640×360, 2 Mbit/s, every decoded frame compared with
//! the previous one): camera tuning changed up to 65,710 pixels per frame outside the list in
//! the 20 frames after the keyframe and about 1,280 per frame (in the static colour bars) for
//! as long as it ran; screen tuning up to 125 per frame. So the viewer does not trust the list
//! to say what stayed the same: it compares each decoded picture with the one it shows and
//! repaints what differs, and uses the list to skip comparing where the source is known to
//! have changed. Lossless tiles (exact by construction) can use the same list as the truth.

use sightline_protocol::damage::{merge, DamageRect, MAX_DAMAGE_RECTS};
use sightline_protocol::msg::VideoCodec;

use crate::capture::Rect;

/// The block size (pixels) the encoder codes `codec` in: captured damage is aligned to it.
pub fn block_grid(codec: VideoCodec) -> u32 {
    match codec {
        VideoCodec::H264 => 16,
        // HEVC coding tree units and AV1 superblocks are up to 64×64.
        VideoCodec::Hevc | VideoCodec::Av1 => 64,
    }
}

/// Turns captured damage into the per-frame list sent with each encoded frame.
#[derive(Debug, Clone)]
pub struct DamageTracker {
    block: u32,
    size: (u32, u32),
    /// Captured damage not yet part of an encoded frame; `None` once anything unknown came in.
    pending: Option<Vec<DamageRect>>,
}

impl DamageTracker {
    /// A tracker for a `width × height` stream in `codec`. The first frame is unknown.
    pub fn new(codec: VideoCodec, width: u32, height: u32) -> DamageTracker {
        DamageTracker {
            block: block_grid(codec),
            size: (width, height),
            pending: None,
        }
    }

    /// A captured frame with this damage (`rects` empty: unknown, everything).
    pub fn captured(&mut self, rects: &[Rect]) {
        if rects.is_empty() {
            self.pending = None;
            return;
        }
        let Some(pending) = self.pending.as_mut() else {
            return;
        };
        let (w, h) = self.size;
        pending.extend(
            rects
                .iter()
                .filter_map(|r| DamageRect::new(r.x, r.y, r.w, r.h))
                .filter_map(|r| r.expand(self.block, 0, w, h)),
        );
        if pending.len() > 4 * MAX_DAMAGE_RECTS {
            *pending = merge(pending, MAX_DAMAGE_RECTS);
        }
    }

    /// The frame just encoded from everything captured since the previous call: its list, or
    /// `None` when it is unknown. `keyframe`: the encoder made an IDR.
    pub fn encoded(&mut self, keyframe: bool) -> Option<Vec<DamageRect>> {
        let this = self.pending.replace(Vec::new());
        let list = merge(&this.filter(|_| !keyframe)?, MAX_DAMAGE_RECTS);
        let area: u64 = list.iter().map(DamageRect::area).sum();
        let full = u64::from(self.size.0) * u64::from(self.size.1);
        (area * 2 <= full).then_some(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::synthetic::{Scene, SyntheticSource};
    use crate::capture::{CaptureOutcome, CapturedFrame, FrameSource};
    use std::time::Duration;

    fn rect(x: u32, y: u32, w: u32, h: u32) -> Rect {
        Rect { x, y, w, h }
    }

    #[test]
    fn first_frame_keyframes_and_unknown_damage_are_unknown() {
        let mut t = DamageTracker::new(VideoCodec::H264, 1920, 1080);
        t.captured(&[rect(100, 100, 10, 10)]);
        assert_eq!(
            t.encoded(false),
            None,
            "nothing known before the first frame"
        );
        t.captured(&[rect(100, 100, 10, 10)]);
        assert_eq!(
            t.encoded(false),
            Some(vec![DamageRect {
                x: 96,
                y: 96,
                width: 16,
                height: 16
            }])
        );
        t.captured(&[rect(100, 100, 10, 10)]);
        assert_eq!(t.encoded(true), None, "a keyframe replaces everything");
        t.captured(&[]);
        assert_eq!(t.encoded(false), None, "unknown capture damage");
        t.captured(&[rect(0, 0, 1, 1)]);
        assert!(
            t.encoded(false).is_some(),
            "known again after an unknown frame"
        );
        let mut hevc = DamageTracker::new(VideoCodec::Hevc, 1920, 1080);
        hevc.encoded(false);
        hevc.captured(&[rect(100, 100, 10, 10)]);
        assert_eq!(hevc.encoded(false).unwrap()[0].width, 64);
    }

    #[test]
    fn skipped_captures_fold_into_the_next_frame() {
        let mut t = DamageTracker::new(VideoCodec::H264, 1920, 1080);
        t.encoded(false);
        // Two captures, the encoder emitted nothing for the first: both are in the next frame.
        t.captured(&[rect(320, 320, 16, 16)]);
        t.captured(&[rect(960, 640, 16, 16)]);
        let list = t.encoded(false).unwrap();
        assert_eq!(list.len(), 2);
        // And only in that one.
        t.captured(&[rect(0, 0, 16, 16)]);
        assert_eq!(t.encoded(false).unwrap().len(), 1);
    }

    #[test]
    fn a_list_covering_most_of_the_picture_is_sent_as_unknown() {
        let mut t = DamageTracker::new(VideoCodec::H264, 640, 360);
        t.encoded(false);
        t.captured(&[rect(0, 0, 600, 300)]);
        assert_eq!(t.encoded(false), None);
    }

    /// Over the synthetic source's scenes, every pixel that differs between two consecutive
    /// captured frames lies inside the list sent with the second.
    #[test]
    fn the_list_covers_every_source_change() {
        let (w, h) = (640u32, 360u32);
        for scene in [Scene::Desktop, Scene::Busy] {
            let mut src = SyntheticSource::new(w, h, 60)
                .with_pacing(false)
                .with_scene(scene);
            let mut frame = CapturedFrame::new();
            let mut t = DamageTracker::new(VideoCodec::H264, w, h);
            let mut prev: Option<Vec<u8>> = None;
            let mut listed = 0;
            for n in 0..40 {
                let out = src.next_frame(&mut frame, Duration::from_secs(1)).unwrap();
                assert_eq!(out, CaptureOutcome::Frame);
                t.captured(&frame.damage);
                let list = t.encoded(n == 0);
                if let (Some(list), Some(p)) = (&list, &prev) {
                    listed += 1;
                    for y in 0..h as usize {
                        for x in 0..w as usize {
                            let i = y * frame.stride + x * 4;
                            if frame.data[i..i + 4] == p[i..i + 4] {
                                continue;
                            }
                            let inside = list.iter().any(|r| {
                                (usize::from(r.x)..r.right() as usize).contains(&x)
                                    && (usize::from(r.y)..r.bottom() as usize).contains(&y)
                            });
                            assert!(inside, "{scene:?} frame {n}: ({x}, {y}) outside {list:?}");
                        }
                    }
                }
                prev = Some(frame.data.clone());
            }
            if scene == Scene::Desktop {
                assert!(
                    listed > 30,
                    "the desktop scene changes little: {listed} lists"
                );
            }
        }
    }
}
