//! The `prompt` command: run the agent CLI on a piece of text and reply with its answer.
//!
//! A worker that receives `{"type": "prompt", "payload": {"text": "...", "context":
//! {"working_dir": "..."}}}` runs `PANEBUS_AGENT_CMD` (default
//! `claude --dangerously-skip-permissions -p`) split into argv without a shell, with the text
//! appended as ONE more argument, in the working directory, in a process group of its own.
//! While it runs, the agent's stdout and stderr are copied to the worker's own terminal (the
//! tmux pane, so a person watching sees the agent work) and stdout is captured as the result.
//! When the agent prints JSON (`--output-format json`), the result keeps it structured and
//! surfaces `session_id`, `total_cost_usd` and `result`.
//!
//! The agent never outlives its command: on timeout its whole process group gets SIGTERM,
//! then SIGKILL after [`KILL_GRACE`]; when the agent exits, anything it left behind in its
//! group is ended the same way; if the handler future is dropped (the worker shuts down),
//! the group is killed by a guard. Captures are bounded: the last [`STDOUT_CAPTURE_LIMIT`]
//! bytes of stdout and the last [`STDERR_TAIL_LINES`] lines of stderr are kept.

use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::Command as ProcessCommand;
use tokio::time::{sleep_until, Instant};

use super::handler::{Handler, HandlerContext, HandlerError, HandlerFuture};
use crate::config::Config;
use crate::schema::Command;

/// The agent command line used when `PANEBUS_AGENT_CMD` is not set.
pub const DEFAULT_AGENT_CMD: &str = "claude --dangerously-skip-permissions -p";

/// Bytes of the agent's stdout kept as the result: the LAST ones, because an agent's
/// conclusion (and the workflow's `COMPOUND:` marker) comes at the end.
pub const STDOUT_CAPTURE_LIMIT: usize = 1024 * 1024;

/// Lines of stderr quoted in a failure report.
pub const STDERR_TAIL_LINES: usize = 20;

/// Bytes of stderr kept while the agent runs, from which the tail lines are taken.
const STDERR_CAPTURE_LIMIT: usize = 64 * 1024;

/// Largest prompt text accepted. Linux caps ONE argv element at 128 KiB including its
/// terminating NUL (`MAX_ARG_STRLEN`); a longer text would make `execve` fail with E2BIG.
pub const MAX_PROMPT_BYTES: usize = 128 * 1024 - 1;

/// Time between SIGTERM and SIGKILL when the agent's process group is ended.
pub const KILL_GRACE: Duration = Duration::from_secs(3);

/// Everything that can go wrong running a prompt; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("invalid prompt payload: {0}; expected {{\"text\": \"...\", \"context\": {{\"working_dir\": \"...\"}}}}")]
    BadPayload(String),
    #[error("PANEBUS_AGENT_CMD ({line:?}) cannot be split into arguments: {reason}; set it to the agent command line, e.g. PANEBUS_AGENT_CMD='{DEFAULT_AGENT_CMD}'")]
    BadAgentCmd { line: String, reason: String },
    #[error("PANEBUS_AGENT_CMD is empty; set it to the agent command line, e.g. PANEBUS_AGENT_CMD='{DEFAULT_AGENT_CMD}'")]
    EmptyAgentCmd,
    #[error("working directory {path:?} is not a directory ({reason}); pass an existing directory in payload.context.working_dir")]
    WorkingDir { path: PathBuf, reason: String },
    #[error("prompt text is {bytes} bytes; one program argument is limited to {MAX_PROMPT_BYTES} bytes (Linux MAX_ARG_STRLEN): shorten the prompt or put the details in a file in the working directory and refer to it")]
    PromptTooLong { bytes: usize },
    #[error(
        "prompt text contains a NUL byte, which cannot be passed as a program argument; remove it"
    )]
    NulInPrompt,
    #[error("agent program {program:?} not found (PANEBUS_AGENT_CMD={line:?}); install the agent (Claude Code: `npm install -g @anthropic-ai/claude-code`) or set PANEBUS_AGENT_CMD to its command line, e.g. PANEBUS_AGENT_CMD='{DEFAULT_AGENT_CMD}'")]
    AgentNotFound { program: String, line: String },
    #[error("cannot start agent program {program:?} (PANEBUS_AGENT_CMD={line:?}): {source}; check that it is executable")]
    Spawn {
        program: String,
        line: String,
        source: std::io::Error,
    },
    #[error("agent timed out after {}; its process group was killed{}", humantime::format_duration(*.timeout), format_tail(.stderr_tail))]
    TimedOut {
        timeout: Duration,
        stderr_tail: Vec<String>,
    },
    #[error("agent {status}{}", format_tail(.stderr_tail))]
    Failed {
        status: String,
        stderr_tail: Vec<String>,
    },
    #[error("agent reported an error: {0}")]
    AgentReportedError(String),
    #[error("lost the agent's output: {0}")]
    Io(#[from] std::io::Error),
}

