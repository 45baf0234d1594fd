"""R1, R2, R4: replaying a pcap file, pushcap against `tcpdump -r IN -w OUT [FILTER]`.

The cost per packet of reading and writing a file is what issue 7 is about, so both tools run
on the same trace, alternately, and their packet counts are compared; each scenario also runs
on a small trace, so the fixed cost of a start can be told apart from the cost per packet.
"""

from __future__ import annotations

import re
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from .inputs import lua_text, pushcap_argv
from .measure import Usage, count_pcap, median_usage, prime_pages, ratio, ratios, run_measured


# --- replay scenarios --------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplayScenario:
    name: str
    title: str
    filters: tuple[str | None, ...]


REPLAY_SCENARIOS = {
    "R1": ReplayScenario("R1", "replay, 1 target, no filter", (None,)),
    "R2": ReplayScenario("R2", "replay, 1 target 'tcp'", ("tcp",)),
    "R4": ReplayScenario("R4", "replay, 4 targets vs 4 tcpdump", (None, "tcp", "udp",
                                                                  "not port 22")),
}


@dataclass
class ReplayResult:
    name: str
    title: str
    reps: int
    packets_in: int
    pushcap: Usage
    reference: Usage
    ratio: dict[str, float | None]
    pushcap_inner_s: float  # pushcap's own "read N packets in X s" (no interpreter startup)
    counts_pushcap: list[int]
    counts_reference: list[int]
    counts_match: bool
    pushcap_runs: list[Usage] = field(default_factory=list)
    reference_runs: list[Usage] = field(default_factory=list)
    fixed_packets: int = 0
    fixed_pushcap: Usage | None = None  # the same scenario on a FIXED_PACKETS trace
    fixed_reference: Usage | None = None
    per_mpkt_cpu_s: dict[str, float | None] = field(default_factory=dict)


def warm(trace: Path) -> None:
    """Read the trace once, unmeasured, right before a measured run: whichever tool runs
    first must not pay for disk reads the other gets from the page cache."""
    with trace.open("rb", buffering=0) as f:
        while f.read(16 << 20):
            pass


def run_pushcap_replay(sc: ReplayScenario, trace: Path, work: Path) -> tuple[Usage, str]:
    warm(trace)
    prime_pages(work, trace.stat().st_size * len(sc.filters))
    out = work / "out"
    out.mkdir(parents=True, exist_ok=True)
    lua = work / f"{sc.name}.lua"
    lua.write_text(lua_text([(f"t{i}", str(out / f"t{i}"), bpf)
                             for i, bpf in enumerate(sc.filters)]))
    return run_measured(pushcap_argv("replay", str(trace), "--lua", str(lua), "--quiet"),
                        work / "pushcap.log", cwd=work)


def run_tcpdump_replay(sc: ReplayScenario, trace: Path, work: Path) -> tuple[Usage, list[Path]]:
    out = work / "out"
    out.mkdir(parents=True, exist_ok=True)
    total = Usage()
    files = []
    for i, bpf in enumerate(sc.filters):
        warm(trace)
        prime_pages(work, trace.stat().st_size)
        dest = out / f"tcpdump_t{i}.pcap"
        argv = ["tcpdump", "-Z", "root", "-r", str(trace), "-w", str(dest)]
        usage, _ = run_measured(argv + ([bpf] if bpf else []), work / "tcpdump.log")
        total = total.plus(usage)
        files.append(dest)
    return total, files


def pushcap_counts(output: str, n_targets: int) -> list[int]:
    found = {m.group(1): int(m.group(2)) for m in re.finditer(r"(t\d+): packets=(\d+)", output)}
    return [found.get(f"t{i}", -1) for i in range(n_targets)]


def bench_replay(sc: ReplayScenario, trace: Path, packets: int, reps: int,
                 scratch: Path, small_trace: Path | None = None,
                 small_packets: int = 0) -> ReplayResult:
    """Both tools on `trace`, alternating; with `small_trace`, also on that (same scenario) to
    separate the fixed cost of a run from the cost per packet."""
    ours: list[Usage] = []
    refs: list[Usage] = []
    fixed_ours: list[Usage] = []
    fixed_refs: list[Usage] = []
    inner: list[float] = []
    counts_ours: list[int] = []
    counts_ref: list[int] = []
    inputs = [("full", trace)] + ([("fixed", small_trace)] if small_trace else [])
    for rep in range(reps):
        order = ("pushcap", "reference") if rep % 2 == 0 else ("reference", "pushcap")
        for kind, path in inputs:
            for who in order:
                work = scratch / f"{sc.name}-{kind}-{who}-{rep}"
                work.mkdir(parents=True)
                try:
                    if who == "pushcap":
                        usage, output = run_pushcap_replay(sc, path, work)
                        if kind == "fixed":
                            fixed_ours.append(usage)
                            continue
                        ours.append(usage)
                        match = re.search(r"in ([\d.]+) s", output)
                        inner.append(float(match.group(1)) if match else float("nan"))
                        if rep == 0:
                            counts_ours = pushcap_counts(output, len(sc.filters))
                    else:
                        usage, files = run_tcpdump_replay(sc, path, work)
                        if kind == "fixed":
                            fixed_refs.append(usage)
                            continue
                        refs.append(usage)
                        if rep == 0:
                            counts_ref = [count_pcap(f) for f in files]
                finally:
                    shutil.rmtree(work, ignore_errors=True)
    med_ours, med_ref = median_usage(ours), median_usage(refs)
    result = ReplayResult(sc.name, sc.title, reps, packets, med_ours, med_ref,
                          ratios(med_ours, med_ref), round(statistics.median(inner), 3),
                          counts_ours, counts_ref, counts_ours == counts_ref, ours, refs)
    if small_trace:
        result.fixed_packets = small_packets
        result.fixed_pushcap, result.fixed_reference = median_usage(fixed_ours), \
            median_usage(fixed_refs)
        scale = 1_000_000 / (packets - small_packets)
        ours_pp = (med_ours.cpu_s - result.fixed_pushcap.cpu_s) * scale
        ref_pp = (med_ref.cpu_s - result.fixed_reference.cpu_s) * scale
        result.per_mpkt_cpu_s = {"pushcap": round(ours_pp, 3), "reference": round(ref_pp, 3),
                                 "ratio": ratio(ours_pp, ref_pp)}
    return result
