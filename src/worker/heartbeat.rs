//! The heartbeat task: every `PANEBUS_HEARTBEAT_INTERVAL` it sets the worker's heartbeat
//! key with TTL `PANEBUS_HEARTBEAT_TTL`, from its own task so a long command never delays
//! it. It also registers the worker again when Redis lost the record, and cancels the
//! `fenced` token when a newer incarnation took over.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, BusError, HeartbeatStatus};
use crate::schema::WorkerInfo;

/// Records one heartbeat, re-registering if needed. Returns `Err(current generation)` when
/// fenced.
pub async fn beat(
    bus: &Bus,
    info: &WorkerInfo,
    ttl: Duration,
) -> Result<Result<(), u64>, BusError> {
    match bus.heartbeat(&info.id, info.generation, ttl).await? {
        HeartbeatStatus::Alive => Ok(Ok(())),
        HeartbeatStatus::NeedsRegistration => {
            tracing::warn!(worker = %info.id, generation = info.generation, "Redis lost this worker's registration (restart without persistence?); registering again");
            match bus.reregister(info, ttl).await {
                Ok(()) => Ok(Ok(())),
                Err(BusError::Fenced { actual, .. }) => Ok(Err(actual)),
                Err(e) => Err(e),
            }
        }
        HeartbeatStatus::Fenced { current_generation } => Ok(Err(current_generation)),
    }
}

/// Beats until `stop` is cancelled or the worker is fenced (then cancels `fenced`).
pub async fn run(
    bus: Bus,
    info: WorkerInfo,
    interval: Duration,
    ttl: Duration,
    stop: CancellationToken,
    fenced: CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        match beat(&bus, &info, ttl).await {
            Ok(Ok(())) => {
                if failures > 0 {
                    tracing::info!(worker = %info.id, failures, "heartbeat recorded again: Redis is reachable");
                }
                failures = 0;
            }
            Ok(Err(current)) => {
                tracing::error!(worker = %info.id, generation = info.generation, current, "fenced: a newer incarnation owns this worker id");
                fenced.cancel();
                return;
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(worker = %info.id, attempt = failures, error = %e, "heartbeat failed; retrying at the next interval");
            }
        }
    }
}
