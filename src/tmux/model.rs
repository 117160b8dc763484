//! A picture of one tmux session's windows and panes, kept current from control-mode
//! notifications and full listings.
//!
//! Everything here is pure: [`SessionModel::apply`] takes a [`Notification`] and
//! [`SessionModel::replace_panes`] takes a parsed `list-panes` listing, and both return the
//! [`ModelChange`]s the coordinator acts on. This is the only place that builds the listing,
//! subscription and hook commands and parses what they print; the coordinator's decisions
//! (death dedupe, adoption) work on the resulting [`PaneState`]s. The I/O (sending
//! [`PaneListing::command`], [`pane_subscription`] and [`pane_died_hook`], reading replies)
//! stays in the caller.
//!
//! Sources, fastest first (docs/tmux-control-mode.md §3, §6):
//! * `%layout-change` removes a pane from the model the moment it leaves its window;
//! * `%window-close`/`%unlinked-window-close` remove a whole window;
//! * the `pane-died` hook's `%pb-died %P PID STATUS SIGNAL` marker line reports a death at
//!   once (when the hook fires; tmux 3.3a sometimes loses it);
//! * the `%*` subscription on pane pid/dead/status/signal is the ≤ 1 s backstop and reveals
//!   respawns (a new pid);
//! * a full listing (asked for with [`ModelChange::RelistNeeded`]) fills in the rest.

use std::collections::BTreeMap;

use tmux_control_parser::{Layout, OwnedEvent, PaneId, SessionId, WindowId};

use super::client::Notification;
use super::command::{
    CommandError, Format, Hook, HookTarget, OptionName, SubscriptionScope, TmuxCommand,
};

/// The name of the pane-state subscription (`refresh-client -B`).
pub const PANE_SUBSCRIPTION: &str = "pbpanes";

/// The first word of the line the `pane-died` hook prints (a `%` line, so it never breaks
/// the "outside a block every line starts with %" rule).
pub const DIED_MARKER: &str = "%pb-died";

/// The subscription's format: pane id, pid, dead flag, exit status, exit signal. Every
/// field is numeric (or empty), so a value can never hold a newline, and the pid makes every
/// incarnation of a pane differ.
pub const PANE_SUBSCRIPTION_FORMAT: &str =
    "#{pane_id} #{pane_pid} #{pane_dead} #{pane_dead_status} #{pane_dead_signal}";

/// `refresh-client -B pbpanes:%*:` + [`PANE_SUBSCRIPTION_FORMAT`].
pub fn pane_subscription() -> TmuxCommand {
    let format = Format::template(PANE_SUBSCRIPTION_FORMAT);
    TmuxCommand::subscribe(PANE_SUBSCRIPTION, SubscriptionScope::AllPanes, &format)
        .expect("the subscription name and format are constants")
}

/// `set-hook … pane-died "display -p '%%pb-died #{hook_pane} #{pane_pid} #{pane_dead_status}
/// #{pane_dead_signal}'"`: the hook prints a marker line with the same fields as the
/// subscription.
pub fn pane_died_hook(target: HookTarget) -> TmuxCommand {
    // display-message runs strftime first, so the marker's `%` is written `%%`.
    let print = Format::template(
        "%%pb-died #{hook_pane} #{pane_pid} #{pane_dead_status} #{pane_dead_signal}",
    );
    let display = TmuxCommand::display_message(None, &print)
        .expect("the marker format is a constant without NUL");
    TmuxCommand::set_hook(target, Hook::PaneDied, &display)
}

/// One pane as the model knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaneState {
    pub id: PaneId,
    pub window: WindowId,
    /// The pid of the pane's process (unknown until listed or reported).
    pub pid: Option<u32>,
    /// The process has exited and the pane stays (remain-on-exit).
    pub dead: bool,
    /// The exit status once tmux has it (tmux 3.3a may report `dead` without one).
    pub dead_status: Option<i32>,
    /// The signal that killed the process, if one did.
    pub dead_signal: Option<i32>,
    pub title: String,
    /// The listed user options that are set on the pane (e.g. `@panebus_worker`).
    pub options: BTreeMap<String, String>,
}

impl PaneState {
    fn new(id: PaneId, window: WindowId) -> Self {
        PaneState {
            id,
            window,
            pid: None,
            dead: false,
            dead_status: None,
            dead_signal: None,
            title: String::new(),
            options: BTreeMap::new(),
        }
    }
}

