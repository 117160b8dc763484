//! Settings for every PaneBus process, read from `PANEBUS_*` environment variables.
//!
//! [`Config::from_env`] reads the process environment; [`Config::from_lookup`] takes any
//! lookup function so tests need not touch the real environment. Command-line flags win
//! over variables: the CLI collects them in [`ConfigOverrides`] and calls [`Config::apply`].
//! Every bad value is reported as a [`ConfigError`] naming the variable, the value and what
//! is accepted, so a user can fix it without reading the source.

use std::time::Duration;

use thiserror::Error;

use crate::bus::deployment::{Deployment, TlsFiles};
use crate::bus::redact_url;

/// Default Redis URL (the seed's default).
pub const DEFAULT_REDIS_URL: &str = "redis://localhost:6379/0";
/// Default namespace: every key of a bus starts with `<namespace>:`.
pub const DEFAULT_NAMESPACE: &str = "panebus";
/// Default agent command for `prompt` commands; the prompt text is appended as one argument.
pub const DEFAULT_AGENT_CMD: &str = "claude --dangerously-skip-permissions -p";

/// A configuration value that could not be used.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A variable (or the flag that overrides it) holds a value that cannot be used.
    #[error("invalid value {value:?} for {var}: {reason}")]
    Invalid {
        /// The variable name, e.g. `PANEBUS_HEARTBEAT_TTL`.
        var: &'static str,
        /// The value as given.
        value: String,
        /// What is accepted instead.
        reason: String,
    },
}

fn invalid(var: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// How log lines are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    fn parse(var: &'static str, value: &str) -> Result<Self, ConfigError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(invalid(var, value, "expected `text` or `json`")),
        }
    }
}

/// A log level name as accepted by `PANEBUS_LOG_LEVEL` (case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    fn parse(var: &'static str, value: &str) -> Result<Self, ConfigError> {
        match value.trim().to_ascii_uppercase().as_str() {
            "TRACE" => Ok(LogLevel::Trace),
            "DEBUG" => Ok(LogLevel::Debug),
            "INFO" => Ok(LogLevel::Info),
            "WARN" | "WARNING" => Ok(LogLevel::Warn),
            // The seed's Python origin knew CRITICAL; it maps to the most severe level we have.
            "ERROR" | "CRITICAL" => Ok(LogLevel::Error),
            _ => Err(invalid(
                var,
                value,
                "expected one of TRACE, DEBUG, INFO, WARN, ERROR",
            )),
        }
    }

    /// The matching `tracing` level.
    pub fn as_tracing(self) -> tracing::Level {
        match self {
            LogLevel::Trace => tracing::Level::TRACE,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Error => tracing::Level::ERROR,
        }
    }
}

