//! The wire types of the bus: what is stored in Redis as JSON (commands, results, DLQ
//! entries), as stream fields (events) or as hash fields (worker registry records).
//!
//! These types are the contract with workers and dispatchers written in other languages;
//! `docs/PROTOCOL.md` describes the same fields. Commands keep fields they do not know
//! (`extra`), so a newer dispatcher can talk to an older worker without losing data.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A new command id: a ULID, sortable by creation time.
pub fn new_id() -> String {
    ulid::Ulid::new().to_string()
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

fn first_attempt() -> u32 {
    1
}

fn default_max_attempts() -> u32 {
    3
}

/// One command for one worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Unique id (ULID); results and DLQ entries refer to it.
    pub id: String,
    /// The command type, e.g. `ping`, `prompt`, `shutdown` or a custom one.
    #[serde(rename = "type")]
    pub kind: String,
    /// Arguments of the command: always a JSON object.
    #[serde(default = "empty_object")]
    pub payload: Value,
    /// When the command was created (ms since epoch).
    #[serde(default)]
    pub created_ms: u64,
    /// Limit for running it; the worker's `PANEBUS_COMMAND_TIMEOUT` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Delivery number, 1 for the first delivery; raised when a command is requeued.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// Deliveries allowed before the command goes to the DLQ.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Who sent it, e.g. `cli@devbox` or `coordinator`.
    #[serde(default)]
    pub origin: String,
    /// The workflow this command belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
    /// Whether the sender waits for a result (results are stored either way).
    #[serde(default)]
    pub reply: bool,
    /// Fields this version does not know, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Command {
    /// A new command of type `kind` with `payload` (must be an object; see
    /// [`Command::check_payload`]), attempt 1.
    pub fn new(kind: impl Into<String>, payload: Value, origin: impl Into<String>) -> Command {
        Command {
            id: new_id(),
            kind: kind.into(),
            payload,
            created_ms: now_ms(),
            timeout_ms: None,
            attempt: 1,
            max_attempts: default_max_attempts(),
            origin: origin.into(),
            workflow_id: None,
            reply: false,
            extra: Map::new(),
        }
    }

    /// Decodes one queue element, exactly as a worker does: UTF-8 JSON text of a command
    /// that passes [`Command::check`]. Anything else is poison, with the reason typed.
    /// Never panics, whatever the bytes (serde_json's nesting limit of 128 keeps deeply
    /// nested input from overflowing the stack).
    pub fn decode(bytes: &[u8]) -> Result<Command, DecodeError> {
        let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::NotUtf8 {
            valid_up_to: e.valid_up_to(),
        })?;
        let command: Command = serde_json::from_str(text).map_err(|e| DecodeError::Json {
            message: e.to_string(),
        })?;
        command
            .check()
            .map_err(|message| DecodeError::Invalid { message })?;
        Ok(command)
    }

    /// Checks the parts a dispatcher controls: a non-empty id without control characters
    /// (ids are printed by `panes`, `events` and `top`, where an escape sequence would reach
    /// the terminal), a non-empty type without whitespace or control characters and an
    /// object payload.
    pub fn check(&self) -> Result<(), String> {
        if self.id.is_empty() {
            return Err("command id is empty".into());
        }
        if self.id.chars().any(char::is_control) {
            return Err(format!(
                "command id {:?} contains control characters",
                self.id
            ));
        }
        if self.kind.is_empty() {
            return Err("command type is empty".into());
        }
        if self
            .kind
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(format!(
                "command type {:?} contains whitespace or control characters",
                self.kind
            ));
        }
        Command::check_payload(&self.payload)
    }

    /// A payload must be a JSON object (`{}` for none).
    pub fn check_payload(payload: &Value) -> Result<(), String> {
        if payload.is_object() {
            Ok(())
        } else {
            Err(format!(
                "payload must be a JSON object such as {{\"text\": \"...\"}}, got {}",
                json_kind(payload)
            ))
        }
    }

    /// Serializes to the JSON stored in queues.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a Command always serializes")
    }
}

