//! The `panebus` binary as the tests run it: [`Panebus`] holds one environment (Redis URL,
//! namespace, node, fast heartbeats, log level) and gives it, and nothing of the test
//! runner's environment but `PATH`, to every call and every `panebus worker` it starts.
//! Workers take their pane id from `TMUX_PANE`, so they need no tmux server.
//! [`PrivateBus`] pairs the runner with a redis-server of its own. Tests that drive a tmux
//! session build their commands around their own rig instead.

use std::io::Write;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use panebus::bus::Keys;
use serde_json::Value;

use super::process::ChildGuard;
use super::wait::wait_for;
use super::RedisServer;

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_panebus")
}

/// How long a started worker may take to show as alive.
const WORKER_START: Duration = Duration::from_secs(40);

/// The `panebus` binary with one environment for every call and worker.
pub struct Panebus {
    pub env: Vec<(String, String)>,
}

impl Panebus {
    /// The Redis deployment tests' settings: namespace `deploy`, node `testnode`,
    /// heartbeats every 200 ms with a 5 s TTL, log level `debug`.
    pub fn new(redis_url: &str) -> Panebus {
        let mut panebus = Panebus::on(redis_url, "deploy", "testnode");
        panebus.set("PANEBUS_LOG_LEVEL", "debug");
        panebus
    }

    /// Namespace `namespace`, node `node`, heartbeats every 200 ms with a 5 s TTL, log
    /// level `warn`; [`Panebus::set`] changes any of them.
    pub fn on(redis_url: &str, namespace: &str, node: &str) -> Panebus {
        let env = [
            ("PANEBUS_REDIS_URL", redis_url),
            ("PANEBUS_NAMESPACE", namespace),
            ("PANEBUS_NODE", node),
            ("PANEBUS_HEARTBEAT_INTERVAL", "200ms"),
            ("PANEBUS_HEARTBEAT_TTL", "5"),
            ("PANEBUS_LOG_LEVEL", "warn"),
        ];
        Panebus {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// Sets a variable for every later call and worker.
    pub fn set(&mut self, name: &str, value: &str) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_string(), value.to_string()));
    }

    /// The value of `name` in this environment.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `panebus ARGS` with this environment only (plus `PATH`) and stdin closed.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `panebus ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run panebus")
    }

    /// Runs `panebus ARGS` with `input` on stdin.
    pub fn run_with_stdin(&self, args: &[&str], input: impl AsRef<[u8]>) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start panebus");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_ref())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs `panebus ARGS --json` and parses stdout, asserting success.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "panebus {args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "panebus {args:?} printed invalid JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// `panebus status-line --format plain`, which always exits 0; stdout trimmed.
    pub fn status_line(&self) -> String {
        let out = self.run(&["status-line", "--format", "plain"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Starts `panebus ARGS` (a `worker` command) as pane `pane`, its stderr going to
    /// `stderr`; does not wait for it.
    pub fn spawn_worker(&self, pane: &str, args: &[&str], stderr: Stdio) -> ChildGuard {
        let child = self
            .command(args)
            .env("TMUX_PANE", pane)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start panebus worker");
        ChildGuard(child)
    }

    /// Whether `panebus panes` lists worker `NODE/pane` as alive.
    pub fn alive(&self, pane: &str) -> bool {
        let id = format!("{}/{pane}", self.var("PANEBUS_NODE").unwrap_or_default());
        let out = self.run(&["panes", "--json"]);
        out.status.success()
            && serde_json::from_slice::<Value>(&out.stdout)
                .ok()
                .and_then(|v| v.as_array().cloned())
                .is_some_and(|panes| {
                    panes
                        .iter()
                        .any(|p| p["id"] == id.as_str() && p["alive"] == true)
                })
    }

    /// [`Panebus::spawn_worker`], then waits up to 40 s until the worker is alive on the
    /// bus.
    pub fn start_worker(&self, pane: &str, args: &[&str], stderr: Stdio) -> ChildGuard {
        let guard = self.spawn_worker(pane, args, stderr);
        wait_for(&format!("worker of {pane} alive"), WORKER_START, || {
            self.alive(pane)
        });
        guard
    }

    /// Starts `panebus worker --role ROLE EXTRA` as pane `pane` and waits until it is
    /// alive on the bus.
    pub fn role_worker(&self, pane: &str, role: &str, extra: &[&str]) -> ChildGuard {
        let mut args = vec!["worker", "--role", role];
        args.extend_from_slice(extra);
        self.start_worker(pane, &args, Stdio::null())
    }

    /// Starts `panebus worker` as pane `pane`, its stderr going to `log`, and waits until
    /// it is alive on the bus.
    pub fn worker(&self, pane: &str, log: &Path) -> ChildGuard {
        let log = std::fs::File::create(log).expect("create the worker log");
        self.start_worker(pane, &["worker"], log.into())
    }
}

/// A private redis-server with a [`Panebus`] runner on it (namespace and node as given,
/// the runner's other defaults); derefs to the runner.
pub struct PrivateBus {
    pub redis: RedisServer,
    pub keys: Keys,
    panebus: Panebus,
}

impl PrivateBus {
    pub fn start(namespace: &str, node: &str) -> PrivateBus {
        let redis = RedisServer::start();
        let panebus = Panebus::on(&redis.url(), namespace, node);
        PrivateBus {
            redis,
            keys: Keys::new(namespace),
            panebus,
        }
    }
}

impl Deref for PrivateBus {
    type Target = Panebus;

    fn deref(&self) -> &Panebus {
        &self.panebus
    }
}

impl DerefMut for PrivateBus {
    fn deref_mut(&mut self) -> &mut Panebus {
        &mut self.panebus
    }
}
