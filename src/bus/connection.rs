//! Connections to Redis: one shared, multiplexed, self-reconnecting connection for normal
//! requests, and dedicated connections for blocking commands, for each kind of deployment
//! ([`Deployment`]: one server, a Redis Cluster, or a primary found through Sentinel).
//!
//! [`SharedConnection`] is the shared one: the redis crate's `ConnectionManager` for one
//! server, its `cluster_async::ClusterConnection` for a cluster (slot routing, MOVED/ASK,
//! topology refresh), and [`SentinelPrimary`] for Sentinel (follows a failover).
//!
//! A blocking command (BLMOVE, XREAD BLOCK) parks the whole connection it is sent on, so it
//! never goes over the shared one. The redis crate's default response timeout (500 ms) would
//! also cut a parked BLMOVE off client-side while the server keeps it, and the next pushed
//! command would vanish into the processing list (see DESIGN "Facts"): dedicated connections
//! therefore have no response timeout. A blocked request is ended early with
//! `CLIENT UNBLOCK` sent to the server that holds it, never by dropping its future. On a
//! cluster the dedicated connection goes to the primary owning the key's slot: it is opened
//! on first use and reopened on a MOVED reply (the slot moved, e.g. after a failover).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route as SlotRoute, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline,
    RedisConnectionInfo, RedisError, RedisFuture, RedisResult, TlsCertificates, TlsMode, Value,
};

use super::deployment::{client_for, install_crypto_provider, Deployment, TlsFiles};
use super::sentinel::{
    breaks_connection, is_auth_error, is_readonly, refused_password, RefusedPassword,
    SentinelPrimary,
};
use super::{Bus, BusError};

/// How long establishing a TCP/unix connection may take before Redis counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Response timeout of the shared connection: long enough for any Lua script of the bus.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How many MOVED replies a blocking request follows before it gives up.
const MAX_REDIRECTS: usize = 5;

/// The URL with any password replaced by `***` (in the user info, or a `pass=`/`password=`
/// query parameter of a unix-socket URL), fit for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    // The last `@` anywhere: a password with an unencoded `/` or `@` is still hidden.
    let shown = match rest.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let shown = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_string()
            };
            format!("{}{}@{}", &url[..scheme_end + 3], shown, &rest[at + 1..])
        }
        None => url.to_string(),
    };
    match shown.split_once('?') {
        Some((base, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name @ ("pass" | "password"), _)) => format!("{name}=***"),
                    _ => pair.to_string(),
                })
                .collect();
            format!("{base}?{}", query.join("&"))
        }
        None => shown,
    }
}

/// The bus's shared connection, whatever the deployment. Cheap to clone; never blocks.
#[derive(Clone)]
pub enum SharedConnection {
    /// One server.
    Standalone {
        client: Arc<redis::Client>,
        conn: ConnectionManager,
    },
    /// A Redis Cluster; `nodes` opens dedicated connections to single nodes.
    Cluster {
        conn: ClusterConnection,
        nodes: Arc<NodeClients>,
    },
    /// The primary named by Redis Sentinel.
    Sentinel(SentinelPrimary),
}

impl ConnectionLike for SharedConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            SharedConnection::Standalone { conn, .. } => conn.req_packed_command(cmd),
            SharedConnection::Cluster { conn, .. } => conn.req_packed_command(cmd),
            SharedConnection::Sentinel(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            SharedConnection::Standalone { conn, .. } => {
                conn.req_packed_commands(pipeline, offset, count)
            }
            SharedConnection::Cluster { conn, .. } => {
                conn.req_packed_commands(pipeline, offset, count)
            }
            SharedConnection::Sentinel(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            SharedConnection::Standalone { conn, .. } => conn.get_db(),
            SharedConnection::Cluster { .. } => 0,
            SharedConnection::Sentinel(conn) => conn.get_db(),
        }
    }
}

/// Builds clients for single cluster nodes: the seed URL's credentials and the TLS files,
/// with the node's address.
pub struct NodeClients {
    seed: ConnectionInfo,
    tls: bool,
    certs: Option<TlsCertificates>,
}

impl NodeClients {
    fn client(&self, host: &str, port: u16) -> RedisResult<redis::Client> {
        let addr = if self.tls {
            ConnectionAddr::TcpTls {
                host: host.to_string(),
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host.to_string(), port)
        };
        client_for(self.seed.clone().set_addr(addr), self.certs.as_ref())
    }
}

