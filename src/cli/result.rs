//! `panebus result ID [--wait S]`: prints the stored result of a command.
//!
//! Results are kept for `PANEBUS_RESULT_TTL` after the command finishes. Without `--wait` a
//! missing result is exit 4 (not finished yet, or expired); with `--wait S` it waits up to S
//! seconds (exit 8 when nothing came). A result that says the command failed is exit 7, as
//! with `dispatch --wait`.

use std::time::Duration;

use clap::Args;

use super::dispatch::report;
use super::exit::Failure;
use super::progress::Spinner;
use super::Context;
use crate::admin::Admin;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  id=$(panebus dispatch %1 ping) && panebus result \"$id\" --wait 30
  panebus result 01JDQ1Z3V8K7R5M2N4P6Q8S0T2 --json

Prints the result value (--json: the whole record {command_id, worker, ok, result, error,
started_ms, finished_ms, attempt}). Exit codes: 0 ok, 4 no such result, 7 the command
failed, 8 --wait ran out.")]
pub struct ResultArgs {
    /// The command id printed by `panebus dispatch`.
    pub id: String,

    /// Wait up to this many seconds for the result to arrive.
    #[arg(long, value_name = "S")]
    pub wait: Option<u64>,
}

pub async fn run(args: ResultArgs, ctx: Context) -> anyhow::Result<()> {
    let admin = Admin::connect(&ctx.config).await?;
    let result = match args.wait {
        Some(secs) => {
            let wait = Duration::from_secs(secs);
            let spinner = Spinner::start(format!("waiting for the result of {}", args.id));
            let result = admin.wait_result(&args.id, wait).await?;
            drop(spinner);
            result.ok_or_else(|| Failure::WaitTimedOut {
                id: args.id.clone(),
                waited: wait,
            })?
        }
        None => admin
            .result(&args.id)
            .await?
            .ok_or_else(|| Failure::NotFound {
                what: format!("no result for command {}", args.id),
                hint: "it has not finished yet or its result expired (PANEBUS_RESULT_TTL); \
                   wait for it with `--wait 60`, or look in `panebus dlq list`"
                    .into(),
            })?,
    };
    report(&result, ctx.json)
}
