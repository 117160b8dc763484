//! Fuzz target `stored_json`: arbitrary text decoded as the documents the CLI reads back
//! from Redis, a stored result (`panebus result`, `dispatch --wait`) and a DLQ entry
//! (`panebus dlq`), with the same `serde_json::from_str` the bus uses for them.
//!
//! The first byte picks the document type. The target fails on a panic or a stack overflow
//! and when a decoded document does not survive an encode/decode round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use panebus::schema::{CommandResult, DlqEntry};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(text: &str) {
    if let Ok(document) = serde_json::from_str::<T>(text) {
        let encoded = serde_json::to_string(&document).expect("a decoded document encodes");
        let again: T = serde_json::from_str(&encoded).expect("an encoded document decodes");
        assert_eq!(again, document, "the round trip changed the document");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if selector & 1 == 0 {
        round_trip::<CommandResult>(text);
    } else {
        round_trip::<DlqEntry>(text);
    }
});
