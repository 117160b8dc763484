//! Exit codes: the one place that turns an error into the number a script sees.
//!
//! Every command returns `anyhow::Result`; [`ExitStatus::of`] walks the error chain for the
//! first cause it knows (a [`BusError`] from the Redis layer, a [`Failure`] the CLI detected
//! itself, a raw Redis connection error) and picks its code. Anything else is `1`. The
//! table is documented in the README's `exit-codes` section and must stay in sync with it.

use std::process::ExitCode;
use std::time::Duration;

use crate::bus::BusError;
use crate::config::ConfigError;

/// The process exit status of `panebus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything worked.
    Ok,
    /// An error with no more specific code.
    Error,
    /// Bad command-line usage (clap's own code) or an unusable `PANEBUS_*` value.
    Usage,
    /// Redis could not be reached (refused, timed out, DNS, auth).
    RedisUnreachable,
    /// The worker, pane, command id or DLQ entry does not exist.
    NotFound,
    /// The worker's queue is at `PANEBUS_MAX_QUEUE_DEPTH`.
    QueueFull,
    /// The payload is not a JSON object or is larger than the bus accepts.
    InvalidPayload,
    /// `dispatch --wait` (or `result`): the command ran and failed.
    CommandFailed,
    /// A wait ended before the result arrived.
    TimedOut,
    /// Queued on the primary, but fewer replicas than `PANEBUS_REPLICA_ACKS` confirmed it.
    NotReplicated,
    /// Interrupted by Ctrl-C / SIGINT.
    Interrupted,
}

impl ExitStatus {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Ok => 0,
            ExitStatus::Error => 1,
            ExitStatus::Usage => 2,
            ExitStatus::RedisUnreachable => 3,
            ExitStatus::NotFound => 4,
            ExitStatus::QueueFull => 5,
            ExitStatus::InvalidPayload => 6,
            ExitStatus::CommandFailed => 7,
            ExitStatus::TimedOut => 8,
            ExitStatus::NotReplicated => 9,
            ExitStatus::Interrupted => 130,
        }
    }

    /// The status for an error returned by a command.
    pub fn of(err: &anyhow::Error) -> ExitStatus {
        err.chain()
            .find_map(|cause| {
                if let Some(failure) = cause.downcast_ref::<Failure>() {
                    return Some(failure.status());
                }
                if let Some(bus) = cause.downcast_ref::<BusError>() {
                    return Some(bus_status(bus));
                }
                if cause.downcast_ref::<ConfigError>().is_some() {
                    return Some(ExitStatus::Usage);
                }
                cause.downcast_ref::<redis::RedisError>().map(redis_status)
            })
            .unwrap_or(ExitStatus::Error)
    }
}

/// The text printed for an error: its chain joined with `: `, leaving out each cause whose
/// text is already there. Errors that wrap a source often print it too (`redis error: {0}`,
/// and a Redis I/O error repeats its `io::Error`), so the plain chain would show one reason
/// up to three times.
pub fn message(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        ExitCode::from(status.code())
    }
}

fn bus_status(err: &BusError) -> ExitStatus {
    match err {
        BusError::Unreachable { .. } => ExitStatus::RedisUnreachable,
        BusError::QueueFull { .. } => ExitStatus::QueueFull,
        BusError::UnknownWorker { .. } | BusError::NotFound { .. } => ExitStatus::NotFound,
        BusError::PayloadTooLarge { .. } | BusError::InvalidPayload { .. } => {
            ExitStatus::InvalidPayload
        }
        BusError::Timeout { .. } => ExitStatus::TimedOut,
        BusError::NotReplicated { .. } => ExitStatus::NotReplicated,
        BusError::Redis(redis) => redis_status(redis),
        _ => ExitStatus::Error,
    }
}

fn redis_status(err: &redis::RedisError) -> ExitStatus {
    if err.is_connection_refusal()
        || err.is_connection_dropped()
        || err.is_io_error()
        || err.is_timeout()
    {
        ExitStatus::RedisUnreachable
    } else {
        ExitStatus::Error
    }
}

