//! PaneBus: coordinate long-lived workers in tmux panes, with Redis as the control plane.
//!
//! The binary (`src/main.rs`) is a thin shell over this library. Each module owns one
//! concern: [`config`] reads settings, [`schema`] holds the wire types, [`bus`] owns every
//! Redis key and operation, [`worker`] runs in a pane, [`tmux`] speaks control mode,
//! [`coordinator`] decides and acts on pane deaths, [`admin`] answers the CLI's queries and
//! [`cli`] turns arguments into calls.

pub mod admin;
pub mod bus;
pub mod cli;
pub mod config;
pub mod coordinator;
pub mod logging;
pub mod schema;
pub mod tmux;
pub mod up;
pub mod worker;
pub mod workflow;
