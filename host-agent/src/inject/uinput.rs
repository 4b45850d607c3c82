//! Linux uinput virtual devices for what XTEST cannot express: a pen tablet (pressure, tilt,
//! barrel rotation, eraser, stylus buttons) and a ShuttlePRO-like jog/shuttle controller.
//!
//! The translation from protocol events to evdev events is pure and testable on any OS:
//! [`PenTablet`] and [`JogShuttleDevice`] turn events into [`RawEvent`]s (`type`, `code`,
//! `value`, exactly what a real device would report, every report ending in `SYN_REPORT`).
//! The I/O half — [`UinputPen`] and [`UinputJogShuttle`], which create the virtual devices
//! through `/dev/uinput` and implement [`InputSink`] — exists only on Linux; elsewhere only the
//! translators are built.
//!
//! # Pen tablet
//!
//! Axes (all with minimum 0 unless stated):
//!
//! | axis           | range                     | unit                                          |
//! |----------------|---------------------------|-----------------------------------------------|
//! | `ABS_X`        | `0..=width*8-1`           | 1/8 stream pixel; resolution 32 units/mm      |
//! | `ABS_Y`        | `0..=height*8-1`          | 1/8 stream pixel; resolution 32 units/mm      |
//! | `ABS_PRESSURE` | `0..=8191`                | `round(p * 8191 / 65535)` from the 16-bit wire value |
//! | `ABS_TILT_X/Y` | `-90..=90`                | degrees (resolution 57 units/radian)          |
//! | `ABS_Z`        | `0..=3599`                | barrel rotation, tenths of a degree (as Wacom art pens report rotation on `ABS_Z`) |
//!
//! The X server (libinput or the wacom driver) maps an external tablet's whole axis range onto
//! the whole screen, so the stream rectangle lands on the screen whatever the resolution; the
//! resolution only gives the tablet a plausible physical size (a stream pixel is 0.25 mm, about
//! 100 dpi), which libinput requires before it accepts a tablet. The device has
//! `INPUT_PROP_POINTER` (an external tablet like an Intuos, not a screen tablet) so it is mapped
//! in absolute mode.
//!
//! Reports follow what the Wacom kernel driver sends: proximity in is `BTN_TOOL_PEN` (or
//! `BTN_TOOL_RUBBER`) = 1 together with the first position; touching is `BTN_TOUCH` = 1 with
//! the pressure; lifting sends pressure 0 and `BTN_TOUCH` = 0; leaving releases held barrel
//! buttons and sends `BTN_TOOL_*` = 0. Only axes whose value changed are sent. libinput derives
//! the tip state from pressure on tablets that have it, so viewers should send a non-zero
//! pressure with contact.
//!
//! # Jog/shuttle
//!
//! Modelled on the Contour ShuttlePRO v2 (USB 0b33:0030): buttons 0..=14 are `BTN_0 + index`
//! (key codes 256..=270), the shuttle ring is `REL_WHEEL` carrying the position −7..=7, and the
//! jog wheel is `REL_DIAL`. The real device reports an 8-bit wrapping counter on `REL_DIAL`
//! (a quirk of its HID descriptor, which calls an absolute counter relative); this virtual
//! device reports the number of detents turned instead, which is what a relative axis means to
//! evdev readers and survives coalescing of fast spins (a counter would alias past ±127). Because
//! of that difference, and so that tools with ShuttlePRO-specific decoding do not misread it, the
//! device does not borrow Contour's USB ids.
//!
//! Returning the shuttle to centre produces `REL_WHEEL` = 0. Note that the Linux input core drops
//! zero-valued relative events, so evdev readers do not see that report (the real device has the
//! same problem; its readers usually infer the centre from a report carrying the jog counter but no
//! shuttle value, which delta semantics cannot offer). Editors are better driven through
//! [`jog_profile`](super::jog_profile), which turns the shuttle into key presses.

use sightline_protocol::msg::{PenButtons, PenContact, PenEvent, PenTool};

#[cfg(target_os = "linux")]
use crate::inject::{event_kind, InjectError, InputSink};
#[cfg(target_os = "linux")]
use sightline_protocol::msg::{InputEvent, InputKinds};

/// Event type: synchronisation.
pub const EV_SYN: u16 = 0x00;
/// Event type: keys and buttons.
pub const EV_KEY: u16 = 0x01;
/// Event type: relative axes.
pub const EV_REL: u16 = 0x02;
/// Event type: absolute axes.
pub const EV_ABS: u16 = 0x03;
/// Event type: miscellaneous (not sent by these devices; listed for completeness).
pub const EV_MSC: u16 = 0x04;

/// `EV_SYN` code ending a report.
pub const SYN_REPORT: u16 = 0;

/// First of the generic buttons (`BTN_0`); the jog/shuttle buttons are `BTN_0 + index`.
pub const BTN_0: u16 = 0x100;
/// Pen tip tool in proximity.
pub const BTN_TOOL_PEN: u16 = 0x140;
/// Eraser tool in proximity.
pub const BTN_TOOL_RUBBER: u16 = 0x141;
/// Tool touching the surface.
pub const BTN_TOUCH: u16 = 0x14a;
/// First barrel button.
pub const BTN_STYLUS: u16 = 0x14b;
/// Second barrel button.
pub const BTN_STYLUS2: u16 = 0x14c;

