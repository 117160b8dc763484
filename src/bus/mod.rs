//! The Redis control plane: every key and every Redis operation of PaneBus.
//!
//! [`Bus`] is a cheap-to-clone handle (a shared multiplexed connection plus the key layout
//! and limits of one namespace). Its operations live in one file per concept: [`keys`]
//! (layout), [`connection`] (connections, blocking and unblocking), [`queue`] (enqueue,
//! take, ack, requeue), [`results`], [`registry`] (worker records and heartbeats), [`dlq`]
//! and [`events`]; [`slots`] keeps work spanning several cluster slots ordered and
//! pipelined. `docs/PROTOCOL.md` describes the same data model for other languages.

pub mod acl;
pub mod connection;
pub mod deployment;
pub mod dlq;
pub mod error;
pub mod events;
pub mod heartbeat;
pub mod keys;
pub mod queue;
pub mod registry;
pub mod results;
pub mod sentinel;
pub mod slots;

use std::time::Duration;

use crate::config::Config;

pub use connection::{redact_url, BlockingConnection, ClientRef, SharedConnection};
pub use deployment::{Deployment, TlsFiles};
pub use dlq::{Retried, RetryReport};
pub use error::BusError;
pub use events::EventRecord;
pub use heartbeat::HeartbeatStatus;
pub use keys::Keys;
pub use queue::{parse_payload, Delivery, RequeueOutcome};
pub use registry::WorkerStatus;

/// Limits and lifetimes that bus operations enforce, taken from [`Config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_queue_depth: usize,
    pub max_payload_bytes: usize,
    pub result_ttl: Duration,
    pub events_maxlen: usize,
    pub max_attempts: u32,
    /// Replicas that must confirm an enqueue (`WAIT`); 0 does not wait.
    pub replica_acks: u32,
    pub replica_ack_timeout: Duration,
}

impl Limits {
    pub fn from_config(config: &Config) -> Limits {
        Limits {
            max_queue_depth: config.max_queue_depth,
            max_payload_bytes: config.max_payload_bytes,
            result_ttl: config.result_ttl,
            events_maxlen: config.events_maxlen,
            max_attempts: config.max_attempts,
            replica_acks: config.replica_acks,
            replica_ack_timeout: config.replica_ack_timeout,
        }
    }
}

/// A handle on one bus (one namespace in one Redis).
#[derive(Clone)]
pub struct Bus {
    conn: SharedConnection,
    keys: Keys,
    url: String,
    limits: Limits,
}

impl Bus {
    /// Connects to the Redis deployment of `config` (one server, a cluster or a Sentinel
    /// primary; see [`Deployment`]). Fails within a few seconds with
    /// [`BusError::Unreachable`] when Redis cannot be reached.
    pub async fn connect(config: &Config) -> Result<Bus, BusError> {
        let conn = connection::open_shared(
            &config.redis_url,
            &config.redis_tls,
            config.sentinel_password.as_ref().map(|p| p.expose()),
        )
        .await?;
        Ok(Bus {
            conn,
            keys: Keys::new(config.namespace.clone()),
            url: redact_url(&config.redis_url),
            limits: Limits::from_config(config),
        })
    }

    /// The key layout of this bus.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The limits this handle enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The Redis URL with any password redacted.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A clone of the shared connection, for callers that issue their own commands.
    pub fn connection(&self) -> SharedConnection {
        self.conn.clone()
    }
}

/// An `EVAL` of `script` with `keys` and `args`. EVAL rather than EVALSHA: it works in
/// pipelines and right after a Redis restart (empty script cache); the server caches the
/// compiled script by its hash either way.
pub(crate) fn eval<A: redis::ToRedisArgs>(script: &str, keys: &[String], args: &[A]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len()).arg(keys).arg(args);
    cmd
}
