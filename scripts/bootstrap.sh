#!/usr/bin/env bash
# Bootstrap PaneBus on a fresh machine, then bring a session up:
#   1. installs tmux and redis-server if missing (apt-get on Debian/Ubuntu; on macOS it
#      prints the Homebrew command),
#   2. builds and installs `panebus` with `cargo install --path .` if it is not on PATH,
#   3. runs `panebus up "$@"` (all arguments are passed through, e.g. --workers 4).
# Set PANEBUS_BOOTSTRAP_NO_INSTALL=1 to only check, never install.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)

if [ "${#missing[@]}" -gt 0 ]; then
	echo "bootstrap: missing: ${missing[*]}"
	if [ "${PANEBUS_BOOTSTRAP_NO_INSTALL:-0}" = 1 ]; then
		echo "bootstrap: PANEBUS_BOOTSTRAP_NO_INSTALL=1: not installing" >&2
		exit 1
	elif command -v apt-get >/dev/null 2>&1; then
		sudo=""
		[ "$(id -u)" -ne 0 ] && sudo="sudo"
		$sudo apt-get update
		$sudo apt-get install -y "${missing[@]}"
	elif [ "$(uname -s)" = Darwin ]; then
		brew_names=()
		for name in "${missing[@]}"; do
			[ "$name" = redis-server ] && name=redis
			brew_names+=("$name")
		done
		echo "bootstrap: install them with: brew install ${brew_names[*]}" >&2
		exit 1
	else
		echo "bootstrap: install ${missing[*]} with your package manager, then run this again" >&2
		exit 1
	fi
fi

if ! command -v panebus >/dev/null 2>&1; then
	if ! command -v cargo >/dev/null 2>&1; then
		echo "bootstrap: cargo is missing: install Rust from https://rustup.rs, then run this again" >&2
		exit 1
	fi
	echo "bootstrap: building and installing panebus (cargo install --path .)"
	cargo install --locked --path .
	export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi

exec panebus up "$@"
