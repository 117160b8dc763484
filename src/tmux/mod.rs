//! tmux integration: PaneBus talks to tmux only through a control-mode client.
//!
//! [`command`] builds every command line with safe quoting, [`client`] owns the
//! `tmux -C` process and matches replies to requests, and [`model`] keeps a picture of the
//! session's windows and panes current from notifications and listings.

pub mod command;

pub use command::{
    ClientFlag, CommandError, Format, Hook, HookTarget, OptionName, OptionScope, PaneOutput, Spawn,
    Split, SubscriptionScope, Target, TmuxCommand,
};
