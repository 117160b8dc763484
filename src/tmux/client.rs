//! The control-mode client: one `tmux -C` process, one request/reply queue.
//!
//! [`ControlClient::connect`] spawns `tmux [-L|-S] [-f FILE] -u -C attach-session -t =S`
//! (or `new-session -A -s S`) with pipes and `TMUX` unset, keeps its stdin open, and waits
//! for the attach burst (the attach command's own `%begin … 0` block and
//! `%session-changed`) before returning. Three tasks do the I/O:
//! * the writer takes requests from [`ControlClient::run`], records each as pending and
//!   writes its line; a request whose future is dropped still goes out whole, so a
//!   half-written line can never corrupt the stream;
//! * the reader feeds stdout to [`tmux_control_parser::Parser`], hands each reply block to
//!   the oldest pending request (FIFO: tmux answers a client's lines in order, one block per
//!   line, because [`TmuxCommand`] never produces `;` or empty lines), maps `%error` to
//!   [`TmuxError::Command`], and forwards every notification, owned, on an unbounded channel;
//! * a stderr reader keeps tmux's last complaint for the exit reason.
//!
//! When the session ends (`%exit [reason]`, EOF, or the process dying) every pending and
//! later request fails with [`TmuxError::Exited`] and the notification stream ends with
//! [`Notification::Exit`].

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tmux_control_parser::{
    Event, Guard, OwnedEvent, ParseErrorKind, Parser, SessionId, DEFAULT_MAX_BLOCK_LEN,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot, watch};

use super::command::{Format, TmuxCommand};
use super::error::TmuxError;
use super::server::{literal_arg, TmuxServerRef};

/// How to reach and attach to a session.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub server: TmuxServerRef,
    /// The session to attach to (matched exactly).
    pub session: String,
    /// Create the session if it does not exist (`new-session -A -s`).
    pub create: bool,
    /// `-f FILE`: the configuration tmux loads if this starts the server.
    pub config_file: Option<PathBuf>,
    /// How long to wait for the attach burst.
    pub attach_timeout: Duration,
    /// Forward `%output`/`%extended-output` on the notification stream. Off by default: the
    /// stream is unbounded, and PaneBus reads pane screens with `capture-pane` instead.
    pub forward_output: bool,
    /// The largest reply body accepted; a bigger reply fails its command with
    /// [`TmuxError::ReplyTooLarge`] (memory stays bounded, later replies still match).
    pub max_reply_bytes: usize,
}

impl ConnectOptions {
    pub fn new(server: TmuxServerRef, session: impl Into<String>) -> Self {
        ConnectOptions {
            server,
            session: session.into(),
            create: false,
            config_file: None,
            attach_timeout: Duration::from_secs(10),
            forward_output: false,
            max_reply_bytes: DEFAULT_MAX_BLOCK_LEN,
        }
    }
}

/// A command's successful reply: the body lines of its `%begin … %end` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// tmux's guard triple; `guard.number` identifies the block in tmux's logs.
    pub guard: Guard,
    /// Raw body lines without line ends (nothing in a body is escaped).
    pub lines: Vec<Vec<u8>>,
}

impl Reply {
    /// The body lines as text (invalid UTF-8 replaced).
    pub fn text_lines(&self) -> Vec<String> {
        self.lines
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }
}

/// What the reader forwards to the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// A notification line (never a reply block; `%output` only if asked for).
    Event(OwnedEvent),
    /// The control session ended; always the last item on the stream.
    Exit { reason: String },
}

/// The session the client attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub session: SessionId,
    /// The session's name as tmux reported it (vis-decoded).
    pub name: String,
}

type ReplySender = oneshot::Sender<Result<Reply, TmuxError>>;

struct Request {
    command: String,
    reply: ReplySender,
}

struct Pending {
    command: String,
    reply: ReplySender,
}

/// State shared by the writer and the reader.
#[derive(Default)]
struct Queue {
    pending: VecDeque<Pending>,
    /// Set once when the session ends; later requests fail at once with this reason.
    exited: Option<String>,
}

/// A connection to one tmux session over control mode.
pub struct ControlClient {
    requests: mpsc::UnboundedSender<Request>,
    child: tokio::sync::Mutex<Child>,
    /// The exit reason, set once by the reader when the session ends.
    exit: watch::Receiver<Option<String>>,
    attached: Attached,
    server: TmuxServerRef,
}

