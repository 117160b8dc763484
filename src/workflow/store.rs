//! Workflow records in Redis.
//!
//! A record lives in the hash `<ns>:{workflows}:<id>` (field `record` = the JSON of
//! [`WorkflowRecord`], field `state` = its state, for a quick look with `redis-cli`), and
//! its id in the sorted set `<ns>:{workflows}` scored by creation time, newest last. The
//! shared hash tag keeps them in one Redis Cluster slot, so a record and its index entry
//! are written in one transaction and a listing reads a page of records in one pipeline,
//! on a cluster as on one server. Finished
//! workflows expire after [`FINISHED_TTL`]; their ids are dropped from the index when a
//! listing finds the record gone.

use std::time::Duration;

use crate::bus::{Bus, BusError};

use super::record::WorkflowRecord;

/// How long a finished workflow's record is kept.
pub const FINISHED_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Writes `record` (creating it and indexing it on first write).
pub async fn save(bus: &Bus, record: &WorkflowRecord) -> Result<(), BusError> {
    let key = bus.keys().workflow(&record.id);
    let json = serde_json::to_string(record).expect("a workflow record always serializes");
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("HSET")
        .arg(&key)
        .arg("record")
        .arg(json)
        .arg("state")
        .arg(record.state.as_str())
        .ignore()
        .cmd("ZADD")
        .arg(bus.keys().workflows())
        .arg(record.created_ms)
        .arg(&record.id)
        .ignore();
    if record.state.is_terminal() {
        pipe.cmd("EXPIRE")
            .arg(&key)
            .arg(FINISHED_TTL.as_secs())
            .ignore();
    }
    let () = pipe.query_async(&mut bus.connection()).await?;
    Ok(())
}

/// The record of workflow `id`, if it exists. A record that is not valid JSON is reported,
/// not skipped.
pub async fn load(bus: &Bus, id: &str) -> Result<Option<WorkflowRecord>, BusError> {
    let json: Option<String> = redis::cmd("HGET")
        .arg(bus.keys().workflow(id))
        .arg("record")
        .query_async(&mut bus.connection())
        .await?;
    json.map(|j| parse(id, &j)).transpose()
}

/// Like [`load`], but a missing workflow is a [`BusError::NotFound`] saying what to do.
pub async fn get(bus: &Bus, id: &str) -> Result<WorkflowRecord, BusError> {
    load(bus, id).await?.ok_or_else(|| {
        BusError::NotFound(format!(
            "no workflow {id} in this bus; list workflows with `panebus workflows` (finished ones are kept for 7 days)"
        ))
    })
}

fn parse(id: &str, json: &str) -> Result<WorkflowRecord, BusError> {
    serde_json::from_str(json).map_err(|e| {
        BusError::InvalidPayload(format!(
            "workflow record {id} is not valid: {e}; delete it with `redis-cli DEL \"<ns>:{{workflows}}:{id}\"`"
        ))
    })
}

/// The newest workflows first, at most `count`, only unfinished ones when `active_only`.
pub async fn list(
    bus: &Bus,
    count: usize,
    active_only: bool,
) -> Result<Vec<WorkflowRecord>, BusError> {
    const BATCH: isize = 100;
    let mut conn = bus.connection();
    let mut out = Vec::new();
    let mut start: isize = 0;
    while out.len() < count {
        let ids: Vec<String> = redis::cmd("ZREVRANGE")
            .arg(bus.keys().workflows())
            .arg(start)
            .arg(start + BATCH - 1)
            .query_async(&mut conn)
            .await?;
        if ids.is_empty() {
            break;
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HGET").arg(bus.keys().workflow(id)).arg("record");
        }
        let records: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
        let mut gone = Vec::new();
        for (id, json) in ids.iter().zip(records) {
            match json {
                None => gone.push(id.clone()),
                Some(json) => {
                    let record = parse(id, &json)?;
                    if (!active_only || !record.state.is_terminal()) && out.len() < count {
                        out.push(record);
                    }
                }
            }
        }
        if !gone.is_empty() {
            let _: i64 = redis::cmd("ZREM")
                .arg(bus.keys().workflows())
                .arg(&gone)
                .query_async(&mut conn)
                .await?;
            start -= gone.len() as isize;
        }
        start += BATCH;
    }
    Ok(out)
}
