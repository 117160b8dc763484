#!/usr/bin/env bash
# Bus figures: dispatch -> received latency, round trip, commands/s through 1/4/16 workers and
# queue-depth drains, each next to a raw LPUSH/BLMOVE/LREM loop (examples/bus_bench.rs), then
# redis-benchmark running the same command mix on a private redis-server (free port, never 6379).
#
#   scripts/bench/bus.sh                      # defaults: 5000 samples, 20000 commands
#   BUS_BENCH_ARGS="2000 10000 1,4 1000" scripts/bench/bus.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# shellcheck disable=SC2086 # BUS_BENCH_ARGS is a list of arguments
cargo run --quiet --release --example bus_bench -- ${BUS_BENCH_ARGS:-}

# redis-benchmark: the raw steps one by one, with a command-sized JSON element.
n=${BUS_REDIS_BENCHMARK_N:-100000}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" >/dev/null 2>&1 &
redis_pid=$!
trap 'kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.05
done
element='{"id":"01JD7X2N0Q4V3W2K8M9YB5C6DE","type":"noop","payload":{"i":0},"created_ms":1732560000000,"attempt":1,"max_attempts":3,"origin":"bench"}'

# Prints the requests/s of one redis-benchmark run: rate CLIENTS COMMAND ARGS...
rate() {
    local clients=$1
    shift
    redis-benchmark -p "$port" -n "$n" -P 1 -c "$clients" -q "$@" 2>/dev/null |
        tr '\r' '\n' | awk '/requests per second/ {for (i = 1; i <= NF; i++) if ($i == "requests") print $(i - 1)}' | tail -1
}

for clients in 1 4; do
    redis-cli -p "$port" flushall >/dev/null
    lpush=$(rate "$clients" LPUSH 'rb:{w}:queue' "$element")
    blmove=$(rate "$clients" BLMOVE 'rb:{w}:queue' 'rb:{w}:processing' RIGHT LEFT 1)
    lrem=$(rate "$clients" LREM 'rb:{w}:processing' 1 "$element")
    mix=$(awk -v a="$lpush" -v b="$blmove" -v c="$lrem" 'BEGIN { printf "%.0f", 1 / (1 / a + 1 / b + 1 / c) }')
    echo "redis-benchmark -n $n -P 1 -c $clients: LPUSH $lpush/s, BLMOVE $blmove/s, LREM $lrem/s -> $mix commands/s for the LPUSH+BLMOVE+LREM mix"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
