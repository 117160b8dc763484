//! The events stream: one Redis stream per bus, capped with an approximate MAXLEN.
//!
//! Each entry has the fields `type`, `ts_ms`, `worker`, `command_id` (may be empty) and
//! `details` (JSON object), readable with plain `redis-cli XRANGE <ns>:events - +`.
//! Following the stream uses `XREAD BLOCK` on a dedicated connection.

use std::time::Duration;

use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use serde_json::Value;

use super::{BlockingConnection, Bus, BusError};
use crate::schema::{Event, EventKind};

/// An event with its stream id (`<ms>-<seq>`).
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub id: String,
    pub event: Event,
}

fn record(entry: &StreamId) -> EventRecord {
    let text = |k: &str| entry.get::<String>(k).unwrap_or_default();
    let kind: EventKind = text("type").parse().expect("infallible");
    let command_id = Some(text("command_id")).filter(|c| !c.is_empty());
    let details =
        serde_json::from_str(&text("details")).unwrap_or(Value::Object(Default::default()));
    EventRecord {
        id: entry.id.clone(),
        event: Event {
            kind,
            ts_ms: text("ts_ms").parse().unwrap_or(0),
            worker: text("worker"),
            command_id,
            details,
        },
    }
}

impl Bus {
    /// The XADD of `event`, for use in a pipeline.
    pub(crate) fn emit_cmd(&self, event: &Event) -> redis::Cmd {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.keys.events())
            .arg("MAXLEN")
            .arg("~")
            .arg(self.limits.events_maxlen)
            .arg("*")
            .arg("type")
            .arg(event.kind.as_str())
            .arg("ts_ms")
            .arg(event.ts_ms)
            .arg("worker")
            .arg(&event.worker)
            .arg("command_id")
            .arg(event.command_id.as_deref().unwrap_or(""))
            .arg("details")
            .arg(event.details.to_string());
        cmd
    }

    /// Appends `event` to the stream; returns its stream id.
    pub async fn emit(&self, event: &Event) -> Result<String, BusError> {
        let id: String = self
            .emit_cmd(event)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(id)
    }

    /// The last `count` events, oldest first.
    pub async fn recent_events(&self, count: usize) -> Result<Vec<EventRecord>, BusError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let reply: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(self.keys.events())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(reply.ids.iter().rev().map(record).collect())
    }

    /// Events after stream id `after` (`$` = only new ones), waiting up to `block` for at
    /// least one. Pass the id of the last returned record as the next `after`. Must run on a
    /// dedicated [`BlockingConnection`]; returns an empty list when nothing arrived.
    pub async fn events_after(
        &self,
        blocking: &mut BlockingConnection,
        after: &str,
        block: Duration,
        count: usize,
    ) -> Result<Vec<EventRecord>, BusError> {
        let reply: Option<StreamReadReply> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(count.max(1))
            .arg("BLOCK")
            .arg(block.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(self.keys.events())
            .arg(after)
            .query_async(&mut blocking.conn)
            .await?;
        Ok(reply
            .map(|r| {
                r.keys
                    .iter()
                    .flat_map(|k| k.ids.iter().map(record))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The id of the newest event, or `0-0` if the stream is empty; a starting point for
    /// [`Bus::events_after`] that does not miss events emitted in between.
    pub async fn last_event_id(&self) -> Result<String, BusError> {
        let reply: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(self.keys.events())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(reply
            .ids
            .first()
            .map(|e| e.id.clone())
            .unwrap_or_else(|| "0-0".to_string()))
    }
}