/// Opens the shared connection to the deployment `url` names. Fails within a few seconds
/// with [`BusError::Unreachable`] naming the redacted URL and what to check.
pub(super) async fn open_shared(
    url: &str,
    tls: &TlsFiles,
    sentinel_password: Option<&str>,
) -> Result<SharedConnection, BusError> {
    let unreachable = |reason: String| BusError::Unreachable {
        url: redact_url(url),
        reason,
    };
    let deployment =
        Deployment::parse(url).map_err(|e| unreachable(format!("the URL is not usable: {e}")))?;
    if tls.is_set() && !deployment.tls() {
        return Err(unreachable(
            "PANEBUS_REDIS_CA_CERT/PANEBUS_REDIS_CLIENT_CERT are set but the URL does not use TLS; \
             use rediss:// (or rediss+cluster://, rediss+sentinel://)"
                .to_string(),
        ));
    }
    let certs = tls.load().map_err(unreachable)?;
    if deployment.tls() {
        install_crypto_provider();
    }
    let uses_tls = deployment.tls();
    let failed = |e: RedisError| unreachable(describe(&e, uses_tls));
    match deployment {
        Deployment::Standalone { url: plain, .. } => {
            let info = plain.as_str().into_connection_info().map_err(failed)?;
            let client = client_for(info, certs.as_ref()).map_err(failed)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_number_of_retries(2)
                .set_min_delay(Duration::from_millis(100))
                .set_max_delay(Duration::from_secs(2));
            let conn = ConnectionManager::new_with_config(client.clone(), config)
                .await
                .map_err(failed)?;
            Ok(SharedConnection::Standalone {
                client: Arc::new(client),
                conn,
            })
        }
        Deployment::Cluster { nodes, tls } => {
            let seed = nodes[0].as_str().into_connection_info().map_err(failed)?;
            let mut builder = ClusterClientBuilder::new(nodes)
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(RESPONSE_TIMEOUT);
            if let Some(certs) = &certs {
                builder = builder.certs(certs.clone());
            }
            let client = builder.build().map_err(failed)?;
            let conn = tokio::time::timeout(CONNECT_TIMEOUT * 2, client.get_async_connection())
                .await
                .map_err(|_| unreachable("no cluster node answered in time".to_string()))?
                .map_err(failed)?;
            Ok(SharedConnection::Cluster {
                conn,
                nodes: Arc::new(NodeClients { seed, tls, certs }),
            })
        }
        Deployment::Sentinel {
            sentinels,
            service,
            node_url,
            tls,
        } => {
            let node = node_url.as_str().into_connection_info().map_err(failed)?;
            let node = node.redis_settings();
            let addrs: Vec<ConnectionAddr> = sentinels
                .into_iter()
                .map(|(host, port)| {
                    if tls {
                        ConnectionAddr::TcpTls {
                            host,
                            port,
                            insecure: false,
                            tls_params: None,
                        }
                    } else {
                        ConnectionAddr::Tcp(host, port)
                    }
                })
                .collect();
            let mut builder =
                SentinelClientBuilder::new(addrs.clone(), &service, SentinelServerType::Master)
                    .map_err(failed)?
                    .set_client_to_redis_db(node.db());
            if let Some(user) = node.username() {
                builder = builder.set_client_to_redis_username(user);
            }
            if let Some(password) = node.password() {
                builder = builder.set_client_to_redis_password(password);
            }
            if let Some(password) = sentinel_password {
                builder = builder.set_client_to_sentinel_password(password);
            }
            if tls {
                builder = builder
                    .set_client_to_redis_tls_mode(TlsMode::Secure)
                    .set_client_to_sentinel_tls_mode(TlsMode::Secure);
                if let Some(certs) = &certs {
                    builder = builder
                        .set_client_to_redis_certificates(certs.clone())
                        .set_client_to_sentinel_certificates(certs.clone());
                }
            }
            let client = builder.build().map_err(failed)?;
            let primary = match SentinelPrimary::connect(client, node.db()).await {
                Ok(primary) => primary,
                Err(e) if is_auth_error(&e) => {
                    let sentinels = addrs
                        .into_iter()
                        .map(|addr| {
                            let mut info = addr.into_connection_info()?;
                            if let Some(password) = sentinel_password {
                                info = info.set_redis_settings(
                                    RedisConnectionInfo::default().set_password(password),
                                );
                            }
                            client_for(info, certs.as_ref())
                        })
                        .collect::<RedisResult<Vec<_>>>()
                        .map_err(failed)?;
                    let refused = refused_password(&sentinels, &service).await;
                    return Err(unreachable(refused_password_reason(
                        refused,
                        sentinel_password.is_some(),
                        node.password().is_some(),
                    )));
                }
                Err(e) => {
                    return Err(unreachable(format!(
                        "{}; check that the sentinels run and monitor a service named {service:?}",
                        describe(&e, tls)
                    )))
                }
            };
            Ok(SharedConnection::Sentinel(primary))
        }
    }
}