/// One window: its panes in layout order, and its layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowState {
    pub id: WindowId,
    pub layout: Option<Layout>,
    pub panes: Vec<PaneId>,
}

/// What changed, for the coordinator to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelChange {
    PaneAdded(PaneId),
    /// The pane no longer exists (killed, or exited with remain-on-exit off).
    PaneGone(PaneId),
    /// The pane's process exited and the pane remains. Reported again when the status or
    /// signal becomes known after a first report with neither (tmux 3.3a can lose the
    /// SIGCHLD: signal the server to recover it, docs/tmux-control-mode.md §6).
    PaneDied {
        pane: PaneId,
        status: Option<i32>,
        signal: Option<i32>,
    },
    /// The pane runs a new process (respawned): a new pid.
    PaneRespawned {
        pane: PaneId,
        pid: u32,
    },
    WindowGone(WindowId),
    LayoutChanged(WindowId),
    /// The model may be stale: send [`PaneListing::command`] and apply the result.
    RelistNeeded,
    /// The control session is over.
    SessionEnded {
        reason: String,
    },
}

/// The session model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionModel {
    pub session: SessionId,
    pub windows: BTreeMap<WindowId, WindowState>,
    pub panes: BTreeMap<PaneId, PaneState>,
}

impl SessionModel {
    /// An empty model of `session`; fill it with [`SessionModel::replace_panes`].
    pub fn new(session: SessionId) -> Self {
        SessionModel {
            session,
            windows: BTreeMap::new(),
            panes: BTreeMap::new(),
        }
    }

    /// Applies one notification.
    pub fn apply(&mut self, notification: &Notification) -> Vec<ModelChange> {
        let event = match notification {
            Notification::Exit { reason } => {
                return vec![ModelChange::SessionEnded {
                    reason: reason.clone(),
                }]
            }
            Notification::Event(event) => event,
        };
        match event {
            OwnedEvent::LayoutChange { window, layout, .. } => self.layout_changed(*window, layout),
            OwnedEvent::WindowAdd(window) => {
                self.windows.entry(*window).or_insert_with(|| WindowState {
                    id: *window,
                    layout: None,
                    panes: Vec::new(),
                });
                vec![ModelChange::RelistNeeded]
            }
            OwnedEvent::WindowClose(window) | OwnedEvent::UnlinkedWindowClose(window) => {
                let mut changes = self.remove_window(*window);
                changes.push(ModelChange::RelistNeeded);
                changes
            }
            OwnedEvent::SessionsChanged => vec![ModelChange::RelistNeeded],
            OwnedEvent::SessionChanged { session, .. } if *session != self.session => {
                // The client was moved to another session: everything known is stale.
                let mut changes: Vec<ModelChange> = self
                    .panes
                    .keys()
                    .map(|p| ModelChange::PaneGone(*p))
                    .collect();
                *self = SessionModel::new(*session);
                changes.push(ModelChange::RelistNeeded);
                changes
            }
            OwnedEvent::SubscriptionChanged { name, value, .. }
                if name.as_slice() == PANE_SUBSCRIPTION.as_bytes() =>
            {
                self.reported(parse_subscription_value(value), value)
            }
            // tmux 3.3a may deliver the hook's output as a bare line, newer versions as an
            // unknown `%` notification.
            OwnedEvent::Unknown(line) | OwnedEvent::Bare(line)
                if line.starts_with(DIED_MARKER.as_bytes()) =>
            {
                self.reported(parse_died_marker(line), line)
            }
            _ => Vec::new(),
        }
    }

    /// Replaces the panes and windows with a full listing and reports the differences.
    pub fn replace_panes(&mut self, records: Vec<PaneRecord>) -> Vec<ModelChange> {
        let mut changes = Vec::new();
        let listed: BTreeMap<PaneId, ()> = records.iter().map(|r| (r.pane.id, ())).collect();
        for gone in self.panes.keys().filter(|p| !listed.contains_key(p)) {
            changes.push(ModelChange::PaneGone(*gone));
        }
        let mut windows: BTreeMap<WindowId, WindowState> = BTreeMap::new();
        let mut panes = BTreeMap::new();
        for record in records {
            let new = record.pane;
            match self.panes.get(&new.id) {
                None => {
                    changes.push(ModelChange::PaneAdded(new.id));
                    if new.dead {
                        changes.push(ModelChange::PaneDied {
                            pane: new.id,
                            status: new.dead_status,
                            signal: new.dead_signal,
                        });
                    }
                }
                Some(old) => changes.extend(pane_diff(old, &PaneReport::of(&new))),
            }
            let window = windows.entry(new.window).or_insert_with(|| WindowState {
                id: new.window,
                layout: None,
                panes: Vec::new(),
            });
            if window.layout.is_none() {
                window.layout = Layout::parse(&record.window_layout).ok();
            }
            panes.insert(new.id, new);
        }
        for window in windows.values_mut() {
            window.panes = match &window.layout {
                Some(layout) => layout.pane_ids(),
                None => panes
                    .values()
                    .filter(|p| p.window == window.id)
                    .map(|p| p.id)
                    .collect(),
            };
        }
        for gone in self.windows.keys().filter(|w| !windows.contains_key(w)) {
            changes.push(ModelChange::WindowGone(*gone));
        }
        self.windows = windows;
        self.panes = panes;
        changes
    }

