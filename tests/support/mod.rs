//! Private test servers: a redis-server on a free loopback port and a tmux server on a
//! private socket, each killed by its guard's `Drop` (also on panic). Tests never touch
//! the user's default tmux server or a Redis on 6379. The rest of the harness lives in one
//! submodule per concept; each test binary uses only part of it, hence `dead_code` allowed.
#![allow(dead_code)]

pub mod chaos;
pub mod coordinator;
pub mod deployments;
pub mod events;
pub mod panebus;
pub mod process;
pub mod wait;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server owned by one test.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    extra_args: Vec<String>,
}

fn free_port() -> u16 {
    // Bind port 0 to let the kernel choose, then release it for redis-server.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().unwrap().port()
}

impl RedisServer {
    /// Starts a redis-server with no persistence on a free loopback port.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a redis-server with extra `--option value` arguments.
    pub fn start_with(extra_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir for redis");
        let extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        let port = free_port();
        let child = spawn_redis(dir.path(), port, &extra_args);
        let mut server = RedisServer {
            child,
            port,
            dir,
            extra_args,
        };
        // Another process may grab the port between our probe and redis's bind: retry.
        for _ in 0..5 {
            if server.wait_ready(Duration::from_secs(5)) {
                return server;
            }
            server.kill();
            server.port = free_port();
            server.child = spawn_redis(server.dir.path(), server.port, &server.extra_args);
        }
        panic!("redis-server did not start (is it installed? `apt-get install redis-server`)");
    }

    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(client) = redis::Client::open(self.url()) {
                if let Ok(mut conn) = client.get_connection() {
                    if redis::cmd("PING").query::<String>(&mut conn).is_ok() {
                        return true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A blocking connection for assertions.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server with SIGTERM, as `redis-cli shutdown` or a service manager would:
    /// Redis writes and fsyncs its AOF before it exits. Waits for it (10 s at most, then
    /// SIGKILL: Redis refuses a SIGTERM whose final AOF write fails).
    pub fn terminate(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on the pid of a child this guard owns and has not reaped.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Ok(None) = self.child.try_wait() {
            if Instant::now() > deadline {
                self.kill();
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Restarts the server on the same port and data directory after a crash (SIGKILL):
    /// with `appendfsync everysec`, writes of the last second or two may be gone.
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }

    /// Restarts the server on the same port and data directory after a clean stop
    /// (SIGTERM): everything it acknowledged is on disk.
    pub fn restart_gracefully(&mut self) {
        self.terminate();
        self.start_again();
    }

    fn start_again(&mut self) {
        self.child = spawn_redis(self.dir.path(), self.port, &self.extra_args);
        assert!(
            self.wait_ready(Duration::from_secs(10)),
            "redis-server did not restart"
        );
    }
}

fn spawn_redis(dir: &Path, port: u16, extra_args: &[String]) -> Child {
    let mut args = vec!["--port".to_string(), port.to_string()];
    args.extend_from_slice(extra_args);
    spawn_redis_server(dir, &args)
}

/// `redis-server ARGS` on 127.0.0.1 with its files in `dir` and no persistence unless
/// `args` turn it on; its output discarded.
pub fn spawn_redis_server(dir: &Path, args: &[String]) -> Child {
    Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server (install it: apt-get install redis-server)")
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// No variables, for [`TmuxServer::new_window`].
pub const NO_ENV: &[(&str, &str)] = &[];

/// A tmux server on a private socket (`tmux -S <tempdir>/sock`), killed on drop.
pub struct TmuxServer {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
}

impl TmuxServer {
    /// Starts a tmux server with one detached session `session` running `sh`.
    pub fn start(session: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir for tmux");
        let socket = dir.path().join("tmux.sock");
        let server = TmuxServer { dir, socket };
        let out = server
            .cmd()
            .args(["new-session", "-d", "-s", session, "-x", "200", "-y", "50"])
            .output()
            .expect("run tmux (install it: apt-get install tmux)");
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        server
    }

    /// A `tmux -S <socket> -f /dev/null` command with TMUX unset.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .env_remove("TMUX");
        c
    }

    /// Runs a tmux command and returns its stdout (panics on failure).
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().expect("run tmux");
        assert!(
            out.status.success(),
            "tmux {:?} failed: {}",
            args,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `argv` in a new detached window of `target` (a session, e.g. `=work:`) with
    /// `env` set in that window only; returns its pane id (`%N`).
    pub fn new_window<K: AsRef<str>, V: AsRef<str>>(
        &self,
        target: &str,
        env: &[(K, V)],
        argv: &[&str],
    ) -> String {
        let mut args: Vec<String> = ["new-window", "-d", "-P", "-F", "#{pane_id}", "-t", target]
            .map(String::from)
            .to_vec();
        for (k, v) in env {
            args.push("-e".into());
            args.push(format!("{}={}", k.as_ref(), v.as_ref()));
        }
        args.push("--".into());
        args.extend(argv.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&args).trim().to_string()
    }

    /// `#{FORMAT}` expanded for `pane` (`display-message -p`), trimmed.
    pub fn display(&self, pane: &str, format: &str) -> String {
        self.run(&["display-message", "-p", "-t", pane, format])
            .trim()
            .to_string()
    }
}

impl Drop for TmuxServer {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .arg("kill-server")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