/// What to fix when a password was refused through the sentinels.
fn refused_password_reason(
    refused: Option<RefusedPassword>,
    sentinel_password: bool,
    url_password: bool,
) -> String {
    match refused {
        Some(RefusedPassword::Sentinels) if sentinel_password => {
            "the sentinels refused PANEBUS_REDIS_SENTINEL_PASSWORD: set it to the sentinels' own \
             password (their `requirepass`), or unset it if they have none"
                .to_string()
        }
        Some(RefusedPassword::Sentinels) => {
            "the sentinels ask for a password: set PANEBUS_REDIS_SENTINEL_PASSWORD to the \
             sentinels' own password (their `requirepass`)"
                .to_string()
        }
        Some(RefusedPassword::DataNodes { primary }) => {
            let primary = primary.map(|p| format!(" ({p})")).unwrap_or_default();
            let refused = if url_password {
                "refused the URL's password"
            } else {
                "asks for a password and the URL has none"
            };
            format!(
                "the primary the sentinels name{primary} {refused}: put the \
                 password of the primary and its replicas (their `requirepass`) in the URL, as \
                 redis+sentinel://:PASSWORD@HOST:PORT/SERVICE (percent-encode @ / : in it)"
            )
        }
        None => "a password was refused: the URL's password is that of the primary and its \
                 replicas, PANEBUS_REDIS_SENTINEL_PASSWORD that of the sentinels themselves"
            .to_string(),
    }
}

/// The redis crate's error, with a hint when it is about TLS.
fn describe(e: &RedisError, tls: bool) -> String {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if tls
        && (lower.contains("certificate")
            || lower.contains("unknownissuer")
            || lower.contains("tls"))
    {
        format!(
            "{text}; the server's TLS certificate was not accepted: set PANEBUS_REDIS_CA_CERT to the \
             PEM file of the CA that signed it, and check the URL's host matches the certificate"
        )
    } else {
        text
    }
}

/// Which server connection a [`BlockingConnection`] is (its node and `CLIENT ID`), for
/// [`Bus::unblock`] from another task. Clones see the connection as it is reopened.
#[derive(Clone)]
pub struct ClientRef {
    state: Arc<Mutex<Holder>>,
}

#[derive(Default)]
struct Holder {
    /// The server holding the connection and the connection's id there.
    node: Option<(redis::Client, i64)>,
    /// An unblock came while no connection was open: the next blocking request returns
    /// at once, as if its timeout had passed.
    unblock_pending: bool,
}

/// A connection of its own for blocking commands (no response timeout).
pub struct BlockingConnection {
    pub(super) conn: BlockingLink,
}

impl BlockingConnection {
    /// Which connection this is, for [`Bus::unblock`] from another task.
    pub fn client_id(&self) -> ClientRef {
        ClientRef {
            state: self.conn.holder.clone(),
        }
    }
}

/// The connection blocking requests go over; see the module docs.
pub struct BlockingLink {
    holder: Arc<Mutex<Holder>>,
    route: Route,
}

enum Route {
    /// One server.
    Direct(MultiplexedConnection),
    /// The primary in use by the shared Sentinel connection; reopened when that changes.
    Sentinel {
        primary: SentinelPrimary,
        open: Option<(String, MultiplexedConnection)>,
    },
    /// The primary owning the slot of each request's key, found through `cluster`.
    Cluster {
        cluster: ClusterConnection,
        nodes: Arc<NodeClients>,
        open: Option<MultiplexedConnection>,
    },
}

fn blocking_config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(None)
}

/// Opens a blocking connection with `client` and records it in `holder`.
async fn open_node(
    client: redis::Client,
    holder: &Mutex<Holder>,
) -> RedisResult<MultiplexedConnection> {
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&blocking_config())
        .await?;
    let id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut conn)
        .await?;
    holder.lock().expect("not poisoned").node = Some((client, id));
    Ok(conn)
}

