//! The Redis control plane against a real redis-server: queueing limits, at-least-once
//! delivery with fenced requeue, results, registry, DLQ, events and namespace isolation.

mod support;

use std::time::Duration;

use panebus::bus::{BlockingConnection, Bus, BusError, Delivery, HeartbeatStatus};
use panebus::config::Config;
use panebus::schema::{
    now_ms, Command, CommandResult, DlqCommand, DlqEntry, DlqReason, Event, EventKind, WorkerInfo,
    WorkerState,
};
use serde_json::json;
use support::deployments::single_node_cluster;
use support::RedisServer;

fn config(redis: &RedisServer, namespace: &str) -> Config {
    let mut c = Config::from_lookup(|_| None).unwrap();
    c.redis_url = redis.url();
    c.namespace = namespace.to_string();
    c.node = "testnode".to_string();
    c
}

async fn bus(redis: &RedisServer) -> Bus {
    Bus::connect(&config(redis, "t")).await.unwrap()
}

fn info(id: &str, role: &str) -> WorkerInfo {
    WorkerInfo {
        id: id.to_string(),
        role: role.to_string(),
        node: "testnode".into(),
        pane: id.rsplit('/').next().unwrap().into(),
        pid: std::process::id(),
        generation: 0,
        version: "test".into(),
        started_ms: now_ms(),
        current_command: None,
        state: WorkerState::Idle,
        argv: vec!["panebus".into(), "worker".into()],
        cwd: "/".into(),
        session: None,
    }
}

async fn registered(bus: &Bus, id: &str, role: &str) -> WorkerInfo {
    let mut i = info(id, role);
    bus.register(&mut i, Duration::from_secs(60)).await.unwrap();
    i
}

/// Takes the next command of `worker`, which must be there within a second.
async fn take(bus: &Bus, blocking: &mut BlockingConnection, worker: &str) -> Delivery {
    bus.take(blocking, worker, Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap()
}

/// A DLQ entry for `worker`, made now.
fn dlq_entry(worker: &str, command: DlqCommand, error: &str, reason: DlqReason) -> DlqEntry {
    DlqEntry {
        id: panebus::schema::new_id(),
        command,
        error: error.into(),
        worker: worker.into(),
        ts_ms: now_ms(),
        reason,
    }
}

/// The result of a first attempt that ran from 1 ms to 2 ms.
fn finished(
    command_id: &str,
    worker: &str,
    ok: bool,
    result: Option<serde_json::Value>,
    error: Option<&str>,
) -> CommandResult {
    CommandResult {
        command_id: command_id.into(),
        worker: worker.into(),
        ok,
        result,
        error: error.map(String::from),
        started_ms: 1,
        finished_ms: 2,
        attempt: 1,
    }
}

fn ping() -> Command {
    Command::new("ping", json!({}), "test")
}

#[tokio::test]
async fn unreachable_redis_fails_fast_with_the_url() {
    let mut c = Config::from_lookup(|_| None).unwrap();
    // A port nothing listens on: bind and drop to find one.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    c.redis_url = format!("redis://127.0.0.1:{port}/0");
    let started = std::time::Instant::now();
    let err = Bus::connect(&c).await.err().expect("connect must fail");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(err, BusError::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&port.to_string()) && text.contains("PANEBUS_REDIS_URL"),
        "{text}"
    );
}

