//! Records of what `panebus up` started, so `panebus down` stops exactly that.
//!
//! One JSON file per session in `<state dir>/sessions/`, named after the session and the
//! tmux server socket (two servers may each have a session `panebus`). A record says
//! which tmux server and session `up` created and whether the session uses the managed
//! Redis; `down` stops the managed Redis only when no other live record still uses it.
//! Files are written to a temporary name and renamed, so a crash never leaves half a
//! record.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::paths::{ensure_private_dir, PathsError};

/// A record that cannot be read or written.
#[derive(Debug, Error)]
pub enum StateError {
    #[error(transparent)]
    Dir(#[from] PathsError),
    #[error(
        "cannot write session record {path}: {source} — check free disk space and permissions"
    )]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read session records in {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What one `panebus up` started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// tmux session name.
    pub session: String,
    /// tmux session id (`$3`).
    pub session_id: String,
    /// Socket path of the tmux server holding the session.
    pub tmux_socket: PathBuf,
    /// The Redis URL put into the session environment.
    pub redis_url: String,
    /// The managed Redis's socket, when the session uses it.
    pub managed_redis_socket: Option<PathBuf>,
    /// Whether this `up` started the managed Redis (false: reused or external).
    pub started_redis: bool,
    /// Worker panes as `(role, pane id)`.
    pub workers: Vec<(String, String)>,
    /// The coordinator's pane id.
    pub coordinator_pane: String,
    /// Unix time of creation.
    pub created: u64,
}

impl SessionRecord {
    /// The record's file name in the sessions dir.
    pub fn file_name(session: &str, tmux_socket: &Path) -> String {
        let socket: String = tmux_socket
            .to_string_lossy()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!("{session}@{socket}.json")
    }

    /// Writes the record atomically.
    pub fn save(&self, dir: &Path) -> Result<PathBuf, StateError> {
        ensure_private_dir(dir)?;
        let path = dir.join(Self::file_name(&self.session, &self.tmux_socket));
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(self).expect("a record always serializes");
        let write = |source| StateError::Write {
            path: path.clone(),
            source,
        };
        std::fs::write(&tmp, text).map_err(write)?;
        std::fs::rename(&tmp, &path).map_err(write)?;
        Ok(path)
    }

    /// Deletes the record's file (missing is fine).
    pub fn remove(&self, dir: &Path) -> Result<(), StateError> {
        let path = dir.join(Self::file_name(&self.session, &self.tmux_socket));
        match std::fs::remove_file(&path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(StateError::Write { path, source: err })
            }
            _ => Ok(()),
        }
    }
}

/// Every readable record in `dir` (unreadable or foreign files are skipped with a warning).
pub fn load_all(dir: &Path) -> Result<Vec<SessionRecord>, StateError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StateError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut records = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        match std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<SessionRecord>(&bytes).ok())
        {
            Some(record) => records.push(record),
            None => tracing::warn!(path = %path.display(), "skipping unreadable session record"),
        }
    }
    records.sort_by(|a, b| a.created.cmp(&b.created).then(a.session.cmp(&b.session)));
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(session: &str, socket: &str) -> SessionRecord {
        SessionRecord {
            session: session.into(),
            session_id: "$1".into(),
            tmux_socket: socket.into(),
            redis_url: "redis+unix:///r/redis.sock".into(),
            managed_redis_socket: Some("/r/redis.sock".into()),
            started_redis: true,
            workers: vec![("worker".into(), "%0".into())],
            coordinator_pane: "%2".into(),
            created: 1,
        }
    }

    #[test]
    fn save_load_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sessions");
        let a = record("panebus", "/tmp/tmux-1/default");
        let b = record("panebus", "/tmp/other.sock");
        a.save(&dir).unwrap();
        b.save(&dir).unwrap();
        std::fs::write(dir.join("junk.json"), "{").unwrap();
        let all = load_all(&dir).unwrap();
        assert_eq!(all.len(), 2);
        assert!(all.contains(&a) && all.contains(&b));
        a.remove(&dir).unwrap();
        a.remove(&dir).unwrap();
        assert_eq!(load_all(&dir).unwrap(), vec![b]);
    }

    #[test]
    fn missing_dir_is_empty() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(load_all(&tmp.path().join("none")).unwrap().is_empty());
    }
}