impl BlockingLink {
    async fn send(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        let holder = &self.holder;
        let take_pending =
            || std::mem::take(&mut holder.lock().expect("not poisoned").unblock_pending);
        if take_pending() {
            return Ok(Value::Nil);
        }
        match &mut self.route {
            Route::Direct(conn) => conn.req_packed_command(cmd).await,
            Route::Sentinel { primary, open } => {
                let (addr, client) = primary.primary().await?;
                let conn = match open {
                    Some((open_addr, conn)) if *open_addr == addr => conn,
                    _ => {
                        tracing::debug!(primary = %addr, "opening a blocking connection to the primary");
                        let conn = open_node(client, holder).await?;
                        &mut open.insert((addr.clone(), conn)).1
                    }
                };
                let reply = conn.req_packed_command(cmd).await;
                if let Err(e) = &reply {
                    // UNBLOCKED: the server turned replica while the command was parked.
                    if breaks_connection(e) || is_readonly(e) || e.code() == Some("UNBLOCKED") {
                        *open = None;
                        primary.forget_server(&addr);
                    }
                }
                reply
            }
            Route::Cluster {
                cluster,
                nodes,
                open,
            } => {
                for _ in 0..MAX_REDIRECTS {
                    let conn = match open {
                        Some(conn) => conn,
                        None => {
                            let (host, port) = slot_owner(cluster, cmd).await?;
                            let client = nodes.client(&host, port)?;
                            open.insert(open_node(client, holder).await?)
                        }
                    };
                    match conn.req_packed_command(cmd).await {
                        Err(e)
                            if e.kind()
                                == redis::ErrorKind::Server(redis::ServerErrorKind::Moved) =>
                        {
                            let (host, port) = e.redirect_node().expect("MOVED names a node");
                            tracing::debug!(
                                host,
                                port,
                                "slot moved; reopening the blocking connection"
                            );
                            let client = nodes.client(host, port)?;
                            *open = Some(open_node(client, holder).await?);
                            if take_pending() {
                                return Ok(Value::Nil);
                            }
                        }
                        Err(e) => {
                            if breaks_connection(&e) {
                                *open = None;
                            }
                            return Err(e);
                        }
                        ok => return ok,
                    }
                }
                Err(RedisError::from((
                    redis::ErrorKind::Server(redis::ServerErrorKind::Moved),
                    "the key's slot kept moving; the cluster is resharding",
                )))
            }
        }
    }
}

/// The key a blocking command waits on: the first argument, or the first stream of
/// XREAD/XREADGROUP.
fn blocking_key(cmd: &Cmd) -> Option<&[u8]> {
    let mut args = cmd.args_iter().filter_map(|arg| match arg {
        redis::Arg::Simple(bytes) => Some(bytes),
        _ => None,
    });
    let name = args.next()?;
    if name.eq_ignore_ascii_case(b"XREAD") || name.eq_ignore_ascii_case(b"XREADGROUP") {
        args.skip_while(|a| !a.eq_ignore_ascii_case(b"STREAMS"))
            .nth(1)
    } else {
        args.next()
    }
}

/// The address of the primary that owns the slot of `cmd`'s key, as the cluster connection
/// routes it (`CLIENT INFO` there names the server's own address in `laddr=`).
async fn slot_owner(cluster: &mut ClusterConnection, cmd: &Cmd) -> RedisResult<(String, u16)> {
    let routing = match blocking_key(cmd) {
        Some(key) => {
            SingleNodeRoutingInfo::SpecificNode(SlotRoute::with_key(key, SlotAddr::Master))
        }
        None => SingleNodeRoutingInfo::RandomPrimary,
    };
    let info = cluster
        .route_command(
            redis::cmd("CLIENT").arg("INFO").clone(),
            RoutingInfo::SingleNode(routing),
        )
        .await?;
    let info: String = redis::from_redis_value(info)?;
    info.split_whitespace()
        .find_map(|field| field.strip_prefix("laddr="))
        .and_then(|addr| addr.rsplit_once(':'))
        .and_then(|(host, port)| Some((host.to_string(), port.parse().ok()?)))
        .ok_or_else(|| {
            RedisError::from((
                redis::ErrorKind::Client,
                "CLIENT INFO did not name the node's address",
            ))
        })
}

impl ConnectionLike for BlockingLink {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.send(cmd).boxed()
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        async move {
            match &mut self.route {
                Route::Direct(conn) => conn.req_packed_commands(pipeline, offset, count).await,
                Route::Sentinel { .. } | Route::Cluster { .. } => Err(RedisError::from((
                    redis::ErrorKind::Client,
                    "pipelines do not go over a blocking connection",
                ))),
            }
        }
        .boxed()
    }

    fn get_db(&self) -> i64 {
        match &self.route {
            Route::Direct(conn) => conn.get_db(),
            Route::Sentinel { primary, .. } => primary.get_db(),
            Route::Cluster { .. } => 0,
        }
    }
}

