//! The `panebus` command line: global flags, the command enum, and dispatch to one file per
//! command.
//!
//! [`main`] parses arguments with clap, sets up logging, resolves the configuration
//! (environment first, then flags on top through `ConfigOverrides`), runs the command on a
//! tokio runtime and maps its error to an exit code through [`exit::ExitStatus`]. Each
//! command lives in its own file with its clap `Args` and an async `run`; the Redis work
//! behind them goes through [`crate::admin`] and [`crate::bus`].

pub mod acl;
pub mod ask;
pub mod attach;
pub mod broadcast;
pub mod completions;
pub mod dispatch;
pub mod dispatch_role;
pub mod dlq;
pub mod down;
pub mod events;
pub mod exit;
pub mod fanout;
pub mod last_result;
pub mod man;
pub mod panes;
pub mod payload;
pub mod progress;
pub mod prompt_box;
pub mod release;
pub mod restart;
pub mod result;
pub mod status;
pub mod status_line;
pub mod table;
pub mod tail;
pub mod tmux_server;
pub mod top;
pub mod up;
pub mod watchdog;
pub mod worker;
pub mod workflow;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigOverrides};
use exit::{ExitStatus, Failure};

const EXAMPLES: &str = "\
Examples:
  panebus worker --role processor          # inside a tmux pane
  panebus dispatch %1 ping --wait
  panebus dispatch %1 prompt --payload '{\"text\": \"Hello, agent!\"}'
  panebus dispatch-role processor ping
  panebus broadcast ping
  panebus status
  panebus panes --role processor
  panebus dlq list
  panebus events --follow

Environment: PANEBUS_REDIS_URL, PANEBUS_NAMESPACE, PANEBUS_NODE, PANEBUS_LOG_LEVEL and
PANEBUS_LOG_FORMAT set the global flags' defaults; the README lists every variable.";

/// Dispatch commands to workers in tmux panes over Redis, and inspect the bus.
#[derive(Debug, Parser)]
#[command(name = "panebus", version, propagate_version = true, after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts, before or after the command name. Each one overrides the
/// `PANEBUS_*` variable named in its help.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Redis URL of the bus: redis://HOST:PORT/DB or unix:///PATH [env: PANEBUS_REDIS_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub redis_url: Option<String>,

    /// Bus namespace, the prefix of every Redis key [env: PANEBUS_NAMESPACE]
    #[arg(long, global = true, value_name = "NAME")]
    pub namespace: Option<String>,

    /// This host's node name; `%3` alone means `<node>/%3` [env: PANEBUS_NODE]
    #[arg(long, global = true, value_name = "NAME")]
    pub node: Option<String>,

    /// Machine-readable JSON on stdout instead of tables
    #[arg(long, global = true)]
    pub json: bool,

    /// Log level on stderr [env: PANEBUS_LOG_LEVEL] [default: info]
    #[arg(
        long,
        global = true,
        value_name = "LEVEL",
        ignore_case = true,
        value_parser = ["trace", "debug", "info", "warn", "warning", "error", "critical"]
    )]
    pub log_level: Option<String>,

    /// Log format on stderr [env: PANEBUS_LOG_FORMAT] [default: text]
    #[arg(long, global = true, value_name = "FORMAT", ignore_case = true, value_parser = ["text", "json"])]
    pub log_format: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a worker in this tmux pane: register, heartbeat, execute commands.
    #[command(after_help = "\
Examples:
  panebus worker --role processor
  panebus worker --role builder --handler build='make -C /src/app'
  tmux send-keys -t panebus:main.1 'panebus worker --role reviewer' Enter

The pane id comes from TMUX_PANE; outside tmux the worker gets a standalone-<id> name.
It stops on SIGTERM/SIGINT/SIGHUP or a `shutdown` command.")]
    Worker(worker::WorkerArgs),
    /// Supervise the workers of a tmux session (the coordinator).
    #[command(after_help = "\
Examples:
  panebus attach panebus
  panebus attach work -L mysocket --on-tmux-exit wait
  panebus attach panebus --adopt --check-interval 500ms

One coordinator leads each session (a leader lease in Redis); start a second one as a
standby. Stopping it leaves every worker running.")]
    Attach(attach::AttachArgs),
    /// Heartbeat-only supervision when control mode is unavailable.
    #[command(after_help = "\
