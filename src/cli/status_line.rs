//! `panebus status-line [--format tmux|plain]`: a one-line health summary for status bars.
//!
//! Counts the bus's workers as healthy (heartbeat present), dead (heartbeat expired) or
//! quarantined (a quarantine record exists, whatever the heartbeat), plus the total queue
//! depth. It reads the worker set, then everything else in one pipelined round trip, and
//! always exits 0: when Redis cannot be reached it prints `pb: redis down`, so a
//! `#(panebus status-line)` segment never fills the status bar with an error. Sessions made
//! by `panebus up` do not need it: the coordinator keeps `#{@panebus_status}` current.

use clap::{Args, ValueEnum};

use crate::bus::{Bus, BusError};
use crate::config::Config;

/// Output style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LineFormat {
    /// With tmux style directives (`#[fg=red]`).
    Tmux,
    /// Plain text.
    Plain,
}

/// `panebus status-line` options.
#[derive(Debug, Clone, Args)]
pub struct StatusLineArgs {
    /// Output style.
    #[arg(long, value_enum, default_value_t = LineFormat::Tmux)]
    pub format: LineFormat,
}

/// Worker counts of one bus.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub healthy: usize,
    pub dead: usize,
    pub quarantined: usize,
    /// Commands waiting in all queues.
    pub queued: usize,
}

/// Runs `panebus status-line`.
pub async fn run(args: StatusLineArgs, config: &Config) -> anyhow::Result<()> {
    let summary = match Bus::connect(config).await {
        Ok(bus) => summarize(&bus).await.ok(),
        Err(_) => None,
    };
    println!("{}", render(summary, args.format));
    Ok(())
}

/// Reads the counts: the worker set, then one pipeline over all workers.
pub async fn summarize(bus: &Bus) -> Result<Summary, BusError> {
    let ids = bus.worker_ids().await?;
    if ids.is_empty() {
        return Ok(Summary::default());
    }
    let keys = bus.keys();
    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.cmd("EXISTS").arg(keys.heartbeat(id));
        pipe.cmd("EXISTS").arg(keys.quarantine(id));
        pipe.cmd("LLEN").arg(keys.queue(id));
    }
    let replies: Vec<(bool, bool, usize)> = pipe.query_async(&mut bus.connection()).await?;
    let mut summary = Summary::default();
    for (alive, quarantined, queued) in replies {
        summary.queued += queued;
        if quarantined {
            summary.quarantined += 1;
        } else if alive {
            summary.healthy += 1;
        } else {
            summary.dead += 1;
        }
    }
    Ok(summary)
}

/// The line for a summary (`None`: Redis unreachable).
pub fn render(summary: Option<Summary>, format: LineFormat) -> String {
    let Some(s) = summary else {
        return match format {
            LineFormat::Tmux => "#[fg=red]pb: redis down#[default]".to_string(),
            LineFormat::Plain => "pb: redis down".to_string(),
        };
    };
    match format {
        LineFormat::Plain => {
            let mut text = format!("pb: {} healthy", s.healthy);
            if s.dead > 0 {
                text.push_str(&format!(", {} dead", s.dead));
            }
            if s.quarantined > 0 {
                text.push_str(&format!(", {} quarantined", s.quarantined));
            }
            text.push_str(&format!(", {} queued", s.queued));
            text
        }
        LineFormat::Tmux => {
            let mut text = format!("pb #[fg=green]{} ok#[default]", s.healthy);
            if s.dead > 0 {
                text.push_str(&format!(" #[fg=red]{} dead#[default]", s.dead));
            }
            if s.quarantined > 0 {
                text.push_str(&format!(" #[fg=magenta]{} quar#[default]", s.quarantined));
            }
            text.push_str(&format!(" q:{}", s.queued));
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_both_formats() {
        let s = Summary {
            healthy: 3,
            dead: 1,
            quarantined: 2,
            queued: 7,
        };
        assert_eq!(
            render(Some(s), LineFormat::Plain),
            "pb: 3 healthy, 1 dead, 2 quarantined, 7 queued"
        );
        assert_eq!(
            render(Some(s), LineFormat::Tmux),
            "pb #[fg=green]3 ok#[default] #[fg=red]1 dead#[default] #[fg=magenta]2 quar#[default] q:7"
        );
        assert_eq!(
            render(Some(Summary::default()), LineFormat::Plain),
            "pb: 0 healthy, 0 queued"
        );
        assert_eq!(render(None, LineFormat::Plain), "pb: redis down");
        assert_eq!(
            render(None, LineFormat::Tmux),
            "#[fg=red]pb: redis down#[default]"
        );
    }
}