#[tokio::test]
async fn enqueue_take_ack_round_trip_keeps_fifo_order() {
    let redis = RedisServer::start();
    let bus = bus(&redis).await;
    let w = "testnode/%1";
    let me = registered(&bus, w, "worker").await;
    let first = ping();
    let second = Command::new("echo", json!({"n": 2}), "test");
    assert_eq!(bus.enqueue(w, &first, false).await.unwrap(), 1);
    assert_eq!(bus.enqueue(w, &second, false).await.unwrap(), 2);
    let mut blocking = bus.blocking_connection().await.unwrap();
    let got = take(&bus, &mut blocking, w).await;
    assert_eq!(got.command.as_ref().unwrap().id, first.id);
    assert_eq!(bus.processing_len(w).await.unwrap(), 1);
    assert!(bus.ack(w, &got.raw, me.generation).await.unwrap());
    assert_eq!(bus.processing_len(w).await.unwrap(), 0);
    let got = take(&bus, &mut blocking, w).await;
    assert_eq!(got.command.unwrap().id, second.id);
    // Empty queue: the take times out with nothing.
    assert!(bus
        .take(&mut blocking, w, Duration::from_millis(50))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn unknown_worker_is_refused_unless_forced() {
    let redis = RedisServer::start();
    let bus = bus(&redis).await;
    let err = bus
        .enqueue("testnode/%9", &ping(), false)
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::UnknownWorker { .. }), "{err:?}");
    assert!(err.to_string().contains("testnode/%9"));
    assert_eq!(bus.queue_depth("testnode/%9").await.unwrap(), 0);
    assert_eq!(bus.enqueue("testnode/%9", &ping(), true).await.unwrap(), 1);
}

#[tokio::test]
async fn depth_limit_holds_under_concurrent_dispatchers() {
    let redis = RedisServer::start();
    let mut c = config(&redis, "t");
    c.max_queue_depth = 25;
    let bus = Bus::connect(&c).await.unwrap();
    let w = "testnode/%1";
    registered(&bus, w, "worker").await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let bus = Bus::connect(&c).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut full) = (0, 0);
            for _ in 0..20 {
                match bus.enqueue(w, &ping(), false).await {
                    Ok(_) => ok += 1,
                    Err(BusError::QueueFull { depth, .. }) => {
                        assert_eq!(depth, 25);
                        full += 1
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            (ok, full)
        }));
    }
    let (mut ok, mut full) = (0, 0);
    for t in tasks {
        let (o, f) = t.await.unwrap();
        ok += o;
        full += f;
    }
    assert_eq!(ok, 25);
    assert_eq!(full, 160 - 25);
    assert_eq!(bus.queue_depth(w).await.unwrap(), 25);
}

