//! `panebus acl` against a real redis-server: the printed rules are piped into `redis-cli`,
//! then real `panebus worker`, CLI and coordinator processes run as those users, and what
//! each user must not do is tried and refused by Redis. Every process logs at trace level
//! with a password in its URL; the password must appear in no output, log line, event or
//! registry record.

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use panebus::bus::Keys;
use redis::Commands;
use serde_json::Value;
use support::coordinator::{attach_args, registered_pid, start_coordinator};
use support::deployments::RedisCluster;
use support::panebus::Panebus;
use support::process::{signal_pid, ChildGuard};
use support::wait::wait_for;
use support::{RedisServer, TmuxServer};

const NS: &str = "acl";
const NODE: &str = "anode";
const WORKER_PASSWORD: &str = "wk-pass-5e1f0c9a";
const DISPATCHER_PASSWORD: &str = "dp-pass-9b7d2e44";
const COORDINATOR_PASSWORD: &str = "co-pass-3a8c6f10";
const PASSWORDS: [&str; 3] = [WORKER_PASSWORD, DISPATCHER_PASSWORD, COORDINATOR_PASSWORD];

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_panebus")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// How long a condition may take to come true.
const WAIT: Duration = Duration::from_secs(40);

/// How long a stopped process may take to exit.
const EXIT: Duration = Duration::from_secs(30);

/// A redis-server with the three users of `panebus acl`, and everything the processes
/// printed, kept to be searched for passwords at the end.
struct Rig {
    redis: RedisServer,
    dir: tempfile::TempDir,
    keys: Keys,
    seen: std::cell::RefCell<Vec<String>>,
}

impl Rig {
    fn new() -> Rig {
        let rig = Rig {
            redis: RedisServer::start(),
            dir: tempfile::tempdir().unwrap(),
            keys: Keys::new(NS),
            seen: Default::default(),
        };
        // One password per user: one `panebus acl` run per role.
        rig.apply(
            &["--role", "worker", "--worker", "%7", "--user", "acl-w7"],
            WORKER_PASSWORD,
        );
        rig.apply(
            &["--role", "worker", "--worker", "anode/*"],
            WORKER_PASSWORD,
        );
        rig.apply(&["--role", "dispatcher"], DISPATCHER_PASSWORD);
        rig.apply(&["--role", "coordinator"], COORDINATOR_PASSWORD);
        rig
    }