/// A secret setting (a password): its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for handing to the redis crate.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Every setting of a PaneBus process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `PANEBUS_REDIS_URL`: where the control plane lives (forms: [`Deployment`]).
    pub redis_url: String,
    /// `PANEBUS_REDIS_CA_CERT`, `PANEBUS_REDIS_CLIENT_CERT`, `PANEBUS_REDIS_CLIENT_KEY`: PEM
    /// files for TLS URLs (the CA to trust; a client certificate for mutual TLS).
    pub redis_tls: TlsFiles,
    /// `PANEBUS_REDIS_SENTINEL_PASSWORD`: password of the sentinels themselves (the URL's
    /// password is the data nodes').
    pub sentinel_password: Option<Secret>,
    /// `PANEBUS_WORKER_REDIS_URL`: the URL the coordinator and watchdog give the workers they
    /// respawn, when it must differ from their own (e.g. the worker ACL user's
    /// credentials while the supervisor runs as the coordinator user); unset = their own.
    pub worker_redis_url: Option<String>,
    /// `PANEBUS_NAMESPACE`: prefix of every key of this bus.
    pub namespace: String,
    /// `PANEBUS_NODE`: name of this tmux server/host; the first half of worker ids.
    pub node: String,
    /// `PANEBUS_HEARTBEAT_INTERVAL`: time between two heartbeats of a worker.
    pub heartbeat_interval: Duration,
    /// `PANEBUS_HEARTBEAT_TTL`: a worker whose heartbeat is older than this is dead.
    pub heartbeat_ttl: Duration,
    /// `PANEBUS_COMMAND_TIMEOUT`: default limit for running one command.
    pub command_timeout: Duration,
    /// `PANEBUS_MAX_QUEUE_DEPTH`: most commands waiting in one worker's queue.
    pub max_queue_depth: usize,
    /// `PANEBUS_RESPAWN_LIMIT`: respawns within the window before a pane is quarantined.
    pub respawn_limit: u32,
    /// `PANEBUS_RESPAWN_WINDOW`: the window over which respawns are counted.
    pub respawn_window: Duration,
    /// `PANEBUS_LOG_LEVEL`.
    pub log_level: LogLevel,
    /// `PANEBUS_LOG_FORMAT`: `text` or `json`.
    pub log_format: LogFormat,
    /// `PANEBUS_AGENT_CMD`: the agent program and its leading arguments, split like a shell
    /// would split words (no expansion); the prompt text is appended as one more argument.
    pub agent_cmd: Vec<String>,
    /// `PANEBUS_MAX_PAYLOAD_BYTES`: largest accepted serialized command.
    pub max_payload_bytes: usize,
    /// `PANEBUS_RESULT_TTL`: how long results are kept.
    pub result_ttl: Duration,
    /// `PANEBUS_EVENTS_MAXLEN`: approximate length cap of the events stream.
    pub events_maxlen: usize,
    /// `PANEBUS_MAX_ATTEMPTS`: deliveries of one command before it goes to the DLQ.
    pub max_attempts: u32,
    /// `PANEBUS_REPLICA_ACKS`: replicas that must confirm an enqueued command (Redis `WAIT`)
    /// before it counts as queued; 0 (the default) does not wait.
    pub replica_acks: u32,
    /// `PANEBUS_REPLICA_ACK_TIMEOUT`: how long an enqueue waits for those confirmations.
    pub replica_ack_timeout: Duration,
}

/// Longest accepted `PANEBUS_REPLICA_ACK_TIMEOUT`: the wait must end well within the
/// response timeout of the bus's connection.
const MAX_REPLICA_ACK_TIMEOUT: Duration =
    crate::bus::connection::RESPONSE_TIMEOUT.saturating_sub(Duration::from_secs(1));

/// Values given on the command line; each `Some` replaces the variable's value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigOverrides {
    pub redis_url: Option<String>,
    pub namespace: Option<String>,
    pub node: Option<String>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
    pub heartbeat_interval: Option<String>,
    pub heartbeat_ttl: Option<String>,
    pub command_timeout: Option<String>,
    pub max_queue_depth: Option<String>,
}

/// Parses a duration given as plain seconds (`10`, `0.5`) or in humantime form (`1500ms`, `2m`).
pub fn parse_duration(var: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let text = value.trim();
    if let Ok(secs) = text.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(invalid(var, value, "a duration cannot be negative"));
    }
    humantime::parse_duration(text).map_err(|e| {
        invalid(
            var,
            value,
            format!("{e}; expected seconds (`10`) or a duration such as `1500ms`, `2m`, `1h`"),
        )
    })
}

fn parse_positive_duration(var: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let d = parse_duration(var, value)?;
    if d.is_zero() {
        return Err(invalid(var, value, "must be greater than zero"));
    }
    Ok(d)
}

fn parse_count<T: std::str::FromStr + PartialOrd + From<u8>>(
    var: &'static str,
    value: &str,
) -> Result<T, ConfigError> {
    match value.trim().parse::<T>() {
        Ok(n) if n >= T::from(1) => Ok(n),
        _ => Err(invalid(var, value, "expected a whole number of at least 1")),
    }
}

