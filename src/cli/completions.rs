//! `panebus completions SHELL`: prints a shell completion script to stdout.
//!
//! The script is generated from the same clap definition the binary parses with, so it
//! always matches the installed version's commands and flags.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  panebus completions bash > ~/.local/share/bash-completion/completions/panebus
  panebus completions zsh > \"${fpath[1]}/_panebus\"
  panebus completions fish > ~/.config/fish/completions/panebus.fish")]
pub struct CompletionsArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: &CompletionsArgs) -> anyhow::Result<()> {
    let mut command = Cli::command();
    clap_complete::generate(
        args.shell,
        &mut command,
        "panebus",
        &mut std::io::stdout().lock(),
    );
    Ok(())
}
