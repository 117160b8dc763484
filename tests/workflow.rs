//! `panebus ask` and the workflow commands against a real redis-server, with in-process
//! workers (or real `panebus worker` processes in tmux) whose agent is a fake from
//! `fixtures/agents/`.

mod support;

use std::path::PathBuf;
use std::process::Command as Process;
use std::time::{Duration, Instant};

use clap::Parser;
use panebus::bus::Bus;
use panebus::cli::ask::{execute, AskArgs};
use panebus::config::Config;
use panebus::schema::EventKind;
use panebus::worker::{StopTokens, Worker};
use panebus::workflow::record::{Phase, PhaseState, WorkflowState};
use panebus::workflow::store;
use serde_json::Value;
use support::process::{process_gone, ChildGuard};
use support::wait::wait_for_async;
use support::{RedisServer, TmuxServer};

const NODE: &str = "wfnode";

fn agent(script: &str) -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/agents")
        .join(script);
    vec![path.to_str().unwrap().to_string(), "-p".to_string()]
}

fn config(redis: &RedisServer) -> Config {
    let mut c = Config::from_lookup(|_| None).unwrap();
    c.redis_url = redis.url();
    c.namespace = "wf".into();
    c.node = NODE.into();
    c.heartbeat_interval = Duration::from_millis(200);
    c.heartbeat_ttl = Duration::from_secs(5);
    c.agent_cmd = agent("answer.sh");
    c
}

/// In-process workers that stop when dropped.
struct Workers {
    tokens: Vec<StopTokens>,
}

impl Drop for Workers {
    fn drop(&mut self) {
        for t in &self.tokens {
            t.stop.cancel();
            t.force.cancel();
        }
    }
}

/// Starts one in-process worker per `(pane, role, agent script)` and waits until all are
/// registered and alive.
async fn start_workers(config: &Config, specs: &[(&str, &str, &str)]) -> Workers {
    let bus = Bus::connect(config).await.unwrap();
    let mut tokens = Vec::new();
    let mut ids = Vec::new();
    for (pane, role, script) in specs {
        let mut worker_config = config.clone();
        worker_config.agent_cmd = agent(script);
        let stop = StopTokens::new();
        let builder = Worker::builder(worker_config)
            .pane(*pane)
            .role(*role)
            .stop_tokens(stop.clone());
        ids.push(builder.worker_id());
        tokio::spawn(builder.run());
        tokens.push(stop);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let workers = bus.list_workers().await.unwrap();
        if ids
            .iter()
            .all(|id| workers.iter().any(|w| &w.id == id && w.alive))
        {
            break;
        }
        assert!(Instant::now() < deadline, "workers did not register");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Workers { tokens }
}

const FOUR_ROLES: [(&str, &str, &str); 4] = [
    ("%2", "reviewer", "answer.sh"),
    ("%1", "planner", "answer.sh"),
    ("%3", "worker", "answer.sh"),
    ("%4", "compounder", "answer.sh"),
];

fn ask_args(args: &[&str]) -> AskArgs {
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        ask: AskArgs,
    }
    let mut argv = vec!["ask"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).unwrap().ask
}

async fn ask(config: &Config, args: &[&str]) -> (anyhow::Result<()>, String, String) {
    let mut progress = Vec::new();
    let mut out = Vec::new();
    let result = execute(ask_args(args), config, &mut progress, &mut out).await;
    (
        result,
        String::from_utf8(progress).unwrap(),
        String::from_utf8(out).unwrap(),
    )
}

