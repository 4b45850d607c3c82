//! Key identities: USB HID usages (what the viewer sends as the physical key) to Linux evdev
//! key codes (what X servers with the `evdev` keycodes, and uinput, use: X keycode = evdev + 8),
//! and a searchable copy of an X keyboard mapping.

/// `(HID usage, evdev code)` for the keyboard page (0x07), following Linux's `hid-input.c`.
const HID_TO_EVDEV: &[(u16, u16)] = &[
    (0x04, 30), // a
    (0x05, 48),
    (0x06, 46),
    (0x07, 32),
    (0x08, 18),
    (0x09, 33),
    (0x0a, 34),
    (0x0b, 35),
    (0x0c, 23),
    (0x0d, 36),
    (0x0e, 37),
    (0x0f, 38),
    (0x10, 50),
    (0x11, 49),
    (0x12, 24),
    (0x13, 25),
    (0x14, 16),
    (0x15, 19),
    (0x16, 31),
    (0x17, 20),
    (0x18, 22),
    (0x19, 47),
    (0x1a, 17),
    (0x1b, 45),
    (0x1c, 21),
    (0x1d, 44), // z
    (0x1e, 2),  // 1
    (0x1f, 3),
    (0x20, 4),
    (0x21, 5),
    (0x22, 6),
    (0x23, 7),
    (0x24, 8),
    (0x25, 9),
    (0x26, 10),
    (0x27, 11), // 0
    (0x28, 28), // Enter
    (0x29, 1),  // Escape
    (0x2a, 14), // Backspace
    (0x2b, 15), // Tab
    (0x2c, 57), // Space
    (0x2d, 12), // - _
    (0x2e, 13), // = +
    (0x2f, 26), // [ {
    (0x30, 27), // ] }
    (0x31, 43), // \ |
    (0x32, 43), // non-US # ~
    (0x33, 39), // ; :
    (0x34, 40), // ' "
    (0x35, 41), // ` ~
    (0x36, 51), // , <
    (0x37, 52), // . >
    (0x38, 53), // / ?
    (0x39, 58), // Caps Lock
    (0x3a, 59), // F1
    (0x3b, 60),
    (0x3c, 61),
    (0x3d, 62),
    (0x3e, 63),
    (0x3f, 64),
    (0x40, 65),
    (0x41, 66),
    (0x42, 67),
    (0x43, 68),  // F10
    (0x44, 87),  // F11
    (0x45, 88),  // F12
    (0x46, 99),  // Print / SysRq
    (0x47, 70),  // Scroll Lock
    (0x48, 119), // Pause
    (0x49, 110), // Insert
    (0x4a, 102), // Home
    (0x4b, 104), // Page Up
    (0x4c, 111), // Delete
    (0x4d, 107), // End
    (0x4e, 109), // Page Down
    (0x4f, 106), // Right
    (0x50, 105), // Left
    (0x51, 108), // Down
    (0x52, 103), // Up
    (0x53, 69),  // Num Lock
    (0x54, 98),  // KP /
    (0x55, 55),  // KP *
    (0x56, 74),  // KP -
    (0x57, 78),  // KP +
    (0x58, 96),  // KP Enter
    (0x59, 79),  // KP 1
    (0x5a, 80),
    (0x5b, 81),
    (0x5c, 75),
    (0x5d, 76),
    (0x5e, 77),
    (0x5f, 71),
    (0x60, 72),
    (0x61, 73),  // KP 9
    (0x62, 82),  // KP 0
    (0x63, 83),  // KP .
    (0x64, 86),  // non-US \ |
    (0x65, 127), // Menu (Compose)
    (0x66, 116), // Power
    (0x67, 117), // KP =
    (0x68, 183), // F13
    (0x69, 184),
    (0x6a, 185),
    (0x6b, 186),
    (0x6c, 187),
    (0x6d, 188),
    (0x6e, 189),
    (0x6f, 190),
    (0x70, 191),
    (0x71, 192),
    (0x72, 193),
    (0x73, 194), // F24
    (0x7f, 113), // Mute
    (0x80, 115), // Volume up
    (0x81, 114), // Volume down
    (0x85, 121), // KP ,
    (0x87, 89),  // Ro
    (0x88, 93),  // Katakana/Hiragana
    (0x89, 124), // Yen
    (0x8a, 92),  // Henkan
    (0x8b, 94),  // Muhenkan
    (0x90, 122), // Hangeul
    (0x91, 123), // Hanja
    (0xe0, 29),  // Left Ctrl
    (0xe1, 42),  // Left Shift
    (0xe2, 56),  // Left Alt
    (0xe3, 125), // Left Super
    (0xe4, 97),  // Right Ctrl
    (0xe5, 54),  // Right Shift
    (0xe6, 100), // Right Alt / AltGr
    (0xe7, 126), // Right Super
];

/// The Linux evdev key code for a USB HID keyboard usage.
pub fn hid_to_evdev(usage: u16) -> Option<u16> {
    HID_TO_EVDEV
        .binary_search_by_key(&usage, |&(u, _)| u)
        .ok()
        .map(|i| HID_TO_EVDEV[i].1)
}

/// X11 keysyms used by the injector.
pub mod keysym {
    /// Left Shift.
    pub const SHIFT_L: u32 = 0xffe1;
    /// Right Shift.
    pub const SHIFT_R: u32 = 0xffe2;
    /// No symbol.
    pub const NO_SYMBOL: u32 = 0;
}

