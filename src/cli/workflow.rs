//! The workflow commands: `workflow-setup`, `workflow-teardown`, `workflow-status` and
//! `workflows`.
//!
//! `workflow-setup` builds a tmux session for `panebus ask`: one window `workflow` with five
//! panes — orchestrator, planner, reviewer, worker, compounder, each `panebus worker --role
//! <role>` — and a window `coordinator` running `panebus attach <session>`. It runs before
//! any control-mode client exists, so it drives tmux through its command-line client with
//! every argument a separate argv element (no shell, no tmux command parsing); pane
//! commands are argv lists after `--`, which tmux executes directly. Each pane starts on a
//! placeholder, gets `remain-on-exit on` and its tags (`@panebus_worker` = its worker id,
//! `@panebus_role`), and only then runs the worker (`respawn-pane -k`), so a worker that
//! fails at once keeps its pane and the coordinator can respawn it in place. Options are
//! set on the session's windows and panes only, never globally.

use std::ffi::OsString;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use serde::Serialize;

use super::tmux_server::TmuxServerArgs;
use crate::bus::Bus;
use crate::config::Config;
use crate::schema::now_ms;
use crate::up::session::{exact, Tmux};
use crate::workflow::record::{PhaseState, WorkflowRecord};
use crate::workflow::{store, ORCHESTRATOR_ROLE};

/// The session `workflow-setup` creates when `--session` is not given.
pub const DEFAULT_SESSION: &str = "panebus-workflow";

/// The roles of the workflow window's panes, in pane order.
pub const ROLES: [&str; 5] = [
    ORCHESTRATOR_ROLE,
    "planner",
    "reviewer",
    "worker",
    "compounder",
];

/// The `tmux` command line for the selected server (shared with `panebus up`).
fn tmux_cli(server: &TmuxServerArgs) -> Tmux {
    Tmux::new(server.server())
}

/// Session names reach tmux targets, so keep them plain.
fn check_session_name(session: &str) -> anyhow::Result<()> {
    if session.is_empty()
        || !session
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("invalid session name {session:?}: use letters, digits, `-` and `_`");
    }
    Ok(())
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  panebus workflow-setup
  panebus workflow-setup --session review-bot --no-attach
  panebus ask Fix the authentication bug     # from another terminal")]
pub struct WorkflowSetupArgs {
    /// Name of the tmux session to create
    #[arg(long, value_name = "NAME", default_value = DEFAULT_SESSION)]
    pub session: String,

    /// Create the session but do not attach to it
    #[arg(long)]
    pub no_attach: bool,

    #[command(flatten)]
    pub server: TmuxServerArgs,
}

/// What `workflow-setup` created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetupReport {
    pub session: String,
    /// `(role, pane id, worker id)` in pane order.
    pub panes: Vec<(String, String, String)>,
    pub coordinator_pane: String,
}

pub async fn setup(args: WorkflowSetupArgs, config: &Config) -> anyhow::Result<()> {
    let report = create_session(&args, config)?;
    let mut err = std::io::stderr();
    writeln!(err, "created tmux session {}:", report.session)?;
    for (role, pane, worker) in &report.panes {
        writeln!(err, "  {pane}  {role:<12}  {worker}")?;
    }
    writeln!(
        err,
        "  {}  coordinator (panebus attach {})",
        report.coordinator_pane, report.session
    )?;
    if args.no_attach || !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        writeln!(
            err,
            "attach with `tmux attach -t {}`; send tasks with `panebus ask TASK...`; remove it with `panebus workflow-teardown {}`",
            report.session, report.session
        )?;
        return Ok(());
    }
    let verb = if std::env::var_os("TMUX").is_some() {
        "switch-client"
    } else {
        "attach-session"
    };
    let status = tmux_cli(&args.server)
        .command()
        .args([verb, "-t", &exact(&report.session)])
        .stdin(Stdio::inherit())
        .status()
        .context("cannot run tmux to attach")?;
    if !status.success() {
        bail!(
            "tmux {verb} failed; the session is running: attach with `tmux attach -t {}`",
            report.session
        );
    }
    Ok(())
}