fn format_tail(lines: &[String]) -> String {
    if lines.is_empty() {
        String::from(" (no stderr output)")
    } else {
        format!("; last stderr lines:\n{}", lines.join("\n"))
    }
}

/// The agent command line as argv (split once, by [`crate::config::split_words`]; no shell
/// is ever involved).
#[derive(Debug, Clone)]
pub struct AgentCommand {
    argv: Vec<String>,
}

impl AgentCommand {
    /// The agent from already split words, e.g. [`Config::agent_cmd`](crate::config::Config).
    pub fn new(argv: Vec<String>) -> Result<Self, PromptError> {
        if argv.is_empty() || argv[0].is_empty() {
            return Err(PromptError::EmptyAgentCmd);
        }
        Ok(AgentCommand { argv })
    }

    /// Splits a command line with POSIX shell quoting rules (quotes and backslashes group
    /// words; nothing is expanded or executed).
    pub fn parse(line: &str) -> Result<Self, PromptError> {
        let argv = crate::config::split_words(line).ok_or_else(|| PromptError::BadAgentCmd {
            line: line.to_string(),
            reason: "unbalanced quote or trailing backslash".to_string(),
        })?;
        AgentCommand::new(argv)
    }

    /// The program and its fixed arguments.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The command line for messages (words joined by spaces).
    pub fn line(&self) -> String {
        self.argv.join(" ")
    }
}

/// What a `prompt` command asks for, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptRequest {
    pub text: String,
    /// Where the agent runs; `None` means the worker's own directory.
    pub working_dir: Option<PathBuf>,
}

impl PromptRequest {
    /// Reads `{"text": "...", "context": {"working_dir": "..."}}`.
    pub fn from_payload(payload: &Value) -> Result<Self, PromptError> {
        let object = payload
            .as_object()
            .ok_or_else(|| PromptError::BadPayload("payload is not a JSON object".into()))?;
        let text = match object.get("text") {
            Some(Value::String(text)) if !text.trim().is_empty() => text.clone(),
            Some(Value::String(_)) => {
                return Err(PromptError::BadPayload("\"text\" is empty".into()))
            }
            Some(_) => return Err(PromptError::BadPayload("\"text\" is not a string".into())),
            None => return Err(PromptError::BadPayload("\"text\" is missing".into())),
        };
        let working_dir = match object.get("context") {
            None | Some(Value::Null) => None,
            Some(Value::Object(context)) => match context.get("working_dir") {
                None | Some(Value::Null) => None,
                Some(Value::String(dir)) if !dir.is_empty() => Some(PathBuf::from(dir)),
                Some(_) => {
                    return Err(PromptError::BadPayload(
                        "\"context.working_dir\" is not a non-empty string".into(),
                    ))
                }
            },
            Some(_) => {
                return Err(PromptError::BadPayload(
                    "\"context\" is not a JSON object".into(),
                ))
            }
        };
        Ok(PromptRequest { text, working_dir })
    }
}

/// Checks that `dir` exists and is a directory, and makes it absolute.
pub fn validate_working_dir(dir: &Path) -> Result<PathBuf, PromptError> {
    let metadata = std::fs::metadata(dir).map_err(|e| PromptError::WorkingDir {
        path: dir.to_path_buf(),
        reason: match e.kind() {
            ErrorKind::NotFound => "it does not exist".to_string(),
            _ => format!("it cannot be read: {e}"),
        },
    })?;
    if !metadata.is_dir() {
        return Err(PromptError::WorkingDir {
            path: dir.to_path_buf(),
            reason: "it is a file or another non-directory".into(),
        });
    }
    std::fs::canonicalize(dir).map_err(|e| PromptError::WorkingDir {
        path: dir.to_path_buf(),
        reason: format!("it cannot be resolved: {e}"),
    })
}

