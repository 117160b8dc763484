//! Runs a workflow's phases: picks a worker for each, sends it the phase's `prompt`, waits
//! for the answer, and checkpoints the record after every step.
//!
//! The driver holds no state of its own: it reads the record, asks [`WorkflowRecord::next`]
//! what to do, does it, writes the record back, and repeats. A driver that dies mid-phase
//! is replaced by one (the redelivered `workflow` command on a respawned orchestrator, or a
//! new `ask`) that finds the phase `running` with its command id and waits for that same
//! command's result: completed phases are never re-run, and the phase in flight is re-run
//! only by the bus's own redelivery if its worker died (attempt > 1, same command id). A
//! failed phase fails the workflow with the phase's error.

use std::time::Duration;

use serde_json::{json, Value};

use crate::bus::{Bus, BusError, WorkerStatus};
use crate::schema::{now_ms, Command, CommandResult, Event, EventKind, WorkerState};

use super::record::{summarize, Next, Phase, PhaseState, WorkflowRecord, WorkflowState};
use super::store;
use super::templates::Templates;
use super::ORCHESTRATOR_ROLE;

/// What stops a driver: only trouble with Redis or a missing record. A phase that fails is
/// not an error of the driver; it is recorded and the record is returned.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// The event type emitted when a phase fails (the bus's event kinds list every other
/// workflow event).
pub const PHASE_FAILED_EVENT: &str = "workflow_phase_failed";

/// Runs workflows on one bus.
pub struct Driver {
    bus: Bus,
    templates: Templates,
    identity: String,
}

impl Driver {
    /// A driver named `identity` in records and events: `local` for `ask` itself, or the
    /// orchestrator worker's id (which is also never chosen to run a phase).
    pub fn new(bus: Bus, templates: Templates, identity: impl Into<String>) -> Self {
        Driver {
            bus,
            templates,
            identity: identity.into(),
        }
    }

    /// Runs workflow `id` from wherever its record stands until it completes or fails, and
    /// returns the final record.
    pub async fn run(&self, id: &str) -> Result<WorkflowRecord, WorkflowError> {
        let mut record = store::get(&self.bus, id).await?;
        if !record.state.is_terminal() {
            let first_start = record.state == WorkflowState::Pending;
            record.state = WorkflowState::Running;
            record.driver = Some(self.identity.clone());
            self.save(&mut record).await?;
            if first_start {
                self.emit(
                    EventKind::WorkflowStarted,
                    &record,
                    None,
                    json!({"task": record.task, "working_dir": record.working_dir}),
                )
                .await;
            } else {
                tracing::info!(workflow = %record.id, "resuming workflow");
            }
        }
        loop {
            match record.next(now_ms()) {
                Next::Stop => return Ok(record),
                Next::Complete => {
                    record.state = WorkflowState::Completed;
                    record.finished_ms = Some(now_ms());
                    self.save(&mut record).await?;
                    self.emit(EventKind::WorkflowCompleted, &record, None, json!({}))
                        .await;
                    return Ok(record);
                }
                Next::Expire => {
                    let phase = record
                        .phases
                        .iter()
                        .find(|p| matches!(p.state, PhaseState::Running | PhaseState::Pending))
                        .map(|p| p.phase)
                        .unwrap_or(Phase::Review);
                    let waited = Duration::from_millis(record.deadline_ms - record.created_ms);
                    let error = format!(
                        "the workflow timed out after {} (raise `panebus ask --timeout`)",
                        humantime::format_duration(waited)
                    );
                    self.fail(&mut record, phase, error).await?;
                }
                Next::SkipCompound => {
                    let phase = record.phase_mut(Phase::Compound);
                    phase.state = PhaseState::Skipped;
                    phase.note =
                        Some("skipped: the work output did not end with `COMPOUND: yes`".into());
                    phase.finished_ms = Some(now_ms());
                    self.save(&mut record).await?;
                    self.emit(
                        EventKind::WorkflowPhaseCompleted,
                        &record,
                        None,
                        json!({"phase": "compound", "skipped": true}),
                    )
                    .await;
                }
                Next::Dispatch(phase) => self.dispatch(&mut record, phase).await?,
                Next::Await(phase) => self.await_phase(&mut record, phase).await?,
            }
        }
    }

