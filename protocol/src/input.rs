//! Input rules: coalescing on the viewer, held-state tracking on the host.
//!
//! * Motion may be coalesced: pointer moves (latest wins), relative motion, scroll and jog (summed),
//!   shuttle position (latest wins), pen samples that keep the same tool, contact and buttons.
//! * Presses, releases, pen contact changes and `ReleaseAll` are never merged, dropped or
//!   reordered.
//! * The host tracks what is held, so that a viewer that vanishes, goes silent or loses focus
//!   leaves nothing stuck: [`HeldInput::release_all`] returns the events that undo it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::msg::{
    InputEvent, InputMessage, KeyEvent, Modifiers, MouseButton, PenContact, PenEvent,
};

/// Viewer-side queue of input waiting for the transport, coalescing motion as it goes.
#[derive(Debug, Default)]
pub struct InputQueue {
    pending: VecDeque<InputMessage>,
    next_seq: u64,
    coalesced: u64,
}

impl InputQueue {
    /// An empty queue; sequence numbers start at 1.
    pub fn new() -> Self {
        InputQueue {
            pending: VecDeque::new(),
            next_seq: 1,
            coalesced: 0,
        }
    }

    /// Queues an event. A coalescable event merges into the newest queued one when both are
    /// the same kind of motion; the merged message takes the new sequence number and time.
    pub fn push(&mut self, viewer_time_us: u64, event: InputEvent) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(last) = self.pending.back_mut() {
            if let Some(merged) = merge(&last.event, &event) {
                last.event = merged;
                last.seq = seq;
                last.viewer_time_us = viewer_time_us;
                self.coalesced += 1;
                return seq;
            }
        }
        self.pending.push_back(InputMessage {
            seq,
            viewer_time_us,
            event,
        });
        seq
    }

    /// The oldest queued message.
    pub fn pop(&mut self) -> Option<InputMessage> {
        self.pending.pop_front()
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// How many events were merged away so far.
    pub fn coalesced(&self) -> u64 {
        self.coalesced
    }
}

/// `Some(merged)` when `next` may be folded into `prev`.
pub fn merge(prev: &InputEvent, next: &InputEvent) -> Option<InputEvent> {
    use InputEvent::*;
    match (prev, next) {
        (PointerMove { .. }, PointerMove { .. }) => Some(*next),
        (PointerRelative { dx: a, dy: b }, PointerRelative { dx: c, dy: d }) => {
            Some(PointerRelative {
                dx: a.saturating_add(*c),
                dy: b.saturating_add(*d),
            })
        }
        (Scroll { dx: a, dy: b }, Scroll { dx: c, dy: d }) => Some(Scroll {
            dx: a.saturating_add(*c),
            dy: b.saturating_add(*d),
        }),
        (Jog { delta: a }, Jog { delta: b }) => Some(Jog {
            delta: a.saturating_add(*b),
        }),
        (Shuttle { .. }, Shuttle { .. }) => Some(*next),
        (Pen(a), Pen(b))
            if a.tool == b.tool
                && a.contact == b.contact
                && a.buttons == b.buttons
                && a.contact != PenContact::Leave =>
        {
            Some(*next)
        }
        _ => None,
    }
}

/// How a held key is identified: by physical code when there is one, else by keysym.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyId {
    /// USB HID usage.
    Code(u16),
    /// Keysym, for keys without a physical code.
    Keysym(u32),
}

impl KeyId {
    /// The id of a key event.
    pub fn of(k: &KeyEvent) -> KeyId {
        if k.code != 0 {
            KeyId::Code(k.code)
        } else {
            KeyId::Keysym(k.keysym)
        }
    }
}

/// Host-side record of what the viewer holds down.
#[derive(Debug, Default, Clone)]
pub struct HeldInput {
    keys: BTreeMap<KeyId, KeyEvent>,
    buttons: BTreeSet<MouseButton>,
    controller_buttons: BTreeSet<u8>,
    pen: Option<PenEvent>,
    shuttle: i8,
}

impl HeldInput {
    /// Nothing held.
    pub fn new() -> Self {
        Self::default()
    }

    /// Updates the record with an event about to be injected.
    pub fn apply(&mut self, ev: &InputEvent) {
        match ev {
            InputEvent::Key(k) => {
                if k.pressed {
                    self.keys.insert(KeyId::of(k), *k);
                } else {
                    self.keys.remove(&KeyId::of(k));
                }
            }
            InputEvent::Button { button, pressed } => {
                if *pressed {
                    self.buttons.insert(*button);
                } else {
                    self.buttons.remove(button);
                }
            }
            InputEvent::ControllerButton { index, pressed } => {
                if *pressed {
                    self.controller_buttons.insert(*index);
                } else {
                    self.controller_buttons.remove(index);
                }
            }
            InputEvent::Pen(p) => {
                self.pen = match p.contact {
                    PenContact::Leave => None,
                    _ => Some(*p),
                };
            }
            InputEvent::Shuttle { position } => self.shuttle = *position,
            InputEvent::ReleaseAll => {
                self.release_all();
            }
            InputEvent::PointerMove { .. }
            | InputEvent::PointerRelative { .. }
            | InputEvent::Scroll { .. }
            | InputEvent::Jog { .. }
            | InputEvent::Probe { .. } => {}
        }
    }

