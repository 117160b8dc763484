//! `panebus` binary (branch `up`: only `up` and `down`, for this branch's end-to-end tests).

use clap::{Parser, Subcommand};

use panebus::cli;
use panebus::config::Config;

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
