//! Choosing and driving the present path: the GPU path ([`crate::present_gpu`]: planes to
//! textures, conversion and scaling in a shader) or the CPU path ([`crate::present_cpu`]:
//! conversion straight into a softbuffer framebuffer, damaged rectangles only).
//!
//! `--renderer auto` (the default) takes the GPU when wgpu's adapter is a real GPU (integrated,
//! discrete or virtual) and the CPU path when it is a software rasteriser (mesa's lavapipe,
//! WARP, SwiftShader: `DeviceType::Cpu`) or there is none: on lavapipe presenting one 1080p
//! frame costs 20–50 ms of CPU, the CPU path 2–3 ms.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pixels::wgpu::DeviceType;
use tracing::info;
use winit::window::Window;

use crate::app::{Renderer, WindowError};
use crate::frame::DecodedFrame;
use crate::overlay::Sprite;
use crate::present_cpu::CpuPresenter;
use crate::present_gpu::{build_pixels, GpuPresenter};

/// Which present path runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivePath {
    /// wgpu through pixels, YUV → RGB in a shader.
    Gpu,
    /// softbuffer, YUV → RGB on the CPU into the framebuffer.
    Cpu,
}

/// The present path in use and why, for the overlay, the bench and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RendererInfo {
    /// The path.
    pub path: ActivePath,
    /// E.g. `"softbuffer (wgpu adapter llvmpipe is a CPU rasteriser)"` or
    /// `"NVIDIA RTX A4000 (Vulkan, DiscreteGpu), Mailbox"`.
    pub detail: String,
}

impl RendererInfo {
    /// `"gpu"` or `"cpu"`.
    pub fn name(&self) -> &'static str {
        match self.path {
            ActivePath::Gpu => "gpu",
            ActivePath::Cpu => "cpu",
        }
    }
}

/// What one present did, on either path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PresentStats {
    /// µs converting (CPU) or uploading (GPU) the picture and drawing the overlays.
    pub convert_us: u32,
    /// µs showing it, until the display server or GPU finished.
    pub present_us: u32,
    /// Everything was repainted or uploaded (no usable damage list).
    pub full: bool,
    /// Damage rectangles used instead (0 with `full`).
    pub rects: u16,
    /// Picture pixels converted or uploaded.
    pub pixels: u32,
}

/// The present path.
#[derive(Debug)]
pub enum Backend {
    /// GPU.
    Gpu(Box<GpuPresenter>),
    /// CPU.
    Cpu(Box<CpuPresenter>),
}

impl Backend {
    /// Opens the path `renderer` asks for on `window`.
    pub fn open(
        window: &Arc<Window>,
        renderer: Renderer,
    ) -> Result<(Backend, RendererInfo), WindowError> {
        match renderer {
            Renderer::Cpu => open_cpu(window, "asked for with --renderer cpu".into()),
            Renderer::Gpu => open_gpu(window, build_pixels(window, None)?),
            Renderer::Auto => match build_pixels(window, None) {
                Ok(p) if p.adapter().get_info().device_type != DeviceType::Cpu => {
                    open_gpu(window, p)
                }
                Ok(p) => {
                    let adapter = p.adapter().get_info().name;
                    drop(p);
                    open_cpu(
                        window,
                        format!("wgpu adapter {adapter} is a CPU rasteriser"),
                    )
                }
                Err(e) => {
                    open_cpu(window, format!("no usable wgpu adapter: {e}")).map_err(|_| e.into())
                }
            },
        }
    }

    /// Shows `frame` (or the last picture again) with `overlays`.
    pub fn present(
        &mut self,
        frame: Option<DecodedFrame>,
        overlays: &[Sprite],
    ) -> Result<PresentStats, WindowError> {
        match self {
            Backend::Gpu(g) => {
                let s = g.present(frame, overlays).map_err(WindowError::Render)?;
                Ok(PresentStats {
                    convert_us: s.convert_us,
                    present_us: s.present_us,
                    full: s.full,
                    rects: s.rects,
                    pixels: s.uploaded_px,
                })
            }
            Backend::Cpu(c) => {
                let s = c
                    .present(frame, overlays)
                    .map_err(WindowError::CpuPresent)?;
                Ok(PresentStats {
                    convert_us: s.convert_us,
                    present_us: s.present_us,
                    full: s.full,
                    rects: s.rects,
                    pixels: s.converted_px,
                })
            }
        }
    }

    /// The window's inner size changed.
    pub fn resize_surface(&mut self, width: u32, height: u32) -> Result<(), String> {
        match self {
            Backend::Gpu(g) => g.resize_surface(width, height).map_err(|e| e.to_string()),
            Backend::Cpu(c) => c.resize_surface(width, height),
        }
    }
}

