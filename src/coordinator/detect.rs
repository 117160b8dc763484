//! Pane-death detection: turns what tmux reports into one "this incarnation died" fact per
//! process, whichever layer reports it first.
//!
//! Layers (docs/tmux-control-mode.md §6, measured on tmux 3.3a):
//! * the `pane-died` hook prints a marker line `%pb-died <pane> <pid> <status> <signal>`
//!   (~2.5 ms after the exit, but missed about one time in five on 3.3a);
//! * the `%*` subscription [`SUBSCRIPTION_FORMAT`] reports `<pane> <pid> <dead> <status>
//!   <signal>` within a second of any change; the pid makes every incarnation differ;
//! * a pane reported dead with neither status nor signal is a zombie whose SIGCHLD tmux lost
//!   (libutempter race): the detector asks for a SIGCHLD to the server
//!   ([`Detection::KickServer`]), after which the hook fires and the status is known.
//!
//! The detector is pure: the caller feeds it lines and the time, and acts on what it
//! returns. It reports each (pane, pid) death once, so the hook and the subscription never
//! cause two respawns.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::policy::ExitStatus;

/// Subscription name used for the `%*` backstop.
pub const SUBSCRIPTION_NAME: &str = "pbpanes";
/// The format of the `%*` subscription: pane id, pid, dead flag, exit status, exit signal.
pub const SUBSCRIPTION_FORMAT: &str =
    "#{pane_id} #{pane_pid} #{pane_dead} #{pane_dead_status} #{pane_dead_signal}";
/// The word the `pane-died` hook prints first (as `%pb-died`, so the line starts with `%`).
pub const MARKER_WORD: &[u8] = b"%pb-died";
/// The format of the `pane-died` hook's marker line, after the marker word.
pub const MARKER_FORMAT: &str = " #{hook_pane} #{pane_pid} #{pane_dead_status} #{pane_dead_signal}";
/// Minimum time between two SIGCHLD kicks for the same pane.
pub const KICK_INTERVAL: Duration = Duration::from_millis(500);
/// Earlier pids remembered per pane, so a late report about a replaced process is ignored.
const RETIRED_KEEP: usize = 8;

/// What tmux says about one pane at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaneReport {
    pub pane: u32,
    pub pid: u32,
    pub dead: bool,
    /// `None` while tmux does not know how the process ended.
    pub exit: Option<ExitStatus>,
}

fn pane_id(text: &str) -> Option<u32> {
    text.strip_prefix('%')?.parse().ok()
}

fn exit_from(status: &str, signal: &str) -> Option<ExitStatus> {
    if let Ok(code) = status.parse() {
        return Some(ExitStatus::Code(code));
    }
    signal.parse().ok().map(ExitStatus::Signal)
}

/// Parses the value of a [`SUBSCRIPTION_FORMAT`] subscription line.
pub fn parse_subscription(value: &[u8]) -> Option<PaneReport> {
    let text = std::str::from_utf8(value).ok()?;
    let fields: Vec<&str> = text.split(' ').collect();
    let [pane, pid, dead, status, signal] = fields.as_slice() else {
        return None;
    };
    let dead = match *dead {
        "1" => true,
        "0" | "" => false,
        _ => return None,
    };
    Some(PaneReport {
        pane: pane_id(pane)?,
        pid: pid.parse().ok()?,
        dead,
        exit: if dead {
            exit_from(status, signal)
        } else {
            None
        },
    })
}

/// Parses a `pane-died` marker line (the whole line, starting with [`MARKER_WORD`]).
pub fn parse_marker(line: &[u8]) -> Option<PaneReport> {
    let rest = line.strip_prefix(MARKER_WORD)?;
    let text = std::str::from_utf8(rest).ok()?;
    let fields: Vec<&str> = text.split(' ').collect();
    let ["", pane, pid, status, signal] = fields.as_slice() else {
        return None;
    };
    Some(PaneReport {
        pane: pane_id(pane)?,
        pid: pid.parse().ok()?,
        dead: true,
        exit: exit_from(status, signal),
    })
}

/// What the caller should do after feeding a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detection {
    /// Nothing new.
    Nothing,
    /// A new incarnation (pid) of this pane is running.
    Started { pane: u32, pid: u32 },
    /// This incarnation died; reported once per (pane, pid).
    Died {
        pane: u32,
        pid: u32,
        exit: ExitStatus,
    },
    /// The pane is dead but tmux lost its SIGCHLD: send SIGCHLD to the tmux server. If the
    /// status never comes, [`Detection::Died`] with [`ExitStatus::Unknown`] follows after
    /// the give-up delay.
    KickServer { pane: u32 },
}

