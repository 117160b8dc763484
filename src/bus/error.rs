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

    /// The command was queued on the primary but fewer replicas than asked confirmed it.
    #[error(
        "command {command_id} is queued on the primary, but only {acked} of {wanted} replicas \
         confirmed it within {within:?} (PANEBUS_REPLICA_ACKS): a failover now could lose it. \
         Check the replicas (`INFO replication` on the primary); before sending it again, look \
         for it with `panebus result {command_id}`"
    )]
    NotReplicated {
        command_id: String,
        acked: u32,
        wanted: u32,
        within: std::time::Duration,
    },

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
    #[error("redis error: {0}{hint}", hint = redis_hint(.0))]
    Redis(#[from] redis::RedisError),
}

/// What to do about an unreachable Redis: a refused password needs other credentials, not
/// another server. `redis-cli -u` cannot read a sentinel URL: for one, the reason already
/// says what to fix and the hint is how to ask a sentinel.
fn unreachable_hint(url: &str, reason: &str) -> String {
    if url.contains("+sentinel://") {
        return "check by hand: `redis-cli -h HOST -p PORT sentinel get-master-addr-by-name \
                SERVICE` asks a sentinel for the primary, `redis-cli -h HOST -p PORT ping` \
                reaches that primary (add --askpass for a password, --tls --cacert CA.pem \
                for rediss+sentinel://)"
            .to_string();
    }
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
/// Error codes of a Redis that is up but cannot serve the request for now: still loading
/// its data after a restart, a failover in progress, or refusing writes because it could
/// not persist them (MISCONF: disk full or unwritable). Retrying later succeeds once the
/// condition clears, so they are handled like a connection loss.
const TEMPORARY_CODES: &[&str] = &[
    "LOADING",
    "TRYAGAIN",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "MISCONF",
];

impl BusError {
    /// True when the error means Redis is (temporarily) out of reach, so retrying later may
    /// succeed: no connection, or a server that answers but cannot serve yet (see
    /// `TEMPORARY_CODES`).
    pub fn is_connection_error(&self) -> bool {
        match self {
            BusError::Unreachable { .. } => true,
            BusError::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                    || e.is_unrecoverable_error()
                    || is_temporary_server_error(e)
            }
            _ => false,
        }
    }
}

/// What to do about a Redis error whose cause is outside PaneBus, appended to its message.
fn redis_hint(e: &redis::RedisError) -> &'static str {
    let misconf = e
        .clone()
        .into_server_errors()
        .is_some_and(|errors| errors.iter().any(|(_, err)| err.code() == "MISCONF"));
    if misconf {
        " — Redis refuses writes because it cannot save its data (disk full or not writable): \
         free disk space on the file system of its data directory (`redis-cli config get dir`; \
         for the managed Redis of `panebus up`, $XDG_STATE_HOME/panebus/redis) or fix its \
         permissions; Redis accepts writes again once a save succeeds"
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        " — the connection to Redis was lost: check that Redis is running (`redis-cli -u URL \
         ping` with the bus's URL) and run the command again"
    } else {
        ""
    }
}

/// Whether a server error reply (or any reply of a failed pipeline) is one of
/// `TEMPORARY_CODES`.
fn is_temporary_server_error(e: &redis::RedisError) -> bool {
    e.clone().into_server_errors().is_some_and(|errors| {
        errors
            .iter()
            .any(|(_, err)| TEMPORARY_CODES.contains(&err.code()))
    })
}

#[cfg(test)]
mod tests {
    use super::BusError;

    fn server_error(reply: &[u8]) -> BusError {
        let value = redis::parse_redis_value(reply).unwrap();
        BusError::Redis(value.extract_error().unwrap_err())
    }

    #[test]
    fn a_redis_that_is_loading_or_cannot_persist_is_temporarily_unavailable() {
        for reply in [
            &b"-LOADING Redis is loading the dataset in memory\r\n"[..],
            b"-MISCONF Errors writing to the AOF file: No space left on device\r\n",
            b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
            b"-MASTERDOWN Link with MASTER is down\r\n",
        ] {
            let err = server_error(reply);
            assert!(err.is_connection_error(), "{err}");
        }
        for reply in [
            &b"-ERR unknown command\r\n"[..],
            b"-NOSCRIPT No matching script\r\n",
            b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        ] {
            let err = server_error(reply);
            assert!(!err.is_connection_error(), "{err}");
        }
    }

    #[test]
    fn a_redis_that_cannot_save_says_to_free_disk_space() {
        let err =
            server_error(b"-MISCONF Errors writing to the AOF file: No space left on device\r\n");
        let text = err.to_string();
        assert!(text.contains("No space left on device"), "{text}");
        assert!(text.contains("free disk space"), "{text}");
        let other = server_error(b"-ERR unknown command\r\n").to_string();
        assert!(!other.contains("disk"), "{other}");
    }
}
