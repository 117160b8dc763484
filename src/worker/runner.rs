//! The command loop of a worker.
//!
//! Start-up: connect (retrying while Redis is down), register (bumping the generation),
//! requeue what a previous incarnation left unacked, emit `worker_started`, start the
//! heartbeat task. Then, per command: BLMOVE queue → processing; run the handler under its
//! timeout (if it is still running after [`MARK_DELAY`], mark the worker busy and emit
//! `command_received` meanwhile; a faster command sends that event with its outcome, which
//! saves a round trip); then dead-letter it if it failed, store the result, ack it (fenced
//! by generation) and emit `command_completed`/`command_failed`. A result is always stored
//! before the ack, so a crash in between redelivers the command rather than losing it. On a
//! single Redis server that finish goes out in one pipeline with the next BLMOVE on the
//! blocking connection (one round trip per command); elsewhere it runs on the shared
//! connection while the BLMOVE waits on its own. Its outcome (e.g. fenced) is looked at
//! before the next command runs. On a stop request the worker stops taking work, lets the command
//! in flight finish within [`SHUTDOWN_GRACE`] (else puts it back at the head of its queue),
//! deregisters and emits `worker_stopped`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::handler::{HandlerContext, Handlers};
use super::{heartbeat, StopTokens, WorkerError, WorkerExit, SHUTDOWN_GRACE};
use crate::bus::slots::Batch;
use crate::bus::{BlockingConnection, Bus, BusError, Delivery};
use crate::config::Config;
use crate::schema::{
    new_id, now_ms, Command, CommandResult, DlqCommand, DlqEntry, DlqReason, Event, EventKind,
    WorkerInfo, WorkerState,
};

/// How long one BLMOVE waits before the loop checks in (a stop request ends it earlier
/// through CLIENT UNBLOCK).
const TAKE_BLOCK: Duration = Duration::from_secs(5);

/// A command still running after this long is marked busy in the registry.
const MARK_DELAY: Duration = Duration::from_millis(5);

/// What the loop does after a command.
enum Flow {
    Continue,
    Shutdown,
    Stop,
    Fenced(u64),
}

/// The finish of a command that ran (DLQ entry, result, ack, event), sent with the next
/// take: one pipeline and one round trip for both on a single Redis server.
struct Finish {
    batch: Batch,
    command_id: String,
}

/// What processing a command left to do.
enum Step {
    Done(Flow),
    Finish(Box<Finish>),
}

/// How running a handler ended.
enum Run {
    Done(Result<Value, (String, DlqReason)>),
    ShutdownRequested,
    Interrupted,
    Fenced,
}

struct Runner {
    bus: Bus,
    config: Config,
    info: WorkerInfo,
    handlers: Handlers,
    tokens: StopTokens,
    fenced: CancellationToken,
}

pub(super) async fn run(
    config: Config,
    mut info: WorkerInfo,
    handlers: Handlers,
    tokens: StopTokens,
) -> Result<WorkerExit, WorkerError> {
    let Some(bus) = connect(&config, &tokens).await else {
        return Ok(WorkerExit::Stopped);
    };
    if !register(&bus, &config, &mut info, &tokens).await {
        return Ok(WorkerExit::Stopped);
    }
    tracing::info!(worker = %info.id, role = %info.role, generation = info.generation, namespace = %config.namespace, "worker registered");
    let runner = Runner {
        bus,
        config,
        info,
        handlers,
        tokens,
        fenced: CancellationToken::new(),
    };
    runner.serve().await
}

/// Connects, retrying with backoff while Redis is unreachable; `None` if stopped first.
async fn connect(config: &Config, tokens: &StopTokens) -> Option<Bus> {
    let mut backoff = Backoff::redis();
    loop {
        match Bus::connect(config).await {
            Ok(bus) => return Some(bus),
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(attempt = backoff.attempt(), retry_in_ms = delay.as_millis() as u64, error = %e, "cannot connect to Redis; retrying");
                if sleep_or_stop(delay, &tokens.stop).await {
                    return None;
                }
            }
        }
    }
}

