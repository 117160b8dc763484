//! Load figures for BENCHMARKS.md "Load": many `panebus worker` processes (standalone, no
//! tmux) heartbeating every second against one private redis-server, then a dispatch storm.
//!
//! Measures, with the `panebus` binary given in `PANEBUS_BIN` (default
//! `target/release/panebus`):
//! - Redis commands per second caused by idle workers (heartbeats, plus the BLMOVE each
//!   idle worker re-issues every 5 s), from `INFO commandstats` deltas, and Redis's CPU;
//! - CLI latency idle and under the storm: `panebus dispatch W ping --wait` (p50/p99),
//!   `panebus status` and `panebus panes` (wall time of the whole process);
//! - registry latency (`Bus::list_workers`, what the coordinator reads on every tick);
//! - the storm itself: `panebus broadcast ping --wait` to every worker plus in-process
//!   dispatchers queueing pings to random workers as fast as Redis takes them.
//!
//! ```sh
//! cargo build --release --bin panebus --example load
//! target/release/examples/load                          # 200 workers, 20 s, 20000 commands
//! PB_LOAD_WORKERS=50 PB_LOAD_SECONDS=10 PB_LOAD_STORM=5000 target/release/examples/load
//! ```
//! `scripts/bench/load.sh` does both.

use std::collections::HashMap;
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use panebus::bus::Bus;
use panebus::config::Config;
use panebus::schema::Command;
use rand::Rng;
use serde_json::json;

#[path = "support/private_redis.rs"]
mod private_redis;
use private_redis::PrivateRedis;

const NS: &str = "load";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A child process killed on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn env_for(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PANEBUS_REDIS_URL", url.to_string()),
        ("PANEBUS_NAMESPACE", NS.to_string()),
        ("PANEBUS_NODE", "load".to_string()),
        ("PANEBUS_HEARTBEAT_INTERVAL", "1s".to_string()),
        ("PANEBUS_HEARTBEAT_TTL", "10".to_string()),
        ("PANEBUS_MAX_QUEUE_DEPTH", "1000000".to_string()),
        ("PANEBUS_LOG_LEVEL", "error".to_string()),
    ]
}

fn panebus(bin: &str, url: &str, args: &[&str]) -> Process {
    let mut cmd = Process::new(bin);
    cmd.args(args)
        .env_remove("TMUX")
        .env_remove("TMUX_PANE")
        .envs(env_for(url))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Wall time of one CLI run (panics if it fails).
fn cli(bin: &str, url: &str, args: &[&str]) -> Duration {
    let started = Instant::now();
    let out = panebus(bin, url, args).output().expect("run panebus");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "panebus {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `p50 / p99 / max` of a sample, in ms.
fn spread(mut sample: Vec<Duration>) -> String {
    sample.sort();
    let at = |p: f64| ms(sample[((sample.len() as f64 - 1.0) * p).round() as usize]);
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n={})",
        at(0.5),
        at(0.99),
        at(1.0),
        sample.len()
    )
}

