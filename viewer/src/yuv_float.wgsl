// Sampling prelude of the GPU path for normalised planes (R8Unorm for 8-bit samples, R16Unorm
// for 10-bit ones where the device has 16-bit normalised textures): the texture unit filters.

@group(0) @binding(0) var y_plane: texture_2d<f32>;
@group(0) @binding(1) var u_plane: texture_2d<f32>;
@group(0) @binding(2) var v_plane: texture_2d<f32>;
@group(0) @binding(4) var planes: sampler;

// Bilinear sample at continuous texel coordinates (texel centres at i + 0.5), edges clamped.
fn sample_at(t: texture_2d<f32>, pos: vec2<f32>) -> f32 {
    return textureSampleLevel(t, planes, pos / vec2<f32>(textureDimensions(t)), 0.0).r;
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
