//! The bus's event stream as tests read it: every entry of the namespace's events stream,
//! oldest first, decoded into a [`StreamEvent`] (fields a test does not find are empty, an
//! unparsable `details` is `null`). Tests assert on what PaneBus reported, so they read
//! the stream straight from Redis rather than through the code under test.

use panebus::bus::Keys;
use redis::Commands;
use serde_json::Value;

/// One event of the stream.
#[derive(Debug, Clone)]
pub struct StreamEvent {
    pub kind: String,
    pub ts_ms: u64,
    pub worker: String,
    pub command_id: String,
    pub details: Value,
}

/// Every event in `keys`' stream, oldest first.
pub fn stream_events(conn: &mut redis::Connection, keys: &Keys) -> Vec<StreamEvent> {
    let reply: redis::streams::StreamRangeReply = conn.xrange_all(keys.events()).unwrap();
    reply
        .ids
        .iter()
        .map(|e| {
            let text = |k: &str| e.get::<String>(k).unwrap_or_default();
            StreamEvent {
                kind: text("type"),
                ts_ms: text("ts_ms").parse().unwrap_or(0),
                worker: text("worker"),
                command_id: text("command_id"),
                details: serde_json::from_str(&text("details")).unwrap_or(Value::Null),
            }
        })
        .collect()
}
