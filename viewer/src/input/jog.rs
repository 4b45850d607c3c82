//! Jog/shuttle controllers: Contour ShuttlePRO v2 (`0b33:0030`), ShuttlePRO (`0b33:0010`),
//! ShuttleXpress (`0b33:0020`) and devices that look like them.
//!
//! Two pure parsers turn the device's reports into [`InputEvent::Jog`], [`InputEvent::Shuttle`]
//! and [`InputEvent::ControllerButton`]:
//! - [`EvdevParser`] for the Linux input layer (`/dev/input/event*`), fed one
//!   `(type, code, value)` triple at a time;
//! - [`HidParser`] for the raw 5-byte HID input report (for hidapi on other systems).
//!
//! On Linux, [`discover`], [`JogShuttleReader`] and [`watch`] find, grab and read the devices.
//!
//! # What the devices send
//! The HID report is `[shuttle i8 −7..=7, jog counter u8, unused, buttons low, buttons high]`,
//! button *i* in bit *i* (the ShuttleXpress uses bits 4–8). Through evdev:
//! - buttons are key codes 256 + *i* (ShuttlePRO v2: 256–270, ShuttleXpress: 260–264);
//! - the jog is `REL_DIAL` carrying the 8-bit wrapping counter's *value*, not a delta; the
//!   first report after opening only sets the reference;
//! - the shuttle is `REL_WHEEL` carrying the ring position. Because both are declared relative,
//!   the kernel drops them whenever they are zero: the shuttle's return to centre is never
//!   reported, nor is a jog counter of 0.
//!
//! # Synthesised shuttle centre (evdev only)
//! Every report carries all fields, so while the ring is off-centre every frame holds a
//! `REL_WHEEL`. The device sends a report when the ring returns to centre too, which arrives as
//! a frame holding the (unchanged) `REL_DIAL` counter and no `REL_WHEEL`. So: a `SYN_REPORT`
//! frame that contains `REL_DIAL` but no `REL_WHEEL` while the shuttle was off-centre means the
//! ring is back at 0, and [`EvdevParser`] emits `Shuttle { position: 0 }`. This is the
//! workaround of the shuttlepro/ShuttleLinux tools. It is applied from any off-centre position,
//! not only ±1: a ring released from far out snaps back faster than the device reports, so it
//! can skip positions. Frames without `REL_DIAL` (the counter happens to be 0, or the key-only
//! frames evdev synthesises after `SYN_DROPPED`) say nothing about the ring, so they are not
//! used. Known limit: if the jog counter is exactly 0 when the ring returns to centre, the
//! kernel delivers an empty frame, which it drops, and the centre is missed until the next
//! report (1 in 256). The HID path reports 0 and has no such problem.
//!
//! # Permissions
//! Reading `/dev/input/event*` needs read access, normally given to the `input` group
//! (`sudo usermod -aG input $USER`, then log in again) or by a udev rule such as
//! `/etc/udev/rules.d/70-sightline-shuttle.rules`:
//! ```text
//! SUBSYSTEM=="input", KERNEL=="event*", ATTRS{idVendor}=="0b33", ATTRS{idProduct}=="00[123]0", MODE="0660", TAG+="uaccess"
//! ```
//! (`uaccess` gives the user of the active seat access; reload with
//! `sudo udevadm control --reload && sudo udevadm trigger`, or replug the device.)
//!
//! [`InputEvent::Jog`]: sightline_protocol::msg::InputEvent::Jog
//! [`InputEvent::Shuttle`]: sightline_protocol::msg::InputEvent::Shuttle
//! [`InputEvent::ControllerButton`]: sightline_protocol::msg::InputEvent::ControllerButton

use std::collections::BTreeSet;

use sightline_protocol::msg::{InputEvent, SHUTTLE_MAX};

/// evdev event types and codes used here (linux/input-event-codes.h).
mod ev {
    pub const EV_SYN: u16 = 0x00;
    pub const EV_KEY: u16 = 0x01;
    pub const EV_REL: u16 = 0x02;
    pub const SYN_REPORT: u16 = 0;
    pub const SYN_DROPPED: u16 = 3;
    pub const REL_DIAL: u16 = 0x07;
    pub const REL_WHEEL: u16 = 0x08;
    /// `BTN_0`; the controllers' buttons are `BTN_0 + i`.
    pub const BTN_BASE: u16 = 0x100;
    /// Key codes from here on are mouse, joystick, … buttons (`BTN_LEFT`).
    pub const BTN_MOUSE: u16 = 0x110;
}

/// A jog/shuttle model this module knows by USB id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownDevice {
    /// USB vendor id.
    pub vendor: u16,
    /// USB product id.
    pub product: u16,
    /// Marketing name.
    pub name: &'static str,
    /// Number of buttons.
    pub buttons: u8,
}

/// Jog/shuttle controllers known by USB id.
pub const KNOWN_DEVICES: &[KnownDevice] = &[
    KnownDevice {
        vendor: 0x0b33,
        product: 0x0010,
        name: "Contour ShuttlePRO",
        buttons: 13,
    },
    KnownDevice {
        vendor: 0x0b33,
        product: 0x0020,
        name: "Contour ShuttleXpress",
        buttons: 5,
    },
    KnownDevice {
        vendor: 0x0b33,
        product: 0x0030,
        name: "Contour ShuttlePRO v2",
        buttons: 15,
    },
];

