//! The uinput pen tablet and jog/shuttle for real, in a qemu VM booting Debian's kernel (this
//! machine's kernel has no `/dev/uinput`): `scripts/qemu-uinput.sh` builds the
//! `uinput_selftest` example, boots it in an initramfs with the `uinput` and `evdev` modules, and
//! the example injects a scripted pen and jog/shuttle sequence through the sinks, reads every
//! event back from `/dev/input/eventN` and compares it with the translators' prediction.
//!
//! Needs root, apt-get access to Debian's packages on the first run (qemu-system-x86,
//! busybox-static and the kernel package, cached under `/var/tmp/sightline-qemu`), and takes
//! about 10–25 s of emulated boot and test once the kernel is cached. It fails, and does not
//! skip, when any of that is missing.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn uinput_devices_deliver_what_the_translators_predict_in_a_vm() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("scripts/qemu-uinput.sh");
    assert!(script.is_file(), "{} is missing", script.display());

    let started = Instant::now();
    let out = Command::new("bash")
        .arg(&script)
        .current_dir(&root)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash {}: {e}", script.display()));
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    println!(
        "scripts/qemu-uinput.sh took {:.1} s in all",
        elapsed.as_secs_f64()
    );

    let console = format!("{stdout}\n{stderr}");
    assert!(
        out.status.success(),
        "scripts/qemu-uinput.sh failed ({}); last lines:\n{}",
        out.status,
        tail(&console, 60)
    );
    assert!(
        stdout.lines().any(|l| l == "UINPUT-SELFTEST PASS"),
        "the script succeeded but the console has no `UINPUT-SELFTEST PASS`; last lines:\n{}",
        tail(&console, 60)
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("summary: ")
            && l.contains(" steps matched")
            && l.contains(", 0 problem(s)")),
        "no clean summary line on the console; last lines:\n{}",
        tail(&console, 60)
    );
}
