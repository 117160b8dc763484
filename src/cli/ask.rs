//! `panebus ask TASK...`: run a task through the review → plan → work → compound workflow.
//!
//! It creates the workflow record, then hands the phases to a driver: a live
//! orchestrator-role worker when there is one (the phases then show in its pane and survive
//! this process), otherwise this process itself (only with `--wait`: with `--no-wait` and no
//! orchestrator nobody would run the phases, so it refuses). With `--wait` it follows the
//! record and prints one progress line per phase change on stderr (`-v` adds each phase's
//! output), then prints the work phase's answer on stdout.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::json;

use crate::bus::Bus;
use crate::config::Config;
use crate::schema::{new_id, now_ms, Command};
use crate::workflow::driver::choose_worker;
use crate::workflow::record::{Phase, PhaseState, WorkflowRecord, WorkflowState};
use crate::workflow::{store, Driver, Templates, ORCHESTRATOR_ROLE, WORKFLOW_COMMAND};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  panebus ask Fix the failing tests
  panebus ask -d /path/to/project Add user authentication
  panebus ask --no-wait Refactor the payment module
  panebus ask -v Investigate the codebase

Phases run on workers of roles reviewer, planner, worker and compounder (any live
non-orchestrator worker when a role has none). Compound runs only when the work output
ends with `COMPOUND: yes`. Follow a workflow with `panebus workflow-status ID`.")]
pub struct AskArgs {
    /// The task, in plain words
    #[arg(required = true, value_name = "TASK")]
    pub task: Vec<String>,

    /// Wait for the workflow to finish (the default)
    #[arg(long, overrides_with = "no_wait")]
    pub wait: bool,

    /// Print the workflow id and return; an orchestrator worker runs the phases
    #[arg(long, overrides_with = "wait")]
    pub no_wait: bool,

    /// Time limit of the whole workflow, in seconds
    #[arg(long, value_name = "S", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,

    /// Directory the agents work in [default: the current directory]
    #[arg(short = 'd', long, value_name = "DIR")]
    pub working_dir: Option<PathBuf>,

    /// Print each phase's output as it completes
    #[arg(short, long)]
    pub verbose: bool,
}

/// Extra time an orchestrator's `workflow` command gets beyond the workflow's own limit,
/// so the driver can record the timeout before the worker gives up on the command.
const DRIVER_GRACE: Duration = Duration::from_secs(30);

/// How often `--wait` looks at the record.
const POLL: Duration = Duration::from_millis(250);

pub async fn run(args: AskArgs, config: &Config) -> anyhow::Result<()> {
    execute(args, config, &mut std::io::stderr(), &mut std::io::stdout()).await
}

/// `run` with its progress and answer written to the given streams.
pub async fn execute(
    args: AskArgs,
    config: &Config,
    progress: &mut impl Write,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let task = args.task.join(" ");
    if task.trim().is_empty() {
        bail!("the task is empty: say what to do, e.g. `panebus ask Fix the failing tests`");
    }
    let working_dir = match &args.working_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    let working_dir = crate::worker::prompt::validate_working_dir(&working_dir)?;
    let templates = Templates::from_env()?;
    let bus = Bus::connect(config).await?;

    let orchestrators: Vec<_> = bus
        .list_workers()
        .await?
        .into_iter()
        .filter(|w| w.info.as_ref().is_some_and(|i| i.role == ORCHESTRATOR_ROLE))
        .collect();
    // Among orchestrators only, so the fallback to other roles never applies.
    let orchestrator = choose_worker(&orchestrators, ORCHESTRATOR_ROLE, "")
        .ok()
        .map(|(id, _)| id);
    if args.no_wait && orchestrator.is_none() {
        bail!(
            "--no-wait needs a live orchestrator worker to run the phases, and there is none: \
             start one with `panebus worker --role orchestrator` in a tmux pane (or `panebus workflow-setup`), \
             or run without --no-wait"
        );
    }

    let timeout = Duration::from_secs(args.timeout);
    let mut record = WorkflowRecord::new(
        new_id(),
        task,
        working_dir.display().to_string(),
        timeout.as_millis() as u64,
    );
    record.driver = Some(orchestrator.clone().unwrap_or_else(|| "local".into()));
    store::save(&bus, &record).await?;
    let id = record.id.clone();

    if let Some(orchestrator) = &orchestrator {
        let mut command = Command::new(
            WORKFLOW_COMMAND,
            json!({"workflow_id": id}),
            format!("ask:{}", config.node),
        );
        command.workflow_id = Some(id.clone());
        command.timeout_ms = Some((timeout + DRIVER_GRACE).as_millis() as u64);
        bus.enqueue(orchestrator, &command, false)
            .await
            .with_context(|| format!("cannot hand workflow {id} to orchestrator {orchestrator}"))?;
    }
    if args.no_wait {
        writeln!(out, "{id}")?;
        return Ok(());
    }

    writeln!(
        progress,
        "workflow {id} started (driver: {}): {}",
        record.driver.as_deref().unwrap_or("local"),
        record.task
    )?;
    let driver = Driver::new(bus.clone(), templates, "local");
    let drive = async {
        if orchestrator.is_none() {
            driver.run(&id).await.map(Some)
        } else {
            std::future::pending().await
        }
    };
    tokio::pin!(drive);
    let mut driven = false;
    let mut printed = Vec::new();
    let give_up = record.deadline_ms + DRIVER_GRACE.as_millis() as u64 * 2;
    let record = loop {
        tokio::select! {
            result = &mut drive, if !driven => {
                driven = true;
                result?;
            }
            _ = tokio::time::sleep(POLL) => {}
        }
        let record = store::get(&bus, &id).await?;
        report_progress(&record, &mut printed, args.verbose, progress)?;
        if record.state.is_terminal() {
            break record;
        }
        if now_ms() > give_up {
            bail!(
                "workflow {id} is still {} past its time limit: its driver ({}) may have died; \
                 check `panebus workflow-status {id}` and `panebus panes --role orchestrator`",
                record.state.as_str(),
                record.driver.as_deref().unwrap_or("unknown")
            );
        }
    };

    let took = record.finished_ms.unwrap_or_else(now_ms) - record.created_ms;
    let took = humantime::format_duration(Duration::from_millis(took / 100 * 100));
    match record.state {
        WorkflowState::Completed => {
            writeln!(progress, "workflow {id} completed in {took}")?;
            let answer = record.output(Phase::Work);
            write!(out, "{answer}")?;
            if !answer.ends_with('\n') {
                writeln!(out)?;
            }
            Ok(())
        }
        _ => bail!(
            "workflow {id} failed after {took}: {}; see `panebus workflow-status {id}`",
            record.error.as_deref().unwrap_or("unknown error")
        ),
    }
}