/// Absolute X.
pub const ABS_X: u16 = 0x00;
/// Absolute Y.
pub const ABS_Y: u16 = 0x01;
/// Absolute Z, used for barrel rotation (as by Wacom art pens).
pub const ABS_Z: u16 = 0x02;
/// Tip pressure.
pub const ABS_PRESSURE: u16 = 0x18;
/// Tilt along X.
pub const ABS_TILT_X: u16 = 0x1a;
/// Tilt along Y.
pub const ABS_TILT_Y: u16 = 0x1b;

/// Relative wheel (the shuttle ring's position).
pub const REL_WHEEL: u16 = 0x08;
/// Relative dial (the jog wheel's detents).
pub const REL_DIAL: u16 = 0x07;

/// Device units per stream pixel on `ABS_X`/`ABS_Y`.
pub const POSITION_SCALE: u32 = 8;
/// `ABS_X`/`ABS_Y` resolution, units per millimetre (a stream pixel is 0.25 mm).
pub const POSITION_RESOLUTION: i32 = 32;
/// Largest `ABS_PRESSURE` value.
pub const PRESSURE_MAX: i32 = 8191;
/// Largest tilt, degrees (the range is symmetric).
pub const TILT_MAX: i32 = 90;
/// Tilt resolution, units per radian (degrees: 180/π, rounded down as Wacom does).
pub const TILT_RESOLUTION: i32 = 57;
/// Largest `ABS_Z` rotation value (tenths of a degree).
pub const ROTATION_MAX: i32 = 3599;
/// Number of jog/shuttle buttons.
pub const JOG_BUTTONS: u8 = 15;
/// Largest shuttle position (the range is symmetric).
pub const SHUTTLE_MAX: i32 = 7;

/// One evdev event as written to a device: type, code, value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawEvent {
    /// Event type (`EV_*`).
    pub type_: u16,
    /// Event code (`BTN_*`, `ABS_*`, `REL_*`, `SYN_*`).
    pub code: u16,
    /// Value.
    pub value: i32,
}

impl RawEvent {
    /// An event.
    pub const fn new(type_: u16, code: u16, value: i32) -> Self {
        RawEvent { type_, code, value }
    }

    /// A key/button event.
    pub const fn key(code: u16, down: bool) -> Self {
        RawEvent::new(EV_KEY, code, down as i32)
    }

    /// An absolute axis event.
    pub const fn abs(code: u16, value: i32) -> Self {
        RawEvent::new(EV_ABS, code, value)
    }

    /// A relative axis event.
    pub const fn rel(code: u16, value: i32) -> Self {
        RawEvent::new(EV_REL, code, value)
    }

    /// The `SYN_REPORT` ending a report.
    pub const fn syn() -> Self {
        RawEvent::new(EV_SYN, SYN_REPORT, 0)
    }

    /// Whether this ends a report.
    pub fn is_syn_report(&self) -> bool {
        self.type_ == EV_SYN && self.code == SYN_REPORT
    }
}

/// Scales a 16-bit pressure to `0..=PRESSURE_MAX`, rounding to nearest.
pub fn scale_pressure(p: u16) -> i32 {
    ((u32::from(p) * PRESSURE_MAX as u32 + 65535 / 2) / 65535) as i32
}

/// Converts tilt in hundredths of a degree to whole degrees, rounding half away from zero and
/// clamping to ±[`TILT_MAX`].
pub fn scale_tilt(t: i16) -> i32 {
    let t = i32::from(t).clamp(-TILT_MAX * 100, TILT_MAX * 100);
    let half = if t < 0 { -50 } else { 50 };
    (t + half) / 100
}

/// Converts rotation in hundredths of a degree to `ABS_Z` tenths of a degree, rounding to nearest
/// and wrapping 360° to 0.
pub fn scale_rotation(r: u16) -> i32 {
    ((i32::from(r) + 5) / 10) % (ROTATION_MAX + 1)
}

/// The `BTN_TOOL_*` code of a tool.
pub fn tool_code(tool: PenTool) -> u16 {
    match tool {
        PenTool::Pen => BTN_TOOL_PEN,
        PenTool::Eraser => BTN_TOOL_RUBBER,
    }
}

/// The last value of every axis as the device (and the kernel) knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Axes {
    x: i32,
    y: i32,
    pressure: i32,
    tilt_x: i32,
    tilt_y: i32,
    rotation: i32,
}

/// Pure translator from pen samples to the evdev reports of a Wacom-like tablet (no I/O).
#[derive(Debug, Clone)]
pub struct PenTablet {
    max_x: i32,
    max_y: i32,
    /// Tool in proximity, if any.
    tool: Option<PenTool>,
    touching: bool,
    buttons: PenButtons,
    axes: Axes,
}

impl PenTablet {
    /// A tablet covering a stream of `width` × `height` pixels (each at least 1).
    pub fn new(width: u32, height: u32) -> Self {
        let max = |px: u32| -> i32 {
            let units = u64::from(px.max(1)) * u64::from(POSITION_SCALE) - 1;
            units.min(i32::MAX as u64) as i32
        };
        PenTablet {
            max_x: max(width),
            max_y: max(height),
            tool: None,
            touching: false,
            buttons: PenButtons::EMPTY,
            axes: Axes::default(),
        }
    }