#[tokio::test]
async fn oversize_and_malformed_payloads_are_refused_and_nothing_is_queued() {
    let redis = RedisServer::start();
    let mut c = config(&redis, "t");
    c.max_payload_bytes = 1000;
    let bus = Bus::connect(&c).await.unwrap();
    let w = "testnode/%1";
    registered(&bus, w, "worker").await;
    let big = Command::new("echo", json!({"text": "x".repeat(2000)}), "test");
    let err = bus.enqueue(w, &big, false).await.unwrap_err();
    assert!(
        matches!(err, BusError::PayloadTooLarge { limit: 1000, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("PANEBUS_MAX_PAYLOAD_BYTES"));
    let not_object = Command::new("echo", json!("text"), "test");
    assert!(matches!(
        bus.enqueue(w, &not_object, false).await.unwrap_err(),
        BusError::InvalidPayload(_)
    ));
    for bad in ["{\"text\": ", "[1,2]", "not json", "\"str\""] {
        let err = panebus::bus::parse_payload(bad).unwrap_err();
        assert!(matches!(err, BusError::InvalidPayload(_)), "{bad}: {err:?}");
        assert!(err.to_string().contains("JSON object"), "{err}");
    }
    assert_eq!(bus.queue_depth(w).await.unwrap(), 0);
}

#[tokio::test]
async fn hostile_text_passes_through_literally() {
    let redis = RedisServer::start();
    let bus = bus(&redis).await;
    let w = "testnode/%1";
    registered(&bus, w, "worker").await;
    let hostile =
        "a; rm -rf / \n#{pane_id} #(echo hi) $(id) `id` 'q' \"dq\" \\ %% \u{0}\u{1b}[31m é";
    let cmd = Command::new("echo", json!({"text": hostile}), hostile);
    bus.enqueue(w, &cmd, false).await.unwrap();
    let mut blocking = bus.blocking_connection().await.unwrap();
    let got = take(&bus, &mut blocking, w).await.command.unwrap();
    assert_eq!(got.payload["text"], hostile);
    assert_eq!(got.origin, hostile);
}

#[tokio::test]
async fn requeue_is_fenced_by_generation_and_counts_attempts() {
    let redis = RedisServer::start();
    let bus = bus(&redis).await;
    let w = "testnode/%1";
    let old = registered(&bus, w, "worker").await;
    let mut cmds = Vec::new();
    for i in 0..3 {
        let mut c = Command::new("echo", json!({"i": i}), "test");
        c.max_attempts = 2;
        bus.enqueue(w, &c, false).await.unwrap();
        cmds.push(c);
    }
    // The last one is already on its final attempt.
    let mut last = Command::new("echo", json!({"i": "last"}), "test");
    last.max_attempts = 2;
    last.attempt = 2;
    bus.enqueue(w, &last, false).await.unwrap();
    let mut blocking = bus.blocking_connection().await.unwrap();
    for _ in 0..4 {
        take(&bus, &mut blocking, w).await;
    }
    assert_eq!(bus.processing_len(w).await.unwrap(), 4);

    // A stale expectation is refused and nothing moves.
    let err = bus
        .requeue_unacked(w, old.generation + 5)
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::Fenced { .. }), "{err:?}");
    assert_eq!(bus.processing_len(w).await.unwrap(), 4);

    let outcome = bus.requeue_unacked(w, old.generation).await.unwrap();
    assert_eq!(outcome.requeued, 3);
    assert_eq!(outcome.dead_lettered, 1);
    assert_eq!(outcome.generation, old.generation + 1);
    assert_eq!(bus.processing_len(w).await.unwrap(), 0);

    // The old incarnation is fenced: its ack and heartbeat are refused.
    let err = bus.ack(w, b"whatever", old.generation).await.unwrap_err();
    assert!(matches!(err, BusError::Fenced { .. }), "{err:?}");
    assert_eq!(
        bus.heartbeat(w, old.generation, Duration::from_secs(5))
            .await
            .unwrap(),
        HeartbeatStatus::Fenced {
            current_generation: old.generation + 1
        }
    );
    // A second requeue with the same expectation does nothing.
    assert!(bus.requeue_unacked(w, old.generation).await.is_err());

    // Requeued in the original order, attempt + 1.
    for expected in &cmds {
        let got = take(&bus, &mut blocking, w).await.command.unwrap();
        assert_eq!(got.id, expected.id);
        assert_eq!(got.attempt, 2);
        assert_eq!(got.payload, expected.payload);
    }
    let dead = bus.dlq_list(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, DlqReason::AttemptsExhausted);
    assert_eq!(dead[0].command.id(), Some(last.id.as_str()));
}

#[tokio::test]
async fn a_new_incarnation_recovers_what_the_old_one_left() {
    let redis = RedisServer::start();
    let bus = bus(&redis).await;
    let w = "testnode/%1";
    registered(&bus, w, "worker").await;
    let cmd = ping();
    bus.enqueue(w, &cmd, false).await.unwrap();
    let mut blocking = bus.blocking_connection().await.unwrap();
    take(&bus, &mut blocking, w).await;
    // Poison in the processing list too.
    let _: () = redis::cmd("LPUSH")
        .arg(bus.keys().processing(w))
        .arg("{broken")
        .query(&mut redis.conn())
        .unwrap();
    let new = registered(&bus, w, "worker").await;
    let outcome = bus.recover_unacked(w, new.generation).await.unwrap();
    assert_eq!((outcome.requeued, outcome.dead_lettered), (1, 1));
    assert_eq!(outcome.generation, new.generation);
    let got = take(&bus, &mut blocking, w).await.command.unwrap();
    assert_eq!((got.id, got.attempt), (cmd.id, 2));
    let dead = bus.dlq_list(10).await.unwrap();
    assert_eq!(dead[0].reason, DlqReason::Poison);
    assert_eq!(dead[0].command, DlqCommand::Raw("{broken".into()));
}

