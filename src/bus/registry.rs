//! The worker registry: one hash per worker (its [`WorkerInfo`]), the set of all workers of
//! the bus and one set per role, and the generation counter that numbers incarnations.
//!
//! Registering bumps the generation; a worker carries its generation into every ack and
//! heartbeat so that an incarnation fenced by the coordinator cannot touch the queue again.

use std::collections::HashMap;
use std::time::Duration;

use super::slots::Batch;
use super::{eval, Bus, BusError};
use crate::schema::{WorkerInfo, WorkerState};

/// KEYS: info, generation, heartbeat. ARGV: mode (`new`: bump the generation; `again`:
/// restore generation ARGV[3] after Redis lost data), heartbeat TTL ms, generation, then
/// field/value pairs of the record. Returns `{1, generation, previous role}` or
/// `{-1, current generation, ''}` when a newer incarnation exists.
const REGISTER: &str = r"
local gen
if ARGV[1] == 'new' then
  gen = redis.call('INCR', KEYS[2])
else
  local current = tonumber(redis.call('GET', KEYS[2]) or '0')
  gen = tonumber(ARGV[3])
  if current > gen then
    return {-1, current, ''}
  end
  redis.call('SET', KEYS[2], gen)
end
local previous_role = redis.call('HGET', KEYS[1], 'role') or ''
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('HSET', KEYS[1], 'generation', gen)
redis.call('SET', KEYS[3], gen, 'PX', ARGV[2])
return {1, gen, previous_role}
";

/// KEYS: info, heartbeat, generation. ARGV: generation. Deletes the record and heartbeat
/// only if the caller is the current incarnation. Returns 1 if deleted.
const DEREGISTER: &str = r"
if tonumber(redis.call('GET', KEYS[3]) or '0') ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
";

/// KEYS: info. ARGV: state, current command id (may be empty). Updates a registered
/// worker's state; does nothing if the record is gone.
const SET_STATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'current_command', ARGV[2])
return 1
";

/// A worker as seen by `panebus panes`/`status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStatus {
    pub id: String,
    /// The registry record; `None` if the set lists the worker but its record is gone.
    pub info: Option<WorkerInfo>,
    /// Whether its heartbeat key exists.
    pub alive: bool,
    /// Remaining heartbeat TTL.
    pub heartbeat_ttl: Option<Duration>,
    pub queue_depth: usize,
    pub processing: usize,
}

impl Bus {
    /// Registers a starting worker: bumps its generation (fencing any older incarnation),
    /// writes its record, adds it to the worker and role sets and records a first
    /// heartbeat. Sets and returns `info.generation`.
    pub async fn register(
        &self,
        info: &mut WorkerInfo,
        heartbeat_ttl: Duration,
    ) -> Result<u64, BusError> {
        let generation = self.write_registration(info, heartbeat_ttl, "new").await?;
        info.generation = generation;
        Ok(generation)
    }

    /// Writes the record of a running worker again (after Redis lost its data), keeping its
    /// generation. Fails with [`BusError::Fenced`] if a newer incarnation registered.
    pub async fn reregister(
        &self,
        info: &WorkerInfo,
        heartbeat_ttl: Duration,
    ) -> Result<(), BusError> {
        self.write_registration(info, heartbeat_ttl, "again")
            .await
            .map(|_| ())
    }

    async fn write_registration(
        &self,
        info: &WorkerInfo,
        ttl: Duration,
        mode: &str,
    ) -> Result<u64, BusError> {
        let keys = [
            self.keys.info(&info.id),
            self.keys.generation(&info.id),
            self.keys.heartbeat(&info.id),
        ];
        let mut args = vec![
            mode.to_string(),
            ttl.as_millis().max(1).to_string(),
            info.generation.to_string(),
        ];
        for (field, value) in info.to_fields() {
            if field != "generation" {
                args.push(field.to_string());
                args.push(value);
            }
        }
        let mut conn = self.conn.clone();
        let (status, generation, previous_role): (i64, u64, String) =
            eval(REGISTER, &keys, &args).query_async(&mut conn).await?;
        if status < 0 {
            return Err(BusError::Fenced {
                worker: info.id.clone(),
                expected: info.generation,
                actual: generation,
            });
        }
        // The sets are in other slots than the worker's keys: separate commands.
        let mut batch = Batch::new();
        batch.add_ignored(
            redis::cmd("SADD")
                .arg(self.keys.workers())
                .arg(&info.id)
                .to_owned(),
        );
        batch.add_ignored(
            redis::cmd("SADD")
                .arg(self.keys.role(&info.role))
                .arg(&info.id)
                .to_owned(),
        );
        if !previous_role.is_empty() && previous_role != info.role {
            batch.add_ignored(
                redis::cmd("SREM")
                    .arg(self.keys.role(&previous_role))
                    .arg(&info.id)
                    .to_owned(),
            );
        }
        batch.query(&mut conn).await?;
        Ok(generation)
    }

