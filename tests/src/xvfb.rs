//! A private X server (Xvfb) for tests, stopped on drop.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Xvfb.
#[derive(Debug)]
pub struct Xvfb {
    child: Child,
    /// Display number (`:N`).
    pub display: u32,
}

/// The pid in an X lock file, if it names a running process. A lock left by a dead server is
/// stale: Xvfb removes it (and the old socket) itself when it starts.
fn live_lock_owner(lock: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(lock).ok()?.trim().parse().ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

impl Xvfb {
    /// Starts `Xvfb :N -screen 0 WxHxDEPTH` on the first free display in 90..160.
    ///
    /// Panics with an installation hint when Xvfb is missing: tests that need a display must
    /// fail, not skip, where it is absent.
    pub fn start(width: u32, height: u32, depth: u32) -> Xvfb {
        Self::start_with(width, height, depth, &[])
    }

    /// [`Xvfb::start`] with extra server arguments (e.g. `-extension MIT-SHM`).
    pub fn start_with(width: u32, height: u32, depth: u32, extra: &[&str]) -> Xvfb {
        for n in 90..160 {
            let lock = PathBuf::from(format!("/tmp/.X{n}-lock"));
            if live_lock_owner(&lock).is_some() {
                continue;
            }
            let spawned = Command::new("Xvfb")
                .arg(format!(":{n}"))
                .args(["-screen", "0", &format!("{width}x{height}x{depth}")])
                .args(["-nolisten", "tcp", "-noreset", "+extension", "RANDR"])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let mut child = match spawned {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                    "Xvfb is not installed: this test needs it (Debian: apt-get install xvfb \
                     mesa-vulkan-drivers libvulkan1 libxkbcommon-x11-0; scripts/deps.sh does it)"
                ),
                Err(e) => panic!("could not start Xvfb: {e}"),
            };
            let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // taken by someone else meanwhile: try the next display
                }
                if live_lock_owner(&lock) == Some(child.id())
                    && std::os::unix::net::UnixStream::connect(&socket).is_ok()
                {
                    return Xvfb { child, display: n };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            stop(&mut child);
        }
        panic!("no free X display in :90..:159 (or Xvfb failed to start on each)");
    }

    /// `":N"`.
    pub fn name(&self) -> String {
        format!(":{}", self.display)
    }
}

/// SIGTERM (so the server removes its lock and socket), then SIGKILL if it lingers.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// A fresh 0700 directory (for `XDG_RUNTIME_DIR`).
pub fn private_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sightline-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(&dir)
        .expect("create private temp dir");
    dir
}
