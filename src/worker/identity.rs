//! Who a worker is: its pane (from `TMUX_PANE`, else a random `standalone-*` name), its
//! worker id `<node>/<pane>`, and the registry record it starts with.

use std::time::Duration;

use crate::config::Config;
use crate::schema::{now_ms, WorkerInfo, WorkerState};

/// The pane id from `TMUX_PANE` (e.g. `%3`), or `standalone-<random>` outside tmux.
pub fn detect_pane(tmux_pane: Option<&str>) -> String {
    match tmux_pane.map(str::trim) {
        Some(p)
            if p.starts_with('%') && p.len() > 1 && p[1..].chars().all(|c| c.is_ascii_digit()) =>
        {
            p.to_string()
        }
        _ => format!(
            "standalone-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        ),
    }
}

/// The tmux session of `pane`, asked from the tmux server the worker runs under (best
/// effort: `None` outside tmux or if tmux does not answer within a second).
pub async fn detect_session(pane: &str) -> Option<String> {
    if !pane.starts_with('%') || std::env::var_os("TMUX").is_none() {
        return None;
    }
    let output = tokio::process::Command::new("tmux")
        .args(["display-message", "-p", "-t", pane, "#{session_name}"])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(1), output)
        .await
        .ok()?
        .ok()?;
    let name = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (output.status.success() && !name.is_empty()).then_some(name)
}

/// The record a worker registers with (generation is filled in by registration).
pub fn initial_info(
    config: &Config,
    pane: &str,
    role: &str,
    argv: Vec<String>,
    session: Option<String>,
) -> WorkerInfo {
    WorkerInfo {
        id: config.worker_id(pane),
        role: role.to_string(),
        node: config.node.clone(),
        pane: pane.to_string(),
        pid: std::process::id(),
        generation: 0,
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_ms: now_ms(),
        current_command: None,
        state: WorkerState::Idle,
        argv: without_url_secret(argv),
        cwd: std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        session,
    }
}

/// `argv` without a `--redis-url` that carries a password: the registry record is readable
/// by every dispatcher (`panebus panes --json`). The coordinator respawns from this argv
/// and passes its own `PANEBUS_REDIS_URL`, so the dropped flag is not needed there.
fn without_url_secret(argv: Vec<String>) -> Vec<String> {
    let secret = |url: &str| crate::bus::redact_url(url) != url;
    let mut out = Vec::with_capacity(argv.len());
    let mut args = argv.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--redis-url" {
            match args.next() {
                Some(url) if secret(&url) => {}
                Some(url) => out.extend([arg, url]),
                None => out.push(arg),
            }
        } else if !arg.strip_prefix("--redis-url=").is_some_and(secret) {
            out.push(arg);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{detect_pane, without_url_secret};

    #[test]
    fn a_redis_url_with_a_password_is_not_recorded() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            without_url_secret(argv(&[
                "panebus",
                "--redis-url",
                "redis://u:pw@h/0",
                "worker",
                "--redis-url=redis://:pw@h/0",
                "--role",
                "r",
            ])),
            argv(&["panebus", "worker", "--role", "r"])
        );
        let plain = argv(&["panebus", "--redis-url", "redis://h/0", "worker"]);
        assert_eq!(without_url_secret(plain.clone()), plain);
    }

    #[test]
    fn panes_come_from_tmux_pane_or_are_standalone() {
        assert_eq!(detect_pane(Some("%12")), "%12");
        for odd in [None, Some(""), Some("%"), Some("12"), Some("%1;x")] {
            assert!(detect_pane(odd).starts_with("standalone-"), "{odd:?}");
        }
        assert_ne!(detect_pane(None), detect_pane(None));
    }
}
