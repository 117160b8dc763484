//! A real Redis Cluster (six redis-servers: three primaries, one replica each) reached
//! through `redis+cluster://`: `panebus worker` processes whose queues live on different
//! primaries, dispatch → worker → result round trips, the DLQ, a `CLUSTER FAILOVER` of
//! the primary holding a worker's queue while commands flow (every accepted command still
//! gets its result), and the coordinator (`panebus attach` on a private tmux server)
//! respawning a SIGKILLed worker and requeueing its command in flight; then the same
//! round trip on a cluster whose nodes speak only TLS (`rediss+cluster://`).

mod support;

use std::time::Duration;

use panebus::bus::Bus;
use panebus::config::Config;
use panebus::schema::Command;
use panebus::workflow::record::WorkflowState;
use panebus::workflow::{store, WorkflowRecord};
use serde_json::json;
use support::coordinator::attach_args;
use support::deployments::{missing_results, RedisCluster, TestCerts};
use support::panebus::{bin, Panebus};
use support::process::ChildGuard;
use support::wait::{wait_for, wait_for_async};
use support::TmuxServer;

const NAMESPACE: &str = "deploy";

/// Two panes whose workers' keys (`{testnode/%N}`) live on different primaries.
fn panes_on_two_primaries(cluster: &RedisCluster) -> (String, String) {
    let owner = |pane: &str| cluster.primary_of(&format!("{{testnode/{pane}}}"));
    let first = "%1".to_string();
    let second = (2..64)
        .map(|n| format!("%{n}"))
        .find(|pane| owner(pane) != owner(&first))
        .expect("some pane hashes to another primary");
    (first, second)
}

