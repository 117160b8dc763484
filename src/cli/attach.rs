//! `panebus attach SESSION`: run the coordinator of one tmux session (see
//! [`crate::coordinator::supervisor`]).

use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::tmux_server::TmuxServerArgs;
use crate::config::{parse_duration, Config};
use crate::coordinator::policy::PolicyConfig;
use crate::coordinator::supervisor::{self, AttachOptions, OnTmuxExit};

/// What to do when the tmux server or session goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnTmuxExitArg {
    /// Stop with exit status 1 and a message saying so
    Exit,
    /// Keep the lease and attach again once the session exists
    Wait,
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration("duration", text).map_err(|e| e.to_string())
}

/// Options of `panebus attach`.
#[derive(Debug, Clone, Args)]
pub struct AttachArgs {
    /// The tmux session to supervise
    pub session: String,

    #[command(flatten)]
    pub tmux: TmuxServerArgs,

    /// Also manage panes whose workers registered before the coordinator started
    #[arg(long)]
    pub adopt: bool,

    /// When tmux goes away: exit with status 1, or wait and attach again
    #[arg(long, value_enum, default_value = "exit")]
    pub on_tmux_exit: OnTmuxExitArg,

    /// Leader lease time; a standby takes over at most this long after the leader dies
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub lease_ttl: Duration,

    /// How often to reconcile, check heartbeats and serve `panebus restart`
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = duration)]
    pub check_interval: Duration,

    /// Backoff before the second respawn of a crash streak (doubles each time)
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = duration)]
    pub backoff_base: Duration,

    /// Longest backoff between two respawns
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration)]
    pub backoff_max: Duration,

    /// A pane that ran this long before failing starts a new crash streak
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration)]
    pub stable_after: Duration,

    /// Time a (re)started worker has to register before a missing heartbeat counts
    /// [default: PANEBUS_HEARTBEAT_TTL]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub heartbeat_grace: Option<Duration>,
}

/// The policy settings from the flags and the configuration.
pub fn policy(
    config: &Config,
    backoff_base: Duration,
    backoff_max: Duration,
    stable_after: Duration,
    heartbeat_grace: Option<Duration>,
) -> PolicyConfig {
    PolicyConfig {
        respawn_limit: config.respawn_limit,
        respawn_window: config.respawn_window,
        backoff_base,
        backoff_cap: backoff_max.max(backoff_base),
        stable_after,
        heartbeat_grace: heartbeat_grace.unwrap_or(config.heartbeat_ttl),
        ..PolicyConfig::default()
    }
}

/// Runs the coordinator until SIGINT/SIGTERM/SIGHUP (exit 0) or a fatal error.
pub async fn run(args: AttachArgs, mut config: Config) -> anyhow::Result<()> {
    config.node = args.tmux.node(&config);
    let opts = AttachOptions {
        server: args.tmux.server(),
        session: args.session.clone(),
        adopt: args.adopt,
        on_tmux_exit: match args.on_tmux_exit {
            OnTmuxExitArg::Exit => OnTmuxExit::Exit,
            OnTmuxExitArg::Wait => OnTmuxExit::Wait,
        },
        lease_ttl: args.lease_ttl,
        tick: args.check_interval,
        policy: policy(
            &config,
            args.backoff_base,
            args.backoff_max,
            args.stable_after,
            args.heartbeat_grace,
        ),
    };
    let stop = crate::coordinator::stop::on_signals().context("cannot install signal handlers")?;
    supervisor::run(&config, &opts, &stop)
        .await
        .with_context(|| format!("coordinator of tmux session {:?}", args.session))
}
