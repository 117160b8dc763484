//! What the coordinator does to a pane once the policy has decided: respawn it in place,
//! quarantine it, or restart it on request.
//!
//! A respawn first fences the old incarnation (SIGKILL if it still runs, then requeue of its
//! unacked commands with a generation bump), then sends `respawn-pane -k` with the worker's
//! argv as separate arguments, records the respawn in the history and emits
//! `pane_respawned`. A quarantine fences the same way, records a diagnostic (failure, pane
//! contents, command in flight) and emits `pane_quarantined`.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::event_loop::{pane_name, Supervisor};
use super::history::{self, Diagnostic};
use super::managed;
use super::policy::{ExitStatus, Failure, HistoryEntry, HistoryKind, QuarantineReason};
use super::requests::{Request, Response};
use super::status_line::PaneState;
use super::supervisor::{emit, keep_lease, lease_held, CoordinatorError};
use crate::bus::BusError;
use crate::schema::{now_ms, EventKind};
use crate::tmux::{Format, PaneId, Reply, Spawn, Target, TmuxCommand, TmuxError};

/// Lines of a pane kept in a quarantine diagnostic.
const DIAGNOSTIC_LINES: usize = 20;

pub(super) fn exit_json(exit: ExitStatus) -> Value {
    match exit {
        ExitStatus::Code(c) => json!({"exit_status": c, "signal": null}),
        ExitStatus::Signal(s) => json!({"exit_status": null, "signal": s}),
        ExitStatus::Unknown => json!({"exit_status": null, "signal": null}),
    }
}

pub(super) fn exit_text(exit: ExitStatus) -> String {
    match exit {
        ExitStatus::Code(c) => format!("exited with status {c}"),
        ExitStatus::Signal(s) => format!("killed by signal {s}"),
        ExitStatus::Unknown => "exited (status unknown)".to_string(),
    }
}

pub(super) fn failure_text(failure: Failure) -> String {
    match failure {
        Failure::Exited(exit) => exit_text(exit),
        Failure::HeartbeatExpired => "heartbeat expired (hung)".to_string(),
    }
}

/// Kills the process group of a pane's process (the pane process leads its own session).
pub(super) fn kill_pane_process(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 1 {
        return;
    }
    // SAFETY: kill(2) has no memory effects; a stale pid at worst fails with ESRCH.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
        libc::kill(pid, libc::SIGKILL);
    }
}

/// Why a respawn happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trigger {
    Automatic(Failure),
    Manual,
}

