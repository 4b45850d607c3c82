//! The GPU present path: the decoded planes go to the GPU as they are and a shader does the rest
//! (`yuv.wgsl`): YCbCr → RGB with the stream's matrix (BT.601, BT.709, BT.2020, identity) and
//! range, aspect-correct scaling with black bars, and an ordered dither when the samples are
//! deeper than the surface. The CPU only copies the planes into textures — just the rectangles
//! that differ from the picture shown ([`crate::diff`], as on the CPU path).
//!
//! Built on pixels (surface, device, queue, surface-error recovery) with our own render pass
//! through [`Pixels::render_with`]; pixels' own frame buffer is kept at 1×1 and never drawn.
//!
//! * **Planes:** copied as decoded (no conversion on the CPU), chroma at its own size (4:2:0 or
//!   4:4:4): `R8Unorm` for 8-bit samples and `R16Unorm` for 10-bit ones (little-endian `u16`),
//!   filtered by the texture unit (`yuv_float.wgsl`). `R16Unorm` is an optional device feature
//!   (requested when the adapter has it); without it 10-bit planes go to `R16Uint` textures and
//!   the shader filters them itself with four loads per sample (`yuv_uint.wgsl`).
//! * **Overlays** (cursor, stats panel) are textured quads blended in premultiplied alpha
//!   (`sprite.wgsl`); a texture is re-uploaded only when its content changes.
//! * **Present mode:** Mailbox when the surface offers it, else Immediate, else Fifo
//!   ([`choose_present_mode`]): frames come at the host's pace and are shown at once; Mailbox
//!   never blocks and shows the newest image at the next refresh without tearing; Immediate
//!   saves at most a refresh more but tears, so it is only the fallback; Fifo can block and adds
//!   up to two refreshes. The choice is logged.
//! * **Surface format:** a plain (non-sRGB) 8-bit format when offered, so the shader's output
//!   codes reach the screen as they are; on an sRGB-only surface the shader linearises first.
//! * `present` waits until the GPU has finished the frame, so the time it reports is the real
//!   cost and frames never queue behind each other.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pixels::wgpu::{self, util::DeviceExt, PresentMode, TextureFormat};
use pixels::{Pixels, PixelsBuilder, SurfaceTexture};
use sightline_protocol::colour::YuvCoefficients;
use sightline_protocol::msg::ColourMatrix;
use tracing::{debug, info};
use winit::window::Window;

use crate::diff::changed_rects;
use crate::frame::{DecodedFrame, PictureFormat};
use crate::overlay::{Anchor, Sprite};

/// Overlay images drawn at most per present.
const MAX_SPRITES: usize = 4;
/// Bytes of one sprite's six vertices (position and texture coordinate, `f32` each).
const SPRITE_VERTEX_BYTES: usize = 6 * 4 * 4;

/// What one present did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GpuPresentStats {
    /// µs copying planes and overlays to the GPU and preparing the pass.
    pub convert_us: u32,
    /// µs rendering and presenting, until the GPU finished.
    pub present_us: u32,
    /// The whole picture was uploaded.
    pub full: bool,
    /// Damage rectangles uploaded (0 with `full`).
    pub rects: u16,
    /// Picture pixels uploaded.
    pub uploaded_px: u32,
}

/// Lowest-latency present mode the surface offers (see the module docs for the order).
pub fn choose_present_mode(available: &[PresentMode]) -> PresentMode {
    [PresentMode::Mailbox, PresentMode::Immediate]
        .into_iter()
        .find(|m| available.contains(m))
        .unwrap_or(PresentMode::Fifo)
}

/// A surface format that stores bytes as they are (no sRGB encoding), if the surface has one.
pub fn choose_plain_format(formats: &[TextureFormat]) -> Option<TextureFormat> {
    [TextureFormat::Bgra8Unorm, TextureFormat::Rgba8Unorm]
        .into_iter()
        .find(|f| formats.contains(f))
}

/// Builds pixels on `window` (1×1 frame buffer: the picture never goes through it), with the
/// surface format `surface` when given.
pub fn build_pixels(
    window: &Arc<Window>,
    surface: Option<TextureFormat>,
) -> Result<Pixels<'static>, pixels::Error> {
    build_pixels_with(window, surface, None)
}

