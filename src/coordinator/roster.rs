//! What one tick reads about the workers of the session's panes: one `SMEMBERS` of the
//! registry and one pipelined round trip for the workers that matter here.
//!
//! Workers of other sessions or nodes are skipped. A managed pane whose respawn record is
//! written needs only whether its worker is registered, its heartbeat TTL and its queue
//! length; a pane not managed yet (a candidate for adoption) or whose record is not written
//! needs the whole registry record. Decoding every record on every tick was most of an
//! idle coordinator's CPU (BENCHMARKS.md "## Coordinator").

use std::collections::{HashMap, HashSet};

use crate::bus::{Bus, BusError};
use crate::schema::WorkerInfo;

/// One worker as a tick sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterEntry {
    /// Its registry record exists.
    pub registered: bool,
    /// Its heartbeat key exists with a TTL.
    pub heartbeat_fresh: bool,
    pub queue_depth: usize,
    /// The record, when it was asked for (and parses).
    pub info: Option<WorkerInfo>,
}

/// Reads the registered workers among `candidates` (worker ids of the listed panes); the
/// ones in `known` are read without their record.
pub async fn read(
    bus: &Bus,
    candidates: &HashSet<String>,
    known: &HashSet<&str>,
) -> Result<HashMap<String, RosterEntry>, BusError> {
    let ids: Vec<(String, bool)> = bus
        .worker_ids()
        .await?
        .into_iter()
        .filter(|id| candidates.contains(id))
        .map(|id| {
            let full = !known.contains(id.as_str());
            (id, full)
        })
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let keys = bus.keys();
    let mut pipe = redis::pipe();
    for (id, full) in &ids {
        if *full {
            pipe.cmd("HGETALL").arg(keys.info(id));
        } else {
            pipe.cmd("EXISTS").arg(keys.info(id));
        }
        pipe.cmd("PTTL").arg(keys.heartbeat(id));
        pipe.cmd("LLEN").arg(keys.queue(id));
    }
    let replies: Vec<redis::Value> = pipe.query_async(&mut bus.connection()).await?;
    let mut out = HashMap::with_capacity(ids.len());
    for ((id, full), chunk) in ids.into_iter().zip(replies.chunks(3)) {
        let [record, ttl, depth] = chunk else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "pipelined registry read returned fewer replies than commands",
            ))
            .into());
        };
        let (registered, info) = if full {
            let fields: HashMap<String, String> =
                redis::from_redis_value_ref(record).map_err(redis::RedisError::from)?;
            (!fields.is_empty(), WorkerInfo::from_fields(&fields))
        } else {
            let exists: bool =
                redis::from_redis_value_ref(record).map_err(redis::RedisError::from)?;
            (exists, None)
        };
        let ttl_ms: i64 = redis::from_redis_value_ref(ttl).map_err(redis::RedisError::from)?;
        let queue_depth: usize =
            redis::from_redis_value_ref(depth).map_err(redis::RedisError::from)?;
        out.insert(
            id,
            RosterEntry {
                registered,
                heartbeat_fresh: ttl_ms >= 0,
                queue_depth,
                info,
            },
        );
    }
    Ok(out)
}
