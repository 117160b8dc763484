#!/usr/bin/env bash
# Fuzzes the control-mode parser with cargo-fuzz (libFuzzer) on stable Rust.
#
# Targets live in parser/fuzz (its own cargo workspace, not part of the main one). The `parse`
# target is seeded with every recorded transcript in fixtures/control, the `layout` target with
# the layouts those transcripts contain. Crashing inputs land in parser/fuzz/artifacts/TARGET/.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/fuzz.sh [SECONDS] [TARGET...]

Run each cargo-fuzz TARGET (default: parse layout) for SECONDS (default: 60) with
sanitizers off (`-s none`, works on stable Rust). Installs cargo-fuzz with
`cargo install cargo-fuzz --locked` if it is missing. Exit status is non-zero when a
target finds a crash; the input is saved under parser/fuzz/artifacts/TARGET/ and can be
replayed with `cd parser && cargo fuzz run -s none TARGET fuzz/artifacts/TARGET/<file>`.
EOF
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
[ ${#targets[@]} -gt 0 ] || targets=(parse layout)

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz (a few minutes, once)" >&2
    cargo install cargo-fuzz --locked
fi

# Seed corpora from the fixtures. The parse target reads its first byte as the chunking
# selector, so each transcript is seeded twice: 0x7f (127-byte chunks) and 0xff (chunk sizes
# taken from the input's own bytes).
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

cd "$repo_root/parser"
status=0
for target in "${targets[@]}"; do
    echo "fuzz.sh: running $target for ${seconds}s" >&2
    cargo fuzz run -s none "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 || status=$?
done
exit "$status"
