//! The respawn policy: a pure function from what is known about one managed pane (its
//! health, its restart history, the time and the configuration) to what the coordinator
//! should do about it.
//!
//! Nothing here performs I/O or reads a clock, so every rule is tested by tables and by
//! property tests. The coordinator (`panebus attach`) and the heartbeat-only watchdog
//! (`panebus watchdog`) both gather facts, call [`decide`] and carry out the [`Action`].
//!
//! The rules, in order:
//! 1. A quarantined pane is left alone until `panebus release` lifts the quarantine.
//! 2. A running pane whose heartbeat is fresh, or missing for less than the grace period
//!    after its (re)start, is left alone. A worker that stopped on purpose (clean exit after
//!    deregistering) is left alone too.
//! 3. A failure (dead pane, or a heartbeat missing past the grace period) is quarantined when
//!    the pane was already respawned automatically `respawn_limit` times within the last
//!    `respawn_window`. Manual restarts never count; a release starts the count afresh.
//! 4. Otherwise the pane is respawned: at once the first time (or after a stable run of at
//!    least `stable_after`), then after an exponential backoff `base * 2^(n-1)` capped at
//!    `backoff_cap`, shortened by up to `jitter_ratio` of itself so that crash-looping panes
//!    of one session do not respawn in lockstep.

use std::time::{Duration, SystemTime};

/// Tunables of the policy. [`PolicyConfig::default`] gives the documented defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    /// Automatic respawns allowed within `respawn_window` before the next failure
    /// quarantines the pane (`PANEBUS_RESPAWN_LIMIT`).
    pub respawn_limit: u32,
    /// The sliding window in which automatic respawns are counted (`PANEBUS_RESPAWN_WINDOW`).
    pub respawn_window: Duration,
    /// Delay before the second respawn of a crash streak; doubles with each further one.
    pub backoff_base: Duration,
    /// Upper bound of a backoff delay.
    pub backoff_cap: Duration,
    /// Fraction (0..=1) of a backoff delay that jitter may take away.
    pub jitter_ratio: f64,
    /// A pane that ran at least this long before failing starts a new crash streak
    /// (its respawn is immediate again).
    pub stable_after: Duration,
    /// After a (re)start, a missing heartbeat is not a failure until this much time passed:
    /// the worker needs a moment to start and register.
    pub heartbeat_grace: Duration,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            respawn_limit: 5,
            respawn_window: Duration::from_secs(300),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            jitter_ratio: 0.25,
            stable_after: Duration::from_secs(60),
            heartbeat_grace: Duration::from_secs(30),
        }
    }
}

/// How a dead pane's process ended, as tmux reports it (`#{pane_dead_status}`,
/// `#{pane_dead_signal}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exited with this status code.
    Code(i32),
    /// Killed by this signal number.
    Signal(i32),
    /// Dead, but tmux has not told us how (e.g. a lost SIGCHLD not yet recovered).
    Unknown,
}

/// The Redis heartbeat of a running pane's worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// The heartbeat key exists.
    Fresh,
    /// The heartbeat key is absent; first noticed at `since`.
    Missing { since: SystemTime },
}

/// What is known about the process in a managed pane right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaneState {
    /// The pane's process is running.
    Running { heartbeat: Heartbeat },
    /// The pane's process exited (or was killed); first noticed at `since`.
    Dead { since: SystemTime, exit: ExitStatus },
    /// The worker exited cleanly after deregistering (e.g. a `shutdown` command): the
    /// operator asked for it, so it is not a crash.
    Stopped,
}

/// One managed pane as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaneHealth {
    /// When the current incarnation started (its last respawn, or when the coordinator
    /// first saw it).
    pub started_at: SystemTime,
    pub state: PaneState,
}

/// Since when Redis has answered without a connection failure, as the coordinator or the
/// watchdog saw it. A heartbeat that expired while Redis was away says nothing about the
/// worker, so the heartbeat grace of a running pane counts from its start or from when
/// Redis answered again, whichever is later: healthy workers get the time to beat again
/// after an outage instead of being taken for hung.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisContact {
    since: Option<SystemTime>,
}

