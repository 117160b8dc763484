//! The shared connection of a Sentinel deployment: a multiplexed connection to the primary
//! the sentinels name, replaced when that primary changes.
//!
//! The redis crate resolves a primary through the sentinels (checking that the server it
//! names answers `ROLE` as a master) but does not follow a failover on its own connection.
//! [`SentinelPrimary`] does: a request answered `READONLY` (the server was demoted to a
//! replica) or `NOREPLICAS` (a primary configured with `min-replicas-to-write` that lost
//! its replicas, as an old primary does the moment its replica is promoted) did not run,
//! so it is sent again to the newly resolved primary; a request that
//! could not be sent because no primary was reachable is retried for a short while (a
//! failover in progress). A connection that broke mid-request is dropped and the error
//! returned, since the request may have run: the next request resolves the primary again.
//!
//! A refused password is not retried: [`refused_password`] then asks the sentinels
//! directly to tell the sentinels' password (`PANEBUS_REDIS_SENTINEL_PASSWORD`) from the
//! data nodes' (the URL's), so the message names the one to fix.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::SentinelClient;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use super::connection::{CONNECT_TIMEOUT, RESPONSE_TIMEOUT};

/// How long a request keeps trying to find a writable primary before it fails.
const FAILOVER_PATIENCE: Duration = Duration::from_secs(5);
/// How long connecting keeps asking the sentinels for a valid primary.
const CONNECT_PATIENCE: Duration = Duration::from_millis(2500);
/// Pause between two attempts to resolve the primary.
const RESOLVE_PAUSE: Duration = Duration::from_millis(200);

/// A connection to the current primary of one Sentinel-monitored service. Clones share it.
#[derive(Clone)]
pub struct SentinelPrimary {
    inner: Arc<Inner>,
}

struct Inner {
    sentinel: tokio::sync::Mutex<SentinelClient>,
    current: Mutex<Option<Current>>,
    db: i64,
}

#[derive(Clone)]
struct Current {
    /// Bumped on each new connection, so a failed request only drops the one it used.
    epoch: u64,
    conn: MultiplexedConnection,
    /// The server, for opening more connections to it.
    client: redis::Client,
    /// `host:port` of the server.
    addr: String,
}

/// What a request's reply means for the connection it went over.
enum Outcome<T> {
    Done(RedisResult<T>),
    /// The server refused the request as a demoted primary does (`READONLY`, or
    /// `NOREPLICAS` under `min-replicas-to-write`): it did not run; resolve and send again.
    Demoted,
}

impl SentinelPrimary {
    /// Resolves the primary now, so a wrong URL or unreachable sentinels fail within
    /// [`CONNECT_PATIENCE`]. Failures are retried until then: right after a failover the
    /// sentinels may name no valid primary for a moment.
    pub async fn connect(sentinel: SentinelClient, db: i64) -> RedisResult<SentinelPrimary> {
        let primary = SentinelPrimary {
            inner: Arc::new(Inner {
                sentinel: tokio::sync::Mutex::new(sentinel),
                current: Mutex::new(None),
                db,
            }),
        };
        let deadline = Instant::now() + CONNECT_PATIENCE;
        loop {
            match primary.current().await {
                Ok(_) => return Ok(primary),
                // A wrong password stays wrong: fail now and say which one.
                Err(e) if is_auth_error(&e) => return Err(e),
                Err(e) if Instant::now() + RESOLVE_PAUSE < deadline => {
                    tracing::debug!(error = %e, "no primary yet; asking the sentinels again");
                    tokio::time::sleep(RESOLVE_PAUSE).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A client for the primary the sentinels name right now (checked to be a master).
    async fn resolve(&self) -> RedisResult<redis::Client> {
        let mut sentinel = self.inner.sentinel.lock().await;
        match tokio::time::timeout(CONNECT_TIMEOUT * 2, sentinel.async_get_client()).await {
            Ok(client) => client,
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no sentinel answered in time",
            ))),
        }
    }

    async fn current(&self) -> RedisResult<Current> {
        if let Some(current) = self.inner.current.lock().expect("not poisoned").clone() {
            return Ok(current);
        }
        let client = self.resolve().await?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let mut slot = self.inner.current.lock().expect("not poisoned");
        if let Some(current) = slot.clone() {
            // Another request connected meanwhile: share its connection.
            return Ok(current);
        }
        let epoch = EPOCH.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let addr = client.get_connection_info().addr().to_string();
        tracing::info!(epoch, primary = %addr, "connected to the primary named by the sentinels");
        let current = Current {
            epoch,
            conn,
            client,
            addr,
        };
        *slot = Some(current.clone());
        Ok(current)
    }

    /// The primary in use (`host:port` and a client for it), resolving one if none is.
    pub async fn primary(&self) -> RedisResult<(String, redis::Client)> {
        let current = self.current().await?;
        Ok((current.addr, current.client))
    }

    /// Stops using the server at `addr` (it refused a request as a replica would, or its
    /// connection broke): the next request resolves the primary again.
    pub fn forget_server(&self, addr: &str) {
        let mut slot = self.inner.current.lock().expect("not poisoned");
        if slot.as_ref().is_some_and(|c| c.addr == addr) {
            *slot = None;
        }
    }

    fn forget(&self, epoch: u64) {
        let mut slot = self.inner.current.lock().expect("not poisoned");
        if slot.as_ref().is_some_and(|c| c.epoch == epoch) {
            *slot = None;
        }
    }

    /// Sends `request` to the current primary, following a failover as described above.
    async fn run(&self, request: Request<'_>) -> RedisResult<Reply> {
        let deadline = Instant::now() + FAILOVER_PATIENCE;
        loop {
            let mut current = match self.current().await {
                Ok(current) => current,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "no primary reachable yet; asking the sentinels again");
                    tokio::time::sleep(RESOLVE_PAUSE).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match request.send(&mut current.conn).await {
                Outcome::Done(Err(e)) => {
                    if breaks_connection(&e) {
                        self.forget(current.epoch);
                    }
                    return Err(e);
                }
                Outcome::Done(ok) => return ok,
                Outcome::Demoted => {
                    self.forget(current.epoch);
                    if Instant::now() >= deadline {
                        return Err(RedisError::from((
                            redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly),
                            "the sentinels still name a primary that is a replica",
                        )));
                    }
                    tracing::info!("the primary became a replica; resolving the new primary through the sentinels");
                    tokio::time::sleep(RESOLVE_PAUSE).await;
                }
            }
        }
    }
}

