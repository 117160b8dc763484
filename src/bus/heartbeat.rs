//! Worker heartbeats: a key per worker that expires after `PANEBUS_HEARTBEAT_TTL` unless
//! the worker sets it again. A missing key means the worker is dead or hung.
//!
//! The heartbeat also tells the worker about two situations it must act on: Redis lost its
//! data (restart without persistence: the worker registers again) and a newer incarnation
//! took over (fenced: the worker stops).

use std::time::Duration;

use super::{eval, Bus, BusError};

/// KEYS: heartbeat, generation, info. ARGV: generation, TTL ms.
/// Returns 1 = alive and registered, 0 = must register again, -1 = fenced (with the
/// current generation as second element).
const HEARTBEAT: &str = r"
local current = redis.call('GET', KEYS[2])
if not current then
  return {0, 0}
end
if tonumber(current) ~= tonumber(ARGV[1]) then
  return {-1, tonumber(current)}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('EXISTS', KEYS[3]) == 0 then
  return {0, tonumber(current)}
end
return {1, tonumber(current)}
";

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatStatus {
    /// The heartbeat was recorded.
    Alive,
    /// The registry record or generation is gone (Redis lost data): register again.
    NeedsRegistration,
    /// Another incarnation owns this worker id now.
    Fenced { current_generation: u64 },
}

impl Bus {
    /// Records a heartbeat of `worker` (incarnation `generation`) valid for `ttl`.
    pub async fn heartbeat(
        &self,
        worker: &str,
        generation: u64,
        ttl: Duration,
    ) -> Result<HeartbeatStatus, BusError> {
        let keys = [
            self.keys.heartbeat(worker),
            self.keys.generation(worker),
            self.keys.info(worker),
        ];
        let args = [generation.to_string(), ttl.as_millis().max(1).to_string()];
        let (status, current): (i64, u64) = eval(HEARTBEAT, &keys, &args)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(match status {
            1 => HeartbeatStatus::Alive,
            0 => HeartbeatStatus::NeedsRegistration,
            _ => HeartbeatStatus::Fenced {
                current_generation: current,
            },
        })
    }

    /// Remaining heartbeat time of `worker`, or `None` when it has none (dead).
    pub async fn heartbeat_ttl(&self, worker: &str) -> Result<Option<Duration>, BusError> {
        let ms: i64 = redis::cmd("PTTL")
            .arg(self.keys.heartbeat(worker))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok((ms >= 0).then(|| Duration::from_millis(ms as u64)))
    }
}
