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
use sightline_protocol::msg::{
    Capabilities, InputEvent, InputKinds, KeyEvent, Modifiers, MouseButton,
};
use sightline_tests::relay::Relay;
use sightline_tests::xlisten::{all_released, collect, listen, Seen};
use sightline_tests::xvfb::Xvfb;
use sightline_tests::{Pki, TestHost};
use sightline_viewer::net::{connect, ViewerConnection};

const XK_SHIFT_L: u32 = 0xffe1;
const XK_A: u32 = 0x41;
const XK_B_LOWER: u32 = 0x62;
const XK_EXCLAM: u32 = 0x21;
const XK_EACUTE: u32 = 0xe9;
const XK_EURO: u32 = 0x20ac;
const XK_LEFT: u32 = 0xff51;

fn key(code: u16, keysym: u32, pressed: bool) -> InputEvent {
    InputEvent::Key(KeyEvent {
        code,
        keysym,
        modifiers: Modifiers::EMPTY,
        pressed,
    })
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
    assert_eq!(
        caps.input_kinds,
        InputKinds::KEYBOARD.union(InputKinds::MOUSE)
    );
    let mut host = TestHost::start(&pki, caps);
    let addr = host.addr;
    let inj = injector.clone();
    // The host agent's own wiring: every input event the sessions report goes to the injector.
    let guard = tokio::spawn(async move {
        sightline_tests::route_input(&mut host.events, Some(&inj), None).await;
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
    send(InputEvent::PointerMove { x: 100, y: 50 })
        .await
        .unwrap();
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
        v.iter()
            .filter(|x| matches!(x, Seen::KeyPress { .. }))
            .count()
            >= 2
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
