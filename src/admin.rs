//! The queries and actions behind the CLI's commands, composed from [`crate::bus`]
//! operations.
//!
//! The CLI never formats a Redis key or sends a raw command: it asks [`Admin`] for views
//! (a worker's record with its liveness and queue lengths, a bus-wide status report, recent
//! events) and actions (dispatch, DLQ retry and purge), and `Admin` asks the bus. The view
//! types are `Serialize` because they are the `--json` output of `panes` and `status`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::bus::dlq::{Retried, RetryReport};
use crate::bus::events::EventRecord;
use crate::bus::{redact_url, BlockingConnection, Bus, BusError};
use crate::config::Config;
use crate::coordinator::history::{self, Diagnostic};
use crate::schema::{now_ms, Command, CommandResult, DlqEntry, Event, EventKind, WorkerInfo};

/// How long the CLI waits for Redis to accept and answer before it reports it unreachable.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(3);

/// How far back `status` counts events as recent.
pub const RECENT_EVENTS_WINDOW: Duration = Duration::from_secs(3600);

/// How many of the newest events `status` looks at to count the recent ones.
pub const RECENT_EVENTS_SCAN: usize = 1000;

/// How long one blocking read of `events --follow` waits before it asks again.
const FOLLOW_BLOCK: Duration = Duration::from_secs(5);

/// A handle for the CLI's queries on one bus.
pub struct Admin {
    bus: Bus,
    config: Config,
    /// Opened on the first wait and reused: result waits block, so they never share the
    /// bus's multiplexed connection.
    blocking: Mutex<Option<BlockingConnection>>,
}

/// One worker as `panes` shows it: the registry record plus what the bus knows about it.
#[derive(Debug, Clone, Serialize)]
pub struct PaneView {
    /// The registry record (id, role, node, pane, pid, generation, version, started_ms,
    /// current_command, state, argv, cwd, session).
    #[serde(flatten)]
    pub info: WorkerInfo,
    /// Whether its heartbeat key exists.
    pub alive: bool,
    /// Time since its last heartbeat, when alive (assumes the worker's heartbeat TTL is
    /// this process's `PANEBUS_HEARTBEAT_TTL`).
    pub heartbeat_age_ms: Option<u64>,
    /// Time until the heartbeat expires, when alive (exact, read from Redis).
    pub heartbeat_ttl_ms: Option<u64>,
    /// Commands waiting in its queue.
    pub queue_depth: u64,
    /// Commands taken but not yet acknowledged.
    pub processing: u64,
    /// The coordinator's diagnostic when the pane is quarantined.
    pub quarantine: Option<Quarantine>,
}

/// Why the coordinator quarantined a pane (`panes` / `status` `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct Quarantine {
    /// When it was quarantined (ms since the epoch).
    pub since_ms: u64,
    /// The failure and the count, e.g. `exited with status 1; 5 respawns in 5m`.
    pub reason: String,
    /// How the last incarnation ended (`status 3`, `signal 9`, `heartbeat expired`).
    pub exit: String,
    /// The last lines of the pane, newest last.
    pub last_lines: String,
    /// The command it was running, if any.
    pub command_in_flight: String,
}

impl From<Diagnostic> for Quarantine {
    fn from(d: Diagnostic) -> Quarantine {
        Quarantine {
            since_ms: d.since_ms,
            reason: d.reason,
            exit: d.exit,
            last_lines: d.last_lines,
            command_in_flight: d.command_in_flight,
        }
    }
}

impl PaneView {
    /// The worker id.
    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// What `panes` prints in STATE: the worker's own state unless it is quarantined or
    /// dead.
    pub fn state(&self) -> &str {
        if self.quarantine.is_some() {
            "quarantined"
        } else if !self.alive {
            "dead"
        } else {
            self.info.state.as_str()
        }
    }

    /// Whether fan-out commands (`dispatch-role`, `broadcast`) should reach it.
    pub fn accepts_work(&self) -> bool {
        self.alive && self.quarantine.is_none()
    }
}

/// Workers counted by condition.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerCounts {
    pub total: u64,
    pub alive: u64,
    pub dead: u64,
    pub quarantined: u64,
}

