//! `panebus top [--interval DURATION]`: a live terminal dashboard of the bus.
//!
//! Every interval it takes a [`Snapshot`] through the same [`Admin`] queries `status`,
//! `panes` and `events` use (it never touches Redis keys itself) and draws it with
//! [`render`], a pure function from a snapshot to a ratatui [`Buffer`], so the screen can be
//! tested without a terminal. `q`, Esc or Ctrl-C quits; the terminal is restored on the way
//! out, also when the process panics (ratatui's init installs a hook that restores it first).
//!
//! When stdout is not a terminal (a pipe, a file, CI) there is nothing to keep redrawing:
//! it prints one snapshot as plain text, drawn by the same `render`, and exits 0.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, Widget};

use super::events::human_line;
use super::table::{cell, human_duration};
use super::{print_text, Context};
use crate::admin::{Admin, EventFilter, PaneView};
use crate::bus::BusError;
use crate::config::parse_duration;

/// How many of the newest events the dashboard shows.
pub const RECENT_EVENTS: usize = 10;

/// How wide the plain snapshot printed to a non-terminal is.
const PLAIN_WIDTH: u16 = 140;

/// The widest a worker id column gets; longer ids keep their end (the pane) visible.
const ID_WIDTH: usize = 40;

/// The widest a role column gets.
const ROLE_WIDTH: usize = 20;

fn interval(text: &str) -> Result<Duration, String> {
    match parse_duration("--interval", text) {
        Ok(d) if d.is_zero() => Err("the interval must be longer than 0".to_string()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// Options of `panebus top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// How often to refresh (e.g. `500ms`, `2s`).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = interval)]
    pub interval: Duration,
}

/// Whether a worker can take work, is gone, or was set aside by the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Dead,
    Quarantined,
}

impl Liveness {
    fn as_str(self) -> &'static str {
        match self {
            Liveness::Alive => "alive",
            Liveness::Dead => "dead",
            Liveness::Quarantined => "quarantined",
        }
    }

    fn style(self) -> Style {
        match self {
            Liveness::Alive => Style::default().fg(Color::Green),
            Liveness::Dead => Style::default().fg(Color::DarkGray),
            Liveness::Quarantined => Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
        }
    }
}

/// One worker row of the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRow {
    pub id: String,
    pub role: String,
    /// The worker's own state (`idle`, `busy`, `stopping`).
    pub state: String,
    pub liveness: Liveness,
    /// Time since the last heartbeat, when alive.
    pub heartbeat_age: Option<Duration>,
    pub queue_depth: u64,
    pub processing: u64,
    /// Incarnation number: it rises by one on every restart.
    pub generation: u64,
    pub current_command: Option<String>,
}

impl From<&PaneView> for WorkerRow {
    fn from(pane: &PaneView) -> WorkerRow {
        let liveness = if pane.quarantine.is_some() {
            Liveness::Quarantined
        } else if pane.alive {
            Liveness::Alive
        } else {
            Liveness::Dead
        };
        WorkerRow {
            id: pane.info.id.clone(),
            role: pane.info.role.clone(),
            state: pane.info.state.as_str().to_string(),
            liveness,
            heartbeat_age: pane.heartbeat_age_ms.map(Duration::from_millis),
            queue_depth: pane.queue_depth,
            processing: pane.processing,
            generation: pane.info.generation,
            current_command: pane.info.current_command.clone(),
        }
    }
}

/// Everything one frame of the dashboard shows, as plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub namespace: String,
    /// The Redis URL, password redacted.
    pub redis_url: String,
    pub alive: u64,
    pub dead: u64,
    pub quarantined: u64,
    /// Commands waiting in all queues.
    pub queued: u64,
    /// Commands taken and not yet acknowledged.
    pub in_flight: u64,
    pub dlq_size: u64,
    pub workers: Vec<WorkerRow>,
    /// The newest events as `panebus events` prints them, oldest first.
    pub events: Vec<String>,
    /// How often the screen refreshes; `None` for a one-off plain snapshot.
    pub refresh: Option<Duration>,
    /// Why the last refresh failed, shown until one succeeds.
    pub problem: Option<String>,
}