impl RedisContact {
    /// Contact from `at` on (a successful connection).
    pub fn since(at: SystemTime) -> RedisContact {
        RedisContact { since: Some(at) }
    }

    /// A connection failure: contact starts again with the next answer.
    pub fn lost(&mut self) {
        self.since = None;
    }

    /// The health of a pane whose incarnation started at `started_at`, in `state`, judged
    /// at `now`, which must be the time of an answer from Redis (so contact holds again).
    pub fn health(
        &mut self,
        started_at: SystemTime,
        state: PaneState,
        now: SystemTime,
    ) -> PaneHealth {
        let contact = *self.since.get_or_insert(now);
        let started_at = match state {
            PaneState::Running { .. } => started_at.max(contact),
            PaneState::Dead { .. } | PaneState::Stopped => started_at,
        };
        PaneHealth { started_at, state }
    }
}

/// One entry of a pane's restart history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryEntry {
    pub at: SystemTime,
    pub kind: HistoryKind,
}

/// What happened to a pane at a [`HistoryEntry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryKind {
    /// The coordinator or watchdog respawned it after a failure. `replaced_uptime` is how
    /// long the incarnation it replaced had run.
    AutomaticRespawn { replaced_uptime: Duration },
    /// An operator restarted it (`panebus restart`): never counts toward quarantine and
    /// ends a crash streak.
    ManualRestart,
    /// An operator lifted its quarantine (`panebus release`): everything before is forgiven.
    Release,
}

/// A pane's restart history and quarantine flag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartHistory {
    /// Entries, oldest first.
    pub entries: Vec<HistoryEntry>,
    /// Whether the pane is quarantined now.
    pub quarantined: bool,
}

impl RestartHistory {
    /// The entries that still matter: those after the last release.
    fn since_release(&self) -> &[HistoryEntry] {
        match self
            .entries
            .iter()
            .rposition(|e| e.kind == HistoryKind::Release)
        {
            Some(i) => &self.entries[i + 1..],
            None => &self.entries,
        }
    }

    /// Automatic respawns after the last release that fall in `(now - window, now]`.
    pub fn automatic_respawns_within(&self, window: Duration, now: SystemTime) -> u32 {
        let count = self
            .since_release()
            .iter()
            .filter(|e| matches!(e.kind, HistoryKind::AutomaticRespawn { .. }))
            .filter(|e| e.at <= now && elapsed(e.at, now) < window)
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// How many automatic respawns of the current crash streak already happened: counting
    /// back from the newest, up to and including the first one that replaced a stable
    /// incarnation, and stopping at a manual restart or a release.
    fn streak(&self, stable_after: Duration) -> u32 {
        let mut streak = 0;
        for entry in self.since_release().iter().rev() {
            match entry.kind {
                HistoryKind::AutomaticRespawn { replaced_uptime } => {
                    streak += 1;
                    if replaced_uptime >= stable_after {
                        break;
                    }
                }
                HistoryKind::ManualRestart | HistoryKind::Release => break,
            }
        }
        streak
    }
}

/// Why a pane counts as failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The process exited.
    Exited(ExitStatus),
    /// The process runs but its heartbeat expired (hung, stopped, or lost Redis for good).
    HeartbeatExpired,
}

/// Why a pane is quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuarantineReason {
    /// The failure that tipped it over.
    pub failure: Failure,
    /// Automatic respawns counted in the window.
    pub respawns: u32,
    /// The window they were counted in.
    pub window: Duration,
}

/// What the coordinator should do about one pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing: healthy, within its grace period, stopped on purpose, or quarantined.
    LeaveAlone,
    /// Respawn it now.
    RespawnNow { failure: Failure },
    /// Respawn it once this much more time has passed (ask again then).
    RespawnAfter { delay: Duration, failure: Failure },
    /// Stop respawning it; record why and show it.
    Quarantine { reason: QuarantineReason },
}

