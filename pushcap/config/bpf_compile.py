"""libpcap's filter compiler under a budget: bounded in size and time, off the GIL, cached.

Why: pcap_compile (through pcapy) holds the GIL for the whole call, and libpcap's optimizer takes
time growing about with the cube of a filter's terms. Measured on a 2-core VM: `portrange 1-2`
or'ed 240 times (4,076 characters, within a trigger's 4096) 16 s; 300 `port N` terms 3.4 s;
1,000 `host` terms 50 s and 1,000 `port N` 6 minutes; 2,000 `portrange 1-2` terms took 115 s
even unoptimized. Meanwhile no other Python thread moves: a thread counting in
a loop went from ~31 million increments a second to ~7 thousand while one of them compiled. So a
compile inline stalled the trigger listener (every request behind it waited) and every capture
thread (the kernel buffer holds ~0.15 s of a busy link).

So every compile has:
- a size budget (`max_chars`), checked first and for nothing: a longer text is refused at once;
- a time budget (`budget_s`): an expression longer than BPF_INPROCESS_MAX_CHARS compiles in a
  child process (bpf_worker.py) that is killed when the budget is spent, and refused. Waiting
  for the child holds no GIL. A limit on a C call cannot be enforced in-thread: only a process
  can be stopped whatever it is doing. Shorter expressions (every ordinary filter) compile
  in-process as before (~0.1 ms, no ~20 ms process start): the worst found at 256 characters
  (15 `portrange 1-2` terms or'ed) held the GIL 5 ms, 12 ms on a loaded box;
- a cache keyed by (expression, DLT, snaplen, optimize), shared by every caller (the FilterBPF
  check at load, push and flows targets, trigger requests), bounded in entries and instructions
  (least recently used dropped: requests bring expressions without end): a program is compiled
  once while cached; concurrent callers of the same key wait for the one compile in flight; a
  refusal is cached too, so a filter repeated by a confused or hostile publisher costs its
  budget once (one that ran out of a smaller budget is compiled again for a larger one).

It lives in config, the lowest layer that needs it: a FilterBPF is checked when the file loads,
and capture's BpfFilter gets its program from here, so the load's compile serves the series too.
The callers keep the compile off threads that must not wait (trigger/request_filter.py).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path

import pcapy

from pushcap import defaults
from pushcap.config.record import field, record

__all__ = ["BpfError", "Program", "check_size", "clear_cache", "compile_counts",
           "compile_program", "shown_filter"]

log = logging.getLogger("pushcap.bpf")

Program = tuple[tuple[int, int, int, int], ...]  # libpcap's (code, jt, jf, k) instructions

_PARSE_PREFIX = "can't parse filter expression: "
_WORKER = Path(__file__).with_name("bpf_worker.py")
_SHOWN_CHARS = 60  # of a long filter, in a message


class BpfError(ValueError):
    """A filter that libpcap rejects, that is over its budget, or a program this evaluator
    cannot run faithfully (capture.bpf_program)."""


class _OverBudget(BpfError):
    """The compile was stopped at its time budget."""


class _CannotRun(BpfError):
    """No child process could be started (out of processes or memory): not the filter's fault,
    so not cached."""


@record
class _Entry:
    """One cache slot: filled once by the caller that created it, read by everyone after."""

    done: threading.Event = field(default_factory=threading.Event)
    program: Program | None = None
    error: str | None = None
    over_budget_s: float | None = None  # set when the compile was stopped at this budget


_Key = tuple[str, int, int, bool]
_lock = threading.Lock()
_compile_lock = threading.Lock()  # older libpcaps keep the parser's state in globals
_cache: OrderedDict[_Key, _Entry] = OrderedDict()
_counts = {"compiles": 0, "in_child": 0, "cache_hits": 0, "over_budget": 0, "over_size": 0}


def shown_filter(expression: str) -> str:
    """`expression` quoted for a message, cut to its start when long (a 30 KB filter must not
    make a 30 KB log line)."""
    if len(expression) <= _SHOWN_CHARS:
        return repr(expression)
    return f"{expression[:_SHOWN_CHARS]!r}... ({len(expression)} characters)"


def check_size(expression: str, max_chars: int) -> None:
    """The size budget: refuse a text that libpcap would take minutes on, without compiling."""
    if len(expression) > max_chars:
        with _lock:
            _counts["over_size"] += 1
        raise BpfError(f"is {len(expression)} characters, more than the {max_chars} allowed "
                       "(libpcap's optimizer takes minutes on filters this long): use fewer "
                       "terms, e.g. one portrange or net instead of many ports or hosts")


def compile_program(expression: str, dlt: int, snaplen: int, *, optimize: bool = True,
                    budget_s: float | None = None,
                    max_chars: int | None = defaults.MAX_FILTER_BPF_CHARS) -> Program:
    """libpcap's program for `expression` on link type `dlt` (a DLT_*), or BpfError saying why
    not. `budget_s` None: defaults.BPF_COMPILE_BUDGET_S (a FilterBPF's). `max_chars` None: the
    caller has checked the size of the text it was given."""
    if max_chars is not None:
        check_size(expression, max_chars)
    if budget_s is None:
        budget_s = defaults.BPF_COMPILE_BUDGET_S
    key = (expression, dlt, snaplen, optimize)
    while True:
        with _lock:
            entry = _cache.get(key)
            if entry is not None and entry.over_budget_s is not None and (
                    budget_s > entry.over_budget_s):
                entry = None  # it ran out of a smaller budget: this caller may wait longer
            mine = entry is None
            if entry is None:
                entry = _cache[key] = _Entry()
                _trim()
            else:
                _cache.move_to_end(key)
                _counts["cache_hits"] += 1
        if mine:
            _fill(entry, key, budget_s)
        else:
            entry.done.wait()
            if entry.over_budget_s is not None and budget_s > entry.over_budget_s:
                continue  # another caller's smaller budget stopped it: try with this one
        if entry.error is not None:
            raise BpfError(entry.error)
        assert entry.program is not None
        return entry.program


def compile_counts() -> dict[str, int]:
    """How many compiles ran (`in_child` of them in a child process), how many were answered
    from the cache, and how many were refused over the time or the size budget."""
    with _lock:
        return dict(_counts)


def clear_cache() -> None:
    """Forget every cached program (tests that fake libpcap's answers)."""
    with _lock:
        _cache.clear()


def _trim() -> None:
    """Drop the least recently used finished entries beyond the bounds, in entries and in
    instructions (called under _lock): trigger requests bring expressions without end, and a
    4 KB filter can make thousands of instructions. In-flight entries stay (they have waiters)."""
    entries = len(_cache)
    insns = sum(len(e.program) for e in _cache.values() if e.program is not None)
    for key, entry in list(_cache.items()):
        if entries <= defaults.BPF_CACHE_ENTRIES and insns <= defaults.BPF_CACHE_MAX_INSNS:
            break
        if entry.done.is_set():
            del _cache[key]
            entries -= 1
            insns -= len(entry.program or ())


def _fill(entry: _Entry, key: _Key, budget_s: float) -> None:
    expression, dlt, snaplen, optimize = key
    try:
        with _lock:
            _counts["compiles"] += 1
        if len(expression) <= defaults.BPF_INPROCESS_MAX_CHARS:
            entry.program = _compile_here(expression, dlt, snaplen, optimize)
        else:
            entry.program = _compile_in_child(expression, dlt, snaplen, optimize, budget_s)
        with _lock:
            _trim()
    except _OverBudget as exc:
        entry.error, entry.over_budget_s = str(exc), budget_s
    except _CannotRun as exc:  # not libpcap's answer: the next caller tries again
        _forget(key, entry)
        entry.error = str(exc)
    except BpfError as exc:
        entry.error = str(exc)
    except BaseException:
        _forget(key, entry)
        entry.error = "the compile failed unexpectedly (see the log)"
        raise
    finally:
        entry.done.set()


def _forget(key: _Key, entry: _Entry) -> None:
    with _lock:
        if _cache.get(key) is entry:
            del _cache[key]


def _compile_here(expression: str, dlt: int, snaplen: int, optimize: bool) -> Program:
    try:
        with _compile_lock:
            prog = pcapy.compile(dlt, snaplen, expression, int(optimize), 0)
    except pcapy.PcapError as exc:
        raise BpfError(str(exc).removeprefix(_PARSE_PREFIX)) from None
    return tuple(tuple(int(v) for v in insn) for insn in prog.get_bpf())


def _compile_in_child(expression: str, dlt: int, snaplen: int, optimize: bool,
                      budget_s: float) -> Program:
    """bpf_worker.py's answer, or _OverBudget once `budget_s` has passed (the child is killed:
    subprocess.run kills it on its timeout and reaps it)."""
    import json  # only for long filters: not on every start (replay's is benchmarked)
    import subprocess

    request = json.dumps({"expression": expression, "dlt": dlt, "snaplen": snaplen,
                          "optimize": int(optimize),
                          "max_memory_bytes": defaults.BPF_COMPILE_MAX_MEMORY_BYTES})
    args = [sys.executable, "-I", "-S", str(_WORKER), str(Path(pcapy.__file__).parent)]
    started = time.monotonic()
    with _lock:
        _counts["in_child"] += 1
    try:
        done = subprocess.run(args, input=request.encode(), capture_output=True,
                              timeout=budget_s, check=False)
    except OSError as exc:
        raise _CannotRun(f"libpcap's compiler process could not start ({exc})") from None
    except subprocess.TimeoutExpired:
        with _lock:
            _counts["over_budget"] += 1
        log.warning("event=bpf_compile_over_budget budget_s=%g chars=%d filter=%s", budget_s,
                    len(expression), shown_filter(expression))
        raise _OverBudget(
            f"libpcap did not finish compiling it within {budget_s:g} s (the compile budget): "
            "its optimizer's time grows about with the cube of the number of terms; use "
            "fewer, e.g. one portrange or net instead of many ports or hosts") from None
    took_s = time.monotonic() - started
    try:
        reply = json.loads(done.stdout)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        tail = done.stderr.decode("utf-8", "replace").strip()[-200:]
        raise BpfError(f"libpcap's compiler failed (exit status {done.returncode}"
                       f"{': ' + tail if tail else ''})")
    log.debug("event=bpf_compiled_in_child took_s=%.3f chars=%d", took_s, len(expression))
    if "error" in reply:
        raise BpfError(str(reply["error"]).removeprefix(_PARSE_PREFIX))
    return tuple(tuple(int(v) for v in insn) for insn in reply["program"])
