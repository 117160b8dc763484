//! Single faults against a whole installation (tests/support/chaos.rs): Redis down for a
//! long time, Redis restarted without persistence, the tmux server killed under the
//! coordinator, and a full disk under the managed Redis of `panebus up`.
//!
//! Kept out of it because tests/coordinator.rs covers them already: a short Redis restart
//! without persistence under the coordinator (`the_coordinator_rides_out_a_redis_restart`)
//! and `--on-tmux-exit wait` attaching again when the session is back
//! (`with_on_tmux_exit_wait_the_coordinator_attaches_again`).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use redis::Commands;
use support::chaos::{bin, Installation, NODE, ROLE, SESSION};
use support::process::{pid_alive, signal_pid, ChildGuard};
use support::wait::wait_for;
use support::TmuxServer;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// Runs `cmd`, returning its output and how long it took.
fn timed(mut cmd: Command) -> (Output, Duration) {
    let started = Instant::now();
    let out = cmd.stdin(Stdio::null()).output().expect("run panebus");
    (out, started.elapsed())
}

fn leads(inst: &Installation) -> bool {
    inst.conn()
        .exists::<_, bool>(inst.keys.lease(NODE, SESSION))
        .unwrap_or(false)
}

/// Waits up to 30 s until the coordinator leads again, then until it manages every pane.
fn wait_leads_and_manages(inst: &Installation) {
    wait_for(
        "the coordinator leads again",
        Duration::from_secs(30),
        || leads(inst),
    );
    for pane in &inst.panes {
        inst.wait_managed(pane);
    }
}

/// Dispatches a ping to every worker pane and asserts each answers within 20 s.
fn every_worker_answers(inst: &Installation) {
    for pane in &inst.panes {
        let out = inst
            .panebus(&["dispatch", pane, "ping", "--wait", "--wait-timeout", "20"])
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    }
}

fn pane_pids(inst: &Installation) -> Vec<u32> {
    inst.panes
        .iter()
        .map(|p| inst.pane_state(p).expect("pane exists").1)
        .collect()
}

