//! Requests to a running coordinator (`panebus restart`), passed through Redis.
//!
//! A restart must be carried out by the one process that acts on the pane, or it could race
//! with an automatic respawn of the same pane. So `panebus restart` does not touch tmux: it
//! pushes a request onto the list of the coordinator holding the lease for the pane's
//! (node, session), and waits for the reply the coordinator pushes onto a per-request list.
//! The coordinator drains its list on every tick (about once a second). Replies expire
//! after [`REPLY_TTL`], so an abandoned wait leaves nothing behind.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::bus::{Bus, BusError};
use crate::schema::new_id;

/// How long an unread reply is kept.
pub const REPLY_TTL: Duration = Duration::from_secs(60);
/// How often the waiting side looks for its reply.
const POLL: Duration = Duration::from_millis(100);

/// A request to the coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: String,
    /// `restart`.
    pub action: String,
    /// The worker id of the pane.
    pub worker: String,
}

/// The coordinator's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    /// What was done, or why not.
    pub message: String,
}

/// Pushes a request for the coordinator of `session` on `node`; returns its id.
pub async fn send(
    bus: &Bus,
    node: &str,
    session: &str,
    action: &str,
    worker: &str,
) -> Result<String, BusError> {
    let request = Request {
        id: new_id(),
        action: action.to_string(),
        worker: worker.to_string(),
    };
    let () = redis::cmd("RPUSH")
        .arg(bus.keys().coordinator_requests(node, session))
        .arg(serde_json::to_string(&request).expect("requests serialize"))
        .query_async(&mut bus.connection())
        .await?;
    Ok(request.id)
}

/// Waits up to `timeout` for the reply to request `id`.
pub async fn wait_reply(
    bus: &Bus,
    id: &str,
    timeout: Duration,
) -> Result<Option<Response>, BusError> {
    let key = bus.keys().coordinator_reply(id);
    let deadline = Instant::now() + timeout;
    loop {
        let raw: Option<String> = redis::cmd("LPOP")
            .arg(&key)
            .query_async(&mut bus.connection())
            .await?;
        if let Some(raw) = raw {
            return Ok(Some(serde_json::from_str(&raw).unwrap_or(Response {
                ok: false,
                message: format!("unreadable reply from the coordinator: {raw}"),
            })));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Takes every pending request of the coordinator of `session` on `node`. Entries that are
/// not requests are dropped with a warning (nobody waits for them).
pub async fn drain(bus: &Bus, node: &str, session: &str) -> Result<Vec<Request>, BusError> {
    let key = bus.keys().coordinator_requests(node, session);
    let (raw,): (Vec<String>,) = redis::pipe()
        .atomic()
        .cmd("LRANGE")
        .arg(&key)
        .arg(0)
        .arg(-1)
        .cmd("DEL")
        .arg(&key)
        .ignore()
        .query_async(&mut bus.connection())
        .await?;
    Ok(raw
        .into_iter()
        .filter_map(|r| match serde_json::from_str::<Request>(&r) {
            Ok(req) => Some(req),
            Err(e) => {
                tracing::warn!(entry = %r, error = %e, "dropping a malformed coordinator request");
                None
            }
        })
        .collect())
}

/// Answers request `id`.
pub async fn reply(bus: &Bus, id: &str, response: &Response) -> Result<(), BusError> {
    let key = bus.keys().coordinator_reply(id);
    let () = redis::pipe()
        .cmd("RPUSH")
        .arg(&key)
        .arg(serde_json::to_string(response).expect("responses serialize"))
        .ignore()
        .cmd("PEXPIRE")
        .arg(&key)
        .arg(REPLY_TTL.as_millis() as u64)
        .ignore()
        .query_async(&mut bus.connection())
        .await?;
    Ok(())
}
