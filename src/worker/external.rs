//! External handler programs: `--handler TYPE=PROGRAM` runs PROGRAM for each command of
//! TYPE, with the command JSON on stdin; its stdout is the result.
//!
//! PROGRAM is split into words like a shell would (quotes group, nothing is expanded) and
//! run directly, never through a shell, so payload text cannot inject anything. Stdout that
//! is JSON becomes the result as is; other text becomes a JSON string. A non-zero exit is a
//! failure carrying the exit status and the end of stderr. The program runs in its own
//! process group, which is killed when the command times out or the worker stops.

use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::handler::{Handler, HandlerContext, HandlerError, HandlerFuture};
use crate::config::split_words;
use crate::schema::Command;

/// Bytes of stderr quoted in a failure message.
const STDERR_TAIL_BYTES: usize = 2000;

/// A handler that runs a program per command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalHandler {
    argv: Vec<String>,
}

impl ExternalHandler {
    /// A handler running `argv` (program and arguments).
    pub fn new(argv: Vec<String>) -> Result<ExternalHandler, String> {
        if argv.is_empty() || argv[0].is_empty() {
            return Err("the handler program is empty".into());
        }
        Ok(ExternalHandler { argv })
    }

    /// Parses a `TYPE=PROGRAM [ARGS...]` specification.
    pub fn parse_spec(spec: &str) -> Result<(String, ExternalHandler), String> {
        let hint = "expected TYPE=PROGRAM, e.g. --handler build='make -C /src'";
        let (kind, program) = spec
            .split_once('=')
            .ok_or_else(|| format!("invalid handler {spec:?}: {hint}"))?;
        let kind = kind.trim();
        if kind.is_empty() || kind.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "invalid handler {spec:?}: the type must be one word; {hint}"
            ));
        }
        if kind == "shutdown" {
            return Err("the `shutdown` type is built in and cannot be replaced".into());
        }
        let argv = split_words(program)
            .ok_or_else(|| format!("invalid handler {spec:?}: unbalanced quote in PROGRAM"))?;
        let handler = ExternalHandler::new(argv)
            .map_err(|e| format!("invalid handler {spec:?}: {e}; {hint}"))?;
        Ok((kind.to_string(), handler))
    }

    /// The program and its arguments.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    async fn run(&self, cmd: &Command, ctx: &HandlerContext) -> Result<Value, HandlerError> {
        let program = &self.argv[0];
        let mut command = tokio::process::Command::new(program);
        die_with_worker(&mut command);
        let mut child = command
            .args(&self.argv[1..])
            .env("PANEBUS_WORKER_ID", &ctx.worker_id)
            .env("PANEBUS_COMMAND_ID", &cmd.id)
            .env("PANEBUS_COMMAND_TYPE", &cmd.kind)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                HandlerError::new(format!(
                    "cannot start handler program {program:?}: {e}; check the path given to --handler {}=...",
                    cmd.kind
                ))
            })?;
        // Kills the whole group if this future is dropped (timeout, shutdown) before the
        // program exits.
        let mut group = ProcessGroup(child.id());
        if let Some(mut stdin) = child.stdin.take() {
            // A program that does not read its stdin closes the pipe early: not an error.
            let _ = stdin.write_all(cmd.to_json().as_bytes()).await;
            let _ = stdin.shutdown().await;
        }
        let output = child.wait_with_output().await.map_err(|e| {
            HandlerError::new(format!("waiting for handler {program:?} failed: {e}"))
        })?;
        group.0 = None;
        if output.status.success() {
            return Ok(stdout_value(&output.stdout));
        }
        let how = match (
            output.status.code(),
            std::os::unix::process::ExitStatusExt::signal(&output.status),
        ) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => format!("was killed by signal {sig}"),
            (None, None) => "failed".to_string(),
        };
        let tail = stderr_tail(&output.stderr);
        Err(HandlerError::new(if tail.is_empty() {
            format!("handler {program:?} {how}")
        } else {
            format!("handler {program:?} {how}: {tail}")
        }))
    }
}

impl Handler for ExternalHandler {
    fn handle<'a>(&'a self, cmd: &'a Command, ctx: &'a HandlerContext) -> HandlerFuture<'a> {
        Box::pin(self.run(cmd, ctx))
    }
}

/// A running program's process group, killed on drop unless cleared.
pub(super) struct ProcessGroup(pub(super) Option<u32>);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // SAFETY: kill(2) with a negative pid signals the group led by our child, which
            // was started with process_group(0) so its pgid equals its pid.
            unsafe {
                libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
            }
        }
    }
}

/// JSON stdout as is; other text as a trimmed JSON string; nothing as null.
fn stdout_value(stdout: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stdout);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(trimmed).unwrap_or_else(|_| Value::String(trimmed.to_string()))
}

/// The last bytes of stderr, trimmed, starting at a character boundary.
pub(super) fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let trimmed = text.trim();
    if trimmed.len() <= STDERR_TAIL_BYTES {
        return trimmed.to_string();
    }
    let mut start = trimmed.len() - STDERR_TAIL_BYTES;
    while !trimmed.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &trimmed[start..])
}

/// Makes a child process die with the worker: if the worker is killed (SIGKILL, OOM) a
/// handler or agent must not run on unattended while its command is redelivered elsewhere.
/// On Linux the kernel sends the child SIGKILL when the thread that spawned it exits; other
/// systems rely on the process-group kill on timeout and stop.
pub(super) fn die_with_worker(command: &mut tokio::process::Command) {
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
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_split_into_type_and_argv() {
        let (kind, h) = ExternalHandler::parse_spec("build=make -C '/my src'").unwrap();
        assert_eq!(kind, "build");
        assert_eq!(h.argv(), ["make", "-C", "/my src"]);
        assert!(ExternalHandler::parse_spec("nothing")
            .unwrap_err()
            .contains("TYPE=PROGRAM"));
        assert!(ExternalHandler::parse_spec("x=").is_err());
        assert!(ExternalHandler::parse_spec("=prog").is_err());
        assert!(ExternalHandler::parse_spec("shutdown=prog").is_err());
        assert!(ExternalHandler::parse_spec("x='open").is_err());
    }

    #[test]
    fn stdout_becomes_json_or_text() {
        assert_eq!(stdout_value(b"{\"a\": 1}\n"), serde_json::json!({"a": 1}));
        assert_eq!(stdout_value(b"hello\n"), Value::String("hello".into()));
        assert_eq!(stdout_value(b"  "), Value::Null);
    }

    #[test]
    fn stderr_tail_keeps_the_end() {
        let long = "é".repeat(3000);
        let tail = stderr_tail(long.as_bytes());
        assert!(tail.starts_with("...") && tail.len() <= STDERR_TAIL_BYTES + 4);
    }
}
