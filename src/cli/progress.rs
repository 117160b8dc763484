//! A spinner on stderr while `dispatch --wait` or `result --wait` blocks.
//!
//! It draws only when both stdout and stderr are terminals, so pipes, CI logs and
//! `--json` consumers never see control characters. It redraws every 100 ms from its own
//! task and erases its line when dropped.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::table::human_duration;

const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// A running spinner; dropping it stops and erases it.
pub struct Spinner {
    task: JoinHandle<()>,
}

impl Spinner {
    /// Starts a spinner showing `message` and the elapsed time, or nothing when the output
    /// is not interactive.
    pub fn start(message: String) -> Option<Spinner> {
        if !(std::io::stdout().is_terminal() && std::io::stderr().is_terminal()) {
            return None;
        }
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            for frame in FRAMES.iter().cycle() {
                tick.tick().await;
                let elapsed = human_duration(Duration::from_secs(started.elapsed().as_secs()));
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\x1b[2K{frame} {message} ({elapsed})");
                let _ = err.flush();
            }
        });
        Some(Spinner { task })
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.task.abort();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
    }
}
