//! Pen input on X11 from XInput2 valuators (winit 0.30 gives no pen data).
//!
//! Tablet drivers (xf86-input-wacom, xf86-input-libinput) expose each tool as a slave pointer
//! device whose valuators carry the pen axes, labelled by atoms: `"Abs X"`, `"Abs Y"`,
//! `"Abs Pressure"`, `"Abs Tilt X"`, `"Abs Tilt Y"`, and rotation as `"Abs Wheel"` (Wacom Art
//! Pen), `"Abs Rotation"` or `"Abs Rotary Z"`. [`ValuatorMap`] maps those to pen axes and
//! normalises them into a [`PenEvent`]; [`PenTracker`] follows one device's contact and barrel
//! buttons; [`X11PenInput`] reads the devices' XI2 events on its own X connection.
//!
//! Normalisation:
//! - **position** is the event's window-relative position (XI2 `event_x/event_y`, FP16.16),
//!   which the server has already mapped from tablet to screen with sub-pixel precision, passed
//!   through the caller's window→stream mapping. The `Abs X/Y` valuators are in tablet units
//!   (e.g. 0..44800) and are only kept in the map for reference;
//! - **pressure** maps the valuator's `min..=max` linearly onto `0..=65535`;
//! - **tilt**: when the valuator has a resolution it is taken, as the kernel and
//!   xf86-input-wacom define it for tilt, as units per radian (Wacom: −64..63 at 57 units/rad,
//!   i.e. about one unit per degree, so 63 → 63.3°). Without a resolution the range is mapped
//!   linearly onto ±60°, the mechanical limit of Wacom pens. Clamped to ±90°;
//! - **rotation** maps `min..=max` (taken as integer steps) onto `0..36000` hundredths of a
//!   degree, `min` being 0°.
//!
//! The tool is [`PenTool::Eraser`] when the device name contains "eraser" (xf86-input-wacom
//! names its eraser device "… eraser", libinput "… Eraser …"), else [`PenTool::Pen`].
//! Contact: XI2 button 1 press/release is the tip touching/lifting, motion in between is
//! `Contact` or `Hover`; buttons 2 and 3 are the barrel buttons; leaving the window (XI2 Leave
//! caused by the pen) or proximity out (XI1 `ProximityOut`) is `Leave`.
//!
//! The pen also moves the core pointer, so winit reports its motion and tip as mouse input as
//! well: the caller should ignore winit pointer events while a pen is in range.

use std::collections::HashMap;

use sightline_protocol::msg::{
    PenButtons, PenContact, PenEvent, PenTool, MAX_TILT, ROTATION_RANGE,
};
use x11rb::protocol::xinput::Fp3232;

/// What a valuator measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValuatorRole {
    /// Tablet X (tablet units).
    X,
    /// Tablet Y (tablet units).
    Y,
    /// Tip pressure.
    Pressure,
    /// Tilt towards +x.
    TiltX,
    /// Tilt towards +y.
    TiltY,
    /// Barrel rotation.
    Rotation,
}

impl ValuatorRole {
    /// The role of a valuator label (its atom's name), if it is a pen axis.
    pub fn from_label(label: &str) -> Option<Self> {
        Some(match label {
            "Abs X" => Self::X,
            "Abs Y" => Self::Y,
            "Abs Pressure" => Self::Pressure,
            "Abs Tilt X" => Self::TiltX,
            "Abs Tilt Y" => Self::TiltY,
            "Abs Wheel" | "Abs Rotation" | "Abs Rotary Z" => Self::Rotation,
            _ => return None,
        })
    }
}

/// One valuator of an XI2 device, as its valuator class describes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AxisInfo<'a> {
    /// Valuator number.
    pub number: u16,
    /// Label atom's name (empty when unlabelled).
    pub label: &'a str,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Units per metre (position) or per radian (angles); 0 when unknown.
    pub resolution: u32,
}

/// A valuator that carries a pen axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Valuator {
    /// Valuator number.
    pub number: u16,
    /// What it measures.
    pub role: ValuatorRole,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Units per metre (position) or per radian (angles); 0 when unknown.
    pub resolution: u32,
}

