//! The errors of bus operations. Each variant is a distinct situation the CLI maps to its
//! own exit code, and each message says what to do about it.

use std::time::Duration;

use thiserror::Error;

/// What can go wrong talking to the bus.
#[derive(Debug, Error)]
pub enum BusError {
    /// Redis cannot be reached at all (or refused the credentials).
    #[error(
        "cannot reach Redis at {url}: {reason}; {}",
        unreachable_hint(url, reason)
    )]
    Unreachable { url: String, reason: String },

    /// The worker's queue already holds `PANEBUS_MAX_QUEUE_DEPTH` commands.
    #[error(
        "queue of worker {worker} is full ({depth} commands waiting); wait for it to drain, \
         check the worker is alive (`panebus panes`), or raise PANEBUS_MAX_QUEUE_DEPTH"
    )]
    QueueFull { worker: String, depth: usize },

    /// No worker with this id is registered.
    #[error(
        "no worker {worker} is registered in this bus; list workers with `panebus panes`, \
         check PANEBUS_NAMESPACE/PANEBUS_NODE, or use --force to queue for a worker that will start later"
    )]
    UnknownWorker { worker: String },

    /// A serialized command is larger than `PANEBUS_MAX_PAYLOAD_BYTES`.
    #[error(
        "command is {size} bytes, more than the limit of {limit} bytes; send a smaller payload \
         (e.g. a file path instead of its contents) or raise PANEBUS_MAX_PAYLOAD_BYTES"
    )]
    PayloadTooLarge { size: usize, limit: usize },

    /// The payload or command is not acceptable JSON.
    #[error("invalid payload: {0}")]
    InvalidPayload(String),

    /// The thing asked for does not exist (a DLQ entry, a result, ...).
    #[error("{0}")]
    NotFound(String),

    /// The worker's generation moved on: another incarnation owns its queue now.
    #[error(
        "worker {worker} is fenced: its generation is {actual}, expected {expected}; \
         a newer incarnation owns its queue"
    )]
    Fenced {
        worker: String,
        expected: u64,
        actual: u64,
    },

    /// Waiting for something took longer than allowed.
    #[error("timed out after {}: {what}", humantime::format_duration(*after))]
    Timeout { what: String, after: Duration },

    /// Redis answered with an error or the connection broke mid-request.
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
}

/// What to do about an unreachable Redis: a refused password needs other credentials, not
/// another server.
fn unreachable_hint(url: &str, reason: &str) -> String {
    let lower = reason.to_ascii_lowercase();
    if lower.contains("authentication") || lower.contains("wrongpass") || lower.contains("noauth") {
        format!(
            "Redis refused the user name or password: fix them in PANEBUS_REDIS_URL (or \
             --redis-url), e.g. redis://USER:PASSWORD@HOST:PORT/0, and check them with \
             `redis-cli -u {url} ping` with the real password in place of ***"
        )
    } else {
        format!(
            "start redis-server or point PANEBUS_REDIS_URL (or --redis-url) at a running one, \
             and check it with `redis-cli -u {url} ping`"
        )
    }
}

impl BusError {
    /// True when the error means Redis is (temporarily) out of reach, so retrying later may
    /// succeed.
    pub fn is_connection_error(&self) -> bool {
        match self {
            BusError::Unreachable { .. } => true,
            BusError::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                    || e.is_unrecoverable_error()
            }
            _ => false,
        }
    }
}