    /// Largest `ABS_X` value (`width * 8 - 1`).
    pub fn max_x(&self) -> i32 {
        self.max_x
    }

    /// Largest `ABS_Y` value (`height * 8 - 1`).
    pub fn max_y(&self) -> i32 {
        self.max_y
    }

    /// The tool in proximity, if any.
    pub fn tool(&self) -> Option<PenTool> {
        self.tool
    }

    /// Whether the tool touches the surface.
    pub fn is_touching(&self) -> bool {
        self.touching
    }

    /// Converts a stream coordinate to device units, clamped to `0..=max` (NaN becomes 0).
    fn position(v: f32, max: i32) -> i32 {
        let units = (f64::from(v) * f64::from(POSITION_SCALE)).round();
        if units.is_nan() {
            0
        } else {
            units.clamp(0.0, f64::from(max)) as i32
        }
    }

    /// The reports for one sample. Returns nothing when nothing changed.
    pub fn translate(&mut self, ev: &PenEvent) -> Vec<RawEvent> {
        let mut out = Vec::new();
        if ev.contact == PenContact::Leave {
            self.leave(&mut out);
            return out;
        }
        if self.tool.is_some_and(|t| t != ev.tool) {
            // Tool switch (e.g. the pen flipped to its eraser): the old tool leaves first.
            self.leave(&mut out);
        }
        let target = Axes {
            x: Self::position(ev.x, self.max_x),
            y: Self::position(ev.y, self.max_y),
            pressure: if ev.contact == PenContact::Contact {
                scale_pressure(ev.pressure)
            } else {
                0
            },
            tilt_x: scale_tilt(ev.tilt_x),
            tilt_y: scale_tilt(ev.tilt_y),
            rotation: scale_rotation(ev.rotation),
        };
        let mut report = Vec::new();
        if self.tool.is_none() {
            // Proximity in: tool, position (always), other axes that differ, barrel buttons.
            report.push(RawEvent::key(tool_code(ev.tool), true));
            report.push(RawEvent::abs(ABS_X, target.x));
            report.push(RawEvent::abs(ABS_Y, target.y));
            self.axes.x = target.x;
            self.axes.y = target.y;
            self.tool = Some(ev.tool);
            self.push_axes(&target, false, &mut report);
            self.push_buttons(ev.buttons, &mut report);
            Self::end_report(report, &mut out);
            report = Vec::new();
        }
        self.push_axes(&target, true, &mut report);
        let touch = ev.contact == PenContact::Contact;
        if touch != self.touching {
            report.push(RawEvent::key(BTN_TOUCH, touch));
            self.touching = touch;
        }
        self.push_buttons(ev.buttons, &mut report);
        Self::end_report(report, &mut out);
        out
    }

    /// Appends the axes of `target` that differ from the device's; pressure only when
    /// `with_pressure` (proximity-in reports carry no pressure).
    fn push_axes(&mut self, target: &Axes, with_pressure: bool, report: &mut Vec<RawEvent>) {
        let a = &mut self.axes;
        let mut axis = |code: u16, cur: &mut i32, new: i32| {
            if *cur != new {
                *cur = new;
                report.push(RawEvent::abs(code, new));
            }
        };
        axis(ABS_X, &mut a.x, target.x);
        axis(ABS_Y, &mut a.y, target.y);
        if with_pressure {
            axis(ABS_PRESSURE, &mut a.pressure, target.pressure);
        }
        axis(ABS_TILT_X, &mut a.tilt_x, target.tilt_x);
        axis(ABS_TILT_Y, &mut a.tilt_y, target.tilt_y);
        axis(ABS_Z, &mut a.rotation, target.rotation);
    }

    /// Appends the barrel buttons that changed.
    fn push_buttons(&mut self, buttons: PenButtons, report: &mut Vec<RawEvent>) {
        for (flag, code) in [
            (PenButtons::BARREL1, BTN_STYLUS),
            (PenButtons::BARREL2, BTN_STYLUS2),
        ] {
            let down = buttons.contains(flag);
            if down != self.buttons.contains(flag) {
                report.push(RawEvent::key(code, down));
            }
        }
        self.buttons = PenButtons(buttons.0 & PenButtons::ALL.0);
    }

    /// Appends `report` and its `SYN_REPORT` to `out` unless it is empty.
    fn end_report(mut report: Vec<RawEvent>, out: &mut Vec<RawEvent>) {
        if !report.is_empty() {
            report.push(RawEvent::syn());
            out.append(&mut report);
        }
    }

    /// Lifts the tool if it touches, then takes it out of proximity (releasing barrel buttons).
    fn leave(&mut self, out: &mut Vec<RawEvent>) {
        let Some(tool) = self.tool else { return };
        if self.touching {
            let mut lift = Vec::new();
            if self.axes.pressure != 0 {
                self.axes.pressure = 0;
                lift.push(RawEvent::abs(ABS_PRESSURE, 0));
            }
            lift.push(RawEvent::key(BTN_TOUCH, false));
            self.touching = false;
            Self::end_report(lift, out);
        }
        let mut report = Vec::new();
        self.push_buttons(PenButtons::EMPTY, &mut report);
        report.push(RawEvent::key(tool_code(tool), false));
        self.tool = None;
        Self::end_report(report, out);
    }

