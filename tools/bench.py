"""pushcap side by side with tcpdump on the same input, in the same run (issue 7).

Every timed scenario runs pushcap and the reference alternately (pushcap first on even
repetitions, the reference first on odd ones, so neither always gets the warmer cache), `--reps`
times, and reports medians and the ratio pushcap / reference:

- wall seconds (start of the child to its exit, startup included for both),
- CPU seconds (user + sys of the child, from `os.wait4`),
- peak RSS (`ru_maxrss` of the child). pushcap reads a pcap file through `mmap`, so its peak RSS
  includes the file's page-cache pages it touched; the sampled peak of `RssAnon` (the process's
  own heap) is reported beside it so the two can be told apart.

Scenarios: R1, R2, R4 (replay vs `tcpdump -r IN -w OUT [FILTER]`), M1 (ring memory vs its byte
bound), L1 (live capture on a veth pair at rising `tcpreplay` rates), T1 (trigger latency: a
private redis-server and `pushcap run` on `lo` with a steady UDP stream in the ring, publish ->
result message; tcpdump has no equivalent, so T1 is checked against its goal, p99 < 500 ms).
Traces come from tools/gen_trace.py (seeded) and are cached in `--trace-dir`. Output files go
to `--scratch` (tmpfs by default, so the disk's writeback does not add noise to
either side) and are deleted after each run.

Usage: ``python tools/bench.py [--packets N] [--reps N] [--scenarios R1,R2,...] [--quick]``
"""

from __future__ import annotations

import argparse
import compileall
import gc
import json
import mmap
import os
import platform
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import gen_trace  # noqa: E402  (tools/ is not a package)

ALL_SCENARIOS = ("R1", "R2", "R4", "M1", "L1", "T1")
DEFAULT_SCENARIOS = ("R1", "R2", "R4", "M1", "L1", "T1")
DEFAULT_REPLAY_PACKETS = 1_000_000
QUICK_PACKETS = 2_000
# Each replay scenario also runs both tools on a trace this small: what a run costs before its
# first packet (interpreter start-up, imports, opening files). Subtracting it gives the cost per
# packet that issue 7 is about, apart from the one-off start that a daemon pays once.
FIXED_PACKETS = 1_000
DEFAULT_REPS = 5
SPLIT = "--split-time 60e9"
MIB = 1024 * 1024
MB = 1_000_000
M1_BOUND_BYTES = 256 * MIB
M1_QUICK_BOUND_BYTES = 256 * 1024
M1_BASE_ALLOWANCE_BYTES = 100 * MB
M1_FACTOR = 1.10
L1_TRACE_PACKETS = 200_000
L1_RATES_PPS = (25_000, 50_000, 100_000, 200_000, 400_000, 800_000)
L1_STEP_S = 3.0  # how long each rate is sent (whole loops of the L1 trace, at least one)
L1_DRAIN_S = 1.0  # after the sender ends, before the capture is stopped
SAMPLE_INTERVAL_S = 0.02
PCAP_HEADER_BYTES = 24
RECORD_HEADER_BYTES = 16
STARTED_TIMEOUT_S = 20.0
LIVE_TCP_EQUIVALENT = "tcp or (vlan and tcp)"  # what live tcpdump's "tcp" selects (see bench_l1)
T1_FILL_S = 60.0  # seconds of traffic in the ring before the first request (issue 7)
T1_QUICK_FILL_S = 2.0
T1_RATE_PPS = 2_000  # the steady UDP stream on lo that fills the ring
T1_PAYLOAD_BYTES = 100  # UDP payload: 142-byte frames on lo
T1_REQUESTS = 30  # per series (the issue asks for at least 20)
T1_QUICK_REQUESTS = 3
T1_BEFORE_S = 10.0
T1_LOOKBACK_SHARE = 0.8  # lookback series: `packets` = this share of what `before` holds
T1_LIVE_S = 0.25  # live series: `packets` = all of `before` plus this much live traffic
T1_GAP_S = 0.2  # between requests
T1_RESULT_WAIT_S = 15.0
T1_GOAL_P99_S = 0.5


