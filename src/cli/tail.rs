//! `panebus tail PANE`: the live output of one pane, as raw bytes on stdout.
//!
//! It finds the session that holds the pane (or uses `--session`), attaches a control-mode
//! client there with output forwarding on, turns output off for the session's other panes
//! and writes each `%output` of the pane, decoded, straight to stdout: bytes, not text,
//! because a chunk may end inside a UTF-8 sequence. Nothing else goes to stdout; notes go to
//! stderr. It ends with exit 0 on Ctrl-C, SIGTERM or a closed stdout, with exit 0 and a note
//! when the pane closes, with an error when the session or the tmux server goes away, and
//! with exit 4 when the pane does not exist.

use std::io::Write;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tokio::signal::unix::{signal, SignalKind};

use super::exit::Failure;
use super::tmux_server::TmuxServerArgs;
use super::GlobalArgs;
use crate::tmux::{
    ClientFlag, ConnectOptions, ControlClient, Format, Notification, OwnedEvent, PaneId,
    PaneOutput, Target, TmuxCommand, TmuxError, TmuxServerRef,
};

/// How often tail checks that the pane is still alive; a pane whose process exits under
/// `remain-on-exit` sends no notification of its own.
const LIVENESS_INTERVAL: Duration = Duration::from_secs(1);

/// Options of `panebus tail`.
#[derive(Debug, Clone, Args)]
pub struct TailArgs {
    /// The pane to follow: `%3`, or a worker name `node/%3`
    #[arg(value_name = "PANE", value_parser = parse_pane)]
    pub pane: PaneId,

    #[command(flatten)]
    pub tmux: TmuxServerArgs,

    /// Attach to this session instead of the one that holds the pane
    #[arg(long, value_name = "SESSION")]
    pub session: Option<String>,
}

/// `%3` or `node/%3` (the part after the last `/`).
fn parse_pane(text: &str) -> Result<PaneId, String> {
    let id = text.rsplit('/').next().unwrap_or(text);
    id.strip_prefix('%')
        .and_then(|n| n.parse::<u32>().ok())
        .map(PaneId)
        .ok_or_else(|| {
            format!(
                "{text:?} is not a pane: use a tmux pane id like %3 or a worker name like node/%3"
            )
        })
}

/// Runs `panebus tail` on its own runtime: Ctrl-C is a normal end here (exit 0), not the
/// interruption the bus commands report.
pub fn run(args: TailArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    super::resolve_config(global)?;
    ignore_sigpipe();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(tail(args))
}

/// A closed stdout must show up as EPIPE from `write`, which ends tail with exit 0, rather
/// than as a SIGPIPE that kills it.
fn ignore_sigpipe() {
    // SAFETY: ignoring a signal is async-signal-safe and touches no Rust state.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Why the tail ended without an error.
enum End {
    Signal,
    StdoutClosed,
    PaneClosed,
}

async fn tail(args: TailArgs) -> anyhow::Result<()> {
    let server = args.tmux.server();
    let pane = args.pane;
    let session = match args.session {
        Some(session) => session,
        None => session_of(&server, pane).await?,
    };
    let mut options = ConnectOptions::new(server.clone(), session.clone());
    options.forward_output = true;
    let (client, mut notes) = ControlClient::connect(options)
        .await
        .map_err(|err| match err {
            TmuxError::Attach { message, .. } => Failure::NotFound {
                what: format!("cannot attach to session {session:?} on {server}: {message}"),
                hint: "check the name with `tmux list-sessions` (with the same -L/-S)".into(),
            }
            .into(),
            other => anyhow::Error::from(other),
        })?;
    match pane_state(&client, pane).await? {
        PaneState::Running => {}
        PaneState::Exited => {
            client.detach().await;
            eprintln!("panebus: pane %{} has already exited", pane.0);
            return Ok(());
        }
        PaneState::Missing => {
            client.detach().await;
            return Err(unknown_pane(&server, pane));
        }
    }
    // tail watches; it must not shrink the windows of the humans' clients.
    client
        .run(&TmuxCommand::client_flags(&[(
            ClientFlag::IgnoreSize,
            true,
        )]))
        .await?;
    silence_other_panes(&client, pane).await?;
    client
        .run(&TmuxCommand::pane_output(pane, PaneOutput::On))
        .await?;
    tracing::debug!(pane = pane.0, %session, "tailing pane output");

    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut liveness = tokio::time::interval(LIVENESS_INTERVAL);
    let mut stdout = std::io::stdout();
    let end = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break End::Signal,
            _ = terminate.recv() => break End::Signal,
            _ = liveness.tick() => {
                if !still_there(&client, pane, &session).await? {
                    break End::PaneClosed;
                }
            }
            note = notes.recv() => match note {
                Some(Notification::Event(OwnedEvent::Output { pane: from, data }))
                | Some(Notification::Event(OwnedEvent::ExtendedOutput { pane: from, data, .. })) => {
                    if from == pane && write_out(&mut stdout, &data)? {
                        break End::StdoutClosed;
                    }
                }
                Some(Notification::Event(
                    OwnedEvent::LayoutChange { .. }
                    | OwnedEvent::WindowClose(_)
                    | OwnedEvent::UnlinkedWindowClose(_)
                    | OwnedEvent::WindowPaneChanged { .. },
                )) => {
                    if !still_there(&client, pane, &session).await? {
                        break End::PaneClosed;
                    }
                }
                Some(Notification::Event(_)) => {}
                Some(Notification::Exit { reason }) => return Err(session_ended(pane, &session, &reason)),
                None => return Err(session_ended(pane, &session, "the control client stopped")),
            },
        }
    };
    client.detach().await;
    if matches!(end, End::PaneClosed) {
        eprintln!(
            "panebus: pane %{} closed or its process exited; tail ends",
            pane.0
        );
    }
    Ok(())
}