/// Checks a name that becomes part of Redis keys (namespace, node).
fn check_name(var: &'static str, value: &str, extra_forbidden: &[char]) -> Result<(), ConfigError> {
    if value.is_empty() {
        return Err(invalid(var, value, "must not be empty"));
    }
    let bad = |c: char| {
        c.is_whitespace() || c.is_control() || "{}:".contains(c) || extra_forbidden.contains(&c)
    };
    if let Some(c) = value.chars().find(|&c| bad(c)) {
        return Err(invalid(
            var,
            value,
            format!(
                "character {c:?} is not allowed (no whitespace, `{{`, `}}`, `:`{})",
                if extra_forbidden.is_empty() {
                    ""
                } else {
                    ", `/`"
                }
            ),
        ));
    }
    Ok(())
}

/// The short host name (up to the first dot), or `localhost` if it cannot be read.
pub fn short_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length and gethostname NUL-terminates
    // within it or truncates; we stop at the first NUL.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let full = String::from_utf8_lossy(&buf[..end]).into_owned();
    let short = full.split('.').next().unwrap_or("").to_string();
    if short.is_empty() {
        "localhost".to_string()
    } else {
        short
    }
}

/// The default node name: the short host name, plus `-<socket>` when the `TMUX` variable
/// names a tmux socket other than `default` (two tmux servers on one host are two nodes).
fn default_node(tmux_env: Option<&str>) -> String {
    let host = short_hostname();
    let socket = tmux_env
        .and_then(|t| t.split(',').next())
        .and_then(|path| path.rsplit('/').next())
        .filter(|name| !name.is_empty() && *name != "default");
    let node = match socket {
        Some(name) => format!("{host}-{name}"),
        None => host,
    };
    // Keep the node usable as a key part even for odd socket names.
    node.chars()
        .map(|c| {
            if c.is_whitespace() || "{}:/".contains(c) {
                '_'
            } else {
                c
            }
        })
        .collect()
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (a variable name → its value, if set).
    /// Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut config = Config {
            redis_url: DEFAULT_REDIS_URL.to_string(),
            redis_tls: TlsFiles::default(),
            sentinel_password: None,
            worker_redis_url: None,
            namespace: DEFAULT_NAMESPACE.to_string(),
            node: default_node(lookup("TMUX").as_deref()),
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_ttl: Duration::from_secs(60),
            command_timeout: Duration::from_secs(300),
            max_queue_depth: 100,
            respawn_limit: 5,
            respawn_window: Duration::from_secs(300),
            log_level: LogLevel::Info,
            log_format: LogFormat::Text,
            agent_cmd: split_agent_cmd(DEFAULT_AGENT_CMD)?,
            max_payload_bytes: 1024 * 1024,
            result_ttl: Duration::from_secs(24 * 3600),
            events_maxlen: 10_000,
            max_attempts: 3,
            replica_acks: 0,
            replica_ack_timeout: Duration::from_secs(1),
        };
        if let Some(v) = get("PANEBUS_REDIS_URL") {
            config.redis_url = check_redis_url("PANEBUS_REDIS_URL", &v)?;
        }
        config.redis_tls = TlsFiles {
            ca_cert: get("PANEBUS_REDIS_CA_CERT").map(Into::into),
            client_cert: get("PANEBUS_REDIS_CLIENT_CERT").map(Into::into),
            client_key: get("PANEBUS_REDIS_CLIENT_KEY").map(Into::into),
        };
        config.sentinel_password = get("PANEBUS_REDIS_SENTINEL_PASSWORD").map(Secret);
        if let Some(v) = get("PANEBUS_WORKER_REDIS_URL") {
            config.worker_redis_url = Some(check_redis_url("PANEBUS_WORKER_REDIS_URL", &v)?);
        }
        if let Some(v) = get("PANEBUS_NAMESPACE") {
            check_name("PANEBUS_NAMESPACE", &v, &[])?;
            config.namespace = v;
        }
        if let Some(v) = get("PANEBUS_NODE") {
            check_name("PANEBUS_NODE", &v, &['/'])?;
            config.node = v;
        }
        if let Some(v) = get("PANEBUS_HEARTBEAT_INTERVAL") {
            config.heartbeat_interval = parse_positive_duration("PANEBUS_HEARTBEAT_INTERVAL", &v)?;
        }
        if let Some(v) = get("PANEBUS_HEARTBEAT_TTL") {
            config.heartbeat_ttl = parse_positive_duration("PANEBUS_HEARTBEAT_TTL", &v)?;
        }
        if let Some(v) = get("PANEBUS_COMMAND_TIMEOUT") {
            config.command_timeout = parse_positive_duration("PANEBUS_COMMAND_TIMEOUT", &v)?;
        }
        if let Some(v) = get("PANEBUS_MAX_QUEUE_DEPTH") {
            config.max_queue_depth = parse_count("PANEBUS_MAX_QUEUE_DEPTH", &v)?;
        }
        if let Some(v) = get("PANEBUS_RESPAWN_LIMIT") {
            config.respawn_limit = parse_count("PANEBUS_RESPAWN_LIMIT", &v)?;
        }
        if let Some(v) = get("PANEBUS_RESPAWN_WINDOW") {
            config.respawn_window = parse_positive_duration("PANEBUS_RESPAWN_WINDOW", &v)?;
        }
        if let Some(v) = get("PANEBUS_LOG_LEVEL") {
            config.log_level = LogLevel::parse("PANEBUS_LOG_LEVEL", &v)?;
        }
        if let Some(v) = get("PANEBUS_LOG_FORMAT") {
            config.log_format = LogFormat::parse("PANEBUS_LOG_FORMAT", &v)?;
        }
        if let Some(v) = get("PANEBUS_AGENT_CMD") {
            config.agent_cmd = split_agent_cmd(&v)?;
        }
        if let Some(v) = get("PANEBUS_MAX_PAYLOAD_BYTES") {
            config.max_payload_bytes = parse_count("PANEBUS_MAX_PAYLOAD_BYTES", &v)?;
        }
        if let Some(v) = get("PANEBUS_RESULT_TTL") {
            config.result_ttl = parse_positive_duration("PANEBUS_RESULT_TTL", &v)?;
        }
        if let Some(v) = get("PANEBUS_EVENTS_MAXLEN") {
            config.events_maxlen = parse_count("PANEBUS_EVENTS_MAXLEN", &v)?;
        }
        if let Some(v) = get("PANEBUS_MAX_ATTEMPTS") {
            config.max_attempts = parse_count("PANEBUS_MAX_ATTEMPTS", &v)?;
        }
        if let Some(v) = get("PANEBUS_REPLICA_ACKS") {
            config.replica_acks = v.trim().parse().map_err(|_| {
                invalid(
                    "PANEBUS_REPLICA_ACKS",
                    &v,
                    "expected a whole number of replicas (0 to not wait)",
                )
            })?;
        }
        if let Some(v) = get("PANEBUS_REPLICA_ACK_TIMEOUT") {
            config.replica_ack_timeout =
                parse_positive_duration("PANEBUS_REPLICA_ACK_TIMEOUT", &v)?;
            if config.replica_ack_timeout > MAX_REPLICA_ACK_TIMEOUT
                || config.replica_ack_timeout < Duration::from_millis(1)
            {
                return Err(invalid(
                    "PANEBUS_REPLICA_ACK_TIMEOUT",
                    &v,
                    "expected 1ms to 4s (the wait must end within the connection's 5 s response timeout)",
                ));
            }
        }
        config.check_heartbeat()?;
        config.check_replica_acks()?;
        config.check_tls()?;
        Ok(config)
    }

    /// Replaces settings by the flags given on the command line, re-checking them.
    pub fn apply(&mut self, overrides: ConfigOverrides) -> Result<(), ConfigError> {
        if let Some(v) = overrides.redis_url {
            self.redis_url = check_redis_url("PANEBUS_REDIS_URL", &v)?;
        }
        if let Some(v) = overrides.namespace {
            check_name("PANEBUS_NAMESPACE", &v, &[])?;
            self.namespace = v;
        }
        if let Some(v) = overrides.node {
            check_name("PANEBUS_NODE", &v, &['/'])?;
            self.node = v;
        }
        if let Some(v) = overrides.log_level {
            self.log_level = LogLevel::parse("PANEBUS_LOG_LEVEL", &v)?;
        }
        if let Some(v) = overrides.log_format {
            self.log_format = LogFormat::parse("PANEBUS_LOG_FORMAT", &v)?;
        }
        if let Some(v) = overrides.heartbeat_interval {
            self.heartbeat_interval = parse_positive_duration("PANEBUS_HEARTBEAT_INTERVAL", &v)?;
        }
        if let Some(v) = overrides.heartbeat_ttl {
            self.heartbeat_ttl = parse_positive_duration("PANEBUS_HEARTBEAT_TTL", &v)?;
        }
        if let Some(v) = overrides.command_timeout {
            self.command_timeout = parse_positive_duration("PANEBUS_COMMAND_TIMEOUT", &v)?;
        }
        if let Some(v) = overrides.max_queue_depth {
            self.max_queue_depth = parse_count("PANEBUS_MAX_QUEUE_DEPTH", &v)?;
        }
        self.check_heartbeat()?;
        self.check_tls()
    }

    /// `WAIT` confirms the writes of one connection to one server: a Cluster spreads a
    /// bus over several primaries, so the setting is refused there.
    fn check_replica_acks(&self) -> Result<(), ConfigError> {
        let cluster = Deployment::parse(&self.redis_url)
            .is_ok_and(|d| matches!(d, Deployment::Cluster { .. }));
        if self.replica_acks > 0 && cluster {
            return Err(invalid(
                "PANEBUS_REPLICA_ACKS",
                &self.replica_acks.to_string(),
                "not supported on a Redis Cluster (redis+cluster://): unset it there",
            ));
        }
        Ok(())
    }

    /// TLS files only make sense with a TLS URL, and a client certificate needs its key.
    fn check_tls(&self) -> Result<(), ConfigError> {
        let tls = &self.redis_tls;
        match (&tls.client_cert, &tls.client_key) {
            (Some(path), None) => {
                return Err(invalid(
                    "PANEBUS_REDIS_CLIENT_CERT",
                    &path.display().to_string(),
                    "set PANEBUS_REDIS_CLIENT_KEY to the certificate's private key too",
                ))
            }
            (None, Some(path)) => {
                return Err(invalid(
                    "PANEBUS_REDIS_CLIENT_KEY",
                    &path.display().to_string(),
                    "set PANEBUS_REDIS_CLIENT_CERT to the matching certificate too",
                ))
            }
            _ => {}
        }
        let tls_url = Deployment::parse(&self.redis_url).is_ok_and(|d| d.tls());
        if tls.is_set() && !tls_url {
            return Err(invalid(
                "PANEBUS_REDIS_URL",
                &redact_url(&self.redis_url),
                "PANEBUS_REDIS_CA_CERT/PANEBUS_REDIS_CLIENT_CERT are set, so use a TLS URL: \
                 rediss://, rediss+cluster:// or rediss+sentinel://",
            ));
        }
        Ok(())
    }

    /// A heartbeat that expires before the next one is sent would mark live workers dead.
    fn check_heartbeat(&self) -> Result<(), ConfigError> {
        if self.heartbeat_ttl <= self.heartbeat_interval {
            return Err(invalid(
                "PANEBUS_HEARTBEAT_TTL",
                &humantime::format_duration(self.heartbeat_ttl).to_string(),
                format!(
                    "must be longer than PANEBUS_HEARTBEAT_INTERVAL ({}), or live workers look dead",
                    humantime::format_duration(self.heartbeat_interval)
                ),
            ));
        }
        Ok(())
    }

    /// Turns a CLI worker target into a worker id: `%3` means pane `%3` on this node
    /// (`<node>/%3`); anything already containing `/` is taken as a full worker id.
    pub fn resolve_worker(&self, target: &str) -> String {
        if target.contains('/') {
            target.to_string()
        } else {
            format!("{}/{}", self.node, target)
        }
    }

    /// The worker id of pane `pane` on this node.
    pub fn worker_id(&self, pane: &str) -> String {
        format!("{}/{}", self.node, pane)
    }
}