/// [`build_pixels`] with the device's features and limits given (pixels' default: no optional
/// features, the adapter's limits).
fn build_pixels_with(
    window: &Arc<Window>,
    surface: Option<TextureFormat>,
    device: Option<(wgpu::Features, wgpu::Limits)>,
) -> Result<Pixels<'static>, pixels::Error> {
    let size = window.inner_size();
    let st = SurfaceTexture::new(size.width.max(1), size.height.max(1), window.clone());
    let mut builder = PixelsBuilder::new(1, 1, st);
    if let Some((required_features, required_limits)) = device {
        builder = builder.device_descriptor(wgpu::DeviceDescriptor {
            required_features,
            required_limits,
            ..wgpu::DeviceDescriptor::default()
        });
    }
    if let Some(format) = surface {
        builder = builder.surface_texture_format(format);
    }
    builder.build()
}

/// How the shader reads the planes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sampling {
    /// Normalised textures filtered by the texture unit.
    Float,
    /// Integer textures filtered in the shader (10-bit without `R16Unorm`).
    Uint,
}

/// The planes of the current stream on the GPU.
#[derive(Debug)]
struct Planes {
    format: PictureFormat,
    sampling: Sampling,
    /// Code per unit the shader reads (255 or 65535 for normalised textures, 1 for integers).
    scale: f32,
    size: (u32, u32),
    textures: [wgpu::Texture; 3],
    bind_group: wgpu::BindGroup,
}

/// An overlay's texture.
#[derive(Debug)]
struct SpriteSlot {
    key: u64,
    size: (u32, u32),
    _texture: wgpu::Texture,
    bind_group: wgpu::BindGroup,
}

/// pixels' surface and device plus the YUV pipeline.
pub struct GpuPresenter {
    pixels: Pixels<'static>,
    picture_float: wgpu::RenderPipeline,
    picture_uint: wgpu::RenderPipeline,
    sprite_pipeline: wgpu::RenderPipeline,
    float_layout: wgpu::BindGroupLayout,
    uint_layout: wgpu::BindGroupLayout,
    sprite_layout: wgpu::BindGroupLayout,
    params: wgpu::Buffer,
    sampler: wgpu::Sampler,
    plane_sampler: wgpu::Sampler,
    /// The device has `R16Unorm` textures.
    norm16: bool,
    vertices: wgpu::Buffer,
    planes: Option<Planes>,
    /// The picture in the textures (what the next frame is compared with).
    shown: Option<DecodedFrame>,
    sprites: Vec<SpriteSlot>,
    window: (u32, u32),
    srgb_surface: bool,
    /// Adapter, backend and present mode, for the overlay and logs.
    pub description: String,
}