/// Redis gone for 30 s (`PB_FAULT_OUTAGE_SECS`): the CLI fails fast with exit 3 and a
/// message; workers and the coordinator keep running, reconnect and register again; no
/// healthy worker is taken for hung when Redis is back, and every worker answers.
#[test]
fn redis_down_for_30_seconds_is_ridden_out_and_the_cli_fails_fast() {
    let outage = Duration::from_secs(
        std::env::var("PB_FAULT_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30),
    );
    let mut inst = Installation::start(2, &[]);
    let pids = pane_pids(&inst);
    let url = inst.redis.url();
    inst.redis.kill();
    let down = Instant::now();

    let mut slowest = Duration::ZERO;
    for args in [
        vec!["status"],
        vec!["panes"],
        vec!["dispatch", inst.panes[0].as_str(), "ping", "--wait"],
        vec!["broadcast", "ping"],
    ] {
        let (out, took) = timed(inst.panebus(&args));
        let stderr = text(&out.stderr);
        assert_eq!(code(&out), 3, "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("cannot reach Redis at {url}"))
                && stderr.contains("redis-server"),
            "{args:?}: {stderr}"
        );
        // Not a performance figure: a bound only a hang would exceed.
        assert!(took < Duration::from_secs(10), "{args:?} took {took:?}");
        slowest = slowest.max(took);
    }
    println!("with Redis down, the slowest CLI command failed after {slowest:?}");

    std::thread::sleep(outage.saturating_sub(down.elapsed()));
    let mut coordinator = inst.coordinator.take().expect("coordinator");
    assert!(
        coordinator.0.try_wait().unwrap().is_none(),
        "the coordinator exited while Redis was down:\n{}",
        inst.log("coordinator.log")
    );
    inst.coordinator = Some(coordinator);
    for pid in &pids {
        assert!(pid_alive(*pid), "a worker exited while Redis was down");
    }

    inst.redis.restart();
    wait_leads_and_manages(&inst);
    // Give a coordinator that would take the silence for hung workers time to act.
    std::thread::sleep(Duration::from_secs(5));
    every_worker_answers(&inst);
    assert_eq!(pane_pids(&inst), pids, "no worker was killed or respawned");
    assert_eq!(
        inst.count("pane_respawned"),
        0,
        "{}",
        inst.log("coordinator.log")
    );
}

/// The same outage under `panebus watchdog` instead of a coordinator: Redis gone for longer
/// than the heartbeat TTL and the grace together, then back on its AOF, with every
/// registration and no heartbeat. The watchdog gives the workers a heartbeat grace counted
/// from when Redis answered again, so it kills none of them; a worker that really hangs
/// afterwards is still respawned.
#[test]
fn after_a_redis_outage_the_watchdog_takes_no_healthy_worker_for_hung() {
    let mut inst = Installation::new(&[]);
    // Under `sh -c`: tmux sends SIGCONT to a pane's own process when it stops, so only a
    // worker below the pane's process can be made to hang with SIGSTOP (below).
    let worker = format!("{} worker --role {ROLE}; true", bin());
    for _ in 0..2 {
        let pane = inst.start_pane(&["sh", "-c", &worker]);
        inst.panes.push(pane);
    }
    let worker_pid = |inst: &Installation, pane: &str| -> Option<u32> {
        let shell = inst.pane_state(pane).filter(|(dead, _)| !dead)?.1;
        let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
            .unwrap_or_default();
        let child: u32 = children.split_whitespace().next()?.parse().ok()?;
        (inst.registered_pid(pane) == Some(child)).then_some(child)
    };
    let registered = |inst: &Installation| inst.panes.iter().all(|p| worker_pid(inst, p).is_some());
    wait_for("workers registered", Duration::from_secs(30), || {
        registered(&inst)
    });
    let pids = pane_pids(&inst);
    let socket = inst.socket();
    let log = std::fs::File::create(inst.log_path("watchdog.log")).unwrap();
    let _watchdog = ChildGuard(
        inst.panebus(&[
            "watchdog",
            "-S",
            &socket,
            "--check-interval",
            "200ms",
            "--heartbeat-grace",
            "3s",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap(),
    );
    let watchdog_leads = |inst: &Installation| {
        inst.conn()
            .exists::<_, bool>(inst.keys.lease(NODE, ".watchdog"))
            .unwrap_or(false)
    };
    wait_for("the watchdog leads", Duration::from_secs(30), || {
        watchdog_leads(&inst)
    });

    // Heartbeat TTL (3 s) and grace (3 s) both run out while Redis is away.
    inst.redis.terminate();
    std::thread::sleep(Duration::from_secs(8));
    inst.redis.restart();
    wait_for("the watchdog leads again", Duration::from_secs(30), || {
        watchdog_leads(&inst)
    });
    // Time for a watchdog that took the silence for hung workers to act.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        pane_pids(&inst),
        pids,
        "no healthy worker was killed or respawned:\n{}",
        inst.log("watchdog.log")
    );
    assert_eq!(inst.count("pane_respawned"), 0);
    wait_for("workers heartbeat again", Duration::from_secs(30), || {
        registered(&inst)
    });

    // It still respawns a worker that stops beating.
    let hung = worker_pid(&inst, &inst.panes[0]).unwrap();
    signal_pid(hung, libc::SIGSTOP);
    let deadline = Instant::now() + Duration::from_secs(30);
    // The respawned pane runs the worker's own argv (what it registered), without `sh -c`.
    let respawned = |inst: &Installation| {
        let pane = &inst.panes[0];
        inst.pane_state(pane).is_some_and(|(dead, _)| !dead)
            && inst
                .registered_pid(pane)
                .is_some_and(|pid| pid != hung && pid_alive(pid))
    };
    while !respawned(&inst) {
        assert!(
            Instant::now() < deadline,
            "the hung worker was not respawned; events {:?}\nwatchdog log:\n{}",
            inst.events().iter().map(|e| &e.kind).collect::<Vec<_>>(),
            inst.log("watchdog.log")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for("the hung worker killed", Duration::from_secs(10), || {
        !pid_alive(hung)
    });
    assert_eq!(pane_pids(&inst)[1], pids[1], "only the hung worker");
    assert_eq!(inst.count("pane_respawned"), 1);
}

/// Redis restarted with no persistence: every queued command and every stored result is
/// gone (the documented consequence), a command running at that moment still reports its
/// result, and the workers register again and answer.
#[test]
fn a_redis_restart_without_persistence_loses_the_queues_and_workers_register_again() {
    let mut inst = Installation::without_persistence(&[]);
    inst.start_coordinator(&[]);
    let slow = inst.start_pane(&[bin(), "worker", "--role", ROLE, "--handler", "slow=sleep 3"]);
    let fast = inst.start_worker();
    inst.panes = vec![slow.clone(), fast.clone()];
    for pane in inst.panes.clone() {
        inst.wait_managed(&pane);
    }
    let pids = pane_pids(&inst);

    let out = inst
        .panebus(&["dispatch", &fast, "ping", "--wait"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let json = |args: &[&str]| -> String {
        let out = inst.panebus(args).output().unwrap();
        assert_eq!(code(&out), 0, "{args:?}: {}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };
    let ping_id = json(&["dispatch", &fast, "ping"]);
    wait_for("ping result stored", Duration::from_secs(20), || {
        inst.conn()
            .exists::<_, bool>(inst.keys.result(&ping_id))
            .unwrap()
    });
    let running = json(&["dispatch", &slow, "slow"]);
    let queued: Vec<String> = (0..2).map(|_| json(&["dispatch", &slow, "slow"])).collect();
    let slow_id = Installation::worker_id(&slow);
    wait_for(
        "the first slow command taken",
        Duration::from_secs(20),
        || {
            inst.conn()
                .llen::<_, usize>(inst.keys.processing(&slow_id))
                .unwrap()
                == 1
        },
    );

    inst.redis.restart();
    assert!(!inst
        .conn()
        .exists::<_, bool>(inst.keys.result(&ping_id))
        .unwrap());
    assert_eq!(
        inst.conn()
            .llen::<_, usize>(inst.keys.queue(&slow_id))
            .unwrap(),
        0
    );

    wait_leads_and_manages(&inst);
    // The command that was running finishes and stores its result on the new Redis.
    wait_for(
        "the running command's result",
        Duration::from_secs(20),
        || {
            inst.conn()
                .exists::<_, bool>(inst.keys.result(&running))
                .unwrap()
        },
    );
    std::thread::sleep(Duration::from_secs(4));
    for id in &queued {
        assert!(
            !inst.conn().exists::<_, bool>(inst.keys.result(id)).unwrap(),
            "a command queued before the restart ran"
        );
    }
    every_worker_answers(&inst);
    assert_eq!(pane_pids(&inst), pids, "no worker was killed or respawned");
}

/// `--on-tmux-exit exit` (the default): the tmux server killed under the coordinator ends it
/// with status 1 and a message that says what to do, promptly, and records why.
#[test]
fn the_coordinator_exits_1_with_a_message_when_the_tmux_server_is_killed() {
    let mut inst = Installation::start(1, &[]);
    inst.tmux.run(&["kill-server"]);
    let killed = Instant::now();
    let mut coordinator = inst.coordinator.take().unwrap();
    let status = coordinator
        .wait_exit(Duration::from_secs(20))
        .expect("the coordinator exits");
    assert_eq!(status.code(), Some(1), "{}", inst.log("coordinator.log"));
    println!(
        "coordinator exited {:?} after the tmux server was killed",
        killed.elapsed()
    );
    let log = inst.log("coordinator.log");
    assert!(log.contains("is gone"), "{log}");
    assert!(log.contains("--on-tmux-exit wait"), "{log}");
    let stopped: Vec<_> = inst
        .events()
        .into_iter()
        .filter(|e| e.kind == "coordinator_stopped")
        .collect();
    assert_eq!(stopped.len(), 1);
    assert!(
        stopped[0].details["reason"]
            .as_str()
            .is_some_and(|r| r.contains("is gone")),
        "{:?}",
        stopped[0]
    );
}

/// A tmpfs mounted on a directory for the life of the test (we run as root in CI).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .ok()?;
        out.status.success().then(|| Tmpfs(dir.to_path_buf()))
    }

    /// Writes a file until the file system is full.
    fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.0.join("filler")).unwrap();
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let small = [0u8; 512];
        while file.write_all(&small).is_ok() {}
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The managed Redis of `panebus up` on a full disk: writes are refused, and `dispatch`
/// and `up` say so, naming the cause and what to do.
#[test]
fn a_full_disk_under_the_managed_redis_is_reported_with_its_cause() {
    let home = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&home.path().join("state"), "16m") else {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here (needs root); the disk-full test did not run"
        );
        return;
    };
    let runtime = home.path().join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let tmux = TmuxServer::start("mine");
    let socket = tmux.socket.to_str().unwrap().to_string();
    let panebus = |args: &[&str]| {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("HOME", home.path())
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("XDG_STATE_HOME", &disk.0)
            .env("PANEBUS_NODE", "fullnode")
            .stdin(Stdio::null());
        cmd
    };
    // `up` with a managed Redis and one worker, as session `session`.
    let up = |session: &str| {
        panebus(&[
            "up",
            "--no-attach",
            "--managed-redis",
            "--workers",
            "1",
            "-S",
            &socket,
            "--session",
            session,
        ])
        .output()
    };
    let out = up("full").unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let url = text(&out.stdout)
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("redis:")
                .map(|r| r.trim().split(' ').next().unwrap().to_string())
        })
        .expect("up prints the Redis URL");
    let pidfile_redis = || {
        std::fs::read_to_string(runtime.join("panebus").join("redis.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
    };
    struct KillOnDrop(Option<u32>);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            if let Some(pid) = self.0 {
                signal_pid(pid, libc::SIGKILL);
            }
        }
    }
    let _redis = KillOnDrop(pidfile_redis());

    disk.fill();
    // The AOF write that hits the full disk fails; from then on Redis refuses writes.
    let mut last = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let out = panebus(&["--redis-url", &url, "broadcast", "ping"])
            .output()
            .unwrap();
        if !out.status.success() && text(&out.stderr).contains("MISCONF") {
            last = Some(out);
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = last.expect("Redis refused writes once its disk was full");
    let stderr = text(&out.stderr);
    println!("dispatch on a full disk: exit {}: {stderr}", code(&out));
    assert!(
        stderr.contains("No space left") || stderr.contains("write"),
        "{stderr}"
    );
    assert!(stderr.contains("free disk space"), "{stderr}");

    // A second `up` reuses the managed Redis, and says why it cannot go on.
    let out = up("full2").unwrap();
    let stderr = text(&out.stderr);
    println!("up on a full disk: exit {}: {stderr}", code(&out));
    assert!(!out.status.success());
    assert!(stderr.contains("free disk space"), "{stderr}");

    let _ = panebus(&["down", "full", "-S", &socket]).output();
    drop(disk);
}
