//! The error value the parser yields for a line it cannot accept.
//!
//! Errors are values in the event stream, not a broken state: after one, the parser goes on
//! with the next line. Each carries the byte offset in the stream where the bad line (or the
//! block) starts, counted from the first byte ever fed (including a `-CC` DCS prefix).

use std::fmt;

use crate::event::Guard;

/// What was wrong with the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// A line grew past the limit; it was discarded up to its LF.
    LineTooLong { limit: usize },
    /// A reply block's body grew past the limit; the block was tracked to its end and dropped.
    BlockTooLong { guard: Guard, limit: usize },
    /// A known `%word` line whose fields do not parse (e.g. `%output` with a bad pane id).
    Malformed {
        /// The line's `%word`.
        notification: &'static str,
        /// The start of the line (at most 120 bytes), lossily decoded for display.
        excerpt: String,
    },
    /// `%end`/`%error` outside any block.
    StrayBlockEnd { excerpt: String },
    /// The stream ended with bytes not terminated by LF (from [`crate::Parser::finish`]).
    UnterminatedLine,
    /// The stream ended inside a reply block (from [`crate::Parser::finish`]).
    UnclosedBlock { guard: Guard },
}

/// A line (or block) the parser rejected, with where it starts in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    offset: u64,
    kind: ParseErrorKind,
}

impl ParseError {
    pub(crate) fn new(offset: u64, kind: ParseErrorKind) -> Self {
        Self { offset, kind }
    }

    /// Byte offset in the stream where the bad line or block starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// What was wrong.
    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }
}

/// At most this many bytes of a bad line are kept for the error message.
const EXCERPT_LEN: usize = 120;

pub(crate) fn excerpt(line: &[u8]) -> String {
    String::from_utf8_lossy(&line[..line.len().min(EXCERPT_LEN)]).into_owned()
}

impl fmt::Display for ParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseErrorKind::LineTooLong { limit } => write!(
                f,
                "line longer than {limit} bytes skipped \
                 (raise the limit with Parser::with_max_line_len if the stream is trusted)"
            ),
            ParseErrorKind::BlockTooLong { guard, limit } => write!(
                f,
                "reply block %begin {} {} {} has a body over {limit} bytes and was dropped \
                 (raise the limit with Parser::with_max_block_len)",
                guard.time, guard.number, guard.flags
            ),
            ParseErrorKind::Malformed {
                notification,
                excerpt,
            } => write!(f, "malformed %{notification} line skipped: {excerpt:?}"),
            ParseErrorKind::StrayBlockEnd { excerpt } => {
                write!(f, "block end without an open %begin skipped: {excerpt:?}")
            }
            ParseErrorKind::UnterminatedLine => write!(
                f,
                "stream ends inside a line with no LF (truncated transcript?)"
            ),
            ParseErrorKind::UnclosedBlock { guard } => write!(
                f,
                "stream ends inside the reply block %begin {} {} {}",
                guard.time, guard.number, guard.flags
            ),
        }
    }
}

impl fmt::Display for ParseError {
    /// The kind's message followed by where the bad line starts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {} of the stream)", self.kind, self.offset)
    }
}

impl std::error::Error for ParseError {}
