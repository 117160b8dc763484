//! Which tmux server to talk to, and the `tmux` argv that reaches it.
//!
//! A tmux server is found by its socket: the user's default one, a named one under the
//! tmux socket directory (`-L NAME`), or an explicit path (`-S PATH`). The coordinator, the
//! CLI and the tests all build their `tmux` invocations from a [`TmuxServerRef`], always with
//! `TMUX` removed from the environment so an inherited value never redirects the command to
//! another server. Arguments that carry names (session names, commands) go through
//! [`literal_arg`], since the tmux command line is itself a small command language.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
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

/// `arg` as the tmux command line must be given it to take it literally. tmux splits its
/// argv into commands at every argument ending in `;` (dropping the `;`), so a pane command
/// `sh -c 'make;' kill-server` would run `kill-server`, and a session `x;` could not be
/// named; an argument ending in `\;` keeps a literal `;` (tmux drops the backslash).
pub fn literal_arg(arg: &OsStr) -> OsString {
    match arg.as_bytes().split_last() {
        Some((b';', head)) => {
            let mut escaped = head.to_vec();
            escaped.extend_from_slice(b"\\;");
            OsString::from_vec(escaped)
        }
        _ => arg.to_owned(),
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
    fn a_final_semicolon_is_escaped_for_the_tmux_command_line() {
        let lit = |s: &str| literal_arg(OsStr::new(s)).into_string().unwrap();
        assert_eq!(lit("make;"), "make\\;");
        assert_eq!(lit(";"), "\\;");
        assert_eq!(lit("a\\;"), "a\\\\;");
        assert_eq!(lit("a;b"), "a;b");
        assert_eq!(lit(""), "");
    }

    #[test]
    fn args_select_the_socket() {
        assert!(TmuxServerRef::Default.args().is_empty());
        assert_eq!(TmuxServerRef::Name("pb".into()).args(), ["-L", "pb"]);
        assert_eq!(TmuxServerRef::Path("/s".into()).args(), ["-S", "/s"]);
    }
}
