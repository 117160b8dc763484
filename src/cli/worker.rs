//! `panebus worker`: run a worker in the current tmux pane.
//!
//! The pane id comes from `TMUX_PANE`; outside tmux the worker gets a random
//! `standalone-*` id (and says so). `--handler TYPE=PROGRAM` adds command types served by
//! external programs (command JSON on stdin, result on stdout).

use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;

use crate::config::{Config, ConfigOverrides};
use crate::worker::{ExternalHandler, Worker, WorkerExit};

/// Options of `panebus worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Role used for routing (`dispatch-role ROLE ...`).
    #[arg(long, default_value = "worker")]
    pub role: String,

    /// Serve command type TYPE by running PROGRAM (split into words like a shell, never run
    /// through one) with the command JSON on stdin; its stdout is the result. Repeatable.
    #[arg(long = "handler", value_name = "TYPE=PROGRAM")]
    pub handlers: Vec<String>,

    /// Time between heartbeats (seconds or e.g. `1500ms`); overrides
    /// PANEBUS_HEARTBEAT_INTERVAL.
    #[arg(long, value_name = "DURATION")]
    pub heartbeat_interval: Option<String>,

    /// Default time limit per command (seconds or e.g. `2m`); overrides
    /// PANEBUS_COMMAND_TIMEOUT. A command's own `timeout_ms` wins.
    #[arg(long, value_name = "DURATION")]
    pub command_timeout: Option<String>,
}

/// Runs `panebus worker` until a `shutdown` command or a stop signal.
pub async fn run(args: WorkerArgs, mut config: Config) -> anyhow::Result<()> {
    config.apply(ConfigOverrides {
        heartbeat_interval: args.heartbeat_interval.clone(),
        command_timeout: args.command_timeout.clone(),
        ..Default::default()
    })?;
    let role = args.role.trim();
    if role.is_empty() || role.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!(
            "invalid --role {:?}: a role is one word, e.g. --role reviewer",
            args.role
        );
    }
    let mut builder = Worker::builder(config).role(role);
    for spec in &args.handlers {
        let (kind, handler) = ExternalHandler::parse_spec(spec).map_err(anyhow::Error::msg)?;
        builder = builder.handler(kind, Arc::new(handler));
    }
    let worker_id = builder.worker_id();
    if std::env::var_os("TMUX_PANE").is_none() {
        tracing::warn!(worker = %worker_id, "not running inside a tmux pane: using a standalone worker id; dispatch to it with its full id");
    }
    let exit = builder
        .run()
        .await
        .with_context(|| format!("worker {worker_id} stopped"))?;
    match exit {
        WorkerExit::ShutdownCommand => {
            tracing::info!(worker = %worker_id, "exiting after a shutdown command")
        }
        WorkerExit::Stopped => tracing::info!(worker = %worker_id, "exiting after a stop signal"),
    }
    Ok(())
}