fn session_ended(pane: PaneId, session: &str, reason: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "stopped following pane %{}: the tmux session {session:?} ended ({reason}) — start \
         tail again once the session runs",
        pane.0
    )
}

/// Writes one chunk; `Ok(true)` when stdout has been closed by its reader.
fn write_out(stdout: &mut std::io::Stdout, data: &[u8]) -> anyhow::Result<bool> {
    let mut out = stdout.lock();
    match out.write_all(data).and_then(|()| out.flush()) {
        Ok(()) => Ok(false),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(true),
        Err(err) => Err(err).context("cannot write the pane output to stdout"),
    }
}

/// The name of the session that holds `pane`, from a one-shot `tmux display-message`
/// (argv, so nothing is parsed by tmux's command parser). Exit code 4 when there is no
/// such pane.
async fn session_of(server: &TmuxServerRef, pane: PaneId) -> anyhow::Result<String> {
    let output = server
        .command()
        .args(["display-message", "-p", "-t"])
        .arg(format!("%{}", pane.0))
        .arg("#{session_name}")
        .output()
        .await
        .context("cannot run tmux (is it installed?)")?;
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if output.status.success() {
        // tmux 3.3a prints an empty line and succeeds for a pane that does not exist.
        let name = String::from_utf8_lossy(&output.stdout)
            .trim_end_matches('\n')
            .to_owned();
        if name.is_empty() {
            return Err(unknown_pane(server, pane));
        }
        return Ok(name);
    }
    if stderr.contains("can't find pane") {
        return Err(unknown_pane(server, pane));
    }
    anyhow::bail!("cannot reach {server}: {stderr} — check -L/-S and that tmux is running")
}

fn unknown_pane(server: &TmuxServerRef, pane: PaneId) -> anyhow::Error {
    Failure::NotFound {
        what: format!("no pane %{} on {server}", pane.0),
        hint: "list the panes with `tmux list-panes -a` (with the same -L/-S) or `panebus panes`"
            .into(),
    }
    .into()
}

/// Whether the pane still runs, while following: a control session that ended meanwhile
/// is the session's end, not the pane's.
async fn still_there(client: &ControlClient, pane: PaneId, session: &str) -> anyhow::Result<bool> {
    match pane_state(client, pane).await {
        Ok(state) => Ok(state == PaneState::Running),
        Err(TmuxError::Exited { reason }) => Err(session_ended(pane, session, &reason)),
        Err(err) => Err(err.into()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PaneState {
    Running,
    /// Its process exited and the pane stays (`remain-on-exit`).
    Exited,
    Missing,
}

async fn pane_state(client: &ControlClient, pane: PaneId) -> Result<PaneState, TmuxError> {
    // tmux 3.3a answers an unknown target with an empty line, so the reply must name the pane.
    let command = TmuxCommand::display_message(
        Some(Target::Pane(pane)),
        &Format::template("#{pane_id}:#{pane_dead}"),
    )?;
    let id = format!("%{}:", pane.0);
    match client.run(&command).await {
        Ok(reply) => Ok(match reply.text_lines().first().map(|l| l.trim()) {
            Some(line) if line.starts_with(&id) => match &line[id.len()..] {
                "0" => PaneState::Running,
                _ => PaneState::Exited,
            },
            _ => PaneState::Missing,
        }),
        Err(TmuxError::Command { message, .. }) if message.contains("can't find pane") => {
            Ok(PaneState::Missing)
        }
        Err(err) => Err(err),
    }
}

/// Turns output off for every other pane of the session, so tmux does not send what tail
/// would drop anyway. Panes created later still send output; tail filters by pane.
async fn silence_other_panes(client: &ControlClient, pane: PaneId) -> anyhow::Result<()> {
    let listing =
        TmuxCommand::list_panes(client.attached().session, &Format::template("#{pane_id}"))?;
    let reply = client.run(&listing).await?;
    for line in reply.text_lines() {
        let Some(other) = line.trim().strip_prefix('%').and_then(|n| n.parse().ok()) else {
            continue;
        };
        if other != pane.0 {
            client
                .run(&TmuxCommand::pane_output(PaneId(other), PaneOutput::Off))
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panes_are_ids_or_worker_names() {
        assert_eq!(parse_pane("%3"), Ok(PaneId(3)));
        assert_eq!(parse_pane("devbox/%12"), Ok(PaneId(12)));
        assert_eq!(parse_pane("host-pb/%0"), Ok(PaneId(0)));
        for bad in ["3", "%", "%x", "node/3", "", "%3;kill-server", "%-1"] {
            let err = parse_pane(bad).unwrap_err();
            assert!(err.contains("not a pane"), "{bad}: {err}");
        }
    }
}