    /// Removes a stopping worker from the registry (record, heartbeat, worker and role
    /// sets), if `generation` is still its current one. Its queue stays, so commands wait
    /// for the next incarnation.
    pub async fn deregister(
        &self,
        worker: &str,
        role: &str,
        generation: u64,
    ) -> Result<bool, BusError> {
        let keys = [
            self.keys.info(worker),
            self.keys.heartbeat(worker),
            self.keys.generation(worker),
        ];
        let mut conn = self.conn.clone();
        let deleted: i64 = eval(DEREGISTER, &keys, &[generation.to_string()])
            .query_async(&mut conn)
            .await?;
        if deleted == 1 {
            let mut batch = Batch::new();
            batch.add_ignored(
                redis::cmd("SREM")
                    .arg(self.keys.workers())
                    .arg(worker)
                    .to_owned(),
            );
            batch.add_ignored(
                redis::cmd("SREM")
                    .arg(self.keys.role(role))
                    .arg(worker)
                    .to_owned(),
            );
            batch.query(&mut conn).await?;
        }
        Ok(deleted == 1)
    }

    /// The command setting a worker's state and current command, for use in a pipeline.
    pub(crate) fn set_state_cmd(
        &self,
        worker: &str,
        state: WorkerState,
        command_id: Option<&str>,
    ) -> redis::Cmd {
        eval(
            SET_STATE,
            &[self.keys.info(worker)],
            &[
                state.as_str().to_string(),
                command_id.unwrap_or("").to_string(),
            ],
        )
    }

    /// Sets a worker's state and current command (if it is registered).
    pub async fn set_state(
        &self,
        worker: &str,
        state: WorkerState,
        command_id: Option<&str>,
    ) -> Result<(), BusError> {
        let _: i64 = self
            .set_state_cmd(worker, state, command_id)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// The current generation of `worker` (0 if it never registered).
    pub async fn generation(&self, worker: &str) -> Result<u64, BusError> {
        let g: Option<u64> = redis::cmd("GET")
            .arg(self.keys.generation(worker))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(g.unwrap_or(0))
    }

    /// The registry record of `worker`, if registered.
    pub async fn worker_info(&self, worker: &str) -> Result<Option<WorkerInfo>, BusError> {
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.info(worker))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(WorkerInfo::from_fields(&fields))
    }

    /// Whether `worker` has a registry record.
    pub async fn is_registered(&self, worker: &str) -> Result<bool, BusError> {
        let n: i64 = redis::cmd("EXISTS")
            .arg(self.keys.info(worker))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(n == 1)
    }

    /// Ids of all registered workers, sorted.
    pub async fn worker_ids(&self) -> Result<Vec<String>, BusError> {
        let mut ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.workers())
            .query_async(&mut self.conn.clone())
            .await?;
        ids.sort();
        Ok(ids)
    }

    /// Ids of the registered workers with role `role`, sorted.
    pub async fn role_members(&self, role: &str) -> Result<Vec<String>, BusError> {
        let mut ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.role(role))
            .query_async(&mut self.conn.clone())
            .await?;
        ids.sort();
        Ok(ids)
    }

    /// Every registered worker with its record, liveness and queue lengths (one pipelined
    /// round trip for all workers on a single server; one per slot, in parallel, on a
    /// cluster).
    pub async fn list_workers(&self) -> Result<Vec<WorkerStatus>, BusError> {
        let ids = self.worker_ids().await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut batch = Batch::new();
        for id in &ids {
            batch.add(redis::cmd("HGETALL").arg(self.keys.info(id)).to_owned());
            batch.add(redis::cmd("PTTL").arg(self.keys.heartbeat(id)).to_owned());
            batch.add(redis::cmd("LLEN").arg(self.keys.queue(id)).to_owned());
            batch.add(redis::cmd("LLEN").arg(self.keys.processing(id)).to_owned());
        }
        let replies = batch.query(&mut self.conn.clone()).await?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, chunk) in ids.into_iter().zip(replies.chunks(4)) {
            let fields: HashMap<String, String> =
                redis::from_redis_value_ref(&chunk[0]).map_err(redis::RedisError::from)?;
            let ttl_ms: i64 =
                redis::from_redis_value_ref(&chunk[1]).map_err(redis::RedisError::from)?;
            let queue_depth: usize =
                redis::from_redis_value_ref(&chunk[2]).map_err(redis::RedisError::from)?;
            let processing: usize =
                redis::from_redis_value_ref(&chunk[3]).map_err(redis::RedisError::from)?;
            out.push(WorkerStatus {
                id,
                info: WorkerInfo::from_fields(&fields),
                alive: ttl_ms >= 0,
                heartbeat_ttl: (ttl_ms >= 0).then(|| Duration::from_millis(ttl_ms as u64)),
                queue_depth,
                processing,
            });
        }
        Ok(out)
    }
}
