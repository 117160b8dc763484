//! `panebus dlq list|show|retry|purge`: the dead-letter queue.
//!
//! Commands land here when they fail, time out, have no handler, are not valid commands at
//! all, or were delivered `PANEBUS_MAX_ATTEMPTS` times. Each entry keeps the original
//! command, the error, the worker and the time. `retry` puts the command back on its
//! worker's queue (a fresh attempt count) and removes the entry; `purge` deletes entries.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use serde_json::json;

use super::table::{cell, human_age, human_time, now_ms, Table};
use super::{print_json, print_text, Context};
use crate::admin::Admin;
use crate::bus::RetryReport;
use crate::schema::{DlqCommand, DlqEntry};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  panebus dlq list
  panebus dlq show 01JDQ1Z3V8K7R5M2N4P6Q8S0T2
  panebus dlq retry 01JDQ1Z3V8K7R5M2N4P6Q8S0T2
  panebus dlq retry --all
  panebus dlq purge --yes")]
pub struct DlqArgs {
    #[command(subcommand)]
    pub command: DlqCommandArgs,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommandArgs {
    /// List entries, newest first.
    #[command(after_help = "\
Examples:
  panebus dlq list
  panebus dlq list --limit 5 --json | jq -r '.[].error'

Columns: ENTRY AGE WORKER TYPE REASON ERROR. REASON is failed, timeout, unknown_type,
poison (not a valid command) or attempts_exhausted.")]
    List {
        /// Show at most N entries.
        #[arg(long, value_name = "N", default_value_t = 50, value_parser = super::events::redis_count())]
        limit: usize,
    },
    /// Show one entry with its full command.
    #[command(after_help = "\
Examples:
  panebus dlq show 01JDQ1Z3V8K7R5M2N4P6Q8S0T2
  panebus dlq show 01JDQ1Z3V8K7R5M2N4P6Q8S0T2 --json | jq .command.payload")]
    Show {
        /// Entry id from `panebus dlq list`.
        id: String,
    },
    /// Put commands back on their worker's queue and remove their entries.
    #[command(after_help = "\
Examples:
  panebus dlq retry 01JDQ1Z3V8K7R5M2N4P6Q8S0T2
  panebus dlq retry --all

Prints the id of each requeued command. Entries whose command is not valid JSON (reason
poison) cannot be retried; inspect them with `dlq show` and purge them.")]
    Retry {
        /// Entry id from `panebus dlq list`.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Retry every entry.
        #[arg(long)]
        all: bool,
    },
    /// Delete every entry.
    #[command(after_help = "\
Examples:
  panebus dlq purge          # asks for confirmation on a terminal
  panebus dlq purge --yes    # in scripts")]
    Purge {
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(long, short)]
        yes: bool,
    },
}

pub async fn run(args: DlqArgs, ctx: Context) -> anyhow::Result<()> {
    let admin = Admin::connect(&ctx.config).await?;
    match args.command {
        DlqCommandArgs::List { limit } => list(&admin, limit, ctx.json).await,
        DlqCommandArgs::Show { id } => show(&admin, &id, ctx.json).await,
        DlqCommandArgs::Retry { id, all } => retry(&admin, id, all, ctx.json).await,
        DlqCommandArgs::Purge { yes } => purge(&admin, yes, ctx.json).await,
    }
}

async fn list(admin: &Admin, limit: usize, json: bool) -> anyhow::Result<()> {
    let entries = admin.dlq_list(limit).await?;
    if json {
        return print_json(&entries);
    }
    if entries.is_empty() {
        return print_text("the dead-letter queue is empty\n");
    }
    let now = now_ms();
    let mut table = Table::new(["ENTRY", "AGE", "WORKER", "TYPE", "REASON", "ERROR"]);
    for entry in &entries {
        table.row(vec![
            entry.id.clone(),
            human_age(entry.ts_ms, now),
            entry.worker.clone(),
            command_type(&entry.command),
            entry.reason.to_string(),
            cell(&entry.error, 60),
        ]);
    }
    let total = admin.dlq_len().await?;
    print_text(table)?;
    if total > entries.len() as u64 {
        print_text(format_args!(
            "({} of {total} entries shown; use --limit {total} to see all)\n",
            entries.len()
        ))?;
    }
    Ok(())
}

