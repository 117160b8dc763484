//! Workers against a real redis-server: in-process (embedder API) and as `panebus worker`
//! processes (signals, SIGKILL between take and ack, Redis restarts, external handlers),
//! and inside a private tmux server for pane detection.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use panebus::bus::{Bus, BusError};
use panebus::config::Config;
use panebus::schema::{Command, CommandResult, DlqCommand, DlqReason, EventKind, WorkerState};
use panebus::worker::{handler_fn, HandlerError, StopTokens, Worker, WorkerError, WorkerExit};
use serde_json::{json, Value};
use support::deployments::single_node_cluster;
use support::process::{pid_alive, ChildGuard};
use support::wait::wait_for_async;
use support::{RedisServer, TmuxServer};

const NODE: &str = "testnode";

fn config(redis: &RedisServer) -> Config {
    let mut c = Config::from_lookup(|_| None).unwrap();
    c.redis_url = redis.url();
    c.namespace = "wt".into();
    c.node = NODE.into();
    c.heartbeat_interval = Duration::from_millis(200);
    c.heartbeat_ttl = Duration::from_secs(5);
    c
}

/// How long a condition may take to come true.
const WAIT: Duration = Duration::from_secs(20);

async fn wait_registered(bus: &Bus, worker: &str) {
    wait_for_async(&format!("{worker} is registered"), WAIT, || async {
        bus.is_registered(worker).await.unwrap_or(false)
    })
    .await;
}

async fn dispatch(bus: &Bus, worker: &str, cmd: &Command) -> CommandResult {
    bus.enqueue(worker, cmd, false).await.unwrap();
    let mut blocking = bus.blocking_connection().await.unwrap();
    bus.wait_result(&mut blocking, &cmd.id, Duration::from_secs(30))
        .await
        .unwrap()
}

