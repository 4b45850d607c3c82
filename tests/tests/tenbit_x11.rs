//! A depth-30 X screen end to end: an X client draws a 1024-level 10-bit ramp with PutImage on
//! `Xvfb -screen 0 1024x96x30`, the host captures x2r10g10b10 pixels (MIT-SHM), picks a 10-bit
//! stream on its own (`--bit-depth auto`), and the viewer's decoded picture keeps far more
//! than the 256 levels an 8-bit stream could.

#![cfg(target_os = "linux")]

use std::time::Duration;

use sightline_certs::TrustPolicy;
use sightline_host::capture::x11::X11Source;
use sightline_host::capture::{FrameSource, PixelFormat};
use sightline_host::encode::format::{CodecPreference, FormatRequest};
use sightline_host::encode::{probe_formats, EncoderSettings};
use sightline_host::pipeline::VideoSettings;
use sightline_protocol::msg::{Chroma, ColourMatrix, ColourRange};
use sightline_tests::xvfb::Xvfb;
use sightline_tests::{Pki, VideoHost};
use sightline_viewer::frame::PictureFormat;
use sightline_viewer::headless::Recorder;
use sightline_viewer::net::{connect_media, Media};
use sightline_viewer::stats::SharedClock;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConnectionExt as _, CreateGCAux, CreateWindowAux, ImageFormat, WindowClass,
};
use x11rb::rust_connection::RustConnection;

const W: u16 = 1024;
const H: u16 = 96;

/// Draws the ramp (column x = level x, grey) over the whole screen from another X client and
/// keeps the connection (and so the window) alive.
fn draw_ramp(display: &str) -> RustConnection {
    let (conn, screen) = RustConnection::connect(Some(display)).expect("connect");
    let root = conn.setup().roots[screen].root;
    let depth = conn.setup().roots[screen].root_depth;
    assert_eq!(depth, 30, "a depth-30 screen");
    let win = conn.generate_id().unwrap();
    conn.create_window(
        x11rb::COPY_DEPTH_FROM_PARENT,
        win,
        root,
        0,
        0,
        W,
        H,
        0,
        WindowClass::INPUT_OUTPUT,
        x11rb::COPY_FROM_PARENT,
        &CreateWindowAux::new()
            .override_redirect(1)
            .background_pixel(0),
    )
    .unwrap();
    conn.map_window(win).unwrap();
    let gc = conn.generate_id().unwrap();
    conn.create_gc(gc, win, &CreateGCAux::new()).unwrap();
    // 16 rows per request keeps each PutImage well under the request size limit.
    for top in (0..H).step_by(16) {
        let rows = 16.min(H - top);
        let mut data = Vec::with_capacity(W as usize * rows as usize * 4);
        for _ in 0..rows {
            for x in 0..W as u32 {
                data.extend_from_slice(&(x << 20 | x << 10 | x).to_le_bytes());
            }
        }
        conn.put_image(
            ImageFormat::Z_PIXMAP,
            win,
            gc,
            W,
            rows,
            0,
            top as i16,
            0,
            depth,
            &data,
        )
        .unwrap();
    }
    conn.get_input_focus().unwrap().reply().unwrap();
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_depth_30_screen_reaches_the_viewer_in_10_bit() {
    let x = Xvfb::start(W as u32, H as u32, 30);
    let _painter = draw_ramp(&x.name());
    let source = X11Source::open(Some(&x.name())).expect("open the X display");
    assert_eq!(source.format(), PixelFormat::X2Rgb10);
    // What `host-agent --bit-depth auto` asks for on this source.
    let request = FormatRequest {
        codec: CodecPreference::Hevc,
        bit_depth: 10,
        chroma: Chroma::Yuv420,
        matrix: ColourMatrix::Bt709,
        range: ColourRange::Full,
    };
    let settings = VideoSettings {
        encoder: EncoderSettings::default(),
        record: None,
        max_frames: 0,
        tiles: Default::default(),
    };
    let offers = probe_formats(&request, settings.encoder, false).offers;
    let pki = Pki::new();
    let host = VideoHost::start_negotiated(&pki, Box::new(source), offers, settings);
    let known = pki.known_hosts("known_hosts", host.addr, &pki.host);
    let clock = SharedClock::default();
    // The screen is still after the ramp is drawn: the first (key)frame is the one to check.
    let recorder = Recorder::new(clock.clone(), 1, true);
    let media = Media {
        video: Some(Box::new(recorder.clone())),
        clock,
        ..Media::default()
    };
    let opts = pki.connect_options(host.addr, &pki.viewer, known, TrustPolicy::PinnedOnly);
    let conn = connect_media(opts, media).await.expect("connect");
    assert!(conn
        .welcome
        .capabilities
        .bit_depths
        .contains(sightline_protocol::msg::BitDepths::TEN));
    tokio::time::timeout(Duration::from_secs(30), recorder.done.notified())
        .await
        .expect("a decoded picture within 30 s");
    conn.close("done").await;
    let f = recorder
        .recording
        .lock()
        .unwrap()
        .last_frame
        .take()
        .unwrap();
    assert_eq!(f.format, PictureFormat::I420P10);
    let mut codes: Vec<u16> = (8..H as usize - 8)
        .flat_map(|r| {
            f.y[r * f.y_stride..][..W as usize * 2]
                .chunks_exact(2)
                .map(|s| u16::from_le_bytes([s[0], s[1]]))
                .collect::<Vec<_>>()
        })
        .collect();
    codes.sort_unstable();
    codes.dedup();
    println!(
        "depth-30 screen: {} distinct luma codes decoded",
        codes.len()
    );
    assert!(
        codes.len() > 900,
        "{} codes: not a 10-bit picture",
        codes.len()
    );
}
