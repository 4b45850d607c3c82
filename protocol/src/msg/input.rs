//! Input events, viewer → host.
//!
//! Keys carry the physical key (USB HID usage, keyboard page 0x07, so layouts do not matter) and
//! the logical key as an X11-compatible keysym (Unicode characters as `0x0100_0000 + code point`),
//! which the host can inject even when its keymap lacks it. Pointer positions are in stream
//! pixels; pen positions are sub-pixel.

use super::{flag_set, wire_enum};
use crate::coding::{Decode, DecodeError, Encode, Reader, WriteExt};

flag_set! {
    /// Keyboard modifiers held when the event happened.
    Modifiers(u16) { SHIFT = 0, CONTROL = 1, ALT = 2, SUPER = 3, CAPS_LOCK = 4, NUM_LOCK = 5, ALT_GR = 6 }
}

flag_set! {
    /// Pen barrel buttons held.
    PenButtons(u8) { BARREL1 = 0, BARREL2 = 1 }
}

/// A key press or release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEvent {
    /// Physical key: USB HID usage (keyboard page); 0 when the platform gave none.
    pub code: u16,
    /// Logical key as a keysym; 0 when unknown.
    pub keysym: u32,
    /// Modifiers held.
    pub modifiers: Modifiers,
    /// Pressed (true) or released.
    pub pressed: bool,
}

/// A mouse button, numbered as X11 does: 1 left, 2 middle, 3 right, 8 back, 9 forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MouseButton(pub u8);

impl MouseButton {
    /// Primary.
    pub const LEFT: MouseButton = MouseButton(1);
    /// Wheel click.
    pub const MIDDLE: MouseButton = MouseButton(2);
    /// Secondary.
    pub const RIGHT: MouseButton = MouseButton(3);
    /// Back (side button).
    pub const BACK: MouseButton = MouseButton(8);
    /// Forward (side button).
    pub const FORWARD: MouseButton = MouseButton(9);
}

wire_enum! {
    /// Which end of the pen.
    PenTool { Pen = 0, Eraser = 1 }
}

wire_enum! {
    /// The pen's relation to the surface.
    PenContact {
        /// In range, not touching.
        Hover = 0,
        /// Touching.
        Contact = 1,
        /// Left the proximity range.
        Leave = 2,
    }
}

/// Largest tilt, hundredths of a degree.
pub const MAX_TILT: i16 = 9000;
/// Rotation is in hundredths of a degree, below this.
pub const ROTATION_RANGE: u16 = 36000;

/// A pen sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PenEvent {
    /// Tip or eraser.
    pub tool: PenTool,
    /// X in stream pixels (sub-pixel).
    pub x: f32,
    /// Y in stream pixels (sub-pixel).
    pub y: f32,
    /// Pressure 0..=65535 (16 bits; tablets give 13 bits or more).
    pub pressure: u16,
    /// Tilt towards +x, hundredths of a degree, −9000..=9000.
    pub tilt_x: i16,
    /// Tilt towards +y, hundredths of a degree, −9000..=9000.
    pub tilt_y: i16,
    /// Barrel rotation, hundredths of a degree, 0..36000.
    pub rotation: u16,
    /// Barrel buttons.
    pub buttons: PenButtons,
    /// Hover, contact or leave.
    pub contact: PenContact,
}

/// Shuttle ring positions run from −7 to +7.
pub const SHUTTLE_MAX: i8 = 7;

/// One input event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InputEvent {
    /// Key press or release.
    Key(KeyEvent),
    /// Absolute pointer position in stream pixels.
    PointerMove {
        /// X.
        x: i32,
        /// Y.
        y: i32,
    },
    /// Relative motion (pointer-lock mode), in device units.
    PointerRelative {
        /// Δx.
        dx: i32,
        /// Δy.
        dy: i32,
    },
    /// Mouse button.
    Button {
        /// Which.
        button: MouseButton,
        /// Pressed or released.
        pressed: bool,
    },
    /// High-resolution scroll in 1/120 of a notch, both axes (positive: right, down).
    Scroll {
        /// Horizontal.
        dx: i32,
        /// Vertical.
        dy: i32,
    },
    /// Pen sample.
    Pen(PenEvent),
    /// Jog wheel turned by `delta` detents (positive: clockwise).
    Jog {
        /// Detents.
        delta: i16,
    },
    /// Shuttle ring position, −7..=+7 (0: centre).
    Shuttle {
        /// Position.
        position: i8,
    },
    /// A button of a jog/shuttle (or other) controller.
    ControllerButton {
        /// Button index.
        index: u8,
        /// Pressed or released.
        pressed: bool,
    },
    /// Release everything held (viewer lost focus).
    ReleaseAll,
    /// A latency probe (bench mode): the host shows `id` and its arrival time in the next
    /// captured frame (see [`crate::probe`]), so the viewer can time input → photon.
    Probe {
        /// Probe number, never 0.
        id: u32,
    },
}

impl InputEvent {
    /// Whether this event may be merged with a neighbour of the same kind. Presses, releases and
    /// pen contact changes never are; motion, scroll, jog and shuttle position are.
    pub fn is_coalescable(&self) -> bool {
        matches!(
            self,
            InputEvent::PointerMove { .. }
                | InputEvent::PointerRelative { .. }
                | InputEvent::Scroll { .. }
                | InputEvent::Jog { .. }
                | InputEvent::Shuttle { .. }
                | InputEvent::Pen(_)
        )
    }
}

