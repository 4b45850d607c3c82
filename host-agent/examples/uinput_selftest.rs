//! Exercises the uinput pen tablet and jog/shuttle for real: creates both virtual devices through
//! the host agent's [`UinputPen`] and [`UinputJogShuttle`] sinks, opens their
//! `/dev/input/eventN` nodes, injects a scripted sequence through [`InputSink::inject`] (behind a
//! [`Router`], as the host does), reads back every event the kernel delivers and compares it with
//! what the pure translators ([`PenTablet`], [`JogShuttleDevice`]) predict after the input
//! core's own filtering (it drops zero relative events, repeated key states, unchanged absolute
//! values and reports left empty by that).
//!
//! Needs a writable `/dev/uinput` and readable `/dev/input/event*` (root, with the `uinput` and
//! `evdev` modules loaded); `scripts/qemu-uinput.sh` runs it in a VM with a Debian kernel.
//! The last line printed is `UINPUT-SELFTEST PASS` or `UINPUT-SELFTEST FAIL: reason`; the exit
//! code is 0 or 1 to match.
//!
//! ```text
//! cargo run -p sightline-host-agent --example uinput_selftest
//! ```
//!
//! [`UinputPen`]: sightline_host::inject::uinput::UinputPen
//! [`UinputJogShuttle`]: sightline_host::inject::uinput::UinputJogShuttle
//! [`InputSink::inject`]: sightline_host::inject::InputSink::inject
//! [`Router`]: sightline_host::inject::Router
//! [`PenTablet`]: sightline_host::inject::uinput::PenTablet
//! [`JogShuttleDevice`]: sightline_host::inject::uinput::JogShuttleDevice

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("UINPUT-SELFTEST FAIL: uinput exists only on Linux");
    std::process::exit(1);
}