/// Failures the CLI detects itself, each with its own exit code and a message that says
/// what to do next.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// `--payload` is not a JSON object.
    #[error("invalid --payload: {reason} — pass a JSON object, e.g. --payload '{{\"text\": \"hello\"}}'")]
    InvalidPayload { reason: String },
    /// The command's result says it failed.
    #[error("command {id} failed on {worker}: {error} — see `panebus dlq show {id}` and the worker's log")]
    CommandFailed {
        id: String,
        worker: String,
        error: String,
    },
    /// The wait for a result ran out.
    #[error(
        "no result for command {id} after {} — it may still be queued or running: check \
         `panebus panes`, then `panebus result {id} --wait 60`",
        humantime::format_duration(*waited)
    )]
    WaitTimedOut { id: String, waited: Duration },
    /// A target that names nothing on the bus.
    #[error("{what} — {hint}")]
    NotFound { what: String, hint: String },
    /// A `PANEBUS_*` variable or the flag overriding it has a value that cannot be used.
    #[error("{0} — fix the variable or the flag that overrides it (see `panebus --help`)")]
    Config(ConfigError),
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
}

impl Failure {
    fn status(&self) -> ExitStatus {
        match self {
            Failure::InvalidPayload { .. } => ExitStatus::InvalidPayload,
            Failure::CommandFailed { .. } => ExitStatus::CommandFailed,
            Failure::WaitTimedOut { .. } => ExitStatus::TimedOut,
            Failure::NotFound { .. } => ExitStatus::NotFound,
            Failure::Config(_) => ExitStatus::Usage,
            Failure::Interrupted => ExitStatus::Interrupted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    fn status_of(err: impl Into<anyhow::Error>) -> u8 {
        ExitStatus::of(&err.into()).code()
    }

    #[test]
    fn bus_errors_map_to_their_codes() {
        let unreachable = BusError::Unreachable {
            url: "redis://127.0.0.1:1/0".into(),
            reason: "refused".into(),
        };
        assert_eq!(status_of(unreachable), 3);
        assert_eq!(
            status_of(BusError::UnknownWorker {
                worker: "n/%1".into()
            }),
            4
        );
        assert_eq!(status_of(BusError::NotFound("no entry".into())), 4);
        assert_eq!(
            status_of(BusError::QueueFull {
                worker: "n/%1".into(),
                depth: 100
            }),
            5
        );
        assert_eq!(
            status_of(BusError::PayloadTooLarge { size: 2, limit: 1 }),
            6
        );
        assert_eq!(status_of(BusError::InvalidPayload("bad".into())), 6);
        let timeout = BusError::Timeout {
            what: "x".into(),
            after: Duration::from_secs(1),
        };
        assert_eq!(status_of(timeout), 8);
        let fenced = BusError::Fenced {
            worker: "n/%1".into(),
            expected: 1,
            actual: 2,
        };
        assert_eq!(status_of(fenced), 1);
    }

    #[test]
    fn a_cause_repeated_by_its_wrappers_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused by peer");
        let err = anyhow::Error::from(BusError::Redis(redis::RedisError::from(io)))
            .context("cannot read the bus");
        let text = message(&err);
        assert_eq!(text.matches("refused by peer").count(), 1, "{text}");
        assert!(
            text.starts_with("cannot read the bus: redis error: "),
            "{text}"
        );
        let distinct = anyhow::anyhow!("disk").context("writing the file");
        assert_eq!(message(&distinct), "writing the file: disk");
    }

    #[test]
    fn redis_connection_errors_count_as_unreachable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(status_of(BusError::Redis(redis::RedisError::from(io))), 3);
    }

    #[test]
    fn failures_map_to_their_codes_through_context() {
        let failed = Failure::CommandFailed {
            id: "01J".into(),
            worker: "n/%1".into(),
            error: "boom".into(),
        };
        let wrapped = anyhow::Error::from(failed).context("while dispatching");
        assert_eq!(ExitStatus::of(&wrapped).code(), 7);
        let waited = Failure::WaitTimedOut {
            id: "01J".into(),
            waited: Duration::from_secs(90),
        };
        assert!(waited.to_string().contains("after 1m 30s"), "{waited}");
        assert_eq!(status_of(waited), 8);
        assert_eq!(status_of(Failure::Interrupted), 130);
        let config = crate::config::Config::from_lookup(|name| {
            (name == "PANEBUS_HEARTBEAT_TTL").then(|| "soon".to_string())
        })
        .unwrap_err();
        assert_eq!(status_of(anyhow::Error::from(config).context("worker")), 2);
        let from_io: anyhow::Result<()> = Err(std::io::Error::other("disk")).context("writing");
        assert_eq!(ExitStatus::of(&from_io.unwrap_err()).code(), 1);
    }
}
