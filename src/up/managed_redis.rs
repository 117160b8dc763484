//! The private redis-server that `panebus up` starts when no Redis is configured.
//!
//! It listens only on a unix socket in the user's runtime dir (`--port 0`: no TCP at all,
//! socket and directory mode 0700), persists with an append-only file fsynced every second
//! in the state dir (a bare `redis-server` has `appendonly no` and writes into its cwd),
//! and daemonizes with a pidfile so it outlives the `up` process. A second `up` pings the
//! socket first and reuses a running server. Its URL uses the `redis+unix://` scheme,
//! which the `redis` crate (1.8) accepts like `unix://`; the path is percent-encoded
//! because the crate decodes it as a file URL.
//!
//! Stopping sends `SHUTDOWN` over the socket, so only the server at that socket can ever
//! be stopped (never a Redis the user runs on a port), and waits for its pid to exit.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use thiserror::Error;

use super::paths::{ensure_private_dir, Paths, PathsError};

/// How long a fresh redis-server may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Time between pings while a fresh redis-server starts: it answers within a few hundred
/// ms, every ms of which `up` waits for, and a ping of a socket not there yet is cheap.
const START_POLL: Duration = Duration::from_millis(10);
/// How long a shut-down redis-server may take to exit (it fsyncs the AOF first).
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest unix socket path that fits `sun_path` on Linux (108) and macOS (104).
const MAX_SOCKET_PATH: usize = 100;

/// Why the managed Redis could not be started or stopped.
#[derive(Debug, Error)]
pub enum ManagedRedisError {
    /// `redis-server` is not on PATH.
    #[error("redis-server is not installed (or not on PATH): install it with `sudo apt-get install redis-server` (Debian/Ubuntu) or `brew install redis` (macOS), or set PANEBUS_REDIS_URL to a Redis you run yourself")]
    NotInstalled,
    /// A private directory is unusable.
    #[error(transparent)]
    Dir(#[from] PathsError),
    /// The data directory cannot be written (read-only, full disk, ...).
    #[error("cannot write to the Redis data directory {path}: {source} — free disk space or fix its permissions (or set XDG_STATE_HOME to another directory)")]
    Unwritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The socket path does not fit in a unix socket address.
    #[error("socket path {path} is too long for a unix socket ({len} bytes, at most {MAX_SOCKET_PATH}): set XDG_RUNTIME_DIR to a shorter directory")]
    SocketPathTooLong { path: PathBuf, len: usize },
    /// redis-server could not be run.
    #[error("cannot run redis-server: {0}")]
    Spawn(#[source] std::io::Error),
    /// redis-server ran but did not come up.
    #[error("redis-server did not start at {socket}: {detail}\n(log: {log})")]
    DidNotStart {
        socket: PathBuf,
        log: PathBuf,
        detail: String,
    },
    /// redis-server did not exit after SHUTDOWN.
    #[error(
        "managed redis-server (pid {pid}) did not exit within {STOP_TIMEOUT:?} after SHUTDOWN"
    )]
    DidNotStop { pid: u32 },
}

/// A running managed Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedRedis {
    /// `redis+unix:///…/redis.sock`.
    pub url: String,
    /// The socket path.
    pub socket: PathBuf,
    /// Its pid, from the pidfile.
    pub pid: Option<u32>,
    /// Whether this call started it (false: it was already running).
    pub started: bool,
}

/// The URL of a Redis listening on `socket`.
pub fn socket_url(socket: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut url = String::from("redis+unix://");
    for &byte in socket.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            url.push(byte as char);
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    url
}

/// Whether a Redis answers PING at `url` within `timeout`.
pub fn ping(url: &str, timeout: Duration) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let Ok(mut conn) = client.get_connection_with_timeout(timeout) else {
        return false;
    };
    if conn.set_read_timeout(Some(timeout)).is_err() {
        return false;
    }
    redis::cmd("PING").query::<String>(&mut conn).is_ok()
}

/// Returns the managed Redis of these paths, starting it if nothing answers at its socket.
pub fn ensure(paths: &Paths) -> Result<ManagedRedis, ManagedRedisError> {
    ensure_private_dir(&paths.runtime_dir)?;
    let socket = paths.redis_socket();
    let len = socket.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(ManagedRedisError::SocketPathTooLong { path: socket, len });
    }
    let url = socket_url(&socket);
    if ping(&url, Duration::from_secs(2)) {
        tracing::info!(socket = %socket.display(), "reusing managed redis-server");
        return Ok(ManagedRedis {
            url,
            pid: read_pid(&paths.redis_pidfile()),
            socket,
            started: false,
        });
    }
    // A socket file nobody answers on is left over from a crash or a reboot.
    let _ = std::fs::remove_file(&socket);
    ensure_private_dir(&paths.state_dir)?;
    let data_dir = paths.redis_data_dir();
    ensure_private_dir(&data_dir)?;
    probe_writable(&data_dir)?;
    let log = paths.redis_log();
    let log_start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);

    let output = Command::new("redis-server")
        .args(redis_server_args(paths))
        .current_dir(&data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => ManagedRedisError::NotInstalled,
            _ => ManagedRedisError::Spawn(err),
        })?;
    if !output.status.success() {
        let mut detail = String::from_utf8_lossy(&output.stderr).trim().to_string();
        if detail.is_empty() {
            detail = String::from_utf8_lossy(&output.stdout).trim().to_string();
        }
        return Err(ManagedRedisError::DidNotStart {
            socket,
            log,
            detail: format!("{} ({detail})", output.status),
        });
    }
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if ping(&url, Duration::from_secs(1)) {
            let pid = read_pid(&paths.redis_pidfile());
            tracing::info!(socket = %socket.display(), pid, "started managed redis-server");
            return Ok(ManagedRedis {
                url,
                socket,
                pid,
                started: true,
            });
        }
        std::thread::sleep(START_POLL);
    }
    Err(ManagedRedisError::DidNotStart {
        detail: log_tail(&log, log_start),
        socket,
        log,
    })
}