    /// The reports that lift the tool, release its buttons and take it out of proximity;
    /// nothing when no tool is in proximity.
    pub fn release_all(&mut self) -> Vec<RawEvent> {
        let mut out = Vec::new();
        self.leave(&mut out);
        out
    }
}

/// Pure translator from jog/shuttle events to the evdev reports of a ShuttlePRO-like device.
#[derive(Debug, Clone, Default)]
pub struct JogShuttleDevice {
    /// Held buttons, bit per index.
    held: u16,
    shuttle: i32,
}

impl JogShuttleDevice {
    /// Shuttle centred, no button held.
    pub fn new() -> Self {
        JogShuttleDevice::default()
    }

    /// The `EV_KEY` code of button `index` (`BTN_0 + index`), if the device has it.
    pub fn button_code(index: u8) -> Option<u16> {
        (index < JOG_BUTTONS).then(|| BTN_0 + u16::from(index))
    }

    /// The jog wheel turned `delta` detents (positive: clockwise): `REL_DIAL` = `delta`.
    pub fn jog(&mut self, delta: i16) -> Vec<RawEvent> {
        if delta == 0 {
            return Vec::new();
        }
        vec![RawEvent::rel(REL_DIAL, i32::from(delta)), RawEvent::syn()]
    }

    /// The shuttle ring moved to `position` (clamped to ±7): `REL_WHEEL` = position when it
    /// changed, including 0 on return to centre.
    pub fn shuttle(&mut self, position: i8) -> Vec<RawEvent> {
        let position = i32::from(position).clamp(-SHUTTLE_MAX, SHUTTLE_MAX);
        if position == self.shuttle {
            return Vec::new();
        }
        self.shuttle = position;
        vec![RawEvent::rel(REL_WHEEL, position), RawEvent::syn()]
    }

    /// Button `index` changed; nothing when it did not or the device lacks it.
    pub fn button(&mut self, index: u8, pressed: bool) -> Vec<RawEvent> {
        let Some(code) = Self::button_code(index) else {
            return Vec::new();
        };
        let bit = 1u16 << index;
        if (self.held & bit != 0) == pressed {
            return Vec::new();
        }
        self.held ^= bit;
        vec![RawEvent::key(code, pressed), RawEvent::syn()]
    }

    /// Translates a jog, shuttle, controller button or release-all event; other events give
    /// nothing.
    pub fn translate(&mut self, ev: &sightline_protocol::msg::InputEvent) -> Vec<RawEvent> {
        use sightline_protocol::msg::InputEvent as E;
        match *ev {
            E::Jog { delta } => self.jog(delta),
            E::Shuttle { position } => self.shuttle(position),
            E::ControllerButton { index, pressed } => self.button(index, pressed),
            E::ReleaseAll => self.release_all(),
            _ => Vec::new(),
        }
    }

    /// The report releasing every held button and centring the shuttle; nothing when nothing is
    /// held.
    pub fn release_all(&mut self) -> Vec<RawEvent> {
        let mut report = Vec::new();
        for index in 0..JOG_BUTTONS {
            if self.held & (1 << index) != 0 {
                report.push(RawEvent::key(BTN_0 + u16::from(index), false));
            }
        }
        self.held = 0;
        if self.shuttle != 0 {
            self.shuttle = 0;
            report.push(RawEvent::rel(REL_WHEEL, 0));
        }
        if !report.is_empty() {
            report.push(RawEvent::syn());
        }
        report
    }
}

/// Path of the uinput control device.
pub const UINPUT_PATH: &str = "/dev/uinput";

#[cfg(target_os = "linux")]
const BACKEND: &str = "uinput";

/// The [`InjectError::Open`] for a failure to open or set up `/dev/uinput`.
#[cfg(target_os = "linux")]
fn open_error(e: &std::io::Error) -> InjectError {
    use std::io::ErrorKind;
    let detail = match e.kind() {
        ErrorKind::NotFound => format!(
            "{UINPUT_PATH} is missing: load the uinput kernel module (`sudo modprobe uinput`; \
             list it in /etc/modules-load.d/ to load it at boot)"
        ),
        ErrorKind::PermissionDenied => format!(
            "{UINPUT_PATH} is not writable by this user: give a group write access (udev rule \
             `KERNEL==\"uinput\", GROUP=\"input\", MODE=\"0660\"`) and add the user to that group"
        ),
        _ => format!(
            "{UINPUT_PATH} is missing or not writable ({e}): check that the uinput module is \
             loaded (`sudo modprobe uinput`) and that this user may write to it"
        ),
    };
    InjectError::Open {
        backend: BACKEND,
        detail,
    }
}

/// Creating the device after `/dev/uinput` opened failed.
#[cfg(target_os = "linux")]
fn setup_error(what: &str, e: &std::io::Error) -> InjectError {
    InjectError::Open {
        backend: BACKEND,
        detail: format!("creating the {what} through {UINPUT_PATH} failed: {e}"),
    }
}