    /// Runs `panebus acl ARGS --password-env PW` and pipes its output into `redis-cli`.
    fn apply(&self, args: &[&str], password: &str) {
        let out = Command::new(bin())
            .arg("acl")
            .args(args)
            .args(["--password-env", "ACL_TEST_PASSWORD"])
            .env("ACL_TEST_PASSWORD", password)
            .env("PANEBUS_NAMESPACE", NS)
            .env("PANEBUS_NODE", NODE)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let rules = text(&out.stdout);
        let mut cli = Command::new("redis-cli")
            .args(["-p", &self.redis.port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run redis-cli");
        cli.stdin
            .take()
            .unwrap()
            .write_all(rules.as_bytes())
            .unwrap();
        let out = cli.wait_with_output().unwrap();
        let replies = text(&out.stdout);
        assert!(
            !replies.is_empty() && replies.lines().all(|l| l == "OK"),
            "redis-cli refused the rules:\n{rules}\n{replies}{}",
            text(&out.stderr)
        );
    }

    fn url(&self, user: &str, password: &str) -> String {
        format!("redis://{user}:{password}@127.0.0.1:{}/0", self.redis.port)
    }

    fn worker_url(&self) -> String {
        self.url("acl-w7", WORKER_PASSWORD)
    }

    fn node_worker_url(&self) -> String {
        self.url("acl-worker-anode", WORKER_PASSWORD)
    }

    fn dispatcher_url(&self) -> String {
        self.url("acl-dispatcher", DISPATCHER_PASSWORD)
    }

    fn coordinator_url(&self) -> String {
        self.url("acl-coordinator", COORDINATOR_PASSWORD)
    }

    fn env(url: &str, format: &str) -> Vec<(&'static str, String)> {
        vec![
            ("PANEBUS_REDIS_URL", url.to_string()),
            ("PANEBUS_NAMESPACE", NS.to_string()),
            ("PANEBUS_NODE", NODE.to_string()),
            ("PANEBUS_HEARTBEAT_INTERVAL", "300ms".to_string()),
            ("PANEBUS_HEARTBEAT_TTL", "2".to_string()),
            ("PANEBUS_LOG_LEVEL", "trace".to_string()),
            ("PANEBUS_LOG_FORMAT", format.to_string()),
        ]
    }

    /// `panebus ARGS` as the dispatcher (trace logs, JSON log format every other call).
    fn dispatch(&self, args: &[&str]) -> Output {
        self.run_as(&self.dispatcher_url(), args)
    }

    fn run_as(&self, url: &str, args: &[&str]) -> Output {
        let format = if self.seen.borrow().len() % 2 == 0 {
            "text"
        } else {
            "json"
        };
        let out = Command::new(bin())
            .args(args)
            .env_remove("TMUX")
            .env_remove("TMUX_PANE")
            .envs(Rig::env(url, format))
            .output()
            .unwrap();
        self.seen.borrow_mut().push(format!(
            "panebus {args:?}\nstdout:\n{}\nstderr:\n{}",
            text(&out.stdout),
            text(&out.stderr)
        ));
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.dispatch(args);
        assert!(
            out.status.success(),
            "panebus {args:?} failed ({}): {}",
            out.status,
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// A standalone `panebus worker` for pane `%7`, as the `acl-w7` user.
    fn start_worker(&self, log: &str, url_as_flag: bool) -> ChildGuard {
        let mut cmd = Command::new(bin());
        if url_as_flag {
            cmd.args(["--redis-url", &self.worker_url()]);
        }
        cmd.args([
            "worker",
            "--role",
            "r",
            "--handler",
            "slow=sh -c 'cat >/dev/null; sleep 2; echo \"{\\\"slept\\\": 2}\"'",
            "--handler",
            "boom=false",
        ]);
        let format = if url_as_flag { "json" } else { "text" };
        let env: Vec<_> = Rig::env(&self.worker_url(), format)
            .into_iter()
            .filter(|(k, _)| !url_as_flag || *k != "PANEBUS_REDIS_URL")
            .collect();
        cmd.env_remove("TMUX")
            .env_remove("PANEBUS_REDIS_URL")
            .env("TMUX_PANE", "%7")
            .envs(env)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join(log)).unwrap())
            .spawn()
            .map(ChildGuard)
            .expect("start panebus worker")
    }

    fn admin(&self) -> redis::Connection {
        self.redis.conn()
    }

    fn registered(&self, worker: &str) -> bool {
        self.admin()
            .sismember(self.keys.workers(), worker)
            .unwrap_or(false)
    }

    /// Everything a password could have leaked into: process output, log files, the events
    /// stream and the registry records. None of it may mention a refused (NOPERM) command.
    fn assert_no_password_anywhere(&self) {
        let mut haystack = self.seen.borrow().join("\n");
        for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            haystack.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
        let mut admin = self.admin();
        let events: redis::streams::StreamRangeReply =
            admin.xrange_all(self.keys.events()).unwrap();
        assert!(!events.ids.is_empty(), "no events recorded");
        for id in &events.ids {
            for value in id.map.values() {
                haystack.push_str(&redis::from_redis_value_ref::<String>(value).unwrap());
            }
        }
        let keys: Vec<String> = admin.keys(format!("{NS}:*")).unwrap();
        for key in keys {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut admin).unwrap();
            if kind == "hash" {
                let fields: Vec<String> = admin.hgetall::<_, Vec<String>>(&key).unwrap();
                haystack.push_str(&fields.join("\n"));
            }
        }
        assert!(haystack.len() > 1000, "too little output collected");
        // Every command PaneBus sent was allowed: a refused one is logged (e.g. an event
        // that could not be recorded) even when the process carries on.
        let refused: Vec<&str> = haystack
            .lines()
            .filter(|l| l.to_lowercase().contains("noperm"))
            .collect();
        assert!(
            refused.is_empty(),
            "refused commands:\n{}",
            refused.join("\n")
        );
        assert!(
            haystack.contains(":***@"),
            "no redacted URL was shown anywhere"
        );
        for password in PASSWORDS {
            assert!(
                !haystack.contains(password),
                "password {password} leaked:\n{}",
                haystack
                    .lines()
                    .filter(|l| l.contains(password))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

/// Asserts that Redis refuses `cmd` for this connection's user.
fn denied(conn: &mut redis::Connection, cmd: &mut redis::Cmd, what: &str) {
    let reply: redis::RedisResult<redis::Value> = cmd.query(conn);
    let err = match reply {
        Err(e) => e.to_string().to_lowercase(),
        Ok(v) => panic!("{what} was allowed: {v:?}"),
    };
    assert!(
        err.contains("noperm") || err.contains("permission") || err.contains("can't access"),
        "{what}: refused for another reason: {err}"
    );
}

fn user_conn(url: &str) -> redis::Connection {
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

#[test]
fn the_rules_paste_into_redis_cli_and_the_json_form_matches() {
    let rig = Rig::new();
    let users: Vec<String> = redis::cmd("ACL")
        .arg("USERS")
        .query(&mut rig.admin())
        .unwrap();
    for user in [
        "acl-w7",
        "acl-worker-anode",
        "acl-dispatcher",
        "acl-coordinator",
    ] {
        assert!(users.contains(&user.to_string()), "{users:?}");
    }
    let out = Command::new(bin())
        .args(["acl", "--json", "--namespace", NS, "--node", NODE])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("cannot log in"),
        "{}",
        text(&out.stderr)
    );
    let docs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[0]["user"], "acl-worker-anode");
    assert_eq!(docs[0]["workers"], "anode/*");
    assert_eq!(docs[1]["role"], "dispatcher");
    assert!(docs[0]["selectors"][0]["purpose"].is_string());
    // The JSON arguments, sent as they are, give the same ACL as the redis-cli line.
    let mut admin = rig.admin();
    let args: Vec<String> = serde_json::from_value(docs[1]["setuser"].clone()).unwrap();
    let mut renamed = args.clone();
    renamed[0] = "acl-dispatcher-json".into();
    let () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&renamed)
        .query(&mut admin)
        .unwrap();
    let rules = |user: &str| -> Vec<String> {
        let list: Vec<String> = redis::cmd("ACL")
            .arg("LIST")
            .query(&mut rig.admin())
            .unwrap();
        let line = list
            .into_iter()
            .find(|l| l.starts_with(&format!("user {user} ")))
            .unwrap();
        // Drop the name and the password digest.
        line.split(' ')
            .skip(2)
            .filter(|w| !w.starts_with('#') && *w != "nopass")
            .map(String::from)
            .collect()
    };
    assert_eq!(rules("acl-dispatcher-json"), rules("acl-dispatcher"));

    // Bad options are usage errors that say what is expected.
    for (args, expected) in [
        (&["acl", "--worker", "a b/%1"][..], "invalid worker scope"),
        (&["acl", "--password-sha256", "xyz"][..], "64 hexadecimal"),
        (
            &["acl", "--user", "a:b", "--role", "worker"][..],
            "invalid user name",
        ),
    ] {
        let out = Command::new(bin()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains(expected),
            "{}",
            text(&out.stderr)
        );
    }
    let out = Command::new(bin())
        .args(["acl", "--user", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--user names one user"));
}

#[test]
fn worker_and_dispatcher_users_do_their_jobs_and_nothing_else() {
    let rig = Rig::new();
    let wid = format!("{NODE}/%7");
    let mut worker = rig.start_worker("worker1.log", false);
    wait_for("worker registered", WAIT, || rig.registered(&wid));

    // Dispatch and wait, as the dispatcher.
    let out = rig.ok(&["dispatch", "%7", "ping", "--wait", "--json"]);
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["ok"], true, "{out}");
    assert_eq!(result["result"]["pong"], true, "{out}");

    // A failing command: the worker writes the DLQ; the dispatcher lists, retries, purges.
    let out = rig.dispatch(&["dispatch", "%7", "boom", "--wait"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    let entries: Vec<Value> = serde_json::from_str(&rig.ok(&["dlq", "list", "--json"])).unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = entries[0]["id"].as_str().unwrap().to_string();
    rig.ok(&["dlq", "show", &entry]);
    rig.ok(&["dlq", "retry", &entry]);
    wait_for("the retried command failed again", WAIT, || {
        rig.admin().llen::<_, usize>(rig.keys.dlq()).unwrap() == 1
            && rig.admin().llen::<_, usize>(rig.keys.queue(&wid)).unwrap() == 0
    });
    rig.ok(&["dlq", "purge", "--yes"]);
    assert_eq!(rig.admin().llen::<_, usize>(rig.keys.dlq()).unwrap(), 0);

    // A command in flight when the worker is killed is recovered by its next start, which
    // gets its URL (and password) by --redis-url this time.
    let id = rig.ok(&["dispatch", "%7", "slow"]).trim().to_string();
    wait_for("slow command taken", WAIT, || {
        rig.admin()
            .llen::<_, usize>(rig.keys.processing(&wid))
            .unwrap()
            == 1
    });
    worker.0.kill().unwrap();
    worker.0.wait().unwrap();
    let mut worker = rig.start_worker("worker2.log", true);
    let out = rig.ok(&["result", &id, "--wait", "30", "--json"]);
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["ok"], true, "{out}");
    assert_eq!(result["attempt"], 2, "{out}");

    // Reads of every kind, as the dispatcher.
    let events = rig.ok(&["events", "--count", "200", "--json"]);
    assert!(events.contains("command_requeued"), "{events}");
    assert!(events.contains("command_completed"), "{events}");
    let status: Value = serde_json::from_str(&rig.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["workers"]["alive"], 1, "{status}");

    assert!(
        status["redis_url"].as_str().unwrap().contains(":***@"),
        "{status}"
    );
    let panes: Vec<Value> = serde_json::from_str(&rig.ok(&["panes", "--json"])).unwrap();
    assert_eq!(panes[0]["id"], wid.as_str());
    let argv = panes[0]["argv"].to_string();
    assert!(!argv.contains("--redis-url"), "{argv}");
    rig.ok(&["dispatch-role", "r", "ping", "--wait"]);
    rig.ok(&["broadcast", "ping", "--wait"]);
    rig.ok(&["last-result", "%7"]);
    let line = rig.ok(&["status-line", "--format", "plain"]);
    assert!(line.contains("1 healthy"), "{line}");
    rig.ok(&["top"]);

    // What the worker user cannot do.
    let mut w = user_conn(&rig.worker_url());
    let other = format!("{NODE}/%8");
    let k = &rig.keys;
    denied(
        &mut w,
        redis::cmd("LRANGE").arg(k.queue(&other)).arg(0).arg(-1),
        "worker LRANGE another queue",
    );
    denied(
        &mut w,
        redis::cmd("BLMOVE")
            .arg(k.queue(&other))
            .arg(k.processing(&other))
            .arg("RIGHT")
            .arg("LEFT")
            .arg(0.1),
        "worker BLMOVE another queue",
    );
    denied(
        &mut w,
        redis::cmd("LRANGE")
            .arg(k.processing(&other))
            .arg(0)
            .arg(-1),
        "worker LRANGE another processing list",
    );
    denied(
        &mut w,
        redis::cmd("BLMOVE")
            .arg(k.result(&id))
            .arg(k.result("x"))
            .arg("LEFT")
            .arg("LEFT")
            .arg(0.1),
        "worker moves a result",
    );
    denied(
        &mut w,
        redis::cmd("XRANGE").arg(k.events()).arg("-").arg("+"),
        "worker reads events",
    );
    denied(
        &mut w,
        redis::cmd("SMEMBERS").arg(k.workers()),
        "worker reads the registry",
    );
    denied(
        &mut w,
        redis::cmd("DEL").arg(k.workers()),
        "worker deletes the registry",
    );
    denied(
        &mut w,
        redis::cmd("LRANGE").arg(k.dlq()).arg(0).arg(-1),
        "worker reads the DLQ",
    );
    denied(
        &mut w,
        redis::cmd("HGETALL").arg(k.dlq_entries()),
        "worker reads DLQ entries",
    );
    denied(
        &mut w,
        redis::cmd("EVAL")
            .arg("return redis.call('LRANGE', KEYS[1], 0, -1)")
            .arg(2)
            .arg(k.dlq())
            .arg(k.dlq_entries()),
        "worker reads the DLQ from a script",
    );
    denied(
        &mut w,
        redis::cmd("HSET")
            .arg(k.managed(&wid))
            .arg("argv")
            .arg("[]"),
        "worker writes its managed record",
    );
    denied(&mut w, &mut redis::cmd("FLUSHDB"), "worker FLUSHDB");
    denied(&mut w, redis::cmd("KEYS").arg("*"), "worker KEYS");

    // What the dispatcher user cannot do.
    let mut d = user_conn(&rig.dispatcher_url());
    for key in [k.queue(&wid), k.processing(&wid)] {
        denied(
            &mut d,
            redis::cmd("LRANGE").arg(&key).arg(0).arg(-1),
            "dispatcher LRANGE",
        );
        denied(
            &mut d,
            redis::cmd("LINDEX").arg(&key).arg(0),
            "dispatcher LINDEX",
        );
        denied(&mut d, redis::cmd("RPOP").arg(&key), "dispatcher RPOP");
        denied(
            &mut d,
            redis::cmd("BLMOVE")
                .arg(&key)
                .arg(&key)
                .arg("RIGHT")
                .arg("LEFT")
                .arg(0.1),
            "dispatcher BLMOVE",
        );
        denied(
            &mut d,
            redis::cmd("DEL").arg(&key),
            "dispatcher DEL a queue",
        );
    }
    denied(
        &mut d,
        redis::cmd("BLMOVE")
            .arg(k.queue(&wid))
            .arg(k.result("stolen"))
            .arg("RIGHT")
            .arg("LEFT")
            .arg(0.1),
        "dispatcher moves a queue into a result",
    );
    denied(
        &mut d,
        redis::cmd("EVAL")
            .arg("return redis.call('LRANGE', KEYS[1], 0, -1)")
            .arg(2)
            .arg(k.queue(&wid))
            .arg(k.info(&wid)),
        "dispatcher reads a queue from a script",
    );
    denied(
        &mut d,
        redis::cmd("GET").arg(k.generation(&wid)),
        "dispatcher reads a generation",
    );
    denied(
        &mut d,
        redis::cmd("HSET").arg(k.info(&wid)).arg("argv").arg("[]"),
        "dispatcher rewrites a registry record",
    );
    denied(
        &mut d,
        redis::cmd("HSET")
            .arg(k.managed(&wid))
            .arg("argv")
            .arg("[]"),
        "dispatcher rewrites a managed record",
    );
    for (name, cmd) in [
        ("FLUSHDB", redis::cmd("FLUSHDB")),
        ("FLUSHALL", redis::cmd("FLUSHALL")),
        (
            "CONFIG GET",
            redis::cmd("CONFIG").arg("GET").arg("*").clone(),
        ),
        (
            "CONFIG SET",
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("appendonly")
                .arg("no")
                .clone(),
        ),
        ("KEYS", redis::cmd("KEYS").arg("*").clone()),
        ("SCAN", redis::cmd("SCAN").arg(0).clone()),
        (
            "REPLICAOF",
            redis::cmd("REPLICAOF").arg("NO").arg("ONE").clone(),
        ),
        ("ACL", redis::cmd("ACL").arg("LIST").clone()),
        ("SHUTDOWN", redis::cmd("SHUTDOWN").arg("NOSAVE").clone()),
        ("SCRIPT FLUSH", redis::cmd("SCRIPT").arg("FLUSH").clone()),
        (
            "CLIENT KILL",
            redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("normal")
                .clone(),
        ),
        ("PUBLISH", redis::cmd("PUBLISH").arg("x").arg("y").clone()),
    ] {
        let mut cmd = cmd;
        denied(&mut d, &mut cmd, &format!("dispatcher {name}"));
    }
    assert!(rig.registered(&wid), "nothing was flushed");

    // A stop signal: CLIENT UNBLOCK of its own BLMOVE, deregistration, exit 0.
    assert!(worker.stop(EXIT).success());
    assert!(!rig.registered(&wid));

    // A wrong password: exit 3, the URL shown with the password hidden.
    let wrong = rig.url("acl-dispatcher", "not-the-password");
    let out = rig.run_as(&wrong, &["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let shown = format!("redis://acl-dispatcher:***@127.0.0.1:{}/0", rig.redis.port);
    assert!(err.contains(&shown), "{err}");
    assert!(err.contains("refused the user name or password"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");

    rig.assert_no_password_anywhere();
}

#[test]
fn the_coordinator_user_respawns_and_requeues_a_killed_worker() {
    let rig = Rig::new();
    let tmux = TmuxServer::start("work");
    let socket = tmux.socket.to_str().unwrap().to_string();
    let mut attach = Command::new(bin());
    attach
        .args(attach_args("work", &socket))
        .env_remove("TMUX")
        .env_remove("TMUX_PANE")
        .envs(Rig::env(&rig.coordinator_url(), "json"))
        // Respawned workers must get the worker user's URL, not the coordinator's.
        .env("PANEBUS_WORKER_REDIS_URL", rig.node_worker_url());
    let mut coordinator = start_coordinator(
        attach,
        &rig.dir.path().join("coordinator.log"),
        &rig.redis,
        &rig.keys.lease(NODE, "work"),
    );

    // A worker pane with the node-wide worker user's URL in its own environment.
    let handler = "slow=sh -c 'cat >/dev/null; sleep 2; echo 1'";
    let pane = tmux.new_window(
        "=work:",
        &Rig::env(&rig.node_worker_url(), "text"),
        &[bin(), "worker", "--role", "r", "--handler", handler],
    );
    let wid = format!("{NODE}/{pane}");
    let pane_pid = || -> u32 { tmux.display(&pane, "#{pane_pid}").parse().unwrap() };
    let registered = || registered_pid(&mut rig.admin(), &rig.keys, &wid);
    wait_for("the coordinator manages the pane", WAIT, || {
        tmux.display(&pane, "#{@panebus_worker}") == wid && registered() == Some(pane_pid())
    });

    // Kill -9 with a command in flight: requeue (coordinator), respawn, run again.
    let id = rig.ok(&["dispatch", &pane, "slow"]).trim().to_string();
    wait_for("slow command taken", WAIT, || {
        rig.admin()
            .llen::<_, usize>(rig.keys.processing(&wid))
            .unwrap()
            == 1
    });
    let old_pid = pane_pid();
    signal_pid(old_pid, libc::SIGKILL);
    let out = rig.ok(&["result", &id, "--wait", "30", "--json"]);
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["ok"], true, "{out}");
    assert_eq!(result["attempt"], 2, "{out}");
    let events = rig.ok(&[
        "events",
        "--count",
        "200",
        "--json",
        "--type",
        "pane_respawned",
    ]);
    let respawned: Value = serde_json::from_str(events.lines().last().unwrap()).unwrap();
    assert_eq!(respawned["details"]["requeued"], 1, "{events}");
    assert_ne!(pane_pid(), old_pid);
    let environ = std::fs::read(format!("/proc/{}/environ", pane_pid())).unwrap();
    let url_var = format!("PANEBUS_REDIS_URL={}", rig.node_worker_url());
    assert!(
        environ
            .split(|b| *b == 0)
            .any(|var| var == url_var.as_bytes()),
        "the respawned worker does not run with the worker user's URL"
    );

    // Operator actions through the coordinator, as the dispatcher.
    wait_for("respawned worker registered", WAIT, || {
        registered() == Some(pane_pid())
    });
    let out = rig.ok(&["restart", &pane]);
    assert!(out.contains("respawned"), "{out}");
    let out = rig.dispatch(&["release", &pane]);
    assert!(
        text(&out.stderr).contains("not quarantined"),
        "{}",
        text(&out.stderr)
    );

    let status: Value = serde_json::from_str(&rig.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["workers"]["alive"], 1, "{status}");

    // The watchdog runs as the coordinator user too: it takes its lease, checks the
    // heartbeats and stops cleanly, with no refused command.
    let log = std::fs::File::create(rig.dir.path().join("watchdog.log")).unwrap();
    let mut watchdog = ChildGuard(
        Command::new(bin())
            .args(["watchdog", "-S", &socket, "--check-interval", "200ms"])
            .env_remove("TMUX")
            .env_remove("TMUX_PANE")
            .envs(Rig::env(&rig.coordinator_url(), "text"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_for("the watchdog holds its lease", WAIT, || {
        rig.admin()
            .exists::<_, bool>(rig.keys.lease(NODE, ".watchdog"))
            .unwrap()
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(watchdog.stop(EXIT).success());
    let log = std::fs::read_to_string(rig.dir.path().join("watchdog.log")).unwrap();
    assert!(!log.to_lowercase().contains("noperm"), "{log}");

    // The coordinator user cannot administer the server either.
    let mut c = user_conn(&rig.coordinator_url());
    denied(&mut c, &mut redis::cmd("FLUSHALL"), "coordinator FLUSHALL");
    denied(
        &mut c,
        redis::cmd("CONFIG").arg("GET").arg("*"),
        "coordinator CONFIG",
    );
    denied(
        &mut c,
        redis::cmd("GET").arg("other:key"),
        "coordinator outside its namespace",
    );

    assert!(coordinator.stop(EXIT).success());
    let log = std::fs::read_to_string(rig.dir.path().join("coordinator.log")).unwrap();
    assert!(!log.to_lowercase().contains("noperm"), "{log}");
    rig.assert_no_password_anywhere();
}

/// Applies `panebus acl ARGS` for bus `deploy`/`testnode` to the server at `port`.
fn apply_to(port: u16, args: &[&str], password: &str) {
    let out = Command::new(bin())
        .arg("acl")
        .args(args)
        .args(["--namespace", "deploy", "--node", "testnode"])
        .args(["--password-env", "ACL_TEST_PASSWORD"])
        .env("ACL_TEST_PASSWORD", password)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut cli = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    cli.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let replies = text(&cli.wait_with_output().unwrap().stdout);
    assert!(replies.lines().all(|l| l == "OK"), "{replies}");
}

#[test]
fn on_a_redis_cluster_the_users_work_through_every_node() {
    let cluster = RedisCluster::start();
    // ACL users are per node: the same rules go to all six.
    for &port in &cluster.ports {
        apply_to(
            port,
            &["--role", "worker", "--worker", "testnode/*"],
            WORKER_PASSWORD,
        );
        apply_to(port, &["--role", "dispatcher"], DISPATCHER_PASSWORD);
    }
    let hosts: Vec<String> = cluster.ports[..3]
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let url = |user: &str, password: &str| {
        format!("redis+cluster://{user}:{password}@{}", hosts.join(","))
    };
    let dispatcher = Panebus::new(&url("deploy-dispatcher", DISPATCHER_PASSWORD));
    let worker = Panebus::new(&url("deploy-worker-testnode", WORKER_PASSWORD));
    let logs = tempfile::tempdir().unwrap();
    // Two workers whose keys live on different primaries.
    let owner = |pane: &str| cluster.primary_of(&format!("{{testnode/{pane}}}"));
    let second = (2..64)
        .map(|n| format!("%{n}"))
        .find(|p| owner(p) != owner("%1"))
        .unwrap();
    let mut children = Vec::new();
    for pane in ["%1", second.as_str()] {
        children.push(ChildGuard(
            worker
                .command(&["worker"])
                .env("TMUX_PANE", pane)
                .stdout(Stdio::null())
                .stderr(
                    std::fs::File::create(logs.path().join(format!("w{}.log", &pane[1..])))
                        .unwrap(),
                )
                .spawn()
                .unwrap(),
        ));
    }
    for pane in ["%1", second.as_str()] {
        // Registered first: `dispatch` refuses a worker that is not (yet).
        wait_for(&format!("worker of {pane} alive"), WAIT, || {
            dispatcher.alive(pane)
        });
        let result = dispatcher.json(&["dispatch", pane, "ping", "--wait", "--wait-timeout", "30"]);
        assert_eq!(result["ok"], true, "{result}");
    }
    let out = dispatcher.run(&["dispatch", &second, "no-such-type", "--wait"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    let entries = dispatcher.json(&["dlq", "list"]);
    assert_eq!(entries.as_array().map(Vec::len), Some(1), "{entries}");
    let status = dispatcher.json(&["status"]);
    assert_eq!(status["workers"]["alive"], 2, "{status}");

    // On the node that holds it, the dispatcher still cannot read a worker's queue.
    let keys = Keys::new("deploy");
    let queue = keys.queue("testnode/%1");
    let mut d = user_conn(&format!(
        "redis://deploy-dispatcher:{DISPATCHER_PASSWORD}@127.0.0.1:{}/0",
        owner("%1")
    ));
    denied(
        &mut d,
        redis::cmd("LRANGE").arg(&queue).arg(0).arg(-1),
        "dispatcher LRANGE on a cluster node",
    );
    denied(
        &mut d,
        &mut redis::cmd("FLUSHALL"),
        "dispatcher FLUSHALL on a cluster node",
    );
    drop(children);
    for pane in ["%1", second.as_str()] {
        let log =
            std::fs::read_to_string(logs.path().join(format!("w{}.log", &pane[1..]))).unwrap();
        assert!(!log.to_lowercase().contains("noperm"), "{log}");
    }
}
