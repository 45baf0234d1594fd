"""L3: a quiet link's live CPU, pushcap and tcpdump capturing the same veth at the same time.

Issue 19 asks for CPU per packet "at every rate", and names the quiet links an operator captures
by the dozen: at 10k packets/s a batch's fixed cost (thread wake-ups, a few hundred µs of Python
per lane), not the packets, is most of what pushcap spends. L2 runs its tools one after another,
and on the 2-core VM the same tool's CPU moved by 30% from one run to the next at this rate
(19.8 to 26.4 ms a second): more than the differences worth measuring here. So L3 runs the two
side by side on one veth, paired: both get the same packets, in the same seconds, on the same
VM; at 10k packets/s the sender and both tools together use a few per cent of the two cores,
so neither takes CPU from the other. pushcap has L2's two File targets (every packet, `tcp`,
without the trigger listener), tcpdump its two processes, both pushcap's kernel buffer.

pushcap's ring is L3_RING_BYTES here, not the default 256 MiB: a ring still filling takes fresh
pages (zeroed, and on a VM backed by the host first), a start-up cost that at 10k packets/s
lasts 45 s with the default; once full, its arenas are recycled, whatever the bound. The
warm-up (two loops of the trace) fills it. Each run counts every packet in both tools' files:
a run that lost any does not count.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time
from pathlib import Path

from .config import L3_RATE_PPS, L3_REPS, L3_RING_BYTES, L3_TRACE_PACKETS
from .inputs import ensure_trace
from .live import VethLab, l1_unavailable
from .live_cpu import Capture, captured, start_pushcap, start_tcpdump
from .measure import ratio

WARMUP_LOOPS = 2
DRAIN_S = 2.0  # after the sender ends, in the measured window (both tools alike)


def bench_l3(trace_dir: Path, scratch: Path, loops: int, reps: int = L3_REPS,
             rate: int = L3_RATE_PPS) -> dict:
    """`reps` paired runs of `loops` trace loops at `rate`; each tool's CPU a second and per
    packet, and the median of the paired ratios."""
    reason = l1_unavailable()
    if reason:
        return {"skipped": reason}
    trace = ensure_trace(trace_dir, L3_TRACE_PACKETS)
    runs = []
    try:
        with VethLab() as lab:
            for rep in range(reps):
                runs.append(_paired_run(lab, trace, rate, loops, scratch / f"l3-{rep}"))
    except (subprocess.SubprocessError, OSError, RuntimeError) as exc:
        return {"error": f"stopped early: {exc}", "runs": runs}
    ratios = [run["ratio"] for run in runs if run["lossless"]]
    return {"rate_pps": rate, "trace_packets": L3_TRACE_PACKETS, "loops": loops, "reps": reps,
            "ring_bytes": L3_RING_BYTES, "runs": runs,
            "ratio": round(statistics.median(ratios), 3) if ratios else None,
            "lossless_runs": len(ratios)}


def _paired_run(lab: VethLab, trace: Path, rate: int, loops: int, work: Path) -> dict:
    tools: dict[str, Capture] = {}
    try:
        (work / "pushcap").mkdir(parents=True)
        (work / "tcpdump").mkdir()
        tools["pushcap"] = start_pushcap(lab, work / "pushcap", ring_bytes=L3_RING_BYTES)
        tools["tcpdump"] = start_tcpdump(lab, work / "tcpdump")
        for capture in tools.values():
            capture.wait_ready()
        warm = lab.replay(trace, rate, WARMUP_LOOPS)
        time.sleep(DRAIN_S)
        before = {who: capture.cpu_s() for who, capture in tools.items()}
        started = time.monotonic()
        sent = lab.replay(trace, rate, loops)
        # the last partial block reaches each tool within its block timer (tcpdump's 1 s),
        # and a tool stopped before then never writes it
        time.sleep(DRAIN_S)
        window_s = time.monotonic() - started
        cpu = {who: capture.cpu_s() - before[who] for who, capture in tools.items()}
    finally:
        for capture in tools.values():
            capture.stop()
    want = warm["sent"] + sent["sent"]
    got = {who: captured(who, work / who)[0] for who in tools}
    shutil.rmtree(work, ignore_errors=True)
    lossless = warm["failed"] == 0 and sent["failed"] == 0 and all(n == want for n in got.values())
    return {"sent": sent["sent"], "actual_pps": sent["actual_pps"], "window_s": round(window_s, 2),
            "captured": got, "lossless": lossless,
            "cpu_ms_per_s": {who: round(1000 * c / window_s, 2) for who, c in cpu.items()},
            "us_per_packet": {who: round(1e6 * c / sent["sent"], 3) for who, c in cpu.items()},
            "ratio": ratio(cpu["pushcap"], cpu["tcpdump"])}


def print_l3(r: dict, emit) -> None:
    """One line: each paired run's CPU a second and the median ratio."""
    if "runs" not in r:
        emit(f"L3   quiet link: {r.get('skipped') or r.get('error')}")
        return
    pairs = ", ".join(f"{run['cpu_ms_per_s']['pushcap']:.1f}/{run['cpu_ms_per_s']['tcpdump']:.1f}"
                      + ("" if run["lossless"] else " LOSSY") for run in r["runs"])
    verdict = "met" if r.get("ratio") is not None and r["ratio"] <= 1.0 else "NOT MET"
    emit(f"L3   {'quiet link ' + format(r.get('rate_pps', 0), ',') + ' pps, paired':32} "
         f"pushcap/tcpdump CPU ms a second per run: {pairs}; median ratio "
         f"{r['ratio'] if r.get('ratio') is not None else '-'}x (goal <= 1.0x: {verdict})"
         + (f"; {r['error'][:200]}" if r.get("error") else ""))
