//! Watching managed pane processes exit directly, through Linux pidfds.
//!
//! tmux 3.3a loses the SIGCHLD of about one dying pane process in five (the libutempter race,
//! docs/tmux-control-mode.md §6): the pane then stays a zombie, the `pane-died` hook does
//! not fire, and only the `%*` subscription (1 s timer) or the next listing would notice.
//! The kernel tells the coordinator itself the moment a process exits: a pidfd
//! (`pidfd_open(2)`, Linux ≥ 5.3) becomes readable then, whoever the parent is. [`ExitWatch`]
//! keeps one pidfd per managed pane process; when one becomes readable it gives the hook a
//! few milliseconds and then sends SIGCHLD to the tmux server itself ([`KICK_DELAYS`]),
//! until the event loop, having seen the death reported, stops the watch
//! ([`ExitWatch::forget`]). The watching task runs beside the event loop, so a tick's
//! round trips never delay a kick; a lost SIGCHLD costs milliseconds instead of up to a
//! second. A kick tmux did not need is harmless: it reaps nothing.
//!
//! This layer only triggers the recovery earlier: the death itself is still reported by
//! tmux (hook, subscription or listing), with its exit status. Without pidfd support the
//! watch logs once and the other layers carry on alone.

use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
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

/// One pidfd-watching task per managed pane process.
pub struct ExitWatch {
    /// The tmux server to kick.
    server_pid: libc::pid_t,
    /// Pane → the pid watched and its task.
    watched: HashMap<u32, (u32, AbortHandle)>,
    warned: bool,
}

impl ExitWatch {
    /// A watch that kicks the tmux server `server_pid`.
    pub fn new(server_pid: u32) -> ExitWatch {
        ExitWatch {
            server_pid: libc::pid_t::try_from(server_pid).unwrap_or(0),
            watched: HashMap::new(),
            warned: false,
        }
    }

    /// Watches `pid`, the process of `pane`, replacing the pane's earlier watch. An already
    /// exited process counts as exiting now.
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
        let server = self.server_pid;
        let task = tokio::spawn(async move {
            // SAFETY: the OwnedFd is moved into the AsyncFd, which owns it until dropped, so
            // the descriptor stays open and the same for the AsyncFd's whole life.
            let fd = match unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
                Ok(fd) => fd,
                Err(e) => {
                    tracing::debug!(error = %e, pane, pid, "cannot poll a pidfd");
                    return;
                }
            };
            if fd.readable().await.is_err() {
                return;
            }
            let exited = tokio::time::Instant::now();
            for (kick, delay) in KICK_DELAYS.iter().enumerate() {
                tokio::time::sleep_until(exited + *delay).await;
                tracing::info!(pane = %format!("%{pane}"), pid, kick = kick + 1, "pane process exited but tmux has not reported it: sending SIGCHLD to the tmux server");
                if server > 1 {
                    // SAFETY: kill(2) has no memory effects.
                    unsafe {
                        libc::kill(server, libc::SIGCHLD);
                    }
                }
            }
        });
        self.watched.insert(pane, (pid, task.abort_handle()));
    }

    /// Stops watching the process of `pane` (its death was reported, or the pane closed).
    pub fn forget(&mut self, pane: u32) {
        if let Some((_, task)) = self.watched.remove(&pane) {
            task.abort();
        }
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
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command};

    /// A process standing in for the tmux server: it blocks SIGCHLD and has no children, so
    /// a SIGCHLD pending in `/proc/<pid>/status` is a kick.
    fn fake_server() -> Child {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        // SAFETY: only async-signal-safe calls between fork and exec; the mask survives exec.
        unsafe {
            cmd.pre_exec(|| {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGCHLD);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
        cmd.spawn().unwrap()
    }

    fn kicked(server: &Child) -> bool {
        let status = std::fs::read_to_string(format!("/proc/{}/status", server.id())).unwrap();
        let bit = 1u64 << (libc::SIGCHLD - 1);
        status
            .lines()
            .filter(|l| l.starts_with("SigPnd:") || l.starts_with("ShdPnd:"))
            .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
            .any(|mask| mask & bit != 0)
    }

    async fn wait_kicked(server: &Child) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !kicked(server) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no SIGCHLD reached the server"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn sleeper() -> Child {
        Command::new("sleep").arg("30").spawn().unwrap()
    }

    fn end(mut child: Child) {
        let _ = child.kill();
        let _ = child.wait();
    }

    #[tokio::test]
    async fn an_exit_gets_the_server_kicked() {
        let server = fake_server();
        let mut watch = ExitWatch::new(server.id());
        let worker = sleeper();
        watch.watch(7, worker.id());
        end(worker);
        wait_kicked(&server).await;
        end(server);
    }

    #[tokio::test]
    async fn a_replaced_watch_kicks_only_for_the_new_process() {
        let server = fake_server();
        let mut watch = ExitWatch::new(server.id());
        let (old, new) = (sleeper(), sleeper());
        watch.watch(1, old.id());
        watch.watch(1, new.id());
        end(old);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            !kicked(&server),
            "the replaced process is no longer watched"
        );
        end(new);
        wait_kicked(&server).await;
        end(server);
    }

    #[tokio::test]
    async fn a_forgotten_watch_kicks_nothing() {
        let server = fake_server();
        let mut watch = ExitWatch::new(server.id());
        let worker = sleeper();
        watch.watch(2, worker.id());
        watch.forget(2);
        end(worker);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!kicked(&server), "the death was reported: no kicks");
        end(server);
    }
}
