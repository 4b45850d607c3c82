// Sampling prelude of the GPU path for integer planes (R16Uint: 10-bit samples on devices
// without 16-bit normalised textures): the shader filters with four loads per sample.

@group(0) @binding(0) var y_plane: texture_2d<u32>;
@group(0) @binding(1) var u_plane: texture_2d<u32>;
@group(0) @binding(2) var v_plane: texture_2d<u32>;

fn load(t: texture_2d<u32>, xy: vec2<i32>, size: vec2<i32>) -> f32 {
    let c = clamp(xy, vec2<i32>(0, 0), size - vec2<i32>(1, 1));
    return f32(textureLoad(t, c, 0).r);
}

// Bilinear sample at continuous texel coordinates (texel centres at i + 0.5), edges clamped.
fn sample_at(t: texture_2d<u32>, pos: vec2<f32>) -> f32 {
    let size = vec2<i32>(textureDimensions(t));
    let q = pos - vec2<f32>(0.5, 0.5);
    let fl = floor(q);
    let i = vec2<i32>(fl);
    let f = q - fl;
    let a = load(t, i, size);
    let b = load(t, i + vec2<i32>(1, 0), size);
    let c = load(t, i + vec2<i32>(0, 1), size);
    let d = load(t, i + vec2<i32>(1, 1), size);
    return mix(mix(a, b, f.x), mix(c, d, f.x), f.y);
}

fn sample_y(pos: vec2<f32>) -> f32 {
    return sample_at(y_plane, pos);
}

fn sample_u(pos: vec2<f32>) -> f32 {
    return sample_at(u_plane, pos);
}

fn sample_v(pos: vec2<f32>) -> f32 {
    return sample_at(v_plane, pos);
}