impl std::fmt::Debug for GpuPresenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuPresenter")
            .field("description", &self.description)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl GpuPresenter {
    /// Finishes setting up the GPU path from a first `pixels` built on `window`: picks a plain
    /// surface format and the present mode, and builds the pipelines.
    pub fn new(window: &Arc<Window>, mut pixels: Pixels<'static>) -> Result<Self, pixels::Error> {
        // The format list and the adapter's features are only known once a surface exists,
        // hence a second build when they call for it.
        let formats = pixels.context().surface_capabilities.formats.clone();
        let plain = choose_plain_format(&formats).filter(|f| *f != pixels.surface_texture_format());
        let norm16 = wgpu::Features::TEXTURE_FORMAT_16BIT_NORM;
        let want = pixels.adapter().features() & norm16;
        if plain.is_some() || !pixels.device().features().contains(want) {
            let surface = plain.or(Some(pixels.surface_texture_format()));
            let limits = pixels.adapter().limits();
            drop(pixels);
            pixels = build_pixels_with(window, surface, Some((want, limits)))?;
        }
        let norm16 = pixels.device().features().contains(norm16);
        let surface_format = pixels.surface_texture_format();
        let info = pixels.adapter().get_info();
        let available = pixels.context().surface_capabilities.present_modes.clone();
        let mode = choose_present_mode(&available);
        pixels.set_present_mode(mode);
        info!(
            adapter = %info.name,
            backend = ?info.backend,
            device_type = ?info.device_type,
            surface_format = ?surface_format,
            present_mode = ?mode,
            ?available,
            "GPU renderer ready (YUV → RGB in a shader)"
        );
        let size = window.inner_size();
        let device = pixels.device();
        let target = pixels.render_texture_format();
        let texture = |binding, sample_type| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Texture {
                sample_type,
                view_dimension: wgpu::TextureViewDimension::D2,
                multisampled: false,
            },
            count: None,
        };
        let uniform = wgpu::BindGroupLayoutEntry {
            binding: 3,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: wgpu::BufferSize::new(PARAMS_BYTES as u64),
            },
            count: None,
        };
        let float = wgpu::TextureSampleType::Float { filterable: true };
        let float_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("sightline planes (normalised)"),
            entries: &[
                texture(0, float),
                texture(1, float),
                texture(2, float),
                uniform,
                wgpu::BindGroupLayoutEntry {
                    binding: 4,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                    count: None,
                },
            ],
        });
        let uint = wgpu::TextureSampleType::Uint;
        let uint_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("sightline planes (integer)"),
            entries: &[
                texture(0, uint),
                texture(1, uint),
                texture(2, uint),
                uniform,
            ],
        });
        let sprite_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("sightline sprite"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Float { filterable: true },
                        view_dimension: wgpu::TextureViewDimension::D2,
                        multisampled: false,
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                    count: None,
                },
            ],
        });
        let module = |label, source: String| {
            device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            })
        };
        let yuv_float = module("sightline yuv (normalised)", shader(Sampling::Float));
        let yuv_uint = module("sightline yuv (integer)", shader(Sampling::Uint));
        let sprite = device.create_shader_module(wgpu::include_wgsl!("sprite.wgsl"));
        let pipeline = |label, layout: &wgpu::BindGroupLayout, module, vs, fs, buffers, blend| {
            let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(label),
                bind_group_layouts: &[Some(layout)],
                immediate_size: 0,
            });
            device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                label: Some(label),
                layout: Some(&pl),
                vertex: wgpu::VertexState {
                    module,
                    entry_point: Some(vs),
                    buffers,
                    compilation_options: wgpu::PipelineCompilationOptions::default(),
                },
                primitive: wgpu::PrimitiveState::default(),
                depth_stencil: None,
                multisample: wgpu::MultisampleState::default(),
                fragment: Some(wgpu::FragmentState {
                    module,
                    entry_point: Some(fs),
                    compilation_options: wgpu::PipelineCompilationOptions::default(),
                    targets: &[Some(wgpu::ColorTargetState {
                        format: target,
                        blend: Some(blend),
                        write_mask: wgpu::ColorWrites::ALL,
                    })],
                }),
                multiview_mask: None,
                cache: None,
            })
        };
        let picture = |label, layout, module| {
            pipeline(
                label,
                layout,
                module,
                "vs_main",
                "fs_main",
                &[],
                wgpu::BlendState::REPLACE,
            )
        };
        let picture_float = picture("sightline picture (normalised)", &float_layout, &yuv_float);
        let picture_uint = picture("sightline picture (integer)", &uint_layout, &yuv_uint);
        let sprite_vertex = wgpu::VertexBufferLayout {
            array_stride: 16,
            step_mode: wgpu::VertexStepMode::Vertex,
            attributes: &[
                wgpu::VertexAttribute {
                    format: wgpu::VertexFormat::Float32x2,
                    offset: 0,
                    shader_location: 0,
                },
                wgpu::VertexAttribute {
                    format: wgpu::VertexFormat::Float32x2,
                    offset: 8,
                    shader_location: 1,
                },
            ],
        };
        let sprite_pipeline = pipeline(
            "sightline overlays",
            &sprite_layout,
            &sprite,
            "vs_sprite",
            "fs_sprite",
            std::slice::from_ref(&sprite_vertex),
            wgpu::BlendState::PREMULTIPLIED_ALPHA_BLENDING,
        );
        let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("sightline params"),
            contents: &[0; PARAMS_BYTES],
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        });
        let vertices = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("sightline overlay quads"),
            size: (MAX_SPRITES * SPRITE_VERTEX_BYTES) as u64,
            usage: wgpu::BufferUsages::VERTEX | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("sightline overlay sampler"),
            address_mode_u: wgpu::AddressMode::ClampToEdge,
            address_mode_v: wgpu::AddressMode::ClampToEdge,
            address_mode_w: wgpu::AddressMode::ClampToEdge,
            mag_filter: wgpu::FilterMode::Nearest,
            min_filter: wgpu::FilterMode::Nearest,
            mipmap_filter: wgpu::MipmapFilterMode::Nearest,
            lod_min_clamp: 0.0,
            lod_max_clamp: 1.0,
            compare: None,
            anisotropy_clamp: 1,
            border_color: None,
        });
        let plane_sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("sightline plane sampler"),
            address_mode_u: wgpu::AddressMode::ClampToEdge,
            address_mode_v: wgpu::AddressMode::ClampToEdge,
            address_mode_w: wgpu::AddressMode::ClampToEdge,
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            mipmap_filter: wgpu::MipmapFilterMode::Nearest,
            lod_min_clamp: 0.0,
            lod_max_clamp: 1.0,
            compare: None,
            anisotropy_clamp: 1,
            border_color: None,
        });
        let description = format!(
            "{} ({:?}, {:?}), {:?}",
            info.name, info.backend, info.device_type, mode
        );
        let mut p = GpuPresenter {
            pixels,
            picture_float,
            picture_uint,
            sprite_pipeline,
            float_layout,
            uint_layout,
            sprite_layout,
            params,
            sampler,
            plane_sampler,
            norm16,
            vertices,
            planes: None,
            shown: None,
            sprites: Vec::new(),
            window: (0, 0),
            srgb_surface: surface_format.is_srgb(),
            description,
        };
        p.resize_surface(size.width, size.height)?;
        Ok(p)
    }

    /// The adapter behind this presenter.
    pub fn adapter_info(&self) -> wgpu::AdapterInfo {
        self.pixels.adapter().get_info()
    }

    /// Resizes the surface to the window's new inner size (ignored when empty).
    pub fn resize_surface(&mut self, width: u32, height: u32) -> Result<(), pixels::Error> {
        if width == 0 || height == 0 {
            return Ok(());
        }
        self.pixels
            .resize_surface(width, height)
            .map_err(pixels::Error::InvalidTexture)?;
        self.window = (width, height);
        Ok(())
    }

    /// The picture size shown (the stream's), if a frame came.
    pub fn picture_size(&self) -> Option<(u32, u32)> {
        self.planes.as_ref().map(|p| p.size)
    }

    /// Shows `frame` (or, with `None`, the last picture again) with `overlays` on top.
    pub fn present(
        &mut self,
        frame: Option<DecodedFrame>,
        overlays: &[Sprite],
    ) -> Result<GpuPresentStats, pixels::Error> {
        let started = Instant::now();
        let mut stats = GpuPresentStats::default();
        if let Some(f) = frame {
            self.upload(&f, &mut stats);
            self.shown = Some(f);
        }
        self.write_params();
        let count = self.prepare_sprites(overlays);
        stats.convert_us = micros(started.elapsed());
        let rendered = Instant::now();
        let planes = self.planes.as_ref();
        let picture = match planes.map(|p| p.sampling) {
            Some(Sampling::Uint) => &self.picture_uint,
            _ => &self.picture_float,
        };
        let sprite = &self.sprite_pipeline;
        let (vertices, slots) = (&self.vertices, &self.sprites);
        self.pixels.render_with(|encoder, target, _ctx| {
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("sightline present"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: target,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                        store: wgpu::StoreOp::Store,
                    },
                    depth_slice: None,
                })],
                depth_stencil_attachment: None,
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            if let Some(p) = planes {
                pass.set_pipeline(picture);
                pass.set_bind_group(0, &p.bind_group, &[]);
                pass.draw(0..3, 0..1);
            }
            if count > 0 {
                pass.set_pipeline(sprite);
                pass.set_vertex_buffer(0, vertices.slice(..));
                for (i, slot) in slots.iter().take(count).enumerate() {
                    pass.set_bind_group(0, &slot.bind_group, &[]);
                    let first = (i * 6) as u32;
                    pass.draw(first..first + 6, 0..1);
                }
            }
            Ok(())
        })?;
        // Wait for the GPU: the present time is then the real cost, and frames never queue.
        let _ = self
            .pixels
            .device()
            .poll(wgpu::PollType::wait_indefinitely());
        stats.present_us = micros(rendered.elapsed());
        Ok(stats)
    }

    /// Copies the frame's planes (or just what differs from the shown picture) into the
    /// textures.
    fn upload(&mut self, f: &DecodedFrame, stats: &mut GpuPresentStats) {
        let size = (f.width, f.height);
        let same = self
            .planes
            .as_ref()
            .is_some_and(|p| p.size == size && p.format == f.format);
        if !same {
            self.planes = Some(self.create_planes(f.format, size));
            debug!(width = f.width, height = f.height, format = ?f.format, "GPU planes created");
        }
        let rects = self
            .shown
            .as_ref()
            .filter(|_| same)
            .and_then(|old| changed_rects(old, f, f.damage.as_deref(), 16))
            // Most of the picture changed: one upload per plane is cheaper than many.
            .filter(|list| {
                let area: u64 = list.iter().map(|r| r.area()).sum();
                area * 4 <= 3 * u64::from(f.width) * u64::from(f.height)
            })
            .map(|list| {
                list.iter()
                    .filter_map(|r| r.expand(2, 0, f.width, f.height))
                    .collect::<Vec<_>>()
            });
        let planes = self.planes.as_ref().expect("created above");
        let queue = self.pixels.queue();
        let b = f.format.bytes_per_sample() as u32;
        let sub = u32::from(f.format.is_420());
        let (cw, ch) = f.format.chroma_size(f.width, f.height);
        let write =
            |tex: &wgpu::Texture, data: &[u8], stride: usize, x: u32, y: u32, w: u32, h: u32| {
                let offset = y as usize * stride + (x * b) as usize;
                queue.write_texture(
                    wgpu::TexelCopyTextureInfo {
                        texture: tex,
                        mip_level: 0,
                        origin: wgpu::Origin3d { x, y, z: 0 },
                        aspect: wgpu::TextureAspect::All,
                    },
                    &data[offset..],
                    wgpu::TexelCopyBufferLayout {
                        offset: 0,
                        bytes_per_row: Some(stride as u32),
                        rows_per_image: None,
                    },
                    wgpu::Extent3d {
                        width: w,
                        height: h,
                        depth_or_array_layers: 1,
                    },
                );
            };
        let [ty, tu, tv] = &planes.textures;
        match &rects {
            None => {
                write(ty, &f.y, f.y_stride, 0, 0, f.width, f.height);
                write(tu, &f.u, f.uv_stride, 0, 0, cw, ch);
                write(tv, &f.v, f.uv_stride, 0, 0, cw, ch);
                stats.full = true;
                stats.uploaded_px = f.width.saturating_mul(f.height);
            }
            Some(list) => {
                for r in list {
                    let (x, y, w, h) = (
                        u32::from(r.x),
                        u32::from(r.y),
                        u32::from(r.width),
                        u32::from(r.height),
                    );
                    write(ty, &f.y, f.y_stride, x, y, w, h);
                    let (cx, cy) = (x >> sub, y >> sub);
                    let (cx1, cy1) = (
                        (x + w).div_ceil(1 << sub).min(cw),
                        (y + h).div_ceil(1 << sub).min(ch),
                    );
                    write(tu, &f.u, f.uv_stride, cx, cy, cx1 - cx, cy1 - cy);
                    write(tv, &f.v, f.uv_stride, cx, cy, cx1 - cx, cy1 - cy);
                    stats.uploaded_px = stats.uploaded_px.saturating_add(w * h);
                }
                stats.rects = list.len() as u16;
            }
        }
    }

    fn create_planes(&self, format: PictureFormat, (w, h): (u32, u32)) -> Planes {
        let device = self.pixels.device();
        let (texel, sampling, scale) = match (format.bit_depth() > 8, self.norm16) {
            (false, _) => (TextureFormat::R8Unorm, Sampling::Float, 255.0),
            (true, true) => (TextureFormat::R16Unorm, Sampling::Float, 65535.0),
            (true, false) => (TextureFormat::R16Uint, Sampling::Uint, 1.0),
        };
        let (cw, ch) = format.chroma_size(w, h);
        let texture = |label, width, height| {
            device.create_texture(&wgpu::TextureDescriptor {
                label: Some(label),
                size: wgpu::Extent3d {
                    width,
                    height,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: texel,
                usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            })
        };
        let textures = [
            texture("sightline Y", w, h),
            texture("sightline Cb", cw, ch),
            texture("sightline Cr", cw, ch),
        ];
        let views: Vec<wgpu::TextureView> = textures
            .iter()
            .map(|t| t.create_view(&wgpu::TextureViewDescriptor::default()))
            .collect();
        let mut entries = vec![
            wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::TextureView(&views[0]),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: wgpu::BindingResource::TextureView(&views[1]),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: wgpu::BindingResource::TextureView(&views[2]),
            },
            wgpu::BindGroupEntry {
                binding: 3,
                resource: self.params.as_entire_binding(),
            },
        ];
        let layout = match sampling {
            Sampling::Float => {
                entries.push(wgpu::BindGroupEntry {
                    binding: 4,
                    resource: wgpu::BindingResource::Sampler(&self.plane_sampler),
                });
                &self.float_layout
            }
            Sampling::Uint => &self.uint_layout,
        };
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("sightline planes"),
            layout,
            entries: &entries,
        });
        debug!(?texel, ?sampling, "plane textures");
        Planes {
            format,
            sampling,
            scale,
            size: (w, h),
            textures,
            bind_group,
        }
    }

    /// Where the picture goes: origin and scale in window pixels.
    fn placement(&self) -> ((f32, f32), f32) {
        let (ww, wh) = (self.window.0.max(1) as f32, self.window.1.max(1) as f32);
        let (pw, ph) = self.picture_size().unwrap_or((1, 1));
        let (pw, ph) = (pw.max(1) as f32, ph.max(1) as f32);
        let s = (ww / pw).min(wh / ph);
        (((ww - pw * s) / 2.0, (wh - ph * s) / 2.0), s)
    }

    fn write_params(&self) {
        let Some((planes, shown)) = self.planes.as_ref().zip(self.shown.as_ref()) else {
            return;
        };
        let bits = planes.format.bit_depth();
        let c = YuvCoefficients::new(shown.matrix, shown.range, bits);
        let ((ox, oy), s) = self.placement();
        let identity = shown.matrix == ColourMatrix::Identity;
        let kg = if identity { 1.0 } else { c.kg() };
        let values: [f32; PARAMS_BYTES / 4] = [
            self.window.0 as f32,
            self.window.1 as f32,
            planes.size.0 as f32,
            planes.size.1 as f32,
            ox,
            oy,
            s,
            if planes.format.is_420() { 2.0 } else { 1.0 },
            c.y_black,
            1.0 / c.y_range,
            c.c_zero,
            1.0 / c.c_range,
            2.0 * (1.0 - c.kr),
            -2.0 * (1.0 - c.kb) * c.kb / kg,
            -2.0 * (1.0 - c.kr) * c.kr / kg,
            2.0 * (1.0 - c.kb),
            // The surface holds 8 bits per channel (see `choose_plain_format`).
            if bits > 8 { 1.0 / 255.0 } else { 0.0 },
            if identity { 1.0 } else { 0.0 },
            if self.srgb_surface { 1.0 } else { 0.0 },
            0.0,
            planes.scale,
            0.0,
            0.0,
            0.0,
        ];
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
        self.pixels.queue().write_buffer(&self.params, 0, &bytes);
    }

    /// Uploads changed overlay images and their quads; returns how many to draw.
    fn prepare_sprites(&mut self, overlays: &[Sprite]) -> usize {
        let ((ox, oy), s) = self.placement();
        let (ww, wh) = (self.window.0.max(1) as f32, self.window.1.max(1) as f32);
        let mut quads = Vec::with_capacity(MAX_SPRITES * SPRITE_VERTEX_BYTES);
        let mut count = 0;
        for (i, sp) in overlays.iter().take(MAX_SPRITES).enumerate() {
            if sp.width == 0
                || sp.height == 0
                || sp.rgba.len() < (sp.width * sp.height * 4) as usize
            {
                continue;
            }
            let key = sp.content_key();
            let fresh = self
                .sprites
                .get(count)
                .is_some_and(|slot| slot.key == key && slot.size == (sp.width, sp.height));
            if !fresh {
                let slot = self.sprite_slot(sp, key, i);
                if count < self.sprites.len() {
                    self.sprites[count] = slot;
                } else {
                    self.sprites.push(slot);
                }
            }
            let (x, y, w, h) = match sp.anchor {
                Anchor::Stream => (
                    ox + sp.x as f32 * s,
                    oy + sp.y as f32 * s,
                    sp.width as f32 * s,
                    sp.height as f32 * s,
                ),
                Anchor::PictureCorner => (
                    ox.floor() + sp.x as f32,
                    oy.floor() + sp.y as f32,
                    sp.width as f32,
                    sp.height as f32,
                ),
            };
            let ndc = |px: f32, py: f32| [px / ww * 2.0 - 1.0, 1.0 - py / wh * 2.0];
            let corners = [
                (ndc(x, y), [0.0, 0.0]),
                (ndc(x + w, y), [1.0, 0.0]),
                (ndc(x, y + h), [0.0, 1.0]),
                (ndc(x + w, y), [1.0, 0.0]),
                (ndc(x + w, y + h), [1.0, 1.0]),
                (ndc(x, y + h), [0.0, 1.0]),
            ];
            for (p, uv) in corners {
                for v in [p[0], p[1], uv[0], uv[1]] {
                    quads.extend_from_slice(&f32::to_ne_bytes(v));
                }
            }
            count += 1;
        }
        if count > 0 {
            self.pixels.queue().write_buffer(&self.vertices, 0, &quads);
        }
        count
    }

    fn sprite_slot(&self, sp: &Sprite, key: u64, index: usize) -> SpriteSlot {
        let device = self.pixels.device();
        let size = wgpu::Extent3d {
            width: sp.width,
            height: sp.height,
            depth_or_array_layers: 1,
        };
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("sightline overlay"),
            size,
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: TextureFormat::Rgba8Unorm,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        self.pixels.queue().write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: &texture,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            &sp.rgba,
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(sp.width * 4),
                rows_per_image: None,
            },
            size,
        );
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("sightline overlay"),
            layout: &self.sprite_layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::TextureView(&view),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::Sampler(&self.sampler),
                },
            ],
        });
        debug!(
            index,
            width = sp.width,
            height = sp.height,
            "overlay uploaded"
        );
        SpriteSlot {
            key,
            size: (sp.width, sp.height),
            _texture: texture,
            bind_group,
        }
    }
}

