//! The CPU path's partial updates on a private Xvfb: after a small change only that region is
//! converted, and the whole window — read back from the X screen — still equals a full repaint
//! of the new picture, pixel for pixel (scaled and 1:1, with the cursor moving over it). What
//! changed is found by comparing pictures, so a change outside the host's damage list (as a
//! lossy encoder makes), a frame without a list and a gap in frame numbers are all exact; a
//! picture that cannot be compared (other range) repaints everything.
//!
//! winit allows one event loop per process: keep this the only window test in this binary.

use std::time::Duration;

use sightline_protocol::damage::DamageRect;
use sightline_tests::window::{
    bars_frame, connect, damage, eventually_within, picture, run, Placement, Shot, BARS,
};
use sightline_viewer::app::{PresentRecord, Renderer, WindowOptions};
use sightline_viewer::convert::fb::Coeffs;
use sightline_viewer::frame::{CursorOverlay, DecodedFrame, PictureFormat};
use sightline_viewer::framebuffer::{clear_bars, draw_sprite, paint, FillMap, Target};
use sightline_viewer::overlay::Sprite;
use sightline_viewer::render::ActivePath;

const WINDOW: (u32, u32) = (1000, 700);

/// What a full repaint of `f` (and `cursor`) gives, as window words.
fn reference(f: &DecodedFrame, cursor: Option<&CursorOverlay>) -> Vec<u32> {
    let map = FillMap::new(WINDOW, (f.width, f.height));
    let mut words = vec![0; (WINDOW.0 * WINDOW.1) as usize];
    let mut t = Target {
        words: &mut words,
        width: WINDOW.0 as usize,
        height: WINDOW.1 as usize,
    };
    clear_bars(&map, &mut t);
    let all = DamageRect::new(0, 0, WINDOW.0, WINDOW.1).expect("non-empty");
    paint(f, &Coeffs::of(f), &map, &all, &mut t, &mut Vec::new());
    if let Some(s) = cursor.and_then(Sprite::cursor) {
        draw_sprite(&map, &s, &mut t);
    }
    words
}

/// The window's pixels in the screenshot equal `want` exactly.
fn matches(s: &Shot, win: Placement, want: &[u32]) -> Result<(), String> {
    let mut bad = 0;
    let mut first = None;
    for y in 0..WINDOW.1 as i32 {
        for x in 0..WINDOW.0 as i32 {
            let w = want[(y * WINDOW.0 as i32 + x) as usize];
            let want_rgb = [(w >> 16) as u8, (w >> 8) as u8, w as u8];
            let got = s.px(win.x + x, win.y + y);
            if got != want_rgb {
                bad += 1;
                first.get_or_insert(format!("({x}, {y}): got {got:?}, want {want_rgb:?}"));
            }
        }
    }
    match first {
        None => Ok(()),
        Some(f) => Err(format!(
            "{bad} window pixels differ from a full repaint; first {f}"
        )),
    }
}

/// Picture pixels in the 64×16 tiles that rectangles `(x, y, w, h)` touch (an upper bound on
/// what a partial update converts).
fn tiles(rects: &[(u32, u32, u32, u32)]) -> u32 {
    rects
        .iter()
        .map(|&(x, y, w, h)| {
            let (x0, x1) = (x / 64 * 64, (x + w).div_ceil(64) * 64);
            let (y0, y1) = (y / 16 * 16, (y + h).div_ceil(16) * 16);
            (x1 - x0) * (y1 - y0)
        })
        .sum()
}

fn expect(rec: &PresentRecord, full: bool, max_px: u32, what: &str) -> Result<(), String> {
    if rec.full != full || (!full && (rec.rects == 0 || rec.pixels > max_px)) {
        return Err(format!(
            "{what}: expected full={full} (≤ {max_px} px), got {rec:?}"
        ));
    }
    Ok(())
}