Examples:
  panebus watchdog
  panebus watchdog --check-interval 10
  panebus watchdog -S /tmp/tmux-1000/work")]
    Watchdog(watchdog::WatchdogArgs),
    /// Respawn a managed pane now (through its coordinator).
    #[command(after_help = "\
Examples:
  panebus restart %3
  panebus restart devbox/%3 --timeout 30s

Manual restarts do not count toward quarantine and lift one if present.")]
    Restart(restart::RestartArgs),
    /// Lift a pane's quarantine.
    #[command(after_help = "\
Examples:
  panebus release %3
  panebus release devbox/%3

`panebus status` lists quarantined panes and why.")]
    Release(release::ReleaseArgs),
    /// Send a command to one worker (`%3` or `node/%3`) and print its id.
    Dispatch(dispatch::DispatchArgs),
    /// Send a command to every live worker with a role.
    DispatchRole(dispatch_role::DispatchRoleArgs),
    /// Send a command to every live worker on the bus.
    Broadcast(broadcast::BroadcastArgs),
    /// Overview: workers by role and state, queues, DLQ, recent events, quarantines.
    Status(status::StatusArgs),
    /// List workers with their state, heartbeat age and queues.
    Panes(panes::PanesArgs),
    /// Inspect, retry and purge the dead-letter queue.
    Dlq(dlq::DlqArgs),
    /// Show recent events from the event stream, or follow it.
    Events(events::EventsArgs),
    /// Show the stored result of a command, optionally waiting for it.
    Result(result::ResultArgs),
    /// Live terminal dashboard: workers, totals and the newest events (q quits).
    #[command(after_help = "\
Examples:
  panebus top
  panebus top --interval 500ms
  panebus top | cat                  # not a terminal: prints one snapshot and exits")]
    Top(top::TopArgs),
    /// Start a ready tmux session: workers by role, the coordinator, a private Redis if none.
    #[command(after_help = "\
Examples:
  panebus up                         # 2 workers, attach
  panebus up --workers 4 --role reviewer --no-attach
  panebus up -f panebus.toml -L work

Without PANEBUS_REDIS_URL and with nothing answering at the default URL, it starts a private
redis-server on a unix socket and puts its URL into the session environment.")]
    Up(up::UpArgs),
    /// Stop the session `panebus up` started (and its managed Redis when unused).
    #[command(after_help = "\
Examples:
  panebus down
  panebus down agents -L work")]
    Down(down::DownArgs),
    /// One-line health summary for tmux status bars; always exits 0.
    #[command(after_help = "\
Examples:
  panebus status-line --format plain
  set -g status-right '#(panebus status-line)'")]
    StatusLine(status_line::StatusLineArgs),
    /// Show the result of a worker's newest finished command.
    #[command(after_help = "\
Examples:
  panebus last-result %3
  panebus last-result devbox/%3 --json

Exit codes: 0 ok, 4 no finished command or its result expired, 7 the command failed.")]
    LastResult(last_result::LastResultArgs),
    /// Read a prompt from the terminal and dispatch it to a pane (the tmux plugin's popup).
    #[command(
        hide = true,
        after_help = "\
Examples:
  panebus prompt-box %3              # reads one line from the terminal
  tmux display-popup -E \"panebus prompt-box %3\""
    )]
    PromptBox(prompt_box::PromptBoxArgs),
    /// Run a task through the review, plan, work and compound phases on agent workers.
    #[command(after_help = "\
Examples:
  panebus ask Fix the failing tests
  panebus ask -d /path/to/project Add user authentication
  panebus ask --no-wait Refactor the payment module
  panebus ask -v Investigate the codebase")]
    Ask(ask::AskArgs),
    /// Create a tmux session with the five workflow panes and a coordinator.
    #[command(after_help = "\
Examples:
  panebus workflow-setup
  panebus workflow-setup --session agents --no-attach")]
    WorkflowSetup(workflow::WorkflowSetupArgs),
    /// Kill a workflow session and deregister its workers.
    #[command(after_help = "\
Examples:
  panebus workflow-teardown
  panebus workflow-teardown agents -L work")]
    WorkflowTeardown(workflow::WorkflowTeardownArgs),
    /// Show one workflow and its phases.
    #[command(after_help = "\
