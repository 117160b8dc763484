//! `panebus top` against a real bus: a private redis-server with a real `panebus worker`
//! process (TMUX_PANE set, TMUX unset, so it takes a pane id without a tmux server). The
//! snapshot is taken through the same admin queries the dashboard uses and drawn with
//! ratatui's TestBackend; the binary itself is run with stdout piped, where it prints one
//! plain snapshot instead of taking over a terminal.

mod support;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use panebus::admin::Admin;
use panebus::cli::top::{buffer_lines, render, Liveness, Snapshot};
use panebus::config::Config;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use support::panebus::Panebus;
use support::process::ChildGuard;
use support::RedisServer;

const NODE: &str = "topnode";
const NAMESPACE: &str = "toptest";

/// The `panebus` runner for `redis`: namespace `toptest`, node `topnode`, and a 2 s
/// heartbeat TTL so that a killed worker soon shows as dead.
fn panebus_on(redis: &RedisServer) -> Panebus {
    let mut panebus = Panebus::on(&redis.url(), NAMESPACE, NODE);
    panebus.set("PANEBUS_HEARTBEAT_TTL", "2");
    panebus
}

/// Starts `panebus worker --role ROLE` in pane `pane`; does not wait for it.
fn start_worker(panebus: &Panebus, pane: &str, role: &str) -> ChildGuard {
    panebus.spawn_worker(pane, &["worker", "--role", role], Stdio::null())
}

fn config(panebus: &Panebus) -> Config {
    Config::from_lookup(|name| panebus.var(name).map(str::to_string)).expect("test configuration")
}

/// Polls snapshots for up to 30 s until `done` holds, and returns that snapshot.
async fn snapshot_when(admin: &Admin, what: &str, done: impl Fn(&Snapshot) -> bool) -> Snapshot {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let snapshot = Snapshot::collect(admin).await.expect("snapshot of the bus");
        if done(&snapshot) {
            return snapshot;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {snapshot:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn draw(snapshot: &Snapshot) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(140, 24)).unwrap();
    terminal
        .draw(|frame| render(frame.buffer_mut(), snapshot))
        .unwrap();
    buffer_lines(terminal.backend().buffer())
}

fn row_of<'a>(lines: &'a [String], needle: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line contains {needle:?} in:\n{}", lines.join("\n")))
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_worker_shows_with_its_role_and_goes_dead_when_killed() {
    let redis = RedisServer::start();
    let panebus = panebus_on(&redis);
    let admin = Admin::connect(&config(&panebus))
        .await
        .expect("connect admin");
    let id = format!("{NODE}/%7");

    let worker = start_worker(&panebus, "%7", "summarizer");
    let alive = snapshot_when(&admin, "the worker to be alive", |s| {
        s.workers
            .iter()
            .any(|w| w.id == id && w.liveness == Liveness::Alive)
    })
    .await;
    assert_eq!(alive.namespace, NAMESPACE);
    assert_eq!(alive.alive, 1);
    let lines = draw(&alive);
    let row = row_of(&lines, &id);
    assert!(row.contains("summarizer"), "{row}");
    assert!(row.contains("alive"), "{row}");
    assert!(
        row.contains("ago"),
        "an alive worker has a heartbeat age: {row}"
    );
    row_of(&lines, "worker_started");
    assert!(
        lines[1].contains("1 alive, 0 dead, 0 quarantined"),
        "{}",
        lines[1]
    );

    // SIGKILL: no deregistration, so the worker stays listed until its heartbeat expires.
    drop(worker);
    let dead = snapshot_when(&admin, "the killed worker to be dead", |s| {
        s.workers
            .iter()
            .any(|w| w.id == id && w.liveness == Liveness::Dead)
    })
    .await;
    let lines = draw(&dead);
    let row = row_of(&lines, &id);
    assert!(row.contains("dead"), "{row}");
    assert!(row.contains("summarizer"), "{row}");
    assert!(lines[1].contains("0 alive, 1 dead"), "{}", lines[1]);
}

#[test]
fn piped_stdout_prints_one_plain_snapshot_and_exits() {
    let redis = RedisServer::start();
    let panebus = panebus_on(&redis);
    let _worker = start_worker(&panebus, "%4", "indexer");
    let id = format!("{NODE}/%4");
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let out = panebus.command(&["top"]).output().expect("run panebus top");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            code(&out),
            0,
            "stdout: {text}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if text.contains(&id) && text.contains("alive") {
            break text;
        }
        assert!(Instant::now() < deadline, "worker never showed up: {text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert!(row_of(&lines, &id).contains("indexer"), "{text}");
    row_of(&lines, &format!("bus {NAMESPACE}"));
    row_of(&lines, "one snapshot (stdout is not a terminal)");
    assert!(
        !text.contains('\u{1b}'),
        "a plain snapshot has no escape codes: {text:?}"
    );
}

#[test]
fn a_zero_or_malformed_interval_is_a_usage_error() {
    let redis = RedisServer::start();
    let panebus = panebus_on(&redis);
    for bad in ["0s", "soon"] {
        let out = panebus
            .command(&["top", "--interval", bad])
            .output()
            .expect("run panebus top");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code(&out), 2, "--interval {bad}: {err}");
        assert!(err.contains("--interval"), "--interval {bad}: {err}");
    }
}

#[test]
fn unreachable_redis_exits_3_with_a_message() {
    let mut redis = RedisServer::start();
    let panebus = panebus_on(&redis);
    redis.kill();
    let out = panebus.command(&["top"]).output().expect("run panebus top");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 3, "{err}");
    assert!(!err.is_empty());
}
