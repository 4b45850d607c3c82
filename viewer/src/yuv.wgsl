// The GPU present path's conversion (after a sampling prelude, `yuv_float.wgsl` or
// `yuv_uint.wgsl`, that defines the plane bindings and `sample_y/u/v`): Y, Cb and Cr codes are
// sampled bilinearly at the window pixel's place in the picture, converted to RGB with the
// stream's matrix and range, dithered when the samples are deeper than the surface, and black
// outside the picture (aspect kept, centred).

struct Params {
    // window width, window height, picture width, picture height (pixels)
    sizes: vec4<f32>,
    // picture origin x, y in the window; window pixels per picture pixel; chroma divisor (1 or 2)
    place: vec4<f32>,
    // luma black code, 1 / luma range, chroma zero code, 1 / chroma range
    levels: vec4<f32>,
    // R += rv·Cr; G += gu·Cb + gv·Cr; B += bu·Cb  (normalised colour differences)
    matrix: vec4<f32>,
    // dither amplitude (one surface code, or 0), identity matrix (GBR), sRGB surface, unused
    flags: vec4<f32>,
    // code per unit of a normalised texture (255, 65535; 1 for integer textures), unused ×3
    scale: vec4<f32>,
}

@group(0) @binding(3) var<uniform> p: Params;

@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
    // One triangle covering the whole target.
    let x = select(-1.0, 3.0, i == 1u);
    let y = select(-1.0, 3.0, i == 2u);
    return vec4<f32>(x, y, 0.0, 1.0);
}

// 8×8 Bayer threshold, 0..63 (the same matrix as the CPU path).
fn bayer8(x: u32, y: u32) -> u32 {
    let a = (x ^ y) & 7u;
    let b = y & 7u;
    return ((a & 1u) << 5u) | ((b & 1u) << 4u) | ((a & 2u) << 2u) | ((b & 2u) << 1u)
        | ((a & 4u) >> 1u) | ((b & 4u) >> 2u);
}

fn srgb_to_linear(c: vec3<f32>) -> vec3<f32> {
    let lo = c / 12.92;
    let hi = pow((c + vec3<f32>(0.055)) / 1.055, vec3<f32>(2.4));
    return select(hi, lo, c <= vec3<f32>(0.04045));
}

@fragment
fn fs_main(@builtin(position) frag: vec4<f32>) -> @location(0) vec4<f32> {
    // Continuous picture coordinates of this window pixel's centre.
    let c = (frag.xy - p.place.xy) / p.place.z;
    if (c.x < 0.0 || c.y < 0.0 || c.x >= p.sizes.z || c.y >= p.sizes.w) {
        return vec4<f32>(0.0, 0.0, 0.0, 1.0);
    }
    // Chroma sits at the centre of its block: continuous chroma coordinate = luma / divisor.
    let cc = c / p.place.w;
    let y = sample_y(c) * p.scale.x;
    let u = sample_u(cc) * p.scale.x;
    let v = sample_v(cc) * p.scale.x;
    let yn = (y - p.levels.x) * p.levels.y;
    var rgb: vec3<f32>;
    if (p.flags.y > 0.5) {
        // Identity (GBR): Y, Cb, Cr carry G, B, R at luma scale.
        rgb = vec3<f32>((v - p.levels.x) * p.levels.y, yn, (u - p.levels.x) * p.levels.y);
    } else {
        let cb = (u - p.levels.z) * p.levels.w;
        let cr = (v - p.levels.z) * p.levels.w;
        rgb = vec3<f32>(yn + p.matrix.x * cr, yn + p.matrix.y * cb + p.matrix.z * cr, yn + p.matrix.w * cb);
    }
    // Ordered dither: the surface rounds to the nearest code, so a threshold t in (0, 1) is
    // added as t − ½ codes.
    let ix = vec2<u32>(frag.xy);
    let t = (f32(bayer8(ix.x, ix.y)) + 0.5) / 64.0 - 0.5;
    rgb = clamp(rgb + vec3<f32>(t * p.flags.x), vec3<f32>(0.0), vec3<f32>(1.0));
    if (p.flags.z > 0.5) {
        // An sRGB surface encodes what it is given: hand it linear light so the codes survive.
        rgb = srgb_to_linear(rgb);
    }
    return vec4<f32>(rgb, 1.0);
}
