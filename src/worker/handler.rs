//! Command handlers: what a worker runs for each command type.
//!
//! [`Handler`] is object-safe (its method returns a boxed future), so a worker keeps a map
//! of `Arc<dyn Handler>` by command type ([`Handlers`]) and embedders add their own types
//! without macros or an async-trait crate. For closures, [`handler_fn`] wraps
//! `|cmd, ctx| async move { ... }`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::schema::Command;

/// Why a handler failed; the message goes into the result and the DLQ entry.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{message}")]
pub struct HandlerError {
    pub message: String,
}

impl HandlerError {
    pub fn new(message: impl Into<String>) -> HandlerError {
        HandlerError {
            message: message.into(),
        }
    }
}

impl From<String> for HandlerError {
    fn from(message: String) -> Self {
        HandlerError { message }
    }
}

impl From<&str> for HandlerError {
    fn from(message: &str) -> Self {
        HandlerError::new(message)
    }
}

/// What a handler knows about where it runs.
#[derive(Debug, Clone)]
pub struct HandlerContext {
    /// Id of the worker running the command.
    pub worker_id: String,
    /// The worker's role.
    pub role: String,
    /// The time limit of this command; the worker drops the handler's future when it passes.
    pub timeout: Duration,
    /// When the time limit passes.
    pub deadline: Instant,
    /// Cancelled when the worker is asked to stop; a long handler may finish early.
    pub stopping: CancellationToken,
}

/// The future a handler returns.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, HandlerError>> + Send + 'a>>;

/// Runs commands of one type. The returned value becomes the command's `result`.
///
/// If the command times out or the worker must stop, the future is dropped: handlers
/// that start processes should make sure dropping kills them (see `external.rs`).
pub trait Handler: Send + Sync {
    fn handle<'a>(&'a self, cmd: &'a Command, ctx: &'a HandlerContext) -> HandlerFuture<'a>;
}

struct FnHandler<F>(F);

impl<F, Fut> Handler for FnHandler<F>
where
    F: Fn(Command, HandlerContext) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
{
    fn handle<'a>(&'a self, cmd: &'a Command, ctx: &'a HandlerContext) -> HandlerFuture<'a> {
        Box::pin((self.0)(cmd.clone(), ctx.clone()))
    }
}

/// A handler from a closure taking the command and context by value.
pub fn handler_fn<F, Fut>(f: F) -> Arc<dyn Handler>
where
    F: Fn(Command, HandlerContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
{
    Arc::new(FnHandler(f))
}

/// Handlers by command type.
#[derive(Clone, Default)]
pub struct Handlers {
    map: BTreeMap<String, Arc<dyn Handler>>,
}

impl Handlers {
    /// An empty registry (the worker adds its built-ins).
    pub fn new() -> Handlers {
        Handlers::default()
    }

    /// Registers `handler` for `kind`, replacing an earlier one.
    pub fn insert(&mut self, kind: impl Into<String>, handler: Arc<dyn Handler>) {
        self.map.insert(kind.into(), handler);
    }

    /// The handler of `kind`.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Handler>> {
        self.map.get(kind)
    }

    /// Whether `kind` has a handler.
    pub fn contains(&self, kind: &str) -> bool {
        self.map.contains_key(kind)
    }

    /// Registered types, sorted.
    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }
}