    async fn dispatch(
        &self,
        record: &mut WorkflowRecord,
        phase: Phase,
    ) -> Result<(), WorkflowError> {
        let workers = self.bus.list_workers().await?;
        let (worker, note) = match choose_worker(&workers, phase.role(), &self.identity) {
            Ok(choice) => choice,
            Err(error) => return self.fail(record, phase, error).await,
        };
        let text = self.templates.render(phase, record);
        let mut command = Command::new(
            "prompt",
            json!({"text": text, "context": {"working_dir": record.working_dir}}),
            format!("workflow:{}", record.id),
        );
        command.workflow_id = Some(record.id.clone());
        command.timeout_ms = Some(record.deadline_ms.saturating_sub(now_ms()).max(1));
        command.extra.insert("phase".into(), json!(phase.name()));

        // Checkpoint before sending: a driver that dies right after the send finds the
        // command id and waits for it instead of sending the phase twice.
        let entry = record.phase_mut(phase);
        entry.state = PhaseState::Running;
        entry.worker = Some(worker.clone());
        entry.command_id = Some(command.id.clone());
        entry.prompt = Some(text);
        entry.note = note;
        entry.started_ms = Some(now_ms());
        self.save(record).await?;
        if let Err(error) = self.bus.enqueue(&worker, &command, false).await {
            if error.is_connection_error() {
                return Err(error.into());
            }
            return self
                .fail(
                    record,
                    phase,
                    format!("cannot send it to {worker}: {error}"),
                )
                .await;
        }
        tracing::info!(workflow = %record.id, phase = phase.name(), %worker, command = %command.id, "phase started");
        self.emit(
            EventKind::WorkflowPhaseStarted,
            record,
            Some(&command.id),
            json!({"phase": phase.name(), "worker": worker, "role": phase.role()}),
        )
        .await;
        Ok(())
    }

