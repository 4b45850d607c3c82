//! Input over real QUIC into a real X server: a viewer sends keys (a shifted character, a
//! keysym-only character, keysyms missing from the host keymap), pointer motion, buttons and
//! high-resolution scroll; the host injects them with XTEST into an Xvfb; an X client on that
//! display listens for the events. Then viewers that vanish with keys held: the X client must
//! see every key and button released.

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use sightline_certs::TrustPolicy;
use sightline_host::inject::service::Injector;
use sightline_host::inject::xtest::XTestSink;
use sightline_host::net::NetEvent;
use sightline_protocol::msg::{
    Capabilities, InputEvent, InputKinds, KeyEvent, Modifiers, MouseButton,
};
use sightline_tests::relay::Relay;
use sightline_tests::xvfb::Xvfb;
use sightline_tests::{Pki, TestHost};
use sightline_viewer::net::{connect, ViewerConnection};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConnectionExt as _, CreateWindowAux, EventMask, InputFocus, KeyButMask, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::wrapper::ConnectionExt as _;

const XK_SHIFT_L: u32 = 0xffe1;
const XK_A: u32 = 0x41;
const XK_B_LOWER: u32 = 0x62;
const XK_EXCLAM: u32 = 0x21;
const XK_EACUTE: u32 = 0xe9;
const XK_EURO: u32 = 0x20ac;
const XK_LEFT: u32 = 0xff51;

/// What the listening X client saw.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    KeyPress { keycode: u8, keysym: u32, shift: bool },
    KeyRelease { keycode: u8 },
    Motion { x: i16, y: i16 },
    ButtonPress(u8),
    ButtonRelease(u8),
}

