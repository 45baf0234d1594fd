"""Q1 and I1: the archive (issue 20). Q1 queries an indexed archive for one host; I1 is what
building the index costs a replay.

Q1: a trace replayed into a File target with `Index = true` and one-minute files (the trace's
rate is set so it spans Q1_FILES minutes) is the archive. The query is for the host whose
packets are closest to Q1_SHARE of the archive. pushcap (`pushcap query --dir ARCHIVE`) and
tcpdump (`tcpdump -V LIST -w OUT 'host H'`, every file of the archive) run alternately; their
outputs are compared byte for byte, and pushcap's own account of what it read (the share of the
archive's bytes) is reported with the index's size against the data's. Goals (issue 20):
identical output, under 5% of the archive read, wall time at least 20x below tcpdump's, index
at most 10% of the data.

Q1 is measured twice for pushcap, side by side with tcpdump: standalone (`pushcap query --local
--dir ARCHIVE`: the command reads the indexes itself) and served by a running daemon, as
Stenographer's stenoread is (`pushcap query --daemon --lua L --config T --target arc`: a
`pushcap run` on lo whose indexed File target's files are the archive answers it from the
indexes it keeps in memory; its FilterBPF matches nothing lo carries, so it adds no file). The
daemon is started before the timing and its index warm-up (loading the 11 indexes, and one
query that maps the candidates' pages) is not timed; the warm-up's own time is reported. Both
outputs are compared byte for byte with tcpdump's. pushcap is the checkout's wheel installed in
a venv of its own (tools/bench.py `installed`, as P1): a command's start is part of Q1's wall
time, and the checkout's editable install adds setuptools' import finder (~13 ms a start) that
no installed pushcap has.

I1: the same replay (one target, no filter, one-minute files) with and without `Index = true`,
beside `tcpdump -r IN -w OUT`: the index's extra CPU per 1M packets (goal: at most +0.15 s).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import statistics
import subprocess
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import gen_trace  # tools/ is on sys.path (see tools/bench.py)

from . import config
from .inputs import pushcap_argv
from .measure import Usage, count_pcap, median_usage, ratios, run_measured
from .replay import warm

Q1_FILES = 10  # one-minute files in the archive
Q1_SHARE = 0.001  # the host's share of the archive's packets
Q1_GOALS = {"read_share": 0.05, "wall_ratio": 1 / 20, "index_share": 0.10}
I1_GOAL_CPU_PER_MPKT_S = 0.15


def _lua(path: Path, out: Path, index: bool, extra: str = "") -> Path:
    flag = (", Index = true" if index else "") + extra
    path.write_text('return { Target = { { Desc = "arc", Mode = "File", Path = "'
                    f'{out / "arc"}", Split = "--split-time 60e9"{flag} }} }} }}\n')
    return path


def archive_trace(trace_dir: Path, packets: int) -> Path:
    """A trace spanning Q1_FILES minutes (cached by size)."""
    trace_dir.mkdir(parents=True, exist_ok=True)
    path = trace_dir / f"archive_{packets}.pcap"
    if not path.exists():
        part = path.with_suffix(".part")
        gen_trace.generate(part, packets, seed=1, rate_pps=packets / (Q1_FILES * 60.0))
        part.rename(path)
    return path


def _pick_host(archive: Path) -> tuple[str, int]:
    """The IPv4 address (either end) whose packets are closest to Q1_SHARE of the archive."""
    import socket

    import numpy as np

    from pushcap.archive.index_file import IndexReader
    from pushcap.archive.layout import index_path

    totals: dict[bytes, int] = {}
    all_packets = 0
    for data in sorted(archive.glob("arc_*.pcap")):
        flows = IndexReader(index_path(data)).flows()
        all_packets += int(flows["packets"].sum())
        v4 = np.flatnonzero(flows["ip_version"] == 4)
        for column in ("src_raw", "dst_raw"):
            for address, count in zip(map(bytes, flows[column][v4, :4]),
                                      flows["packets"][v4].tolist(), strict=True):
                totals[address] = totals.get(address, 0) + count
    target = Q1_SHARE * all_packets
    address = min(totals, key=lambda a: abs(totals[a] - target))
    return socket.inet_ntoa(address), totals[address]


@dataclass
class Q1Result:
    title: str
    reps: int
    packets: int
    files: int
    data_bytes: int
    index_bytes: int
    host: str
    host_packets: int
    pushcap: Usage  # standalone: `pushcap query --local --dir`
    reference: Usage
    ratio: dict
    read_bytes: int
    identical: bool
    counts: dict
    daemon: Usage = field(default_factory=Usage)  # served by `pushcap run`
    daemon_ratio: dict = field(default_factory=dict)
    daemon_identical: bool = False
    daemon_warmup_s: float = 0.0  # its indexes loaded and one query, before the timing
    daemon_cache_bytes: int = 0  # what the daemon holds of the indexes in memory
    goals: dict = field(default_factory=dict)


Q1_DAEMON_FILTER = "udp port 9"  # the daemon's target takes nothing lo carries: no new file
Q1_DAEMON_START_S = 120.0


class QueryDaemon:
    """`pushcap run` on lo with the archive's target (`Index = true`), its status endpoint on
    a free port; ready once it holds every index of the archive and has answered one query."""

    def __init__(self, scratch: Path, archive: Path, files: int) -> None:
        self.lua = _lua(scratch / "q1-daemon.lua", archive, True,
                        f', FilterBPF = "{Q1_DAEMON_FILTER}"')
        self.port = _free_port()
        self.toml = scratch / "q1-daemon.toml"
        self.toml.write_text(f'[[interface]]\nname = "lo"\n[status]\nport = {self.port}\n'
                             f"[redis]\nport = {_free_port()}\n")
        self.log = scratch / "q1-daemon.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(pushcap_argv("run", "--lua", str(self.lua), "--config",
                                                      str(self.toml)),
                                         stdout=log, stderr=subprocess.STDOUT,
                                         env=config.CHILD_ENV)
        deadline = time.monotonic() + Q1_DAEMON_START_S
        while self.cache().get("index_cache_files", 0) < files:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("pushcap run did not load the archive's indexes:\n"
                                   + self.log.read_text(errors="replace")[-2000:])
            time.sleep(0.2)

    def cache(self) -> dict:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/status",
                                        timeout=5) as answer:
                return json.loads(answer.read()).get("query", {})
        except OSError:
            return {}

    def query_argv(self, host: str, out: Path) -> list[str]:
        return pushcap_argv("query", "--daemon", "--lua", str(self.lua), "--config",
                            str(self.toml), "--target", "arc", "--start", "0", "--end",
                            "4000000000", "-w", str(out), f"host {host}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_bytes(text: str) -> float:
    match = re.search(r"read ([\d.]+) MB", text)
    return float(match.group(1)) * 1e6 if match else float("nan")


def bench_q1(trace: Path, packets: int, reps: int, scratch: Path) -> dict:
    archive = scratch / "q1-archive"
    archive.mkdir(parents=True, exist_ok=True)
    lua = _lua(scratch / "q1.lua", archive, True)
    run_measured(pushcap_argv("replay", str(trace), "--lua", str(lua), "--quiet"),
                 scratch / "q1-build.log")
    files = sorted(archive.glob("arc_*.pcap"))
    data_bytes = sum(f.stat().st_size for f in files)
    index_bytes = sum(p.stat().st_size for p in (archive / ".pushcap-index").iterdir())
    host, host_packets = _pick_host(archive)
    listing = scratch / "q1-files.txt"
    listing.write_text("".join(f"{f}\n" for f in files))
    started = time.perf_counter()
    daemon = QueryDaemon(scratch, archive, len(files))
    try:
        run_measured(daemon.query_argv(host, scratch / "q1-warmup.pcap"),
                     scratch / "q1-warmup.log")
        warmup_s = time.perf_counter() - started
        runs = _q1_runs(archive, files, listing, host, daemon, reps, scratch)
        cache_bytes = int(daemon.cache().get("index_cache_bytes", 0))
    finally:
        daemon.stop()
        shutil.rmtree(archive, ignore_errors=True)
    med = {who: median_usage(usages) for who, usages in runs["usage"].items()}
    result = Q1Result("query one host, indexed archive", reps, packets, len(files), data_bytes,
                      index_bytes, host, host_packets, med["pushcap"], med["tcpdump"],
                      ratios(med["pushcap"], med["tcpdump"]),
                      int(statistics.median(runs["read"])), runs["identical"]["pushcap"],
                      runs["counts"], med["daemon"], ratios(med["daemon"], med["tcpdump"]),
                      runs["identical"]["daemon"], round(warmup_s, 2), cache_bytes)
    identical = result.identical and result.daemon_identical
    result.goals = {
        "identical": identical,
        "read_share": round(result.read_bytes / data_bytes, 4),
        "index_share": round(index_bytes / data_bytes, 4),
        "wall_ratio": result.daemon_ratio["wall"],
        "standalone_wall_ratio": result.ratio["wall"],
        "met": {"identical": identical,
                "read_share": result.read_bytes / data_bytes < Q1_GOALS["read_share"],
                "wall_ratio": (result.daemon_ratio["wall"] or 1) <= Q1_GOALS["wall_ratio"],
                "index_share": index_bytes / data_bytes <= Q1_GOALS["index_share"]},
    }
    return asdict(result)


def _q1_runs(archive: Path, files: list[Path], listing: Path, host: str, daemon: QueryDaemon,
             reps: int, scratch: Path) -> dict:
    """Each rep runs the three in turn (the first one rotating); outputs compared each rep."""
    kinds = ("pushcap", "daemon", "tcpdump")
    usage: dict[str, list[Usage]] = {k: [] for k in kinds}
    read: list[float] = []
    identical = {"pushcap": True, "daemon": True}
    counts: dict = {}
    for rep in range(reps):
        for who in kinds[rep % 3:] + kinds[:rep % 3]:
            for f in files:
                warm(f)
            out = scratch / f"q1-{who}.pcap"
            if who == "pushcap":
                argv = pushcap_argv("query", "--local", "--dir", str(archive), "--start", "0",
                                    "--end", "4000000000", "-w", str(out), f"host {host}")
            elif who == "daemon":
                argv = daemon.query_argv(host, out)
            else:
                argv = ["tcpdump", "-Z", "root", "-V", str(listing), "-w", str(out),
                        f"host {host}"]
            used, text = run_measured(argv, scratch / f"q1-{who}.log")
            usage[who].append(used)
            if who == "pushcap":
                read.append(_read_bytes(text))
        reference = (scratch / "q1-tcpdump.pcap").read_bytes()
        for who in identical:
            identical[who] &= (scratch / f"q1-{who}.pcap").read_bytes() == reference
        counts = {who: count_pcap(scratch / f"q1-{who}.pcap") for who in kinds}
    return {"usage": usage, "read": read, "identical": identical, "counts": counts}


def bench_i1(trace: Path, packets: int, reps: int, scratch: Path,
             small: Path | None = None, small_packets: int = 0) -> dict:
    """CPU of a replay with and without Index = true, and of tcpdump -r -w, alternately; with
    `small`, the same on a small trace, so what the index costs once per process (importing
    numpy and pyarrow) is told apart from its cost per packet."""
    kinds = ("index", "plain", "tcpdump")
    inputs = [("full", trace)] + ([("fixed", small)] if small else [])
    runs: dict[tuple[str, str], list[Usage]] = {(k, i): [] for k in kinds for i, _ in inputs}
    for rep in range(reps):
        for kind, path in inputs:
            for who in kinds[rep % 3:] + kinds[:rep % 3]:
                work = scratch / f"i1-{kind}-{who}-{rep}"
                work.mkdir(parents=True)
                try:
                    warm(path)
                    if who == "tcpdump":
                        argv = ["tcpdump", "-Z", "root", "-r", str(path), "-w",
                                str(work / "o.pcap")]
                    else:
                        lua = _lua(work / "t.lua", work, who == "index")
                        argv = pushcap_argv("replay", str(path), "--lua", str(lua), "--quiet")
                    usage, _ = run_measured(argv, work / "run.log")
                    runs[(who, kind)].append(usage)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
    med = {key: median_usage(v) for key, v in runs.items()}
    whole = (med[("index", "full")].cpu_s - med[("plain", "full")].cpu_s) * 1e6 / packets
    result = {"title": "replay with Index vs without", "reps": reps, "packets": packets,
              **{who: asdict(med[(who, "full")]) for who in kinds},
              "ratio_index_vs_plain": ratios(med[("index", "full")], med[("plain", "full")]),
              "ratio_index_vs_tcpdump": ratios(med[("index", "full")],
                                               med[("tcpdump", "full")]),
              "index_cpu_per_mpkt_s": round(whole, 3), "fixed_packets": small_packets}
    if small:
        fixed = med[("index", "fixed")].cpu_s - med[("plain", "fixed")].cpu_s
        per = (whole * packets / 1e6 - fixed) * 1e6 / (packets - small_packets)
        result.update(index_fixed_cpu_s=round(fixed, 3), index_cpu_per_mpkt_s=round(per, 3),
                      index_cpu_per_mpkt_with_start_s=round(whole, 3))
    result["meets_goal"] = result["index_cpu_per_mpkt_s"] <= I1_GOAL_CPU_PER_MPKT_S
    return result


def print_q1(r: dict, emit) -> None:
    p, d, t, g = r["pushcap"], r["daemon"], r["reference"], r["goals"]
    same = "identical" if r["identical"] and r["daemon_identical"] else "DIFFERS"
    emit(f"Q1   {'query 1 host, ' + format(r['packets'], ',') + ' pkts':32} "
         f"{p['wall_s']:.2f}s {p['cpu_s']:.2f}s {'':>8} {t['wall_s']:.2f}s {t['cpu_s']:.2f}s "
         f"{'':>8} standalone: wall {r['ratio']['wall']}x cpu {r['ratio']['cpu']}x; output "
         f"{same} ({r['counts']}); read "
         f"{100 * g['read_share']:.2f}% of {r['data_bytes'] / 1e9:.2f} GB in {r['files']} files; "
         f"index {100 * g['index_share']:.2f}% of the data")
    emit(f"Q1d  {'  served by pushcap run':32} "
         f"{d['wall_s']:.3f}s {d['cpu_s']:.3f}s {'':>6} {t['wall_s']:.2f}s {t['cpu_s']:.2f}s "
         f"{'':>8} daemon: wall {r['daemon_ratio']['wall']}x cpu {r['daemon_ratio']['cpu']}x "
         f"(the command's CPU; warm-up {r['daemon_warmup_s']:.1f}s untimed, indexes in memory "
         f"{r['daemon_cache_bytes'] / 1e6:.0f} MB); goals "
         + ", ".join(f"{k} {'met' if v else 'NOT MET'}" for k, v in g["met"].items()))


def print_i1(r: dict, emit) -> None:
    emit(f"I1   {'index cost, replay ' + format(r['packets'], ',') + ' pkts':32} "
         f"with {r['index']['cpu_s']:.2f}s CPU, without {r['plain']['cpu_s']:.2f}s, tcpdump "
         f"{r['tcpdump']['cpu_s']:.2f}s: +{r['index_cpu_per_mpkt_s']:.3f}s CPU per 1M packets "
         f"(goal <= {I1_GOAL_CPU_PER_MPKT_S}s: {'met' if r['meets_goal'] else 'NOT MET'})"
         + (f", once per process (imports, {r['fixed_packets']:,}-packet run) "
            f"+{r['index_fixed_cpu_s']:.2f}s" if "index_fixed_cpu_s" in r else "")
         + f"; with index / tcpdump {r['ratio_index_vs_tcpdump']['cpu']}x CPU")