#[test]
fn damaged_regions_alone_are_repainted_and_the_window_stays_exact() {
    let opts = WindowOptions {
        initial_size: Some(WINDOW),
        renderer: Renderer::Cpu,
        ..WindowOptions::default()
    };
    run("window-damage", (1280, 720), opts, |mut d, env| {
        let info = d.renderer()?;
        if info.path != ActivePath::Cpu {
            return Err(format!("--renderer cpu opened {info:?}"));
        }
        let (conn, root) = connect(env)?;
        let mut report = Vec::new();
        let check = |want: Vec<u32>, what: &str| -> Result<Shot, String> {
            let win = Placement::find(&conn, root, &env.title)?;
            eventually_within(&conn, root, env.screen, Duration::from_secs(3), |s| {
                matches(s, win, &want).map_err(|e| format!("{what}: {e}"))
            })
        };
        for (w, h) in [(1280u32, 720u32), (1000, 560)] {
            let scaled = (w, h) != (1000, 560);
            let bars = |number| bars_frame(w, h, PictureFormat::I420, number);
            let patched = |x0: u32, y0: u32| {
                picture(w, h, PictureFormat::I420, 0, move |x, y| {
                    if (x0..x0 + 160).contains(&x) && (y0..y0 + 96).contains(&y) {
                        [255, 0, 0]
                    } else {
                        BARS[(x * 8 / w) as usize]
                    }
                })
            };
            // A first, full picture.
            let rec = d.show(bars(0))?;
            expect(&rec, true, 0, "first frame")?;
            check(reference(&bars(0), None), "first frame")?;

            // A 160×96 patch changes, with its damage: only it is converted.
            let mut f = patched(320, 96);
            f.damage = damage(320, 96, 160, 96);
            let want = reference(&f, None);
            let rec = d.show(f)?;
            expect(&rec, false, tiles(&[(320, 96, 160, 96)]), "patch")?;
            let shot = check(want, "patch")?;
            report.push(format!(
                "{w}x{h}: patch repainted alone ({} px, {} µs + {} µs): {}",
                rec.pixels,
                rec.convert_us,
                rec.present_us,
                shot.save(&env.out_dir, &format!("damage-{w}x{h}"))
                    .display()
            ));

            // The patch moves: its old and new places are damaged.
            let mut f = patched(640, 400);
            f.damage = Some(vec![
                DamageRect {
                    x: 320,
                    y: 96,
                    width: 160,
                    height: 96,
                },
                DamageRect {
                    x: 640,
                    y: 400,
                    width: 160,
                    height: 96,
                },
            ]);
            let want = reference(&f, None);
            let rec = d.show(f)?;
            expect(
                &rec,
                false,
                tiles(&[(320, 96, 160, 96), (640, 400, 160, 96)]),
                "moved patch",
            )?;
            check(want, "moved patch")?;

            // The cursor over the picture, then a damaged frame elsewhere, then the cursor moves:
            // its old place shows the picture again.
            let mut cursor = CursorOverlay {
                rgba: [0, 0, 255, 255].repeat(24 * 24),
                width: 24,
                height: 24,
                hot_x: 0,
                hot_y: 0,
                x: 100,
                y: 100,
                visible: true,
            };
            *d.shared.cursor.lock().unwrap() = cursor.clone();
            let mut f = patched(640, 200);
            f.damage = Some(vec![
                DamageRect {
                    x: 640,
                    y: 400,
                    width: 160,
                    height: 96,
                },
                DamageRect {
                    x: 640,
                    y: 200,
                    width: 160,
                    height: 96,
                },
            ]);
            let want = reference(&f, Some(&cursor));
            let rec = d.show(f.clone())?;
            expect(
                &rec,
                false,
                tiles(&[(640, 400, 160, 96), (640, 200, 160, 96)]),
                "with cursor",
            )?;
            check(want, "with cursor")?;
            cursor.x = 700;
            *d.shared.cursor.lock().unwrap() = cursor.clone();
            d.wake()?;
            check(reference(&f, Some(&cursor)), "cursor moved")?;
            d.shared.cursor.lock().unwrap().visible = false;
            d.wake()?;
            check(reference(&f, None), "cursor hidden")?;

            // The damage list names one area, but the picture also changed elsewhere (a lossy
            // encoder refining static content): both are repainted.
            let mut f = picture(w, h, PictureFormat::I420, 0, move |x, y| {
                if (640..800).contains(&x) && (200..296).contains(&y) {
                    [255, 0, 0]
                } else if (64..128).contains(&x) && (500..516).contains(&y) {
                    [0, 255, 0]
                } else {
                    BARS[(x * 8 / w) as usize]
                }
            });
            f.damage = damage(0, 0, 16, 16);
            let want = reference(&f, None);
            let rec = d.show(f)?;
            expect(
                &rec,
                false,
                tiles(&[(0, 0, 16, 16), (64, 500, 64, 16)]),
                "change outside the list",
            )?;
            check(want, "change outside the list")?;

            // A gap in frame numbers (a frame was never shown) and no list: still only what
            // differs from the picture on screen.
            let mut f = patched(100, 500);
            f.frame = d.frame.wrapping_add(2);
            let want = reference(&f, None);
            let rec = d.show_as_is(f)?;
            let changed = [(640, 200, 160, 96), (64, 500, 64, 16), (100, 500, 160, 96)];
            expect(&rec, false, tiles(&changed), "gap")?;
            check(want, "after a gap")?;

            // A picture that cannot be compared (full range now): everything.
            let mut f = bars(0);
            f.range = sightline_protocol::msg::ColourRange::Full;
            let want = reference(&f, None);
            let rec = d.show(f)?;
            expect(&rec, true, 0, "other range")?;
            check(want, "other range")?;
            report.push(format!(
                "{w}x{h} ({}): moves, cursor, changes outside the list, gaps all exact",
                if scaled { "scaled" } else { "1:1" }
            ));
        }
        Ok(report)
    });
}