/// Registers, retrying while Redis is unreachable; false if stopped first.
async fn register(bus: &Bus, config: &Config, info: &mut WorkerInfo, tokens: &StopTokens) -> bool {
    let mut backoff = Backoff::redis();
    loop {
        match bus.register(info, config.heartbeat_ttl).await {
            Ok(_) => return true,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(attempt = backoff.attempt(), retry_in_ms = delay.as_millis() as u64, error = %e, "cannot register; retrying");
                if sleep_or_stop(delay, &tokens.stop).await {
                    return false;
                }
            }
        }
    }
}

/// Sleeps for `delay`; returns true if `stop` was cancelled first.
async fn sleep_or_stop(delay: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => true,
        _ = tokio::time::sleep(delay) => false,
    }
}

impl Runner {
    fn id(&self) -> &str {
        &self.info.id
    }

    async fn serve(self) -> Result<WorkerExit, WorkerError> {
        let heartbeat_stop = CancellationToken::new();
        let heartbeat = tokio::spawn(heartbeat::run(
            self.bus.clone(),
            self.info.clone(),
            self.config.heartbeat_interval,
            self.config.heartbeat_ttl,
            heartbeat_stop.clone(),
            self.fenced.clone(),
        ));
        self.recover().await;
        self.emit(Event::new(
            EventKind::WorkerStarted,
            self.id(),
            json!({
                "role": self.info.role,
                "pid": self.info.pid,
                "generation": self.info.generation,
                "version": self.info.version,
                "pane": self.info.pane,
                "handlers": self.handlers.kinds().collect::<Vec<_>>(),
            }),
        ))
        .await;
        let flow = self.command_loop().await;
        heartbeat_stop.cancel();
        let _ = heartbeat.await;
        let (reason, outcome) = match flow {
            Flow::Shutdown => ("shutdown command", Ok(WorkerExit::ShutdownCommand)),
            Flow::Fenced(current) => (
                "fenced",
                Err(WorkerError::Fenced {
                    worker: self.id().to_string(),
                    generation: self.info.generation,
                    current,
                }),
            ),
            Flow::Stop | Flow::Continue => ("stop requested", Ok(WorkerExit::Stopped)),
        };
        if !matches!(flow, Flow::Fenced(_)) {
            match self
                .bus
                .deregister(self.id(), &self.info.role, self.info.generation)
                .await
            {
                Ok(_) => tracing::info!(worker = %self.id(), "deregistered"),
                Err(e) => {
                    tracing::error!(worker = %self.id(), error = %e, "could not deregister; the heartbeat will expire instead")
                }
            }
        }
        self.emit(Event::new(
            EventKind::WorkerStopped,
            self.id(),
            json!({"reason": reason, "generation": self.info.generation, "pid": self.info.pid}),
        ))
        .await;
        tracing::info!(worker = %self.id(), reason, "worker stopped");
        outcome
    }

    /// Requeues what an earlier incarnation left in the processing list.
    async fn recover(&self) {
        match self
            .bus
            .recover_unacked(self.id(), self.info.generation)
            .await
        {
            Ok(o) if o.requeued + o.dead_lettered > 0 => {
                tracing::warn!(worker = %self.id(), requeued = o.requeued, dead_lettered = o.dead_lettered, "recovered commands a previous incarnation left unacknowledged");
                self.emit(Event::new(
                    EventKind::CommandRequeued,
                    self.id(),
                    json!({"requeued": o.requeued, "dead_lettered": o.dead_lettered, "by": "worker start-up"}),
                ))
                .await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(worker = %self.id(), error = %e, "could not recover unacknowledged commands; they stay in the processing list")
            }
        }
    }

    async fn emit(&self, event: Event) {
        if let Err(e) = self.bus.emit(&event).await {
            tracing::warn!(worker = %self.id(), event = %event.kind, error = %e, "could not record event");
        }
    }

