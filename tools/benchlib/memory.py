"""M1: the memory a full capture ring holds, against its byte bound.

pushcap keeps recent traffic in a ring bounded in bytes; an operator sizes the machine from
that bound, so the process's RSS with a full ring must stay within 1.10 x bound + 100 MB. The
ring is filled in a fresh process (tools/bench.py re-executed with `--m1-child`), so the
benchmark's own memory does not count, and the RSS is broken down into interpreter base, the
ring's own bytes and what malloc keeps.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
from pathlib import Path

from .config import M1_BASE_ALLOWANCE_BYTES, M1_FACTOR
from .measure import run_measured

# The command line whose `--m1-child TRACE --m1-bound N` runs m1_child in a fresh process.
BENCH_SCRIPT = Path(__file__).resolve().parents[1] / "bench.py"


# --- M1: ring memory ----------------------------------------------------------------------------
def proc_status() -> dict[str, int]:
    """This process's memory lines of /proc/self/status, in bytes."""
    result = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                result[key] = int(rest.split()[0]) * 1024
    return result


def m1_child(trace: Path, bound_bytes: int) -> dict:
    """Fill a Ring past `bound_bytes` from the trace and measure this process.

    The file source's batches are windows of the mapped trace (file-backed pages, dropped
    behind the reader); a live batch owns its memory, so each batch is copied into buffers of
    its own before it enters the ring, as live capture builds them. The mapping is released
    when the source's generator is closed, before the measurement, so what remains is the ring
    plus the interpreter's base. Both the base before filling and the breakdown are reported.
    """
    import numpy as np

    from pushcap.capture.batch import Batch
    from pushcap.capture.ring import Ring
    from pushcap.capture.source import open_file_source

    gc.collect()
    base = proc_status()
    source = open_file_source(trace)
    ring = Ring("m1", source.linktype, source.snaplen, max_seconds=1e12, max_bytes=bound_bytes)
    fed_bytes = 0
    batches = source.batches()
    for batch in batches:
        ring.append(Batch(np.array(batch.records, dtype=np.uint8),
                          *(np.array(column, dtype=np.int64) for column in batch.columns),
                          batch.linktype, batch.snaplen, nano=batch.nano))
        fed_bytes += batch.nbytes
    during = proc_status()
    batches.close()
    del batches, batch, source
    gc.collect()
    after = proc_status()
    held = ring.snapshot()
    packets, accounted_bytes, _ = ring.span()  # what the ring counts against its bound
    record_bytes = sum(len(b.records) for b in held)
    array_bytes = sum(sum(a.nbytes for a in (b.offsets, b.ts_ns, b.caplen, b.wirelen))
                      for b in held if isinstance(b.offsets, np.ndarray))
    ring_bytes = record_bytes + array_bytes
    goal_bytes = M1_FACTOR * bound_bytes + M1_BASE_ALLOWANCE_BYTES
    # What of the rest is malloc's: free bytes it keeps in its arenas (fragmentation: freed
    # evicted batches between live ones), then RSS once malloc_trim(0) has handed free pages back
    # (after the measurement above, which is what a daemon that never trims would show).
    heap = _malloc_heap()
    trimmed = proc_status()["VmRSS"] if heap else None
    return {
        "bound_bytes": bound_bytes, "fed_bytes": fed_bytes,
        "evicted_packets": ring.evicted_packets, "ring_packets": packets,
        "ring_accounted_bytes": accounted_bytes, "ring_record_bytes": record_bytes,
        "ring_array_bytes": array_bytes, "base_rss_bytes": base["VmRSS"],
        "rss_bytes": after["VmRSS"], "rss_anon_bytes": after["RssAnon"],
        "rss_file_bytes": after["RssFile"], "rss_while_source_open_bytes": during["VmRSS"],
        "peak_rss_bytes": after["VmHWM"], "goal_bytes": int(goal_bytes),
        "rss_over_bound": round(after["VmRSS"] / bound_bytes, 3),
        "overhead_over_ring_bytes": after["VmRSS"] - base["VmRSS"] - ring_bytes,
        "malloc_free_bytes": heap["free"] if heap else None,
        "malloc_mmap_bytes": heap["mmap"] if heap else None,
        "rss_after_malloc_trim_bytes": trimmed,
        "meets_goal": after["VmRSS"] <= goal_bytes,
    }


def _malloc_heap() -> dict | None:
    """glibc's mallinfo2 (free bytes kept in arenas, bytes in mmapped chunks), then
    malloc_trim(0); None (and no trim) when the C library is not glibc >= 2.33."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost")]

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        info = libc.mallinfo2()
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return None
    return {"free": int(info.fordblks + info.fsmblks), "mmap": int(info.hblkhd)}


def bench_m1(trace: Path, bound_bytes: int, reps: int, scratch: Path) -> dict:
    runs = []
    for rep in range(reps):
        argv = [sys.executable, str(BENCH_SCRIPT), "--m1-child", str(trace),
                "--m1-bound", str(bound_bytes)]
        usage, output = run_measured(argv, scratch / f"m1-{rep}.log")
        result = json.loads(output.strip().splitlines()[-1])
        result["child_maxrss_bytes"] = usage.maxrss_bytes
        runs.append(result)
    summary = {key: statistics.median(r[key] for r in runs)
               for key in runs[0] if isinstance(runs[0][key], int | float)
               and not isinstance(runs[0][key], bool)}
    summary["meets_goal"] = all(r["meets_goal"] for r in runs)
    summary["reps"] = reps
    summary["runs"] = runs
    return summary