fn open_cpu(window: &Arc<Window>, why: String) -> Result<(Backend, RendererInfo), WindowError> {
    let started = Instant::now();
    let c = CpuPresenter::new(window.clone()).map_err(WindowError::CpuPresent)?;
    let detail = format!("softbuffer; {why}");
    info!(%detail, init_ms = started.elapsed().as_millis() as u64, "renderer ready: CPU framebuffer");
    Ok((
        Backend::Cpu(Box::new(c)),
        RendererInfo {
            path: ActivePath::Cpu,
            detail,
        },
    ))
}

fn open_gpu(
    window: &Arc<Window>,
    pixels: pixels::Pixels<'static>,
) -> Result<(Backend, RendererInfo), WindowError> {
    let g = GpuPresenter::new(window, pixels)?;
    let detail = g.description.clone();
    Ok((
        Backend::Gpu(Box::new(g)),
        RendererInfo {
            path: ActivePath::Gpu,
            detail,
        },
    ))
}

/// What wgpu finds on this machine without a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    /// Adapter name (e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`).
    pub name: String,
    /// Backend (`Vulkan`, `Metal`, `Dx12`, `Gl`).
    pub backend: String,
    /// A software rasteriser (`DeviceType::Cpu`): `--renderer auto` takes the CPU path then.
    pub software: bool,
}

/// Asks wgpu for its preferred adapter, the way pixels does (honouring `WGPU_BACKEND` and
/// `WGPU_ADAPTER_NAME`) but without a surface; `None` when there is none. For diagnostics and
/// tests: the window's own choice is made against its surface.
pub fn probe_adapter() -> Option<AdapterSummary> {
    use pixels::wgpu;
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::PRIMARY,
        ..wgpu::InstanceDescriptor::new_without_display_handle().with_env()
    });
    let request = instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::from_env().unwrap_or_default(),
        force_fallback_adapter: false,
        compatible_surface: None,
    });
    let adapter = block_on(request, Duration::from_secs(10))?.ok()?;
    let info = adapter.get_info();
    Some(AdapterSummary {
        name: info.name,
        backend: format!("{:?}", info.backend),
        software: info.device_type == DeviceType::Cpu,
    })
}

/// Runs `fut` on this thread until it is ready (native wgpu resolves at once) or `limit`:
/// between polls the thread parks until the future's waker unparks it.
fn block_on<F: std::future::Future>(fut: F, limit: Duration) -> Option<F::Output> {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let mut fut = std::pin::pin!(fut);
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let deadline = Instant::now() + limit;
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        std::thread::park_timeout(left);
    }
}

/// Whether the planes hold a whole picture of the frame's size and format (guards both
/// paths against a decoder handing out short planes).
pub fn planes_complete(f: &DecodedFrame) -> bool {
    let (w, h) = (f.width as usize, f.height as usize);
    let (cw, ch) = f.format.chroma_size(f.width, f.height);
    let (cw, ch) = (cw as usize, ch as usize);
    let b = f.format.bytes_per_sample();
    let fits = |len: usize, stride: usize, w: usize, h: usize| {
        stride >= w * b && (h == 0 || len >= stride * (h - 1) + w * b)
    };
    w > 0
        && h > 0
        && fits(f.y.len(), f.y_stride, w, h)
        && fits(f.u.len(), f.uv_stride, cw, ch)
        && fits(f.v.len(), f.uv_stride, cw, ch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::PictureFormat;
    use sightline_protocol::msg::{ColourMatrix, ColourRange};

    fn frame(w: u32, h: u32, format: PictureFormat) -> DecodedFrame {
        let b = format.bytes_per_sample();
        let (cw, ch) = format.chroma_size(w, h);
        DecodedFrame {
            width: w,
            height: h,
            format,
            y: vec![0; w as usize * h as usize * b],
            u: vec![0; (cw * ch) as usize * b],
            v: vec![0; (cw * ch) as usize * b],
            y_stride: w as usize * b,
            uv_stride: cw as usize * b,
            matrix: ColourMatrix::Bt709,
            range: ColourRange::Limited,
            frame: 1,
            damage: None,
            host_times: None,
            first_packet_us: 0,
            reassembled_us: 0,
            decoded_us: 0,
            decoded_at: Instant::now(),
        }
    }

    #[test]
    fn incomplete_planes_are_detected_in_every_format() {
        for format in [
            PictureFormat::I420,
            PictureFormat::I444,
            PictureFormat::I420P10,
            PictureFormat::I444P10,
        ] {
            assert!(planes_complete(&frame(5, 3, format)), "{format:?}");
            let mut f = frame(6, 4, format);
            f.v.pop();
            assert!(!planes_complete(&f), "{format:?}");
            let mut f = frame(6, 4, format);
            f.y_stride -= 1;
            assert!(!planes_complete(&f), "{format:?}");
            assert!(!planes_complete(&frame(0, 4, format)));
        }
        // A 10-bit frame whose planes are sized as if 8-bit is caught.
        let mut f = frame(6, 4, PictureFormat::I420P10);
        f.y.truncate(6 * 4);
        assert!(!planes_complete(&f));
    }
}