/// How long [`ControlClient::detach`] waits for tmux to exit before killing it.
const DETACH_TIMEOUT: Duration = Duration::from_secs(5);
/// How much room each read from tmux's stdout gets.
const READ_CHUNK: usize = 64 * 1024;
/// At most this much of tmux's stderr is kept for the exit reason.
const STDERR_KEEP: usize = 2048;

impl ControlClient {
    /// Spawns the control client and waits until it is attached.
    pub async fn connect(
        options: ConnectOptions,
    ) -> Result<(ControlClient, mpsc::UnboundedReceiver<Notification>), TmuxError> {
        let mut cmd = options.server.command();
        if let Some(file) = &options.config_file {
            cmd.arg("-f").arg(file);
        }
        cmd.args(["-u", "-C"]);
        // The name is data: a final `;` escaped, and for `new-session -s`, which tmux
        // format-expands, `#` doubled.
        if options.create {
            let name = options.session.replace('#', "##");
            cmd.args(["new-session", "-A", "-s"])
                .arg(literal_arg(OsStr::new(&name)));
        } else {
            // `=` asks for an exact match instead of a name prefix.
            let target = format!("={}", options.session);
            cmd.args(["attach-session", "-t"])
                .arg(literal_arg(OsStr::new(&target)));
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| TmuxError::Spawn {
            server: options.server.clone(),
            source,
        })?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");

        let queue = Arc::new(Mutex::new(Queue::default()));
        let stderr_text = Arc::new(Mutex::new(String::new()));
        let (requests, request_rx) = mpsc::unbounded_channel();
        let (notify_tx, notify_rx) = mpsc::unbounded_channel();
        let (attach_tx, attach_rx) = oneshot::channel();
        let (exit_tx, exit_rx) = watch::channel(None);

        tokio::spawn(write_requests(stdin, request_rx, Arc::clone(&queue)));
        tokio::spawn(read_stderr(stderr, Arc::clone(&stderr_text)));
        let reader = Reader {
            queue: Arc::clone(&queue),
            notify: notify_tx,
            attach: Some(attach_tx),
            stderr: stderr_text,
            forward_output: options.forward_output,
            exit: exit_tx,
        };
        let parser = Parser::new().with_max_block_len(options.max_reply_bytes);
        tokio::spawn(reader.run(stdout, parser));

        let attached = match tokio::time::timeout(options.attach_timeout, attach_rx).await {
            Ok(Ok(Ok(attached))) => attached,
            Ok(Ok(Err(message))) => {
                return Err(TmuxError::Attach {
                    server: options.server,
                    session: options.session,
                    message,
                })
            }
            Ok(Err(_)) => {
                return Err(TmuxError::Attach {
                    server: options.server,
                    session: options.session,
                    message: "the control client stopped before attaching".to_owned(),
                })
            }
            Err(_) => {
                return Err(TmuxError::AttachTimeout {
                    session: options.session,
                    timeout: options.attach_timeout,
                })
            }
        };
        tracing::debug!(session = %attached.session, name = %attached.name, "tmux control client attached");
        let client = ControlClient {
            requests,
            child: tokio::sync::Mutex::new(child),
            exit: exit_rx,
            attached,
            server: options.server,
        };
        Ok((client, notify_rx))
    }

    /// The session this client is attached to.
    pub fn attached(&self) -> &Attached {
        &self.attached
    }

    /// The server this client talks to.
    pub fn server(&self) -> &TmuxServerRef {
        &self.server
    }

    /// Why the session ended, once it has.
    pub fn exit_reason(&self) -> Option<String> {
        self.exit.borrow().clone()
    }

