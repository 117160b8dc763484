//! Helpers shared by the parser's integration tests: run a parser over input and collect the
//! normalized dump lines (errors as `error at byte N`).

use tmux_control_parser::{dump, Parser};

/// Feeds `chunks` one by one into `parser`, draining events after each, and returns the
/// normalized lines; a rejected line shows as `error at byte N`.
pub fn dump_chunks<'a>(
    parser: &mut Parser,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<String> {
    let mut lines = Vec::new();
    for chunk in chunks {
        parser.feed(chunk);
        while let Some(event) = parser.next_event() {
            lines.push(match event {
                Ok(event) => dump::event_line(&event),
                Err(err) => format!("error at byte {}", err.offset()),
            });
        }
    }
    lines
}

/// The normalized lines for `input` fed in one piece to a fresh parser.
pub fn dump_whole(input: &[u8]) -> Vec<String> {
    dump_chunks(&mut Parser::new(), [input])
}

/// Lowercase hex, as the dump writes payloads.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
