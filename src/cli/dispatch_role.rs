//! `panebus dispatch-role ROLE TYPE`: one command to every live worker with a role.
//!
//! "Live" means registered with a fresh heartbeat and not quarantined, on any node of the
//! bus; each worker gets its own command (own id, own result). A role with no live worker
//! is an error (exit 4), so a typo in the role does not silently do nothing.

use clap::Args;

use super::exit::Failure;
use super::fanout::{self, CommandArgs};
use super::Context;
use crate::admin::Admin;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  panebus dispatch-role processor ping
  panebus dispatch-role reviewer prompt --payload '{\"text\": \"Review the last commit\"}' --wait
  panebus dispatch-role processor ping --wait --json | jq '.[] | select(.status != \"ok\")'

Prints one line per worker: WORKER COMMAND STATUS DETAIL (--json: an array of
{worker, id, status, result, error}). Exit codes as for `panebus dispatch`; 4 when no
live worker has the role.")]
pub struct DispatchRoleArgs {
    /// The role workers were started with (`panebus worker --role ROLE`).
    pub role: String,

    #[command(flatten)]
    pub fanout: CommandArgs,
}

pub async fn run(args: DispatchRoleArgs, ctx: Context) -> anyhow::Result<()> {
    let admin = Admin::connect(&ctx.config).await?;
    let targets = fanout::live_targets(&admin, Some(&args.role)).await?;
    if targets.is_empty() {
        return Err(Failure::NotFound {
            what: format!(
                "no live worker with role `{}` on bus `{}`",
                args.role, ctx.config.namespace
            ),
            hint: format!(
                "see `panebus panes --role {}` and start one with `panebus worker --role {}`",
                args.role, args.role
            ),
        }
        .into());
    }
    fanout::run(args.fanout, ctx, admin, targets).await
}