# --- measuring one child -------------------------------------------------------------------
@dataclass
class Usage:
    """What one child process (or a group of sequential children) cost."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    maxrss_bytes: int = 0
    anon_peak_bytes: int = 0

    def plus(self, other: Usage) -> Usage:
        """Sequential runs: times add, memory is the larger peak."""
        return Usage(self.wall_s + other.wall_s, self.cpu_s + other.cpu_s,
                     max(self.maxrss_bytes, other.maxrss_bytes),
                     max(self.anon_peak_bytes, other.anon_peak_bytes))


class MemorySampler(threading.Thread):
    """Polls /proc/<pid>/status of the measured program until it is gone; keeps the peaks of
    RssAnon (its own heap, without file-backed pages such as an mmap of the input) and VmHWM.

    When the program runs under GNU time, `pid` is time's and the program is its only child.
    """

    def __init__(self, pid: int, via_launcher: bool) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.via_launcher = via_launcher
        self.anon_peak_bytes = 0
        self.hwm_bytes = 0
        self.stop = threading.Event()

    def _measured_pid(self) -> int | None:
        if not self.via_launcher:
            return self.pid
        try:
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def run(self) -> None:
        pid = None
        while not self.stop.is_set():
            pid = pid or self._measured_pid()
            if pid is not None:
                try:
                    text = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    return
                for key, attr in (("RssAnon", "anon_peak_bytes"), ("VmHWM", "hwm_bytes")):
                    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
                    if match:
                        setattr(self, attr, max(getattr(self, attr), int(match.group(1)) * 1024))
            self.stop.wait(SAMPLE_INTERVAL_S)


# A child's ru_maxrss includes the RSS of the process it was forked from (Linux keeps the larger
# of the old and new image's peak across exec), so measured directly every child would report at
# least this benchmark's own ~45 MB. GNU time forks from a tiny image and reports the program's
# own peak; without it, the sampled VmHWM (the program's own high-water mark) is used.
TIME_BIN = "/usr/bin/time" if Path("/usr/bin/time").exists() else None
RSS_METHOD = "GNU time %M" if TIME_BIN else "sampled VmHWM"


# Environment of every pushcap child: `--pushcap-src DIR` puts another checkout (e.g. a
# `git archive` of a commit) first on PYTHONPATH, so a given version can be measured while the
# working tree changes.
CHILD_ENV: dict[str, str] | None = None


def run_measured(argv: list[str], log_path: Path, cwd: Path | None = None) -> tuple[Usage, str]:
    """Run argv to completion; (its resource usage, its stdout+stderr). Raises on failure.

    CPU is user+sys from os.wait4, which includes what a launcher's reaped child used.
    """
    rss_path = log_path.with_suffix(".rss")
    launch = [TIME_BIN, "-f", "%M", "-o", str(rss_path), *argv] if TIME_BIN else argv
    with log_path.open("w+") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(launch, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                                env=CHILD_ENV)
        sampler = MemorySampler(proc.pid, via_launcher=TIME_BIN is not None)
        sampler.start()
        _, status, rusage = os.wait4(proc.pid, 0)
        wall_s = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop.set()
        sampler.join()
        log.seek(0)
        output = log.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{output[-2000:]}")
    maxrss = sampler.hwm_bytes
    if TIME_BIN:
        maxrss = int(rss_path.read_text().split()[-1]) * 1024
        rss_path.unlink()
    usage = Usage(wall_s, rusage.ru_utime + rusage.ru_stime, maxrss, sampler.anon_peak_bytes)
    return usage, output


def count_pcap(path: Path) -> int:
    """Packets in a classic pcap file, walking record headers (independent of pushcap)."""
    size = path.stat().st_size
    if size <= PCAP_HEADER_BYTES:
        return 0
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        order = "<" if struct.unpack_from("<I", mm, 0)[0] in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        caplen = struct.Struct(order + "I")
        position, packets = PCAP_HEADER_BYTES, 0
        while position + RECORD_HEADER_BYTES <= size:
            position += RECORD_HEADER_BYTES + caplen.unpack_from(mm, position + 8)[0]
            packets += 1 if position <= size else 0
    return packets


def median_usage(runs: list[Usage]) -> Usage:
    return Usage(statistics.median(u.wall_s for u in runs),
                 statistics.median(u.cpu_s for u in runs),
                 int(statistics.median(u.maxrss_bytes for u in runs)),
                 int(statistics.median(u.anon_peak_bytes for u in runs)))


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def ratios(ours: Usage, ref: Usage) -> dict[str, float | None]:
    return {"wall": ratio(ours.wall_s, ref.wall_s), "cpu": ratio(ours.cpu_s, ref.cpu_s),
            "rss": ratio(ours.maxrss_bytes, ref.maxrss_bytes)}


# --- configuration files -----------------------------------------------------------------------
def lua_text(targets: list[tuple[str, str, str | None]]) -> str:
    """push_realtime.lua for (Desc, Path, FilterBPF) targets, all time split every 60 s."""
    lines = ["local Config = { Target = {} }"]
    for desc, path, bpf in targets:
        bpf_lua = "nil" if bpf is None else json.dumps(bpf)
        lines.append(f'table.insert(Config.Target, {{ Desc = "{desc}", Mode = "File", '
                     f'Path = "{path}", Split = "{SPLIT}", FilterBPF = {bpf_lua} }})')
    lines.append("return Config")
    return "\n".join(lines) + "\n"


def pushcap_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "pushcap.cli", *args]


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


def run_pushcap_replay(sc: ReplayScenario, trace: Path, work: Path) -> tuple[Usage, str]:
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

    The file source slices an mmap of the trace: each batch's `records` is a `bytes` copy (and
    a µs file is rewritten to ns, another copy), so the ring holds its own memory. The mmap's
    pages are file-backed RSS while the source is open; they are released when the source's
    generator is closed, before the measurement, so what remains is the ring plus the
    interpreter's base. Both the base before filling and the breakdown are reported.
    """
    import numpy as np

    from pushcap.capture.ring import Ring
    from pushcap.capture.source import open_file_source

    gc.collect()
    base = proc_status()
    source = open_file_source(trace)
    ring = Ring("m1", source.linktype, source.snaplen, max_seconds=1e12, max_bytes=bound_bytes)
    fed_bytes = 0
    batches = source.batches()
    for batch in batches:
        ring.append(batch)
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
        argv = [sys.executable, str(Path(__file__).resolve()), "--m1-child", str(trace),
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


# --- L1: live capture on a veth pair ---------------------------------------------------------
class VethLab:
    """A network namespace holding the sender's veth end; the capture end stays in the root
    namespace. IPv6 is off on both ends so nothing but the replayed packets crosses the link."""

    def __init__(self) -> None:
        tag = os.getpid() % 100000
        self.netns = f"pcbench{tag}"
        self.tx = f"pcbtx{tag}"
        self.rx = f"pcbrx{tag}"

    @staticmethod
    def _ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)

    def __enter__(self) -> VethLab:
        self._ip("netns", "add", self.netns)
        try:
            self._ip("link", "add", self.tx, "type", "veth", "peer", "name", self.rx)
            for iface in (self.rx,):
                _sysctl(f"net.ipv6.conf.{iface}.disable_ipv6", "1")
            self._ip("link", "set", self.tx, "netns", self.netns)
            subprocess.run(["ip", "netns", "exec", self.netns, "sysctl", "-qw",
                            f"net.ipv6.conf.{self.tx}.disable_ipv6=1"], check=False,
                           capture_output=True, timeout=30)
            self._ip("-n", self.netns, "link", "set", self.tx, "up")
            self._ip("link", "set", self.rx, "up")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_exc) -> None:
        subprocess.run(["ip", "link", "del", self.rx], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, timeout=30)

    def replay(self, trace: Path, rate_pps: int, loops: int) -> dict:
        argv = ["ip", "netns", "exec", self.netns, "tcpreplay", f"--pps={rate_pps}",
                f"--loop={loops}", "-i", self.tx, str(trace)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        text = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise RuntimeError(f"tcpreplay failed: {text[-1000:]}")
        sent = re.search(r"Successful packets:\s+(\d+)", text)
        failed = re.search(r"Failed packets:\s+(\d+)", text)
        rated = re.search(r"Rated:.*?([\d.]+) pps", text)
        return {"sent": int(sent.group(1)) if sent else 0,
                "failed": int(failed.group(1)) if failed else -1,
                "actual_pps": float(rated.group(1)) if rated else 0.0}


def _sysctl(key: str, value: str) -> None:
    subprocess.run(["sysctl", "-qw", f"{key}={value}"], check=False, capture_output=True,
                   timeout=30)


def _wait_for(log_path: Path, needle: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTED_TIMEOUT_S
    while time.monotonic() < deadline:
        if needle in log_path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"capture did not start: {log_path.read_text(errors='replace')[-1000:]}")


def _stop(proc: subprocess.Popen) -> float:
    """SIGTERM, wait (bounded), return the child's CPU seconds."""
    proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return rusage.ru_utime + rusage.ru_stime
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError("capture did not stop within 60 s of SIGTERM")


def l1_pushcap(lab: VethLab, trace: Path, rate: int, loops: int, work: Path) -> dict:
    out = work / "out"
    out.mkdir(parents=True)
    (work / "push.lua").write_text(lua_text([("all", str(out / "all"), None),
                                             ("tcp", str(out / "tcp"), "tcp")]))
    (work / "daemon.toml").write_text(f'[[interface]]\nname = "{lab.rx}"\n')
    log_path = work / "pushcap.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(pushcap_argv("run", "--lua", str(work / "push.lua"), "--config",
                                             str(work / "daemon.toml")),
                                stdout=log, stderr=subprocess.STDOUT, cwd=work, env=CHILD_ENV)
    try:
        _wait_for(log_path, "event=started", proc)
        sent = lab.replay(trace, rate, loops)
        time.sleep(L1_DRAIN_S)
        cpu_s = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log_text = log_path.read_text(errors="replace")
    got_all = sum(count_pcap(f) for f in out.glob("all_*.pcap"))
    got_tcp = sum(count_pcap(f) for f in out.glob("tcp_*.pcap"))
    behind = sum(int(m) for m in re.findall(r"event=push_behind .*?missed_packets=(\d+)",
                                            log_text))
    drops = re.findall(r"kernel_drops=(\d+)", log_text)
    return {**sent, "captured_all": got_all, "captured_tcp": got_tcp, "cpu_s": round(cpu_s, 3),
            "push_behind_missed": behind, "kernel_drops": int(drops[-1]) if drops else 0}


