//! A real Redis Cluster (six redis-servers: three primaries, one replica each) reached
//! through `redis+cluster://`: `panebus worker` processes whose queues live on different
//! primaries, dispatch → worker → result round trips, the DLQ, and a `CLUSTER FAILOVER` of
//! the primary holding a worker's queue while commands flow, after which every command
//! that was accepted still gets its result.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use panebus::bus::Bus;
use panebus::config::Config;
use panebus::schema::Command;
use serde_json::json;
use support::deployments::{cli, wait_for, ChildGuard, Panebus, RedisCluster};

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
            assert_eq!(cli(replica, &["cluster", "failover"]), "OK");
        }
        let command = Command::new("ping", json!({ "n": i }), "cluster-test");
        match sender.enqueue(&worker_a, &command, false).await {
            Ok(_) => accepted.push(command.id),
            // Refused while the slot changes hands: the sender knows, nothing is lost.
            Err(_) => refused += 1,
        }
        if i >= 20 && !failed_over {
            failed_over = cli(replica, &["role"]).starts_with("master");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for("the replica to become primary", 30, || {
        cli(replica, &["role"]).starts_with("master")
    });
    eprintln!(
        "failover: {} enqueues accepted, {refused} refused",
        accepted.len()
    );
    assert!(refused < 10, "{refused} of 60 enqueues refused");

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut missing: HashSet<String> = accepted.iter().cloned().collect();
    while !missing.is_empty() && Instant::now() < deadline {
        let mut found = Vec::new();
        for id in &missing {
            if let Ok(Some(result)) = sender.result(id).await {
                assert!(result.ok, "{result:?}");
                found.push(id.clone());
            }
        }
        for id in found {
            missing.remove(&id);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
