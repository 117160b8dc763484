//! The `panebus` binary end to end: every command run as a process against a private
//! redis-server, with `panebus worker` processes as the workers (TMUX_PANE set, TMUX unset,
//! so they take pane ids without a tmux server). Exit codes and messages are part of the
//! interface, so bad input is checked for both.

mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::panebus::PrivateBus;
use support::wait::wait_for;
use support::RedisServer;

const NODE: &str = "testnode";
const NAMESPACE: &str = "clitest";

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// How long a condition may take to come true.
const WAIT: Duration = Duration::from_secs(30);

fn assert_exit(out: &Output, expected: i32, message: &str) {
    let err = stderr(out);
    assert_eq!(
        code(out),
        expected,
        "expected exit {expected}; stdout: {}; stderr: {err}",
        stdout(out)
    );
    assert!(err.contains(message), "stderr lacks {message:?}: {err}");
}

#[test]
fn dispatch_wait_round_trips_a_ping() {
    let bus = PrivateBus::start(NAMESPACE, NODE);
    let _worker = bus.role_worker("%3", "processor", &[]);

    let out = bus.run(&["dispatch", "%3", "ping", "--wait"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("\"pong\": true"), "{}", stdout(&out));

    let result = bus.json(&["dispatch", "%3", "ping", "--wait", "--wait-timeout", "30"]);
    assert_eq!(result["ok"], true);
    assert_eq!(result["worker"], "testnode/%3");
    assert_eq!(result["result"]["pong"], true);
    assert!(result["command_id"].as_str().unwrap().len() == 26);
}

#[test]
fn targets_are_panes_on_this_node_or_full_worker_ids() {
    let bus = PrivateBus::start(NAMESPACE, NODE);
    let _worker = bus.role_worker("%3", "processor", &[]);

    let full = bus.json(&["dispatch", "testnode/%3", "ping", "--wait"]);
    assert_eq!(full["worker"], "testnode/%3");

    // Without --wait the id is printed, and `result` finds the result by it.
    let out = bus.run(&["dispatch", "%3", "ping"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    assert_eq!(id.len(), 26, "not a ULID: {id}");
    let result = bus.json(&["result", &id, "--wait", "30"]);
    assert_eq!(result["ok"], true);
    assert_eq!(result["command_id"], id.as_str());

    let queued = bus.json(&["dispatch", "%3", "ping"]);
    assert_eq!(queued["worker"], "testnode/%3");
    assert_eq!(queued["type"], "ping");

    // `%3` on another node is another worker, which does not exist.
    let out = bus.run(&["--node", "othernode", "dispatch", "%3", "ping"]);
    assert_exit(&out, 4, "no worker othernode/%3 is registered");
    let out = bus.run(&["dispatch", "elsewhere/%3", "ping"]);
    assert_exit(&out, 4, "use --force to queue");
}

#[test]
fn dispatch_role_and_broadcast_reach_every_live_worker() {
    let bus = PrivateBus::start(NAMESPACE, NODE);
    let _w1 = bus.role_worker("%1", "alpha", &[]);
    let _w2 = bus.role_worker("%2", "alpha", &[]);
    let _w3 = bus.role_worker("%3", "beta", &[]);

    let outcomes = bus.json(&["dispatch-role", "alpha", "ping", "--wait"]);
    let mut workers: Vec<&str> = outcomes
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            assert_eq!(o["status"], "ok", "{o}");
            assert_eq!(o["result"]["pong"], true, "{o}");
            o["worker"].as_str().unwrap()
        })
        .collect();
    workers.sort();
    assert_eq!(workers, ["testnode/%1", "testnode/%2"]);

    let outcomes = bus.json(&["broadcast", "ping", "--wait"]);
    let outcomes = outcomes.as_array().unwrap();
    assert_eq!(outcomes.len(), 3);
    assert!(outcomes.iter().all(|o| o["status"] == "ok"), "{outcomes:?}");
    let ids: std::collections::HashSet<&str> =
        outcomes.iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "each worker gets its own command id");

    let out = bus.run(&["broadcast", "ping"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("WORKER"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.contains("queued")).count(),
        3,
        "{text}"
    );

    let out = bus.run(&["dispatch-role", "gamma", "ping"]);
    assert_exit(&out, 4, "no live worker with role `gamma`");
}

#[test]
fn status_panes_and_events_in_both_formats() {
    let bus = PrivateBus::start(NAMESPACE, NODE);
    let _w1 = bus.role_worker("%1", "alpha", &[]);
    let _w2 = bus.role_worker("%2", "beta", &[]);
    let done = bus.json(&["dispatch", "%1", "ping", "--wait"]);
    let command_id = done["command_id"].as_str().unwrap().to_string();

    let status = bus.json(&["status"]);
    assert_eq!(status["namespace"], NAMESPACE);
    assert_eq!(status["node"], NODE);
    assert_eq!(status["workers"]["total"], 2);
    assert_eq!(status["workers"]["alive"], 2);
    assert_eq!(status["workers"]["dead"], 0);
    assert_eq!(status["workers"]["quarantined"], 0);
    assert_eq!(status["roles"][0]["role"], "alpha");
    assert_eq!(status["roles"][0]["alive"], 1);
    assert_eq!(status["roles"][0]["queued"], 0);
    assert_eq!(status["roles"][0]["in_flight"], 0);
    assert_eq!(status["queued"], 0);
    assert_eq!(status["dlq_size"], 0);
    assert!(
        status["events"]["recent"].as_u64().unwrap() >= 3,
        "{status}"
    );
    assert_eq!(status["quarantined"], Value::Array(vec![]));
    let out = bus.run(&["status"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("workers   2 total: 2 alive, 0 dead, 0 quarantined"),
        "{text}"
    );
    assert!(text.contains("ROLE"), "{text}");

    let panes = bus.json(&["panes", "--role", "alpha"]);
    let panes = panes.as_array().unwrap();
    assert_eq!(panes.len(), 1);
    let pane = &panes[0];
    assert_eq!(pane["id"], "testnode/%1");
    assert_eq!(pane["role"], "alpha");
    assert_eq!(pane["pane"], "%1");
    assert_eq!(pane["state"], "idle");
    assert_eq!(pane["alive"], true);
    assert!(pane["heartbeat_age_ms"].as_u64().unwrap() < 5000, "{pane}");
    let ttl_left = pane["heartbeat_ttl_ms"].as_u64().unwrap();
    assert!(ttl_left > 0 && ttl_left <= 5000, "{pane}");
    assert_eq!(pane["queue_depth"], 0);
    assert_eq!(pane["processing"], 0);
    assert!(pane["generation"].as_u64().unwrap() >= 1);
    let out = bus.run(&["panes"]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("WORKER"), "{text}");
    assert!(
        lines[0].contains("HEARTBEAT") && lines[0].contains("GEN"),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("testnode/%2") && l.contains("beta")),
        "{text}"
    );

    // --json events are JSON Lines with type, ts_ms, worker and command_id.
    let out = bus.run(&["events", "--json", "--count", "100"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let events: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events
        .iter()
        .any(|e| e["type"] == "worker_started" && e["worker"] == "testnode/%2"));
    let completed = events
        .iter()
        .find(|e| e["type"] == "command_completed")
        .expect("a command_completed event");
    assert_eq!(completed["command_id"], command_id.as_str());
    assert_eq!(completed["worker"], "testnode/%1");
    assert!(completed["ts_ms"].as_u64().unwrap() > 0);

    let out = bus.run(&[
        "events",
        "--json",
        "--type",
        "worker_started",
        "--worker",
        "%2",
    ]);
    let filtered: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(filtered.len(), 1, "{filtered:?}");
    assert_eq!(filtered[0]["worker"], "testnode/%2");

    let out = bus.run(&["events", "--count", "1", "--type", "command_completed"]);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("command_completed") && text.contains(&command_id),
        "{text}"
    );
}

#[test]
fn events_follow_prints_new_events_until_interrupted() {
    let bus = PrivateBus::start(NAMESPACE, NODE);
    let _first = bus.role_worker("%4", "alpha", &[]);
    let mut follow = bus
        .command(&[
            "events",
            "--follow",
            "--json",
            "--count",
            "1",
            "--type",
            "worker_started",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(follow.stdout.take().unwrap()));
    let mut next_event =
        || -> Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    // The last matching event first (so the follower is reading), then the new one.
    assert_eq!(next_event()["worker"], "testnode/%4");
    let _second = bus.role_worker("%5", "alpha", &[]);
    let event = next_event();
    assert_eq!(event["type"], "worker_started");
    assert_eq!(event["worker"], "testnode/%5");
    // SAFETY: signalling our own child process by pid.
    unsafe {
        libc::kill(follow.id() as libc::pid_t, libc::SIGINT);
    }
    let out = follow.wait_with_output().unwrap();
    assert_exit(&out, 130, "interrupted");
}

#[test]
fn failed_commands_go_to_the_dlq_and_can_be_retried_and_purged() {
    let bus = PrivateBus::start(NAMESPACE, NODE);
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ready");
    let flaky = format!(
        "flaky=sh -c 'test -e {} && echo recovered || {{ echo not ready yet >&2; exit 3; }}'",
        marker.display()
    );
    let _worker = bus.role_worker("%5", "alpha", &["--handler", &flaky]);

    let out = bus.run(&["dispatch", "%5", "flaky", "--wait"]);
    assert_exit(&out, 7, "failed on testnode/%5");
    let entries = bus.json(&["dlq", "list"]);
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(entry["reason"], "failed");
    assert_eq!(entry["worker"], "testnode/%5");
    assert_eq!(entry["command"]["type"], "flaky");
    let entry_id = entry["id"].as_str().unwrap().to_string();
    let command_id = entry["command"]["id"].as_str().unwrap().to_string();

    let shown = bus.json(&["dlq", "show", &entry_id]);
    assert_eq!(shown["id"], entry_id.as_str());
    assert!(
        shown["error"].as_str().unwrap().contains("not ready yet"),
        "{shown}"
    );
    let out = bus.run(&["dlq", "show", &entry_id]);
    assert!(stdout(&out).contains("reason:  failed"), "{}", stdout(&out));
    let out = bus.run(&["dlq", "list"]);
    let text = stdout(&out);
    assert!(
        text.starts_with("ENTRY") && text.contains(&entry_id),
        "{text}"
    );

    // Fixed: the retried command succeeds under its original id.
    std::fs::write(&marker, "").unwrap();
    let retried = bus.json(&["dlq", "retry", &entry_id]);
    assert_eq!(retried["retried"][0]["id"], command_id.as_str());
    assert_eq!(retried["failed"], Value::Array(vec![]));
    wait_for("the retried command to succeed", WAIT, || {
        let out = bus.run(&["result", &command_id, "--json"]);
        code(&out) == 0 && stdout(&out).contains("recovered")
    });
    assert_eq!(bus.json(&["dlq", "list"]), Value::Array(vec![]));

    // An unknown command type is dead-lettered too; purging needs --yes without a terminal.
    let out = bus.run(&["dispatch", "%5", "no_such_type", "--wait"]);
    assert_exit(&out, 7, "failed on testnode/%5");
    let entries = bus.json(&["dlq", "list"]);
    assert_eq!(entries[0]["reason"], "unknown_type");
    let out = bus.run(&["dlq", "purge"]);
    assert_exit(&out, 1, "pass --yes");
    assert_eq!(bus.json(&["dlq", "list"]).as_array().unwrap().len(), 1);
    let purged = bus.json(&["dlq", "purge", "--yes"]);
    assert_eq!(purged["purged"], 1);
    assert_eq!(bus.json(&["dlq", "list"]), Value::Array(vec![]));
    let out = bus.run(&["dlq", "show", &entry_id]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
}

#[test]
fn hostile_payload_text_arrives_literally() {
    let bus = PrivateBus::start(NAMESPACE, NODE);
    let _worker = bus.role_worker("%6", "alpha", &["--handler", "echo=cat"]);
    let hostile =
        "a; rm -rf / \n#{pane_id} #(ls) $(touch /tmp/pwned) `id` \"double\" 'single' \\ %% ~";
    let payload = serde_json::json!({ "text": hostile }).to_string();

    let result = bus.json(&["dispatch", "%6", "echo", "--payload", &payload, "--wait"]);
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["result"]["payload"]["text"], hostile);

    let out = bus.run_with_stdin(
        &[
            "dispatch",
            "%6",
            "echo",
            "--payload",
            "-",
            "--wait",
            "--json",
        ],
        &payload,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["result"]["payload"]["text"], hostile);
}

#[test]
fn bad_input_gets_its_exit_code_and_a_clear_message() {
    let mut bus = PrivateBus::start(NAMESPACE, NODE);
    let _worker = bus.role_worker("%7", "alpha", &[]);

    let out = bus.run(&["dispatch", "%7", "ping", "--payload", "{\"text\": "]);
    assert_exit(&out, 6, "malformed JSON");
    let out = bus.run(&["dispatch", "%7", "ping", "--payload", "[1, 2]"]);
    assert_exit(&out, 6, "expected a JSON object, got an array");

    let out = bus.run(&["dispatch", "%99", "ping"]);
    assert_exit(&out, 4, "no worker testnode/%99 is registered");

    let out = bus.run(&["result", "01JDQ1Z3V8K7R5M2N4P6Q8S0T2"]);
    assert_exit(&out, 4, "no result for command 01JDQ1Z3V8K7R5M2N4P6Q8S0T2");

    let out = bus.run(&[
        "dispatch",
        "%98",
        "ping",
        "--force",
        "--wait",
        "--wait-timeout",
        "1",
    ]);
    assert_exit(&out, 8, "no result for command");

    let out = bus.run(&["--log-level", "loud", "status"]);
    assert_exit(&out, 2, "invalid value 'loud'");
    let out = bus.run(&["--node", "bad:node", "status"]);
    assert_exit(&out, 2, "PANEBUS_NODE");
    let out = bus.run(&["dispatch", "%7"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));

    bus.set("PANEBUS_MAX_PAYLOAD_BYTES", "1000");
    bus.set("PANEBUS_MAX_QUEUE_DEPTH", "2");
    let big = serde_json::json!({ "text": "x".repeat(2000) }).to_string();
    let out = bus.run(&["dispatch", "%7", "ping", "--payload", &big]);
    assert_exit(&out, 6, "more than the limit of 1000 bytes");

    // Nobody drains a queue forced onto a pane without a worker: the third is refused.
    for _ in 0..2 {
        let out = bus.run(&["dispatch", "%97", "ping", "--force"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let out = bus.run(&["dispatch", "%97", "ping", "--force"]);
    assert_exit(&out, 5, "queue of worker testnode/%97 is full");
}

#[test]
fn unreachable_redis_fails_fast() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/0");
    for args in [
        vec!["status"],
        vec!["panes"],
        vec!["dispatch", "%1", "ping", "--wait"],
        vec!["dlq", "list"],
        vec!["events"],
    ] {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_panebus"))
            .args(&args)
            .env_clear()
            .env("PANEBUS_REDIS_URL", &url)
            .output()
            .unwrap();
        let took = started.elapsed();
        assert_exit(&out, 3, &format!("cannot reach Redis at {url}"));
        assert!(
            stderr(&out).contains("start redis-server"),
            "{}",
            stderr(&out)
        );
        // The cause once, not repeated by each error that wraps it.
        let cause = "Connection refused";
        assert_eq!(stderr(&out).matches(cause).count(), 1, "{}", stderr(&out));
        // Not a performance figure: a generous bound that only a hang would exceed.
        assert!(took < Duration::from_secs(10), "{args:?} hung for {took:?}");
    }
}

#[test]
fn completions_and_man_pages_are_generated() {
    let bus = PrivateBus::start(NAMESPACE, NODE);
    for shell in ["bash", "zsh", "fish"] {
        let out = bus.run(&["completions", shell]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let script = stdout(&out);
        assert!(script.contains("dispatch-role"), "{shell}: {script}");
    }
    let out = bus.run(&["man"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let page = stdout(&out);
    assert!(page.contains(".TH panebus 1"), "{page}");
    assert!(page.contains("dispatch"), "{page}");
    let out = bus.run(&["man", "dispatch"]);
    assert!(
        stdout(&out).contains(".TH panebus-dispatch 1"),
        "{}",
        stdout(&out)
    );
    let out = bus.run(&["man", "nonsense"]);
    assert_exit(&out, 1, "choose one of");
}

#[test]
fn quarantined_panes_show_in_status_and_get_no_fan_out() {
    let bus = PrivateBus::start(NAMESPACE, NODE);
    let _w1 = bus.role_worker("%1", "alpha", &[]);
    let _w2 = bus.role_worker("%2", "alpha", &[]);
    let env = bus.env.clone();
    let config = panebus::config::Config::from_lookup(|name| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
    .unwrap();
    let diagnostic = panebus::coordinator::history::Diagnostic {
        since_ms: panebus::schema::now_ms() - 7_200_000,
        reason: "exited with status 3; 5 respawns in 5m".into(),
        exit: "status 3".into(),
        last_lines: "starting\nTraceback: boom $(id) #{pane_id}".into(),
        command_in_flight: "01JDQ1Z3V8K7R5M2N4P6Q8S0T2".into(),
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let handle = panebus::bus::Bus::connect(&config).await.unwrap();
        panebus::coordinator::history::quarantine(&handle, "testnode/%2", &diagnostic)
            .await
            .unwrap();
    });

    let status = bus.json(&["status"]);
    assert_eq!(status["workers"]["quarantined"], 1, "{status}");
    assert_eq!(status["workers"]["alive"], 1, "{status}");
    let listed = &status["quarantined"][0];
    assert_eq!(listed["worker"], "testnode/%2");
    assert_eq!(listed["role"], "alpha");
    assert_eq!(listed["diagnostic"]["exit"], "status 3");
    assert_eq!(
        listed["diagnostic"]["command_in_flight"],
        "01JDQ1Z3V8K7R5M2N4P6Q8S0T2"
    );
    let text = stdout(&bus.run(&["status"]));
    assert!(text.contains("testnode/%2 (role alpha)"), "{text}");
    assert!(text.contains("since       2h ago"), "{text}");
    assert!(
        text.contains("reason      exited with status 3; 5 respawns in 5m"),
        "{text}"
    );
    assert!(
        text.contains("| Traceback: boom $(id) #{pane_id}"),
        "{text}"
    );

    let panes = bus.json(&["panes"]);
    let quarantined = panes
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "testnode/%2")
        .unwrap();
    assert_eq!(
        quarantined["quarantine"]["reason"],
        diagnostic.reason.as_str()
    );
    let text = stdout(&bus.run(&["panes"]));
    assert!(
        text.lines()
            .any(|l| l.starts_with("testnode/%2") && l.contains("quarantined")),
        "{text}"
    );

    let outcomes = bus.json(&["broadcast", "ping", "--wait"]);
    let workers: Vec<&str> = outcomes
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["worker"].as_str().unwrap())
        .collect();
    assert_eq!(workers, ["testnode/%1"]);

    // Dispatching to it directly still queues, with a warning.
    let out = bus.run(&["dispatch", "%2", "ping"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("is quarantined"), "{}", stderr(&out));
}

#[test]
fn waiting_shows_a_spinner_only_on_a_terminal() {
    let bus = PrivateBus::start(NAMESPACE, NODE);
    let wait = [
        "dispatch",
        "%98",
        "ping",
        "--force",
        "--wait",
        "--wait-timeout",
        "1",
    ];
    // Without a terminal: nothing but the message.
    let out = bus.run(&wait);
    assert_exit(&out, 8, "no result for command");
    assert!(!stderr(&out).contains("waiting for"), "{}", stderr(&out));
    // Under a pseudo-terminal (util-linux `script`): the spinner draws and erases its line.
    let line = format!("{} {}", env!("CARGO_BIN_EXE_panebus"), wait.join(" "));
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(bus.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .output()
        .expect("run `script` (util-linux)");
    let shown = stdout(&out);
    assert_eq!(code(&out), 8, "{shown}");
    assert!(shown.contains("waiting for"), "{shown}");
    assert!(
        shown.contains("\r\x1b[2Kpanebus: no result for command"),
        "{shown}"
    );
}

#[test]
fn a_full_queue_in_a_fan_out_does_not_stop_the_others() {
    let mut bus = PrivateBus::start(NAMESPACE, NODE);
    bus.set("PANEBUS_MAX_QUEUE_DEPTH", "1");
    let slow = ["--handler", "slow=sleep 10"];
    let _busy = bus.role_worker("%1", "alpha", &slow);
    let _free = bus.role_worker("%2", "alpha", &slow);
    // %1 runs one slow command and holds one more in its queue: it is full.
    let out = bus.run(&["dispatch", "%1", "slow"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    wait_for("%1 busy", WAIT, || {
        bus.json(&["panes"])
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == "testnode/%1" && p["processing"] == 1)
    });
    let out = bus.run(&["dispatch", "%1", "slow"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    let status = bus.json(&["status"]);
    assert_eq!(status["roles"][0]["queued"], 1, "{status}");
    assert_eq!(status["roles"][0]["in_flight"], 1, "{status}");
    assert_eq!(status["queued"], 1, "{status}");

    let out = bus.run(&["dispatch-role", "alpha", "ping", "--json"]);
    assert_exit(&out, 5, "1 of 2 workers did not get the command");
    let outcomes: Value = serde_json::from_slice(&out.stdout).unwrap();
    let by_worker = |w: &str| {
        outcomes
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["worker"] == w)
            .cloned()
            .unwrap()
    };
    let full = by_worker("testnode/%1");
    assert_eq!(full["status"], "error");
    assert!(
        full["error"].as_str().unwrap().contains("is full"),
        "{full}"
    );
    assert!(full["id"].is_null());
    let queued = by_worker("testnode/%2");
    assert_eq!(queued["status"], "queued");
    let id = queued["id"].as_str().unwrap();
    assert_eq!(bus.json(&["result", id, "--wait", "30"])["ok"], true);
}

#[test]
fn a_unix_socket_url_reaches_the_bus() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("redis.sock");
    let _redis = RedisServer::start_with(&["--unixsocket", socket.to_str().unwrap()]);
    let url = format!("unix://{}", socket.display());
    let out = Command::new(env!("CARGO_BIN_EXE_panebus"))
        .args(["status", "--json", "--redis-url", &url])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["redis_url"], url.as_str());
    assert_eq!(status["workers"]["total"], 0);
}

#[test]
fn a_redis_that_never_answers_is_reported_within_the_deadline() {
    // Connections to this socket complete in the kernel's backlog, but nothing answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}/0", silent.local_addr().unwrap());
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_panebus"))
        .args(["dispatch", "%1", "ping", "--wait"])
        .env_clear()
        .env("PANEBUS_REDIS_URL", &url)
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_exit(&out, 3, "no answer within 3s");
    // The documented deadline is 3 s; the margin is for a loaded machine, not a benchmark.
    assert!(took < Duration::from_secs(6), "took {took:?}");
}
