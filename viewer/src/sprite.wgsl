// Overlays of the GPU present path (cursor, stats panel): textured quads in premultiplied
// RGBA, blended over the picture.


struct SpriteOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) uv: vec2<f32>,
}

@group(0) @binding(0) var sprite_tex: texture_2d<f32>;
@group(0) @binding(1) var sprite_sampler: sampler;

@vertex
fn vs_sprite(@location(0) pos: vec2<f32>, @location(1) uv: vec2<f32>) -> SpriteOut {
    var o: SpriteOut;
    o.pos = vec4<f32>(pos, 0.0, 1.0);
    o.uv = uv;
    return o;
}

@fragment
fn fs_sprite(i: SpriteOut) -> @location(0) vec4<f32> {
    return textureSample(sprite_tex, sprite_sampler, i.uv);
}
