//! Which tmux server to talk to, and the `tmux` argv that reaches it.
//!
//! A tmux server is found by its socket: the user's default one, a named one under the
//! tmux socket directory (`-L NAME`), or an explicit path (`-S PATH`). This is the one type
//! for "which server": the coordinator, `panebus up`/`down`, the other CLI commands and the
//! tests all build their `tmux` invocations from a [`TmuxServerRef`] (async
//! [`TmuxServerRef::command`] or blocking [`TmuxServerRef::blocking_command`]), always with
//! `TMUX` removed from the environment so an inherited value never redirects the command to
//! another server. A process inside tmux that means "my own server" resolves it first with
//! [`TmuxServerRef::from_tmux_env`]. Arguments that carry names (session names, commands)
//! go through [`literal_arg`], since the tmux command line is itself a small command
//! language.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

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

    /// The same as [`TmuxServerRef::command`] for blocking callers (`panebus up`/`down`,
    /// which run before any runtime work and on blocking threads).
    pub fn blocking_command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new("tmux");
        cmd.args(self.args()).env_remove("TMUX");
        cmd
    }

    /// The socket path tmux uses for this server, by tmux's own rule for `-L` and the
    /// default server (`$TMUX_TMPDIR`, else `/tmp`, then `tmux-UID/NAME`).
    pub fn socket_path(&self) -> PathBuf {
        let by_name = |name: &str| {
            let base = std::env::var_os("TMUX_TMPDIR")
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
            // SAFETY: getuid has no preconditions and cannot fail.
            let uid = unsafe { libc::getuid() };
            base.join(format!("tmux-{uid}")).join(name)
        };
        match self {
            TmuxServerRef::Default => by_name("default"),
            TmuxServerRef::Name(name) => by_name(name),
            TmuxServerRef::Path(path) => path.clone(),
        }
    }

    /// Whether this and `other` reach the same server (same socket file, or the same path
    /// when a socket does not exist).
    pub fn same_server(&self, other: &TmuxServerRef) -> bool {
        same_file(&self.socket_path(), &other.socket_path())
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

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
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
    fn socket_paths_follow_tmux_rules() {
        let uid = unsafe { libc::getuid() };
        let base = std::env::var_os("TMUX_TMPDIR")
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from)
            .join(format!("tmux-{uid}"));
        assert_eq!(TmuxServerRef::Default.socket_path(), base.join("default"));
        assert_eq!(
            TmuxServerRef::Name("pb".into()).socket_path(),
            base.join("pb")
        );
        assert_eq!(
            TmuxServerRef::Path("/s/x".into()).socket_path(),
            PathBuf::from("/s/x")
        );
        assert!(TmuxServerRef::Name("pb".into()).same_server(&TmuxServerRef::Path(base.join("pb"))));
        assert!(!TmuxServerRef::Default.same_server(&TmuxServerRef::Name("pb".into())));
    }

    #[test]
    fn args_select_the_socket() {
        assert!(TmuxServerRef::Default.args().is_empty());
        assert_eq!(TmuxServerRef::Name("pb".into()).args(), ["-L", "pb"]);
        assert_eq!(TmuxServerRef::Path("/s".into()).args(), ["-S", "/s"]);
    }
}