/// What `--wait` has printed about a phase: its start, its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Printed {
    Started(Phase),
    Ended(Phase),
}

/// Prints the phase steps not printed yet: a phase's start (with its worker and any note),
/// then its end (completed with its summary and, verbosely, its output; skipped; failed).
/// A phase that started and ended between two looks still gets both lines.
fn report_progress(
    record: &WorkflowRecord,
    printed: &mut Vec<Printed>,
    verbose: bool,
    progress: &mut impl Write,
) -> std::io::Result<()> {
    for phase in &record.phases {
        let position = WorkflowRecord::position(phase.phase);
        let name = phase.phase.name();
        let worker = phase.worker.as_deref().unwrap_or("?");
        if phase.command_id.is_some() && !printed.contains(&Printed::Started(phase.phase)) {
            printed.push(Printed::Started(phase.phase));
            writeln!(progress, "[{position}/4] {name}: running on {worker}")?;
            if let Some(note) = &phase.note {
                writeln!(progress, "[{position}/4] {name}: {note}")?;
            }
        }
        let ended = matches!(
            phase.state,
            PhaseState::Completed | PhaseState::Skipped | PhaseState::Failed
        );
        if !ended || printed.contains(&Printed::Ended(phase.phase)) {
            continue;
        }
        printed.push(Printed::Ended(phase.phase));
        match phase.state {
            PhaseState::Completed => {
                let took = match (phase.started_ms, phase.finished_ms) {
                    (Some(s), Some(f)) => humantime::format_duration(Duration::from_millis(
                        f.saturating_sub(s) / 100 * 100,
                    ))
                    .to_string(),
                    _ => "-".to_string(),
                };
                writeln!(
                    progress,
                    "[{position}/4] {name}: completed on {worker} in {took}: {}",
                    phase.summary.as_deref().unwrap_or("")
                )?;
                if verbose {
                    for line in phase.output.as_deref().unwrap_or("").lines() {
                        writeln!(progress, "    | {line}")?;
                    }
                }
            }
            PhaseState::Skipped => writeln!(
                progress,
                "[{position}/4] {name}: {}",
                phase.note.as_deref().unwrap_or("skipped")
            )?,
            _ => writeln!(
                progress,
                "[{position}/4] {name}: FAILED: {}",
                phase.error.as_deref().unwrap_or("unknown error")
            )?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        ask: AskArgs,
    }

    #[test]
    fn words_form_the_task_and_flags_go_anywhere() {
        let cli = Cli::try_parse_from(["ask", "-v", "Fix", "the", "--no-wait", "tests"]).unwrap();
        assert_eq!(cli.ask.task.join(" "), "Fix the tests");
        assert!(cli.ask.no_wait && cli.ask.verbose);
        assert_eq!(cli.ask.timeout, 600);
        let cli = Cli::try_parse_from(["ask", "--no-wait", "--wait", "x"]).unwrap();
        assert!(!cli.ask.no_wait);
        assert!(Cli::try_parse_from(["ask"]).is_err());
        assert!(Cli::try_parse_from(["ask", "--timeout", "0", "x"]).is_err());
    }
}