#[tokio::test]
async fn results_wake_every_waiter_and_are_readable_after() {
    let redis = RedisServer::start();
    let bus = bus(&redis).await;
    let result = finished(
        "01TEST",
        "testnode/%1",
        true,
        Some(json!({"pong": true})),
        None,
    );
    let mut waiters = Vec::new();
    for _ in 0..3 {
        let bus = bus.clone();
        waiters.push(tokio::spawn(async move {
            let mut blocking = bus.blocking_connection().await.unwrap();
            bus.wait_result(&mut blocking, "01TEST", Duration::from_secs(20))
                .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    bus.store_result(&result).await.unwrap();
    for w in waiters {
        assert_eq!(w.await.unwrap().unwrap(), result);
    }
    assert_eq!(bus.result("01TEST").await.unwrap().unwrap(), result);
    // A wait that starts after the result was stored returns at once.
    let mut blocking = bus.blocking_connection().await.unwrap();
    let again = bus
        .wait_result(&mut blocking, "01TEST", Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(again, result);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(bus.keys().result("01TEST"))
        .query(&mut redis.conn())
        .unwrap();
    assert!(ttl > 0);
    let err = bus
        .wait_result(&mut blocking, "01MISSING", Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::Timeout { .. }), "{err:?}");
}

#[tokio::test]
async fn registry_tracks_roles_liveness_and_deregistration() {
    let redis = RedisServer::start();
    let bus = bus(&redis).await;
    let a = registered(&bus, "testnode/%1", "reviewer").await;
    registered(&bus, "testnode/%2", "reviewer").await;
    registered(&bus, "testnode/%3", "planner").await;
    assert_eq!(
        bus.role_members("reviewer").await.unwrap(),
        ["testnode/%1", "testnode/%2"]
    );
    assert_eq!(bus.role_members("planner").await.unwrap(), ["testnode/%3"]);
    let all = bus.list_workers().await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|w| w.alive && w.info.is_some()));
    assert_eq!(all[0].info.as_ref().unwrap().role, "reviewer");

    // Restarting %3 with another role moves it between role sets and bumps its generation.
    let again = registered(&bus, "testnode/%3", "reviewer").await;
    assert!(bus.role_members("planner").await.unwrap().is_empty());
    assert_eq!(again.generation, 2);

    let _: () = redis::cmd("DEL")
        .arg(bus.keys().heartbeat("testnode/%2"))
        .query(&mut redis.conn())
        .unwrap();
    let all = bus.list_workers().await.unwrap();
    assert!(!all.iter().find(|w| w.id == "testnode/%2").unwrap().alive);

    assert!(bus.deregister(&a.id, &a.role, a.generation).await.unwrap());
    assert_eq!(bus.role_members("reviewer").await.unwrap().len(), 2);
    assert!(!bus.is_registered(&a.id).await.unwrap());
    // A fenced incarnation cannot deregister its successor.
    assert!(!bus.deregister(&again.id, &again.role, 1).await.unwrap());
    assert!(bus.is_registered(&again.id).await.unwrap());
}

#[tokio::test]
async fn dlq_show_retry_and_purge() {
    let redis = RedisServer::start();
    let bus = bus(&redis).await;
    let w = "testnode/%1";
    registered(&bus, w, "worker").await;
    let mut cmd = Command::new("echo", json!({"x": 1}), "test");
    cmd.attempt = 3;
    let entry = dlq_entry(
        w,
        DlqCommand::Parsed(Box::new(cmd.clone())),
        "boom",
        DlqReason::Failed,
    );
    bus.dlq_push(&entry).await.unwrap();
    let raw_entry = dlq_entry(
        w,
        DlqCommand::Raw("{nope".into()),
        "poison",
        DlqReason::Poison,
    );
    bus.dlq_push(&raw_entry).await.unwrap();
    assert_eq!(bus.dlq_len().await.unwrap(), 2);
    assert_eq!(bus.dlq_list(10).await.unwrap()[0].id, raw_entry.id);
    // By entry id or by command id.
    assert_eq!(bus.dlq_show(&entry.id).await.unwrap(), entry);
    assert_eq!(bus.dlq_show(&cmd.id).await.unwrap(), entry);
    assert!(matches!(
        bus.dlq_show("nope").await.unwrap_err(),
        BusError::NotFound(_)
    ));

    let report = bus.dlq_retry_all().await.unwrap();
    assert_eq!(report.retried.len(), 1);
    assert_eq!(report.failed.len(), 1);
    assert!(report.failed[0].1.to_string().contains("cannot be retried"));
    let mut blocking = bus.blocking_connection().await.unwrap();
    let again = take(&bus, &mut blocking, w).await.command.unwrap();
    assert_eq!((again.id, again.attempt), (cmd.id, 1));
    assert_eq!(bus.dlq_len().await.unwrap(), 1);
    assert_eq!(bus.dlq_purge().await.unwrap(), 1);
    assert_eq!(bus.dlq_len().await.unwrap(), 0);
}

#[tokio::test]
async fn events_are_capped_readable_and_followable() {
    let redis = RedisServer::start();
    let mut c = config(&redis, "t");
    c.events_maxlen = 100;
    let bus = Bus::connect(&c).await.unwrap();
    for i in 0..1000 {
        bus.emit(&Event::new(
            EventKind::HeartbeatMissed,
            "testnode/%1",
            json!({"i": i}),
        ))
        .await
        .unwrap();
    }
    let len: usize = redis::cmd("XLEN")
        .arg(bus.keys().events())
        .query(&mut redis.conn())
        .unwrap();
    assert!(len < 1000, "stream not capped: {len}");
    let recent = bus.recent_events(3).await.unwrap();
    assert_eq!(recent.len(), 3);
    assert_eq!(recent[2].event.details["i"], 999);
    assert_eq!(recent[0].event.details["i"], 997);

    let from = bus.last_event_id().await.unwrap();
    let follower = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let mut blocking = bus.blocking_connection().await.unwrap();
            bus.events_after(&mut blocking, &from, Duration::from_secs(20), 10)
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    bus.emit(&Event::new(EventKind::PaneRespawned, "testnode/%1", json!({})).with_command("c1"))
        .await
        .unwrap();
    let got = follower.await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].event.kind, EventKind::PaneRespawned);
    assert_eq!(got[0].event.command_id.as_deref(), Some("c1"));
}

