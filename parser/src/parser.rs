//! The incremental parser: bytes in (any chunking), typed events out.
//!
//! [`Parser::feed`] (or [`Parser::read_space`] + [`Parser::commit`], to read from the pipe
//! straight into it) appends bytes to one reused buffer; [`Parser::next_event`] cuts the next
//! complete LF-terminated line from it (memchr), tracks reply blocks, and hands the line to
//! the grammar in `line.rs`. Events borrow from the parser's buffers until the next call, so
//! a `%output` line costs no allocation once the buffers have grown to the working size.
//! Consumed bytes are dropped from the buffer when more input is added.

use memchr::memchr;

use crate::error::{excerpt, ParseError, ParseErrorKind};
use crate::event::{Event, Guard, Reply};
use crate::line::{flow_control, guard_line, parse_line, GuardWord, Malformed};

/// The DCS sequence `tmux -CC` writes before its first line.
const CC_PREFIX: &[u8] = b"\x1bP1000p";
/// The ST sequence the `-CC` client writes after its final `%exit` line.
const CC_SUFFIX: &[u8] = b"\x1b\\";

/// Default cap on one line: 8 MiB. The longest line tmux writes on its own is an `%output`
/// record (at most 8192 source bytes, 4 bytes each when escaped, so ~32 KiB); reply body lines
/// (`capture-pane -J`, format results) can be longer, so the cap leaves a wide margin while
/// still bounding memory against a runaway or hostile stream.
pub const DEFAULT_MAX_LINE_LEN: usize = 8 << 20;
/// Default cap on the body of one reply block: 64 MiB (a full `capture-pane -S -` of a large
/// history fits).
pub const DEFAULT_MAX_BLOCK_LEN: usize = 64 << 20;

/// How the stream is framed, decided by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Not enough bytes yet to tell `-C` from `-CC`.
    Undecided,
    /// `tmux -C`: lines end with LF, nothing else.
    Plain,
    /// `tmux -CC`: DCS prefix seen; lines end with CR LF; ST at the very end.
    Dcs,
}

/// A reply block whose `%begin` has been seen.
#[derive(Debug)]
struct OpenBlock {
    guard: Guard,
    /// Stream offset of the `%begin` line.
    offset: u64,
    lines: Vec<Vec<u8>>,
    /// Body bytes so far, to enforce the block cap.
    body_len: usize,
    /// The body went over the cap; lines are no longer kept.
    overflowed: bool,
}

/// An incremental tmux control-mode parser.
///
/// ```
/// use tmux_control_parser::{Event, Parser, PaneId};
///
/// let mut parser = Parser::new();
/// parser.feed(b"%output %1 hi\\015\\012\n%be");
/// parser.feed(b"gin 1795000000 7 1\n%1\n%end 1795000000 7 1\n");
/// match parser.next_event() {
///     Some(Ok(Event::Output { pane, data })) => {
///         assert_eq!(pane, PaneId(1));
///         assert_eq!(data, b"hi\r\n");
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// match parser.next_event() {
///     Some(Ok(Event::Reply(reply))) => assert_eq!(reply.lines, vec![b"%1".to_vec()]),
///     other => panic!("unexpected {other:?}"),
/// }
/// assert!(parser.next_event().is_none());
/// ```
#[derive(Debug)]
pub struct Parser {
    /// Input bytes are `buf[..filled]`; unconsumed input starts at `start`, and bytes before
    /// it are dropped at the next `feed`/`read_space`. `buf[filled..]` is zeroed spare room
    /// kept between calls, so [`Parser::read_space`] does not re-initialize it each time.
    buf: Vec<u8>,
    filled: usize,
    start: usize,
    /// No LF in `buf[start..scanned]`: where the next LF search begins.
    scanned: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// Reused buffer for decoded `%output` data.
    scratch: Vec<u8>,
    framing: Framing,
    /// Whether lines end with CR LF: always under `-CC`; for `-C`, decided by the first line
    /// (a `-C` client on a tty gets CR LF from ONLCR, a piped one gets bare LF).
    crlf: Option<bool>,
    /// Discarding the rest of an over-long line, up to its LF.
    skipping: bool,
    block: Option<OpenBlock>,
    max_line_len: usize,
    max_block_len: usize,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

/// One line cut from the buffer: `buf[start..end]`, starting at stream offset `offset`.
struct LineSpan {
    start: usize,
    end: usize,
    offset: u64,
}

impl Parser {
    /// A parser with the default limits ([`DEFAULT_MAX_LINE_LEN`], [`DEFAULT_MAX_BLOCK_LEN`]),
    /// detecting `-CC` framing from the first bytes.
    pub fn new() -> Self {
        Self {
            buf: Vec::new(),
            filled: 0,
            start: 0,
            scanned: 0,
            base: 0,
            scratch: Vec::new(),
            framing: Framing::Undecided,
            crlf: None,
            skipping: false,
            block: None,
            max_line_len: DEFAULT_MAX_LINE_LEN,
            max_block_len: DEFAULT_MAX_BLOCK_LEN,
        }
    }

