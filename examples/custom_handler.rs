//! An embedder's worker with its own command type, `reverse`.
//!
//! Run it in a tmux pane (or anywhere; outside tmux it gets a `standalone-*` id):
//!
//! ```sh
//! cargo run --example custom_handler
//! # from another pane, with the worker in pane %3:
//! panebus dispatch %3 reverse --payload '{"text": "hello"}' --wait
//! ```
//!
//! It also serves the built-ins `ping` and `shutdown`. Stop it with Ctrl-C or a
//! `shutdown` command.

use std::sync::Arc;

use panebus::config::Config;
use panebus::schema::Command;
use panebus::worker::{Handler, HandlerContext, HandlerError, HandlerFuture, Worker};
use serde_json::json;

/// Reverses `payload.text`, character by character.
struct Reverse;

impl Handler for Reverse {
    fn handle<'a>(&'a self, cmd: &'a Command, ctx: &'a HandlerContext) -> HandlerFuture<'a> {
        Box::pin(async move {
            let text = cmd.payload["text"].as_str().ok_or_else(|| {
                HandlerError::new(r#"payload needs a "text" string, e.g. {"text": "hello"}"#)
            })?;
            Ok(json!({
                "reversed": text.chars().rev().collect::<String>(),
                "by": ctx.worker_id,
            }))
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    tracing_subscriber::fmt()
        .with_max_level(config.log_level.as_tracing())
        .init();
    let worker = Worker::builder(config)
        .role("reverser")
        .handler("reverse", Arc::new(Reverse));
    println!("serving `reverse` as worker {}", worker.worker_id());
    worker.run().await?;
    Ok(())
}
