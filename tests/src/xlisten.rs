//! An X client that listens: a focused window covering the screen, reporting the key, pointer
//! and button events it receives (with keysyms looked up in the live keymap).

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConnectionExt as _, CreateWindowAux, EventMask, InputFocus, KeyButMask, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::wrapper::ConnectionExt as _;

/// What the listening X client saw.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum Seen {
    KeyPress {
        keycode: u8,
        keysym: u32,
        shift: bool,
    },
    KeyRelease {
        keycode: u8,
    },
    Motion {
        x: i16,
        y: i16,
    },
    ButtonPress(u8),
    ButtonRelease(u8),
}

/// An X client with a focused window covering the screen, reporting what it receives.
pub fn listen(display: String, ready: std_mpsc::Sender<()>, out: std_mpsc::Sender<Seen>) {
    let (conn, screen_num) = x11rb::connect(Some(&display)).expect("listener connects");
    let screen = conn.setup().roots[screen_num].clone();
    let win = conn.generate_id().unwrap();
    conn.create_window(
        screen.root_depth,
        win,
        screen.root,
        0,
        0,
        screen.width_in_pixels,
        screen.height_in_pixels,
        0,
        WindowClass::INPUT_OUTPUT,
        0,
        &CreateWindowAux::new().override_redirect(1).event_mask(
            EventMask::KEY_PRESS
                | EventMask::KEY_RELEASE
                | EventMask::BUTTON_PRESS
                | EventMask::BUTTON_RELEASE
                | EventMask::POINTER_MOTION,
        ),
    )
    .unwrap();
    conn.map_window(win).unwrap();
    conn.sync().unwrap();
    conn.set_input_focus(InputFocus::PARENT, win, x11rb::CURRENT_TIME)
        .unwrap();
    conn.sync().unwrap();
    let (min, max) = (conn.setup().min_keycode, conn.setup().max_keycode);
    let fetch = |conn: &x11rb::rust_connection::RustConnection| {
        let r = conn
            .get_keyboard_mapping(min, max - min + 1)
            .unwrap()
            .reply()
            .unwrap();
        (r.keysyms_per_keycode as usize, r.keysyms)
    };
    let mut map = fetch(&conn);
    ready.send(()).unwrap();
    loop {
        let ev = match conn.wait_for_event() {
            Ok(ev) => ev,
            Err(_) => return,
        };
        let seen = match ev {
            Event::MappingNotify(_) => {
                map = fetch(&conn);
                continue;
            }
            Event::KeyPress(k) => {
                let shift = k.state.contains(KeyButMask::SHIFT);
                let base = (k.detail - min) as usize * map.0;
                let syms = &map.1[base..base + map.0];
                let upper = |s: u32| {
                    if (0x61..=0x7a).contains(&s) {
                        s - 0x20
                    } else {
                        s
                    }
                };
                let keysym = match (shift, syms.get(1).copied().unwrap_or(0)) {
                    (true, 0) => upper(syms[0]),
                    (true, s) => s,
                    (false, _) => syms[0],
                };
                Seen::KeyPress {
                    keycode: k.detail,
                    keysym,
                    shift,
                }
            }
            Event::KeyRelease(k) => Seen::KeyRelease { keycode: k.detail },
            Event::MotionNotify(m) => Seen::Motion {
                x: m.root_x,
                y: m.root_y,
            },
            Event::ButtonPress(b) => Seen::ButtonPress(b.detail),
            Event::ButtonRelease(b) => Seen::ButtonRelease(b.detail),
            _ => continue,
        };
        if out.send(seen).is_err() {
            return;
        }
    }
}

/// Collects what the listener sees until `done` says enough (or 10 s pass).
pub fn collect(rx: &std_mpsc::Receiver<Seen>, mut done: impl FnMut(&[Seen]) -> bool) -> Vec<Seen> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while !done(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(s) => seen.push(s),
            Err(_) => panic!("timed out; the X client saw only {seen:#?}"),
        }
    }
    seen
}

/// Every pressed keycode was released afterwards.
pub fn all_released(seen: &[Seen]) -> bool {
    let mut held = std::collections::BTreeMap::<u8, i32>::new();
    for s in seen {
        match s {
            Seen::KeyPress { keycode, .. } => *held.entry(*keycode).or_default() += 1,
            Seen::KeyRelease { keycode } => *held.entry(*keycode).or_default() -= 1,
            _ => {}
        }
    }
    held.values().all(|&n| n <= 0)
}
