"""`pushcap replay` shows its progress on a terminal, and nothing of it anywhere else.

The terminal is a real pseudo-terminal (`os.openpty`): stderr there is a tty to the process, as
in an operator's shell. Piped, or with --quiet, stderr carries no carriage return or escape
sequence; the one-line summary is printed either way.
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios

import pytest

from pushcap.supervisor.progress import ERASE_LINE

pytestmark = pytest.mark.integration

PACKETS = 50_000
COLUMNS = 150


@pytest.fixture
def replay_args(tmp_path, gen_trace, write_lua):
    trace = gen_trace(PACKETS)
    lua = write_lua([{"Desc": "tcp", "Mode": "File", "Path": str(tmp_path / "out" / "tcp"),
                      "FilterBPF": "tcp"}])
    (tmp_path / "out").mkdir()
    return [sys.executable, "-m", "pushcap.cli", "replay", str(trace), "--lua", str(lua),
            "--batch-packets", "1000"], trace


def on_terminal(args: list[str], stdout_too: bool = False) -> tuple[str, str, int]:
    """Run with stderr (and with `stdout_too` stdout) on a new pseudo-terminal of COLUMNS
    columns; (what the terminal got, stdout when piped, exit code)."""
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, COLUMNS, 0, 0))
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stderr=follower,
                            stdout=follower if stdout_too else subprocess.PIPE)
    os.close(follower)
    seen = bytearray()
    while True:  # read as it comes: a full terminal buffer would block the writer
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    stdout = b"" if stdout_too else proc.stdout.read()
    if proc.stdout:
        proc.stdout.close()
    return seen.decode(), stdout.decode(), proc.wait(timeout=60)


def test_progress_on_a_terminal_with_the_summary_on_a_pipe(replay_args):
    args, trace = replay_args
    terminal, stdout, code = on_terminal(args)
    assert code == 0, terminal
    # Each draw starts by erasing the line; so does each log line written meanwhile.
    parts = [part.split("\r")[0] for part in terminal.split(ERASE_LINE)[1:]]
    draws = [part for part in parts if "level=" not in part]
    assert draws, f"no progress line drawn: {terminal!r}"
    size_mb = f"{(trace.stat().st_size - 24) / 1e6:.1f} MB"
    assert all(f"of {size_mb} (" in d and " packets  " in d and "elapsed " in d for d in draws)
    assert all(len(d) < COLUMNS for d in draws)  # never wraps, so it can be redrawn in place
    # stdout is not the terminal: the final state stays there, on a line of its own
    assert draws[-1].startswith(f"{PACKETS:,} packets  {size_mb} of {size_mb} (100%)  ")
    assert terminal.endswith(draws[-1] + "\r\n")
    assert stdout.startswith(f"read {PACKETS} packets (") and "tcp: packets=" in stdout


def test_the_line_is_erased_when_the_summary_follows_on_the_same_terminal(replay_args):
    args, _ = replay_args
    terminal, _, code = on_terminal(args, stdout_too=True)
    assert code == 0, terminal
    # right after an erased line (or a log line's end): never glued to progress text
    assert re.search(rf"(\x1b\[K|\n)read {PACKETS} packets \(", terminal), terminal


def test_quiet_on_a_terminal_prints_only_the_summary(replay_args):
    args, _ = replay_args
    terminal, stdout, code = on_terminal([*args, "--quiet"])
    assert code == 0, terminal
    assert not re.search(r"\r(?!\n)", terminal) and "\x1b" not in terminal  # \r\n: the tty's
    assert stdout.startswith(f"read {PACKETS} packets (")


def test_no_progress_when_stderr_is_piped(replay_args):
    args, _ = replay_args
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr
    assert "packets/s" not in proc.stderr  # only log lines
    assert proc.stdout.startswith(f"read {PACKETS} packets (")
