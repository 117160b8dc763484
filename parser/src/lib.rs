//! Incremental, zero-copy parser for the tmux control-mode protocol (`tmux -C` / `-CC`).
//!
//! Feed it the bytes a control client writes, in chunks of any size, and pull typed
//! [`Event`]s: reply blocks (`%begin … %end|%error`, matched by their exact guard triple),
//! `%output` decoded to raw bytes, and every notification of tmux 3.2 to the newest release.
//! Unknown `%word` lines come out as [`Event::Unknown`], bare lines as [`Event::Bare`], and a
//! malformed line as an error value after which parsing continues. No I/O, no async.
//!
//! The example of the README (kept identical):
//!
//! ```
//! use tmux_control_parser::{Event, Layout, Parser};
//!
//! let mut parser = Parser::new();
//! parser.feed(b"%begin 1795000000 7 1\n%1\n%end 1795000000 7 1\n%output %1 hi\\015\\012\n");
//! parser.feed(b"%layout-change @1 b25f,80x24,0,0,2 b25f,80x24,0,0,2 *\n");
//! while let Some(event) = parser.next_event() {
//!     match event {
//!         Ok(Event::Reply(reply)) => println!("reply #{}: {} lines", reply.guard.number, reply.lines.len()),
//!         Ok(Event::Output { pane, data }) => println!("{pane} wrote {data:?}"),
//!         Ok(Event::LayoutChange { window, layout, .. }) => {
//!             let panes = Layout::parse(layout).expect("tmux writes valid layouts").pane_ids();
//!             println!("{window} now holds {panes:?}");
//!         }
//!         Ok(other) => {
//!             // keep it past the next feed() or send it to another task
//!             let owned = other.to_owned_event();
//!             println!("{owned:?}");
//!         }
//!         Err(err) => eprintln!("skipped a bad line at byte {}: {err}", err.offset()),
//!     }
//! }
//! ```

pub mod dump;
mod error;
mod escape;
pub mod event;
mod layout;
mod line;
mod parser;
mod vis;

pub use error::{ParseError, ParseErrorKind};
pub use escape::{decode_output, encode_output};
pub use event::*;
pub use layout::{Layout, LayoutCell, LayoutError, LayoutKind};
pub use parser::{Parser, DEFAULT_MAX_BLOCK_LEN, DEFAULT_MAX_LINE_LEN};
pub use vis::{vis_decode, vis_encode};