#[cfg(target_os = "linux")]
fn main() {
    std::process::exit(linux::run());
}

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::{BTreeSet, HashMap};
    use std::os::fd::AsRawFd;
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use evdev::raw_stream::RawDevice;
    use sightline_host::inject::uinput::{
        JogShuttleDevice, PenTablet, RawEvent, UinputJogShuttle, UinputPen, ABS_PRESSURE,
        ABS_TILT_X, ABS_TILT_Y, ABS_X, ABS_Y, ABS_Z, BTN_0, BTN_STYLUS, BTN_STYLUS2, BTN_TOOL_PEN,
        BTN_TOOL_RUBBER, BTN_TOUCH, EV_ABS, EV_KEY, EV_REL, EV_SYN, JOG_BUTTONS,
        POSITION_RESOLUTION, PRESSURE_MAX, REL_DIAL, REL_WHEEL, ROTATION_MAX, SYN_REPORT, TILT_MAX,
        TILT_RESOLUTION,
    };
    use sightline_host::inject::{InputSink, Router};
    use sightline_protocol::msg::{
        InputEvent, MouseButton, PenButtons, PenContact, PenEvent, PenTool,
    };

    /// The stream size the pen tablet is created for.
    const WIDTH: u32 = 1920;
    const HEIGHT: u32 = 1080;
    /// How long to wait for events that a step should produce.
    const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(2);
    /// How long to wait for stray events once the expected ones are in.
    const QUIET: Duration = Duration::from_millis(30);

    /// Runs the self-test and prints the verdict; returns the exit code.
    pub fn run() -> i32 {
        println!("uinput self-test: {}", kernel_line());
        let started = Instant::now();
        let result = selftest();
        println!(
            "uinput self-test took {:.2} s{}",
            started.elapsed().as_secs_f64(),
            uptime().map_or(String::new(), |u| format!(" (kernel up {u:.2} s)"))
        );
        match result {
            Ok(()) => {
                println!("UINPUT-SELFTEST PASS");
                0
            }
            Err(reason) => {
                println!("UINPUT-SELFTEST FAIL: {reason}");
                1
            }
        }
    }

    fn kernel_line() -> String {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "?".into());
        format!(
            "kernel {release}{}",
            uptime().map_or(String::new(), |u| format!(", up {u:.2} s"))
        )
    }

    fn uptime() -> Option<f64> {
        std::fs::read_to_string("/proc/uptime")
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// One of the two virtual devices.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Dev {
        Pen,
        Jog,
    }

    impl Dev {
        fn label(self) -> &'static str {
            match self {
                Dev::Pen => "pen",
                Dev::Jog => "jog",
            }
        }
    }

    /// A scripted step: what to inject, and whether the sink must refuse it.
    struct Step {
        what: &'static str,
        event: InputEvent,
        must_fail: bool,
    }

    fn step(what: &'static str, event: InputEvent) -> Step {
        Step {
            what,
            event,
            must_fail: false,
        }
    }

    fn pen(tool: PenTool, contact: PenContact, x: f32, y: f32, pressure: u16) -> PenEvent {
        PenEvent {
            tool,
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

    /// The scripted sequence.
    fn script() -> Vec<Step> {
        use PenContact::{Contact, Hover, Leave};
        use PenTool::{Eraser, Pen};
        let p = InputEvent::Pen;
        let hover = pen(Pen, Hover, 100.0, 50.5, 0);
        let mut touch = pen(Pen, Contact, 100.0, 50.5, 32768);
        touch.tilt_x = 4550;
        touch.tilt_y = -1249;
        touch.rotation = 9000;
        let mut mv = touch;
        mv.x = 101.25;
        mv.y = 60.0;
        mv.pressure = 65535;
        let mut barrel1 = mv;
        barrel1.buttons = PenButtons::BARREL1;
        let mut barrel12 = mv;
        barrel12.buttons = PenButtons::BARREL1.union(PenButtons::BARREL2);
        let mut lift = mv;
        lift.contact = Hover;
        let mut leave = lift;
        leave.contact = Leave;
        // The eraser comes in where the pen left: the kernel drops the unchanged X/Y.
        let mut eraser_in = lift;
        eraser_in.tool = Eraser;
        let mut eraser_down = eraser_in;
        eraser_down.contact = Contact;
        eraser_down.pressure = 20000;
        let mut eraser_move = eraser_down;
        eraser_move.x = 400.0;
        eraser_move.y = 300.0;
        let mut eraser_out = eraser_move;
        eraser_out.contact = Leave;
        // A stroke cut short by ReleaseAll, with a barrel button held.
        let mut stroke = pen(Pen, Contact, 1919.9, 1079.9, 1000);
        stroke.tilt_x = -9000;
        stroke.tilt_y = 9000;
        stroke.rotation = 35999;
        stroke.buttons = PenButtons::BARREL2;
        let mut stroke_move = stroke;
        stroke_move.x = 1800.0;
        stroke_move.pressure = 40000;

        let btn = |index, pressed| InputEvent::ControllerButton { index, pressed };
        vec![
            step("pen: hover in", p(hover)),
            step("pen: same sample again (no report)", p(hover)),
            step(
                "pen: touch, pressure 32768, tilt 45.5/-12.49, rotation 90",
                p(touch),
            ),
            step("pen: move with full pressure", p(mv)),
            step("pen: barrel button 1 down", p(barrel1)),
            step("pen: barrel button 2 down", p(barrel12)),
            step("pen: barrel buttons up", p(mv)),
            step("pen: lift", p(lift)),
            step("pen: leave", p(leave)),
            step("eraser: in (same place)", p(eraser_in)),
            step("eraser: touch", p(eraser_down)),
            step("eraser: move", p(eraser_move)),
            step("eraser: out while touching", p(eraser_out)),
            step("jog: +3", InputEvent::Jog { delta: 3 }),
            step("jog: -2", InputEvent::Jog { delta: -2 }),
            step("jog: 0 (no report)", InputEvent::Jog { delta: 0 }),
            step("shuttle: +4", InputEvent::Shuttle { position: 4 }),
            step(
                "shuttle: back to 0 (kernel drops REL_WHEEL 0)",
                InputEvent::Shuttle { position: 0 },
            ),
            step("button 0 down", btn(0, true)),
            step("button 14 down", btn(14, true)),
            step("button 0 up", btn(0, false)),
            step("button 14 up", btn(14, false)),
            Step {
                what: "button 15 (does not exist: refused)",
                event: btn(15, true),
                must_fail: true,
            },
            Step {
                what: "mouse button (no sink handles it: refused)",
                event: InputEvent::Button {
                    button: MouseButton::LEFT,
                    pressed: true,
                },
                must_fail: true,
            },
            step("pen: stroke at the far corner, barrel 2 held", p(stroke)),
            step("pen: stroke moves", p(stroke_move)),
            step("button 14 down", btn(14, true)),
            step("shuttle: -3", InputEvent::Shuttle { position: -3 }),
            step("jog: +1 while held", InputEvent::Jog { delta: 1 }),
            step("release all (mid-stroke)", InputEvent::ReleaseAll),
            step("release all again (nothing held)", InputEvent::ReleaseAll),
            step("pen: back in after release", p(hover)),
            step("pen: leave", p(leave)),
        ]
    }

    /// What the input core does with a device's events: it passes a key only when its state
    /// changes, an absolute value only when it differs from the last, a relative value only when
    /// non-zero, and a `SYN_REPORT` only when something is left in the report.
    #[derive(Debug, Default)]
    struct KernelModel {
        keys: BTreeSet<u16>,
        abs: HashMap<u16, i32>,
    }

    impl KernelModel {
        /// The events readers see for `events`, and the ones the kernel drops (with why).
        fn deliver(
            &mut self,
            events: &[RawEvent],
        ) -> (Vec<RawEvent>, Vec<(RawEvent, &'static str)>) {
            let mut delivered = Vec::new();
            let mut dropped = Vec::new();
            let mut report = Vec::new();
            for &e in events {
                match e.type_ {
                    EV_SYN if e.code == SYN_REPORT => {
                        if report.is_empty() {
                            dropped.push((e, "empty report"));
                        } else {
                            delivered.append(&mut report);
                            delivered.push(e);
                        }
                    }
                    EV_KEY => {
                        let down = e.value != 0;
                        if self.keys.contains(&e.code) == down {
                            dropped.push((e, "key already in that state"));
                        } else {
                            if down {
                                self.keys.insert(e.code);
                            } else {
                                self.keys.remove(&e.code);
                            }
                            report.push(e);
                        }
                    }
                    EV_ABS => {
                        let cur = self.abs.entry(e.code).or_insert(0);
                        if *cur == e.value {
                            dropped.push((e, "unchanged absolute value"));
                        } else {
                            *cur = e.value;
                            report.push(e);
                        }
                    }
                    EV_REL if e.value == 0 => dropped.push((e, "zero relative value")),
                    _ => report.push(e),
                }
            }
            assert!(report.is_empty(), "every report ends with SYN_REPORT");
            (delivered, dropped)
        }
    }

    /// A readable name for an event.
    fn describe(e: &RawEvent) -> String {
        let code = match (e.type_, e.code) {
            (EV_SYN, SYN_REPORT) => return "SYN_REPORT".into(),
            (EV_KEY, BTN_TOOL_PEN) => "BTN_TOOL_PEN".into(),
            (EV_KEY, BTN_TOOL_RUBBER) => "BTN_TOOL_RUBBER".into(),
            (EV_KEY, BTN_TOUCH) => "BTN_TOUCH".into(),
            (EV_KEY, BTN_STYLUS) => "BTN_STYLUS".into(),
            (EV_KEY, BTN_STYLUS2) => "BTN_STYLUS2".into(),
            (EV_KEY, c) if (BTN_0..BTN_0 + 10).contains(&c) => format!("BTN_{}", c - BTN_0),
            (EV_KEY, c) if (BTN_0..BTN_0 + 16).contains(&c) => format!("BTN_0+{}", c - BTN_0),
            (EV_ABS, ABS_X) => "ABS_X".into(),
            (EV_ABS, ABS_Y) => "ABS_Y".into(),
            (EV_ABS, ABS_Z) => "ABS_Z".into(),
            (EV_ABS, ABS_PRESSURE) => "ABS_PRESSURE".into(),
            (EV_ABS, ABS_TILT_X) => "ABS_TILT_X".into(),
            (EV_ABS, ABS_TILT_Y) => "ABS_TILT_Y".into(),
            (EV_REL, REL_DIAL) => "REL_DIAL".into(),
            (EV_REL, REL_WHEEL) => "REL_WHEEL".into(),
            (t, c) => format!("type {t:#x} code {c:#x}"),
        };
        format!("{code} {}", e.value)
    }

    fn describe_all(events: &[RawEvent]) -> String {
        if events.is_empty() {
            return "(nothing)".into();
        }
        events.iter().map(describe).collect::<Vec<_>>().join(", ")
    }

    /// A device node opened for reading.
    struct Reader {
        dev: Dev,
        path: PathBuf,
        raw: RawDevice,
    }

    impl Reader {
        /// Waits up to `timeout` for the node to be readable.
        fn readable(&self, timeout: Duration) -> Result<bool, String> {
            let mut fds = libc::pollfd {
                fd: self.raw.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&mut fds, 1, ms) };
            if n < 0 {
                return Err(format!(
                    "poll on {}: {}",
                    self.path.display(),
                    std::io::Error::last_os_error()
                ));
            }
            if n > 0 && fds.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                return Err(format!(
                    "{} reported an error or hang-up",
                    self.path.display()
                ));
            }
            Ok(n > 0)
        }

        /// Reads what the kernel delivers: waits for at least `expected` events (up to
        /// [`ARRIVAL_TIMEOUT`]), then for [`QUIET`] with nothing more.
        fn collect(&mut self, expected: usize) -> Result<Vec<RawEvent>, String> {
            let mut got = Vec::new();
            let deadline = Instant::now() + ARRIVAL_TIMEOUT;
            loop {
                let wait = if got.len() >= expected {
                    QUIET
                } else {
                    deadline.saturating_duration_since(Instant::now())
                };
                if !self.readable(wait)? {
                    break;
                }
                let events = self
                    .raw
                    .fetch_events()
                    .map_err(|e| format!("reading {}: {e}", self.path.display()))?;
                got.extend(events.map(|e| RawEvent::new(e.event_type().0, e.code(), e.value())));
            }
            Ok(got)
        }
    }

    /// Finds the event node of the device called `name` (waiting up to 3 s for it to appear).
    fn find_node(dev: Dev, name: &str) -> Result<Reader, String> {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let mut found: Vec<(PathBuf, RawDevice)> = evdev::raw_stream::enumerate()
                .filter(|(_, d)| d.name() == Some(name))
                .collect();
            match found.len() {
                1 => {
                    let (path, raw) = found.pop().expect("one");
                    return Ok(Reader { dev, path, raw });
                }
                0 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                0 => {
                    let seen: Vec<String> = evdev::raw_stream::enumerate()
                        .map(|(p, d)| format!("{} {:?}", p.display(), d.name().unwrap_or("?")))
                        .collect();
                    return Err(format!(
                        "no /dev/input/event* node named {name:?} (is the evdev module loaded? \
                         nodes seen: {})",
                        if seen.is_empty() {
                            "none".into()
                        } else {
                            seen.join("; ")
                        }
                    ));
                }
                n => {
                    return Err(format!(
                        "{n} nodes are named {name:?}: {}",
                        found
                            .iter()
                            .map(|(p, _)| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
            }
        }
    }

    /// Checks the capabilities the kernel reports against what uinput.rs declares.
    fn check_capabilities(r: &Reader, problems: &mut Vec<String>) -> Result<(), String> {
        use evdev::{BusType, PropType};
        let d = &r.raw;
        let who = r.dev.label();
        let mut check = |ok: bool, what: String| {
            println!("  [{}] {who}: {what}", if ok { " ok " } else { "FAIL" });
            if !ok {
                problems.push(format!("{who}: {what}"));
            }
        };
        let id = d.input_id();
        let product = if r.dev == Dev::Pen { 1 } else { 2 };
        check(
            id.bus_type() == BusType::BUS_VIRTUAL
                && id.vendor() == 0
                && id.product() == product
                && id.version() == 1,
            format!(
                "id bus {:?} vendor {:#06x} product {:#06x} version {} (want Virtual 0x0000 {product:#06x} 1)",
                id.bus_type(),
                id.vendor(),
                id.product(),
                id.version()
            ),
        );
        let types: BTreeSet<u16> = d.supported_events().iter().map(|t| t.0).collect();
        let want_types: BTreeSet<u16> = match r.dev {
            Dev::Pen => [EV_SYN, EV_KEY, EV_ABS].into(),
            Dev::Jog => [EV_SYN, EV_KEY, EV_REL].into(),
        };
        check(
            types == want_types,
            format!("event types {types:?} (want {want_types:?}; no EV_REP)"),
        );
        let keys: BTreeSet<u16> = d
            .supported_keys()
            .map(|k| k.iter().map(|k| k.0).collect())
            .unwrap_or_default();
        let want_keys: BTreeSet<u16> = match r.dev {
            Dev::Pen => [
                BTN_TOOL_PEN,
                BTN_TOOL_RUBBER,
                BTN_TOUCH,
                BTN_STYLUS,
                BTN_STYLUS2,
            ]
            .into(),
            Dev::Jog => (0..u16::from(JOG_BUTTONS)).map(|i| BTN_0 + i).collect(),
        };
        check(
            keys == want_keys,
            format!("{} keys {keys:x?} (want {want_keys:x?})", keys.len()),
        );
        let props: Vec<u16> = d.properties().iter().map(|p| p.0).collect();
        let want_props: Vec<u16> = match r.dev {
            Dev::Pen => vec![PropType::POINTER.0],
            Dev::Jog => vec![],
        };
        check(
            props == want_props,
            format!("properties {props:?} (want {want_props:?}: INPUT_PROP_POINTER is 0)"),
        );
        match r.dev {
            Dev::Pen => {
                let tablet = PenTablet::new(WIDTH, HEIGHT);
                let want: BTreeSet<(u16, i32, i32, i32)> = [
                    (ABS_X, 0, tablet.max_x(), POSITION_RESOLUTION),
                    (ABS_Y, 0, tablet.max_y(), POSITION_RESOLUTION),
                    (ABS_Z, 0, ROTATION_MAX, 0),
                    (ABS_PRESSURE, 0, PRESSURE_MAX, 0),
                    (ABS_TILT_X, -TILT_MAX, TILT_MAX, TILT_RESOLUTION),
                    (ABS_TILT_Y, -TILT_MAX, TILT_MAX, TILT_RESOLUTION),
                ]
                .into();
                let info: Vec<_> = d
                    .get_absinfo()
                    .map_err(|e| format!("EVIOCGABS on {}: {e}", r.path.display()))?
                    .collect();
                let got: BTreeSet<(u16, i32, i32, i32)> = info
                    .iter()
                    .map(|(c, i)| (c.0, i.minimum(), i.maximum(), i.resolution()))
                    .collect();
                check(
                    got == want,
                    format!("absolute axes (code, min, max, resolution) {got:?} (want {want:?})"),
                );
                let nonzero: Vec<_> = info
                    .iter()
                    .filter(|(_, i)| i.value() != 0 || i.fuzz() != 0 || i.flat() != 0)
                    .map(|(c, _)| c.0)
                    .collect();
                check(
                    nonzero.is_empty(),
                    format!("every axis starts at 0 with no fuzz or flat (differing: {nonzero:?})"),
                );
            }
            Dev::Jog => {
                let rel: BTreeSet<u16> = d
                    .supported_relative_axes()
                    .map(|a| a.iter().map(|a| a.0).collect())
                    .unwrap_or_default();
                let want: BTreeSet<u16> = [REL_DIAL, REL_WHEEL].into();
                check(
                    rel == want,
                    format!("relative axes {rel:?} (want REL_DIAL, REL_WHEEL {want:?})"),
                );
            }
        }
        Ok(())
    }

    fn selftest() -> Result<(), String> {
        let pen_sink = UinputPen::open(WIDTH, HEIGHT)
            .map_err(|e| format!("cannot create the virtual pen: {e}"))?;
        let jog_sink = UinputJogShuttle::open()
            .map_err(|e| format!("cannot create the virtual jog/shuttle: {e}"))?;
        let mut readers = [
            find_node(Dev::Pen, UinputPen::NAME)?,
            find_node(Dev::Jog, UinputJogShuttle::NAME)?,
        ];
        for r in &readers {
            println!(
                "{:?} is {} ({})",
                r.raw.name().unwrap_or("?"),
                r.path.display(),
                r.dev.label()
            );
        }
        let mut router = Router::new();
        router.add(Box::new(pen_sink));
        router.add(Box::new(jog_sink));

        let mut problems = Vec::new();
        println!("capabilities:");
        for r in &readers {
            check_capabilities(r, &mut problems)?;
        }

        // The prediction: the same translators, fed the same events, then the input core's
        // filtering.
        let mut pen_model = PenTablet::new(WIDTH, HEIGHT);
        let mut jog_model = JogShuttleDevice::new();
        let mut kernel = [KernelModel::default(), KernelModel::default()];

        let steps = script();
        let mut compared = 0usize;
        let mut matched_steps = 0usize;
        let mut dropped_total = 0usize;
        println!("events ({} steps):", steps.len());
        for (n, s) in steps.iter().enumerate() {
            let translated = [
                match s.event {
                    InputEvent::Pen(p) => pen_model.translate(&p),
                    InputEvent::ReleaseAll => pen_model.release_all(),
                    _ => Vec::new(),
                },
                jog_model.translate(&s.event),
            ];
            let result = router.inject(&s.event);
            let mut lines = Vec::new();
            let mut step_ok = match (&result, s.must_fail) {
                (Ok(()), false) => true,
                (Err(e), true) => {
                    lines.push(format!("    refused as expected: {e}"));
                    true
                }
                (Ok(()), true) => {
                    problems.push(format!("#{n:02} {}: accepted, should be refused", s.what));
                    false
                }
                (Err(e), false) => {
                    problems.push(format!("#{n:02} {}: inject failed: {e}", s.what));
                    false
                }
            };
            router
                .flush()
                .map_err(|e| format!("#{n:02} {}: flush failed: {e}", s.what))?;
            for (i, r) in readers.iter_mut().enumerate() {
                let (want, dropped) = kernel[i].deliver(&translated[i]);
                let got = r.collect(want.len())?;
                compared += got.len().max(want.len());
                dropped_total += dropped.len();
                if translated[i].is_empty() && got.is_empty() {
                    continue;
                }
                let ok = got == want;
                step_ok &= ok;
                let mut line = format!(
                    "    {} {}: {}",
                    r.dev.label(),
                    if ok { "read" } else { "READ" },
                    describe_all(&got)
                );
                if !dropped.is_empty() {
                    line += &format!(
                        "\n        (kernel dropped as predicted: {})",
                        dropped
                            .iter()
                            .map(|(e, why)| format!("{} [{why}]", describe(e)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                if !ok {
                    line += &format!("\n        EXPECTED: {}", describe_all(&want));
                    problems.push(format!(
                        "#{n:02} {} ({}): read [{}], expected [{}]",
                        s.what,
                        r.dev.label(),
                        describe_all(&got),
                        describe_all(&want)
                    ));
                }
                lines.push(line);
            }
            println!(
                "#{n:02} {:<52} {}",
                s.what,
                if step_ok { "ok" } else { "MISMATCH" }
            );
            for l in lines {
                println!("{l}");
            }
            matched_steps += usize::from(step_ok);
        }

        // The kernel's idea of the devices' state at the end.
        println!("final state:");
        for (i, r) in readers.iter().enumerate() {
            let held: BTreeSet<u16> = r
                .raw
                .get_key_state()
                .map_err(|e| format!("EVIOCGKEY on {}: {e}", r.path.display()))?
                .iter()
                .map(|k| k.0)
                .collect();
            let ok = held == kernel[i].keys;
            println!(
                "  [{}] {}: keys held {held:x?} (predicted {:x?})",
                if ok { " ok " } else { "FAIL" },
                r.dev.label(),
                kernel[i].keys
            );
            if !ok {
                problems.push(format!("{}: keys held at the end {held:x?}", r.dev.label()));
            }
            if r.dev == Dev::Pen {
                let abs: BTreeSet<(u16, i32)> = r
                    .raw
                    .get_absinfo()
                    .map_err(|e| format!("EVIOCGABS on {}: {e}", r.path.display()))?
                    .map(|(c, i)| (c.0, i.value()))
                    .collect();
                let want: BTreeSet<(u16, i32)> =
                    [ABS_X, ABS_Y, ABS_Z, ABS_PRESSURE, ABS_TILT_X, ABS_TILT_Y]
                        .into_iter()
                        .map(|c| (c, kernel[i].abs.get(&c).copied().unwrap_or(0)))
                        .collect();
                let ok = abs == want;
                println!(
                    "  [{}] pen: axis values {abs:?} (predicted {want:?})",
                    if ok { " ok " } else { "FAIL" }
                );
                if !ok {
                    problems.push(format!(
                        "pen: axis values at the end {abs:?}, predicted {want:?}"
                    ));
                }
            }
        }

        println!(
            "summary: {matched_steps}/{} steps matched, {compared} events compared (SYN_REPORTs \
             included), {dropped_total} translator events dropped by the kernel as predicted, \
             {} problem(s)",
            steps.len(),
            problems.len()
        );
        drop(router);
        if problems.is_empty() {
            Ok(())
        } else {
            for p in &problems {
                println!("problem: {p}");
            }
            Err(format!(
                "{} problem(s); first: {}",
                problems.len(),
                problems[0]
            ))
        }
    }
}
