//! `panebus up` / `panebus down`: bring a ready session up, and take exactly it down.
//!
//! [`up`] validates the layout ([`layout_file`]), picks a Redis (the configured one, a
//! Redis answering at the default URL, or the private [`managed_redis`]), builds the tmux
//! session ([`session`]) and writes a record of what it started ([`state`]). [`down`]
//! reads that record, kills the session only if it is still the one `up` created (same
//! session id), and stops the managed Redis only when no other live session uses it. A
//! Redis the user runs, and tmux sessions `up` did not create, are never touched.
//! Everything here is blocking; the CLI runs it on a blocking thread.

pub mod layout_file;
pub mod managed_redis;
pub mod paths;
pub mod session;
pub mod state;

use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use layout_file::Layout;
use paths::Paths;
use session::{CreatedSession, SessionSpec, Tmux};
use state::SessionRecord;

use crate::tmux::TmuxServerRef;

/// How `up` chooses its Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisChoice {
    /// `PANEBUS_REDIS_URL` (or `--redis-url`) was given: use it, never manage it.
    Configured(String),
    /// Nothing configured: use a Redis answering at this default URL, else the managed one.
    Auto { default_url: String },
    /// Always use the managed Redis (`up --managed-redis`).
    Managed,
}

/// Everything `up` needs.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub session: String,
    pub layout: Layout,
    /// The tmux server to build the session on.
    pub server: TmuxServerRef,
    pub redis: RedisChoice,
    /// The `panebus` binary the panes run.
    pub exe: PathBuf,
    /// Variables copied into the session environment (besides `PANEBUS_REDIS_URL`).
    pub env: Vec<(String, String)>,
    pub paths: Paths,
}

/// What `up` started.
#[derive(Debug, Clone)]
pub struct UpOutcome {
    pub record: SessionRecord,
    pub managed_redis_pid: Option<u32>,
}

/// Why `up` or `down` failed.
#[derive(Debug, Error)]
pub enum UpError {
    #[error(transparent)]
    Session(#[from] session::SessionError),
    #[error(transparent)]
    ManagedRedis(#[from] managed_redis::ManagedRedisError),
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error("Redis at {url} does not answer: start it, fix PANEBUS_REDIS_URL, or unset it to let `panebus up` run a private Redis")]
    RedisUnreachable { url: String },
    #[error("no session {session:?} started by `panebus up` is recorded{where_}: `panebus down` only stops what `up` started (use `tmux kill-session -t {session}` for other sessions)")]
    NotRecorded { session: String, where_: String },
    #[error("session {session:?} was started by `panebus up` on several tmux servers ({sockets}): choose one with -L NAME or -S PATH")]
    Ambiguous { session: String, sockets: String },
}

/// Brings the session up. Nothing is left running if it fails.
pub fn up(options: &UpOptions) -> Result<UpOutcome, UpError> {
    let tmux = Tmux::new(options.server.clone());
    if tmux.has_session(&options.session)? {
        return Err(session::SessionError::Exists(options.session.clone()).into());
    }
    let (managed, redis_url) = match &options.redis {
        RedisChoice::Configured(url) => {
            if !managed_redis::ping(url, Duration::from_secs(3)) {
                return Err(UpError::RedisUnreachable { url: url.clone() });
            }
            (None, url.clone())
        }
        RedisChoice::Auto { default_url }
            if managed_redis::ping(default_url, Duration::from_secs(1)) =>
        {
            (None, default_url.clone())
        }
        RedisChoice::Auto { .. } | RedisChoice::Managed => {
            let managed = managed_redis::ensure(&options.paths)?;
            let url = managed.url.clone();
            (Some(managed), url)
        }
    };
    let mut env = vec![("PANEBUS_REDIS_URL".to_string(), redis_url.clone())];
    env.extend(
        options
            .env
            .iter()
            .filter(|(k, _)| k != "PANEBUS_REDIS_URL")
            .cloned(),
    );
    let spec = SessionSpec {
        name: options.session.clone(),
        layout: options.layout.clone(),
        exe: options.exe.clone(),
        env,
    };
    let created = match session::create(&tmux, &spec) {
        Ok(created) => created,
        Err(err) => {
            if let Some(managed) = managed.as_ref().filter(|m| m.started) {
                tracing::warn!(socket = %managed.socket.display(), "stopping the managed redis-server started for the failed session");
                let _ = managed_redis::stop(&options.paths);
            }
            return Err(err.into());
        }
    };
    let CreatedSession {
        session_id,
        workers,
        coordinator_pane,
        tmux_socket,
    } = created;
    let record = SessionRecord {
        session: options.session.clone(),
        session_id,
        tmux_socket,
        redis_url,
        managed_redis_socket: managed.as_ref().map(|m| m.socket.clone()),
        started_redis: managed.as_ref().is_some_and(|m| m.started),
        workers,
        coordinator_pane,
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    record.save(&options.paths.sessions_dir())?;
    Ok(UpOutcome {
        record,
        managed_redis_pid: managed.and_then(|m| m.pid),
    })
}

/// What `down` stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownOutcome {
    /// The session was still running and was killed.
    pub killed_session: bool,
    /// The managed Redis was stopped (no other session used it).
    pub stopped_redis: bool,
    /// Other live sessions still using the managed Redis.
    pub redis_users: Vec<String>,
}

/// Which server `down` looks for the session on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownServer {
    /// Named with `-L`/`-S`: only a record of that server.
    Explicit(TmuxServerRef),
    /// Not named: the only record of that session name, whatever its server; when there
    /// are several, the one on `fallback` (the server `down` runs under, else the default),
    /// and an [`UpError::Ambiguous`] when none is there.
    Any { fallback: TmuxServerRef },
}

