use std::time::{Duration, Instant};
use openh264::encoder::*;
use openh264::decoder::{Decoder, DecoderConfig};
use openh264::formats::YUVSource;
use openh264::OpenH264API;
use sightline_host::capture::synthetic::SyntheticSource;
use sightline_host::capture::{CapturedFrame, FrameSource};
use sightline_host::convert::{bgrx_to_i420, I420};
use sightline_protocol::msg::{ColourMatrix, ColourRange};

struct P<'a>(&'a I420);
impl YUVSource for P<'_> {
    fn dimensions(&self) -> (usize, usize) { (self.0.width as usize, self.0.height as usize) }
    fn strides(&self) -> (usize, usize, usize) { (self.0.y_stride, self.0.uv_stride, self.0.uv_stride) }
    fn y(&self) -> &[u8] { &self.0.y }
    fn u(&self) -> &[u8] { &self.0.u }
    fn v(&self) -> &[u8] { &self.0.v }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = args[1].as_str();
    let content = args[2].as_str();
    let threads: u16 = args[3].parse().unwrap();
    let slices: u32 = args[4].parse().unwrap();
    let cx = args.get(5).map(|s| s.as_str()).unwrap_or("low");
    let (w, h) = (1920u32, 1080u32);
    let mut src = SyntheticSource::new(w, h, 1000);
    let mut f = CapturedFrame::new();
    let mut pics = vec![];
    let mut bg: Option<CapturedFrame> = None;
    for _ in 0..120 {
        src.next_frame(&mut f, Duration::from_secs(1)).unwrap();
        let mut fr = f.clone();
        if content == "window" {
            // static desktop, only a 640x360 window region follows the source
            if bg.is_none() { bg = Some(f.clone()); }
            let b = bg.as_ref().unwrap();
            let mut c = b.clone();
            let stride = c.stride;
            for y in 600..960usize { let o = y * stride + 100 * 4; c.data[o..o + 640 * 4].copy_from_slice(&f.data[o..o + 640 * 4]); }
            fr = c;
        }
        let mut p = I420::new(w, h);
        bgrx_to_i420(&fr, ColourMatrix::Bt709, ColourRange::Limited, &mut p);
        pics.push(p);
    }
    if let Ok(path) = std::env::var("DUMP") {
        use std::io::Write;
        let mut o = std::fs::File::create(path).unwrap();
        for p in &pics { for y in 0..h as usize { o.write_all(&p.y[y*p.y_stride..y*p.y_stride+w as usize]).unwrap(); }
            for y in 0..h as usize/2 { o.write_all(&p.u[y*p.uv_stride..y*p.uv_stride+w as usize/2]).unwrap(); }
            for y in 0..h as usize/2 { o.write_all(&p.v[y*p.uv_stride..y*p.uv_stride+w as usize/2]).unwrap(); } }
        return;
    }
    let mut c = EncoderConfig::new()
        .usage_type(if usage == "screen" { UsageType::ScreenContentRealTime } else { UsageType::CameraVideoRealTime })
        .rate_control_mode(RateControlMode::Bitrate)
        .bitrate(BitRate::from_bps(20_000_000))
        .max_frame_rate(FrameRate::from_hz(60.0))
        .skip_frames(false)
        .intra_frame_period(IntraFramePeriod::from_num_frames(0))
        .complexity(match cx { "high" => Complexity::High, "med" => Complexity::Medium, _ => Complexity::Low })
        .scene_change_detect(false)
        .background_detection(false)
        .adaptive_quantization(false)
        .num_threads(threads);
    if slices > 0 { c = c.max_slice_len(slices); }
    let mut enc = Encoder::with_api_config(OpenH264API::from_source(), c).unwrap();
    let mut dec = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new()).unwrap();
    let mut times = vec![]; let mut bytes = 0usize; let mut psnr = 0.0; let mut n = 0;
    for (i, p) in pics.iter().enumerate() {
        let t = Instant::now();
        let bs = enc.encode(&P(p)).unwrap();
        let v = bs.to_vec();
        let el = t.elapsed().as_secs_f64() * 1e3;
        if i > 0 { times.push(el); bytes += v.len(); }
        if let Some(d) = dec.decode(&v).unwrap() {
            use openh264::formats::YUVSource as _;
            let (ys, _, _) = d.strides();
            let mut se = 0f64;
            for y in 0..h as usize { for x in 0..w as usize { let a = d.y()[y * ys + x] as f64 - p.y[y * p.y_stride + x] as f64; se += a * a; } }
            let mse = se / (w * h) as f64; psnr += 10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10(); n += 1;
        }
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("{usage} {content} t{threads} s{slices} {cx}: p50 {:.1} p99 {:.1} ms, {:.1} Mbit/s, PSNR-Y {:.1}", times[times.len()/2], times[times.len()*99/100], bytes as f64 * 8.0 * 60.0 / times.len() as f64 / 1e6, psnr / n as f64);
}
