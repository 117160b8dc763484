//! Connections to Redis: one shared, multiplexed, self-reconnecting connection for normal
//! requests, and dedicated connections for blocking commands.
//!
//! A blocking command (BLMOVE, XREAD BLOCK) parks the whole connection it is sent on, so it
//! never goes over the shared one. The redis crate's default response timeout (500 ms) would
//! also cut a parked BLMOVE off client-side while the server keeps it, and the next pushed
//! command would vanish into the processing list (see DESIGN "Facts"): dedicated connections
//! therefore have no response timeout. A blocked request is ended early with
//! `CLIENT UNBLOCK` from the shared connection, never by dropping its future.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::AsyncConnectionConfig;

use super::{Bus, BusError};

/// How long establishing a TCP/unix connection may take before Redis counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Response timeout of the shared connection: long enough for any Lua script of the bus.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The URL with any password replaced by `***`, fit for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    match rest.rfind('@') {
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
    }
}

pub(super) fn open_client(url: &str) -> Result<redis::Client, BusError> {
    redis::Client::open(url).map_err(|e| BusError::Unreachable {
        url: redact_url(url),
        reason: format!("the URL is not valid ({e})"),
    })
}

pub(super) async fn open_shared(
    client: &redis::Client,
    url: &str,
) -> Result<ConnectionManager, BusError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_with_config(client.clone(), config)
        .await
        .map_err(|e| BusError::Unreachable {
            url: redact_url(url),
            reason: e.to_string(),
        })
}

/// A connection of its own for blocking commands (no response timeout).
pub struct BlockingConnection {
    pub(super) conn: MultiplexedConnection,
    /// This connection's `CLIENT ID`, for `CLIENT UNBLOCK`.
    pub(super) client_id: i64,
}

impl BlockingConnection {
    /// The server's id of this connection, for [`Bus::unblock`] from another task.
    pub fn client_id(&self) -> i64 {
        self.client_id
    }
}

impl Bus {
    /// Opens a dedicated connection for blocking commands (BLMOVE, XREAD BLOCK, result
    /// waits). Open one per blocking loop and keep it; after an error, open a new one.
    pub async fn blocking_connection(&self) -> Result<BlockingConnection, BusError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(None);
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| BusError::Unreachable {
                url: self.url.clone(),
                reason: e.to_string(),
            })?;
        let client_id: i64 = redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut conn)
            .await?;
        Ok(BlockingConnection { conn, client_id })
    }

    /// Ends the blocking command parked on the connection with id `client_id` (see
    /// [`BlockingConnection::client_id`]) right now: it returns as if its timeout had passed,
    /// or with the element it was just served. Its future must still be awaited.
    pub async fn unblock(&self, client_id: i64) -> Result<(), BusError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("CLIENT")
            .arg("UNBLOCK")
            .arg(client_id)
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
    use super::redact_url;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("redis://:s3cret@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact_url("redis://u:p@h/0"), "redis://u:***@h/0");
        assert_eq!(redact_url("redis://tok@h/0"), "redis://***@h/0");
        assert_eq!(redact_url("redis://h:6379/0"), "redis://h:6379/0");
    }
}
