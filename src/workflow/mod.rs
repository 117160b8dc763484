//! Agent workflows: `panebus ask TASK` as four phases run by agents in worker panes.
//!
//! A workflow is a record in Redis ([`record`], stored by [`store`]) with four phases —
//! review, plan, work, compound — each a `prompt` command sent to a worker of the phase's
//! role (reviewer, planner, worker, compounder). Each phase's prompt is rendered from a
//! template ([`templates`]) that embeds the earlier phases' outputs; the compound phase runs
//! only when the work output ends with `COMPOUND: yes`. The [`driver`] runs the phases and
//! checkpoints the record after every step, so a driver that dies is replaced by one that
//! resumes at the phase it was on. Drivers are either `panebus ask` itself or an
//! orchestrator-role worker running a `workflow` command ([`handler`]).

pub mod driver;
pub mod handler;
pub mod record;
pub mod store;
pub mod templates;

pub use driver::{Driver, WorkflowError};
pub use handler::WorkflowHandler;
pub use record::{Next, Phase, PhaseRecord, PhaseState, WorkflowRecord, WorkflowState};
pub use templates::{wants_compound, Templates};

/// The role of the workers that drive workflows (`panebus workflow-setup` starts one).
pub const ORCHESTRATOR_ROLE: &str = "orchestrator";

/// The command type an orchestrator worker handles: `{"workflow_id": "..."}`.
pub const WORKFLOW_COMMAND: &str = "workflow";
