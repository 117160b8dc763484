//! The coordinator's event loop for one tmux session: lease, attach, watch, act.
//!
//! [`run`] waits for the leader lease of (node, session), attaches in control mode and then
//! reacts to three sources: tmux notifications (the `pane-died` marker line and the `%*`
//! subscription, through [`DeathDetector`]), a tick (lease renewal, a `list-panes`
//! reconciliation, heartbeat checks, `panebus restart` requests, the status line), and the
//! stop token. For every managed pane it gathers facts, asks [`policy::decide`] and carries
//! out the action: respawn in place (`respawn-pane -k`, argv as separate arguments), wait
//! out a backoff, or quarantine with a diagnostic. Unacked commands of a dead incarnation are
//! requeued only once it is fenced (dead, or killed first when hung).
//!
//! Only panes tagged `@panebus_worker` are touched; their options are pane-scoped
//! (`remain-on-exit`, the `pane-died` hook, `@panebus_state`) and the only session option
//! is `@panebus_status`. Nothing global is set. Stopping the coordinator (or killing it)
//! leaves every worker running.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::detect::{
    self, DeathDetector, Detection, PaneReport, MARKER_FORMAT, SUBSCRIPTION_FORMAT,
    SUBSCRIPTION_NAME,
};
use super::history::{self, Diagnostic};
use super::lease::Lease;
use super::managed::{self, ManagedPane};
use super::policy::{
    self, Action, ExitStatus, Failure, Heartbeat, HistoryEntry, HistoryKind, Jitter, PaneHealth,
    PolicyConfig, QuarantineReason,
};
use super::reconcile::{self, LIST_FORMAT};
use super::requests::{self, Request, Response};
use super::status_line::{
    self, PaneState, PANE_STATE_OPTION, SESSION_STATUS_OPTION, WORKER_OPTION,
};
use crate::bus::{Bus, BusError};
use crate::config::{short_hostname, Config};
use crate::schema::{new_id, now_ms, Event, EventKind, WorkerInfo};
use crate::tmux::{
    ClientFlag, CommandError, ConnectOptions, ControlClient, Format, Hook, HookTarget,
    Notification, OptionName, OptionScope, OwnedEvent, PaneId, SessionId, Spawn, SubscriptionScope,
    Target, TmuxCommand, TmuxError, TmuxServerRef,
};

/// How long a dead pane may stay without an exit status (lost SIGCHLD, kicked) before it is
/// handled as dead with an unknown status.
const UNREAPED_GIVE_UP: Duration = Duration::from_secs(3);
/// Pause between attach attempts with `--on-tmux-exit wait`.
const REATTACH_DELAY: Duration = Duration::from_secs(2);
/// Lines of a pane kept in a quarantine diagnostic.
const DIAGNOSTIC_LINES: usize = 20;

/// What to do when the tmux server or session goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnTmuxExit {
    /// Exit with an error saying so.
    Exit,
    /// Keep the lease and attach again when the session is back.
    Wait,
}

/// How `panebus attach` runs.
#[derive(Debug, Clone)]
pub struct AttachOptions {
    pub server: TmuxServerRef,
    pub session: String,
    /// Also manage panes whose workers registered before the coordinator started.
    pub adopt: bool,
    pub on_tmux_exit: OnTmuxExit,
    /// Leader lease time to live; a standby takes over at most this long after the leader
    /// dies.
    pub lease_ttl: Duration,
    /// Period of reconciliation, heartbeat checks and request handling.
    pub tick: Duration,
    pub policy: PolicyConfig,
}

/// Why the coordinator stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Tmux(#[from] TmuxError),
    #[error(
        "tmux session {session:?} on {server} is gone ({reason}); the coordinator stopped. \
         Start the session again and re-run `panebus attach`, or use `--on-tmux-exit wait` \
         to wait for it"
    )]
    TmuxGone {
        session: String,
        server: TmuxServerRef,
        reason: String,
    },
    /// The lease could not be renewed: another coordinator may act now.
    #[error(
        "lost the leader lease of session {session:?}; another coordinator may have taken over"
    )]
    LeaseLost { session: String },
}

