//! Redis Sentinel end to end: a primary, a replica and one sentinel monitoring them,
//! reached through `redis+sentinel://HOST:PORT/SERVICE`. A `panebus worker` process and
//! the CLI round-trip commands; then `SENTINEL FAILOVER` promotes the replica while
//! commands flow, and the worker and the CLI follow the new primary without losing any
//! command that was accepted. A crashed primary is replaced by the promoted replica the
//! same way.
//!
//! The same with passwords (the data nodes' in the URL, the sentinel's in
//! `PANEBUS_REDIS_SENTINEL_PASSWORD`; a wrong or missing one is exit 3 with a message
//! naming which, never the password itself) and with TLS everywhere
//! (`rediss+sentinel://` with the test CA in `PANEBUS_REDIS_CA_CERT`, failover included).

mod support;

use std::time::Duration;

use panebus::bus::keys::Keys;
use panebus::bus::{Bus, BusError};
use panebus::config::Config;
use panebus::schema::Command;
use serde_json::json;
use support::deployments::{
    cli, missing_results, wait_for, ChildGuard, Panebus, SentinelSecurity, SentinelSetup,
    TestCerts, SERVICE,
};

/// `@`, `/` and `:` must be percent-encoded in the URL; the tests check neither form leaks.
const DATA_PASSWORD: &str = "data@Pa55/w:rd";
const DATA_PASSWORD_IN_URL: &str = "data%40Pa55%2Fw%3Ard";
const SENTINEL_PASSWORD: &str = "sentinel-Pa55word";

