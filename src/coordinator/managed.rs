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
/// settings, so the new process joins the same bus whatever the session environment says —
/// with `PANEBUS_WORKER_REDIS_URL` as its URL when set (a supervisor running as the
/// coordinator ACL user must not hand its own credentials to an agent's process), and the
/// TLS and Sentinel settings it needs to reach that URL.
pub fn respawn_env(config: &Config) -> Vec<(String, String)> {
    let url = config
        .worker_redis_url
        .as_ref()
        .unwrap_or(&config.redis_url);
    let mut env = vec![
        ("PANEBUS_REDIS_URL".to_string(), url.clone()),
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
    ];
    let tls = &config.redis_tls;
    for (name, path) in [
        ("PANEBUS_REDIS_CA_CERT", &tls.ca_cert),
        ("PANEBUS_REDIS_CLIENT_CERT", &tls.client_cert),
        ("PANEBUS_REDIS_CLIENT_KEY", &tls.client_key),
    ] {
        if let Some(path) = path {
            env.push((name.to_string(), path.display().to_string()));
        }
    }
    if let Some(password) = &config.sentinel_password {
        env.push((
            "PANEBUS_REDIS_SENTINEL_PASSWORD".to_string(),
            password.expose().to_string(),
        ));
    }
    env
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

#[cfg(test)]
mod tests {
    use super::respawn_env;
    use crate::config::Config;

    fn env_of(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        let config = Config::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
        .unwrap();
        respawn_env(&config)
    }

    fn get<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn respawned_workers_get_the_worker_url_when_one_is_set() {
        let own = "redis://coord:c@127.0.0.1:7000/0";
        let env = env_of(&[("PANEBUS_REDIS_URL", own)]);
        assert_eq!(get(&env, "PANEBUS_REDIS_URL"), Some(own));
        let env = env_of(&[
            ("PANEBUS_REDIS_URL", own),
            (
                "PANEBUS_WORKER_REDIS_URL",
                "redis://worker:w@127.0.0.1:7000/0",
            ),
        ]);
        assert_eq!(
            get(&env, "PANEBUS_REDIS_URL"),
            Some("redis://worker:w@127.0.0.1:7000/0")
        );
    }

    #[test]
    fn respawned_workers_get_the_tls_and_sentinel_settings() {
        let env = env_of(&[
            ("PANEBUS_REDIS_URL", "redis+sentinel://127.0.0.1:26379/pb"),
            ("PANEBUS_REDIS_SENTINEL_PASSWORD", "s3"),
        ]);
        assert_eq!(get(&env, "PANEBUS_REDIS_SENTINEL_PASSWORD"), Some("s3"));
        assert_eq!(get(&env, "PANEBUS_REDIS_CA_CERT"), None);
        let env = env_of(&[
            ("PANEBUS_REDIS_URL", "rediss://127.0.0.1:6380/0"),
            ("PANEBUS_REDIS_CA_CERT", "/etc/pb/ca.pem"),
            ("PANEBUS_REDIS_CLIENT_CERT", "/etc/pb/c.pem"),
            ("PANEBUS_REDIS_CLIENT_KEY", "/etc/pb/c.key"),
        ]);
        assert_eq!(get(&env, "PANEBUS_REDIS_CA_CERT"), Some("/etc/pb/ca.pem"));
        assert_eq!(
            get(&env, "PANEBUS_REDIS_CLIENT_CERT"),
            Some("/etc/pb/c.pem")
        );
        assert_eq!(get(&env, "PANEBUS_REDIS_CLIENT_KEY"), Some("/etc/pb/c.key"));
    }
}
