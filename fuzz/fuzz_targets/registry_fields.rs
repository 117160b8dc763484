//! Fuzz target `registry_fields`: arbitrary hash fields through `WorkerInfo::from_fields`,
//! which `panes`, `status`, `top` and the coordinator apply to every worker's `info` hash.
//!
//! Anyone with write access to Redis can put anything in those fields; a record that cannot
//! be read is skipped (`None`), never a panic. A record that is read must survive
//! `to_fields` → `from_fields` unchanged.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use panebus::schema::WorkerInfo;

fuzz_target!(|fields: HashMap<String, String>| {
    if let Some(info) = WorkerInfo::from_fields(&fields) {
        let written: HashMap<String, String> = info
            .to_fields()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(WorkerInfo::from_fields(&written), Some(info));
    }
});
