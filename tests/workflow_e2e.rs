//! End to end: the agent workflow exactly as a user runs it, through the real `panebus`
//! binary only. `workflow-setup` builds the session on a private tmux server (`-S`), its five
//! `panebus worker --role …` panes join a private redis-server, its coordinator window runs
//! `panebus attach`, and the agents are the fakes in `fixtures/agents/`. `ask --wait`,
//! `ask --no-wait`, `workflow-status` and `workflow-teardown` are separate processes, as
//! from another terminal. The guards (tmux server, redis-server, child processes) clean up
//! everything when a test fails half-way.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use panebus::bus::{Bus, Keys};
use panebus::config::Config;
use redis::Commands;
use serde_json::Value;
use support::process::ChildGuard;
use support::{RedisServer, TmuxServer};

/// Generous: two shared cores, several test binaries at once.
const WAIT: Duration = Duration::from_secs(60);

/// The roles `workflow-setup` starts, in pane order.
const ROLES: [&str; 5] = [
    "orchestrator",
    "planner",
    "reviewer",
    "worker",
    "compounder",
];

/// The four phases and the role that runs each.
const PHASES: [(&str, &str); 4] = [
    ("review", "reviewer"),
    ("plan", "planner"),
    ("work", "worker"),
    ("compound", "compounder"),
];

fn fake_agent(script: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/agents")
        .join(script)
}

/// A private redis-server and tmux server, a scratch directory, and the bus settings every
/// `panebus` process of one test gets.
struct Rig {
    redis: RedisServer,
    tmux: TmuxServer,
    dir: tempfile::TempDir,
    namespace: String,
    node: String,
    session: String,
    agent_cmd: String,
    runtime: tokio::runtime::Runtime,
    bus: Bus,
}

impl Rig {
    /// `name` makes the namespace, node and session unique to the test.
    fn new(name: &str, agent_cmd: String) -> Rig {
        let redis = RedisServer::start();
        // A session of the user's own that setup and teardown must leave alone.
        let tmux = TmuxServer::start("mine");
        let namespace = format!("e2e-{name}");
        let node = format!("e2enode-{name}");
        let mut config = Config::from_lookup(|_| None).unwrap();
        config.redis_url = redis.url();
        config.namespace = namespace.clone();
        config.node = node.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let bus = runtime.block_on(Bus::connect(&config)).unwrap();
        Rig {
            redis,
            tmux,
            dir: tempfile::tempdir().unwrap(),
            namespace,
            node,
            session: format!("wf-{name}"),
            agent_cmd,
            runtime,
            bus,
        }
    }

    fn socket(&self) -> String {
        self.tmux.socket.to_str().unwrap().to_string()
    }

