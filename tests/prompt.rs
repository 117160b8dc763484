//! The `prompt` handler against the fake agents in `fixtures/agents/`: the same code path
//! that runs the real agent CLI, with the agent command pointed at a script.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use panebus::worker::prompt::{run_agent, AgentCommand, PromptError, PromptRequest, KILL_GRACE};
use support::process::process_gone;
use support::wait::wait_for_async;

fn agent(script: &str) -> AgentCommand {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/agents")
        .join(script);
    AgentCommand::new(vec![path.to_str().unwrap().to_string(), "-p".to_string()]).unwrap()
}

fn request(text: &str, dir: Option<PathBuf>) -> PromptRequest {
    PromptRequest {
        text: text.to_string(),
        working_dir: dir,
    }
}

async fn run(
    agent: &AgentCommand,
    request: &PromptRequest,
    timeout: Duration,
) -> (Result<serde_json::Value, PromptError>, Vec<u8>) {
    let mut echo_out = Vec::new();
    let mut echo_err = Vec::new();
    let outcome = run_agent(
        agent,
        request,
        timeout,
        KILL_GRACE,
        &mut echo_out,
        &mut echo_err,
    )
    .await;
    (outcome.and_then(|o| o.into_result()), echo_out)
}

#[tokio::test]
async fn answer_is_captured_streamed_and_runs_in_the_working_dir() {
    let dir = tempfile::tempdir().unwrap();
    let canonical = std::fs::canonicalize(dir.path()).unwrap();
    let (result, echoed) = run(
        &agent("answer.sh"),
        &request("Fix the failing tests", Some(dir.path().to_path_buf())),
        Duration::from_secs(30),
    )
    .await;
    let result = result.unwrap();
    let text = result["result"].as_str().unwrap();
    assert!(
        text.starts_with("answer to: Fix the failing tests\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("cwd: {}\n", canonical.display())),
        "{text}"
    );
    assert_eq!(result["exit_code"], 0);
    assert_eq!(result["working_dir"], canonical.to_str().unwrap());
    assert_eq!(result["stdout_truncated"], false);
    assert_eq!(String::from_utf8(echoed).unwrap(), text);
}

#[tokio::test]
async fn json_answer_surfaces_session_and_cost() {
    let (result, _) = run(
        &agent("json.sh"),
        &request("hello", None),
        Duration::from_secs(30),
    )
    .await;
    let result = result.unwrap();
    assert_eq!(result["result"], "received 5 bytes");
    assert_eq!(result["session_id"], "fake-session-5");
    assert_eq!(result["total_cost_usd"], 0.0123);
    assert_eq!(result["agent_json"]["type"], "result");
}

#[tokio::test]
async fn failure_reports_exit_status_and_last_stderr_lines() {
    let (result, _) = run(
        &agent("fail.sh"),
        &request("do it", None),
        Duration::from_secs(30),
    )
    .await;
    let error = result.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("exited with status 2"), "{message}");
    assert!(message.contains("stderr line 11\n"), "{message}");
    assert!(message.ends_with("stderr line 30"), "{message}");
    assert!(!message.contains("stderr line 10\n"), "{message}");
}

#[tokio::test]
async fn crash_reports_the_signal() {
    let (result, _) = run(
        &agent("crash.sh"),
        &request("do it", None),
        Duration::from_secs(30),
    )
    .await;
    let message = result.unwrap_err().to_string();
    assert!(
        message.contains("killed by signal 9 (SIGKILL)"),
        "{message}"
    );
    assert!(message.contains("crashing"), "{message}");
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    std::env::set_var("FAKE_AGENT_PIDFILE", &pidfile);
    let started = Instant::now();
    let (result, _) = run(
        &agent("hang.sh"),
        &request("never ends", None),
        Duration::from_millis(1500),
    )
    .await;
    let message = result.unwrap_err().to_string();
    assert!(message.contains("timed out after 1s 500ms"), "{message}");
    assert!(message.contains("process group was killed"), "{message}");
    assert!(started.elapsed() >= Duration::from_millis(1500));

    let pids = std::fs::read_to_string(&pidfile).expect("hang.sh wrote its pids");
    let pids: Vec<u32> = pids
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "agent and its child");
    wait_for_async(
        &format!("agent {pids:?} to end after the timeout"),
        Duration::from_secs(20),
        || async { pids.iter().all(|&pid| process_gone(pid)) },
    )
    .await;
}