/// Placeholder a pane runs until its options are set (see the module comment).
const PLACEHOLDER: [&str; 2] = ["sleep", "86400"];

/// Builds the session; on failure removes whatever part of it was created.
pub fn create_session(args: &WorkflowSetupArgs, config: &Config) -> anyhow::Result<SetupReport> {
    let session = &args.session;
    check_session_name(session)?;
    let tmux = &tmux_cli(&args.server);
    if tmux.has_session(session)? {
        bail!(
            "tmux session {session} already exists: attach with `tmux attach -t {session}`, \
             or remove it with `panebus workflow-teardown {session}`"
        );
    }
    let exe = std::env::current_exe().context("cannot find the panebus binary")?;
    let mut new_session: Vec<OsString> = [
        "new-session",
        "-d",
        "-s",
        session,
        "-n",
        "workflow",
        "-x",
        "200",
        "-y",
        "50",
        "-P",
        "-F",
        "#{session_id} #{window_id} #{pane_id}",
    ]
    .map(OsString::from)
    .to_vec();
    for (key, value) in pane_environment(config) {
        new_session.push("-e".into());
        new_session.push(format!("{key}={value}").into());
    }
    new_session.push("--".into());
    new_session.extend(PLACEHOLDER.map(OsString::from));
    let ids = tmux.run(&new_session)?;
    let mut ids = ids.split_whitespace();
    let (Some(session_id), Some(window), Some(first_pane)) = (ids.next(), ids.next(), ids.next())
    else {
        bail!("tmux new-session printed no ids");
    };
    let session_id = session_id.to_string();
    let result = build(tmux, config, session, &session_id, window, first_pane, &exe);
    if result.is_err() {
        let _ = tmux.run(&["kill-session", "-t", &session_id]);
    }
    result
}

fn build(
    tmux: &Tmux,
    config: &Config,
    session: &str,
    session_id: &str,
    window: &str,
    first_pane: &str,
    exe: &std::path::Path,
) -> anyhow::Result<SetupReport> {
    for (option, value) in [
        ("remain-on-exit", "on"),
        ("pane-border-status", "top"),
        ("pane-border-format", " #{pane_index} #{@panebus_role} "),
    ] {
        tmux.run(&["set-option", "-w", "-t", window, option, value])?;
    }
    let mut panes = vec![first_pane.to_string()];
    for _ in 1..ROLES.len() {
        // Split the newest pane, so panes keep the order of ROLES.
        let last = panes.last().expect("the first pane exists").clone();
        let mut split: Vec<OsString> = [
            "split-window",
            "-d",
            "-t",
            &last,
            "-P",
            "-F",
            "#{pane_id}",
            "--",
        ]
        .map(OsString::from)
        .to_vec();
        split.extend(PLACEHOLDER.map(OsString::from));
        panes.push(tmux.run(&split)?);
        tmux.run(&["select-layout", "-t", window, "tiled"])?;
    }
    let mut report = Vec::new();
    for (role, pane) in ROLES.iter().zip(&panes) {
        let worker = config.worker_id(pane);
        tmux.run(&["set-option", "-p", "-t", pane, "@panebus_role", role])?;
        tmux.run(&["set-option", "-p", "-t", pane, "@panebus_worker", &worker])?;
        tmux.run(&["select-pane", "-t", pane, "-T", role])?;
        let mut respawn: Vec<OsString> = ["respawn-pane", "-k", "-t", pane, "--"]
            .map(OsString::from)
            .to_vec();
        respawn.extend([
            exe.as_os_str().to_os_string(),
            "worker".into(),
            "--role".into(),
            (*role).into(),
        ]);
        tmux.run(&respawn)?;
        report.push((role.to_string(), pane.clone(), worker));
    }

    let target = format!("{session_id}:");
    let mut coordinator: Vec<OsString> = [
        "new-window",
        "-d",
        "-t",
        &target,
        "-n",
        "coordinator",
        "-P",
        "-F",
        "#{window_id} #{pane_id}",
        "--",
    ]
    .map(OsString::from)
    .to_vec();
    coordinator.extend(PLACEHOLDER.map(OsString::from));
    let ids = tmux.run(&coordinator)?;
    let (coordinator_window, coordinator_pane) = ids
        .split_once(' ')
        .context("tmux new-window printed no ids")?;
    // A coordinator that fails at start keeps its pane, so its error stays readable.
    tmux.run(&[
        "set-option",
        "-w",
        "-t",
        coordinator_window,
        "remain-on-exit",
        "on",
    ])?;
    let mut respawn: Vec<OsString> = ["respawn-pane", "-k", "-t", coordinator_pane, "--"]
        .map(OsString::from)
        .to_vec();
    respawn.extend([
        exe.as_os_str().to_os_string(),
        "attach".into(),
        session.into(),
    ]);
    tmux.run(&respawn)?;
    tmux.run(&["select-window", "-t", window])?;
    Ok(SetupReport {
        session: session.to_string(),
        panes: report,
        coordinator_pane: coordinator_pane.to_string(),
    })
}

