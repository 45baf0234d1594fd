"""Evaluate push_realtime.lua in a child process that a hard wall-clock and resource bound ends.

Why a process: the Lua hook that enforces the time budget runs between Lua instructions, and a
C library function runs none. `string.rep("", math.maxinteger)`, `table.move({}, 1, n, 1)` or a
backtracking pattern (`string.find(("a"):rep(40), ("a?"):rep(40) .. ("a"):rep(40))`, also in
match/gmatch/gsub) then holds the thread for hours, and `pushcap check`, `run` and a reload with
it. Wrapping each such function with size checks would not be enough (a backtracking pattern is
short and its subject small) and would leave the next overlooked function open; a process can
be killed whatever it is doing. So the config runs in a child: lua_driver.py's hook still stops
Lua code at the budget with the config's line; the parent kills the child with SIGKILL if the
config is still running at the budget plus defaults.LUA_KILL_GRACE_SECONDS (the child says when
it has returned; converting its value, pushcap's code on at most LUA_MAX_MEMORY_BYTES of Lua
data, gets another LUA_MAX_SECONDS); and the child limits its own CPU time (so it ends even if
pushcap dies first) and address space (beyond Lua's own allocator cap, which lupa enforces for
C library calls too). Only plain data comes back (marshal): the targets table, converted in the
child, or the reason it failed. Which line a killed run was stuck at is found by a second,
traced run (lua.py), so such a file is refused after about twice the budget.

How the child starts, measured on a 2-core VM: fork() costs ~1.6 ms, a fresh interpreter
(`python -I -S`, importing lupa only) ~13 ms. `check`, `replay` and `run`'s first load happen
before any other thread exists, so they fork (start-up is benchmarked against tcpdump). A
running daemon (reload) has capture threads and a ring of maybe gigabytes: forking it would copy
its page tables and turn every ring page written while the child lives into a copy-on-write
fault, and a fork of a threaded process may inherit a lock another thread held. So when any
other Python thread runs, the child is a fresh interpreter (subprocess: vfork, fds closed).
"""

from __future__ import annotations

import contextlib
import marshal
import math
import os
import select
import sys
import threading
import time
from pathlib import Path

import lupa

import pushcap
from pushcap import defaults
from pushcap.config import lua_driver
from pushcap.config.field_check import LuaOpaque

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Outcome", "evaluate_bounded"]

_READ_BYTES = 1 << 16


class Outcome:
    """What one evaluation gave. status: the driver's ("ok", "syntax", "error", "timeout",
    "memory", "failed") or the parent's: "killed" (still running at the deadline or out of CPU
    time), "crashed" (the child died otherwise; detail says how). `line`: the last config line
    a traced run reported calling a C function. (A plain class: a dataclass costs start-up.)"""

    __slots__ = ("detail", "line", "marks", "status")

    def __init__(self, status: str, detail: Any = None, marks: dict[int, int] | None = None,
                 line: int | None = None) -> None:
        self.status, self.detail, self.marks, self.line = status, detail, marks, line


def evaluate_bounded(text: bytes, chunkname: bytes, max_s: float, *, marking: bool = False,
                     trace: bool = False) -> Outcome:
    """Run `text` (lua_driver's contract) in a child, killed max_s + the grace after start."""
    grace_s, convert_s = defaults.LUA_KILL_GRACE_SECONDS, defaults.LUA_MAX_SECONDS
    request: lua_driver.Request = {
        "text": text, "chunkname": chunkname, "max_s": max_s,
        "cpu_s": math.ceil(max_s + grace_s + convert_s) + 1,
        "max_memory_bytes": defaults.LUA_MAX_MEMORY_BYTES,
        "extra_bytes": defaults.LUA_PROCESS_EXTRA_BYTES,
        "hook_every": defaults.LUA_HOOK_EVERY_INSTRUCTIONS, "marking": marking, "trace": trace,
    }  # fmt: skip
    deadline = time.monotonic() + max_s + grace_s
    child = _Forked(request) if _can_fork() else _Spawned(request)
    data, late = b"", True
    try:
        data, late = _read_until(child.fd, deadline, convert_s)
    finally:  # also when the wait was interrupted (Ctrl-C): no child is left behind
        os.close(child.fd)
        if late:
            child.kill()
        code = child.wait()  # after EOF at once: the child writes last, then exits
    return _outcome(data, late, code)


def _can_fork() -> bool:
    """Fork only a process with no other Python thread (see the module's docstring)."""
    return threading.active_count() == 1


