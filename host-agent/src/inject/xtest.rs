//! Keyboard and mouse injection through the X server's XTEST extension.
//!
//! Keys: the viewer sends the physical key (USB HID usage) and the logical key (keysym). When the
//! host keymap gives that keysym on that physical key (the same layout on both ends), the key
//! is pressed by keycode, so shortcuts and held modifiers behave exactly as on a local keyboard.
//! Otherwise the keysym is looked up in the host keymap and Shift is pressed or lifted around it
//! as its level needs; a keysym the keymap lacks (`€`, `ß` on a US map) is bound to a spare
//! keycode first (ChangeKeyboardMapping), as xdotool does. Releases always use the keycode the
//! press used. Pointer: absolute motion in stream pixels (plus the capture offset), relative
//! motion, buttons 1–9, and high-resolution scroll accumulated into wheel clicks (buttons 4–7).

use std::collections::{BTreeMap, HashMap};

use sightline_protocol::input::KeyId;
use sightline_protocol::msg::{InputEvent, InputKinds, KeyEvent};
use tracing::{debug, info, warn};
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::xproto::ConnectionExt as _;
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

use super::keymap::{hid_to_evdev, keysym, Keymap};
use super::{event_kind, InjectError, InputSink};

const NAME: &str = "xtest";
const KEY_PRESS: u8 = 2;
const KEY_RELEASE: u8 = 3;
const BUTTON_PRESS: u8 = 4;
const BUTTON_RELEASE: u8 = 5;
const MOTION: u8 = 6;
/// One wheel notch in the protocol's high-resolution units.
const NOTCH: i32 = 120;

/// Counters for diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XTestCounters {
    /// Keys pressed by physical keycode.
    pub by_keycode: u64,
    /// Keys pressed by keysym lookup.
    pub by_keysym: u64,
    /// Keys pressed through a remapped spare keycode.
    pub remapped: u64,
    /// Key events that could not be placed (no code, no keysym known).
    pub unplaced: u64,
}

/// Injects keyboard and mouse input into an X display.
#[derive(Debug)]
pub struct XTestSink {
    conn: RustConnection,
    root: u32,
    screen: (u16, u16),
    offset: (i32, i32),
    keymap: Keymap,
    spare: Vec<u8>,
    /// Spare keycodes bound so far, keysym → keycode, and in which order (oldest first).
    remapped: Vec<(u32, u8)>,
    /// Keys held, by the viewer's id, with the keycode used.
    keys: HashMap<KeyId, u8>,
    buttons: BTreeMap<u8, ()>,
    scroll: (i32, i32),
    counters: XTestCounters,
}

fn xerr(e: impl std::fmt::Display) -> InjectError {
    InjectError::Inject {
        backend: NAME,
        detail: e.to_string(),
    }
}

impl XTestSink {
    /// Connects to `display` (e.g. `:0`; `None` for `$DISPLAY`) and checks for XTEST.
    pub fn open(display: Option<&str>) -> Result<Self, InjectError> {
        let open = |detail: String| InjectError::Open {
            backend: NAME,
            detail,
        };
        let (conn, screen_num) = x11rb::connect(display).map_err(|e| {
            open(format!(
                "cannot connect to X display {}: {e}",
                display.map_or_else(
                    || std::env::var("DISPLAY").unwrap_or_else(|_| "($DISPLAY unset)".into()),
                    str::to_owned
                )
            ))
        })?;
        if conn
            .extension_information(x11rb::protocol::xtest::X11_EXTENSION_NAME)
            .map_err(|e| open(e.to_string()))?
            .is_none()
        {
            return Err(open("the X server has no XTEST extension".into()));
        }
        conn.xtest_get_version(2, 2)
            .map_err(|e| open(e.to_string()))?
            .reply()
            .map_err(|e| open(format!("XTEST version query failed: {e}")))?;
        let s = &conn.setup().roots[screen_num];
        let (root, screen) = (s.root, (s.width_in_pixels, s.height_in_pixels));
        let keymap = fetch_keymap(&conn).map_err(|e| open(e.to_string()))?;
        let spare = keymap.spare_keycodes();
        info!(
            screen = ?screen,
            spare_keycodes = spare.len(),
            "XTEST injection ready"
        );
        Ok(XTestSink {
            conn,
            root,
            screen,
            offset: (0, 0),
            keymap,
            spare,
            remapped: Vec::new(),
            keys: HashMap::new(),
            buttons: BTreeMap::new(),
            scroll: (0, 0),
            counters: XTestCounters::default(),
        })
    }

