#!/usr/bin/env bash
# CLI wall time of the release binary (BENCHMARKS.md "## CLI wall time"):
#   1. hyperfine over `dispatch %1 ping --wait`, `status-line --format plain` and `status`
#      against a private redis-server on a free loopback port (never 6379) with one idle
#      worker;
#   2. `panebus up` to the first answered ping: `up --managed-redis --no-attach` on a
#      private tmux server (-S in a temporary directory) with private XDG/HOME directories,
#      then `dispatch PANE ping --wait --force` right after it returns; `down` after each
#      run stops the managed Redis again, so every run starts one from cold.
# Nothing here touches the user's tmux server or a Redis on 6379; everything it starts is
# stopped on exit. Knobs: PB_BENCH_RUNS (hyperfine runs, default 200), PB_BENCH_UP_RUNS
# (up runs, default 5).
set -euo pipefail
cd "$(dirname "$0")/../.."

runs=${PB_BENCH_RUNS:-200}
up_runs=${PB_BENCH_UP_RUNS:-5}

cargo build --release -p panebus --bin panebus 2>&1 | tail -n 1
bin="$PWD/target/release/panebus"

work="$(mktemp -d /tmp/pbcli.XXXXXX)"
redis_pid=""
worker_pid=""
cleanup() {
    [ -n "$worker_pid" ] && kill "$worker_pid" 2>/dev/null || true
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
    # A run that failed half-way may leave its session and managed Redis behind.
    if [ -f "$work/run/panebus/redis.pid" ]; then
        kill "$(cat "$work/run/panebus/redis.pid")" 2>/dev/null || true
    fi
    tmux -S "$work/tmux.sock" kill-server 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Only this script's variables reach panebus.
for var in $(env | grep -o '^PANEBUS_[A-Z_]*' || true); do unset "$var"; done
unset TMUX TMUX_PANE

port=""
for _ in $(seq 1 50); do
    candidate=$((20000 + RANDOM % 20000))
    if ! redis-cli -p "$candidate" ping >/dev/null 2>&1; then
        port=$candidate
        break
    fi
done
[ -n "$port" ] || { echo "cli.sh: no free port found" >&2; exit 1; }
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work" --logfile "$work/redis.log" &
redis_pid=$!
for _ in $(seq 1 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.05
done

export PANEBUS_REDIS_URL="redis://127.0.0.1:$port/0"
export PANEBUS_NODE=bench
TMUX_PANE=%1 "$bin" worker >"$work/worker.log" 2>&1 &
worker_pid=$!
for _ in $(seq 1 100); do
    "$bin" dispatch %1 ping --wait --wait-timeout 1 >/dev/null 2>&1 && break
    sleep 0.05
done

echo "load before hyperfine: $(cut -d' ' -f1-3 /proc/loadavg)"
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/hyperfine.json" \
    "$bin dispatch %1 ping --wait" \
    "$bin status-line --format plain" \
    "$bin status" >/dev/null
echo "load after hyperfine:  $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-40s %9s %9s %9s %9s\n' command median mean min max
jq -r '.results[] | [.command, (.median, .mean, .min, .max | . * 1000 | tostring | .[0:6] + " ms")] | @tsv' \
    "$work/hyperfine.json" | sed "s#$bin#panebus#" |
    awk -F'\t' '{ printf "%-40s %9s %9s %9s %9s\n", $1, $2, $3, $4, $5 }'

kill "$worker_pid" 2>/dev/null || true
wait "$worker_pid" 2>/dev/null || true
worker_pid=""
unset PANEBUS_REDIS_URL

# up -> first answered ping, on a private tmux server with a private managed Redis.
mkdir -p "$work/run" "$work/state"
export XDG_RUNTIME_DIR="$work/run" XDG_STATE_HOME="$work/state" HOME="$work"
export PANEBUS_NODE=benchup
tmux -S "$work/tmux.sock" new-session -d -s keep
managed_url="redis+unix://$work/run/panebus/redis.sock"
echo "load before up runs: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-4s %12s %16s\n' run "up returns" "ping answered"
for i in $(seq 1 "$up_runs"); do
    start=$(date +%s%N)
    out="$(PANEBUS_LOG_LEVEL=warn "$bin" up --no-attach --managed-redis -S "$work/tmux.sock")"
    up_done=$(date +%s%N)
    pane="$(printf '%s\n' "$out" | awk '/worker: / { print $2; exit }')"
    PANEBUS_REDIS_URL="$managed_url" "$bin" dispatch "$pane" ping --wait --force --wait-timeout 20 >/dev/null
    answered=$(date +%s%N)
    printf '%-4s %9d ms %13d ms\n' "$i" $(((up_done - start) / 1000000)) $(((answered - start) / 1000000))
    PANEBUS_LOG_LEVEL=warn "$bin" down -S "$work/tmux.sock" >/dev/null
done
echo "load after up runs: $(cut -d' ' -f1-3 /proc/loadavg)"