# Extra tcpdump options for L1 (`--l1-tcpdump-args "-B 65536"` gives it pushcap's 64 MiB kernel
# buffer); empty = tcpdump's defaults, what an operator would type.
L1_TCPDUMP_ARGS: list[str] = []


def l1_tcpdump(lab: VethLab, trace: Path, rate: int, loops: int, work: Path) -> dict:
    dest = work / "tcpdump.pcap"
    log_path = work / "tcpdump.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(["tcpdump", "-Z", "root", *L1_TCPDUMP_ARGS, "-i", lab.rx, "-w",
                                 str(dest), "tcp"],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for(log_path, "listening on", proc)
        sent = lab.replay(trace, rate, loops)
        time.sleep(L1_DRAIN_S)
        cpu_s = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    drops = re.search(r"(\d+) packets dropped by kernel", log_path.read_text(errors="replace"))
    return {**sent, "captured_tcp": count_pcap(dest), "cpu_s": round(cpu_s, 3),
            "kernel_drops": int(drops.group(1)) if drops else 0}


def l1_unavailable() -> str | None:
    """Why L1 cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth, packet capture)"
    for tool in ("ip", "tcpreplay", "tcpdump"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def bench_l1(packets: int, rates: tuple[int, ...], step_s: float, trace_dir: Path,
             scratch: Path) -> dict:
    """Rising rates; each tool stops at its first lossy rate. One run per rate and tool."""
    reason = l1_unavailable()
    if reason:
        return {"skipped": reason}
    trace = ensure_trace(trace_dir, packets)
    work = scratch / "l1-oracle"
    work.mkdir(parents=True)
    tcp_in_trace = _tcpdump_select_count(trace, "tcp", work)
    # On a live Linux handle the kernel strips a VLAN tag before the filter runs, so tcpdump's
    # "tcp" also takes VLAN-tagged TCP there (libpcap puts the tag back in the file); pushcap
    # filters the packet as written, like `tcpdump -r`. Each tool is held to its own semantics.
    tcp_live_in_trace = _tcpdump_select_count(trace, LIVE_TCP_EQUIVALENT, work)
    steps: list[dict] = []
    best = {"pushcap": 0, "tcpdump": 0}
    lossy = {"pushcap": False, "tcpdump": False}
    try:
        with VethLab() as lab:
            for rate in rates:
                loops = max(1, round(rate * step_s / packets))
                for who in ("pushcap", "tcpdump"):
                    if lossy[who]:
                        continue
                    work = scratch / f"l1-{who}-{rate}"
                    work.mkdir(parents=True)
                    try:
                        run = (l1_pushcap if who == "pushcap" else l1_tcpdump)(
                            lab, trace, rate, loops, work)
                    finally:
                        shutil.rmtree(work, ignore_errors=True)
                    per_loop = tcp_in_trace if who == "pushcap" else tcp_live_in_trace
                    expected_tcp = per_loop * loops if run["failed"] == 0 else None
                    ok = run["captured_tcp"] == expected_tcp and run["failed"] == 0
                    if who == "pushcap":
                        ok = ok and run["captured_all"] == run["sent"]
                    run.update(tool=who, rate_pps=rate, loops=loops, expected_tcp=expected_tcp,
                               lossless=ok)
                    steps.append(run)
                    print(f"  L1 {who:8s} rate={rate:>8,} pps actual={run['actual_pps']:>10,.0f}"
                          f" sent={run['sent']:>9,} lossless={ok}", file=sys.stderr)
                    if ok and run["actual_pps"] >= 0.9 * rate:
                        best[who] = max(best[who], rate)
                    elif not ok:
                        lossy[who] = True
                if all(lossy.values()):
                    break
    except (subprocess.SubprocessError, OSError, RuntimeError) as exc:
        error = f"stopped early: {exc}"
        if not steps:
            return {"skipped": f"L1 could not run: {exc}"}
    else:
        error = None
    return {"error": error, "tcpdump_args": L1_TCPDUMP_ARGS, "trace_packets": packets,
            "tcp_in_trace": tcp_in_trace,
            "tcp_live_tcpdump_in_trace": tcp_live_in_trace, "step_s": step_s,
            "best_lossless_pps": best, "ratio": ratio(best["pushcap"], best["tcpdump"]),
            "hit_top_rate": {k: not v for k, v in lossy.items()}, "steps": steps}


def _tcpdump_select_count(trace: Path, bpf: str, work: Path) -> int:
    dest = work / "select.pcap"
    subprocess.run(["tcpdump", "-Z", "root", "-r", str(trace), "-w", str(dest), bpf],
                   check=True, capture_output=True, timeout=600)
    count = count_pcap(dest)
    dest.unlink()
    return count


# --- T1: trigger latency ------------------------------------------------------------------------
# A steady UDP stream to a port of its own on 127.0.0.1, paced in 5 ms slices against the clock
# (so a late slice catches up), into a sink socket that never reads (no ICMP port unreachable on
# lo). Prints the port first, and "sent N in S s" when it gets SIGTERM.
T1_SENDER = r"""
import signal, socket, sys, time
rate, size = int(sys.argv[1]), int(sys.argv[2])
sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sink.bind(("127.0.0.1", 0))
sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
port = sink.getsockname()[1]
print(port, flush=True)
out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload, dest, sent, slice_s = bytes(size), ("127.0.0.1", port), 0, 0.005
def stop(*_):
    raise SystemExit
