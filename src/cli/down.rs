//! `panebus down [SESSION]`: stop what `panebus up` started, and nothing else.
//!
//! Kills the recorded session (only if it is still the one `up` created) and stops the
//! managed Redis when no other live `up` session uses it. A session `up` did not start is
//! refused with a hint; a Redis the user runs is never stopped. See [`crate::up::down`].

use anyhow::Context;
use clap::Args;

use super::tmux_server::{current_server, TmuxServerArgs};
use crate::config::Config;
use crate::up::layout_file::DEFAULT_SESSION;
use crate::up::paths::Paths;
use crate::up::DownServer;

/// `panebus down` options.
#[derive(Debug, Clone, Args)]
pub struct DownArgs {
    /// Session to stop.
    #[arg(default_value = DEFAULT_SESSION)]
    pub session: String,
    #[command(flatten)]
    pub tmux: TmuxServerArgs,
}

/// Runs `panebus down`.
pub async fn run(args: DownArgs, _config: &Config) -> anyhow::Result<()> {
    let paths = Paths::from_env()?;
    let server = match args.tmux.explicit() {
        Some(server) => DownServer::Explicit(server),
        None => DownServer::Any {
            fallback: current_server(),
        },
    };
    let session = args.session.clone();
    let outcome = tokio::task::spawn_blocking(move || crate::up::down(&session, &server, &paths))
        .await
        .context("the session stopper thread failed")??;
    if outcome.killed_session {
        println!("panebus down: killed session {}", args.session);
    } else {
        println!(
            "panebus down: session {} was already gone; removed its record",
            args.session
        );
    }
    if outcome.stopped_redis {
        println!("panebus down: stopped the managed redis-server");
    } else if !outcome.redis_users.is_empty() {
        println!(
            "panebus down: the managed redis-server keeps running for: {}",
            outcome.redis_users.join(", ")
        );
    }
    Ok(())
}
