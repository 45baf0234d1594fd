"""The report: which machine and which pushcap were measured, and the table printed at the end.

A benchmark result means little without the machine, the tcpdump version and the pushcap commit
it came from, so these go into the JSON; the table puts each scenario's pushcap and reference
figures and their ratio on one line, with the check that makes the row trustworthy (counts
match, goal met).
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from .config import MB, MIB


# --- machine, table ------------------------------------------------------------------------
def machine() -> dict:
    model = ""
    try:
        model = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text()).group(1)
    except (OSError, AttributeError):
        pass
    tcpdump = subprocess.run(["tcpdump", "--version"], capture_output=True, text=True)
    return {"host": platform.node(), "cpu": model, "cores": os.cpu_count(),
            "kernel": platform.release(), "python": platform.python_version(),
            "tcpdump": tcpdump.stdout.splitlines()[0] if tcpdump.stdout else ""}


SHMEM_WARNING_BYTES = 1 << 30


def memory() -> dict:
    """The machine's memory as the run starts (/proc/meminfo, bytes). Files left in tmpfs
    (`Shmem`) and a full page cache make every fresh page a tool writes cost more: on the
    2-core VM, with ~10 GB of leftover tmpfs files and page cache, pushcap's two File lanes cost
    5-7x their usual CPU at 300k packets/s (L2), by the memory, not by the code."""
    fields = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("MemTotal", "MemAvailable", "Cached", "Shmem"):
                fields[name] = int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return fields


PAGE_REPORTING = Path("/sys/module/page_reporting/parameters")


def page_reporting() -> dict:
    """The guest's free page reporting, where the kernel has it: the smallest free block it
    hands back to the host (`order`, pages as a power of two) and the KiB handed back so far.
    With reporting on, a file deleted after one run gives its memory back to the host and the
    next run's writes fault it in again, which on the 2-core AMD VM of 2026-12-07 (order 9,
    37 GB handed back in the first 15 minutes) tripled both tools' CPU per packet in L2. Read at
    the start and the end of a run, the difference says how much of that a run paid.
    (`reported_kib` is that VM kernel's own; mainline Linux has only the order.)"""
    fields = {}
    for name, key in (("page_reporting_order", "order"), ("reported_kib", "reported_kib")):
        try:
            fields[key] = int((PAGE_REPORTING / name).read_text())
        except (OSError, ValueError):
            pass
    return fields


def reported_during(at_start: dict) -> dict:
    """Free page reporting as the run ended, with the GiB the guest handed back to its host
    since `at_start` (page_reporting()); empty where the kernel has none."""
    at_end = page_reporting()
    if "reported_kib" in at_start and "reported_kib" in at_end:
        at_end["reported_gib_during_run"] = round(
            (at_end["reported_kib"] - at_start["reported_kib"]) / 2**20, 1)
    return at_end


def memory_warning(before: dict) -> str | None:
    """A line for the report when other files hold memory the run's writes need."""
    if before.get("Shmem", 0) > SHMEM_WARNING_BYTES:
        return (f"warning: {before['Shmem'] / 2**30:.1f} GiB of tmpfs files were in memory as "
                "the run started (leftovers in /dev/shm?): write-heavy figures (L2, replays) "
                "cost more than on a clean machine")
    return None


def source_version(src: Path) -> dict:
    """Which pushcap was measured: the tree, and its git commit and state when it has one."""
    result: dict[str, str | bool] = {"source": str(src)}
    git = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True,
                         text=True)
    if git.returncode == 0:
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "pushcap"],
                               capture_output=True, text=True).stdout.strip()
        result.update(commit=git.stdout.strip(), uncommitted_changes=bool(dirty))
    return result


def fmt_mb(n: float) -> str:
    return f"{n / MB:.0f}"