/// Starts an in-process worker on pane `pane`; returns its id, stop tokens and task.
fn spawn_worker(
    config: &Config,
    pane: &str,
    role: &str,
) -> (
    String,
    StopTokens,
    tokio::task::JoinHandle<Result<WorkerExit, WorkerError>>,
) {
    let tokens = StopTokens::new();
    let builder = Worker::builder(config.clone())
        .pane(pane)
        .role(role)
        .stop_tokens(tokens.clone())
        .handler(
            "reverse",
            handler_fn(|cmd, _ctx| async move {
                let text = cmd.payload["text"]
                    .as_str()
                    .ok_or_else(|| HandlerError::new("payload needs a \"text\" string"))?;
                Ok(json!({"reversed": text.chars().rev().collect::<String>()}))
            }),
        );
    let id = builder.worker_id();
    (id, tokens, tokio::spawn(builder.run()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_custom_and_shutdown_round_trip_in_process() {
    let redis = RedisServer::start();
    let config = config(&redis);
    let bus = Bus::connect(&config).await.unwrap();
    let (id, _tokens, task) = spawn_worker(&config, "%1", "worker");
    assert_eq!(id, "testnode/%1");
    wait_registered(&bus, &id).await;

    let ping = Command::new("ping", json!({}), "test");
    let r = dispatch(&bus, &id, &ping).await;
    assert!(r.ok, "{r:?}");
    let value = r.result.unwrap();
    assert_eq!(value["pong"], true);
    assert_eq!(value["worker"], id);
    assert!(value["latency_ms"].as_u64().is_some());

    // An empty script cache (as after a Redis restart) does not break the ack.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut redis.conn())
        .unwrap();
    let r = dispatch(&bus, &id, &Command::new("ping", json!({}), "test")).await;
    assert!(r.ok);
    // The result is stored just before the ack: wait for the ack too.
    wait_acked(&bus, &id).await;

    let rev = Command::new("reverse", json!({"text": "abc é"}), "test");
    let r = dispatch(&bus, &id, &rev).await;
    assert_eq!(r.result.unwrap()["reversed"], "é cba");
    // A handler's own error is a failure with its message, and lands in the DLQ.
    let bad = Command::new("reverse", json!({}), "test");
    let r = dispatch(&bus, &id, &bad).await;
    assert!(!r.ok);
    assert!(r.error.unwrap().contains("\"text\""));
    assert_eq!(bus.dlq_list(1).await.unwrap()[0].reason, DlqReason::Failed);
    let info = bus.worker_info(&id).await.unwrap().unwrap();
    assert_eq!(info.current_command, None);

    let shutdown = Command::new("shutdown", json!({}), "test");
    let r = dispatch(&bus, &id, &shutdown).await;
    assert_eq!(r.result.unwrap()["shutdown"], true);
    let exit = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(exit, WorkerExit::ShutdownCommand);
    assert!(!bus.is_registered(&id).await.unwrap());
    // The result is stored just before the ack: wait for the ack too.
    wait_acked(&bus, &id).await;
    let kinds: Vec<EventKind> = bus
        .recent_events(100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event.kind)
        .collect();
    for k in [
        EventKind::WorkerStarted,
        EventKind::CommandReceived,
        EventKind::CommandCompleted,
        EventKind::CommandFailed,
        EventKind::WorkerStopped,
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_type_and_poison_go_to_the_dlq_and_the_worker_survives() {
    let redis = RedisServer::start();
    let config = config(&redis);
    let bus = Bus::connect(&config).await.unwrap();
    let (id, tokens, task) = spawn_worker(&config, "%1", "worker");
    wait_registered(&bus, &id).await;

    let r = dispatch(&bus, &id, &Command::new("frobnicate", json!({}), "test")).await;
    let error = r.error.unwrap();
    assert!(
        error.contains("no handler for command type frobnicate")
            && error.contains("--handler frobnicate=PROGRAM")
            && error.contains("ping"),
        "{error}"
    );

    let poison = "{\"id\": \"x\", \"type\": tru";
    let _: () = redis::cmd("LPUSH")
        .arg(bus.keys().queue(&id))
        .arg(poison)
        .query(&mut redis.conn())
        .unwrap();
    wait_for_async("the poison is dead-lettered", WAIT, || async {
        bus.dlq_list(10)
            .await
            .unwrap()
            .iter()
            .any(|e| e.reason == DlqReason::Poison)
    })
    .await;
    let entries = bus.dlq_list(10).await.unwrap();
    let poisoned = entries
        .iter()
        .find(|e| e.reason == DlqReason::Poison)
        .unwrap();
    assert_eq!(poisoned.command, DlqCommand::Raw(poison.to_string()));
    assert!(entries.iter().any(|e| e.reason == DlqReason::UnknownType));
    // Still serving.
    let r = dispatch(&bus, &id, &Command::new("ping", json!({}), "test")).await;
    assert!(r.ok);
    // The result is stored just before the ack: wait for the ack too.
    wait_acked(&bus, &id).await;
    tokens.stop.cancel();
    assert_eq!(task.await.unwrap().unwrap(), WorkerExit::Stopped);
    assert!(!bus.is_registered(&id).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_dead_letters_and_attempts_past_the_limit_are_not_run() {
    let redis = RedisServer::start();
    let config = config(&redis);
    let bus = Bus::connect(&config).await.unwrap();
    let tokens = StopTokens::new();
    let builder = Worker::builder(config.clone())
        .pane("%2")
        .stop_tokens(tokens.clone())
        .handler(
            "slow",
            handler_fn(|_cmd, _ctx| async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(Value::Null)
            }),
        );
    let id = builder.worker_id();
    let task = tokio::spawn(builder.run());
    wait_registered(&bus, &id).await;
    let mut slow = Command::new("slow", json!({}), "test");
    slow.timeout_ms = Some(300);
    let started = Instant::now();
    let r = dispatch(&bus, &id, &slow).await;
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(r.error.unwrap().contains("timed out after 300ms"));
    let entry = bus.dlq_show(&slow.id).await.unwrap();
    assert_eq!(entry.reason, DlqReason::Timeout);

    let mut spent = Command::new("ping", json!({}), "test");
    spent.attempt = 4;
    spent.max_attempts = 3;
    let r = dispatch(&bus, &id, &spent).await;
    assert!(!r.ok);
    assert_eq!(
        bus.dlq_show(&spent.id).await.unwrap().reason,
        DlqReason::AttemptsExhausted
    );
    tokens.stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_runs_the_agent_with_the_text_as_one_argument() {
    let redis = RedisServer::start();
    let mut config = config(&redis);
    // A fake agent: prints the argument it was given and where it runs.
    config.agent_cmd = vec![
        "sh".into(),
        "-c".into(),
        "printf 'agent got: %s\\n' \"$0\"; pwd".into(),
    ];
    let bus = Bus::connect(&config).await.unwrap();
    let (id, tokens, task) = spawn_worker(&config, "%6", "agent");
    wait_registered(&bus, &id).await;
    let dir = tempfile::tempdir().unwrap();
    let workdir = dir.path().canonicalize().unwrap();
    let hostile = "Fix it; rm -rf / $(id) `id` #{pane_id} 'q' \"dq\"\nsecond line";
    let cmd = Command::new(
        "prompt",
        json!({"text": hostile, "context": {"working_dir": workdir}}),
        "test",
    );
    let r = dispatch(&bus, &id, &cmd).await;
    assert!(r.ok, "{r:?}");
    let output = r.result.unwrap()["output"].as_str().unwrap().to_string();
    assert_eq!(
        output,
        format!("agent got: {hostile}\n{}\n", workdir.display())
    );

    let r = dispatch(&bus, &id, &Command::new("prompt", json!({}), "test")).await;
    assert!(r.error.unwrap().contains("\"text\""));
    let missing = json!({"text": "x", "context": {"working_dir": "/no/such/dir"}});
    let r = dispatch(&bus, &id, &Command::new("prompt", missing, "test")).await;
    assert!(r.error.unwrap().contains("not a directory"));
    tokens.stop.cancel();
    task.await.unwrap().unwrap();

    config.agent_cmd = vec!["/no/such/agent".into()];
    let (id, tokens, task) = spawn_worker(&config, "%6", "agent");
    wait_registered(&bus, &id).await;
    let r = dispatch(
        &bus,
        &id,
        &Command::new("prompt", json!({"text": "x"}), "test"),
    )
    .await;
    assert!(r.error.unwrap().contains("PANEBUS_AGENT_CMD"));
    tokens.stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_index_lists_several_live_workers() {
    let redis = RedisServer::start();
    let config = config(&redis);
    let bus = Bus::connect(&config).await.unwrap();
    let mut running = Vec::new();
    for (pane, role) in [("%1", "reviewer"), ("%2", "reviewer"), ("%3", "planner")] {
        running.push(spawn_worker(&config, pane, role));
    }
    for (id, _, _) in &running {
        wait_registered(&bus, id).await;
    }
    assert_eq!(
        bus.role_members("reviewer").await.unwrap(),
        ["testnode/%1", "testnode/%2"]
    );
    let all = bus.list_workers().await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|w| w.alive));
    for id in bus.role_members("reviewer").await.unwrap() {
        let r = dispatch(&bus, &id, &Command::new("ping", json!({}), "test")).await;
        assert_eq!(r.worker, id);
    }
    for (_, tokens, task) in running {
        tokens.stop.cancel();
        task.await.unwrap().unwrap();
    }
    assert!(bus.role_members("reviewer").await.unwrap().is_empty());
    assert!(bus.list_workers().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_worker_stops_without_touching_the_queue() {
    let redis = RedisServer::start();
    let config = config(&redis);
    let bus = Bus::connect(&config).await.unwrap();
    let (id, _tokens, task) = spawn_worker(&config, "%1", "worker");
    wait_registered(&bus, &id).await;
    let generation = bus.generation(&id).await.unwrap();
    let outcome = bus.requeue_unacked(&id, generation).await.unwrap();
    assert_eq!(outcome.generation, generation + 1);
    let err = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, WorkerError::Fenced { .. }), "{err:?}");
    // The fenced worker did not deregister the record (the coordinator owns it now).
    assert!(bus.is_registered(&id).await.unwrap());
}

// ---- `panebus worker` processes ----

fn worker_process(redis: &RedisServer, pane: &str, extra: &[&str]) -> Child {
    worker_process_with(redis, pane, extra, &[])
}

fn worker_process_with(
    redis: &RedisServer,
    pane: &str,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_panebus"))
        .arg("worker")
        .args(extra)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PANEBUS_REDIS_URL", redis.url())
        .env("PANEBUS_NAMESPACE", "wt")
        .env("PANEBUS_NODE", NODE)
        .env("PANEBUS_HEARTBEAT_INTERVAL", "200ms")
        .env("PANEBUS_HEARTBEAT_TTL", "5")
        .env("PANEBUS_LOG_LEVEL", "debug")
        .env("TMUX_PANE", pane)
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start panebus worker")
}

/// Sends `sig` to a worker process and waits up to 20 s for it to exit.
async fn stop(child: &mut ChildGuard, sig: i32) -> std::process::ExitStatus {
    child.signal(sig);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "worker did not exit");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until `worker` has acked what it took (its processing list is empty).
async fn wait_acked(bus: &Bus, worker: &str) {
    wait_for_async("the command is acked", WAIT, || async {
        bus.processing_len(worker).await.unwrap() == 0
    })
    .await;
}

/// A `--handler` spec for command type `kind` running `sh -c 'echo $$ > PIDFILE; SCRIPT'`,
/// and the pid file (in `dir`), read with [`wait_file`] once the handler runs.
fn pid_recording_handler(dir: &Path, kind: &str, script: &str) -> (String, PathBuf) {
    let pidfile = dir.join(format!("{kind}.pid"));
    let spec = format!("{kind}=sh -c 'echo $$ > {}; {script}'", pidfile.display());
    (spec, pidfile)
}

async fn wait_file(path: &Path) -> String {
    wait_for_async(&format!("{} exists", path.display()), WAIT, || async {
        std::fs::read_to_string(path)
            .map(|s| !s.is_empty())
            .unwrap_or(false)
    })
    .await;
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_handlers_pass_hostile_text_literally_and_report_failures() {
    let redis = RedisServer::start();
    let bus = Bus::connect(&config(&redis)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (slow, pidfile) = pid_recording_handler(dir.path(), "slow", "exec sleep 60");
    let mut child = ChildGuard(worker_process(
        &redis,
        "%5",
        &[
            "--handler",
            "echo=cat",
            "--handler",
            "text=echo plain words",
            "--handler",
            "fail=sh -c 'echo doing; echo went wrong >&2; exit 3'",
            "--handler",
            &slow,
            "--command-timeout",
            "1s",
        ],
    ));
    let id = format!("{NODE}/%5");
    wait_registered(&bus, &id).await;

    let hostile = "x; rm -rf ~ \n #{pane_id} #(id) $(id) `id` 'sq' \"dq\" \\ %1 \u{1b}]0;t\u{7}";
    let cmd = Command::new("echo", json!({"text": hostile}), "test");
    let r = dispatch(&bus, &id, &cmd).await;
    assert!(r.ok, "{r:?}");
    let echoed = r.result.unwrap();
    assert_eq!(echoed["payload"]["text"], hostile);
    assert_eq!(echoed["id"], cmd.id);

    let r = dispatch(&bus, &id, &Command::new("text", json!({}), "test")).await;
    assert_eq!(r.result.unwrap(), json!("plain words"));

    let r = dispatch(&bus, &id, &Command::new("fail", json!({}), "test")).await;
    let error = r.error.unwrap();
    assert!(
        error.contains("status 3") && error.contains("went wrong"),
        "{error}"
    );

    let r = dispatch(&bus, &id, &Command::new("slow", json!({}), "test")).await;
    assert!(r.error.unwrap().contains("timed out after 1s"));
    let pid: u32 = wait_file(&pidfile).await.trim().parse().unwrap();
    wait_for_async(
        "the timed-out handler's process group is killed",
        WAIT,
        || async { !pid_alive(pid) },
    )
    .await;
    let reasons: Vec<DlqReason> = bus
        .dlq_list(10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.reason)
        .collect();
    assert_eq!(reasons, [DlqReason::Timeout, DlqReason::Failed]);

    assert!(stop(&mut child, libc::SIGTERM).await.success());
    assert!(!bus.is_registered(&id).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_take_and_ack_keeps_the_command_for_redelivery() {
    let redis = RedisServer::start();
    let bus = Bus::connect(&config(&redis)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (work, pidfile) = pid_recording_handler(dir.path(), "work", "exec sleep 60");
    let mut first = ChildGuard(worker_process(&redis, "%7", &["--handler", &work]));
    let id = format!("{NODE}/%7");
    wait_registered(&bus, &id).await;
    let generation = bus.generation(&id).await.unwrap();
    let cmd = Command::new("work", json!({"job": 1}), "test");
    bus.enqueue(&id, &cmd, false).await.unwrap();
    let handler_pid: i32 = wait_file(&pidfile).await.trim().parse().unwrap();
    // A command that runs for a while shows in the registry.
    wait_for_async(
        "the worker shows as busy with the command",
        WAIT,
        || async {
            let info = bus.worker_info(&id).await.unwrap().unwrap();
            info.state == WorkerState::Busy
                && info.current_command.as_deref() == Some(cmd.id.as_str())
        },
    )
    .await;

    stop(&mut first, libc::SIGKILL).await;
    // The handler program dies with its worker instead of running on unattended.
    wait_for_async("the handler program dies with its worker", WAIT, || async {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(handler_pid, 0) != 0 }
    })
    .await;
    let unacked = bus.unacked(&id).await.unwrap();
    assert_eq!(
        unacked.len(),
        1,
        "the command must still be in the processing list"
    );
    assert!(unacked[0].contains(&cmd.id));
    assert!(bus.result(&cmd.id).await.unwrap().is_none());

    // The next incarnation (same pane) takes it over: attempt 2, served once.
    let mut second = ChildGuard(worker_process(&redis, "%7", &["--handler", "work=cat"]));
    let mut blocking = bus.blocking_connection().await.unwrap();
    let r = bus
        .wait_result(&mut blocking, &cmd.id, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(r.ok);
    assert_eq!(r.attempt, 2);
    assert_eq!(r.result.unwrap()["attempt"], 2);
    assert!(bus.generation(&id).await.unwrap() > generation);
    // The result is stored just before the ack: wait for the ack too.
    wait_acked(&bus, &id).await;
    assert!(stop(&mut second, libc::SIGTERM).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_command_in_flight_and_a_second_one_requeues_it() {
    let redis = RedisServer::start();
    let bus = Bus::connect(&config(&redis)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    let short = format!(
        "short=sh -c 'echo 1 > {}; sleep 1; echo done'",
        started.display()
    );
    let mut child = ChildGuard(worker_process(
        &redis,
        "%8",
        &["--handler", &short, "--handler", "long=sleep 60"],
    ));
    let id = format!("{NODE}/%8");
    wait_registered(&bus, &id).await;

    // One SIGTERM while a short command runs: it finishes, then the worker exits 0.
    let cmd = Command::new("short", json!({}), "test");
    bus.enqueue(&id, &cmd, false).await.unwrap();
    wait_file(&started).await;
    assert!(stop(&mut child, libc::SIGTERM).await.success());
    let r = bus
        .result(&cmd.id)
        .await
        .unwrap()
        .expect("result stored before exit");
    assert_eq!(r.result.unwrap(), json!("done"));
    assert!(!bus.is_registered(&id).await.unwrap());
    let last = bus.recent_events(1).await.unwrap().pop().unwrap();
    assert_eq!(last.event.kind, EventKind::WorkerStopped);

    // Two signals while a long command runs: it goes back to the head of the queue.
    let mut child = ChildGuard(worker_process(
        &redis,
        "%8",
        &["--handler", "long=sleep 60"],
    ));
    wait_registered(&bus, &id).await;
    let long = Command::new("long", json!({}), "test");
    bus.enqueue(&id, &long, false).await.unwrap();
    wait_for_async("the long command is taken", WAIT, || async {
        bus.processing_len(&id).await.unwrap() == 1
    })
    .await;
    child.signal(libc::SIGTERM);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(stop(&mut child, libc::SIGINT).await.success());
    // The result is stored just before the ack: wait for the ack too.
    wait_acked(&bus, &id).await;
    assert_eq!(bus.queue_depth(&id).await.unwrap(), 1);
    let mut blocking = bus.blocking_connection().await.unwrap();
    // Register a consumer-less id check: the requeued element is the same command, attempt 1.
    let back = bus
        .take(&mut blocking, &id, Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap()
        .command
        .unwrap();
    assert_eq!((back.id, back.attempt), (long.id, 1));
}

/// One stop signal is all a pane's worker gets when its tmux server goes away: with Redis
/// gone too, the worker must not wait forever to record the command it was running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stop_signal_with_redis_gone_ends_the_worker_within_a_heartbeat_ttl() {
    let mut redis = RedisServer::start();
    let bus = Bus::connect(&config(&redis)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (work, pidfile) = pid_recording_handler(dir.path(), "work", "sleep 1; echo {}");
    let mut child = ChildGuard(worker_process_with(
        &redis,
        "%8",
        &["--handler", &work],
        &[("PANEBUS_HEARTBEAT_TTL", "2")],
    ));
    let id = format!("{NODE}/%8");
    wait_registered(&bus, &id).await;
    bus.enqueue(&id, &Command::new("work", json!({}), "test"), false)
        .await
        .unwrap();
    wait_file(&pidfile).await;
    redis.kill();
    stop(&mut child, libc::SIGTERM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_survives_a_redis_restart_and_registers_again() {
    let mut redis = RedisServer::start();
    // A slow heartbeat: registering again must not wait for it.
    let mut child = ChildGuard(worker_process_with(
        &redis,
        "%9",
        &["--heartbeat-interval", "30s"],
        &[("PANEBUS_HEARTBEAT_TTL", "60")],
    ));
    let id = format!("{NODE}/%9");
    {
        let bus = Bus::connect(&config(&redis)).await.unwrap();
        wait_registered(&bus, &id).await;
    }
    // No persistence: the restart loses every key.
    redis.restart();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "worker must keep running"
    );
    let bus = Bus::connect(&config(&redis)).await.unwrap();
    wait_registered(&bus, &id).await;
    let r = dispatch(&bus, &id, &Command::new("ping", json!({}), "test")).await;
    assert!(r.ok);
    assert!(stop(&mut child, libc::SIGTERM).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_waits_for_redis_that_is_down_at_start() {
    let mut redis = RedisServer::start();
    redis.kill();
    let mut child = ChildGuard(worker_process(&redis, "%4", &[]));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "worker must wait for Redis"
    );
    redis.restart();
    let bus = Bus::connect(&config(&redis)).await.unwrap();
    let id = format!("{NODE}/%4");
    wait_registered(&bus, &id).await;
    assert!(stop(&mut child, libc::SIGTERM).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_handler_spec_and_role_fail_with_a_clear_message() {
    let redis = RedisServer::start();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_panebus"))
        .args(["worker", "--handler", "no-equals-sign"])
        .env("PANEBUS_REDIS_URL", redis.url())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TYPE=PROGRAM"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_panebus"))
        .args(["worker"])
        .env("PANEBUS_REDIS_URL", redis.url())
        .env("PANEBUS_HEARTBEAT_TTL", "often")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PANEBUS_HEARTBEAT_TTL") && stderr.contains("often"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_in_a_tmux_pane_registers_under_its_pane_id() {
    let redis = RedisServer::start();
    let tmux = TmuxServer::start("pbw");
    let pane = tmux
        .run(&["display-message", "-p", "-t", "pbw", "#{pane_id}"])
        .trim()
        .to_string();
    let command = format!(
        "PANEBUS_REDIS_URL={} PANEBUS_NAMESPACE=wt PANEBUS_NODE={NODE} exec {} worker --role tmuxed",
        redis.url(),
        env!("CARGO_BIN_EXE_panebus")
    );
    tmux.run(&["respawn-pane", "-k", "-t", &pane, &command]);
    let bus = Bus::connect(&config(&redis)).await.unwrap();
    let id = format!("{NODE}/{pane}");
    wait_registered(&bus, &id).await;
    let info = bus.worker_info(&id).await.unwrap().unwrap();
    assert_eq!(info.pane, pane);
    assert_eq!(info.role, "tmuxed");
    assert_eq!(info.session.as_deref(), Some("pbw"));
    let r = dispatch(&bus, &id, &Command::new("ping", json!({}), "test")).await;
    assert!(r.ok);
    let r = dispatch(&bus, &id, &Command::new("shutdown", json!({}), "test")).await;
    assert!(r.ok);
    wait_for_async("the worker deregistered", WAIT, || async {
        !bus.is_registered(&id).await.unwrap()
    })
    .await;
    assert!(matches!(
        bus.enqueue(&id, &Command::new("ping", json!({}), "test"), false)
            .await
            .unwrap_err(),
        BusError::UnknownWorker { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_serves_success_failure_and_poison_on_a_cluster_node() {
    let redis = single_node_cluster();
    let config = config(&redis);
    let bus = Bus::connect(&config).await.unwrap();
    let (id, tokens, task) = spawn_worker(&config, "%1", "worker");
    wait_registered(&bus, &id).await;

    let r = dispatch(&bus, &id, &Command::new("ping", json!({}), "test")).await;
    assert!(r.ok, "{r:?}");
    let r = dispatch(&bus, &id, &Command::new("reverse", json!({}), "test")).await;
    assert!(!r.ok);
    let _: () = redis::cmd("LPUSH")
        .arg(bus.keys().queue(&id))
        .arg("not a command")
        .query(&mut redis.conn())
        .unwrap();
    wait_for_async(
        "the failure and the poison are dead-lettered",
        WAIT,
        || async { bus.dlq_len().await.unwrap() == 2 },
    )
    .await;
    let r = dispatch(&bus, &id, &Command::new("ping", json!({}), "test")).await;
    assert!(r.ok);
    wait_acked(&bus, &id).await;
    tokens.stop.cancel();
    assert_eq!(task.await.unwrap().unwrap(), WorkerExit::Stopped);
    assert!(!bus.is_registered(&id).await.unwrap());
}
