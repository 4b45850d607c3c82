//! Cursor shape (cached by id) and position.

use crate::coding::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Largest cursor side in pixels.
pub const MAX_CURSOR_SIDE: u16 = 256;

/// A cursor image. The viewer caches shapes by id and draws the cursor locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorShape {
    /// Id the host will refer to in positions.
    pub id: u32,
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Hotspot x.
    pub hot_x: u16,
    /// Hotspot y.
    pub hot_y: u16,
    /// Premultiplied RGBA, `width * height * 4` bytes.
    pub rgba: Vec<u8>,
}

impl Encode for CursorShape {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.id);
        out.put_u16(self.width);
        out.put_u16(self.height);
        out.put_u16(self.hot_x);
        out.put_u16(self.hot_y);
        out.put_bytes_u32(&self.rgba);
    }
}

impl Decode for CursorShape {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let id = r.u32("cursor id")?;
        let width = r.u16("cursor width")?;
        let height = r.u16("cursor height")?;
        let hot_x = r.u16("cursor hotspot x")?;
        let hot_y = r.u16("cursor hotspot y")?;
        if width > MAX_CURSOR_SIDE || height > MAX_CURSOR_SIDE {
            return Err(DecodeError::Invalid {
                what: "cursor size",
                detail: "side over 256 pixels",
            });
        }
        if (width > 0 && hot_x >= width) || (height > 0 && hot_y >= height) {
            return Err(DecodeError::Invalid {
                what: "cursor hotspot",
                detail: "outside the image",
            });
        }
        let expect = width as usize * height as usize * 4;
        let rgba = r.bytes_u32("cursor pixels", expect)?;
        if rgba.len() != expect {
            return Err(DecodeError::Invalid {
                what: "cursor pixels",
                detail: "length is not width * height * 4",
            });
        }
        Ok(CursorShape {
            id,
            width,
            height,
            hot_x,
            hot_y,
            rgba: rgba.to_vec(),
        })
    }
}

/// Where the cursor is, in stream pixels, and which shape it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorPosition {
    /// Shape id.
    pub id: u32,
    /// X of the hotspot.
    pub x: i32,
    /// Y of the hotspot.
    pub y: i32,
    /// Whether the cursor is shown.
    pub visible: bool,
}

impl Encode for CursorPosition {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.id);
        out.put_i32(self.x);
        out.put_i32(self.y);
        out.put_bool(self.visible);
    }
}

impl Decode for CursorPosition {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(CursorPosition {
            id: r.u32("cursor id")?,
            x: r.i32("cursor x")?,
            y: r.i32("cursor y")?,
            visible: r.bool("cursor visible")?,
        })
    }
}
