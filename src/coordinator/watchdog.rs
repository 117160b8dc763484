//! `panebus watchdog`: the heartbeat-only sibling of the coordinator, for places where a
//! control-mode client cannot run.
//!
//! Every check interval it lists the registered workers of this node, and for each pane
//! worker whose heartbeat expired asks the same [`policy::decide`] the coordinator uses
//! (sharing the restart history and quarantine records in Redis). Like the coordinator, it
//! counts the heartbeat grace from when Redis answered again after an outage
//! ([`RedisContact`]), so workers that could not beat while Redis was away are not taken
//! for hung. A respawn runs
//! `respawn-pane -k` through a short-lived `tmux [-L|-S] source-file -` that reads the one
//! line built by [`TmuxCommand::respawn_pane`], the same builder and quoting as the control
//! channel. This is the only place PaneBus runs the `tmux` binary to act: control mode is by
//! definition unavailable here. Then it SIGKILLs the old registered pid (a stopped process
//! ignores the hang-up) and requeues that incarnation's unacked commands. When tmux cannot
//! do it, the watchdog only reports.
//!
//! Workers of a session whose coordinator holds its lease are left to that coordinator, and
//! two watchdogs on one node elect a leader through the lease of the pseudo-session
//! [`WATCHDOG_LEASE`] (a name tmux never gives a session, since it turns `.` into `_`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::history::{self, Diagnostic};
use super::lease::{self, Lease};
use super::managed;
use super::policy::{
    self, Action, Heartbeat, HistoryEntry, HistoryKind, Jitter, PaneState, PolicyConfig,
    RedisContact,
};
use crate::bus::{Bus, BusError};
use crate::config::Config;
use crate::schema::{now_ms, Event, EventKind, WorkerInfo};
use crate::tmux::{PaneId, Spawn, TmuxCommand, TmuxServerRef};

/// Lease name of the watchdog of a node.
pub const WATCHDOG_LEASE: &str = ".watchdog";

/// How `panebus watchdog` runs.
#[derive(Debug, Clone)]
pub struct WatchdogOptions {
    pub server: TmuxServerRef,
    pub check_interval: Duration,
    pub policy: PolicyConfig,
}

/// What the watchdog remembers about one worker between checks.
#[derive(Debug, Clone)]
struct Watched {
    started_at: SystemTime,
    missing_since: Option<SystemTime>,
    jitter: Jitter,
    reported: bool,
}

/// Why one `tmux` invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum TmuxBinaryError {
    #[error("could not run tmux: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("tmux failed: {0}")]
    Failed(String),
    #[error(transparent)]
    Build(#[from] crate::tmux::CommandError),
}