impl Bus {
    /// Opens a dedicated connection for blocking commands (BLMOVE, XREAD BLOCK, result
    /// waits). Open one per blocking loop and keep it; after an error, open a new one.
    pub async fn blocking_connection(&self) -> Result<BlockingConnection, BusError> {
        let holder = Arc::new(Mutex::new(Holder::default()));
        let unreachable = |e: RedisError| BusError::Unreachable {
            url: self.url.clone(),
            reason: e.to_string(),
        };
        let route = match &self.conn {
            SharedConnection::Standalone { client, .. } => Route::Direct(
                open_node(redis::Client::clone(client), &holder)
                    .await
                    .map_err(unreachable)?,
            ),
            SharedConnection::Sentinel(primary) => Route::Sentinel {
                primary: primary.clone(),
                open: None,
            },
            SharedConnection::Cluster { conn, nodes } => Route::Cluster {
                cluster: conn.clone(),
                nodes: nodes.clone(),
                open: None,
            },
        };
        Ok(BlockingConnection {
            conn: BlockingLink { holder, route },
        })
    }

    /// Ends the blocking command parked on the connection `client` names (see
    /// [`BlockingConnection::client_id`]) right now: it returns as if its timeout had passed,
    /// or with the element it was just served. Its future must still be awaited.
    pub async fn unblock(&self, client: ClientRef) -> Result<(), BusError> {
        let node = {
            let mut holder = client.state.lock().expect("not poisoned");
            match holder.node.clone() {
                Some(node) => node,
                None => {
                    holder.unblock_pending = true;
                    return Ok(());
                }
            }
        };
        let (server, id) = node;
        // A connection of its own to the server that holds the blocked one: on a cluster or
        // after a failover the shared connection may lead elsewhere.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let mut conn = server
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let _: i64 = redis::cmd("CLIENT")
            .arg("UNBLOCK")
            .arg(id)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Round-trips a PING; used to check that Redis is back after an outage.
    pub async fn ping(&self) -> Result<(), BusError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{blocking_key, redact_url, refused_password_reason, RefusedPassword};

    #[test]
    fn a_refused_password_names_the_setting_to_fix() {
        let sentinels = Some(RefusedPassword::Sentinels);
        assert!(refused_password_reason(sentinels.clone(), true, true)
            .contains("the sentinels refused PANEBUS_REDIS_SENTINEL_PASSWORD"));
        assert!(refused_password_reason(sentinels, false, true)
            .contains("set PANEBUS_REDIS_SENTINEL_PASSWORD"));
        let data = |primary: Option<&str>| {
            Some(RefusedPassword::DataNodes {
                primary: primary.map(str::to_string),
            })
        };
        let reason = refused_password_reason(data(Some("10.0.0.7:6379")), true, true);
        assert!(
            reason.contains("(10.0.0.7:6379) refused the URL's password")
                && !reason.contains("PANEBUS_REDIS_SENTINEL_PASSWORD"),
            "{reason}"
        );
        assert!(refused_password_reason(data(None), true, false)
            .contains("name asks for a password and the URL has none"));
        // No sentinel answered the check: both settings are named.
        let reason = refused_password_reason(None, true, true);
        assert!(
            reason.contains("PANEBUS_REDIS_SENTINEL_PASSWORD") && reason.contains("URL's password"),
            "{reason}"
        );
    }

    #[test]
    fn blocking_commands_route_by_the_key_they_wait_on() {
        let blmove = redis::cmd("BLMOVE")
            .arg("ns:{w}:queue")
            .arg("ns:{w}:processing")
            .arg("RIGHT")
            .arg("LEFT")
            .arg(5)
            .clone();
        assert_eq!(blocking_key(&blmove), Some(&b"ns:{w}:queue"[..]));
        let xread = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(10)
            .arg("BLOCK")
            .arg(1000)
            .arg("STREAMS")
            .arg("ns:events")
            .arg("$")
            .clone();
        assert_eq!(blocking_key(&xread), Some(&b"ns:events"[..]));
        assert_eq!(blocking_key(&redis::cmd("PING")), None);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("redis://:s3cret@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact_url("redis://u:p@h/0"), "redis://u:***@h/0");
        assert_eq!(redact_url("redis://tok@h/0"), "redis://***@h/0");
        assert_eq!(redact_url("redis://h:6379/0"), "redis://h:6379/0");
        assert_eq!(
            redact_url("rediss+cluster://:pw@h1:7000,h2:7001"),
            "rediss+cluster://:***@h1:7000,h2:7001"
        );
        assert_eq!(
            redact_url("redis+sentinel://:pw@s1:26379,s2/mymaster/0"),
            "redis+sentinel://:***@s1:26379,s2/mymaster/0"
        );
        assert_eq!(
            redact_url("unix:///run/redis.sock"),
            "unix:///run/redis.sock"
        );
    }
}