    /// Whether anything is held (keys, buttons, pen in range, shuttle off centre).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
            && self.buttons.is_empty()
            && self.controller_buttons.is_empty()
            && self.pen.is_none()
            && self.shuttle == 0
    }

    /// Keys held now.
    pub fn keys(&self) -> impl Iterator<Item = &KeyEvent> {
        self.keys.values()
    }

    /// Mouse buttons held now.
    pub fn buttons(&self) -> impl Iterator<Item = &MouseButton> {
        self.buttons.iter()
    }

    /// Clears the record and returns the events that release everything it held: pen lifted and
    /// out of range, mouse and controller buttons up, shuttle centred, keys up (modifiers last, so
    /// that nothing is typed with a modifier still applied).
    pub fn release_all(&mut self) -> Vec<InputEvent> {
        let mut out = Vec::new();
        if let Some(mut p) = self.pen.take() {
            if p.contact == PenContact::Contact {
                p.contact = PenContact::Hover;
                p.pressure = 0;
                out.push(InputEvent::Pen(p));
            }
            p.contact = PenContact::Leave;
            p.pressure = 0;
            out.push(InputEvent::Pen(p));
        }
        for button in std::mem::take(&mut self.buttons) {
            out.push(InputEvent::Button {
                button,
                pressed: false,
            });
        }
        for index in std::mem::take(&mut self.controller_buttons) {
            out.push(InputEvent::ControllerButton {
                index,
                pressed: false,
            });
        }
        if self.shuttle != 0 {
            self.shuttle = 0;
            out.push(InputEvent::Shuttle { position: 0 });
        }
        let keys = std::mem::take(&mut self.keys);
        let (mods, plain): (Vec<_>, Vec<_>) = keys.into_values().partition(is_modifier);
        for k in plain.into_iter().chain(mods) {
            out.push(InputEvent::Key(KeyEvent {
                pressed: false,
                modifiers: Modifiers::EMPTY,
                ..k
            }));
        }
        out
    }
}

/// USB HID usages 0xE0..=0xE7 are the modifier keys; keysyms 0xFFE1..=0xFFEE likewise.
fn is_modifier(k: &KeyEvent) -> bool {
    (0xE0..=0xE7).contains(&k.code) || (0xFFE1..=0xFFEE).contains(&k.keysym)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{PenButtons, PenTool};

    fn key(code: u16, pressed: bool) -> InputEvent {
        InputEvent::Key(KeyEvent {
            code,
            keysym: 0x61,
            modifiers: Modifiers::EMPTY,
            pressed,
        })
    }

    fn pen(contact: PenContact, pressure: u16) -> InputEvent {
        InputEvent::Pen(PenEvent {
            tool: PenTool::Pen,
            x: 1.5,
            y: 2.5,
            pressure,
            tilt_x: 0,
            tilt_y: 0,
            rotation: 0,
            buttons: PenButtons::EMPTY,
            contact,
        })
    }

    #[test]
    fn motion_coalesces_presses_do_not() {
        let mut q = InputQueue::new();
        q.push(1, InputEvent::PointerMove { x: 1, y: 1 });
        q.push(2, InputEvent::PointerMove { x: 5, y: 6 });
        q.push(3, key(4, true));
        q.push(4, key(4, false));
        q.push(5, InputEvent::Scroll { dx: 0, dy: 120 });
        q.push(6, InputEvent::Scroll { dx: 0, dy: 120 });
        let got: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].event, InputEvent::PointerMove { x: 5, y: 6 });
        assert_eq!(got[1].event, key(4, true));
        assert_eq!(got[2].event, key(4, false));
        assert_eq!(got[3].event, InputEvent::Scroll { dx: 0, dy: 240 });
        assert!(got.windows(2).all(|w| w[0].seq < w[1].seq));
    }

    #[test]
    fn pen_contact_change_is_kept() {
        let mut q = InputQueue::new();
        q.push(1, pen(PenContact::Hover, 0));
        q.push(2, pen(PenContact::Contact, 100));
        q.push(3, pen(PenContact::Contact, 200));
        q.push(4, pen(PenContact::Hover, 0));
        let got: Vec<_> = std::iter::from_fn(|| q.pop()).map(|m| m.event).collect();
        assert_eq!(
            got,
            vec![
                pen(PenContact::Hover, 0),
                pen(PenContact::Contact, 200),
                pen(PenContact::Hover, 0)
            ]
        );
    }

    #[test]
    fn release_all_undoes_everything() {
        let mut h = HeldInput::new();
        h.apply(&InputEvent::Key(KeyEvent {
            code: 0xE1,
            keysym: 0xFFE1,
            modifiers: Modifiers::SHIFT,
            pressed: true,
        }));
        h.apply(&key(4, true));
        h.apply(&InputEvent::Button {
            button: MouseButton::LEFT,
            pressed: true,
        });
        h.apply(&pen(PenContact::Contact, 500));
        h.apply(&InputEvent::Shuttle { position: 5 });
        h.apply(&InputEvent::ControllerButton {
            index: 3,
            pressed: true,
        });
        assert!(!h.is_empty());
        let rel = h.release_all();
        assert!(h.is_empty());
        assert_eq!(rel[0], pen(PenContact::Hover, 0));
        assert_eq!(rel[1], pen(PenContact::Leave, 0));
        assert!(rel.contains(&InputEvent::Button {
            button: MouseButton::LEFT,
            pressed: false
        }));
        assert!(rel.contains(&InputEvent::Shuttle { position: 0 }));
        // The plain key is released before the shift key.
        let n = rel.len();
        assert_eq!(rel[n - 2], key(4, false));
        assert!(matches!(rel[n - 1], InputEvent::Key(k) if k.code == 0xE1 && !k.pressed));
        assert!(h.release_all().is_empty());
    }
}