impl Snapshot {
    /// Takes a snapshot of the bus through the `status`, `panes` and `events` queries.
    pub async fn collect(admin: &Admin) -> Result<Snapshot, BusError> {
        let report = admin.status().await?;
        let panes = admin.panes(None).await?;
        let (events, _cursor) = admin
            .recent_events(RECENT_EVENTS, &EventFilter::default())
            .await?;
        Ok(Snapshot {
            namespace: report.namespace,
            redis_url: report.redis_url,
            alive: report.workers.alive,
            dead: report.workers.dead,
            quarantined: report.workers.quarantined,
            queued: report.queued,
            in_flight: report.in_flight,
            dlq_size: report.dlq_size,
            workers: panes.iter().map(WorkerRow::from).collect(),
            events: events.iter().map(human_line).collect(),
            refresh: None,
            problem: None,
        })
    }

    /// The height that shows every worker and event with nothing cut.
    pub fn full_height(&self) -> u16 {
        let workers = self.workers.len().max(1) + 3;
        let events = self.events.len().max(1) + 2;
        (2 + workers + events + 1).min(u16::MAX as usize) as u16
    }
}

/// Shortens `text` to `max` characters keeping its end, where worker ids differ (the pane).
fn keep_end(text: &str, max: usize) -> String {
    let flat = cell(text, usize::MAX);
    let count = flat.chars().count();
    if count <= max {
        return flat;
    }
    let tail: String = flat.chars().skip(count - max.saturating_sub(1)).collect();
    format!("…{tail}")
}

/// Draws `snapshot` over the whole of `buf`: a header with the totals, the workers, the
/// newest events and a footer with the keys.
pub fn render(buf: &mut Buffer, snapshot: &Snapshot) {
    let area = buf.area;
    let events_height = snapshot.events.len().max(1) as u16 + 2;
    let [header, workers, events, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(4),
        Constraint::Length(events_height.min(RECENT_EVENTS as u16 + 2)),
        Constraint::Length(1),
    ])
    .areas(area);
    render_header(buf, header, snapshot);
    render_workers(buf, workers, snapshot);
    render_events(buf, events, snapshot);
    render_footer(buf, footer, snapshot);
}