impl WorkerCounts {
    fn add(&mut self, pane: &PaneView) {
        self.total += 1;
        if pane.quarantine.is_some() {
            self.quarantined += 1;
        } else if pane.alive {
            self.alive += 1;
        } else {
            self.dead += 1;
        }
    }
}

/// Workers of one role counted by condition, with their queues.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoleCounts {
    pub role: String,
    #[serde(flatten)]
    pub counts: WorkerCounts,
    /// Commands waiting in the queues of these workers.
    pub queued: u64,
    /// Commands these workers have taken and not yet acknowledged.
    pub in_flight: u64,
}

impl RoleCounts {
    fn add(&mut self, pane: &PaneView) {
        self.counts.add(pane);
        self.queued += pane.queue_depth;
        self.in_flight += pane.processing;
    }
}

/// Event stream figures.
#[derive(Debug, Clone, Serialize)]
pub struct EventCounts {
    /// Events written within the last `window_ms`.
    pub recent: u64,
    pub window_ms: u64,
    /// True when only the newest [`RECENT_EVENTS_SCAN`] events were counted and all were
    /// recent: there may be more.
    pub at_least: bool,
}

/// A quarantined pane and why.
#[derive(Debug, Clone, Serialize)]
pub struct QuarantinedPane {
    pub worker: String,
    pub role: String,
    pub diagnostic: Quarantine,
}

/// `panebus status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub namespace: String,
    pub redis_url: String,
    pub node: String,
    pub workers: WorkerCounts,
    pub roles: Vec<RoleCounts>,
    /// Commands waiting in all queues.
    pub queued: u64,
    /// Commands taken and not yet acknowledged, in all processing lists.
    pub in_flight: u64,
    pub dlq_size: u64,
    pub events: EventCounts,
    pub quarantined: Vec<QuarantinedPane>,
}

/// An event with its stream entry id (`--json` output of `events`).
#[derive(Debug, Clone, Serialize)]
pub struct StreamEvent {
    pub id: String,
    #[serde(flatten)]
    pub event: Event,
}

/// Which events `events` shows.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Any of these types; all types when empty.
    pub kinds: Vec<EventKind>,
    /// Only events about this worker id.
    pub worker: Option<String>,
}

impl EventFilter {
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty() && self.worker.is_none()
    }

    pub fn matches(&self, event: &Event) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&event.kind))
            && self.worker.as_deref().map_or(true, |w| event.worker == w)
    }
}

impl Admin {
    /// Connects to the bus of `config`; fails within a few seconds with
    /// [`BusError::Unreachable`] when Redis cannot be reached.
    pub async fn connect(config: &Config) -> Result<Admin, BusError> {
        // The bus's own connect retries, which against a server that accepts but never
        // answers adds up to several seconds: the CLI gives up at one deadline instead.
        let bus = tokio::time::timeout(CONNECT_DEADLINE, Bus::connect(config))
            .await
            .map_err(|_| BusError::Unreachable {
                url: redact_url(&config.redis_url),
                reason: format!(
                    "no answer within {}",
                    humantime::format_duration(CONNECT_DEADLINE)
                ),
            })??;
        Ok(Admin {
            bus,
            config: config.clone(),
            blocking: Mutex::new(None),
        })
    }

    /// A new command from this CLI (`origin` = `cli@<node>`).
    pub fn new_command(&self, kind: &str, payload: Map<String, Value>) -> Command {
        Command::new(
            kind,
            Value::Object(payload),
            format!("cli@{}", self.config.node),
        )
    }

    /// Queues `command` for `worker`. Unless `force`, the worker must be registered.
    pub async fn enqueue(
        &self,
        worker: &str,
        command: &Command,
        force: bool,
    ) -> Result<(), BusError> {
        let depth = self.bus.enqueue(worker, command, force).await?;
        tracing::debug!(worker, command_id = %command.id, depth, "command queued");
        Ok(())
    }