/// An X client with a focused window covering the screen, reporting what it receives.
fn listen(display: String, ready: std_mpsc::Sender<()>, out: std_mpsc::Sender<Seen>) {
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
                let upper = |s: u32| if (0x61..=0x7a).contains(&s) { s - 0x20 } else { s };
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

fn key(code: u16, keysym: u32, pressed: bool) -> InputEvent {
    InputEvent::Key(KeyEvent {
        code,
        keysym,
        modifiers: Modifiers::EMPTY,
        pressed,
    })
}

/// Collects what the listener sees until `done` says enough (or 10 s pass).
fn collect(rx: &std_mpsc::Receiver<Seen>, mut done: impl FnMut(&[Seen]) -> bool) -> Vec<Seen> {
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
fn all_released(seen: &[Seen]) -> bool {
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

struct Setup {
    _xvfb: Xvfb,
    pki: Pki,
    host: std::net::SocketAddr,
    seen: std_mpsc::Receiver<Seen>,
    injector: std::sync::Arc<Injector>,
    _host_guard: tokio::task::JoinHandle<()>,
}

async fn setup() -> Setup {
    let xvfb = Xvfb::start(640, 480, 24);
    let (ready_tx, ready_rx) = std_mpsc::channel();
    let (seen_tx, seen) = std_mpsc::channel();
    let name = xvfb.name();
    std::thread::spawn(move || listen(name, ready_tx, seen_tx));
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("listener ready");
    let sink = XTestSink::open(Some(&xvfb.name())).expect("XTEST on Xvfb");
    let injector = std::sync::Arc::new(Injector::start(Box::new(sink)).unwrap());
    let pki = Pki::new();
    let caps = Capabilities {
        input_kinds: injector.kinds(),
        ..Capabilities::default()
    };
    assert_eq!(caps.input_kinds, InputKinds::KEYBOARD.union(InputKinds::MOUSE));
    let mut host = TestHost::start(&pki, caps);
    let addr = host.addr;
    let inj = injector.clone();
    // The host agent's own wiring: every input event the sessions report goes to the injector.
    let guard = tokio::spawn(async move {
        while let Some(ev) = host.events.recv().await {
            if let NetEvent::Input {
                session_id,
                event,
                origin,
            } = ev
            {
                inj.submit(session_id, event, origin);
            }
        }
    });
    Setup {
        _xvfb: xvfb,
        pki,
        host: addr,
        seen,
        injector,
        _host_guard: guard,
    }
}

async fn viewer(s: &Setup, addr: std::net::SocketAddr) -> ViewerConnection {
    let known = s.pki.known_hosts("known_hosts", addr, &s.pki.host);
    connect(
        s.pki
            .connect_options(addr, &s.pki.viewer, known, TrustPolicy::PinnedOnly),
    )
    .await
    .expect("viewer connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_pointer_buttons_and_scroll_reach_an_x_client() {
    let s = setup().await;
    let conn = viewer(&s, s.host).await;
    let send = |ev| conn.send_input(ev);
    // Shift held on the viewer, then the 'A' key (physical a, logical A).
    send(key(0xe1, XK_SHIFT_L, true)).await.unwrap();
    send(key(0x04, XK_A, true)).await.unwrap();
    send(key(0x04, XK_A, false)).await.unwrap();
    send(key(0xe1, XK_SHIFT_L, false)).await.unwrap();
    // A character with no physical key (e.g. from an on-screen keyboard): needs Shift on US.
    send(key(0, XK_EXCLAM, true)).await.unwrap();
    send(key(0, XK_EXCLAM, false)).await.unwrap();
    // Keysyms the host keymap lacks: bound to spare keycodes.
    send(key(0, XK_EACUTE, true)).await.unwrap();
    send(key(0, XK_EACUTE, false)).await.unwrap();
    send(key(0, XK_EURO, true)).await.unwrap();
    send(key(0, XK_EURO, false)).await.unwrap();
    // A named key by physical code.
    send(key(0x50, XK_LEFT, true)).await.unwrap();
    send(key(0x50, XK_LEFT, false)).await.unwrap();
    send(InputEvent::PointerMove { x: 100, y: 50 }).await.unwrap();
    send(InputEvent::Button {
        button: MouseButton::LEFT,
        pressed: true,
    })
    .await
    .unwrap();
    send(InputEvent::Button {
        button: MouseButton::LEFT,
        pressed: false,
    })
    .await
    .unwrap();
    // Two notches down in two halves each, and one notch left.
    for _ in 0..4 {
        send(InputEvent::Scroll { dx: 0, dy: 60 }).await.unwrap();
    }
    send(InputEvent::Scroll { dx: -120, dy: 0 }).await.unwrap();

    let seen = collect(&s.seen, |v| {
        v.iter()
            .filter(|x| matches!(x, Seen::ButtonRelease(_)))
            .count()
            >= 4
            && all_released(v)
    });
    println!("{seen:#?}");
    let presses: Vec<(u32, bool)> = seen
        .iter()
        .filter_map(|x| match x {
            Seen::KeyPress { keysym, shift, .. } if *keysym != XK_SHIFT_L => {
                Some((*keysym, *shift))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        presses,
        vec![
            (XK_A, true),
            (XK_EXCLAM, true),
            (XK_EACUTE, false),
            (XK_EURO, false),
            (XK_LEFT, false)
        ]
    );
    assert!(seen.contains(&Seen::Motion { x: 100, y: 50 }), "{seen:?}");
    let buttons: Vec<&Seen> = seen
        .iter()
        .filter(|x| matches!(x, Seen::ButtonPress(_) | Seen::ButtonRelease(_)))
        .collect();
    assert_eq!(
        buttons,
        vec![
            &Seen::ButtonPress(1),
            &Seen::ButtonRelease(1),
            &Seen::ButtonPress(5),
            &Seen::ButtonRelease(5),
            &Seen::ButtonPress(5),
            &Seen::ButtonRelease(5),
            &Seen::ButtonPress(6),
            &Seen::ButtonRelease(6),
        ]
    );
    assert!(all_released(&seen));
    let st = s.injector.stats();
    assert_eq!(st.failed, 0);
    let mut lat = st.inject_us.clone();
    lat.sort_unstable();
    println!(
        "host arrival → injected: p50 {} µs, max {} µs over {} events",
        lat[lat.len() / 2],
        lat[lat.len() - 1],
        lat.len()
    );
    let _ = conn.close("done").await;
}

/// Presses Shift and b and holds the left button; returns once the X client saw all three.
async fn hold_keys(conn: &ViewerConnection, seen: &std_mpsc::Receiver<Seen>) -> Vec<Seen> {
    conn.send_input(key(0xe1, XK_SHIFT_L, true)).await.unwrap();
    conn.send_input(key(0x05, XK_B_LOWER, true)).await.unwrap();
    conn.send_input(InputEvent::Button {
        button: MouseButton::LEFT,
        pressed: true,
    })
    .await
    .unwrap();
    collect(seen, |v| {
        v.iter().filter(|x| matches!(x, Seen::KeyPress { .. })).count() >= 2
            && v.contains(&Seen::ButtonPress(1))
    })
}

/// Waits for the host's releases: the button first, the keys, Shift last. (The host's X server
/// auto-repeats the held `b` meanwhile: release/press pairs until the real release.)
fn released_after_vanish(seen: &std_mpsc::Receiver<Seen>, held: Vec<Seen>) -> Duration {
    let shift = held
        .iter()
        .find_map(|x| match x {
            Seen::KeyPress {
                keycode,
                keysym: XK_SHIFT_L,
                ..
            } => Some(*keycode),
            _ => None,
        })
        .expect("shift was pressed");
    let t = Instant::now();
    let mut all = held;
    let rest = collect(seen, |v| {
        v.iter()
            .position(|x| *x == Seen::ButtonRelease(1))
            .is_some_and(|b| v[b..].contains(&Seen::KeyRelease { keycode: shift }))
    });
    let took = t.elapsed();
    all.extend(rest);
    assert!(all_released(&all), "{all:#?}");
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_that_vanishes_with_keys_held_leaves_nothing_pressed_on_the_display() {
    let s = setup().await;
    // The connection is torn down (the viewer crashed; the OS closed its socket).
    let conn = viewer(&s, s.host).await;
    let held = hold_keys(&conn, &s.seen).await;
    conn.abort();
    let took = released_after_vanish(&s.seen, held);
    println!("released {took:?} after the connection closed");

    // The path goes silent (network gone): released after the host's 1 s of silence.
    let relay = Relay::start(s.host).await.unwrap();
    let conn = viewer(&s, relay.addr).await;
    let held = hold_keys(&conn, &s.seen).await;
    relay.set_blackhole(true);
    let took = released_after_vanish(&s.seen, held);
    println!("released {took:?} after the path went silent");
    assert!(
        took >= Duration::from_millis(500),
        "released before the silence threshold: {took:?}"
    );
    conn.abort();
}
