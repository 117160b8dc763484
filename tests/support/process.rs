//! Processes a test starts: [`ChildGuard`] owns a child and kills it on drop (also when
//! the test panics), so no `panebus` process outlives its test; the free functions signal
//! and probe processes the test reaches only by pid (pane processes started through tmux,
//! handler programs started by a worker).

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// A child process killed (SIGKILL) and reaped on drop.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    pub fn signal(&self, sig: i32) {
        signal_pid(self.pid(), sig);
    }

    /// The exit status, waiting up to `timeout`; `None` if it still runs by then.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.0.try_wait().expect("wait for a child process") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status; panics if the process
    /// still runs by then.
    pub fn stop(&mut self, timeout: Duration) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(timeout)
            .unwrap_or_else(|| panic!("process {} did not stop", self.pid()))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `sig` to `pid`, a process this test started (directly, through tmux or through
/// a worker).
pub fn signal_pid(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a pid this test started; a stale pid only makes it fail.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Whether `pid` exists (a zombie counts; see [`process_gone`]).
pub fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks existence.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// Whether `pid` runs nothing any more: gone, or a zombie (which still has a /proc entry,
/// in state Z, until its parent reaps it).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .map(|(_, rest)| rest.starts_with('Z'))
            .unwrap_or(false),
    }
}