fn command_stats(conn: &mut redis::Connection) -> (HashMap<String, u64>, f64) {
    let info: String = redis::cmd("INFO").arg("all").query(conn).unwrap();
    let mut calls = HashMap::new();
    let mut cpu = 0.0;
    for line in info.lines() {
        if let Some(rest) = line.strip_prefix("cmdstat_") {
            let (name, fields) = rest.split_once(':').unwrap();
            let n = fields
                .split(',')
                .find_map(|f| f.strip_prefix("calls="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            calls.insert(name.to_string(), n);
        }
        for key in ["used_cpu_sys:", "used_cpu_user:"] {
            if let Some(v) = line.strip_prefix(key) {
                cpu += v.trim().parse::<f64>().unwrap_or(0.0);
            }
        }
    }
    (calls, cpu)
}

/// CLI and registry latency: `rounds` sequential `dispatch --wait` pings to random workers,
/// a few `status` and `panes` runs, and `rounds` in-process `list_workers` calls.
async fn latencies(bin: &str, url: &str, bus: &Bus, workers: &[String], rounds: usize) -> String {
    let mut dispatch = Vec::new();
    let mut registry = Vec::new();
    for _ in 0..rounds {
        let w = &workers[rand::thread_rng().gen_range(0..workers.len())];
        let (bin, url, w) = (bin.to_string(), url.to_string(), w.clone());
        dispatch.push(
            tokio::task::spawn_blocking(move || {
                cli(
                    &bin,
                    &url,
                    &["dispatch", &w, "ping", "--wait", "--wait-timeout", "60"],
                )
            })
            .await
            .unwrap(),
        );
        let started = Instant::now();
        let listed = bus.list_workers().await.unwrap();
        registry.push(started.elapsed());
        assert_eq!(listed.len(), workers.len());
    }
    let mut status = Vec::new();
    let mut panes = Vec::new();
    for _ in 0..5 {
        let (b, u) = (bin.to_string(), url.to_string());
        status.push(
            tokio::task::spawn_blocking(move || cli(&b, &u, &["status"]))
                .await
                .unwrap(),
        );
        let (b, u) = (bin.to_string(), url.to_string());
        panes.push(
            tokio::task::spawn_blocking(move || cli(&b, &u, &["panes"]))
                .await
                .unwrap(),
        );
    }
    format!(
        "  dispatch --wait ping: {}\n  status: {}\n  panes: {}\n  registry (list_workers, in-process): {}",
        spread(dispatch),
        spread(status),
        spread(panes),
        spread(registry)
    )
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::main]
async fn main() {
    let n_workers = env_number("PB_LOAD_WORKERS", 200) as usize;
    let seconds = env_number("PB_LOAD_SECONDS", 20);
    let storm = env_number("PB_LOAD_STORM", 20_000) as usize;
    let bin = std::env::var("PANEBUS_BIN").unwrap_or_else(|_| "target/release/panebus".into());
    assert!(
        std::path::Path::new(&bin).exists(),
        "{bin} not found: build it (cargo build --release --bin panebus) or set PANEBUS_BIN"
    );
    let redis = PrivateRedis::start(&["--maxclients", "10000"]);
    let url = redis.url.clone();
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut config = Config::from_lookup(|_| None).unwrap();
    config.redis_url = url.clone();
    config.namespace = NS.into();
    config.max_queue_depth = 1_000_000;
    let bus = Bus::connect(&config).await.unwrap();

    println!(
        "load: {n_workers} panebus worker processes, heartbeat every 1 s; load before {}",
        loadavg()
    );
    let started = Instant::now();
    let mut guards = Vec::new();
    for _ in 0..n_workers {
        let child = panebus(&bin, &url, &["worker", "--role", "load"])
            .stderr(Stdio::null())
            .spawn()
            .expect("start panebus worker");
        guards.push(Guard(child));
    }
    let workers: Vec<String> = loop {
        let ids = bus.worker_ids().await.unwrap();
        if ids.len() == n_workers {
            break ids;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {} of {n_workers} workers registered",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "registered: all {n_workers} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Idle: what the workers alone cost Redis.
    let (before, cpu_before) = command_stats(&mut conn);
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (after, cpu_after) = command_stats(&mut conn);
    let elapsed = window.elapsed().as_secs_f64();
    let rate = |name: &str| {
        (after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0)) as f64
            / elapsed
    };
    let total: f64 = after.keys().map(|k| rate(k)).sum();
    let mut top: Vec<(String, f64)> = after.keys().map(|k| (k.clone(), rate(k))).collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top: Vec<String> = top
        .iter()
        .take(6)
        .filter(|(_, r)| *r > 0.0)
        .map(|(k, r)| format!("{k} {r:.1}/s"))
        .collect();
    println!(
        "idle, {seconds} s window: Redis {total:.1} commands/s ({}), Redis CPU {:.1}% of one core; load {}",
        top.join(", "),
        (cpu_after - cpu_before) / elapsed * 100.0,
        loadavg()
    );
    println!(
        "idle latency (load {}):\n{}",
        loadavg(),
        latencies(&bin, &url, &bus, &workers, 50).await
    );

    // The storm: a broadcast to every worker, then dispatchers queueing as fast as they can.
    let storm_started = Instant::now();
    let broadcast = {
        let (b, u) = (bin.clone(), url.clone());
        tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let out = panebus(
                &b,
                &u,
                &["broadcast", "ping", "--wait", "--wait-timeout", "120"],
            )
            .output()
            .unwrap();
            assert!(
                out.status.success(),
                "broadcast failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            t.elapsed()
        })
    };
    let dispatchers = 8;
    let mut tasks = Vec::new();
    for d in 0..dispatchers {
        let config = config.clone();
        let workers = workers.clone();
        tasks.push(tokio::spawn(async move {
            let bus = Bus::connect(&config).await.unwrap();
            let mut ids = Vec::new();
            for _ in (d..storm).step_by(dispatchers) {
                let w = &workers[rand::thread_rng().gen_range(0..workers.len())];
                let cmd = Command::new("ping", json!({}), "load");
                bus.enqueue(w, &cmd, false).await.unwrap();
                ids.push(cmd.id);
            }
            ids
        }));
    }
    let under_storm = latencies(&bin, &url, &bus, &workers, 50).await;
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    let queued_in = storm_started.elapsed();
    let broadcast_took = broadcast.await.unwrap();
    // Every stored result.
    loop {
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("EXISTS").arg(format!("{NS}:result:{id}"));
        }
        let found: Vec<u8> = pipe.query(&mut conn).unwrap();
        if found.iter().all(|&f| f == 1) {
            break;
        }
        assert!(
            storm_started.elapsed() < Duration::from_secs(600),
            "storm did not finish"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let storm_took = storm_started.elapsed();
    println!(
        "storm: {} pings from {dispatchers} dispatchers queued in {:.1} s, all results stored after {:.1} s \
         ({:.0} commands/s end to end); broadcast ping --wait to {n_workers} workers took {:.1} s; load {}",
        ids.len(),
        queued_in.as_secs_f64(),
        storm_took.as_secs_f64(),
        ids.len() as f64 / storm_took.as_secs_f64(),
        broadcast_took.as_secs_f64(),
        loadavg()
    );
    println!("latency under the storm:\n{under_storm}");
    for g in &guards {
        // SAFETY: SIGTERM to a worker this program started; it deregisters and exits.
        unsafe {
            libc::kill(g.0.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
}
