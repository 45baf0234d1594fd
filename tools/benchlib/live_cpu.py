"""L2: live capture's CPU per packet at fixed rates: pushcap, tcpdump and the floor.

A veth pair (the sender's end in a network namespace of its own, lab from live.py) carries the
L1 trace, looped, at each fixed `tcpreplay` rate. For each rate the capturing processes' CPU
(user + sys from /proc/<pid>/stat) is read right before the sender starts and after the capture
has drained (start-up and the final flush excluded: every tool first captures L2_WARMUP_LOOPS
loops of the trace, which fill pushcap's ring once), and divided by the packets captured in the
measured window:

- pushcap with two File targets (every packet, `tcp`), without and with what `make run` also
  runs (the trigger listener on its private redis-server, a flows target);
- two tcpdump processes writing the same two files (`-w all`, `-w tcp 'tcp'`), their CPU added;
- the floor (tools/floor/pcap_floor.c): libpcap opened the same way, packets only counted;
- with `--l2-models`, pushcap's data path written in C twice (tools/floor/design_models.c):
  `model_copy`, today's design (each packet copied into a ring), and `model_zero`, a zero-copy
  one (the kernel's TPACKET_V3 blocks held as the ring): what the design costs apart from the
  Python around it, and what the zero-copy redesign would save.

Every tool gets pushcap's kernel buffer. A figure counts only when the run captured every packet
sent (a lossy run is reported as such, without a ratio).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from . import config
from .config import L2_DRAIN_S, L2_KERNEL_BUFFER_BYTES, L2_WARMUP_LOOPS, LIVE_TCP_EQUIVALENT
from .inputs import ensure_trace, lua_text, pushcap_argv
from .live import VethLab, _tcpdump_select_count, _wait_for, l1_unavailable
from .measure import count_pcap, ratio

FLOOR_SOURCE = Path(__file__).resolve().parents[1] / "floor" / "pcap_floor.c"
MODELS_SOURCE = FLOOR_SOURCE.with_name("design_models.c")
MODELS = ("model_copy", "model_zero")


def build_floor(dest: Path, source: Path = FLOOR_SOURCE) -> Path:
    """Compile the floor program, or the design models (gcc and libpcap's headers: `make
    setup` installs both)."""
    subprocess.run(["gcc", "-O2", "-o", str(dest), str(source), "-lpcap", "-lpthread"],
                   check=True, capture_output=True, text=True, timeout=120)
    return dest


def process_cpu_s(pid: int) -> float:
    """User + sys CPU seconds of a running process (all its threads) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Capture:
    """Capturing processes started together, measured as one tool."""

    def __init__(self, procs: list[tuple[subprocess.Popen, Path, str]]) -> None:
        self.procs = procs  # (process, its log, what it logs once capturing)

    def wait_ready(self) -> None:
        for proc, log_path, ready in self.procs:
            _wait_for(log_path, ready, proc)

    def cpu_s(self) -> float:
        return sum(process_cpu_s(proc.pid) for proc, _, _ in self.procs)

    def stop(self) -> None:
        for proc, _, _ in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc, _, _ in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _start(argv: list[str], log_path: Path, ready: str, cwd: Path | None = None,
           stdout: Path | None = None) -> tuple[subprocess.Popen, Path, str]:
    with log_path.open("w") as log:
        out = stdout.open("w") if stdout else log
        try:
            proc = subprocess.Popen(argv, stdout=out, stderr=log, cwd=cwd,
                                    env=config.CHILD_ENV if cwd else None)
        finally:
            if stdout:
                out.close()
    return proc, log_path, ready


def start_pushcap(lab: VethLab, work: Path, full: bool = False, flows_port: int = 0,
                  ring_bytes: int | None = None) -> Capture:
    """pushcap with L2's two File targets (and, `full`, the trigger listener and a flows
    target sending to `flows_port`); `ring_bytes`: a ring bound other than the default."""
    out = work / "out"
    out.mkdir(parents=True)
    lua = lua_text([("all", str(out / "all"), None), ("tcp", str(out / "tcp"), "tcp")])
    if full:
        lua = lua.replace("return Config", (
            'table.insert(Config.Target, { Desc = "flows", Mode = "flows", '
            f'Path = "udp://127.0.0.1:{flows_port}" }})\nreturn Config'))
    (work / "push.lua").write_text(lua)
    toml = (f'[[interface]]\nname = "{lab.rx}"\n[ring]\n'
            f"kernel_buffer_bytes = {L2_KERNEL_BUFFER_BYTES}\n"
            + (f"max_bytes = {ring_bytes}\n" if ring_bytes else ""))
    if not full:
        toml += "[redis]\nlisten = false\n"
    (work / "daemon.toml").write_text(toml)
    return Capture([_start(pushcap_argv("run", "--lua", str(work / "push.lua"), "--config",
                                        str(work / "daemon.toml")),
                           work / "pushcap.log", "event=started", cwd=work)])


def start_tcpdump(lab: VethLab, work: Path) -> Capture:
    """Two tcpdump processes writing all.pcap and tcp.pcap in `work`."""
    buffer_kib = str(L2_KERNEL_BUFFER_BYTES // 1024)
    procs = []
    for name, bpf in (("all", []), ("tcp", ["tcp"])):
        procs.append(_start(["tcpdump", "-Z", "root", "-B", buffer_kib, "-i", lab.rx, "-w",
                             str(work / f"{name}.pcap"), *bpf], work / f"tcpdump-{name}.log",
                            "listening on"))
    return Capture(procs)


def _floor(lab: VethLab, work: Path, floor_bin: Path) -> Capture:
    return Capture([_start([str(floor_bin), lab.rx, str(L2_KERNEL_BUFFER_BYTES)],
                           work / "floor.log", "listening on", stdout=work / "floor.out")])


def _model(lab: VethLab, work: Path, who: str, models_bin: Path) -> Capture:
    """A design model, writing all.pcap and tcp.pcap in `work`."""
    return Capture([_start([str(models_bin), who.removeprefix("model_"), lab.rx,
                            str(L2_KERNEL_BUFFER_BYTES)], work / "model.log", "listening on",
                           cwd=work, stdout=work / "model.out")])


def captured(who: str, work: Path) -> tuple[int, int | None]:
    """(every packet captured, the `tcp` packets captured; None for the floor)."""
    if who == "floor":
        match = re.search(r"packets=(\d+)", (work / "floor.out").read_text())
        return (int(match.group(1)) if match else 0), None
    if who == "tcpdump" or who in MODELS:
        return count_pcap(work / "all.pcap"), count_pcap(work / "tcp.pcap")
    out = work / "out"
    return (sum(count_pcap(f) for f in out.glob("all_*.pcap")),
            sum(count_pcap(f) for f in out.glob("tcp_*.pcap")))


def _one_run(lab: VethLab, who: str, trace: Path, rate: int, loops: int, work: Path,
             floor_bin: Path, flows_port: int, expected_tcp: dict[str, int]) -> dict:
    work.mkdir(parents=True)
    if who == "floor":
        capture = _floor(lab, work, floor_bin)
    elif who in MODELS:
        capture = _model(lab, work, who, floor_bin.with_name("design_models"))
    elif who == "tcpdump":
        capture = start_tcpdump(lab, work)
    else:
        capture = start_pushcap(lab, work, who == "pushcap_full", flows_port)
    try:
        capture.wait_ready()
        # Warm-up, the same for every tool: pushcap's ring takes fresh memory (page faults)
        # until it is full once, a start-up cost a daemon pays once, not per packet.
        warm = lab.replay(trace, rate, L2_WARMUP_LOOPS)
        time.sleep(L2_DRAIN_S)
        before = capture.cpu_s()
        sent = lab.replay(trace, rate, loops)
        time.sleep(L2_DRAIN_S)
        cpu_s = capture.cpu_s() - before
    finally:
        capture.stop()
    got_all, got_tcp = captured(who, work)
    got_all -= warm["sent"]
    shutil.rmtree(work, ignore_errors=True)
    per_loop = expected_tcp["tcpdump" if who == "tcpdump" else "pushcap"]
    want_tcp = per_loop * loops
    if got_tcp is not None:
        got_tcp -= per_loop * L2_WARMUP_LOOPS
    lossless = sent["failed"] == 0 and warm["failed"] == 0 and got_all == sent["sent"] and \
        (got_tcp is None or got_tcp == want_tcp)
    run = {"tool": who, "rate_pps": rate, **sent, "captured": got_all, "captured_tcp": got_tcp,
           "expected_tcp": want_tcp if got_tcp is not None else None, "cpu_s": round(cpu_s, 3),
           "us_per_packet": round(cpu_s / got_all * 1e6, 3) if got_all else None,
           "lossless": lossless}
    print(f"  L2 {who:13s} rate={rate:>8,} pps actual={sent['actual_pps']:>10,.0f} "
          f"captured={got_all:>9,}/{sent['sent']:,} cpu={cpu_s:.2f}s "
          f"us/pkt={run['us_per_packet']} lossless={lossless}", file=sys.stderr)
    return run


TOOLS = ("floor", "tcpdump", "pushcap", "pushcap_full")


def bench_l2(trace_packets: int, packets_per_rate: int, rates: tuple[int, ...], trace_dir: Path,
             scratch: Path, reps: int = 1, models: bool = False) -> dict:
    """Each rate: every tool captures the same packets, `reps` times, the tools' order rotating
    each time (one run per tool moved by up to 30% between runs minutes apart on the 2-core
    VM); CPU per packet (the median of a tool's lossless runs) and the ratios. `models`: the
    design models run too (`MODELS`)."""
    reason = l1_unavailable() or (None if shutil.which("gcc") else "gcc is not installed")
    if reason:
        return {"skipped": reason}
    trace = ensure_trace(trace_dir, trace_packets)
    work = scratch / "l2-oracle"
    work.mkdir(parents=True)
    floor_bin = build_floor(work / "pcap_floor")
    tools = TOOLS + MODELS if models else TOOLS
    if models:
        build_floor(work / "design_models", MODELS_SOURCE)
    expected_tcp = {"pushcap": _tcpdump_select_count(trace, "tcp", work),
                    "tcpdump": _tcpdump_select_count(trace, LIVE_TCP_EQUIVALENT, work)}
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the flows target's collector
    sink.bind(("127.0.0.1", 0))
    rows = []
    try:
        with VethLab() as lab:
            for rate in rates:
                loops = max(1, round(packets_per_rate / trace_packets))
                runs: dict[str, list[dict]] = {who: [] for who in tools}
                for rep in range(reps):
                    for who in tools[rep % len(tools):] + tools[:rep % len(tools)]:
                        runs[who].append(_one_run(lab, who, trace, rate, loops,
                                                  scratch / f"l2-{who}-{rate}", floor_bin,
                                                  sink.getsockname()[1], expected_tcp))
                rows.append(_row(rate, runs))
    except (subprocess.SubprocessError, OSError, RuntimeError) as exc:
        return {"error": f"stopped early: {exc}", "rates": rows}
    finally:
        sink.close()
    return {"trace_packets": trace_packets, "packets_per_rate": packets_per_rate, "reps": reps,
            "kernel_buffer_bytes": L2_KERNEL_BUFFER_BYTES, "rates": rows}


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else ratio(a, b)


def _median_lossless(runs: list[dict]) -> float | None:
    """A tool's figure: the median of its lossless runs (a lossy run does not count)."""
    figures = sorted(run["us_per_packet"] for run in runs
                     if run["lossless"] and run["us_per_packet"] is not None)
    return round(statistics.median(figures), 3) if figures else None


def _row(rate: int, runs: dict[str, list[dict]]) -> dict:
    """One rate's figures; a ratio only where both tools had a lossless run."""
    per = {who: _median_lossless(tool_runs) for who, tool_runs in runs.items()}
    return {"rate_pps": rate, "us_per_packet": per,
            "actual_pps": {who: round(statistics.median(run["actual_pps"] for run in tool_runs))
                           for who, tool_runs in runs.items()},
            "lossless": {who: [run["lossless"] for run in tool_runs]
                         for who, tool_runs in runs.items()},
            "pushcap_vs_tcpdump": _ratio(per["pushcap"], per["tcpdump"]),
            "pushcap_vs_floor": _ratio(per["pushcap"], per["floor"]),
            "pushcap_full_vs_tcpdump": _ratio(per["pushcap_full"], per["tcpdump"]),
            "pushcap_full_vs_floor": _ratio(per["pushcap_full"], per["floor"]),
            **({"model_copy_vs_tcpdump": _ratio(per["model_copy"], per["tcpdump"]),
                "model_zero_vs_tcpdump": _ratio(per["model_zero"], per["tcpdump"]),
                # the code's cost over its design's, and what zero-copy would save
                "pushcap_vs_model_copy": _ratio(per["pushcap"], per["model_copy"]),
                "model_zero_vs_model_copy": _ratio(per["model_zero"], per["model_copy"])}
               if "model_copy" in per else {}),
            "runs": [run for tool_runs in runs.values() for run in tool_runs]}
