#!/usr/bin/env bash
# The README's test command: every test of the workspace (unit, integration, examples,
# benches in test mode, then doc tests) against real tmux and redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc
