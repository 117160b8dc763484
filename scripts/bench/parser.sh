#!/usr/bin/env bash
# Parser throughput against the memchr + octal-decode baseline on the same input
# (criterion; thread-CPU-time and wall-clock groups). Full report: target/criterion/.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo bench -p tmux-control-parser --bench throughput 2>&1 | grep -E '^[a-z_/ -]+$|time:|thrpt:' || true
