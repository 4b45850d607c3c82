//! Damage: which rectangles of a frame changed since the previous frame.
//!
//! The host knows what changed (X11 DAMAGE, the synthetic source's redraws). It tells the viewer,
//! so a viewer presenting from the CPU converts and pushes only those rectangles: a cursor blink or
//! a typed character costs a few hundred microseconds instead of a full-frame conversion.
//!
//! # On the wire
//!
//! A list of at most [`MAX_DAMAGE_RECTS`] rectangles rides in the video fragment header
//! ([`crate::msg::VideoFragment::damage`], flag bit 4) of fragment 0 and of every parity fragment,
//! so it survives the loss of fragment 0 like the stage times do. It is sent only to a viewer
//! that offered the [`EXT_DAMAGE_RECTS`] hello extension and got it echoed in the welcome (a
//! viewer without it refuses unknown fragment flags); older peers simply never see it.
//!
//! Layout: `count: u8`, then per rectangle `x, y, width, height` as little-endian `u16`. A
//! count above [`MAX_DAMAGE_RECTS`], an empty rectangle or one reaching past
//! [`MAX_DIMENSION`](crate::msg::MAX_DIMENSION) is a decode error.
//!
//! # Meaning
//!
//! * With a list: the host's *source* changed only inside these rectangles since the previous
//!   encoded frame (frame number − 1), aligned to the codec's block grid. That is exact for
//!   lossless content, but a lossy encoder also changes decoded pixels elsewhere (it refines
//!   areas it coded coarsely before, filters across block edges, re-spends bits on static
//!   content — measured in the host's `damage` module). So a viewer must not take "outside the
//!   list" to mean "unchanged" for codec frames: Sightline's viewer compares each decoded
//!   picture with the one on screen and uses the list only to skip comparing where change is
//!   certain.
//! * No list (`None`): unknown. Keyframes, the first frame after a size change, frames whose
//!   captured damage is unknown and frames where the list would cover most of the picture
//!   carry none.

use crate::coding::{DecodeError, Reader, WriteExt};
use crate::msg::MAX_DIMENSION;

/// Most rectangles one frame's list may hold; the host merges down to this.
pub const MAX_DAMAGE_RECTS: usize = 8;

/// Hello extension id: "I understand damage lists in video fragments". The viewer offers it
/// (empty body); a host that will send damage echoes it in its welcome.
pub const EXT_DAMAGE_RECTS: u16 = 1;

/// A changed rectangle in frame pixels. Never empty when decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DamageRect {
    /// Left.
    pub x: u16,
    /// Top.
    pub y: u16,
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
}

impl DamageRect {
    /// A rectangle from `u32` coordinates, clamped into `0..=MAX_DIMENSION`; `None` when empty.
    pub fn new(x: u32, y: u32, width: u32, height: u32) -> Option<DamageRect> {
        let max = MAX_DIMENSION;
        let (x0, y0) = (x.min(max), y.min(max));
        let x1 = x.saturating_add(width).min(max);
        let y1 = y.saturating_add(height).min(max);
        (x1 > x0 && y1 > y0).then(|| DamageRect {
            x: x0 as u16,
            y: y0 as u16,
            width: (x1 - x0) as u16,
            height: (y1 - y0) as u16,
        })
    }

    /// One past the right edge.
    pub fn right(&self) -> u32 {
        u32::from(self.x) + u32::from(self.width)
    }

    /// One past the bottom edge.
    pub fn bottom(&self) -> u32 {
        u32::from(self.y) + u32::from(self.height)
    }