/// Why a queue element is not a command (see [`Command::decode`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not UTF-8, so not JSON text at all.
    #[error(
        "not a valid command: not UTF-8 (the first invalid byte is at offset {valid_up_to}); \
         a command is UTF-8 JSON text"
    )]
    NotUtf8 { valid_up_to: usize },
    /// Not JSON, or JSON of the wrong shape (missing `id`/`type`, a field of the wrong type,
    /// nested deeper than 128 levels).
    #[error(
        "not a valid command ({message}); a command is a JSON object with at least \"id\" and \"type\""
    )]
    Json { message: String },
    /// A well-formed command whose fields break the protocol (see [`Command::check`]).
    #[error("not a valid command: {message}")]
    Invalid { message: String },
}

/// How a JSON value's type reads in an error message ("an object", "a string", …).
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What a worker reports after running a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResult {
    pub command_id: String,
    /// Worker id that ran it.
    pub worker: String,
    /// Whether the handler succeeded.
    pub ok: bool,
    /// The handler's output on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// What went wrong on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub started_ms: u64,
    pub finished_ms: u64,
    pub attempt: u32,
}

/// Why a command ended in the dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DlqReason {
    /// The handler returned an error.
    Failed,
    /// The handler ran past its timeout.
    Timeout,
    /// No handler is registered for the command type.
    UnknownType,
    /// The queue held something that is not a valid command.
    Poison,
    /// The command was delivered `max_attempts` times without being acknowledged.
    AttemptsExhausted,
}

impl DlqReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DlqReason::Failed => "failed",
            DlqReason::Timeout => "timeout",
            DlqReason::UnknownType => "unknown_type",
            DlqReason::Poison => "poison",
            DlqReason::AttemptsExhausted => "attempts_exhausted",
        }
    }
}

impl fmt::Display for DlqReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The command kept in a DLQ entry: parsed when it was valid, else the raw text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DlqCommand {
    Parsed(Box<Command>),
    Raw(String),
}

impl DlqCommand {
    /// Decodes a queue element, keeping it raw if it is not a valid command. A DLQ entry
    /// is JSON text, so bytes that are not UTF-8 are kept as U+FFFD.
    pub fn from_raw(raw: &[u8]) -> DlqCommand {
        match Command::decode(raw) {
            Ok(cmd) => DlqCommand::Parsed(Box::new(cmd)),
            Err(_) => DlqCommand::Raw(String::from_utf8_lossy(raw).into_owned()),
        }
    }

    /// The command id when the command could be parsed.
    pub fn id(&self) -> Option<&str> {
        match self {
            DlqCommand::Parsed(c) => Some(&c.id),
            DlqCommand::Raw(_) => None,
        }
    }
}

/// One dead-lettered command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DlqEntry {
    /// Entry id (ULID); for parsed commands distinct from the command id, since one command
    /// can be dead-lettered more than once.
    pub id: String,
    pub command: DlqCommand,
    pub error: String,
    /// Worker id whose queue held the command.
    pub worker: String,
    pub ts_ms: u64,
    pub reason: DlqReason,
}

/// Every event type written to the events stream. Types this version does not know are
/// kept as [`EventKind::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventKind {
    WorkerStarted,
    WorkerStopped,
    CommandReceived,
    CommandCompleted,
    CommandFailed,
    CommandRequeued,
    CommandDeadLettered,
    DlqRetried,
    DlqPurged,
    PaneExited,
    PaneRespawned,
    PaneQuarantined,
    PaneReleased,
    HeartbeatMissed,
    LayoutChanged,
    CoordinatorStarted,
    CoordinatorStopped,
    LeaseAcquired,
    LeaseLost,
    WorkflowStarted,
    WorkflowPhaseStarted,
    WorkflowPhaseCompleted,
    WorkflowCompleted,
    WorkflowFailed,
    Other(String),
}

