//! Building the tmux session of `panebus up` with the `tmux` command-line client.
//!
//! `up` runs before any coordinator exists, so it drives tmux through its CLI: every call
//! passes its arguments as separate argv elements (no shell), and pane commands are given
//! as argv lists after `--`, which tmux 3.x executes directly. tmux still interprets two
//! things: an argument ending in `;` ends the command (the rest of argv would run as more
//! tmux commands), so [`Tmux::run`] escapes that `;` ([`literal_arg`]); and `-c` start
//! directories are format-expanded, so their `#` are doubled here. Names reaching tmux (session, roles)
//! are restricted to `[A-Za-z0-9_-]` by [`super::layout_file`].
//!
//! Layout: one window per role (named after it, panes tiled), then a window named
//! `coordinator` running `panebus attach --adopt SESSION`. Each window is created running a
//! placeholder, gets `remain-on-exit on` (so a worker that dies keeps its pane and the
//! coordinator can respawn it in place with the same pane id) and the user option
//! `@panebus_role`, and only then runs the real command (`respawn-pane -k`), so even a
//! worker that fails at once cannot close its pane. Health shows in pane borders (`#{@panebus_state}`, fed by the
//! coordinator) and `status-right` shows `#{@panebus_status}`; all options are set on the
//! session or its windows, never globally (`-g`).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

use super::layout_file::{Layout, Role};
use crate::tmux::server::literal_arg;

/// The pane border `up` puts on its windows: pane index, role and the state word the
/// coordinator keeps in the pane option `@panebus_state` (`ok`, `hung`, `dead`,
/// `quarantined`, `stopped`).
pub const PANE_BORDER_FORMAT: &str =
    " #{pane_index} #{@panebus_role} #{?@panebus_state,[#{@panebus_state}],[starting]} ";
/// `status-right` of sessions `up` creates.
pub const STATUS_RIGHT: &str = "#{@panebus_status}";
/// `@panebus_status` until the coordinator writes the first summary.
pub const INITIAL_STATUS: &str = "pb: starting";
/// Size of the detached session before a client attaches (room for many panes).
const DETACHED_SIZE: (&str, &str) = ("200", "50");

/// Which tmux server to talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TmuxSocket {
    /// The default server (or the one `$TMUX` points at).
    Default,
    /// `-L NAME`.
    Name(String),
    /// `-S PATH`.
    Path(PathBuf),
}

impl TmuxSocket {
    fn args(&self) -> Vec<OsString> {
        match self {
            TmuxSocket::Default => Vec::new(),
            TmuxSocket::Name(name) => vec!["-L".into(), name.into()],
            TmuxSocket::Path(path) => vec!["-S".into(), path.into()],
        }
    }
}

/// A tmux call that failed.
#[derive(Debug, Error)]
pub enum SessionError {
    #[error("tmux is not installed (or not on PATH): install it with `sudo apt-get install tmux` (Debian/Ubuntu) or `brew install tmux` (macOS)")]
    NotInstalled,
    #[error("cannot run tmux: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("`tmux {command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("tmux session {0:?} already exists: attach to it with `tmux attach -t {0}`, stop it with `panebus down {0}`, or choose another name with --session")]
    Exists(String),
}

/// The `tmux` client for one server.
#[derive(Debug, Clone)]
pub struct Tmux {
    socket: TmuxSocket,
}

impl Tmux {
    pub fn new(socket: TmuxSocket) -> Tmux {
        Tmux { socket }
    }

    /// The server this client talks to.
    pub fn socket(&self) -> &TmuxSocket {
        &self.socket
    }

