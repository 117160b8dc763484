//! Fuzz target `command_json`: arbitrary bytes through `Delivery::parse`, the function a
//! worker calls on every queue element it takes (and the requeue path through
//! `Command::decode`).
//!
//! A queue can hold anything a Redis client pushed: not UTF-8, not JSON, JSON of the wrong
//! shape, nesting thousands deep. The target fails on a panic or a stack overflow, when a
//! decoded command does not re-encode to one that decodes to the same command (a requeue
//! must not change it), and when the DLQ copy disagrees with the decision (a decoded
//! command is kept parsed, poison is kept raw).
#![no_main]

use libfuzzer_sys::fuzz_target;
use panebus::bus::Delivery;
use panebus::schema::{Command, DlqCommand};

fuzz_target!(|data: &[u8]| {
    let delivery = Delivery::parse(data.to_vec());
    assert_eq!(delivery.raw, data, "the delivery keeps the exact bytes");
    match delivery.command {
        Ok(command) => {
            let again = Command::decode(command.to_json().as_bytes())
                .expect("a decoded command re-encodes to a valid one");
            assert_eq!(again, command, "re-encoding changed the command");
            assert!(matches!(DlqCommand::from_raw(data), DlqCommand::Parsed(_)));
        }
        Err(error) => {
            assert!(error.to_string().starts_with("not a valid command"));
            assert!(matches!(DlqCommand::from_raw(data), DlqCommand::Raw(_)));
        }
    }
});
