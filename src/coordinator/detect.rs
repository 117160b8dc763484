//! Pane-death detection: turns what the session model knows about a pane into one "this
//! incarnation died" fact per process, whichever layer reported it first.
//!
//! Layers (docs/tmux-control-mode.md §6, measured on tmux 3.3a), all parsed by the
//! [`SessionModel`](crate::tmux::SessionModel), which reports them as changes:
//! * the `pane-died` hook's marker line (~2.5 ms after the exit, but missed about one time
//!   in five on 3.3a);
//! * the `%*` subscription on pane pid, dead flag, status and signal, within a second of
//!   any change; the pid makes every incarnation differ;
//! * the listing on every tick, which also repeats what is still unresolved;
//! * a pane known dead with neither status nor signal is a zombie whose SIGCHLD tmux lost
//!   (libutempter race): the detector asks for a SIGCHLD to the server
//!   ([`Detection::KickServer`]), after which the hook fires and the status is known.
//!
//! The detector is pure: the caller feeds it the model's [`PaneState`] of a pane and the
//! time, and acts on what it returns. It reports each (pane, pid) death once, so the hook,
//! the subscription and the listing never cause two respawns, and it ignores late reports
//! about a process that was already replaced.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::policy::ExitStatus;
use crate::tmux::PaneState;

/// Minimum time between two SIGCHLD kicks for the same pane.
pub const KICK_INTERVAL: Duration = Duration::from_millis(500);
/// Earlier pids remembered per pane, so a late report about a replaced process is ignored.
const RETIRED_KEEP: usize = 8;

/// How a dead pane's process ended, if tmux knows: the status, else the signal.
fn exit_of(pane: &PaneState) -> Option<ExitStatus> {
    if !pane.dead {
        return None;
    }
    pane.dead_status
        .map(ExitStatus::Code)
        .or(pane.dead_signal.map(ExitStatus::Signal))
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

/// The facts the detector decides on, from one [`PaneState`].
struct Report {
    pane: u32,
    pid: u32,
    dead: bool,
    exit: Option<ExitStatus>,
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

    /// Feeds what the model knows about one pane at `now` (after a change the model
    /// reported, or a listing). A pane whose pid is not known yet tells nothing.
    pub fn observe(&mut self, state: &PaneState, now: Instant) -> Detection {
        let Some(pid) = state.pid else {
            return Detection::Nothing;
        };
        let report = Report {
            pane: state.id.0,
            pid,
            dead: state.dead,
            exit: exit_of(state),
        };
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
    use crate::tmux::{PaneId, WindowId};
    use std::collections::BTreeMap;

    /// The model's state of pane `%pane` running `pid`, dead with `exit` if `dead`.
    fn state(pane: u32, pid: u32, dead: bool, exit: Option<ExitStatus>) -> PaneState {
        let (dead_status, dead_signal) = match exit {
            Some(ExitStatus::Code(code)) => (Some(code), None),
            Some(ExitStatus::Signal(signal)) => (None, Some(signal)),
            Some(ExitStatus::Unknown) | None => (None, None),
        };
        PaneState {
            id: PaneId(pane),
            window: WindowId(1),
            pid: Some(pid),
            dead,
            dead_status,
            dead_signal,
            title: String::new(),
            options: BTreeMap::new(),
        }
    }

    #[test]
    fn exit_is_the_status_else_the_signal_and_only_when_dead() {
        assert_eq!(
            exit_of(&state(1, 10, true, Some(ExitStatus::Code(3)))),
            Some(ExitStatus::Code(3))
        );
        assert_eq!(
            exit_of(&state(1, 10, true, Some(ExitStatus::Signal(9)))),
            Some(ExitStatus::Signal(9))
        );
        let mut both = state(1, 10, true, Some(ExitStatus::Code(0)));
        both.dead_signal = Some(15);
        assert_eq!(exit_of(&both), Some(ExitStatus::Code(0)));
        assert_eq!(exit_of(&state(1, 10, true, None)), None);
        assert_eq!(
            exit_of(&state(1, 10, false, Some(ExitStatus::Code(3)))),
            None
        );
    }

    #[test]
    fn a_pane_without_a_known_pid_tells_nothing() {
        let mut d = DeathDetector::new(Duration::from_secs(3));
        let mut unknown = state(1, 10, true, Some(ExitStatus::Code(1)));
        unknown.pid = None;
        assert_eq!(d.observe(&unknown, Instant::now()), Detection::Nothing);
    }

    #[test]
    fn each_death_is_reported_once_whoever_reports_it() {
        let t = Instant::now();
        let mut d = DeathDetector::new(Duration::from_secs(3));
        assert_eq!(
            d.observe(&state(1, 10, false, None), t),
            Detection::Nothing,
            "first sight of a running pane is its known state"
        );
        let died = Detection::Died {
            pane: 1,
            pid: 10,
            exit: ExitStatus::Signal(9),
        };
        assert_eq!(
            d.observe(&state(1, 10, true, Some(ExitStatus::Signal(9))), t),
            died
        );
        assert_eq!(
            d.observe(&state(1, 10, true, Some(ExitStatus::Signal(9))), t),
            Detection::Nothing
        );
        assert_eq!(
            d.observe(&state(1, 11, false, None), t),
            Detection::Started { pane: 1, pid: 11 }
        );
        assert_eq!(
            d.observe(&state(1, 11, true, Some(ExitStatus::Code(2))), t),
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
        d.observe(&state(1, 10, false, None), t);
        d.observe(&state(1, 11, false, None), t);
        assert_eq!(
            d.observe(&state(1, 10, true, Some(ExitStatus::Signal(9))), t),
            Detection::Nothing
        );
        assert_eq!(
            d.observe(&state(1, 11, true, Some(ExitStatus::Signal(9))), t),
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
        d.observe(&state(1, 10, false, None), t);
        assert_eq!(
            d.observe(&state(1, 12, true, Some(ExitStatus::Code(1))), t),
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
        d.observe(&state(2, 20, false, None), t);
        assert_eq!(
            d.observe(&state(2, 20, true, None), t),
            Detection::KickServer { pane: 2 }
        );
        assert_eq!(
            d.observe(&state(2, 20, true, None), t + ms(100)),
            Detection::Nothing,
            "kicks are spaced"
        );
        assert_eq!(
            d.observe(&state(2, 20, true, None), t + ms(600)),
            Detection::KickServer { pane: 2 }
        );
        assert_eq!(
            d.observe(&state(2, 20, true, Some(ExitStatus::Code(0))), t + ms(610)),
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
        d.observe(&state(3, 30, true, None), t);
        assert_eq!(
            d.observe(&state(3, 30, true, None), t + Duration::from_secs(3)),
            Detection::Died {
                pane: 3,
                pid: 30,
                exit: ExitStatus::Unknown
            }
        );
        assert_eq!(
            d.observe(&state(3, 30, true, Some(ExitStatus::Code(1))), t),
            Detection::Nothing
        );
    }
}