/// Takes down the session `up` started under this name on this server.
pub fn down(session: &str, server: &DownServer, paths: &Paths) -> Result<DownOutcome, UpError> {
    let sessions_dir = paths.sessions_dir();
    let records = state::load_all(&sessions_dir)?;
    let named: Vec<&SessionRecord> = records.iter().filter(|r| r.session == session).collect();
    let on = |wanted: &TmuxServerRef| -> Vec<&SessionRecord> {
        named
            .iter()
            .copied()
            .filter(|r| TmuxServerRef::Path(r.tmux_socket.clone()).same_server(wanted))
            .collect()
    };
    let chosen: Vec<&SessionRecord> = match server {
        DownServer::Any { .. } if named.len() <= 1 => named.clone(),
        // None on the fallback server: all of them, which reports the ambiguity.
        DownServer::Any { fallback } => Some(on(fallback))
            .filter(|found| !found.is_empty())
            .unwrap_or_else(|| named.clone()),
        DownServer::Explicit(wanted) => on(wanted),
    };
    let record = match chosen.as_slice() {
        [record] => (*record).clone(),
        [] => {
            return Err(UpError::NotRecorded {
                session: session.to_string(),
                where_: match server {
                    DownServer::Any { .. } => String::new(),
                    DownServer::Explicit(wanted) => {
                        format!(" for tmux server {}", wanted.socket_path().display())
                    }
                },
            })
        }
        many => {
            return Err(UpError::Ambiguous {
                session: session.to_string(),
                sockets: many
                    .iter()
                    .map(|r| r.tmux_socket.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    };
    let mut pane_pids = Vec::new();
    let killed_session = if liveness(&record) != Liveness::Gone {
        let tmux = Tmux::new(TmuxServerRef::Path(record.tmux_socket.clone()));
        pane_pids = tmux
            .run(&[
                "list-panes",
                "-s",
                "-t",
                &record.session_id,
                "-F",
                "#{pane_pid}",
            ])
            .map(|list| list.lines().filter_map(|l| l.parse().ok()).collect())
            .unwrap_or_default();
        tmux.kill_session(&record.session_id)?;
        true
    } else {
        false
    };
    record.remove(&sessions_dir)?;
    let mut stopped_redis = false;
    let mut redis_users = Vec::new();
    if let Some(redis_socket) = &record.managed_redis_socket {
        for other in records.iter().filter(|r| *r != &record) {
            if other.managed_redis_socket.as_ref() != Some(redis_socket) {
                continue;
            }
            if liveness(other) != Liveness::Gone {
                redis_users.push(other.session.clone());
            } else {
                tracing::info!(session = %other.session, "removing record of a session that no longer exists");
                other.remove(&sessions_dir)?;
            }
        }
        if redis_users.is_empty() {
            // The killed panes' workers and coordinator deregister and release their lease
            // on SIGHUP; stopping their Redis under them would leave them registered (as
            // dead workers) in its persisted data.
            wait_for_exit(&pane_pids, PANES_EXIT_WAIT);
            let redis_paths = Paths {
                runtime_dir: redis_socket
                    .parent()
                    .map_or_else(|| paths.runtime_dir.clone(), Path::to_path_buf),
                state_dir: paths.state_dir.clone(),
            };
            stopped_redis = managed_redis::stop(&redis_paths)?;
        }
    }
    Ok(DownOutcome {
        killed_session,
        stopped_redis,
        redis_users,
    })
}

/// How long `down` waits for the processes of the panes it killed before it stops the
/// managed Redis (an idle worker exits within milliseconds of SIGHUP; one finishing a
/// command may take longer, and is then left to its own retries).
const PANES_EXIT_WAIT: Duration = Duration::from_secs(5);

/// Waits until every process in `pids` has exited (or `timeout` passed).
fn wait_for_exit(pids: &[i32], timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    while pids.iter().any(|&pid| process_runs(pid)) {
        if std::time::Instant::now() >= deadline {
            tracing::warn!(
                ?pids,
                "pane processes still running; stopping the managed redis-server anyway"
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` is a live process: it exists and, where /proc tells, is not a zombie
/// waiting for tmux to reap it.
fn process_runs(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } != 0
        && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may contain spaces.
        Ok(stat) => {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                != Some("Z")
        }
        // No /proc entry: gone on Linux; on systems without /proc, `kill` said it exists.
        Err(_) => !Path::new("/proc/self").exists(),
    }
}

/// Whether the session of a record still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// A session with the recorded name *and* id exists.
    Live,
    /// The server is gone, or no session has that name and id (a session the user later
    /// created under the same name is not ours).
    Gone,
    /// tmux could not tell (an unexpected error): treated as live, so a shared Redis is
    /// never stopped on a guess.
    Unknown,
}

/// Checks a record against the sessions its tmux server lists.
pub fn liveness(record: &SessionRecord) -> Liveness {
    let tmux = Tmux::new(TmuxServerRef::Path(record.tmux_socket.clone()));
    match tmux.run(&["list-sessions", "-F", "#{session_id} #{session_name}"]) {
        Ok(list) => {
            let wanted = format!("{} {}", record.session_id, record.session);
            if list.lines().any(|line| line == wanted) {
                Liveness::Live
            } else {
                Liveness::Gone
            }
        }
        Err(session::SessionError::Failed { stderr, .. })
            if stderr.contains("no server running") || stderr.contains("error connecting") =>
        {
            Liveness::Gone
        }
        Err(err) => {
            tracing::warn!(session = %record.session, error = %err, "cannot tell whether a session still runs");
            Liveness::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exited_and_zombie_processes_do_not_run() {
        assert!(process_runs(std::process::id() as i32));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        // Exited but not yet reaped: a zombie, which `down` must not wait for.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while process_runs(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!process_runs(pid), "zombie counted as running");
        child.wait().unwrap();
        assert!(!process_runs(pid));
        wait_for_exit(&[pid], Duration::from_secs(1));
    }
}