/// Writes the translator's reports to the device, one `emit` per report (`emit` appends the
/// `SYN_REPORT` itself).
#[cfg(target_os = "linux")]
fn write_reports(
    dev: &mut evdev::uinput::VirtualDevice,
    events: &[RawEvent],
) -> Result<(), InjectError> {
    let mut batch: Vec<evdev::InputEvent> = Vec::new();
    for e in events {
        if e.is_syn_report() {
            dev.emit(&batch).map_err(|err| InjectError::Inject {
                backend: BACKEND,
                detail: format!("writing to the virtual device: {err}"),
            })?;
            batch.clear();
        } else {
            batch.push(evdev::InputEvent::new(e.type_, e.code, e.value));
        }
    }
    debug_assert!(batch.is_empty(), "every report ends with SYN_REPORT");
    Ok(())
}

/// Opens `/dev/uinput` for a device builder.
#[cfg(target_os = "linux")]
fn builder<'a>() -> Result<evdev::uinput::VirtualDeviceBuilder<'a>, InjectError> {
    evdev::uinput::VirtualDevice::builder().map_err(|e| open_error(&e))
}

/// A virtual pen tablet ("Sightline virtual pen") fed from [`PenTablet`] (Linux only).
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub struct UinputPen {
    dev: evdev::uinput::VirtualDevice,
    tablet: PenTablet,
}

#[cfg(target_os = "linux")]
impl UinputPen {
    /// Device name.
    pub const NAME: &'static str = "Sightline virtual pen";

    /// Creates the tablet for a stream of `width` × `height` pixels.
    pub fn open(width: u32, height: u32) -> Result<Self, InjectError> {
        use evdev::{
            AbsInfo, AbsoluteAxisCode, AttributeSet, BusType, InputId, KeyCode, PropType,
            UinputAbsSetup,
        };
        let tablet = PenTablet::new(width, height);
        let keys: AttributeSet<KeyCode> = [
            BTN_TOOL_PEN,
            BTN_TOOL_RUBBER,
            BTN_TOUCH,
            BTN_STYLUS,
            BTN_STYLUS2,
        ]
        .into_iter()
        .map(KeyCode)
        .collect();
        let props: AttributeSet<PropType> = [PropType::POINTER].into_iter().collect();
        let axis = |code: u16, min: i32, max: i32, res: i32| {
            UinputAbsSetup::new(AbsoluteAxisCode(code), AbsInfo::new(0, min, max, 0, 0, res))
        };
        let axes = [
            axis(ABS_X, 0, tablet.max_x(), POSITION_RESOLUTION),
            axis(ABS_Y, 0, tablet.max_y(), POSITION_RESOLUTION),
            axis(ABS_PRESSURE, 0, PRESSURE_MAX, 0),
            axis(ABS_TILT_X, -TILT_MAX, TILT_MAX, TILT_RESOLUTION),
            axis(ABS_TILT_Y, -TILT_MAX, TILT_MAX, TILT_RESOLUTION),
            axis(ABS_Z, 0, ROTATION_MAX, 0),
        ];
        let err = |e: std::io::Error| setup_error("virtual pen", &e);
        let mut b = builder()?
            .name(Self::NAME)
            .input_id(InputId::new(BusType::BUS_VIRTUAL, 0, 0x0001, 1))
            .with_keys(&keys)
            .map_err(err)?
            .with_properties(&props)
            .map_err(err)?;
        for a in &axes {
            b = b.with_absolute_axis(a).map_err(err)?;
        }
        let dev = b.build().map_err(err)?;
        tracing::info!(width, height, "uinput: created {}", Self::NAME);
        Ok(UinputPen { dev, tablet })
    }

    /// The translator (its state mirrors the device's).
    pub fn tablet(&self) -> &PenTablet {
        &self.tablet
    }
}

#[cfg(target_os = "linux")]
impl InputSink for UinputPen {
    fn name(&self) -> &'static str {
        "uinput pen"
    }

    fn kinds(&self) -> InputKinds {
        InputKinds::PEN
    }

    fn inject(&mut self, event: &InputEvent) -> Result<(), InjectError> {
        let events = match event {
            InputEvent::Pen(p) => self.tablet.translate(p),
            InputEvent::ReleaseAll => self.tablet.release_all(),
            other => {
                return Err(InjectError::Unsupported {
                    backend: "uinput pen",
                    kind: event_kind(other),
                })
            }
        };
        write_reports(&mut self.dev, &events)
    }
}

/// A virtual ShuttlePRO-like controller ("Sightline virtual jog/shuttle") fed from
/// [`JogShuttleDevice`] (Linux only).
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub struct UinputJogShuttle {
    dev: evdev::uinput::VirtualDevice,
    state: JogShuttleDevice,
}

#[cfg(target_os = "linux")]
impl UinputJogShuttle {
    /// Device name.
    pub const NAME: &'static str = "Sightline virtual jog/shuttle";

    /// Creates the controller.
    pub fn open() -> Result<Self, InjectError> {
        use evdev::{AttributeSet, BusType, InputId, KeyCode, RelativeAxisCode};
        let keys: AttributeSet<KeyCode> = (0..JOG_BUTTONS)
            .map(|i| KeyCode(BTN_0 + u16::from(i)))
            .collect();
        let rel: AttributeSet<RelativeAxisCode> = [REL_DIAL, REL_WHEEL]
            .into_iter()
            .map(RelativeAxisCode)
            .collect();
        let err = |e: std::io::Error| setup_error("virtual jog/shuttle", &e);
        let dev = builder()?
            .name(Self::NAME)
            .input_id(InputId::new(BusType::BUS_VIRTUAL, 0, 0x0002, 1))
            .with_keys(&keys)
            .map_err(err)?
            .with_relative_axes(&rel)
            .map_err(err)?
            .build()
            .map_err(err)?;
        tracing::info!("uinput: created {}", Self::NAME);
        Ok(UinputJogShuttle {
            dev,
            state: JogShuttleDevice::new(),
        })
    }
}