/// The redis-server command line of the managed server.
pub fn redis_server_args(paths: &Paths) -> Vec<String> {
    let path = |p: PathBuf| p.to_string_lossy().into_owned();
    [
        "--port",
        "0",
        "--unixsocket",
        &path(paths.redis_socket()),
        "--unixsocketperm",
        "700",
        "--daemonize",
        "yes",
        "--pidfile",
        &path(paths.redis_pidfile()),
        "--dir",
        &path(paths.redis_data_dir()),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--logfile",
        &path(paths.redis_log()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Stops the managed Redis of these paths if it is running; returns whether it was.
pub fn stop(paths: &Paths) -> Result<bool, ManagedRedisError> {
    let socket = paths.redis_socket();
    let url = socket_url(&socket);
    if !ping(&url, Duration::from_secs(2)) {
        return Ok(false);
    }
    let pid = read_pid(&paths.redis_pidfile());
    if let Ok(client) = redis::Client::open(url.as_str()) {
        if let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(2)) {
            // The server closes the connection instead of replying: an error is expected.
            let _ = redis::cmd("SHUTDOWN").query::<()>(&mut conn);
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        let gone = match pid {
            Some(pid) => !process_alive(pid),
            None => !ping(&url, Duration::from_millis(200)),
        };
        if gone {
            tracing::info!(socket = %socket.display(), pid, "stopped managed redis-server");
            return Ok(true);
        }
        std::thread::sleep(START_POLL);
    }
    Err(ManagedRedisError::DidNotStop {
        pid: pid.unwrap_or(0),
    })
}

/// The pid in a redis pidfile, if it names a live process.
pub fn read_pid(pidfile: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(pidfile).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    process_alive(pid).then_some(pid)
}

/// Whether a process with this pid exists.
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Writes, fsyncs and removes a probe file, so a full disk or a read-only directory is
/// reported in words before redis-server fails with it in its log.
fn probe_writable(dir: &Path) -> Result<(), ManagedRedisError> {
    let probe = dir.join(".panebus-write-probe");
    let result = std::fs::File::create(&probe).and_then(|mut file| {
        file.write_all(&[0u8; 4096])?;
        file.sync_all()
    });
    let _ = std::fs::remove_file(&probe);
    result.map_err(|source| ManagedRedisError::Unwritable {
        path: dir.to_path_buf(),
        source,
    })
}

/// The log lines written since `start` (at most the last 2 KiB).
fn log_tail(log: &Path, start: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(log) {
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let from = start.max(len.saturating_sub(2048));
        if file.seek(SeekFrom::Start(from)).is_ok() {
            let _ = file.read_to_string(&mut text);
        }
    }
    let text = text.trim();
    if text.is_empty() {
        "no answer on the socket and nothing in the log".to_string()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_url_is_accepted_by_the_redis_crate() {
        let path = Path::new("/tmp/a b/%x#/redis.sock");
        let url = socket_url(path);
        assert_eq!(url, "redis+unix:///tmp/a%20b/%25x%23/redis.sock");
        let info = redis::IntoConnectionInfo::into_connection_info(url.as_str()).unwrap();
        match info.addr() {
            redis::ConnectionAddr::Unix(p) => assert_eq!(p, path),
            other => panic!("not a unix address: {other:?}"),
        }
    }

    #[test]
    fn server_args_disable_tcp_and_enable_aof() {
        let paths = Paths {
            runtime_dir: "/r".into(),
            state_dir: "/s".into(),
        };
        let args = redis_server_args(&paths).join(" ");
        assert!(args.contains("--port 0 "), "{args}");
        assert!(
            args.contains("--unixsocket /r/redis.sock --unixsocketperm 700"),
            "{args}"
        );
        assert!(
            args.contains("--appendonly yes --appendfsync everysec"),
            "{args}"
        );
        assert!(args.contains("--dir /s/redis"), "{args}");
    }

    #[test]
    fn unwritable_data_dir_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let err = probe_writable(&tmp.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("cannot write"), "{err}");
    }
}