fn workflow_id(progress: &str) -> String {
    progress
        .split_whitespace()
        .nth(1)
        .expect("progress starts with `workflow <id>`")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_runs_four_phases_on_role_workers_and_chains_outputs() {
    let redis = RedisServer::start();
    let config = config(&redis);
    let _workers = start_workers(&config, &FOUR_ROLES).await;
    let dir = tempfile::tempdir().unwrap();
    let dir_str = dir.path().to_str().unwrap().to_string();

    let (result, progress, out) = ask(
        &config,
        &["-v", "-d", &dir_str, "Fix", "the", "failing", "tests"],
    )
    .await;
    result.unwrap();
    let bus = Bus::connect(&config).await.unwrap();
    let record = store::get(&bus, &workflow_id(&progress)).await.unwrap();

    assert_eq!(record.state, WorkflowState::Completed, "{progress}");
    assert_eq!(record.task, "Fix the failing tests");
    assert_eq!(record.driver.as_deref(), Some("local"));
    let canonical = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(record.working_dir, canonical.to_str().unwrap());
    for (phase, worker) in [
        (Phase::Review, "wfnode/%2"),
        (Phase::Plan, "wfnode/%1"),
        (Phase::Work, "wfnode/%3"),
        (Phase::Compound, "wfnode/%4"),
    ] {
        let p = record.phase(phase);
        assert_eq!(p.state, PhaseState::Completed, "{phase:?}");
        assert_eq!(p.worker.as_deref(), Some(worker), "{phase:?}");
        assert!(p.command_id.is_some() && p.started_ms.is_some() && p.finished_ms.is_some());
        // The agent ran in the workflow's working directory.
        assert!(
            p.output
                .as_deref()
                .unwrap()
                .contains(&format!("cwd: {}\n", canonical.display())),
            "{phase:?}"
        );
    }
    // Each phase's output is embedded in the next phase's prompt.
    let review = record.output(Phase::Review);
    assert!(review.contains("Task from the user:\nFix the failing tests"));
    assert!(record
        .phase(Phase::Plan)
        .prompt
        .as_deref()
        .unwrap()
        .contains(review));
    let plan = record.output(Phase::Plan);
    assert!(record
        .phase(Phase::Work)
        .prompt
        .as_deref()
        .unwrap()
        .contains(plan));
    let work = record.output(Phase::Work);
    assert!(work.trim_end().ends_with("COMPOUND: yes"));
    assert!(record
        .phase(Phase::Compound)
        .prompt
        .as_deref()
        .unwrap()
        .contains(work));
    assert_eq!(
        record.phase(Phase::Review).summary.as_deref(),
        Some("answer to: You are the REVIEWER in a four-phase workflow (review, plan, work, compound) run by PaneBus.")
    );

    // stdout is the work phase's answer; stderr has one line per phase step, outputs (-v).
    assert_eq!(out, work);
    for line in [
        "[1/4] review: running on wfnode/%2",
        "[2/4] plan: completed on wfnode/%1",
        "[4/4] compound: completed on wfnode/%4",
        "    | answer to: You are the WORKER",
        " completed in ",
    ] {
        assert!(progress.contains(line), "missing {line:?} in:\n{progress}");
    }

    // Workflow events were emitted, with the workflow id.
    let events = bus.recent_events(200).await.unwrap();
    let kinds: Vec<String> = events
        .iter()
        .filter(|e| e.event.details["workflow_id"] == record.id.as_str())
        .map(|e| e.event.kind.to_string())
        .collect();
    for kind in [
        EventKind::WorkflowStarted,
        EventKind::WorkflowPhaseStarted,
        EventKind::WorkflowPhaseCompleted,
        EventKind::WorkflowCompleted,
    ] {
        assert!(kinds.contains(&kind.to_string()), "{kind} in {kinds:?}");
    }
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "workflow_phase_completed")
            .count(),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compound_is_skipped_when_the_work_says_no() {
    let redis = RedisServer::start();
    let config = config(&redis);
    let _workers = start_workers(&config, &FOUR_ROLES).await;

    let (result, progress, _) = ask(&config, &["Fix", "a", "trivial", "typo"]).await;
    result.unwrap();
    let bus = Bus::connect(&config).await.unwrap();
    let record = store::get(&bus, &workflow_id(&progress)).await.unwrap();
    assert_eq!(record.state, WorkflowState::Completed);
    assert!(record
        .output(Phase::Work)
        .trim_end()
        .ends_with("COMPOUND: no"));
    let compound = record.phase(Phase::Compound);
    assert_eq!(compound.state, PhaseState::Skipped);
    assert!(compound.command_id.is_none(), "no prompt was sent");
    assert!(progress.contains("[4/4] compound: skipped"), "{progress}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_phase_fails_the_workflow_with_its_error() {
    let redis = RedisServer::start();
    let config = config(&redis);
    let _workers = start_workers(
        &config,
        &[
            ("%2", "reviewer", "answer.sh"),
            ("%1", "planner", "fail.sh"),
            ("%3", "worker", "answer.sh"),
        ],
    )
    .await;

    let (result, progress, out) = ask(&config, &["Fix", "it"]).await;
    let message = format!("{:#}", result.unwrap_err());
    assert!(message.contains("failed"), "{message}");
    assert!(message.contains("exited with status 2"), "{message}");
    assert!(out.is_empty());
    let bus = Bus::connect(&config).await.unwrap();
    let record = store::get(&bus, &workflow_id(&progress)).await.unwrap();
    assert_eq!(record.state, WorkflowState::Failed);
    assert_eq!(record.phase(Phase::Review).state, PhaseState::Completed);
    let plan = record.phase(Phase::Plan);
    assert_eq!(plan.state, PhaseState::Failed);
    let error = plan.error.as_deref().unwrap();
    assert!(error.contains("failed on wfnode/%1"), "{error}");
    assert!(error.contains("stderr line 30"), "{error}");
    assert_eq!(record.phase(Phase::Work).state, PhaseState::Pending);
    assert!(record.error.as_deref().unwrap().starts_with("plan phase: "));
    assert!(progress.contains("[2/4] plan: FAILED"), "{progress}");
    let events = bus.recent_events(200).await.unwrap();
    let kinds: Vec<String> = events.iter().map(|e| e.event.kind.to_string()).collect();
    assert!(
        kinds.contains(&"workflow_phase_failed".to_string()),
        "{kinds:?}"
    );
    assert!(kinds.contains(&"workflow_failed".to_string()), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_wait_hands_the_workflow_to_the_orchestrator() {
    let redis = RedisServer::start();
    let config = config(&redis);

    // Without an orchestrator nobody would drive the phases: refused, nothing created.
    let (result, _, _) = ask(&config, &["--no-wait", "Refactor"]).await;
    let message = format!("{:#}", result.unwrap_err());
    assert!(
        message.contains("panebus worker --role orchestrator"),
        "{message}"
    );
    let bus = Bus::connect(&config).await.unwrap();
    assert!(store::list(&bus, 10, false).await.unwrap().is_empty());

    let mut specs = FOUR_ROLES.to_vec();
    specs.push(("%0", "orchestrator", "answer.sh"));
    let _workers = start_workers(&config, &specs).await;
    let (result, progress, out) = ask(&config, &["--no-wait", "Refactor", "the", "module"]).await;
    result.unwrap();
    assert!(progress.is_empty());
    let id = out.trim().to_string();
    assert_eq!(id.len(), 26, "a ULID: {out:?}");

    let deadline = Instant::now() + Duration::from_secs(60);
    let record = loop {
        let record = store::get(&bus, &id).await.unwrap();
        if record.state.is_terminal() {
            break record;
        }
        if Instant::now() > deadline {
            let events = bus.recent_events(50).await.unwrap();
            panic!("workflow did not finish: {record:?}\nevents: {events:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(record.state, WorkflowState::Completed, "{:?}", record.error);
    assert_eq!(record.driver.as_deref(), Some("wfnode/%0"));
    assert!(record
        .phases
        .iter()
        .all(|p| p.worker.as_deref() != Some("wfnode/%0")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_role_falls_back_to_another_live_worker() {
    let redis = RedisServer::start();
    let config = config(&redis);
    let _workers = start_workers(&config, &[("%3", "worker", "answer.sh")]).await;
    let (result, progress, _) = ask(&config, &["Fix", "a", "trivial", "bug"]).await;
    result.unwrap();
    let bus = Bus::connect(&config).await.unwrap();
    let record = store::get(&bus, &workflow_id(&progress)).await.unwrap();
    let review = record.phase(Phase::Review);
    assert_eq!(review.worker.as_deref(), Some("wfnode/%3"));
    assert!(review
        .note
        .as_deref()
        .unwrap()
        .contains("no live reviewer worker"));
    assert!(progress.contains("no live reviewer worker"), "{progress}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_working_dir_and_empty_bus_are_clear_errors() {
    let redis = RedisServer::start();
    let config = config(&redis);
    let (result, _, _) = ask(&config, &["-d", "/nonexistent/panebus/dir", "Fix"]).await;
    let message = format!("{:#}", result.unwrap_err());
    assert!(message.contains("does not exist"), "{message}");

    // No worker at all: the first phase fails saying how to start one.
    let (result, progress, _) = ask(&config, &["--timeout", "30", "Fix"]).await;
    let message = format!("{:#}", result.unwrap_err());
    assert!(
        message.contains("panebus worker --role reviewer"),
        "{message}"
    );
    assert!(progress.contains("[1/4] review: FAILED"), "{progress}");
}

/// `panebus ARGS` on `redis` (namespace `wf`) with `agent_script` as the agent, outside
/// tmux.
fn panebus_command(redis: &RedisServer, agent_script: &str, args: &[&str]) -> Process {
    let mut command = Process::new(env!("CARGO_BIN_EXE_panebus"));
    command
        .args(args)
        .env("PANEBUS_REDIS_URL", redis.url())
        .env("PANEBUS_NAMESPACE", "wf")
        .env("PANEBUS_NODE", NODE)
        .env("PANEBUS_AGENT_CMD", agent(agent_script).join(" "))
        .env("PANEBUS_HEARTBEAT_INTERVAL", "1")
        .env("PANEBUS_HEARTBEAT_TTL", "5")
        .env_remove("TMUX")
        .env_remove("TMUX_PANE");
    command
}

fn panebus(redis: &RedisServer, args: &[&str]) -> std::process::Output {
    panebus_command(redis, "answer.sh", args).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_and_workflow_status_print_json() {
    let redis = RedisServer::start();
    let config = config(&redis);
    let _workers = start_workers(&config, &FOUR_ROLES).await;
    let (result, progress, _) = ask(&config, &["First", "task"]).await;
    result.unwrap();
    let first = workflow_id(&progress);
    let (result, progress, _) = ask(&config, &["Second", "trivial", "task"]).await;
    result.unwrap();
    let second = workflow_id(&progress);

    let output = panebus(&redis, &["workflows", "--json"]);
    assert!(output.status.success(), "{output:?}");
    let list: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], second.as_str(), "newest first");
    assert_eq!(list[1]["id"], first.as_str());
    assert_eq!(list[0]["state"], "completed");
    assert_eq!(list[0]["phases"]["compound"], "skipped");
    assert_eq!(list[1]["phases"]["compound"], "completed");

    let output = panebus(&redis, &["workflows", "--json", "--count", "1"]);
    let list: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(list.len(), 1);
    let output = panebus(&redis, &["workflows", "--active", "--json"]);
    let list: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert!(list.is_empty());

    let output = panebus(&redis, &["workflow-status", &first, "--json"]);
    assert!(output.status.success(), "{output:?}");
    let record: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(record["id"], first.as_str());
    assert_eq!(record["task"], "First task");
    assert_eq!(record["phases"].as_array().unwrap().len(), 4);
    assert_eq!(record["phases"][2]["phase"], "work");
    assert!(record["phases"][2]["output"]
        .as_str()
        .unwrap()
        .contains("COMPOUND: yes"));

    let output = panebus(&redis, &["workflow-status", &first]);
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains(&format!("workflow {first}  completed")),
        "{text}"
    );
    assert!(text.contains("compound  completed"), "{text}");

    let output = panebus(&redis, &["workflow-status", "01NOSUCHWORKFLOW0000000000"]);
    assert!(!output.status.success());
    let error = String::from_utf8(output.stderr).unwrap();
    assert!(
        error.contains("no workflow 01NOSUCHWORKFLOW0000000000"),
        "{error}"
    );
    assert!(error.contains("panebus workflows"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_setup_starts_five_role_workers_and_teardown_removes_them() {
    let redis = RedisServer::start();
    let tmux = TmuxServer::start("other");
    let config = config(&redis);
    let bus = Bus::connect(&config).await.unwrap();
    let socket = tmux.socket.to_str().unwrap().to_string();

    let output = panebus(
        &redis,
        &[
            "workflow-setup",
            "-S",
            &socket,
            "--session",
            "wf-test",
            "--no-attach",
        ],
    );
    assert!(output.status.success(), "{output:?}");
    let report = String::from_utf8(output.stderr).unwrap();
    assert!(report.contains("created tmux session wf-test"), "{report}");

    // Five panes in the workflow window, each tagged with its worker id and role.
    let panes = tmux.run(&[
        "list-panes",
        "-t",
        "=wf-test:workflow",
        "-F",
        "#{pane_id} #{@panebus_role} #{@panebus_worker}",
    ]);
    let panes: Vec<Vec<String>> = panes
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    let roles: Vec<&str> = panes.iter().map(|p| p[1].as_str()).collect();
    assert_eq!(
        roles,
        [
            "orchestrator",
            "planner",
            "reviewer",
            "worker",
            "compounder"
        ]
    );
    for pane in &panes {
        assert_eq!(pane[2], format!("{NODE}/{}", pane[0]));
    }
    let windows = tmux.run(&["list-windows", "-t", "=wf-test", "-F", "#{window_name}"]);
    assert_eq!(
        windows.lines().collect::<Vec<_>>(),
        ["workflow", "coordinator"]
    );

    // The real `panebus worker` processes register with their roles and the session.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let workers = bus.list_workers().await.unwrap();
        let registered: Vec<(String, String)> = workers
            .iter()
            .filter(|w| w.alive)
            .filter_map(|w| w.info.as_ref())
            .map(|i| (i.id.clone(), i.role.clone()))
            .collect();
        if panes
            .iter()
            .all(|p| registered.contains(&(p[2].clone(), p[1].clone())))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "workers did not register: {registered:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A second setup of the same session is refused.
    let output = panebus(
        &redis,
        &[
            "workflow-setup",
            "-S",
            &socket,
            "--session",
            "wf-test",
            "--no-attach",
        ],
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("already exists"));

    let output = panebus(&redis, &["workflow-teardown", "wf-test", "-S", &socket]);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("deregistered 5 worker(s)"));
    assert!(bus.worker_ids().await.unwrap().is_empty());
    // Only that session was killed.
    let sessions = tmux.run(&["list-sessions", "-F", "#{session_name}"]);
    assert_eq!(sessions.trim(), "other");

    let output = panebus(&redis, &["workflow-teardown", "wf-test", "-S", &socket]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no tmux session wf-test"));
}

/// A real `panebus worker --role planner` on pane `%1` whose agent is `slow.sh`.
fn spawn_planner(
    redis: &RedisServer,
    delay: &str,
    pidfile: &std::path::Path,
) -> std::process::Child {
    panebus_command(redis, "slow.sh", &["worker", "--role", "planner"])
        .env("FAKE_AGENT_DELAY", delay)
        .env("FAKE_AGENT_PIDFILE", pidfile)
        .env("TMUX_PANE", "%1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phase_whose_worker_dies_is_rerun_without_rerunning_earlier_phases() {
    let redis = RedisServer::start();
    let config = config(&redis);
    let bus = Bus::connect(&config).await.unwrap();
    let _workers = start_workers(
        &config,
        &[
            ("%2", "reviewer", "answer.sh"),
            ("%3", "worker", "answer.sh"),
            ("%4", "compounder", "answer.sh"),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("agent.pid");
    let mut planner = ChildGuard(spawn_planner(&redis, "30", &pidfile));

    let ask_config = config.clone();
    let ask_task = tokio::spawn(async move { ask(&ask_config, &["Fix", "the", "login"]).await });

    // Wait until the plan phase's agent runs, then SIGKILL its worker.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (id, before) = loop {
        let list = store::list(&bus, 1, false).await.unwrap();
        if let Some(record) = list.into_iter().next() {
            if record.phase(Phase::Plan).state == PhaseState::Running && pidfile.exists() {
                break (record.id.clone(), record);
            }
        }
        assert!(Instant::now() < deadline, "plan phase did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let agent_pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    planner.0.kill().unwrap();
    planner.0.wait().unwrap();
    // The agent does not outlive its worker.
    wait_for_async(
        &format!("agent {agent_pid} to end with its worker"),
        Duration::from_secs(10),
        || async { process_gone(agent_pid) },
    )
    .await;

    // The respawned worker (same pane, new incarnation) gets the command again.
    std::fs::remove_file(&pidfile).unwrap();
    let _planner = ChildGuard(spawn_planner(&redis, "0", &pidfile));
    let (result, progress, _) = tokio::time::timeout(Duration::from_secs(60), ask_task)
        .await
        .expect("ask finishes")
        .unwrap();
    result.unwrap();
    assert_eq!(workflow_id(&progress), id);
    let after = store::get(&bus, &id).await.unwrap();
    assert_eq!(after.state, WorkflowState::Completed);
    let plan = after.phase(Phase::Plan);
    assert_eq!(plan.command_id, before.phase(Phase::Plan).command_id);
    assert_eq!(plan.attempt, Some(2), "redelivered once");
    // The review phase was not re-run: same command, same output, first attempt.
    let review = after.phase(Phase::Review);
    assert_eq!(review.command_id, before.phase(Phase::Review).command_id);
    assert_eq!(review.output, before.phase(Phase::Review).output);
    assert_eq!(review.attempt, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_driver_resumes_from_the_checkpoint() {
    let redis = RedisServer::start();
    let config = config(&redis);
    let bus = Bus::connect(&config).await.unwrap();
    let _workers = start_workers(&config, &FOUR_ROLES).await;

    // A record as a driver that died after the review phase would have left it.
    let mut record = panebus::workflow::WorkflowRecord::new(
        "01RESUMEDWORKFLOW000000000".into(),
        "Resume me".into(),
        "/".into(),
        60_000,
    );
    record.state = WorkflowState::Running;
    let review = record.phase_mut(Phase::Review);
    review.state = PhaseState::Completed;
    review.output = Some("REVIEW FROM BEFORE THE CRASH".into());
    store::save(&bus, &record).await.unwrap();

    let driver = panebus::workflow::Driver::new(
        bus.clone(),
        panebus::workflow::Templates::load(&[]).unwrap(),
        "local",
    );
    let done = driver.run(&record.id).await.unwrap();
    assert_eq!(done.state, WorkflowState::Completed);
    assert!(done.phase(Phase::Review).command_id.is_none(), "not re-run");
    assert!(done
        .phase(Phase::Plan)
        .prompt
        .as_deref()
        .unwrap()
        .contains("REVIEW FROM BEFORE THE CRASH"));
    // Running it again changes nothing.
    let again = driver.run(&record.id).await.unwrap();
    assert_eq!(again, done);
}