    /// Records that the caller respawned `pane` and it now runs `pid`, so the model does not
    /// wait for tmux's next report to know it.
    pub fn respawned(&mut self, pane: PaneId, pid: u32) -> Vec<ModelChange> {
        let report = PaneReport {
            pane,
            pid: Some(pid),
            dead: false,
            status: None,
            signal: None,
        };
        self.update(report)
    }

    fn layout_changed(&mut self, window: WindowId, layout: &str) -> Vec<ModelChange> {
        let layout = match Layout::parse(layout) {
            Ok(layout) => layout,
            Err(err) => {
                tracing::warn!(window = %window, error = %err, "unparsable layout; relisting");
                return vec![ModelChange::RelistNeeded];
            }
        };
        let now = layout.pane_ids();
        let mut changes = Vec::new();
        let before: Vec<PaneId> = self
            .panes
            .values()
            .filter(|p| p.window == window)
            .map(|p| p.id)
            .collect();
        for pane in before.iter().filter(|p| !now.contains(p)) {
            self.panes.remove(pane);
            changes.push(ModelChange::PaneGone(*pane));
        }
        let mut relist = false;
        for pane in &now {
            match self.panes.get_mut(pane) {
                Some(state) => state.window = window,
                None => {
                    self.panes.insert(*pane, PaneState::new(*pane, window));
                    changes.push(ModelChange::PaneAdded(*pane));
                    relist = true;
                }
            }
        }
        self.windows.insert(
            window,
            WindowState {
                id: window,
                layout: Some(layout),
                panes: now,
            },
        );
        changes.push(ModelChange::LayoutChanged(window));
        if relist {
            // A new pane's pid, options and title come from a listing.
            changes.push(ModelChange::RelistNeeded);
        }
        changes
    }

    fn remove_window(&mut self, window: WindowId) -> Vec<ModelChange> {
        let mut changes: Vec<ModelChange> = Vec::new();
        let panes: Vec<PaneId> = self
            .panes
            .values()
            .filter(|p| p.window == window)
            .map(|p| p.id)
            .collect();
        for pane in panes {
            self.panes.remove(&pane);
            changes.push(ModelChange::PaneGone(pane));
        }
        if self.windows.remove(&window).is_some() {
            changes.push(ModelChange::WindowGone(window));
        }
        changes
    }

    fn reported(&mut self, report: Option<PaneReport>, raw: &[u8]) -> Vec<ModelChange> {
        let Some(report) = report else {
            tracing::warn!(text = %String::from_utf8_lossy(raw), "unparsable pane report");
            return Vec::new();
        };
        self.update(report)
    }

    fn update(&mut self, report: PaneReport) -> Vec<ModelChange> {
        let Some(state) = self.panes.get_mut(&report.pane) else {
            // Its window, options and title come from a listing.
            return vec![ModelChange::RelistNeeded];
        };
        // tmux reports nothing when a pane is respawned, so a pid the model has not seen
        // means a respawn it missed.
        let changes = pane_diff(state, &report);
        state.pid = report.pid.or(state.pid);
        state.dead = report.dead;
        state.dead_status = report.status;
        state.dead_signal = report.signal;
        changes
    }
}

