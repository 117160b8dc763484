//! The worker: the process in a tmux pane that pulls commands from its queue and runs them.
//!
//! [`Worker::builder`] sets it up (role, handlers, pane) and [`WorkerBuilder::run`] runs it
//! until a `shutdown` command, a stop signal, or until it is fenced by a newer incarnation.
//! The pieces: [`identity`] (pane and record), [`handler`] (the `Handler` trait and
//! registry), [`builtin`] (`ping`), [`prompt`] (the agent CLI), [`external`] (`--handler TYPE=PROGRAM`), [`heartbeat`]
//! (the heartbeat task), [`runner`] (the command loop), [`signals`] and [`backoff`].
//!
//! ```no_run
//! use panebus::config::Config;
//! use panebus::worker::{handler_fn, Worker};
//! use serde_json::json;
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let config = Config::from_env()?;
//! Worker::builder(config)
//!     .role("echo")
//!     .handler("echo", handler_fn(|cmd, _ctx| async move { Ok(json!({"echo": cmd.payload})) }))
//!     .run()
//!     .await?;
//! # Ok(())
//! # }
//! ```

pub mod backoff;
pub mod builtin;
pub mod external;
pub mod handler;
pub mod heartbeat;
pub mod identity;
pub mod prompt;
mod runner;
pub mod signals;

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::config::Config;

pub use external::ExternalHandler;
pub use handler::{handler_fn, Handler, HandlerContext, HandlerError, HandlerFuture, Handlers};
pub use signals::StopTokens;

/// How long a stopping worker lets the command in flight finish before it requeues it.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why a worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerExit {
    /// It ran a `shutdown` command.
    ShutdownCommand,
    /// A stop signal (or the embedder's stop token) ended it.
    Stopped,
}

/// Why a worker could not run on.
#[derive(Debug, Error)]
pub enum WorkerError {
    /// A newer incarnation registered with the same worker id, or the coordinator fenced
    /// this one: it must not touch the queue again.
    #[error(
        "worker {worker} was fenced (its generation {generation} was superseded by {current}): \
         another incarnation owns this worker id now; this process stops without touching the queue"
    )]
    Fenced {
        worker: String,
        generation: u64,
        current: u64,
    },
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

/// Entry point for running a worker.
pub struct Worker;

impl Worker {
    /// A worker with role `worker`, the built-in handlers (`ping`, `prompt`; `shutdown` is
    /// part of the loop), its pane detected from
    /// `TMUX_PANE` and signal handling on.
    pub fn builder(config: Config) -> WorkerBuilder {
        let mut handlers = Handlers::new();
        handlers.insert("ping", Arc::new(builtin::Ping));
        handlers.insert(
            "prompt",
            Arc::new(prompt::PromptHandler::from_config(&config)),
        );
        handlers.insert(
            crate::workflow::WORKFLOW_COMMAND,
            Arc::new(crate::workflow::WorkflowHandler::new(config.clone())),
        );
        WorkerBuilder {
            pane: identity::detect_pane(std::env::var("TMUX_PANE").ok().as_deref()),
            config,
            role: "worker".to_string(),
            handlers,
            argv: std::env::args().collect(),
            stop: None,
        }
    }
}

/// Settings of a worker before it runs.
pub struct WorkerBuilder {
    config: Config,
    role: String,
    pane: String,
    handlers: Handlers,
    argv: Vec<String>,
    stop: Option<StopTokens>,
}

impl WorkerBuilder {
    /// The role used for routing (`dispatch-role`).
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.role = role.into();
        self
    }

    /// Handles commands of type `kind` with `handler` (replacing a built-in one).
    pub fn handler(mut self, kind: impl Into<String>, handler: Arc<dyn Handler>) -> Self {
        self.handlers.insert(kind, handler);
        self
    }

    /// Uses `pane` instead of the detected pane id.
    pub fn pane(mut self, pane: impl Into<String>) -> Self {
        self.pane = pane.into();
        self
    }

    /// The command line recorded in the registry (default: this process's).
    pub fn argv(mut self, argv: Vec<String>) -> Self {
        self.argv = argv;
        self
    }

    /// Stops on these tokens instead of installing signal handlers (for embedders that
    /// manage signals themselves, and for tests).
    pub fn stop_tokens(mut self, tokens: StopTokens) -> Self {
        self.stop = Some(tokens);
        self
    }

    /// The worker id it will register as.
    pub fn worker_id(&self) -> String {
        self.config.worker_id(&self.pane)
    }

    /// Runs the worker until it is told to stop. Redis outages do not end it: it retries
    /// with backoff and registers again when Redis is back.
    pub async fn run(self) -> Result<WorkerExit, WorkerError> {
        let (tokens, signal_task) = match self.stop {
            Some(tokens) => (tokens, None),
            None => {
                let tokens = StopTokens::new();
                let task = tokens.listen_to_signals().map_err(WorkerError::Signals)?;
                (tokens, Some(task))
            }
        };
        let session = identity::detect_session(&self.pane).await;
        let info = identity::initial_info(&self.config, &self.pane, &self.role, self.argv, session);
        let outcome = runner::run(self.config, info, self.handlers, tokens).await;
        if let Some(task) = signal_task {
            task.abort();
        }
        outcome
    }
}