impl From<CommandError> for CoordinatorError {
    fn from(e: CommandError) -> Self {
        CoordinatorError::Tmux(TmuxError::Build(e))
    }
}

impl CoordinatorError {
    /// Errors that only skip the current step: Redis briefly away, or tmux rejecting one
    /// command. The loop carries on.
    fn is_transient(&self) -> bool {
        match self {
            CoordinatorError::Bus(e) => e.is_connection_error(),
            CoordinatorError::Tmux(TmuxError::Command { .. }) => true,
            CoordinatorError::Tmux(TmuxError::UnexpectedReply { .. }) => true,
            CoordinatorError::Tmux(TmuxError::Build(_)) => true,
            _ => false,
        }
    }
}

/// Runs the coordinator until `stop` is cancelled (Ok) or a fatal error.
pub async fn run(
    config: &Config,
    opts: &AttachOptions,
    stop: &CancellationToken,
) -> Result<(), CoordinatorError> {
    // Workers that register from now on are managed; earlier ones only with --adopt.
    let adopt_since_ms = if opts.adopt { 0 } else { now_ms() };
    let bus = Bus::connect(config).await?;
    let holder = format!(
        "{}:{}:{}",
        short_hostname(),
        std::process::id(),
        &new_id()[..10]
    );
    loop {
        let Some(lease) = wait_for_lease(&bus, config, opts, &holder, stop).await? else {
            return Ok(());
        };
        tracing::info!(session = %opts.session, node = %config.node, token = lease.token(), "leader lease acquired");
        emit(
            &bus,
            EventKind::LeaseAcquired,
            "",
            json!({"session": opts.session, "node": config.node, "holder": holder, "lease_token": lease.token()}),
        )
        .await;
        emit(
            &bus,
            EventKind::CoordinatorStarted,
            "",
            json!({"session": opts.session, "node": config.node, "holder": holder, "lease_token": lease.token()}),
        )
        .await;
        let result = lead(&bus, config, opts, &lease, adopt_since_ms, stop).await;
        let reason = match &result {
            Ok(()) => "stopped".to_string(),
            Err(e) => e.to_string(),
        };
        if let Err(CoordinatorError::LeaseLost { .. }) = result {
            tracing::warn!(session = %opts.session, "leader lease lost; standing by");
            emit(
                &bus,
                EventKind::LeaseLost,
                "",
                json!({"session": opts.session, "node": config.node, "lease_token": lease.token()}),
            )
            .await;
            continue;
        }
        if let Err(e) = lease.release().await {
            tracing::warn!(error = %e, "could not release the leader lease; it lapses by itself");
        }
        emit(
            &bus,
            EventKind::CoordinatorStopped,
            "",
            json!({"session": opts.session, "node": config.node, "lease_token": lease.token(), "reason": reason}),
        )
        .await;
        return result;
    }
}

