//! `panebus status-line [--format tmux|plain]`: a one-line health summary for status bars.
//!
//! Counts the bus's workers as healthy (heartbeat present), dead (heartbeat expired) or
//! quarantined (a quarantine record exists, whatever the heartbeat), plus the total queue
//! depth. A status bar may run it every few seconds, so it is built for start-up time: no
//! async runtime, one blocking connection without the redis crate's `CLIENT SETINFO`
//! handshake, and one request — an `EVAL` of [`SUMMARY_SCRIPT`], preceded in the same
//! write by `AUTH`/`SELECT` when the URL asks for them — so the whole exchange is a single
//! round trip after connect. It always exits 0: when Redis cannot be reached it prints
//! `pb: redis down`, so a `#(panebus status-line)` segment never fills the status bar with
//! an error. Sessions made by `panebus up` do not need it: the coordinator keeps
//! `#{@panebus_status}` current.

use std::time::Duration;

use clap::{Args, ValueEnum};
use redis::{IntoConnectionInfo, RedisConnectionInfo};

use crate::bus::Keys;
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

/// How long connecting, and then the answer, may take: a status bar must not hang on a
/// Redis that is gone or stuck.
const TIMEOUT: Duration = Duration::from_secs(1);

/// Counts the workers in `KEYS[1]` (the worker set). A worker's heartbeat, quarantine
/// and queue keys are `ARGV[1..2]`, `ARGV[3..4]` and `ARGV[5..6]`: the text before and
/// after the worker id, as [`Keys`] formats them. It reads keys it was not given, which
/// is fine on the single Redis primary a bus runs on (see docs/PROTOCOL.md, Redis Cluster).
pub const SUMMARY_SCRIPT: &str = r"
local healthy, dead, quarantined, queued = 0, 0, 0, 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  queued = queued + redis.call('LLEN', ARGV[5] .. id .. ARGV[6])
  if redis.call('EXISTS', ARGV[3] .. id .. ARGV[4]) == 1 then
    quarantined = quarantined + 1
  elseif redis.call('EXISTS', ARGV[1] .. id .. ARGV[2]) == 1 then
    healthy = healthy + 1
  else
    dead = dead + 1
  end
end
return {healthy, dead, quarantined, queued}
";

/// Runs `panebus status-line`. Blocking: the caller runs it without an async runtime.
pub fn run(args: StatusLineArgs, config: &Config) -> anyhow::Result<()> {
    let summary = match summarize(&config.redis_url, &config.namespace) {
        Ok(summary) => Some(summary),
        Err(err) => {
            tracing::debug!(error = %err, "status-line: cannot read the bus");
            None
        }
    };
    crate::cli::print_text(format!("{}\n", render(summary, args.format)))
}

/// Reads the counts of the bus `namespace` at `url`: one connection, one round trip.
pub fn summarize(url: &str, namespace: &str) -> redis::RedisResult<Summary> {
    let info = url.into_connection_info()?;
    let settings = info.redis_settings().clone();
    // AUTH and SELECT go into the request's own pipeline instead of a handshake round
    // trip of their own; CLIENT SETINFO (two more commands) is not sent at all.
    let bare = RedisConnectionInfo::default().set_skip_set_lib_name();
    let client = redis::Client::open(info.set_redis_settings(bare))?;
    let mut conn = client.get_connection_with_timeout(TIMEOUT)?;
    conn.set_read_timeout(Some(TIMEOUT))?;
    conn.set_write_timeout(Some(TIMEOUT))?;

    let mut pipe = redis::pipe();
    if let Some(password) = settings.password() {
        let auth = pipe.cmd("AUTH");
        if let Some(user) = settings.username() {
            auth.arg(user);
        }
        auth.arg(password).ignore();
    }
    if settings.db() != 0 {
        pipe.cmd("SELECT").arg(settings.db()).ignore();
    }
    let keys = Keys::new(namespace);
    let mut eval = redis::cmd("EVAL");
    eval.arg(SUMMARY_SCRIPT).arg(1).arg(keys.workers());
    for key in [
        keys.heartbeat(ID_MARK),
        keys.quarantine(ID_MARK),
        keys.queue(ID_MARK),
    ] {
        let (before, after) = key.split_once(ID_MARK).unwrap_or((key.as_str(), ""));
        eval.arg(before).arg(after);
    }
    pipe.add_command(eval);
    let ((healthy, dead, quarantined, queued),): ((usize, usize, usize, usize),) =
        pipe.query(&mut conn)?;
    Ok(Summary {
        healthy,
        dead,
        quarantined,
        queued,
    })
}

/// Stands for the worker id when a per-worker key is split into the text before and
/// after it. NUL cannot occur in a namespace (it comes from the environment or argv).
const ID_MARK: &str = "\0";

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