async fn library_bus(url: &str) -> Bus {
    let mut config = Config::from_lookup(|_| None).unwrap();
    config.redis_url = url.to_string();
    config.namespace = NAMESPACE.into();
    config.node = "testnode".into();
    Bus::connect(&config).await.expect("connect to the cluster")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_dlq_and_a_failover_on_a_cluster_lose_no_command() {
    let cluster = RedisCluster::start();
    let url = cluster.url();
    let bus = Panebus::new(&url);
    let logs = tempfile::tempdir().unwrap();
    let (pane_a, pane_b) = panes_on_two_primaries(&cluster);
    let _worker_a: ChildGuard = bus.worker(&pane_a, &logs.path().join("a.log"));
    let _worker_b: ChildGuard = bus.worker(&pane_b, &logs.path().join("b.log"));

    for pane in [&pane_a, &pane_b] {
        let result = bus.json(&["dispatch", pane, "ping", "--wait", "--wait-timeout", "30"]);
        assert_eq!(result["ok"], true, "{result}");
        assert_eq!(result["worker"], format!("testnode/{pane}"));
    }

    let out = bus.run(&["dispatch", &pane_b, "no-such-type", "--wait"]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dlq = bus.json(&["dlq", "list"]);
    let entries = dlq.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{dlq}");
    assert_eq!(entries[0]["command"]["type"], "no-such-type");
    let status = bus.json(&["status"]);
    assert_eq!(status["dlq_size"], 1, "{status}");

    // Fail over the primary holding worker A's queue while commands keep coming.
    let worker_a = format!("testnode/{pane_a}");
    let old_primary = cluster.primary_of(&format!("{{{worker_a}}}"));
    let replica = cluster.replica_of(old_primary);
    let sender = library_bus(&url).await;
    let mut accepted = Vec::new();
    let mut refused = 0;
    let mut failed_over = false;
    for i in 0..60 {
        if i == 20 {
            assert_eq!(cluster.cli(replica, &["cluster", "failover"]), "OK");
        }
        let command = Command::new("ping", json!({ "n": i }), "cluster-test");
        match sender.enqueue(&worker_a, &command, false).await {
            Ok(_) => accepted.push(command.id),
            // Refused while the slot changes hands: the sender knows, nothing is lost.
            Err(_) => refused += 1,
        }
        if i >= 20 && !failed_over {
            failed_over = cluster.cli(replica, &["role"]).starts_with("master");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for(
        "the replica to become primary",
        Duration::from_secs(30),
        || cluster.cli(replica, &["role"]).starts_with("master"),
    );
    eprintln!(
        "failover: {} enqueues accepted, {refused} refused",
        accepted.len()
    );
    assert!(refused < 10, "{refused} of 60 enqueues refused");

    let missing = missing_results(&sender, &accepted, Duration::from_secs(60)).await;
    assert!(
        missing.is_empty(),
        "{} of {} accepted commands got no result after the failover",
        missing.len(),
        accepted.len()
    );
    assert_eq!(cluster.primary_of(&format!("{{{worker_a}}}")), replica);

    // The CLI and the worker keep working against the new primary.
    let result = bus.json(&[
        "dispatch",
        &pane_a,
        "ping",
        "--wait",
        "--wait-timeout",
        "30",
    ]);
    assert_eq!(result["ok"], true, "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinator_respawns_a_killed_worker_and_requeues_on_a_cluster() {
    let cluster = RedisCluster::start();
    let url = cluster.url();
    let tmux = TmuxServer::start("work");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("slow.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ncat >/dev/null\nsleep 2\necho '{\"done\": true}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut bus = Panebus::new(&url);
    bus.set("PANEBUS_HEARTBEAT_INTERVAL", "300ms");
    bus.set("PANEBUS_HEARTBEAT_TTL", "2");
    bus.set("PANEBUS_RESPAWN_LIMIT", "3");
    bus.set("PANEBUS_RESPAWN_WINDOW", "120");
    let socket = tmux.socket.display().to_string();
    let coordinator = ChildGuard(
        bus.command(&attach_args("work", &socket))
            .env_remove("TMUX")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("coord.log")).unwrap())
            .spawn()
            .expect("start panebus attach"),
    );
    let sender = library_bus(&url).await;
    let lease = sender.keys().lease("testnode", "work");
    wait_for_async(
        "the coordinator holds its lease",
        Duration::from_secs(30),
        || async {
            let mut conn = sender.connection();
            redis::cmd("EXISTS")
                .arg(&lease)
                .query_async::<bool>(&mut conn)
                .await
                .unwrap_or(false)
        },
    )
    .await;

    let handler = format!("slow={}", script.display());
    let pane = tmux.new_window(
        "=work:",
        &bus.env,
        &[bin(), "worker", "--handler", &handler],
    );
    let wid = format!("testnode/{pane}");
    let pane_pid = || -> u32 { tmux.display(&pane, "#{pane_pid}").parse().unwrap() };
    wait_for_async(
        "the coordinator manages the worker",
        Duration::from_secs(40),
        || async {
            tmux.display(&pane, "#{@panebus_worker}") == wid
                && sender.is_registered(&wid).await.unwrap_or(false)
        },
    )
    .await;

    let command = Command::new("slow", json!({}), "cluster-test");
    sender.enqueue(&wid, &command, false).await.unwrap();
    wait_for_async("the command is taken", Duration::from_secs(30), || async {
        sender.processing_len(&wid).await.unwrap_or(0) == 1
    })
    .await;
    let first_pid = pane_pid();
    // SAFETY: killing the worker process in our private tmux pane.
    unsafe {
        libc::kill(first_pid as libc::pid_t, libc::SIGKILL);
    }
    wait_for_async(
        "the result of the requeued command",
        Duration::from_secs(60),
        || async { matches!(sender.result(&command.id).await, Ok(Some(_))) },
    )
    .await;
    let result = sender.result(&command.id).await.unwrap().unwrap();
    assert!(result.ok, "{result:?}");
    assert_eq!(result.attempt, 2, "{result:?}");
    assert_ne!(pane_pid(), first_pid, "the pane was respawned");
    let events = bus.run(&["events", "--json", "--count", "1000"]);
    let events = String::from_utf8_lossy(&events.stdout);
    assert!(events.contains("pane_respawned"), "{events}");
    drop(coordinator);
    let log = std::fs::read_to_string(dir.path().join("coord.log")).unwrap();
    assert!(
        !log.contains("CROSSSLOT") && !log.contains("crossed slots"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_line_and_the_workflow_store_work_across_primaries() {
    let cluster = RedisCluster::start();
    let url = cluster.url();
    let bus = Panebus::new(&url);
    let logs = tempfile::tempdir().unwrap();
    let (pane_a, pane_b) = panes_on_two_primaries(&cluster);
    let _worker_a = bus.worker(&pane_a, &logs.path().join("a.log"));
    let _worker_b = bus.worker(&pane_b, &logs.path().join("b.log"));
    wait_for(
        "both workers to count as healthy",
        Duration::from_secs(30),
        || bus.status_line() == "pb: 2 healthy, 0 queued",
    );

    // Records and their index go in one MULTI; listing reads a page in one pipeline.
    let library = library_bus(&url).await;
    let mut ids = Vec::new();
    for n in 0..12 {
        let mut record = WorkflowRecord::new(
            format!("01CLUSTERWORKFLOW{n:09}"),
            format!("task {n}"),
            "/".into(),
            60_000,
        );
        record.created_ms += n;
        if n % 2 == 0 {
            record.state = WorkflowState::Completed;
        }
        store::save(&library, &record)
            .await
            .expect("save on a cluster");
        ids.push(record.id);
    }
    let listed = store::list(&library, 100, false).await.expect("list");
    let listed_ids: Vec<&str> = listed.iter().map(|r| r.id.as_str()).collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed_ids, newest_first);
    let active = store::list(&library, 100, true).await.expect("list active");
    assert_eq!(active.len(), 6);
    let loaded = store::load(&library, &ids[3])
        .await
        .expect("load")
        .expect("exists");
    assert_eq!(loaded.task, "task 3");
}

#[test]
fn a_tls_cluster_round_trips_with_the_test_ca() {
    let certs = TestCerts::generate();
    let cluster = RedisCluster::start_tls(&certs);
    let url = cluster.url();
    assert!(url.starts_with("rediss+cluster://"), "{url}");
    let mut bus = Panebus::new(&url);
    bus.set("PANEBUS_REDIS_CA_CERT", &certs.ca().display().to_string());
    let logs = tempfile::tempdir().unwrap();
    let (pane_a, pane_b) = panes_on_two_primaries(&cluster);
    let _worker_a = bus.worker(&pane_a, &logs.path().join("a.log"));
    let _worker_b = bus.worker(&pane_b, &logs.path().join("b.log"));
    for pane in [&pane_a, &pane_b] {
        let result = bus.json(&["dispatch", pane, "ping", "--wait", "--wait-timeout", "30"]);
        assert_eq!(result["ok"], true, "{result}");
    }
    let line = bus.status_line();
    assert!(line.starts_with("pb: 2 healthy"), "{line}");
    // Without the CA the nodes' certificates are not trusted.
    bus.env.retain(|(k, _)| k != "PANEBUS_REDIS_CA_CERT");
    let out = bus.run(&["status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("PANEBUS_REDIS_CA_CERT"), "{err}");
}

#[test]
fn cluster_urls_that_cannot_work_are_refused_clearly() {
    let bus = Panebus::new("redis+cluster://:hunter2@127.0.0.1:1,127.0.0.1:2");
    let out = bus.run(&["status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("redis+cluster://:***@127.0.0.1:1,127.0.0.1:2"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");

    let bus = Panebus::new("redis+cluster://127.0.0.1:7000/2");
    let out = bus.run(&["status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("database 0"), "{err}");
}