/// The known model with this USB id, if any.
pub fn known_device(vendor: u16, product: u16) -> Option<&'static KnownDevice> {
    KNOWN_DEVICES
        .iter()
        .find(|d| d.vendor == vendor && d.product == product)
}

/// Whether this USB id is a known jog/shuttle controller.
pub fn is_jog_shuttle(vendor: u16, product: u16) -> bool {
    known_device(vendor, product).is_some()
}

/// A jog/shuttle controller found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Name the device gives (or the known model's name).
    pub name: String,
    /// USB vendor id.
    pub vendor: u16,
    /// USB product id.
    pub product: u16,
    /// Number of buttons.
    pub buttons: u8,
    /// Whether the id is in [`KNOWN_DEVICES`] (otherwise it was recognised by its capabilities).
    pub known: bool,
}

/// Turns evdev events of a jog/shuttle into [`InputEvent`]s; pure, no I/O.
///
/// Events are collected per `SYN_REPORT` frame and emitted when the frame ends, in the order
/// jog, shuttle, buttons. See the module docs for the synthesised shuttle centre.
#[derive(Debug, Default, Clone)]
pub struct EvdevParser {
    /// Last jog counter; `None` until the first `REL_DIAL`.
    jog: Option<u8>,
    shuttle: i8,
    held: BTreeSet<u8>,
    frame: Frame,
    /// After `SYN_DROPPED`, events up to and including the next `SYN_REPORT` are discarded.
    dropping: bool,
}

#[derive(Debug, Default, Clone)]
struct Frame {
    dial: Option<i32>,
    wheel: Option<i32>,
    buttons: Vec<(u8, bool)>,
}

impl EvdevParser {
    /// A parser with no jog reference, the shuttle centred and no button held.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one evdev event; returns the events of the frame a `SYN_REPORT` completes
    /// (otherwise nothing).
    pub fn push(&mut self, type_: u16, code: u16, value: i32) -> Vec<InputEvent> {
        if self.dropping {
            if type_ == ev::EV_SYN && code == ev::SYN_REPORT {
                self.dropping = false;
            }
            return Vec::new();
        }
        match (type_, code) {
            (ev::EV_SYN, ev::SYN_REPORT) => return self.end_frame(),
            (ev::EV_SYN, ev::SYN_DROPPED) => {
                self.frame = Frame::default();
                self.dropping = true;
            }
            (ev::EV_REL, ev::REL_DIAL) => self.frame.dial = Some(value),
            (ev::EV_REL, ev::REL_WHEEL) => self.frame.wheel = Some(value),
            // Value 2 (autorepeat: still held) is ignored.
            (ev::EV_KEY, c)
                if (ev::BTN_BASE..ev::BTN_BASE + 256).contains(&c)
                    && (value == 0 || value == 1) =>
            {
                self.frame
                    .buttons
                    .push(((c - ev::BTN_BASE) as u8, value == 1));
            }
            _ => {}
        }
        Vec::new()
    }

    fn end_frame(&mut self) -> Vec<InputEvent> {
        let frame = std::mem::take(&mut self.frame);
        let mut out = Vec::new();
        if let Some(dial) = frame.dial {
            // Only the low 8 bits count, whether the descriptor calls the field signed or not.
            let counter = dial as u8;
            if let Some(old) = self.jog {
                let delta = counter.wrapping_sub(old) as i8;
                if delta != 0 {
                    out.push(InputEvent::Jog {
                        delta: delta.into(),
                    });
                }
            }
            self.jog = Some(counter);
        }
        let position = match frame.wheel {
            Some(w) => w.clamp(-i32::from(SHUTTLE_MAX), i32::from(SHUTTLE_MAX)) as i8,
            // See the module docs: a dial report without a wheel means the ring is centred.
            None if frame.dial.is_some() => 0,
            None => self.shuttle,
        };
        if position != self.shuttle {
            self.shuttle = position;
            out.push(InputEvent::Shuttle { position });
        }
        for (index, pressed) in frame.buttons {
            let changed = if pressed {
                self.held.insert(index)
            } else {
                self.held.remove(&index)
            };
            if changed {
                out.push(InputEvent::ControllerButton { index, pressed });
            }
        }
        out
    }

    /// Current shuttle position.
    pub fn shuttle(&self) -> i8 {
        self.shuttle
    }

    /// Buttons held, in index order.
    pub fn held_buttons(&self) -> impl Iterator<Item = u8> + '_ {
        self.held.iter().copied()
    }

    /// Releases everything (device gone or reader stopped): a release for every held button
    /// and `Shuttle { 0 }` if off-centre. The jog reference is forgotten too.
    pub fn release_all(&mut self) -> Vec<InputEvent> {
        let out = release_events(&mut self.held, &mut self.shuttle);
        *self = Self::default();
        out
    }
}

fn release_events(held: &mut BTreeSet<u8>, shuttle: &mut i8) -> Vec<InputEvent> {
    let mut out: Vec<InputEvent> = std::mem::take(held)
        .into_iter()
        .map(|index| InputEvent::ControllerButton {
            index,
            pressed: false,
        })
        .collect();
    if *shuttle != 0 {
        *shuttle = 0;
        out.push(InputEvent::Shuttle { position: 0 });
    }
    out
}

/// A jog/shuttle HID report that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// Not the 5-byte report.
    #[error("jog/shuttle HID report is {got} bytes long, expected {expected}")]
    Length {
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// Shuttle byte outside −7..=7.
    #[error("jog/shuttle HID report has shuttle position {0}, outside -7..=7")]
    Shuttle(i8),
}