    /// A `tmux` command with the server selected; the caller adds the arguments.
    pub fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command.args(self.socket.args());
        if self.socket != TmuxSocket::Default {
            // An explicit server is meant even when run from inside another tmux.
            command.env_remove("TMUX");
        }
        command
    }

    /// Runs one tmux command and returns its stdout without the final newline. Every
    /// argument reaches tmux as itself, a final `;` included ([`literal_arg`]).
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<String, SessionError> {
        let output = self
            .command()
            .args(args.iter().map(|arg| literal_arg(arg.as_ref())))
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|err| match err.kind() {
                std::io::ErrorKind::NotFound => SessionError::NotInstalled,
                _ => SessionError::Spawn(err),
            })?;
        if !output.status.success() {
            return Err(SessionError::Failed {
                command: args
                    .iter()
                    .map(|a| a.as_ref().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" "),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        let mut stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if stdout.ends_with('\n') {
            stdout.pop();
        }
        Ok(stdout)
    }

    /// Whether the server has a session with exactly this name (false if no server runs).
    pub fn has_session(&self, name: &str) -> Result<bool, SessionError> {
        match self.run(&["has-session", "-t", &exact(name)]) {
            Ok(_) => Ok(true),
            Err(SessionError::Failed { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Kills session `target` after detaching its clients. tmux 3.3a segfaulted (NULL
    /// dereference at 0x20, the control-client crash class of tmux issue 5243 / PR 4980)
    /// when a session was destroyed under an attached control client such as the
    /// coordinator; detaching first closes that window.
    pub fn kill_session(&self, target: &str) -> Result<(), SessionError> {
        if self.run(&["detach-client", "-s", target]).is_ok() {
            let deadline = std::time::Instant::now() + DETACH_WAIT;
            while std::time::Instant::now() < deadline
                && self
                    .run(&["list-clients", "-t", target])
                    .is_ok_and(|clients| !clients.is_empty())
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        self.run(&["kill-session", "-t", target]).map(drop)
    }
}

/// How long `kill_session` waits for detached clients to leave.
const DETACH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A target matching the session name exactly (tmux otherwise matches prefixes).
pub fn exact(session: &str) -> String {
    format!("={session}")
}

/// Everything needed to build the session.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    pub name: String,
    pub layout: Layout,
    /// Absolute path of the `panebus` binary for worker and coordinator panes.
    pub exe: PathBuf,
    /// Session environment (`PANEBUS_REDIS_URL` and the caller's other `PANEBUS_*`).
    pub env: Vec<(String, String)>,
}

/// The session `up` built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSession {
    pub session_id: String,
    /// `(role, pane id)` in creation order.
    pub workers: Vec<(String, String)>,
    pub coordinator_pane: String,
    /// Socket path of the server, as tmux reports it.
    pub tmux_socket: PathBuf,
}

/// The argv a worker pane of `role` runs.
pub fn worker_argv(exe: &Path, role: &Role) -> Vec<OsString> {
    let mut argv: Vec<OsString> = match &role.command {
        Some(command) => command.iter().map(OsString::from).collect(),
        None => {
            let mut argv: Vec<OsString> = vec![
                exe.into(),
                "worker".into(),
                "--role".into(),
                (&role.name).into(),
            ];
            for (kind, program) in &role.handlers {
                argv.push("--handler".into());
                argv.push(format!("{kind}={program}").into());
            }
            argv
        }
    };
    // tmux runs a single-word command through `sh -c`; `env` keeps it an exec, and also
    // carries the role's own variables without leaking them into the session.
    if !role.env.is_empty() || argv.len() == 1 {
        // `env` ends its options at `--`, then takes NAME=VALUE words until the program.
        let mut wrapped: Vec<OsString> = vec!["env".into(), "--".into()];
        wrapped.extend(
            role.env
                .iter()
                .map(|(k, v)| OsString::from(format!("{k}={v}"))),
        );
        wrapped.append(&mut argv);
        argv = wrapped;
    }
    argv
}

/// `-c DIR` arguments with `#` doubled (tmux format-expands start directories).
fn start_dir_args(role: &Role) -> Vec<OsString> {
    match &role.working_dir {
        Some(dir) => vec!["-c".into(), dir.to_string_lossy().replace('#', "##").into()],
        None => Vec::new(),
    }
}

/// Creates the session; on failure, kills whatever part of it was created.
pub fn create(tmux: &Tmux, spec: &SessionSpec) -> Result<CreatedSession, SessionError> {
    if tmux.has_session(&spec.name)? {
        return Err(SessionError::Exists(spec.name.clone()));
    }
    let mut session_id = None;
    let result = build(tmux, spec, &mut session_id);
    if result.is_err() {
        if let Some(id) = &session_id {
            let _ = tmux.run(&["kill-session", "-t", id]);
        }
    }
    result
}

/// What a pane runs until its options are set: a worker that fails at once would
/// otherwise close its pane (and maybe the whole server) before `remain-on-exit` is on.
const PLACEHOLDER: [&str; 2] = ["sleep", "86400"];

fn build(
    tmux: &Tmux,
    spec: &SessionSpec,
    session_id_out: &mut Option<String>,
) -> Result<CreatedSession, SessionError> {
    let mut workers = Vec::new();
    let mut first_window = None;
    let mut session_id = String::new();
    for role in &spec.layout.roles {
        let argv = worker_argv(&spec.exe, role);
        let (window, pane) = if session_id.is_empty() {
            let mut args: Vec<OsString> = [
                "new-session",
                "-d",
                "-s",
                &spec.name,
                "-x",
                DETACHED_SIZE.0,
                "-y",
                DETACHED_SIZE.1,
            ]
            .map(OsString::from)
            .to_vec();
            for (key, value) in &spec.env {
                args.push("-e".into());
                args.push(format!("{key}={value}").into());
            }
            let (sid, window, pane) = new_window(tmux, args, &role.name)?;
            session_id = sid;
            *session_id_out = Some(session_id.clone());
            for (key, value) in &spec.env {
                tmux.run(&["set-environment", "-t", &session_id, key, value])?;
            }
            (window, pane)
        } else {
            let target = format!("{session_id}:");
            let args = ["new-window", "-d", "-t", &target]
                .map(OsString::from)
                .to_vec();
            let (_, window, pane) = new_window(tmux, args, &role.name)?;
            (window, pane)
        };
        first_window.get_or_insert_with(|| window.clone());
        for (option, value) in [
            ("remain-on-exit", "on"),
            ("pane-border-status", "top"),
            ("pane-border-format", PANE_BORDER_FORMAT),
            ("@panebus_role", role.name.as_str()),
        ] {
            tmux.run(&["set-option", "-w", "-t", &window, option, value])?;
        }
        respawn(tmux, &pane, role, &argv)?;
        workers.push((role.name.clone(), pane));
        for _ in 1..role.count {
            // The window's options (remain-on-exit, role) already apply to new panes.
            let mut args: Vec<OsString> = [
                "split-window",
                "-d",
                "-t",
                &window,
                "-P",
                "-F",
                "#{pane_id}",
            ]
            .map(OsString::from)
            .to_vec();
            args.extend(start_dir_args(role));
            args.push("--".into());
            args.extend(argv.iter().cloned());
            let pane = tmux.run(&args)?;
            workers.push((role.name.clone(), pane));
            // Re-tile after each split so the next one has room.
            tmux.run(&["select-layout", "-t", &window, "tiled"])?;
        }
    }
    tmux.run(&[
        "set-option",
        "-t",
        &session_id,
        "@panebus_status",
        INITIAL_STATUS,
    ])?;
    tmux.run(&[
        "set-option",
        "-t",
        &session_id,
        "status-right",
        STATUS_RIGHT,
    ])?;
    tmux.run(&["set-option", "-t", &session_id, "status-right-length", "80"])?;
    let target = format!("{session_id}:");
    let args = ["new-window", "-d", "-t", &target]
        .map(OsString::from)
        .to_vec();
    let (_, window, coordinator_pane) = new_window(tmux, args, "coordinator")?;
    // A coordinator that fails at start keeps its pane, so its error stays readable.
    tmux.run(&["set-option", "-w", "-t", &window, "remain-on-exit", "on"])?;
    let coordinator: Vec<OsString> = vec![
        "respawn-pane".into(),
        "-k".into(),
        "-t".into(),
        coordinator_pane.clone().into(),
        "--".into(),
        spec.exe.clone().into(),
        "attach".into(),
        // The workers registered before the coordinator started; `up` made their panes.
        "--adopt".into(),
        "--".into(),
        spec.name.clone().into(),
    ];
    tmux.run(&coordinator)?;
    if let Some(window) = &first_window {
        tmux.run(&["select-window", "-t", window])?;
    }
    let socket = tmux.run(&["display-message", "-p", "-t", &session_id, "#{socket_path}"])?;
    Ok(CreatedSession {
        session_id,
        workers,
        coordinator_pane,
        tmux_socket: PathBuf::from(socket),
    })
}

/// Runs `new-session`/`new-window` (`args`) with the placeholder command; returns the
/// session, window and pane ids.
fn new_window(
    tmux: &Tmux,
    mut args: Vec<OsString>,
    name: &str,
) -> Result<(String, String, String), SessionError> {
    args.extend(
        [
            "-n",
            name,
            "-P",
            "-F",
            "#{session_id} #{window_id} #{pane_id}",
            "--",
        ]
        .map(OsString::from),
    );
    args.extend(PLACEHOLDER.map(OsString::from));
    let out = tmux.run(&args)?;
    let ids: Vec<&str> = out.split(' ').collect();
    match ids.as_slice() {
        [session, window, pane] => Ok((session.to_string(), window.to_string(), pane.to_string())),
        _ => Err(SessionError::Failed {
            command: "new-session/new-window -P".into(),
            stderr: format!("unexpected output {out:?}"),
        }),
    }
}

/// Replaces a placeholder pane's command with the real one (same pane id).
fn respawn(tmux: &Tmux, pane: &str, role: &Role, argv: &[OsString]) -> Result<(), SessionError> {
    let mut args: Vec<OsString> = ["respawn-pane", "-k", "-t", pane]
        .map(OsString::from)
        .to_vec();
    args.extend(start_dir_args(role));
    args.push("--".into());
    args.extend(argv.iter().cloned());
    tmux.run(&args)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn role(command: Option<Vec<&str>>, env: &[(&str, &str)]) -> Role {
        Role {
            name: "rev".into(),
            count: 1,
            command: command.map(|c| c.into_iter().map(String::from).collect()),
            handlers: BTreeMap::from([("lint".to_string(), "cargo clippy".to_string())]),
            working_dir: Some("/srv/#x".into()),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn strings(argv: Vec<OsString>) -> Vec<String> {
        argv.into_iter().map(|s| s.into_string().unwrap()).collect()
    }

    #[test]
    fn default_worker_argv() {
        let argv = strings(worker_argv(Path::new("/bin/panebus"), &role(None, &[])));
        assert_eq!(
            argv,
            [
                "/bin/panebus",
                "worker",
                "--role",
                "rev",
                "--handler",
                "lint=cargo clippy"
            ]
        );
    }

    #[test]
    fn env_and_single_word_commands_go_through_env() {
        let argv = strings(worker_argv(Path::new("/p"), &role(Some(vec!["htop"]), &[])));
        assert_eq!(argv, ["env", "--", "htop"]);
        let argv = strings(worker_argv(
            Path::new("/p"),
            &role(Some(vec!["a", "$(id); x"]), &[("K", "v w")]),
        ));
        assert_eq!(argv, ["env", "--", "K=v w", "a", "$(id); x"]);
    }

    #[test]
    fn start_dir_hashes_are_doubled() {
        let args = strings(start_dir_args(&role(None, &[])));
        assert_eq!(args, ["-c", "/srv/##x"]);
    }
}
