//! The `workflow` command: lets an orchestrator-role worker drive a workflow.
//!
//! `panebus ask` sends `{"type": "workflow", "payload": {"workflow_id": "..."}}` to a live
//! orchestrator worker when there is one; the worker then runs the [`Driver`] in its pane.
//! If that worker dies, the bus redelivers the command to its respawned incarnation, whose
//! driver resumes from the record's checkpoint. A workflow that ends failed makes the
//! command fail with the workflow's error.

use serde_json::json;

use crate::bus::Bus;
use crate::config::Config;
use crate::schema::Command;
use crate::worker::{Handler, HandlerContext, HandlerError, HandlerFuture};

use super::driver::Driver;
use super::record::WorkflowState;
use super::templates::Templates;

/// Drives the workflow named in the command's payload.
pub struct WorkflowHandler {
    config: Config,
}

impl WorkflowHandler {
    pub fn new(config: Config) -> Self {
        WorkflowHandler { config }
    }
}

impl Handler for WorkflowHandler {
    fn handle<'a>(&'a self, cmd: &'a Command, ctx: &'a HandlerContext) -> HandlerFuture<'a> {
        Box::pin(async move {
            let id = cmd
                .payload
                .get("workflow_id")
                .and_then(|v| v.as_str())
                .filter(|id| !id.is_empty())
                .ok_or_else(|| {
                    HandlerError::new(
                        "invalid workflow payload: expected {\"workflow_id\": \"...\"}; start workflows with `panebus ask`",
                    )
                })?;
            let templates = Templates::from_env().map_err(|e| HandlerError::new(e.to_string()))?;
            let bus = Bus::connect(&self.config)
                .await
                .map_err(|e| HandlerError::new(e.to_string()))?;
            println!("--- workflow {id}: driving its phases");
            let record = Driver::new(bus, templates, ctx.worker_id.clone())
                .run(id)
                .await
                .map_err(|e| HandlerError::new(e.to_string()))?;
            println!("--- workflow {id}: {}", record.state.as_str());
            match record.state {
                WorkflowState::Failed => Err(HandlerError::new(format!(
                    "workflow {id} failed: {}",
                    record.error.as_deref().unwrap_or("unknown error")
                ))),
                state => Ok(json!({"workflow_id": id, "state": state.as_str()})),
            }
        })
    }
}
