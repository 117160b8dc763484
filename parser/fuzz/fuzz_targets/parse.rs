//! Fuzz target `parse`: arbitrary bytes through the control-mode parser.
//!
//! The first input byte picks how the rest is cut into `feed` chunks, so the fuzzer explores
//! chunk boundaries as well as content. Every event is drained after every feed; the target
//! fails on a panic (the parser must turn any input into events or error values), and on a
//! difference between the chunked run and a run fed the whole input at once, compared as
//! normalized dump lines. The input is also given to `Layout::parse` when it is UTF-8.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tmux_control_parser::{dump, Layout, Parser};

/// Runs the parser over `input` fed in chunks from `sizes` (cycled) and returns every event
/// and error as one line each.
fn run(input: &[u8], sizes: &mut dyn Iterator<Item = usize>) -> Vec<String> {
    let mut parser = Parser::new();
    let mut lines = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let size = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(size);
        parser.feed(chunk);
        while let Some(event) = parser.next_event() {
            lines.push(match event {
                Ok(event) => dump::event_line(&event),
                Err(err) => format!("error {} {:?}", err.offset(), err.kind()),
            });
        }
        rest = tail;
    }
    lines.push(format!("finish {:?}", parser.finish()));
    lines
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let whole = run(input, &mut std::iter::empty());
    let chunked = match selector {
        0 => run(input, &mut std::iter::repeat(1)),
        1..=127 => run(input, &mut std::iter::repeat(usize::from(selector))),
        _ => {
            // Sizes from the input's own bytes, so chunk edges land on structure.
            let sizes: Vec<usize> = input
                .iter()
                .map(|&b| usize::from(b & (selector & 0x7f | 1)) + 1)
                .collect();
            run(input, &mut sizes.into_iter().cycle())
        }
    };
    assert_eq!(whole, chunked, "events depend on how the input was chunked");
    if let Ok(text) = std::str::from_utf8(input) {
        let _ = Layout::parse(text);
    }
});
