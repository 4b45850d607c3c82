//! Real-time scheduling for the audio callback thread, where the system allows it.
//!
//! A 5 ms audio period leaves the callback a few milliseconds to answer the sound server; on a
//! busy machine an ordinary thread misses that now and then (an audible dropout). When the
//! process may (root, `CAP_SYS_NICE`, or an `RLIMIT_RTPRIO` grant such as the `audio` group's),
//! the thread that runs the callback is moved to `SCHED_FIFO` at a modest priority; otherwise
//! nothing changes. The callback does bounded work (decode one packet, copy samples), so it
//! cannot starve the machine.

use std::cell::Cell;

thread_local! {
    static TRIED: Cell<bool> = const { Cell::new(false) };
}

/// Priority used (of 1–99; PulseAudio itself asks rtkit for 5–20).
const PRIORITY: i32 = 10;

/// Call from the audio callback: the first call on each thread tries to make it real-time.
/// Returns whether this call changed the thread.
pub fn promote_current_thread() -> bool {
    if TRIED.with(|t| t.replace(true)) {
        return false;
    }
    promote()
}

#[cfg(target_os = "linux")]
fn promote() -> bool {
    let param = libc::sched_param {
        sched_priority: PRIORITY,
    };
    // SAFETY: `sched_setscheduler` with pid 0 changes only the calling thread's policy; `param`
    // is a valid, initialised sched_param that outlives the call.
    let r = unsafe {
        libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &param)
    };
    if r == 0 {
        tracing::debug!(priority = PRIORITY, "audio callback thread is real-time");
        true
    } else {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "audio callback thread stays at normal priority"
        );
        false
    }
}

#[cfg(not(target_os = "linux"))]
fn promote() -> bool {
    false
}
