//! Keyboard and mouse translation: winit events → protocol input.
//!
//! Keys go out with both identities: the physical key as a USB HID usage (keyboard page 0x07,
//! the same numbering on every platform, so the host can press the key at the same position
//! whatever its layout) and the logical key as an X11 keysym (so the host can type the character
//! the user meant when the layouts differ). Characters map to Latin-1 keysyms where they exist
//! and to `0x0100_0000 + code point` otherwise, as X11 defines.

use sightline_protocol::msg::{KeyEvent as WireKey, Modifiers, MouseButton};
use winit::event::{ElementState, MouseScrollDelta};
use winit::keyboard::{Key, KeyCode, KeyLocation, ModifiersState, NamedKey, PhysicalKey};

/// USB HID usage (keyboard page) of a winit key code.
pub fn hid_usage(code: KeyCode) -> Option<u16> {
    use KeyCode::*;
    Some(match code {
        KeyA => 0x04,
        KeyB => 0x05,
        KeyC => 0x06,
        KeyD => 0x07,
        KeyE => 0x08,
        KeyF => 0x09,
        KeyG => 0x0a,
        KeyH => 0x0b,
        KeyI => 0x0c,
        KeyJ => 0x0d,
        KeyK => 0x0e,
        KeyL => 0x0f,
        KeyM => 0x10,
        KeyN => 0x11,
        KeyO => 0x12,
        KeyP => 0x13,
        KeyQ => 0x14,
        KeyR => 0x15,
        KeyS => 0x16,
        KeyT => 0x17,
        KeyU => 0x18,
        KeyV => 0x19,
        KeyW => 0x1a,
        KeyX => 0x1b,
        KeyY => 0x1c,
        KeyZ => 0x1d,
        Digit1 => 0x1e,
        Digit2 => 0x1f,
        Digit3 => 0x20,
        Digit4 => 0x21,
        Digit5 => 0x22,
        Digit6 => 0x23,
        Digit7 => 0x24,
        Digit8 => 0x25,
        Digit9 => 0x26,
        Digit0 => 0x27,
        Enter => 0x28,
        Escape => 0x29,
        Backspace => 0x2a,
        Tab => 0x2b,
        Space => 0x2c,
        Minus => 0x2d,
        Equal => 0x2e,
        BracketLeft => 0x2f,
        BracketRight => 0x30,
        Backslash => 0x31,
        Semicolon => 0x33,
        Quote => 0x34,
        Backquote => 0x35,
        Comma => 0x36,
        Period => 0x37,
        Slash => 0x38,
        CapsLock => 0x39,
        F1 => 0x3a,
        F2 => 0x3b,
        F3 => 0x3c,
        F4 => 0x3d,
        F5 => 0x3e,
        F6 => 0x3f,
        F7 => 0x40,
        F8 => 0x41,
        F9 => 0x42,
        F10 => 0x43,
        F11 => 0x44,
        F12 => 0x45,
        PrintScreen => 0x46,
        ScrollLock => 0x47,
        Pause => 0x48,
        Insert => 0x49,
        Home => 0x4a,
        PageUp => 0x4b,
        Delete => 0x4c,
        End => 0x4d,
        PageDown => 0x4e,
        ArrowRight => 0x4f,
        ArrowLeft => 0x50,
        ArrowDown => 0x51,
        ArrowUp => 0x52,
        NumLock => 0x53,
        NumpadDivide => 0x54,
        NumpadMultiply => 0x55,
        NumpadSubtract => 0x56,
        NumpadAdd => 0x57,
        NumpadEnter => 0x58,
        Numpad1 => 0x59,
        Numpad2 => 0x5a,
        Numpad3 => 0x5b,
        Numpad4 => 0x5c,
        Numpad5 => 0x5d,
        Numpad6 => 0x5e,
        Numpad7 => 0x5f,
        Numpad8 => 0x60,
        Numpad9 => 0x61,
        Numpad0 => 0x62,
        NumpadDecimal => 0x63,
        IntlBackslash => 0x64,
        ContextMenu => 0x65,
        Power => 0x66,
        NumpadEqual => 0x67,
        F13 => 0x68,
        F14 => 0x69,
        F15 => 0x6a,
        F16 => 0x6b,
        F17 => 0x6c,
        F18 => 0x6d,
        F19 => 0x6e,
        F20 => 0x6f,
        F21 => 0x70,
        F22 => 0x71,
        F23 => 0x72,
        F24 => 0x73,
        AudioVolumeMute => 0x7f,
        AudioVolumeUp => 0x80,
        AudioVolumeDown => 0x81,
        NumpadComma => 0x85,
        IntlRo => 0x87,
        KanaMode => 0x88,
        IntlYen => 0x89,
        Convert => 0x8a,
        NonConvert => 0x8b,
        Lang1 => 0x90,
        Lang2 => 0x91,
        ControlLeft => 0xe0,
        ShiftLeft => 0xe1,
        AltLeft => 0xe2,
        SuperLeft => 0xe3,
        ControlRight => 0xe4,
        ShiftRight => 0xe5,
        AltRight => 0xe6,
        SuperRight => 0xe7,
        _ => return None,
    })
}