/// Whose password was refused when resolving the primary failed on a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RefusedPassword {
    /// The sentinels refused `PANEBUS_REDIS_SENTINEL_PASSWORD`, or asked for one.
    Sentinels,
    /// A sentinel answered with that password: the primary it names (`host:port`, when it
    /// names one) refused the URL's credentials.
    DataNodes { primary: Option<String> },
}

/// Whether `e` is a refused or missing password (or user name).
pub(super) fn is_auth_error(e: &RedisError) -> bool {
    e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
}

/// Asks each sentinel (`sentinels`: clients carrying the sentinels' password) for the
/// primary of `service`, to find whose password was refused; `None` when no sentinel
/// answered either way.
pub(super) async fn refused_password(
    sentinels: &[redis::Client],
    service: &str,
) -> Option<RefusedPassword> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(CONNECT_TIMEOUT));
    let mut refused = None;
    for sentinel in sentinels {
        let reply: RedisResult<Option<(String, u16)>> = async {
            let mut conn = sentinel
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(service)
                .query_async(&mut conn)
                .await
        }
        .await;
        match reply {
            Ok(primary) => {
                return Some(RefusedPassword::DataNodes {
                    primary: primary.map(|(host, port)| format!("{host}:{port}")),
                })
            }
            Err(e) if is_auth_error(&e) => refused = Some(RefusedPassword::Sentinels),
            Err(e) => tracing::debug!(error = %e, "a sentinel did not answer"),
        }
    }
    refused
}

/// One request as the redis crate hands it over.
#[derive(Clone, Copy)]
enum Request<'a> {
    Command(&'a Cmd),
    Pipeline(&'a Pipeline, usize, usize),
}

enum Reply {
    Command(Value),
    Pipeline(Vec<Value>),
}

impl Request<'_> {
    async fn send(self, conn: &mut MultiplexedConnection) -> Outcome<Reply> {
        match self {
            Request::Command(cmd) => match conn.req_packed_command(cmd).await {
                Err(e) if is_readonly(&e) => Outcome::Demoted,
                Ok(value) if refused_as_replica(&value) => Outcome::Demoted,
                other => Outcome::Done(other.map(Reply::Command)),
            },
            Request::Pipeline(pipeline, offset, count) => {
                match conn.req_packed_commands(pipeline, offset, count).await {
                    Err(e) if is_readonly(&e) => Outcome::Demoted,
                    // A replica refuses every write of the pipeline (inside MULTI too, where
                    // EXEC then aborts): none of it ran.
                    Ok(values) if values.iter().any(refused_as_replica) => Outcome::Demoted,
                    other => Outcome::Done(other.map(Reply::Pipeline)),
                }
            }
        }
    }
}

static EPOCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Whether `e` means the connection it came over is unusable.
pub(super) fn breaks_connection(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}

/// Whether the server refused a write because it is no longer a writable primary.
pub(super) fn is_readonly(e: &RedisError) -> bool {
    e.code().is_some_and(is_replica_refusal)
}

/// The error codes of a server that is no longer a writable primary: `READONLY` (demoted to
/// a replica) and `NOREPLICAS` (`min-replicas-to-write` unmet, as when its replica was
/// promoted).
fn is_replica_refusal(code: &str) -> bool {
    code == "READONLY" || code == "NOREPLICAS"
}

impl ConnectionLike for SentinelPrimary {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        async move {
            match self.run(Request::Command(cmd)).await? {
                Reply::Command(value) => Ok(value),
                Reply::Pipeline(_) => unreachable!("a command gets a command reply"),
            }
        }
        .boxed()
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        async move {
            match self.run(Request::Pipeline(pipeline, offset, count)).await? {
                Reply::Pipeline(values) => Ok(values),
                Reply::Command(_) => unreachable!("a pipeline gets a pipeline reply"),
            }
        }
        .boxed()
    }

    fn get_db(&self) -> i64 {
        self.inner.db
    }
}

fn refused_as_replica(value: &Value) -> bool {
    match value {
        Value::ServerError(e) => is_replica_refusal(e.code()),
        Value::Array(items) => items.iter().any(refused_as_replica),
        _ => false,
    }
}