/// Changes between a known pane and a new report about it.
fn pane_diff(old: &PaneState, new: &PaneReport) -> Vec<ModelChange> {
    let mut changes = Vec::new();
    let respawned = match (old.pid, new.pid) {
        (Some(before), Some(now)) => before != now,
        _ => false,
    };
    if let (true, Some(pid)) = (respawned, new.pid) {
        changes.push(ModelChange::PaneRespawned { pane: old.id, pid });
    }
    let was_dead = old.dead && !respawned;
    let known = if respawned {
        (None, None)
    } else {
        (old.dead_status, old.dead_signal)
    };
    if new.dead && (!was_dead || (new.status, new.signal) != known) {
        changes.push(ModelChange::PaneDied {
            pane: old.id,
            status: new.status,
            signal: new.signal,
        });
    }
    changes
}

/// What a subscription value or a `pane-died` marker says about one pane.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PaneReport {
    pane: PaneId,
    pid: Option<u32>,
    dead: bool,
    status: Option<i32>,
    signal: Option<i32>,
}

impl PaneReport {
    fn of(pane: &PaneState) -> Self {
        PaneReport {
            pane: pane.id,
            pid: pane.pid,
            dead: pane.dead,
            status: pane.dead_status,
            signal: pane.dead_signal,
        }
    }
}

/// `%P PID DEAD STATUS SIGNAL` ([`PANE_SUBSCRIPTION_FORMAT`]).
fn parse_subscription_value(value: &[u8]) -> Option<PaneReport> {
    let text = std::str::from_utf8(value).ok()?;
    let fields: Vec<&str> = text.split(' ').collect();
    let [pane, pid, dead, status, signal] = fields.as_slice() else {
        return None;
    };
    Some(PaneReport {
        pane: parse_pane_id(pane)?,
        pid: parse_optional(pid)?,
        dead: parse_flag(dead)?,
        status: parse_optional(status)?,
        signal: parse_optional(signal)?,
    })
}

/// `%pb-died %P PID STATUS SIGNAL` (fields after the pane may be empty).
fn parse_died_marker(line: &[u8]) -> Option<PaneReport> {
    let text = std::str::from_utf8(line).ok()?;
    let rest = text.strip_prefix(DIED_MARKER)?.strip_prefix(' ')?;
    let fields: Vec<&str> = rest.split(' ').collect();
    let [pane, pid, status, signal] = fields.as_slice() else {
        return None;
    };
    Some(PaneReport {
        pane: parse_pane_id(pane)?,
        pid: parse_optional(pid)?,
        dead: true,
        status: parse_optional(status)?,
        signal: parse_optional(signal)?,
    })
}

fn parse_pane_id(text: &str) -> Option<PaneId> {
    text.strip_prefix('%')?.parse().ok().map(PaneId)
}

fn parse_window_id(text: &str) -> Option<WindowId> {
    text.strip_prefix('@')?.parse().ok().map(WindowId)
}

/// An empty field is `Some(None)`; a malformed one is `None`.
fn parse_optional<T: std::str::FromStr>(text: &str) -> Option<Option<T>> {
    if text.is_empty() {
        Some(None)
    } else {
        text.parse().ok().map(Some)
    }
}

fn parse_flag(text: &str) -> Option<bool> {
    match text {
        "0" | "" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

/// One line of a pane listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaneRecord {
    pub pane: PaneState,
    /// `#{window_layout}` of the pane's window.
    pub window_layout: String,
}

/// A listing line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable line {line} of the pane listing: {text:?}")]
pub struct ListingError {
    /// 1-based line number in the reply.
    pub line: usize,
    pub text: String,
}

/// The `list-panes` listing the model is refreshed from: fixed numeric fields, the
/// requested user options, and the pane title last.
///
/// Fields are separated by TAB. Ids, pids, flags, statuses and layouts never contain a TAB
/// or LF; option values PaneBus writes are single-line; the title, which a program can set
/// to anything, is last, so a TAB in it stays in it and a line that does not start a new
/// record (`%N<TAB>…`) is taken as the continuation of the previous title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaneListing {
    options: Vec<OptionName>,
}

/// The fixed fields before the options.
const FIXED_FIELDS: usize = 7;

impl PaneListing {
    /// A listing that also reads these pane options.
    pub fn new(options: Vec<OptionName>) -> Self {
        PaneListing { options }
    }

    /// `list-panes -s -t $S -F …`.
    pub fn command(&self, session: SessionId) -> Result<TmuxCommand, CommandError> {
        let mut format = Format::template(
            "#{pane_id}\t#{window_id}\t#{pane_pid}\t#{pane_dead}\t#{pane_dead_status}\t\
             #{pane_dead_signal}\t#{window_layout}",
        );
        for option in &self.options {
            format = format.then("\t").then_option(option);
        }
        format = format.then("\t#{pane_title}");
        TmuxCommand::list_panes(session, &format)
    }

