//! `panebus up`: start a ready tmux session — workers by role, the coordinator, and a
//! private Redis when none is configured — then attach to it.
//!
//! The layout comes from `-f FILE`, else `./panebus.toml` if present, else `--workers`
//! panes of `--role`. The Redis is `PANEBUS_REDIS_URL` when set (it must answer), else
//! one answering at the default URL, else the managed one (`--managed-redis` skips the
//! probe of the default URL). The work is done by [`crate::up`]; this file turns flags
//! into its options and reports what was started.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::tmux_server::{current_server, TmuxServerArgs};
use crate::config::{Config, DEFAULT_REDIS_URL};
use crate::tmux::TmuxServerRef;
use crate::up::layout_file::{self, Layout, DEFAULT_ROLE, DEFAULT_SESSION};
use crate::up::paths::Paths;
use crate::up::session::{exact, Tmux};
use crate::up::{self as up_mod, RedisChoice, UpOptions, UpOutcome};

/// The layout file `up` reads from the current directory when `-f` is not given.
pub const DEFAULT_LAYOUT_FILE: &str = "panebus.toml";

/// `panebus up` options.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Session name [default: the layout file's [session] name, else `panebus`].
    #[arg(long, value_name = "NAME")]
    pub session: Option<String>,
    /// Worker panes when there is no layout file [default: 2].
    #[arg(long, value_name = "N")]
    pub workers: Option<u32>,
    /// Role of the workers when there is no layout file [default: worker].
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,
    /// Layout file [default: ./panebus.toml if it exists].
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Do not attach after starting (never attaches when not on a terminal).
    #[arg(long)]
    pub no_attach: bool,
    /// Use the private managed Redis even if one answers at the default URL.
    #[arg(long)]
    pub managed_redis: bool,
    #[command(flatten)]
    pub tmux: TmuxServerArgs,
}

/// Runs `panebus up`.
pub async fn run(args: UpArgs, config: &Config) -> anyhow::Result<()> {
    let options = options(&args, config)?;
    let outcome = tokio::task::spawn_blocking({
        let options = options.clone();
        move || up_mod::up(&options)
    })
    .await
    .context("the session builder thread failed")??;
    print_outcome(&outcome, &args.tmux);
    let on_tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if !args.no_attach && on_tty {
        attach(&options.server, &options.session)?;
    }
    Ok(())
}

fn options(args: &UpArgs, config: &Config) -> anyhow::Result<UpOptions> {
    let file = match &args.file {
        Some(file) => Some(file.clone()),
        None => {
            let local = PathBuf::from(DEFAULT_LAYOUT_FILE);
            local.is_file().then_some(local)
        }
    };
    let layout = match &file {
        Some(file) => {
            if args.workers.is_some() || args.role.is_some() {
                anyhow::bail!(
                    "--workers and --role describe the layout when there is no layout file, but {} is used: set `count` and `name` of its [[role]] tables instead (or pass -f with another file)",
                    file.display()
                );
            }
            Layout::load(file)?
        }
        None => Layout::default_for(
            args.role.as_deref().unwrap_or(DEFAULT_ROLE),
            args.workers.unwrap_or(2),
        )
        .map_err(|message| anyhow::anyhow!("{message}"))?,
    };
    let session = args
        .session
        .clone()
        .or_else(|| layout.session.clone())
        .unwrap_or_else(|| DEFAULT_SESSION.to_string());
    layout_file::check_session_name(&session).map_err(|message| anyhow::anyhow!("{message}"))?;
    let configured =
        std::env::var_os("PANEBUS_REDIS_URL").is_some() || config.redis_url != DEFAULT_REDIS_URL;
    let redis = match (configured, args.managed_redis) {
        (true, true) => anyhow::bail!(
            "--managed-redis conflicts with the configured Redis {}: unset PANEBUS_REDIS_URL or drop --managed-redis",
            crate::bus::redact_url(&config.redis_url)
        ),
        (true, false) => RedisChoice::Configured(config.redis_url.clone()),
        (false, true) => RedisChoice::Managed,
        (false, false) => RedisChoice::Auto {
            default_url: config.redis_url.clone(),
        },
    };
    let exe = std::env::current_exe()
        .context("cannot find the path of the running panebus binary for the panes")?;
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(key, _)| key.starts_with("PANEBUS_") && key != "PANEBUS_REDIS_URL")
        .collect();
    // Flags (`--namespace`, `--node`) win over variables here as everywhere.
    env.retain(|(key, _)| key != "PANEBUS_NAMESPACE");
    env.push(("PANEBUS_NAMESPACE".to_string(), config.namespace.clone()));
    let node_from_env = Config::from_env().map(|c| c.node).ok();
    if node_from_env.as_deref() != Some(config.node.as_str()) {
        env.retain(|(key, _)| key != "PANEBUS_NODE");
        env.push(("PANEBUS_NODE".to_string(), config.node.clone()));
    }
    env.sort();
    Ok(UpOptions {
        session,
        layout,
        server: args.tmux.server(),
        redis,
        exe,
        env,
        paths: Paths::from_env()?,
    })
}

fn print_outcome(outcome: &UpOutcome, tmux: &TmuxServerArgs) {
    let record = &outcome.record;
    println!(
        "panebus up: session {} ({}) on tmux server {}",
        record.session,
        record.session_id,
        record.tmux_socket.display()
    );
    let redis = match (&record.managed_redis_socket, record.started_redis) {
        (Some(_), true) => format!(
            "managed, started{}",
            outcome
                .managed_redis_pid
                .map_or(String::new(), |pid| format!(", pid {pid}"))
        ),
        (Some(_), false) => "managed, already running".to_string(),
        (None, _) => "yours, not managed".to_string(),
    };
    println!(
        "  redis:       {} ({redis})",
        crate::bus::redact_url(&record.redis_url)
    );
    for (role, pane) in &record.workers {
        println!("  worker:      {pane} (role {role})");
    }
    println!(
        "  coordinator: {} (window \"coordinator\")",
        record.coordinator_pane
    );
    if let Some((_, pane)) = record.workers.last() {
        println!("try, in a new window of the session: panebus dispatch {pane} ping --wait");
    }
    if record.managed_redis_socket.is_some() {
        println!(
            "outside the session: export PANEBUS_REDIS_URL='{}'",
            record.redis_url
        );
    }
    println!(
        "stop it with: panebus down {}{}",
        record.session,
        tmux.hint()
    );
}

/// Attaches the terminal to the session, or switches the current client when already
/// inside tmux on the same server (tmux refuses nested clients).
fn attach(server: &TmuxServerRef, session: &str) -> anyhow::Result<()> {
    let tmux = Tmux::new(server.clone());
    let inside = std::env::var_os("TMUX").is_some_and(|v| !v.is_empty());
    let verb = match (inside, server.same_server(&current_server())) {
        (true, true) => "switch-client",
        (true, false) => {
            println!("(inside another tmux: not attaching; run `tmux attach -t {session}` from a plain terminal)");
            return Ok(());
        }
        (false, _) => "attach-session",
    };
    let status = tmux
        .command()
        .args([verb, "-t", &exact(session)])
        .status()
        .context("cannot run tmux to attach")?;
    if !status.success() {
        anyhow::bail!("`tmux {verb}` failed ({status}); the session keeps running: attach with `tmux attach -t {session}`");
    }
    Ok(())
}
