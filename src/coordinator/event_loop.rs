//! The event loop of one attached tmux session: what the leader does between attaching and
//! detaching.
//!
//! [`Supervisor`] owns the control client, the [`SessionModel`] of the session and the state
//! of every managed pane. Every tmux notification goes to the model; the changes it reports
//! drive the rest: a managed pane's death or respawn is fed to the [`DeathDetector`], and a
//! listing is run when the model asks for one (or a managed pane disappears). A tick renews
//! the lease, re-lists (reconciliation), checks heartbeats, serves `panebus restart`
//! requests and updates the status line. For each pane it gathers the facts, asks
//! [`policy::decide`] and hands the action to the functions in [`super::actions`].

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::actions::{exit_json, exit_text, Trigger};
use super::detect::{DeathDetector, Detection};
use super::exit_watch::ExitWatch;
use super::history::{self};
use super::lease::Lease;
use super::managed::{self, ManagedPane};
use super::policy::{
    self, Action, ExitStatus, Failure, Heartbeat, Jitter, QuarantineReason, RedisContact,
};
use super::reconcile;
use super::requests::{self};
use super::roster;
use super::status_line::{
    self, PaneState, PANE_STATE_OPTION, SESSION_STATUS_OPTION, WORKER_OPTION,
};
use super::supervisor::{emit, keep_lease, AttachOptions, CoordinatorError};
use crate::bus::Bus;
use crate::config::Config;
use crate::schema::{EventKind, WorkerInfo};
use crate::tmux::model::{pane_died_hook, pane_subscription};
use crate::tmux::{
    ClientFlag, ControlClient, Hook, HookTarget, ModelChange, Notification, OptionName,
    OptionScope, OwnedEvent, PaneId, PaneListing, SessionId, SessionModel, TmuxCommand, TmuxError,
};

/// How long a pane may stay dead without an exit status (SIGCHLD kicks notwithstanding)
/// before it is handled as dead with an unknown status.
const UNREAPED_GIVE_UP: Duration = Duration::from_secs(3);

pub(super) fn pane_name(pane: u32) -> String {
    format!("%{pane}")
}

pub(super) fn option(name: &str) -> OptionName {
    OptionName::new(name).expect("PaneBus's option names are valid")
}

pub(super) enum LoopEnd {
    Stopped,
    TmuxExited(String),
}

/// What one tick's registry listing says about a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WorkerFacts {
    registered: bool,
    heartbeat_fresh: bool,
}

/// One managed pane as the event loop tracks it.
#[derive(Debug, Clone)]
pub(super) struct Managed {
    pub(super) worker: String,
    pub(super) pid: u32,
    pub(super) started_at: SystemTime,
    pub(super) dead: Option<(SystemTime, ExitStatus)>,
    pub(super) heartbeat_missing_since: Option<SystemTime>,
    pub(super) heartbeat_missed_reported: bool,
    pub(super) jitter: Jitter,
    pub(super) state: PaneState,
    pub(super) shown: Option<PaneState>,
    /// Whether the respawn record (`managed::save`) is written. A pane found already tagged
    /// (as `workflow-setup` leaves them) may be listed before its worker registers; its
    /// record is written on the first reconcile that sees the registration.
    pub(super) recorded: bool,
}

pub(super) struct Supervisor<'a> {
    pub(super) bus: &'a Bus,
    pub(super) config: &'a Config,
    pub(super) opts: &'a AttachOptions,
    pub(super) lease: &'a Lease,
    pub(super) client: ControlClient,
    pub(super) session: SessionId,
    pub(super) server_pid: Option<u32>,
    /// What tmux has told about the session's windows and panes.
    pub(super) model: SessionModel,
    /// The listing the model is refreshed from (reads the worker tag).
    listing: PaneListing,
    pub(super) detector: DeathDetector,
    /// pidfds of the managed pane processes: an exit tmux does not report within
    /// milliseconds gets the tmux server kicked (lost SIGCHLD). Set up with the server pid.
    pub(super) exits: ExitWatch,
    pub(super) panes: HashMap<u32, Managed>,
    /// Queue depth per worker from the last registry listing.
    pub(super) queue_depths: HashMap<String, usize>,
    pub(super) adopt_since_ms: u64,
    pub(super) shown_status: Option<String>,
    pub(super) renewed_at: Instant,
    /// Since when Redis has answered without interruption (lost on a failed step): the
    /// heartbeat grace of running panes counts from there after an outage.
    pub(super) redis_contact: RedisContact,
}