class _Forked:
    """A fork() running lua_driver.serve; `fd` reads its frames."""

    def __init__(self, request: lua_driver.Request) -> None:
        self.fd, write_fd = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: serve never returns
            try:
                os.close(self.fd)
            finally:
                lua_driver.serve(request, write_fd)
        os.close(write_fd)

    def kill(self) -> None:
        import signal

        os.kill(self.pid, signal.SIGKILL)  # not reaped yet: the pid is still ours

    def wait(self) -> int:
        """Exit code, or minus the signal that ended it (as Popen.returncode)."""
        return os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])


class _Spawned:
    """A fresh interpreter running lua_driver.child_main: the request on its stdin."""

    def __init__(self, request: lua_driver.Request) -> None:
        import subprocess  # imported by the daemon only: not in check's and replay's start-up

        paths = [str(Path(m.__file__).resolve().parents[1]) for m in (pushcap, lupa)]
        code = (f"import sys; sys.path[:0] = {list(dict.fromkeys(paths))!r}; "
                "from pushcap.config.lua_driver import child_main; child_main()")
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", code], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True,
        )  # fmt: skip
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(marshal.dumps(request))  # read whole before any Lua runs
            stdin.close()
        except BrokenPipeError:  # it died at start: its exit status says so
            with contextlib.suppress(OSError):
                stdin.close()
        self.fd = os.dup(stdout.fileno())
        stdout.close()

    def kill(self) -> None:
        self.proc.kill()

    def wait(self) -> int:
        return self.proc.wait()


def _read_until(fd: int, deadline: float, convert_s: float) -> tuple[bytes, bool]:
    """All the child writes, and whether a deadline came first (then it is still running): the
    first, until its D frame (the config has run), then convert_s more for the conversion."""
    poller = select.poll()  # not select(): a daemon may hold more than 1024 fds
    poller.register(fd, select.POLLIN)
    data, scanned, ran = bytearray(), 0, False
    while True:
        left_s = deadline - time.monotonic()
        if left_s <= 0:
            return bytes(data), True
        if not poller.poll(math.ceil(left_s * 1000)):
            continue
        chunk = os.read(fd, _READ_BYTES)
        if not chunk:
            return bytes(data), False
        data += chunk
        if not ran:
            scanned, ran = _past_line_frames(data, scanned)
            if ran:
                deadline = time.monotonic() + convert_s


def _past_line_frames(data: bytearray, at: int) -> tuple[int, bool]:
    """Where the L frames from `at` end, and whether a frame that ends the run follows."""
    while data[at:at + 1] == b"L" and at + 5 <= len(data):
        at += 5
    return at, at < len(data) and data[at:at + 1] != b"L"


def _outcome(data: bytes, late: bool, code: int) -> Outcome:
    """The child's frames and exit code (minus a signal) as an Outcome."""
    line, result, reason = _frames(data)
    if late or (code < 0 and _signal_name(-code) == "SIGXCPU"):  # RLIMIT_CPU
        return Outcome("killed", line=line)
    if code == 0 and result is not None:
        try:
            status, detail, marks = marshal.loads(result)
        except (EOFError, ValueError, TypeError):
            return Outcome("crashed", "its answer was cut short")
        return Outcome(status, _decoded(detail) if status == "ok" else detail, marks, line)
    if code == lua_driver.EXIT_MEMORY:
        return Outcome("memory", line=line)
    if reason:
        return Outcome("crashed", reason)
    how = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with {code}"
    return Outcome("crashed", f"the evaluating process {how}")


def _signal_name(number: int) -> str:
    import signal  # only for a child that a signal ended: not in every start-up

    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _frames(data: bytes) -> tuple[int | None, bytes | None, str | None]:
    """(last traced line, the result's marshal data, the reason of a failure). The child writes
    5-byte L frames (a line, traced runs only), D when the config has run, then R (the result)
    or E (the reason) to the end."""
    line, at = None, 0
    while data[at:at + 1] == b"L" and at + 5 <= len(data):
        line = int.from_bytes(data[at + 1:at + 5], "little")
        at += 5
    if data[at:at + 1] == b"D":
        at += 1
    tag, rest = data[at:at + 1], data[at + 1:]
    if tag == b"R":
        return line, rest, None
    return line, None, rest.decode("utf-8", "replace") if tag == b"E" else None


def _decoded(value: Any) -> Any:
    """lua_driver's plain data as lua.py reads it: each (kind, serial) a LuaOpaque of its own."""
    if isinstance(value, tuple):
        return LuaOpaque(value[0])
    if isinstance(value, dict):
        return {_decoded(k): _decoded(v) for k, v in value.items()}
    return value