    /// `panebus ARGS…` with this test's bus settings, outside tmux.
    fn panebus(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_panebus"));
        cmd.args(args)
            .env("PANEBUS_REDIS_URL", self.redis.url())
            .env("PANEBUS_NAMESPACE", &self.namespace)
            .env("PANEBUS_NODE", &self.node)
            .env("PANEBUS_AGENT_CMD", &self.agent_cmd)
            .env("PANEBUS_HEARTBEAT_INTERVAL", "1")
            // Long enough that a worker starved of CPU is never taken for a hung one.
            .env("PANEBUS_HEARTBEAT_TTL", "15")
            .env("PANEBUS_LOG_LEVEL", "info")
            .env("XDG_CONFIG_HOME", self.dir.path())
            .env_remove("PANEBUS_PROMPTS_DIR")
            .env_remove("TMUX")
            .env_remove("TMUX_PANE")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `panebus ARGS…` to completion and insists it succeeded.
    fn run_ok(&self, args: &[&str]) -> Output {
        let output = self.panebus(args).output().unwrap();
        assert!(
            output.status.success(),
            "panebus {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.diagnostics()
        );
        output
    }

    /// The workflow record, as `panebus workflow-status ID --json` prints it.
    fn record(&self, id: &str) -> Value {
        let output = self.run_ok(&["workflow-status", id, "--json"]);
        serde_json::from_slice(&output.stdout).expect("workflow-status --json prints JSON")
    }

    /// Polls the record until the workflow is completed or failed.
    fn wait_finished(&self, id: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let record = self.record(id);
            if record["state"] == "completed" || record["state"] == "failed" {
                return record;
            }
            assert!(
                Instant::now() < deadline,
                "workflow {id} did not finish: {record:#}\n{}",
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn tmux(&self, args: &[&str]) -> String {
        self.tmux.run(args).trim().to_string()
    }

    fn pane_pid(&self, pane: &str) -> u32 {
        self.tmux(&["display-message", "-p", "-t", pane, "#{pane_pid}"])
            .parse()
            .unwrap()
    }

    /// `(pane id, role)` of the workflow window, in pane order.
    fn workflow_panes(&self) -> Vec<(String, String)> {
        let target = format!("={}:workflow", self.session);
        self.tmux(&[
            "list-panes",
            "-t",
            &target,
            "-F",
            "#{pane_id} #{@panebus_role}",
        ])
        .lines()
        .map(|l| {
            let (pane, role) = l.split_once(' ').unwrap();
            (pane.to_string(), role.to_string())
        })
        .collect()
    }

    fn pane_of_role(&self, role: &str) -> String {
        self.workflow_panes()
            .into_iter()
            .find(|(_, r)| r == role)
            .unwrap_or_else(|| panic!("no {role} pane"))
            .0
    }

    fn worker_id(&self, pane: &str) -> String {
        format!("{}/{pane}", self.node)
    }

    /// `(kind, worker, details)` of every event so far, oldest first.
    fn events(&self) -> Vec<(String, String, Value)> {
        self.runtime
            .block_on(self.bus.recent_events(10_000))
            .unwrap()
            .into_iter()
            .map(|r| (r.event.kind.to_string(), r.event.worker, r.event.details))
            .collect()
    }

    /// Registered workers that are alive: `(id, role, pid)`.
    fn live_workers(&self) -> Vec<(String, String, u32)> {
        self.runtime
            .block_on(self.bus.list_workers())
            .unwrap()
            .into_iter()
            .filter(|w| w.alive)
            .filter_map(|w| w.info.map(|i| (w.id, i.role, i.pid)))
            .collect()
    }

    fn keys(&self) -> Keys {
        Keys::new(self.namespace.clone())
    }

    /// The pid in the coordinator lease (`<token> <host>:<pid>:<random>`), if held.
    fn lease_holder(&self) -> Option<u32> {
        let key = self.keys().lease(&self.node, &self.session);
        let value: Option<String> = self.redis.conn().get(key).unwrap();
        value.and_then(|v| v.split(':').nth(1).and_then(|p| p.parse().ok()))
    }

    /// What the panes show, for failure messages.
    fn diagnostics(&self) -> String {
        let target = format!("={}", self.session);
        let Ok(out) = self
            .tmux
            .cmd()
            .args(["list-panes", "-s", "-t", &target, "-F", "#{pane_id}"])
            .output()
        else {
            return String::new();
        };
        let mut text = String::new();
        for pane in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(screen) = self
                .tmux
                .cmd()
                .args(["capture-pane", "-p", "-S", "-40", "-t", pane])
                .output()
            {
                text.push_str(&format!(
                    "--- pane {pane} ---\n{}\n",
                    String::from_utf8_lossy(&screen.stdout).trim_end()
                ));
            }
        }
        text
    }

    /// `workflow-setup`, then waits until the five role workers run registered in their
    /// panes and the coordinator window's `panebus attach` holds the lease and manages them.
    /// Returns the coordinator's pid.
    fn setup(&self) -> u32 {
        let socket = self.socket();
        let output = self.run_ok(&[
            "workflow-setup",
            "--session",
            &self.session,
            "--no-attach",
            "-S",
            &socket,
        ]);
        let report = String::from_utf8_lossy(&output.stderr);
        assert!(
            report.contains(&format!("created tmux session {}", self.session)),
            "{report}"
        );

        let panes = self.workflow_panes();
        let roles: Vec<&str> = panes.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(roles, ROLES);
        let deadline = Instant::now() + WAIT;
        loop {
            let live = self.live_workers();
            // Each worker is its pane's own process, registered under its role.
            let all = panes.iter().all(|(pane, role)| {
                live.iter().any(|(id, r, pid)| {
                    *id == self.worker_id(pane) && r == role && *pid == self.pane_pid(pane)
                })
            });
            if all {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "role workers did not register: {live:?}\n{}",
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(200));
        }

        let coordinator_pane = self.tmux(&[
            "list-panes",
            "-t",
            &format!("={}:coordinator", self.session),
            "-F",
            "#{pane_id}",
        ]);
        let coordinator_pid = self.pane_pid(&coordinator_pane);
        let cmdline = std::fs::read(format!("/proc/{coordinator_pid}/cmdline")).unwrap();
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        assert_eq!(argv[1..], ["attach".to_string(), self.session.clone()]);
        let deadline = Instant::now() + WAIT;
        loop {
            // Managing a pane means hooking its death.
            let managed = panes.iter().all(|(pane, _)| {
                self.tmux(&["show-hooks", "-p", "-t", pane])
                    .contains("pane-died")
            });
            // And recording how to respawn each (what `panebus restart` looks up).
            let recorded = panes.iter().all(|(pane, _)| {
                let key = self.keys().managed(&self.worker_id(pane));
                self.redis.conn().exists::<_, bool>(key).unwrap()
            });
            if self.lease_holder() == Some(coordinator_pid) && managed && recorded {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the coordinator (pid {coordinator_pid}) does not hold the lease ({:?}) and manage the panes\n{}",
                self.lease_holder(),
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        coordinator_pid
    }

    /// `workflow-teardown`: the session is gone, its workers deregistered, the user's
    /// session untouched.
    fn teardown(&self) {
        let socket = self.socket();
        let output = self.run_ok(&["workflow-teardown", &self.session, "-S", &socket]);
        let report = String::from_utf8_lossy(&output.stderr);
        assert!(report.contains("deregistered 5 worker(s)"), "{report}");
        let sessions = self.tmux(&["list-sessions", "-F", "#{session_name}"]);
        assert_eq!(sessions, "mine");
        let ids = self.runtime.block_on(self.bus.worker_ids()).unwrap();
        assert!(ids.is_empty(), "still registered: {ids:?}");
    }
}

/// `phases[i]` of a record, by name.
fn phase<'a>(record: &'a Value, name: &str) -> &'a Value {
    record["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase"] == name)
        .unwrap_or_else(|| panic!("no phase {name} in {record:#}"))
}

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {value:#}"))
}

/// Each phase ran on the pane of its role, in order, each prompt holding the previous
/// phase's output.
fn assert_chained(rig: &Rig, record: &Value, task: &str) {
    assert_eq!(record["state"], "completed", "{record:#}");
    let mut previous: Option<(&str, u64)> = None;
    for (name, role) in PHASES {
        let p = phase(record, name);
        assert_eq!(p["state"], "completed", "{name}: {p:#}");
        let worker = rig.worker_id(&rig.pane_of_role(role));
        assert_eq!(p["worker"], worker.as_str(), "{name} ran on the {role}");
        let prompt = text(p, "prompt");
        assert!(prompt.contains(task), "{name} prompt names the task");
        // The fake agent echoes its prompt, so the output proves this prompt reached it.
        assert!(text(p, "output").contains(prompt), "{name} output");
        let started = p["started_ms"].as_u64().unwrap();
        if let Some((output, finished)) = previous {
            assert!(
                prompt.contains(output),
                "{name} prompt holds the previous output"
            );
            assert!(
                started >= finished,
                "{name} started before the previous ended"
            );
        }
        previous = Some((text(p, "output"), p["finished_ms"].as_u64().unwrap()));
    }
}

#[test]
fn setup_ask_wait_and_no_wait_then_teardown() {
    let agent = format!("{} -p", fake_agent("answer.sh").display());
    let rig = Rig::new("ask", agent);
    rig.setup();
    let orchestrator = rig.worker_id(&rig.pane_of_role("orchestrator"));
    let project = rig.dir.path().join("project");
    std::fs::create_dir(&project).unwrap();
    let project = std::fs::canonicalize(project).unwrap();
    let project = project.to_str().unwrap();

    // `ask --wait`: progress on stderr, the work phase's answer on stdout.
    let output = rig.run_ok(&[
        "ask",
        "--wait",
        "--timeout",
        "300",
        "-d",
        project,
        "Fix",
        "the",
        "failing",
        "tests",
    ]);
    let progress = String::from_utf8(output.stderr).unwrap();
    let id = progress
        .split_whitespace()
        .nth(1)
        .expect("progress starts with `workflow <id>`")
        .to_string();
    assert!(
        progress.contains(&format!("workflow {id} completed in ")),
        "{progress}"
    );
    let record = rig.record(&id);
    assert_chained(&rig, &record, "Fix the failing tests");
    assert_eq!(
        record["driver"],
        orchestrator.as_str(),
        "the orchestrator drove it"
    );
    assert_eq!(record["task"], "Fix the failing tests");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        text(phase(&record, "work"), "output")
    );
    let work_output = text(phase(&record, "work"), "output");
    assert!(
        work_output.contains(&format!("cwd: {project}\n")),
        "agents ran in -d"
    );
    assert!(work_output.trim_end().ends_with("COMPOUND: yes"));
    let kinds: Vec<String> = rig
        .events()
        .into_iter()
        .filter(|(_, _, d)| d["workflow_id"] == id.as_str())
        .map(|(k, _, _)| k)
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "workflow_phase_completed")
            .count(),
        4,
        "{kinds:?}"
    );
    assert_eq!(kinds.last().map(String::as_str), Some("workflow_completed"));

    // `ask --no-wait`: prints the id and returns; the orchestrator pane runs the phases.
    let output = rig.run_ok(&[
        "ask",
        "--no-wait",
        "-d",
        project,
        "Refactor",
        "the",
        "module",
    ]);
    let id = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert_eq!(id.len(), 26, "a ULID: {id:?}");
    let record = rig.wait_finished(&id);
    assert_chained(&rig, &record, "Refactor the module");
    assert_eq!(record["driver"], orchestrator.as_str());
    let status = rig.run_ok(&["workflow-status", &id]);
    let status = String::from_utf8(status.stdout).unwrap();
    assert!(
        status.contains(&format!(
            "workflow {id}  completed  (driver: {orchestrator})"
        )),
        "{status}"
    );
    // The driving happened in the orchestrator's pane, where a user watching sees it.
    let orchestrator_pane = rig.pane_of_role("orchestrator");
    let screen = rig.tmux(&["capture-pane", "-p", "-S", "-", "-t", &orchestrator_pane]);
    assert!(
        screen.contains(&id),
        "orchestrator pane shows the workflow:\n{screen}"
    );

    rig.teardown();
}