    async fn await_phase(
        &self,
        record: &mut WorkflowRecord,
        phase: Phase,
    ) -> Result<(), WorkflowError> {
        let entry = record.phase(phase);
        let Some(command_id) = entry.command_id.clone() else {
            // A running phase without a command cannot be waited for: send it again.
            record.phase_mut(phase).state = PhaseState::Pending;
            return Ok(());
        };
        let remaining = Duration::from_millis(record.deadline_ms.saturating_sub(now_ms()).max(1));
        let mut blocking = self.bus.blocking_connection().await?;
        match self
            .bus
            .wait_result(&mut blocking, &command_id, remaining)
            .await
        {
            Ok(result) => self.finish_phase(record, phase, result).await,
            // The deadline passed: the next step expires the workflow.
            Err(BusError::Timeout { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    async fn finish_phase(
        &self,
        record: &mut WorkflowRecord,
        phase: Phase,
        result: CommandResult,
    ) -> Result<(), WorkflowError> {
        if !result.ok {
            let error = result
                .error
                .unwrap_or_else(|| "the command failed without an error message".into());
            let attempt = if result.attempt > 1 {
                format!(" (attempt {})", result.attempt)
            } else {
                String::new()
            };
            return self
                .fail(
                    record,
                    phase,
                    format!("failed on {}{attempt}: {error}", result.worker),
                )
                .await;
        }
        let output = answer_text(result.result.as_ref());
        let entry = record.phase_mut(phase);
        entry.state = PhaseState::Completed;
        entry.worker = Some(result.worker.clone());
        entry.attempt = Some(result.attempt);
        entry.summary = Some(summarize(&output));
        entry.output = Some(output);
        entry.finished_ms = Some(now_ms());
        self.save(record).await?;
        tracing::info!(workflow = %record.id, phase = phase.name(), "phase completed");
        self.emit(
            EventKind::WorkflowPhaseCompleted,
            record,
            Some(&result.command_id),
            json!({"phase": phase.name(), "worker": result.worker, "attempt": result.attempt}),
        )
        .await;
        Ok(())
    }

    /// Records `phase` as failed with `error`, and the workflow with it.
    async fn fail(
        &self,
        record: &mut WorkflowRecord,
        phase: Phase,
        error: String,
    ) -> Result<(), WorkflowError> {
        let now = now_ms();
        let entry = record.phase_mut(phase);
        entry.state = PhaseState::Failed;
        entry.error = Some(error.clone());
        entry.finished_ms = Some(now);
        let command_id = entry.command_id.clone();
        record.state = WorkflowState::Failed;
        record.error = Some(format!("{} phase: {error}", phase.name()));
        record.finished_ms = Some(now);
        self.save(record).await?;
        tracing::warn!(workflow = %record.id, phase = phase.name(), %error, "phase failed");
        let details = json!({"phase": phase.name(), "error": error});
        self.emit(
            EventKind::Other(PHASE_FAILED_EVENT.into()),
            record,
            command_id.as_deref(),
            details.clone(),
        )
        .await;
        self.emit(EventKind::WorkflowFailed, record, None, details)
            .await;
        Ok(())
    }

    async fn save(&self, record: &mut WorkflowRecord) -> Result<(), WorkflowError> {
        record.updated_ms = now_ms();
        store::save(&self.bus, record).await?;
        Ok(())
    }

    /// Emits an event; a failure to emit is logged, never fatal (the record is the truth).
    async fn emit(
        &self,
        kind: EventKind,
        record: &WorkflowRecord,
        command_id: Option<&str>,
        mut details: Value,
    ) {
        details["workflow_id"] = json!(record.id);
        let mut event = Event::new(kind, self.identity.clone(), details);
        if let Some(id) = command_id {
            event = event.with_command(id);
        }
        if let Err(error) = self.bus.emit(&event).await {
            tracing::warn!(%error, event = %event.kind, "cannot emit workflow event");
        }
    }
}

/// The answer text of a `prompt` result: its `result` string, else the whole JSON.
fn answer_text(result: Option<&Value>) -> String {
    match result {
        Some(Value::Object(map)) => match map.get("result") {
            Some(Value::String(text)) => text.clone(),
            _ => Value::Object(map.clone()).to_string(),
        },
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// Picks the worker for a phase of `role`: the live, non-stopping worker of that role with
/// the fewest commands queued or in flight (ties: lowest id). Without one, any live worker
/// that is not an orchestrator, with a note saying so. Never `driver` itself, which is busy
/// driving. Without any, an error saying how to start one.
pub fn choose_worker(
    workers: &[WorkerStatus],
    role: &str,
    driver: &str,
) -> Result<(String, Option<String>), String> {
    let usable = |w: &&WorkerStatus| {
        w.alive
            && w.id != driver
            && w.info
                .as_ref()
                .is_some_and(|i| i.state != WorkerState::Stopping)
    };
    let load = |w: &&WorkerStatus| (w.queue_depth + w.processing, w.id.clone());
    let role_of = |w: &WorkerStatus| w.info.as_ref().map(|i| i.role.clone()).unwrap_or_default();
    if let Some(worker) = workers
        .iter()
        .filter(usable)
        .filter(|w| role_of(w) == role)
        .min_by_key(load)
    {
        return Ok((worker.id.clone(), None));
    }
    if let Some(worker) = workers
        .iter()
        .filter(usable)
        .filter(|w| role_of(w) != ORCHESTRATOR_ROLE)
        .min_by_key(load)
    {
        let note = format!(
            "no live {role} worker: ran on {} (role {})",
            worker.id,
            role_of(worker)
        );
        return Ok((worker.id.clone(), Some(note)));
    }
    Err(format!(
        "no live worker to run it: start one with `panebus worker --role {role}` in a tmux pane, or run `panebus workflow-setup`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::WorkerInfo;

    fn worker(id: &str, role: &str, alive: bool, queued: usize) -> WorkerStatus {
        WorkerStatus {
            id: id.into(),
            info: Some(WorkerInfo {
                id: id.into(),
                role: role.into(),
                node: "n".into(),
                pane: "%1".into(),
                pid: 1,
                generation: 1,
                version: "0".into(),
                started_ms: 0,
                current_command: None,
                state: WorkerState::Idle,
                argv: vec![],
                cwd: "/".into(),
                session: None,
            }),
            alive,
            heartbeat_ttl: None,
            queue_depth: queued,
            processing: 0,
        }
    }

    #[test]
    fn picks_the_least_loaded_live_worker_of_the_role() {
        let workers = [
            worker("n/%1", "planner", true, 3),
            worker("n/%2", "planner", true, 1),
            worker("n/%3", "planner", false, 0),
            worker("n/%4", "reviewer", true, 0),
        ];
        assert_eq!(
            choose_worker(&workers, "planner", "local").unwrap(),
            ("n/%2".to_string(), None)
        );
    }

    #[test]
    fn falls_back_to_any_live_non_orchestrator_worker() {
        let workers = [
            worker("n/%0", "orchestrator", true, 0),
            worker("n/%4", "reviewer", true, 0),
        ];
        let (id, note) = choose_worker(&workers, "compounder", "local").unwrap();
        assert_eq!(id, "n/%4");
        assert!(note.unwrap().contains("no live compounder worker"));
    }

    #[test]
    fn never_picks_the_driver_and_says_how_to_start_a_worker() {
        let workers = [worker("n/%0", "planner", true, 0)];
        let error = choose_worker(&workers, "planner", "n/%0").unwrap_err();
        assert!(error.contains("panebus worker --role planner"), "{error}");
    }

    #[test]
    fn answer_text_prefers_the_result_string() {
        assert_eq!(answer_text(Some(&json!({"result": "hi", "x": 1}))), "hi");
        assert_eq!(answer_text(Some(&json!({"x": 1}))), r#"{"x":1}"#);
        assert_eq!(answer_text(None), "");
    }
}
