#!/usr/bin/env bash
# Records real tmux control-mode transcripts into fixtures/control/ for the parser's tests.
#
# Every scenario runs against its own private tmux server (`tmux -S <tempdir>/<name>.sock
# -f /dev/null`, TMUX unset, HOME pointed at the temp dir), never the user's server, and each
# server is killed when its scenario ends and again by an EXIT trap. The recorded client is
# `tmux -u -C attach-session -t pb` on pipes (`.C.raw`) or `tmux -u -CC ...` on a pty
# (`.CC.raw`); the file holds exactly the bytes that client printed. The driver (embedded
# Python below) sends one command per line, waits for each reply block and for the
# notifications a step must cause before sending the next, so re-running gives the same
# transcript apart from timestamps, block numbers, client names and output record splits.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/record-fixtures.sh [--out DIR] [--mode C|CC|both] [--only NN[,NN...]]
                                  [--no-dumps | --dumps-only] [--list]

Record tmux control-mode transcripts (tmux 3.3a) for the parser's fixture tests.

Writes, for each scenario NN-name:
  DIR/NN-name.C.raw    bytes printed by `tmux -C` on pipes
  DIR/NN-name.CC.raw   bytes printed by `tmux -CC` on a pty (DCS framing, CRLF line ends)
  DIR/NN-name.payload  (output scenarios only) the exact bytes the pane program wrote
  DIR/NN-name.C.dump   the normalized dump of the .C.raw (docs: normalized-dump.md), made
                       with `cargo run -p tmux-control-parser --example dump`; review the
                       diff by hand before committing it, the parser tests compare against it

Options:
  --out DIR      output directory (default: fixtures/control in this repository)
  --mode MODE    C, CC or both (default: both)
  --only LIST    comma-separated scenario numbers to record, e.g. --only 03,11
  --no-dumps     do not regenerate the .C.dump files
  --dumps-only   record nothing; regenerate the .C.dump files from the existing .C.raw
  --list         print the scenarios and exit
  -h, --help     this text

Each scenario gets a fresh private server (socket in a temp dir, -f /dev/null, TMUX unset)
with session `pb` (80x24, window @0 / pane %0 running `cat`, automatic-rename off), so ids
are the same in every recording. Requires tmux and python3. Exit status: 0 when every
selected scenario was recorded, 1 when one failed (its files are left untouched), 2 on bad
usage.
EOF
}

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
out="$repo_root/fixtures/control"
mode="both"
only=""
list_only=0
dumps=1
record=1
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --out) out="${2:?--out needs a directory}"; shift 2 ;;
        --mode) mode="${2:?--mode needs C, CC or both}"; shift 2 ;;
        --only) only="${2:?--only needs scenario numbers}"; shift 2 ;;
        --no-dumps) dumps=0; shift ;;
        --dumps-only) record=0; shift ;;
        --list) list_only=1; shift ;;
        *) echo "record-fixtures: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$mode" in
    C|CC|both) ;;
    *) echo "record-fixtures: --mode must be C, CC or both, not '$mode'" >&2; exit 2 ;;