def fmt_mib(n: float) -> str:
    return f"{n / MIB:.1f}"


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def m1_breakdown(r: dict) -> str:
    """RSS = interpreter base + the ring's own bytes + the rest (mostly malloc's free-but-kept
    heap: evicted batches freed between live ones), against the goal. MiB."""
    ring = r["ring_record_bytes"] + r["ring_array_bytes"]
    other = r["rss_bytes"] - r["base_rss_bytes"] - ring
    text = (f"RSS {fmt_mib(r['rss_bytes'])} MiB = base {fmt_mib(r['base_rss_bytes'])} + ring "
            f"{fmt_mib(ring)} (records {fmt_mib(r['ring_record_bytes'])} + arrays "
            f"{fmt_mib(r['ring_array_bytes'])}) + other {fmt_mib(other)}")
    if r.get("malloc_free_bytes") is not None:
        text += f" (of which malloc's free heap {fmt_mib(r['malloc_free_bytes'])})"
    text += (f" = {r['rss_over_bound']:.2f}x bound; goal <= 1.10 x bound + 100 MB = "
             f"{fmt_mib(r['goal_bytes'])} MiB: {'met' if r['meets_goal'] else 'NOT MET'}")
    if r.get("rss_after_malloc_trim_bytes"):
        text += (f"; after malloc_trim(0): {fmt_mib(r['rss_after_malloc_trim_bytes'])} MiB = "
                 f"{r['rss_after_malloc_trim_bytes'] / r['bound_bytes']:.2f}x bound")
    return text


