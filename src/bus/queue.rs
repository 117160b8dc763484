//! Per-worker command queues with at-least-once delivery.
//!
//! A dispatcher LPUSHes a command onto `queue` (a Lua script checks the depth limit and
//! that the worker is registered in the same atomic step). The worker BLMOVEs it from the
//! right end of `queue` onto `processing` (on its dedicated connection), runs it, stores the
//! result and then acks by LREM from `processing`. Whatever is left in `processing` was taken
//! by an incarnation that did not finish it: [`Bus::requeue_unacked`] puts it back (with
//! attempt raised by one, or into the DLQ past `max_attempts`; a command whose result is
//! already stored is dropped, not run again), but only while the worker's generation is
//! the one the caller expects, and it bumps the generation, which fences the old
//! incarnation: its acks and heartbeats are refused from then on. Every script touches the
//! keys of one worker only (one cluster slot); dead letters leave the worker's slot through
//! its dead-letter list, so a crash between the two slots loses nothing.

use std::time::Duration;

use serde_json::Value;

use super::slots::Batch;
use super::{eval, BlockingConnection, Bus, BusError};
use crate::schema::{
    new_id, now_ms, Command, CommandResult, DecodeError, DlqCommand, DlqEntry, DlqReason,
};

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

/// [`Bus::ack`] sends the ack as EVALSHA, loading it on NOSCRIPT.
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

/// KEYS: processing, generation, dead letters. ARGV: raw element, the worker's generation,
/// DLQ entry JSON. Moves one taken element out of `processing` into the worker's dead
/// letters (from where [`Bus::flush_dead_letters`] writes it to the DLQ), fenced like
/// `ACK`. Returns `{moved 0/1, generation}` or `{-1, generation}` when fenced.
const DEAD_LETTER: &str = r"
local current = redis.call('GET', KEYS[2])
if current and tonumber(current) ~= tonumber(ARGV[2]) then
  return {-1, tonumber(current)}
end
local removed = redis.call('LREM', KEYS[1], 1, ARGV[1])
if removed == 1 then
  redis.call('RPUSH', KEYS[3], ARGV[3])
end
return {removed, tonumber(ARGV[2])}
";

/// KEYS: processing, queue, generation, dead letters (all in the worker's slot).
/// ARGV: expected generation, bump (`1`/`0`), n, then per processing element (in LRANGE
/// order, newest first) three values: the element as read; `q` (requeue), `d`
/// (dead-letter) or `x` (already finished: its result is stored, drop it); the new queue
/// element (`q`) or DLQ entry JSON (`d`), else empty.
/// A compare-and-swap: the caller computed the new elements from an LRANGE; if the
/// generation or the list changed since, nothing is done (`{-1, gen}` / `{-2, gen}`).
/// Dead letters go to the worker's dead-letter list, oldest first; the caller then writes
/// them to the DLQ (another slot). Returns `{requeued, dead_lettered, finished, generation}`.
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
  if current[i] ~= ARGV[4 + (i - 1) * 3] then
    return {-2, gen}
  end
end
if ARGV[2] == '1' then
  gen = redis.call('INCR', KEYS[3])
end
local requeued, dead, finished = 0, 0, 0
for i = 1, n do
  local base = 4 + (i - 1) * 3
  if ARGV[base + 1] == 'q' then
    redis.call('RPUSH', KEYS[2], ARGV[base + 2])
    requeued = requeued + 1
  end
end
for i = n, 1, -1 do
  local base = 4 + (i - 1) * 3
  if ARGV[base + 1] == 'd' then
    redis.call('RPUSH', KEYS[4], ARGV[base + 2])
    dead = dead + 1
  elseif ARGV[base + 1] == 'x' then
    finished = finished + 1
  end