/// What a finished agent run produced.
#[derive(Debug, Clone)]
pub struct AgentOutcome {
    /// The captured stdout (its last [`STDOUT_CAPTURE_LIMIT`] bytes, lossily UTF-8).
    pub stdout: String,
    /// How many stdout bytes the agent wrote in total.
    pub stdout_bytes: u64,
    pub duration: Duration,
    pub working_dir: PathBuf,
}

impl AgentOutcome {
    /// The command result: the captured stdout under `output`, the answer text under
    /// `result` (the same text, or the `result` field of a JSON answer), plus the agent's JSON (and its
    /// `session_id` / `total_cost_usd`) when it printed one. An agent JSON with
    /// `"is_error": true` is a failure even when the agent exited 0.
    pub fn into_result(self) -> Result<Value, PromptError> {
        let mut result = Map::new();
        let truncated = self.stdout_bytes > self.stdout.len() as u64;
        result.insert("output".into(), Value::String(self.stdout.clone()));
        match agent_json(&self.stdout) {
            Some(agent) => {
                let answer = match agent.get("result") {
                    Some(Value::String(text)) => text.clone(),
                    _ => self.stdout.clone(),
                };
                if agent.get("is_error") == Some(&Value::Bool(true)) {
                    return Err(PromptError::AgentReportedError(answer));
                }
                result.insert("result".into(), Value::String(answer));
                if let Some(session) = agent.get("session_id") {
                    result.insert("session_id".into(), session.clone());
                }
                if let Some(cost) = agent
                    .get("total_cost_usd")
                    .or_else(|| agent.get("cost_usd"))
                {
                    result.insert("total_cost_usd".into(), cost.clone());
                }
                result.insert("agent_json".into(), Value::Object(agent));
            }
            None => {
                result.insert("result".into(), Value::String(self.stdout));
            }
        }
        result.insert("exit_code".into(), json!(0));
        result.insert(
            "duration_ms".into(),
            json!(self.duration.as_millis() as u64),
        );
        result.insert(
            "working_dir".into(),
            json!(self.working_dir.to_string_lossy()),
        );
        result.insert("stdout_bytes".into(), json!(self.stdout_bytes));
        result.insert("stdout_truncated".into(), json!(truncated));
        Ok(Value::Object(result))
    }
}

/// The agent's JSON answer: the whole stdout as one object, or (for `stream-json`) the last
/// line that is an object of `"type": "result"`.
fn agent_json(stdout: &str) -> Option<Map<String, Value>> {
    if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(stdout.trim()) {
        return Some(object);
    }
    let last = stdout.lines().rev().find(|line| !line.trim().is_empty())?;
    match serde_json::from_str::<Value>(last.trim()) {
        Ok(Value::Object(object)) if object.get("type") == Some(&json!("result")) => Some(object),
        _ => None,
    }
}

/// Describes how a process ended, e.g. "exited with status 2" or "was killed by signal 9
/// (SIGKILL)".
pub fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(signal) => format!("was killed by signal {signal}{}", signal_name(signal)),
        None => format!("ended with {status}"),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => " (SIGHUP)",
        libc::SIGINT => " (SIGINT)",
        libc::SIGQUIT => " (SIGQUIT)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGPIPE => " (SIGPIPE)",
        libc::SIGTERM => " (SIGTERM)",
        _ => "",
    }
}