/// Length of the jog/shuttle HID input report.
pub const HID_REPORT_LEN: usize = 5;

/// Turns the 5-byte HID input report into [`InputEvent`]s; pure, no I/O.
///
/// The first report sets the jog reference; shuttle changes (including to 0, which HID does
/// report) and button changes are emitted, the buttons as presses/releases in index order.
#[derive(Debug, Default, Clone)]
pub struct HidParser {
    jog: Option<u8>,
    shuttle: i8,
    buttons: u16,
}

impl HidParser {
    /// A parser with no jog reference, the shuttle centred and no button held.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses one report. On error the state is unchanged.
    pub fn push(&mut self, report: &[u8]) -> Result<Vec<InputEvent>, ReportError> {
        let &[shuttle, jog, _, lo, hi] = report else {
            return Err(ReportError::Length {
                got: report.len(),
                expected: HID_REPORT_LEN,
            });
        };
        let shuttle = shuttle as i8;
        if !(-SHUTTLE_MAX..=SHUTTLE_MAX).contains(&shuttle) {
            return Err(ReportError::Shuttle(shuttle));
        }
        let mut out = Vec::new();
        if let Some(old) = self.jog {
            let delta = jog.wrapping_sub(old) as i8;
            if delta != 0 {
                out.push(InputEvent::Jog {
                    delta: delta.into(),
                });
            }
        }
        self.jog = Some(jog);
        if shuttle != self.shuttle {
            self.shuttle = shuttle;
            out.push(InputEvent::Shuttle { position: shuttle });
        }
        let buttons = u16::from_le_bytes([lo, hi]);
        let changed = buttons ^ self.buttons;
        for index in (0..16u8).filter(|i| changed & (1 << i) != 0) {
            out.push(InputEvent::ControllerButton {
                index,
                pressed: buttons & (1 << index) != 0,
            });
        }
        self.buttons = buttons;
        Ok(out)
    }

    /// Releases everything (device gone): a release for every held button and
    /// `Shuttle { 0 }` if off-centre. The jog reference is forgotten too.
    pub fn release_all(&mut self) -> Vec<InputEvent> {
        let mut held: BTreeSet<u8> = (0..16u8).filter(|i| self.buttons & (1 << i) != 0).collect();
        let out = release_events(&mut held, &mut self.shuttle);
        *self = Self::default();
        out
    }
}

/// Why a jog/shuttle device could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JogError {
    /// No read access to the device node.
    #[error(
        "no permission to read {path}: add your user to the `input` group or install a udev \
         rule (see the sightline_viewer::input::jog docs): {source}"
    )]
    Permission {
        /// Device node.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The device node could not be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// Device node.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Exclusive access (`EVIOCGRAB`) was refused, usually because another program holds it.
    #[error("cannot grab {path} for exclusive use (does another program hold it?): {source}")]
    Grab {
        /// Device node.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The device is not a jog/shuttle controller.
    #[error("{path} is not a jog/shuttle controller")]
    NotJogShuttle {
        /// Device node.
        path: std::path::PathBuf,
    },
    /// The reader thread could not be started.
    #[error("cannot start the jog/shuttle reader: {0}")]
    Thread(std::io::Error),
}

impl JogError {
    /// The device node concerned, if any.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Self::Permission { path, .. }
            | Self::Open { path, .. }
            | Self::Grab { path, .. }
            | Self::NotJogShuttle { path } => Some(path),
            Self::Thread(_) => None,
        }
    }
}