impl Valuator {
    /// Position of `v` in `min..=max` as 0..=1.
    fn fraction(&self, v: f64) -> f64 {
        if self.max > self.min {
            ((v - self.min) / (self.max - self.min)).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Pressure as 0..=65535.
    pub fn pressure(&self, v: f64) -> u16 {
        (self.fraction(v) * 65535.0).round() as u16
    }

    /// Tilt in hundredths of a degree, ±9000 (see the module docs).
    pub fn tilt(&self, v: f64) -> i16 {
        let degrees = if self.resolution > 0 {
            (v / f64::from(self.resolution)).to_degrees()
        } else if self.max > self.min {
            let centre = (self.min + self.max) / 2.0;
            (v - centre) / ((self.max - self.min) / 2.0) * 60.0
        } else {
            0.0
        };
        let max = f64::from(MAX_TILT);
        (degrees * 100.0).round().clamp(-max, max) as i16
    }

    /// Rotation in hundredths of a degree, 0..36000.
    pub fn rotation(&self, v: f64) -> u16 {
        let steps = self.max - self.min + 1.0;
        if steps <= 1.0 {
            return 0;
        }
        let fraction = ((v - self.min) / steps).rem_euclid(1.0);
        ((fraction * f64::from(ROTATION_RANGE)).round() as u32 % u32::from(ROTATION_RANGE)) as u16
    }
}

/// The pen axes of an XI2 device, by valuator number.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValuatorMap {
    valuators: Vec<Valuator>,
}

impl ValuatorMap {
    /// Builds the map from a device's valuator classes; unknown labels are skipped, and of two
    /// valuators with the same role the first is kept.
    pub fn new<'a>(axes: impl IntoIterator<Item = AxisInfo<'a>>) -> Self {
        let mut valuators: Vec<Valuator> = Vec::new();
        for a in axes {
            let Some(role) = ValuatorRole::from_label(a.label) else {
                continue;
            };
            if valuators.iter().all(|v| v.role != role) {
                valuators.push(Valuator {
                    number: a.number,
                    role,
                    min: a.min,
                    max: a.max,
                    resolution: a.resolution,
                });
            }
        }
        Self { valuators }
    }

    /// The valuator with this role.
    pub fn get(&self, role: ValuatorRole) -> Option<&Valuator> {
        self.valuators.iter().find(|v| v.role == role)
    }

    /// Whether the device has a pressure valuator (what makes it a pen here).
    pub fn has_pressure(&self) -> bool {
        self.get(ValuatorRole::Pressure).is_some()
    }

    /// The valuators that carry pen axes.
    pub fn valuators(&self) -> &[Valuator] {
        &self.valuators
    }

    /// A pen sample. `window` is the event's window-relative position (pixels, sub-pixel),
    /// mapped to stream pixels by `window_to_stream`; `valuators` are `(number, value)` pairs
    /// (axes missing from them read as 0).
    pub fn pen_event(
        &self,
        window: (f64, f64),
        valuators: &[(u16, f64)],
        window_to_stream: impl Fn(f64, f64) -> (f32, f32),
        tool: PenTool,
        buttons: PenButtons,
        contact: PenContact,
    ) -> PenEvent {
        let value = |role| {
            let v = self.get(role)?;
            let &(_, x) = valuators.iter().find(|(n, _)| *n == v.number)?;
            Some((v, x))
        };
        let (x, y) = window_to_stream(window.0, window.1);
        PenEvent {
            tool,
            x,
            y,
            pressure: value(ValuatorRole::Pressure).map_or(0, |(v, x)| v.pressure(x)),
            tilt_x: value(ValuatorRole::TiltX).map_or(0, |(v, x)| v.tilt(x)),
            tilt_y: value(ValuatorRole::TiltY).map_or(0, |(v, x)| v.tilt(x)),
            rotation: value(ValuatorRole::Rotation).map_or(0, |(v, x)| v.rotation(x)),
            buttons,
            contact,
        }
    }
}

/// The tool an XI2 device is, from its name: "eraser" anywhere (any case) → eraser.
pub fn tool_from_device_name(name: &str) -> PenTool {
    if name.to_ascii_lowercase().contains("eraser") {
        PenTool::Eraser
    } else {
        PenTool::Pen
    }
}

/// Whether a slave pointer device is a pen: it has a pressure valuator and is not a touch
/// device (touchpads and touchscreens driven by xf86-input-evdev can have pressure too).
pub fn is_pen_device(name: &str, map: &ValuatorMap) -> bool {
    map.has_pressure() && !name.to_ascii_lowercase().contains("touch")
}

/// An XI2 FP32.32 number as `f64`.
pub fn fp3232_to_f64(v: Fp3232) -> f64 {
    f64::from(v.integral) + f64::from(v.frac) / 4_294_967_296.0
}

/// An XI2 FP16.16 number as `f64`.
pub fn fp1616_to_f64(v: i32) -> f64 {
    f64::from(v) / 65536.0
}

