//! `panebus attach`: leadership and attachment for one tmux session.
//!
//! [`run`] waits for the leader lease of (node, session), attaches in control mode and hands
//! the session to the event loop (`event_loop.rs`), which detects deaths and hung workers
//! and has the actions (`actions.rs`) respawn or quarantine panes. Here: the lease (renewed
//! on every tick; once it cannot be renewed for a whole TTL the leader stops acting and
//! stands by again), `coordinator_started`/`coordinator_stopped`/`lease_lost` events, and
//! what happens when tmux goes away (`--on-tmux-exit exit|wait`).
//!
//! Only panes tagged `@panebus_worker` are touched; their options are pane-scoped
//! (`remain-on-exit`, the `pane-died` hook, `@panebus_state`) and the only session option
//! is `@panebus_status`. Nothing global is set. Stopping the coordinator (or killing it)
//! leaves every worker running.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::event_loop::{LoopEnd, Supervisor};
use super::lease::{self, Lease};
use super::policy::PolicyConfig;
use crate::bus::{Bus, BusError};
use crate::config::Config;
use crate::schema::{now_ms, Event, EventKind};
use crate::tmux::{CommandError, ConnectOptions, ControlClient, TmuxError, TmuxServerRef};

/// Pause between attach attempts with `--on-tmux-exit wait`.
const REATTACH_DELAY: Duration = Duration::from_secs(2);

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
    pub(super) fn is_transient(&self) -> bool {
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
    let holder = lease::new_holder();
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
pub(super) async fn keep_lease(
    lease: &Lease,
    renewed_at: &mut Instant,
    session: &str,
) -> Result<(), CoordinatorError> {
    let renewed = lease.renew().await;
    lease_held(renewed, lease, renewed_at, session)
}

/// What a renewal's outcome means: Ok while the lease is ours (or Redis is briefly away
/// within the TTL). Lets a caller send the renewal together with other reads.
pub(super) fn lease_held(
    renewed: Result<bool, BusError>,
    lease: &Lease,
    renewed_at: &mut Instant,
    session: &str,
) -> Result<(), CoordinatorError> {
    match renewed {
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
pub(super) async fn emit(bus: &Bus, kind: EventKind, worker: &str, details: Value) {
    let event = Event::new(kind, worker, details);
    if let Err(e) = bus.emit(&event).await {
        tracing::warn!(error = %e, event = %event.kind, "could not record event");
    }
}