    /// Waits until the control session has ended and returns why.
    pub async fn closed(&self) -> String {
        let mut exit = self.exit.clone();
        let reason = match exit.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            // The reader always sets a reason before it drops the sender.
            Err(_) => "the control client's reader stopped".to_owned(),
        };
        reason
    }

    /// Sends one command and waits for its reply block.
    pub async fn run(&self, command: &TmuxCommand) -> Result<Reply, TmuxError> {
        let (reply, reply_rx) = oneshot::channel();
        let request = Request {
            command: command.line().to_owned(),
            reply,
        };
        if self.requests.send(request).is_err() {
            return Err(self.exited_error());
        }
        match reply_rx.await {
            Ok(result) => result,
            Err(_) => Err(self.exited_error()),
        }
    }

    /// The pid of the tmux server (`display-message -p '#{pid}'`); signalling it with
    /// SIGCHLD recovers a pane exit that tmux 3.3a lost (docs/tmux-control-mode.md §6).
    pub async fn server_pid(&self) -> Result<u32, TmuxError> {
        let command = TmuxCommand::display_message(None, &Format::template("#{pid}"))?;
        let reply = self.run(&command).await?;
        let lines = reply.text_lines();
        lines
            .first()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| TmuxError::UnexpectedReply {
                command: command.line().to_owned(),
                detail: format!("expected a pid, got {lines:?}"),
            })
    }

    /// Detaches (`detach-client`) and waits for the control client to exit, killing it if
    /// it has not exited within a few seconds. Returns the exit reason.
    pub async fn detach(&self) -> String {
        // The reply may race with %exit; either way the session is ending.
        if let Err(err) = self.run(&TmuxCommand::detach_client()).await {
            tracing::debug!(error = %err, "detach-client did not get a reply");
        }
        let mut child = self.child.lock().await;
        if tokio::time::timeout(DETACH_TIMEOUT, child.wait())
            .await
            .is_err()
        {
            tracing::warn!("tmux control client did not exit after detach-client; killing it");
            if let Err(err) = child.kill().await {
                tracing::warn!(error = %err, "could not kill the tmux control client");
            }
        }
        // The process is gone, so the reader sees EOF and records the reason promptly.
        self.closed().await
    }

    fn exited_error(&self) -> TmuxError {
        TmuxError::Exited {
            reason: self
                .exit_reason()
                .unwrap_or_else(|| "the tmux control client stopped accepting commands".to_owned()),
        }
    }
}

fn lock(queue: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    // A panic while holding the lock leaves the queue consistent (every operation on it is
    // a single push/pop/drain), so a poisoned lock is still usable.
    queue
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Writes each request's line after recording it as pending (so its reply, which cannot
/// come before the line is written, always finds it).
async fn write_requests(
    mut stdin: ChildStdin,
    mut requests: mpsc::UnboundedReceiver<Request>,
    queue: Arc<Mutex<Queue>>,
) {
    while let Some(request) = requests.recv().await {
        {
            let mut q = lock(&queue);
            if let Some(reason) = &q.exited {
                let _ = request.reply.send(Err(TmuxError::Exited {
                    reason: reason.clone(),
                }));
                continue;
            }
            q.pending.push_back(Pending {
                command: request.command.clone(),
                reply: request.reply,
            });
        }
        let mut line = request.command.into_bytes();
        line.push(b'\n');
        if let Err(err) = stdin.write_all(&line).await {
            // The process is gone; the reader fails the pending requests when it sees EOF.
            tracing::debug!(error = %err, "write to tmux control client failed");
            break;
        }
    }
    // Dropping stdin here (all senders gone, or a failed write) lets tmux see EOF and exit.
}

async fn read_stderr(mut stderr: ChildStderr, keep: Arc<Mutex<String>>) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = stderr.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&buf[..n]);
        let mut kept = keep.lock().unwrap_or_else(|p| p.into_inner());
        kept.push_str(&text);
        if kept.len() > STDERR_KEEP {
            let cut = kept.len() - STDERR_KEEP;
            let cut = (cut..kept.len())
                .find(|&i| kept.is_char_boundary(i))
                .unwrap_or(0);
            kept.drain(..cut);
        }
    }
}

struct Reader {
    queue: Arc<Mutex<Queue>>,
    notify: mpsc::UnboundedSender<Notification>,
    /// Present until the attach burst has been seen (or attaching failed).
    attach: Option<oneshot::Sender<Result<Attached, String>>>,
    stderr: Arc<Mutex<String>>,
    forward_output: bool,
    exit: watch::Sender<Option<String>>,
}