#[cfg(target_os = "linux")]
pub use linux::{discover, watch, JogShuttleReader, WatchHandle};

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::{HashMap, HashSet};
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc, Mutex};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use evdev::{Device, KeyCode, RelativeAxisCode};
    use sightline_protocol::msg::InputEvent;
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    use super::{ev, known_device, DeviceInfo, EvdevParser, JogError};

    /// Linux `ENODEV`: the device was unplugged.
    const ENODEV: i32 = 19;
    const INPUT_DIR: &str = "/dev/input";
    /// How long a controller that could not be opened or grabbed is left alone.
    const RETRY_FAILED: Duration = Duration::from_secs(30);

    type NodeId = (u64, i64, i64);

    type Callback = Box<dyn FnMut(InputEvent) + Send>;

    /// What a device is, from its capabilities, if it is a jog/shuttle: a known USB id, or
    /// `REL_DIAL` + `REL_WHEEL` + buttons from `BTN_0` on.
    fn identify(dev: &Device) -> Option<DeviceInfo> {
        let id = dev.input_id();
        let name = dev.name().unwrap_or("").to_owned();
        if let Some(k) = known_device(id.vendor(), id.product()) {
            let name = if name.is_empty() {
                k.name.to_owned()
            } else {
                name
            };
            return Some(DeviceInfo {
                name,
                vendor: k.vendor,
                product: k.product,
                buttons: k.buttons,
                known: true,
            });
        }
        let rel = dev.supported_relative_axes()?;
        if !rel.contains(RelativeAxisCode::REL_DIAL) || !rel.contains(RelativeAxisCode::REL_WHEEL) {
            return None;
        }
        let keys = dev.supported_keys()?;
        let buttons = (ev::BTN_BASE..ev::BTN_MOUSE)
            .filter(|&c| keys.contains(KeyCode::new(c)))
            .count();
        (buttons > 0).then(|| DeviceInfo {
            name,
            vendor: id.vendor(),
            product: id.product(),
            buttons: buttons as u8,
            known: false,
        })
    }

    /// The USB id of an event node from sysfs (readable without access to the node).
    fn sysfs_id(path: &Path) -> Option<(u16, u16)> {
        let node = path.file_name()?.to_str()?;
        let dir = Path::new("/sys/class/input").join(node).join("device/id");
        let read = |f: &str| {
            let s = std::fs::read_to_string(dir.join(f)).ok()?;
            u16::from_str_radix(s.trim(), 16).ok()
        };
        Some((read("vendor")?, read("product")?))
    }

    fn open_error(path: &Path, source: io::Error) -> JogError {
        let path = path.to_owned();
        if source.kind() == io::ErrorKind::PermissionDenied {
            JogError::Permission { path, source }
        } else {
            JogError::Open { path, source }
        }
    }

    /// Result of one look at `/dev/input`.
    #[derive(Default)]
    struct Scan {
        /// Controllers found.
        found: Vec<(PathBuf, DeviceInfo)>,
        /// Known controllers (by sysfs id) that could not be opened.
        failed: Vec<JogError>,
        /// Nodes looked at that are not controllers (or unreadable and not known).
        others: Vec<PathBuf>,
    }

    /// Looks at `/dev/input/event*`, except the nodes in `skip`.
    fn scan(skip: &HashSet<PathBuf>) -> Scan {
        let mut scan = Scan::default();
        let Ok(dir) = std::fs::read_dir(INPUT_DIR) else {
            return scan;
        };
        let mut paths: Vec<PathBuf> = dir
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("event"))
            })
            .filter(|p| !skip.contains(p))
            .collect();
        paths.sort();
        for path in paths {
            match Device::open(&path) {
                Ok(dev) => match identify(&dev) {
                    Some(info) => scan.found.push((path, info)),
                    None => scan.others.push(path),
                },
                Err(e) => {
                    if sysfs_id(&path).is_some_and(|(v, p)| known_device(v, p).is_some()) {
                        scan.failed.push(open_error(&path, e));
                    } else {
                        scan.others.push(path);
                    }
                }
            }
        }
        scan
    }

    /// Identity of a device node: a replugged device gets a new node.
    fn node_id(path: &Path) -> Option<NodeId> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some((m.ino(), m.ctime(), m.ctime_nsec()))
    }

    /// Jog/shuttle controllers on this machine: known USB ids, and any device with
    /// `REL_DIAL` + `REL_WHEEL` + buttons from `BTN_0` (256) on. Empty when `/dev/input` does
    /// not exist. Known controllers that cannot be opened are logged with a permission hint.
    pub fn discover() -> Vec<(PathBuf, DeviceInfo)> {
        let scan = scan(&HashSet::new());
        for e in scan.failed {
            tracing::warn!("jog/shuttle: {e}");
        }
        scan.found
    }

    /// Reads one grabbed jog/shuttle device on a background thread and delivers its events to
    /// a callback. Dropping it stops the thread and releases the grab.
    ///
    /// When the thread ends (dropped, device unplugged, read error) it delivers a release for
    /// every held button and `Shuttle { 0 }` if the ring was off-centre, so nothing stays held
    /// on the host.
    pub struct JogShuttleReader {
        path: PathBuf,
        info: DeviceInfo,
        finished: Arc<AtomicBool>,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<JoinHandle<()>>,
    }

    impl std::fmt::Debug for JogShuttleReader {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("JogShuttleReader")
                .field("path", &self.path)
                .field("info", &self.info)
                .field("finished", &self.is_finished())
                .finish()
        }
    }

    impl JogShuttleReader {
        /// Opens `path`, checks that it is a jog/shuttle, grabs it (`EVIOCGRAB`, so the local
        /// desktop does not act on it too) and starts reading.
        pub fn open(path: impl AsRef<Path>, callback: Callback) -> Result<Self, JogError> {
            let path = path.as_ref().to_owned();
            let mut dev = Device::open(&path).map_err(|e| open_error(&path, e))?;
            let info =
                identify(&dev).ok_or_else(|| JogError::NotJogShuttle { path: path.clone() })?;
            dev.grab().map_err(|source| JogError::Grab {
                path: path.clone(),
                source,
            })?;
            dev.set_nonblocking(true)
                .map_err(|e| open_error(&path, e))?;
            let finished = Arc::new(AtomicBool::new(false));
            let (stop, stop_rx) = tokio::sync::oneshot::channel();
            let thread = std::thread::Builder::new()
                .name(format!("jog {}", path.display()))
                .spawn({
                    let (path, finished) = (path.clone(), finished.clone());
                    move || {
                        read_loop(dev, &path, stop_rx, callback);
                        finished.store(true, Ordering::Release);
                    }
                })
                .map_err(JogError::Thread)?;
            tracing::info!("jog/shuttle: reading {} ({})", path.display(), info.name);
            Ok(Self {
                path,
                info,
                finished,
                stop: Some(stop),
                thread: Some(thread),
            })
        }

        /// Device node.
        pub fn path(&self) -> &Path {
            &self.path
        }

        /// What the device is.
        pub fn info(&self) -> &DeviceInfo {
            &self.info
        }

        /// Whether the reader thread has ended (device unplugged or read error).
        pub fn is_finished(&self) -> bool {
            self.finished.load(Ordering::Acquire)
        }
    }

    impl Drop for JogShuttleReader {
        fn drop(&mut self) {
            drop(self.stop.take());
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn read_loop(
        dev: Device,
        path: &Path,
        mut stop: tokio::sync::oneshot::Receiver<()>,
        mut callback: Callback,
    ) {
        let mut parser = EvdevParser::new();
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::warn!("jog/shuttle {}: cannot start reader: {e}", path.display());
                return;
            }
        };
        rt.block_on(async {
            // SAFETY: `Device` owns its file descriptor (an `OwnedFd`), keeps it open until
            // dropped and never replaces it, so it stays valid for the `AsyncFd`'s lifetime.
            let registered = unsafe { AsyncFd::register_with_interest(dev, Interest::READABLE) };
            let mut fd = match registered {
                Ok(fd) => fd,
                Err(e) => {
                    tracing::warn!("jog/shuttle {}: cannot poll: {e}", path.display());
                    return;
                }
            };
            loop {
                let mut guard = tokio::select! {
                    _ = &mut stop => break,
                    guard = fd.readable_mut() => match guard {
                        Ok(g) => g,
                        Err(e) => {
                            tracing::warn!("jog/shuttle {}: poll failed: {e}", path.display());
                            break;
                        }
                    },
                };
                let read = guard.try_io(|d| {
                    let evs = d.get_mut().fetch_events()?;
                    Ok(evs
                        .map(|e| (e.event_type().0, e.code(), e.value()))
                        .collect::<Vec<_>>())
                });
                match read {
                    Ok(Ok(events)) => {
                        for (t, c, v) in events {
                            parser.push(t, c, v).into_iter().for_each(&mut callback);
                        }
                    }
                    Ok(Err(e)) if e.raw_os_error() == Some(ENODEV) => {
                        tracing::info!("jog/shuttle {}: unplugged", path.display());
                        break;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!("jog/shuttle {}: read failed: {e}", path.display());
                        break;
                    }
                    Err(_would_block) => {}
                }
            }
        });
        parser.release_all().into_iter().for_each(&mut callback);
    }

    /// Keeps jog/shuttle controllers open while they come and go; see [`watch`]. Dropping it
    /// stops watching and closes (and releases) every device.
    pub struct WatchHandle {
        stop: Option<mpsc::Sender<()>>,
        open: Arc<Mutex<Vec<(PathBuf, DeviceInfo)>>>,
        thread: Option<JoinHandle<()>>,
    }

    impl std::fmt::Debug for WatchHandle {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("WatchHandle")
                .field("devices", &self.devices())
                .finish()
        }
    }

    impl WatchHandle {
        /// Controllers open now.
        pub fn devices(&self) -> Vec<(PathBuf, DeviceInfo)> {
            self.open.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }
    }

    impl Drop for WatchHandle {
        fn drop(&mut self) {
            drop(self.stop.take());
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// Watches for jog/shuttle controllers: rescans `/dev/input` every second, opens and grabs
    /// new ones, and notices unplugging (a read fails with `ENODEV`), at which point the held
    /// buttons and an off-centre shuttle are released through `callback`. All devices share the
    /// callback (button indices of two devices are not told apart). A controller that cannot be
    /// opened or grabbed is logged and tried again after 30 s or when it is replugged; other
    /// nodes are looked at once per appearance.
    pub fn watch(callback: Callback) -> WatchHandle {
        let (stop, stop_rx) = mpsc::channel::<()>();
        let open = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Mutex::new(callback));
        let thread = std::thread::Builder::new().name("jog watch".into()).spawn({
            let open = open.clone();
            move || watch_loop(&stop_rx, &open, &shared)
        });
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!("jog/shuttle: cannot start the device watcher: {e}");
                None
            }
        };
        WatchHandle {
            stop: Some(stop),
            open,
            thread,
        }
    }

    fn watch_loop(
        stop: &mpsc::Receiver<()>,
        open: &Mutex<Vec<(PathBuf, DeviceInfo)>>,
        shared: &Arc<Mutex<Callback>>,
    ) {
        let mut readers: HashMap<PathBuf, JogShuttleReader> = HashMap::new();
        // Nodes already looked at that are not usable controllers, with their identity and,
        // for failures, when to try again. Opening every node every second would be wasteful.
        let mut settled: HashMap<PathBuf, (Option<NodeId>, Option<Instant>)> = HashMap::new();
        loop {
            readers.retain(|_, r| !r.is_finished());
            let now = Instant::now();
            settled.retain(|p, (id, retry)| node_id(p) == *id && retry.is_none_or(|t| now < t));
            let skip: HashSet<PathBuf> = readers.keys().chain(settled.keys()).cloned().collect();
            let scan = scan(&skip);
            for path in scan.others {
                let id = node_id(&path);
                settled.insert(path, (id, None));
            }
            let mut failed = |path: &Path| {
                settled.insert(path.to_owned(), (node_id(path), Some(now + RETRY_FAILED)));
            };
            for e in scan.failed {
                tracing::warn!("jog/shuttle: {e}");
                if let Some(path) = e.path() {
                    failed(path);
                }
            }
            for (path, _) in scan.found {
                let shared = shared.clone();
                let callback: Callback = Box::new(move |ev| {
                    (shared.lock().unwrap_or_else(|e| e.into_inner()))(ev);
                });
                match JogShuttleReader::open(&path, callback) {
                    Ok(r) => {
                        readers.insert(path, r);
                    }
                    Err(e) => {
                        tracing::warn!("jog/shuttle: {e}");
                        failed(&path);
                    }
                }
            }
            *open.lock().unwrap_or_else(|e| e.into_inner()) = readers
                .iter()
                .map(|(p, r)| (p.clone(), r.info().clone()))
                .collect();
            match stop.recv_timeout(Duration::from_secs(1)) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                _ => break,
            }
        }
        // Dropping the readers joins their threads, which release what is held.
        drop(readers);
        open.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYN: u16 = 0;
    const KEY: u16 = 1;
    const REL: u16 = 2;
    const MSC: u16 = 4;
    const DIAL: u16 = 7;
    const WHEEL: u16 = 8;
    const SCAN: u16 = 4;

    /// Feeds a recorded sequence, returning everything emitted.
    fn feed(p: &mut EvdevParser, events: &[(u16, u16, i32)]) -> Vec<InputEvent> {
        events
            .iter()
            .flat_map(|&(t, c, v)| p.push(t, c, v))
            .collect()
    }

    fn jog(delta: i16) -> InputEvent {
        InputEvent::Jog { delta }
    }
    fn shuttle(position: i8) -> InputEvent {
        InputEvent::Shuttle { position }
    }
    fn button(index: u8, pressed: bool) -> InputEvent {
        InputEvent::ControllerButton { index, pressed }
    }

    /// Jog turned clockwise one detent right after opening: counter 0xfd → 0xfe.
    /// The first report only sets the reference.
    const FIRST_DIAL: &[(u16, u16, i32)] = &[(REL, DIAL, 0xfe), (SYN, 0, 0)];

    /// Jog clockwise 3 detents from counter 254: 255, 0 (a zero REL_DIAL is dropped by the
    /// kernel, so that report arrives as nothing), 1.
    const JOG_CW_WRAP: &[(u16, u16, i32)] =
        &[(REL, DIAL, 255), (SYN, 0, 0), (REL, DIAL, 1), (SYN, 0, 0)];

    /// Jog anticlockwise 2 detents from counter 1: 0 (dropped by the kernel), 255, 254.
    const JOG_CCW_WRAP: &[(u16, u16, i32)] =
        &[(REL, DIAL, 255), (SYN, 0, 0), (REL, DIAL, 254), (SYN, 0, 0)];

    /// Shuttle ring turned right to +3, let back: +2, +1, centre (a report with only the
    /// dial counter, 0x40). Each report re-sends the dial counter.
    const SHUTTLE_RIGHT_AND_BACK: &[(u16, u16, i32)] = &[
        (REL, WHEEL, 1),
        (REL, DIAL, 0x40),
        (SYN, 0, 0),
        (REL, WHEEL, 2),
        (REL, DIAL, 0x40),
        (SYN, 0, 0),
        (REL, WHEEL, 3),
        (REL, DIAL, 0x40),
        (SYN, 0, 0),
        (REL, WHEEL, 2),
        (REL, DIAL, 0x40),
        (SYN, 0, 0),
        (REL, WHEEL, 1),
        (REL, DIAL, 0x40),
        (SYN, 0, 0),
        (REL, DIAL, 0x40),
        (SYN, 0, 0),
    ];

    /// Shuttle ring turned fully left (−1 … −7, fast: −1, −3, −5, −7), released: it snaps
    /// back −4, −1, centre.
    const SHUTTLE_FULL_LEFT_AND_BACK: &[(u16, u16, i32)] = &[
        (REL, WHEEL, -1),
        (REL, DIAL, 0x40),
        (SYN, 0, 0),
        (REL, WHEEL, -3),
        (REL, DIAL, 0x40),
        (SYN, 0, 0),
        (REL, WHEEL, -5),
        (REL, DIAL, 0x40),
        (SYN, 0, 0),
        (REL, WHEEL, -7),
        (REL, DIAL, 0x40),
        (SYN, 0, 0),
        (REL, WHEEL, -4),
        (REL, DIAL, 0x40),
        (SYN, 0, 0),
        (REL, WHEEL, -1),
        (REL, DIAL, 0x40),
        (SYN, 0, 0),
        (REL, DIAL, 0x40),
        (SYN, 0, 0),
    ];

    /// Shuttle at +5 released so fast that the next report is already the centre.
    const SHUTTLE_SNAP_BACK: &[(u16, u16, i32)] = &[
        (REL, WHEEL, 5),
        (REL, DIAL, 0x40),
        (SYN, 0, 0),
        (REL, DIAL, 0x40),
        (SYN, 0, 0),
    ];

    /// Jog turned one detent while the shuttle is held at +2: the wheel is re-sent, so the
    /// shuttle stays.
    const JOG_WHILE_SHUTTLE_HELD: &[(u16, u16, i32)] = &[
        (REL, WHEEL, 2),
        (REL, DIAL, 0x40),
        (SYN, 0, 0),
        (REL, WHEEL, 2),
        (REL, DIAL, 0x41),
        (SYN, 0, 0),
    ];

    /// ShuttlePRO v2: top-left button (BTN_0) pressed and released, then the bottom-right
    /// button (code 270) pressed and released. Each report re-sends the dial counter.
    const BUTTONS_0_AND_14: &[(u16, u16, i32)] = &[
        (REL, DIAL, 0x40),
        (MSC, SCAN, 0x90001),
        (KEY, 256, 1),
        (SYN, 0, 0),
        (REL, DIAL, 0x40),
        (MSC, SCAN, 0x90001),
        (KEY, 256, 0),
        (SYN, 0, 0),
        (REL, DIAL, 0x40),
        (MSC, SCAN, 0x9000f),
        (KEY, 270, 1),
        (SYN, 0, 0),
        (REL, DIAL, 0x40),
        (MSC, SCAN, 0x9000f),
        (KEY, 270, 0),
        (SYN, 0, 0),
    ];

    /// Button 2 held long enough for autorepeat, then released.
    const AUTOREPEAT: &[(u16, u16, i32)] = &[
        (KEY, 258, 1),
        (SYN, 0, 0),
        (KEY, 258, 2),
        (SYN, 0, 0),
        (KEY, 258, 2),
        (SYN, 0, 0),
        (KEY, 258, 0),
        (SYN, 0, 0),
    ];

    /// ShuttleXpress: its five buttons are codes 260–264; the leftmost pressed and released.
    const XPRESS_BUTTON: &[(u16, u16, i32)] = &[
        (REL, DIAL, 9),
        (KEY, 260, 1),
        (SYN, 0, 0),
        (REL, DIAL, 9),
        (KEY, 260, 0),
        (SYN, 0, 0),
    ];

    fn with_reference(counter: i32) -> EvdevParser {
        let mut p = EvdevParser::new();
        assert!(feed(&mut p, &[(REL, DIAL, counter), (SYN, 0, 0)]).is_empty());
        p
    }

    #[test]
    fn evdev_first_dial_report_only_sets_reference() {
        let mut p = EvdevParser::new();
        assert_eq!(feed(&mut p, FIRST_DIAL), vec![]);
        assert_eq!(
            feed(&mut p, &[(REL, DIAL, 0xff), (SYN, 0, 0)]),
            vec![jog(1)]
        );
    }

    #[test]
    fn evdev_emits_only_at_syn_report() {
        let mut p = with_reference(10);
        assert!(p.push(REL, DIAL, 11).is_empty());
        assert_eq!(p.push(SYN, 0, 0), vec![jog(1)]);
    }

    #[test]
    fn evdev_jog_clockwise_across_wrap() {
        let mut p = with_reference(254);
        let out = feed(&mut p, JOG_CW_WRAP);
        assert_eq!(out, vec![jog(1), jog(2)]);
    }

    #[test]
    fn evdev_jog_anticlockwise_across_wrap() {
        let mut p = with_reference(1);
        assert_eq!(feed(&mut p, JOG_CCW_WRAP), vec![jog(-2), jog(-1)]);
    }

    #[test]
    fn evdev_shuttle_centre_is_synthesised() {
        let mut p = with_reference(0x40);
        let out = feed(&mut p, SHUTTLE_RIGHT_AND_BACK);
        let want: Vec<_> = [1, 2, 3, 2, 1, 0].into_iter().map(shuttle).collect();
        assert_eq!(out, want);
        assert_eq!(p.shuttle(), 0);
    }

    #[test]
    fn evdev_shuttle_full_left_and_back() {
        let mut p = with_reference(0x40);
        let out = feed(&mut p, SHUTTLE_FULL_LEFT_AND_BACK);
        let want: Vec<_> = [-1, -3, -5, -7, -4, -1, 0]
            .into_iter()
            .map(shuttle)
            .collect();
        assert_eq!(out, want);
    }

    #[test]
    fn evdev_shuttle_snap_back_from_far_out() {
        let mut p = with_reference(0x40);
        assert_eq!(
            feed(&mut p, SHUTTLE_SNAP_BACK),
            vec![shuttle(5), shuttle(0)]
        );
    }

    #[test]
    fn evdev_jog_while_shuttle_held_keeps_shuttle() {
        let mut p = with_reference(0x40);
        assert_eq!(
            feed(&mut p, JOG_WHILE_SHUTTLE_HELD),
            vec![shuttle(2), jog(1)]
        );
        assert_eq!(p.shuttle(), 2);
    }

    #[test]
    fn evdev_key_only_frame_does_not_centre_shuttle() {
        // As evdev synthesises after SYN_DROPPED: keys only, no REL.
        let mut p = with_reference(0x40);
        feed(&mut p, &[(REL, WHEEL, 4), (REL, DIAL, 0x40), (SYN, 0, 0)]);
        assert_eq!(
            feed(&mut p, &[(KEY, 257, 1), (SYN, 0, 0)]),
            vec![button(1, true)]
        );
        assert_eq!(p.shuttle(), 4);
    }

    #[test]
    fn evdev_buttons_0_and_14() {
        let mut p = with_reference(0x40);
        let out = feed(&mut p, BUTTONS_0_AND_14);
        assert_eq!(
            out,
            vec![
                button(0, true),
                button(0, false),
                button(14, true),
                button(14, false)
            ]
        );
    }

    #[test]
    fn evdev_autorepeat_ignored() {
        let mut p = EvdevParser::new();
        assert_eq!(
            feed(&mut p, AUTOREPEAT),
            vec![button(2, true), button(2, false)]
        );
    }

    #[test]
    fn evdev_shuttlexpress_buttons_are_4_to_8() {
        let mut p = EvdevParser::new();
        assert_eq!(
            feed(&mut p, XPRESS_BUTTON),
            vec![button(4, true), button(4, false)]
        );
    }

    #[test]
    fn evdev_syn_dropped_discards_until_next_report() {
        let mut p = with_reference(10);
        p.push(REL, DIAL, 11);
        p.push(SYN, 3, 0); // SYN_DROPPED
        assert!(p.push(KEY, 256, 1).is_empty());
        assert!(p.push(SYN, 0, 0).is_empty());
        // The counter catches up: nothing is lost overall.
        assert_eq!(feed(&mut p, &[(REL, DIAL, 12), (SYN, 0, 0)]), vec![jog(2)]);
    }

    #[test]
    fn evdev_release_all_releases_held_and_centres() {
        let mut p = with_reference(0x40);
        feed(
            &mut p,
            &[
                (REL, WHEEL, -3),
                (REL, DIAL, 0x40),
                (KEY, 256, 1),
                (KEY, 270, 1),
                (SYN, 0, 0),
            ],
        );
        assert_eq!(p.held_buttons().collect::<Vec<_>>(), vec![0, 14]);
        assert_eq!(
            p.release_all(),
            vec![button(0, false), button(14, false), shuttle(0)]
        );
        assert!(p.release_all().is_empty());
    }

    fn hid(shuttle: i8, jog: u8, buttons: u16) -> [u8; 5] {
        let [lo, hi] = buttons.to_le_bytes();
        [shuttle as u8, jog, 0, lo, hi]
    }

    fn feed_hid(p: &mut HidParser, reports: &[[u8; 5]]) -> Vec<InputEvent> {
        reports.iter().flat_map(|r| p.push(r).unwrap()).collect()
    }

    #[test]
    fn hid_first_report_only_sets_reference() {
        let mut p = HidParser::new();
        assert_eq!(p.push(&hid(0, 0x80, 0)).unwrap(), vec![]);
        assert_eq!(p.push(&hid(0, 0x81, 0)).unwrap(), vec![jog(1)]);
    }

    #[test]
    fn hid_jog_clockwise_across_wrap() {
        let mut p = HidParser::new();
        // Counter 254, then clockwise 3 detents: 255, 0, 1 (HID reports the 0).
        let out = feed_hid(
            &mut p,
            &[hid(0, 254, 0), hid(0, 255, 0), hid(0, 0, 0), hid(0, 1, 0)],
        );
        assert_eq!(out, vec![jog(1), jog(1), jog(1)]);
    }

    #[test]
    fn hid_jog_anticlockwise_across_wrap() {
        let mut p = HidParser::new();
        let out = feed_hid(&mut p, &[hid(0, 1, 0), hid(0, 0, 0), hid(0, 254, 0)]);
        assert_eq!(out, vec![jog(-1), jog(-2)]);
    }

    #[test]
    fn hid_shuttle_right_and_back_reports_centre() {
        let mut p = HidParser::new();
        let reports: Vec<_> = [0, 1, 2, 3, 2, 1, 0]
            .iter()
            .map(|&s| hid(s, 7, 0))
            .collect();
        let want: Vec<_> = [1, 2, 3, 2, 1, 0].into_iter().map(shuttle).collect();
        assert_eq!(feed_hid(&mut p, &reports), want);
    }

    #[test]
    fn hid_shuttle_full_left_and_back() {
        let mut p = HidParser::new();
        let out = feed_hid(&mut p, &[hid(-7, 7, 0), hid(-3, 7, 0), hid(0, 7, 0)]);
        assert_eq!(out, vec![shuttle(-7), shuttle(-3), shuttle(0)]);
    }

    #[test]
    fn hid_buttons_0_and_14_in_index_order() {
        let mut p = HidParser::new();
        let out = feed_hid(
            &mut p,
            &[
                hid(0, 7, 0),
                hid(0, 7, 1 | 1 << 14),
                hid(0, 7, 1 << 14),
                hid(0, 7, 0),
            ],
        );
        assert_eq!(
            out,
            vec![
                button(0, true),
                button(14, true),
                button(0, false),
                button(14, false)
            ]
        );
    }

    #[test]
    fn hid_wrong_length_is_an_error() {
        let mut p = HidParser::new();
        assert_eq!(
            p.push(&[0, 1, 0, 0]),
            Err(ReportError::Length {
                got: 4,
                expected: 5
            })
        );
        assert!(p.push(&[0; 6]).is_err());
        // State unchanged: the next good report is still the first.
        assert_eq!(p.push(&hid(0, 5, 0)).unwrap(), vec![]);
    }

    #[test]
    fn hid_shuttle_out_of_range_is_an_error() {
        let mut p = HidParser::new();
        assert_eq!(p.push(&hid(8, 0, 0)), Err(ReportError::Shuttle(8)));
        assert_eq!(p.push(&hid(-8, 0, 0)), Err(ReportError::Shuttle(-8)));
    }

    #[test]
    fn hid_release_all() {
        let mut p = HidParser::new();
        feed_hid(&mut p, &[hid(3, 7, 1 << 4 | 1 << 8)]);
        assert_eq!(
            p.release_all(),
            vec![button(4, false), button(8, false), shuttle(0)]
        );
    }

    #[test]
    fn known_devices() {
        assert!(is_jog_shuttle(0x0b33, 0x0030));
        assert!(is_jog_shuttle(0x0b33, 0x0020));
        assert_eq!(known_device(0x0b33, 0x0030).unwrap().buttons, 15);
        assert_eq!(known_device(0x0b33, 0x0020).unwrap().buttons, 5);
        assert!(!is_jog_shuttle(0x046d, 0xc077));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn discover_runs_without_devices() {
        let found = discover();
        if !std::path::Path::new("/dev/input").exists() {
            assert!(found.is_empty());
        }
        for (path, info) in &found {
            println!("found {} {:?}", path.display(), info);
        }
    }
}
