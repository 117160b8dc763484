//! The workflow record: what `ask` created, where each phase stands and what it produced.
//!
//! It is stored as JSON in Redis (see `store.rs`) and rewritten after every step, so it is
//! the checkpoint a driver resumes from. The decisions over it ("what runs next?", "is it
//! over?") are pure functions here; the driver does the I/O.

use serde::{Deserialize, Serialize};

use crate::schema::now_ms;

/// The four phases of an `ask`, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Review,
    Plan,
    Work,
    Compound,
}

impl Phase {
    /// Every phase in the order they run.
    pub const ALL: [Phase; 4] = [Phase::Review, Phase::Plan, Phase::Work, Phase::Compound];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Review => "review",
            Phase::Plan => "plan",
            Phase::Work => "work",
            Phase::Compound => "compound",
        }
    }

    /// The worker role that runs this phase.
    pub fn role(self) -> &'static str {
        match self {
            Phase::Review => "reviewer",
            Phase::Plan => "planner",
            Phase::Work => "worker",
            Phase::Compound => "compounder",
        }
    }
}

/// Where a phase stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseState {
    Pending,
    Running,
    Completed,
    Failed,
    Skipped,
}

/// Where the whole workflow stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowState {
    Pending,
    Running,
    Completed,
    Failed,
}

impl WorkflowState {
    pub fn is_terminal(self) -> bool {
        matches!(self, WorkflowState::Completed | WorkflowState::Failed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowState::Pending => "pending",
            WorkflowState::Running => "running",
            WorkflowState::Completed => "completed",
            WorkflowState::Failed => "failed",
        }
    }
}

/// One phase of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseRecord {
    pub phase: Phase,
    pub state: PhaseState,
    /// The worker the phase's `prompt` command was sent to.
    #[serde(default)]
    pub worker: Option<String>,
    #[serde(default)]
    pub command_id: Option<String>,
    /// The delivery of the command that produced the result (> 1 after a worker died and
    /// the bus redelivered it).
    #[serde(default)]
    pub attempt: Option<u32>,
    /// The prompt text sent (rendered from the phase template).
    #[serde(default)]
    pub prompt: Option<String>,
    /// The agent's answer (the command result's `result` text).
    #[serde(default)]
    pub output: Option<String>,
    /// The first line of the output, for listings.
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    /// Why the phase ran elsewhere or was skipped, when it did.
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub started_ms: Option<u64>,
    #[serde(default)]
    pub finished_ms: Option<u64>,
}

impl PhaseRecord {
    fn new(phase: Phase) -> Self {
        PhaseRecord {
            phase,
            state: PhaseState::Pending,
            worker: None,
            command_id: None,
            attempt: None,
            prompt: None,
            output: None,
            summary: None,
            error: None,
            note: None,
            started_ms: None,
            finished_ms: None,
        }
    }
}

/// A workflow started by `panebus ask`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRecord {
    pub id: String,
    pub task: String,
    pub working_dir: String,
    pub state: WorkflowState,
    pub created_ms: u64,
    pub updated_ms: u64,
    #[serde(default)]
    pub finished_ms: Option<u64>,
    /// The workflow fails when it is still running at this time.
    pub deadline_ms: u64,
    /// Who drives the phases: `ask` itself (`local`) or an orchestrator worker's id.
    #[serde(default)]
    pub driver: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    pub phases: Vec<PhaseRecord>,
}

/// What a driver does next with a workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Send the phase to a worker (it is pending).
    Dispatch(Phase),
    /// The phase's command was sent already: wait for its result (after a driver restart).
    Await(Phase),
    /// Skip the compound phase: the work output did not ask for it.
    SkipCompound,
    /// Every phase is done.
    Complete,
    /// The deadline passed.
    Expire,
    /// The workflow is over already.
    Stop,
}

impl WorkflowRecord {
    /// A new, pending workflow.
    pub fn new(id: String, task: String, working_dir: String, timeout_ms: u64) -> Self {
        let now = now_ms();
        WorkflowRecord {
            id,
            task,
            working_dir,
            state: WorkflowState::Pending,
            created_ms: now,
            updated_ms: now,
            finished_ms: None,
            deadline_ms: now + timeout_ms,
            driver: None,
            error: None,
            phases: Phase::ALL.iter().map(|&p| PhaseRecord::new(p)).collect(),
        }
    }