    /// Parses the reply lines; unreadable lines are returned as errors beside the records.
    pub fn parse(&self, lines: &[Vec<u8>]) -> (Vec<PaneRecord>, Vec<ListingError>) {
        let field_count = FIXED_FIELDS + self.options.len() + 1;
        let mut records: Vec<PaneRecord> = Vec::new();
        let mut errors = Vec::new();
        for (index, raw) in lines.iter().enumerate() {
            let text = String::from_utf8_lossy(raw);
            let starts_record = text
                .split_once('\t')
                .is_some_and(|(first, _)| parse_pane_id(first).is_some());
            if !starts_record {
                match records.last_mut() {
                    Some(previous) => {
                        previous.pane.title.push('\n');
                        previous.pane.title.push_str(&text);
                    }
                    None => errors.push(ListingError {
                        line: index + 1,
                        text: text.into_owned(),
                    }),
                }
                continue;
            }
            match self.parse_record(&text, field_count) {
                Some(record) => records.push(record),
                None => errors.push(ListingError {
                    line: index + 1,
                    text: text.into_owned(),
                }),
            }
        }
        (records, errors)
    }

    fn parse_record(&self, text: &str, field_count: usize) -> Option<PaneRecord> {
        let fields: Vec<&str> = text.splitn(field_count, '\t').collect();
        if fields.len() != field_count {
            return None;
        }
        let mut pane = PaneState::new(parse_pane_id(fields[0])?, parse_window_id(fields[1])?);
        pane.pid = parse_optional(fields[2])?;
        pane.dead = parse_flag(fields[3])?;
        pane.dead_status = parse_optional(fields[4])?;
        pane.dead_signal = parse_optional(fields[5])?;
        for (option, value) in self.options.iter().zip(&fields[FIXED_FIELDS..]) {
            if !value.is_empty() {
                pane.options
                    .insert(option.as_str().to_owned(), (*value).to_owned());
            }
        }
        pane.title = fields[field_count - 1].to_owned();
        Some(PaneRecord {
            pane,
            window_layout: fields[6].to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tmux_control_parser::OwnedSubscriptionTarget;

    fn layout_event(window: u32, layout: &str) -> Notification {
        Notification::Event(OwnedEvent::LayoutChange {
            window: WindowId(window),
            layout: layout.to_owned(),
            visible_layout: layout.to_owned(),
            flags: String::new(),
        })
    }

    fn subscription(value: &str) -> Notification {
        Notification::Event(OwnedEvent::SubscriptionChanged {
            name: PANE_SUBSCRIPTION.as_bytes().to_vec(),
            target: OwnedSubscriptionTarget {
                session: Some(SessionId(0)),
                window: Some(WindowId(1)),
                index: Some(1),
                pane: Some(PaneId(1)),
                raw_fields: ["$0".into(), "@1".into(), "1".into(), "%1".into()],
            },
            value: value.as_bytes().to_vec(),
        })
    }

    fn marker(text: &str) -> Notification {
        Notification::Event(OwnedEvent::Unknown(text.as_bytes().to_vec()))
    }

    fn died(pane: u32, status: Option<i32>, signal: Option<i32>) -> ModelChange {
        ModelChange::PaneDied {
            pane: PaneId(pane),
            status,
            signal,
        }
    }

    fn listing() -> PaneListing {
        PaneListing::new(vec![OptionName::new("@panebus_worker").unwrap()])
    }

    fn lines(text: &[&str]) -> Vec<Vec<u8>> {
        text.iter().map(|l| l.as_bytes().to_vec()).collect()
    }

    /// Two panes side by side in @1 (layout captured from tmux 3.3a).
    const TWO_PANES: &str = "4f3d,200x50,0,0{100x50,0,0,1,99x50,101,0,2}";
    const ONE_PANE: &str = "ac9e,200x50,0,0,1";

    fn model_with_two_panes() -> SessionModel {
        let mut model = SessionModel::new(SessionId(0));
        let (records, errors) = listing().parse(&lines(&[
            &format!("%1\t@1\t100\t0\t\t\t{TWO_PANES}\tdevbox/%1\ttitle one"),
            &format!("%2\t@1\t200\t0\t\t\t{TWO_PANES}\t\tsh"),
        ]));
        assert!(errors.is_empty(), "{errors:?}");
        let changes = model.replace_panes(records);
        assert_eq!(
            changes,
            vec![
                ModelChange::PaneAdded(PaneId(1)),
                ModelChange::PaneAdded(PaneId(2))
            ]
        );
        model
    }

    #[test]
    fn listing_command_reads_options_and_title_last() {
        let cmd = listing().command(SessionId(3)).unwrap();
        assert_eq!(
            cmd.line(),
            // TAB travels as `\011` outside the quotes, like every control character.
            "list-panes -s -t '$3' -F '#{pane_id}'\\011'#{window_id}'\\011'#{pane_pid}'\\011\
             '#{pane_dead}'\\011'#{pane_dead_status}'\\011'#{pane_dead_signal}'\\011\
             '#{window_layout}'\\011'#{@panebus_worker}'\\011'#{pane_title}'"
        );
    }

    #[test]
    fn listing_parses_records_options_and_multiline_titles() {
        let (records, errors) = listing().parse(&lines(&[
            &format!("%1\t@1\t100\t1\t3\t\t{ONE_PANE}\tdevbox/%1\ta\ttitle"),
            "second title line",
            &format!("%4\t@2\t\t1\t\t9\t{ONE_PANE}\t\t"),
        ]));
        assert!(errors.is_empty());
        assert_eq!(records.len(), 2);
        let first = &records[0].pane;
        assert_eq!(first.id, PaneId(1));
        assert_eq!(first.window, WindowId(1));
        assert_eq!(first.pid, Some(100));
        assert!(first.dead);
        assert_eq!((first.dead_status, first.dead_signal), (Some(3), None));
        assert_eq!(
            first.options.get("@panebus_worker").map(String::as_str),
            Some("devbox/%1")
        );
        assert_eq!(first.title, "a\ttitle\nsecond title line");
        assert_eq!(records[0].window_layout, ONE_PANE);
        let second = &records[1].pane;
        assert_eq!(second.pid, None);
        assert_eq!((second.dead_status, second.dead_signal), (None, Some(9)));
        assert!(second.options.is_empty());
    }

    #[test]
    fn listing_reports_unreadable_lines() {
        let (records, errors) = listing().parse(&lines(&[
            "garbage before any record",
            "%1\t@1\tnot-a-pid\t0\t\t\tx\t\tt",
            "%2\t@1\t5",
        ]));
        assert!(records.is_empty());
        assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn listing_fills_windows_in_layout_order() {
        let model = model_with_two_panes();
        let window = &model.windows[&WindowId(1)];
        assert_eq!(window.panes, [PaneId(1), PaneId(2)]);
        assert_eq!(model.panes[&PaneId(1)].title, "title one");
    }

    #[test]
    fn relisting_reports_differences() {
        let mut model = model_with_two_panes();
        let (records, _) = listing().parse(&lines(&[
            &format!("%1\t@1\t101\t0\t\t\t{ONE_PANE}\t\tt"),
            &format!("%3\t@2\t300\t1\t\t\t{ONE_PANE}\t\tt"),
        ]));
        let changes = model.replace_panes(records);
        assert_eq!(
            changes,
            vec![
                ModelChange::PaneGone(PaneId(2)),
                ModelChange::PaneRespawned {
                    pane: PaneId(1),
                    pid: 101
                },
                ModelChange::PaneAdded(PaneId(3)),
                died(3, None, None),
            ]
        );
        assert_eq!(
            model.windows.keys().copied().collect::<Vec<_>>(),
            [WindowId(1), WindowId(2)]
        );
    }

    #[test]
    fn layout_change_removing_a_pane_reports_it_gone() {
        let mut model = model_with_two_panes();
        let changes = model.apply(&layout_event(1, ONE_PANE));
        assert_eq!(
            changes,
            vec![
                ModelChange::PaneGone(PaneId(2)),
                ModelChange::LayoutChanged(WindowId(1))
            ]
        );
        assert!(!model.panes.contains_key(&PaneId(2)));
        assert_eq!(model.windows[&WindowId(1)].panes, [PaneId(1)]);
    }

    #[test]
    fn layout_change_with_a_new_pane_asks_for_a_listing() {
        let mut model = SessionModel::new(SessionId(0));
        let changes = model.apply(&layout_event(1, TWO_PANES));
        assert_eq!(
            changes,
            vec![
                ModelChange::PaneAdded(PaneId(1)),
                ModelChange::PaneAdded(PaneId(2)),
                ModelChange::LayoutChanged(WindowId(1)),
                ModelChange::RelistNeeded,
            ]
        );
    }

    #[test]
    fn bad_layout_asks_for_a_listing() {
        let mut model = model_with_two_panes();
        assert_eq!(
            model.apply(&layout_event(1, "ffff,1x1,0,0,1")),
            vec![ModelChange::RelistNeeded]
        );
        assert_eq!(model.panes.len(), 2);
    }

    #[test]
    fn window_close_removes_its_panes() {
        let mut model = model_with_two_panes();
        let changes = model.apply(&Notification::Event(OwnedEvent::UnlinkedWindowClose(
            WindowId(1),
        )));
        assert_eq!(
            changes,
            vec![
                ModelChange::PaneGone(PaneId(1)),
                ModelChange::PaneGone(PaneId(2)),
                ModelChange::WindowGone(WindowId(1)),
                ModelChange::RelistNeeded,
            ]
        );
        assert!(model.panes.is_empty());
    }

    #[test]
    fn subscription_reports_death_status_and_respawn() {
        let mut model = model_with_two_panes();
        assert_eq!(model.apply(&subscription("%1 100 0  ")), vec![]);
        // 3.3a: dead before the status is known.
        assert_eq!(
            model.apply(&subscription("%1 100 1  ")),
            vec![died(1, None, None)]
        );
        assert_eq!(
            model.apply(&subscription("%1 100 1 3 ")),
            vec![died(1, Some(3), None)]
        );
        assert_eq!(model.apply(&subscription("%1 100 1 3 ")), vec![]);
        assert_eq!(
            model.apply(&subscription("%1 150 0  ")),
            vec![ModelChange::PaneRespawned {
                pane: PaneId(1),
                pid: 150
            }]
        );
        let pane = &model.panes[&PaneId(1)];
        assert_eq!(
            (pane.pid, pane.dead, pane.dead_status),
            (Some(150), false, None)
        );
        // Respawned and killed by a signal between two ticks: both are reported.
        assert_eq!(
            model.apply(&subscription("%1 160 1  15")),
            vec![
                ModelChange::PaneRespawned {
                    pane: PaneId(1),
                    pid: 160
                },
                died(1, None, Some(15)),
            ]
        );
    }

    #[test]
    fn reports_for_an_unknown_pane_ask_for_a_listing() {
        let mut model = SessionModel::new(SessionId(0));
        assert_eq!(
            model.apply(&subscription("%7 70 1 0 ")),
            vec![ModelChange::RelistNeeded]
        );
        assert_eq!(
            model.apply(&marker("%pb-died %7 70 0 ")),
            vec![ModelChange::RelistNeeded]
        );
        assert!(model.panes.is_empty());
    }

    #[test]
    fn malformed_reports_change_nothing() {
        let mut model = model_with_two_panes();
        let before = model.clone();
        for bad in [
            "",
            "%1",
            "%1 x 0  ",
            "%1 100 2  ",
            "%1 100 0   extra",
            "1 100 0  ",
        ] {
            assert_eq!(model.apply(&subscription(bad)), vec![], "{bad:?}");
        }
        for bad in ["%pb-died nonsense", "%pb-died %1 100", "%pb-died %1 x 0 "] {
            assert_eq!(model.apply(&marker(bad)), vec![], "{bad:?}");
        }
        assert_eq!(model, before);
    }

    #[test]
    fn died_marker_reports_death_and_missed_respawns() {
        let mut model = model_with_two_panes();
        assert_eq!(
            model.apply(&marker("%pb-died %1 100 0 ")),
            vec![died(1, Some(0), None)]
        );
        assert_eq!(
            model.apply(&marker("%pb-died %2 250 4 ")),
            vec![
                ModelChange::PaneRespawned {
                    pane: PaneId(2),
                    pid: 250
                },
                died(2, Some(4), None),
            ]
        );
        // The subscription confirming the same facts adds nothing.
        assert_eq!(model.apply(&subscription("%2 250 1 4 ")), vec![]);
    }

    #[test]
    fn session_events() {
        let mut model = model_with_two_panes();
        assert_eq!(
            model.apply(&Notification::Event(OwnedEvent::SessionsChanged)),
            vec![ModelChange::RelistNeeded]
        );
        assert_eq!(
            model.apply(&Notification::Exit {
                reason: "server exited unexpectedly".into()
            }),
            vec![ModelChange::SessionEnded {
                reason: "server exited unexpectedly".into()
            }]
        );
        let moved = Notification::Event(OwnedEvent::SessionChanged {
            session: SessionId(5),
            name: b"other".to_vec(),
        });
        assert_eq!(
            model.apply(&moved),
            vec![
                ModelChange::PaneGone(PaneId(1)),
                ModelChange::PaneGone(PaneId(2)),
                ModelChange::RelistNeeded
            ]
        );
        assert_eq!(model, SessionModel::new(SessionId(5)));
    }

    fn report(
        pane: u32,
        pid: u32,
        dead: bool,
        status: Option<i32>,
        signal: Option<i32>,
    ) -> PaneReport {
        PaneReport {
            pane: PaneId(pane),
            pid: Some(pid),
            dead,
            status,
            signal,
        }
    }

    #[test]
    fn subscription_values_parse() {
        assert_eq!(
            parse_subscription_value(b"%5 1234 0  "),
            Some(report(5, 1234, false, None, None))
        );
        assert_eq!(
            parse_subscription_value(b"%5 1234 1 3 "),
            Some(report(5, 1234, true, Some(3), None))
        );
        assert_eq!(
            parse_subscription_value(b"%5 1234 1  9"),
            Some(report(5, 1234, true, None, Some(9)))
        );
        assert_eq!(
            parse_subscription_value(b"%5 1234 1  "),
            Some(report(5, 1234, true, None, None))
        );
        for bad in [
            &b""[..],
            b"%5 1234 1",
            b"5 1234 0  ",
            b"%5 x 0  ",
            b"%5 1 7  ",
            b"%5 1 0   extra",
            b"\xff",
        ] {
            assert_eq!(parse_subscription_value(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn died_markers_parse() {
        assert_eq!(
            parse_died_marker(b"%pb-died %7 99 0 "),
            Some(report(7, 99, true, Some(0), None))
        );
        assert_eq!(
            parse_died_marker(b"%pb-died %7 99  15"),
            Some(report(7, 99, true, None, Some(15)))
        );
        assert_eq!(
            parse_died_marker(b"%pb-died %7 99  "),
            Some(report(7, 99, true, None, None))
        );
        assert_eq!(parse_died_marker(b"%pb-diedx %7 99  "), None);
        assert_eq!(parse_died_marker(b"%output %7 abc"), None);
        assert_eq!(parse_died_marker(b"%pb-died %7 99"), None);
    }

    #[test]
    fn died_marker_as_a_bare_line_is_read_too() {
        let mut model = model_with_two_panes();
        let bare = Notification::Event(OwnedEvent::Bare(b"%pb-died %1 100  9".to_vec()));
        assert_eq!(model.apply(&bare), vec![died(1, None, Some(9))]);
    }

    #[test]
    fn hostile_option_values_stay_text() {
        let (records, errors) = listing().parse(&lines(&[&format!(
            "%5\t@1\t102\t1\t\t9\t{ONE_PANE}\tx y; #{{pane_id}} $(rm -rf /) '\"\ttitle"
        )]));
        assert!(errors.is_empty(), "{errors:?}");
        let pane = &records[0].pane;
        assert_eq!(
            pane.options.get("@panebus_worker").map(String::as_str),
            Some("x y; #{pane_id} $(rm -rf /) '\"")
        );
        assert_eq!((pane.dead, pane.dead_signal), (true, Some(9)));
    }

    #[test]
    fn a_respawn_the_caller_made_is_recorded() {
        let mut model = model_with_two_panes();
        model.apply(&marker("%pb-died %1 100 1 "));
        assert_eq!(
            model.respawned(PaneId(1), 180),
            vec![ModelChange::PaneRespawned {
                pane: PaneId(1),
                pid: 180
            }]
        );
        let pane = &model.panes[&PaneId(1)];
        assert_eq!(
            (pane.pid, pane.dead, pane.dead_status),
            (Some(180), false, None)
        );
        // tmux's own report of the new process adds nothing.
        assert_eq!(model.apply(&subscription("%1 180 0  ")), vec![]);
    }

    #[test]
    fn hook_and_subscription_commands() {
        assert_eq!(
            pane_subscription().line(),
            "refresh-client -B 'pbpanes:%*:#{pane_id} #{pane_pid} #{pane_dead} \
             #{pane_dead_status} #{pane_dead_signal}'"
        );
        let hook = pane_died_hook(HookTarget::Session(SessionId(0)));
        assert!(hook
            .line()
            .starts_with("set-hook -t '$0' -- pane-died 'display-message -p -- '\\''%%pb-died "));
    }
}
