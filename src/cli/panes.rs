//! `panebus panes [--role R]`: one line per registered worker.
//!
//! STATE is the worker's own state (`idle`, `busy`, `stopping`) unless the bus knows
//! better: `dead` when its heartbeat has expired, `quarantined` when the coordinator gave up
//! respawning it. `--json` prints the array of records described in the README.

use clap::Args;

use super::table::{cell, human_duration, Table};
use super::{print_json, print_text, Context};
use crate::admin::{Admin, PaneView};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  panebus panes
  panebus panes --role processor
  panebus panes --json | jq -r '.[] | select(.alive | not) | .id'

Columns: WORKER ROLE STATE ALIVE HEARTBEAT QUEUE PROCESSING GEN COMMAND (HEARTBEAT is the
age of the last heartbeat, COMMAND the command being run).")]
pub struct PanesArgs {
    /// Only workers started with this role.
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,
}

pub async fn run(args: PanesArgs, ctx: Context) -> anyhow::Result<()> {
    let admin = Admin::connect(&ctx.config).await?;
    let panes = admin.panes(args.role.as_deref()).await?;
    if ctx.json {
        return print_json(&panes);
    }
    if panes.is_empty() {
        let (scope, role) = match &args.role {
            Some(role) => (format!("with role `{role}` "), role.as_str()),
            None => (String::new(), "ROLE"),
        };
        return print_text(format_args!(
            "no workers {scope}registered on bus `{}` — start one in a tmux pane with `panebus worker --role {role}`\n",
            ctx.config.namespace
        ));
    }
    print_text(table(&panes))
}

/// The human table of `panes` (also used by `status`).
pub fn table(panes: &[PaneView]) -> Table {
    let mut table = Table::new([
        "WORKER",
        "ROLE",
        "STATE",
        "ALIVE",
        "HEARTBEAT",
        "QUEUE",
        "PROCESSING",
        "GEN",
        "COMMAND",
    ]);
    for pane in panes {
        table.row(vec![
            pane.info.id.clone(),
            cell(&pane.info.role, 24),
            pane.state().to_string(),
            if pane.alive { "yes" } else { "no" }.to_string(),
            pane.heartbeat_age_ms
                .map(|ms| {
                    format!(
                        "{} ago",
                        human_duration(std::time::Duration::from_millis(ms))
                    )
                })
                .unwrap_or_else(|| "-".into()),
            pane.queue_depth.to_string(),
            pane.processing.to_string(),
            pane.info.generation.to_string(),
            pane.info
                .current_command
                .clone()
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    table
}