/// The session environment: every `PANEBUS_*` variable of this process, with the bus
/// settings as resolved here (flags included), so panes join the same bus under the worker
/// ids that were tagged on them.
fn pane_environment(config: &Config) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("PANEBUS_"))
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "PANEBUS_REDIS_URL" | "PANEBUS_NAMESPACE" | "PANEBUS_NODE"
            )
        })
        .collect();
    env.push(("PANEBUS_REDIS_URL".into(), config.redis_url.clone()));
    env.push(("PANEBUS_NAMESPACE".into(), config.namespace.clone()));
    env.push(("PANEBUS_NODE".into(), config.node.clone()));
    env.sort();
    env
}

#[derive(Debug, Args)]
pub struct WorkflowTeardownArgs {
    /// The session to remove
    #[arg(value_name = "SESSION", default_value = DEFAULT_SESSION)]
    pub session: String,

    #[command(flatten)]
    pub server: TmuxServerArgs,
}

/// How long teardown lets the session's workers deregister themselves after the kill.
const SELF_DEREGISTER_WAIT: Duration = Duration::from_secs(3);

pub async fn teardown(args: WorkflowTeardownArgs, config: &Config) -> anyhow::Result<()> {
    let removed = remove_session(&args, config).await?;
    eprintln!(
        "killed tmux session {}; deregistered {} worker(s)",
        args.session,
        removed.len()
    );
    Ok(())
}