Examples:
  panebus workflow-status 01JD3M5Q8Z
  panebus workflow-status 01JD3M5Q8Z --json")]
    WorkflowStatus(workflow::WorkflowStatusArgs),
    /// List recent workflows.
    #[command(after_help = "\
Examples:
  panebus workflows
  panebus workflows --active --count 5 --json")]
    Workflows(workflow::WorkflowsArgs),
    /// Print the live output of one pane (raw bytes) until it closes or Ctrl-C.
    #[command(after_help = "\
Examples:
  panebus tail %3
  panebus tail devbox/%3 -L work > pane3.log
  panebus tail %3 --session agents -S /tmp/tmux-1000/work")]
    Tail(tail::TailArgs),
    /// Print Redis ACL rules (ACL SETUSER) for worker, dispatcher and coordinator users.
    #[command(after_help = "\
Examples:
  panebus acl | redis-cli -u redis://admin:PASSWORD@127.0.0.1:6379/0
  panebus acl --role worker --worker 'devbox/*' --password-env PANEBUS_WORKER_PASSWORD
  panebus acl --role dispatcher --user ci --password-sha256 \"$(printf %s \"$PW\" | sha256sum | cut -d' ' -f1)\"
  panebus acl --role worker --worker devbox/%3 --json

Needs Redis 7 (ACL selectors). Each line resets the user first, so applying it again is
safe. Without a password option the users are created but cannot log in until you give
them one. Clients then use redis://USER:PASSWORD@HOST:PORT/0.")]
    Acl(acl::AclArgs),
    /// Print a shell completion script.
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff) to stdout.
    Man(man::ManArgs),
}

/// What every command that talks to the bus gets: the resolved configuration and the
/// output mode.
pub struct Context {
    pub config: Config,
    pub json: bool,
}

/// Parses the process arguments, runs the command and returns its exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let _ = err.print();
            return ExitCode::from(err.exit_code().clamp(0, 255) as u8);
        }
    };
    match run(cli) {
        Ok(()) => ExitStatus::Ok.into(),
        Err(err) => {
            let status = ExitStatus::of(&err);
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "panebus: {}", exit::message(&err));
            status.into()
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let global = cli.global;
    let long_running = matches!(
        cli.command,
        Command::Worker(_) | Command::Attach(_) | Command::Watchdog(_)
    );
    if !long_running {
        restore_sigpipe();
    }
    match cli.command {
        Command::Acl(args) => on_bus(&global, |ctx| acl::run(args, ctx)),
        Command::Completions(args) => completions::run(&args),
        Command::Man(args) => man::run(&args),
        Command::Tail(args) => tail::run(args, &global),
        Command::Worker(args) => long_running_process(&global, |config| worker::run(args, config)),
        Command::Attach(args) => long_running_process(&global, |config| attach::run(args, config)),
        Command::Watchdog(args) => {
            long_running_process(&global, |config| watchdog::run(args, config))
        }
        Command::Restart(args) => on_bus(&global, |ctx| restart::run(args, ctx.config)),
        Command::Release(args) => on_bus(&global, |ctx| release::run(args, ctx.config)),
        Command::Dispatch(args) => on_bus(&global, |ctx| dispatch::run(args, ctx)),
        Command::DispatchRole(args) => on_bus(&global, |ctx| dispatch_role::run(args, ctx)),
        Command::Broadcast(args) => on_bus(&global, |ctx| broadcast::run(args, ctx)),
        Command::Status(args) => on_bus(&global, |ctx| status::run(args, ctx)),
        Command::Panes(args) => on_bus(&global, |ctx| panes::run(args, ctx)),
        Command::Dlq(args) => on_bus(&global, |ctx| dlq::run(args, ctx)),
        Command::Events(args) => on_bus(&global, |ctx| events::run(args, ctx)),
        Command::Result(args) => on_bus(&global, |ctx| result::run(args, ctx)),
        Command::Top(args) => on_bus(&global, |ctx| top::run(args, ctx)),
        Command::Up(args) => on_bus(
            &global,
            |ctx| async move { up::run(args, &ctx.config).await },
        ),
        Command::Down(args) => on_bus(
            &global,
            |ctx| async move { down::run(args, &ctx.config).await },
        ),
        // Blocking and without a runtime: a status bar may run it every few seconds.
        Command::StatusLine(args) => status_line::run(args, &resolve_config(&global)?),
        Command::LastResult(args) => on_bus(&global, |ctx| last_result::run(args, ctx)),
        Command::PromptBox(args) => on_bus(&global, |ctx| async move {
            prompt_box::run(args, &ctx.config).await
        }),
        Command::Ask(args) => on_bus(
            &global,
            |ctx| async move { ask::run(args, &ctx.config).await },
        ),
        Command::WorkflowSetup(args) => on_bus(&global, |ctx| async move {
            workflow::setup(args, &ctx.config).await
        }),
        Command::WorkflowTeardown(args) => on_bus(&global, |ctx| async move {
            workflow::teardown(args, &ctx.config).await
        }),
        Command::WorkflowStatus(args) => on_bus(&global, |ctx| async move {
            workflow::status(args, &ctx.config, ctx.json).await
        }),
        Command::Workflows(args) => on_bus(&global, |ctx| async move {
            workflow::list(args, &ctx.config, ctx.json).await
        }),
    }
}

