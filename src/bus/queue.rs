//! Per-worker command queues with at-least-once delivery.
//!
//! A dispatcher LPUSHes a command onto `queue` (a Lua script checks the depth limit and
//! that the worker is registered in the same atomic step). The worker BLMOVEs it from the
//! right end of `queue` onto `processing` (on its dedicated connection), runs it, stores the
//! result and then acks by LREM from `processing`. Whatever is left in `processing` was taken
//! by an incarnation that did not finish it: [`Bus::requeue_unacked`] puts it back (with
//! attempt raised by one, or into the DLQ past `max_attempts`), but only while the worker's generation is the
//! one the caller expects, and it bumps the generation, which fences the old incarnation: its
//! acks and heartbeats are refused from then on.

use std::time::Duration;

use serde_json::Value;

use super::{eval, BlockingConnection, Bus, BusError};
use crate::schema::{new_id, now_ms, Command, DecodeError, DlqCommand, DlqEntry, DlqReason};

/// KEYS: queue, info. ARGV: command JSON, max depth, force (`1`/`0`).
/// Returns `{status, depth}`: status 1 = queued (depth after the push), -1 = full, -2 = no
/// such worker.
const ENQUEUE: &str = r"
if ARGV[3] ~= '1' and redis.call('EXISTS', KEYS[2]) == 0 then
  return {-2, 0}
end
local depth = redis.call('LLEN', KEYS[1])
if depth >= tonumber(ARGV[2]) then
  return {-1, depth}
end
return {1, redis.call('LPUSH', KEYS[1], ARGV[1])}
";

static ENQUEUE_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(ENQUEUE));

/// The ack is on every command's finish pipeline: sent as EVALSHA, loaded on NOSCRIPT.
static ACK_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(ACK));

/// KEYS: processing, generation, info. ARGV: raw command, the acking worker's generation,
/// mark idle (`1`/`0`). Returns `{removed, generation}`, or `{-1, generation}` when the
/// caller is fenced. A missing generation key (Redis lost its data) does not fence: the
/// worker registers again.
const ACK: &str = r"
local current = redis.call('GET', KEYS[2])
if current and tonumber(current) ~= tonumber(ARGV[2]) then
  return {-1, tonumber(current)}
end
local removed = redis.call('LREM', KEYS[1], 1, ARGV[1])
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HSET', KEYS[3], 'state', 'idle', 'current_command', '')
end
return {removed, tonumber(ARGV[2])}
";

/// KEYS: processing, queue. ARGV: raw command. Moves one taken command back to the head of
/// the queue (next to be taken) without counting a delivery. Returns 1 if it was moved.
const RETURN_TO_QUEUE: &str = r"
local removed = redis.call('LREM', KEYS[1], 1, ARGV[1])
if removed == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
end
return removed
";

/// KEYS: processing, queue, generation, dlq, dlq entries.
/// ARGV: expected generation, bump (`1`/`0`), n, then per processing element (in LRANGE
/// order, newest first) four values: the element as read, `q` or `d`, the new queue element
/// or DLQ entry JSON, the DLQ entry id (empty for `q`).
/// A compare-and-swap: the caller computed the new elements from an LRANGE; if the
/// generation or the list changed since, nothing is done (`{-1, gen}` / `{-2, gen}`).
/// Returns `{requeued, dead_lettered, generation}`.
const REQUEUE: &str = r"
local gen = tonumber(redis.call('GET', KEYS[3]) or '0')
if gen ~= tonumber(ARGV[1]) then
  return {-1, gen}
end
local n = tonumber(ARGV[3])
local current = redis.call('LRANGE', KEYS[1], 0, -1)
if #current ~= n then
  return {-2, gen}
end
for i = 1, n do
  if current[i] ~= ARGV[4 + (i - 1) * 4] then
    return {-2, gen}
  end
end
if ARGV[2] == '1' then
  gen = redis.call('INCR', KEYS[3])
end
local requeued, dead = 0, 0
for i = 1, n do
  local base = 4 + (i - 1) * 4
  if ARGV[base + 1] == 'q' then
    redis.call('RPUSH', KEYS[2], ARGV[base + 2])
    requeued = requeued + 1
  else
    redis.call('LPUSH', KEYS[4], ARGV[base + 3])
    redis.call('HSET', KEYS[5], ARGV[base + 3], ARGV[base + 2])
    dead = dead + 1
  end