/// Kills the session and makes sure none of its workers stays registered; returns their ids.
pub async fn remove_session(
    args: &WorkflowTeardownArgs,
    config: &Config,
) -> anyhow::Result<Vec<String>> {
    let session = &args.session;
    check_session_name(session)?;
    let tmux = &tmux_cli(&args.server);
    if !tmux.has_session(session)? {
        bail!("no tmux session {session} on this tmux server; list sessions with `tmux ls`");
    }
    let panes = tmux.run(&[
        "list-panes",
        "-s",
        "-t",
        &exact(session),
        "-F",
        "#{pane_id}",
    ])?;
    let pane_workers: Vec<String> = panes
        .split_whitespace()
        .map(|pane| config.worker_id(pane))
        .collect();
    let bus = Bus::connect(config).await?;
    let ours = |id: &str, info_session: Option<&str>| {
        pane_workers.iter().any(|w| w == id) || info_session == Some(session.as_str())
    };
    let before: Vec<String> = bus
        .list_workers()
        .await?
        .into_iter()
        .filter(|w| ours(&w.id, w.info.as_ref().and_then(|i| i.session.as_deref())))
        .map(|w| w.id)
        .collect();
    tmux.kill_session(&exact(session))?;

    // The workers got SIGHUP and deregister themselves; remove any that did not.
    let deadline = tokio::time::Instant::now() + SELF_DEREGISTER_WAIT;
    loop {
        let mut left = Vec::new();
        for id in &before {
            if let Some(info) = bus.worker_info(id).await? {
                left.push(info);
            }
        }
        if left.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            for info in left {
                bus.deregister(&info.id, &info.role, info.generation)
                    .await?;
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(before)
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  panebus workflow-status 01JD8X3V6Q9N2T5W7Y4Z0A1B2C
  panebus workflow-status 01JD8X3V6Q9N2T5W7Y4Z0A1B2C --json | jq '.phases[] | {phase, state}'

JSON: the workflow record: id, task, working_dir, state (pending|running|completed|failed),
created_ms, updated_ms, finished_ms, deadline_ms, driver, error, phases [{phase, state
(pending|running|completed|failed|skipped), worker, command_id, attempt, prompt, output,
summary, error, note, started_ms, finished_ms}].")]
pub struct WorkflowStatusArgs {
    /// The workflow id printed by `panebus ask`
    #[arg(value_name = "WORKFLOW_ID")]
    pub id: String,
}

/// `workflow-status`; `json` is the global `--json` flag (the record as JSON).
pub async fn status(args: WorkflowStatusArgs, config: &Config, json: bool) -> anyhow::Result<()> {
    let bus = Bus::connect(config).await?;
    let record = store::get(&bus, &args.id).await?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &record)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", render_status(&record, now_ms()))?;
    }
    Ok(())
}

fn duration_between(start: Option<u64>, end: Option<u64>) -> String {
    match (start, end) {
        (Some(s), Some(e)) if e >= s => {
            humantime::format_duration(Duration::from_millis((e - s) / 100 * 100)).to_string()
        }
        _ => "-".to_string(),
    }
}

/// The human form of `workflow-status`.
pub fn render_status(record: &WorkflowRecord, now: u64) -> String {
    let mut text = format!(
        "workflow {}  {}  (driver: {})\n",
        record.id,
        record.state.as_str(),
        record.driver.as_deref().unwrap_or("none yet")
    );
    text.push_str(&format!("task         {}\n", record.task));
    text.push_str(&format!("working dir  {}\n", record.working_dir));
    text.push_str(&format!(
        "took         {}\n\n",
        duration_between(
            Some(record.created_ms),
            Some(record.finished_ms.unwrap_or(now))
        )
    ));
    text.push_str(&format!(
        "{:<9} {:<10} {:<24} {:<9} {}\n",
        "PHASE", "STATE", "WORKER", "TOOK", "SUMMARY"
    ));
    for phase in &record.phases {
        let state = format!("{:?}", phase.state).to_lowercase();
        let detail = match phase.state {
            PhaseState::Failed => phase.error.clone().unwrap_or_default(),
            PhaseState::Skipped => phase.note.clone().unwrap_or_default(),
            _ => phase.summary.clone().unwrap_or_default(),
        };
        let end = match phase.state {
            PhaseState::Running => Some(now),
            _ => phase.finished_ms,
        };
        text.push_str(&format!(
            "{:<9} {:<10} {:<24} {:<9} {}\n",
            phase.phase.name(),
            state,
            phase.worker.as_deref().unwrap_or("-"),
            duration_between(phase.started_ms, end),
            detail.lines().next().unwrap_or("")
        ));
    }
    if let Some(error) = &record.error {
        text.push_str(&format!("\nerror: {error}\n"));
    }
    text
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  panebus workflows
  panebus workflows --active
  panebus workflows --count 5 --json

JSON: an array, newest first, of {id, task, state, working_dir, driver, created_ms,
finished_ms, current_phase, phases {review, plan, work, compound: state}, error}.")]
pub struct WorkflowsArgs {
    /// Show at most N workflows, newest first
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub count: usize,

    /// Only workflows that have not finished
    #[arg(long)]
    pub active: bool,
}

/// One line of `workflows --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowSummary {
    pub id: String,
    pub task: String,
    pub state: String,
    pub working_dir: String,
    pub driver: Option<String>,
    pub created_ms: u64,
    pub finished_ms: Option<u64>,
    /// The phase running, or the first not finished.
    pub current_phase: Option<String>,
    pub phases: serde_json::Map<String, serde_json::Value>,
    pub error: Option<String>,
}

impl WorkflowSummary {
    pub fn of(record: &WorkflowRecord) -> Self {
        let current_phase = record
            .phases
            .iter()
            .find(|p| matches!(p.state, PhaseState::Running | PhaseState::Failed))
            .or_else(|| {
                record
                    .phases
                    .iter()
                    .find(|p| p.state == PhaseState::Pending)
            })
            .map(|p| p.phase.name().to_string());
        WorkflowSummary {
            id: record.id.clone(),
            task: record.task.clone(),
            state: record.state.as_str().to_string(),
            working_dir: record.working_dir.clone(),
            driver: record.driver.clone(),
            created_ms: record.created_ms,
            finished_ms: record.finished_ms,
            current_phase,
            phases: record
                .phases
                .iter()
                .map(|p| {
                    (
                        p.phase.name().to_string(),
                        serde_json::to_value(p.state).expect("states serialize"),
                    )
                })
                .collect(),
            error: record.error.clone(),
        }
    }
}

/// `workflows`; `json` is the global `--json` flag.
pub async fn list(args: WorkflowsArgs, config: &Config, json: bool) -> anyhow::Result<()> {
    let bus = Bus::connect(config).await?;
    let records = store::list(&bus, args.count, args.active).await?;
    let summaries: Vec<WorkflowSummary> = records.iter().map(WorkflowSummary::of).collect();
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &summaries)?;
        writeln!(out)?;
        return Ok(());
    }
    if summaries.is_empty() {
        writeln!(out, "no workflows; start one with `panebus ask TASK...`")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<26} {:<9} {:<9} {:<8} TASK",
        "ID", "STATE", "PHASE", "AGE"
    )?;
    let now = now_ms();
    for s in &summaries {
        let age = humantime::format_duration(Duration::from_secs(
            now.saturating_sub(s.created_ms) / 1000,
        ));
        let task: String = s.task.chars().take(60).collect();
        writeln!(
            out,
            "{:<26} {:<9} {:<9} {:<8} {}",
            s.id,
            s.state,
            s.current_phase.as_deref().unwrap_or("-"),
            age.to_string(),
            task.lines().next().unwrap_or("")
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::record::Phase;

    #[test]
    fn session_names_are_plain() {
        assert!(check_session_name("panebus-workflow_2").is_ok());
        for bad in ["", "a b", "x;y", "=s", "a:b", "#{x}", "a.b"] {
            assert!(check_session_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_shows_phases_and_the_error() {
        let mut record = WorkflowRecord::new("W1".into(), "Fix it".into(), "/src".into(), 1000);
        record.state = crate::workflow::WorkflowState::Failed;
        record.error = Some("plan phase: agent exited with status 2".into());
        let review = record.phase_mut(Phase::Review);
        review.state = PhaseState::Completed;
        review.worker = Some("n/%2".into());
        review.summary = Some("answer to: x".into());
        let plan = record.phase_mut(Phase::Plan);
        plan.state = PhaseState::Failed;
        plan.error = Some("agent exited with status 2".into());
        let text = render_status(&record, record.created_ms + 5000);
        assert!(text.contains("workflow W1  failed"), "{text}");
        assert!(text.contains("review    completed  n/%2"), "{text}");
        assert!(text.contains("plan      failed"), "{text}");
        assert!(text.contains("error: plan phase"), "{text}");
        let summary = WorkflowSummary::of(&record);
        assert_eq!(summary.current_phase.as_deref(), Some("plan"));
        assert_eq!(summary.phases["review"], "completed");
    }
}