/// The `(number, value)` pairs of an XI2 device event: `axisvalues` holds one value per bit
/// set in `valuator_mask`, in bit order.
pub fn event_valuators(valuator_mask: &[u32], axisvalues: &[Fp3232]) -> Vec<(u16, f64)> {
    let numbers = valuator_mask.iter().enumerate().flat_map(|(word, bits)| {
        (0..32u16)
            .filter(move |b| bits & (1 << b) != 0)
            .map(move |b| word as u16 * 32 + b)
    });
    numbers
        .zip(axisvalues.iter().map(|&v| fp3232_to_f64(v)))
        .collect()
}

/// Follows one pen device: last valuator values (events may carry only the changed ones), tip
/// contact, barrel buttons and whether it is in range; turns its events into [`PenEvent`]s.
#[derive(Debug, Clone)]
pub struct PenTracker {
    map: ValuatorMap,
    tool: PenTool,
    values: HashMap<u16, f64>,
    touching: bool,
    buttons: PenButtons,
    /// Last sample sent while in range.
    last: Option<PenEvent>,
}

impl PenTracker {
    /// A tracker for a device with these axes, out of range.
    pub fn new(map: ValuatorMap, tool: PenTool) -> Self {
        Self {
            map,
            tool,
            values: HashMap::new(),
            touching: false,
            buttons: PenButtons::EMPTY,
            last: None,
        }
    }

    /// Records valuator values without producing a sample (e.g. the device's initial values).
    pub fn update_values(&mut self, valuators: &[(u16, f64)]) {
        self.values.extend(valuators.iter().copied());
    }

    /// Whether the pen is in range (a sample was sent since the last leave).
    pub fn in_range(&self) -> bool {
        self.last.is_some()
    }

    fn sample(
        &mut self,
        window: (f64, f64),
        valuators: &[(u16, f64)],
        window_to_stream: impl Fn(f64, f64) -> (f32, f32),
    ) -> PenEvent {
        self.update_values(valuators);
        let values: Vec<(u16, f64)> = self.values.iter().map(|(&n, &v)| (n, v)).collect();
        let contact = if self.touching {
            PenContact::Contact
        } else {
            PenContact::Hover
        };
        let ev = self.map.pen_event(
            window,
            &values,
            window_to_stream,
            self.tool,
            self.buttons,
            contact,
        );
        self.last = Some(ev);
        ev
    }

    /// Motion: a `Contact` sample while the tip is down, else `Hover`.
    pub fn motion(
        &mut self,
        window: (f64, f64),
        valuators: &[(u16, f64)],
        window_to_stream: impl Fn(f64, f64) -> (f32, f32),
    ) -> PenEvent {
        self.sample(window, valuators, window_to_stream)
    }

    /// XI2 button press/release: 1 is the tip, 2 and 3 the barrel buttons. Other buttons
    /// (scroll emulation) give `None`.
    pub fn button(
        &mut self,
        button: u32,
        pressed: bool,
        window: (f64, f64),
        valuators: &[(u16, f64)],
        window_to_stream: impl Fn(f64, f64) -> (f32, f32),
    ) -> Option<PenEvent> {
        let flag = match button {
            1 => {
                self.touching = pressed;
                PenButtons::EMPTY
            }
            2 => PenButtons::BARREL1,
            3 => PenButtons::BARREL2,
            _ => return None,
        };
        self.buttons = if pressed {
            self.buttons.union(flag)
        } else {
            PenButtons(self.buttons.0 & !flag.0)
        };
        Some(self.sample(window, valuators, window_to_stream))
    }

    /// The pen left (window or proximity): a `Leave` sample at the last position with no
    /// pressure or buttons, or `None` when it was not in range.
    pub fn leave(&mut self) -> Option<PenEvent> {
        let last = self.last.take()?;
        self.touching = false;
        self.buttons = PenButtons::EMPTY;
        Some(PenEvent {
            pressure: 0,
            buttons: PenButtons::EMPTY,
            contact: PenContact::Leave,
            ..last
        })
    }
}

