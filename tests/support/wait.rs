//! Polling waits for tests: a condition is checked again and again until it holds or a
//! generous deadline passes, then the test fails naming what it waited for. Every test
//! binary waits this way, so the loop lives here once, in a blocking form (for checks
//! that run processes or blocking Redis calls) and an async one (for checks that await
//! the library).

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(50);

/// Checks `check` every 50 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// [`wait_for`] for a check that awaits: `check().await` every 50 ms until it holds.
pub async fn wait_for_async<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}