const EVENT_NAMES: &[(EventKind, &str)] = &[
    (EventKind::WorkerStarted, "worker_started"),
    (EventKind::WorkerStopped, "worker_stopped"),
    (EventKind::CommandReceived, "command_received"),
    (EventKind::CommandCompleted, "command_completed"),
    (EventKind::CommandFailed, "command_failed"),
    (EventKind::CommandRequeued, "command_requeued"),
    (EventKind::CommandDeadLettered, "command_dead_lettered"),
    (EventKind::DlqRetried, "dlq_retried"),
    (EventKind::DlqPurged, "dlq_purged"),
    (EventKind::PaneExited, "pane_exited"),
    (EventKind::PaneRespawned, "pane_respawned"),
    (EventKind::PaneQuarantined, "pane_quarantined"),
    (EventKind::PaneReleased, "pane_released"),
    (EventKind::HeartbeatMissed, "heartbeat_missed"),
    (EventKind::LayoutChanged, "layout_changed"),
    (EventKind::CoordinatorStarted, "coordinator_started"),
    (EventKind::CoordinatorStopped, "coordinator_stopped"),
    (EventKind::LeaseAcquired, "lease_acquired"),
    (EventKind::LeaseLost, "lease_lost"),
    (EventKind::WorkflowStarted, "workflow_started"),
    (EventKind::WorkflowPhaseStarted, "workflow_phase_started"),
    (
        EventKind::WorkflowPhaseCompleted,
        "workflow_phase_completed",
    ),
    (EventKind::WorkflowCompleted, "workflow_completed"),
    (EventKind::WorkflowFailed, "workflow_failed"),
];

impl EventKind {
    /// Every known event type (without `Other`).
    pub fn all() -> impl Iterator<Item = &'static EventKind> {
        EVENT_NAMES.iter().map(|(k, _)| k)
    }

    /// The stream name of the type, e.g. `worker_started`.
    pub fn as_str(&self) -> &str {
        match self {
            EventKind::Other(name) => name,
            known => EVENT_NAMES
                .iter()
                .find(|(k, _)| k == known)
                .map(|(_, n)| *n)
                .expect("every known kind has a name"),
        }
    }
}

impl FromStr for EventKind {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(EVENT_NAMES
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| EventKind::Other(s.to_string())))
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(s.parse().expect("infallible"))
    }
}

/// One entry of the events stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub ts_ms: u64,
    /// Worker id the event is about (empty for bus-wide events).
    #[serde(default)]
    pub worker: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// Free-form details, a JSON object.
    #[serde(default = "empty_object")]
    pub details: Value,
}

impl Event {
    /// An event stamped with the current time.
    pub fn new(kind: EventKind, worker: impl Into<String>, details: Value) -> Event {
        Event {
            kind,
            ts_ms: now_ms(),
            worker: worker.into(),
            command_id: None,
            details,
        }
    }

    /// The same event about command `id`.
    pub fn with_command(mut self, id: impl Into<String>) -> Event {
        self.command_id = Some(id.into());
        self
    }
}

/// What a worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    Idle,
    Busy,
    Stopping,
}

impl WorkerState {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Idle => "idle",
            WorkerState::Busy => "busy",
            WorkerState::Stopping => "stopping",
        }
    }
}

impl FromStr for WorkerState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "idle" => Ok(WorkerState::Idle),
            "busy" => Ok(WorkerState::Busy),
            "stopping" => Ok(WorkerState::Stopping),
            other => Err(format!("unknown worker state {other:?}")),
        }
    }
}

/// A worker's registry record, stored as the fields of its `info` hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Worker id, `<node>/<pane>`.
    pub id: String,
    pub role: String,
    pub node: String,
    /// tmux pane id (`%3`) or `standalone-<id>`.
    pub pane: String,
    pub pid: u32,
    /// Incarnation number, raised on each start; fences older incarnations.
    pub generation: u64,
    /// PaneBus version of the worker.
    pub version: String,
    pub started_ms: u64,
    /// Id of the command being run, if any.
    pub current_command: Option<String>,
    pub state: WorkerState,
    /// The worker's command line (used to respawn it).
    pub argv: Vec<String>,
    pub cwd: String,
    /// tmux session name, when known.
    pub session: Option<String>,
}

