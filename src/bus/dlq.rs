//! The dead-letter queue: commands that failed, timed out, had no handler, were not valid
//! commands, or were delivered too often. A list of entry ids (newest first) plus a hash
//! from entry id to entry JSON, so entries can be listed in order and looked up by id.
//!
//! Both keys carry the hash tag `{dlq}` (one cluster slot), so adding an entry is one
//! atomic, idempotent script. Entries decided inside a worker's slot (requeue, poison) wait
//! in the worker's dead-letter list until [`Bus::flush_dead_letters`] has written them here.
//!
//! Retrying an entry deletes the command's stored result (so a crash of the retried run is
//! not mistaken for a finished one), queues the command again (attempt reset to 1, same
//! command id) and then removes the entry; if the process dies between the steps the entry
//! stays, so nothing is lost (at worst it is retried twice).

use serde::Deserialize;
use serde_json::json;

use super::slots::Batch;
use super::{eval, Bus, BusError};
use crate::schema::{Command, DlqCommand, DlqEntry, Event, EventKind};

/// KEYS: dlq, dlq entries. ARGV: entry id, entry JSON. Adds the entry unless it exists.
const PUSH: &str = r"
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 1 then
  redis.call('LPUSH', KEYS[1], ARGV[1])
end
return 1
";

/// Result of retrying one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retried {
    pub entry_id: String,
    pub command_id: String,
    pub worker: String,
}

/// Result of retrying every entry.
#[derive(Debug, Default)]
pub struct RetryReport {
    pub retried: Vec<Retried>,
    /// Entries left in the DLQ, with the reason.
    pub failed: Vec<(String, BusError)>,
}

fn parse_entry(json: &str) -> Result<DlqEntry, BusError> {
    serde_json::from_str(json)
        .map_err(|e| BusError::InvalidPayload(format!("DLQ entry is not valid: {e}")))
}

impl Bus {
    /// The command adding `entry` to the DLQ, for use in a batch. Idempotent: pushing
    /// the same entry twice (a retried batch) lists it once.
    pub(crate) fn dlq_push_cmd(&self, entry: &DlqEntry) -> redis::Cmd {
        let json = serde_json::to_string(entry).expect("DLQ entries serialize");
        self.dlq_push_json_cmd(&entry.id, json)
    }

    fn dlq_push_json_cmd(&self, entry_id: &str, json: String) -> redis::Cmd {
        let keys = [self.keys.dlq(), self.keys.dlq_entries()];
        eval(PUSH, &keys, &[entry_id.to_string(), json])
    }