fn check_redis_url(var: &'static str, value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    Deployment::parse(v).map_err(|reason| invalid(var, &redact_url(v), reason))?;
    Ok(v.to_string())
}

/// Splits `PANEBUS_AGENT_CMD` into argv words. Quotes group words (`"my agent" -p`) but
/// nothing is expanded: no variables, globs or command substitution.
fn split_agent_cmd(value: &str) -> Result<Vec<String>, ConfigError> {
    match crate::config::split_words(value) {
        Some(words) if !words.is_empty() => Ok(words),
        Some(_) => Err(invalid("PANEBUS_AGENT_CMD", value, "must name a program")),
        None => Err(invalid(
            "PANEBUS_AGENT_CMD",
            value,
            "unbalanced quote; quote words with '...' or \"...\"",
        )),
    }
}

/// Splits a command line into words the way a POSIX shell tokenizes it, without any
/// expansion: single quotes keep everything literally, double quotes allow `\"` and `\\`,
/// a backslash outside quotes escapes the next character. Returns `None` on an unbalanced
/// quote or a trailing backslash. Used for `PANEBUS_AGENT_CMD` and `--handler TYPE=PROGRAM`
/// so that a program with arguments can be given as one value and nothing ever runs through
/// a shell.
pub fn split_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        other => current.push(other),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            escaped @ ('"' | '\\' | '$' | '`') => current.push(escaped),
                            '\n' => {}
                            other => {
                                current.push('\\');
                                current.push(other);
                            }
                        },
                        other => current.push(other),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next()? {
                    '\n' => {}
                    other => current.push(other),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            other => {
                in_word = true;
                current.push(other);
            }
        }
    }
    if in_word {
        words.push(current);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_match_the_seed() {
        let c = from(&[("PANEBUS_NODE", "devbox")]).unwrap();
        assert_eq!(c.redis_url, "redis://localhost:6379/0");
        assert_eq!(c.namespace, "panebus");
        assert_eq!(c.heartbeat_interval, Duration::from_secs(10));
        assert_eq!(c.heartbeat_ttl, Duration::from_secs(60));
        assert_eq!(c.command_timeout, Duration::from_secs(300));
        assert_eq!(c.max_queue_depth, 100);
        assert_eq!(c.respawn_limit, 5);
        assert_eq!(c.respawn_window, Duration::from_secs(300));
        assert_eq!(c.log_level, LogLevel::Info);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(
            c.agent_cmd,
            ["claude", "--dangerously-skip-permissions", "-p"]
        );
        assert_eq!(c.max_payload_bytes, 1024 * 1024);
        assert_eq!(c.max_attempts, 3);
        assert_eq!(c.replica_acks, 0);
        assert_eq!(c.replica_ack_timeout, Duration::from_secs(1));
    }

    #[test]
    fn replica_acks_take_a_count_and_a_bounded_timeout_and_no_cluster() {
        let c = from(&[
            ("PANEBUS_REPLICA_ACKS", "2"),
            ("PANEBUS_REPLICA_ACK_TIMEOUT", "250ms"),
        ])
        .unwrap();
        assert_eq!(c.replica_acks, 2);
        assert_eq!(c.replica_ack_timeout, Duration::from_millis(250));
        assert_eq!(
            from(&[("PANEBUS_REPLICA_ACKS", "0")]).unwrap().replica_acks,
            0
        );
        for (var, value) in [
            ("PANEBUS_REPLICA_ACKS", "-1"),
            ("PANEBUS_REPLICA_ACKS", "one"),
            ("PANEBUS_REPLICA_ACK_TIMEOUT", "5s"),
            ("PANEBUS_REPLICA_ACK_TIMEOUT", "0"),
        ] {
            let err = from(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(var) && err.contains(value), "{err}");
        }
        let err = from(&[
            ("PANEBUS_REDIS_URL", "redis+cluster://127.0.0.1:7000"),
            ("PANEBUS_REPLICA_ACKS", "1"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("not supported on a Redis Cluster"), "{err}");
        from(&[
            ("PANEBUS_REDIS_URL", "redis+sentinel://127.0.0.1:26379/svc"),
            ("PANEBUS_REPLICA_ACKS", "1"),
        ])
        .unwrap();
    }

    #[test]
    fn durations_accept_seconds_and_humantime() {
        let c = from(&[
            ("PANEBUS_HEARTBEAT_INTERVAL", "1500ms"),
            ("PANEBUS_HEARTBEAT_TTL", "2m"),
            ("PANEBUS_COMMAND_TIMEOUT", "0.5"),
        ])
        .unwrap();
        assert_eq!(c.heartbeat_interval, Duration::from_millis(1500));
        assert_eq!(c.heartbeat_ttl, Duration::from_secs(120));
        assert_eq!(c.command_timeout, Duration::from_millis(500));
    }

    #[test]
    fn bad_values_name_the_variable_and_value() {
        let err = from(&[("PANEBUS_HEARTBEAT_TTL", "soon")]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("PANEBUS_HEARTBEAT_TTL") && text.contains("soon"),
            "{text}"
        );
        let err = from(&[("PANEBUS_MAX_QUEUE_DEPTH", "0")]).unwrap_err();
        assert!(err.to_string().contains("PANEBUS_MAX_QUEUE_DEPTH"));
        let err = from(&[("PANEBUS_LOG_FORMAT", "yaml")]).unwrap_err();
        assert!(err.to_string().contains("text"));
        let err = from(&[("PANEBUS_NAMESPACE", "a b")]).unwrap_err();
        assert!(err.to_string().contains("PANEBUS_NAMESPACE"));
        let err = from(&[("PANEBUS_NODE", "a/b")]).unwrap_err();
        assert!(err.to_string().contains("PANEBUS_NODE"));
        let err = from(&[("PANEBUS_REDIS_URL", "localhost:6379")]).unwrap_err();
        assert!(err.to_string().contains("redis://"));
        let err = from(&[("PANEBUS_AGENT_CMD", "claude 'oops")]).unwrap_err();
        assert!(err.to_string().contains("unbalanced"));
    }

    #[test]
    fn heartbeat_ttl_must_exceed_interval() {
        let err = from(&[
            ("PANEBUS_HEARTBEAT_INTERVAL", "60"),
            ("PANEBUS_HEARTBEAT_TTL", "30"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("PANEBUS_HEARTBEAT_INTERVAL"));
    }

    #[test]
    fn overrides_win_and_are_checked() {
        let mut c = from(&[("PANEBUS_NAMESPACE", "one"), ("PANEBUS_NODE", "n1")]).unwrap();
        c.apply(ConfigOverrides {
            namespace: Some("two".into()),
            redis_url: Some("redis://127.0.0.1:7000/1".into()),
            log_level: Some("debug".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.namespace, "two");
        assert_eq!(c.node, "n1");
        assert_eq!(c.redis_url, "redis://127.0.0.1:7000/1");
        assert_eq!(c.log_level, LogLevel::Debug);
        let err = c
            .apply(ConfigOverrides {
                node: Some("x}y".into()),
                ..Default::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("PANEBUS_NODE"));
    }

    #[test]
    fn worker_targets_resolve_to_this_node() {
        let c = from(&[("PANEBUS_NODE", "devbox")]).unwrap();
        assert_eq!(c.resolve_worker("%3"), "devbox/%3");
        assert_eq!(c.resolve_worker("other/%3"), "other/%3");
    }

    #[test]
    fn node_includes_a_non_default_tmux_socket() {
        let c = from(&[("TMUX", "/tmp/tmux-0/work,123,0")]).unwrap();
        assert!(c.node.ends_with("-work"), "{}", c.node);
        let c = from(&[("TMUX", "/tmp/tmux-0/default,123,0")]).unwrap();
        assert_eq!(c.node, short_hostname());
    }

    #[test]
    fn words_split_without_expansion() {
        assert_eq!(
            split_words("a 'b c' \"d\\\"e\" f\\ g $(x)").unwrap(),
            ["a", "b c", "d\"e", "f g", "$(x)"]
        );
        assert_eq!(split_words("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split_words("''").unwrap(), [""]);
        assert!(split_words("'open").is_none());
        assert!(split_words("trailing\\").is_none());
    }
}
