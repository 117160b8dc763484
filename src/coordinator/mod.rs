//! The coordinator: supervises the workers of one tmux session.
//!
//! `panebus attach SESSION` ([`supervisor`]) holds a leader lease ([`lease`]), attaches to
//! tmux in control mode, and runs the event loop (`event_loop.rs`): it detects pane deaths
//! ([`detect`], with [`exit_watch`] seeing pane processes exit through pidfds) and hung
//! workers, asks the pure [`policy`] what to do, and has the actions
//! (`actions.rs`) respawn or quarantine panes. [`reconcile`] decides which panes are
//! managed, from what [`roster`] reads about the session's workers on every tick;
//! [`history`] and [`managed`] keep what the policy needs in Redis so a new
//! coordinator carries on where the last one stopped; [`requests`] carries `panebus
//! restart` to the leader; [`status_line`] renders what tmux shows; [`stop`] turns signals
//! into a clean shutdown. The heartbeat-only [`watchdog`] shares the policy and history.

mod actions;
pub mod detect;
mod event_loop;
pub mod exit_watch;
pub mod history;
pub mod lease;
pub mod managed;
pub mod policy;
pub mod reconcile;
pub mod requests;
pub mod roster;
pub mod status_line;
pub mod stop;
pub mod supervisor;
pub mod watchdog;