impl<'a> Supervisor<'a> {
    pub(super) fn new(
        bus: &'a Bus,
        config: &'a Config,
        opts: &'a AttachOptions,
        lease: &'a Lease,
        client: ControlClient,
        adopt_since_ms: u64,
    ) -> Self {
        let session = client.attached().session;
        Supervisor {
            bus,
            config,
            opts,
            lease,
            client,
            session,
            server_pid: None,
            model: SessionModel::new(session),
            listing: PaneListing::new(vec![option(WORKER_OPTION)]),
            detector: DeathDetector::new(UNREAPED_GIVE_UP),
            exits: ExitWatch::new(0),
            panes: HashMap::new(),
            queue_depths: HashMap::new(),
            adopt_since_ms,
            shown_status: None,
            renewed_at: Instant::now(),
            redis_contact: RedisContact::since(SystemTime::now()),
        }
    }

    pub(super) async fn supervise(
        &mut self,
        mut notes: mpsc::UnboundedReceiver<Notification>,
        stop: &CancellationToken,
    ) -> Result<LoopEnd, CoordinatorError> {
        if let Err(e) = self.setup().await {
            return match e {
                CoordinatorError::Tmux(TmuxError::Exited { reason }) => {
                    Ok(LoopEnd::TmuxExited(reason))
                }
                other => Err(other),
            };
        }
        let mut tick = tokio::time::interval(self.opts.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Notifications first: a death waiting behind a tick's work would be late.
            let step = tokio::select! {
                biased;
                _ = stop.cancelled() => return Ok(LoopEnd::Stopped),
                note = notes.recv() => match note {
                    None => return Ok(LoopEnd::TmuxExited(
                        self.client.exit_reason().unwrap_or_else(|| "control client ended".into()),
                    )),
                    Some(Notification::Exit { reason }) => return Ok(LoopEnd::TmuxExited(reason)),
                    Some(note @ Notification::Event(_)) => self.on_notification(note).await,
                },
                _ = tick.tick() => self.on_tick().await,
            };
            match step {
                Ok(()) => {}
                // The notification stream reports the end; keep reading it.
                Err(CoordinatorError::Tmux(TmuxError::Exited { .. })) => {}
                Err(e) if e.is_transient() => {
                    if matches!(&e, CoordinatorError::Bus(bus) if bus.is_connection_error()) {
                        self.redis_contact.lost();
                    }
                    tracing::warn!(error = %e, "coordinator step failed; retrying on the next tick");
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn setup(&mut self) -> Result<(), CoordinatorError> {
        // No pane output (screens are read with capture-pane) and no say in window sizes:
        // a human's client keeps deciding those.
        self.client
            .run(&TmuxCommand::client_flags(&[
                (ClientFlag::NoOutput, true),
                (ClientFlag::IgnoreSize, true),
            ]))
            .await?;
        let server_pid = self.client.server_pid().await?;
        self.server_pid = Some(server_pid);
        self.exits = ExitWatch::new(server_pid);
        self.client.run(&pane_subscription()).await?;
        self.reconcile().await.map(|_| ())
    }

    /// Removes what only a running coordinator should have: the per-pane hooks (their
    /// marker lines would otherwise reach whichever client tmux picks) and the status text.
    /// Tags and `remain-on-exit` stay, so the next coordinator finds its panes.
    pub(super) async fn teardown(&mut self) {
        let panes: Vec<u32> = self.panes.keys().copied().collect();
        for pane in panes {
            let cmd = TmuxCommand::unset_hook(HookTarget::Pane(PaneId(pane)), Hook::PaneDied);
            if let Err(e) = self.client.run(&cmd).await {
                tracing::debug!(error = %e, pane, "could not remove the pane-died hook");
            }
        }
        if let Ok(cmd) = TmuxCommand::unset_option(
            OptionScope::Session(self.session),
            &option(SESSION_STATUS_OPTION),
        ) {
            let _ = self.client.run(&cmd).await;
        }
        self.client.detach().await;
    }

    /// Feeds a notification to the model and acts on what changed.
    async fn on_notification(&mut self, note: Notification) -> Result<(), CoordinatorError> {
        if let Notification::Event(OwnedEvent::LayoutChange { window, layout, .. }) = &note {
            emit(
                self.bus,
                EventKind::LayoutChanged,
                "",
                json!({"session": self.opts.session, "window": format!("@{}", window.0), "layout": layout}),
            )
            .await;
        }
        let mut relist = false;
        for change in self.model.apply(&note) {
            match change {
                ModelChange::PaneDied { pane, .. } | ModelChange::PaneRespawned { pane, .. } => {
                    self.on_pane_change(pane.0).await?;
                }
                // Only a listing tells a closed pane from one moved to another window.
                ModelChange::PaneGone(pane) => relist |= self.panes.contains_key(&pane.0),
                ModelChange::RelistNeeded => relist = true,
                ModelChange::PaneAdded(_)
                | ModelChange::WindowGone(_)
                | ModelChange::LayoutChanged(_)
                | ModelChange::SessionEnded { .. } => {}
            }
        }
        if relist {
            self.reconcile().await?;
        }
        Ok(())
    }

    async fn on_tick(&mut self) -> Result<(), CoordinatorError> {
        keep_lease(self.lease, &mut self.renewed_at, &self.opts.session).await?;
        let facts = self.reconcile().await?;
        self.evaluate_all(&facts).await?;
        for request in requests::drain(self.bus, &self.config.node, &self.opts.session).await? {
            let response = self.handle_request(&request).await;
            requests::reply(self.bus, &request.id, &response).await?;
        }
        self.show_status().await
    }

    fn kick_server(&self) {
        if let Some(pid) = self.server_pid.and_then(|p| libc::pid_t::try_from(p).ok()) {
            // SAFETY: kill(2) has no memory effects.
            unsafe {
                libc::kill(pid, libc::SIGCHLD);
            }
        }
    }

    /// Lists the session's panes into the model, tags newly registered workers, forgets
    /// closed panes and feeds every managed pane's state to the detector (catching what
    /// notifications missed, and repeating an unresolved death for the SIGCHLD kick and the
    /// give-up delay). Returns what the registry listing says about each worker.
    async fn reconcile(&mut self) -> Result<HashMap<String, WorkerFacts>, CoordinatorError> {
        let reply = self
            .client
            .run(&self.listing.command(self.session)?)
            .await?;
        let (records, errors) = self.listing.parse(&reply.lines);
        for error in errors {
            tracing::warn!(%error, "skipping a pane listing line");
        }
        // The changes need no handling of their own: every managed pane is fed to the
        // detector below, and the plan finds the managed panes that are gone.
        self.model.replace_panes(records);
        let candidates: HashSet<String> = self
            .model
            .panes
            .keys()
            .map(|p| reconcile::worker_id(&self.config.node, p.0))
            .collect();
        let recorded: HashSet<&str> = self
            .panes
            .values()
            .filter(|m| m.recorded)
            .map(|m| m.worker.as_str())
            .collect();
        let mut workers = roster::read(self.bus, &candidates, &recorded).await?;
        self.queue_depths = workers
            .iter()
            .map(|(id, w)| (id.clone(), w.queue_depth))
            .collect();
        let facts = workers
            .iter()
            .map(|(id, w)| {
                let facts = WorkerFacts {
                    registered: w.registered,
                    heartbeat_fresh: w.heartbeat_fresh,
                };
                (id.clone(), facts)
            })
            .collect();
        let registered: HashMap<String, WorkerInfo> = workers
            .iter_mut()
            .filter_map(|(id, w)| w.info.take().map(|i| (id.clone(), i)))
            .collect();
        let known: HashSet<u32> = self.panes.keys().copied().collect();
        let plan = reconcile::plan(
            self.model.panes.values(),
            &known,
            &registered,
            &self.config.node,
            &self.opts.session,
            self.adopt_since_ms,
        );
        for pane in &plan.gone {
            if let Some(m) = self.panes.remove(pane) {
                tracing::info!(pane = %pane_name(*pane), worker = %m.worker, "managed pane closed; forgetting it");
                self.detector.forget(*pane);
                self.exits.forget(*pane);
                managed::remove(self.bus, &m.worker).await?;
            }
        }
        for (pane, worker) in &plan.managed {
            if !self.panes.contains_key(pane) {
                let pid = self
                    .model
                    .panes
                    .get(&PaneId(*pane))
                    .and_then(|p| p.pid)
                    .unwrap_or(0);
                let tag = plan.to_tag.contains(pane);
                self.manage(*pane, worker, pid, registered.get(worker), tag)
                    .await?;
            } else if self.panes.get(pane).is_some_and(|m| !m.recorded)
                && self.record(worker, registered.get(worker)).await?
            {
                if let Some(m) = self.panes.get_mut(pane) {
                    m.recorded = true;
                }
            }
        }
        let managed: Vec<u32> = self.panes.keys().copied().collect();
        for pane in managed {
            self.on_pane_change(pane).await?;
        }
        Ok(facts)
    }

    /// Starts managing a pane: tag it (if new), make it stay after its process exits, hook
    /// its death, and record how to respawn it.
    async fn manage(
        &mut self,
        pane: u32,
        worker: &str,
        pid: u32,
        info: Option<&WorkerInfo>,
        tag: bool,
    ) -> Result<(), CoordinatorError> {
        let id = PaneId(pane);
        if tag {
            self.client
                .run(&TmuxCommand::set_option(
                    OptionScope::Pane(id),
                    &option(WORKER_OPTION),
                    worker,
                )?)
                .await?;
        }
        self.client
            .run(&TmuxCommand::set_option(
                OptionScope::Pane(id),
                &option("remain-on-exit"),
                "on",
            )?)
            .await?;
        self.client
            .run(&pane_died_hook(HookTarget::Pane(id)))
            .await?;
        let started_at = match info {
            Some(i) if i.pid == pid => SystemTime::UNIX_EPOCH + Duration::from_millis(i.started_ms),
            _ => SystemTime::now(),
        };
        let recorded = self.record(worker, info).await?;
        tracing::info!(pane = %pane_name(pane), %worker, pid, tagged = tag, "managing pane");
        self.exits.watch(pane, pid);
        self.panes.insert(
            pane,
            Managed {
                worker: worker.to_string(),
                pid,
                started_at,
                dead: None,
                heartbeat_missing_since: None,
                heartbeat_missed_reported: false,
                jitter: Jitter::random(),
                state: PaneState::Healthy,
                shown: None,
                recorded,
            },
        );
        Ok(())
    }

    /// Saves how to respawn `worker` from its registration; false when there is none yet.
    async fn record(
        &self,
        worker: &str,
        info: Option<&WorkerInfo>,
    ) -> Result<bool, CoordinatorError> {
        let Some(info) = info.filter(|i| !i.argv.is_empty()) else {
            return Ok(false);
        };
        managed::save(
            self.bus,
            &ManagedPane {
                worker: worker.to_string(),
                session: self.opts.session.clone(),
                argv: info.argv.clone(),
                cwd: info.cwd.clone(),
            },
        )
        .await?;
        Ok(true)
    }

    /// Feeds the model's state of a managed pane to the detector and acts on its decision.
    async fn on_pane_change(&mut self, pane: u32) -> Result<(), CoordinatorError> {
        if !self.panes.contains_key(&pane) {
            return Ok(());
        }
        match self.detect(pane) {
            Detection::Nothing => Ok(()),
            Detection::Started { pane, pid } => {
                if let Some(m) = self.panes.get_mut(&pane) {
                    if m.pid != pid {
                        tracing::info!(pane = %pane_name(pane), pid, "new process in managed pane");
                        m.pid = pid;
                        m.started_at = SystemTime::now();
                        m.dead = None;
                        m.heartbeat_missing_since = None;
                        m.heartbeat_missed_reported = false;
                        self.exits.watch(pane, pid);
                    }
                }
                Ok(())
            }
            Detection::KickServer { pane } => {
                tracing::info!(pane = %pane_name(pane), server = ?self.server_pid, "dead pane without exit status: sending SIGCHLD to the tmux server (lost-SIGCHLD recovery)");
                self.kick_server();
                Ok(())
            }
            Detection::Died { pane, pid, exit } => {
                let Some(m) = self.panes.get_mut(&pane) else {
                    return Ok(());
                };
                m.pid = pid;
                m.dead = Some((SystemTime::now(), exit));
                m.jitter = Jitter::random();
                let worker = m.worker.clone();
                self.exits.forget(pane);
                tracing::info!(pane = %pane_name(pane), %worker, pid, exit = %exit_text(exit), "worker pane exited");
                let mut details = exit_json(exit);
                details["pane"] = json!(pane_name(pane));
                details["pid"] = json!(pid);
                details["session"] = json!(self.opts.session);
                // The event goes out with the reads of the evaluation (one connection, in
                // order), so the respawn does not wait a round trip for it.
                let bus = self.bus;
                let exited = emit(bus, EventKind::PaneExited, &worker, details);
                let ((), evaluated) = tokio::join!(exited, self.evaluate(pane));
                evaluated
            }
        }
    }

    /// What the detector makes of the model's current state of `pane`.
    pub(super) fn detect(&mut self, pane: u32) -> Detection {
        match self.model.panes.get(&PaneId(pane)) {
            Some(state) => self.detector.observe(state, Instant::now()),
            None => Detection::Nothing,
        }
    }

    /// Gathers the facts about one managed pane (a few round trips), asks the policy and
    /// acts: the path of a death, which must not wait for the tick.
    pub(super) async fn evaluate(&mut self, pane: u32) -> Result<(), CoordinatorError> {
        let Some(m) = self.panes.get(&pane) else {
            return Ok(());
        };
        let worker = m.worker.clone();
        let (facts, history) = tokio::join!(
            self.facts(&worker, m.dead),
            history::load(self.bus, &worker)
        );
        self.judge(pane, facts?, history?).await
    }

    /// What the policy needs to know about `worker` from Redis, given its pane's death.
    async fn facts(
        &self,
        worker: &str,
        dead: Option<(SystemTime, ExitStatus)>,
    ) -> Result<WorkerFacts, CoordinatorError> {
        Ok(match dead {
            Some((_, ExitStatus::Code(0))) => WorkerFacts {
                registered: self.bus.is_registered(worker).await?,
                heartbeat_fresh: false,
            },
            Some(_) => WorkerFacts {
                registered: true,
                heartbeat_fresh: false,
            },
            None => WorkerFacts {
                registered: true,
                heartbeat_fresh: self.bus.heartbeat_ttl(worker).await?.is_some(),
            },
        })
    }

    /// Evaluates every managed pane on a tick from the tick's registry listing (`facts`) and
    /// one pipelined history read: a constant number of round trips, however many panes.
    async fn evaluate_all(
        &mut self,
        facts: &HashMap<String, WorkerFacts>,
    ) -> Result<(), CoordinatorError> {
        let absent = WorkerFacts {
            registered: false,
            heartbeat_fresh: false,
        };
        let panes: Vec<(u32, String, WorkerFacts)> = self
            .panes
            .iter()
            .map(|(pane, m)| {
                let f = facts.get(&m.worker).copied().unwrap_or(absent);
                (*pane, m.worker.clone(), f)
            })
            .collect();
        let wanted: Vec<(&str, bool)> = panes
            .iter()
            .map(|(pane, worker, f)| {
                let running_fine =
                    f.heartbeat_fresh && self.panes.get(pane).is_some_and(|m| m.dead.is_none());
                (worker.as_str(), !running_fine)
            })
            .collect();
        let histories = history::load_many(self.bus, &wanted).await?;
        for ((pane, _, f), history) in panes.into_iter().zip(histories) {
            self.judge(pane, f, history).await?;
        }
        Ok(())
    }

    /// Asks the policy about one managed pane given the facts and its history, shows the
    /// resulting state and acts.
    async fn judge(
        &mut self,
        pane: u32,
        facts: WorkerFacts,
        history: policy::RestartHistory,
    ) -> Result<(), CoordinatorError> {
        let Some(m) = self.panes.get_mut(&pane) else {
            return Ok(());
        };
        let worker = m.worker.clone();
        let now = SystemTime::now();
        let state = match m.dead {
            Some((_, ExitStatus::Code(0))) if !facts.registered => policy::PaneState::Stopped,
            Some((since, exit)) => policy::PaneState::Dead { since, exit },
            None if facts.heartbeat_fresh => {
                m.heartbeat_missing_since = None;
                m.heartbeat_missed_reported = false;
                policy::PaneState::Running {
                    heartbeat: Heartbeat::Fresh,
                }
            }
            None => {
                let since = *m.heartbeat_missing_since.get_or_insert(now);
                policy::PaneState::Running {
                    heartbeat: Heartbeat::Missing { since },
                }
            }
        };
        let health = self.redis_contact.health(m.started_at, state, now);
        let action = policy::decide(&health, &history, now, &self.opts.policy, m.jitter);
        m.state = match (&state, &action, history.quarantined) {
            (_, _, true) | (_, Action::Quarantine { .. }, _) => PaneState::Quarantined,
            (policy::PaneState::Stopped, _, _) => PaneState::Stopped,
            (policy::PaneState::Dead { .. }, _, _) => PaneState::Dead,
            (_, Action::LeaveAlone, _) => PaneState::Healthy,
            _ => PaneState::Hung,
        };
        let hung = matches!(
            action,
            Action::RespawnNow {
                failure: Failure::HeartbeatExpired
            } | Action::RespawnAfter {
                failure: Failure::HeartbeatExpired,
                ..
            } | Action::Quarantine {
                reason: QuarantineReason {
                    failure: Failure::HeartbeatExpired,
                    ..
                }
            }
        );
        if hung && !m.heartbeat_missed_reported {
            m.heartbeat_missed_reported = true;
            let details = json!({"pane": pane_name(pane), "pid": m.pid, "session": self.opts.session, "ttl_secs": self.config.heartbeat_ttl.as_secs_f64()});
            tracing::warn!(pane = %pane_name(pane), %worker, "heartbeat expired");
            emit(self.bus, EventKind::HeartbeatMissed, &worker, details).await;
        }
        match action {
            Action::LeaveAlone | Action::RespawnAfter { .. } => Ok(()),
            Action::RespawnNow { failure } => self
                .respawn(pane, Trigger::Automatic(failure))
                .await
                .map(|_| ()),
            Action::Quarantine { reason } => self.quarantine(pane, reason).await,
        }
    }

    /// Updates `@panebus_state` of panes whose state changed and `@panebus_status`.
    pub(super) async fn show_status(&mut self) -> Result<(), CoordinatorError> {
        let changed: Vec<(u32, PaneState)> = self
            .panes
            .iter()
            .filter(|(_, m)| m.shown != Some(m.state))
            .map(|(p, m)| (*p, m.state))
            .collect();
        for (pane, state) in changed {
            self.client
                .run(&TmuxCommand::set_option(
                    OptionScope::Pane(PaneId(pane)),
                    &option(PANE_STATE_OPTION),
                    state.word(),
                )?)
                .await?;
            if let Some(m) = self.panes.get_mut(&pane) {
                m.shown = Some(state);
            }
        }
        let states: Vec<PaneState> = self.panes.values().map(|m| m.state).collect();
        let queued = self
            .panes
            .values()
            .filter_map(|m| self.queue_depths.get(&m.worker))
            .sum();
        let text = status_line::summary(&states, queued);
        if self.shown_status.as_deref() != Some(text.as_str()) {
            self.client
                .run(&TmuxCommand::set_option(
                    OptionScope::Session(self.session),
                    &option(SESSION_STATUS_OPTION),
                    &text,
                )?)
                .await?;
            self.shown_status = Some(text);
        }
        Ok(())
    }
}
