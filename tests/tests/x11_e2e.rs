//! A real X display end to end: an X client draws on the host's Xvfb display, the host captures
//! it (MIT-SHM + DAMAGE), encodes and streams it, and the viewer's decoded frame shows it. While
//! the display is still, nothing is captured or encoded.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sightline_certs::TrustPolicy;
use sightline_host::capture::x11::X11Source;
use sightline_protocol::colour::YuvCoefficients;
use sightline_protocol::msg::{ColourMatrix, ColourRange};
use sightline_tests::xvfb::Xvfb;
use sightline_tests::{Pki, VideoHost};
use sightline_viewer::decode::FrameSink;
use sightline_viewer::frame::DecodedFrame;
use sightline_viewer::net::{connect_media, Media};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConnectionExt as _, CreateGCAux, CreateWindowAux, Rectangle, WindowClass,
};

/// Keeps the newest decoded picture and counts them.
#[derive(Clone, Default)]
struct Latest(Arc<Mutex<(u64, Option<DecodedFrame>)>>);

impl FrameSink for Latest {
    fn frame(&mut self, f: DecodedFrame) {
        let mut g = self.0.lock().unwrap();
        g.0 += 1;
        g.1 = Some(f);
    }
}

impl Latest {
    fn count(&self) -> u64 {
        self.0.lock().unwrap().0
    }
    /// Mean Y, U, V over a rectangle of the newest picture.
    fn mean(&self, x: u32, y: u32, w: u32, h: u32) -> Option<(f64, f64, f64)> {
        let g = self.0.lock().unwrap();
        let f = g.1.as_ref()?;
        let (mut sy, mut su, mut sv, mut n) = (0.0, 0.0, 0.0, 0.0);
        for row in y..y + h {
            for col in x..x + w {
                sy += f.y[row as usize * f.y_stride + col as usize] as f64;
                let c = (row / 2) as usize * f.uv_stride + (col / 2) as usize;
                su += f.u[c] as f64;
                sv += f.v[c] as f64;
                n += 1.0;
            }
        }
        Some((sy / n, su / n, sv / n))
    }
}

/// Draws a filled `colour` (0xRRGGBB) rectangle in a new override-redirect window.
fn draw(conn: &impl Connection, screen_num: usize, r: Rectangle, colour: u32) -> u32 {
    let screen = &conn.setup().roots[screen_num];
    let win = conn.generate_id().unwrap();
    conn.create_window(
        screen.root_depth,
        win,
        screen.root,
        r.x,
        r.y,
        r.width,
        r.height,
        0,
        WindowClass::INPUT_OUTPUT,
        screen.root_visual,
        &CreateWindowAux::new()
            .background_pixel(colour)
            .override_redirect(1),
    )
    .unwrap();
    conn.map_window(win).unwrap();
    let gc = conn.generate_id().unwrap();
    conn.create_gc(gc, win, &CreateGCAux::new().foreground(colour))
        .unwrap();
    conn.poly_fill_rectangle(
        win,
        gc,
        &[Rectangle {
            x: 0,
            y: 0,
            width: r.width,
            height: r.height,
        }],
    )
    .unwrap();
    conn.flush().unwrap();
    win
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drawing_on_the_host_display_reaches_the_viewer_and_stillness_costs_nothing() {
    let x = Xvfb::start(1280, 720, 24);
    let pki = Pki::new();
    let source = X11Source::open(Some(&x.name())).expect("open the Xvfb display");
    let host = VideoHost::start(&pki, Box::new(source), 60, 10_000_000, 2);
    let addr = host.addr;

    let latest = Latest::default();
    let media = Media {
        video: Some(Box::new(latest.clone())),
        ..Media::default()
    };
    let totals = media.totals.clone();
    let known = pki.known_hosts("known_hosts", addr, &pki.host);
    let conn = connect_media(
        pki.connect_options(addr, &pki.viewer, known, TrustPolicy::PinnedOnly),
        media,
    )
    .await
    .expect("connect");

    // The first (full) frame arrives.
    let deadline = Instant::now() + Duration::from_secs(15);
    while latest.count() == 0 {
        assert!(Instant::now() < deadline, "no frame from the X display");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // An X client draws an orange rectangle.
    let (xconn, screen) = x11rb::connect(Some(&x.name())).unwrap();
    let rect = Rectangle {
        x: 200,
        y: 120,
        width: 480,
        height: 240,
    };
    let _win = draw(&xconn, screen, rect, 0xFF8000);
    let c = YuvCoefficients::new(ColourMatrix::Bt709, ColourRange::Limited, 8);
    let (wy, wu, wv) = c.rgb_to_ycbcr(1.0, 128.0 / 255.0, 0.0);
    let t0 = Instant::now();
    let mut seen = None;
    while Instant::now() < t0 + Duration::from_secs(10) {
        if let Some((y, u, v)) = latest.mean(260, 160, 360, 160) {
            if (y - wy as f64).abs() < 6.0
                && (u - wu as f64).abs() < 6.0
                && (v - wv as f64).abs() < 6.0
            {
                seen = Some((y, u, v));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (y, u, v) = seen.unwrap_or_else(|| {
        panic!(
            "the drawn rectangle never showed (want Y {wy:.1} U {wu:.1} V {wv:.1}, have {:?})",
            latest.mean(260, 160, 360, 160)
        )
    });
    println!(
        "drawn region arrived after {:.0} ms: Y {y:.1} U {u:.1} V {v:.1} (want {wy:.1} {wu:.1} {wv:.1})",
        t0.elapsed().as_secs_f64() * 1e3
    );
    // Outside the rectangle the picture is not orange.
    let (oy, _, _) = latest.mean(800, 500, 100, 100).unwrap();
    assert!(
        (oy - wy as f64).abs() > 10.0,
        "outside looks drawn too: Y {oy:.1}"
    );

    // Stillness: let things settle, then count frames over 1.5 s.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = totals.lock().unwrap().frames_received;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = totals.lock().unwrap().frames_received;
    println!("frames while still: {}", after - before);
    assert_eq!(
        after, before,
        "frames were encoded while the display was still"
    );

    // And a new change flows again.
    let _win2 = draw(
        &xconn,
        screen,
        Rectangle {
            x: 900,
            y: 400,
            width: 100,
            height: 100,
        },
        0x0000FF,
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while totals.lock().unwrap().frames_received == after {
        assert!(
            Instant::now() < deadline,
            "a change after stillness was not streamed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    conn.close("done").await;
    drop(host);
}