    /// Area in pixels.
    pub fn area(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// Smallest rectangle holding both.
    pub fn union(&self, o: &DamageRect) -> DamageRect {
        let (x0, y0) = (self.x.min(o.x), self.y.min(o.y));
        let (x1, y1) = (self.right().max(o.right()), self.bottom().max(o.bottom()));
        DamageRect {
            x: x0,
            y: y0,
            width: (x1 - u32::from(x0)) as u16,
            height: (y1 - u32::from(y0)) as u16,
        }
    }

    /// Whether the two overlap or share an edge.
    pub fn touches(&self, o: &DamageRect) -> bool {
        u32::from(self.x) <= o.right()
            && u32::from(o.x) <= self.right()
            && u32::from(self.y) <= o.bottom()
            && u32::from(o.y) <= self.bottom()
    }

    /// The part inside a `width × height` picture, if any.
    pub fn clip(&self, width: u32, height: u32) -> Option<DamageRect> {
        let x1 = self.right().min(width);
        let y1 = self.bottom().min(height);
        let (x0, y0) = (u32::from(self.x), u32::from(self.y));
        (x1 > x0 && y1 > y0).then(|| DamageRect {
            x: self.x,
            y: self.y,
            width: (x1 - x0) as u16,
            height: (y1 - y0) as u16,
        })
    }

    /// Grown outwards to multiples of `block` and then by `margin` on every side, clipped to a
    /// `width × height` picture (`block` 0 or 1: no alignment).
    pub fn expand(&self, block: u32, margin: u32, width: u32, height: u32) -> Option<DamageRect> {
        let b = block.max(1);
        let x0 = (u32::from(self.x) / b * b).saturating_sub(margin);
        let y0 = (u32::from(self.y) / b * b).saturating_sub(margin);
        let x1 = self
            .right()
            .div_ceil(b)
            .saturating_mul(b)
            .saturating_add(margin);
        let y1 = self
            .bottom()
            .div_ceil(b)
            .saturating_mul(b)
            .saturating_add(margin);
        DamageRect::new(x0, y0, x1 - x0, y1 - y0)?.clip(width, height)
    }
}

/// Merges `rects` into at most `max` rectangles covering all of them: rectangles that touch
/// are joined first, then the pair whose union adds the least uncovered area, until `max` are
/// left. Empty input gives empty output; `max` 0 is treated as 1.
pub fn merge(rects: &[DamageRect], max: usize) -> Vec<DamageRect> {
    let max = max.max(1);
    let mut v: Vec<DamageRect> = rects.iter().copied().filter(|r| r.area() > 0).collect();
    // Long lists (a busy X11 damage region) are first banded by rows: neighbours in y order are
    // joined in groups, which keeps the quadratic pass below cheap.
    const PRE_MERGE_ABOVE: usize = 64;
    if v.len() > PRE_MERGE_ABOVE {
        v.sort_by_key(|r| (r.y, r.x));
        let group = v.len().div_ceil(PRE_MERGE_ABOVE);
        v = v
            .chunks(group)
            .map(|c| c.iter().skip(1).fold(c[0], |a, r| a.union(r)))
            .collect();
    }
    // Join touching rectangles until none touch.
    let mut joined = true;
    while joined {
        joined = false;
        'outer: for i in 0..v.len() {
            for j in i + 1..v.len() {
                if v[i].touches(&v[j]) {
                    v[i] = v[i].union(&v[j]);
                    v.swap_remove(j);
                    joined = true;
                    break 'outer;
                }
            }
        }
    }
    while v.len() > max {
        let mut best = (u64::MAX, 0, 1);
        for i in 0..v.len() {
            for j in i + 1..v.len() {
                let u = v[i].union(&v[j]);
                let waste = u.area().saturating_sub(v[i].area() + v[j].area());
                if waste < best.0 {
                    best = (waste, i, j);
                }
            }
        }
        let (_, i, j) = best;
        v[i] = v[i].union(&v[j]);
        v.swap_remove(j);
    }
    v.sort_by_key(|r| (r.y, r.x));
    v
}

/// Bytes [`encode`] writes for `rects`.
pub fn encoded_len(rects: &[DamageRect]) -> usize {
    1 + 8 * rects.len()
}

/// Writes the list (callers keep it to [`MAX_DAMAGE_RECTS`]; longer lists are cut, which the
/// fragment encoder avoids by not sending such a list at all).
pub fn encode(rects: &[DamageRect], out: &mut Vec<u8>) {
    let n = rects.len().min(MAX_DAMAGE_RECTS);
    out.put_u8(n as u8);
    for r in &rects[..n] {
        out.put_u16(r.x);
        out.put_u16(r.y);
        out.put_u16(r.width);
        out.put_u16(r.height);
    }
}

