//! Reconciliation: which panes of the session the coordinator manages, decided from a
//! `list-panes` listing (as the [`SessionModel`](crate::tmux::SessionModel) holds it) and the
//! worker registry, so that a (re)started coordinator acts only
//! on differences.
//!
//! A pane is managed when its `@panebus_worker` option holds exactly its own worker id
//! (`<node>/%<pane>`): a stale or foreign value (a copied option, a user's own text) makes it
//! not ours, and it is left alone. An untagged pane is tagged when a worker registered for
//! it, that worker is the pane's own process (same pid: never a shell the user typed into),
//! it runs in this session, and either `--adopt` was given or it registered after the
//! coordinator started. Pure functions; the event loop runs the listing and applies the plan.

use std::collections::{HashMap, HashSet};

use super::status_line::WORKER_OPTION;
use crate::schema::WorkerInfo;
use crate::tmux::PaneState;

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

/// Which panes to manage, given the listed panes, the panes managed so far, the registered
/// workers (by id), this node and session, and the start time (ms) from which new
/// registrations are adopted (`0` with `--adopt`).
pub fn plan<'p>(
    listing: impl IntoIterator<Item = &'p PaneState>,
    known: &HashSet<u32>,
    registered: &HashMap<String, WorkerInfo>,
    node: &str,
    session: &str,
    adopt_since_ms: u64,
) -> Plan {
    let mut out = Plan::default();
    let mut present = HashSet::new();
    for listed in listing {
        let pane = listed.id.0;
        present.insert(pane);
        let id = worker_id(node, pane);
        let tag = listed.options.get(WORKER_OPTION);
        if tag == Some(&id) {
            out.managed.push((pane, id));
            continue;
        }
        if tag.is_some() || listed.dead {
            continue;
        }
        let Some(info) = registered.get(&id) else {
            continue;
        };
        let same_process = listed.pid == Some(info.pid);
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
    use crate::tmux::{OptionName, PaneListing};

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
    fn plan_manages_own_tags_adopts_matching_workers_and_ignores_the_rest() {
        let listing = PaneListing::new(vec![OptionName::new(WORKER_OPTION).unwrap()]);
        let lines: Vec<Vec<u8>> = [
            "%1\t@1\t10\t0\t\t\tL\tn/%1\t", // tagged with its own id: managed
            "%2\t@1\t20\t0\t\t\tL\tn/%9\t", // foreign tag: not ours
            "%3\t@1\t30\t0\t\t\tL\t\t",     // registered, same pid, new: tag
            "%4\t@1\t40\t0\t\t\tL\t\t",     // registered but another pid (a shell's child): no
            "%5\t@1\t50\t0\t\t\tL\t\t",     // registered before the coordinator started: no
            "%6\t@1\t60\t0\t\t\tL\t\t",     // registered in another session: no
            "%7\t@1\t70\t0\t\t\tL\t\t",     // not registered: a user's pane
            "%8\t@1\t80\t1\t0\t\tL\t\t",    // dead and untagged: no
            // A hostile tag is only text, and not this pane's id.
            "%9\t@1\t90\t0\t\t\tL\tn/%9; #{pane_id} $(rm -rf /)\t",
        ]
        .iter()
        .map(|l| l.as_bytes().to_vec())
        .collect();
        let (records, errors) = listing.parse(&lines);
        assert!(errors.is_empty(), "{errors:?}");
        let listing: Vec<PaneState> = records.into_iter().map(|r| r.pane).collect();
        let registered: HashMap<String, WorkerInfo> = [
            info("n/%3", 30, Some("s"), 1000),
            info("n/%4", 41, Some("s"), 1000),
            info("n/%5", 50, Some("s"), 10),
            info("n/%6", 60, Some("other"), 1000),
            info("n/%8", 80, Some("s"), 1000),
            info("n/%9", 90, Some("s"), 1000),
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
