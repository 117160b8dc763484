//! `panebus tail` against a real private tmux server: the pane's bytes arrive exactly,
//! other panes stay out, unknown panes are exit 4, and a closing pane or session ends it.

mod support;

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use support::process::ChildGuard;
use support::wait::wait_for;
use support::{TmuxServer, NO_ENV};

const TIMEOUT: Duration = Duration::from_secs(30);

/// A running `panebus tail`, killed on drop (so a failing test never leaves it behind),
/// with its stdout and stderr collected by reader threads.
struct Tail {
    child: ChildGuard,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Tail {
    fn start(tmux: &TmuxServer, pane: &str) -> Tail {
        Tail::start_with(tmux, pane, &[])
    }

    fn start_with(tmux: &TmuxServer, pane: &str, extra: &[&str]) -> Tail {
        let mut child = Command::new(env!("CARGO_BIN_EXE_panebus"))
            .arg("tail")
            .arg(pane)
            .args(extra)
            .arg("-S")
            .arg(&tmux.socket)
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run panebus tail");
        let stdout = collect(child.stdout.take().expect("piped stdout"));
        let stderr = collect(child.stderr.take().expect("piped stderr"));
        Tail {
            child: ChildGuard(child),
            stdout,
            stderr,
        }
    }

    fn stdout(&self) -> Vec<u8> {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits until tmux lists tail's control client, so output from now on reaches it.
    fn wait_attached(&mut self, tmux: &TmuxServer) {
        wait_for("tail's control client", TIMEOUT, || {
            if let Ok(Some(status)) = self.child.0.try_wait() {
                panic!("tail exited early ({status}): {}", self.stderr());
            }
            tmux.run(&["list-clients", "-F", "#{client_control_mode}"])
                .lines()
                .any(|l| l == "1")
        });
    }

    fn wait_output(&self, marker: &[u8]) {
        wait_for("the marker on tail's stdout", TIMEOUT, || {
            contains(&self.stdout(), marker)
        });
    }

    /// Waits for tail to exit with `code`, saying `message` on stderr. Its stderr is read
    /// by a thread of its own, which may still be draining the pipe when tail has exited.
    fn assert_exit(&mut self, code: i32, message: &str) {
        let status = self.wait_exit();
        assert_eq!(status.code(), Some(code), "stderr: {}", self.stderr());
        wait_for(&format!("{message:?} on tail's stderr"), TIMEOUT, || {
            self.stderr().contains(message)
        });
    }

    fn wait_exit(&mut self) -> ExitStatus {
        self.child
            .wait_exit(TIMEOUT)
            .unwrap_or_else(|| panic!("tail did not exit; stderr: {}", self.stderr()))
    }
}

fn collect(mut from: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buffer);
    thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = from.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    buffer
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A new window running `sh` (predictable output, unlike an interactive login shell);
/// returns its pane id.
fn sh_pane(tmux: &TmuxServer, session: &str) -> String {
    tmux.new_window(session, NO_ENV, &["sh"])
}

/// Types `line` and Enter into `pane`.
fn type_line(tmux: &TmuxServer, pane: &str, line: &str) {
    tmux.run(&["send-keys", "-t", pane, "-l", line]);
    tmux.run(&["send-keys", "-t", pane, "Enter"]);
}

#[test]
fn tail_prints_the_panes_bytes_exactly_and_nothing_from_other_panes() {
    let tmux = TmuxServer::start("tailed");
    let pane = sh_pane(&tmux, "tailed");
    let other = sh_pane(&tmux, "tailed");
    let mut tail = Tail::start(&tmux, &format!("devbox/{pane}"));
    tail.wait_attached(&tmux);

    // The typed line echoes the octal escapes as text; only printf's output holds the
    // real bytes: UTF-8 é, a backslash, and an ESC sequence.
    type_line(&tmux, &pane, r"printf 'M1-\303\251-\\-\033[1m-Z\n'");
    tail.wait_output(b"M1-\xc3\xa9-\\-\x1b[1m-Z");

    // One pane existed when tail started (tail turns its output off), one is new (tail
    // drops its output).
    let newer = sh_pane(&tmux, "tailed");
    for (n, from) in [&other, &newer].into_iter().enumerate() {
        type_line(&tmux, from, &format!("printf 'OTHER%sPANE{n}\\n' X"));
        wait_for("the other pane's output", TIMEOUT, || {
            tmux.run(&["capture-pane", "-p", "-t", from])
                .contains(&format!("OTHERXPANE{n}"))
        });
    }
    // Output is delivered in order: once a later marker of the tailed pane arrived, the
    // other pane's line would have arrived before it if tail let it through.
    type_line(&tmux, &pane, "printf 'DONE%s\\n' X");
    tail.wait_output(b"DONEX");
    let seen = tail.stdout();
    assert!(
        !contains(&seen, b"OTHERXPANE") && !contains(&seen, b"OTHER%sPANE"),
        "another pane's output reached tail: {}",
        String::from_utf8_lossy(&seen)
    );
}

#[test]
fn an_unknown_pane_is_exit_4_with_a_clear_message() {
    let tmux = TmuxServer::start("tailed");
    let mut tail = Tail::start(&tmux, "%4242");
    tail.assert_exit(4, "no pane %4242");
    assert!(tail.stdout().is_empty());
}

#[test]
fn an_explicit_session_is_followed_and_a_missing_one_is_exit_4() {
    let tmux = TmuxServer::start("tailed");
    let pane = sh_pane(&tmux, "tailed");
    let mut tail = Tail::start_with(&tmux, &pane, &["--session", "tailed"]);
    tail.wait_attached(&tmux);
    type_line(&tmux, &pane, "printf 'VIA%sSESSION\\n' _");
    tail.wait_output(b"VIA_SESSION");

    let mut unknown = Tail::start_with(&tmux, "%4242", &["--session", "tailed"]);
    unknown.assert_exit(4, "no pane %4242");

    let mut missing = Tail::start_with(&tmux, &pane, &["--session", "nosuch"]);
    missing.assert_exit(4, "cannot attach to session \"nosuch\"");
}

#[test]
fn a_malformed_pane_is_a_usage_error() {
    let tmux = TmuxServer::start("tailed");
    let mut tail = Tail::start(&tmux, "%3;kill-server");
    tail.assert_exit(2, "is not a pane");
    tmux.run(&["has-session", "-t", "tailed"]);
}

#[test]
fn killing_the_pane_ends_tail_with_a_note() {
    let tmux = TmuxServer::start("tailed");
    let pane = sh_pane(&tmux, "tailed");
    let mut tail = Tail::start(&tmux, &pane);
    tail.wait_attached(&tmux);
    tmux.run(&["kill-pane", "-t", &pane]);
    tail.assert_exit(0, &format!("pane {pane} closed"));
}

#[test]
fn killing_the_session_ends_tail_with_an_error() {
    let tmux = TmuxServer::start("keeper");
    tmux.run(&["new-session", "-d", "-s", "doomed", "sh"]);
    let pane = tmux.run(&["display-message", "-p", "-t", "doomed:", "#{pane_id}"]);
    let mut tail = Tail::start(&tmux, pane.trim());
    tail.wait_attached(&tmux);
    tmux.run(&["kill-session", "-t", "doomed"]);
    tail.assert_exit(1, "session \"doomed\" ended");
}

#[test]
fn a_pane_whose_process_exits_under_remain_on_exit_ends_tail() {
    let tmux = TmuxServer::start("tailed");
    let pane = sh_pane(&tmux, "tailed");
    tmux.run(&["set-option", "-p", "-t", &pane, "remain-on-exit", "on"]);
    let mut tail = Tail::start(&tmux, &pane);
    tail.wait_attached(&tmux);
    type_line(&tmux, &pane, "exit");
    tail.assert_exit(0, &format!("pane {pane} closed"));
    assert_eq!(
        tmux.run(&["display-message", "-p", "-t", &pane, "#{pane_dead}"])
            .trim(),
        "1"
    );
}
