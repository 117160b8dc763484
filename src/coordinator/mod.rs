//! The coordinator: supervises the workers of one tmux session.
//!
//! `panebus attach SESSION` holds a leader lease ([`lease`]), attaches to tmux in control
//! mode, detects pane deaths ([`detect`]) and hung workers, and respawns, quarantines or
//! releases panes. The decisions are made by the pure [`policy`]. [`reconcile`] decides
//! which panes are managed; [`history`] and [`managed`] keep what the policy needs in Redis
//! so a new coordinator carries on where the last one stopped; [`requests`] carries
//! `panebus restart` to the leader; [`status_line`] renders what tmux shows.

pub mod detect;
pub mod history;
pub mod lease;
pub mod managed;
pub mod policy;
pub mod reconcile;
pub mod requests;
pub mod status_line;
pub mod stop;
pub mod supervisor;
pub mod watchdog;
