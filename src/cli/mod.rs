//! The command line: global flags and one subcommand per file.
//!
//! In this branch only `panebus worker` is wired; the full command set lives with the CLI.

pub mod ask;
pub mod worker;
pub mod workflow;

use clap::{Parser, Subcommand};

use crate::config::ConfigOverrides;

/// Coordinate long-lived workers in tmux panes, with Redis as the control plane.
#[derive(Debug, Parser)]
#[command(name = "panebus", version)]
pub struct Cli {
    /// Redis URL (overrides PANEBUS_REDIS_URL).
    #[arg(long, global = true, value_name = "URL")]
    pub redis_url: Option<String>,
    /// Bus namespace: prefix of every key (overrides PANEBUS_NAMESPACE).
    #[arg(long, global = true, value_name = "NAME")]
    pub namespace: Option<String>,
    /// Node name, first half of worker ids (overrides PANEBUS_NODE).
    #[arg(long, global = true, value_name = "NAME")]
    pub node: Option<String>,
    /// Machine-readable JSON on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a worker in this tmux pane.
    Worker(worker::WorkerArgs),
    /// Run a task through the review, plan, work and compound phases.
    Ask(ask::AskArgs),
    /// Create a tmux session with the five workflow panes and a coordinator.
    WorkflowSetup(workflow::WorkflowSetupArgs),
    /// Kill a workflow session and deregister its workers.
    WorkflowTeardown(workflow::WorkflowTeardownArgs),
    /// Show one workflow and its phases.
    WorkflowStatus(workflow::WorkflowStatusArgs),
    /// List recent workflows.
    Workflows(workflow::WorkflowsArgs),
}

impl Cli {
    /// The configuration overrides given as global flags.
    pub fn overrides(&self) -> ConfigOverrides {
        ConfigOverrides {
            redis_url: self.redis_url.clone(),
            namespace: self.namespace.clone(),
            node: self.node.clone(),
            ..Default::default()
        }
    }
}