impl Reader {
    async fn run(mut self, mut stdout: ChildStdout, mut parser: Parser) {
        let mut attach_error = None;
        loop {
            // Read straight into the parser's buffer (no copy per chunk).
            match stdout.read(parser.read_space(READ_CHUNK)).await {
                Ok(0) => break,
                Ok(n) => parser.commit(n),
                Err(err) => {
                    tracing::warn!(error = %err, "reading the tmux control client failed");
                    break;
                }
            }
            while let Some(event) = parser.next_event() {
                match event {
                    Ok(Event::Reply(reply)) if reply.guard.flags == 0 => {
                        // The command from tmux's own command line (the attach), not ours.
                        if reply.is_error {
                            attach_error = Some(body_text(&reply.lines));
                        }
                    }
                    Ok(Event::Reply(reply)) => self.reply(reply),
                    Ok(Event::Exit { reason }) => {
                        let reason = reason.map(|r| String::from_utf8_lossy(r).into_owned());
                        let reason = reason.or_else(|| attach_error.take()).unwrap_or_else(|| {
                            "tmux ended the control session (detached, session closed or \
                             server stopped)"
                                .to_owned()
                        });
                        self.end(reason);
                    }
                    Ok(Event::Output { .. } | Event::ExtendedOutput { .. })
                        if !self.forward_output => {}
                    Ok(event) => {
                        if let Event::SessionChanged { session, name } = &event {
                            if let Some(attach) = self.attach.take() {
                                let name = String::from_utf8_lossy(name).into_owned();
                                let _ = attach.send(Ok(Attached {
                                    session: *session,
                                    name,
                                }));
                            }
                        }
                        let _ = self
                            .notify
                            .send(Notification::Event(event.to_owned_event()));
                    }
                    Err(err) if matches!(err.kind(), ParseErrorKind::BlockTooLong { guard, .. } if guard.flags != 0) =>
                    {
                        // The block replaced a reply: its request must still be answered, or
                        // every later reply would go to the wrong request.
                        self.reply_too_large(err.kind().to_string());
                    }
                    Err(err) => {
                        tracing::warn!(offset = err.offset(), error = %err.kind(), "unparsable line from tmux skipped");
                    }
                }
            }
        }
        if self.exit.borrow().is_none() {
            let stderr = self
                .stderr
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .trim()
                .to_owned();
            let reason = attach_error.unwrap_or(if stderr.is_empty() {
                "the tmux control client closed its output without %exit".to_owned()
            } else {
                stderr
            });
            self.end(reason);
        }
        let reason = self.exit.borrow().clone().unwrap_or_default();
        let _ = self.notify.send(Notification::Exit { reason });
    }

    fn reply(&mut self, reply: tmux_control_parser::Reply) {
        let Some(pending) = lock(&self.queue).pending.pop_front() else {
            tracing::warn!(
                number = reply.guard.number,
                "tmux reply block with no pending request ignored"
            );
            return;
        };
        let result = if reply.is_error {
            Err(TmuxError::Command {
                command: pending.command,
                message: body_text(&reply.lines),
            })
        } else {
            Ok(Reply {
                guard: reply.guard,
                lines: reply.lines,
            })
        };
        // The requester may have stopped waiting; its reply is then simply dropped.
        let _ = pending.reply.send(result);
    }

    fn reply_too_large(&mut self, detail: String) {
        let Some(pending) = lock(&self.queue).pending.pop_front() else {
            tracing::warn!(detail = %detail, "oversized tmux reply with no pending request");
            return;
        };
        let _ = pending.reply.send(Err(TmuxError::ReplyTooLarge {
            command: pending.command,
            detail,
        }));
    }

    /// Marks the session as over and fails everything pending (first call wins).
    fn end(&mut self, reason: String) {
        if self.exit.borrow().is_some() {
            return;
        }
        tracing::debug!(reason = %reason, "tmux control session ended");
        if let Some(attach) = self.attach.take() {
            let _ = attach.send(Err(reason.clone()));
        }
        let pending = {
            let mut q = lock(&self.queue);
            q.exited = Some(reason.clone());
            std::mem::take(&mut q.pending)
        };
        for p in pending {
            let _ = p.reply.send(Err(TmuxError::Exited {
                reason: reason.clone(),
            }));
        }
        self.exit.send_replace(Some(reason));
    }
}

fn body_text(lines: &[Vec<u8>]) -> String {
    let text: Vec<String> = lines
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    text.join("\n")
}
