//! `panebus man [COMMAND]`: prints a roff man page to stdout.
//!
//! Without an argument it renders `panebus(1)`; with a command name it renders that
//! command's page (`panebus-dispatch(1)`), generated from the clap definition like the
//! `--help` text.

use anyhow::Context;
use clap::{Args, CommandFactory};

use super::Cli;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  panebus man | man -l -
  panebus man dispatch > panebus-dispatch.1
  panebus man > /usr/local/share/man/man1/panebus.1")]
pub struct ManArgs {
    /// Render this command's page instead of the top-level one (e.g. `dispatch`, `dlq`).
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
}

pub fn run(args: &ManArgs) -> anyhow::Result<()> {
    let mut top = Cli::command();
    top.build();
    let page = match &args.command {
        None => top,
        Some(name) => {
            let names: Vec<String> = top
                .get_subcommands()
                .map(|c| c.get_name().to_string())
                .collect();
            let sub = top.find_subcommand(name).with_context(|| {
                format!("no command `{name}` — choose one of: {}", names.join(", "))
            })?;
            // `build` gave it the display name `panebus-<command>` used as the page title.
            sub.clone()
        }
    };
    clap_mangen::Man::new(page)
        .render(&mut std::io::stdout().lock())
        .context("cannot write the man page to stdout")
}
