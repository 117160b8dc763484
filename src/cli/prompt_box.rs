//! `panebus prompt-box PANE`: read one prompt from the terminal and dispatch it to a pane.
//!
//! The tmux plugin's dispatch key opens a `display-popup` running this command, so the
//! text goes from the keyboard straight to this process's stdin and never through a tmux
//! command template, tmux's command parser, format expansion or a shell. (`command-prompt`
//! was measured unsafe for this on tmux 3.3a: it substitutes `%%` in the *typed text* a
//! second time, and its `%%%` form still lets `\`-sequences through; see the README's
//! plugin section.) The line is sent byte for byte as `{"text": LINE}` in a `prompt`
//! command; only the final line feed (and a CR before it) is removed. An empty line
//! cancels. Errors are printed and, on a terminal, wait for Enter so the popup stays
//! readable.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;
use clap::Args;

use crate::bus::Bus;
use crate::config::Config;
use crate::schema::Command;

/// `panebus prompt-box` options.
#[derive(Debug, Clone, Args)]
pub struct PromptBoxArgs {
    /// Target pane (`%3`) or worker id (`node/%3`).
    #[arg(value_name = "PANE")]
    pub target: String,
}

/// Runs `panebus prompt-box`.
pub async fn run(args: PromptBoxArgs, config: &Config) -> anyhow::Result<()> {
    let interactive = std::io::stdin().is_terminal();
    let result = prompt_and_dispatch(&args, config, interactive).await;
    if let Err(err) = &result {
        if interactive {
            eprintln!("panebus: {err:#}");
            eprint!("(press Enter to close)");
            let _ = std::io::stderr().flush();
            let _ = std::io::stdin().lock().read_line(&mut String::new());
        }
    }
    result
}

async fn prompt_and_dispatch(
    args: &PromptBoxArgs,
    config: &Config,
    interactive: bool,
) -> anyhow::Result<()> {
    let worker = config.resolve_worker(&args.target);
    if interactive {
        print!("prompt for {worker} (Enter sends, empty line cancels):\n> ");
        std::io::stdout().flush().ok();
    }
    let mut line = Vec::new();
    std::io::stdin()
        .lock()
        .read_until(b'\n', &mut line)
        .context("cannot read the prompt from the terminal")?;
    let text = prompt_text(line)?;
    if text.is_empty() {
        println!("cancelled: nothing sent");
        return Ok(());
    }
    let bus = Bus::connect(config).await?;
    let origin = format!("tmux-key@{}", config.node);
    let command = Command::new("prompt", serde_json::json!({ "text": text }), origin);
    bus.enqueue(&worker, &command, false).await?;
    println!("sent prompt {} to {worker}", command.id);
    Ok(())
}

/// The typed line without its line ending; it must be UTF-8 (it becomes a JSON string).
pub fn prompt_text(mut line: Vec<u8>) -> anyhow::Result<String> {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    String::from_utf8(line).map_err(|err| {
        anyhow::anyhow!(
            "the prompt is not valid UTF-8 (invalid byte at offset {}): check the terminal's encoding",
            err.utf8_error().valid_up_to()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_line_ending_is_removed() {
        let hostile = "a \"q\" 'x' $HOME ; #{pane_id} #(id) \\ ~ %1 %% %%% $(id) \\n\t ";
        assert_eq!(
            prompt_text(format!("{hostile}\n").into_bytes()).unwrap(),
            hostile
        );
        assert_eq!(prompt_text(b"x\r\n".to_vec()).unwrap(), "x");
        assert_eq!(prompt_text(b"no newline".to_vec()).unwrap(), "no newline");
        assert_eq!(prompt_text(b"\n".to_vec()).unwrap(), "");
        assert!(prompt_text(vec![b'a', 0xff, b'\n'])
            .unwrap_err()
            .to_string()
            .contains("UTF-8"));
    }
}
