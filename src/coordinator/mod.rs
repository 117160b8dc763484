//! The coordinator: supervises the workers of one tmux session.
//!
//! `panebus attach SESSION` holds a leader lease, attaches to tmux in control mode, detects
//! pane deaths and hung workers, and respawns, quarantines or releases panes. The decisions
//! are made by the pure [`policy`]; every other file here gathers facts or carries out
//! actions.

pub mod policy;
