//! The built-in `ping` handler. (`shutdown` is handled by the command loop itself, since it
//! ends the loop.)

use serde_json::json;

use super::handler::{Handler, HandlerContext, HandlerFuture};
use crate::schema::{now_ms, Command};

/// Answers `{"pong": true, "worker": <id>, "latency_ms": <now - created>}`.
pub struct Ping;

impl Handler for Ping {
    fn handle<'a>(&'a self, cmd: &'a Command, ctx: &'a HandlerContext) -> HandlerFuture<'a> {
        Box::pin(async move {
            Ok(json!({
                "pong": true,
                "worker": ctx.worker_id,
                "latency_ms": now_ms().saturating_sub(cmd.created_ms),
            }))
        })
    }
}
