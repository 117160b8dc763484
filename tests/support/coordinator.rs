//! A coordinator (`panebus attach`) for tests: the fast timings the tests run it with, and
//! starting one so that the test goes on only once it leads (holds its lease), so workers
//! started afterwards register with a running coordinator. Plus the registry lookup the
//! tests use to tell that a pane's worker is the one the coordinator manages.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use panebus::bus::Keys;
use redis::Commands;

use super::process::ChildGuard;
use super::wait::wait_for;
use super::RedisServer;

/// How often the test coordinator looks at its panes.
pub const CHECK_INTERVAL: [&str; 2] = ["--check-interval", "200ms"];

/// A short lease, short respawn backoff and heartbeat grace, so that tests see takeovers
/// and respawns within seconds.
pub const FAST_TIMINGS: [&str; 6] = [
    "--lease-ttl",
    "2s",
    "--backoff-base",
    "200ms",
    "--heartbeat-grace",
    "3s",
];

/// How long a started coordinator may take to hold its lease.
const LEAD: Duration = Duration::from_secs(40);

/// `attach SESSION -S SOCKET` with [`CHECK_INTERVAL`] and [`FAST_TIMINGS`].
pub fn attach_args<'a>(session: &'a str, socket: &'a str) -> Vec<&'a str> {
    let mut args = vec!["attach", session, "-S", socket];
    args.extend_from_slice(&CHECK_INTERVAL);
    args.extend_from_slice(&FAST_TIMINGS);
    args
}

/// Starts `attach` (a `panebus attach` command) with stdout discarded and stderr written
/// to `log`, then waits up to 40 s until `lease` (its lease key) exists in `redis`.
pub fn start_coordinator(
    mut attach: Command,
    log: &Path,
    redis: &RedisServer,
    lease: &str,
) -> ChildGuard {
    let log = std::fs::File::create(log).expect("create the coordinator log");
    let child = attach
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start panebus attach");
    let coordinator = ChildGuard(child);
    wait_for("a coordinator holds the lease", LEAD, || {
        redis.conn().exists::<_, bool>(lease).unwrap()
    });
    coordinator
}

/// The pid worker `worker` registered, if it is registered.
pub fn registered_pid(conn: &mut redis::Connection, keys: &Keys, worker: &str) -> Option<u32> {
    let pid: Option<String> = conn.hget(keys.info(worker), "pid").ok().flatten();
    pid.and_then(|p| p.parse().ok())
}
