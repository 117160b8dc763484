//! Command-line commands; one file per command. (Branch `up` wires only its own commands
//! here; the full CLI comes from branch `cli`.)

pub mod down;
pub mod up;
