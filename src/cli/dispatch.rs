//! `panebus dispatch TARGET TYPE`: sends one command to one worker.
//!
//! TARGET is a worker id (`devbox/%3`) or a pane on this node (`%3`, resolved with
//! `PANEBUS_NODE`). The worker must be registered unless `--force` is given (which queues
//! the command for a worker that has not started yet). Without `--wait` the command id is
//! printed and the command runs in the background; with `--wait` the result is printed and
//! the exit code says how it went (0 ok, 7 failed, 8 no result in time).

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use super::exit::Failure;
use super::fanout::CommandArgs;
use super::progress::Spinner;
use super::{payload, print_json, print_text, Context};
use crate::admin::{Admin, PaneView};
use crate::config::Config;
use crate::schema::{Command, CommandResult};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  panebus dispatch %1 ping
  panebus dispatch %1 ping --wait
  panebus dispatch devbox/%3 prompt --payload '{\"text\": \"Fix the failing tests\", \"context\": {\"working_dir\": \"/src/app\"}}'
  panebus dispatch %1 prompt --payload @task.json --timeout 600000 --wait --wait-timeout 660
  panebus dispatch %7 ping --force      # queue it before the worker in %7 has started

Output: the command id (or with --json {\"id\", \"worker\", \"type\"}); with --wait the
result instead (--json: the full result object). Exit codes: 0 ok, 3 Redis unreachable,
4 unknown worker, 5 queue full, 6 invalid payload, 7 command failed, 8 wait timed out.")]
pub struct DispatchArgs {
    /// Worker id (`node/%3`) or pane id on this node (`%3`).
    pub target: String,

    #[command(flatten)]
    pub command: CommandArgs,

    /// Queue the command even if no worker with this id is registered.
    #[arg(long)]
    pub force: bool,
}

pub async fn run(args: DispatchArgs, ctx: Context) -> anyhow::Result<()> {
    let payload = payload::read(args.command.payload.as_deref())?;
    let worker = ctx.config.resolve_worker(&args.target);
    let admin = Admin::connect(&ctx.config).await?;
    if let Some(pane) = admin.pane(&worker).await? {
        warn_if_unavailable(&pane);
    }
    let mut command = admin.new_command(&args.command.kind, payload);
    command.timeout_ms = args.command.timeout;
    command.reply = args.command.wait;
    admin.enqueue(&worker, &command, args.force).await?;
    if !args.command.wait {
        return if ctx.json {
            print_json(&json!({ "id": command.id, "worker": worker, "type": command.kind }))
        } else {
            print_text(format_args!("{}\n", command.id))
        };
    }
    let wait = wait_limit(args.command.wait_timeout, args.command.timeout, &ctx.config);
    let result = wait_for(&admin, &command, &worker, wait).await?;
    report(&result, ctx.json)
}

/// A registered worker that is dead or quarantined keeps its queue: the command waits there
/// until the worker is back, which the sender should know.
fn warn_if_unavailable(pane: &PaneView) {
    let why = match pane.state() {
        "quarantined" => "is quarantined (see `panebus status`; lift it with `panebus release`)",
        "dead" => "has no heartbeat (dead or hung); the watchdog or coordinator respawns it",
        _ => return,
    };
    eprintln!(
        "panebus: warning: worker {} {why} — the command waits in its queue until the worker is back",
        pane.id()
    );
}

/// How long `--wait` waits: `--wait-timeout` seconds, else the command's run limit
/// (`--timeout` or `PANEBUS_COMMAND_TIMEOUT`) plus 30 s for time spent in the queue; at
/// most [`LONGEST_WAIT`].
pub fn wait_limit(
    wait_timeout_s: Option<u64>,
    run_timeout_ms: Option<u64>,
    config: &Config,
) -> Duration {
    let limit = match wait_timeout_s {
        Some(secs) => Duration::from_secs(secs),
        None => {
            let run_limit = run_timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(config.command_timeout);
            run_limit.saturating_add(Duration::from_secs(30))
        }
    };
    limit.min(LONGEST_WAIT)
}

/// The longest wait (100 years): `u64::MAX` seconds or milliseconds mean "as long as it
/// takes", and a deadline that far away would not fit in an `Instant`.
const LONGEST_WAIT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Waits for the result of `command`, with a spinner when interactive.
async fn wait_for(
    admin: &Admin,
    command: &Command,
    worker: &str,
    wait: Duration,
) -> anyhow::Result<CommandResult> {
    let spinner = Spinner::start(format!("waiting for {} on {worker}", command.id));
    let result = admin
        .wait_result(&command.id, wait)
        .await
        .with_context(|| format!("while waiting for the result of command {}", command.id))?;
    drop(spinner);
    result.ok_or_else(|| {
        Failure::WaitTimedOut {
            id: command.id.clone(),
            waited: wait,
        }
        .into()
    })
}

/// Prints a result (the value itself for people, the whole record with `--json`) and turns
/// a failed command into exit code 7.
pub fn report(result: &CommandResult, json: bool) -> anyhow::Result<()> {
    if json {
        print_json(result)?;
    } else if result.ok {
        print_text(format_args!("{}\n", human_value(result.result.as_ref())))?;
    }
    if result.ok {
        return Ok(());
    }
    Err(Failure::CommandFailed {
        id: result.command_id.clone(),
        worker: result.worker.clone(),
        error: result
            .error
            .clone()
            .unwrap_or_else(|| "no error message".into()),
    }
    .into())
}

/// A result value for people: strings as they are, other JSON pretty-printed, `ok` for none.
pub fn human_value(value: Option<&serde_json::Value>) -> String {
    match value {
        None | Some(serde_json::Value::Null) => "ok".to_string(),
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => serde_json::to_string_pretty(other).unwrap_or_else(|_| other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_for_people() {
        assert_eq!(human_value(None), "ok");
        assert_eq!(human_value(Some(&json!("pong"))), "pong");
        assert_eq!(human_value(Some(&json!({"a": 1}))), "{\n  \"a\": 1\n}");
    }
}
