//! `panebus status`: the whole bus at a glance.
//!
//! Workers counted by role and condition (alive, dead, quarantined), the commands waiting
//! and in flight, the DLQ size and how many events were written recently, followed by every
//! quarantined pane with the diagnostic the coordinator recorded (exit status, last output,
//! the command it was running), since those need a person.

use clap::Args;

use super::table::{cell, human_age, human_duration, now_ms, Table};
use super::{print_json, print_text, Context};
use crate::admin::{Admin, StatusReport};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  panebus status
  panebus status --json | jq .workers

JSON fields: namespace, redis_url (password redacted), node, workers {total, alive, dead,
quarantined}, roles [{role, total, alive, dead, quarantined, queued, in_flight}], queued,
in_flight, dlq_size, events {recent, window_ms, at_least}, quarantined [{worker, role, diagnostic
{since_ms, reason, exit, last_lines, command_in_flight}}].")]
pub struct StatusArgs {}

pub async fn run(_args: StatusArgs, ctx: Context) -> anyhow::Result<()> {
    let admin = Admin::connect(&ctx.config).await?;
    let report = admin.status().await?;
    if ctx.json {
        return print_json(&report);
    }
    print_text(render(&report))
}

fn render(report: &StatusReport) -> String {
    let mut text = format!(
        "bus {} on {} (this node: {})\n\n",
        report.namespace, report.redis_url, report.node
    );
    let w = &report.workers;
    text.push_str(&format!(
        "workers   {} total: {} alive, {} dead, {} quarantined\n",
        w.total, w.alive, w.dead, w.quarantined
    ));
    text.push_str(&format!(
        "commands  {} queued, {} in flight\n",
        report.queued, report.in_flight
    ));
    text.push_str(&format!(
        "dlq       {} {}\n",
        report.dlq_size,
        if report.dlq_size == 1 {
            "entry"
        } else {
            "entries"
        }
    ));
    text.push_str(&format!(
        "events    {}{} in the last {}\n",
        if report.events.at_least {
            "at least "
        } else {
            ""
        },
        report.events.recent,
        human_duration(std::time::Duration::from_millis(report.events.window_ms)),
    ));
    if !report.roles.is_empty() {
        let mut roles = Table::new([
            "ROLE",
            "TOTAL",
            "ALIVE",
            "DEAD",
            "QUARANTINED",
            "QUEUED",
            "IN FLIGHT",
        ]);
        for role in &report.roles {
            roles.row(vec![
                cell(&role.role, 24),
                role.counts.total.to_string(),
                role.counts.alive.to_string(),
                role.counts.dead.to_string(),
                role.counts.quarantined.to_string(),
                role.queued.to_string(),
                role.in_flight.to_string(),
            ]);
        }
        text.push('\n');
        text.push_str(&roles.to_string());
    }
    if !report.quarantined.is_empty() {
        text.push_str("\nquarantined (lift with `panebus release PANE` once fixed):\n");
        let now = now_ms();
        for pane in &report.quarantined {
            let d = &pane.diagnostic;
            text.push_str(&format!("  {} (role {})\n", pane.worker, pane.role));
            text.push_str(&format!("    since       {}\n", human_age(d.since_ms, now)));
            text.push_str(&format!("    reason      {}\n", cell(&d.reason, 160)));
            if !d.exit.is_empty() {
                text.push_str(&format!("    exit        {}\n", cell(&d.exit, 160)));
            }
            if !d.command_in_flight.is_empty() {
                text.push_str(&format!(
                    "    command     {}\n",
                    cell(&d.command_in_flight, 160)
                ));
            }
            let mut label = "last lines";
            for line in d.last_lines.lines().filter(|l| !l.trim().is_empty()) {
                text.push_str(&format!("    {label:<11} | {}\n", cell(line, 160)));
                label = "";
            }
        }
    }
    text
}
