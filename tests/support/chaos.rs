//! A whole PaneBus installation for fault tests: a private redis-server with AOF on
//! (`appendfsync everysec`), a private tmux server with one session, a coordinator
//! (`panebus attach --adopt`) and worker panes started as the pane command, the way
//! `panebus up` builds them. Every `PANEBUS_*` setting goes into the tmux session
//! environment, as `up` does, so workers the coordinator respawns get the same settings.
//! Faults are injected from outside (kill -9 of a pane's process or of the coordinator,
//! Redis killed and restarted, the tmux server killed); nothing in PaneBus knows it is
//! being tested.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use panebus::bus::Keys;
use panebus::config::Config;
use redis::Commands;

use super::coordinator::registered_pid;
use super::events::stream_events;
use super::process::ChildGuard;
use super::wait::wait_for;
use super::{RedisServer, TmuxServer, NO_ENV};

// tests/chaos.rs reaches these through this module (other binaries do not use them here).
#[allow(unused_imports)]
pub use super::{events::StreamEvent, process::signal_pid};

pub const NS: &str = "chaos";
pub const NODE: &str = "cnode";
pub const SESSION: &str = "chaos";
pub const ROLE: &str = "chaos";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_panebus")
}

/// Redis, tmux, the coordinator and the worker panes of one fault test.
pub struct Installation {
    pub redis: RedisServer,
    pub tmux: TmuxServer,
    pub dir: tempfile::TempDir,
    pub keys: Keys,
    pub panes: Vec<String>,
    pub coordinator: Option<ChildGuard>,
    /// Extra `PANEBUS_*` settings on top of [`Installation::base_env`].
    overrides: Vec<(String, String)>,
}