#[cfg(target_os = "linux")]
impl InputSink for UinputJogShuttle {
    fn name(&self) -> &'static str {
        "uinput jog/shuttle"
    }

    fn kinds(&self) -> InputKinds {
        InputKinds::JOG_SHUTTLE
    }

    fn inject(&mut self, event: &InputEvent) -> Result<(), InjectError> {
        match event {
            InputEvent::ControllerButton { index, .. } if *index >= JOG_BUTTONS => {
                return Err(InjectError::Inject {
                    backend: "uinput jog/shuttle",
                    detail: format!(
                        "controller button {index} does not exist (0..={})",
                        JOG_BUTTONS - 1
                    ),
                });
            }
            InputEvent::Jog { .. }
            | InputEvent::Shuttle { .. }
            | InputEvent::ControllerButton { .. }
            | InputEvent::ReleaseAll => {}
            other => {
                return Err(InjectError::Unsupported {
                    backend: "uinput jog/shuttle",
                    kind: event_kind(other),
                })
            }
        }
        let events = self.state.translate(event);
        write_reports(&mut self.dev, &events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_protocol::msg::InputEvent;

    const SYN: RawEvent = RawEvent::syn();

    fn key(code: u16, v: i32) -> RawEvent {
        RawEvent::new(EV_KEY, code, v)
    }

    fn abs(code: u16, v: i32) -> RawEvent {
        RawEvent::abs(code, v)
    }

    fn pen(contact: PenContact, x: f32, y: f32, pressure: u16) -> PenEvent {
        PenEvent {
            tool: PenTool::Pen,
            x,
            y,
            pressure,
            tilt_x: 0,
            tilt_y: 0,
            rotation: 0,
            buttons: PenButtons::EMPTY,
            contact,
        }
    }

    #[test]
    fn pen_stroke_sequence() {
        let mut t = PenTablet::new(1920, 1080);
        assert_eq!((t.max_x(), t.max_y()), (15359, 8639));

        // Hover in: tool and first position in one report.
        let hover = pen(PenContact::Hover, 100.0, 50.5, 0);
        assert_eq!(
            t.translate(&hover),
            vec![key(BTN_TOOL_PEN, 1), abs(ABS_X, 800), abs(ABS_Y, 404), SYN]
        );
        // The same sample again: nothing.
        assert!(t.translate(&hover).is_empty());

        // Touch down with pressure at the same place.
        let down = pen(PenContact::Contact, 100.0, 50.5, 65535);
        assert_eq!(
            t.translate(&down),
            vec![abs(ABS_PRESSURE, 8191), key(BTN_TOUCH, 1), SYN]
        );

        // Move with pressure and tilt change: only what changed (Y and rotation did not).
        let mut mv = pen(PenContact::Contact, 101.25, 50.5, 32768);
        mv.tilt_x = 4550;
        mv.tilt_y = -1249;
        assert_eq!(
            t.translate(&mv),
            vec![
                abs(ABS_X, 810),
                abs(ABS_PRESSURE, 4096),
                abs(ABS_TILT_X, 46),
                abs(ABS_TILT_Y, -12),
                SYN
            ]
        );

        // Barrel button press, then release: only on change.
        let mut b = mv;
        b.buttons = PenButtons::BARREL1;
        assert_eq!(t.translate(&b), vec![key(BTN_STYLUS, 1), SYN]);
        assert!(t.translate(&b).is_empty());
        b.buttons = PenButtons::BARREL1.union(PenButtons::BARREL2);
        assert_eq!(t.translate(&b), vec![key(BTN_STYLUS2, 1), SYN]);
        b.buttons = PenButtons::EMPTY;
        assert_eq!(
            t.translate(&b),
            vec![key(BTN_STYLUS, 0), key(BTN_STYLUS2, 0), SYN]
        );

        // Lift: pressure 0 and BTN_TOUCH 0.
        let mut lift = mv;
        lift.contact = PenContact::Hover;
        assert_eq!(
            t.translate(&lift),
            vec![abs(ABS_PRESSURE, 0), key(BTN_TOUCH, 0), SYN]
        );
        assert!(!t.is_touching());

        // Leave.
        let mut leave = lift;
        leave.contact = PenContact::Leave;
        assert_eq!(t.translate(&leave), vec![key(BTN_TOOL_PEN, 0), SYN]);
        assert_eq!(t.tool(), None);
        assert!(t.translate(&leave).is_empty());
        assert!(t.release_all().is_empty());
    }

    #[test]
    fn pen_enters_directly_in_contact() {
        let mut t = PenTablet::new(100, 100);
        let mut e = pen(PenContact::Contact, 10.0, 20.0, 65535);
        e.rotation = 9000;
        assert_eq!(
            t.translate(&e),
            vec![
                key(BTN_TOOL_PEN, 1),
                abs(ABS_X, 80),
                abs(ABS_Y, 160),
                abs(ABS_Z, 900),
                SYN,
                abs(ABS_PRESSURE, 8191),
                key(BTN_TOUCH, 1),
                SYN
            ]
        );
    }

    #[test]
    fn eraser_flip_releases_pen_first() {
        let mut t = PenTablet::new(100, 100);
        let mut e = pen(PenContact::Hover, 10.0, 10.0, 0);
        e.buttons = PenButtons::BARREL1;
        assert_eq!(
            t.translate(&e),
            vec![
                key(BTN_TOOL_PEN, 1),
                abs(ABS_X, 80),
                abs(ABS_Y, 80),
                key(BTN_STYLUS, 1),
                SYN
            ]
        );
        let mut r = pen(PenContact::Hover, 10.0, 10.0, 0);
        r.tool = PenTool::Eraser;
        assert_eq!(
            t.translate(&r),
            vec![
                key(BTN_STYLUS, 0),
                key(BTN_TOOL_PEN, 0),
                SYN,
                key(BTN_TOOL_RUBBER, 1),
                abs(ABS_X, 80),
                abs(ABS_Y, 80),
                SYN
            ]
        );
        assert_eq!(t.tool(), Some(PenTool::Eraser));

        // Flip while touching: lift, leave, enter, touch.
        let mut c = r;
        c.contact = PenContact::Contact;
        c.pressure = 65535;
        assert_eq!(
            t.translate(&c),
            vec![abs(ABS_PRESSURE, 8191), key(BTN_TOUCH, 1), SYN]
        );
        let mut p = c;
        p.tool = PenTool::Pen;
        assert_eq!(
            t.translate(&p),
            vec![
                abs(ABS_PRESSURE, 0),
                key(BTN_TOUCH, 0),
                SYN,
                key(BTN_TOOL_RUBBER, 0),
                SYN,
                key(BTN_TOOL_PEN, 1),
                abs(ABS_X, 80),
                abs(ABS_Y, 80),
                SYN,
                abs(ABS_PRESSURE, 8191),
                key(BTN_TOUCH, 1),
                SYN
            ]
        );
    }

    #[test]
    fn pressure_scaling_endpoints() {
        assert_eq!(scale_pressure(0), 0);
        assert_eq!(scale_pressure(65535), 8191);
        // 32767.5 is the exact midpoint of the input: 32767 → 4095.4999…, 32768 → 4095.5624…
        assert_eq!(scale_pressure(32767), 4095);
        assert_eq!(scale_pressure(32768), 4096);
        assert_eq!(scale_pressure(8), 1); // 0.99993 rounds up
        assert_eq!(scale_pressure(4), 0); // 0.49996 rounds down
        let mut prev = 0;
        for p in 0..=u16::MAX {
            let s = scale_pressure(p);
            assert!(s >= prev && s <= PRESSURE_MAX);
            let exact = f64::from(p) * 8191.0 / 65535.0;
            assert!((f64::from(s) - exact).abs() <= 0.5, "{p}");
            prev = s;
        }
    }

    #[test]
    fn tilt_rounding_and_clamping() {
        assert_eq!(scale_tilt(0), 0);
        assert_eq!(scale_tilt(49), 0);
        assert_eq!(scale_tilt(50), 1);
        assert_eq!(scale_tilt(-49), 0);
        assert_eq!(scale_tilt(-50), -1);
        assert_eq!(scale_tilt(4549), 45);
        assert_eq!(scale_tilt(4550), 46);
        assert_eq!(scale_tilt(9000), 90);
        assert_eq!(scale_tilt(-9000), -90);
        assert_eq!(scale_tilt(i16::MAX), 90);
        assert_eq!(scale_tilt(i16::MIN), -90);
        assert_eq!(scale_rotation(0), 0);
        assert_eq!(scale_rotation(4), 0);
        assert_eq!(scale_rotation(5), 1);
        assert_eq!(scale_rotation(35994), 3599);
        assert_eq!(scale_rotation(35995), 0);
    }

    #[test]
    fn positions_clamp_to_the_axes() {
        let mut t = PenTablet::new(10, 10);
        let e = pen(PenContact::Hover, -3.0, 99.0, 0);
        assert_eq!(
            t.translate(&e),
            vec![key(BTN_TOOL_PEN, 1), abs(ABS_X, 0), abs(ABS_Y, 79), SYN]
        );
        // NaN becomes 0, 79.92 rounds to 80 and clamps to 79: nothing changed.
        let e = pen(PenContact::Hover, f32::NAN, 9.99, 0);
        assert!(t.translate(&e).is_empty());
    }

    #[test]
    fn hover_pressure_is_zero() {
        let mut t = PenTablet::new(10, 10);
        let e = pen(PenContact::Hover, 1.0, 1.0, 40000);
        assert_eq!(
            t.translate(&e),
            vec![key(BTN_TOOL_PEN, 1), abs(ABS_X, 8), abs(ABS_Y, 8), SYN]
        );
        assert!(t.translate(&e).is_empty());
    }

    #[test]
    fn release_all_mid_stroke() {
        let mut t = PenTablet::new(100, 100);
        let mut e = pen(PenContact::Contact, 1.0, 1.0, 1000);
        e.buttons = PenButtons::BARREL2;
        t.translate(&e);
        assert_eq!(
            t.release_all(),
            vec![
                abs(ABS_PRESSURE, 0),
                key(BTN_TOUCH, 0),
                SYN,
                key(BTN_STYLUS2, 0),
                key(BTN_TOOL_PEN, 0),
                SYN
            ]
        );
        assert!(t.release_all().is_empty());
        // Coming back re-announces the tool.
        assert_eq!(t.translate(&e)[0], key(BTN_TOOL_PEN, 1));
    }

    #[test]
    fn jog_shuttle_sequences() {
        let mut d = JogShuttleDevice::new();
        let rel = RawEvent::rel;
        assert_eq!(
            d.translate(&InputEvent::Jog { delta: 3 }),
            vec![rel(REL_DIAL, 3), SYN]
        );
        assert_eq!(
            d.translate(&InputEvent::Jog { delta: -1 }),
            vec![rel(REL_DIAL, -1), SYN]
        );
        assert!(d.translate(&InputEvent::Jog { delta: 0 }).is_empty());
        assert_eq!(
            d.translate(&InputEvent::Shuttle { position: 3 }),
            vec![rel(REL_WHEEL, 3), SYN]
        );
        assert!(d.translate(&InputEvent::Shuttle { position: 3 }).is_empty());
        assert_eq!(
            d.translate(&InputEvent::Shuttle { position: -7 }),
            vec![rel(REL_WHEEL, -7), SYN]
        );
        // Back to centre: 0 is sent.
        assert_eq!(
            d.translate(&InputEvent::Shuttle { position: 0 }),
            vec![rel(REL_WHEEL, 0), SYN]
        );
        // Out of range clamps.
        assert_eq!(d.shuttle(100), vec![rel(REL_WHEEL, 7), SYN]);
        d.shuttle(0);

        let btn = |index, pressed| InputEvent::ControllerButton { index, pressed };
        assert_eq!(d.translate(&btn(0, true)), vec![key(256, 1), SYN]);
        assert!(d.translate(&btn(0, true)).is_empty());
        assert_eq!(d.translate(&btn(14, true)), vec![key(270, 1), SYN]);
        assert!(d.translate(&btn(15, true)).is_empty());
        assert_eq!(d.translate(&btn(0, false)), vec![key(256, 0), SYN]);
        assert!(d.translate(&btn(0, false)).is_empty());
        assert_eq!(JogShuttleDevice::button_code(15), None);

        d.shuttle(-2);
        assert_eq!(
            d.translate(&InputEvent::ReleaseAll),
            vec![key(270, 0), rel(REL_WHEEL, 0), SYN]
        );
        assert!(d.release_all().is_empty());
        assert!(d
            .translate(&InputEvent::PointerMove { x: 1, y: 1 })
            .is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn constants_match_evdev() {
        use evdev::{AbsoluteAxisCode as A, KeyCode as K, RelativeAxisCode as R};
        assert_eq!(BTN_0, K::BTN_0.0);
        assert_eq!(BTN_TOOL_PEN, K::BTN_TOOL_PEN.0);
        assert_eq!(BTN_TOOL_RUBBER, K::BTN_TOOL_RUBBER.0);
        assert_eq!(BTN_TOUCH, K::BTN_TOUCH.0);
        assert_eq!(BTN_STYLUS, K::BTN_STYLUS.0);
        assert_eq!(BTN_STYLUS2, K::BTN_STYLUS2.0);
        assert_eq!(ABS_X, A::ABS_X.0);
        assert_eq!(ABS_Y, A::ABS_Y.0);
        assert_eq!(ABS_Z, A::ABS_Z.0);
        assert_eq!(ABS_PRESSURE, A::ABS_PRESSURE.0);
        assert_eq!(ABS_TILT_X, A::ABS_TILT_X.0);
        assert_eq!(ABS_TILT_Y, A::ABS_TILT_Y.0);
        assert_eq!(REL_DIAL, R::REL_DIAL.0);
        assert_eq!(REL_WHEEL, R::REL_WHEEL.0);
        assert_eq!(EV_MSC, evdev::EventType::MISC.0);
        assert_eq!(EV_ABS, evdev::EventType::ABSOLUTE.0);
        assert_eq!(EV_REL, evdev::EventType::RELATIVE.0);
    }

    /// Whether `/dev/uinput` exists and this process may write to it.
    #[cfg(target_os = "linux")]
    fn uinput_writable() -> bool {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(UINPUT_PATH)
            .is_ok()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn opening_without_uinput_names_dev_uinput() {
        if uinput_writable() {
            let mut pen = UinputPen::open(640, 480).expect("uinput is writable: pen opens");
            pen.inject(&InputEvent::ReleaseAll).unwrap();
            let mut jog = UinputJogShuttle::open().expect("uinput is writable: jog opens");
            jog.inject(&InputEvent::Jog { delta: 1 }).unwrap();
            return;
        }
        for result in [
            UinputPen::open(640, 480).map(|_| ()),
            UinputJogShuttle::open().map(|_| ()),
        ] {
            match result {
                Err(InjectError::Open { backend, detail }) => {
                    assert_eq!(backend, "uinput");
                    assert!(detail.contains("/dev/uinput"), "{detail}");
                    assert!(
                        detail.contains("modprobe uinput") || detail.contains("group"),
                        "{detail}"
                    );
                }
                Err(e) => panic!("expected an open error, got {e}"),
                Ok(()) => panic!("opened although /dev/uinput is not writable"),
            }
        }
    }
}
