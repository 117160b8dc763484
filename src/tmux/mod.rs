//! tmux integration: PaneBus talks to tmux only through a control-mode client.
//!
//! [`command`] builds every command line with safe quoting, [`client`] owns the `tmux -C`
//! process and matches replies to requests, [`server`] says which tmux server to reach, and
//! [`model`] keeps a picture of the session's windows and panes current from notifications
//! and listings.

pub mod client;
pub mod command;
pub mod error;
pub mod model;
pub mod server;

pub use client::{Attached, ConnectOptions, ControlClient, Notification, Reply};
pub use command::{
    ClientFlag, CommandError, Format, Hook, HookTarget, OptionName, OptionScope, PaneOutput, Spawn,
    Split, SubscriptionScope, Target, TmuxCommand,
};
pub use error::TmuxError;
pub use model::{ModelChange, PaneListing, PaneRecord, PaneState, SessionModel, WindowState};
pub use server::TmuxServerRef;
pub use tmux_control_parser::{OwnedEvent, PaneId, SessionId, WindowId};