#[tokio::test]
async fn namespaces_on_one_redis_are_isolated() {
    let redis = RedisServer::start();
    let one = Bus::connect(&config(&redis, "one")).await.unwrap();
    let two = Bus::connect(&config(&redis, "two")).await.unwrap();
    let w = "testnode/%1";
    registered(&one, w, "worker").await;
    one.enqueue(w, &ping(), false).await.unwrap();
    assert!(matches!(
        two.enqueue(w, &ping(), false).await.unwrap_err(),
        BusError::UnknownWorker { .. }
    ));
    assert!(two.list_workers().await.unwrap().is_empty());
    assert_eq!(two.queue_depth(w).await.unwrap(), 0);
    assert_eq!(one.queue_depth(w).await.unwrap(), 1);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut redis.conn())
        .unwrap();
    assert!(keys.iter().all(|k| k.starts_with("one:")), "{keys:?}");
}

#[tokio::test]
async fn unblock_ends_a_parked_take_without_losing_commands() {
    let redis = RedisServer::start();
    let bus = bus(&redis).await;
    let w = "testnode/%1";
    registered(&bus, w, "worker").await;
    let mut blocking = bus.blocking_connection().await.unwrap();
    let client_id = blocking.client_id();
    let taker = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let r = bus.take(&mut blocking, w, Duration::from_secs(30)).await;
            (r, blocking)
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    bus.unblock(client_id).await.unwrap();
    let (r, blocking) = tokio::time::timeout(Duration::from_secs(5), taker)
        .await
        .expect("unblocked in time")
        .unwrap();
    assert!(r.unwrap().is_none());
    // A command pushed afterwards stays in the queue: nothing was left parked.
    bus.enqueue(w, &ping(), false).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(bus.queue_depth(w).await.unwrap(), 1);
    assert_eq!(bus.processing_len(w).await.unwrap(), 0);
    drop(blocking);
}

