//! `panebus` binary (branch `up`: `up`, `down`, `status-line`, `prompt-box` and a bare
//! `worker`, for this branch's end-to-end tests; the full CLI comes from branch `cli`).

use std::sync::Arc;

use clap::{Parser, Subcommand};

use panebus::cli;
use panebus::config::Config;
use panebus::worker::{ExternalHandler, Worker};

#[derive(Parser)]
#[command(name = "panebus", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a ready tmux session.
    Up(cli::up::UpArgs),
    /// Stop what `up` started.
    Down(cli::down::DownArgs),
    /// One-line health summary for status bars.
    StatusLine(cli::status_line::StatusLineArgs),
    /// Read a prompt from the terminal and dispatch it (the plugin's popup).
    PromptBox(cli::prompt_box::PromptBoxArgs),
    /// Run a worker in this pane.
    Worker {
        #[arg(long, default_value = "worker")]
        role: String,
        #[arg(long = "handler", value_name = "TYPE=PROGRAM")]
        handlers: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match Config::from_env() {
        Ok(config) => match cli.command {
            Command::Up(args) => cli::up::run(args, &config).await,
            Command::Down(args) => cli::down::run(args, &config).await,
            Command::StatusLine(args) => cli::status_line::run(args, &config).await,
            Command::PromptBox(args) => cli::prompt_box::run(args, &config).await,
            Command::Worker { role, handlers } => run_worker(config, role, handlers).await,
        },
        Err(err) => Err(err.into()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("panebus: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run_worker(config: Config, role: String, handlers: Vec<String>) -> anyhow::Result<()> {
    let mut builder = Worker::builder(config).role(role);
    for spec in handlers {
        let (kind, handler) = ExternalHandler::parse_spec(&spec).map_err(anyhow::Error::msg)?;
        builder = builder.handler(kind, Arc::new(handler));
    }
    builder.run().await?;
    Ok(())
}
