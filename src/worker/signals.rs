//! Stop requests from signals: the first SIGTERM, SIGINT or SIGHUP asks the worker to stop
//! (finish or requeue the command in flight, deregister); a second one forces it (requeue
//! the command in flight at once).

use futures::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::Signals;
use tokio_util::sync::CancellationToken;

/// Cancellation tokens a worker watches.
#[derive(Debug, Clone, Default)]
pub struct StopTokens {
    /// Stop taking commands; finish the one in flight (up to 10 s; with Redis unreachable,
    /// recording its outcome is retried for one heartbeat TTL, then left for redelivery).
    pub stop: CancellationToken,
    /// Stop now; requeue the command in flight.
    pub force: CancellationToken,
}

impl StopTokens {
    pub fn new() -> StopTokens {
        StopTokens::default()
    }

    /// Installs the signal handlers; returns the task that turns signals into cancellations.
    pub fn listen_to_signals(&self) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        let tokens = self.clone();
        Ok(tokio::spawn(async move {
            while let Some(signal) = signals.next().await {
                if tokens.stop.is_cancelled() {
                    tracing::warn!(
                        signal,
                        "second stop signal: requeueing the command in flight and exiting"
                    );
                    tokens.force.cancel();
                    break;
                }
                tracing::info!(
                    signal,
                    "stop signal: finishing the command in flight, then exiting"
                );
                tokens.stop.cancel();
            }
        }))
    }
}