/// A library handle on the bus with the same settings as the `panebus` calls of `bus`.
async fn library_bus(bus: &Panebus) -> Bus {
    let config = Config::from_lookup(|name| {
        bus.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    Bus::connect(&config)
        .await
        .expect("connect through the sentinel")
}

/// The key layout of the `deploy` namespace the `Panebus` runner uses.
static KEYS: std::sync::LazyLock<Keys> = std::sync::LazyLock::new(|| Keys::new("deploy"));

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Round-trips a command through a worker, then forces a failover while commands flow and
/// checks that every accepted command gets its result from the promoted replica.
async fn failover_while_commands_flow_loses_nothing(setup: &SentinelSetup, bus: &Panebus) {
    let logs = tempfile::tempdir().unwrap();
    let _worker: ChildGuard = bus.worker("%1", &logs.path().join("worker.log"));
    // The CLI calls get the longest replica wait (a loaded machine may take a while to
    // acknowledge); the enqueues during the failover keep the short one of `bus`.
    let mut patient = Panebus {
        env: bus.env.clone(),
    };
    patient.set("PANEBUS_REPLICA_ACK_TIMEOUT", "4s");

    let result = patient.json(&["dispatch", "%1", "ping", "--wait", "--wait-timeout", "30"]);
    assert_eq!(result["ok"], true, "{result}");
    // The command went through the primary the sentinel names.
    assert_eq!(setup.current_primary(), setup.primary_port);
    assert!(
        setup
            .cli(setup.primary_port, &["dbsize"])
            .parse::<u64>()
            .unwrap()
            > 0
    );

    let sender = library_bus(bus).await;
    let mut accepted = Vec::new();
    let mut refused = 0;
    // With PANEBUS_REPLICA_ACKS: queued on a primary, not confirmed by a replica in time
    // (while the promoted replica has no replica of its own yet). Not promised to survive.
    let mut unconfirmed = 0;
    for i in 0..60 {
        if i == 20 {
            assert_eq!(
                setup.cli(setup.sentinel_port, &["sentinel", "failover", SERVICE]),
                "OK"
            );
        }
        let command = Command::new("ping", json!({ "n": i }), "sentinel-test");
        match sender.enqueue("testnode/%1", &command, false).await {
            Ok(_) => accepted.push(command.id),
            Err(BusError::NotReplicated { .. }) => unconfirmed += 1,
            Err(_) => refused += 1,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for("the sentinel to name the replica as primary", 30, || {
        setup.current_primary() == setup.replica_port
    });
    wait_for("the old primary to become a replica", 30, || {
        setup
            .cli(setup.primary_port, &["role"])
            .starts_with("slave")
    });
    // And to be in sync, so that a later enqueue can be confirmed by it.
    wait_for("the old primary to sync as a replica", 30, || {
        setup
            .cli(setup.primary_port, &["info", "replication"])
            .contains("master_link_status:up")
            && setup
                .cli(setup.replica_port, &["info", "replication"])
                .contains("state=online")
    });
    eprintln!(
        "sentinel failover: {} enqueues accepted, {refused} refused, {unconfirmed} not confirmed by a replica",
        accepted.len()
    );
    assert!(refused < 10, "{refused} of 60 enqueues refused");

    let missing = missing_results(&sender, &accepted, Duration::from_secs(60)).await;
    if !missing.is_empty() {
        // The failover was forced before the 21st enqueue: which ones went missing tells
        // a replication race at the switch from a stuck worker.
        let positions: Vec<usize> = accepted
            .iter()
            .enumerate()
            .filter(|(_, id)| missing.contains(*id))
            .map(|(i, _)| i)
            .collect();
        eprintln!("missing: accepted enqueues number {positions:?}");
        for port in [setup.primary_port, setup.replica_port] {
            eprintln!(
                "{port}: role {:?} keys {:?} queue {:?} processing {:?}",
                setup.cli(port, &["role"]),
                setup.cli(port, &["keys", "*"]),
                setup.cli(port, &["llen", &KEYS.queue("testnode/%1")]),
                setup.cli(port, &["llen", &KEYS.processing("testnode/%1")])
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

    // A new CLI process resolves the new primary; the worker serves it (with
    // PANEBUS_REPLICA_ACKS, the resynced old primary confirms it).
    let result = patient.json(&["dispatch", "%1", "ping", "--wait", "--wait-timeout", "30"]);
    assert_eq!(result["ok"], true, "{result}");
    let id = result["command_id"].as_str().unwrap();
    let stored = setup.cli(setup.replica_port, &["exists", &KEYS.result(id)]);
    assert_eq!(stored, "1", "the result is on the new primary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_and_cli_follow_a_sentinel_failover_without_losing_commands() {
    let setup = SentinelSetup::start();
    let bus = Panebus::new(&setup.url());
    failover_while_commands_flow_loses_nothing(&setup, &bus).await;
}

/// Kills the primary with a worker running: the sentinel promotes the replica, and the
/// worker, the CLI and `status-line` use it.
fn crashed_primary_is_replaced_by_the_promoted_replica(mut setup: SentinelSetup, bus: &Panebus) {
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
        setup.cli(setup.replica_port, &["exists", &KEYS.result(id)]),
        "1"
    );
    // status-line reaches the promoted primary through the sentinels too.
    assert_eq!(bus.status_line(), "pb: 1 healthy, 0 queued");
}

#[test]
fn after_the_primary_crashes_the_worker_and_cli_use_the_promoted_replica() {
    let setup = SentinelSetup::start();
    let bus = Panebus::new(&setup.url());
    crashed_primary_is_replaced_by_the_promoted_replica(setup, &bus);
}

#[test]
fn with_passwords_a_crashed_primary_is_replaced_by_the_promoted_replica() {
    let setup = password_setup();
    let mut bus = Panebus::new(&setup.url());
    bus.set("PANEBUS_REDIS_SENTINEL_PASSWORD", SENTINEL_PASSWORD);
    crashed_primary_is_replaced_by_the_promoted_replica(setup, &bus);
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

fn password_setup() -> SentinelSetup {
    SentinelSetup::start_with(SentinelSecurity {
        data_password: Some(DATA_PASSWORD),
        sentinel_password: Some(SENTINEL_PASSWORD),
        certs: None,
    })
}

#[test]
fn with_passwords_on_the_data_nodes_and_the_sentinel_worker_and_cli_round_trip() {
    let setup = password_setup();
    let url = setup.url();
    assert!(url.starts_with(&format!(
        "redis+sentinel://:{DATA_PASSWORD_IN_URL}@127.0.0.1:"
    )));
    let mut bus = Panebus::new(&url);
    bus.set("PANEBUS_REDIS_SENTINEL_PASSWORD", SENTINEL_PASSWORD);
    let logs = tempfile::tempdir().unwrap();
    let worker_log = logs.path().join("worker.log");
    let worker: ChildGuard = bus.worker("%3", &worker_log);

    let out = bus.run(&[
        "dispatch",
        "%3",
        "ping",
        "--wait",
        "--wait-timeout",
        "30",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["result"]["pong"], true, "{result}");
    let id = result["command_id"].as_str().unwrap();
    assert_eq!(
        setup.cli(setup.primary_port, &["exists", &KEYS.result(id)]),
        "1",
        "the result is on the primary"
    );

    let status = bus.run(&["status", "--json"]);
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    let shown: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(shown["workers"]["total"], 1, "{shown}");
    assert_eq!(
        shown["redis_url"],
        format!(
            "redis+sentinel://:***@127.0.0.1:{}/{SERVICE}/0",
            setup.sentinel_port
        )
    );
    let line = bus.run(&["status-line", "--format", "plain"]);
    assert_eq!(
        String::from_utf8_lossy(&line.stdout).trim(),
        "pb: 1 healthy, 0 queued",
        "{}",
        stderr(&line)
    );
    drop(worker);
    let log = std::fs::read_to_string(&worker_log).unwrap();
    assert!(!log.is_empty(), "the worker logged nothing at debug level");
    for text in [
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr(&out),
        String::from_utf8_lossy(&status.stdout).into_owned(),
        stderr(&status),
        stderr(&line),
        log,
    ] {
        for password in [DATA_PASSWORD, DATA_PASSWORD_IN_URL, SENTINEL_PASSWORD] {
            assert!(!text.contains(password), "{password} shown in {text}");
        }
    }
}

#[test]
fn a_wrong_or_missing_password_fails_with_exit_3_saying_which_without_showing_it() {
    let setup = password_setup();
    let redacted = format!(
        "redis+sentinel://:***@127.0.0.1:{}/{SERVICE}/0",
        setup.sentinel_port
    );
    let check = |bus: &Panebus, hint: &str, secrets: &[&str]| {
        let out = bus.run(&["status"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(err.contains(&redacted), "{err}");
        assert!(err.contains(hint), "{err}");
        // `redis-cli -u` cannot read a sentinel URL: the hint asks a sentinel instead.
        assert!(err.contains("get-master-addr-by-name"), "{err}");
        assert!(!err.contains("redis-cli -u"), "{err}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        for secret in secrets {
            assert!(!err.contains(secret), "{secret} shown in {err}");
            assert!(!stdout.contains(secret), "{secret} shown in {stdout}");
        }
        err
    };

    // The sentinel refuses a wrong password, and asks for one when none is given.
    let mut bus = Panebus::new(&setup.url());
    bus.set("PANEBUS_REDIS_SENTINEL_PASSWORD", "not-the-sentinel-pw");
    let err = check(
        &bus,
        "the sentinels refused PANEBUS_REDIS_SENTINEL_PASSWORD",
        &[
            DATA_PASSWORD,
            DATA_PASSWORD_IN_URL,
            SENTINEL_PASSWORD,
            "not-the-sentinel-pw",
        ],
    );
    eprintln!("wrong sentinel password: {err}");
    let bus = Panebus::new(&setup.url());
    let err = check(
        &bus,
        "set PANEBUS_REDIS_SENTINEL_PASSWORD",
        &[DATA_PASSWORD, DATA_PASSWORD_IN_URL, SENTINEL_PASSWORD],
    );
    eprintln!("no sentinel password: {err}");

    // The data nodes refuse a wrong password in the URL, and ask for one when none is given.
    let mut bus = Panebus::new(&setup.url_with_password(Some("not-the-data-pw")));
    bus.set("PANEBUS_REDIS_SENTINEL_PASSWORD", SENTINEL_PASSWORD);
    let primary = format!("127.0.0.1:{}", setup.primary_port);
    let err = check(
        &bus,
        &format!("the primary the sentinels name ({primary}) refused the URL's password"),
        &[
            DATA_PASSWORD,
            DATA_PASSWORD_IN_URL,
            SENTINEL_PASSWORD,
            "not-the-data-pw",
        ],
    );
    assert!(!err.contains("PANEBUS_REDIS_SENTINEL_PASSWORD"), "{err}");
    eprintln!("wrong data password: {err}");
    let mut bus = Panebus::new(&setup.url_with_password(None));
    bus.set("PANEBUS_REDIS_SENTINEL_PASSWORD", SENTINEL_PASSWORD);
    let out = bus.run(&["status"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!(
            "the primary the sentinels name ({primary}) asks for a password and the URL has none"
        )),
        "{err}"
    );
    assert!(!err.contains(SENTINEL_PASSWORD), "{err}");
    eprintln!("no data password: {err}");
}

#[test]
fn a_sentinel_password_for_a_sentinel_without_one_fails_with_exit_3() {
    let setup = SentinelSetup::start();
    let mut bus = Panebus::new(&setup.url());
    bus.set("PANEBUS_REDIS_SENTINEL_PASSWORD", "needless-pw");
    let out = bus.run(&["status"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("the sentinels refused PANEBUS_REDIS_SENTINEL_PASSWORD")
            && err.contains("unset it if they have none"),
        "{err}"
    );
    assert!(!err.contains("needless-pw"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_sentinel_with_passwords_round_trip_and_failover_lose_nothing() {
    let certs = TestCerts::generate();
    let setup = SentinelSetup::start_with(SentinelSecurity {
        data_password: Some(DATA_PASSWORD),
        sentinel_password: Some(SENTINEL_PASSWORD),
        certs: Some(&certs),
    });
    let url = setup.url();
    assert!(url.starts_with("rediss+sentinel://:"), "{url}");
    let mut bus = Panebus::new(&url);
    bus.set("PANEBUS_REDIS_SENTINEL_PASSWORD", SENTINEL_PASSWORD);
    bus.set("PANEBUS_REDIS_CA_CERT", &certs.ca().display().to_string());
    // Every accepted command confirmed by the replica before it counts: none may be lost
    // to the asynchronous replication at the switch.
    bus.set("PANEBUS_REPLICA_ACKS", "1");
    bus.set("PANEBUS_REPLICA_ACK_TIMEOUT", "300ms");
    failover_while_commands_flow_loses_nothing(&setup, &bus).await;
}

#[test]
fn rediss_sentinel_round_trip_and_an_untrusted_ca() {
    let certs = TestCerts::generate();
    let setup = SentinelSetup::start_with(SentinelSecurity {
        certs: Some(&certs),
        ..SentinelSecurity::default()
    });
    // TLS only: the data nodes and the sentinel answer no plain connection.
    assert_ne!(cli(setup.sentinel_port, &["ping"]), "PONG");
    assert_ne!(cli(setup.primary_port, &["ping"]), "PONG");
    let url = setup.url();
    assert!(url.starts_with("rediss+sentinel://127.0.0.1:"), "{url}");
    let mut bus = Panebus::new(&url);
    bus.set("PANEBUS_REDIS_CA_CERT", &certs.ca().display().to_string());
    let logs = tempfile::tempdir().unwrap();
    let _worker: ChildGuard = bus.worker("%4", &logs.path().join("worker.log"));
    let result = bus.json(&["dispatch", "%4", "ping", "--wait", "--wait-timeout", "30"]);
    assert_eq!(result["ok"], true, "{result}");
    let id = result["command_id"].as_str().unwrap();
    assert_eq!(
        setup.cli(setup.primary_port, &["exists", &KEYS.result(id)]),
        "1"
    );

    // A CA that did not sign the sentinel's certificate: exit 3, saying what to set.
    bus.set(
        "PANEBUS_REDIS_CA_CERT",
        &certs.wrong_ca().display().to_string(),
    );
    let out = bus.run(&["status"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("PANEBUS_REDIS_CA_CERT"), "{err}");
    assert!(err.contains(&url), "{err}");
}