end
redis.call('DEL', KEYS[1])
return {requeued, dead, gen}
";

/// One element taken from a queue: the exact stored bytes (needed to ack it, and not
/// necessarily UTF-8 when someone else wrote the queue) and the command decoded from them,
/// or why they are not a command.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub raw: Vec<u8>,
    pub command: Result<Command, DecodeError>,
}

impl Delivery {
    /// Decodes a queue element with [`Command::decode`].
    pub fn parse(raw: Vec<u8>) -> Delivery {
        let command = Command::decode(&raw);
        Delivery { raw, command }
    }
}

/// What [`Bus::requeue_unacked`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequeueOutcome {
    /// Commands put back at the head of the queue.
    pub requeued: usize,
    /// Commands moved to the DLQ (attempts exhausted, or not valid commands).
    pub dead_lettered: usize,
    /// The worker's generation afterwards.
    pub generation: u64,
}

/// Parses a payload given as text: it must be a JSON object.
pub fn parse_payload(text: &str) -> Result<Value, BusError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        BusError::InvalidPayload(format!(
            "{e}; give a JSON object, e.g. --payload '{{\"text\": \"hello\"}}'"
        ))
    })?;
    Command::check_payload(&value).map_err(BusError::InvalidPayload)?;
    Ok(value)
}

impl Bus {
    /// Queues `command` for `worker` and returns the queue depth after the push.
    ///
    /// Fails with [`BusError::QueueFull`] when the queue holds `max_queue_depth` commands,
    /// [`BusError::UnknownWorker`] when no such worker is registered (unless `force`),
    /// [`BusError::PayloadTooLarge`] or [`BusError::InvalidPayload`]. Nothing is queued then.
    pub async fn enqueue(
        &self,
        worker: &str,
        command: &Command,
        force: bool,
    ) -> Result<usize, BusError> {
        command.check().map_err(BusError::InvalidPayload)?;
        let json = command.to_json();
        if json.len() > self.limits.max_payload_bytes {
            return Err(BusError::PayloadTooLarge {
                size: json.len(),
                limit: self.limits.max_payload_bytes,
            });
        }
        let keys = [self.keys.queue(worker), self.keys.info(worker)];
        let args = [
            json,
            self.limits.max_queue_depth.to_string(),
            if force { "1" } else { "0" }.to_string(),
        ];
        // EVALSHA (loading the script on NOSCRIPT): enqueue is the hot path of dispatchers.
        let (status, depth): (i64, usize) = ENQUEUE_SCRIPT
            .key(&keys[0])
            .key(&keys[1])
            .arg(&args[..])
            .invoke_async(&mut self.conn.clone())
            .await?;
        match status {
            1 => Ok(depth),
            -1 => Err(BusError::QueueFull {
                worker: worker.to_string(),
                depth,
            }),
            _ => Err(BusError::UnknownWorker {
                worker: worker.to_string(),
            }),
        }
    }

    /// Takes the oldest command of `worker`'s queue into its processing list, waiting up to
    /// `block` for one. Must run on a dedicated [`BlockingConnection`].
    pub async fn take(
        &self,
        blocking: &mut BlockingConnection,
        worker: &str,
        block: Duration,
    ) -> Result<Option<Delivery>, BusError> {
        let raw: Option<Vec<u8>> = redis::cmd("BLMOVE")
            .arg(self.keys.queue(worker))
            .arg(self.keys.processing(worker))
            .arg("RIGHT")
            .arg("LEFT")
            .arg(block_seconds(block))
            .query_async(&mut blocking.conn)
            .await?;
        Ok(raw.map(Delivery::parse))
    }

    /// The oldest element of `worker`'s processing list, if any: a command taken but not
    /// acked, e.g. after a connection loss while BLMOVE was parked.
    pub async fn oldest_unacked(&self, worker: &str) -> Result<Option<Delivery>, BusError> {
        let raw: Option<Vec<u8>> = redis::cmd("LINDEX")
            .arg(self.keys.processing(worker))
            .arg(-1)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(raw.map(Delivery::parse))
    }