#[derive(Debug, Clone)]
struct Incarnation {
    pid: u32,
    died_reported: bool,
    /// First time it was seen dead without an exit status.
    unreaped_since: Option<Instant>,
    last_kick: Option<Instant>,
    /// Pids this pane had before, newest last.
    retired: Vec<u32>,
}

impl Incarnation {
    fn new(pid: u32, retired: Vec<u32>) -> Incarnation {
        Incarnation {
            pid,
            died_reported: false,
            unreaped_since: None,
            last_kick: None,
            retired,
        }
    }
}

/// Tracks the incarnations of panes and reports each death once.
#[derive(Debug, Default)]
pub struct DeathDetector {
    panes: HashMap<u32, Incarnation>,
    /// How long a dead pane may stay without status before it is reported anyway.
    give_up_after: Duration,
}

impl DeathDetector {
    /// A detector that reports an unreaped pane as dead (status unknown) after
    /// `give_up_after` of kicking.
    pub fn new(give_up_after: Duration) -> DeathDetector {
        DeathDetector {
            panes: HashMap::new(),
            give_up_after,
        }
    }

    /// Feeds one report (from the hook or the subscription) observed at `now`.
    pub fn observe(&mut self, report: PaneReport, now: Instant) -> Detection {
        let inc = self
            .panes
            .entry(report.pane)
            .or_insert_with(|| Incarnation::new(report.pid, Vec::new()));
        if inc.retired.contains(&report.pid) {
            // A late report (hook or tick) about a process already replaced.
            return Detection::Nothing;
        }
        if inc.pid != report.pid {
            let mut retired = std::mem::take(&mut inc.retired);
            retired.push(inc.pid);
            if retired.len() > RETIRED_KEEP {
                retired.remove(0);
            }
            *inc = Incarnation::new(report.pid, retired);
            if !report.dead {
                return Detection::Started {
                    pane: report.pane,
                    pid: report.pid,
                };
            }
        }
        if !report.dead || inc.died_reported {
            return Detection::Nothing;
        }
        match report.exit {
            Some(exit) => {
                inc.died_reported = true;
                Detection::Died {
                    pane: report.pane,
                    pid: report.pid,
                    exit,
                }
            }
            None => {
                let since = *inc.unreaped_since.get_or_insert(now);
                if now.duration_since(since) >= self.give_up_after {
                    inc.died_reported = true;
                    return Detection::Died {
                        pane: report.pane,
                        pid: report.pid,
                        exit: ExitStatus::Unknown,
                    };
                }
                match inc.last_kick {
                    Some(t) if now.duration_since(t) < KICK_INTERVAL => Detection::Nothing,
                    _ => {
                        inc.last_kick = Some(now);
                        Detection::KickServer { pane: report.pane }
                    }
                }
            }
        }
    }

