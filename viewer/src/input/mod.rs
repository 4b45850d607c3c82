//! Input capture on the viewer: keyboard, mouse, pen and jog/shuttle controllers.

pub mod devices;
pub mod jog;
pub mod keyboard;
pub mod pen_x11;
