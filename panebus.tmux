#!/usr/bin/env bash
# PaneBus tmux plugin (TPM-compatible): key bindings that talk to the worker in the current
# pane, and a status-line segment.
#
# Install with TPM:   set -g @plugin 'panebus/panebus'
# or by hand:         run-shell /path/to/panebus/panebus.tmux
#
# All bindings live in their own key table, entered with `prefix B` (see the README):
#   p  prompt: type a prompt in a popup; it is dispatched to this pane's worker
#   i  ping this pane's worker
#   r  restart this pane's worker      (panebus restart PANE)
#   u  release this pane from quarantine (panebus release PANE)
#   l  show this pane's last result in a popup (panebus last-result PANE)
#   n  jump to the next pane that needs attention (dead, hung or quarantined)
#
# Options (set them before the plugin runs; defaults in brackets):
#   @panebus-bin               panebus binary                 [panebus]
#   @panebus-key               key after the prefix           [B]
#   @panebus-key-dispatch      [p]   @panebus-key-ping     [i]
#   @panebus-key-restart       [r]   @panebus-key-release  [u]
#   @panebus-key-result        [l]   @panebus-key-next     [n]
#   @panebus-status            on: prepend #{@panebus_status} to status-right [off]
#
# Safety: the prompt text is never put into a tmux command or a shell string. The popup runs
# `panebus prompt-box PANE`, which reads the text from its own terminal; only fixed text,
# the quoted binary path and pane ids (always `%N`) are ever parsed by tmux or sh.
# When called with an argument (`panebus.tmux next-attention`) it runs that helper instead.

set -u

CURRENT_FILE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"

option() {
	local value
	value="$(tmux show-option -gqv "$1")"
	printf '%s' "${value:-$2}"
}

# A word for `sh -c`: single-quoted, each ' written as '\'' .
shell_quote() {
	local s=${1//\'/\'\\\'\'}
	printf "'%s'" "$s"
}

# Text inside a shell command that tmux format-expands (run-shell): double every #.
format_escape() {
	printf '%s' "${1//#/##}"
}

# `next-attention`: select the first pane after the current one (in session order) whose
# @panebus_state is dead, hung or quarantined; wraps around.
next_attention() {
	local current panes pane
	current="$(tmux display-message -p '#{pane_id}')"
	panes="$(tmux list-panes -s -F '#{pane_id} #{@panebus_state}' |
		awk -v cur="$current" '
			{ ids[NR] = $1; bad[NR] = ($2 == "dead" || $2 == "hung" || $2 == "quarantined"); if ($1 == cur) at = NR }
			END { for (i = 1; i <= NR; i++) { j = (at + i - 1) % NR + 1; if (bad[j]) { print ids[j]; exit } } }')"
	pane="${panes%%$'\n'*}"
	if [ -z "$pane" ]; then
		tmux display-message 'panebus: no pane needs attention'
		return 0
	fi
	tmux select-window -t "$pane" \; select-pane -t "$pane"
}

main() {
	local bin key table cmd
	local popup_bin
	popup_bin="$(shell_quote "$(option @panebus-bin panebus)")"
	case "$popup_bin" in
	*'#'*)
		tmux display-message "panebus.tmux: @panebus-bin must not contain '#'"
		return 1
		;;
	esac
	bin="$(format_escape "$popup_bin")"
	key="$(option @panebus-key B)"
	table=panebus

	tmux bind-key -T prefix "$key" switch-client -T "$table"

	# tmux 3.3 does not format-expand a popup's command (later versions do), so the popup
	# asks tmux for the pane; either way the shell sees `%N` or the literal format in quotes.
	local current_pane="pane=\$(tmux display-message -p '#{pane_id}') &&"
	tmux bind-key -T "$table" "$(option @panebus-key-dispatch p)" \
		display-popup -E -w 80% -h 8 -T ' panebus prompt → #{pane_id} ' \
		"$current_pane exec $popup_bin prompt-box \"\$pane\""

	cmd="$bin dispatch '#{pane_id}' ping --wait --wait-timeout 5 >/dev/null 2>&1"
	tmux bind-key -T "$table" "$(option @panebus-key-ping i)" \
		run-shell -b "$cmd && tmux display-message 'panebus: #{pane_id} answered ping' || tmux display-message 'panebus: no answer to ping from #{pane_id}'"

	tmux bind-key -T "$table" "$(option @panebus-key-restart r)" \
		run-shell -b "$bin restart '#{pane_id}' >/dev/null 2>&1 && tmux display-message 'panebus: restarting #{pane_id}' || tmux display-message 'panebus: restart of #{pane_id} failed'"

	tmux bind-key -T "$table" "$(option @panebus-key-release u)" \
		run-shell -b "$bin release '#{pane_id}' >/dev/null 2>&1 && tmux display-message 'panebus: released #{pane_id}' || tmux display-message 'panebus: release of #{pane_id} failed'"

	tmux bind-key -T "$table" "$(option @panebus-key-result l)" \
		display-popup -E -w 90% -h 80% -T ' panebus result of #{pane_id} ' \
		"$current_pane $popup_bin last-result \"\$pane\" 2>&1 | less -R"

	tmux bind-key -T "$table" "$(option @panebus-key-next n)" \
		run-shell -b "$(format_escape "$(shell_quote "$CURRENT_FILE")") next-attention"

	if [ "$(option @panebus-status off)" = on ]; then
		local right
		right="$(tmux show-option -gqv status-right)"
		case "$right" in
		*'#{@panebus_status}'*) ;;
		*) tmux set-option -g status-right "#{@panebus_status} $right" ;;
		esac
	fi
}

case "${1:-}" in
next-attention) next_attention ;;
"") main ;;
*)
	echo "panebus.tmux: unknown helper ${1}" >&2
	exit 2
	;;
esac