/// Why X11 pen input could not start.
#[derive(Debug, thiserror::Error)]
pub enum PenInputError {
    /// No X server (`DISPLAY` unset or unreachable).
    #[error("cannot connect to the X server: {0}")]
    Connect(#[from] x11rb::errors::ConnectError),
    /// The server lacks the XInput extension.
    #[error("the X server has no XInput extension; pen input needs XInput 2")]
    NoXInput,
    /// The server's XInput is older than 2.0.
    #[error("the X server has XInput {major}.{minor}; pen input needs XInput 2")]
    OldXInput {
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// The connection failed.
    #[error("X11 connection: {0}")]
    Connection(#[from] x11rb::errors::ConnectionError),
    /// A request failed.
    #[error("X11 request: {0}")]
    Reply(#[from] x11rb::errors::ReplyError),
    /// A request or id allocation failed.
    #[error("X11 request: {0}")]
    ReplyOrId(#[from] x11rb::errors::ReplyOrIdError),
    /// The event thread could not be started.
    #[error("cannot start the pen input thread: {0}")]
    Thread(std::io::Error),
}

/// A pen device found on the X server.
#[derive(Debug, Clone, PartialEq)]
pub struct PenDevice {
    /// XI2 device id.
    pub id: u16,
    /// Device name.
    pub name: String,
    /// Tip or eraser.
    pub tool: PenTool,
    /// Master pointer it is attached to.
    pub master: u16,
    /// Its pen axes.
    pub map: ValuatorMap,
    /// Valuator values `(number, value)` when the device was queried.
    pub values: Vec<(u16, f64)>,
}

pub use x11::X11PenInput;

mod x11 {
    use std::collections::{BTreeSet, HashMap};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::thread::JoinHandle;

    use sightline_protocol::msg::InputEvent;
    use x11rb::connection::{Connection, RequestConnection};
    use x11rb::protocol::xinput::{self, ConnectionExt as _, DeviceClassData, DeviceType};
    use x11rb::protocol::xproto::{self, ConnectionExt as _};
    use x11rb::protocol::Event;
    use x11rb::rust_connection::RustConnection;

    use super::{
        event_valuators, fp1616_to_f64, fp3232_to_f64, is_pen_device, tool_from_device_name,
        AxisInfo, PenDevice, PenInputError, PenTracker, ValuatorMap,
    };

    type Callback = Box<dyn FnMut(InputEvent) + Send>;
    type WindowToStream = Box<dyn Fn(f64, f64) -> (f32, f32) + Send>;

    /// XInput 1 event offset of `ProximityOut` within the proximity class.
    const PROXIMITY_OUT_OFFSET: u8 = 1;

    /// Pen input for one window from XInput2, on its own X connection and thread.
    ///
    /// Dropping it stops the thread; a pen still in range then gets a `Leave` sample, so
    /// nothing stays pressed on the host.
    pub struct X11PenInput {
        devices: Vec<PenDevice>,
        running: Option<Running>,
    }

    struct Running {
        conn: Arc<RustConnection>,
        wake: xproto::Window,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    impl std::fmt::Debug for X11PenInput {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("X11PenInput")
                .field("devices", &self.devices)
                .field("running", &self.is_running())
                .finish()
        }
    }

    impl X11PenInput {
        /// Connects to `$DISPLAY`, finds the pen devices (slave pointers with a pressure
        /// valuator), selects their XI2 motion/button/enter/leave events (and XI1 proximity
        /// out) on `window` (the viewer window's X id, from winit's raw window handle), and
        /// starts a thread that delivers [`InputEvent::Pen`] to `callback`, positions mapped
        /// by `window_to_stream` (window pixels → stream pixels; capture shared state in it if
        /// the mapping changes with window or stream size).
        ///
        /// With no pen device this logs so and returns `Ok` without a thread. Errors (no X
        /// server, no XInput 2) are returned, never panicked on.
        pub fn new(
            window: u32,
            window_to_stream: WindowToStream,
            callback: Callback,
        ) -> Result<Self, PenInputError> {
            let (conn, screen) = x11rb::connect(None)?;
            if conn
                .extension_information(xinput::X11_EXTENSION_NAME)?
                .is_none()
            {
                return Err(PenInputError::NoXInput);
            }
            let v = conn.xinput_xi_query_version(2, 2)?.reply()?;
            if v.major_version < 2 {
                return Err(PenInputError::OldXInput {
                    major: v.major_version,
                    minor: v.minor_version,
                });
            }
            let devices = find_pens(&conn)?;
            if devices.is_empty() {
                tracing::info!("pen: no pen devices on the X server");
                return Ok(Self {
                    devices,
                    running: None,
                });
            }
            for d in &devices {
                tracing::info!("pen: using XI2 device {} {:?} ({:?})", d.id, d.name, d.tool);
            }
            select_events(&conn, window, &devices)?;
            let root = conn.setup().roots[screen].root;
            let wake = conn.generate_id()?;
            conn.create_window(
                0,
                wake,
                root,
                0,
                0,
                1,
                1,
                0,
                xproto::WindowClass::INPUT_ONLY,
                0,
                &xproto::CreateWindowAux::new(),
            )?
            .check()?;
            let conn = Arc::new(conn);
            let stop = Arc::new(AtomicBool::new(false));
            let thread = std::thread::Builder::new()
                .name("pen x11".into())
                .spawn({
                    let (conn, stop, devices) = (conn.clone(), stop.clone(), devices.clone());
                    move || event_loop(&conn, &stop, &devices, &window_to_stream, callback)
                })
                .map_err(PenInputError::Thread)?;
            Ok(Self {
                devices,
                running: Some(Running {
                    conn,
                    wake,
                    stop,
                    thread: Some(thread),
                }),
            })
        }

        /// The pen devices in use (empty when the server has none).
        pub fn devices(&self) -> &[PenDevice] {
            &self.devices
        }

        /// Whether the event thread runs.
        pub fn is_running(&self) -> bool {
            self.running
                .as_ref()
                .and_then(|r| r.thread.as_ref())
                .is_some_and(|t| !t.is_finished())
        }
    }

    impl Drop for X11PenInput {
        fn drop(&mut self) {
            let Some(mut r) = self.running.take() else {
                return;
            };
            r.stop.store(true, Ordering::Release);
            // Wake the thread from `wait_for_event` with an event to our own window.
            let wake =
                xproto::ClientMessageEvent::new(32, r.wake, xproto::AtomEnum::NONE, [0u32; 5]);
            let sent = r
                .conn
                .send_event(false, r.wake, xproto::EventMask::NO_EVENT, wake)
                .map(|_| ())
                .and_then(|()| r.conn.flush());
            if let Err(e) = sent {
                tracing::debug!("pen: cannot wake the event thread: {e}");
            }
            if let Some(t) = r.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn find_pens(conn: &RustConnection) -> Result<Vec<PenDevice>, PenInputError> {
        // 0: XIAllDevices.
        let infos = conn.xinput_xi_query_device(0u16)?.reply()?.infos;
        let slaves: Vec<_> = infos
            .into_iter()
            .filter(|d| d.type_ == DeviceType::SLAVE_POINTER && d.enabled)
            .collect();
        let atoms: BTreeSet<u32> = slaves
            .iter()
            .flat_map(|d| &d.classes)
            .filter_map(|c| match &c.data {
                DeviceClassData::Valuator(v) if v.label != 0 => Some(v.label),
                _ => None,
            })
            .collect();
        let cookies = atoms
            .iter()
            .map(|&a| Ok((a, conn.get_atom_name(a)?)))
            .collect::<Result<Vec<_>, x11rb::errors::ConnectionError>>()?;
        let mut names = HashMap::new();
        for (atom, cookie) in cookies {
            names.insert(
                atom,
                String::from_utf8_lossy(&cookie.reply()?.name).into_owned(),
            );
        }
        let mut pens = Vec::new();
        for d in slaves {
            let name = String::from_utf8_lossy(&d.name).into_owned();
            let map = ValuatorMap::new(d.classes.iter().filter_map(|c| match &c.data {
                DeviceClassData::Valuator(v) => Some(AxisInfo {
                    number: v.number,
                    label: names.get(&v.label).map_or("", String::as_str),
                    min: fp3232_to_f64(v.min),
                    max: fp3232_to_f64(v.max),
                    resolution: v.resolution,
                }),
                _ => None,
            }));
            if is_pen_device(&name, &map) {
                let values = d
                    .classes
                    .iter()
                    .filter_map(|c| match &c.data {
                        DeviceClassData::Valuator(v) => Some((v.number, fp3232_to_f64(v.value))),
                        _ => None,
                    })
                    .collect();
                pens.push(PenDevice {
                    values,
                    id: d.deviceid,
                    tool: tool_from_device_name(&name),
                    name,
                    master: d.attachment,
                    map,
                });
            }
        }
        Ok(pens)
    }

    fn select_events(
        conn: &RustConnection,
        window: u32,
        devices: &[PenDevice],
    ) -> Result<(), PenInputError> {
        use xinput::XIEventMask as M;
        let pen_mask = M::MOTION | M::BUTTON_PRESS | M::BUTTON_RELEASE | M::ENTER | M::LEAVE;
        let mut masks: Vec<xinput::EventMask> = devices
            .iter()
            .map(|d| xinput::EventMask {
                deviceid: d.id,
                mask: vec![pen_mask],
            })
            .collect();
        // Enter/leave come from the master pointer (the one with the sprite); `sourceid` says
        // which slave caused them.
        let masters: BTreeSet<u16> = devices.iter().map(|d| d.master).collect();
        masks.extend(masters.into_iter().map(|m| xinput::EventMask {
            deviceid: m,
            mask: vec![M::ENTER | M::LEAVE],
        }));
        conn.xinput_xi_select_events(window, &masks)?.check()?;
        // Proximity out exists only in XInput 1; best effort.
        let mut classes = Vec::new();
        for d in devices {
            let Ok(id) = u8::try_from(d.id) else { continue };
            match conn.xinput_open_device(id).map(|c| c.reply()) {
                Ok(Ok(reply)) => {
                    let prox = reply
                        .class_info
                        .iter()
                        .find(|c| c.class_id == xinput::InputClass::PROXIMITY);
                    if let Some(c) = prox {
                        let ty = c.event_type_base.wrapping_add(PROXIMITY_OUT_OFFSET);
                        classes.push(u32::from(id) << 8 | u32::from(ty));
                    }
                }
                Ok(Err(e)) => tracing::debug!("pen: XI1 OpenDevice {id} failed: {e}"),
                Err(e) => return Err(e.into()),
            }
        }
        if !classes.is_empty() {
            if let Err(e) = conn
                .xinput_select_extension_event(window, &classes)?
                .check()
            {
                tracing::debug!("pen: cannot select proximity events: {e}");
            }
        }
        Ok(())
    }

    fn event_loop(
        conn: &RustConnection,
        stop: &AtomicBool,
        devices: &[PenDevice],
        window_to_stream: &WindowToStream,
        mut callback: Callback,
    ) {
        let mut trackers: HashMap<u16, PenTracker> = devices
            .iter()
            .map(|d| {
                let mut t = PenTracker::new(d.map.clone(), d.tool);
                t.update_values(&d.values);
                (d.id, t)
            })
            .collect();
        let map = |x: f64, y: f64| window_to_stream(x, y);
        loop {
            let event = match conn.wait_for_event() {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!("pen: X connection failed: {e}");
                    break;
                }
            };
            if stop.load(Ordering::Acquire) {
                break;
            }
            let pen = match event {
                Event::XinputMotion(e) => trackers.get_mut(&e.deviceid).map(|t| {
                    let vals = event_valuators(&e.valuator_mask, &e.axisvalues);
                    t.motion(pos(e.event_x, e.event_y), &vals, map)
                }),
                Event::XinputButtonPress(e) | Event::XinputButtonRelease(e) => {
                    let pressed = e.event_type == xinput::BUTTON_PRESS_EVENT;
                    trackers.get_mut(&e.deviceid).and_then(|t| {
                        let vals = event_valuators(&e.valuator_mask, &e.axisvalues);
                        t.button(e.detail, pressed, pos(e.event_x, e.event_y), &vals, map)
                    })
                }
                Event::XinputLeave(e) => trackers.get_mut(&e.sourceid).and_then(|t| t.leave()),
                Event::XinputProximityOut(e) => trackers
                    .get_mut(&u16::from(e.device_id & 0x7f))
                    .and_then(|t| t.leave()),
                Event::Error(e) => {
                    tracing::debug!("pen: X error {e:?}");
                    None
                }
                _ => None,
            };
            if let Some(p) = pen {
                callback(InputEvent::Pen(p));
            }
        }
        for t in trackers.values_mut() {
            if let Some(p) = t.leave() {
                callback(InputEvent::Pen(p));
            }
        }
    }

    fn pos(x: i32, y: i32) -> (f64, f64) {
        (fp1616_to_f64(x), fp1616_to_f64(y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(x: f64, y: f64) -> (f32, f32) {
        (x as f32, y as f32)
    }

    /// Valuators of a Wacom Intuos Pro M "Pen stylus" under xf86-input-wacom: 0 X 0..44800
    /// res 200000/m (5080 lpi), 1 Y 0..29600 res 200000/m, 2 pressure 0..8191, 3/4 tilt
    /// −64..63 res 57/rad (TILT_RES = 180/π, truncated), 5 wheel 0..1023; plus an unlabelled
    /// valuator the map must skip.
    fn intuos_pro() -> ValuatorMap {
        ValuatorMap::new([
            AxisInfo {
                number: 0,
                label: "Abs X",
                min: 0.0,
                max: 44800.0,
                resolution: 200_000,
            },
            AxisInfo {
                number: 1,
                label: "Abs Y",
                min: 0.0,
                max: 29600.0,
                resolution: 200_000,
            },
            AxisInfo {
                number: 2,
                label: "Abs Pressure",
                min: 0.0,
                max: 8191.0,
                resolution: 0,
            },
            AxisInfo {
                number: 3,
                label: "Abs Tilt X",
                min: -64.0,
                max: 63.0,
                resolution: 57,
            },
            AxisInfo {
                number: 4,
                label: "Abs Tilt Y",
                min: -64.0,
                max: 63.0,
                resolution: 57,
            },
            AxisInfo {
                number: 5,
                label: "Abs Wheel",
                min: 0.0,
                max: 1023.0,
                resolution: 0,
            },
            AxisInfo {
                number: 6,
                label: "",
                min: 0.0,
                max: 1.0,
                resolution: 0,
            },
        ])
    }

    #[test]
    fn valuator_map_from_intuos_pro() {
        let m = intuos_pro();
        assert_eq!(m.valuators().len(), 6);
        assert!(m.has_pressure());
        let x = m.get(ValuatorRole::X).unwrap();
        assert_eq!((x.number, x.max, x.resolution), (0, 44800.0, 200_000));
        assert_eq!(m.get(ValuatorRole::Pressure).unwrap().number, 2);
        assert_eq!(m.get(ValuatorRole::TiltY).unwrap().number, 4);
        assert_eq!(m.get(ValuatorRole::Rotation).unwrap().number, 5);
        assert!(is_pen_device("Wacom Intuos Pro M Pen stylus", &m));
        assert!(!is_pen_device("Wacom Intuos Pro M Finger touch", &m));
        assert!(!is_pen_device(
            "Logitech USB Optical Mouse",
            &ValuatorMap::default()
        ));
    }

    #[test]
    fn pressure_endpoints() {
        let m = intuos_pro();
        let p = m.get(ValuatorRole::Pressure).unwrap();
        assert_eq!(p.pressure(0.0), 0);
        assert_eq!(p.pressure(8191.0), 65535);
        assert_eq!(p.pressure(4095.5), 32768);
        assert_eq!(p.pressure(-5.0), 0);
        assert_eq!(p.pressure(9000.0), 65535);
    }

    #[test]
    fn tilt_uses_resolution_as_units_per_radian() {
        let m = intuos_pro();
        let t = m.get(ValuatorRole::TiltX).unwrap();
        assert_eq!(t.tilt(0.0), 0);
        // 63 / 57 rad = 63.33°.
        assert_eq!(t.tilt(63.0), 6333);
        assert_eq!(t.tilt(-64.0), -6433);
        assert_eq!(t.tilt(1000.0), 9000);
    }

    #[test]
    fn tilt_without_resolution_maps_range_to_60_degrees() {
        let t = Valuator {
            number: 3,
            role: ValuatorRole::TiltX,
            min: 0.0,
            max: 127.0,
            resolution: 0,
        };
        assert_eq!(t.tilt(0.0), -6000);
        assert_eq!(t.tilt(127.0), 6000);
        assert_eq!(t.tilt(63.5), 0);
    }

    #[test]
    fn rotation_endpoints() {
        let m = intuos_pro();
        let r = m.get(ValuatorRole::Rotation).unwrap();
        assert_eq!(r.rotation(0.0), 0);
        assert_eq!(r.rotation(512.0), 18000);
        assert_eq!(r.rotation(1023.0), 35965);
        // Art Pen under xf86-input-wacom: −900..899 in 0.2° steps.
        let art = Valuator {
            min: -900.0,
            max: 899.0,
            ..*r
        };
        assert_eq!(art.rotation(-900.0), 0);
        assert_eq!(art.rotation(0.0), 18000);
        assert_eq!(art.rotation(899.0), 35980);
    }

    #[test]
    fn pen_event_from_valuators() {
        let m = intuos_pro();
        let vals = [
            (0, 22400.0),
            (1, 14800.0),
            (2, 8191.0),
            (3, 0.0),
            (4, -57.0),
            (5, 256.0),
        ];
        let e = m.pen_event(
            (100.25, 50.5),
            &vals,
            |x, y| ((x * 2.0) as f32, (y * 2.0) as f32),
            PenTool::Pen,
            PenButtons::BARREL1,
            PenContact::Contact,
        );
        assert_eq!((e.x, e.y), (200.5, 101.0));
        assert_eq!(e.pressure, 65535);
        assert_eq!(e.tilt_x, 0);
        assert_eq!(e.tilt_y, -5730);
        assert_eq!(e.rotation, 9000);
        assert_eq!(e.buttons, PenButtons::BARREL1);
        assert_eq!(e.contact, PenContact::Contact);
        // Axes missing from the event read as 0.
        let e = m.pen_event(
            (0.0, 0.0),
            &[],
            identity,
            PenTool::Pen,
            PenButtons::EMPTY,
            PenContact::Hover,
        );
        assert_eq!((e.pressure, e.tilt_x, e.rotation), (0, 0, 0));
    }

    #[test]
    fn eraser_device() {
        assert_eq!(
            tool_from_device_name("Wacom Intuos Pro M Pen eraser"),
            PenTool::Eraser
        );
        assert_eq!(
            tool_from_device_name("Wacom Intuos Pro M Eraser (0x80)"),
            PenTool::Eraser
        );
        assert_eq!(
            tool_from_device_name("Wacom Intuos Pro M Pen stylus"),
            PenTool::Pen
        );
    }

    #[test]
    fn fp3232_conversion() {
        assert_eq!(
            fp3232_to_f64(Fp3232 {
                integral: 5,
                frac: 0
            }),
            5.0
        );
        assert_eq!(
            fp3232_to_f64(Fp3232 {
                integral: 5,
                frac: 1 << 31
            }),
            5.5
        );
        assert_eq!(
            fp3232_to_f64(Fp3232 {
                integral: -3,
                frac: 1 << 30
            }),
            -2.75
        );
        assert_eq!(fp1616_to_f64(3 << 16 | 1 << 15), 3.5);
        assert_eq!(fp1616_to_f64(-(1 << 15)), -0.5);
    }

    #[test]
    fn event_valuators_follow_mask_bits() {
        let v = |i| Fp3232 {
            integral: i,
            frac: 0,
        };
        // Valuators 0, 2 and 33 present.
        let got = event_valuators(&[0b101, 0b10], &[v(10), v(12), v(43)]);
        assert_eq!(got, vec![(0, 10.0), (2, 12.0), (33, 43.0)]);
    }

    #[test]
    fn tracker_hover_touch_lift_leave() {
        let mut t = PenTracker::new(intuos_pro(), PenTool::Pen);
        assert!(!t.in_range());
        let e = t.motion((1.0, 2.0), &[(2, 0.0)], identity);
        assert_eq!(e.contact, PenContact::Hover);
        let e = t
            .button(1, true, (1.0, 2.0), &[(2, 4000.0)], identity)
            .unwrap();
        assert_eq!(e.contact, PenContact::Contact);
        // Only X changes; pressure is remembered from before.
        let e = t.motion((3.0, 2.0), &[(0, 10.0)], identity);
        assert_eq!((e.contact, e.x), (PenContact::Contact, 3.0));
        assert_eq!(e.pressure, 32003);
        let e = t
            .button(1, false, (3.0, 2.0), &[(2, 0.0)], identity)
            .unwrap();
        assert_eq!((e.contact, e.pressure), (PenContact::Hover, 0));
        let e = t.leave().unwrap();
        assert_eq!((e.contact, e.x, e.y), (PenContact::Leave, 3.0, 2.0));
        assert!(t.leave().is_none());
        assert!(!t.in_range());
    }

    #[test]
    fn tracker_barrel_buttons() {
        let mut t = PenTracker::new(intuos_pro(), PenTool::Eraser);
        let e = t.button(2, true, (0.0, 0.0), &[], identity).unwrap();
        assert_eq!((e.buttons, e.tool), (PenButtons::BARREL1, PenTool::Eraser));
        let e = t.button(3, true, (0.0, 0.0), &[], identity).unwrap();
        assert_eq!(e.buttons, PenButtons::BARREL1.union(PenButtons::BARREL2));
        let e = t.button(2, false, (0.0, 0.0), &[], identity).unwrap();
        assert_eq!(e.buttons, PenButtons::BARREL2);
        assert!(t.button(4, true, (0.0, 0.0), &[], identity).is_none());
        // Leaving while touching with a button held releases everything.
        t.button(1, true, (0.0, 0.0), &[(2, 8191.0)], identity);
        let e = t.leave().unwrap();
        assert_eq!((e.pressure, e.buttons), (0, PenButtons::EMPTY));
        let e = t.motion((0.0, 0.0), &[], identity);
        assert_eq!(
            (e.contact, e.buttons),
            (PenContact::Hover, PenButtons::EMPTY)
        );
    }

    #[test]
    fn x11_pen_input_without_pens() {
        if std::env::var_os("DISPLAY").is_none() {
            println!("DISPLAY not set: skipping the X11 pen input check");
            return;
        }
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::{ConnectionExt, CreateWindowAux, WindowClass};
        let (conn, screen) = x11rb::connect(None).expect("connect to $DISPLAY");
        let root = conn.setup().roots[screen].root;
        let win = conn.generate_id().unwrap();
        conn.create_window(
            0,
            win,
            root,
            0,
            0,
            64,
            64,
            0,
            WindowClass::INPUT_OUTPUT,
            0,
            &CreateWindowAux::new(),
        )
        .unwrap()
        .check()
        .unwrap();
        let pen = X11PenInput::new(win, Box::new(identity), Box::new(|_| {}))
            .expect("X11PenInput::new on a server with XInput 2");
        println!("pen devices: {:?}", pen.devices());
        // Xvfb has no tablet (no devices, no thread); a desktop with one would list it here.
        assert_eq!(pen.is_running(), !pen.devices().is_empty());
        drop(pen);
    }
}