/// Bytes of the shader's `Params` (six `vec4<f32>`).
const PARAMS_BYTES: usize = 6 * 16;

/// The picture shader for `sampling`: its sampling prelude, then the conversion.
fn shader(sampling: Sampling) -> String {
    let prelude = match sampling {
        Sampling::Float => include_str!("yuv_float.wgsl"),
        Sampling::Uint => include_str!("yuv_uint.wgsl"),
    };
    format!("{prelude}\n{}", include_str!("yuv.wgsl"))
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_mode_prefers_mailbox_then_immediate_then_fifo() {
        use PresentMode::*;
        assert_eq!(choose_present_mode(&[Fifo, Immediate, Mailbox]), Mailbox);
        assert_eq!(choose_present_mode(&[Fifo, Immediate]), Immediate);
        assert_eq!(choose_present_mode(&[Fifo, FifoRelaxed]), Fifo);
        assert_eq!(choose_present_mode(&[]), Fifo);
    }

    #[test]
    fn plain_surface_format_when_offered() {
        use TextureFormat::*;
        assert_eq!(
            choose_plain_format(&[Bgra8UnormSrgb, Bgra8Unorm]),
            Some(Bgra8Unorm)
        );
        assert_eq!(
            choose_plain_format(&[Rgba8UnormSrgb, Rgba8Unorm]),
            Some(Rgba8Unorm)
        );
        assert_eq!(choose_plain_format(&[Bgra8UnormSrgb, Rgb10a2Unorm]), None);
    }

    #[test]
    fn the_shader_compiles() {
        // naga (wgpu's shader compiler) parses and validates both shaders without a device.
        for (name, src) in [
            ("yuv (normalised)", shader(Sampling::Float)),
            ("yuv (integer)", shader(Sampling::Uint)),
            ("sprite.wgsl", include_str!("sprite.wgsl").to_string()),
        ] {
            let module = wgpu::naga::front::wgsl::parse_str(&src)
                .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&src)));
            wgpu::naga::valid::Validator::new(
                wgpu::naga::valid::ValidationFlags::all(),
                wgpu::naga::valid::Capabilities::empty(),
            )
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        }
    }
}
