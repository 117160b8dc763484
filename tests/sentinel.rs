//! Redis Sentinel end to end: a primary, a replica and one sentinel monitoring them,
//! reached through `redis+sentinel://HOST:PORT/SERVICE`. A `panebus worker` process and
//! the CLI round-trip commands; then `SENTINEL FAILOVER` promotes the replica while
//! commands flow, and the worker and the CLI follow the new primary without losing any
//! command that was accepted. A crashed primary is replaced by the promoted replica the
//! same way.

mod support;

use std::time::Duration;

use panebus::bus::Bus;
use panebus::config::Config;
use panebus::schema::Command;
use serde_json::json;
use support::deployments::{
    cli, missing_results, wait_for, ChildGuard, Panebus, SentinelSetup, SERVICE,
};

async fn library_bus(url: &str) -> Bus {
    let mut config = Config::from_lookup(|_| None).unwrap();
    config.redis_url = url.to_string();
    config.namespace = "deploy".into();
    config.node = "testnode".into();
    Bus::connect(&config)
        .await
        .expect("connect through the sentinel")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_and_cli_follow_a_sentinel_failover_without_losing_commands() {
    let setup = SentinelSetup::start();
    let url = setup.url();
    let bus = Panebus::new(&url);
    let logs = tempfile::tempdir().unwrap();
    let _worker: ChildGuard = bus.worker("%1", &logs.path().join("worker.log"));

    let result = bus.json(&["dispatch", "%1", "ping", "--wait", "--wait-timeout", "30"]);
    assert_eq!(result["ok"], true, "{result}");
    // The command went through the primary the sentinel names.
    assert_eq!(setup.current_primary(), setup.primary_port);
    assert!(cli(setup.primary_port, &["dbsize"]).parse::<u64>().unwrap() > 0);

    let sender = library_bus(&url).await;
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..60 {
        if i == 20 {
            assert_eq!(
                cli(setup.sentinel_port, &["sentinel", "failover", SERVICE]),
                "OK"
            );
        }
        let command = Command::new("ping", json!({ "n": i }), "sentinel-test");
        match sender.enqueue("testnode/%1", &command, false).await {
            Ok(_) => accepted.push(command.id),
            Err(_) => refused += 1,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for("the sentinel to name the replica as primary", 30, || {
        setup.current_primary() == setup.replica_port
    });
    wait_for("the old primary to become a replica", 30, || {
        cli(setup.primary_port, &["role"]).starts_with("slave")
    });
    eprintln!(
        "sentinel failover: {} enqueues accepted, {refused} refused",
        accepted.len()
    );
    assert!(refused < 10, "{refused} of 60 enqueues refused");

    let missing = missing_results(&sender, &accepted, Duration::from_secs(60)).await;
    if !missing.is_empty() {
        for port in [setup.primary_port, setup.replica_port] {
            eprintln!(
                "{port}: role {:?} keys {:?} queue {:?} processing {:?}",
                cli(port, &["role"]),
                cli(port, &["keys", "*"]),
                cli(port, &["llen", "deploy:{testnode/%1}:queue"]),
                cli(port, &["llen", "deploy:{testnode/%1}:processing"])
            );
        }
        eprintln!(
            "{}",
            std::fs::read_to_string(logs.path().join("worker.log")).unwrap()
        );
    }
    assert!(
        missing.is_empty(),
        "{} of {} accepted commands got no result after the failover",
        missing.len(),
        accepted.len()
    );

    // A new CLI process resolves the new primary; the worker serves it.
    let result = bus.json(&["dispatch", "%1", "ping", "--wait", "--wait-timeout", "30"]);
    assert_eq!(result["ok"], true, "{result}");
    let id = result["command_id"].as_str().unwrap();
    let stored = cli(
        setup.replica_port,
        &["exists", &format!("deploy:result:{id}")],
    );
    assert_eq!(stored, "1", "the result is on the new primary");
}

#[test]
fn after_the_primary_crashes_the_worker_and_cli_use_the_promoted_replica() {
    let mut setup = SentinelSetup::start();
    let bus = Panebus::new(&setup.url());
    let logs = tempfile::tempdir().unwrap();
    let _worker: ChildGuard = bus.worker("%2", &logs.path().join("worker.log"));
    let result = bus.json(&["dispatch", "%2", "ping", "--wait", "--wait-timeout", "30"]);
    assert_eq!(result["ok"], true, "{result}");

    setup.kill_primary();
    wait_for("the sentinel to promote the replica", 30, || {
        setup.current_primary() == setup.replica_port
    });
    let result = bus.json(&["dispatch", "%2", "ping", "--wait", "--wait-timeout", "30"]);
    assert_eq!(result["ok"], true, "{result}");
    let id = result["command_id"].as_str().unwrap();
    assert_eq!(
        cli(
            setup.replica_port,
            &["exists", &format!("deploy:result:{id}")]
        ),
        "1"
    );
    // status-line reaches the promoted primary through the sentinels too.
    let out = bus.run(&["status-line", "--format", "plain"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "pb: 1 healthy, 0 queued"
    );
}

#[test]
fn unreachable_sentinels_or_an_unknown_service_fail_with_exit_3() {
    let bus = Panebus::new("redis+sentinel://:hunter2@127.0.0.1:1/mymaster");
    let out = bus.run(&["status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("redis+sentinel://:***@127.0.0.1:1/mymaster"),
        "{err}"
    );
    assert!(err.contains("\"mymaster\""), "{err}");
    assert!(!err.contains("hunter2"), "{err}");

    let bus = Panebus::new("redis+sentinel://127.0.0.1:26379");
    let out = bus.run(&["status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("service"), "{err}");
}