/// Runs the agent on `request`, copying its stdout/stderr to `echo_out`/`echo_err` as they
/// arrive (errors writing the echo are ignored: a closed pane must not fail the command).
/// After `timeout` the agent's process group gets SIGTERM, and SIGKILL `kill_grace` later.
pub async fn run_agent<O, E>(
    agent: &AgentCommand,
    request: &PromptRequest,
    timeout: Duration,
    kill_grace: Duration,
    echo_out: &mut O,
    echo_err: &mut E,
) -> Result<AgentOutcome, PromptError>
where
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    if request.text.len() > MAX_PROMPT_BYTES {
        return Err(PromptError::PromptTooLong {
            bytes: request.text.len(),
        });
    }
    if request.text.contains('\0') {
        return Err(PromptError::NulInPrompt);
    }
    let working_dir = match &request.working_dir {
        Some(dir) => validate_working_dir(dir)?,
        None => std::env::current_dir()?,
    };
    let program = resolve_program(&agent.argv[0]);

    let mut command = ProcessCommand::new(&program);
    command
        .args(&agent.argv[1..])
        .arg(&request.text)
        .current_dir(&working_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // If the worker itself dies (SIGKILL, OOM), the agent must not run on unattended: on
    // Linux the kernel sends it SIGKILL when the worker thread that spawned it exits.
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of the
    // parent; it runs in the child between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = command.spawn().map_err(|source| match source.kind() {
        ErrorKind::NotFound => PromptError::AgentNotFound {
            program: agent.argv[0].clone(),
            line: agent.line(),
        },
        _ => PromptError::Spawn {
            program: agent.argv[0].clone(),
            line: agent.line(),
            source,
        },
    })?;
    let mut group = ProcessGroup::new(child.id().ok_or_else(|| {
        std::io::Error::other("the agent exited before its process id could be read")
    })?);
    tracing::info!(pgid = group.pgid, program = %agent.argv[0], working_dir = %working_dir.display(), "agent started");

    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut stdout_capture = TailBuffer::new(STDOUT_CAPTURE_LIMIT);
    let mut stderr_capture = TailBuffer::new(STDERR_CAPTURE_LIMIT);
    let mut pumps = Box::pin(async {
        tokio::join!(
            pump(stdout, echo_out, &mut stdout_capture),
            pump(stderr, echo_err, &mut stderr_capture)
        )
    });
    let mut pumps_done = false;

    // Until the agent exits or the deadline passes, copy its output as it comes.
    let deadline = started + timeout;
    let exit = loop {
        tokio::select! {
            _ = &mut pumps, if !pumps_done => pumps_done = true,
            status = child.wait() => break Some(status?),
            _ = sleep_until(deadline) => break None,
        }
    };

    // End the group: stray children after an exit, everything after a timeout.
    group.signal(libc::SIGTERM);
    let grace_end = Instant::now() + kill_grace;
    let exit = match exit {
        Some(status) => Some(status),
        None => {
            loop {
                tokio::select! {
                    _ = &mut pumps, if !pumps_done => pumps_done = true,
                    status = child.wait() => { status?; break; }
                    _ = sleep_until(grace_end) => {
                        group.signal(libc::SIGKILL);
                        child.wait().await?;
                        break;
                    }
                }
            }
            None
        }
    };
    if !pumps_done {
        tokio::select! {
            _ = &mut pumps => {}
            _ = sleep_until(grace_end) => {
                group.signal(libc::SIGKILL);
                // Every writer in the group is dead now, so the pipes close at once; only a
                // process that left the group (setsid) could hold them, and it is not waited for.
                let _ = tokio::time::timeout(kill_grace, &mut pumps).await;
            }
        }
    }
    drop(pumps);
    group.signal(libc::SIGKILL);
    group.disarm();

    let stderr_tail = stderr_capture.last_lines(STDERR_TAIL_LINES);
    let duration = started.elapsed();
    let Some(status) = exit else {
        tracing::warn!(timeout_ms = timeout.as_millis() as u64, "agent timed out");
        return Err(PromptError::TimedOut {
            timeout,
            stderr_tail,
        });
    };
    if !status.success() {
        return Err(PromptError::Failed {
            status: describe_exit(status),
            stderr_tail,
        });
    }
    tracing::info!(
        duration_ms = duration.as_millis() as u64,
        stdout_bytes = stdout_capture.total,
        "agent finished"
    );
    Ok(AgentOutcome {
        stdout: stdout_capture.to_string_lossy(),
        stdout_bytes: stdout_capture.total,
        duration,
        working_dir,
    })
}

/// A relative program path with a `/` (e.g. `./fixtures/agents/answer.sh`) is taken from the
/// worker's directory, not from the agent's working directory.
fn resolve_program(program: &str) -> PathBuf {
    let path = Path::new(program);
    if program.contains('/') && path.is_relative() {
        if let Ok(cwd) = std::env::current_dir() {
            return cwd.join(path);
        }
    }
    path.to_path_buf()
}

