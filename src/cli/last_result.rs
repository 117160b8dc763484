//! `panebus last-result PANE`: the result of the newest finished command of one worker.
//!
//! The tmux plugin's result key shows it in a popup. The newest `command_completed` /
//! `command_failed` event of the worker in the recent event stream names the command; its
//! stored result is printed like `panebus result` prints one (value for people, the
//! record with `--json`; exit 7 when the command failed, 4 when there is none).

use clap::Args;

use super::dispatch::report;
use super::exit::Failure;
use super::Context;
use crate::bus::Bus;
use crate::schema::EventKind;

/// How far back in the event stream to look for the worker's last command.
const EVENTS_SCANNED: usize = 1000;

/// `panebus last-result` options.
#[derive(Debug, Clone, Args)]
pub struct LastResultArgs {
    /// Pane (`%3`) or worker id (`node/%3`).
    #[arg(value_name = "PANE")]
    pub target: String,
}

/// Runs `panebus last-result`.
pub async fn run(args: LastResultArgs, ctx: Context) -> anyhow::Result<()> {
    let worker = ctx.config.resolve_worker(&args.target);
    let bus = Bus::connect(&ctx.config).await?;
    let events = bus.recent_events(EVENTS_SCANNED).await?;
    let last = events.iter().rev().find_map(|record| {
        let event = &record.event;
        let finished = matches!(
            event.kind,
            EventKind::CommandCompleted | EventKind::CommandFailed
        );
        (finished && event.worker == worker)
            .then(|| event.command_id.clone())
            .flatten()
    });
    let Some(command_id) = last else {
        return Err(Failure::NotFound {
            what: format!("no finished command of {worker} in the last {EVENTS_SCANNED} events"),
            hint: "dispatch one first, e.g. `panebus dispatch PANE ping --wait`".into(),
        }
        .into());
    };
    let result = bus
        .result(&command_id)
        .await?
        .ok_or_else(|| Failure::NotFound {
            what: format!("the result of {command_id} (last command of {worker}) expired"),
            hint: "results are kept for PANEBUS_RESULT_TTL".into(),
        })?;
    if !ctx.json {
        println!(
            "command {command_id} on {worker}: {}",
            if result.ok { "ok" } else { "failed" }
        );
    }
    report(&result, ctx.json)
}
