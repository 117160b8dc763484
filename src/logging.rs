//! Log output for every `panebus` process: one `tracing` subscriber writing to stderr.
//!
//! The level and format come from the resolved [`Config`](crate::config::Config)
//! (`PANEBUS_LOG_LEVEL` / `--log-level`, `PANEBUS_LOG_FORMAT` / `--log-format`): `text` for
//! people, `json` for log shippers (one object per line with `timestamp`, `level`,
//! `target` and the event's fields). Stdout is left to command output, so
//! `panebus status --json | jq` works at any log level.

use tracing_subscriber::filter::LevelFilter;

use crate::config::{LogFormat, LogLevel};

/// Installs the global subscriber. A second call (tests in one process, an embedding
/// program with its own subscriber) leaves the first one in charge.
pub fn init(level: LogLevel, format: LogFormat) {
    // A failed write is dropped, never reported: tracing-subscriber reports one with
    // `eprintln!`, which panics when stderr itself is gone — the case of a worker whose tmux
    // pane was killed (its terminal hung up), whose signal task then died logging the
    // SIGHUP, so it never stopped, never deregistered and kept heartbeating as an orphan.
    let builder = tracing_subscriber::fmt()
        .with_max_level(LevelFilter::from_level(level.as_tracing()))
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
    // Err means a subscriber is already set, which is the documented no-op above.
    drop(installed);
}
