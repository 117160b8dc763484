//! `panebus events [--count N] [--follow] [--type T] [--worker W]`: the event stream.
//!
//! Prints the last N matching events, oldest first; `--follow` then keeps printing new ones
//! as they are written until Ctrl-C. Human output is one aligned line per event (time, type,
//! worker, command, details); `--json` is JSON Lines, one event object per line, so it can
//! be piped into `jq` while following.

use std::fmt::Write as _;
use std::io::Write;

use anyhow::Context as _;
use clap::Args;

use super::table::{cell, human_time};
use super::Context;
use crate::admin::{Admin, EventFilter, StreamEvent};
use crate::schema::EventKind;

/// Parses a count that Redis takes as a signed 64-bit integer (`COUNT`, list ranges): a
/// larger one is a usage error (exit 2), not a Redis error after connecting.
pub fn redis_count() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(0..=i64::MAX as u64)
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  panebus events
  panebus events --count 100
  panebus events --follow --type command_failed --type pane_quarantined
  panebus events --worker %3 --json | jq -r .type

Event types: worker_started, worker_stopped, command_received, command_completed,
command_failed, command_requeued, command_dead_lettered, dlq_retried, dlq_purged,
pane_exited, pane_respawned, pane_quarantined, pane_released, heartbeat_missed,
layout_changed, coordinator_started, coordinator_stopped, lease_acquired, lease_lost and
workflow_* events. JSON fields: id (stream entry id), type, ts_ms, worker, command_id,
details.")]
pub struct EventsArgs {
    /// Show the last N matching events.
    #[arg(long, short = 'n', value_name = "N", default_value_t = 50, value_parser = redis_count())]
    pub count: usize,

    /// Keep printing new events as they arrive (Ctrl-C to stop).
    #[arg(long, short)]
    pub follow: bool,

    /// Only events of this type (repeat for several).
    #[arg(long = "type", value_name = "TYPE")]
    pub kinds: Vec<String>,

    /// Only events about this worker (`%3` or `node/%3`).
    #[arg(long, value_name = "WORKER")]
    pub worker: Option<String>,
}

pub async fn run(args: EventsArgs, ctx: Context) -> anyhow::Result<()> {
    let filter = EventFilter {
        kinds: args
            .kinds
            .iter()
            .map(|k| match k.parse::<EventKind>() {
                Ok(kind) => kind,
                Err(never) => match never {},
            })
            .collect(),
        worker: args.worker.as_deref().map(|w| ctx.config.resolve_worker(w)),
    };
    for kind in &filter.kinds {
        if let EventKind::Other(name) = kind {
            eprintln!(
                "panebus: warning: `{name}` is not an event type this version writes; \
                 see `panebus events --help` for the list"
            );
        }
    }
    let admin = Admin::connect(&ctx.config).await?;
    let (recent, cursor) = admin.recent_events(args.count, &filter).await?;
    print_events(&recent, ctx.json)?;
    if !args.follow {
        if recent.is_empty() && !ctx.json {
            eprintln!("no matching events on bus `{}`", ctx.config.namespace);
        }
        return Ok(());
    }
    let mut follower = admin.follow_events(cursor).await?;
    loop {
        let batch = follower.next().await?;
        let matching: Vec<StreamEvent> = batch
            .into_iter()
            .filter(|e| filter.matches(&e.event))
            .collect();
        print_events(&matching, ctx.json)?;
    }
}

fn print_events(events: &[StreamEvent], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for event in events {
        let line = if json {
            serde_json::to_string(event).context("cannot encode an event as JSON")?
        } else {
            human_line(event)
        };
        writeln!(out, "{line}").context("cannot write to stdout")?;
    }
    out.flush().context("cannot write to stdout")
}

/// One event for people: fixed-width columns so that followed output stays aligned.
pub fn human_line(event: &StreamEvent) -> String {
    let e = &event.event;
    let mut line = String::new();
    let worker = if e.worker.is_empty() { "-" } else { &e.worker };
    let command = e.command_id.as_deref().unwrap_or("-");
    let _ = write!(
        line,
        "{}  {:<22}  {:<16}  {:<26}",
        human_time(e.ts_ms),
        e.kind.as_str(),
        cell(worker, 40),
        command
    );
    let details = match &e.details {
        serde_json::Value::Object(map) if map.is_empty() => String::new(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    if !details.is_empty() {
        line.push_str("  ");
        line.push_str(&cell(&details, 200));
    }
    line.trim_end().to_string()
}
