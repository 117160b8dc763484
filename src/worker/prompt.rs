//! The built-in `prompt` handler: runs the agent CLI (`PANEBUS_AGENT_CMD`, default
//! `claude --dangerously-skip-permissions -p`) with the prompt text as one more argument.
//!
//! The text is a separate argv element and nothing runs through a shell, so no payload can
//! inject commands. The agent runs in `payload.context.working_dir` (default: the worker's
//! directory), in its own process group (killed on timeout or forced stop); its output is
//! streamed to the worker's pane so a person watching sees it, and captured as the result.

use std::process::Stdio;

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::external::{stderr_tail, ProcessGroup};
use super::handler::{Handler, HandlerContext, HandlerError, HandlerFuture};
use crate::schema::Command;

/// Most bytes of agent output kept in the result (the end is kept).
const OUTPUT_CAP: usize = 1024 * 1024;

/// Runs the agent for `prompt` commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    agent: Vec<String>,
}

impl Prompt {
    /// A handler running `agent` (program and leading arguments; must not be empty).
    pub fn new(agent: Vec<String>) -> Prompt {
        assert!(!agent.is_empty(), "the agent command is checked by Config");
        Prompt { agent }
    }

    async fn run(&self, cmd: &Command) -> Result<Value, HandlerError> {
        let text = match cmd.payload.get("text") {
            Some(Value::String(t)) if !t.trim().is_empty() => t.clone(),
            _ => {
                return Err(HandlerError::new(
                    r#"a prompt needs a non-empty "text" string, e.g. {"text": "Fix the failing tests", "context": {"working_dir": "/src/app"}}"#,
                ))
            }
        };
        let working_dir = match cmd.payload.pointer("/context/working_dir") {
            None | Some(Value::Null) => None,
            Some(Value::String(dir)) => {
                if !std::path::Path::new(dir).is_dir() {
                    return Err(HandlerError::new(format!(
                        "context.working_dir {dir:?} is not a directory on this worker's machine"
                    )));
                }
                Some(dir.clone())
            }
            Some(other) => {
                return Err(HandlerError::new(format!(
                    "context.working_dir must be a string, got {other}"
                )))
            }
        };
        let program = &self.agent[0];
        let mut command = tokio::process::Command::new(program);
        command
            .args(&self.agent[1..])
            .arg(&text)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &working_dir {
            command.current_dir(dir);
        }
        let mut child = command.spawn().map_err(|e| {
            HandlerError::new(format!(
                "cannot start the agent {program:?}: {e}; install it (Claude Code: \
                 `npm install -g @anthropic-ai/claude-code`) or set PANEBUS_AGENT_CMD"
            ))
        })?;
        let mut group = ProcessGroup(child.id());
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let (out, err, status) = tokio::join!(
            tee(stdout, tokio::io::stdout()),
            tee(stderr, tokio::io::stderr()),
            child.wait()
        );
        let status =
            status.map_err(|e| HandlerError::new(format!("waiting for the agent failed: {e}")))?;
        group.0 = None;
        let output = String::from_utf8_lossy(&out).into_owned();
        if status.success() {
            return Ok(json!({
                "output": output,
                "exit_code": 0,
                "working_dir": working_dir,
            }));
        }
        let how = match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => format!("was killed by signal {sig}"),
            (None, None) => "failed".to_string(),
        };
        let tail = stderr_tail(&err);
        Err(HandlerError::new(if tail.is_empty() {
            format!("the agent {program:?} {how}")
        } else {
            format!("the agent {program:?} {how}: {tail}")
        }))
    }
}

impl Handler for Prompt {
    fn handle<'a>(&'a self, cmd: &'a Command, _ctx: &'a HandlerContext) -> HandlerFuture<'a> {
        Box::pin(self.run(cmd))
    }
}

/// Copies `from` to `to` as it arrives (the pane shows it live) and returns what was read,
/// keeping at most the last [`OUTPUT_CAP`] bytes.
async fn tee(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // The pane is best effort: a closed terminal must not fail the command.
        let _ = to.write_all(&buf[..n]).await;
        let _ = to.flush().await;
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > OUTPUT_CAP {
            kept.drain(..kept.len() - OUTPUT_CAP);
        }
    }
    kept
}