    pub fn phase(&self, phase: Phase) -> &PhaseRecord {
        self.phases
            .iter()
            .find(|p| p.phase == phase)
            .expect("every workflow has all four phases")
    }

    pub fn phase_mut(&mut self, phase: Phase) -> &mut PhaseRecord {
        self.phases
            .iter_mut()
            .find(|p| p.phase == phase)
            .expect("every workflow has all four phases")
    }

    /// The output of a completed phase, or "" if it has none.
    pub fn output(&self, phase: Phase) -> &str {
        self.phase(phase).output.as_deref().unwrap_or("")
    }

    /// Decides the next step at time `now`.
    pub fn next(&self, now: u64) -> Next {
        if self.state.is_terminal() {
            return Next::Stop;
        }
        for record in &self.phases {
            match record.state {
                PhaseState::Completed | PhaseState::Skipped => continue,
                PhaseState::Failed => return Next::Stop,
                _ if now >= self.deadline_ms => return Next::Expire,
                PhaseState::Running => return Next::Await(record.phase),
                PhaseState::Pending => {
                    if record.phase == Phase::Compound
                        && !super::wants_compound(self.output(Phase::Work))
                    {
                        return Next::SkipCompound;
                    }
                    return Next::Dispatch(record.phase);
                }
            }
        }
        Next::Complete
    }

    /// 1-based position of a phase, for "[2/4]" progress lines.
    pub fn position(phase: Phase) -> usize {
        Phase::ALL.iter().position(|&p| p == phase).unwrap_or(0) + 1
    }
}

/// The first non-empty line of `output`, at most 120 characters.
pub fn summarize(output: &str) -> String {
    let line = output
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut summary: String = line.chars().take(120).collect();
    if line.chars().count() > 120 {
        summary.push('…');
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> WorkflowRecord {
        WorkflowRecord::new("w".into(), "task".into(), "/".into(), 1_000_000)
    }

    fn complete(record: &mut WorkflowRecord, phase: Phase, output: &str) {
        let p = record.phase_mut(phase);
        p.state = PhaseState::Completed;
        p.output = Some(output.into());
    }

    #[test]
    fn phases_run_in_order_and_resume_where_they_stopped() {
        let mut r = record();
        let now = r.created_ms;
        assert_eq!(r.next(now), Next::Dispatch(Phase::Review));
        complete(&mut r, Phase::Review, "r");
        assert_eq!(r.next(now), Next::Dispatch(Phase::Plan));
        r.phase_mut(Phase::Plan).state = PhaseState::Running;
        assert_eq!(r.next(now), Next::Await(Phase::Plan));
        complete(&mut r, Phase::Plan, "p");
        complete(&mut r, Phase::Work, "done\nCOMPOUND: yes\n");
        assert_eq!(r.next(now), Next::Dispatch(Phase::Compound));
        complete(&mut r, Phase::Compound, "c");
        assert_eq!(r.next(now), Next::Complete);
        r.state = WorkflowState::Completed;
        assert_eq!(r.next(now), Next::Stop);
    }

    #[test]
    fn compound_is_skipped_unless_the_work_asks_for_it() {
        let mut r = record();
        complete(&mut r, Phase::Review, "r");
        complete(&mut r, Phase::Plan, "p");
        complete(&mut r, Phase::Work, "done\nCOMPOUND: no\n");
        assert_eq!(r.next(r.created_ms), Next::SkipCompound);
        r.phase_mut(Phase::Compound).state = PhaseState::Skipped;
        assert_eq!(r.next(r.created_ms), Next::Complete);
    }

    #[test]
    fn a_failed_phase_stops_and_the_deadline_expires() {
        let mut r = record();
        assert_eq!(r.next(r.deadline_ms), Next::Expire);
        r.phase_mut(Phase::Review).state = PhaseState::Failed;
        assert_eq!(r.next(r.created_ms), Next::Stop);
    }

    #[test]
    fn summary_is_the_first_line_shortened() {
        assert_eq!(summarize("\n\n  first line \nsecond"), "first line");
        let long = "x".repeat(200);
        assert_eq!(summarize(&long).chars().count(), 121);
    }

    #[test]
    fn record_round_trips_as_json() {
        let r = record();
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"state\":\"pending\""));
        assert!(json.contains("\"phase\":\"review\""));
        let back: WorkflowRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
}