#[tokio::test]
async fn missing_agent_names_the_variable() {
    for line in [
        "panebus-no-such-agent-xyz -p",
        "/nonexistent/dir/claude --dangerously-skip-permissions -p",
    ] {
        let agent = AgentCommand::parse(line).unwrap();
        let (result, _) = run(&agent, &request("hi", None), Duration::from_secs(5)).await;
        let error = result.unwrap_err();
        assert!(
            matches!(error, PromptError::AgentNotFound { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("not found"), "{message}");
        assert!(message.contains("PANEBUS_AGENT_CMD="), "{message}");
    }
}

#[tokio::test]
async fn bad_working_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file.txt");
    std::fs::write(&file, "x").unwrap();
    for (path, expected) in [
        (dir.path().join("missing"), "does not exist"),
        (file, "is not a directory"),
    ] {
        let (result, _) = run(
            &agent("answer.sh"),
            &request("hi", Some(path)),
            Duration::from_secs(5),
        )
        .await;
        let message = result.unwrap_err().to_string();
        assert!(message.contains(expected), "{message}");
        assert!(message.contains("working_dir"), "{message}");
    }
}

#[tokio::test]
async fn hostile_text_is_one_literal_argument() {
    let hostile = "a; rm -rf /tmp/x $(touch pwned) `id` 'single' \"double\" \\ \n#{pane_id} #(date) %% -- --help\n\n";
    let dir = tempfile::tempdir().unwrap();
    let (result, _) = run(
        &agent("echo.sh"),
        &request(hostile, Some(dir.path().to_path_buf())),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(result.unwrap()["result"], hostile);
    assert!(!dir.path().join("pwned").exists());
}

#[tokio::test]
async fn oversize_and_nul_prompts_are_refused_before_spawning() {
    let huge = "x".repeat(200 * 1024);
    let (result, _) = run(
        &agent("echo.sh"),
        &request(&huge, None),
        Duration::from_secs(5),
    )
    .await;
    let message = result.unwrap_err().to_string();
    assert!(message.contains("204800 bytes"), "{message}");

    let (result, _) = run(
        &agent("echo.sh"),
        &request("a\0b", None),
        Duration::from_secs(5),
    )
    .await;
    assert!(matches!(result.unwrap_err(), PromptError::NulInPrompt));
}

#[tokio::test]
async fn a_prompt_at_the_size_limit_still_runs() {
    let text = "y".repeat(panebus::worker::prompt::MAX_PROMPT_BYTES);
    let (result, _) = run(
        &agent("json.sh"),
        &request(&text, None),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        result.unwrap()["result"],
        format!("received {} bytes", text.len())
    );
}

mod support;

mod through_a_worker {
    //! The same handler as registered in a real worker: dispatch, result, failure.

    use std::time::{Duration, Instant};

    use panebus::bus::Bus;
    use panebus::config::Config;
    use panebus::schema::{Command, CommandResult};
    use panebus::worker::{StopTokens, Worker};
    use serde_json::json;

    use super::support::RedisServer;

    async fn dispatch(script: &str, payload: serde_json::Value, timeout_ms: u64) -> CommandResult {
        let redis = RedisServer::start();
        let mut config = Config::from_lookup(|_| None).unwrap();
        config.redis_url = redis.url();
        config.namespace = "pt".into();
        config.node = "ptnode".into();
        config.heartbeat_interval = Duration::from_millis(200);
        config.heartbeat_ttl = Duration::from_secs(5);
        config.agent_cmd = vec![
            format!("{}/fixtures/agents/{script}", env!("CARGO_MANIFEST_DIR")),
            "-p".into(),
        ];
        let bus = Bus::connect(&config).await.unwrap();
        let tokens = StopTokens::new();
        let builder = Worker::builder(config)
            .pane("%7")
            .role("worker")
            .stop_tokens(tokens.clone());
        let id = builder.worker_id();
        let task = tokio::spawn(builder.run());
        let deadline = Instant::now() + Duration::from_secs(20);
        while !bus.is_registered(&id).await.unwrap() {
            assert!(Instant::now() < deadline, "worker did not register");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let mut cmd = Command::new("prompt", payload, "test");
        cmd.timeout_ms = Some(timeout_ms);
        bus.enqueue(&id, &cmd, false).await.unwrap();
        let mut blocking = bus.blocking_connection().await.unwrap();
        let result = bus
            .wait_result(&mut blocking, &cmd.id, Duration::from_secs(60))
            .await
            .unwrap();
        tokens.stop.cancel();
        tokens.force.cancel();
        let _ = task.await;
        result
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hostile_prompt_round_trips_through_a_worker() {
        let hostile = "x; $(id) `id` \"q\" 'q' \n#{pane_id} #(date)";
        let result = dispatch("echo.sh", json!({"text": hostile}), 30_000).await;
        assert!(result.ok, "{result:?}");
        assert_eq!(result.result.unwrap()["result"], hostile);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_payload_fails_the_command_with_a_clear_error() {
        let result = dispatch("echo.sh", json!({"context": {"working_dir": "/"}}), 30_000).await;
        assert!(!result.ok);
        let error = result.error.unwrap();
        assert!(error.contains("\"text\" is missing"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn command_timeout_stops_the_agent_before_the_worker_gives_up() {
        let result = dispatch("hang.sh", json!({"text": "hang"}), 4_000).await;
        assert!(!result.ok);
        let error = result.error.unwrap();
        // The handler's own report (agent limit 3 s of the command's 4 s), not the worker's.
        assert!(error.contains("agent timed out after 3s"), "{error}");
        assert!(error.contains("process group was killed"), "{error}");
    }
}