/// Runs one command line (built by [`TmuxCommand`]) on `server` with a short-lived `tmux`.
pub async fn run_tmux_line(server: &TmuxServerRef, line: &str) -> Result<(), TmuxBinaryError> {
    let mut child = server
        .command()
        .args(["source-file", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin.write_all(line.as_bytes()).await?;
    stdin.write_all(b"\n").await?;
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .map_err(|_| TmuxBinaryError::Failed("no answer within 10s".into()))??;
    if output.status.success() {
        Ok(())
    } else {
        Err(TmuxBinaryError::Failed(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ))
    }
}

/// Runs the watchdog until `stop` is cancelled.
pub async fn run(
    config: &Config,
    opts: &WatchdogOptions,
    stop: &CancellationToken,
) -> Result<(), BusError> {
    let bus = Bus::connect(config).await?;
    let holder = lease::new_holder();
    let lease_ttl = (opts.check_interval * 3).max(Duration::from_secs(3));
    let mut lease: Option<Lease> = None;
    let mut watched: HashMap<String, Watched> = HashMap::new();
    let mut contact = RedisContact::since(SystemTime::now());
    let mut interval = tokio::time::interval(opts.check_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = interval.tick() => {}
        }
        let held = match &lease {
            Some(l) => l.renew().await.unwrap_or_else(|_| {
                contact.lost();
                false
            }),
            None => false,
        };
        if !held {
            lease = match Lease::try_acquire(&bus, &config.node, WATCHDOG_LEASE, &holder, lease_ttl)
                .await
            {
                Ok(l) => l,
                Err(e) => {
                    contact.lost();
                    tracing::warn!(error = %e, "cannot reach Redis; watchdog check skipped");
                    None
                }
            };
            if lease.is_none() {
                continue;
            }
            tracing::info!(node = %config.node, "watchdog active");
            if let Some(l) = &lease {
                emit(
                    &bus,
                    EventKind::LeaseAcquired,
                    "",
                    json!({"session": WATCHDOG_LEASE, "node": config.node, "holder": holder, "lease_token": l.token()}),
                )
                .await;
            }
        }
        if let Err(e) = check(&bus, config, opts, &mut watched, &mut contact).await {
            contact.lost();
            tracing::warn!(error = %e, "watchdog check failed; retrying next interval");
        }
    }
    if let Some(l) = lease {
        let _ = l.release().await;
    }
    Ok(())
}

/// One pass over the registered workers of this node. `contact` says since when Redis has
/// answered: after an outage the heartbeat grace counts from there.
async fn check(
    bus: &Bus,
    config: &Config,
    opts: &WatchdogOptions,
    watched: &mut HashMap<String, Watched>,
    contact: &mut RedisContact,
) -> Result<(), BusError> {
    let now = SystemTime::now();
    let workers = bus.list_workers().await?;
    let mut coordinated: HashMap<String, bool> = HashMap::new();
    for status in workers {
        let Some(info) = status.info else { continue };
        if info.node != config.node || !info.pane.starts_with('%') {
            continue;
        }
        let session = info.session.clone().unwrap_or_default();
        if !session.is_empty() {
            let has_coordinator = match coordinated.get(&session) {
                Some(v) => *v,
                None => {
                    let v = Lease::holder(bus, &config.node, &session).await?.is_some();
                    coordinated.insert(session.clone(), v);
                    v
                }
            };
            if has_coordinator {
                continue;
            }
        }
        let entry = watched.entry(info.id.clone()).or_insert_with(|| Watched {
            started_at: SystemTime::UNIX_EPOCH + Duration::from_millis(info.started_ms),
            missing_since: None,
            jitter: Jitter::random(),
            reported: false,
        });
        let heartbeat = if status.alive {
            entry.missing_since = None;
            entry.reported = false;
            Heartbeat::Fresh
        } else {
            Heartbeat::Missing {
                since: *entry.missing_since.get_or_insert(now),
            }
        };
        let history = history::load(bus, &info.id).await?;
        let health = contact.health(entry.started_at, PaneState::Running { heartbeat }, now);
        let action = policy::decide(&health, &history, now, &opts.policy, entry.jitter);
        if !matches!(action, Action::LeaveAlone) && !entry.reported {
            entry.reported = true;
            emit(
                bus,
                EventKind::HeartbeatMissed,
                &info.id,
                json!({"pane": info.pane, "pid": info.pid, "by": "watchdog"}),
            )
            .await;
        }
        match action {
            Action::LeaveAlone | Action::RespawnAfter { .. } => {}
            Action::RespawnNow { .. } => {
                let failed_at = entry.missing_since.unwrap_or(now);
                let uptime = failed_at
                    .duration_since(entry.started_at)
                    .unwrap_or(Duration::ZERO);
                if respawn(bus, config, opts, &info, uptime).await? {
                    entry.started_at = SystemTime::now();
                    entry.missing_since = None;
                    entry.reported = false;
                    entry.jitter = Jitter::random();
                }
            }
            Action::Quarantine { reason } => {
                let text = format!(
                    "heartbeat expired; {} automatic respawns within {} (watchdog)",
                    reason.respawns,
                    humantime::format_duration(reason.window)
                );
                let diagnostic = Diagnostic {
                    since_ms: now_ms(),
                    reason: text.clone(),
                    exit: "heartbeat expired".into(),
                    last_lines: "(the watchdog does not capture panes)".into(),
                    command_in_flight: info.current_command.clone().unwrap_or_default(),
                };
                history::quarantine(bus, &info.id, &diagnostic).await?;
                tracing::warn!(worker = %info.id, reason = %text, "pane quarantined");
                emit(
                    bus,
                    EventKind::PaneQuarantined,
                    &info.id,
                    json!({"pane": info.pane, "reason": text, "respawns": reason.respawns,
                           "window_secs": reason.window.as_secs(), "by": "watchdog"}),
                )
                .await;
            }
        }
    }
    Ok(())
}

/// Fences and respawns one worker's pane; `Ok(false)` when tmux could not do it (reported).
async fn respawn(
    bus: &Bus,
    config: &Config,
    opts: &WatchdogOptions,
    info: &WorkerInfo,
    replaced_uptime: Duration,
) -> Result<bool, BusError> {
    let Some(pane) = info
        .pane
        .strip_prefix('%')
        .and_then(|p| p.parse::<u32>().ok())
    else {
        return Ok(false);
    };
    let (argv, cwd) = if info.argv.is_empty() {
        match managed::load(bus, &info.id).await? {
            Some(m) => (m.argv, m.cwd),
            None => (Vec::new(), info.cwd.clone()),
        }
    } else {
        (info.argv.clone(), info.cwd.clone())
    };
    let spawn = Spawn {
        cwd: (!cwd.is_empty()).then(|| PathBuf::from(cwd)),
        env: managed::respawn_env(config),
        argv,
    };
    let command = match TmuxCommand::respawn_pane(PaneId(pane), &spawn) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(worker = %info.id, error = %e, "cannot build the respawn command");
            return Ok(false);
        }
    };
    // Respawn first: killing the process of a pane without `remain-on-exit` would close the
    // pane. `-k` hangs the old process up; SIGKILL then makes sure a stopped or hung one
    // is gone too, before its unacked commands are requeued (fenced by generation: if the
    // new incarnation registered first, it recovered them itself).
    if let Err(e) = run_tmux_line(&opts.server, command.line()).await {
        tracing::error!(worker = %info.id, server = %opts.server, error = %e, "cannot respawn the pane through tmux; only reporting");
        return Ok(false);
    }
    if let Ok(pid) = libc::pid_t::try_from(info.pid) {
        if pid > 1 {
            // SAFETY: kill(2) has no memory effects; a gone pid fails with ESRCH.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
    let generation = bus.generation(&info.id).await?;
    let (requeued, dead_lettered) = match bus.requeue_unacked(&info.id, generation).await {
        Ok(o) => (o.requeued, o.dead_lettered),
        Err(BusError::Fenced { .. }) => (0, 0),
        Err(e) => return Err(e),
    };
    history::record(
        bus,
        &info.id,
        &HistoryEntry {
            at: SystemTime::now(),
            kind: HistoryKind::AutomaticRespawn { replaced_uptime },
        },
    )
    .await?;
    tracing::info!(worker = %info.id, "respawned hung pane");
    emit(
        bus,
        EventKind::PaneRespawned,
        &info.id,
        json!({"pane": info.pane, "old_pid": info.pid, "reason": "heartbeat expired",
               "manual": false, "requeued": requeued, "dead_lettered": dead_lettered,
               "by": "watchdog"}),
    )
    .await;
    Ok(true)
}

async fn emit(bus: &Bus, kind: EventKind, worker: &str, details: serde_json::Value) {
    let event = Event::new(kind, worker, details);
    if let Err(e) = bus.emit(&event).await {
        tracing::warn!(error = %e, event = %event.kind, "could not record event");
    }
}
