//! The text the coordinator keeps in tmux options for status lines and pane borders.
//!
//! The session option `@panebus_status` summarises the managed panes, so
//! `set -g status-right '#{@panebus_status}'` shows it with no process per refresh. Each
//! managed pane carries `@panebus_state` (one word), for a `pane-border-format` such as
//! `'#{?@panebus_state,[#{@panebus_state}] ,}#{pane_title}'`. Pure functions; the event loop
//! sets the options when the text changes.

/// Session user option holding the summary.
pub const SESSION_STATUS_OPTION: &str = "@panebus_status";
/// Pane user option holding one managed pane's state.
pub const PANE_STATE_OPTION: &str = "@panebus_state";
/// Pane user option that marks a pane as managed; its value is the worker id.
pub const WORKER_OPTION: &str = "@panebus_worker";

/// The state of one managed pane, as shown in tmux.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaneState {
    /// Running with a fresh heartbeat (or within its start-up grace).
    Healthy,
    /// Running, but its heartbeat expired.
    Hung,
    /// Dead, waiting for a (backed-off) respawn.
    Dead,
    /// Dead and quarantined.
    Quarantined,
    /// Stopped on purpose (clean exit after deregistering); not respawned.
    Stopped,
}

impl PaneState {
    /// The word shown in `@panebus_state`.
    pub fn word(self) -> &'static str {
        match self {
            PaneState::Healthy => "ok",
            PaneState::Hung => "hung",
            PaneState::Dead => "dead",
            PaneState::Quarantined => "quarantined",
            PaneState::Stopped => "stopped",
        }
    }
}

/// The summary shown in `@panebus_status`, e.g. `pb 3 ok 1 dead 1 quarantined q:5`: counts
/// of managed panes by state (states with no pane are omitted, except `ok`) and the total
/// number of queued commands.
pub fn summary(states: &[PaneState], queued: usize) -> String {
    let count = |s: PaneState| states.iter().filter(|&&x| x == s).count();
    let mut text = format!("pb {} ok", count(PaneState::Healthy));
    for state in [
        PaneState::Hung,
        PaneState::Dead,
        PaneState::Quarantined,
        PaneState::Stopped,
    ] {
        let n = count(state);
        if n > 0 {
            text.push_str(&format!(" {n} {}", state.word()));
        }
    }
    text.push_str(&format!(" q:{queued}"));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_states_and_queue() {
        use PaneState::*;
        assert_eq!(summary(&[], 0), "pb 0 ok q:0");
        assert_eq!(
            summary(&[Healthy, Healthy, Dead, Quarantined, Healthy, Hung], 7),
            "pb 3 ok 1 hung 1 dead 1 quarantined q:7"
        );
        assert_eq!(summary(&[Stopped], 0), "pb 0 ok 1 stopped q:0");
    }
}