#[tokio::test]
async fn every_script_and_multi_key_step_stays_in_one_cluster_slot() {
    let redis = single_node_cluster();
    // The node really refuses keys of two slots.
    let err = redis::cmd("DEL")
        .arg("t:dlq")
        .arg("t:dlq:entries")
        .query::<i64>(&mut redis.conn())
        .unwrap_err();
    assert_eq!(
        err.kind(),
        redis::ErrorKind::Server(redis::ServerErrorKind::CrossSlot),
        "{err}"
    );

    let bus = bus(&redis).await;
    let w = "testnode/%1";
    let old = registered(&bus, w, "worker").await;
    assert_eq!(
        bus.heartbeat(w, old.generation, Duration::from_secs(5))
            .await
            .unwrap(),
        HeartbeatStatus::Alive
    );
    bus.set_state(w, WorkerState::Busy, Some("x"))
        .await
        .unwrap();
    let mut blocking = bus.blocking_connection().await.unwrap();
    let mut exhausted = ping();
    exhausted.max_attempts = 1;
    let done = ping();
    for cmd in [&ping(), &exhausted, &done, &ping()] {
        bus.enqueue(w, cmd, false).await.unwrap();
    }
    // ack
    let first = take(&bus, &mut blocking, w).await;
    assert!(bus.ack(w, &first.raw, old.generation).await.unwrap());
    // requeue: one requeued, one exhausted (to the DLQ), one finished (result stored).
    let mut taken = Vec::new();
    for _ in 0..3 {
        let d = take(&bus, &mut blocking, w).await;
        taken.push(d.command.unwrap().id);
    }
    assert_eq!(taken[..2], [exhausted.id.clone(), done.id.clone()]);
    bus.store_result(&finished(&done.id, w, true, Some(json!({})), None))
        .await
        .unwrap();
    let _: () = redis::cmd("LPUSH")
        .arg(bus.keys().processing(w))
        .arg("{poison")
        .query(&mut redis.conn())
        .unwrap();
    let outcome = bus.requeue_unacked(w, old.generation).await.unwrap();
    assert_eq!(
        (outcome.requeued, outcome.dead_lettered, outcome.finished),
        (1, 2, 1),
        "{outcome:?}"
    );
    assert_eq!(bus.queue_depth(w).await.unwrap(), 1);
    assert_eq!(bus.dlq_len().await.unwrap(), 2);
    let gen = outcome.generation;
    // return to queue, dead letter (poison on the hot path)
    let taken = take(&bus, &mut blocking, w).await;
    assert!(bus.return_to_queue(w, &taken.raw).await.unwrap());
    let _: () = redis::cmd("LPUSH")
        .arg(bus.keys().processing(w))
        .arg("not json")
        .query(&mut redis.conn())
        .unwrap();
    let entry = dlq_entry(
        w,
        DlqCommand::Raw("not json".into()),
        "poison",
        DlqReason::Poison,
    );
    assert!(bus.dead_letter(w, b"not json", gen, &entry).await.unwrap());
    assert_eq!(bus.dlq_len().await.unwrap(), 3);
    // DLQ retry, remove and purge; events; the listing of workers.
    let exhausted_entry = bus.dlq_show(&exhausted.id).await.unwrap();
    bus.dlq_retry(&exhausted_entry.id, None).await.unwrap();
    assert!(bus.dlq_remove(&entry.id).await.unwrap());
    bus.emit(&Event::new(EventKind::WorkerStarted, w, json!({})))
        .await
        .unwrap();
    assert_eq!(bus.list_workers().await.unwrap().len(), 1);
    assert_eq!(bus.dlq_purge().await.unwrap(), 1);
    assert!(bus.deregister(w, "worker", gen).await.unwrap());
    assert!(bus.worker_ids().await.unwrap().is_empty());
}