/// Copies a pipe to an echo writer and into a bounded capture, until end of file.
async fn pump<R, W>(mut reader: R, echo: &mut W, capture: &mut TailBuffer)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut chunk = vec![0u8; 16 * 1024];
    let mut echo_ok = true;
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => {
                capture.push(&chunk[..n]);
                if echo_ok {
                    echo_ok =
                        echo.write_all(&chunk[..n]).await.is_ok() && echo.flush().await.is_ok();
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "reading the agent's output failed");
                break;
            }
        }
    }
}

/// Keeps the last `limit` bytes written to it and counts all of them.
struct TailBuffer {
    bytes: std::collections::VecDeque<u8>,
    limit: usize,
    total: u64,
}

impl TailBuffer {
    fn new(limit: usize) -> Self {
        TailBuffer {
            bytes: std::collections::VecDeque::new(),
            limit,
            total: 0,
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        let data = &data[data.len().saturating_sub(self.limit)..];
        let overflow = (self.bytes.len() + data.len()).saturating_sub(self.limit);
        self.bytes.drain(..overflow);
        self.bytes.extend(data);
    }

    fn to_string_lossy(&self) -> String {
        let (front, back) = self.bytes.as_slices();
        let mut all = Vec::with_capacity(self.bytes.len());
        all.extend_from_slice(front);
        all.extend_from_slice(back);
        String::from_utf8_lossy(&all).into_owned()
    }

    fn last_lines(&self, count: usize) -> Vec<String> {
        let text = self.to_string_lossy();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(count)..]
            .iter()
            .map(|l| l.to_string())
            .collect()
    }
}

/// The agent's process group; signalled as a whole, and killed if dropped while armed (the
/// handler future was cancelled, e.g. the worker is shutting down).
struct ProcessGroup {
    pgid: i32,
    armed: bool,
}

impl ProcessGroup {
    fn new(pid: u32) -> Self {
        ProcessGroup {
            pgid: pid as i32,
            armed: true,
        }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with a negative pid signals the process group; it has no memory
        // effects. ESRCH (group already gone) is the expected result after a clean exit.
        unsafe {
            libc::kill(-self.pgid, signal);
        }
    }

    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.armed {
            self.signal(libc::SIGKILL);
        }
    }
}

/// The worker's `prompt` handler: runs the configured agent on the command's text.
pub struct PromptHandler {
    agent_cmd: Vec<String>,
}

impl PromptHandler {
    /// A handler running `PANEBUS_AGENT_CMD` as read into `config`. An empty command is
    /// reported on each prompt (the worker still serves its other command types).
    pub fn from_config(config: &Config) -> Self {
        PromptHandler {
            agent_cmd: config.agent_cmd.clone(),
        }
    }
}

/// The agent's time limit and SIGTERM→SIGKILL grace within a command's limit: time is kept
/// back so the handler can stop the agent and report its stderr before the worker gives up
/// on the command (a quarter of the limit, at most twice [`KILL_GRACE`] plus one second;
/// the grace is at most half of that).
pub fn agent_time_limit(command_timeout: Duration) -> (Duration, Duration) {
    let reserve = (KILL_GRACE * 2 + Duration::from_secs(1)).min(command_timeout / 4);
    (command_timeout - reserve, KILL_GRACE.min(reserve / 2))
}