/// The X11 keysym of a character.
pub fn char_keysym(c: char) -> u32 {
    let cp = c as u32;
    match cp {
        0x20..=0x7e | 0xa0..=0xff => cp,
        _ => 0x0100_0000 + cp,
    }
}

/// The X11 keysym of a winit logical key (0 when it has none).
pub fn keysym(key: &Key, location: KeyLocation) -> u32 {
    let left_right = |l: u32, r: u32| if location == KeyLocation::Right { r } else { l };
    let numpad = location == KeyLocation::Numpad;
    match key {
        Key::Character(s) => {
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => {
                    if numpad {
                        match c {
                            '0'..='9' => 0xffb0 + (c as u32 - '0' as u32),
                            '*' => 0xffaa,
                            '+' => 0xffab,
                            '-' => 0xffad,
                            '.' => 0xffae,
                            '/' => 0xffaf,
                            ',' => 0xffac,
                            '=' => 0xffbd,
                            _ => char_keysym(c),
                        }
                    } else {
                        char_keysym(c)
                    }
                }
                _ => 0,
            }
        }
        Key::Named(n) => {
            use NamedKey::*;
            match n {
                Space => 0x20,
                Backspace => 0xff08,
                Tab => 0xff09,
                Enter if numpad => 0xff8d,
                Enter => 0xff0d,
                Pause => 0xff13,
                ScrollLock => 0xff14,
                Escape => 0xff1b,
                Delete => 0xffff,
                Home => 0xff50,
                ArrowLeft => 0xff51,
                ArrowUp => 0xff52,
                ArrowRight => 0xff53,
                ArrowDown => 0xff54,
                PageUp => 0xff55,
                PageDown => 0xff56,
                End => 0xff57,
                PrintScreen => 0xff61,
                Insert => 0xff63,
                ContextMenu => 0xff67,
                NumLock => 0xff7f,
                Shift => left_right(0xffe1, 0xffe2),
                Control => left_right(0xffe3, 0xffe4),
                CapsLock => 0xffe5,
                Alt => left_right(0xffe9, 0xffea),
                AltGraph => 0xfe03,
                Super | Meta => left_right(0xffeb, 0xffec),
                F1 => 0xffbe,
                F2 => 0xffbf,
                F3 => 0xffc0,
                F4 => 0xffc1,
                F5 => 0xffc2,
                F6 => 0xffc3,
                F7 => 0xffc4,
                F8 => 0xffc5,
                F9 => 0xffc6,
                F10 => 0xffc7,
                F11 => 0xffc8,
                F12 => 0xffc9,
                F13 => 0xffca,
                F14 => 0xffcb,
                F15 => 0xffcc,
                F16 => 0xffcd,
                F17 => 0xffce,
                F18 => 0xffcf,
                F19 => 0xffd0,
                F20 => 0xffd1,
                F21 => 0xffd2,
                F22 => 0xffd3,
                F23 => 0xffd4,
                F24 => 0xffd5,
                AudioVolumeMute => 0x1008ff12,
                AudioVolumeDown => 0x1008ff11,
                AudioVolumeUp => 0x1008ff13,
                MediaPlayPause => 0x1008ff14,
                MediaStop => 0x1008ff15,
                MediaTrackPrevious => 0x1008ff16,
                MediaTrackNext => 0x1008ff17,
                _ => 0,
            }
        }
        _ => 0,
    }
}

/// Protocol modifiers from winit's.
pub fn modifiers(m: ModifiersState) -> Modifiers {
    let mut out = Modifiers::EMPTY;
    for (on, flag) in [
        (m.shift_key(), Modifiers::SHIFT),
        (m.control_key(), Modifiers::CONTROL),
        (m.alt_key(), Modifiers::ALT),
        (m.super_key(), Modifiers::SUPER),
    ] {
        if on {
            out = out.union(flag);
        }
    }
    out
}

/// The wire key event for a winit key event; `None` when it names no key at all.
pub fn key_event(
    physical: PhysicalKey,
    logical: &Key,
    location: KeyLocation,
    state: ElementState,
    mods: ModifiersState,
) -> Option<WireKey> {
    let code = match physical {
        PhysicalKey::Code(c) => hid_usage(c).unwrap_or(0),
        PhysicalKey::Unidentified(_) => 0,
    };
    let keysym = keysym(logical, location);
    if code == 0 && keysym == 0 {
        return None;
    }
    Some(WireKey {
        code,
        keysym,
        modifiers: modifiers(mods),
        pressed: state == ElementState::Pressed,
    })
}

/// X11 button number of a winit mouse button.
pub fn mouse_button(b: winit::event::MouseButton) -> Option<MouseButton> {
    use winit::event::MouseButton as W;
    Some(match b {
        W::Left => MouseButton::LEFT,
        W::Middle => MouseButton::MIDDLE,
        W::Right => MouseButton::RIGHT,
        W::Back => MouseButton::BACK,
        W::Forward => MouseButton::FORWARD,
        // X numbers further buttons from 10 (after the wheel's 4–7 and back/forward 8–9).
        W::Other(n) if n < 246 => MouseButton(10 + n as u8),
        W::Other(_) => return None,
    })
}

