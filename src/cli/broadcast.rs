//! `panebus broadcast TYPE`: one command to every live worker of the bus.
//!
//! Same rules as `dispatch-role` without the role filter: every registered worker with a
//! fresh heartbeat that is not quarantined, on every node, gets its own command.

use clap::Args;

use super::exit::Failure;
use super::fanout::{self, CommandArgs};
use super::Context;
use crate::admin::Admin;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  panebus broadcast ping
  panebus broadcast ping --wait
  panebus broadcast shutdown

Prints one line per worker: WORKER COMMAND STATUS DETAIL (--json: an array of
{worker, id, status, result, error}). Exit codes as for `panebus dispatch`; 4 when the
bus has no live worker.")]
pub struct BroadcastArgs {
    #[command(flatten)]
    pub fanout: CommandArgs,
}

pub async fn run(args: BroadcastArgs, ctx: Context) -> anyhow::Result<()> {
    let admin = Admin::connect(&ctx.config).await?;
    let targets = fanout::live_targets(&admin, None).await?;
    if targets.is_empty() {
        return Err(Failure::NotFound {
            what: format!("no live worker on bus `{}`", ctx.config.namespace),
            hint: "see `panebus panes` and start workers with `panebus worker --role ROLE` in tmux panes".into(),
        }
        .into());
    }
    fanout::run(args.fanout, ctx, admin, targets).await
}