/// Polls for the lease until it is ours (`Some`) or `stop` is cancelled (`None`).
async fn wait_for_lease(
    bus: &Bus,
    config: &Config,
    opts: &AttachOptions,
    holder: &str,
    stop: &CancellationToken,
) -> Result<Option<Lease>, CoordinatorError> {
    let poll = (opts.lease_ttl / 4).max(Duration::from_millis(100));
    let mut announced = false;
    loop {
        match Lease::try_acquire(bus, &config.node, &opts.session, holder, opts.lease_ttl).await {
            Ok(Some(lease)) => return Ok(Some(lease)),
            Ok(None) => {
                if !announced {
                    let current = Lease::holder(bus, &config.node, &opts.session).await?;
                    tracing::info!(
                        session = %opts.session,
                        holder = current.as_ref().map(|h| h.holder.as_str()).unwrap_or("?"),
                        "another coordinator leads this session; standing by"
                    );
                    announced = true;
                }
            }
            Err(e) if e.is_connection_error() => {
                tracing::warn!(error = %e, "cannot reach Redis to take the lease; retrying");
            }
            Err(e) => return Err(e.into()),
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(None),
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

/// Leads while the lease holds: attach, supervise, and attach again after tmux went away
/// when asked to wait.
async fn lead(
    bus: &Bus,
    config: &Config,
    opts: &AttachOptions,
    lease: &Lease,
    adopt_since_ms: u64,
    stop: &CancellationToken,
) -> Result<(), CoordinatorError> {
    let mut renewed_at = Instant::now();
    loop {
        let connected = ControlClient::connect(ConnectOptions::new(
            opts.server.clone(),
            opts.session.clone(),
        ))
        .await;
        let (client, notes) = match connected {
            Ok(c) => c,
            Err(e) if opts.on_tmux_exit == OnTmuxExit::Wait => {
                tracing::warn!(error = %e, "cannot attach to tmux; waiting for the session");
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(REATTACH_DELAY) => {}
                }
                keep_lease(lease, &mut renewed_at, &opts.session).await?;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut sup = Supervisor::new(bus, config, opts, lease, client, adopt_since_ms);
        sup.renewed_at = renewed_at;
        let end = sup.supervise(notes, stop).await;
        renewed_at = sup.renewed_at;
        match end? {
            LoopEnd::Stopped => {
                sup.teardown().await;
                return Ok(());
            }
            LoopEnd::TmuxExited(reason) => {
                if opts.on_tmux_exit == OnTmuxExit::Wait {
                    tracing::warn!(%reason, "tmux session ended; waiting for it to come back");
                    continue;
                }
                return Err(CoordinatorError::TmuxGone {
                    session: opts.session.clone(),
                    server: opts.server.clone(),
                    reason,
                });
            }
        }
    }
}

/// Renews the lease; fails with [`CoordinatorError::LeaseLost`] once it is not ours or has
/// not been renewed for a whole TTL (Redis away that long).
async fn keep_lease(
    lease: &Lease,
    renewed_at: &mut Instant,
    session: &str,
) -> Result<(), CoordinatorError> {
    match lease.renew().await {
        Ok(true) => {
            *renewed_at = Instant::now();
            Ok(())
        }
        Ok(false) => Err(CoordinatorError::LeaseLost {
            session: session.to_string(),
        }),
        Err(e) if e.is_connection_error() && renewed_at.elapsed() < lease.ttl() => {
            tracing::warn!(error = %e, "cannot renew the leader lease; retrying");
            Ok(())
        }
        Err(_) => Err(CoordinatorError::LeaseLost {
            session: session.to_string(),
        }),
    }
}

/// Emits an event; a failure is logged, never fatal (the action it reports already happened).
async fn emit(bus: &Bus, kind: EventKind, worker: &str, details: Value) {
    let event = Event::new(kind, worker, details);
    if let Err(e) = bus.emit(&event).await {
        tracing::warn!(error = %e, event = %event.kind, "could not record event");
    }
}

fn exit_json(exit: ExitStatus) -> Value {
    match exit {
        ExitStatus::Code(c) => json!({"exit_status": c, "signal": null}),
        ExitStatus::Signal(s) => json!({"exit_status": null, "signal": s}),
        ExitStatus::Unknown => json!({"exit_status": null, "signal": null}),
    }
}

fn exit_text(exit: ExitStatus) -> String {
    match exit {
        ExitStatus::Code(c) => format!("exited with status {c}"),
        ExitStatus::Signal(s) => format!("killed by signal {s}"),
        ExitStatus::Unknown => "exited (status unknown)".to_string(),
    }
}

fn failure_text(failure: Failure) -> String {
    match failure {
        Failure::Exited(exit) => exit_text(exit),
        Failure::HeartbeatExpired => "heartbeat expired (hung)".to_string(),
    }
}

fn pane_name(pane: u32) -> String {
    format!("%{pane}")
}

fn option(name: &str) -> OptionName {
    OptionName::new(name).expect("PaneBus's option names are valid")
}

/// Kills the process group of a pane's process (the pane process leads its own session).
fn kill_pane_process(pid: u32) {
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
enum Trigger {
    Automatic(Failure),
    Manual,
}

enum LoopEnd {
    Stopped,
    TmuxExited(String),
}

/// One managed pane as the event loop tracks it.
#[derive(Debug, Clone)]
struct Managed {
    worker: String,
    pid: u32,
    started_at: SystemTime,
    dead: Option<(SystemTime, ExitStatus)>,
    heartbeat_missing_since: Option<SystemTime>,
    heartbeat_missed_reported: bool,
    jitter: Jitter,
    quarantined: bool,
    state: PaneState,
    shown: Option<PaneState>,
}

struct Supervisor<'a> {
    bus: &'a Bus,
    config: &'a Config,
    opts: &'a AttachOptions,
    lease: &'a Lease,
    client: ControlClient,
    session: SessionId,
    server_pid: Option<u32>,
    detector: DeathDetector,
    panes: HashMap<u32, Managed>,
    /// Queue depth per worker from the last registry listing.
    queue_depths: HashMap<String, usize>,
    adopt_since_ms: u64,
    shown_status: Option<String>,
    renewed_at: Instant,
}

impl<'a> Supervisor<'a> {
    fn new(
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
            detector: DeathDetector::new(UNREAPED_GIVE_UP),
            panes: HashMap::new(),
            queue_depths: HashMap::new(),
            adopt_since_ms,
            shown_status: None,
            renewed_at: Instant::now(),
        }
    }

    async fn supervise(
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
                    Some(Notification::Event(event)) => self.on_event(event).await,
                },
                _ = tick.tick() => self.on_tick().await,
            };
            match step {
                Ok(()) => {}
                // The notification stream reports the end; keep reading it.
                Err(CoordinatorError::Tmux(TmuxError::Exited { .. })) => {}
                Err(e) if e.is_transient() => {
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
        self.server_pid = Some(self.client.server_pid().await?);
        self.client
            .run(&TmuxCommand::subscribe(
                SUBSCRIPTION_NAME,
                SubscriptionScope::AllPanes,
                &Format::template(SUBSCRIPTION_FORMAT),
            )?)
            .await?;
        self.reconcile().await
    }

    /// Removes what only a running coordinator should have: the per-pane hooks (their
    /// marker lines would otherwise reach whichever client tmux picks) and the status text.
    /// Tags and `remain-on-exit` stay, so the next coordinator finds its panes.
    async fn teardown(&mut self) {
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

    async fn on_event(&mut self, event: OwnedEvent) -> Result<(), CoordinatorError> {
        match event {
            OwnedEvent::SubscriptionChanged { name, value, .. }
                if name == SUBSCRIPTION_NAME.as_bytes() =>
            {
                if let Some(report) = detect::parse_subscription(&value) {
                    self.on_report(report).await?;
                }
            }
            OwnedEvent::Unknown(line) | OwnedEvent::Bare(line)
                if line.starts_with(detect::MARKER_WORD) =>
            {
                if let Some(report) = detect::parse_marker(&line) {
                    self.on_report(report).await?;
                }
            }
            OwnedEvent::LayoutChange { window, layout, .. } => {
                emit(
                    self.bus,
                    EventKind::LayoutChanged,
                    "",
                    json!({"session": self.opts.session, "window": format!("@{}", window.0), "layout": layout}),
                )
                .await;
                self.reconcile().await?;
            }
            OwnedEvent::WindowAdd(_)
            | OwnedEvent::WindowClose(_)
            | OwnedEvent::UnlinkedWindowClose(_)
            | OwnedEvent::SessionsChanged => self.reconcile().await?,
            _ => {}
        }
        Ok(())
    }

    async fn on_tick(&mut self) -> Result<(), CoordinatorError> {
        keep_lease(self.lease, &mut self.renewed_at, &self.opts.session).await?;
        self.reconcile().await?;
        let panes: Vec<u32> = self.panes.keys().copied().collect();
        for pane in panes {
            self.evaluate(pane).await?;
        }
        for request in requests::drain(self.bus, &self.config.node, &self.opts.session).await? {
            let response = self.handle_request(&request).await;
            requests::reply(self.bus, &request.id, &response).await?;
        }
        self.show_status().await
    }

    /// Lists the session's panes, tags newly registered workers, forgets closed panes and
    /// feeds every managed pane's state to the detector (catching what notifications missed).
    async fn reconcile(&mut self) -> Result<(), CoordinatorError> {
        let listing = self
            .client
            .run(&TmuxCommand::list_panes(
                self.session,
                &Format::template(LIST_FORMAT),
            )?)
            .await?;
        let listed: Vec<reconcile::ListedPane> = listing
            .text_lines()
            .iter()
            .filter_map(|l| reconcile::parse_line(l))
            .collect();
        let workers = self.bus.list_workers().await?;
        self.queue_depths = workers
            .iter()
            .map(|w| (w.id.clone(), w.queue_depth))
            .collect();
        let registered: HashMap<String, WorkerInfo> = workers
            .into_iter()
            .filter_map(|w| w.info.map(|i| (w.id, i)))
            .collect();
        let known: HashSet<u32> = self.panes.keys().copied().collect();
        let plan = reconcile::plan(
            &listed,
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
                managed::remove(self.bus, &m.worker).await?;
            }
        }
        for (pane, worker) in &plan.managed {
            if !self.panes.contains_key(pane) {
                let listed_pane = listed.iter().find(|l| l.report.pane == *pane);
                let pid = listed_pane.map(|l| l.report.pid).unwrap_or(0);
                let tag = plan.to_tag.contains(pane);
                self.manage(*pane, worker, pid, registered.get(worker), tag)
                    .await?;
            }
        }
        for listed_pane in listed {
            if self.panes.contains_key(&listed_pane.report.pane) {
                self.on_report(listed_pane.report).await?;
            }
        }
        Ok(())
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
        let marker =
            TmuxCommand::display_message(None, &Format::template("%%pb-died").then(MARKER_FORMAT))?;
        self.client
            .run(&TmuxCommand::set_hook(
                HookTarget::Pane(id),
                Hook::PaneDied,
                &marker,
            ))
            .await?;
        let started_at = match info {
            Some(i) if i.pid == pid => SystemTime::UNIX_EPOCH + Duration::from_millis(i.started_ms),
            _ => SystemTime::now(),
        };
        if let Some(info) = info.filter(|i| !i.argv.is_empty()) {
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
        }
        tracing::info!(pane = %pane_name(pane), %worker, pid, tagged = tag, "managing pane");
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
                quarantined: false,
                state: PaneState::Healthy,
                shown: None,
            },
        );
        Ok(())
    }

    async fn on_report(&mut self, report: PaneReport) -> Result<(), CoordinatorError> {
        if !self.panes.contains_key(&report.pane) {
            return Ok(());
        }
        match self.detector.observe(report, Instant::now()) {
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
                    }
                }
                Ok(())
            }
            Detection::KickServer { pane } => {
                if let Some(server) = self.server_pid {
                    tracing::info!(pane = %pane_name(pane), server, "dead pane without exit status: sending SIGCHLD to the tmux server (lost-SIGCHLD recovery)");
                    if let Ok(pid) = libc::pid_t::try_from(server) {
                        // SAFETY: kill(2) has no memory effects.
                        unsafe {
                            libc::kill(pid, libc::SIGCHLD);
                        }
                    }
                }
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
                tracing::info!(pane = %pane_name(pane), %worker, pid, exit = %exit_text(exit), "worker pane exited");
                let mut details = exit_json(exit);
                details["pane"] = json!(pane_name(pane));
                details["pid"] = json!(pid);
                details["session"] = json!(self.opts.session);
                emit(self.bus, EventKind::PaneExited, &worker, details).await;
                self.evaluate(pane).await
            }
        }
    }

    /// Gathers the facts about one managed pane, asks the policy and acts.
    async fn evaluate(&mut self, pane: u32) -> Result<(), CoordinatorError> {
        let Some(m) = self.panes.get(&pane) else {
            return Ok(());
        };
        let worker = m.worker.clone();
        let now = SystemTime::now();
        let state = match m.dead {
            Some((_, ExitStatus::Code(0))) if !self.bus.is_registered(&worker).await? => {
                policy::PaneState::Stopped
            }
            Some((since, exit)) => policy::PaneState::Dead { since, exit },
            None => {
                let fresh = self.bus.heartbeat_ttl(&worker).await?.is_some();
                let m = self.panes.get_mut(&pane).expect("checked above");
                if fresh {
                    m.heartbeat_missing_since = None;
                    m.heartbeat_missed_reported = false;
                    policy::PaneState::Running {
                        heartbeat: Heartbeat::Fresh,
                    }
                } else {
                    let since = *m.heartbeat_missing_since.get_or_insert(now);
                    policy::PaneState::Running {
                        heartbeat: Heartbeat::Missing { since },
                    }
                }
            }
        };
        let history = history::load(self.bus, &worker).await?;
        let m = self.panes.get_mut(&pane).expect("checked above");
        m.quarantined = history.quarantined;
        let health = PaneHealth {
            started_at: m.started_at,
            state,
        };
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

    /// How to start the worker of `worker` again: its registry record when there is one,
    /// else the coordinator's copy; the bus settings go in the environment so the new
    /// process joins the same bus whatever the session environment says.
    async fn spawn_for(&self, worker: &str) -> Result<Spawn, CoordinatorError> {
        let (argv, cwd) = match self.bus.worker_info(worker).await? {
            Some(info) if !info.argv.is_empty() => (info.argv, info.cwd),
            _ => match managed::load(self.bus, worker).await? {
                Some(m) => (m.argv, m.cwd),
                None => (Vec::new(), String::new()),
            },
        };
        let c = self.config;
        let env = vec![
            ("PANEBUS_REDIS_URL".to_string(), c.redis_url.clone()),
            ("PANEBUS_NAMESPACE".to_string(), c.namespace.clone()),
            ("PANEBUS_NODE".to_string(), c.node.clone()),
            (
                "PANEBUS_HEARTBEAT_INTERVAL".to_string(),
                format!("{}ms", c.heartbeat_interval.as_millis()),
            ),
            (
                "PANEBUS_HEARTBEAT_TTL".to_string(),
                format!("{}ms", c.heartbeat_ttl.as_millis()),
            ),
        ];
        Ok(Spawn {
            cwd: (!cwd.is_empty()).then(|| PathBuf::from(cwd)),
            env,
            argv,
        })
    }

    /// Respawns a managed pane in place: fence the old incarnation (kill it if it still
    /// runs), requeue its unacked commands, `respawn-pane -k`, record and report.
    async fn respawn(&mut self, pane: u32, trigger: Trigger) -> Result<String, CoordinatorError> {
        keep_lease(self.lease, &mut self.renewed_at, &self.opts.session).await?;
        let Some(m) = self.panes.get(&pane).cloned() else {
            return Ok(String::new());
        };
        if m.dead.is_none() {
            kill_pane_process(m.pid);
        }
        let requeue = self.fence(&m.worker).await?;
        let spawn = self.spawn_for(&m.worker).await?;
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
        // respawned ends up quarantined instead of being retried on every tick.
        let respawned = self
            .client
            .run(&TmuxCommand::respawn_pane(PaneId(pane), &spawn)?)
            .await;
        history::record(self.bus, &m.worker, &HistoryEntry { at: now, kind }).await?;
        respawned?;
        let new_pid = self.pane_pid(pane).await?;
        self.detector.observe(
            PaneReport {
                pane,
                pid: new_pid,
                dead: false,
                exit: None,
            },
            Instant::now(),
        );
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
    async fn fence(&self, worker: &str) -> Result<(usize, usize), CoordinatorError> {
        let generation = self.bus.generation(worker).await?;
        match self.bus.requeue_unacked(worker, generation).await {
            Ok(outcome) => Ok((outcome.requeued, outcome.dead_lettered)),
            Err(BusError::Fenced { .. }) => Ok((0, 0)),
            Err(e) => Err(e.into()),
        }
    }

    async fn pane_pid(&self, pane: u32) -> Result<u32, CoordinatorError> {
        let cmd = TmuxCommand::display_message(
            Some(Target::Pane(PaneId(pane))),
            &Format::template("#{pane_pid}"),
        )?;
        let reply = self.client.run(&cmd).await?;
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

    /// Stops respawning a pane: fence it, record a diagnostic, show it, report it.
    async fn quarantine(
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
            entry.quarantined = true;
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

    async fn handle_request(&mut self, request: &Request) -> Response {
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

    /// Updates `@panebus_state` of panes whose state changed and `@panebus_status`.
    async fn show_status(&mut self) -> Result<(), CoordinatorError> {
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
