"""Waiting for a pushcap process started by a test to say it is ready (a line in its log)."""

from __future__ import annotations

import subprocess
import time


def wait_for_log(proc: subprocess.Popen, needle: str, timeout_s: float = 20.0) -> str:
    """Read `proc`'s stderr (text) until a line holds `needle`; return what it logged so far.

    The process is killed and the test fails, with everything it logged, when the line does not
    come before `timeout_s` or the process ends first."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    for line in proc.stderr:
        lines.append(line)
        if needle in line:
            return "".join(lines)
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise AssertionError(f"no {needle!r} in the log:\n" + "".join(lines) + proc.stderr.read())