    /// Forgets a pane that was closed.
    pub fn forget(&mut self, pane: u32) {
        self.panes.remove(&pane);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_values_parse() {
        assert_eq!(
            parse_subscription(b"%5 1234 0  "),
            Some(PaneReport {
                pane: 5,
                pid: 1234,
                dead: false,
                exit: None
            })
        );
        assert_eq!(
            parse_subscription(b"%5 1234 1 3 ").unwrap().exit,
            Some(ExitStatus::Code(3))
        );
        assert_eq!(
            parse_subscription(b"%5 1234 1  9").unwrap().exit,
            Some(ExitStatus::Signal(9))
        );
        assert_eq!(parse_subscription(b"%5 1234 1  ").unwrap().exit, None);
        for bad in [
            &b""[..],
            b"%5 1234 1",
            b"5 1234 0  ",
            b"%5 x 0  ",
            b"%5 1 7  ",
            b"%5 1 0   extra",
            b"\xff",
        ] {
            assert_eq!(parse_subscription(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn markers_parse() {
        assert_eq!(
            parse_marker(b"%pb-died %7 99 0 "),
            Some(PaneReport {
                pane: 7,
                pid: 99,
                dead: true,
                exit: Some(ExitStatus::Code(0))
            })
        );
        assert_eq!(
            parse_marker(b"%pb-died %7 99  15").unwrap().exit,
            Some(ExitStatus::Signal(15))
        );
        assert_eq!(parse_marker(b"%pb-died %7 99  ").unwrap().exit, None);
        assert_eq!(parse_marker(b"%pb-diedx %7 99  "), None);
        assert_eq!(parse_marker(b"%output %7 abc"), None);
        assert_eq!(parse_marker(b"%pb-died %7 99"), None);
    }

    fn report(pane: u32, pid: u32, dead: bool, exit: Option<ExitStatus>) -> PaneReport {
        PaneReport {
            pane,
            pid,
            dead,
            exit,
        }
    }

    #[test]
    fn each_death_is_reported_once_whoever_reports_it() {
        let t = Instant::now();
        let mut d = DeathDetector::new(Duration::from_secs(3));
        assert_eq!(
            d.observe(report(1, 10, false, None), t),
            Detection::Nothing,
            "first sight of a running pane is its known state"
        );
        let died = Detection::Died {
            pane: 1,
            pid: 10,
            exit: ExitStatus::Signal(9),
        };
        assert_eq!(
            d.observe(report(1, 10, true, Some(ExitStatus::Signal(9))), t),
            died
        );
        assert_eq!(
            d.observe(report(1, 10, true, Some(ExitStatus::Signal(9))), t),
            Detection::Nothing
        );
        assert_eq!(
            d.observe(report(1, 11, false, None), t),
            Detection::Started { pane: 1, pid: 11 }
        );
        assert_eq!(
            d.observe(report(1, 11, true, Some(ExitStatus::Code(2))), t),
            Detection::Died {
                pane: 1,
                pid: 11,
                exit: ExitStatus::Code(2)
            }
        );
    }

    #[test]
    fn late_reports_about_a_replaced_process_are_ignored() {
        let t = Instant::now();
        let mut d = DeathDetector::new(Duration::from_secs(3));
        d.observe(report(1, 10, false, None), t);
        d.observe(report(1, 11, false, None), t);
        assert_eq!(
            d.observe(report(1, 10, true, Some(ExitStatus::Signal(9))), t),
            Detection::Nothing
        );
        assert_eq!(
            d.observe(report(1, 11, true, Some(ExitStatus::Signal(9))), t),
            Detection::Died {
                pane: 1,
                pid: 11,
                exit: ExitStatus::Signal(9)
            }
        );
    }

    #[test]
    fn a_new_pid_already_dead_is_a_death() {
        let t = Instant::now();
        let mut d = DeathDetector::new(Duration::from_secs(3));
        d.observe(report(1, 10, false, None), t);
        assert_eq!(
            d.observe(report(1, 12, true, Some(ExitStatus::Code(1))), t),
            Detection::Died {
                pane: 1,
                pid: 12,
                exit: ExitStatus::Code(1)
            }
        );
    }

    #[test]
    fn lost_sigchld_is_kicked_then_resolved_by_the_status() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut d = DeathDetector::new(Duration::from_secs(3));
        d.observe(report(2, 20, false, None), t);
        assert_eq!(
            d.observe(report(2, 20, true, None), t),
            Detection::KickServer { pane: 2 }
        );
        assert_eq!(
            d.observe(report(2, 20, true, None), t + ms(100)),
            Detection::Nothing,
            "kicks are spaced"
        );
        assert_eq!(
            d.observe(report(2, 20, true, None), t + ms(600)),
            Detection::KickServer { pane: 2 }
        );
        assert_eq!(
            d.observe(report(2, 20, true, Some(ExitStatus::Code(0))), t + ms(610)),
            Detection::Died {
                pane: 2,
                pid: 20,
                exit: ExitStatus::Code(0)
            }
        );
    }

    #[test]
    fn an_unreaped_pane_is_reported_unknown_after_the_give_up_delay() {
        let t = Instant::now();
        let mut d = DeathDetector::new(Duration::from_secs(3));
        d.observe(report(3, 30, true, None), t);
        assert_eq!(
            d.observe(report(3, 30, true, None), t + Duration::from_secs(3)),
            Detection::Died {
                pane: 3,
                pid: 30,
                exit: ExitStatus::Unknown
            }
        );
        assert_eq!(
            d.observe(report(3, 30, true, Some(ExitStatus::Code(1))), t),
            Detection::Nothing
        );
    }
}