    async fn command_loop(&self) -> Flow {
        let mut blocking: Option<BlockingConnection> = None;
        let mut backoff = Backoff::redis();
        // After a connection error a command may sit in the processing list with nobody
        // running it (a BLMOVE served just as the connection broke): look there first.
        let mut check_orphans = false;
        let mut pending: Option<Finish> = None;
        // Whether the blocking connection takes the finish and the take as one pipeline
        // (a single server does; Sentinel and Cluster blocking connections refuse it).
        let mut combine = true;
        loop {
            if self.fenced.is_cancelled() || self.tokens.stop.is_cancelled() {
                if let Some(finish) = pending.take() {
                    if let flow @ (Flow::Fenced(_) | Flow::Shutdown) = self.run_finish(finish).await
                    {
                        return flow;
                    }
                }
                if self.fenced.is_cancelled() {
                    return self.fenced_flow().await;
                }
                return Flow::Stop;
            }
            let next = match pending.take() {
                Some(finish) if combine && !check_orphans => {
                    match self.take(&mut blocking, Some(&finish.batch)).await {
                        Ok((replies, next)) => {
                            let flow = self.ack_flow(replies, &finish.command_id);
                            if !matches!(flow, Flow::Continue) {
                                if let Some(taken) = &next {
                                    self.give_back(&taken.raw).await;
                                }
                                return flow;
                            }
                            Ok(next)
                        }
                        Err(e) => {
                            // The BLMOVE may have moved a command: look in the processing
                            // list before taking again.
                            blocking = None;
                            check_orphans = true;
                            let refused = matches!(&e, BusError::Redis(r) if r.kind() == redis::ErrorKind::Client);
                            if refused {
                                // Nothing was sent: this connection takes no pipelines.
                                combine = false;
                            } else if !e.is_connection_error()
                                && !matches!(e, BusError::Timeout { .. })
                            {
                                // A server error: every step ran, none is sent again.
                                tracing::error!(worker = %self.id(), command_id = %finish.command_id, error = %e, "could not record the outcome; the command stays in the processing list");
                                continue;
                            }
                            // Sent in part or not at all: send the finish on its own (its
                            // steps are idempotent).
                            match self.run_finish(finish).await {
                                Flow::Continue => continue,
                                flow => return flow,
                            }
                        }
                    }
                }
                Some(finish) if check_orphans => {
                    // The finish must land before the processing list is looked at.
                    match self.run_finish(finish).await {
                        Flow::Continue => self
                            .bus
                            .oldest_unacked(self.id())
                            .await
                            .inspect(|orphan| check_orphans = orphan.is_some()),
                        flow => return flow,
                    }
                }
                Some(finish) => {
                    let take = async { self.take(&mut blocking, None).await.map(|(_, d)| d) };
                    let (flow, next) = tokio::join!(self.run_finish(finish), take);
                    if !matches!(flow, Flow::Continue) {
                        if let Ok(Some(taken)) = &next {
                            self.give_back(&taken.raw).await;
                        }
                        return flow;
                    }
                    next
                }
                None if check_orphans => self
                    .bus
                    .oldest_unacked(self.id())
                    .await
                    .inspect(|orphan| check_orphans = orphan.is_some()),
                None => self.take(&mut blocking, None).await.map(|(_, d)| d),
            };
            // Back after failures: register again if Redis lost the record. Until that worked
            // (the shared connection may still be reconnecting when the blocking one already
            // works), try again after the next take rather than waiting for a heartbeat.
            if next.is_ok() && backoff.attempt() > 0 && self.ensure_registered().await {
                tracing::info!(worker = %self.id(), failures = backoff.attempt(), "Redis is reachable again");
                backoff.reset();
            }
            let delivery = match next {
                Ok(Some(d)) => d,
                Ok(None) => continue,
                Err(e) => {
                    blocking = None;
                    check_orphans = true;
                    let delay = backoff.next_delay();
                    tracing::warn!(worker = %self.id(), attempt = backoff.attempt(), retry_in_ms = delay.as_millis() as u64, error = %e, "cannot take commands; retrying");
                    if sleep_or_stop(delay, &self.tokens.stop).await {
                        return Flow::Stop;
                    }
                    if backoff.attempt() == 1 || backoff.attempt() % 10 == 0 {
                        self.ensure_registered().await;
                    }
                    continue;
                }
            };
            if self.tokens.stop.is_cancelled() || self.fenced.is_cancelled() {
                // Taken while stopping: give it back untouched.
                self.give_back(&delivery.raw).await;
                continue;
            }
            match self.process(delivery).await {
                Step::Finish(finish) => pending = Some(*finish),
                Step::Done(Flow::Continue) => {}
                Step::Done(other) => return other,
            }
        }
    }

    async fn fenced_flow(&self) -> Flow {
        Flow::Fenced(self.bus.generation(self.id()).await.unwrap_or(0))
    }