    /// Adds `entry` to the DLQ.
    pub async fn dlq_push(&self, entry: &DlqEntry) -> Result<(), BusError> {
        let _: i64 = self
            .dlq_push_cmd(entry)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Writes the entries waiting in `worker`'s dead-letter list to the DLQ, then removes
    /// them from that list (two ordered stages: a crash in between writes them again under
    /// the same entry ids, which the DLQ ignores). Returns how many were written.
    pub async fn flush_dead_letters(&self, worker: &str) -> Result<usize, BusError> {
        #[derive(Deserialize)]
        struct EntryId {
            id: String,
        }
        let key = self.keys.dead_letters(worker);
        let mut conn = self.conn.clone();
        let waiting: Vec<String> = redis::cmd("LRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        if waiting.is_empty() {
            return Ok(0);
        }
        let mut batch = Batch::new();
        for json in &waiting {
            let id = serde_json::from_str::<EntryId>(json)
                .map(|e| e.id)
                .map_err(|e| {
                    BusError::InvalidPayload(format!(
                        "dead letter of {worker} is not a DLQ entry ({e}); inspect it with `redis-cli LRANGE {key} 0 -1`"
                    ))
                })?;
            batch.add_ignored(self.dlq_push_json_cmd(&id, json.clone()));
        }
        batch.then();
        for json in &waiting {
            batch.add_ignored(redis::cmd("LREM").arg(&key).arg(1).arg(json).to_owned());
        }
        batch.query(&mut conn).await?;
        Ok(waiting.len())
    }

    /// Number of DLQ entries.
    pub async fn dlq_len(&self) -> Result<usize, BusError> {
        let n: usize = redis::cmd("LLEN")
            .arg(self.keys.dlq())
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(n)
    }

    /// Up to `limit` entries, newest first.
    pub async fn dlq_list(&self, limit: usize) -> Result<Vec<DlqEntry>, BusError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("LRANGE")
            .arg(self.keys.dlq())
            .arg(0)
            // Past i64::MAX (a `--limit` of u64::MAX) means all: -1 is the last element.
            .arg(i64::try_from(limit - 1).unwrap_or(-1))
            .query_async(&mut conn)
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let jsons: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.keys.dlq_entries())
            .arg(&ids)
            .query_async(&mut conn)
            .await?;
        jsons
            .into_iter()
            .flatten()
            .map(|j| parse_entry(&j))
            .collect()
    }

    /// The entry with id `id`, or else the newest entry holding the command with id `id`.
    pub async fn dlq_show(&self, id: &str) -> Result<DlqEntry, BusError> {
        let mut conn = self.conn.clone();
        let json: Option<String> = redis::cmd("HGET")
            .arg(self.keys.dlq_entries())
            .arg(id)
            .query_async(&mut conn)
            .await?;
        if let Some(json) = json {
            return parse_entry(&json);
        }
        let all: Vec<String> = redis::cmd("HVALS")
            .arg(self.keys.dlq_entries())
            .query_async(&mut conn)
            .await?;
        all.iter()
            .filter_map(|j| parse_entry(j).ok())
            .filter(|e| e.command.id() == Some(id))
            .max_by(|a, b| a.id.cmp(&b.id))
            .ok_or_else(|| {
                BusError::NotFound(format!(
                    "no DLQ entry or dead-lettered command with id {id}; list entries with `panebus dlq list`"
                ))
            })
    }

    /// Removes entry `entry_id`; returns whether it existed.
    pub async fn dlq_remove(&self, entry_id: &str) -> Result<bool, BusError> {
        let (_, removed): (i64, i64) = redis::pipe()
            .cmd("LREM")
            .arg(self.keys.dlq())
            .arg(0)
            .arg(entry_id)
            .cmd("HDEL")
            .arg(self.keys.dlq_entries())
            .arg(entry_id)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(removed == 1)
    }

    /// Queues the command of entry `id` (entry or command id) again, to `target` or to the
    /// worker it failed on, with attempt 1; then removes the entry. Entries whose command
    /// was not valid JSON cannot be retried. The target must be registered.
    pub async fn dlq_retry(&self, id: &str, target: Option<&str>) -> Result<Retried, BusError> {
        let entry = self.dlq_show(id).await?;
        let mut command: Command = match &entry.command {
            DlqCommand::Parsed(c) => (**c).clone(),
            DlqCommand::Raw(_) => {
                return Err(BusError::InvalidPayload(format!(
                    "DLQ entry {} holds text that is not a valid command, so it cannot be retried; \
                     inspect it with `panebus dlq show {}` and dispatch a corrected command",
                    entry.id, entry.id
                )))
            }
        };
        command.attempt = 1;
        let worker = target.unwrap_or(&entry.worker).to_string();
        if !self.is_registered(&worker).await? {
            return Err(BusError::UnknownWorker { worker });
        }
        self.delete_result(&command.id).await?;
        self.enqueue(&worker, &command, false).await?;
        self.dlq_remove(&entry.id).await?;
        let event = Event::new(
            EventKind::DlqRetried,
            worker.clone(),
            json!({"entry_id": entry.id, "reason": entry.reason}),
        )
        .with_command(command.id.clone());
        self.emit(&event).await?;
        Ok(Retried {
            entry_id: entry.id,
            command_id: command.id,
            worker,
        })
    }

    /// Retries every entry, oldest first; entries that cannot be retried stay and are
    /// reported with the reason.
    pub async fn dlq_retry_all(&self) -> Result<RetryReport, BusError> {
        let mut ids: Vec<String> = redis::cmd("LRANGE")
            .arg(self.keys.dlq())
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn.clone())
            .await?;
        ids.reverse();
        let mut report = RetryReport::default();
        for id in ids {
            match self.dlq_retry(&id, None).await {
                Ok(r) => report.retried.push(r),
                Err(e) if e.is_connection_error() => return Err(e),
                Err(e) => report.failed.push((id, e)),
            }
        }
        Ok(report)
    }

    /// Deletes every entry; returns how many there were.
    pub async fn dlq_purge(&self) -> Result<usize, BusError> {
        let (n,): (usize,) = redis::pipe()
            .cmd("LLEN")
            .arg(self.keys.dlq())
            .cmd("DEL")
            .arg(self.keys.dlq())
            .arg(self.keys.dlq_entries())
            .ignore()
            .query_async(&mut self.conn.clone())
            .await?;
        if n > 0 {
            self.emit(&Event::new(EventKind::DlqPurged, "", json!({"count": n})))
                .await?;
        }
        Ok(n)
    }
}