    /// Where the stream's top-left pixel is on the X screen (when only part of it is captured).
    pub fn set_offset(&mut self, x: i32, y: i32) {
        self.offset = (x, y);
    }

    /// The X screen's size in pixels.
    pub fn screen_size(&self) -> (u16, u16) {
        self.screen
    }

    /// Counters so far.
    pub fn counters(&self) -> XTestCounters {
        self.counters
    }

    fn fake(&self, ty: u8, detail: u8, x: i16, y: i16) -> Result<(), InjectError> {
        self.conn
            .xtest_fake_input(ty, detail, 0, self.root, x, y, 0)
            .map_err(xerr)?;
        Ok(())
    }

    fn is_shift(&self, keycode: u8) -> bool {
        self.keymap
            .syms(keycode)
            .iter()
            .any(|&s| s == keysym::SHIFT_L || s == keysym::SHIFT_R)
    }

    fn held_shifts(&self) -> Vec<u8> {
        let mut v: Vec<u8> = self
            .keys
            .values()
            .copied()
            .filter(|&kc| self.is_shift(kc))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    fn shift_keycode(&self) -> Option<u8> {
        self.keymap
            .find(keysym::SHIFT_L)
            .or_else(|| self.keymap.find(keysym::SHIFT_R))
            .map(|p| p.keycode)
    }

    /// A spare keycode bound to `sym` (binding one now if needed), never one that is held.
    fn remap(&mut self, sym: u32) -> Result<Option<u8>, InjectError> {
        if let Some(&(_, kc)) = self.remapped.iter().find(|(s, _)| *s == sym) {
            return Ok(Some(kc));
        }
        let held: Vec<u8> = self.keys.values().copied().collect();
        let kc = if let Some(&kc) = self
            .spare
            .iter()
            .find(|kc| !self.remapped.iter().any(|(_, r)| r == *kc))
        {
            kc
        } else {
            // Reuse the oldest binding that is not held.
            match self.remapped.iter().position(|(_, kc)| !held.contains(kc)) {
                Some(i) => self.remapped.remove(i).1,
                None => return Ok(None),
            }
        };
        let per = self.keymap.per_keycode.max(1);
        let syms = vec![sym; per as usize];
        self.conn
            .change_keyboard_mapping(1, kc, per, &syms)
            .map_err(xerr)?;
        self.keymap.set(kc, sym);
        self.remapped.push((sym, kc));
        debug!(
            keysym = format_args!("{sym:#x}"),
            keycode = kc,
            "bound a spare keycode"
        );
        Ok(Some(kc))
    }

    fn key(&mut self, k: &KeyEvent) -> Result<(), InjectError> {
        let id = KeyId::of(k);
        if !k.pressed {
            if let Some(kc) = self.keys.remove(&id) {
                self.fake(KEY_RELEASE, kc, 0, 0)?;
            }
            return Ok(());
        }
        if let Some(&kc) = self.keys.get(&id) {
            // Auto-repeat: press again, as a local keyboard does.
            return self.fake(KEY_PRESS, kc, 0, 0);
        }
        // 1. The physical key, when the host layout agrees with the viewer's.
        if let Some(kc) = hid_to_evdev(k.code).and_then(|e| u8::try_from(e + 8).ok()) {
            let agrees = k.keysym == 0
                || self.keymap.syms(kc).contains(&k.keysym)
                || self.keymap.level_of(kc, k.keysym).is_some();
            if agrees && !self.keymap.syms(kc).is_empty() {
                self.counters.by_keycode += 1;
                self.keys.insert(id, kc);
                return self.fake(KEY_PRESS, kc, 0, 0);
            }
        }
        if k.keysym == 0 {
            self.counters.unplaced += 1;
            debug!(
                code = k.code,
                "key with no keysym and no known keycode dropped"
            );
            return Ok(());
        }
        // 2. The keysym in the host keymap, adjusting Shift for its level.
        let (kc, level) = match self.keymap.find(k.keysym) {
            Some(p) => {
                self.counters.by_keysym += 1;
                (p.keycode, Some(p.level))
            }
            None => match self.remap(k.keysym)? {
                // 3. A spare keycode bound to it (same keysym at every level).
                Some(kc) => {
                    self.counters.remapped += 1;
                    (kc, None)
                }
                None => {
                    self.counters.unplaced += 1;
                    warn!(
                        keysym = format_args!("{:#x}", k.keysym),
                        "no keycode free to type this keysym"
                    );
                    return Ok(());
                }
            },
        };
        let shifts = self.held_shifts();
        match level {
            Some(1) if shifts.is_empty() => {
                if let Some(sk) = self.shift_keycode() {
                    self.fake(KEY_PRESS, sk, 0, 0)?;
                    self.fake(KEY_PRESS, kc, 0, 0)?;
                    self.fake(KEY_RELEASE, sk, 0, 0)?;
                } else {
                    self.fake(KEY_PRESS, kc, 0, 0)?;
                }
            }
            Some(0) if !shifts.is_empty() => {
                for &s in &shifts {
                    self.fake(KEY_RELEASE, s, 0, 0)?;
                }
                self.fake(KEY_PRESS, kc, 0, 0)?;
                for &s in &shifts {
                    self.fake(KEY_PRESS, s, 0, 0)?;
                }
            }
            _ => self.fake(KEY_PRESS, kc, 0, 0)?,
        }
        self.keys.insert(id, kc);
        Ok(())
    }

    fn clamp_to_screen(&self, x: i32, y: i32) -> (i16, i16) {
        let x = (x + self.offset.0).clamp(0, self.screen.0 as i32 - 1);
        let y = (y + self.offset.1).clamp(0, self.screen.1 as i32 - 1);
        (x as i16, y as i16)
    }

    fn button(&mut self, b: u8, pressed: bool) -> Result<(), InjectError> {
        if b == 0 {
            return Ok(());
        }
        if pressed {
            self.buttons.insert(b, ());
            self.fake(BUTTON_PRESS, b, 0, 0)
        } else if self.buttons.remove(&b).is_some() {
            self.fake(BUTTON_RELEASE, b, 0, 0)
        } else {
            Ok(())
        }
    }

    fn scroll(&mut self, dx: i32, dy: i32) -> Result<(), InjectError> {
        self.scroll.0 = self.scroll.0.saturating_add(dx);
        self.scroll.1 = self.scroll.1.saturating_add(dy);
        let click = |s: &Self, b: u8| -> Result<(), InjectError> {
            s.fake(BUTTON_PRESS, b, 0, 0)?;
            s.fake(BUTTON_RELEASE, b, 0, 0)
        };
        while self.scroll.1 >= NOTCH {
            self.scroll.1 -= NOTCH;
            click(self, 5)?;
        }
        while self.scroll.1 <= -NOTCH {
            self.scroll.1 += NOTCH;
            click(self, 4)?;
        }
        while self.scroll.0 >= NOTCH {
            self.scroll.0 -= NOTCH;
            click(self, 7)?;
        }
        while self.scroll.0 <= -NOTCH {
            self.scroll.0 += NOTCH;
            click(self, 6)?;
        }
        Ok(())
    }

    /// Releases every key and button this sink pressed: other keys first, modifiers last.
    pub fn release_everything(&mut self) -> Result<(), InjectError> {
        let mut keys: Vec<u8> = self.keys.drain().map(|(_, kc)| kc).collect();
        keys.sort_unstable();
        keys.dedup();
        let (mods, plain): (Vec<u8>, Vec<u8>) = keys.into_iter().partition(|&kc| {
            self.keymap
                .syms(kc)
                .first()
                .is_some_and(|&s| (0xffe1..=0xffee).contains(&s) || s == 0xfe03)
        });
        for kc in plain.into_iter().chain(mods) {
            self.fake(KEY_RELEASE, kc, 0, 0)?;
        }
        let buttons: Vec<u8> = std::mem::take(&mut self.buttons).into_keys().collect();
        for b in buttons {
            self.fake(BUTTON_RELEASE, b, 0, 0)?;
        }
        self.scroll = (0, 0);
        Ok(())
    }

    /// Handles events the server sent us: a keymap change re-reads the keymap.
    fn drain_events(&mut self) -> Result<(), InjectError> {
        let mut reload = false;
        while let Some(ev) = self.conn.poll_for_event().map_err(xerr)? {
            if let Event::MappingNotify(_) = ev {
                reload = true;
            }
        }
        if reload {
            let keymap = fetch_keymap(&self.conn).map_err(xerr)?;
            // Our own bindings are in it already; anything else changed is the host's doing.
            self.spare = keymap
                .spare_keycodes()
                .into_iter()
                .chain(self.remapped.iter().map(|&(_, kc)| kc))
                .collect();
            self.spare.sort_unstable();
            self.spare.dedup();
            self.keymap = keymap;
        }
        Ok(())
    }
}

fn fetch_keymap(conn: &RustConnection) -> Result<Keymap, Box<dyn std::error::Error>> {
    let setup = conn.setup();
    let (min, max) = (setup.min_keycode, setup.max_keycode);
    let r = conn.get_keyboard_mapping(min, max - min + 1)?.reply()?;
    Ok(Keymap {
        min_keycode: min,
        per_keycode: r.keysyms_per_keycode,
        keysyms: r.keysyms,
    })
}

impl InputSink for XTestSink {
    fn name(&self) -> &'static str {
        NAME
    }