    /// A parser that rejects lines longer than `max_line_len` bytes (line end excluded).
    ///
    /// An over-long line yields one [`ParseErrorKind::LineTooLong`] as soon as it passes the
    /// limit and is then discarded up to its LF, so memory stays bounded.
    pub fn with_max_line_len(max_line_len: usize) -> Self {
        Self {
            max_line_len,
            ..Self::new()
        }
    }

    /// Sets the cap on the total body bytes of one reply block (default
    /// [`DEFAULT_MAX_BLOCK_LEN`]). A bigger block yields [`ParseErrorKind::BlockTooLong`]
    /// where its `Reply` would have been.
    pub fn with_max_block_len(mut self, max_block_len: usize) -> Self {
        self.max_block_len = max_block_len;
        self
    }

    /// Appends bytes read from the control client (any chunk boundary is fine).
    pub fn feed(&mut self, bytes: &[u8]) {
        let space = self.read_space(bytes.len());
        space[..bytes.len()].copy_from_slice(bytes);
        self.commit(bytes.len());
    }

    /// Writable room for at least `min_len` more input bytes, at the end of the parser's
    /// buffer: read from the pipe straight into it, then [`Parser::commit`] the count. This
    /// saves the copy [`Parser::feed`] makes.
    ///
    /// ```
    /// # use tmux_control_parser::Parser;
    /// # use std::io::Read;
    /// let mut pipe: &[u8] = b"%exit\n";
    /// let mut parser = Parser::new();
    /// let read = pipe.read(parser.read_space(64 * 1024)).unwrap();
    /// parser.commit(read);
    /// assert!(parser.next_event().is_some());
    /// ```
    pub fn read_space(&mut self, min_len: usize) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.scanned -= self.start;
            self.base += self.start as u64;
            self.start = 0;
        }
        if self.buf.len() < self.filled + min_len {
            self.buf.resize(self.filled + min_len, 0);
        }
        &mut self.buf[self.filled..]
    }

    /// Marks `len` bytes written into the last [`Parser::read_space`] as input.
    ///
    /// # Panics
    /// If `len` is larger than that space.
    pub fn commit(&mut self, len: usize) {
        assert!(
            self.filled + len <= self.buf.len(),
            "commit({len}) is more than the space read_space returned"
        );
        self.filled += len;
    }

    /// The next event, `Some(Err(_))` for a rejected line (parsing goes on after it), or
    /// `None` when more input is needed.
    pub fn next_event(&mut self) -> Option<Result<Event<'_>, ParseError>> {
        loop {
            if self.framing == Framing::Undecided && !self.decide_framing() {
                return None;
            }
            let span = match self.next_line()? {
                Ok(span) => span,
                Err(err) => return Some(Err(err)),
            };
            if self.block.is_some() {
                if let Some(result) = self.block_line(span) {
                    return Some(result);
                }
                continue;
            }
            if let Some((word, guard)) = guard_line(&self.buf[span.start..span.end]) {
                let line = &self.buf[span.start..span.end];
                match (word, guard) {
                    (GuardWord::Begin, Some(guard)) => {
                        self.block = Some(OpenBlock {
                            guard,
                            offset: span.offset,
                            lines: Vec::new(),
                            body_len: 0,
                            overflowed: false,
                        });
                        continue;
                    }
                    (GuardWord::Begin, None) => {
                        return Some(Err(malformed(span.offset, "begin", line)));
                    }
                    (_, Some(_)) => {
                        return Some(Err(ParseError::new(
                            span.offset,
                            ParseErrorKind::StrayBlockEnd {
                                excerpt: excerpt(line),
                            },
                        )));
                    }
                    (word, None) => return Some(Err(malformed(span.offset, word.name(), line))),
                }
            }
            // Borrowed afresh: a borrow that may be returned must not live across the loop's
            // `continue` (the current borrow checker rejects that).
            let line = &self.buf[span.start..span.end];
            return Some(
                parse_line(line, &mut self.scratch)
                    .map_err(|Malformed(word)| malformed(span.offset, word, line)),
            );
        }
    }

    /// Checks that the stream may end here: no partial line and no open block. Call it at
    /// EOF; a `-CC` stream's final ST does not count as a partial line.
    pub fn finish(&self) -> Result<(), ParseError> {
        let pending = &self.buf[self.start..self.filled];
        let pending_is_st = self.framing == Framing::Dcs && CC_SUFFIX.starts_with(pending);
        if !pending.is_empty() && !pending_is_st && !self.skipping {
            return Err(ParseError::new(
                self.base + self.start as u64,
                ParseErrorKind::UnterminatedLine,
            ));
        }
        if let Some(block) = &self.block {
            return Err(ParseError::new(
                block.offset,
                ParseErrorKind::UnclosedBlock { guard: block.guard },
            ));
        }
        Ok(())
    }

    /// Looks for the `-CC` DCS prefix; `false` while the bytes so far are a prefix of it.
    fn decide_framing(&mut self) -> bool {
        let pending = &self.buf[self.start..self.filled];
        if pending.starts_with(CC_PREFIX) {
            self.start += CC_PREFIX.len();
            self.scanned = self.scanned.max(self.start);
            self.framing = Framing::Dcs;
            self.crlf = Some(true);
        } else if CC_PREFIX.starts_with(pending) {
            return false;
        } else {
            self.framing = Framing::Plain;
        }
        true
    }

    /// Cuts the next complete line, enforcing the line cap. `None` when no LF is buffered.
    fn next_line(&mut self) -> Option<Result<LineSpan, ParseError>> {
        loop {
            let Some(found) = memchr(b'\n', &self.buf[self.scanned..self.filled]) else {
                self.scanned = self.filled;
                if self.skipping {
                    self.start = self.filled;
                } else if self.filled - self.start > self.max_line_len {
                    return Some(Err(self.line_too_long()));
                }
                return None;
            };
            let lf = self.scanned + found;
            let mut start = self.start;
            self.start = lf + 1;
            self.scanned = lf + 1;
            if self.skipping {
                self.skipping = false;
                continue;
            }
            let mut end = lf;
            let ends_with_cr = end > start && self.buf[end - 1] == b'\r';
            if *self.crlf.get_or_insert(ends_with_cr) && ends_with_cr {
                end -= 1;
            }
            if self.framing == Framing::Dcs && self.buf[start..end].starts_with(CC_SUFFIX) {
                start += CC_SUFFIX.len();
            }
            let offset = self.base + start as u64;
            if end - start > self.max_line_len {
                return Some(Err(ParseError::new(
                    offset,
                    ParseErrorKind::LineTooLong {
                        limit: self.max_line_len,
                    },
                )));
            }
            return Some(Ok(LineSpan { start, end, offset }));
        }
    }

    /// Reports the partial line at `start` as over-long and starts discarding it.
    fn line_too_long(&mut self) -> ParseError {
        let err = ParseError::new(
            self.base + self.start as u64,
            ParseErrorKind::LineTooLong {
                limit: self.max_line_len,
            },
        );
        self.start = self.filled;
        self.skipping = true;
        err
    }

    /// Handles a line inside an open block: the closing guard (returns the reply), an
    /// in-block `%pause`/`%continue` (returned as its own event), or a body line (`None`).
    fn block_line(&mut self, span: LineSpan) -> Option<Result<Event<'static>, ParseError>> {
        let line = &self.buf[span.start..span.end];
        let block = self.block.as_mut().expect("block_line needs an open block");
        if let Some((word @ (GuardWord::End | GuardWord::Error), Some(guard))) = guard_line(line) {
            if guard == block.guard {
                let block = self.block.take().expect("checked above");
                if block.overflowed {
                    return Some(Err(ParseError::new(
                        block.offset,
                        ParseErrorKind::BlockTooLong {
                            guard: block.guard,
                            limit: self.max_block_len,
                        },
                    )));
                }
                return Some(Ok(Event::Reply(Reply {
                    guard: block.guard,
                    is_error: word == GuardWord::Error,
                    lines: block.lines,
                })));
            }
        }
        if let Some(event) = flow_control(line) {
            return Some(Ok(event));
        }
        if !block.overflowed {
            block.body_len += line.len() + 1;
            if block.body_len > self.max_block_len {
                block.overflowed = true;
                block.lines = Vec::new();
            } else {
                block.lines.push(line.to_vec());
            }
        }
        None
    }
}

fn malformed(offset: u64, notification: &'static str, line: &[u8]) -> ParseError {
    ParseError::new(
        offset,
        ParseErrorKind::Malformed {
            notification,
            excerpt: excerpt(line),
        },
    )
}
