//! The `panebus` binary: parses arguments, reads the configuration and runs the command.

use clap::Parser;
use panebus::cli::{Cli, Command};
use panebus::config::{Config, LogFormat};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let config = Config::from_env().and_then(|mut c| c.apply(cli.overrides()).map(|()| c));
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("panebus: {e}");
            std::process::exit(2);
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(config.log_level.as_tracing())
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    let json = cli.json;
    let outcome = match cli.command {
        Command::Worker(args) => panebus::cli::worker::run(args, config).await,
        Command::Ask(args) => panebus::cli::ask::run(args, &config).await,
        Command::WorkflowSetup(args) => panebus::cli::workflow::setup(args, &config).await,
        Command::WorkflowTeardown(args) => panebus::cli::workflow::teardown(args, &config).await,
        Command::WorkflowStatus(args) => panebus::cli::workflow::status(args, &config, json).await,
        Command::Workflows(args) => panebus::cli::workflow::list(args, &config, json).await,
    };
    if let Err(e) = outcome {
        eprintln!("panebus: {e:#}");
        std::process::exit(1);
    }
}
