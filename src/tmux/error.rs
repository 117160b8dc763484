//! Errors of the control-mode client.
//!
//! A command can fail in three ways the caller must tell apart: tmux rejected it (the reply
//! block ended in `%error`; the connection is fine), the control session is over (every
//! pending and later request fails with [`TmuxError::Exited`]), or the command could not be
//! built or written at all.

use std::time::Duration;

use super::command::CommandError;
use super::server::TmuxServerRef;

#[derive(Debug, thiserror::Error)]
pub enum TmuxError {
    /// tmux answered with `%error`: the command failed, the channel is still usable.
    #[error("tmux rejected `{command}`: {message}")]
    Command { command: String, message: String },
    /// The control client is gone: `%exit`, end of its output, or process death.
    #[error("the tmux control connection ended: {reason} (re-attach to continue)")]
    Exited { reason: String },
    /// The `tmux` program could not be started.
    #[error("could not start `tmux` for {server}: {source} (is tmux installed and on PATH?)")]
    Spawn {
        server: TmuxServerRef,
        #[source]
        source: std::io::Error,
    },
    /// tmux refused the attach (e.g. no such session).
    #[error("could not attach to tmux session {session:?} on {server}: {message}")]
    Attach {
        server: TmuxServerRef,
        session: String,
        message: String,
    },
    /// The attach burst did not arrive in time.
    #[error(
        "tmux did not finish attaching to session {session:?} within {timeout:?} \
         (is the server responsive?)"
    )]
    AttachTimeout { session: String, timeout: Duration },
    /// tmux replied, but not with what the command prints.
    #[error("unexpected reply to `{command}`: {detail}")]
    UnexpectedReply { command: String, detail: String },
    /// The reply was bigger than the client accepts; it was dropped.
    #[error("the reply to `{command}` was too large and was dropped: {detail}")]
    ReplyTooLarge { command: String, detail: String },
    #[error(transparent)]
    Build(#[from] CommandError),
}