/// A random draw in `[0, 1]` that shortens backoff delays. The caller draws it once per
/// failure, so repeated decisions about the same failure agree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Jitter(f64);

impl Jitter {
    /// No jitter at all.
    pub const NONE: Jitter = Jitter(0.0);

    /// A jitter draw; values outside `[0, 1]` (and NaN) are clamped into it.
    pub fn new(value: f64) -> Jitter {
        if value.is_nan() {
            Jitter(0.0)
        } else {
            Jitter(value.clamp(0.0, 1.0))
        }
    }

    /// A fresh random draw.
    pub fn random() -> Jitter {
        Jitter(rand::random::<f64>())
    }
}

/// Decides what to do about `pane`, given its `history`, the time `now`, the configuration
/// and a `jitter` draw for this failure. See the module documentation for the rules.
pub fn decide(
    pane: &PaneHealth,
    history: &RestartHistory,
    now: SystemTime,
    cfg: &PolicyConfig,
    jitter: Jitter,
) -> Action {
    if history.quarantined {
        return Action::LeaveAlone;
    }
    let (failure, failed_at) = match pane.state {
        PaneState::Stopped => return Action::LeaveAlone,
        PaneState::Running {
            heartbeat: Heartbeat::Fresh,
        } => return Action::LeaveAlone,
        PaneState::Running {
            heartbeat: Heartbeat::Missing { since },
        } => {
            // The grace period runs from the (re)start: a worker that has not registered yet
            // has no heartbeat, and that is fine for a while.
            let grace_ends = pane.started_at + cfg.heartbeat_grace;
            if now < grace_ends {
                return Action::LeaveAlone;
            }
            (Failure::HeartbeatExpired, since.max(grace_ends))
        }
        PaneState::Dead { since, exit } => (Failure::Exited(exit), since),
    };

    let respawns = history.automatic_respawns_within(cfg.respawn_window, now);
    if respawns >= cfg.respawn_limit {
        return Action::Quarantine {
            reason: QuarantineReason {
                failure,
                respawns,
                window: cfg.respawn_window,
            },
        };
    }

    let uptime = elapsed(pane.started_at, failed_at);
    let streak = if uptime >= cfg.stable_after {
        0
    } else {
        history.streak(cfg.stable_after)
    };
    let delay = backoff(streak, cfg, jitter);
    let remaining = delay.saturating_sub(elapsed(failed_at, now));
    if remaining.is_zero() {
        Action::RespawnNow { failure }
    } else {
        Action::RespawnAfter {
            delay: remaining,
            failure,
        }
    }
}

/// The delay before the respawn that follows `streak` earlier respawns of a crash streak:
/// zero for the first, then `base * 2^(streak-1)` capped at `backoff_cap`, minus up to
/// `jitter_ratio` of itself.
pub fn backoff(streak: u32, cfg: &PolicyConfig, jitter: Jitter) -> Duration {
    if streak == 0 {
        return Duration::ZERO;
    }
    let exponent = (streak - 1).min(31);
    let full = cfg
        .backoff_base
        .checked_mul(1u32 << exponent)
        .unwrap_or(cfg.backoff_cap)
        .min(cfg.backoff_cap);
    let ratio = if cfg.jitter_ratio.is_nan() {
        0.0
    } else {
        cfg.jitter_ratio.clamp(0.0, 1.0)
    };
    full.mul_f64(1.0 - ratio * jitter.0)
}