    fn kinds(&self) -> InputKinds {
        InputKinds::KEYBOARD.union(InputKinds::MOUSE)
    }

    fn inject(&mut self, event: &InputEvent) -> Result<(), InjectError> {
        match *event {
            InputEvent::Key(ref k) => self.key(k),
            InputEvent::PointerMove { x, y } => {
                let (x, y) = self.clamp_to_screen(x, y);
                self.fake(MOTION, 0, x, y)
            }
            InputEvent::PointerRelative { dx, dy } => {
                let c = |v: i32| v.clamp(i16::MIN as i32, i16::MAX as i32) as i16;
                self.fake(MOTION, 1, c(dx), c(dy))
            }
            InputEvent::Button { button, pressed } => self.button(button.0, pressed),
            InputEvent::Scroll { dx, dy } => self.scroll(dx, dy),
            InputEvent::ReleaseAll => self.release_everything(),
            ref other => Err(InjectError::Unsupported {
                backend: NAME,
                kind: event_kind(other),
            }),
        }
    }

    fn flush(&mut self) -> Result<(), InjectError> {
        self.conn.flush().map_err(xerr)?;
        self.drain_events()
    }
}

impl Drop for XTestSink {
    fn drop(&mut self) {
        let _ = self.release_everything();
        // Give the spare keycodes back.
        let per = self.keymap.per_keycode.max(1);
        for &(_, kc) in &self.remapped {
            let _ = self
                .conn
                .change_keyboard_mapping(1, kc, per, &vec![0; per as usize]);
        }
        let _ = self.conn.flush();
    }
}
