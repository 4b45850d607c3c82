//! X11 capture on Xvfb: full-frame MIT-SHM reads at 1080p and 4K, and damage-driven reads of a
//! 480×240 window that another client (ImageMagick's `animate`) redraws continuously.
//!
//! Needs `Xvfb` and `animate` (packages `xvfb`, `imagemagick`); the bench panics without them. Besides
//! criterion's estimates it prints per-capture percentiles (p50/p90/p99 of single captures;
//! criterion's median is over samples of many iterations).

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sightline_host::capture::x11::X11Source;
use sightline_host::capture::{CaptureOutcome, CapturedFrame, FrameSource};

/// A child process stopped with SIGTERM on drop (Xvfb then removes its socket and lock).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts Xvfb on a free display in :140–:179; returns it and its name. Readiness comes from
/// `-displayfd 1` (Xvfb prints the display number when it accepts connections, or exits).
fn xvfb(width: u32, height: u32) -> (Proc, String) {
    let first = std::process::id();
    for i in 0..40 {
        let n = 140 + (first + i) % 40;
        if std::path::Path::new(&format!("/tmp/.X{n}-lock")).exists() {
            continue;
        }
        let display = format!(":{n}");
        let (mut ready, writer) = std::io::pipe().expect("pipe");
        let child = Command::new("Xvfb")
            .args([&display, "-screen", "0", &format!("{width}x{height}x24")])
            .args(["-nolisten", "tcp", "-noreset", "-displayfd", "1"])
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run Xvfb ({e}): install xvfb"));
        let proc = Proc(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut out = String::new();
            let _ = ready.read_to_string(&mut out);
            let _ = tx.send(out);
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(out) if out.trim() == n.to_string() => return (proc, display),
            Ok(_) => continue,
            Err(_) => panic!("Xvfb {display} did not start"),
        }
    }
    panic!("no free display in :140..:179");
}

/// p50/p90/p99 of single captures, in µs.
fn report(name: &str, mut d: Vec<Duration>) {
    if d.is_empty() {
        return;
    }
    d.sort();
    let p = |q: f64| d[((d.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    println!(
        "{name}: {} captures, p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs",
        d.len(),
        p(0.5),
        p(0.9),
        p(0.99)
    );
}

fn full_frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("x11_full_shm");
    group.sample_size(20);
    for (w, h) in [(1920u32, 1080u32), (3840, 2160)] {
        let (_x, display) = xvfb(w, h);
        let mut src = X11Source::open(Some(&display)).expect("open Xvfb");
        assert!(src.uses_shm(), "{}", src.describe());
        let mut frame = CapturedFrame::new();
        let mut samples = Vec::new();
        group.throughput(Throughput::Bytes(u64::from(w * h * 4)));
        group.bench_function(BenchmarkId::from_parameter(format!("{w}x{h}")), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    src.invalidate();
                    let t = Instant::now();
                    let out = src.next_frame(&mut frame, Duration::ZERO).expect("capture");
                    let d = t.elapsed();
                    assert_eq!(out, CaptureOutcome::Frame);
                    total += d;
                    samples.push(d);
                }
                total
            })
        });
        report(&format!("x11_full_shm/{w}x{h}"), samples);
    }
    group.finish();
}

fn damaged_region(c: &mut Criterion) {
    let mut group = c.benchmark_group("x11_damage");
    group.sample_size(20);
    let (_x, display) = xvfb(1920, 1080);
    let mut src = X11Source::open(Some(&display)).expect("open Xvfb");
    let mut frame = CapturedFrame::new();
    src.next_frame(&mut frame, Duration::from_secs(1))
        .expect("first frame");
    // ImageMagick's animate flips between two 480×240 pictures as fast as it can.
    let _animate = Proc(
        Command::new("animate")
            .args(["-display", &display, "-geometry", "+300+200", "-delay", "0"])
            .args([
                "-size",
                "480x240",
                "gradient:red-blue",
                "gradient:green-yellow",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run animate ({e}): install imagemagick")),
    );
    let mut samples = Vec::new();
    let mut areas = Vec::new();
    group.throughput(Throughput::Bytes(480 * 240 * 4));
    group.bench_function("480x240_of_1920x1080", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let out = src.next_frame(&mut frame, Duration::from_secs(2));
                assert_eq!(
                    out.expect("capture"),
                    CaptureOutcome::Frame,
                    "animate stopped?"
                );
                // From the damage notify to the pixels in `frame`: not the wait for animate.
                let d = frame.capture_end - frame.capture_start;
                total += d;
                samples.push(d);
                areas.push(frame.damage_bounds());
            }
            total
        })
    });
    let big = areas.iter().filter(|r| r.w == 480 && r.h == 240).count();
    println!(
        "x11_damage: {big} of {} captures had a 480×240 damage box (others are partial redraws)",
        areas.len()
    );
    report("x11_damage/480x240_of_1920x1080", samples);
    group.finish();
}

criterion_group!(benches, full_frames, damaged_region);
criterion_main!(benches);
