//! `panebus release PANE`: lift a pane's quarantine. Works without a coordinator (it only
//! changes Redis); the coordinator then treats the dead pane as a fresh failure and
//! respawns it at once.

use anyhow::bail;
use clap::Args;
use serde_json::json;

use crate::bus::Bus;
use crate::config::Config;
use crate::coordinator::history;
use crate::schema::{Event, EventKind};

/// Options of `panebus release`.
#[derive(Debug, Clone, Args)]
pub struct ReleaseArgs {
    /// The pane: `%3` on this node, or a worker id `node/%3`
    pub pane: String,
}

/// Lifts the quarantine and emits `pane_released`.
pub async fn run(args: ReleaseArgs, config: Config) -> anyhow::Result<()> {
    let worker = config.resolve_worker(&args.pane);
    let bus = Bus::connect(&config).await?;
    let diagnostic = history::diagnostic(&bus, &worker).await?;
    if !history::release(&bus, &worker).await? {
        bail!("{worker} is not quarantined; `panebus status` lists quarantined panes");
    }
    let reason = diagnostic.map(|d| d.reason).unwrap_or_default();
    bus.emit(&Event::new(
        EventKind::PaneReleased,
        &worker,
        json!({"pane": worker.rsplit('/').next(), "was": reason}),
    ))
    .await?;
    println!("released {worker} (was: {reason})");
    Ok(())
}
