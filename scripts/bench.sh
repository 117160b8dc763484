#!/usr/bin/env bash
# The benchmark suite: runs every part under scripts/bench/ (or the ones named) and prints
# the figures that BENCHMARKS.md records. Benchmarks are never run by the tests.
#
#   scripts/bench.sh            # every part, in order
#   scripts/bench.sh parser bus # only these parts
#
# Each part is scripts/bench/<name>.sh; it prints machine-readable lines and a summary.
set -euo pipefail
cd "$(dirname "$0")/.."

machine_info() {
    echo "== machine"
    echo "date:    $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
    echo "memory:  $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "kernel:  $(uname -r)"
    echo "tmux:    $(tmux -V 2>/dev/null || echo missing)"
    echo "redis:   $(redis-server --version 2>/dev/null | awk '{print $3}' || echo missing)"
    echo "rustc:   $(rustc --version)"
    echo "load:    $(cut -d' ' -f1-3 /proc/loadavg)"
}

parts=("$@")
if [ ${#parts[@]} -eq 0 ]; then
    parts=()
    for f in scripts/bench/*.sh; do
        parts+=("$(basename "$f" .sh)")
    done
fi

machine_info
for part in "${parts[@]}"; do
    script="scripts/bench/$part.sh"
    if [ ! -f "$script" ]; then
        echo "bench.sh: no part named '$part' (see scripts/bench/)" >&2
        exit 2
    fi
    echo "== $part"
    bash "$script"
done
