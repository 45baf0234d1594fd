"""pushcap side by side with tcpdump on the same input, in the same run (issue 7).

Every timed scenario runs pushcap and the reference alternately (pushcap first on even
repetitions, the reference first on odd ones, so neither always gets the warmer cache), `--reps`
times, and reports medians and the ratio pushcap / reference:

- wall seconds (start of the child to its exit, startup included for both),
- CPU seconds (user + sys of the child, from `os.wait4`),
- peak RSS (`ru_maxrss` of the child). pushcap reads a pcap file through `mmap`, so its peak RSS
  includes the file's page-cache pages it touched; the sampled peak of `RssAnon` (the process's
  own heap) is reported beside it so the two can be told apart.

Scenarios: R1, R2, R4 (replay vs `tcpdump -r IN -w OUT [FILTER]`), P1 (R2's job on 300k
packets by the pip-installed wheel, start-up included: issue 15's goal), M1 (ring memory vs its byte
bound), L1 (live capture on a veth pair at rising `tcpreplay` rates), L2 (live CPU per packet at
fixed rates against two tcpdumps and a counting-only libpcap floor, benchlib/live_cpu.py), L3
(a quiet link's live CPU, pushcap and tcpdump capturing one veth at once, benchlib/
quiet_link.py), T1
(trigger latency: a private redis-server and `pushcap run` on `lo` with a steady UDP stream in
the ring, publish -> result message; tcpdump has no equivalent, so T1 is checked against its
goal, p99 < 500 ms), Q1 (`pushcap query` for one host of an indexed archive vs `tcpdump -V` over
its files), I1 (a replay's CPU with `Index = true` vs without, beside tcpdump) and T2 (a trigger
with `before = 3600` served from an hour of indexed archive and a 60 s ring, against its goal,
under 2 s, its pcap checked against `pushcap query`), issue 20.
Traces come from tools/gen_trace.py (seeded) and are cached in `--trace-dir`. Output files go
to `--scratch` (tmpfs by default, so the disk's writeback does not add noise to
either side) and are deleted after each run.

The scenarios live in tools/benchlib/ (one module each, with what they share: config, measure,
inputs, report); this file is the command line that runs them.

Usage: ``python tools/bench.py [--packets N] [--reps N] [--scenarios R1,R2,...] [--quick]``
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

# tools/ is not a package: benchlib (and gen_trace, which it imports) are found through the
# path entry above.
from benchlib import config  # noqa: E402
from benchlib.archive import archive_trace, bench_i1, bench_q1  # noqa: E402
from benchlib.config import (  # noqa: E402
    ALL_SCENARIOS,
    DEFAULT_REPLAY_PACKETS,
    DEFAULT_REPS,
    DEFAULT_SCENARIOS,
    FIXED_PACKETS,
    L1_RATES_PPS,
    L1_STEP_S,
    L1_TRACE_PACKETS,
    L2_PACKETS_PER_RATE,
    L2_RATES_PPS,
    L2_REPS,
    L3_LOOPS,
    L3_QUICK_LOOPS,
    L3_REPS,
    M1_BOUND_BYTES,
    M1_QUICK_BOUND_BYTES,
    Q1_PACKETS,
    QUICK_PACKETS,
    T1_FILL_S,
    T1_QUICK_FILL_S,
    T1_QUICK_REQUESTS,
    T1_REQUESTS,
    T2_PACKETS,
    T2_QUICK_PACKETS,
    T2_QUICK_REQUESTS,
    T2_REQUESTS,
)
from benchlib.inputs import ensure_trace  # noqa: E402
from benchlib.live import bench_l1  # noqa: E402
from benchlib.live_cpu import bench_l2  # noqa: E402
from benchlib.measure import RSS_METHOD  # noqa: E402
from benchlib.memory import bench_m1, m1_child  # noqa: E402
from benchlib.package import P1, P1_PACKETS, install_wheel, use_installed  # noqa: E402
from benchlib.quiet_link import bench_l3  # noqa: E402
from benchlib.replay import REPLAY_SCENARIOS, bench_replay  # noqa: E402
from benchlib.report import (  # noqa: E402
    machine,
    memory,
    memory_warning,
    page_reporting,
    print_table,
    reported_during,
    source_version,
)
from benchlib.trigger import bench_t1  # noqa: E402
from benchlib.trigger_archive import bench_t2  # noqa: E402


# --- main --------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--packets", type=int, default=DEFAULT_REPLAY_PACKETS,
                   help="packets in the replay trace (R1, R2, R4, M1)")
    p.add_argument("--reps", type=int, default=DEFAULT_REPS)
    p.add_argument("--q1-packets", type=int, default=Q1_PACKETS,
                   help="packets in Q1's archive (issue 20 asks for 10000000, ~5.6 GB)")
    p.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                   help=f"comma separated, from {','.join(ALL_SCENARIOS)}")
    p.add_argument("--quick", action="store_true", help="tiny trace, one repetition (smoke test)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results.json")
    p.add_argument("--trace-dir", type=Path, default=REPO / "bench" / "traces")
    p.add_argument("--scratch", type=Path, default=None,
                   help="where output files are written (default: /dev/shm, else the temp dir)")
    p.add_argument("--m1-bound", type=int, default=None, help="ring byte bound for M1")
    p.add_argument("--l1-packets", type=int, default=L1_TRACE_PACKETS)
    p.add_argument("--l1-rates", default=",".join(str(r) for r in L1_RATES_PPS))
    p.add_argument("--l1-step-s", type=float, default=L1_STEP_S)
    p.add_argument("--l1-tcpdump-args", default="",
                   help='extra tcpdump options for L1, e.g. "-B 65536" (pushcap\'s buffer)')
    p.add_argument("--l2-packets", type=int, default=L2_PACKETS_PER_RATE,
                   help="L2: packets sent per rate (whole loops of the L1 trace)")
    p.add_argument("--l2-rates", default=",".join(str(r) for r in L2_RATES_PPS))
    p.add_argument("--l2-reps", type=int, default=L2_REPS,
                   help="L2: runs of each tool per rate, alternating (medians reported)")
    p.add_argument("--l3-loops", type=int, default=L3_LOOPS,
                   help="L3: trace loops measured per paired run (5 s each at 10k pps)")
    p.add_argument("--l3-reps", type=int, default=L3_REPS, help="L3: paired runs")
    p.add_argument("--l2-models", action="store_true",
                   help="L2: also run pushcap's data path written in C, as today and zero-copy "
                   "(tools/floor/design_models.c)")
    p.add_argument("--t1-fill-s", type=float, default=None,
                   help=f"T1: seconds of traffic in the ring before the requests "
                   f"(default {T1_FILL_S:g}; --quick {T1_QUICK_FILL_S:g})")
    p.add_argument("--t1-requests", type=int, default=None,
                   help=f"T1: requests per series (default {T1_REQUESTS}; --quick "
                   f"{T1_QUICK_REQUESTS})")
    p.add_argument("--t2-packets", type=int, default=None,
                   help=f"T2: packets in the archive's hour (default {T2_PACKETS}; --quick "
                   f"{T2_QUICK_PACKETS})")
    p.add_argument("--t2-requests", type=int, default=None,
                   help=f"T2: requests (default {T2_REQUESTS}; --quick {T2_QUICK_REQUESTS})")
    p.add_argument("--pushcap-src", type=Path, default=None,
                   help="run pushcap from this source tree (PYTHONPATH) instead of the install")
    p.add_argument("--m1-child", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.scenarios = [s.strip().upper() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(ALL_SCENARIOS)
    if unknown:
        p.error(f"unknown scenario(s) {sorted(unknown)}; known: {', '.join(ALL_SCENARIOS)}")
    if args.l2_reps < 1:
        p.error("--l2-reps must be at least 1")
    if args.quick:
        args.packets, args.reps = QUICK_PACKETS, 1
        args.l1_packets, args.l1_step_s = QUICK_PACKETS, 0.5
        args.l1_rates = "10000"
        args.l2_packets, args.l2_rates, args.l2_reps = QUICK_PACKETS, "10000", 1
        args.l3_loops, args.l3_reps = L3_QUICK_LOOPS, 1
        args.q1_packets = 20 * QUICK_PACKETS
    if args.t1_fill_s is None:
        args.t1_fill_s = T1_QUICK_FILL_S if args.quick else T1_FILL_S
    if args.t1_requests is None:
        args.t1_requests = T1_QUICK_REQUESTS if args.quick else T1_REQUESTS
    if args.t1_fill_s <= 0 or args.t1_requests < 1:
        p.error("--t1-fill-s must be > 0 and --t1-requests >= 1")
    if args.t2_packets is None:
        args.t2_packets = T2_QUICK_PACKETS if args.quick else T2_PACKETS
    if args.t2_requests is None:
        args.t2_requests = T2_QUICK_REQUESTS if args.quick else T2_REQUESTS
    if args.t2_packets < 1000 or args.t2_requests < 1:
        p.error("--t2-packets must be >= 1000 and --t2-requests >= 1")
    if args.m1_bound is None:
        args.m1_bound = M1_QUICK_BOUND_BYTES if args.quick else M1_BOUND_BYTES
    return args


def default_scratch() -> Path:
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    return base / f"pushcap-bench-{os.getpid()}"


_installed: dict[str, Path] = {}


def installed(args: argparse.Namespace) -> Path:
    """The checkout's wheel installed in a venv of its own (built once per bench run): P1 and
    Q1 measure pushcap as `pip install` gives it, a console script with no editable-install
    finder (setuptools' finder alone costs ~13 ms of every start of the checkout's venv)."""
    if "pushcap" not in _installed:
        _installed["pushcap"] = install_wheel(REPO, args.trace_dir.parent / "p1")
    return _installed["pushcap"]


def run_scenarios(args: argparse.Namespace, scratch: Path) -> dict:
    results: dict[str, dict] = {}
    trace = None
    for name in args.scenarios:
        print(f"running {name} ...", file=sys.stderr)
        if name in REPLAY_SCENARIOS or name == "M1":
            trace = trace or ensure_trace(args.trace_dir, args.packets)
        if name in REPLAY_SCENARIOS:
            small_packets = min(FIXED_PACKETS, args.packets // 10)
            small = ensure_trace(args.trace_dir, small_packets) if small_packets else None
            r = bench_replay(REPLAY_SCENARIOS[name], trace, args.packets, args.reps, scratch,
                             small, small_packets)
            results[name] = {"kind": "replay", **asdict(r)}
        elif name == "M1":
            results[name] = {"kind": "memory", "title": "ring memory",
                             **bench_m1(trace, args.m1_bound, args.reps, scratch)}
        elif name == "L1":
            rates = tuple(int(float(r)) for r in args.l1_rates.split(","))
            results[name] = {"kind": "live", "title": "live veth",
                             **bench_l1(args.l1_packets, rates, args.l1_step_s, args.trace_dir,
                                        scratch)}
        elif name == "L2":
            rates = tuple(int(float(r)) for r in args.l2_rates.split(","))
            results[name] = {"kind": "live_cpu", "title": "live CPU per packet",
                             **bench_l2(args.l1_packets, args.l2_packets, rates, args.trace_dir,
                                        scratch, args.l2_reps, args.l2_models)}
        elif name == "L3":
            results[name] = {"kind": "live_quiet", "title": "quiet link, paired",
                             **bench_l3(args.trace_dir, scratch, args.l3_loops, args.l3_reps)}
        elif name == "P1":
            packets = min(P1_PACKETS, args.packets)
            p1_trace = ensure_trace(args.trace_dir, packets)
            use_installed(installed(args))
            disk = args.trace_dir.parent / "p1-output"  # the traces' file system, not tmpfs
            try:
                r = bench_replay(P1, p1_trace, packets, args.reps, scratch)
                disk.mkdir(parents=True, exist_ok=True)
                on_disk = bench_replay(P1, p1_trace, packets, args.reps, disk)
            finally:
                use_installed(None)
                shutil.rmtree(disk, ignore_errors=True)
            results[name] = {"kind": "replay", **asdict(r), "output_on_disk": {
                "where": str(disk), "pushcap_cpu_s": on_disk.pushcap.cpu_s,
                "reference_cpu_s": on_disk.reference.cpu_s, "ratio_cpu": on_disk.ratio["cpu"],
                "counts_match": on_disk.counts_match}}
        elif name == "Q1":
            q1_trace = archive_trace(args.trace_dir, args.q1_packets)
            use_installed(installed(args))  # the command as users run it (see benchlib/archive)
            try:
                results[name] = {"kind": "archive", **bench_q1(q1_trace, args.q1_packets,
                                                               args.reps, scratch)}
            finally:
                use_installed(None)
        elif name == "I1":
            trace = trace or ensure_trace(args.trace_dir, args.packets)
            small_packets = min(FIXED_PACKETS * 10, args.packets // 10)
            small = ensure_trace(args.trace_dir, small_packets) if small_packets else None
            results[name] = {"kind": "archive", **bench_i1(trace, args.packets, args.reps,
                                                           scratch, small, small_packets)}
        elif name == "T1":
            results[name] = {"kind": "trigger", "title": "trigger latency",
                             **bench_t1(args.t1_fill_s, args.t1_requests, scratch)}
        elif name == "T2":
            results[name] = {"kind": "trigger", "title": "trigger into the archive",
                             **bench_t2(args.t2_packets, args.t2_requests, args.t1_fill_s,
                                        scratch)}
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.m1_child:
        print(json.dumps(m1_child(args.m1_child, args.m1_bound)))
        return 0
    config.L1_TCPDUMP_ARGS.extend(args.l1_tcpdump_args.split())
    pushcap_src = REPO
    if args.pushcap_src:
        pushcap_src = args.pushcap_src.resolve()
        config.CHILD_ENV = {**os.environ, "PYTHONPATH": str(pushcap_src)}
    # Measure the code as installed code runs: from compiled bytecode (an editable install with
    # PYTHONDONTWRITEBYTECODE=1 would otherwise recompile changed modules at every start).
    compileall.compile_dir(str(pushcap_src / "pushcap"), quiet=1)
    scratch = args.scratch or default_scratch()
    scratch.mkdir(parents=True, exist_ok=True)
    memory_at_start = memory()
    reporting_at_start = page_reporting()
    warning = memory_warning(memory_at_start)
    if warning:
        print(warning, file=sys.stderr)
    try:
        results = run_scenarios(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report = {"machine": {**machine(), "memory_at_start": memory_at_start,
                          "page_reporting": reported_during(reporting_at_start)},
              "pushcap": source_version(pushcap_src),
              "packets": args.packets, "reps": args.reps, "quick": args.quick,
              "rss_method": RSS_METHOD, "scenarios": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"pushcap vs tcpdump: {args.packets:,} packets, median of {args.reps} "
          f"(wall s / CPU s / peak RSS; ratio = pushcap / reference)")
    print_table(results)
    if warning:
        print(warning)
    reported = report["machine"]["page_reporting"].get("reported_gib_during_run")
    if reported:
        print(f"free page reporting: the guest handed {reported} GiB back to its host during the "
              "run; each fresh page a tool then writes costs it a fault on the host (both "
              "tools alike; write-heavy figures run higher than on a machine without it)")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
