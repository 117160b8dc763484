//! Reconciliation: which panes of the session the coordinator manages, decided from a
//! `list-panes` listing and the worker registry, so that a (re)started coordinator acts only
//! on differences.
//!
//! A pane is managed when its `@panebus_worker` option holds exactly its own worker id
//! (`<node>/%<pane>`): a stale or foreign value (a copied option, a user's own text) makes it
//! not ours, and it is left alone. An untagged pane is tagged when a worker registered for
//! it, that worker is the pane's own process (same pid: never a shell the user typed into),
//! it runs in this session, and either `--adopt` was given or it registered after the
//! coordinator started. Pure functions; the event loop runs the listing and applies the plan.

use std::collections::{HashMap, HashSet};

use super::detect::PaneReport;
use super::policy::ExitStatus;
use crate::schema::WorkerInfo;

/// The `list-panes` format: the detector's fields, then the `@panebus_worker` tag (rest of
/// the line, possibly empty).
pub const LIST_FORMAT: &str =
    "#{pane_id} #{pane_pid} #{pane_dead} #{pane_dead_status} #{pane_dead_signal} #{@panebus_worker}";

/// One line of the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPane {
    pub report: PaneReport,
    /// The `@panebus_worker` value (empty when unset).
    pub tag: String,
}

/// Parses one listing line; `None` for a line that is not one (a tag with a newline in it
/// splits a line in two: both halves are skipped or parsed as the pane they describe).
pub fn parse_line(line: &str) -> Option<ListedPane> {
    let mut fields = line.splitn(6, ' ');
    let pane = fields.next()?.strip_prefix('%')?.parse().ok()?;
    let pid = fields.next()?.parse().ok()?;
    let dead = match fields.next()? {
        "1" => true,
        "0" => false,
        _ => return None,
    };
    let status = fields.next()?;
    let signal = fields.next()?;
    let tag = fields.next()?.to_string();
    let exit = if !dead {
        None
    } else if let Ok(code) = status.parse() {
        Some(ExitStatus::Code(code))
    } else {
        signal.parse().ok().map(ExitStatus::Signal)
    };
    Some(ListedPane {
        report: PaneReport {
            pane,
            pid,
            dead,
            exit,
        },
        tag,
    })
}

/// The worker id of pane `%pane` on `node`.
pub fn worker_id(node: &str, pane: u32) -> String {
    format!("{node}/%{pane}")
}

/// What to do after a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Managed panes (tagged with their own id, or about to be), by pane number.
    pub managed: Vec<(u32, String)>,
    /// Of those, the panes to tag now.
    pub to_tag: Vec<u32>,
    /// Panes the coordinator managed that no longer exist.
    pub gone: Vec<u32>,
}

/// Which panes to manage, given the listing, the panes managed so far, the registered
/// workers (by id), this node and session, and the start time (ms) from which new
/// registrations are adopted (`0` with `--adopt`).
pub fn plan(
    listing: &[ListedPane],
    known: &HashSet<u32>,
    registered: &HashMap<String, WorkerInfo>,
    node: &str,
    session: &str,
    adopt_since_ms: u64,
) -> Plan {
    let mut out = Plan::default();
    let mut present = HashSet::new();
    for listed in listing {
        let pane = listed.report.pane;
        present.insert(pane);
        let id = worker_id(node, pane);
        if listed.tag == id {
            out.managed.push((pane, id));
            continue;
        }
        if !listed.tag.is_empty() || listed.report.dead {
            continue;
        }
        let Some(info) = registered.get(&id) else {
            continue;
        };
        let same_process = info.pid == listed.report.pid;
        let same_session = info.session.as_deref().map_or(true, |s| s == session);
        if same_process && same_session && info.started_ms >= adopt_since_ms {
            out.managed.push((pane, id));
            out.to_tag.push(pane);
        }
    }
    let mut gone: Vec<u32> = known.difference(&present).copied().collect();
    gone.sort_unstable();
    out.gone = gone;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::WorkerState;

    fn info(id: &str, pid: u32, session: Option<&str>, started_ms: u64) -> WorkerInfo {
        WorkerInfo {
            id: id.to_string(),
            role: "r".into(),
            node: "n".into(),
            pane: id.rsplit('/').next().unwrap().to_string(),
            pid,
            generation: 1,
            version: "0".into(),
            started_ms,
            current_command: None,
            state: WorkerState::Idle,
            argv: vec!["panebus".into(), "worker".into()],
            cwd: "/".into(),
            session: session.map(str::to_string),
        }
    }

    #[test]
    fn listing_lines_parse_and_hostile_tags_stay_text() {
        let p = parse_line("%3 100 0   n/%3").unwrap();
        assert_eq!(
            (p.report.pane, p.report.pid, p.report.dead),
            (3, 100, false)
        );
        assert_eq!(p.tag, "n/%3");
        let p = parse_line("%4 101 1 2  ").unwrap();
        assert_eq!(p.report.exit, Some(ExitStatus::Code(2)));
        assert_eq!(p.tag, "");
        let p = parse_line("%5 102 1  9 x y; #{pane_id} $(rm -rf /)").unwrap();
        assert_eq!(p.report.exit, Some(ExitStatus::Signal(9)));
        assert_eq!(p.tag, "x y; #{pane_id} $(rm -rf /)");
        assert_eq!(parse_line("%5 102 1"), None);
        assert_eq!(parse_line("garbage"), None);
        assert_eq!(parse_line(""), None);
    }

    #[test]
    fn plan_manages_own_tags_adopts_matching_workers_and_ignores_the_rest() {
        let listing: Vec<ListedPane> = [
            "%1 10 0   n/%1", // tagged with its own id: managed
            "%2 20 0   n/%9", // foreign tag: not ours
            "%3 30 0   ",     // registered, same pid, new: tag
            "%4 40 0   ",     // registered but another pid (a shell's child): no
            "%5 50 0   ",     // registered before the coordinator started: no
            "%6 60 0   ",     // registered in another session: no
            "%7 70 0   ",     // not registered: a user's pane
            "%8 80 1 0  ",    // dead and untagged: no
        ]
        .iter()
        .map(|l| parse_line(l).unwrap())
        .collect();
        let registered: HashMap<String, WorkerInfo> = [
            info("n/%3", 30, Some("s"), 1000),
            info("n/%4", 41, Some("s"), 1000),
            info("n/%5", 50, Some("s"), 10),
            info("n/%6", 60, Some("other"), 1000),
            info("n/%8", 80, Some("s"), 1000),
        ]
        .into_iter()
        .map(|i| (i.id.clone(), i))
        .collect();
        let known: HashSet<u32> = [1, 12].into_iter().collect();
        let p = plan(&listing, &known, &registered, "n", "s", 500);
        assert_eq!(
            p.managed,
            vec![(1, "n/%1".to_string()), (3, "n/%3".to_string())]
        );
        assert_eq!(p.to_tag, vec![3]);
        assert_eq!(p.gone, vec![12]);

        let adopted = plan(&listing, &HashSet::new(), &registered, "n", "s", 0);
        assert_eq!(adopted.to_tag, vec![3, 5]);
    }
}
