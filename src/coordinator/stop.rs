//! The stop token of a coordinator or watchdog: cancelled by the first SIGINT, SIGTERM or
//! SIGHUP, so the event loop can remove its hooks, release its lease and say goodbye.

use futures::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::Signals;
use tokio_util::sync::CancellationToken;

/// A token cancelled on the first stop signal (must be called inside a tokio runtime).
pub fn on_signals() -> std::io::Result<CancellationToken> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        if let Some(signal) = signals.next().await {
            tracing::info!(signal, "stop signal: shutting down");
            cancel.cancel();
        }
    });
    Ok(token)
}