    /// A heartbeat right away, so a worker whose record Redis lost registers again as soon
    /// as Redis is back rather than at the next heartbeat. False when Redis did not answer.
    async fn ensure_registered(&self) -> bool {
        match heartbeat::beat(&self.bus, &self.info, self.config.heartbeat_ttl).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => {
                self.fenced.cancel();
                true
            }
            Err(e) => {
                tracing::debug!(worker = %self.id(), error = %e, "registration check failed");
                false
            }
        }
    }

    /// One BLMOVE on the dedicated connection, after `finish` in the same pipeline if given
    /// (then its kept replies come back too), ended early by CLIENT UNBLOCK on a stop
    /// request (never by dropping it, which would leave it parked in Redis).
    async fn take(
        &self,
        blocking: &mut Option<BlockingConnection>,
        finish: Option<&Batch>,
    ) -> Result<(Vec<redis::Value>, Option<Delivery>), BusError> {
        if blocking.is_none() {
            *blocking = Some(self.bus.blocking_connection().await?);
        }
        let conn = blocking.as_mut().expect("just set");
        let client_id = conn.client_id();
        let take = async {
            match finish {
                Some(batch) => Ok(self
                    .bus
                    .finish_and_take(conn, batch, self.id(), TAKE_BLOCK)
                    .await?),
                None => Ok((
                    Vec::new(),
                    self.bus.take(conn, self.id(), TAKE_BLOCK).await?,
                )),
            }
        };
        tokio::pin!(take);
        let interrupted = async {
            tokio::select! {
                _ = self.tokens.stop.cancelled() => {}
                _ = self.fenced.cancelled() => {}
            }
        };
        tokio::select! {
            r = &mut take => r,
            _ = interrupted => {
                if let Err(e) = self.bus.unblock(client_id).await {
                    tracing::debug!(error = %e, "CLIENT UNBLOCK failed");
                }
                match tokio::time::timeout(Duration::from_secs(2), take).await {
                    Ok(r) => r,
                    // Redis does not answer: the command (if any) stays in the processing
                    // list and the next incarnation recovers it; a finish sent along is
                    // sent again.
                    Err(_) if finish.is_some() => Err(BusError::Timeout {
                        what: "the finish and take pipeline".into(),
                        after: Duration::from_secs(2),
                    }),
                    Err(_) => Ok((Vec::new(), None)),
                }
            }
        }
    }

    /// Puts a taken command back at the head of the queue.
    async fn give_back(&self, raw: &[u8]) {
        match self.bus.return_to_queue(self.id(), raw).await {
            Ok(_) => {
                tracing::info!(worker = %self.id(), "returned the command in flight to the head of the queue");
                if let Ok(cmd) = Command::decode(raw) {
                    self.emit(
                        Event::new(
                            EventKind::CommandRequeued,
                            self.id(),
                            json!({"by": "stopping worker"}),
                        )
                        .with_command(cmd.id),
                    )
                    .await;
                }
            }
            Err(e) => {
                tracing::error!(worker = %self.id(), error = %e, "could not return the command in flight to the queue; it stays in the processing list and is recovered at the next start")
            }
        }
    }

    async fn process(&self, delivery: Delivery) -> Step {
        let started_ms = now_ms();
        let cmd = match delivery.command {
            Ok(cmd) => cmd,
            Err(reason) => {
                return Step::Done(self.finish_poison(&delivery.raw, reason.to_string()).await)
            }
        };
        tracing::info!(worker = %self.id(), command_id = %cmd.id, r#type = %cmd.kind, attempt = cmd.attempt, "command received");
        if cmd.attempt > cmd.max_attempts {
            let error = format!(
                "attempt {} is past max_attempts {}",
                cmd.attempt, cmd.max_attempts
            );
            let outcome = Err((error, DlqReason::AttemptsExhausted));
            let received = Some(self.received_event(&cmd));
            return Step::Done(
                self.finish(&cmd, &delivery.raw, started_ms, outcome, received)
                    .await,
            );
        }
        // A command that finishes within MARK_DELAY is never shown as busy: its
        // `command_received` event goes out with the outcome, saving a round trip. A slower
        // one is marked busy while its handler runs.
        let (run, received) = {
            let handler = self.run_handler(&cmd);
            tokio::pin!(handler);
            tokio::select! {
                biased;
                run = &mut handler => (run, Some(self.received_event(&cmd))),
                _ = tokio::time::sleep(MARK_DELAY) => {
                    let (_, run) = tokio::join!(self.mark_received(&cmd), handler);
                    (run, None)
                }
            }
        };
        match run {
            Run::Done(outcome) => Step::Finish(Box::new(self.finish_batch(
                &cmd,
                &delivery.raw,
                started_ms,
                outcome,
                received,
            ))),
            Run::ShutdownRequested => {
                let outcome = Ok(json!({"shutdown": true, "worker": self.id()}));
                match self
                    .finish(&cmd, &delivery.raw, started_ms, outcome, received)
                    .await
                {
                    Flow::Continue => Step::Done(Flow::Shutdown),
                    other => Step::Done(other),
                }
            }
            Run::Interrupted => {
                self.give_back(&delivery.raw).await;
                Step::Done(Flow::Stop)
            }
            Run::Fenced => Step::Done(self.fenced_flow().await),
        }
    }

    /// Marks the worker busy and records `command_received`; failures are only logged.
    fn received_event(&self, cmd: &Command) -> Event {
        Event::new(
            EventKind::CommandReceived,
            self.id(),
            json!({"type": cmd.kind, "attempt": cmd.attempt, "origin": cmd.origin}),
        )
        .with_command(cmd.id.clone())
    }

    async fn mark_received(&self, cmd: &Command) {
        let mut batch = Batch::new();
        batch.add_ignored(
            self.bus
                .set_state_cmd(self.id(), WorkerState::Busy, Some(&cmd.id)),
        );
        batch.add_ignored(self.bus.emit_cmd(&self.received_event(cmd)));
        if let Err(e) = batch.query(&mut self.bus.connection()).await {
            tracing::warn!(worker = %self.id(), command_id = %cmd.id, error = %e, "could not mark the command received");
        }
    }

    async fn run_handler(&self, cmd: &Command) -> Run {
        if cmd.kind == "shutdown" {
            return Run::ShutdownRequested;
        }
        let Some(handler) = self.handlers.get(&cmd.kind) else {
            return Run::Done(Err((
                self.unknown_type_message(&cmd.kind),
                DlqReason::UnknownType,
            )));
        };
        let timeout = cmd
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(self.config.command_timeout);
        let ctx = HandlerContext {
            worker_id: self.id().to_string(),
            role: self.info.role.clone(),
            timeout,
            deadline: Instant::now() + timeout,
            stopping: self.tokens.stop.clone(),
        };
        let stop_after_grace = async {
            self.tokens.stop.cancelled().await;
            tracing::info!(worker = %self.id(), command_id = %cmd.id, grace_s = SHUTDOWN_GRACE.as_secs(), "stopping: letting the command in flight finish");
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            biased;
            _ = self.tokens.force.cancelled() => Run::Interrupted,
            _ = self.fenced.cancelled() => Run::Fenced,
            _ = stop_after_grace => Run::Interrupted,
            r = tokio::time::timeout(timeout, handler.handle(cmd, &ctx)) => match r {
                Ok(Ok(value)) => Run::Done(Ok(value)),
                Ok(Err(e)) => Run::Done(Err((e.message, DlqReason::Failed))),
                Err(_) => Run::Done(Err((
                    format!(
                        "timed out after {} (set the command's timeout or PANEBUS_COMMAND_TIMEOUT)",
                        humantime::format_duration(timeout)
                    ),
                    DlqReason::Timeout,
                ))),
            },
        }
    }

    fn unknown_type_message(&self, kind: &str) -> String {
        let mut builtin: Vec<&str> = self.handlers.kinds().collect();
        builtin.push("shutdown");
        builtin.sort_unstable();
        let known = builtin.join(", ");
        format!(
            "no handler for command type {kind} (handled: {known}; add one with --handler {kind}=PROGRAM)"
        )
    }

    /// Stores the result, dead-letters a failure, acks and records the outcome, in one
    /// round trip on a single Redis server (ordered stages on a cluster: DLQ entry, then
    /// result, then ack and event); retried while Redis is unreachable.
    async fn finish(
        &self,
        cmd: &Command,
        raw: &[u8],
        started_ms: u64,
        outcome: Result<Value, (String, DlqReason)>,
        received: Option<Event>,
    ) -> Flow {
        let finish = self.finish_batch(cmd, raw, started_ms, outcome, received);
        self.run_finish(finish).await
    }

    /// The finish of a command: the `command_received` event if still to be sent and the
    /// DLQ entry of a failure; then the result; then the ack and the outcome event.
    fn finish_batch(
        &self,
        cmd: &Command,
        raw: &[u8],
        started_ms: u64,
        outcome: Result<Value, (String, DlqReason)>,
        received: Option<Event>,
    ) -> Finish {
        let finished_ms = now_ms();
        let (ok, value, error, reason) = match outcome {
            Ok(v) => (true, Some(v), None, None),
            Err((e, r)) => (false, None, Some(e), Some(r)),
        };
        let result = CommandResult {
            command_id: cmd.id.clone(),
            worker: self.id().to_string(),
            ok,
            result: value,
            error: error.clone(),
            started_ms,
            finished_ms,
            attempt: cmd.attempt,
        };
        // A command whose received event is still to be sent was never marked busy.
        let mark_idle = received.is_none();
        let mut batch = Batch::new();
        if let Some(received) = received {
            batch.add_ignored(self.bus.emit_cmd(&received));
        }
        // The DLQ entry goes in before the result, so whoever sees a failed result also
        // finds its DLQ entry (and a requeue, which drops commands whose result is stored,
        // never loses a failure).
        let event = match (&error, reason) {
            (Some(error), Some(reason)) => {
                let entry = DlqEntry {
                    id: new_id(),
                    command: DlqCommand::Parsed(Box::new(cmd.clone())),
                    error: error.clone(),
                    worker: self.id().to_string(),
                    ts_ms: finished_ms,
                    reason,
                };
                batch.add_ignored(self.bus.dlq_push_cmd(&entry)).then();
                tracing::warn!(worker = %self.id(), command_id = %cmd.id, r#type = %cmd.kind, reason = %reason, error = %error, dlq_entry = %entry.id, "command failed");
                Event::new(
                    EventKind::CommandFailed,
                    self.id(),
                    json!({"type": cmd.kind, "reason": reason, "error": error, "dlq_entry": entry.id, "attempt": cmd.attempt}),
                )
            }
            _ => {
                tracing::info!(worker = %self.id(), command_id = %cmd.id, r#type = %cmd.kind, duration_ms = finished_ms - started_ms, "command completed");
                Event::new(
                    EventKind::CommandCompleted,
                    self.id(),
                    json!({"type": cmd.kind, "duration_ms": finished_ms - started_ms, "attempt": cmd.attempt}),
                )
            }
        };
        self.bus.store_result_cmds(&result, &mut batch);
        batch.then();
        batch.add(
            self.bus
                .ack_cmd(self.id(), raw, self.info.generation, mark_idle),
        );
        batch.add_ignored(self.bus.emit_cmd(&event.with_command(cmd.id.clone())));
        Finish {
            batch,
            command_id: cmd.id.clone(),
        }
    }

    /// What the kept replies of a finish (the ack's alone) mean for the loop.
    fn ack_flow(&self, replies: Vec<redis::Value>, command_id: &str) -> Flow {
        match self.ack_outcome(replies, command_id) {
            Ok(flow) => flow,
            Err(error) => {
                tracing::error!(worker = %self.id(), command_id, error = %error, "could not record the outcome; the command stays in the processing list");
                Flow::Continue
            }
        }
    }

    fn ack_outcome(&self, replies: Vec<redis::Value>, command_id: &str) -> Result<Flow, BusError> {
        let [acked] = <[redis::Value; 1]>::try_from(replies).map_err(|r| {
            BusError::InvalidPayload(format!(
                "the finish pipeline returned {} replies where the ack's alone was expected",
                r.len()
            ))
        })?;
        let acked: (i64, u64) = redis::from_redis_value(acked).map_err(redis::RedisError::from)?;
        match Bus::ack_reply(self.id(), self.info.generation, acked) {
            Ok(true) => Ok(Flow::Continue),
            Ok(false) => {
                tracing::warn!(worker = %self.id(), command_id, "acked command was no longer in the processing list (requeued by someone else, or Redis lost data)");
                Ok(Flow::Continue)
            }
            Err(BusError::Fenced { actual, .. }) => Ok(Flow::Fenced(actual)),
            Err(e) => Err(e),
        }
    }

    /// Sends an element that is not a valid command to the DLQ (through the worker's
    /// dead-letter list, see [`Bus::dead_letter`]); retried while Redis is unreachable.
    async fn finish_poison(&self, raw: &[u8], reason: String) -> Flow {
        let entry = DlqEntry {
            id: new_id(),
            command: DlqCommand::from_raw(raw),
            error: reason.clone(),
            worker: self.id().to_string(),
            ts_ms: now_ms(),
            reason: DlqReason::Poison,
        };
        tracing::warn!(worker = %self.id(), dlq_entry = %entry.id, error = %reason, "queue held something that is not a command; moving it to the DLQ");
        let mut stopping_since: Option<Instant> = None;
        let mut backoff = Backoff::redis();
        loop {
            let error = match self
                .bus
                .dead_letter(self.id(), raw, self.info.generation, &entry)
                .await
            {
                Ok(_) => break,
                Err(BusError::Fenced { actual, .. }) => return Flow::Fenced(actual),
                Err(e) => e,
            };
            if !error.is_connection_error() || self.gives_up_retrying(&mut stopping_since) {
                tracing::error!(worker = %self.id(), error = %error, "could not dead-letter the element; it stays in the processing list (or the worker's dead letters) and is recovered at the next start");
                return Flow::Continue;
            }
            let delay = backoff.next_delay();
            tracing::warn!(worker = %self.id(), attempt = backoff.attempt(), retry_in_ms = delay.as_millis() as u64, error = %error, "cannot dead-letter the element; retrying");
            tokio::select! {
                _ = self.tokens.force.cancelled() => {}
                _ = tokio::time::sleep(delay) => {}
            }
        }
        self.emit(Event::new(
            EventKind::CommandFailed,
            self.id(),
            json!({"reason": DlqReason::Poison, "error": reason, "dlq_entry": entry.id}),
        ))
        .await;
        Flow::Continue
    }

    /// Runs a finish on the shared connection, sent again while Redis is unreachable (its
    /// steps are idempotent). After a server error the batch is not sent again: its other
    /// steps have run (a pipeline is not atomic), and the command stays in the processing
    /// list for the next incarnation.
    /// Whether a retry loop against an unreachable Redis ends now: on a forced stop, or one
    /// heartbeat TTL after a stop was asked (a pane gets a single SIGHUP when its tmux server
    /// goes, and by then the command counts as abandoned and will be redelivered).
    fn gives_up_retrying(&self, stopping_since: &mut Option<Instant>) -> bool {
        if self.tokens.stop.is_cancelled() {
            stopping_since.get_or_insert_with(Instant::now);
        }
        self.tokens.force.is_cancelled()
            || stopping_since.is_some_and(|t| t.elapsed() >= self.config.heartbeat_ttl)
    }

    async fn run_finish(&self, finish: Finish) -> Flow {
        let Finish { batch, command_id } = finish;
        let command_id = command_id.as_str();
        let mut backoff = Backoff::redis();
        let mut stopping_since: Option<Instant> = None;
        loop {
            let reply = batch.query(&mut self.bus.connection()).await;
            let error = match reply {
                Ok(replies) => match self.ack_outcome(replies, command_id) {
                    Ok(flow) => return flow,
                    Err(e) => e,
                },
                Err(e) => BusError::Redis(e),
            };
            if !error.is_connection_error() {
                tracing::error!(worker = %self.id(), command_id, error = %error, "could not record the outcome; the command stays in the processing list");
                return Flow::Continue;
            }
            if self.gives_up_retrying(&mut stopping_since) {
                tracing::error!(worker = %self.id(), command_id, "stopping with Redis unreachable: the outcome is lost and the command will be redelivered");
                return Flow::Stop;
            }
            let delay = backoff.next_delay();
            tracing::warn!(worker = %self.id(), command_id, attempt = backoff.attempt(), retry_in_ms = delay.as_millis() as u64, error = %error, "cannot record the outcome; retrying");
            tokio::select! {
                _ = self.tokens.force.cancelled() => {}
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}