#[tokio::test]
async fn requeue_drops_finished_commands_and_dlq_retry_runs_them_again() {
    let redis = RedisServer::start();
    let bus = bus(&redis).await;
    let w = "testnode/%1";
    let old = registered(&bus, w, "worker").await;
    let cmd = Command::new("echo", json!({}), "test");
    bus.enqueue(w, &cmd, false).await.unwrap();
    let mut blocking = bus.blocking_connection().await.unwrap();
    take(&bus, &mut blocking, w).await;
    // The worker failed it: DLQ entry, then result; it died before the ack.
    let entry = dlq_entry(
        w,
        DlqCommand::Parsed(Box::new(cmd.clone())),
        "boom",
        DlqReason::Failed,
    );
    bus.dlq_push(&entry).await.unwrap();
    let failed = finished(&cmd.id, w, false, None, Some("boom"));
    bus.store_result(&failed).await.unwrap();
    // Not requeued: it ran to the end and its failure is in the DLQ already.
    let outcome = bus.requeue_unacked(w, old.generation).await.unwrap();
    assert_eq!(
        (outcome.requeued, outcome.dead_lettered, outcome.finished),
        (0, 0, 1)
    );
    assert_eq!(bus.queue_depth(w).await.unwrap(), 0);
    assert_eq!(bus.processing_len(w).await.unwrap(), 0);
    assert_eq!(bus.dlq_len().await.unwrap(), 1);

    // A result of an earlier attempt does not count as finished.
    let mut later = cmd.clone();
    later.attempt = 2;
    bus.enqueue(w, &later, false).await.unwrap();
    take(&bus, &mut blocking, w).await;
    let outcome = bus.requeue_unacked(w, outcome.generation).await.unwrap();
    assert_eq!((outcome.requeued, outcome.finished), (1, 0));
    let _: i64 = redis::cmd("DEL")
        .arg(bus.keys().queue(w))
        .query(&mut redis.conn())
        .unwrap();

    // Retried from the DLQ (attempt 1 again): the old result is gone, so a crash of the
    // retried run requeues it instead of taking it for finished.
    bus.dlq_retry(&entry.id, None).await.unwrap();
    assert_eq!(bus.result(&cmd.id).await.unwrap(), None);
    take(&bus, &mut blocking, w).await;
    let outcome = bus.requeue_unacked(w, outcome.generation).await.unwrap();
    assert_eq!((outcome.requeued, outcome.finished), (1, 0));
}

#[tokio::test]
async fn dead_letters_left_by_a_crash_reach_the_dlq_once() {
    let redis = RedisServer::start();
    let bus = bus(&redis).await;
    let w = "testnode/%1";
    let me = registered(&bus, w, "worker").await;
    let entry = dlq_entry(
        w,
        DlqCommand::Raw("{half".into()),
        "poison",
        DlqReason::Poison,
    );
    let json = serde_json::to_string(&entry).unwrap();
    // A crash after the DLQ write but before the dead letter was removed: both exist.
    bus.dlq_push(&entry).await.unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg(bus.keys().dead_letters(w))
        .arg(&json)
        .query(&mut redis.conn())
        .unwrap();
    // The next start-up flushes it again: same entry id, listed once.
    bus.recover_unacked(w, me.generation).await.unwrap();
    assert_eq!(bus.dlq_len().await.unwrap(), 1);
    assert_eq!(bus.dlq_show(&entry.id).await.unwrap(), entry);
    assert_eq!(bus.flush_dead_letters(w).await.unwrap(), 0);
    // Something that is not a DLQ entry in the list is reported, not dropped.
    let _: () = redis::cmd("RPUSH")
        .arg(bus.keys().dead_letters(w))
        .arg("garbage")
        .query(&mut redis.conn())
        .unwrap();
    let err = bus.flush_dead_letters(w).await.unwrap_err();
    assert!(err.to_string().contains("not a DLQ entry"), "{err}");
    let left: i64 = redis::cmd("LLEN")
        .arg(bus.keys().dead_letters(w))
        .query(&mut redis.conn())
        .unwrap();
    assert_eq!(left, 1);
}

#[tokio::test]
async fn a_batch_sent_in_stages_keeps_reply_order_and_stops_at_a_failed_stage() {
    use panebus::bus::slots::Batch;
    let redis = RedisServer::start();
    let mut conn = bus(&redis).await.connection();
    let mut batch = Batch::new();
    batch
        .add(redis::cmd("SET").arg("t:{a}:x").arg("1").to_owned())
        .add_ignored(redis::cmd("SET").arg("t:{b}:y").arg("2").to_owned())
        .then()
        .add(redis::cmd("GET").arg("t:{b}:y").to_owned())
        .add(redis::cmd("GET").arg("t:{a}:x").to_owned());
    let staged = batch.query_in_stages(&mut conn).await.unwrap();
    let whole = batch.query(&mut conn).await.unwrap();
    assert_eq!(staged, whole);
    let texts: Vec<String> = redis::from_redis_value(redis::Value::Array(staged)).unwrap();
    assert_eq!(texts, ["OK", "2", "1"]);

    // A stage that fails (a list command on a string) stops the later stages.
    let mut batch = Batch::new();
    batch
        .add(redis::cmd("LPUSH").arg("t:{a}:x").arg("v").to_owned())
        .then()
        .add(redis::cmd("SET").arg("t:{b}:after").arg("1").to_owned());
    assert!(batch.query_in_stages(&mut conn).await.is_err());
    let after: Option<String> = redis::cmd("GET")
        .arg("t:{b}:after")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(after, None);
}