/// `to - from`, or zero when `to` is earlier (clocks are not trusted to be monotonic).
fn elapsed(from: SystemTime, to: SystemTime) -> Duration {
    to.duration_since(from).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn cfg() -> PolicyConfig {
        PolicyConfig {
            respawn_limit: 3,
            respawn_window: Duration::from_secs(100),
            backoff_base: Duration::from_secs(2),
            backoff_cap: Duration::from_secs(20),
            jitter_ratio: 0.5,
            stable_after: Duration::from_secs(30),
            heartbeat_grace: Duration::from_secs(10),
        }
    }

    #[test]
    fn after_lost_contact_the_heartbeat_grace_counts_from_the_next_answer() {
        let missing = PaneState::Running {
            heartbeat: Heartbeat::Missing { since: at(50) },
        };
        let mut contact = RedisContact::since(at(0));
        let judge = |contact: &mut RedisContact, now: u64| {
            let health = contact.health(at(0), missing, at(now));
            decide(&health, &history(vec![]), at(now), &cfg(), Jitter(0.0))
        };
        // Unbroken contact: the grace ran out at 10.
        assert!(matches!(judge(&mut contact, 60), Action::RespawnNow { .. }));
        // Redis was away; it answers again at 60: grace until 70.
        contact.lost();
        assert_eq!(judge(&mut contact, 60), Action::LeaveAlone);
        assert_eq!(judge(&mut contact, 69), Action::LeaveAlone);
        assert!(matches!(judge(&mut contact, 70), Action::RespawnNow { .. }));
        // A dead pane is a failure whatever Redis did.
        contact.lost();
        let dead = PaneState::Dead {
            since: at(55),
            exit: ExitStatus::Signal(9),
        };
        let health = contact.health(at(0), dead, at(60));
        assert!(matches!(
            decide(&health, &history(vec![]), at(60), &cfg(), Jitter(0.0)),
            Action::RespawnNow { .. }
        ));
    }

    fn auto(secs: u64, uptime: u64) -> HistoryEntry {
        HistoryEntry {
            at: at(secs),
            kind: HistoryKind::AutomaticRespawn {
                replaced_uptime: Duration::from_secs(uptime),
            },
        }
    }

    fn manual(secs: u64) -> HistoryEntry {
        HistoryEntry {
            at: at(secs),
            kind: HistoryKind::ManualRestart,
        }
    }

    fn release(secs: u64) -> HistoryEntry {
        HistoryEntry {
            at: at(secs),
            kind: HistoryKind::Release,
        }
    }

    fn history(entries: Vec<HistoryEntry>) -> RestartHistory {
        RestartHistory {
            entries,
            quarantined: false,
        }
    }

    fn dead(started: u64, died: u64) -> PaneHealth {
        PaneHealth {
            started_at: at(started),
            state: PaneState::Dead {
                since: at(died),
                exit: ExitStatus::Code(1),
            },
        }
    }

    fn running(started: u64, heartbeat: Heartbeat) -> PaneHealth {
        PaneHealth {
            started_at: at(started),
            state: PaneState::Running { heartbeat },
        }
    }

    const DIED: Failure = Failure::Exited(ExitStatus::Code(1));

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn decision_table() {
        let quarantined = RestartHistory {
            entries: vec![],
            quarantined: true,
        };
        let cases: Vec<(&str, PaneHealth, RestartHistory, u64, Action)> = vec![
            (
                "healthy pane",
                running(0, Heartbeat::Fresh),
                history(vec![]),
                500,
                Action::LeaveAlone,
            ),
            (
                "stopped on purpose",
                PaneHealth {
                    started_at: at(0),
                    state: PaneState::Stopped,
                },
                history(vec![]),
                500,
                Action::LeaveAlone,
            ),
            (
                "quarantined and dead",
                dead(0, 5),
                quarantined.clone(),
                500,
                Action::LeaveAlone,
            ),
            (
                "quarantined and hung",
                running(0, Heartbeat::Missing { since: at(1) }),
                quarantined,
                500,
                Action::LeaveAlone,
            ),
            (
                "first death respawns at once even if it died young",
                dead(100, 101),
                history(vec![]),
                101,
                Action::RespawnNow { failure: DIED },
            ),
            (
                "second quick death waits the base delay",
                dead(100, 101),
                history(vec![auto(100, 500)]),
                101,
                Action::RespawnAfter {
                    delay: secs(2),
                    failure: DIED,
                },
            ),
            (
                "the delay counts from the death, not from now",
                dead(100, 101),
                history(vec![auto(100, 500)]),
                102,
                Action::RespawnAfter {
                    delay: secs(1),
                    failure: DIED,
                },
            ),
            (
                "once the delay has passed, respawn now",
                dead(100, 101),
                history(vec![auto(100, 500)]),
                103,
                Action::RespawnNow { failure: DIED },
            ),
            (
                "third quick death doubles the delay",
                dead(110, 111),
                history(vec![auto(100, 500), auto(110, 2)]),
                111,
                Action::RespawnAfter {
                    delay: secs(4),
                    failure: DIED,
                },
            ),
            (
                "a stable run resets the backoff",
                dead(110, 150),
                history(vec![auto(100, 500), auto(110, 2)]),
                150,
                Action::RespawnNow { failure: DIED },
            ),
            (
                "a manual restart ends the streak",
                dead(110, 111),
                history(vec![auto(90, 500), auto(100, 2), manual(110)]),
                111,
                Action::RespawnNow { failure: DIED },
            ),
            (
                "limit reached within the window quarantines",
                dead(160, 161),
                history(vec![auto(100, 1), auto(130, 1), auto(160, 1)]),
                161,
                Action::Quarantine {
                    reason: QuarantineReason {
                        failure: DIED,
                        respawns: 3,
                        window: secs(100),
                    },
                },
            ),
            (
                "respawns that left the window do not count",
                dead(160, 250),
                history(vec![auto(100, 1), auto(130, 1), auto(160, 1)]),
                250,
                Action::RespawnNow { failure: DIED },
            ),
            (
                "manual restarts never count toward quarantine",
                dead(160, 161),
                history(vec![auto(100, 100), manual(120), auto(140, 1), manual(160)]),
                161,
                Action::RespawnNow { failure: DIED },
            ),
            (
                "a release forgives everything before it",
                dead(170, 171),
                history(vec![
                    auto(100, 1),
                    auto(130, 1),
                    auto(160, 1),
                    release(165),
                    manual(170),
                ]),
                171,
                Action::RespawnNow { failure: DIED },
            ),
            (
                "after a release the first death respawns at once",
                dead(165, 166),
                history(vec![auto(100, 1), auto(130, 1), auto(160, 1), release(165)]),
                166,
                Action::RespawnNow { failure: DIED },
            ),
            (
                "missing heartbeat within the grace period is fine",
                running(100, Heartbeat::Missing { since: at(101) }),
                history(vec![]),
                109,
                Action::LeaveAlone,
            ),
            (
                "missing heartbeat past the grace period is a failure",
                running(100, Heartbeat::Missing { since: at(101) }),
                history(vec![]),
                110,
                Action::RespawnNow {
                    failure: Failure::HeartbeatExpired,
                },
            ),
            (
                "a hung pane in a crash streak backs off from the end of its grace",
                running(100, Heartbeat::Missing { since: at(101) }),
                history(vec![auto(100, 1)]),
                110,
                Action::RespawnAfter {
                    delay: secs(2),
                    failure: Failure::HeartbeatExpired,
                },
            ),
            (
                "a hung pane can be quarantined too",
                running(160, Heartbeat::Missing { since: at(190) }),
                history(vec![auto(100, 1), auto(130, 1), auto(160, 1)]),
                190,
                Action::Quarantine {
                    reason: QuarantineReason {
                        failure: Failure::HeartbeatExpired,
                        respawns: 3,
                        window: secs(100),
                    },
                },
            ),
            (
                "a clock that went backwards does not panic or wait forever",
                dead(100, 101),
                history(vec![auto(100, 500)]),
                50,
                Action::RespawnAfter {
                    delay: secs(2),
                    failure: DIED,
                },
            ),
        ];
        for (name, pane, hist, now, expected) in cases {
            assert_eq!(
                decide(&pane, &hist, at(now), &cfg(), Jitter::NONE),
                expected,
                "case: {name}"
            );
        }
    }

    #[test]
    fn backoff_doubles_then_caps() {
        let c = cfg();
        let delays: Vec<u64> = (0..8)
            .map(|n| backoff(n, &c, Jitter::NONE).as_secs())
            .collect();
        assert_eq!(delays, vec![0, 2, 4, 8, 16, 20, 20, 20]);
        assert_eq!(backoff(u32::MAX, &c, Jitter::NONE), secs(20));
    }

    #[test]
    fn jitter_shortens_by_at_most_its_ratio() {
        let c = cfg();
        assert_eq!(backoff(3, &c, Jitter::new(1.0)), secs(4));
        assert_eq!(backoff(3, &c, Jitter::new(0.5)), secs(6));
        assert_eq!(backoff(3, &c, Jitter::new(7.0)), secs(4), "clamped to 1");
        assert_eq!(backoff(3, &c, Jitter::new(f64::NAN)), secs(8));
        assert_eq!(backoff(0, &c, Jitter::new(1.0)), Duration::ZERO);
    }

    #[test]
    fn window_count_ignores_entries_in_the_future_and_before_release() {
        let h = history(vec![auto(10, 1), release(20), auto(30, 1), auto(90, 1)]);
        assert_eq!(h.automatic_respawns_within(secs(100), at(50)), 1);
        assert_eq!(h.automatic_respawns_within(secs(100), at(95)), 2);
        assert_eq!(h.automatic_respawns_within(secs(10), at(95)), 1);
    }

    /// One simulated failure: how long the incarnation lives, and the jitter draw.
    #[derive(Debug, Clone)]
    struct Crash {
        lifetime: u64,
        jitter: f64,
        manual_restart: bool,
        hung: bool,
    }

    fn crash() -> impl Strategy<Value = Crash> {
        (
            0u64..200,
            0.0f64..=1.0,
            prop::bool::weighted(0.1),
            any::<bool>(),
        )
            .prop_map(|(lifetime, jitter, manual_restart, hung)| Crash {
                lifetime,
                jitter,
                manual_restart,
                hung,
            })
    }

    fn policy_config() -> impl Strategy<Value = PolicyConfig> {
        (
            1u32..6,
            10u64..400,
            1u64..10,
            1u64..120,
            0.0f64..=1.0,
            1u64..100,
            0u64..30,
        )
            .prop_map(
                |(limit, window, base, cap, ratio, stable, grace)| PolicyConfig {
                    respawn_limit: limit,
                    respawn_window: secs(window),
                    backoff_base: secs(base),
                    backoff_cap: secs(cap.max(base)),
                    jitter_ratio: ratio,
                    stable_after: secs(stable),
                    heartbeat_grace: secs(grace),
                },
            )
    }

    /// Drives the policy the way the coordinator does (ask, wait as told, act) over a
    /// sequence of failures; returns the history it built.
    fn simulate(cfg: &PolicyConfig, crashes: &[Crash]) -> RestartHistory {
        let mut hist = history(vec![]);
        let mut started = at(0);
        for c in crashes {
            if c.manual_restart {
                started += secs(1);
                hist.entries.push(HistoryEntry {
                    at: started,
                    kind: HistoryKind::ManualRestart,
                });
            }
            let failed = started + secs(c.lifetime);
            let pane = PaneHealth {
                started_at: started,
                state: if c.hung {
                    PaneState::Running {
                        heartbeat: Heartbeat::Missing { since: failed },
                    }
                } else {
                    PaneState::Dead {
                        since: failed,
                        exit: ExitStatus::Signal(9),
                    }
                },
            };
            let mut now = failed;
            loop {
                let action = decide(&pane, &hist, now, cfg, Jitter::new(c.jitter));
                if hist.quarantined {
                    assert_eq!(action, Action::LeaveAlone, "quarantined pane touched");
                }
                match action {
                    Action::LeaveAlone => {
                        if hist.quarantined {
                            return hist;
                        }
                        // Only a hung pane within its grace period may be left alone.
                        assert!(c.hung && now < started + cfg.heartbeat_grace);
                        now = started + cfg.heartbeat_grace;
                    }
                    Action::RespawnAfter { delay, .. } => {
                        assert!(delay <= cfg.backoff_cap, "delay {delay:?} above cap");
                        assert!(!delay.is_zero());
                        now += delay;
                    }
                    Action::RespawnNow { .. } => {
                        let uptime = elapsed(started, failed);
                        hist.entries.push(HistoryEntry {
                            at: now,
                            kind: HistoryKind::AutomaticRespawn {
                                replaced_uptime: uptime,
                            },
                        });
                        started = now;
                        break;
                    }
                    Action::Quarantine { reason } => {
                        assert!(reason.respawns >= cfg.respawn_limit);
                        hist.quarantined = true;
                    }
                }
            }
        }
        hist
    }

    proptest! {
        #[test]
        fn never_more_than_limit_respawns_in_any_window(
            cfg in policy_config(),
            crashes in prop::collection::vec(crash(), 0..60),
        ) {
            let hist = simulate(&cfg, &crashes);
            let autos: Vec<SystemTime> = hist
                .entries
                .iter()
                .filter(|e| matches!(e.kind, HistoryKind::AutomaticRespawn { .. }))
                .map(|e| e.at)
                .collect();
            // Any window of the configured length holds at most `limit` automatic respawns:
            // check the window that ends at each respawn.
            for &end in &autos {
                let inside = autos
                    .iter()
                    .filter(|&&t| t <= end && elapsed(t, end) < cfg.respawn_window)
                    .count();
                prop_assert!(inside as u32 <= cfg.respawn_limit, "{inside} respawns in a window");
            }
        }

        #[test]
        fn never_touches_a_quarantined_pane(
            cfg in policy_config(),
            entries in prop::collection::vec((0u64..1000, 0u64..100), 0..20),
            died in 0u64..2000,
            started in 0u64..2000,
            hung in any::<bool>(),
            jitter in 0.0f64..=1.0,
        ) {
            let hist = RestartHistory {
                entries: entries.into_iter().map(|(t, u)| auto(t, u)).collect(),
                quarantined: true,
            };
            let pane = if hung {
                running(started, Heartbeat::Missing { since: at(died) })
            } else {
                dead(started, died)
            };
            prop_assert_eq!(
                decide(&pane, &hist, at(died + 5000), &cfg, Jitter::new(jitter)),
                Action::LeaveAlone
            );
        }

        #[test]
        fn first_failure_respawns_at_once(
            cfg in policy_config(),
            lifetime in 0u64..1000,
        ) {
            let action = decide(&dead(0, lifetime), &history(vec![]), at(lifetime), &cfg, Jitter::new(0.3));
            prop_assert_eq!(action, Action::RespawnNow { failure: DIED });
        }

        #[test]
        fn asking_later_never_lengthens_the_wait(
            cfg in policy_config(),
            uptimes in prop::collection::vec(0u64..50, 1..8),
            wait in 0u64..200,
            jitter in 0.0f64..=1.0,
        ) {
            let mut t = 0;
            let mut entries = vec![];
            for u in &uptimes {
                t += u + 1;
                entries.push(auto(t, *u));
            }
            let hist = history(entries);
            let pane = dead(t, t + 1);
            let first = decide(&pane, &hist, at(t + 1), &cfg, Jitter::new(jitter));
            let later = decide(&pane, &hist, at(t + 1 + wait), &cfg, Jitter::new(jitter));
            match (first, later) {
                (Action::RespawnAfter { delay: d1, .. }, Action::RespawnAfter { delay: d2, .. }) => {
                    prop_assert_eq!(d2, d1.saturating_sub(secs(wait)));
                }
                (Action::RespawnAfter { delay, .. }, Action::RespawnNow { .. }) => {
                    prop_assert!(delay <= secs(wait));
                }
                (Action::RespawnNow { .. }, later) => {
                    let respawns_now = matches!(later, Action::RespawnNow { .. });
                    prop_assert!(respawns_now, "then {:?}", later);
                }
                // The counting window slides: a quarantine decision made now may not be made
                // later. The coordinator acts on it at once, so only respawn waits matter.
                (Action::Quarantine { .. }, _) => {}
                (first, later) => {
                    return Err(TestCaseError::fail(format!("unexpected {first:?} then {later:?}")));
                }
            }
        }
    }
}