signal.signal(signal.SIGTERM, stop)
started = time.monotonic()
try:
    while True:
        due = int((time.monotonic() - started) * rate) + 1
        while sent < due:
            out.sendto(payload, dest)
            sent += 1
        time.sleep(slice_s)
except SystemExit:
    pass
print(f"sent {sent} in {time.monotonic() - started:.3f} s", flush=True)
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def t1_unavailable() -> str | None:
    """Why T1 cannot run here, or None."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    try:
        import redis  # noqa: F401
    except ImportError:
        return "the redis Python package is not installed"
    if os.geteuid() != 0 and not _has_net_raw():
        return "needs root or CAP_NET_RAW (packet capture on lo)"
    return None


def _has_net_raw() -> bool:
    try:
        caps = re.search(r"^CapEff:\s+([0-9a-f]+)", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return False
    return bool(caps and int(caps.group(1), 16) & (1 << 13))


def _percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in 0..100."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _t1_series(client, pubsub, channel: str, name: str, port: int,
               packets_for: Callable[[], int], count: int, localdir: Path) -> dict:
    """`count` sequential requests; publish -> matching result message, in ms.

    `packets_for()` gives each request's `packets` cap at the moment it is sent.
    """
    latencies: list[float] = []
    caps: list[int] = []
    daemon_latencies: list[float] = []
    results: list[dict] = []
    for i in range(count):
        request_id = f"t1-{name}-{i}-{os.getpid()}"
        packets = packets_for()
        caps.append(packets)
        message = json.dumps({"node": "any", "interface": ["lo"], "bpf": f"udp port {port}",
                              "before": T1_BEFORE_S, "packets": packets, "timeout": 1,
                              "requestid": request_id})
        started = time.perf_counter()
        receivers = client.publish(channel, message)
        if receivers < 1:
            raise RuntimeError("pushcap is not subscribed to the request channel")
        record = None
        deadline = started + T1_RESULT_WAIT_S
        while record is None and time.perf_counter() < deadline:
            msg = pubsub.get_message(timeout=max(0.001, deadline - time.perf_counter()))
            if not msg or msg.get("type") != "message":
                continue
            got = time.perf_counter()
            data = json.loads(msg["data"])
            if isinstance(data, dict) and data.get("requestid") == request_id:
                record = data
        if record is None:
            raise RuntimeError(f"no result for {request_id} within {T1_RESULT_WAIT_S:g} s")
        latencies.append((got - started) * 1000)
        if isinstance(record.get("latency_s"), int | float):
            daemon_latencies.append(record["latency_s"] * 1000)
        # The file written must hold what the result says (then it goes: tmpfs space).
        in_file = None
        if record.get("path"):
            path = Path(record["path"])
            if not path.is_absolute():
                path = localdir / path
            if path.exists():
                in_file = count_pcap(path)
                path.unlink()
        results.append({"requestid": request_id, "status": record.get("status"),
                        "packets": record.get("packets"), "bytes": record.get("bytes"),
                        "reason": record.get("reason"), "packets_in_file": in_file,
                        "latency_ms": round(latencies[-1], 2),
                        "daemon_latency_ms": record.get("latency_s", 0) * 1000})
        time.sleep(T1_GAP_S)
    reasons: dict[str, int] = {}
    for r in results:
        reasons[str(r["reason"])] = reasons.get(str(r["reason"]), 0) + 1
    pkts = [r["packets"] or 0 for r in results]
    return {"requests": count, "packets_cap": int(statistics.median(caps)),
            "p50_ms": round(_percentile(latencies, 50), 1),
            "p99_ms": round(_percentile(latencies, 99), 1),
            "max_ms": round(max(latencies), 1), "min_ms": round(min(latencies), 1),
            "daemon_p50_ms": round(_percentile(daemon_latencies, 50), 1)
            if daemon_latencies else None,
            "packets_per_capture": int(statistics.median(pkts)),
            "statuses_ok": all(r["status"] == "ok" for r in results),
            "files_match": all(r["packets_in_file"] == r["packets"] for r in results),
            "reasons": reasons, "runs": results}


def bench_t1(fill_s: float, requests: int, scratch: Path) -> dict:
    """Trigger latency of a real `pushcap run` on lo, fed by a private redis-server."""
    reason = t1_unavailable()
    if reason:
        return {"skipped": reason}
    import redis

    try:
        return _bench_t1(fill_s, requests, scratch)
    except (redis.RedisError, subprocess.SubprocessError, OSError, RuntimeError,
            ValueError) as exc:
        return {"skipped": f"T1 could not run: {exc}"}  # the other scenarios still report


def _bench_t1(fill_s: float, requests: int, scratch: Path) -> dict:
    import redis

    work = scratch / "t1"
    localdir = work / "captures"
    localdir.mkdir(parents=True)
    redis_port = free_port()
    channel = "pushcap-bench-t1"
    (work / "t1.lua").write_text(lua_text([("none", str(work / "none"), "udp port 9")]))
    (work / "t1.toml").write_text(
        f'[general]\nnode = "bench-t1"\nwritelocal = true\nlocaldir = "{localdir}"\n'
        f'[redis]\nhost = "127.0.0.1"\nport = {redis_port}\nchannel = "{channel}"\n'
        f'[status]\nport = 0\n[ring]\nmax_seconds = {max(60.0, fill_s + 5)}\n'
        f'[[interface]]\nname = "lo"\n')
    procs: list[subprocess.Popen] = []
    client = pubsub = None
    sender_out = ""
    try:
        procs.append(subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(redis_port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(work),
             "--loglevel", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        client = redis.Redis(port=redis_port, socket_timeout=10)
        _wait_until(lambda: _pings(client), 10, "redis-server did not answer")
        log_path = work / "pushcap.log"
        with log_path.open("w") as log:
            daemon = subprocess.Popen(
                pushcap_argv("run", "--lua", str(work / "t1.lua"), "--config",
                             str(work / "t1.toml")),
                stdout=log, stderr=subprocess.STDOUT, cwd=work, env=CHILD_ENV)
        procs.append(daemon)

        def subscribed() -> bool:
            if daemon.poll() is not None:
                raise RuntimeError("pushcap run exited: "
                                   + log_path.read_text(errors="replace")[-1000:])
            return dict(client.pubsub_numsub(channel)).get(channel.encode(), 0) >= 1

        _wait_until(subscribed, STARTED_TIMEOUT_S, "pushcap did not subscribe")
        sender = subprocess.Popen([sys.executable, "-c", T1_SENDER, str(T1_RATE_PPS),
                                   str(T1_PAYLOAD_BYTES)], stdout=subprocess.PIPE, text=True)
        procs.append(sender)
        port = int(sender.stdout.readline())
        sending_since = time.monotonic()

        def in_lookback_s() -> float:
            """Seconds of the stream a request sent now finds within `before`."""
            return min(T1_BEFORE_S, time.monotonic() - sending_since)

        def lookback_cap() -> int:  # met from the ring: the capture never waits for traffic
            return max(1, int(T1_RATE_PPS * in_lookback_s() * T1_LOOKBACK_SHARE))

        def live_cap() -> int:  # all of the lookback, then T1_LIVE_S of new traffic
            return int(T1_RATE_PPS * (in_lookback_s() + T1_LIVE_S))

        print(f"  T1 filling the ring: {fill_s:g} s of {T1_RATE_PPS:,} pkt/s UDP to port {port}",
              file=sys.stderr)
        time.sleep(fill_s)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        results_channel = f"{channel}:results"
        pubsub.subscribe(results_channel)
        _wait_until(lambda: dict(client.pubsub_numsub(results_channel)).get(
            results_channel.encode(), 0) >= 1, 10, "could not subscribe to the results")
        series = {
            "lookback": _t1_series(client, pubsub, channel, "lookback", port, lookback_cap,
                                   requests, localdir),
            "live": _t1_series(client, pubsub, channel, "live", port, live_cap, requests,
                               localdir),
        }
        sender.send_signal(signal.SIGTERM)
        sender_out = sender.communicate(timeout=10)[0]
        cpu_s = _stop(daemon)
    finally:
        if pubsub is not None:
            pubsub.close()
        if client is not None:
            client.close()
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    sent = re.search(r"sent (\d+) in ([\d.]+) s", sender_out)
    actual_pps = round(int(sent.group(1)) / float(sent.group(2))) if sent else None
    main = series["lookback"]
    return {"fill_s": fill_s, "rate_pps": T1_RATE_PPS, "actual_pps": actual_pps,
            "before_s": T1_BEFORE_S, "frame_bytes": T1_PAYLOAD_BYTES + 42,
            "live_extra_s": T1_LIVE_S, "goal_p99_ms": T1_GOAL_P99_S * 1000,
            "p50_ms": main["p50_ms"], "p99_ms": main["p99_ms"],
            "meets_goal": main["p99_ms"] < T1_GOAL_P99_S * 1000 and main["statuses_ok"],
            "pushcap_cpu_s": round(cpu_s, 3), "series": series}


def _pings(client) -> bool:
    import redis

    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def _wait_until(check: Callable[[], bool], timeout_s: float, error: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(error)


# --- traces, machine, table ------------------------------------------------------------------
def ensure_trace(trace_dir: Path, packets: int, seed: int = 1) -> Path:
    trace_dir.mkdir(parents=True, exist_ok=True)
    path = trace_dir / f"trace_{packets}_s{seed}.pcap"
    if not path.exists():
        part = path.with_suffix(".part")
        gen_trace.generate(part, packets, seed=seed)
        part.rename(path)
    return path


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
            best = r["best_lossless_pps"]
            emit(f"{name:4} {'live veth, highest lossless pps':32} pushcap {best['pushcap']:,} "
                 f"(2 targets) vs tcpdump {best['tcpdump']:,} ('tcp') = "
                 f"{fmt_ratio(r['ratio'])}; top rate reached lossless: {r['hit_top_rate']}"
                 + (f"; {r['error'][:200]}" if r.get("error") else ""))
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
        else:
            emit(f"{name:4} {r.get('title', ''):32} skipped: {r.get('skipped', '?')}")


# --- main --------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--packets", type=int, default=DEFAULT_REPLAY_PACKETS,
                   help="packets in the replay trace (R1, R2, R4, M1)")
    p.add_argument("--reps", type=int, default=DEFAULT_REPS)
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
    p.add_argument("--t1-fill-s", type=float, default=None,
                   help=f"T1: seconds of traffic in the ring before the requests "
                   f"(default {T1_FILL_S:g}; --quick {T1_QUICK_FILL_S:g})")
    p.add_argument("--t1-requests", type=int, default=None,
                   help=f"T1: requests per series (default {T1_REQUESTS}; --quick "
                   f"{T1_QUICK_REQUESTS})")
    p.add_argument("--pushcap-src", type=Path, default=None,
                   help="run pushcap from this source tree (PYTHONPATH) instead of the install")
    p.add_argument("--m1-child", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.scenarios = [s.strip().upper() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(ALL_SCENARIOS)
    if unknown:
        p.error(f"unknown scenario(s) {sorted(unknown)}; known: {', '.join(ALL_SCENARIOS)}")
    if args.quick:
        args.packets, args.reps = QUICK_PACKETS, 1
        args.l1_packets, args.l1_step_s = QUICK_PACKETS, 0.5
        args.l1_rates = "10000"
    if args.t1_fill_s is None:
        args.t1_fill_s = T1_QUICK_FILL_S if args.quick else T1_FILL_S
    if args.t1_requests is None:
        args.t1_requests = T1_QUICK_REQUESTS if args.quick else T1_REQUESTS
    if args.t1_fill_s <= 0 or args.t1_requests < 1:
        p.error("--t1-fill-s must be > 0 and --t1-requests >= 1")
    if args.m1_bound is None:
        args.m1_bound = M1_QUICK_BOUND_BYTES if args.quick else M1_BOUND_BYTES
    return args


def default_scratch() -> Path:
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    return base / f"pushcap-bench-{os.getpid()}"


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
        elif name == "T1":
            results[name] = {"kind": "trigger", "title": "trigger latency",
                             **bench_t1(args.t1_fill_s, args.t1_requests, scratch)}
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.m1_child:
        print(json.dumps(m1_child(args.m1_child, args.m1_bound)))
        return 0
    global CHILD_ENV
    L1_TCPDUMP_ARGS.extend(args.l1_tcpdump_args.split())
    pushcap_src = REPO
    if args.pushcap_src:
        pushcap_src = args.pushcap_src.resolve()
        CHILD_ENV = {**os.environ, "PYTHONPATH": str(pushcap_src)}
    # Measure the code as installed code runs: from compiled bytecode (an editable install with
    # PYTHONDONTWRITEBYTECODE=1 would otherwise recompile changed modules at every start).
    compileall.compile_dir(str(pushcap_src / "pushcap"), quiet=1)
    scratch = args.scratch or default_scratch()
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        results = run_scenarios(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report = {"machine": machine(), "pushcap": source_version(pushcap_src),
              "packets": args.packets, "reps": args.reps, "quick": args.quick,
              "rss_method": RSS_METHOD, "scenarios": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"pushcap vs tcpdump: {args.packets:,} packets, median of {args.reps} "
          f"(wall s / CPU s / peak RSS; ratio = pushcap / reference)")
    print_table(results)
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