impl Installation {
    /// Redis (AOF on) and a tmux session with its environment set; no coordinator or
    /// workers yet.
    pub fn new(overrides: &[(&str, &str)]) -> Installation {
        let redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "everysec"]);
        Installation::on(redis, overrides)
    }

    /// Like [`Installation::new`] with a Redis that keeps nothing across a restart.
    pub fn without_persistence(overrides: &[(&str, &str)]) -> Installation {
        Installation::on(RedisServer::start(), overrides)
    }

    fn on(redis: RedisServer, overrides: &[(&str, &str)]) -> Installation {
        let tmux = TmuxServer::start(SESSION);
        let installation = Installation {
            redis,
            tmux,
            dir: tempfile::tempdir().unwrap(),
            keys: Keys::new(NS),
            panes: Vec::new(),
            coordinator: None,
            overrides: overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        for (k, v) in installation.env() {
            installation
                .tmux
                .run(&["set-environment", "-t", SESSION, &k, &v]);
        }
        installation
    }

    /// Redis with AOF, tmux, a coordinator and `workers` managed worker panes.
    pub fn start(workers: usize, overrides: &[(&str, &str)]) -> Installation {
        let mut installation = Installation::new(overrides);
        installation.start_coordinator(&[]);
        for _ in 0..workers {
            let pane = installation.start_worker();
            installation.panes.push(pane);
        }
        for pane in installation.panes.clone() {
            installation.wait_managed(&pane);
        }
        installation
    }

    /// The settings every process of the installation gets: fast heartbeats, no
    /// quarantine, results and events kept for the whole test.
    fn base_env(&self) -> Vec<(String, String)> {
        [
            ("PANEBUS_REDIS_URL", self.redis.url()),
            ("PANEBUS_NAMESPACE", NS.to_string()),
            ("PANEBUS_NODE", NODE.to_string()),
            ("PANEBUS_HEARTBEAT_INTERVAL", "300ms".to_string()),
            ("PANEBUS_HEARTBEAT_TTL", "3".to_string()),
            ("PANEBUS_EVENTS_MAXLEN", "2000000".to_string()),
            ("PANEBUS_RESULT_TTL", "24h".to_string()),
            ("PANEBUS_MAX_QUEUE_DEPTH", "1000000".to_string()),
            ("PANEBUS_RESPAWN_LIMIT", "1000000".to_string()),
            ("PANEBUS_LOG_LEVEL", "warn".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    pub fn env(&self) -> Vec<(String, String)> {
        let mut env: HashMap<String, String> = self.base_env().into_iter().collect();
        for (k, v) in &self.overrides {
            env.insert(k.clone(), v.clone());
        }
        let mut env: Vec<(String, String)> = env.into_iter().collect();
        env.sort();
        env
    }

    /// A library configuration with the installation's settings (for dispatchers).
    pub fn config(&self) -> Config {
        let env: HashMap<String, String> = self.env().into_iter().collect();
        Config::from_lookup(|k| env.get(k).cloned()).unwrap()
    }

    /// `panebus ARGS` with the installation's environment and no tmux of the caller.
    pub fn panebus(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(args).env_remove("TMUX").env_remove("TMUX_PANE");
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn socket(&self) -> String {
        self.tmux.socket.to_str().unwrap().to_string()
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_path(name)).unwrap_or_default()
    }

    /// Starts `panebus attach SESSION --adopt` (log appended to `coordinator.log`) with
    /// fast ticks, a short lease, short backoff and `extra` flags; waits until it leads.
    pub fn start_coordinator(&mut self, extra: &[&str]) {
        let socket = self.socket();
        let mut args = vec![
            "attach",
            SESSION,
            "-S",
            &socket,
            "--adopt",
            "--check-interval",
            "200ms",
            "--lease-ttl",
            "2s",
            "--backoff-base",
            "100ms",
            "--backoff-max",
            "1s",
            "--stable-after",
            "200ms",
            "--heartbeat-grace",
            "3s",
        ];
        args.extend_from_slice(extra);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path("coordinator.log"))
            .unwrap();
        let child = self
            .panebus(&args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start panebus attach");
        let pid = child.id();
        self.coordinator = Some(ChildGuard(child));
        wait_for(
            "the coordinator holds the lease",
            Duration::from_secs(30),
            || {
                let holder: Option<String> = self
                    .conn()
                    .get(self.keys.lease(NODE, SESSION))
                    .ok()
                    .flatten();
                // `<token> <host>:<pid>:<random>`
                holder.is_some_and(|h| h.split(':').nth(1) == Some(&pid.to_string()))
            },
        );
    }

    /// How the coordinator ended, if it is not running any more.
    pub fn coordinator_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.coordinator
            .as_mut()
            .and_then(|proc| proc.0.try_wait().unwrap())
    }

    /// Kills the coordinator with SIGKILL (its workers keep running).
    pub fn kill_coordinator(&mut self) {
        if let Some(mut proc) = self.coordinator.take() {
            proc.signal(libc::SIGKILL);
            proc.wait_exit(Duration::from_secs(10));
        }
    }

    /// Starts `panebus worker --role chaos` as the command of a new window; returns `%N`.
    pub fn start_worker(&self) -> String {
        self.start_pane(&[bin(), "worker", "--role", ROLE])
    }

    /// Starts `argv` as the command of a new window (the session environment applies).
    pub fn start_pane(&self, argv: &[&str]) -> String {
        self.tmux.new_window(&format!("={SESSION}:"), NO_ENV, argv)
    }

    pub fn conn(&self) -> redis::Connection {
        self.redis.conn()
    }

    pub fn worker_id(pane: &str) -> String {
        format!("{NODE}/{pane}")
    }

    /// `#{pane_dead} #{pane_pid}` of a pane: whether it is dead, and its process.
    pub fn pane_state(&self, pane: &str) -> Option<(bool, u32)> {
        let out = self
            .tmux
            .cmd()
            .args([
                "display-message",
                "-p",
                "-t",
                pane,
                "#{pane_dead} #{pane_pid}",
            ])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut fields = text.split_whitespace();
        let dead = fields.next()? == "1";
        let pid = fields.next()?.parse().ok()?;
        Some((dead, pid))
    }

    pub fn pane_option(&self, pane: &str, format: &str) -> String {
        self.tmux.display(pane, format)
    }

    /// The registered pid of the worker of `pane`, if registered.
    pub fn registered_pid(&self, pane: &str) -> Option<u32> {
        registered_pid(&mut self.conn(), &self.keys, &Self::worker_id(pane))
    }

    /// Whether the coordinator manages `pane` and its live worker is registered.
    pub fn is_managed(&self, pane: &str) -> bool {
        let Some((false, pid)) = self.pane_state(pane) else {
            return false;
        };
        self.pane_option(pane, "#{@panebus_worker}") == Self::worker_id(pane)
            && self.registered_pid(pane) == Some(pid)
            && self
                .conn()
                .exists::<_, bool>(self.keys.heartbeat(&Self::worker_id(pane)))
                .unwrap_or(false)
    }

    /// Waits until the coordinator manages `pane` and its worker runs and heartbeats.
    pub fn wait_managed(&self, pane: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.is_managed(pane) {
            if Instant::now() > deadline {
                let screen = self.tmux.run(&["capture-pane", "-p", "-t", pane]);
                panic!(
                    "{pane} not managed: state {:?}, registered pid {:?}\nscreen:\n{screen}\ncoordinator log:\n{}",
                    self.pane_state(pane),
                    self.registered_pid(pane),
                    self.log("coordinator.log")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every event in the stream, oldest first.
    pub fn events(&self) -> Vec<StreamEvent> {
        stream_events(&mut self.conn(), &self.keys)
    }

    pub fn count(&self, kind: &str) -> usize {
        self.events().iter().filter(|e| e.kind == kind).count()
    }
}

impl Drop for Installation {
    fn drop(&mut self) {
        // The coordinator first, so it does not respawn what the tmux server's end kills.
        self.kill_coordinator();
    }
}