/// Runs a process that lives until a signal (worker, coordinator, watchdog). It handles its
/// own signals (finish or requeue, release the lease, deregister) and runs on a
/// multi-threaded runtime so that heartbeats never wait behind other work.
fn long_running_process<F, Fut>(global: &GlobalArgs, process: F) -> anyhow::Result<()>
where
    F: FnOnce(Config) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let config = resolve_config(global)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(process(config))
}

/// Runs a command that talks to the bus on a single-threaded runtime; Ctrl-C ends it with
/// exit code 130.
fn on_bus<F, Fut>(global: &GlobalArgs, command: F) -> anyhow::Result<()>
where
    F: FnOnce(Context) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let ctx = Context {
        config: resolve_config(global)?,
        json: global.json,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        tokio::select! {
            result = command(ctx) => result,
            _ = tokio::signal::ctrl_c() => Err(Failure::Interrupted.into()),
        }
    })
}

/// Environment first, then the global flags on top; starts logging with the result.
fn resolve_config(global: &GlobalArgs) -> anyhow::Result<Config> {
    let mut config = Config::from_env().map_err(Failure::Config)?;
    config
        .apply(ConfigOverrides {
            redis_url: global.redis_url.clone(),
            namespace: global.namespace.clone(),
            node: global.node.clone(),
            log_level: global.log_level.clone(),
            log_format: global.log_format.clone(),
            ..ConfigOverrides::default()
        })
        .map_err(Failure::Config)?;
    crate::logging::init(config.log_level, config.log_format);
    Ok(config)
}

/// Short-lived commands behave like other Unix tools when their reader goes away
/// (`panebus events --follow | head`): they end quietly instead of failing on EPIPE. The
/// worker, coordinator and watchdog keep Rust's default (EPIPE as an error) so that a
/// closed pane or pipe cannot kill them mid-command.
fn restore_sigpipe() {
    // SAFETY: setting a signal disposition to the default is async-signal-safe and done
    // before any other thread of this process exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Prints a serde value as pretty JSON on stdout (the `--json` form of one document).
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).context("cannot write JSON to stdout")?;
    writeln!(out).context("cannot write to stdout")?;
    Ok(())
}

/// Prints human text on stdout.
pub fn print_text(text: impl std::fmt::Display) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    write!(out, "{text}").context("cannot write to stdout")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_command() {
        let cli = Cli::try_parse_from([
            "panebus",
            "status",
            "--json",
            "--namespace",
            "test",
            "--log-level",
            "DEBUG",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.namespace.as_deref(), Some("test"));
        assert_eq!(cli.global.log_level.as_deref(), Some("DEBUG"));
        assert_eq!(cli.global.log_format.as_deref(), Some("json"));
    }

    #[test]
    fn bad_log_settings_are_usage_errors() {
        let err = Cli::try_parse_from(["panebus", "status", "--log-format", "xml"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("[possible values: text, json]"),
            "{err}"
        );
    }

    #[test]
    fn every_command_has_examples() {
        let top = Cli::command();
        for sub in top.get_subcommands() {
            let help = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                help.contains("panebus "),
                "`{}` has no examples in after_help",
                sub.get_name()
            );
        }
    }
}