end
redis.call('DEL', KEYS[1])
return {requeued, dead, finished, gen}
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
    /// Commands dropped because their result was already stored (the incarnation died
    /// between storing the result and the ack): they are not run again.
    pub finished: usize,
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
        let (status, depth) = if self.limits.replica_acks == 0 {
            // EVALSHA (loading the script on NOSCRIPT): enqueue is the hot path of dispatchers.
            ENQUEUE_SCRIPT
                .key(&keys[0])
                .key(&keys[1])
                .arg(&args[..])
                .invoke_async(&mut self.conn.clone())
                .await?
        } else {
            // WAIT in the same pipeline, so on the same server right after the script: it
            // returns how many replicas have this connection's writes so far.
            let wanted = self.limits.replica_acks;
            let within = self.limits.replica_ack_timeout;
            let ((status, depth), acked): ((i64, usize), u32) = redis::pipe()
                .add_command(eval(ENQUEUE, &keys, &args))
                .cmd("WAIT")
                .arg(wanted)
                .arg(within.as_millis().max(1) as u64)
                .query_async(&mut self.conn.clone())
                .await?;
            if status == 1 && acked < wanted {
                return Err(BusError::NotReplicated {
                    command_id: command.id.clone(),
                    acked,
                    wanted,
                    within,
                });
            }
            (status, depth)
        };
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
        let raw: Option<Vec<u8>> = self
            .take_cmd(worker, block)
            .query_async(&mut blocking.conn)
            .await?;
        Ok(raw.map(Delivery::parse))
    }

    /// Runs `finish` (the finish batch of the previous command) and then [`Bus::take`], as
    /// one pipeline on the blocking connection: one round trip, where a separate finish
    /// would cost a second one. Only for a blocking connection to a single server; other
    /// deployments refuse the pipeline (a client error, nothing sent): then send `finish`
    /// on the shared connection and take on its own. After any other error it is unknown
    /// which steps ran: send `finish` again (idempotent) and look for a command already
    /// moved to the processing list ([`Bus::oldest_unacked`]).
    pub async fn finish_and_take(
        &self,
        blocking: &mut BlockingConnection,
        finish: &Batch,
        worker: &str,
        block: Duration,
    ) -> Result<(Vec<redis::Value>, Option<Delivery>), redis::RedisError> {
        let (replies, taken) = finish
            .query_then(&mut blocking.conn, self.take_cmd(worker, block))
            .await?;
        let raw: Option<Vec<u8>> = redis::from_redis_value(taken)?;
        Ok((replies, raw.map(Delivery::parse)))
    }

    fn take_cmd(&self, worker: &str, block: Duration) -> redis::Cmd {
        let mut cmd = redis::cmd("BLMOVE");
        cmd.arg(self.keys.queue(worker))
            .arg(self.keys.processing(worker))
            .arg("RIGHT")
            .arg("LEFT")
            .arg(block_seconds(block));
        cmd
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

    /// The ack of `raw` (see [`Bus::ack`]) for use in a pipeline. An EVAL, not an EVALSHA:
    /// a NOSCRIPT reply (empty script cache after a restart or `SCRIPT FLUSH`) would fail
    /// the whole pipeline after its other steps ran, and a finish pipeline cannot simply be
    /// sent again. `mark_idle` also resets the registry record's state (needed only if it
    /// was marked busy).
    pub(crate) fn ack_cmd(
        &self,
        worker: &str,
        raw: &[u8],
        generation: u64,
        mark_idle: bool,
    ) -> redis::Cmd {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(ACK)
            .arg(3)
            .arg(self.keys.processing(worker))
            .arg(self.keys.generation(worker))
            .arg(self.keys.info(worker))
            .arg(raw)
            .arg(generation)
            .arg(if mark_idle { "1" } else { "0" });
        cmd
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
            self.keys.dead_letters(worker),
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
            let deliveries: Vec<Delivery> = current.into_iter().map(Delivery::parse).collect();
            let finished = self.finished_commands(&deliveries).await?;
            let mut args: Vec<Vec<u8>> = vec![
                generation.to_string().into_bytes(),
                if bump { b"1".to_vec() } else { b"0".to_vec() },
                deliveries.len().to_string().into_bytes(),
            ];
            for (delivery, finished) in deliveries.iter().zip(finished) {
                args.push(delivery.raw.clone());
                if finished {
                    args.extend([b"x".to_vec(), Vec::new()]);
                    continue;
                }
                match self.redelivery(worker, delivery) {
                    Ok(next) => args.extend([b"q".to_vec(), next.into_bytes()]),
                    Err(entry) => {
                        let json = serde_json::to_string(&entry).expect("DLQ entries serialize");
                        args.extend([b"d".to_vec(), json.into_bytes()]);
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
                [requeued, dead, finished, gen] => {
                    self.flush_dead_letters(worker).await?;
                    return Ok(RequeueOutcome {
                        requeued: *requeued as usize,
                        dead_lettered: *dead as usize,
                        finished: *finished as usize,
                        generation: *gen as u64,
                    });
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

    /// For each delivery, whether its command already has a result from this attempt or a
    /// later one: it ran to the end (a failed run's DLQ entry is written before its result)
    /// and only the ack is missing, so requeueing it would run it again.
    async fn finished_commands(&self, deliveries: &[Delivery]) -> Result<Vec<bool>, BusError> {
        let mut batch = Batch::new();
        for cmd in deliveries.iter().filter_map(|d| d.command.as_ref().ok()) {
            batch.add(
                redis::cmd("LINDEX")
                    .arg(self.keys.result(&cmd.id))
                    .arg(0)
                    .to_owned(),
            );
        }
        let mut stored = batch.query(&mut self.conn.clone()).await?.into_iter();
        let mut out = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let Ok(cmd) = &delivery.command else {
                out.push(false);
                continue;
            };
            let json: Option<String> = stored
                .next()
                .map(redis::from_redis_value)
                .transpose()
                .map_err(redis::RedisError::from)?
                .flatten();
            let finished = json
                .and_then(|j| serde_json::from_str::<CommandResult>(&j).ok())
                .is_some_and(|r| r.command_id == cmd.id && r.attempt >= cmd.attempt);
            out.push(finished);
        }
        Ok(out)
    }

    /// The next delivery of a taken element (attempt + 1), or the DLQ entry it becomes.
    fn redelivery(&self, worker: &str, delivery: &Delivery) -> Result<String, DlqEntry> {
        let dead = |command: DlqCommand, error: String, reason: DlqReason| DlqEntry {
            id: new_id(),
            command,
            error,
            worker: worker.to_string(),
            ts_ms: now_ms(),
            reason,
        };
        match &delivery.command {
            Ok(cmd) => {
                let mut cmd = cmd.clone();
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
                DlqCommand::from_raw(&delivery.raw),
                reason.to_string(),
                DlqReason::Poison,
            )),
        }
    }

    /// Moves a taken element that must not run (not a valid command) out of the processing
    /// list into the DLQ as `entry`: first, atomically in the worker's slot, from
    /// `processing` to the worker's dead letters (fenced by `generation`), then from there
    /// to the DLQ. Returns whether the element was still in the processing list.
    pub async fn dead_letter(
        &self,
        worker: &str,
        raw: &[u8],
        generation: u64,
        entry: &DlqEntry,
    ) -> Result<bool, BusError> {
        let json = serde_json::to_string(entry).expect("DLQ entries serialize");
        let keys = [
            self.keys.processing(worker),
            self.keys.generation(worker),
            self.keys.dead_letters(worker),
        ];
        let reply: (i64, u64) = eval(
            DEAD_LETTER,
            &keys,
            &[
                raw.to_vec(),
                generation.to_string().into_bytes(),
                json.into_bytes(),
            ],
        )
        .query_async(&mut self.conn.clone())
        .await?;
        let moved = Bus::ack_reply(worker, generation, reply)?;
        self.flush_dead_letters(worker).await?;
        Ok(moved)
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
