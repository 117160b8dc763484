//! `panebus up` / `down` / `status-line` against a real private tmux server and real
//! redis-servers. Each test points XDG_RUNTIME_DIR / XDG_STATE_HOME / HOME at its own
//! temporary directories, so the managed Redis it makes is private to it; a guard stops
//! that Redis (and the tmux server) even when an assertion fails.

mod support;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use panebus::bus::Bus;
use panebus::config::Config;
use support::wait::wait_for;
use support::{RedisServer, TmuxServer};

/// Private directories of one test, plus a guard for the managed Redis they may hold.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        // Short paths: the managed socket must fit in a unix socket address.
        let dir = tempfile::Builder::new()
            .prefix("pbup")
            .tempdir_in("/tmp")
            .unwrap();
        Home { dir }
    }

    fn runtime(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn socket(&self) -> PathBuf {
        self.runtime().join("panebus/redis.sock")
    }

    fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    fn redis_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.runtime().join("panebus/redis.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// `panebus ARGS` with this home, no inherited PANEBUS_* or TMUX.
    fn panebus(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_panebus"));
        command.args(args);
        for (key, _) in std::env::vars() {
            if key.starts_with("PANEBUS_") || key == "TMUX" || key == "TMUX_PANE" {
                command.env_remove(key);
            }
        }
        command
            .env("XDG_RUNTIME_DIR", self.runtime())
            .env("XDG_STATE_HOME", self.state())
            .env("HOME", self.dir.path())
            .env("PANEBUS_NODE", "uptest")
            .env("PANEBUS_HEARTBEAT_INTERVAL", "1")
            .current_dir(self.dir.path());
        command
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        if let Some(pid) = self.redis_pid() {
            // SAFETY: plain kill(2) of the redis-server this test's `up` daemonized.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

fn run(mut command: impl std::borrow::BorrowMut<Command>) -> Output {
    command.borrow_mut().output().expect("run panebus")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "panebus failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

fn assert_fails(output: &Output, expected: &str) {
    assert!(
        !output.status.success(),
        "expected failure, got: {}",
        text(&output.stdout)
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(expected),
        "expected {expected:?} in: {stderr}"
    );
}

fn ping(url: &str) -> bool {
    redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_ok()
}

fn config_for(url: &str) -> Config {
    let url = url.to_string();
    Config::from_lookup(|name| (name == "PANEBUS_REDIS_URL").then(|| url.clone())).unwrap()
}

/// `CONFIG GET name`: the value.
fn config_get(conn: &mut redis::Connection, name: &str) -> String {
    let reply: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query(conn)
        .unwrap();
    reply[1].clone()
}

/// The windows of `session`, one line each in `format`.
fn windows(tmux: &TmuxServer, session: &str, format: &str) -> Vec<String> {
    tmux.run(&["list-windows", "-t", session, "-F", format])
        .lines()
        .map(String::from)
        .collect()
}

fn sock(tmux: &TmuxServer) -> String {
    tmux.socket.display().to_string()
}

#[test]
fn up_starts_managed_redis_and_workers_down_stops_only_what_up_started() {
    let home = Home::new();
    let tmux = TmuxServer::start("mine");
    let users_redis = RedisServer::start();
    let s = sock(&tmux);

    let out = assert_ok(&run(home.panebus(&[
        "up",
        "--no-attach",
        "--managed-redis",
        "-S",
        &s,
    ])));
    assert!(out.contains("managed, started"), "{out}");
    assert!(out.contains("worker:      %"), "{out}");

    // The managed Redis: private dir and socket, no TCP, append-only persistence.
    let dir_mode = std::fs::metadata(home.socket().parent().unwrap())
        .unwrap()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    let socket_meta = std::fs::metadata(home.socket()).unwrap();
    assert!(socket_meta.file_type().is_socket());
    assert_eq!(socket_meta.mode() & 0o077, 0, "socket open to others");
    let mut conn = redis::Client::open(home.url())
        .unwrap()
        .get_connection()
        .unwrap();
    assert_eq!(config_get(&mut conn, "appendonly"), "yes");
    assert_eq!(config_get(&mut conn, "port"), "0");
    let dir = config_get(&mut conn, "dir");
    assert_eq!(Path::new(&dir), home.state().join("panebus/redis"));

    // The session: its environment, its options (session/window scoped, not global).
    let env = tmux.run(&["show-environment", "-t", "panebus", "PANEBUS_REDIS_URL"]);
    assert_eq!(env.trim(), format!("PANEBUS_REDIS_URL={}", home.url()));
    assert_eq!(
        tmux.run(&["show-option", "-qv", "-t", "panebus", "status-right"])
            .trim(),
        "#{@panebus_status}"
    );
    assert_ne!(
        tmux.run(&["show-option", "-gqv", "status-right"]).trim(),
        "#{@panebus_status}"
    );
    assert_eq!(
        windows(
            &tmux,
            "panebus",
            "#{window_name} #{window_panes} #{pane-border-status}"
        ),
        ["worker 2 top", "coordinator 1 off"]
    );
    let commands = tmux.run(&[
        "list-panes",
        "-t",
        "panebus:worker",
        "-F",
        "#{pane_start_command}",
    ]);
    for line in commands.lines() {
        assert!(line.ends_with("worker --role worker"), "{line}");
        assert!(
            line.starts_with('/') || line.starts_with("\"/"),
            "absolute binary: {line}"
        );
    }

    // Both workers register in the managed Redis.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bus = runtime
        .block_on(Bus::connect(&config_for(&home.url())))
        .unwrap();
    wait_for("two registered workers", Duration::from_secs(30), || {
        runtime.block_on(bus.worker_ids()).unwrap().len() == 2
    });

    // The README's example: the last worker pane answers a ping through the managed Redis.
    let last_pane = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("worker:"))
        .next_back()
        .and_then(|rest| rest.split_whitespace().next())
        .expect("up prints the worker panes")
        .to_string();
    let ping_out = run(home
        .panebus(&[
            "dispatch",
            &last_pane,
            "ping",
            "--wait",
            "--wait-timeout",
            "30",
        ])
        .env("PANEBUS_REDIS_URL", home.url()));
    assert_ok(&ping_out);
    let last = assert_ok(&run(home
        .panebus(&["last-result", &last_pane])
        .env("PANEBUS_REDIS_URL", home.url())));
    assert!(
        last.starts_with("command ") && last.contains(": ok"),
        "{last}"
    );
    let first_pane = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("worker:"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let none = run(home
        .panebus(&["last-result", &first_pane])
        .env("PANEBUS_REDIS_URL", home.url()));
    assert_eq!(none.status.code(), Some(4), "{}", text(&none.stderr));

    // The coordinator adopts the workers and feeds the status line and pane borders.
    wait_for(
        "the coordinator's status line",
        Duration::from_secs(30),
        || {
            tmux.run(&["show-option", "-qv", "-t", "panebus", "@panebus_status"])
                .starts_with("pb 2 ok")
        },
    );
    let states = tmux.run(&[
        "list-panes",
        "-t",
        "panebus:worker",
        "-F",
        "#{@panebus_state}",
    ]);
    assert_eq!(states.lines().collect::<Vec<_>>(), ["ok", "ok"]);

    // A second session reuses the running managed Redis.
    let pid = home.redis_pid().expect("pidfile");
    let out = assert_ok(&run(home.panebus(&[
        "up",
        "--no-attach",
        "--managed-redis",
        "-S",
        &s,
        "--session",
        "two",
    ])));
    assert!(out.contains("managed, already running"), "{out}");
    assert_eq!(home.redis_pid(), Some(pid));

    // `down` refuses the user's own session.
    assert_fails(
        &run(home.panebus(&["down", "mine", "-S", &s])),
        "only stops what `up` started",
    );

    // First down: the session goes, the Redis stays for `two`.
    let out = assert_ok(&run(home.panebus(&["down", "-S", &s])));
    assert!(out.contains("keeps running for: two"), "{out}");
    assert!(ping(&home.url()));
    let sessions = tmux.run(&["list-sessions", "-F", "#{session_name}"]);
    assert_eq!(sessions.lines().collect::<Vec<_>>(), ["mine", "two"]);

    // Last down: the managed Redis stops; the user's session and Redis survive.
    let out = assert_ok(&run(home.panebus(&["down", "two", "-S", &s])));
    assert!(out.contains("stopped the managed redis-server"), "{out}");
    assert!(!ping(&home.url()));
    assert_eq!(
        tmux.run(&["list-sessions", "-F", "#{session_name}"]).trim(),
        "mine"
    );
    assert!(ping(&users_redis.url()));
    // Its data was persisted: the append-only file exists.
    assert!(home.state().join("panebus/redis/appendonlydir").is_dir());

    // The workers of `two` deregistered before their Redis stopped: started again on the
    // same data, it holds no stale (dead) workers, only the new session's one.
    let out = assert_ok(&run(home.panebus(&[
        "up",
        "--no-attach",
        "--managed-redis",
        "-S",
        &s,
        "--session",
        "three",
        "--workers",
        "1",
    ])));
    assert!(out.contains("managed, started"), "{out}");
    let bus = runtime
        .block_on(Bus::connect(&config_for(&home.url())))
        .unwrap();
    let pane = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("worker:"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_string();
    wait_for(
        "the new worker to register",
        Duration::from_secs(30),
        || !runtime.block_on(bus.worker_ids()).unwrap().is_empty(),
    );
    assert_eq!(
        runtime.block_on(bus.worker_ids()).unwrap(),
        [format!("uptest/{pane}")]
    );
    assert_ok(&run(home.panebus(&["down", "three", "-S", &s])));
}

#[test]
fn up_uses_the_configured_redis_and_never_stops_it() {
    let home = Home::new();
    let tmux = TmuxServer::start("mine");
    let redis = RedisServer::start();
    let s = sock(&tmux);
    let out = assert_ok(&run(home
        .panebus(&["up", "--no-attach", "-S", &s, "--workers", "1"])
        .env("PANEBUS_REDIS_URL", redis.url())));
    assert!(out.contains("yours, not managed"), "{out}");
    assert!(!home.socket().exists(), "no managed redis was started");
    let env = tmux.run(&["show-environment", "-t", "panebus", "PANEBUS_REDIS_URL"]);
    assert_eq!(env.trim(), format!("PANEBUS_REDIS_URL={}", redis.url()));
    assert_ok(&run(home.panebus(&["down", "-S", &s])));
    assert!(ping(&redis.url()), "the configured redis survives down");

    // An unreachable configured Redis is an error, and nothing is started.
    assert_fails(
        &run(home
            .panebus(&["up", "--no-attach", "-S", &s])
            .env("PANEBUS_REDIS_URL", "redis://127.0.0.1:1/0")),
        "does not answer",
    );
    assert_eq!(
        tmux.run(&["list-sessions", "-F", "#{session_name}"]).trim(),
        "mine"
    );
}

#[test]
fn up_refuses_an_existing_session_before_starting_anything() {
    let home = Home::new();
    let tmux = TmuxServer::start("panebus");
    let out = run(home.panebus(&["up", "--no-attach", "--managed-redis", "-S", &sock(&tmux)]));
    assert_fails(&out, "already exists");
    assert!(
        home.redis_pid().is_none(),
        "no redis started for a refused session"
    );
    assert_eq!(
        tmux.run(&["list-windows", "-t", "panebus"]).lines().count(),
        1
    );
}

#[test]
fn layout_file_roles_commands_env_and_dirs() {
    let home = Home::new();
    let tmux = TmuxServer::start("mine");
    let redis = RedisServer::start();
    let workdir = home.dir.path().join("dir #{pane_id} $(x)");
    std::fs::create_dir_all(&workdir).unwrap();
    let marker = home.dir.path().join("marker");
    let layout = format!(
        r#"
[session]
name = "agents"

[[role]]
name = "reviewer"
count = 2

# Two panes (new-window and split-window batches); arguments ending in `;` must reach
# the panes as themselves, not end tmux commands.
[[role]]
name = "probe"
count = 2
working_dir = {workdir:?}
env = {{ PROBE_VALUE = "a;b $(id) #{{x}};" }}
command = ["sh", "-c", "printf '%s|%s' \"$PROBE_VALUE\" \"$(pwd)\" > {marker}; exec sleep 600;"]
"#,
        workdir = workdir.display().to_string(),
        marker = marker.display(),
    );
    std::fs::write(home.dir.path().join("panebus.toml"), layout).unwrap();
    let s = sock(&tmux);
    // ./panebus.toml is used without -f.
    let out = assert_ok(&run(home
        .panebus(&["up", "--no-attach", "-S", &s])
        .env("PANEBUS_REDIS_URL", redis.url())));
    assert!(out.contains("session agents"), "{out}");
    assert_eq!(
        windows(&tmux, "agents", "#{window_name} #{window_panes}"),
        ["reviewer 2", "probe 2", "coordinator 1"]
    );
    wait_for(
        "the probe pane to write its marker",
        Duration::from_secs(20),
        || marker.exists(),
    );
    let probe = std::fs::read_to_string(&marker).unwrap();
    assert_eq!(probe, format!("a;b $(id) #{{x}};|{}", workdir.display()));
    // The role's variable stays in its pane, not in the session.
    let session_env = tmux.run(&["show-environment", "-t", "agents"]);
    assert!(!session_env.contains("PROBE_VALUE"), "{session_env}");
    assert_ok(&run(home.panebus(&["down", "agents", "-S", &s])));
}

#[test]
fn bad_layout_files_and_flags_are_clear_errors() {
    let home = Home::new();
    let tmux = TmuxServer::start("mine");
    let s = sock(&tmux);
    let file = home.dir.path().join("bad.toml");
    std::fs::write(&file, "[[role]]\nname = \"w\"\ncuont = 3\n").unwrap();
    let f = file.display().to_string();
    assert_fails(
        &run(home.panebus(&["up", "--no-attach", "-S", &s, "-f", &f])),
        "line 3",
    );
    std::fs::write(&file, "[[role]]\nname = \"w;x\"\n").unwrap();
    assert_fails(
        &run(home.panebus(&["up", "--no-attach", "-S", &s, "-f", &f])),
        "not allowed",
    );
    std::fs::write(&file, "[[role]]\nname = \"w\"\n").unwrap();
    assert_fails(
        &run(home.panebus(&["up", "--no-attach", "-S", &s, "-f", &f, "--workers", "3"])),
        "--workers and --role",
    );
    assert_fails(
        &run(home.panebus(&[
            "up",
            "--no-attach",
            "-S",
            &s,
            "-f",
            "/nonexistent/panebus.toml",
        ])),
        "cannot read layout file",
    );
    assert_fails(
        &run(home.panebus(&["up", "--no-attach", "-S", &s, "--session", "a:b"])),
        "not allowed",
    );
    assert!(home.redis_pid().is_none());
    assert_eq!(
        tmux.run(&["list-sessions", "-F", "#{session_name}"]).trim(),
        "mine"
    );
}

#[test]
fn managed_redis_errors_say_what_to_do() {
    let home = Home::new();
    let tmux = TmuxServer::start("mine");
    let s = sock(&tmux);
    // No redis-server on PATH (tmux still is).
    let bin = home.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let tmux_path = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v tmux"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    std::os::unix::fs::symlink(tmux_path.trim(), bin.join("tmux")).unwrap();
    let out = run(home
        .panebus(&["up", "--no-attach", "--managed-redis", "-S", &s])
        .env("PATH", &bin));
    assert_fails(&out, "redis-server is not installed");
    assert!(text(&out.stderr).contains("apt-get install redis-server"));

    // A state dir that cannot be created (its parent is a file).
    let file = home.dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let out = run(home
        .panebus(&["up", "--no-attach", "--managed-redis", "-S", &s])
        .env("XDG_STATE_HOME", file.join("x")));
    assert_fails(&out, "cannot create private directory");
    assert_eq!(
        tmux.run(&["list-sessions", "-F", "#{session_name}"]).trim(),
        "mine"
    );
}

#[test]
fn status_line_formats_and_redis_down() {
    let home = Home::new();
    let redis = RedisServer::start();
    let config = config_for(&redis.url());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bus = runtime.block_on(Bus::connect(&config)).unwrap();
    let ids: Vec<String> = ["%1", "%2", "%3", "%4"]
        .iter()
        .map(|pane| {
            let mut info =
                panebus::worker::identity::initial_info(&config, pane, "worker", vec![], None);
            runtime
                .block_on(bus.register(&mut info, Duration::from_secs(600)))
                .unwrap();
            info.id
        })
        .collect();
    let mut conn = redis.conn();
    // %3 is dead (heartbeat gone), %4 quarantined; %1 has two queued commands.
    let _: () = redis::cmd("DEL")
        .arg(bus.keys().heartbeat(&ids[2]))
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(bus.keys().quarantine(&ids[3]))
        .arg("reason")
        .arg("crash loop")
        .query(&mut conn)
        .unwrap();
    for _ in 0..2 {
        let command = panebus::schema::Command::new("ping", serde_json::json!({}), "test");
        runtime
            .block_on(bus.enqueue(&ids[0], &command, false))
            .unwrap();
    }
    let plain = assert_ok(&run(home
        .panebus(&["status-line", "--format", "plain"])
        .env("PANEBUS_REDIS_URL", redis.url())));
    assert_eq!(
        plain.trim(),
        "pb: 2 healthy, 1 dead, 1 quarantined, 2 queued"
    );
    let styled = assert_ok(&run(home
        .panebus(&["status-line"])
        .env("PANEBUS_REDIS_URL", redis.url())));
    assert_eq!(
        styled.trim(),
        "pb #[fg=green]2 ok#[default] #[fg=red]1 dead#[default] #[fg=magenta]1 quar#[default] q:2"
    );
    for format in ["plain", "tmux"] {
        let out = run(home
            .panebus(&["status-line", "--format", format])
            .env("PANEBUS_REDIS_URL", "redis://127.0.0.1:1/0"));
        let line = assert_ok(&out);
        assert!(line.contains("pb: redis down"), "{line}");
        assert!(
            text(&out.stderr).trim().is_empty(),
            "nothing on stderr: {}",
            text(&out.stderr)
        );
    }
}

/// `INFO commandstats` as `(command, calls)` pairs.
fn command_calls(conn: &mut redis::Connection) -> Vec<(String, u64)> {
    let info: String = redis::cmd("INFO").arg("commandstats").query(conn).unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats.strip_prefix("calls=")?.split(',').next()?;
            Some((name.to_string(), calls.parse().ok()?))
        })
        .collect()
}

#[test]
fn status_line_is_one_request_and_honours_password_db_and_namespace() {
    let home = Home::new();
    let redis = RedisServer::start();
    let mut admin = redis.conn();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("s3cret")
        .query(&mut admin)
        .unwrap();
    let _: () = redis::cmd("AUTH").arg("s3cret").query(&mut admin).unwrap();
    let _: () = redis::cmd("SELECT").arg(3).query(&mut admin).unwrap();
    // Worker ids with characters that Lua patterns, tmux formats or key layouts could
    // trip over; their keys are made by the bus's own key layout.
    let keys = panebus::bus::Keys::new("other");
    let ids = ["n/%1", "n/%2 ]] .. '\"", "n/{%3}"];
    for id in ids {
        let _: () = redis::cmd("SADD")
            .arg(keys.workers())
            .arg(id)
            .query(&mut admin)
            .unwrap();
    }
    let _: () = redis::cmd("SET")
        .arg(keys.heartbeat(ids[0]))
        .arg("1")
        .query(&mut admin)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(keys.heartbeat(ids[1]))
        .arg("1")
        .query(&mut admin)
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(keys.quarantine(ids[1]))
        .arg("reason")
        .arg("crash loop")
        .query(&mut admin)
        .unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg(keys.queue(ids[2]))
        .arg("a")
        .arg("b")
        .arg("c")
        .query(&mut admin)
        .unwrap();
    let base = redis.url().replace("127.0.0.1", ":s3cret@127.0.0.1");
    let url = format!("{}/3", base.strip_suffix("/0").unwrap());
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut admin)
        .unwrap();
    let line = assert_ok(&run(home
        .panebus(&["status-line", "--format", "plain", "--namespace", "other"])
        .env("PANEBUS_REDIS_URL", &url)));
    assert_eq!(
        line.trim(),
        "pb: 1 healthy, 1 dead, 1 quarantined, 3 queued"
    );
    // One request: AUTH and SELECT ride in the EVAL's pipeline; no CLIENT SETINFO, no
    // separate SMEMBERS (the script's own calls show up in the stats too, once each).
    let mut calls = command_calls(&mut admin);
    calls.retain(|(name, _)| !name.starts_with("config") && name != "info");
    calls.sort();
    assert_eq!(
        calls,
        [
            ("auth".to_string(), 1),
            ("eval".to_string(), 1),
            ("exists".to_string(), 5),
            ("llen".to_string(), 3),
            ("select".to_string(), 1),
            ("smembers".to_string(), 1),
        ]
    );
    // The default namespace of that database is empty; a wrong password is "redis down".
    let empty = assert_ok(&run(home
        .panebus(&["status-line", "--format", "plain"])
        .env("PANEBUS_REDIS_URL", &url)));
    assert_eq!(empty.trim(), "pb: 0 healthy, 0 queued");
    let wrong = assert_ok(&run(home
        .panebus(&["status-line", "--format", "plain", "--namespace", "other"])
        .env("PANEBUS_REDIS_URL", url.replace("s3cret", "wrong"))));
    assert_eq!(wrong.trim(), "pb: redis down");
}

#[test]
fn bootstrap_runs_up_with_its_arguments() {
    let home = Home::new();
    let tmux = TmuxServer::start("mine");
    let s = sock(&tmux);
    // panebus is "installed" (on PATH), tmux and redis-server are present: nothing to install.
    let bin = home.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_panebus"), bin.join("panebus")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bootstrap.sh");
    let mut command = home.panebus(&[]);
    let mut bootstrap = Command::new("bash");
    bootstrap
        .arg(&script)
        .args(["--no-attach", "--managed-redis", "-S", &s, "--workers", "1"]);
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => bootstrap.env(key, value),
            None => bootstrap.env_remove(key),
        };
    }
    bootstrap
        .env("PATH", path)
        .env("PANEBUS_BOOTSTRAP_NO_INSTALL", "1");
    let out = assert_ok(&run(&mut bootstrap));
    assert!(out.contains("worker:      %"), "{out}");
    assert_eq!(
        windows(&tmux, "panebus", "#{window_name} #{window_panes}"),
        ["worker 1", "coordinator 1"]
    );
    assert_ok(&run(command.args(["down", "-S", &s])));
}