/// Reads a list, refusing more than [`MAX_DAMAGE_RECTS`] entries, empty rectangles and
/// rectangles past [`MAX_DIMENSION`].
pub fn decode(r: &mut Reader<'_>) -> Result<Vec<DamageRect>, DecodeError> {
    let n = usize::from(r.u8("damage rect count")?);
    if n > MAX_DAMAGE_RECTS {
        return Err(DecodeError::TooLarge {
            what: "damage rect list",
            len: n,
            max: MAX_DAMAGE_RECTS,
        });
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let rect = DamageRect {
            x: r.u16("damage x")?,
            y: r.u16("damage y")?,
            width: r.u16("damage width")?,
            height: r.u16("damage height")?,
        };
        if rect.width == 0 || rect.height == 0 {
            return Err(DecodeError::Invalid {
                what: "damage rect",
                detail: "width and height must be at least 1",
            });
        }
        if rect.right() > MAX_DIMENSION || rect.bottom() > MAX_DIMENSION {
            return Err(DecodeError::Invalid {
                what: "damage rect",
                detail: "must lie within 16384x16384",
            });
        }
        v.push(rect);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(x: u16, y: u16, width: u16, height: u16) -> DamageRect {
        DamageRect {
            x,
            y,
            width,
            height,
        }
    }

    fn covers(out: &[DamageRect], p: (u32, u32)) -> bool {
        out.iter().any(|o| {
            (u32::from(o.x)..o.right()).contains(&p.0)
                && (u32::from(o.y)..o.bottom()).contains(&p.1)
        })
    }

    #[test]
    fn merge_keeps_far_apart_rects_and_joins_touching_ones() {
        let out = merge(&[r(0, 0, 10, 10), r(10, 0, 5, 10), r(500, 500, 4, 4)], 8);
        assert_eq!(out, vec![r(0, 0, 15, 10), r(500, 500, 4, 4)]);
    }

    #[test]
    fn merge_bounds_the_count_and_covers_everything() {
        let mut s = 7u32;
        let mut next = move || {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (s >> 8) % 1800
        };
        let rects: Vec<DamageRect> = (0..300)
            .map(|_| {
                r(
                    next() as u16,
                    (next() % 1000) as u16,
                    1 + (next() % 60) as u16,
                    3,
                )
            })
            .collect();
        for max in [1, 3, MAX_DAMAGE_RECTS] {
            let out = merge(&rects, max);
            assert!(out.len() <= max && !out.is_empty());
            for i in &rects {
                for p in [(i.x, i.y), (i.right() as u16 - 1, i.bottom() as u16 - 1)] {
                    assert!(covers(&out, (p.0.into(), p.1.into())), "{i:?} not covered");
                }
            }
        }
        assert!(merge(&[], 4).is_empty());
    }

    #[test]
    fn merge_prefers_the_cheapest_pair() {
        // Two close small rects and one far away: with room for two, the close ones merge.
        let out = merge(&[r(0, 0, 4, 4), r(6, 0, 4, 4), r(1000, 1000, 4, 4)], 2);
        assert_eq!(out, vec![r(0, 0, 10, 4), r(1000, 1000, 4, 4)]);
    }

    #[test]
    fn expand_aligns_to_blocks_with_a_margin_and_clips() {
        let e = r(20, 33, 5, 2).expand(16, 16, 1920, 1080).unwrap();
        assert_eq!(e, r(0, 16, 48, 48));
        let e = r(1910, 1075, 10, 5).expand(16, 16, 1920, 1080).unwrap();
        assert_eq!((e.right(), e.bottom()), (1920, 1080));
        assert_eq!(r(5, 5, 1, 1).expand(1, 0, 100, 100), Some(r(5, 5, 1, 1)));
        assert_eq!(r(200, 5, 1, 1).expand(16, 0, 100, 100), None);
    }

    #[test]
    fn round_trip_and_malformed_lists() {
        let rects = vec![r(1, 2, 3, 4), r(16000, 0, 384, 16384)];
        let mut out = Vec::new();
        encode(&rects, &mut out);
        assert_eq!(out.len(), encoded_len(&rects));
        assert_eq!(decode(&mut Reader::new(&out)).unwrap(), rects);

        let bad = |bytes: Vec<u8>| decode(&mut Reader::new(&bytes)).unwrap_err();
        assert!(matches!(
            bad(vec![MAX_DAMAGE_RECTS as u8 + 1]),
            DecodeError::TooLarge { .. }
        ));
        let mut zero = vec![1];
        zero.extend([0, 0, 0, 0, 0, 0, 5, 0]);
        assert!(matches!(bad(zero), DecodeError::Invalid { .. }));
        let mut past = vec![1];
        past.extend([0xff, 0x3f, 0, 0, 2, 0, 1, 0]); // x 16383 + width 2
        assert!(matches!(bad(past), DecodeError::Invalid { .. }));
        assert!(matches!(bad(vec![1, 0, 0]), DecodeError::Truncated { .. }));
    }
}
