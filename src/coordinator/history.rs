//! A managed pane's restart history and quarantine record in Redis: what the policy needs
//! to survive a coordinator restart.
//!
//! The history is a sorted set per worker (`<ns>:{<wid>}:restarts`, score = time in ms,
//! member = one JSON entry), trimmed to the newest [`HISTORY_KEEP`] entries. The quarantine
//! record is a hash (`<ns>:{<wid>}:quarantine`) that exists exactly while the pane is
//! quarantined and holds the diagnostic shown by `panebus status`. Both keys carry the
//! worker's hash tag, so the release script touches one slot.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::policy::{HistoryEntry, HistoryKind, RestartHistory};
use crate::bus::{eval, Bus, BusError};
use crate::schema::{new_id, now_ms};

/// Entries kept per worker; older ones only ever shorten a backoff.
pub const HISTORY_KEEP: usize = 64;

/// KEYS: quarantine, restarts. ARGV: release entry JSON, now ms, keep.
/// Lifts a quarantine and records the release; returns 1 if the pane was quarantined.
const RELEASE: &str = r"
if redis.call('DEL', KEYS[1]) == 0 then
  return 0
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -1 - tonumber(ARGV[3]))
return 1
";

/// One history entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredEntry {
    /// Makes members unique when two entries share a millisecond.
    id: String,
    at_ms: u64,
    kind: StoredKind,
    #[serde(default)]
    replaced_uptime_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredKind {
    Automatic,
    Manual,
    Release,
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

impl StoredEntry {
    fn new(entry: &HistoryEntry) -> StoredEntry {
        let (kind, uptime) = match entry.kind {
            HistoryKind::AutomaticRespawn { replaced_uptime } => {
                (StoredKind::Automatic, replaced_uptime.as_millis() as u64)
            }
            HistoryKind::ManualRestart => (StoredKind::Manual, 0),
            HistoryKind::Release => (StoredKind::Release, 0),
        };
        StoredEntry {
            id: new_id(),
            at_ms: ms(entry.at),
            kind,
            replaced_uptime_ms: uptime,
        }
    }

    fn entry(&self) -> HistoryEntry {
        HistoryEntry {
            at: from_ms(self.at_ms),
            kind: match self.kind {
                StoredKind::Automatic => HistoryKind::AutomaticRespawn {
                    replaced_uptime: Duration::from_millis(self.replaced_uptime_ms),
                },
                StoredKind::Manual => HistoryKind::ManualRestart,
                StoredKind::Release => HistoryKind::Release,
            },
        }
    }
}

/// Why a pane was quarantined, for people: stored in `:quarantine`, shown by `status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostic {
    pub since_ms: u64,
    /// One line: the failure and the count, e.g. `exited with status 1; 5 respawns in 5m`.
    pub reason: String,
    /// How the last incarnation ended (`status 3`, `signal 9`, `heartbeat expired`).
    pub exit: String,
    /// The last lines of the pane (capture-pane), newest last.
    pub last_lines: String,
    /// The command the worker was running, if any.
    pub command_in_flight: String,
}