/// `PANEBUS_REPLICA_ACKS`: an enqueue counts only once that many replicas have it (Redis
/// `WAIT` in the same pipeline). A stopped replica makes the enqueue fail with
/// `NotReplicated` — the command is on the primary, and the message says so — and
/// `dispatch` exit with 9; a replica that runs again confirms again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_acks_confirm_each_enqueue_or_say_it_is_not_replicated() {
    let primary = RedisServer::start();
    let port = primary.port.to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    support::wait::wait_for("the replica in sync", Duration::from_secs(20), || {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut replica.conn())
            .unwrap();
        info.contains("master_link_status:up")
    });
    let mut c = config(&primary, "t");
    c.replica_acks = 1;
    c.replica_ack_timeout = Duration::from_millis(300);
    let bus = Bus::connect(&c).await.unwrap();
    let queued = |id: &str| {
        let elements: Vec<String> = redis::cmd("LRANGE")
            .arg(bus.keys().queue("testnode/%1"))
            .arg(0)
            .arg(-1)
            .query(&mut primary.conn())
            .unwrap();
        elements.iter().any(|e| e.contains(id))
    };

    // The longest wait where confirmation is expected (a loaded machine may take a while).
    let mut patient_config = c.clone();
    patient_config.replica_ack_timeout = Duration::from_secs(4);
    let patient = Bus::connect(&patient_config).await.unwrap();
    let confirmed = Command::new("ping", json!({}), "test");
    assert_eq!(
        patient
            .enqueue("testnode/%1", &confirmed, true)
            .await
            .unwrap(),
        1
    );

    support::process::signal_pid(replica.pid(), libc::SIGSTOP);
    let unconfirmed = Command::new("ping", json!({}), "test");
    match bus.enqueue("testnode/%1", &unconfirmed, true).await {
        Err(
            e @ BusError::NotReplicated {
                acked: 0,
                wanted: 1,
                ..
            },
        ) => {
            let text = e.to_string();
            assert!(text.contains(&unconfirmed.id), "{text}");
            assert!(text.contains("queued on the primary"), "{text}");
        }
        other => panic!("expected NotReplicated, got {other:?}"),
    }
    assert!(queued(&unconfirmed.id), "the command is on the primary");

    // The CLI: exit 9 with the same message.
    let mut cli = support::panebus::Panebus::on(&primary.url(), "t", "testnode");
    cli.set("PANEBUS_REPLICA_ACKS", "1");
    cli.set("PANEBUS_REPLICA_ACK_TIMEOUT", "300ms");
    let out = cli.run(&["dispatch", "%1", "ping", "--force"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(9), "{stderr}");
    assert!(stderr.contains("0 of 1 replicas confirmed"), "{stderr}");

    support::process::signal_pid(replica.pid(), libc::SIGCONT);
    let again = Command::new("ping", json!({}), "test");
    support::wait::wait_for_async(
        "the replica confirms again",
        Duration::from_secs(20),
        || {
            let (patient, again) = (&patient, &again);
            async move { patient.enqueue("testnode/%1", again, true).await.is_ok() }
        },
    )
    .await;

    // More replicas asked for than exist: never confirmed.
    c.replica_acks = 2;
    let two = Bus::connect(&c).await.unwrap();
    let cmd = Command::new("ping", json!({}), "test");
    assert!(matches!(
        two.enqueue("testnode/%1", &cmd, true).await,
        Err(BusError::NotReplicated {
            acked: 1,
            wanted: 2,
            ..
        })
    ));
}