    /// The ack of `raw` (see [`Bus::ack`]) as an EVALSHA, for use in a pipeline; on a
    /// NOSCRIPT reply call [`Bus::load_ack_script`] and send it again. `mark_idle` also
    /// resets the registry record's state (needed only if it was marked busy).
    pub(crate) fn ack_cmd(
        &self,
        worker: &str,
        raw: &[u8],
        generation: u64,
        mark_idle: bool,
    ) -> redis::Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(ACK_SCRIPT.get_hash())
            .arg(3)
            .arg(self.keys.processing(worker))
            .arg(self.keys.generation(worker))
            .arg(self.keys.info(worker))
            .arg(raw)
            .arg(generation)
            .arg(if mark_idle { "1" } else { "0" });
        cmd
    }

    /// Loads the ack script into Redis's script cache (after a NOSCRIPT reply).
    pub(crate) async fn load_ack_script(&self) -> Result<(), BusError> {
        ACK_SCRIPT
            .prepare_invoke()
            .load_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Interprets the reply of [`Bus::ack_cmd`].
    pub(crate) fn ack_reply(
        worker: &str,
        generation: u64,
        reply: (i64, u64),
    ) -> Result<bool, BusError> {
        match reply {
            (-1, actual) => Err(BusError::Fenced {
                worker: worker.to_string(),
                expected: generation,
                actual,
            }),
            (removed, _) => Ok(removed > 0),
        }
    }

    /// Acknowledges a command: removes `raw` from the processing list and marks the worker
    /// idle. Returns whether it was still there. Fails with [`BusError::Fenced`] when
    /// `generation` is no longer the worker's generation.
    pub async fn ack(&self, worker: &str, raw: &[u8], generation: u64) -> Result<bool, BusError> {
        let reply: (i64, u64) = ACK_SCRIPT
            .key(self.keys.processing(worker))
            .key(self.keys.generation(worker))
            .key(self.keys.info(worker))
            .arg(raw)
            .arg(generation)
            .arg("1")
            .invoke_async(&mut self.conn.clone())
            .await?;
        Bus::ack_reply(worker, generation, reply)
    }

    /// Puts a taken command back at the head of the queue (next to be taken) without
    /// counting a delivery; used when a worker stops before it could run it.
    pub async fn return_to_queue(&self, worker: &str, raw: &[u8]) -> Result<bool, BusError> {
        let keys = [self.keys.processing(worker), self.keys.queue(worker)];
        let moved: i64 = eval(RETURN_TO_QUEUE, &keys, &[raw])
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(moved == 1)
    }

    /// Requeues every unacked command of `worker` whose generation is `expected_generation`,
    /// and bumps the generation so that incarnation is fenced (its later acks and heartbeats
    /// fail). Each command's attempt is raised by one; a command past its `max_attempts`, or
    /// an element that is not a valid command, goes to the DLQ instead. Order is kept: the
    /// oldest requeued command is taken first.
    ///
    /// For the coordinator, after it has made sure the incarnation is dead (pane dead,
    /// respawned or killed). Fails with [`BusError::Fenced`] if the generation differs.
    pub async fn requeue_unacked(
        &self,
        worker: &str,
        expected_generation: u64,
    ) -> Result<RequeueOutcome, BusError> {
        self.requeue(worker, expected_generation, true).await
    }

    /// Requeues what a previous incarnation of this worker left in its processing list
    /// (attempt + 1, DLQ past the limit). Called by a worker at start-up with its own,
    /// already bumped, generation.
    pub async fn recover_unacked(
        &self,
        worker: &str,
        own_generation: u64,
    ) -> Result<RequeueOutcome, BusError> {
        self.requeue(worker, own_generation, false).await
    }

    async fn requeue(
        &self,
        worker: &str,
        generation: u64,
        bump: bool,
    ) -> Result<RequeueOutcome, BusError> {
        let keys = [
            self.keys.processing(worker),
            self.keys.queue(worker),
            self.keys.generation(worker),
            self.keys.dlq(),
            self.keys.dlq_entries(),
        ];
        // The list can change between the read and the script (a live worker acking); the
        // script refuses then and we read again.
        for _ in 0..10 {
            // Bytes, not text: an element that is not UTF-8 must still compare equal in
            // the script, and goes to the DLQ as poison.
            let current: Vec<Vec<u8>> = redis::cmd("LRANGE")
                .arg(&keys[0])
                .arg(0)
                .arg(-1)
                .query_async(&mut self.conn.clone())
                .await?;
            let mut args: Vec<Vec<u8>> = vec![
                generation.to_string().into_bytes(),
                if bump { b"1".to_vec() } else { b"0".to_vec() },
                current.len().to_string().into_bytes(),
            ];
            for raw in &current {
                args.push(raw.clone());
                match self.redelivery(worker, raw) {
                    Ok(next) => args.extend([b"q".to_vec(), next.into_bytes(), Vec::new()]),
                    Err(entry) => {
                        let json = serde_json::to_string(&entry).expect("DLQ entries serialize");
                        args.extend([b"d".to_vec(), json.into_bytes(), entry.id.into_bytes()]);
                    }
                }
            }
            let reply: Vec<i64> = eval(REQUEUE, &keys, &args)
                .query_async(&mut self.conn.clone())
                .await?;
            match reply.as_slice() {
                [-1, actual] => {
                    return Err(BusError::Fenced {
                        worker: worker.to_string(),
                        expected: generation,
                        actual: *actual as u64,
                    })
                }
                [-2, _] => continue,
                [requeued, dead, gen] => {
                    return Ok(RequeueOutcome {
                        requeued: *requeued as usize,
                        dead_lettered: *dead as usize,
                        generation: *gen as u64,
                    })
                }
                other => {
                    return Err(BusError::InvalidPayload(format!(
                        "unexpected reply {other:?} from the requeue script"
                    )))
                }
            }
        }
        Err(BusError::Timeout {
            what: format!("the processing list of {worker} kept changing while requeueing"),
            after: Duration::ZERO,
        })
    }

    /// The next delivery of `raw` (attempt + 1), or the DLQ entry it becomes.
    fn redelivery(&self, worker: &str, raw: &[u8]) -> Result<String, DlqEntry> {
        let dead = |command: DlqCommand, error: String, reason: DlqReason| DlqEntry {
            id: new_id(),
            command,
            error,
            worker: worker.to_string(),
            ts_ms: now_ms(),
            reason,
        };
        match Command::decode(raw) {
            Ok(mut cmd) => {
                cmd.attempt += 1;
                if cmd.attempt > cmd.max_attempts {
                    let error = format!(
                        "delivered {} times without being acknowledged (max_attempts {})",
                        cmd.attempt - 1,
                        cmd.max_attempts
                    );
                    Err(dead(
                        DlqCommand::Parsed(Box::new(cmd)),
                        error,
                        DlqReason::AttemptsExhausted,
                    ))
                } else {
                    Ok(cmd.to_json())
                }
            }
            Err(reason) => Err(dead(
                DlqCommand::from_raw(raw),
                reason.to_string(),
                DlqReason::Poison,
            )),
        }
    }

    /// Number of commands waiting in `worker`'s queue.
    pub async fn queue_depth(&self, worker: &str) -> Result<usize, BusError> {
        let n: usize = redis::cmd("LLEN")
            .arg(self.keys.queue(worker))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(n)
    }

    /// Number of commands taken by `worker` and not acked.
    pub async fn processing_len(&self, worker: &str) -> Result<usize, BusError> {
        let n: usize = redis::cmd("LLEN")
            .arg(self.keys.processing(worker))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(n)
    }

    /// The raw elements of `worker`'s processing list, newest first, as text (bytes that
    /// are not UTF-8 shown as U+FFFD).
    pub async fn unacked(&self, worker: &str) -> Result<Vec<String>, BusError> {
        let items: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(self.keys.processing(worker))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(items
            .iter()
            .map(|raw| String::from_utf8_lossy(raw).into_owned())
            .collect())
    }
}

/// BLMOVE's timeout argument in seconds; never 0, which would mean "forever".
fn block_seconds(block: Duration) -> String {
    let secs = block.as_secs_f64().max(0.001);
    format!("{secs:.3}")
}