impl Diagnostic {
    fn fields(&self) -> [(&'static str, String); 5] {
        [
            ("since_ms", self.since_ms.to_string()),
            ("reason", self.reason.clone()),
            ("exit", self.exit.clone()),
            ("last_lines", self.last_lines.clone()),
            ("command_in_flight", self.command_in_flight.clone()),
        ]
    }

    fn from_fields(mut fields: HashMap<String, String>) -> Diagnostic {
        let mut take = |k: &str| fields.remove(k).unwrap_or_default();
        Diagnostic {
            since_ms: take("since_ms").parse().unwrap_or(0),
            reason: take("reason"),
            exit: take("exit"),
            last_lines: take("last_lines"),
            command_in_flight: take("command_in_flight"),
        }
    }
}

/// Reads the restart history and quarantine flag of `worker`.
pub async fn load(bus: &Bus, worker: &str) -> Result<RestartHistory, BusError> {
    let mut loaded = load_many(bus, &[(worker, true)]).await?;
    Ok(loaded.pop().expect("one history per worker asked for"))
}

/// Reads the quarantine flag of every `(worker, with_entries)` and, where `with_entries`,
/// its restart history, in one pipelined round trip; one history per worker, in order.
/// A running worker with a fresh heartbeat needs only the flag (the policy leaves it alone
/// either way), which spares parsing its history on every tick.
pub async fn load_many(
    bus: &Bus,
    workers: &[(&str, bool)],
) -> Result<Vec<RestartHistory>, BusError> {
    if workers.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for (worker, with_entries) in workers {
        if *with_entries {
            pipe.cmd("ZRANGE")
                .arg(bus.keys().restarts(worker))
                .arg(0)
                .arg(-1);
        }
        pipe.cmd("EXISTS").arg(bus.keys().quarantine(worker));
    }
    let replies: Vec<redis::Value> = pipe.query_async(&mut bus.connection()).await?;
    let mut replies = replies.iter();
    let mut next = || replies.next().ok_or(BusError::Redis(short_reply()));
    let mut out = Vec::with_capacity(workers.len());
    for (_, with_entries) in workers {
        let members: Vec<String> = if *with_entries {
            redis::from_redis_value_ref(next()?).map_err(redis::RedisError::from)?
        } else {
            Vec::new()
        };
        let quarantined: bool =
            redis::from_redis_value_ref(next()?).map_err(redis::RedisError::from)?;
        // An entry that does not parse was not written by PaneBus; skipping it only forgets
        // one respawn, which the window would forget anyway.
        let entries = members
            .iter()
            .filter_map(|m| serde_json::from_str::<StoredEntry>(m).ok())
            .map(|s| s.entry())
            .collect();
        out.push(RestartHistory {
            entries,
            quarantined,
        });
    }
    Ok(out)
}

fn short_reply() -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "pipelined history read returned fewer replies than commands",
    ))
}

/// Appends `entry` to the history of `worker`.
pub async fn record(bus: &Bus, worker: &str, entry: &HistoryEntry) -> Result<(), BusError> {
    let stored = StoredEntry::new(entry);
    let key = bus.keys().restarts(worker);
    let () = redis::pipe()
        .cmd("ZADD")
        .arg(&key)
        .arg(stored.at_ms)
        .arg(serde_json::to_string(&stored).expect("entries serialize"))
        .ignore()
        .cmd("ZREMRANGEBYRANK")
        .arg(&key)
        .arg(0)
        .arg(-1 - HISTORY_KEEP as i64)
        .ignore()
        .query_async(&mut bus.connection())
        .await?;
    Ok(())
}

/// Marks `worker` quarantined with `diagnostic`.
pub async fn quarantine(bus: &Bus, worker: &str, diagnostic: &Diagnostic) -> Result<(), BusError> {
    let key = bus.keys().quarantine(worker);
    let mut pipe = redis::pipe();
    pipe.cmd("DEL").arg(&key).ignore();
    pipe.cmd("HSET").arg(&key);
    for (field, value) in diagnostic.fields() {
        pipe.arg(field).arg(value);
    }
    pipe.ignore();
    let () = pipe.query_async(&mut bus.connection()).await?;
    Ok(())
}

/// The quarantine diagnostic of `worker`, if it is quarantined.
pub async fn diagnostic(bus: &Bus, worker: &str) -> Result<Option<Diagnostic>, BusError> {
    let fields: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(bus.keys().quarantine(worker))
        .query_async(&mut bus.connection())
        .await?;
    Ok((!fields.is_empty()).then(|| Diagnostic::from_fields(fields)))
}

/// Lifts the quarantine of `worker` and records the release. `Ok(false)` if it was not
/// quarantined (nothing changes then).
pub async fn release(bus: &Bus, worker: &str) -> Result<bool, BusError> {
    let entry = StoredEntry::new(&HistoryEntry {
        at: SystemTime::now(),
        kind: HistoryKind::Release,
    });
    let keys = [bus.keys().quarantine(worker), bus.keys().restarts(worker)];
    let args = [
        serde_json::to_string(&entry).expect("entries serialize"),
        now_ms().to_string(),
        HISTORY_KEEP.to_string(),
    ];
    let released: i64 = eval(RELEASE, &keys, &args)
        .query_async(&mut bus.connection())
        .await?;
    Ok(released == 1)
}
