//! Incremental parser for the tmux control-mode protocol (to be written).
pub mod event;
pub use event::*;
