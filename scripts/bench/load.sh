#!/usr/bin/env bash
# Load (examples/load.rs): 200 `panebus worker` processes (standalone, no tmux) heartbeating
# every second against a private redis-server: Redis commands/s and CPU they cause at idle,
# then a dispatch storm (broadcast + 20000 pings from 8 dispatchers) with CLI latency
# (`dispatch --wait`, `status`, `panes`) and registry latency measured idle and during it.
#
#   scripts/bench/load.sh
#   PB_LOAD_WORKERS=50 PB_LOAD_SECONDS=10 PB_LOAD_STORM=5000 scripts/bench/load.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q --bin panebus --example load
PANEBUS_BIN=target/release/panebus target/release/examples/load
