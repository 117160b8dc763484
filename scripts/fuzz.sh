#!/usr/bin/env bash
# Fuzzes PaneBus's input decoders with cargo-fuzz (libFuzzer) on stable Rust.
#
# Two cargo-fuzz projects, each its own cargo workspace (not part of the main one):
#   parser/fuzz: `parse` (control-mode bytes, seeded with every transcript in
#                fixtures/control) and `layout` (the layouts those transcripts contain);
#   fuzz:        `command_json` (queue elements through Delivery::parse, as a worker
#                decodes them), `stored_json` (stored results and DLQ entries, as the CLI
#                reads them) and `registry_fields` (worker registry hashes), seeded with
#                the documents of docs/PROTOCOL.md and hostile variants.
# Crashing inputs land in <project>/artifacts/TARGET/.
set -euo pipefail

all_targets=(parse layout command_json stored_json registry_fields)

usage() {
    cat <<EOF_USAGE
Usage: scripts/fuzz.sh [SECONDS] [TARGET...]

Run each cargo-fuzz TARGET (default: ${all_targets[*]}) for SECONDS
(default: 60), one after the other, with sanitizers off (\`-s none\`, works on stable
Rust). Installs cargo-fuzz with \`cargo install cargo-fuzz --locked\` if it is missing.
Prints libFuzzer's final stats (stat::number_of_executed_units is the exec count). Exit
status is non-zero when a target finds a crash; the input is saved under
parser/fuzz/artifacts/TARGET/ or fuzz/artifacts/TARGET/ and replays with
\`cargo fuzz run -s none TARGET <file>\` run in parser/ or in the repository root.
EOF_USAGE
}

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
esac
seconds="${1:-60}"
case "$seconds" in
    ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, not '$seconds' (see --help)" >&2; exit 2 ;;
esac
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz (a few minutes, once)" >&2
    cargo install cargo-fuzz --locked
fi

# Parser seeds. The parse target reads its first byte as the chunking selector, so each
# transcript is seeded twice: 0x7f (127-byte chunks) and 0xff (chunk sizes taken from the
# input's own bytes).
corpus="$repo_root/parser/fuzz/corpus"
mkdir -p "$corpus/parse" "$corpus/layout"
for raw in "$repo_root"/fixtures/control/*.raw; do
    base="$(basename "$raw" .raw)"
    { printf '\177'; cat "$raw"; } >"$corpus/parse/seed-$base-7f"
    { printf '\377'; cat "$raw"; } >"$corpus/parse/seed-$base-ff"
    { grep -ao '%layout-change @[0-9]* [^ ]*' "$raw" || true; } | awk '{print $3}' | while read -r layout; do
        printf '%s' "$layout" >"$corpus/layout/seed-$(printf '%s' "$layout" | cksum | cut -d' ' -f1)"
    done
done

# Bus document seeds: valid documents (so the fuzzer starts inside the grammar) and
# hostile ones. stored_json reads its first byte as the document type (even: result,
# odd: DLQ entry).
corpus="$repo_root/fuzz/corpus"
mkdir -p "$corpus/command_json" "$corpus/stored_json" "$corpus/registry_fields"
command='{"id":"01JD7X2N0Q4V3W2K8M9YB5C6DE","type":"prompt","payload":{"text":"Fix the tests","context":{"working_dir":"/src/app"}},"created_ms":1732560000000,"timeout_ms":600000,"attempt":1,"max_attempts":3,"origin":"cli@devbox","workflow_id":"01JD7X","reply":true,"x_future":[1.5e300,-0.0,null]}'
printf '%s' "$command" >"$corpus/command_json/seed-full"
printf '%s' '{"id":"a","type":"ping"}' >"$corpus/command_json/seed-minimal"
printf '%s' '{"id":"h","type":"$(id);#{pane_id}","payload":{"t":"a;b\n#(id) `id` \u0000 \"q\" '"'"'s'"'"'"}}' >"$corpus/command_json/seed-hostile"
printf '{"id":"u","type":"ping","payload":{"t":"\xc3\x28"}}' >"$corpus/command_json/seed-not-utf8"
printf '%s' '{"id":"d","type":"ping","payload":{"a":[[[[[[[[[[1]]]]]]]]]]}}' >"$corpus/command_json/seed-nested"
{ printf '\000'; printf '%s' '{"command_id":"01JD","worker":"devbox/%3","ok":true,"result":{"pong":true},"started_ms":1,"finished_ms":2,"attempt":1}'; } >"$corpus/stored_json/seed-result"
{ printf '\000'; printf '%s' '{"command_id":"01JD","worker":"devbox/%3","ok":false,"error":"boom","started_ms":1,"finished_ms":2,"attempt":3}'; } >"$corpus/stored_json/seed-failed"
{ printf '\001'; printf '%s' "{\"id\":\"01JE\",\"command\":$command,\"error\":\"handler exited with status 3\",\"worker\":\"devbox/%3\",\"ts_ms\":1,\"reason\":\"failed\"}"; } >"$corpus/stored_json/seed-dlq"
{ printf '\001'; printf '%s' '{"id":"01JF","command":"{not json","error":"not a valid command","worker":"devbox/%3","ts_ms":1,"reason":"poison"}'; } >"$corpus/stored_json/seed-poison"

status=0
for target in "${targets[@]}"; do
    case "$target" in
        parse|layout) project="$repo_root/parser" ;;
        command_json|stored_json|registry_fields) project="$repo_root" ;;
        *) echo "fuzz.sh: unknown target '$target' (known: ${all_targets[*]})" >&2; exit 2 ;;
    esac
    echo "fuzz.sh: running $target for ${seconds}s" >&2
    (cd "$project" && cargo fuzz run -s none "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -print_final_stats=1) || status=$?
done
exit "$status"
