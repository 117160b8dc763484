//! Incremental, zero-copy parser for the tmux control-mode protocol (`tmux -C` / `-CC`).
//!
//! Feed it the bytes a control client writes, in chunks of any size, and pull typed
//! [`Event`]s: reply blocks (`%begin … %end|%error`, matched by their exact guard triple),
//! `%output` decoded to raw bytes, and every notification of tmux 3.2 to the newest release.
//! Unknown `%word` lines come out as [`Event::Unknown`], bare lines as [`Event::Bare`], and a
//! malformed line as an error value after which parsing continues. No I/O, no async.
//!
//! ```
//! use tmux_control_parser::{Event, Layout, Parser};
//!
//! let mut parser = Parser::new();
//! parser.feed(b"%layout-change @1 b25f,80x24,0,0,2 b25f,80x24,0,0,2 *\n%exit\n");
//! while let Some(event) = parser.next_event() {
//!     match event.expect("valid stream") {
//!         Event::LayoutChange { window, layout, .. } => {
//!             let panes = Layout::parse(layout).expect("valid layout").pane_ids();
//!             println!("window {} has panes {panes:?}", window.0);
//!         }
//!         Event::Exit { .. } => println!("control client exited"),
//!         other => println!("{other:?}"),
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
