#!/usr/bin/env bash
# Coordinator figures (BENCHMARKS.md "## Coordinator"), release build, real tmux and
# redis-server: kill -9 → pane_exited detection and → respawned worker registered over
# PB_BENCH_ROUNDS kills (default 200), then the coordinator's CPU and RSS idle and under
# churn (one kill -9 every PB_BENCH_CHURN_MS, default 300) for each pane count in
# PB_BENCH_PANE_COUNTS (default "50 200"), PB_BENCH_SECS (default 30) per phase.
# The load average is printed next to every figure: other work on the machine skews them.
set -euo pipefail
cd "$(dirname "$0")/../.."

run() {
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    cargo test --release -q -p panebus --test coordinator -- --ignored --nocapture --exact "$1" 2>&1 |
        grep -E '^(kill -9|coordinator )' || { echo "coordinator.sh: $1 failed" >&2; return 1; }
    echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
}

cargo test --release -q -p panebus --test coordinator --no-run 2>/dev/null
PB_BENCH_ROUNDS="${PB_BENCH_ROUNDS:-200}" run detection_latency
for panes in ${PB_BENCH_PANE_COUNTS:-50 200}; do
    PB_BENCH_PANES="$panes" PB_BENCH_SECS="${PB_BENCH_SECS:-30}" \
        PB_BENCH_CHURN_MS="${PB_BENCH_CHURN_MS:-300}" run coordinator_cost
done