/// Where a keysym sits in a keymap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPlace {
    /// X keycode.
    pub keycode: u8,
    /// Shift level: 0 plain, 1 with Shift.
    pub level: u8,
}

/// A copy of the X server's core keyboard mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keymap {
    /// First keycode.
    pub min_keycode: u8,
    /// Keysyms per keycode.
    pub per_keycode: u8,
    /// `per_keycode` keysyms for each keycode from `min_keycode`.
    pub keysyms: Vec<u32>,
}

impl Keymap {
    /// The keysyms of one keycode (empty when out of range).
    pub fn syms(&self, keycode: u8) -> &[u32] {
        let per = self.per_keycode as usize;
        if keycode < self.min_keycode || per == 0 {
            return &[];
        }
        let start = (keycode - self.min_keycode) as usize * per;
        self.keysyms.get(start..start + per).unwrap_or(&[])
    }

    /// The keycodes covered.
    pub fn keycodes(&self) -> impl Iterator<Item = u8> + '_ {
        let n = if self.per_keycode == 0 {
            0
        } else {
            self.keysyms.len() / self.per_keycode as usize
        };
        (0..n).map(move |i| self.min_keycode + i as u8)
    }

    /// The shift level (0 or 1) at which `keycode` gives `keysym`, if it does. A keycode that
    /// lists only a lower-case letter gives its upper case at level 1, as X does.
    pub fn level_of(&self, keycode: u8, keysym: u32) -> Option<u8> {
        let syms = self.syms(keycode);
        let l0 = syms.first().copied().unwrap_or(0);
        let l1 = match syms.get(1).copied().unwrap_or(0) {
            0 => upper_latin(l0),
            s => s,
        };
        if l0 == keysym && l0 != 0 {
            Some(0)
        } else if l1 == keysym && l1 != 0 {
            Some(1)
        } else {
            None
        }
    }

    /// The best place for a keysym: plain level first, lowest keycode first.
    pub fn find(&self, keysym: u32) -> Option<KeyPlace> {
        let mut shifted = None;
        for kc in self.keycodes() {
            match self.level_of(kc, keysym) {
                Some(0) => {
                    return Some(KeyPlace {
                        keycode: kc,
                        level: 0,
                    })
                }
                Some(l) if shifted.is_none() => {
                    shifted = Some(KeyPlace {
                        keycode: kc,
                        level: l,
                    })
                }
                _ => {}
            }
        }
        shifted
    }

    /// Keycodes with no keysym at all: free to remap for keysyms the layout lacks.
    pub fn spare_keycodes(&self) -> Vec<u8> {
        self.keycodes()
            .filter(|&kc| kc >= 8 && self.syms(kc).iter().all(|&s| s == keysym::NO_SYMBOL))
            .collect()
    }

    /// Sets every level of `keycode` to `keysym` (so Shift does not change it).
    pub fn set(&mut self, keycode: u8, keysym: u32) {
        let per = self.per_keycode as usize;
        if keycode < self.min_keycode {
            return;
        }
        let start = (keycode - self.min_keycode) as usize * per;
        if let Some(s) = self.keysyms.get_mut(start..start + per) {
            s.fill(keysym);
        }
    }
}

/// Latin-1 lower-case letter keysyms have an implicit upper case at level 1.
fn upper_latin(ks: u32) -> u32 {
    match ks {
        0x61..=0x7a => ks - 0x20,
        0xe0..=0xfe if ks != 0xf7 => ks - 0x20,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_maps_common_keys() {
        assert!(HID_TO_EVDEV.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(hid_to_evdev(0x04), Some(30)); // a
        assert_eq!(hid_to_evdev(0x1d), Some(44)); // z
        assert_eq!(hid_to_evdev(0x27), Some(11)); // 0
        assert_eq!(hid_to_evdev(0x50), Some(105)); // Left
        assert_eq!(hid_to_evdev(0xe1), Some(42)); // Left Shift
        assert_eq!(hid_to_evdev(0x03), None);
    }

    fn us_like() -> Keymap {
        // keycodes 8..=12: none, a A, 1 !, Shift_L, none
        Keymap {
            min_keycode: 8,
            per_keycode: 2,
            keysyms: vec![0, 0, 0x61, 0x41, 0x31, 0x21, 0xffe1, 0, 0xe9, 0],
        }
    }

    #[test]
    fn finds_plain_and_shifted_places() {
        let k = us_like();
        assert_eq!(
            k.find(0x61),
            Some(KeyPlace {
                keycode: 9,
                level: 0
            })
        );
        assert_eq!(
            k.find(0x41),
            Some(KeyPlace {
                keycode: 9,
                level: 1
            })
        );
        assert_eq!(
            k.find(0x21),
            Some(KeyPlace {
                keycode: 10,
                level: 1
            })
        );
        // é listed alone gives É at level 1.
        assert_eq!(
            k.find(0xc9),
            Some(KeyPlace {
                keycode: 12,
                level: 1
            })
        );
        assert_eq!(k.find(0x20ac), None);
        assert_eq!(k.spare_keycodes(), vec![8]);
    }

    #[test]
    fn remapping_sets_every_level() {
        let mut k = us_like();
        k.set(8, 0x20ac);
        assert_eq!(
            k.find(0x20ac),
            Some(KeyPlace {
                keycode: 8,
                level: 0
            })
        );
        assert_eq!(k.syms(8), &[0x20ac, 0x20ac]);
        assert!(k.spare_keycodes().is_empty());
    }
}
