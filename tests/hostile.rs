//! Hostile input wherever it can enter PaneBus: queue elements written by any Redis client,
//! payloads and command types given to the CLI, and session, window and program names that
//! reach tmux. Real `redis-server`, real tmux, real `panebus` processes.
//!
//! The promise checked everywhere: no process crashes, nothing is run or injected (marker
//! files that a `$(…)`, `#(…)` or backtick would create stay absent; the tmux server keeps
//! exactly its sessions, windows and global options), and nothing is lost (every hostile
//! element ends in the DLQ with a clear error, and the worker goes on serving).
//!
//! The first part is the stable-Rust twin of the `command_json` fuzz target (`fuzz/`):
//! property tests of `Command::decode`, the function a worker applies to every element.

mod support;

use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use panebus::bus::{Delivery, Keys};
use panebus::schema::{self, DecodeError, DlqCommand};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use support::coordinator::start_coordinator;
use support::panebus::PrivateBus;
use support::process::{signal_pid, ChildGuard};
use support::wait::wait_for;
use support::{RedisServer, TmuxServer, NO_ENV};

const NS: &str = "hostile";
const NODE: &str = "hnode";

// ---------------------------------------------------------------------------------------
// Decoding: any bytes in, a command or a typed error out.

/// Arbitrary JSON values, floats and hostile strings included.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        hostile_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(hostile_string(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Text mixing shell, tmux and JSON metacharacters with arbitrary Unicode (NUL included).
fn hostile_string() -> impl Strategy<Value = String> {
    let fragment = prop::sample::select(
        &[
            ";",
            "\n",
            "\r",
            "\0",
            "#{pane_id}",
            "#(id)",
            "$(id)",
            "`id`",
            "'",
            "\"",
            "\\",
            "{",
            "}",
            "[",
            "]",
            "\u{fffd}",
            "\u{202e}",
            "%1",
        ][..],
    )
    .prop_map(String::from);
    prop::collection::vec(
        prop_oneof![fragment, any::<char>().prop_map(String::from)],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

/// A command type as the protocol allows it: no whitespace or control characters.
fn command_type() -> impl Strategy<Value = String> {
    prop::collection::vec(
        any::<char>().prop_filter("no whitespace or control", |c| {
            !c.is_whitespace() && !c.is_control()
        }),
        1..16,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn valid_command() -> impl Strategy<Value = schema::Command> {
    let extra = prop::collection::btree_map("x_[a-z]{1,8}", json_value(), 0..4);
    (
        hostile_string().prop_filter("ids are not empty, without control characters", |s| {
            !s.is_empty() && !s.chars().any(char::is_control)
        }),
        command_type(),
        prop::collection::btree_map(hostile_string(), json_value(), 0..6),
        (
            any::<u64>(),
            any::<Option<u64>>(),
            any::<u32>(),
            any::<u32>(),
        ),
        (
            hostile_string(),
            any::<Option<String>>(),
            any::<bool>(),
            extra,
        ),
    )
        .prop_map(
            |(id, kind, payload, (created_ms, timeout_ms, attempt, max_attempts), rest)| {
                let (origin, workflow_id, reply, extra) = rest;
                schema::Command {
                    id,
                    kind,
                    payload: Value::Object(payload.into_iter().collect()),
                    created_ms,
                    timeout_ms,
                    attempt,
                    max_attempts,
                    origin,
                    workflow_id,
                    reply,
                    extra: extra.into_iter().collect::<Map<String, Value>>(),
                }
            },
        )
}

/// Checks what the worker does with `bytes`: decode, and keep the DLQ copy consistent.
fn check_decoding(bytes: &[u8]) -> Result<(), TestCaseError> {
    let delivery = Delivery::parse(bytes.to_vec());
    prop_assert_eq!(&delivery.raw, bytes);
    match &delivery.command {
        Ok(command) => {
            let again = schema::Command::decode(command.to_json().as_bytes());
            prop_assert_eq!(again.as_ref(), Ok(command));
            prop_assert!(matches!(DlqCommand::from_raw(bytes), DlqCommand::Parsed(_)));
        }
        Err(error) => {
            prop_assert!(error.to_string().starts_with("not a valid command"));
            prop_assert_eq!(
                DlqCommand::from_raw(bytes),
                DlqCommand::Raw(String::from_utf8_lossy(bytes).into_owned())
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_bytes_decode_to_a_command_or_a_typed_error(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_decoding(&bytes)?;
    }

    #[test]
    fn mangled_commands_decode_to_a_command_or_a_typed_error(
        command in valid_command(),
        cut in any::<prop::sample::Index>(),
        insert in hostile_string(),
    ) {
        let json = command.to_json().into_bytes();
        let at = cut.index(json.len() + 1);
        let mut spliced = json[..at].to_vec();
        spliced.extend_from_slice(insert.as_bytes());
        spliced.extend_from_slice(&json[at..]);
        check_decoding(&spliced)?;
        check_decoding(&json[..at])?;
    }

    #[test]
    fn valid_commands_round_trip_exactly(command in valid_command()) {
        let json = command.to_json();
        prop_assert_eq!(schema::Command::decode(json.as_bytes()), Ok(command.clone()));
        // Written by another client with its fields in another order: the same command.
        let reordered: Map<String, Value> = serde_json::from_str::<Map<String, Value>>(&json)
            .unwrap()
            .into_iter()
            .rev()
            .collect();
        let text = Value::Object(reordered).to_string();
        prop_assert_eq!(schema::Command::decode(text.as_bytes()), Ok(command));
    }
}

/// A command whose payload nests `depth` levels of `open` … `close` around `1`.
fn deep_payload(depth: usize, open: &str, close: &str) -> String {
    format!(
        "{{\"id\":\"d\",\"type\":\"ping\",\"payload\":{{\"a\":{}1{}}}}}",
        open.repeat(depth),
        close.repeat(depth)
    )
}

#[test]
fn each_kind_of_poison_gets_its_typed_error() {
    let not_utf8 = schema::Command::decode(b"{\"id\":\"a\",\"type\":\"p\xffing\"}");
    assert_eq!(not_utf8, Err(DecodeError::NotUtf8 { valid_up_to: 19 }));

    // Deep nesting is an error, not a stack overflow, wherever it is.
    for deep in [
        deep_payload(100_000, "[", "]"),
        deep_payload(100_000, "{\"a\":", "}"),
        format!(
            "{{\"id\":\"a\",\"type\":\"p\",\"x_extra\":{}}}",
            "[".repeat(100_000)
        ),
    ] {
        match schema::Command::decode(deep.as_bytes()) {
            Err(DecodeError::Json { message }) => {
                assert!(message.contains("recursion limit"), "{message}")
            }
            other => panic!("deep nesting decoded as {other:?}"),
        }
    }
    assert!(matches!(
        schema::Command::decode("[".repeat(100_000).as_bytes()),
        Err(DecodeError::Json { .. })
    ));

    for (text, expected) in [
        (
            r#"{"id":"a","type":"ping","payload":[1]}"#,
            "payload must be a JSON object",
        ),
        (
            r#"{"id":"a","type":"a b"}"#,
            "whitespace or control characters",
        ),
        (r#"{"id":"","type":"ping"}"#, "command id is empty"),
        (
            r#"{"id":"\u001b]2;title\u0007","type":"ping"}"#,
            "command id \"\\u{1b}]2;title\\u{7}\" contains control characters",
        ),
        (r#"{"id":"a","type":""}"#, "command type is empty"),
    ] {
        match schema::Command::decode(text.as_bytes()) {
            Err(error @ DecodeError::Invalid { .. }) => {
                assert!(error.to_string().contains(expected), "{text}: {error}")
            }
            other => panic!("{text} decoded as {other:?}"),
        }
    }
    for text in [
        "",
        "null",
        "[]",
        "\"ping\"",
        r#"{"id":5,"type":"ping"}"#,
        "{\"id\":\"a\",\"type\":\"p\u{0}\"}",
    ] {
        assert!(
            matches!(
                schema::Command::decode(text.as_bytes()),
                Err(DecodeError::Json { .. })
            ),
            "{text:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The bus: one private redis-server and `panebus` processes.

/// A private bus with this file's namespace and node, and a slower heartbeat (300 ms).
fn start_bus() -> PrivateBus {
    let mut bus = PrivateBus::start(NS, NODE);
    bus.set("PANEBUS_HEARTBEAT_INTERVAL", "300ms");
    bus
}

/// Starts `panebus worker --role h EXTRA` for pane `pane` (TMUX_PANE set, no tmux needed)
/// and waits until it is alive on the bus.
fn worker(bus: &PrivateBus, pane: &str, extra: &[&str]) -> ChildGuard {
    bus.role_worker(pane, "h", extra)
}

fn push_raw(bus: &PrivateBus, worker: &str, element: &[u8]) {
    let _: i64 = redis::cmd("LPUSH")
        .arg(bus.keys.queue(worker))
        .arg(element)
        .query(&mut bus.redis.conn())
        .unwrap();
}

fn llen(bus: &PrivateBus, key: &str) -> usize {
    redis::cmd("LLEN")
        .arg(key)
        .query(&mut bus.redis.conn())
        .unwrap()
}

fn dlq(bus: &PrivateBus) -> Vec<Value> {
    bus.json(&["dlq", "list", "--limit", "1000"])
        .as_array()
        .unwrap()
        .clone()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_exit(out: &Output, expected: i32, message: &str) {
    let err = text(&out.stderr);
    assert_eq!(
        code(out),
        expected,
        "expected exit {expected}; stdout: {}; stderr: {err}",
        text(&out.stdout)
    );
    assert!(err.contains(message), "stderr lacks {message:?}: {err}");
}

/// How long a condition may take to come true.
const WAIT: Duration = Duration::from_secs(40);

#[test]
fn poison_of_every_kind_reaches_the_dlq_and_the_worker_survives() {
    let bus = start_bus();
    let marker = tempfile::tempdir().unwrap();
    let m = marker.path().join("ran");
    let _worker = worker(&bus, "%1", &[]);
    let id = format!("{NODE}/%1");

    let deep = deep_payload(200_000, "[", "]");
    let poison: Vec<(Vec<u8>, &str)> = vec![
        (b"\xff\xfe{not UTF-8 at all".to_vec(), "not UTF-8"),
        (
            b"{\"id\":\"u\",\"type\":\"ping\",\"payload\":{\"t\":\"\xc3\x28\"}}".to_vec(),
            "not UTF-8",
        ),
        (
            b"{\"id\":\"n\",\"type\":\"ping\",\"payload\":{\"t\":\"a\x00b\"}}".to_vec(),
            "control character",
        ),
        (deep.into_bytes(), "recursion limit"),
        (
            br#"{"id":"p","type":"ping","payload":[1]}"#.to_vec(),
            "payload must be a JSON object",
        ),
        (
            br#"{"id":"w","type":"kill-server; x","payload":{}}"#.to_vec(),
            "whitespace or control",
        ),
        (Vec::new(), "EOF"),
        (b"null".to_vec(), "expected struct Command"),
        (br#"{"id":5,"type":"ping"}"#.to_vec(), "invalid type"),
        (
            format!(
                "$(touch {m}) `touch {m}` #(touch {m}); kill-server",
                m = m.display()
            )
            .into_bytes(),
            "expected value",
        ),
    ];
    for (element, _) in &poison {
        push_raw(&bus, &id, element);
    }
    wait_for("every element is dead-lettered", WAIT, || {
        dlq(&bus).len() == poison.len()
    });
    let dlq = dlq(&bus);
    for (element, expected) in &poison {
        let raw = String::from_utf8_lossy(element);
        let entry = dlq
            .iter()
            .find(|e| e["command"] == raw.as_ref())
            .unwrap_or_else(|| panic!("no DLQ entry for {:?}", &raw[..raw.len().min(80)]));
        assert_eq!(entry["reason"], "poison", "{entry}");
        assert_eq!(entry["worker"], id.as_str());
        let error = entry["error"].as_str().unwrap();
        assert!(
            error.starts_with("not a valid command") && error.contains(expected),
            "{:?}: {error}",
            &raw[..raw.len().min(80)]
        );
        // `dlq show` prints it too, and a poison entry cannot be retried (exit 6).
        let shown = bus.json(&["dlq", "show", entry["id"].as_str().unwrap()]);
        assert_eq!(shown["id"], entry["id"]);
        let out = bus.run(&["dlq", "retry", entry["id"].as_str().unwrap()]);
        assert_eq!(code(&out), 6, "{}", text(&out.stderr));
    }
    // Extreme numbers are valid and run: a time limit of u64::MAX ms means no practical
    // limit, a creation time in the future gives a latency of 0.
    push_raw(
        &bus,
        &id,
        br#"{"id":"huge-numbers","type":"ping","timeout_ms":18446744073709551615,"created_ms":18446744073709551615,"attempt":4294967295,"max_attempts":4294967295}"#,
    );
    let pong = bus.json(&["result", "huge-numbers", "--wait", "30"]);
    assert_eq!(pong["ok"], true, "{pong}");
    assert_eq!(pong["result"]["latency_ms"], 0, "{pong}");
    let out = bus.run(&[
        "dispatch",
        "%1",
        "ping",
        "--timeout",
        "18446744073709551615",
        "--wait",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let pong = bus.json(&["result", "huge-numbers", "--wait", "18446744073709551615"]);
    assert_eq!(pong["ok"], true, "{pong}");
    for fan_out in [
        &["broadcast", "ping"][..],
        &["dispatch-role", "h", "ping"][..],
    ] {
        let mut args = fan_out.to_vec();
        args.extend(["--wait", "--wait-timeout", "18446744073709551615"]);
        let out = bus.run(&args);
        assert_eq!(code(&out), 0, "{args:?}: {}", text(&out.stderr));
    }

    // Nothing is left behind, the worker still serves, nothing ran.
    assert_eq!(llen(&bus, &bus.keys.queue(&id)), 0);
    assert_eq!(llen(&bus, &bus.keys.processing(&id)), 0);
    let pong = bus.json(&["dispatch", "%1", "ping", "--wait"]);
    assert_eq!(pong["ok"], true, "{pong}");
    assert!(bus.alive("%1"));
    assert!(!m.exists(), "a queue element ran a command");
    // Counts at the edge of what Redis takes: every entry, or a usage error.
    let all = bus.json(&["dlq", "list", "--limit", "9223372036854775807"]);
    assert_eq!(all.as_array().unwrap().len(), poison.len());
    let events = bus.run(&["events", "--count", "9223372036854775807"]);
    assert_eq!(code(&events), 0, "{}", text(&events.stderr));
    for args in [
        &["dlq", "list", "--limit", "18446744073709551615"][..],
        &["events", "--count", "18446744073709551615"][..],
    ] {
        assert_exit(&bus.run(args), 2, "is not in 0..=9223372036854775807");
    }
    // `dlq list` in table form copes with every one of them.
    let out = bus.run(&["dlq", "list"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).matches("poison").count(), poison.len());
}

#[test]
fn poison_left_unacked_by_a_dead_worker_is_recovered_into_the_dlq() {
    let bus = start_bus();
    let id = format!("{NODE}/%2");
    // A crashed incarnation left bytes that are not UTF-8 in the processing list.
    let _: i64 = redis::cmd("LPUSH")
        .arg(bus.keys.processing(&id))
        .arg(&b"\x80\x81 left behind"[..])
        .query(&mut bus.redis.conn())
        .unwrap();
    let _worker = worker(&bus, "%2", &[]);
    wait_for("the leftover is dead-lettered", WAIT, || {
        dlq(&bus).len() == 1
    });
    let entry = &dlq(&bus)[0];
    assert_eq!(entry["reason"], "poison");
    assert_eq!(entry["command"], "\u{fffd}\u{fffd} left behind");
    assert!(entry["error"].as_str().unwrap().contains("not UTF-8"));
    assert_eq!(llen(&bus, &bus.keys.processing(&id)), 0);
    let pong = bus.json(&["dispatch", "%2", "ping", "--wait"]);
    assert_eq!(pong["ok"], true, "{pong}");
}

#[test]
fn hostile_payloads_and_types_arrive_literally_or_fail_with_exit_6() {
    let bus = start_bus();
    let marker = tempfile::tempdir().unwrap();
    let m = marker.path().join("ran");
    let _worker = worker(
        &bus,
        "%3",
        &[
            "--handler",
            "echo=cat",
            "--handler",
            r#"fail=sh -c "printf '\033]2;title\007\033[2J\nsecond line' >&2; exit 3""#,
        ],
    );
    let hostile = format!(
        "a;b\nc\r#{{pane_id}} #(touch {m}) $(touch {m}) `touch {m}` 'single' \"double\" \\ \u{0}nul \u{202e}",
        m = m.display()
    );
    let payload =
        json!({ "text": hostile, "nested": {"list": [hostile, 1.5e300, -0.0, u64::MAX]} });
    let result = bus.json(&[
        "dispatch",
        "%3",
        "echo",
        "--payload",
        &payload.to_string(),
        "--wait",
    ]);
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["result"]["payload"], payload);

    // Nesting: deep but under serde_json's limit works end to end; deeper is exit 6.
    let nested = |depth: usize| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let ok = bus.json(&[
        "dispatch",
        "%3",
        "echo",
        "--payload",
        &nested(100),
        "--wait",
    ]);
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(
        ok["result"]["payload"],
        serde_json::from_str::<Value>(&nested(100)).unwrap()
    );
    let out = bus.run_with_stdin(
        &["dispatch", "%3", "echo", "--payload", "-"],
        nested(100_000).as_bytes(),
    );
    assert_exit(&out, 6, "recursion limit exceeded");

    // Payload bytes that are not UTF-8, from stdin or a file: invalid payload.
    let out = bus.run_with_stdin(
        &["dispatch", "%3", "echo", "--payload", "-"],
        b"{\"text\": \"\xff\"}",
    );
    assert_exit(&out, 6, "not UTF-8");
    let file = marker.path().join("payload.json");
    std::fs::write(&file, b"{\"text\": \"\xc3\x28\"}").unwrap();
    let out = bus.run(&[
        "dispatch",
        "%3",
        "echo",
        "--payload",
        &format!("@{}", file.display()),
    ]);
    assert_exit(&out, 6, "not UTF-8");

    // Types: shell and tmux syntax is just an unknown type; whitespace or control is refused.
    let kind = format!(
        "$(touch${{IFS}}{m});#{{pane_id}}#(id)`id`'\"",
        m = m.display()
    );
    let failed = bus.run(&["dispatch", "%3", &kind, "--wait", "--json"]);
    assert_eq!(code(&failed), 7, "{}", text(&failed.stderr));
    let failed: Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains(&format!("no handler for command type {kind}")),
        "{failed}"
    );
    for bad in ["kill-server; x", "a\nb", "tab\there", "nul\u{1}"] {
        let out = bus.run(&["dispatch", "%3", bad]);
        assert_exit(&out, 6, "whitespace or control characters");
    }
    // A handler's stderr with escape sequences and newlines is kept in the DLQ entry, but
    // the table shows it on one line without control characters.
    let failed = bus.run(&["dispatch", "%3", "fail", "--wait"]);
    assert_eq!(code(&failed), 7, "{}", text(&failed.stderr));
    let entry = dlq(&bus)
        .into_iter()
        .find(|e| e["command"]["type"] == "fail")
        .unwrap();
    assert!(
        entry["error"].as_str().unwrap().contains("\u{1b}]2;title"),
        "{entry}"
    );
    let table = bus.run(&["dlq", "list"]);
    let table = text(&table.stdout);
    assert_eq!(table.lines().count(), 1 + dlq(&bus).len(), "{table}");
    assert!(
        !table.chars().any(|c| c.is_control() && c != '\n'),
        "{table:?}"
    );

    assert!(!m.exists(), "hostile text ran a command");
    assert_eq!(llen(&bus, &bus.keys.queue(&format!("{NODE}/%3"))), 0);
}

#[test]
fn the_payload_limit_is_exact_and_oversize_is_exit_6_with_nothing_queued() {
    let mut bus = start_bus();
    let limit = 4000;
    bus.set("PANEBUS_MAX_PAYLOAD_BYTES", &limit.to_string());
    let _worker = worker(&bus, "%4", &["--handler", "echo=cat"]);
    let queue = bus.keys.queue(&format!("{NODE}/%5"));

    // Measure the envelope on a queue nobody drains, then fill it up to the byte.
    let out = bus.run(&[
        "dispatch",
        "%5",
        "echo",
        "--force",
        "--payload",
        r#"{"t":""}"#,
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let queued: Vec<u8> = redis::cmd("LPOP")
        .arg(&queue)
        .query(&mut bus.redis.conn())
        .unwrap();
    let room = limit - queued.len();
    let exactly = json!({ "t": "x".repeat(room) }).to_string();
    let out = bus.run(&["dispatch", "%5", "echo", "--force", "--payload", &exactly]);
    assert_eq!(code(&out), 0, "at the limit: {}", text(&out.stderr));
    let queued: Vec<u8> = redis::cmd("LPOP")
        .arg(&queue)
        .query(&mut bus.redis.conn())
        .unwrap();
    assert_eq!(queued.len(), limit, "the command is exactly at the limit");

    let over = json!({ "t": "x".repeat(room + 1) }).to_string();
    for args in [
        &["dispatch", "%5", "echo", "--force", "--payload", &over][..],
        &["dispatch-role", "h", "echo", "--payload", &over][..],
        &["broadcast", "echo", "--payload", &over][..],
    ] {
        let out = bus.run(args);
        assert_exit(&out, 6, &format!("more than the limit of {limit} bytes"));
    }
    assert_eq!(llen(&bus, &queue), 0);
    assert_eq!(llen(&bus, &bus.keys.queue(&format!("{NODE}/%4"))), 0);

    // At the limit it also runs (the envelope does not depend on the worker): the worker
    // echoes the payload back.
    let result = bus.json(&["dispatch", "%4", "echo", "--payload", &exactly, "--wait"]);
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(
        result["result"]["payload"]["t"].as_str().unwrap().len(),
        room
    );

    // A huge payload far over the limit is refused the same way, from stdin too.
    let huge = json!({ "t": "z".repeat(8 << 20) }).to_string();
    let out = bus.run_with_stdin(
        &["dispatch", "%4", "echo", "--payload", "-"],
        huge.as_bytes(),
    );
    assert_exit(&out, 6, "more than the limit");
}

// ---------------------------------------------------------------------------------------
// tmux: hostile session, window and program names.

/// What of a tmux server must not change behind the user's back.
fn tmux_snapshot(tmux: &TmuxServer) -> (BTreeSet<String>, BTreeSet<String>, String, String) {
    let lines = |args: &[&str]| -> BTreeSet<String> {
        tmux.run(args).lines().map(str::to_string).collect()
    };
    (
        lines(&["list-sessions", "-F", "#{session_id} #{session_name}"]),
        lines(&["list-windows", "-a", "-F", "#{window_id}"]),
        tmux.run(&["show-options", "-g"]),
        tmux.run(&["show-options", "-gw"]),
    )
}

#[test]
fn hostile_session_window_and_program_names_are_only_data() {
    let tmux = TmuxServer::start("plain");
    let redis = RedisServer::start();
    let keys = Keys::new(NS);
    let scratch = tempfile::tempdir().unwrap();
    let m = scratch.path().join("ran");
    let socket = tmux.socket.to_str().unwrap().to_string();
    let env = [
        ("PANEBUS_REDIS_URL", redis.url()),
        ("PANEBUS_NAMESPACE", NS.to_string()),
        ("PANEBUS_NODE", NODE.to_string()),
        ("PANEBUS_HEARTBEAT_INTERVAL", "300ms".to_string()),
        ("PANEBUS_HEARTBEAT_TTL", "3".to_string()),
        ("PANEBUS_LOG_LEVEL", "info".to_string()),
    ];
    let panebus = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_panebus"));
        cmd.args(args)
            .env_remove("TMUX")
            .env_remove("TMUX_PANE")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null());
        cmd
    };
    let hostile = format!(
        "s;kill-server #{{session_id}} #(touch {m}) $(touch {m}) `touch {m}` 'q' \"d\" {{}} ;",
        m = m.display()
    );

    // `up` refuses such a name before it starts anything.
    let before = tmux_snapshot(&tmux);
    let out = panebus(&["up", "--no-attach", "-S", &socket, "--session", &hostile])
        .output()
        .unwrap();
    assert_ne!(code(&out), 0);
    assert!(
        text(&out.stderr).contains("is not allowed"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(tmux_snapshot(&tmux), before);

    // A session made by hand with that name. tmux format-expands `new-session -s` and
    // ends a command at an argument ending in `;`, so `#` is doubled and the `;` escaped.
    let given = format!("{}\\;", hostile[..hostile.len() - 1].replace('#', "##"));
    tmux.run(&["new-session", "-d", "-s", &given, "-x", "120", "-y", "40"]);
    let session = tmux
        .run(&["list-sessions", "-F", "#{session_name}"])
        .lines()
        .find(|s| *s != "plain")
        .unwrap()
        .to_string();
    assert_eq!(session, hostile.replace('.', "_"));
    // The worker's program is reached through a path with a hostile file name; automatic
    // renaming puts (the start of) that name on its window.
    let bin_dir = scratch.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    let program = bin_dir.join("w;kill-server #{pane_id} #(false) $(false) `false` 'q' \"d\"");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_panebus"), &program).unwrap();

    let mut coordinator = start_coordinator(
        panebus(&[
            "attach",
            &session,
            "-S",
            &socket,
            "--check-interval",
            "200ms",
            "--backoff-base",
            "200ms",
        ]),
        &scratch.path().join("coord.log"),
        &redis,
        &keys.lease(NODE, &session),
    );
    let pane = tmux.new_window(
        &format!("={session}:"),
        &env,
        &[program.to_str().unwrap(), "worker", "--role", "h"],
    );
    let worker = format!("{NODE}/{pane}");
    let display = |format: &str| {
        tmux.run(&["display-message", "-p", "-t", &pane, format])
            .trim_end_matches('\n')
            .to_string()
    };
    wait_for("the coordinator manages the worker", WAIT, || {
        display("#{@panebus_worker}") == worker
    });
    // A program in another window sets a hostile window name and pane title (after a
    // second, once its window allows renaming).
    let renamer = tmux.new_window(
        &format!("={session}:"),
        NO_ENV,
        &[
            "sh",
            "-c",
            "sleep 1; printf '\\033k%s\\033\\\\\\033]2;%s\\033\\\\' \"$1\" \"$1\"; exec sleep 1000",
            "sh",
            &format!(
                "r;kill-server #{{window_id}} #(touch {m}) $(touch {m})",
                m = m.display()
            ),
        ],
    );
    tmux.run(&["set-option", "-w", "-t", &renamer, "allow-rename", "on"]);
    wait_for("the program renamed its window", WAIT, || {
        tmux.run(&["display-message", "-p", "-t", &renamer, "#{window_name}"])
            .starts_with("r;kill-server")
    });
    let snapshot = tmux_snapshot(&tmux);

    // Kill -9 the worker: respawned in place through its hostile program path.
    let old_pid: u32 = display("#{pane_pid}").parse().unwrap();
    signal_pid(old_pid, libc::SIGKILL);
    wait_for("the worker is respawned", WAIT, || {
        display("#{pane_dead}") == "0"
            && display("#{pane_pid}").parse::<u32>().unwrap() != old_pid
            && !display("#{pane_current_command}").is_empty()
    });

    // Read commands show the names as data.
    let bus_cli = |args: &[&str]| {
        let out = panebus(args).output().unwrap();
        assert_eq!(code(&out), 0, "panebus {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    wait_for("the respawned worker is registered", WAIT, || {
        let panes: Value = serde_json::from_str(&bus_cli(&["panes", "--json"])).unwrap();
        panes.as_array().unwrap().iter().any(|p| {
            p["id"] == worker.as_str()
                && p["alive"] == true
                && p["session"] == session.as_str()
                && p["argv"][0] == program.to_str().unwrap()
        })
    });
    assert!(bus_cli(&["panes"]).contains(&worker));
    let status: Value = serde_json::from_str(&bus_cli(&["status", "--json"])).unwrap();
    assert_eq!(status["workers"]["alive"], 1, "{status}");
    assert!(bus_cli(&["status-line"]).contains('1'));
    assert!(bus_cli(&["status-line", "--format", "plain"]).contains('1'));
    wait_for("the session status option", WAIT, || {
        tmux.run(&[
            "show-options",
            "-v",
            "-t",
            &format!("={session}:"),
            "@panebus_status",
        ])
        .starts_with("pb 1 ok")
    });

    // tail finds the hostile session by itself, and with --session.
    for extra in [&[][..], &["--session", session.as_str()][..]] {
        let mut args = vec!["tail", pane.as_str(), "-S", socket.as_str()];
        args.extend_from_slice(extra);
        let mut tail = ChildGuard(
            panebus(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let mut stdout = tail.0.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&seen).contains("command completed") {
                    return true;
                }
            }
            false
        });
        std::thread::sleep(Duration::from_millis(500));
        bus_cli(&["dispatch", &pane, "ping", "--wait"]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !reader.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(reader.is_finished(), "tail {extra:?} printed nothing");
        assert!(reader.join().unwrap(), "tail {extra:?} missed the output");
        let _ = tail.0.kill();
        let _ = tail.0.wait();
    }

    // Nothing ran, nothing was added or changed, the server is alive.
    assert!(!m.exists(), "a hostile name ran a command");
    assert_eq!(tmux_snapshot(&tmux), snapshot);
    let _ = coordinator.0.kill();
    let _ = coordinator.0.wait();
    assert_eq!(
        tmux.run(&["list-sessions", "-F", "#{session_name}"])
            .lines()
            .collect::<BTreeSet<_>>(),
        BTreeSet::from(["plain", session.as_str()])
    );
}

#[test]
fn layout_arguments_ending_in_semicolons_reach_the_pane_literally() {
    let tmux = TmuxServer::start("plain");
    let redis = RedisServer::start();
    let home = tempfile::Builder::new()
        .prefix("pbhostile")
        .tempdir_in("/tmp")
        .unwrap();
    let workdir = home.path().join("wd;");
    std::fs::create_dir(&workdir).unwrap();
    let marker = home.path().join("marker");
    // Each of these, passed to the tmux command line as is, would end tmux's command there
    // and run the next argument (`kill-server`) as a tmux command.
    let layout = format!(
        r#"
[session]
name = "semi"

[[role]]
name = "probe"
working_dir = {workdir:?}
env = {{ V = "v;" }}
command = ["sh", "-c", "printf '%s|%s|%s' \"$0\" \"$V\" \"$(pwd)\" > {marker}; exec sleep 600;", "kill-server"]
"#,
        workdir = workdir.display().to_string(),
        marker = marker.display(),
    );
    let file = home.path().join("panebus.toml");
    std::fs::write(&file, layout).unwrap();
    let socket = tmux.socket.to_str().unwrap().to_string();
    // `panebus ARGS` on the private bus, with a home of its own.
    let panebus_at_home = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_panebus"));
        command
            .args(args)
            .env_remove("TMUX")
            .env("PANEBUS_REDIS_URL", redis.url())
            .env("PANEBUS_NAMESPACE", NS)
            .env("PANEBUS_NODE", NODE)
            .env("XDG_RUNTIME_DIR", home.path().join("run"))
            .env("XDG_STATE_HOME", home.path().join("state"))
            .env("HOME", home.path());
        command
    };
    let out = panebus_at_home(&[
        "up",
        "--no-attach",
        "-S",
        &socket,
        "-f",
        file.to_str().unwrap(),
    ])
    .env_remove("TMUX_PANE")
    .current_dir(home.path())
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert_eq!(code(&out), 0, "up: {}", text(&out.stderr));
    wait_for("the probe pane wrote its marker", WAIT, || marker.exists());
    wait_for("the marker is complete", WAIT, || {
        std::fs::read_to_string(&marker)
            .unwrap()
            .matches('|')
            .count()
            == 2
    });
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        format!("kill-server|v;|{}", workdir.display())
    );
    assert_eq!(
        tmux.run(&["list-sessions", "-F", "#{session_name}"])
            .lines()
            .collect::<BTreeSet<_>>(),
        BTreeSet::from(["plain", "semi"])
    );
    let down = panebus_at_home(&["down", "semi", "-S", &socket])
        .output()
        .unwrap();
    assert_eq!(code(&down), 0, "down: {}", text(&down.stderr));
}