    /// Every registered worker with role `role` (all roles when `None`), sorted by id.
    pub async fn panes(&self, role: Option<&str>) -> Result<Vec<PaneView>, BusError> {
        let statuses = self.bus.list_workers().await?;
        let ids: Vec<String> = statuses.iter().map(|s| s.id.clone()).collect();
        let mut quarantines = self.quarantines(&ids).await?;
        let mut panes = Vec::with_capacity(statuses.len());
        for status in statuses {
            let Some(info) = status.info else {
                // Listed in the worker set, record gone: it deregistered between the reads.
                tracing::debug!(worker = %status.id, "worker without a registry record skipped");
                continue;
            };
            if role.is_some_and(|r| r != info.role) {
                continue;
            }
            let heartbeat_age_ms = status.heartbeat_ttl.map(|left| self.heartbeat_age_ms(left));
            panes.push(PaneView {
                quarantine: quarantines.remove(&status.id),
                info,
                alive: status.alive,
                heartbeat_age_ms,
                heartbeat_ttl_ms: status.heartbeat_ttl.map(|left| left.as_millis() as u64),
                queue_depth: status.queue_depth as u64,
                processing: status.processing as u64,
            });
        }
        Ok(panes)
    }

    /// The view of one worker, if it is registered.
    pub async fn pane(&self, worker: &str) -> Result<Option<PaneView>, BusError> {
        let Some(info) = self.bus.worker_info(worker).await? else {
            return Ok(None);
        };
        // Independent reads: sent together over the multiplexed connection.
        let (heartbeat_ttl, queue_depth, processing, diagnostic) = futures::try_join!(
            self.bus.heartbeat_ttl(worker),
            self.bus.queue_depth(worker),
            self.bus.processing_len(worker),
            history::diagnostic(&self.bus, worker),
        )?;
        Ok(Some(PaneView {
            info,
            alive: heartbeat_ttl.is_some(),
            heartbeat_age_ms: heartbeat_ttl.map(|left| self.heartbeat_age_ms(left)),
            heartbeat_ttl_ms: heartbeat_ttl.map(|left| left.as_millis() as u64),
            queue_depth: queue_depth as u64,
            processing: processing as u64,
            quarantine: diagnostic.map(Quarantine::from),
        }))
    }

    /// Time since the last heartbeat, from the time its key has left: heartbeats are set
    /// with `PANEBUS_HEARTBEAT_TTL`, so this assumes the worker uses the same TTL.
    fn heartbeat_age_ms(&self, left: Duration) -> u64 {
        self.config.heartbeat_ttl.saturating_sub(left).as_millis() as u64
    }

    /// The quarantine diagnostics of `workers`, as the coordinator recorded them (the
    /// reads go out together on the multiplexed connection).
    async fn quarantines(
        &self,
        workers: &[String],
    ) -> Result<HashMap<String, Quarantine>, BusError> {
        let reads = workers
            .iter()
            .map(|worker| history::diagnostic(&self.bus, worker));
        let diagnostics = futures::future::try_join_all(reads).await?;
        Ok(workers
            .iter()
            .cloned()
            .zip(diagnostics)
            .filter_map(|(worker, diagnostic)| Some((worker, Quarantine::from(diagnostic?))))
            .collect())
    }

    /// The stored result of `command_id`.
    pub async fn result(&self, command_id: &str) -> Result<Option<CommandResult>, BusError> {
        self.bus.result(command_id).await
    }

    /// Waits up to `timeout` for the result of `command_id`; `None` when none came.
    pub async fn wait_result(
        &self,
        command_id: &str,
        timeout: Duration,
    ) -> Result<Option<CommandResult>, BusError> {
        let mut slot = self.blocking.lock().await;
        let blocking = match slot.as_mut() {
            Some(blocking) => blocking,
            None => slot.insert(self.bus.blocking_connection().await?),
        };
        match self.bus.wait_result(blocking, command_id, timeout).await {
            Ok(result) => Ok(Some(result)),
            Err(BusError::Timeout { .. }) => Ok(None),
            Err(err) => {
                // The connection may be broken: open a new one for the next wait.
                *slot = None;
                Err(err)
            }
        }
    }

