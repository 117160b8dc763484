//! Watching managed pane processes exit directly, through Linux pidfds.
//!
//! tmux 3.3a loses the SIGCHLD of about one dying pane process in five (the libutempter race,
//! docs/tmux-control-mode.md §6): the pane then stays a zombie, the `pane-died` hook does
//! not fire, and only the `%*` subscription (1 s timer) or the next listing would notice.
//! The kernel tells the coordinator itself the moment a process exits: a pidfd
//! (`pidfd_open(2)`, Linux ≥ 5.3) becomes readable then, whoever the parent is. [`ExitWatch`]
//! keeps one pidfd per managed pane process and reports `(pane, pid)` when it exits; the
//! event loop then gives the hook a few milliseconds and sends the SIGCHLD kick itself
//! ([`KICK_DELAYS`]) when the death has still not been reported, so a lost SIGCHLD costs
//! milliseconds instead of up to a second.
//!
//! This layer only triggers the recovery earlier: the death itself is still reported by
//! tmux (hook, subscription or listing), with its exit status. Without pidfd support the
//! watch logs once and the other layers carry on alone.

use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// When to send SIGCHLD to the tmux server after a watched process exited without its
/// death being reported, counted from the exit. The hook normally arrives within 3 ms; a
/// kick landing while tmux's utempter helper still runs is lost too, hence the repeats.
pub const KICK_DELAYS: [Duration; 5] = [
    Duration::from_millis(8),
    Duration::from_millis(20),
    Duration::from_millis(45),
    Duration::from_millis(90),
    Duration::from_millis(180),
];

/// One pidfd-watching task per pane; exits arrive on one channel.
pub struct ExitWatch {
    exits_tx: mpsc::UnboundedSender<(u32, u32)>,
    exits_rx: mpsc::UnboundedReceiver<(u32, u32)>,
    /// Pane → the pid watched and its task.
    watched: HashMap<u32, (u32, AbortHandle)>,
    warned: bool,
}

impl Default for ExitWatch {
    fn default() -> Self {
        Self::new()
    }
}

impl ExitWatch {
    pub fn new() -> ExitWatch {
        let (exits_tx, exits_rx) = mpsc::unbounded_channel();
        ExitWatch {
            exits_tx,
            exits_rx,
            watched: HashMap::new(),
            warned: false,
        }
    }

    /// Watches `pid`, the process of `pane`, replacing the pane's earlier watch. An already
    /// exited process is reported at once.
    pub fn watch(&mut self, pane: u32, pid: u32) {
        if pid == 0 || self.watched.get(&pane).is_some_and(|(p, _)| *p == pid) {
            return;
        }
        self.forget(pane);
        let fd = match pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) => {
                // ESRCH: the process is already gone and reaped; the listing reports it.
                if e.raw_os_error() != Some(libc::ESRCH) && !self.warned {
                    self.warned = true;
                    tracing::warn!(error = %e, "cannot watch pane processes with pidfds; relying on tmux's notifications alone");
                }
                return;
            }
        };
        let exits = self.exits_tx.clone();
        let task = tokio::spawn(async move {
            // SAFETY: the OwnedFd is moved into the AsyncFd, which owns it until dropped, so
            // the descriptor stays open and the same for the AsyncFd's whole life.
            match unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
                Ok(fd) => {
                    if fd.readable().await.is_ok() {
                        let _ = exits.send((pane, pid));
                    }
                }
                Err(e) => tracing::debug!(error = %e, pane, pid, "cannot poll a pidfd"),
            }
        });
        self.watched.insert(pane, (pid, task.abort_handle()));
    }

    /// Stops watching the process of `pane`.
    pub fn forget(&mut self, pane: u32) {
        if let Some((_, task)) = self.watched.remove(&pane) {
            task.abort();
        }
    }

    /// The next `(pane, pid)` whose process exited.
    pub async fn next_exit(&mut self) -> (u32, u32) {
        let (pane, pid) = self
            .exits_rx
            .recv()
            .await
            .expect("the watch keeps a sender, so the channel never closes");
        // Done watching it; a respawn watches the new process.
        if self.watched.get(&pane).is_some_and(|(p, _)| *p == pid) {
            self.watched.remove(&pane);
        }
        (pane, pid)
    }
}

impl Drop for ExitWatch {
    fn drop(&mut self) {
        for (_, (_, task)) in self.watched.drain() {
            task.abort();
        }
    }
}

fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_exiting_process_is_reported_with_its_pane() {
        let mut watch = ExitWatch::new();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        watch.watch(7, child.id());
        child.kill().unwrap();
        let reported = tokio::time::timeout(Duration::from_secs(5), watch.next_exit())
            .await
            .expect("exit reported");
        assert_eq!(reported, (7, child.id()));
        let _ = child.wait();
    }

    #[tokio::test]
    async fn a_replaced_or_forgotten_watch_reports_nothing() {
        let mut watch = ExitWatch::new();
        let mut first = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let mut second = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        watch.watch(1, first.id());
        watch.watch(1, second.id());
        first.kill().unwrap();
        let _ = first.wait();
        assert!(
            tokio::time::timeout(Duration::from_millis(200), watch.next_exit())
                .await
                .is_err(),
            "the replaced process is no longer watched"
        );
        watch.forget(1);
        second.kill().unwrap();
        let _ = second.wait();
        assert!(
            tokio::time::timeout(Duration::from_millis(200), watch.next_exit())
                .await
                .is_err(),
            "a forgotten pane is no longer watched"
        );
    }
}