/// Scroll in the protocol's units (1/120 of a notch; positive: right, down). winit's line
/// deltas are positive for up and left; pixel deltas count 40 px as a notch.
pub fn scroll(delta: MouseScrollDelta, carry: &mut (f64, f64)) -> Option<(i32, i32)> {
    let (x, y) = match delta {
        MouseScrollDelta::LineDelta(x, y) => (-(x as f64) * 120.0, -(y as f64) * 120.0),
        MouseScrollDelta::PixelDelta(p) => (-p.x * 3.0, -p.y * 3.0),
    };
    carry.0 += x;
    carry.1 += y;
    let (dx, dy) = (carry.0.trunc(), carry.1.trunc());
    carry.0 -= dx;
    carry.1 -= dy;
    (dx != 0.0 || dy != 0.0).then_some((dx as i32, dy as i32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use winit::dpi::PhysicalPosition;

    #[test]
    fn physical_keys_map_to_hid_usages() {
        assert_eq!(hid_usage(KeyCode::KeyA), Some(0x04));
        assert_eq!(hid_usage(KeyCode::Digit0), Some(0x27));
        assert_eq!(hid_usage(KeyCode::ArrowLeft), Some(0x50));
        assert_eq!(hid_usage(KeyCode::ShiftLeft), Some(0xe1));
        assert_eq!(hid_usage(KeyCode::SuperRight), Some(0xe7));
        assert_eq!(hid_usage(KeyCode::Fn), None);
    }

    #[test]
    fn logical_keys_map_to_keysyms() {
        let ch = |s: &str| keysym(&Key::Character(s.into()), KeyLocation::Standard);
        assert_eq!(ch("a"), 0x61);
        assert_eq!(ch("A"), 0x41);
        assert_eq!(ch("!"), 0x21);
        assert_eq!(ch("é"), 0xe9);
        assert_eq!(ch("€"), 0x0100_20ac);
        assert_eq!(ch("ab"), 0, "a multi-character string has no single keysym");
        assert_eq!(
            keysym(&Key::Character("5".into()), KeyLocation::Numpad),
            0xffb5
        );
        let named = |n: NamedKey, l: KeyLocation| keysym(&Key::Named(n), l);
        assert_eq!(named(NamedKey::Shift, KeyLocation::Left), 0xffe1);
        assert_eq!(named(NamedKey::Shift, KeyLocation::Right), 0xffe2);
        assert_eq!(named(NamedKey::ArrowLeft, KeyLocation::Standard), 0xff51);
        assert_eq!(named(NamedKey::Enter, KeyLocation::Numpad), 0xff8d);
        assert_eq!(named(NamedKey::F12, KeyLocation::Standard), 0xffc9);
    }

    #[test]
    fn key_events_carry_both_identities_and_modifiers() {
        let k = key_event(
            PhysicalKey::Code(KeyCode::KeyA),
            &Key::Character("A".into()),
            KeyLocation::Standard,
            ElementState::Pressed,
            ModifiersState::SHIFT,
        )
        .unwrap();
        assert_eq!((k.code, k.keysym, k.pressed), (0x04, 0x41, true));
        assert!(k.modifiers.contains(Modifiers::SHIFT));
        assert!(!k.modifiers.contains(Modifiers::CONTROL));
        assert!(key_event(
            PhysicalKey::Unidentified(winit::keyboard::NativeKeyCode::Unidentified),
            &Key::Unidentified(winit::keyboard::NativeKey::Unidentified),
            KeyLocation::Standard,
            ElementState::Released,
            ModifiersState::empty(),
        )
        .is_none());
    }

    #[test]
    fn scroll_converts_direction_and_keeps_fractions() {
        let mut carry = (0.0, 0.0);
        // One notch up in winit is −120 (up) on the wire.
        assert_eq!(
            scroll(MouseScrollDelta::LineDelta(0.0, 1.0), &mut carry),
            Some((0, -120))
        );
        assert_eq!(
            scroll(MouseScrollDelta::LineDelta(-1.0, 0.0), &mut carry),
            Some((120, 0))
        );
        // Pixel deltas: 0.2 px is 0.6 units, kept until they add up.
        let px = |y| MouseScrollDelta::PixelDelta(PhysicalPosition::new(0.0, y));
        assert_eq!(scroll(px(-0.2), &mut carry), None);
        assert_eq!(scroll(px(-0.2), &mut carry), Some((0, 1)));
    }

    #[test]
    fn mouse_buttons_use_x11_numbers() {
        use winit::event::MouseButton as W;
        assert_eq!(mouse_button(W::Left), Some(MouseButton::LEFT));
        assert_eq!(mouse_button(W::Right), Some(MouseButton::RIGHT));
        assert_eq!(mouse_button(W::Back), Some(MouseButton(8)));
        assert_eq!(mouse_button(W::Other(0)), Some(MouseButton(10)));
    }
}
