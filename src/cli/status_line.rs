//! `panebus status-line [--format tmux|plain]`: a one-line health summary for status bars.
//!
//! Counts the bus's workers as healthy (heartbeat present), dead (heartbeat expired) or
//! quarantined (a quarantine record exists, whatever the heartbeat), plus the total queue
//! depth. A status bar may run it every few seconds, so on one plain server (`redis://`,
//! `unix://`) it is built for start-up time: no async runtime, one blocking connection
//! without the redis crate's `CLIENT SETINFO` handshake, and one request — an `EVAL` of
//! [`SUMMARY_SCRIPT`], preceded in the same write by `AUTH`/`SELECT` when the URL asks for
//! them — so the whole exchange is a single round trip after connect. Every other
//! deployment goes through [`Bus`], whose connection applies the `PANEBUS_REDIS_*` TLS
//! files, finds the Sentinel primary and routes by cluster slot: `rediss://` and Sentinel
//! send the same `EVAL` (one round trip to the primary); a Cluster, where one script cannot
//! read keys of other slots, reads the worker set and then every worker's keys in one
//! [`Batch`] (one pipeline per slot, in parallel). It always exits 0: when Redis cannot be reached it prints
//! `pb: redis down`, so a `#(panebus status-line)` segment never fills the status bar with
//! an error. Sessions made by `panebus up` do not need it: the coordinator keeps
//! `#{@panebus_status}` current.

use std::time::Duration;

use clap::{Args, ValueEnum};
use redis::{IntoConnectionInfo, RedisConnectionInfo};

use crate::bus::slots::Batch;
use crate::bus::{Bus, BusError, Deployment, Keys};
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
/// is fine on a single Redis primary but not on a Cluster, where [`summarize_cluster`]
/// does the same reads (see docs/PROTOCOL.md, Redis Cluster).
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
    let plain_server = matches!(
        Deployment::parse(&config.redis_url),
        Ok(Deployment::Standalone { tls: false, .. })
    );
    let summary = if plain_server {
        summarize(&config.redis_url, &config.namespace).map_err(|e| e.to_string())
    } else {
        summarize_through_bus(config)
    };
    let summary = match summary {
        Ok(summary) => Some(summary),
        Err(err) => {
            tracing::debug!(error = %err, "status-line: cannot read the bus");
            None
        }
    };
    crate::cli::print_text(format!("{}\n", render(summary, args.format)))
}

/// Reads the counts of the bus `namespace` on the plain server `url`: one connection, one
/// round trip.
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
    pipe.add_command(summary_eval(&Keys::new(namespace)));
    let ((healthy, dead, quarantined, queued),): ((usize, usize, usize, usize),) =
        pipe.query(&mut conn)?;
    Ok(Summary {
        healthy,
        dead,
        quarantined,
        queued,
    })
}

/// How long the [`Bus`] path may take in all, connecting included: the bus's own
/// connect timeout plus one answer.
const BUS_TIMEOUT: Duration = Duration::from_secs(3);

/// Reads the counts through a [`Bus`] connection, for the deployments the blocking path
/// cannot serve (TLS, Sentinel, Cluster).
fn summarize_through_bus(config: &Config) -> Result<Summary, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let cluster = matches!(
        Deployment::parse(&config.redis_url),
        Ok(Deployment::Cluster { .. })
    );
    runtime.block_on(async {
        let read = async {
            let bus = Bus::connect(config).await?;
            if cluster {
                summarize_cluster(&bus).await
            } else {
                summarize_primary(&bus).await
            }
        };
        match tokio::time::timeout(BUS_TIMEOUT, read).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {BUS_TIMEOUT:?}")),
        }
    })
}

/// The `EVAL` of [`SUMMARY_SCRIPT`] for the bus `keys`.
fn summary_eval(keys: &Keys) -> redis::Cmd {
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
    eval
}

/// One server behind the bus connection (TLS or Sentinel primary): the script, one round
/// trip.
async fn summarize_primary(bus: &Bus) -> Result<Summary, BusError> {
    let (healthy, dead, quarantined, queued): (usize, usize, usize, usize) =
        summary_eval(bus.keys())
            .query_async(&mut bus.connection())
            .await?;
    Ok(Summary {
        healthy,
        dead,
        quarantined,
        queued,
    })
}

/// A Cluster: the worker set, then each worker's queue length, quarantine and heartbeat in
/// one [`Batch`] (a pipeline per slot, sent in parallel): two round trips.
async fn summarize_cluster(bus: &Bus) -> Result<Summary, BusError> {
    let keys = bus.keys();
    let ids: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys.workers())
        .query_async(&mut bus.connection())
        .await?;
    let mut batch = Batch::new();
    for id in &ids {
        batch.add(redis::cmd("LLEN").arg(keys.queue(id)).to_owned());
        batch.add(redis::cmd("EXISTS").arg(keys.quarantine(id)).to_owned());
        batch.add(redis::cmd("EXISTS").arg(keys.heartbeat(id)).to_owned());
    }
    let replies = batch.query(&mut bus.connection()).await?;
    let mut summary = Summary::default();
    for chunk in replies.chunks(3) {
        let [queued, quarantined, alive] = [&chunk[0], &chunk[1], &chunk[2]].map(|value| {
            redis::from_redis_value_ref::<usize>(value).map_err(redis::RedisError::from)
        });
        summary.queued += queued?;
        if quarantined? == 1 {
            summary.quarantined += 1;
        } else if alive? == 1 {
            summary.healthy += 1;
        } else {
            summary.dead += 1;
        }
    }
    Ok(summary)
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