/// Pids of the processes whose parent is `pid`, with their command lines.
fn children(pid: u32) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let ppid = rest.split(' ').nth(1).and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push((child, String::from_utf8_lossy(&cmdline).replace('\0', " ")));
        }
    }
    found
}

fn read_or_empty(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn a_phase_worker_killed_mid_phase_is_respawned_by_the_coordinator_and_only_its_phase_reruns() {
    // Every agent answers after 3 s, so the work phase's agent is caught running.
    let agent = format!(
        "env FAKE_AGENT_DELAY=3 {} -p",
        fake_agent("slow.sh").display()
    );
    let rig = Rig::new("kill", agent);
    let coordinator_pid = rig.setup();
    let work_pane = rig.pane_of_role("worker");
    let work_worker = rig.worker_id(&work_pane);

    let stdout = rig.dir.path().join("ask.out");
    let stderr = rig.dir.path().join("ask.err");
    let mut ask = ChildGuard(
        rig.panebus(&["ask", "--wait", "--timeout", "300", "Fix", "the", "login"])
            .current_dir(rig.dir.path())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap(),
    );

    // Wait until the work phase's agent runs under its worker, then SIGKILL the worker.
    let deadline = Instant::now() + WAIT;
    let (id, old_pid) = loop {
        let progress = read_or_empty(&stderr);
        if let Some(id) = progress.split_whitespace().nth(1) {
            let record = rig.record(id);
            let work = phase(&record, "work");
            let pid = rig.pane_pid(&work_pane);
            if work["state"] == "running"
                && children(pid).iter().any(|(_, cmd)| cmd.contains("slow.sh"))
            {
                break (id.to_string(), pid);
            }
        }
        assert!(
            Instant::now() < deadline,
            "the work phase's agent did not start: {progress}\n{}",
            rig.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let before = rig.record(&id);
    assert_eq!(phase(&before, "review")["state"], "completed");
    assert_eq!(phase(&before, "plan")["state"], "completed");
    // SAFETY: kill(2) on the worker process this test's tmux server started.
    unsafe {
        libc::kill(old_pid as libc::pid_t, libc::SIGKILL);
    }

    // The coordinator respawns the pane in place: same pane id, a new worker process.
    let deadline = Instant::now() + WAIT;
    let respawn = loop {
        let found = rig
            .events()
            .into_iter()
            .find(|(k, w, _)| k == "pane_respawned" && *w == work_worker);
        if let Some((_, _, details)) = found {
            break details;
        }
        assert!(
            Instant::now() < deadline,
            "no pane_respawned for {work_worker}\n{}",
            rig.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(respawn["pane"], work_pane.as_str());
    assert_eq!(respawn["old_pid"], old_pid);
    assert_eq!(respawn["manual"], false);
    assert_eq!(
        respawn["requeued"], 1,
        "the phase's command went back to the queue"
    );
    let new_pid = respawn["new_pid"].as_u64().unwrap() as u32;
    assert_ne!(new_pid, old_pid);
    assert_eq!(rig.pane_of_role("worker"), work_pane, "same pane");
    assert_eq!(
        rig.lease_holder(),
        Some(coordinator_pid),
        "respawned by the coordinator"
    );
    let exited = rig
        .events()
        .into_iter()
        .any(|(k, w, d)| k == "pane_exited" && w == work_worker && d["signal"] == 9);
    assert!(exited, "pane_exited with signal 9");

    // `ask --wait` sees the workflow through.
    let deadline = Instant::now() + WAIT * 2;
    let status = loop {
        if let Some(status) = ask.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "ask did not finish: {}\n{}",
            read_or_empty(&stderr),
            rig.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success(), "ask failed: {}", read_or_empty(&stderr));
    let after = rig.record(&id);
    assert_chained(&rig, &after, "Fix the login");
    assert_eq!(
        read_or_empty(&stdout),
        text(phase(&after, "work"), "output")
    );

    // The work phase re-ran: same command, redelivered once, to the respawned worker.
    let work = phase(&after, "work");
    assert_eq!(work["command_id"], phase(&before, "work")["command_id"]);
    assert_eq!(work["attempt"], 2, "{work:#}");
    let live = rig.live_workers();
    assert!(
        live.iter()
            .any(|(w, r, pid)| *w == work_worker && r == "worker" && *pid == new_pid),
        "the respawned worker registered: {live:?}"
    );
    // Earlier phases were not re-run: same commands, first attempts, same outputs.
    for name in ["review", "plan"] {
        let (was, now) = (phase(&before, name), phase(&after, name));
        for field in ["command_id", "output", "finished_ms"] {
            assert_eq!(now[field], was[field], "{name} {field}");
        }
        assert_eq!(now["attempt"], 1, "{name}");
    }
    let starts: Vec<String> = rig
        .events()
        .into_iter()
        .filter(|(k, _, d)| k == "workflow_phase_started" && d["workflow_id"] == id.as_str())
        .map(|(_, _, d)| d["phase"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(starts, ["review", "plan", "work", "compound"]);

    rig.teardown();
}

#[test]
fn a_pane_tagged_before_its_worker_registers_still_gets_its_respawn_record() {
    // `workflow-setup` tags panes before their workers run, and the coordinator may list a
    // pane before its worker registers: the record is then written once it registers.
    let rig = Rig::new("late", format!("{} -p", fake_agent("answer.sh").display()));
    let bin = env!("CARGO_BIN_EXE_panebus");
    let late_worker = format!("sleep 3; exec {bin} worker --role late");
    let mut new_window = vec!["new-window", "-d", "-t", "=mine:", "-P", "-F", "#{pane_id}"];
    let env: Vec<String> = [
        ("PANEBUS_REDIS_URL", rig.redis.url()),
        ("PANEBUS_NAMESPACE", rig.namespace.clone()),
        ("PANEBUS_NODE", rig.node.clone()),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={v}"))
    .collect();
    for e in &env {
        new_window.extend(["-e", e.as_str()]);
    }
    let mut worker_window = new_window.clone();
    worker_window.extend(["--", "sh", "-c", &late_worker]);
    let pane = rig.tmux(&worker_window);
    let worker = rig.worker_id(&pane);
    rig.tmux(&["set-option", "-p", "-t", &pane, "@panebus_worker", &worker]);
    let mut coordinator_window = new_window;
    coordinator_window.extend(["--", bin, "attach", "mine"]);
    rig.tmux(&coordinator_window);

    let key = rig.keys().managed(&worker);
    let deadline = Instant::now() + WAIT;
    while !rig.redis.conn().exists::<_, bool>(&key).unwrap() {
        assert!(
            Instant::now() < deadline,
            "no respawn record for {worker}; live workers: {:?}",
            rig.live_workers()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let argv: String = rig.redis.conn().hget(&key, "argv").unwrap();
    let argv: Vec<String> = serde_json::from_str(&argv).unwrap();
    assert_eq!(argv[1..], ["worker", "--role", "late"]);
    let session: String = rig.redis.conn().hget(&key, "session").unwrap();
    assert_eq!(session, "mine");
}