fn command_type(command: &DlqCommand) -> String {
    match command {
        DlqCommand::Parsed(command) => cell(&command.kind, 24),
        DlqCommand::Raw(_) => "(invalid)".into(),
    }
}

async fn show(admin: &Admin, id: &str, json: bool) -> anyhow::Result<()> {
    let entry = admin.dlq_show(id).await?;
    if json {
        return print_json(&entry);
    }
    print_text(describe(&entry))
}

fn describe(entry: &DlqEntry) -> String {
    let command = match &entry.command {
        DlqCommand::Parsed(command) => serde_json::to_string_pretty(command).unwrap_or_default(),
        DlqCommand::Raw(raw) => format!("(not a valid command, kept as received)\n{raw}"),
    };
    format!(
        "entry:   {}\ntime:    {} ({})\nworker:  {}\nreason:  {}\nerror:   {}\ncommand:\n{}\n",
        entry.id,
        human_time(entry.ts_ms),
        human_age(entry.ts_ms, now_ms()),
        entry.worker,
        entry.reason,
        entry.error,
        command
    )
}

async fn retry(admin: &Admin, id: Option<String>, all: bool, json: bool) -> anyhow::Result<()> {
    let report = if all {
        admin.dlq_retry_all().await?
    } else {
        let id = id.context("give an entry id or --all")?;
        RetryReport {
            retried: vec![admin.dlq_retry(&id).await?],
            failed: Vec::new(),
        }
    };
    if json {
        let retried: Vec<_> = report
            .retried
            .iter()
            .map(|r| json!({ "entry": r.entry_id, "id": r.command_id, "worker": r.worker }))
            .collect();
        let failed: Vec<_> = report
            .failed
            .iter()
            .map(|(entry, err)| json!({ "entry": entry, "error": err.to_string() }))
            .collect();
        print_json(&json!({ "retried": retried, "failed": failed }))?;
    } else if report.retried.is_empty() && report.failed.is_empty() {
        print_text("the dead-letter queue is empty: nothing to retry\n")?;
    } else if !report.retried.is_empty() {
        let mut table = Table::new(["ENTRY", "COMMAND", "WORKER"]);
        for r in &report.retried {
            table.row(vec![
                r.entry_id.clone(),
                r.command_id.clone(),
                r.worker.clone(),
            ]);
        }
        print_text(table)?;
    }
    let failed = report.failed.len();
    match report.failed.into_iter().next() {
        None => Ok(()),
        Some((entry, err)) => Err(anyhow::Error::from(err).context(format!(
            "{failed} entries could not be retried and stay in the DLQ; first: {entry}"
        ))),
    }
}

async fn purge(admin: &Admin, yes: bool, json: bool) -> anyhow::Result<()> {
    let size = admin.dlq_len().await?;
    if size > 0 && !yes {
        // Read the answer off the runtime thread so that Ctrl-C still ends the command.
        tokio::task::spawn_blocking(move || confirm(size))
            .await
            .context("the confirmation prompt failed")??;
    }
    let purged = admin.dlq_purge().await?;
    if json {
        return print_json(&json!({ "purged": purged }));
    }
    print_text(format_args!(
        "purged {purged} entries from the dead-letter queue\n"
    ))
}

/// Asks on the terminal; refuses when nobody can answer.
fn confirm(size: u64) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("refusing to purge {size} dead-letter entries without confirmation — pass --yes");
    }
    let mut stderr = std::io::stderr().lock();
    write!(stderr, "purge {size} dead-letter entries? [y/N] ")?;
    stderr.flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES") {
        Ok(())
    } else {
        bail!("purge cancelled: nothing was deleted")
    }
}
