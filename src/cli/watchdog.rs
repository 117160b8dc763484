//! `panebus watchdog`: heartbeat-only supervision of this node's pane workers (see
//! [`crate::coordinator::watchdog`]).

use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::attach::policy;
use super::tmux_server::TmuxServerArgs;
use crate::config::{parse_duration, Config};
use crate::coordinator::watchdog::{self, WatchdogOptions};

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration("duration", text).map_err(|e| e.to_string())
}

/// Options of `panebus watchdog`.
#[derive(Debug, Clone, Args)]
pub struct WatchdogArgs {
    /// Seconds (or e.g. `500ms`) between two checks of every heartbeat
    #[arg(long, value_name = "DURATION", default_value = "30", value_parser = duration)]
    pub check_interval: Duration,

    #[command(flatten)]
    pub tmux: TmuxServerArgs,

    /// Backoff before the second respawn of a crash streak (doubles each time)
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = duration)]
    pub backoff_base: Duration,

    /// Longest backoff between two respawns
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration)]
    pub backoff_max: Duration,

    /// Time a respawned worker has to register before a missing heartbeat counts
    /// [default: PANEBUS_HEARTBEAT_TTL]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub heartbeat_grace: Option<Duration>,
}

/// Runs the watchdog until SIGINT/SIGTERM/SIGHUP.
pub async fn run(args: WatchdogArgs, mut config: Config) -> anyhow::Result<()> {
    config.node = args.tmux.node(&config);
    let opts = WatchdogOptions {
        server: args.tmux.server(),
        check_interval: args.check_interval,
        policy: policy(
            &config,
            args.backoff_base,
            args.backoff_max,
            Duration::from_secs(60),
            args.heartbeat_grace,
        ),
    };
    let stop = crate::coordinator::stop::on_signals().context("cannot install signal handlers")?;
    watchdog::run(&config, &opts, &stop)
        .await
        .context("watchdog")
}
