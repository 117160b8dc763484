//! Sending one command type to many workers: the shared body of `dispatch-role` and
//! `broadcast`.
//!
//! Each live worker in scope (heartbeat present, not quarantined) gets its own command with
//! its own id, so each result and DLQ entry stands alone. A worker whose enqueue fails (its
//! queue is full, say) does not stop the others: every outcome is printed, and the exit code
//! is that of the first problem, ranked enqueue error, then failed command, then timeout.

use std::time::Instant;

use clap::Args;
use serde::Serialize;
use serde_json::Value;

use super::dispatch::wait_limit;
use super::exit::Failure;
use super::progress::Spinner;
use super::table::{cell, Table};
use super::{payload, print_json, print_text, Context};
use crate::admin::{Admin, PaneView};
use crate::schema::CommandResult;

/// The command to send: shared by `dispatch`, `dispatch-role` and `broadcast`.
#[derive(Debug, Args)]
pub struct CommandArgs {
    /// Command type: `ping`, `prompt`, `shutdown` or a type a handler is configured for.
    #[arg(value_name = "TYPE")]
    pub kind: String,

    /// Command payload: a JSON object, `@FILE` to read it from a file, `-` for stdin.
    #[arg(long, value_name = "JSON")]
    pub payload: Option<String>,

    /// Limit for running the command (each one, when several are sent), in milliseconds [default: PANEBUS_COMMAND_TIMEOUT].
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u64>,

    /// Wait for the result(s); exit non-zero if a command failed or the wait timed out.
    #[arg(long)]
    pub wait: bool,

    /// With --wait: give up after this many seconds in total [default: the command timeout + 30].
    #[arg(long, value_name = "S", requires = "wait")]
    pub wait_timeout: Option<u64>,
}

/// The workers a fan-out reaches: live (fresh heartbeat), not quarantined, with `role` if
/// one is given.
pub async fn live_targets(admin: &Admin, role: Option<&str>) -> anyhow::Result<Vec<PaneView>> {
    Ok(admin
        .panes(role)
        .await?
        .into_iter()
        .filter(|pane| pane.accepts_work())
        .collect())
}

/// What happened to one worker's command, as printed (`--json`: one array element).
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub worker: String,
    /// Command id; absent when the enqueue failed.
    pub id: Option<String>,
    /// `queued`, `ok`, `failed`, `timeout` or `error` (not enqueued).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Dispatches `args` to each of `targets` (already filtered to the scope), reports, and
/// returns the error that decides the exit code.
pub async fn run(
    args: CommandArgs,
    ctx: Context,
    admin: Admin,
    targets: Vec<PaneView>,
) -> anyhow::Result<()> {
    let payload = payload::read(args.payload.as_deref())?;
    let mut outcomes = Vec::with_capacity(targets.len());
    let mut first_error: Option<anyhow::Error> = None;
    let mut sent = Vec::new();
    for target in &targets {
        let mut command = admin.new_command(&args.kind, payload.clone());
        command.timeout_ms = args.timeout;
        command.reply = args.wait;
        match admin.enqueue(target.id(), &command, false).await {
            Ok(()) => {
                outcomes.push(Outcome {
                    worker: target.id().to_string(),
                    id: Some(command.id.clone()),
                    status: "queued",
                    result: None,
                    error: None,
                });
                sent.push((outcomes.len() - 1, command));
            }
            Err(err) => {
                outcomes.push(Outcome {
                    worker: target.id().to_string(),
                    id: None,
                    status: "error",
                    result: None,
                    error: Some(format!("{err:#}")),
                });
                first_error.get_or_insert(anyhow::Error::from(err));
            }
        }
    }
    let mut first_failure = None;
    let mut first_timeout = None;
    if args.wait {
        let limit = wait_limit(args.wait_timeout, args.timeout, &ctx.config);
        let deadline = Instant::now() + limit;
        let spinner = Spinner::start(format!("waiting for {} results", sent.len()));
        // One deadline for all: waiting in turn costs no more than the slowest command.
        for (index, command) in &sent {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let outcome = &mut outcomes[*index];
            match admin.wait_result(&command.id, remaining).await? {
                Some(result) => {
                    apply(outcome, &result);
                    if !result.ok && first_failure.is_none() {
                        first_failure = Some(Failure::CommandFailed {
                            id: result.command_id.clone(),
                            worker: result.worker.clone(),
                            error: result.error.clone().unwrap_or_default(),
                        });
                    }
                }
                None => {
                    outcome.status = "timeout";
                    first_timeout.get_or_insert(Failure::WaitTimedOut {
                        id: command.id.clone(),
                        waited: limit,
                    });
                }
            }
        }
        drop(spinner);
    }
    print(&outcomes, ctx.json)?;
    if let Some(err) = first_error {
        let failed = outcomes.iter().filter(|o| o.status == "error").count();
        return Err(err.context(format!(
            "{failed} of {} workers did not get the command",
            outcomes.len()
        )));
    }
    match first_failure.or(first_timeout) {
        Some(failure) => Err(failure.into()),
        None => Ok(()),
    }
}

fn apply(outcome: &mut Outcome, result: &CommandResult) {
    outcome.status = if result.ok { "ok" } else { "failed" };
    outcome.result = result.result.clone();
    outcome.error = result.error.clone();
}

fn print(outcomes: &[Outcome], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&outcomes);
    }
    let mut table = Table::new(["WORKER", "COMMAND", "STATUS", "DETAIL"]);
    for outcome in outcomes {
        let detail = match (&outcome.error, &outcome.result) {
            (Some(error), _) => error.clone(),
            (None, Some(serde_json::Value::String(text))) => text.clone(),
            (None, Some(value)) => value.to_string(),
            (None, None) => String::new(),
        };
        table.row(vec![
            outcome.worker.clone(),
            outcome.id.clone().unwrap_or_else(|| "-".into()),
            outcome.status.to_string(),
            cell(&detail, 80),
        ]);
    }
    print_text(table)
}