impl Handler for PromptHandler {
    fn handle<'a>(&'a self, cmd: &'a Command, ctx: &'a HandlerContext) -> HandlerFuture<'a> {
        Box::pin(async move {
            let fail = |e: PromptError| HandlerError::new(e.to_string());
            let agent = AgentCommand::new(self.agent_cmd.clone()).map_err(fail)?;
            let request = PromptRequest::from_payload(&cmd.payload).map_err(fail)?;
            let mut out = tokio::io::stdout();
            let mut err = tokio::io::stderr();
            let header = format!(
                "--- prompt {} (attempt {}) -> {} in {}\n",
                cmd.id,
                cmd.attempt,
                agent.argv[0],
                request
                    .working_dir
                    .as_deref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|| ".".to_string()),
            );
            let _ = out.write_all(header.as_bytes()).await;
            let (limit, grace) = agent_time_limit(ctx.timeout);
            let outcome = run_agent(&agent, &request, limit, grace, &mut out, &mut err).await;
            let _ = out
                .write_all(format!("\n--- prompt {} done\n", cmd.id).as_bytes())
                .await;
            let _ = out.flush().await;
            outcome.and_then(AgentOutcome::into_result).map_err(fail)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_command_splits_quotes_without_a_shell() {
        let agent = AgentCommand::parse("claude --flag 'two words' \"$HOME\" a\\ b").unwrap();
        assert_eq!(
            agent.argv(),
            ["claude", "--flag", "two words", "$HOME", "a b"]
        );
        assert!(matches!(
            AgentCommand::parse("claude 'unterminated"),
            Err(PromptError::BadAgentCmd { .. })
        ));
        assert!(matches!(
            AgentCommand::parse("   "),
            Err(PromptError::EmptyAgentCmd)
        ));
    }

    #[test]
    fn agent_time_limit_keeps_room_to_stop_the_agent() {
        assert_eq!(
            agent_time_limit(Duration::from_secs(600)),
            (Duration::from_secs(593), KILL_GRACE)
        );
        assert_eq!(
            agent_time_limit(Duration::from_secs(4)),
            (Duration::from_secs(3), Duration::from_millis(500))
        );
    }

    #[test]
    fn payload_needs_text_and_optional_context() {
        let request =
            PromptRequest::from_payload(&json!({"text": "hi", "context": {"working_dir": "/tmp"}}))
                .unwrap();
        assert_eq!(request.text, "hi");
        assert_eq!(request.working_dir, Some(PathBuf::from("/tmp")));
        assert_eq!(
            PromptRequest::from_payload(&json!({"text": "hi"}))
                .unwrap()
                .working_dir,
            None
        );
        for bad in [
            json!("text"),
            json!({}),
            json!({"text": ""}),
            json!({"text": 3}),
            json!({"text": "x", "context": "dir"}),
            json!({"text": "x", "context": {"working_dir": 5}}),
        ] {
            assert!(
                matches!(
                    PromptRequest::from_payload(&bad),
                    Err(PromptError::BadPayload(_))
                ),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn tail_buffer_keeps_the_last_bytes_and_counts_all() {
        let mut buffer = TailBuffer::new(4);
        buffer.push(b"abc");
        buffer.push(b"def");
        assert_eq!(buffer.to_string_lossy(), "cdef");
        buffer.push(b"0123456789");
        assert_eq!(buffer.to_string_lossy(), "6789");
        assert_eq!(buffer.total, 16);
    }

    #[test]
    fn stderr_tail_is_the_last_non_empty_lines() {
        let mut buffer = TailBuffer::new(1024);
        for i in 1..=30 {
            buffer.push(format!("line {i}\n\n").as_bytes());
        }
        let tail = buffer.last_lines(3);
        assert_eq!(tail, ["line 28", "line 29", "line 30"]);
    }

    #[test]
    fn json_answers_are_kept_structured() {
        let outcome = AgentOutcome {
            stdout: r#"{"type":"result","session_id":"s1","total_cost_usd":0.5,"result":"done"}"#
                .into(),
            stdout_bytes: 70,
            duration: Duration::from_millis(5),
            working_dir: PathBuf::from("/"),
        };
        let result = outcome.into_result().unwrap();
        assert_eq!(result["result"], "done");
        assert_eq!(result["session_id"], "s1");
        assert_eq!(result["total_cost_usd"], 0.5);
        assert_eq!(result["agent_json"]["type"], "result");
    }

    #[test]
    fn stream_json_uses_the_last_result_line_and_is_error_fails() {
        let outcome = AgentOutcome {
            stdout: "{\"type\":\"system\"}\n{\"type\":\"result\",\"is_error\":true,\"result\":\"quota\"}\n"
                .into(),
            stdout_bytes: 10,
            duration: Duration::ZERO,
            working_dir: PathBuf::from("/"),
        };
        let error = outcome.into_result().unwrap_err();
        assert!(error.to_string().contains("quota"), "{error}");
    }

    #[test]
    fn text_answers_are_the_result() {
        let outcome = AgentOutcome {
            stdout: "plain answer\n".into(),
            stdout_bytes: 13,
            duration: Duration::ZERO,
            working_dir: PathBuf::from("/"),
        };
        let result = outcome.into_result().unwrap();
        assert_eq!(result["result"], "plain answer\n");
        assert!(result.get("agent_json").is_none());
        assert_eq!(result["stdout_truncated"], false);
    }
}