impl Supervisor<'_> {
    /// How to start the worker of `worker` again: its registry record when there is one,
    /// else the coordinator's copy; the bus settings go in the environment so the new
    /// process joins the same bus whatever the session environment says.
    pub(super) async fn spawn_for(&self, worker: &str) -> Result<Spawn, CoordinatorError> {
        let (argv, cwd) = match self.bus.worker_info(worker).await? {
            Some(info) if !info.argv.is_empty() => (info.argv, info.cwd),
            _ => match managed::load(self.bus, worker).await? {
                Some(m) => (m.argv, m.cwd),
                None => (Vec::new(), String::new()),
            },
        };
        let env = managed::respawn_env(self.config);
        Ok(Spawn {
            cwd: (!cwd.is_empty()).then(|| PathBuf::from(cwd)),
            env,
            argv,
        })
    }

    /// Respawns a managed pane in place: fence the old incarnation (kill it if it still
    /// runs), requeue its unacked commands, `respawn-pane -k`, record and report.
    ///
    /// Steps that do not depend on each other share a round trip (a death waits for every
    /// one of them): the lease renewal goes out with the reads the respawn needs, and the
    /// pid query and history record go out with `respawn-pane`. The renewal is checked
    /// before anything is done, and the requeue precedes the respawn.
    pub(super) async fn respawn(
        &mut self,
        pane: u32,
        trigger: Trigger,
    ) -> Result<String, CoordinatorError> {
        let Some(m) = self.panes.get(&pane).cloned() else {
            return Ok(String::new());
        };
        let (renewed, generation, spawn) = tokio::join!(
            self.lease.renew(),
            self.bus.generation(&m.worker),
            self.spawn_for(&m.worker)
        );
        lease_held(
            renewed,
            self.lease,
            &mut self.renewed_at,
            &self.opts.session,
        )?;
        if m.dead.is_none() {
            kill_pane_process(m.pid);
        }
        let requeue = self.requeue(&m.worker, generation?).await?;
        let spawn = spawn?;
        let now = SystemTime::now();
        let failed_at = m.dead.map(|(t, _)| t).unwrap_or(now);
        let kind = match trigger {
            Trigger::Automatic(_) => HistoryKind::AutomaticRespawn {
                replaced_uptime: failed_at
                    .duration_since(m.started_at)
                    .unwrap_or(Duration::ZERO),
            },
            Trigger::Manual => HistoryKind::ManualRestart,
        };
        // A respawn tmux refuses still counts as an attempt, so a pane that can never be
        // respawned ends up quarantined instead of being retried on every tick. tmux
        // answers in order, so the pid query sees the respawned process.
        let respawn_cmd = TmuxCommand::respawn_pane(PaneId(pane), &spawn)?;
        let pid_cmd = pane_pid_command(pane)?;
        let entry = HistoryEntry { at: now, kind };
        let (respawned, pid_reply, recorded) = tokio::join!(
            self.client.run(&respawn_cmd),
            self.client.run(&pid_cmd),
            history::record(self.bus, &m.worker, &entry)
        );
        recorded?;
        respawned?;
        let new_pid = pane_pid_of(&pid_cmd, &pid_reply?)?;
        // Tell the model and the detector at once, so a late report about the old process
        // is not taken for news.
        self.model.respawned(PaneId(pane), new_pid);
        self.detect(pane);
        self.exits.watch(pane, new_pid);
        if let Some(entry) = self.panes.get_mut(&pane) {
            entry.pid = new_pid;
            entry.started_at = now;
            entry.dead = None;
            entry.heartbeat_missing_since = None;
            entry.heartbeat_missed_reported = false;
            entry.state = PaneState::Healthy;
        }
        let reason = match trigger {
            Trigger::Automatic(f) => failure_text(f),
            Trigger::Manual => "manual restart".to_string(),
        };
        tracing::info!(pane = %pane_name(pane), worker = %m.worker, old_pid = m.pid, new_pid, %reason, "respawned pane");
        emit(
            self.bus,
            EventKind::PaneRespawned,
            &m.worker,
            json!({
                "pane": pane_name(pane),
                "old_pid": m.pid,
                "new_pid": new_pid,
                "reason": reason,
                "manual": trigger == Trigger::Manual,
                "requeued": requeue.0,
                "dead_lettered": requeue.1,
                "session": self.opts.session,
                "lease_token": self.lease.token(),
            }),
        )
        .await;
        Ok(format!(
            "respawned {} (pid {} -> {new_pid}), requeued {} command(s)",
            m.worker, m.pid, requeue.0
        ))
    }

    /// Requeues the unacked commands of a dead incarnation of `worker` and bumps its
    /// generation. Returns (requeued, dead-lettered). A newer incarnation having registered
    /// already is fine: it recovered them itself.
    pub(super) async fn fence(&self, worker: &str) -> Result<(usize, usize), CoordinatorError> {
        let generation = self.bus.generation(worker).await?;
        self.requeue(worker, generation).await
    }

    /// [`Self::fence`] with the generation already read.
    async fn requeue(
        &self,
        worker: &str,
        generation: u64,
    ) -> Result<(usize, usize), CoordinatorError> {
        match self.bus.requeue_unacked(worker, generation).await {
            Ok(outcome) => Ok((outcome.requeued, outcome.dead_lettered)),
            Err(BusError::Fenced { .. }) => Ok((0, 0)),
            Err(e) => Err(e.into()),
        }
    }

    /// Stops respawning a pane: fence it, record a diagnostic, show it, report it.
    pub(super) async fn quarantine(
        &mut self,
        pane: u32,
        reason: QuarantineReason,
    ) -> Result<(), CoordinatorError> {
        keep_lease(self.lease, &mut self.renewed_at, &self.opts.session).await?;
        let Some(m) = self.panes.get(&pane).cloned() else {
            return Ok(());
        };
        let command_in_flight = self
            .bus
            .unacked(&m.worker)
            .await?
            .first()
            .map(|raw| match serde_json::from_str::<Value>(raw) {
                Ok(v) => format!(
                    "{} ({})",
                    v["id"].as_str().unwrap_or("?"),
                    v["type"].as_str().unwrap_or("?")
                ),
                Err(_) => raw.chars().take(200).collect(),
            })
            .unwrap_or_default();
        if m.dead.is_none() {
            kill_pane_process(m.pid);
        }
        self.fence(&m.worker).await?;
        let last_lines = match self
            .client
            .run(&TmuxCommand::capture_pane(PaneId(pane), 200))
            .await
        {
            Ok(reply) => {
                let mut lines = reply.text_lines();
                while lines.last().is_some_and(|l| l.trim().is_empty()) {
                    lines.pop();
                }
                let start = lines.len().saturating_sub(DIAGNOSTIC_LINES);
                lines[start..].join("\n")
            }
            Err(e) => format!("(could not capture the pane: {e})"),
        };
        let exit = match reason.failure {
            Failure::Exited(exit) => exit_text(exit),
            Failure::HeartbeatExpired => "heartbeat expired".to_string(),
        };
        let text = format!(
            "{}; {} automatic respawns within {}",
            failure_text(reason.failure),
            reason.respawns,
            humantime::format_duration(reason.window)
        );
        let diagnostic = Diagnostic {
            since_ms: now_ms(),
            reason: text.clone(),
            exit,
            last_lines,
            command_in_flight: command_in_flight.clone(),
        };
        history::quarantine(self.bus, &m.worker, &diagnostic).await?;
        if let Some(entry) = self.panes.get_mut(&pane) {
            entry.state = PaneState::Quarantined;
        }
        tracing::warn!(pane = %pane_name(pane), worker = %m.worker, reason = %text, "pane quarantined; `panebus release` lifts it");
        emit(
            self.bus,
            EventKind::PaneQuarantined,
            &m.worker,
            json!({
                "pane": pane_name(pane),
                "reason": text,
                "respawns": reason.respawns,
                "window_secs": reason.window.as_secs(),
                "command_in_flight": command_in_flight,
                "session": self.opts.session,
            }),
        )
        .await;
        self.show_status().await
    }

    pub(super) async fn handle_request(&mut self, request: &Request) -> Response {
        let fail = |message: String| Response { ok: false, message };
        if request.action != "restart" {
            return fail(format!("unknown request {:?}", request.action));
        }
        let Some(pane) = self
            .panes
            .iter()
            .find(|(_, m)| m.worker == request.worker)
            .map(|(p, _)| *p)
        else {
            return fail(format!(
                "{} is not a pane managed by the coordinator of session {:?}",
                request.worker, self.opts.session
            ));
        };
        match history::release(self.bus, &request.worker).await {
            Ok(true) => {
                emit(
                    self.bus,
                    EventKind::PaneReleased,
                    &request.worker,
                    json!({"pane": pane_name(pane), "by": "restart"}),
                )
                .await;
            }
            Ok(false) => {}
            Err(e) => return fail(format!("could not lift the quarantine: {e}")),
        }
        match self.respawn(pane, Trigger::Manual).await {
            Ok(message) => Response { ok: true, message },
            Err(e) => fail(format!("restart failed: {e}")),
        }
    }
}

/// `display-message -p -t %N '#{pane_pid}'`.
fn pane_pid_command(pane: u32) -> Result<TmuxCommand, CoordinatorError> {
    Ok(TmuxCommand::display_message(
        Some(Target::Pane(PaneId(pane))),
        &Format::template("#{pane_pid}"),
    )?)
}

/// The pid in the reply to [`pane_pid_command`].
fn pane_pid_of(cmd: &TmuxCommand, reply: &Reply) -> Result<u32, CoordinatorError> {
    let lines = reply.text_lines();
    lines
        .first()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| {
            TmuxError::UnexpectedReply {
                command: cmd.line().to_string(),
                detail: format!("expected a pid, got {lines:?}"),
            }
            .into()
        })
}