def print_table(results: dict, emit: Callable[[str], None] = print) -> None:
    head = (f"{'':4} {'scenario':32} {'pushcap wall/cpu/rss':>24} {'reference wall/cpu/rss':>24}"
            f" {'ratio wall/cpu/rss':>22}  check")
    emit(head)
    emit("-" * len(head))
    for name, r in results.items():
        if r.get("kind") == "replay":
            p, ref = r["pushcap"], r["reference"]
            ours = f"{p['wall_s']:.2f}s {p['cpu_s']:.2f}s {fmt_mb(p['maxrss_bytes'])}MB"
            theirs = f"{ref['wall_s']:.2f}s {ref['cpu_s']:.2f}s {fmt_mb(ref['maxrss_bytes'])}MB"
            rat = r["ratio"]
            rr = f"{fmt_ratio(rat['wall'])} {fmt_ratio(rat['cpu'])} {fmt_ratio(rat['rss'])}"
            check = "counts match" if r["counts_match"] else "COUNTS DIFFER"
            emit(f"{name:4} {r['title']:32} {ours:>24} {theirs:>24} {rr:>22}  {check}; "
                 f"pushcap anon peak {fmt_mb(p['anon_peak_bytes'])}MB")
            if name == "P1":
                verdict = "met" if rat["cpu"] is not None and rat["cpu"] <= 1.0 else "NOT MET"
                emit(f"{'':4} {'  goal: CPU <= tcpdump, start incl.':32} "
                     f"{fmt_ratio(rat['cpu']):>72}  {verdict}")
                if disk := r.get("output_on_disk"):
                    # tmpfs, where every scenario writes, makes tcpdump's 4 KiB writes cheaper
                    # than a disk's file system does; a user's replay writes to a disk
                    verdict = "met" if disk["ratio_cpu"] is not None and \
                        disk["ratio_cpu"] <= 1.0 else "NOT MET"
                    emit(f"{'':4} {'  the same, output on the disk':32} "
                         f"{disk['pushcap_cpu_s']:>23.2f}s {disk['reference_cpu_s']:>23.2f}s "
                         f"{fmt_ratio(disk['ratio_cpu']):>22}  {verdict} ({disk['where']})")
            if r.get("per_mpkt_cpu_s"):
                pp, fo, fr = r["per_mpkt_cpu_s"], r["fixed_pushcap"], r["fixed_reference"]
                emit(f"{'':4} {'  CPU per 1M packets, start excl.':32} {pp['pushcap']:>23.2f}s "
                     f"{pp['reference']:>23.2f}s {fmt_ratio(pp['ratio']):>22}  fixed cost "
                     f"({r['fixed_packets']:,}-packet run): pushcap {fo['cpu_s']:.2f}s, "
                     f"tcpdump {fr['cpu_s']:.2f}s")
        elif name == "M1" and "rss_bytes" in r:
            emit(f"{name:4} {'ring memory, bound ' + fmt_mib(r['bound_bytes']) + ' MiB':32} "
                 f"{m1_breakdown(r)}")
        elif name == "L1" and "best_lossless_pps" in r:
            best, actual = r["best_lossless_pps"], r.get("best_lossless_actual_pps")
            emit(f"{name:4} {'live veth, highest lossless pps':32} pushcap {best['pushcap']:,} "
                 f"(2 targets) vs tcpdump {best['tcpdump']:,} ('tcp') = "
                 f"{fmt_ratio(r['ratio'])}; top rate reached lossless: {r['hit_top_rate']}"
                 + (f"; fastest lossless step as sent: pushcap {actual['pushcap']:,} pps, "
                    f"tcpdump {actual['tcpdump']:,} pps" if actual else "")
                 + (f"; {r['error'][:200]}" if r.get("error") else ""))
        elif name == "L2" and r.get("rates"):
            for row in r["rates"]:
                per = row["us_per_packet"]
                cells = "  ".join(f"{who} {per[who] if per[who] is not None else 'LOSSY'}"
                                  for who in per)
                title = f"live CPU us/packet @ {row['rate_pps']:,} pps"
                emit(f"{name:4} {title:32} {cells}; pushcap/tcpdump "
                     f"{fmt_ratio(row['pushcap_vs_tcpdump'])}, "
                     f"pushcap/floor {fmt_ratio(row['pushcap_vs_floor'])}; with trigger+flows: "
                     f"/tcpdump {fmt_ratio(row['pushcap_full_vs_tcpdump'])}, /floor "
                     f"{fmt_ratio(row['pushcap_full_vs_floor'])}"
                     + "".join(f"; {key.replace('_vs_', '/')} {fmt_ratio(value)}"
                               for key, value in row.items() if "model_" in key))
            if r.get("error"):
                emit(f"{'':4} {r['error'][:200]}")
        elif name == "T1" and "p99_ms" in r:
            look, live = r["series"]["lookback"], r["series"]["live"]
            ours = f"p50 {look['p50_ms']:.0f}ms p99 {look['p99_ms']:.0f}ms"
            verdict = "met" if r["meets_goal"] else "NOT MET"
            emit(f"{name:4} {'trigger latency, before=10 s':32} {ours:>24} {'n/a':>24} "
                 f"{'goal p99 < ' + format(r['goal_p99_ms'], '.0f') + 'ms':>22}  {verdict}; "
                 f"{look['requests']} requests, {look['packets_per_capture']:,} packets/capture "
                 f"from the lookback ({r['fill_s']:g} s of {r['actual_pps'] or 0:,} pkt/s in the"
                 f" ring), ended by {look['reasons']}; with {r['live_extra_s']:g} s of live "
                 f"traffic: p50 {live['p50_ms']:.0f}ms p99 {live['p99_ms']:.0f}ms, "
                 f"{live['packets_per_capture']:,} packets/capture")
        elif name == "L3":
            from .quiet_link import print_l3

            print_l3(r, emit)
        elif name == "T2" and "max_ms" in r:
            from .trigger_archive import print_t2

            print_t2(r, emit)
        elif name == "Q1" and "goals" in r:
            from .archive import print_q1

            print_q1(r, emit)
        elif name == "I1" and "index_cpu_per_mpkt_s" in r:
            from .archive import print_i1

            print_i1(r, emit)
        else:
            emit(f"{name:4} {r.get('title', ''):32} skipped: {r.get('skipped', '?')}")