#[test]
fn down_leaves_a_same_named_session_the_user_made_later() {
    let home = Home::new();
    let tmux = TmuxServer::start("mine");
    let s = sock(&tmux);
    assert_ok(&run(home.panebus(&[
        "up",
        "--no-attach",
        "--managed-redis",
        "-S",
        &s,
        "--session",
        "x",
        "--workers",
        "1",
    ])));
    // Detach the coordinator first, as `down` does: tmux 3.3a can crash when a session is
    // killed under an attached control client (README "Status and known limits").
    wait_for("the coordinator attached", Duration::from_secs(30), || {
        !tmux.run(&["list-clients", "-t", "=x"]).trim().is_empty()
    });
    tmux.run(&["detach-client", "-s", "=x"]);
    wait_for("the coordinator detached", Duration::from_secs(10), || {
        tmux.run(&["list-clients", "-t", "=x"]).trim().is_empty()
    });
    tmux.run(&["kill-session", "-t", "=x"]);
    tmux.run(&["new-session", "-d", "-s", "x"]);
    let out = assert_ok(&run(home.panebus(&["down", "x", "-S", &s])));
    assert!(out.contains("already gone"), "{out}");
    assert!(out.contains("stopped the managed redis-server"), "{out}");
    let sessions = tmux.run(&["list-sessions", "-F", "#{session_name}"]);
    assert_eq!(sessions.lines().collect::<Vec<_>>(), ["mine", "x"]);
    // The record is gone: a second down refuses.
    assert_fails(
        &run(home.panebus(&["down", "x", "-S", &s])),
        "only stops what `up` started",
    );
}
