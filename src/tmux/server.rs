//! Which tmux server to talk to, and the `tmux` argv that reaches it.
//!
//! A tmux server is found by its socket: the user's default one, a named one under the
//! tmux socket directory (`-L NAME`), or an explicit path (`-S PATH`). The coordinator, the
//! CLI and the tests all build their `tmux` invocations from a [`TmuxServerRef`], always with
//! `TMUX` removed from the environment so an inherited value never redirects the command to
//! another server.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

/// A tmux server, identified by its socket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TmuxServerRef {
    /// The user's default server (tmux's own choice of socket).
    Default,
    /// `-L NAME`: a named socket in tmux's socket directory.
    Name(String),
    /// `-S PATH`: a socket at an explicit path.
    Path(PathBuf),
}

impl TmuxServerRef {
    /// The server a process inside tmux belongs to, from the `TMUX` variable
    /// (`SOCKET_PATH,SERVER_PID,SESSION_ID`). `None` when the value is empty.
    pub fn from_tmux_env(value: &str) -> Option<Self> {
        let path = value.split(',').next().filter(|p| !p.is_empty())?;
        Some(TmuxServerRef::Path(PathBuf::from(path)))
    }

    /// The arguments that select this server (`-L NAME`, `-S PATH`, or none).
    pub fn args(&self) -> Vec<OsString> {
        match self {
            TmuxServerRef::Default => Vec::new(),
            TmuxServerRef::Name(name) => vec!["-L".into(), name.into()],
            TmuxServerRef::Path(path) => vec!["-S".into(), path.into()],
        }
    }

    /// A `tmux` command aimed at this server, with `TMUX` unset.
    pub fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("tmux");
        cmd.args(self.args()).env_remove("TMUX");
        cmd
    }
}

impl fmt::Display for TmuxServerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TmuxServerRef::Default => f.write_str("the default tmux server"),
            TmuxServerRef::Name(name) => write!(f, "tmux server -L {name}"),
            TmuxServerRef::Path(path) => write!(f, "tmux server -S {}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmux_env_gives_the_socket_path() {
        assert_eq!(
            TmuxServerRef::from_tmux_env("/tmp/tmux-1000/default,4242,0"),
            Some(TmuxServerRef::Path("/tmp/tmux-1000/default".into()))
        );
        assert_eq!(TmuxServerRef::from_tmux_env(""), None);
    }

    #[test]
    fn args_select_the_socket() {
        assert!(TmuxServerRef::Default.args().is_empty());
        assert_eq!(TmuxServerRef::Name("pb".into()).args(), ["-L", "pb"]);
        assert_eq!(TmuxServerRef::Path("/s".into()).args(), ["-S", "/s"]);
    }
}
