//! `panebus restart PANE`: respawn a managed pane now, through the coordinator that leads
//! its session (see [`crate::coordinator::requests`]). Does not count toward quarantine and
//! lifts one if present.

use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::Args;

use crate::bus::Bus;
use crate::config::{parse_duration, Config};
use crate::coordinator::lease::Lease;
use crate::coordinator::{managed, requests};

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration("duration", text).map_err(|e| e.to_string())
}

/// Options of `panebus restart`.
#[derive(Debug, Clone, Args)]
pub struct RestartArgs {
    /// The pane: `%3` on this node, or a worker id `node/%3`
    pub pane: String,

    /// How long to wait for the coordinator to carry it out
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = duration)]
    pub timeout: Duration,
}

/// Sends the restart request and prints the coordinator's answer.
pub async fn run(args: RestartArgs, config: Config) -> anyhow::Result<()> {
    let worker = config.resolve_worker(&args.pane);
    let node = worker
        .split_once('/')
        .map(|(n, _)| n)
        .unwrap_or(&config.node);
    let bus = Bus::connect(&config).await?;
    let session = match managed::load(&bus, &worker).await? {
        Some(m) => m.session,
        None => match bus.worker_info(&worker).await?.and_then(|i| i.session) {
            Some(s) => s,
            None => bail!(
                "{worker} is not a pane managed by a coordinator; check the id with \
                 `panebus panes`, and start `panebus attach SESSION` for its session"
            ),
        },
    };
    if Lease::holder(&bus, node, &session).await?.is_none() {
        bail!(
            "no coordinator is running for tmux session {session:?} on node {node}; start one \
             with `panebus attach {session}` (or respawn by hand: `tmux respawn-pane -k -t {}`)",
            worker.rsplit('/').next().unwrap_or(&args.pane)
        );
    }
    let id = requests::send(&bus, node, &session, "restart", &worker).await?;
    match requests::wait_reply(&bus, &id, args.timeout).await? {
        Some(r) if r.ok => {
            println!("{}", r.message);
            Ok(())
        }
        Some(r) => Err(anyhow!("{}", r.message)),
        None => bail!(
            "the coordinator of session {session:?} did not answer within {}; it may be busy \
             or stuck: check its log, then try again",
            humantime::format_duration(args.timeout)
        ),
    }
}