    /// The bus at a glance.
    pub async fn status(&self) -> Result<StatusReport, BusError> {
        let panes = self.panes(None).await?;
        let mut workers = WorkerCounts::default();
        let mut roles: BTreeMap<String, RoleCounts> = BTreeMap::new();
        let mut quarantined = Vec::new();
        for pane in &panes {
            workers.add(pane);
            let role = roles
                .entry(pane.info.role.clone())
                .or_insert_with(|| RoleCounts {
                    role: pane.info.role.clone(),
                    ..RoleCounts::default()
                });
            role.add(pane);
            if let Some(diagnostic) = &pane.quarantine {
                quarantined.push(QuarantinedPane {
                    worker: pane.info.id.clone(),
                    role: pane.info.role.clone(),
                    diagnostic: diagnostic.clone(),
                });
            }
        }
        let window_ms = RECENT_EVENTS_WINDOW.as_millis() as u64;
        let since = now_ms().saturating_sub(window_ms);
        let scanned = self.bus.recent_events(RECENT_EVENTS_SCAN).await?;
        let recent = scanned.iter().filter(|r| r.event.ts_ms >= since).count() as u64;
        Ok(StatusReport {
            namespace: self.config.namespace.clone(),
            redis_url: self.bus.url().to_string(),
            node: self.config.node.clone(),
            workers,
            roles: roles.into_values().collect(),
            queued: panes.iter().map(|p| p.queue_depth).sum(),
            in_flight: panes.iter().map(|p| p.processing).sum(),
            dlq_size: self.bus.dlq_len().await? as u64,
            events: EventCounts {
                recent,
                window_ms,
                at_least: recent == RECENT_EVENTS_SCAN as u64,
            },
            quarantined,
        })
    }

    /// The newest `count` events matching `filter`, oldest first, and the stream position
    /// to follow from (so that `--follow` neither misses nor repeats an event).
    pub async fn recent_events(
        &self,
        count: usize,
        filter: &EventFilter,
    ) -> Result<(Vec<StreamEvent>, String), BusError> {
        // A filter may match few events: scan the whole (capped) stream for it.
        let scan = if filter.is_empty() {
            count
        } else {
            self.config.events_maxlen.max(count)
        };
        let records = self.bus.recent_events(scan).await?;
        let cursor = match records.last() {
            Some(record) => record.id.clone(),
            // `--count 0` or an empty stream: follow from whatever is newest now.
            None => self.bus.last_event_id().await?,
        };
        let matching: Vec<StreamEvent> = records
            .into_iter()
            .filter(|r| filter.matches(&r.event))
            .map(StreamEvent::from)
            .collect();
        let skip = matching.len().saturating_sub(count);
        Ok((matching.into_iter().skip(skip).collect(), cursor))
    }

    /// A reader of the events written after stream position `cursor`.
    pub async fn follow_events(&self, cursor: String) -> Result<EventFollower, BusError> {
        Ok(EventFollower {
            bus: self.bus.clone(),
            blocking: self.bus.blocking_connection().await?,
            cursor,
        })
    }

    pub async fn dlq_len(&self) -> Result<u64, BusError> {
        Ok(self.bus.dlq_len().await? as u64)
    }

    pub async fn dlq_list(&self, limit: usize) -> Result<Vec<DlqEntry>, BusError> {
        self.bus.dlq_list(limit).await
    }

    pub async fn dlq_show(&self, id: &str) -> Result<DlqEntry, BusError> {
        self.bus.dlq_show(id).await
    }

    pub async fn dlq_retry(&self, id: &str) -> Result<Retried, BusError> {
        self.bus.dlq_retry(id, None).await
    }

    pub async fn dlq_retry_all(&self) -> Result<RetryReport, BusError> {
        self.bus.dlq_retry_all().await
    }

    pub async fn dlq_purge(&self) -> Result<u64, BusError> {
        Ok(self.bus.dlq_purge().await? as u64)
    }
}

impl From<EventRecord> for StreamEvent {
    fn from(record: EventRecord) -> StreamEvent {
        StreamEvent {
            id: record.id,
            event: record.event,
        }
    }
}

/// Reads new events as they are written (`events --follow`).
pub struct EventFollower {
    bus: Bus,
    blocking: BlockingConnection,
    cursor: String,
}

impl EventFollower {
    /// The next events after the last ones returned; waits up to a few seconds and may
    /// return none.
    pub async fn next(&mut self) -> Result<Vec<StreamEvent>, BusError> {
        let records = self
            .bus
            .events_after(&mut self.blocking, &self.cursor, FOLLOW_BLOCK, 100)
            .await?;
        if let Some(last) = records.last() {
            self.cursor = last.id.clone();
        }
        Ok(records.into_iter().map(StreamEvent::from).collect())
    }
}
