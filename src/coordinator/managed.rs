//! The coordinator's own record of each pane it manages (`<ns>:{<wid>}:managed`): the tmux
//! session it lives in and how to start its worker again (argv, working directory).
//!
//! The worker's registry record has the same facts, but it disappears when the worker
//! deregisters and is never written by an incarnation that dies before registering. The
//! coordinator copies argv and cwd here when it tags the pane, so it can always respawn it,
//! and `panebus restart` can find which session's coordinator to ask.

use std::collections::HashMap;

use crate::bus::{Bus, BusError};
use crate::config::Config;
use crate::schema::now_ms;

/// The environment a respawned worker gets (coordinator and watchdog alike): the bus
/// settings, so the new process joins the same bus whatever the session environment says.
pub fn respawn_env(config: &Config) -> Vec<(String, String)> {
    vec![
        ("PANEBUS_REDIS_URL".to_string(), config.redis_url.clone()),
        ("PANEBUS_NAMESPACE".to_string(), config.namespace.clone()),
        ("PANEBUS_NODE".to_string(), config.node.clone()),
        (
            "PANEBUS_HEARTBEAT_INTERVAL".to_string(),
            format!("{}ms", config.heartbeat_interval.as_millis()),
        ),
        (
            "PANEBUS_HEARTBEAT_TTL".to_string(),
            format!("{}ms", config.heartbeat_ttl.as_millis()),
        ),
    ]
}

/// How to respawn one managed pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedPane {
    /// Worker id, `<node>/%<pane>`.
    pub worker: String,
    /// Name of the tmux session the pane is in.
    pub session: String,
    /// The worker's argv, passed to `respawn-pane` as separate arguments.
    pub argv: Vec<String>,
    /// The worker's working directory.
    pub cwd: String,
}

/// Saves (or replaces) the record of a managed pane.
pub async fn save(bus: &Bus, pane: &ManagedPane) -> Result<(), BusError> {
    let key = bus.keys().managed(&pane.worker);
    let argv = serde_json::to_string(&pane.argv).expect("strings serialize");
    let () = redis::pipe()
        .cmd("DEL")
        .arg(&key)
        .ignore()
        .cmd("HSET")
        .arg(&key)
        .arg("session")
        .arg(&pane.session)
        .arg("argv")
        .arg(argv)
        .arg("cwd")
        .arg(&pane.cwd)
        .arg("tagged_ms")
        .arg(now_ms())
        .ignore()
        .query_async(&mut bus.connection())
        .await?;
    Ok(())
}

/// The record of `worker`, if the coordinator manages it.
pub async fn load(bus: &Bus, worker: &str) -> Result<Option<ManagedPane>, BusError> {
    let mut fields: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(bus.keys().managed(worker))
        .query_async(&mut bus.connection())
        .await?;
    if fields.is_empty() {
        return Ok(None);
    }
    let argv = fields
        .get("argv")
        .and_then(|a| serde_json::from_str::<Vec<String>>(a).ok())
        .unwrap_or_default();
    Ok(Some(ManagedPane {
        worker: worker.to_string(),
        session: fields.remove("session").unwrap_or_default(),
        argv,
        cwd: fields.remove("cwd").unwrap_or_default(),
    }))
}

/// Forgets a pane (it was closed, or is no longer a worker).
pub async fn remove(bus: &Bus, worker: &str) -> Result<(), BusError> {
    let () = redis::cmd("DEL")
        .arg(bus.keys().managed(worker))
        .query_async(&mut bus.connection())
        .await?;
    Ok(())
}
