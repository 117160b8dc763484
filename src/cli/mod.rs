//! Command-line commands; one file per command. (Branch `up` wires only its own commands
//! here; the full CLI comes from branch `cli`.)

pub mod down;
pub mod prompt_box;
pub mod status_line;
pub mod up;