fn render_header(buf: &mut Buffer, area: Rect, s: &Snapshot) {
    let entries = if s.dlq_size == 1 { "entry" } else { "entries" };
    let lines = vec![
        Line::styled(
            format!("panebus top — bus {} on {}", s.namespace, s.redis_url),
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Line::from(format!(
            "workers {} alive, {} dead, {} quarantined · commands {} queued, {} in flight · dlq {} {entries}",
            s.alive, s.dead, s.quarantined, s.queued, s.in_flight, s.dlq_size
        )),
    ];
    Paragraph::new(lines).render(area, buf);
}

fn render_workers(buf: &mut Buffer, area: Rect, s: &Snapshot) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" workers ({}) ", s.workers.len()));
    if s.workers.is_empty() {
        Paragraph::new(format!(
            "no workers registered on bus {} — start one in a tmux pane with `panebus worker --role ROLE`",
            s.namespace
        ))
        .block(block)
        .render(area, buf);
        return;
    }
    let id_width = s
        .workers
        .iter()
        .map(|w| w.id.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(6, ID_WIDTH);
    let role_width = s
        .workers
        .iter()
        .map(|w| w.role.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(4, ROLE_WIDTH);
    let rows = s.workers.iter().map(|w| {
        Row::new(vec![
            keep_end(&w.id, id_width),
            cell(&w.role, role_width),
            w.state.clone(),
            w.liveness.as_str().to_string(),
            w.heartbeat_age
                .map(|age| format!("{} ago", human_duration(age)))
                .unwrap_or_else(|| "-".to_string()),
            w.queue_depth.to_string(),
            w.processing.to_string(),
            w.generation.to_string(),
            w.current_command
                .as_deref()
                .map(|c| cell(c, 64))
                .unwrap_or_else(|| "-".to_string()),
        ])
        .style(w.liveness.style())
    });
    let widths = [
        Constraint::Length(id_width as u16),
        Constraint::Length(role_width as u16),
        Constraint::Length(8),
        Constraint::Length(11),
        Constraint::Length(10),
        Constraint::Length(5),
        Constraint::Length(4),
        Constraint::Length(3),
        Constraint::Min(8),
    ];
    let header = Row::new([
        "WORKER",
        "ROLE",
        "STATE",
        "LIVENESS",
        "HEARTBEAT",
        "QUEUE",
        "PROC",
        "GEN",
        "COMMAND",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    Widget::render(
        Table::new(rows, widths).header(header).block(block),
        area,
        buf,
    );
}

fn render_events(buf: &mut Buffer, area: Rect, s: &Snapshot) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" recent events ");
    let room = area.height.saturating_sub(2) as usize;
    let lines: Vec<Line> = if s.events.is_empty() {
        vec![Line::from("no events yet")]
    } else {
        // Newest last, like a log: when the screen is short, the oldest go.
        let skip = s.events.len().saturating_sub(room);
        s.events
            .iter()
            .skip(skip)
            .map(|e| Line::from(cell(e, 400)))
            .collect()
    };
    Paragraph::new(lines).block(block).render(area, buf);
}

fn render_footer(buf: &mut Buffer, area: Rect, s: &Snapshot) {
    let text = match (&s.problem, s.refresh) {
        (Some(problem), _) => format!("refresh failed: {}", cell(problem, 300)),
        (None, Some(every)) => format!(
            "refreshing every {} · q, Esc or Ctrl-C quits",
            human_duration(every)
        ),
        (None, None) => "one snapshot (stdout is not a terminal)".to_string(),
    };
    let style = if s.problem.is_some() {
        Style::default().fg(Color::Red)
    } else {
        Style::default().fg(Color::DarkGray)
    };
    Paragraph::new(Line::styled(text, style)).render(area, buf);
}

/// The text of `buf`, one string per row, trailing blanks trimmed.
pub fn buffer_lines(buf: &Buffer) -> Vec<String> {
    let width = buf.area.width as usize;
    if width == 0 {
        return Vec::new();
    }
    buf.content
        .chunks(width)
        .map(|row| {
            let line: String = row.iter().map(|c| c.symbol()).collect();
            line.trim_end().to_string()
        })
        .collect()
}

/// `snapshot` drawn at [`PLAIN_WIDTH`] columns and as many rows as it needs, as text.
pub fn plain(snapshot: &Snapshot) -> String {
    let mut buf = Buffer::empty(Rect::new(0, 0, PLAIN_WIDTH, snapshot.full_height()));
    render(&mut buf, snapshot);
    let mut text = buffer_lines(&buf).join("\n");
    text.push('\n');
    text
}

/// Restores the terminal when the dashboard ends, however it ends.
struct TerminalGuard {
    terminal: ratatui::DefaultTerminal,
}

impl TerminalGuard {
    fn enter() -> anyhow::Result<TerminalGuard> {
        let terminal = ratatui::try_init()
            .context("cannot take over the terminal (raw mode, alternate screen)")?;
        Ok(TerminalGuard { terminal })
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Whether `key` asks to quit: q, Esc or Ctrl-C (raw mode turns Ctrl-C into a key).
fn quits(code: KeyCode, modifiers: KeyModifiers) -> bool {
    matches!(code, KeyCode::Char('q') | KeyCode::Esc)
        || (code == KeyCode::Char('c') && modifiers.contains(KeyModifiers::CONTROL))
}

/// Waits up to `timeout` for a key; true when it asks to quit.
fn wait_for_quit(timeout: Duration) -> std::io::Result<bool> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || !event::poll(left)? {
            return Ok(false);
        }
        if let Event::Key(key) = event::read()? {
            if key.kind == KeyEventKind::Press && quits(key.code, key.modifiers) {
                return Ok(true);
            }
        }
    }
}

pub async fn run(args: TopArgs, ctx: Context) -> anyhow::Result<()> {
    let admin = Admin::connect(&ctx.config).await?;
    if !std::io::stdout().is_terminal() {
        let snapshot = Snapshot::collect(&admin).await?;
        return print_text(plain(&snapshot));
    }
    let mut snapshot = Snapshot::collect(&admin).await?;
    snapshot.refresh = Some(args.interval);
    let mut guard = TerminalGuard::enter()?;
    loop {
        guard
            .terminal
            .draw(|frame| render(frame.buffer_mut(), &snapshot))
            .context("cannot draw on the terminal")?;
        let timeout = args.interval;
        let quit = tokio::task::spawn_blocking(move || wait_for_quit(timeout))
            .await
            .context("the keyboard reader stopped")?
            .context("cannot read the keyboard")?;
        if quit {
            return Ok(());
        }
        match Snapshot::collect(&admin).await {
            Ok(fresh) => {
                snapshot = fresh;
                snapshot.refresh = Some(args.interval);
            }
            Err(err) => snapshot.problem = Some(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn worker(id: &str, role: &str, liveness: Liveness) -> WorkerRow {
        WorkerRow {
            id: id.to_string(),
            role: role.to_string(),
            state: "idle".to_string(),
            liveness,
            heartbeat_age: (liveness == Liveness::Alive).then(|| Duration::from_secs(2)),
            queue_depth: 0,
            processing: 0,
            generation: 1,
            current_command: None,
        }
    }

    fn draw(snapshot: &Snapshot, width: u16, height: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal
            .draw(|frame| render(frame.buffer_mut(), snapshot))
            .unwrap();
        buffer_lines(terminal.backend().buffer())
    }

    fn line_with<'a>(lines: &'a [String], needle: &str) -> &'a str {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line contains {needle:?} in:\n{}", lines.join("\n")))
    }

    fn busy_bus() -> Snapshot {
        let mut busy = worker("node/%1", "reviewer", Liveness::Alive);
        busy.state = "busy".to_string();
        busy.queue_depth = 3;
        busy.processing = 1;
        busy.current_command = Some("01JCMD".to_string());
        let mut restarted = worker("node/%2", "builder", Liveness::Quarantined);
        restarted.generation = 6;
        Snapshot {
            namespace: "agents".to_string(),
            redis_url: "redis://127.0.0.1:7000".to_string(),
            alive: 1,
            dead: 1,
            quarantined: 1,
            queued: 3,
            in_flight: 1,
            dlq_size: 2,
            workers: vec![busy, restarted, worker("node/%3", "tester", Liveness::Dead)],
            events: vec![
                "2026-11-25T20:00:00Z  worker_started  node/%1".to_string(),
                "2026-11-25T20:00:05Z  pane_quarantined  node/%2".to_string(),
            ],
            refresh: Some(Duration::from_secs(1)),
            problem: None,
        }
    }

    #[test]
    fn shows_every_worker_with_its_condition() {
        let lines = draw(&busy_bus(), 120, 20);
        let busy = line_with(&lines, "node/%1");
        for part in ["reviewer", "busy", "alive", "2s ago", "3", "01JCMD"] {
            assert!(busy.contains(part), "{part:?} missing from {busy:?}");
        }
        let quarantined = line_with(&lines, "node/%2");
        assert!(quarantined.contains("builder"), "{quarantined}");
        assert!(quarantined.contains("quarantined"), "{quarantined}");
        assert!(quarantined.contains(" 6 "), "generation 6: {quarantined}");
        let dead = line_with(&lines, "node/%3");
        assert!(dead.contains("dead"), "{dead}");
        assert!(
            !dead.contains("ago"),
            "a dead worker has no heartbeat: {dead}"
        );
    }

    #[test]
    fn header_has_the_totals_and_the_footer_the_keys() {
        let lines = draw(&busy_bus(), 120, 20);
        assert!(lines[0].contains("bus agents on redis://127.0.0.1:7000"));
        assert!(
            lines[1].contains("1 alive, 1 dead, 1 quarantined"),
            "{}",
            lines[1]
        );
        assert!(lines[1].contains("3 queued, 1 in flight"), "{}", lines[1]);
        assert!(lines[1].contains("dlq 2 entries"), "{}", lines[1]);
        assert!(
            lines[19].contains("q, Esc or Ctrl-C quits"),
            "{}",
            lines[19]
        );
    }

    #[test]
    fn newest_events_are_shown_last_and_the_oldest_go_when_short() {
        let mut snapshot = busy_bus();
        let lines = draw(&snapshot, 120, 20);
        let started = lines.iter().position(|l| l.contains("worker_started"));
        let quarantined = lines.iter().position(|l| l.contains("pane_quarantined"));
        assert!(started.unwrap() < quarantined.unwrap());

        snapshot.events = (0..30).map(|i| format!("event number {i:02}")).collect();
        let lines = draw(&snapshot, 120, 20);
        assert!(lines.iter().any(|l| l.contains("event number 29")));
        assert!(!lines.iter().any(|l| l.contains("event number 00")));
    }

    #[test]
    fn long_ids_keep_their_pane_and_leave_room_for_the_rest() {
        let mut snapshot = busy_bus();
        let long = format!("{}/%42", "a-very-long-node-name".repeat(5));
        snapshot.workers = vec![worker(&long, "reviewer", Liveness::Alive)];
        let lines = draw(&snapshot, 120, 20);
        let row = line_with(&lines, "%42");
        assert!(row.contains('…'), "a cut id is marked: {row}");
        assert!(row.contains("reviewer"), "{row}");
        assert!(row.contains("alive"), "{row}");
    }

    #[test]
    fn empty_bus_says_how_to_start_a_worker() {
        let snapshot = Snapshot {
            namespace: "empty".to_string(),
            refresh: Some(Duration::from_secs(1)),
            ..Snapshot::default()
        };
        let lines = draw(&snapshot, 120, 16);
        line_with(&lines, "no workers registered on bus empty");
        line_with(&lines, "no events yet");
        line_with(&lines, "0 alive, 0 dead, 0 quarantined");
    }

    #[test]
    fn a_failed_refresh_is_shown_in_the_footer() {
        let mut snapshot = busy_bus();
        snapshot.problem = Some("cannot reach Redis".to_string());
        let lines = draw(&snapshot, 120, 20);
        assert!(lines[19].contains("refresh failed: cannot reach Redis"));
    }

    #[test]
    fn tiny_terminals_do_not_panic() {
        for (w, h) in [(1, 1), (10, 3), (20, 8)] {
            draw(&busy_bus(), w, h);
        }
    }

    #[test]
    fn plain_snapshot_shows_everything() {
        let mut snapshot = busy_bus();
        snapshot.refresh = None;
        let text = plain(&snapshot);
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        assert_eq!(lines.len(), snapshot.full_height() as usize);
        line_with(&lines, "node/%3");
        line_with(&lines, "pane_quarantined");
        line_with(&lines, "one snapshot (stdout is not a terminal)");
    }

    #[test]
    fn quit_keys() {
        assert!(quits(KeyCode::Char('q'), KeyModifiers::NONE));
        assert!(quits(KeyCode::Esc, KeyModifiers::NONE));
        assert!(quits(KeyCode::Char('c'), KeyModifiers::CONTROL));
        assert!(!quits(KeyCode::Char('c'), KeyModifiers::NONE));
        assert!(!quits(KeyCode::Char('x'), KeyModifiers::NONE));
    }

    #[test]
    fn interval_must_be_positive() {
        assert_eq!(interval("500ms"), Ok(Duration::from_millis(500)));
        assert!(interval("0s").is_err());
        assert!(interval("soon").is_err());
    }
}