esac
# Regenerates NN-name.C.dump from NN-name.C.raw for the selected scenarios.
write_dumps() {
    local raw stem num
    for raw in "$out"/*.C.raw; do
        [ -e "$raw" ] || continue
        stem="$(basename "$raw" .C.raw)"
        num="${stem%%-*}"
        if [ -n "$only" ] && [[ ",$only," != *",$num,"* ]]; then
            continue
        fi
        (cd "$repo_root" && cargo run -q -p tmux-control-parser --example dump -- "$raw") \
            >"$out/$stem.C.dump"
        echo "dumped $out/$stem.C.dump"
    done
}
if [ "$record" -eq 0 ] && [ "$list_only" -eq 0 ]; then
    write_dumps
    exit 0
fi

command -v tmux >/dev/null || { echo "record-fixtures: tmux not found; install tmux 3.3a" >&2; exit 1; }
command -v python3 >/dev/null || { echo "record-fixtures: python3 not found; install python3" >&2; exit 1; }
tmux_version="$(tmux -V)"
if [ "$tmux_version" != "tmux 3.3a" ] && [ "$list_only" -eq 0 ]; then
    echo "record-fixtures: warning: fixtures were specified against tmux 3.3a, this is $tmux_version" >&2
fi

unset TMUX
workdir="$(mktemp -d "${TMPDIR:-/tmp}/pbrec-$$-XXXXXX")"
cleanup() {
    local sock
    for sock in "$workdir"/*.sock; do
        [ -S "$sock" ] && tmux -S "$sock" kill-server 2>/dev/null || true
    done
    rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$out"
python3 - "$workdir" "$out" "$mode" "$only" "$list_only" <<'PY'
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time

WORKDIR, OUT, MODE, ONLY, LIST_ONLY = sys.argv[1:6]
TIMEOUT = 15.0
ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOME": WORKDIR,
    "LANG": "C.UTF-8",
    "TERM": "xterm-256color",
    "SHELL": "/bin/sh",
}
END_RE = re.compile(rb"^%(end|error) (\d+) (\d+) (\d+)$")
BEGIN_RE = re.compile(rb"^%begin (\d+) (\d+) (\d+)$")
DCS = b"\x1bP1000p"
ST = b"\x1b\\"


class ScenarioFailed(Exception):
    pass


def decode_output(data):
    """Undo control mode's `\\ooo` escaping of %output data."""
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i] == 0x5C:
            out.append(int(data[i + 1 : i + 4], 8))
            i += 4
        else:
            out.append(data[i])
            i += 1
    return bytes(out)


class Transcript:
    """Splits the client's bytes into reply blocks, notification lines and pane output."""

    def __init__(self, crlf):
        self.crlf = crlf
        self.raw = bytearray()
        self.pending = b""
        self.started = not crlf
        self.open = None
        self.body = []
        self.blocks = []  # (flags, is_error, [lines]) in arrival order
        self.notes = []  # lines outside blocks (notifications and bare hook lines)
        self.inside = []  # notification-looking lines seen inside blocks (%pause/%continue)
        self.output = {}  # pane id -> decoded bytes
        self.cond = threading.Condition()

    def feed(self, data):
        with self.cond:
            self.raw.extend(data)
            buf = self.pending + data
            if not self.started:
                if len(buf) < len(DCS):
                    self.pending = buf
                    return
                if not buf.startswith(DCS):
                    raise ScenarioFailed("-CC stream does not start with the DCS prefix")
                buf = buf[len(DCS) :]
                self.started = True
            *lines, self.pending = buf.split(b"\n")
            for line in lines:
                if self.crlf and line.endswith(b"\r"):
                    line = line[:-1]
                self.line(line)
            self.cond.notify_all()

    def line(self, line):
        if self.open is not None:
            m = END_RE.match(line)
            if m and m.group(2, 3, 4) == self.open:
                self.blocks.append((int(self.open[2]), m.group(1) == b"error", self.body))
                self.open = None
            else:
                self.body.append(line)
                if line.startswith((b"%pause ", b"%continue ")):
                    self.inside.append(line)
            return
        m = BEGIN_RE.match(line)
        if m:
            self.open = m.group(1, 2, 3)
            self.body = []
            return
        self.notes.append(line)
        for prefix in (b"%output ", b"%extended-output "):
            if line.startswith(prefix):
                rest = line[len(prefix) :]
                pane, _, data = rest.partition(b" ")
                if prefix == b"%extended-output ":
                    data = data.split(b" : ", 1)[1]
                self.output[pane] = self.output.get(pane, b"") + decode_output(data)


class Client:
    """One control client of the scenario's server, recorded byte for byte."""

    def __init__(self, server, cc, target="pb"):
        self.server = server
        self.cc = cc
        self.t = Transcript(cc)
        argv = server.tmux + ["-u", "-CC" if cc else "-C", "attach-session", "-t", target]
        if cc:
            master, slave = pty.openpty()
            self.proc = subprocess.Popen(
                argv, stdin=slave, stdout=slave, stderr=slave, env=ENV, start_new_session=True
            )
            os.close(slave)
            self.rfd = self.wfd = master
        else:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV
            )
            self.rfd = self.proc.stdout.fileno()
            self.wfd = self.proc.stdin.fileno()
        self.eof = False
        self.reader = threading.Thread(target=self.read_loop, daemon=True)
        self.reader.start()
        self.wait("the attach burst", lambda t: any(n.startswith(b"%session-changed ") for n in t.notes))

    def read_loop(self):
        while True:
            try:
                data = os.read(self.rfd, 65536)
            except OSError:
                data = b""
            if not data:
                with self.t.cond:
                    self.eof = True
                    self.t.cond.notify_all()
                return
            self.t.feed(data)

    def wait(self, what, pred, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        with self.t.cond:
            while not pred(self.t):
                left = deadline - time.monotonic()
                if left <= 0 or (self.eof and not pred(self.t)):
                    tail = bytes(self.t.raw[-2000:]).decode("utf-8", "replace")
                    raise ScenarioFailed(f"timed out waiting for {what}; transcript tail:\n{tail}")
                self.t.cond.wait(min(left, 0.2))

    def send(self, line):
        os.write(self.wfd, line.encode() + b"\n")

    def cmd(self, line, blocks=1, error=False):
        """Send one line and wait for the reply blocks it produces; return their bodies."""
        with self.t.cond:
            start = len([b for b in self.t.blocks if b[0] == 1])
        self.send(line)

        def replied(t):
            return len([b for b in t.blocks if b[0] == 1]) >= start + blocks

        self.wait(f"the reply to {line!r}", replied)
        got = [b for b in self.t.blocks if b[0] == 1][start : start + blocks]
        if got[-1][1] != error:
            raise ScenarioFailed(f"{line!r}: expected error={error}, got body {got[-1][2]!r}")
        return got[-1][2]

    def note_mark(self):
        with self.t.cond:
            return len(self.t.notes)

    def expect(self, pattern, since=0, count=1):
        """Wait for `count` notification lines matching `pattern` after index `since`."""
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        self.wait(
            f"{count} x {pattern!r}",
            lambda t: sum(1 for n in t.notes[since:] if rx.search(n)) >= count,
        )

    def output_len(self, pane, n):
        self.wait(f"{n} output bytes from {pane}", lambda t: len(t.output.get(pane.encode(), b"")) >= n)

    def detach(self):
        """End the session with an empty line, which makes tmux print %exit."""
        self.send("")
        self.finish()

    def finish(self):
        self.wait("%exit", lambda t: any(n.startswith(b"%exit") for n in t.notes))
        self.proc.wait(timeout=TIMEOUT)
        self.reader.join(timeout=TIMEOUT)
        if self.cc:
            if not bytes(self.t.raw).endswith(ST):
                raise ScenarioFailed("-CC stream does not end with ST")
            os.close(self.rfd)


class Server:
    def __init__(self, name):
        self.sock = os.path.join(WORKDIR, name + ".sock")
        self.tmux = ["tmux", "-S", self.sock, "-f", "/dev/null"]
        self.run(
            "new-session", "-d", "-s", "pb", "-x", "80", "-y", "24", "--", "cat", ";",
            "set-option", "-wg", "automatic-rename", "off",
        )

    def run(self, *args):
        return subprocess.run(
            self.tmux + list(args), env=ENV, check=True, capture_output=True, timeout=TIMEOUT
        ).stdout

    def kill(self):
        subprocess.run(self.tmux + ["kill-server"], env=ENV, capture_output=True, timeout=TIMEOUT)


def payload_path(name):
    return os.path.join(WORKDIR, name + ".payload")


def shell_pane(c, script):
    """Respawn %0 with a program that writes raw bytes (no ONLCR, no echo)."""
    c.cmd(f"respawn-pane -k -t %0 -c '{WORKDIR}' -- sh -c 'stty raw -echo; {script}; exec sleep 100000'")


# ---- payloads ---------------------------------------------------------------------------

def output_payload():
    return b"".join(
        [
            b"plain ascii line\r\n",
            "UTF-8: h\u00e9llo w\u00f6rld \u2603 \u65e5\u672c\u8a9e \U0001f389\r\n".encode(),
            b"controls: " + bytes(range(0x00, 0x20)) + b" del:\x7f\r\n",
            b"backslashes: \\ \\\\ \\015 \\n \\134 \\\\\\\r\n",
            b"esc: \x1b[1;31mred\x1b[0m \x1b]2;title\x07 \x1b(0lqk\x1b(B \x1b[2J\x1b[H\r\n",
            b"invalid utf-8: \xff \xfe \xc3( \xe2\x82 \xf0\x9f\x8e \xc0\xaf \xed\xa0\x80 end\r\n",
            b"high bytes: " + bytes(range(0x80, 0x100)) + b"\r\n",
            b"no line end at the end",
        ]
    )


def long_line_payload():
    first = b"".join(b"%06d|" % i for i in range(0, 7200, 6))[:7200]
    second = ("\u00e9\u2603\U0001f389" * 2300).encode()
    third = b"".join(b"\\\x1b[7m%04d\x1b[0m\t" % i for i in range(700))
    return first + b"\r\n" + second + b"\r\n" + third + b"\r\n"


# ---- scenarios --------------------------------------------------------------------------

def s_attach(server, c):
    c.cmd("refresh-client -C 100x30")
    c.expect(r"^%layout-change @0 ")
    c.detach()


def s_replies(server, c):
    body = c.cmd("display-message -p ''")
    assert body == [b""], body
    assert c.cmd("set-option -g @pb-empty-reply 1") == []
    assert c.cmd('display-message -p "line one\\nline two\\n\\nline four"') == [
        b"line one", b"line two", b"", b"line four"]
    assert c.cmd('display-message -p "%%end 1795000000 1 1"') == [b"%end 1795000000 1 1"]
    assert c.cmd('display-message -p "%%begin 1 2 1\\n%%error 1 2 1\\n%%exit\\n%%output %%0 x"') == [
        b"%begin 1 2 1", b"%error 1 2 1", b"%exit", b"%output %0 x"]
    c.cmd("new-window -d -- cat")
    c.expect(r"^%window-add @1$")
    assert c.cmd("list-panes -a -F '#{pane_id} #{window_id} #{session_name}'") == [b"%0 @0 pb", b"%1 @1 pb"]
    assert c.cmd('display-message -p "tab\\there esc\\e[1mbold\\e[0m raw\\377 caf\\303\\251"') == [
        b"tab\there esc\x1b[1mbold\x1b[0m raw\xff caf\xc3\xa9"]
    c.cmd("kill-pane -t %99", error=True)
    c.cmd("no-such-command", error=True)
    c.cmd("b", error=True)
    c.cmd("refresh-client -A %0:on", error=True)
    c.cmd("display-message -p a b c", error=True)
    c.cmd("display-message -p first ; display-message -p second", blocks=2)
    c.cmd("kill-pane -t %99 ; display-message -p never", error=True)
    c.cmd("capture-pane -p -e -t %0 -S 0 -E 1")
    c.detach()


def s_output(server, c):
    data = output_payload()
    with open(payload_path("03-output"), "wb") as f:
        f.write(data)
    shell_pane(c, "cat 03-output.payload")
    c.output_len("%0", len(data))
    c.detach()


def s_long_line(server, c):
    data = long_line_payload()
    with open(payload_path("04-long-line"), "wb") as f:
        f.write(data)
    shell_pane(c, "cat 04-long-line.payload")
    c.output_len("%0", len(data))
    c.detach()


def s_windows(server, c):
    m = c.note_mark()
    c.cmd("new-window -d -- cat")
    c.expect(r"^%window-add @1$", m)
    m = c.note_mark()
    c.cmd('rename-window -t @1 "tab\\there\\nnewline and caf\\303\\251"')
    c.expect(r"^%window-renamed @1 ", m)
    m = c.note_mark()
    c.cmd("rename-window -t @1 'back\\slash and spaces  '")
    c.expect(r"^%window-renamed @1 back", m)
    m = c.note_mark()
    c.cmd("select-window -t @1")
    c.expect(r"^%session-window-changed \$0 @1$", m)
    m = c.note_mark()
    c.cmd("new-window -- cat")
    c.expect(r"^%window-add @2$", m)
    c.expect(r"^%session-window-changed \$0 @2$", m)
    m = c.note_mark()
    c.cmd("kill-window -t @2")
    c.expect(r"^%unlinked-window-close @2$", m)
    c.expect(r"^%session-window-changed \$0 @1$", m)
    m = c.note_mark()
    c.cmd("new-session -d -s other -x 80 -y 24 -- cat")
    c.expect(r"^%unlinked-window-add @3$", m)
    c.expect(r"^%sessions-changed$", m)
    m = c.note_mark()
    c.cmd("rename-window -t other:0 'elsewhere \u2713'")
    c.expect(r"^%unlinked-window-renamed @3 ", m)
    m = c.note_mark()
    c.cmd("link-window -s other:0 -t pb:5")
    c.expect(r"^%window-add @3$", m)
    m = c.note_mark()
    c.cmd("kill-session -t other")
    c.expect(r"^%sessions-changed$", m)
    c.expect(r"^%window-close @3$", m)
    m = c.note_mark()
    c.cmd("kill-window -t @1")
    c.expect(r"^%unlinked-window-close @1$", m)
    c.detach()


def s_panes(server, c):
    m = c.note_mark()
    c.cmd("split-window -d -t %0 -- cat")
    c.expect(r"^%layout-change @0 .*,1\]", m)
    m = c.note_mark()
    c.cmd("split-window -h -t %1 -- cat")
    c.expect(r"^%window-pane-changed @0 %2$", m)
    c.expect(r"^%layout-change @0 .*,2\}", m)
    m = c.note_mark()
    c.cmd("select-pane -t %0")
    c.expect(r"^%window-pane-changed @0 %0$", m)
    m = c.note_mark()
    c.cmd("resize-pane -Z -t %0")
    c.expect(r"^%layout-change @0 \S+ \S+ \*Z$", m)
    m = c.note_mark()
    c.cmd("resize-pane -Z -t %0")
    c.expect(r"^%layout-change @0 \S+ \S+ \*$", m)
    m = c.note_mark()
    c.cmd("copy-mode -t %0")
    c.expect(r"^%pane-mode-changed %0$", m)
    m = c.note_mark()
    c.cmd("send-keys -t %0 -X cancel")
    c.expect(r"^%pane-mode-changed %0$", m)
    assert c.cmd("list-panes -F '#{pane_id}'") == [b"%0", b"%1", b"%2"]
    m = c.note_mark()
    c.cmd("kill-pane -t %1")
    c.expect(r"^%layout-change @0 ", m)
    m = c.note_mark()
    c.cmd("swap-pane -s %0 -t %2")
    c.expect(r"^%layout-change @0 ", m)
    c.detach()


def s_exit_remain_off(server, c):
    m = c.note_mark()
    c.cmd("split-window -d -t %0 -- cat")
    c.expect(r"^%layout-change @0 .*,1\]", m)
    m = c.note_mark()
    c.cmd("send-keys -t %1 C-d")
    c.expect(r"^%layout-change @0 \S+,0 ", m)
    m = c.note_mark()
    c.cmd("new-window -d -- cat")
    c.expect(r"^%window-add @1$", m)
    m = c.note_mark()
    c.cmd("send-keys -t %2 C-d")
    c.expect(r"^%unlinked-window-close @1$", m)
    c.detach()


def s_exit_remain_on(server, c):
    c.cmd("set-option -g remain-on-exit on")
    m = c.note_mark()
    c.cmd("split-window -d -t %0 -- cat")
    c.expect(r"^%layout-change @0 .*,1\]", m)
    m = c.note_mark()
    c.cmd("refresh-client -B 'dead:%*:#{pane_id} dead=#{pane_dead}'")
    c.expect(r"^%subscription-changed dead \$0 @0 0 %1 : %1 dead=0$", m)
    m = c.note_mark()
    c.cmd("send-keys -t %1 C-d")
    c.expect(r"^%subscription-changed dead \$0 @0 0 %1 : %1 dead=1$", m)
    assert c.cmd("display-message -p -t %1 '#{pane_dead}'") == [b"1"]
    c.cmd("respawn-pane -t %0 -- cat", error=True)
    m = c.note_mark()
    assert c.cmd("respawn-pane -t %1 -- sh -c 'echo respawned; exec cat'") == []
    c.output_len("%1", len(b"respawned\r\n"))
    c.expect(r"^%subscription-changed dead \$0 @0 0 %1 : %1 dead=0$", m)
    assert c.cmd("display-message -p -t %1 '#{pane_id} #{pane_dead}'") == [b"%1 0"]
    c.cmd("refresh-client -B dead")
    c.detach()


def s_subscriptions(server, c):
    m = c.note_mark()
    c.cmd("refresh-client -B 'all-panes:%*:#{pane_id} #{pane_width}x#{pane_height}'")
    c.cmd("refresh-client -B 'one-pane:%0:#{pane_index} : colon inside'")
    c.cmd("refresh-client -B 'all-windows:@*:#{window_name}'")
    c.cmd("refresh-client -B 'one-window:@0:#{window_index} #{window_panes}'")
    c.cmd("refresh-client -B 'session::#{session_name} #{session_windows}'")
    c.expect(r"^%subscription-changed all-panes \$0 @0 0 %0 : %0 80x24$", m)
    c.expect(r"^%subscription-changed one-pane \$0 @0 0 %0 : 0 : colon inside$", m)
    c.expect(r"^%subscription-changed all-windows \$0 @0 0 - : cat$", m)
    c.expect(r"^%subscription-changed one-window \$0 @0 0 - : 0 1$", m)
    c.expect(r"^%subscription-changed session \$0 - - - : pb 1$", m)
    m = c.note_mark()
    c.cmd("rename-window -t @0 'first window'")
    c.expect(r"^%subscription-changed all-windows \$0 @0 0 - : first window$", m)
    m = c.note_mark()
    c.cmd("new-window -d -- cat")
    c.expect(r"^%subscription-changed session \$0 - - - : pb 2$", m)
    c.expect(r"^%subscription-changed all-panes \$0 @1 1 %1 : %1 80x24$", m)
    m = c.note_mark()
    c.cmd("split-window -d -t %0 -- cat")
    c.expect(r"^%subscription-changed one-window \$0 @0 0 - : 0 2$", m)
    c.expect(r"^%subscription-changed all-panes \$0 @0 0 %2 : ", m)
    c.cmd("refresh-client -B all-panes")
    c.cmd("refresh-client -B one-pane")
    c.cmd("refresh-client -B all-windows")
    c.cmd("refresh-client -B one-window")
    c.cmd("refresh-client -B session")
    c.detach()


def s_sessions(server, c):
    m = c.note_mark()
    c.cmd("rename-session 'caf\u00e9 session'")
    c.expect(r"^%session-renamed \$0 caf", m)
    m = c.note_mark()
    c.cmd("rename-session \"tab\\there\"")
    c.expect(r"^%session-renamed \$0 tab", m)
    m = c.note_mark()
    c.cmd("new-session -d -s second -x 80 -y 24 -- cat")
    c.expect(r"^%sessions-changed$", m)
    c.expect(r"^%unlinked-window-add @1$", m)
    m = c.note_mark()
    c.cmd("switch-client -t second")
    c.expect(r"^%session-changed \$1 second$", m)
    m = c.note_mark()
    other = Client(server, cc=False, target="$0")
    c.expect(r"^%client-session-changed client-\d+ \$0 ", m)
    m = c.note_mark()
    other.detach()
    c.expect(r"^%client-detached client-\d+$", m)
    m = c.note_mark()
    c.cmd("switch-client -t '$0'")
    c.expect(r"^%session-changed \$0 tab", m)
    m = c.note_mark()
    c.cmd("kill-session -t second")
    c.expect(r"^%sessions-changed$", m)
    c.detach()


def s_flow_control(server, c):
    c.cmd("refresh-client -f pause-after=5")
    m = c.note_mark()
    c.cmd("send-keys -t %0 -l 'before pause'")
    c.cmd("send-keys -t %0 Enter")
    c.output_len("%0", 2 * len(b"before pause\r\n"))
    c.expect(r"^%extended-output %0 \d+ : ", m)
    body = c.cmd("refresh-client -A '%0:pause'")
    assert body == [b"%pause %0"], body
    c.cmd("send-keys -t %0 -l 'while paused'")
    c.cmd("send-keys -t %0 Enter")
    c.cmd("display-message -p -t %0 '#{pane_id} paused'")
    body = c.cmd("refresh-client -A '%0:continue'")
    assert body == [b"%continue %0"], body
    c.cmd("send-keys -t %0 -l 'after continue'")
    c.cmd("send-keys -t %0 Enter")
    c.wait("output after continue", lambda t: t.output.get(b"%0", b"").count(b"after continue\r\n") == 2)
    c.cmd("refresh-client -f '!pause-after'")
    m = c.note_mark()
    c.cmd("send-keys -t %0 -l 'plain again'")
    c.cmd("send-keys -t %0 Enter")
    c.expect(r"^%output %0 plain again", m)
    c.wait("plain output", lambda t: t.output.get(b"%0", b"").count(b"plain again\r\n") == 2)
    c.cmd("refresh-client -A '%0:off'")
    c.cmd("send-keys -t %0 -l 'while off'")
    c.cmd("send-keys -t %0 Enter")
    c.cmd("display-message -p -t %0 '#{pane_id} off'")
    c.cmd("refresh-client -A '%0:on'")
    c.cmd("send-keys -t %0 -l 'back on'")
    c.cmd("send-keys -t %0 Enter")
    c.wait("output after on", lambda t: t.output.get(b"%0", b"").count(b"back on\r\n") == 2)
    c.detach()


def s_hook(server, c):
    c.cmd("set-hook -g pane-exited[0] \"display-message -p 'hook: pane #{hook_pane} exited'\"")
    c.cmd("set-hook -g pane-exited[1] \"display-message -p '%%pb-exited #{hook_pane}'\"")
    m = c.note_mark()
    c.cmd("split-window -d -t %0 -- cat")
    c.expect(r"^%layout-change @0 .*,1\]", m)
    m = c.note_mark()
    c.cmd("send-keys -t %1 C-d")
    c.expect(r"^%layout-change @0 \S+,0 ", m)
    c.expect(r"^hook: pane %1 exited$", m)
    c.expect(r"^%pb-exited %1$", m)
    c.detach()


def s_detach(server, c):
    c.cmd("display-message -p 'about to detach'")
    c.send("detach-client")
    c.finish()


def s_kill_server(server, c):
    c.cmd("display-message -p 'about to kill the server'")
    c.send("kill-server")
    c.finish()


def s_server_killed(server, c):
    pid = int(c.cmd("display-message -p '#{pid}'")[0])
    os.kill(pid, signal.SIGKILL)
    c.finish()
    exits = [n for n in c.t.notes if n.startswith(b"%exit")]
    if exits != [b"%exit server exited unexpectedly"]:
        raise ScenarioFailed(f"unexpected exit lines {exits!r}")


SCENARIOS = [
    ("01", "attach", s_attach, "attach burst, refresh-client -C (layout-change), empty-line exit"),
    ("02", "replies", s_replies, "empty/multi-line bodies, %-lines in bodies, %error, parse errors, a ; b"),
    ("03", "output", s_output, "pane output: UTF-8, control bytes, backslashes, ESC, invalid UTF-8"),
    ("04", "long-line", s_long_line, "lines of 7200-27600 bytes split across %output records"),
    ("05", "windows", s_windows, "window add/close/rename (tab, newline, cafe), unlinked forms, link-window"),
    ("06", "panes", s_panes, "split-window, select-pane, zoom, copy-mode, kill-pane, swap-pane"),
    ("07", "exit-remain-off", s_exit_remain_off, "pane exits with remain-on-exit off (layout-change, window close)"),
    ("08", "exit-remain-on", s_exit_remain_on, "pane exits with remain-on-exit on, subscription, respawn-pane"),
    ("09", "subscriptions", s_subscriptions, "refresh-client -B pane, window and session forms"),
    ("10", "sessions", s_sessions, "session rename, switch-client, another client attaching and detaching"),
    ("11", "flow-control", s_flow_control, "pause-after (%extended-output), -A pause/continue inside a reply, off/on"),
    ("12", "hook", s_hook, "pane-exited hooks printing a bare line and a %-marker line (3.3a)"),
    ("13", "detach", s_detach, "detach-client"),
    ("14", "kill-server", s_kill_server, "kill-server from the control client"),
    ("15", "server-killed", s_server_killed, "server SIGKILLed: %exit server exited unexpectedly"),
]


def record(num, name, fn, cc):
    base = f"{num}-{name}"
    suffix = "CC" if cc else "C"
    server = Server(f"{base}.{suffix}")
    try:
        c = Client(server, cc)
        try:
            fn(server, c)
        finally:
            if c.proc.poll() is None:
                c.proc.kill()
                c.proc.wait()
    finally:
        server.kill()
    target = os.path.join(OUT, f"{base}.{suffix}.raw")
    with open(target + ".tmp", "wb") as f:
        f.write(bytes(c.t.raw))
    os.replace(target + ".tmp", target)
    payload = payload_path(base)
    if os.path.exists(payload):
        with open(payload, "rb") as src, open(os.path.join(OUT, base + ".payload"), "wb") as dst:
            dst.write(src.read())
    return target, len(c.t.raw)


def main():
    if LIST_ONLY == "1":
        for num, name, _, what in SCENARIOS:
            print(f"{num}-{name:16} {what}")
        return 0
    wanted = {x.strip() for x in ONLY.split(",") if x.strip()}
    unknown = wanted - {s[0] for s in SCENARIOS}
    if unknown:
        print(f"record-fixtures: unknown scenario(s) {sorted(unknown)} (see --list)", file=sys.stderr)
        return 2
    modes = {"C": [False], "CC": [True], "both": [False, True]}[MODE]
    failed = 0
    for num, name, fn, _ in SCENARIOS:
        if wanted and num not in wanted:
            continue
        for cc in modes:
            try:
                target, size = record(num, name, fn, cc)
                print(f"recorded {os.path.relpath(target)} ({size} bytes)")
            except (ScenarioFailed, AssertionError, subprocess.SubprocessError) as e:
                failed += 1
                print(f"record-fixtures: {num}-{name} ({'-CC' if cc else '-C'}) failed: {e!r}", file=sys.stderr)
    return 1 if failed else 0


sys.exit(main())
PY
if [ "$dumps" -eq 1 ] && [ "$list_only" -eq 0 ] && [ "$mode" != "CC" ]; then
    write_dumps
fi