impl WorkerInfo {
    /// The hash fields written to Redis. `argv` is a JSON array; absent options are empty.
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("id", self.id.clone()),
            ("role", self.role.clone()),
            ("node", self.node.clone()),
            ("pane", self.pane.clone()),
            ("pid", self.pid.to_string()),
            ("generation", self.generation.to_string()),
            ("version", self.version.clone()),
            ("started_ms", self.started_ms.to_string()),
            (
                "current_command",
                self.current_command.clone().unwrap_or_default(),
            ),
            ("state", self.state.as_str().to_string()),
            (
                "argv",
                serde_json::to_string(&self.argv).expect("strings serialize"),
            ),
            ("cwd", self.cwd.clone()),
            ("session", self.session.clone().unwrap_or_default()),
        ]
    }

    /// Reads a record from hash fields; `None` if required fields are missing or malformed.
    pub fn from_fields(fields: &HashMap<String, String>) -> Option<WorkerInfo> {
        let get = |k: &str| fields.get(k).cloned();
        let opt = |k: &str| get(k).filter(|v| !v.is_empty());
        Some(WorkerInfo {
            id: get("id")?,
            role: get("role")?,
            node: get("node").unwrap_or_default(),
            pane: get("pane").unwrap_or_default(),
            pid: get("pid")?.parse().ok()?,
            generation: get("generation")?.parse().ok()?,
            version: get("version").unwrap_or_default(),
            started_ms: get("started_ms").and_then(|v| v.parse().ok()).unwrap_or(0),
            current_command: opt("current_command"),
            state: get("state")
                .and_then(|s| s.parse().ok())
                .unwrap_or(WorkerState::Idle),
            argv: get("argv")
                .and_then(|a| serde_json::from_str(&a).ok())
                .unwrap_or_default(),
            cwd: get("cwd").unwrap_or_default(),
            session: opt("session"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn command_round_trips_and_keeps_unknown_fields() {
        let text = r#"{"id":"01J","type":"ping","payload":{},"created_ms":5,"attempt":2,
            "max_attempts":3,"origin":"x","reply":true,"future_field":{"a":1}}"#;
        let cmd: Command = serde_json::from_str(text).unwrap();
        assert_eq!(cmd.kind, "ping");
        assert_eq!(cmd.attempt, 2);
        assert_eq!(cmd.extra["future_field"], json!({"a": 1}));
        let back: Value = serde_json::from_str(&cmd.to_json()).unwrap();
        assert_eq!(back["future_field"], json!({"a": 1}));
        assert_eq!(back["type"], "ping");
        assert!(back.get("timeout_ms").is_none());
    }

    #[test]
    fn minimal_command_gets_defaults() {
        let cmd: Command = serde_json::from_str(r#"{"id":"a","type":"ping"}"#).unwrap();
        assert_eq!(cmd.payload, json!({}));
        assert_eq!(cmd.attempt, 1);
        assert_eq!(cmd.max_attempts, 3);
    }

    #[test]
    fn payload_must_be_an_object() {
        let mut cmd = Command::new("x", json!([1]), "t");
        assert!(cmd.check().unwrap_err().contains("an array"));
        cmd.payload = json!({});
        cmd.kind = "a b".into();
        assert!(cmd.check().is_err());
    }

    #[test]
    fn dlq_command_keeps_raw_text_of_invalid_json() {
        let raw = "{not json";
        let entry = DlqEntry {
            id: "e".into(),
            command: DlqCommand::from_raw(raw.as_bytes()),
            error: "bad".into(),
            worker: "n/%1".into(),
            ts_ms: 1,
            reason: DlqReason::Poison,
        };
        let text = serde_json::to_string(&entry).unwrap();
        let back: DlqEntry = serde_json::from_str(&text).unwrap();
        assert_eq!(back.command, DlqCommand::Raw(raw.into()));
        assert!(text.contains("\"reason\":\"poison\""));
        let parsed =
            DlqCommand::from_raw(Command::new("ping", json!({}), "t").to_json().as_bytes());
        assert!(matches!(parsed, DlqCommand::Parsed(_)));
    }

    #[test]
    fn event_kinds_have_stable_names() {
        for kind in EventKind::all() {
            assert_eq!(&kind.as_str().parse::<EventKind>().unwrap(), kind);
        }
        assert_eq!(EventKind::PaneQuarantined.as_str(), "pane_quarantined");
        assert_eq!(
            "brand_new".parse::<EventKind>().unwrap(),
            EventKind::Other("brand_new".into())
        );
    }

    #[test]
    fn worker_info_round_trips_through_hash_fields() {
        let info = WorkerInfo {
            id: "devbox/%3".into(),
            role: "reviewer".into(),
            node: "devbox".into(),
            pane: "%3".into(),
            pid: 42,
            generation: 7,
            version: "0.1.0".into(),
            started_ms: 9,
            current_command: None,
            state: WorkerState::Busy,
            argv: vec!["panebus".into(), "worker".into(), "a b".into()],
            cwd: "/tmp".into(),
            session: Some("main".into()),
        };
        let map: HashMap<String, String> = info
            .to_fields()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(WorkerInfo::from_fields(&map).unwrap(), info);
    }
}
