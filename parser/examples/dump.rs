//! Prints the normalized dump (`docs/normalized-dump.md`) of a control-mode transcript.
//!
//! Usage: `cargo run -p tmux-control-parser --example dump -- [FILE|-]` (stdin when no FILE or
//! `-`). Events go to stdout, one line each. The parser recovers from bad lines, so every
//! error (`error at byte N: …`) is printed to stderr and the dump goes on to the end; the exit
//! status is 1 if there was any error (including a truncated last line or an unclosed block
//! at EOF), 2 if the input could not be read, else 0.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::process::ExitCode;

use tmux_control_parser::{dump, Parser};

fn main() -> ExitCode {
    let path = std::env::args_os().nth(1);
    let input: Box<dyn Read> = match &path {
        Some(path) if path != "-" => match File::open(path) {
            Ok(file) => Box::new(file),
            Err(err) => {
                eprintln!("cannot open {}: {err}", path.to_string_lossy());
                return ExitCode::from(2);
            }
        },
        _ => Box::new(io::stdin().lock()),
    };
    match run(input) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(err) => {
            eprintln!("cannot read the transcript: {err}");
            ExitCode::from(2)
        }
    }
}

/// Dumps every event; returns how many errors were reported.
fn run(mut input: impl Read) -> io::Result<usize> {
    let stdout = io::stdout().lock();
    let mut out = BufWriter::new(stdout);
    let mut parser = Parser::new();
    let mut errors = 0;
    loop {
        let read = match input.read(parser.read_space(64 * 1024)) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        parser.commit(read);
        while let Some(event) = parser.next_event() {
            match event {
                Ok(event) => dump::write_event(&event, &mut out)?,
                Err(err) => {
                    out.flush()?;
                    eprintln!("error at byte {}: {}", err.offset(), err.kind());
                    errors += 1;
                }
            }
        }
    }
    out.flush()?;
    if let Err(err) = parser.finish() {
        eprintln!("error at byte {}: {}", err.offset(), err.kind());
        errors += 1;
    }
    Ok(errors)
}
