//! Input injection on the host, behind the [`InputSink`] trait.
//!
//! * [`xtest`]: keyboard (by keysym, remapping a spare keycode for keysyms the keymap lacks),
//!   pointer, buttons and high-resolution scroll through the X server's XTEST extension.
//! * [`uinput`]: Linux virtual devices — a pen tablet (pressure, tilt, tools, stylus buttons) and
//!   a jog/shuttle controller — for what XTEST cannot express.
//! * [`jog_profile`]: turns jog/shuttle input into editor actions (key presses).
//! * [`RecordingSink`]: keeps what it was given, for tests.
//! * [`Router`]: sends each kind of input to the sink that handles it.

pub mod jog_profile;
pub mod keymap;
pub mod service;
pub mod uinput;
pub mod xtest;

use sightline_protocol::msg::{InputEvent, InputKinds};
use sightline_protocol::session::input_kind;
use std::sync::{Arc, Mutex};

/// Why an event could not be injected.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// The backend could not be opened (no X server, no `/dev/uinput`, no permission).
    #[error("{backend}: cannot open: {detail}")]
    Open {
        /// Which backend.
        backend: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// Injecting one event failed.
    #[error("{backend}: {detail}")]
    Inject {
        /// Which backend.
        backend: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// This sink does not handle this kind of event.
    #[error("{backend} does not handle {kind}")]
    Unsupported {
        /// Which backend.
        backend: &'static str,
        /// The event kind.
        kind: &'static str,
    },
}

/// Something that makes input happen on the host.
pub trait InputSink: Send {
    /// A short name for logs.
    fn name(&self) -> &'static str;
    /// The kinds of input this sink injects (advertised to viewers).
    fn kinds(&self) -> InputKinds;
    /// Injects one event. Events arrive in order; a press is always followed by its release
    /// (the session synthesises releases when the viewer disappears).
    fn inject(&mut self, event: &InputEvent) -> Result<(), InjectError>;
    /// Makes everything injected so far take effect (e.g. flushes the X connection).
    fn flush(&mut self) -> Result<(), InjectError> {
        Ok(())
    }
}

/// The kind of an event as a short name (for errors and logs).
pub fn event_kind(e: &InputEvent) -> &'static str {
    match e {
        InputEvent::Key(_) => "key",
        InputEvent::PointerMove { .. } => "pointer motion",
        InputEvent::PointerRelative { .. } => "relative motion",
        InputEvent::Button { .. } => "mouse button",
        InputEvent::Scroll { .. } => "scroll",
        InputEvent::Pen(_) => "pen",
        InputEvent::Jog { .. } => "jog",
        InputEvent::Shuttle { .. } => "shuttle",
        InputEvent::ControllerButton { .. } => "controller button",
        InputEvent::ReleaseAll => "release all",
        InputEvent::Probe { .. } => "latency probe",
    }
}

/// A sink that records every event (shared, so a test can look while the host runs).
#[derive(Debug, Clone)]
pub struct RecordingSink {
    events: Arc<Mutex<Vec<InputEvent>>>,
    kinds: InputKinds,
}

impl RecordingSink {
    /// Records every kind of input.
    pub fn new() -> Self {
        RecordingSink {
            events: Arc::default(),
            kinds: InputKinds::ALL,
        }
    }

    /// What was injected so far.
    pub fn events(&self) -> Vec<InputEvent> {
        self.events.lock().expect("recording lock").clone()
    }
}

impl InputSink for RecordingSink {
    fn name(&self) -> &'static str {
        "recording"
    }
    fn kinds(&self) -> InputKinds {
        self.kinds
    }
    fn inject(&mut self, event: &InputEvent) -> Result<(), InjectError> {
        self.events.lock().expect("recording lock").push(*event);
        Ok(())
    }
}

impl Default for RecordingSink {
    fn default() -> Self {
        RecordingSink::new()
    }
}

/// A sink that injects nothing: it counts events and logs them at debug level (for a host
/// without a desktop to inject into, e.g. streaming the synthetic picture).
#[derive(Debug, Default)]
pub struct LogSink {
    /// Events seen.
    pub count: u64,
}

impl InputSink for LogSink {
    fn name(&self) -> &'static str {
        "log"
    }
    fn kinds(&self) -> InputKinds {
        InputKinds::KEYBOARD.union(InputKinds::MOUSE)
    }
    fn inject(&mut self, event: &InputEvent) -> Result<(), InjectError> {
        self.count += 1;
        tracing::debug!(?event, "input (not injected)");
        Ok(())
    }
}

/// Routes each event to the first sink that handles its kind.
#[derive(Default)]
pub struct Router {
    sinks: Vec<Box<dyn InputSink>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.sinks.iter().map(|s| s.name()))
            .finish()
    }
}

impl Router {
    /// No sinks yet.
    pub fn new() -> Self {
        Router::default()
    }

    /// Adds a sink; earlier sinks win for kinds both handle.
    pub fn add(&mut self, sink: Box<dyn InputSink>) {
        self.sinks.push(sink);
    }

    /// Whether no sink was added.
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }
}

impl InputSink for Router {
    fn name(&self) -> &'static str {
        "router"
    }

    fn kinds(&self) -> InputKinds {
        self.sinks
            .iter()
            .fold(InputKinds::EMPTY, |k, s| k.union(s.kinds()))
    }

    fn inject(&mut self, event: &InputEvent) -> Result<(), InjectError> {
        if matches!(event, InputEvent::ReleaseAll) {
            // Every sink releases what it holds; the first error is reported after all ran.
            let mut first = None;
            for s in &mut self.sinks {
                if let Err(e) = s.inject(event) {
                    first.get_or_insert(e);
                }
            }
            return first.map_or(Ok(()), Err);
        }
        let need = input_kind(event).unwrap_or(InputKinds::EMPTY);
        match self.sinks.iter_mut().find(|s| s.kinds().contains(need)) {
            Some(s) => s.inject(event),
            None => Err(InjectError::Unsupported {
                backend: "router",
                kind: event_kind(event),
            }),
        }
    }

    fn flush(&mut self) -> Result<(), InjectError> {
        let mut first = None;
        for s in &mut self.sinks {
            if let Err(e) = s.flush() {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}