/// An input event with its sequence number and the viewer's clock when it happened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputMessage {
    /// Strictly increasing per session; the host drops repeats.
    pub seq: u64,
    /// Viewer clock (µs) when the event happened.
    pub viewer_time_us: u64,
    /// The event.
    pub event: InputEvent,
}

impl Encode for InputMessage {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.seq);
        out.put_u64(self.viewer_time_us);
        match self.event {
            InputEvent::Key(k) => {
                out.put_u8(0);
                out.put_u16(k.code);
                out.put_u32(k.keysym);
                out.put_u16(k.modifiers.0);
                out.put_bool(k.pressed);
            }
            InputEvent::PointerMove { x, y } => {
                out.put_u8(1);
                out.put_i32(x);
                out.put_i32(y);
            }
            InputEvent::PointerRelative { dx, dy } => {
                out.put_u8(2);
                out.put_i32(dx);
                out.put_i32(dy);
            }
            InputEvent::Button { button, pressed } => {
                out.put_u8(3);
                out.put_u8(button.0);
                out.put_bool(pressed);
            }
            InputEvent::Scroll { dx, dy } => {
                out.put_u8(4);
                out.put_i32(dx);
                out.put_i32(dy);
            }
            InputEvent::Pen(p) => {
                out.put_u8(5);
                out.put_u8(p.tool.to_u8());
                out.put_f32(p.x);
                out.put_f32(p.y);
                out.put_u16(p.pressure);
                out.put_i16(p.tilt_x);
                out.put_i16(p.tilt_y);
                out.put_u16(p.rotation);
                out.put_u8(p.buttons.0);
                out.put_u8(p.contact.to_u8());
            }
            InputEvent::Jog { delta } => {
                out.put_u8(6);
                out.put_i16(delta);
            }
            InputEvent::Shuttle { position } => {
                out.put_u8(7);
                out.put_i8(position);
            }
            InputEvent::ControllerButton { index, pressed } => {
                out.put_u8(8);
                out.put_u8(index);
                out.put_bool(pressed);
            }
            InputEvent::ReleaseAll => out.put_u8(9),
            InputEvent::Probe { id } => {
                out.put_u8(10);
                out.put_u32(id);
            }
        }
    }
}

fn invalid(what: &'static str, detail: &'static str) -> DecodeError {
    DecodeError::Invalid { what, detail }
}

impl Decode for InputMessage {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let seq = r.u64("input seq")?;
        let viewer_time_us = r.u64("input time")?;
        let event = match r.u8("input tag")? {
            0 => {
                let code = r.u16("key code")?;
                let keysym = r.u32("keysym")?;
                let modifiers = Modifiers(r.u16("modifiers")?);
                let pressed = r.bool("key state")?;
                if code == 0 && keysym == 0 {
                    return Err(invalid("key", "neither a key code nor a keysym"));
                }
                InputEvent::Key(KeyEvent {
                    code,
                    keysym,
                    modifiers,
                    pressed,
                })
            }
            1 => InputEvent::PointerMove {
                x: r.i32("pointer x")?,
                y: r.i32("pointer y")?,
            },
            2 => InputEvent::PointerRelative {
                dx: r.i32("pointer dx")?,
                dy: r.i32("pointer dy")?,
            },
            3 => {
                let b = r.u8("button")?;
                if b == 0 {
                    return Err(invalid("button", "button 0 does not exist"));
                }
                InputEvent::Button {
                    button: MouseButton(b),
                    pressed: r.bool("button state")?,
                }
            }
            4 => InputEvent::Scroll {
                dx: r.i32("scroll dx")?,
                dy: r.i32("scroll dy")?,
            },
            5 => {
                let p = PenEvent {
                    tool: PenTool::from_u8(r.u8("pen tool")?)?,
                    x: r.f32("pen x")?,
                    y: r.f32("pen y")?,
                    pressure: r.u16("pen pressure")?,
                    tilt_x: r.i16("pen tilt x")?,
                    tilt_y: r.i16("pen tilt y")?,
                    rotation: r.u16("pen rotation")?,
                    buttons: PenButtons(r.u8("pen buttons")?),
                    contact: PenContact::from_u8(r.u8("pen contact")?)?,
                };
                if !(-MAX_TILT..=MAX_TILT).contains(&p.tilt_x)
                    || !(-MAX_TILT..=MAX_TILT).contains(&p.tilt_y)
                {
                    return Err(invalid("pen tilt", "outside ±90 degrees"));
                }
                if p.rotation >= ROTATION_RANGE {
                    return Err(invalid("pen rotation", "not below 360 degrees"));
                }
                InputEvent::Pen(p)
            }
            6 => InputEvent::Jog {
                delta: r.i16("jog delta")?,
            },
            7 => {
                let position = r.i8("shuttle position")?;
                if !(-SHUTTLE_MAX..=SHUTTLE_MAX).contains(&position) {
                    return Err(invalid("shuttle position", "outside -7..=7"));
                }
                InputEvent::Shuttle { position }
            }
            8 => InputEvent::ControllerButton {
                index: r.u8("controller button")?,
                pressed: r.bool("controller button state")?,
            },
            9 => InputEvent::ReleaseAll,
            10 => {
                let id = r.u32("probe id")?;
                if id == 0 {
                    return Err(invalid("probe", "id 0 means no probe"));
                }
                InputEvent::Probe { id }
            }
            t => {
                return Err(DecodeError::UnknownTag {
                    what: "input event",
                    tag: t as u32,
                })
            }
        };
        Ok(InputMessage {
            seq,
            viewer_time_us,
            event,
        })
    }
}
