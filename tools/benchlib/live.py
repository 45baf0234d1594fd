"""L1: live capture on a veth pair at rising `tcpreplay` rates, pushcap against tcpdump.

What a capture daemon must do is keep up with the link, so each tool captures while a trace is
sent at rising rates through a veth pair (the sender in a network namespace of its own), and
the highest rate each captures without loss is compared: pushcap with 2 targets (all, and
'tcp') against one tcpdump with 'tcp'.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import config
from .config import L1_DRAIN_S, L1_RING_BYTES, L1_TRIES, LIVE_TCP_EQUIVALENT, STARTED_TIMEOUT_S
from .inputs import ensure_trace, lua_text, pushcap_argv
from .measure import count_pcap, prime_pages, ratio


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
        # -K: the trace is loaded into memory first, so reading it never limits the rate.
        argv = ["ip", "netns", "exec", self.netns, "tcpreplay", "-K", f"--pps={rate_pps}",
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


def _capture_while_replaying(lab: VethLab, proc: subprocess.Popen, log_path: Path,
                             ready: str, trace: Path, rate: int, loops: int
                             ) -> tuple[dict, float]:
    """Once the capture says `ready`, send the trace; let the capture drain, stop it. Returns
    what tcpreplay reported and the capture's CPU seconds; the capture never outlives this."""
    try:
        _wait_for(log_path, ready, proc)
        sent = lab.replay(trace, rate, loops)
        time.sleep(L1_DRAIN_S)
        return sent, _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


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
                                stdout=log, stderr=subprocess.STDOUT, cwd=work,
                                env=config.CHILD_ENV)
    sent, cpu_s = _capture_while_replaying(lab, proc, log_path, "event=started", trace, rate,
                                           loops)
    log_text = log_path.read_text(errors="replace")
    got_all = sum(count_pcap(f) for f in out.glob("all_*.pcap"))
    got_tcp = sum(count_pcap(f) for f in out.glob("tcp_*.pcap"))
    behind = sum(int(m) for m in re.findall(r"event=push_behind .*?missed_packets=(\d+)",
                                            log_text))
    drops = re.findall(r"kernel_drops=(\d+)", log_text)
    return {**sent, "captured_all": got_all, "captured_tcp": got_tcp, "cpu_s": round(cpu_s, 3),
            "push_behind_missed": behind, "kernel_drops": int(drops[-1]) if drops else 0}


def l1_tcpdump(lab: VethLab, trace: Path, rate: int, loops: int, work: Path) -> dict:
    dest = work / "tcpdump.pcap"
    log_path = work / "tcpdump.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(["tcpdump", "-Z", "root", *config.L1_TCPDUMP_ARGS, "-i", lab.rx,
                                 "-w", str(dest), "tcp"],
                                stdout=log, stderr=subprocess.STDOUT)
    sent, cpu_s = _capture_while_replaying(lab, proc, log_path, "listening on", trace, rate,
                                           loops)
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
    """Rising rates; each tool stops at its first lossy rate. A rate counts as lossless for a
    tool if one of L1_TRIES captures at it lost nothing: on a 2-core VM one scheduling pause of
    the capture (pushcap's or tcpdump's) costs a few thousand packets by chance, and a single try
    made the verdict flip from run to run (tcpdump lossy at 800k pps in one run, clean at 1.2M in
    the next)."""
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
    best_actual = {"pushcap": 0, "tcpdump": 0}  # what the sender really reached, lossless
    lossy = {"pushcap": False, "tcpdump": False}
    try:
        with VethLab() as lab:
            for rate in rates:
                loops = max(1, round(rate * step_s / packets))
                for who in ("pushcap", "tcpdump"):
                    if lossy[who]:
                        continue
                    per_loop = tcp_in_trace if who == "pushcap" else tcp_live_in_trace
                    for attempt in range(1, L1_TRIES + 1):
                        run = _l1_try(lab, who, trace, rate, loops, per_loop,
                                      scratch / f"l1-{who}-{rate}-{attempt}")
                        run["attempt"] = attempt
                        steps.append(run)
                        if run["lossless"]:
                            break
                    if run["lossless"]:
                        best_actual[who] = max(best_actual[who], round(run["actual_pps"]))
                        if run["actual_pps"] >= 0.9 * rate:
                            best[who] = max(best[who], rate)
                    else:
                        lossy[who] = True
                if all(lossy.values()):
                    break
    except (subprocess.SubprocessError, OSError, RuntimeError) as exc:
        error = f"stopped early: {exc}"
        if not steps:
            return {"skipped": f"L1 could not run: {exc}"}
    else:
        error = None
    return {"error": error, "tcpdump_args": config.L1_TCPDUMP_ARGS, "trace_packets": packets,
            "tcp_in_trace": tcp_in_trace,
            "tcp_live_tcpdump_in_trace": tcp_live_in_trace, "step_s": step_s,
            "best_lossless_pps": best, "ratio": ratio(best["pushcap"], best["tcpdump"]),
            "best_lossless_actual_pps": best_actual,
            "hit_top_rate": {k: not v for k, v in lossy.items()}, "steps": steps}


def _l1_try(lab: VethLab, who: str, trace: Path, rate: int, loops: int, tcp_per_loop: int,
            work: Path) -> dict:
    """One capture by `who` while the trace is sent `loops` times at `rate`: what it caught and
    whether that is every packet (pushcap: both targets; tcpdump: its 'tcp')."""
    work.mkdir(parents=True)
    # Both tools get what pushcap may write at this rate (two targets) plus its ring, primed
    # right before (see measure.prime_pages).
    prime_pages(work, 2 * loops * trace.stat().st_size + L1_RING_BYTES)
    try:
        run = (l1_pushcap if who == "pushcap" else l1_tcpdump)(lab, trace, rate, loops, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    expected_tcp = tcp_per_loop * loops if run["failed"] == 0 else None
    ok = run["captured_tcp"] == expected_tcp and run["failed"] == 0
    if who == "pushcap":
        ok = ok and run["captured_all"] == run["sent"]
    run.update(tool=who, rate_pps=rate, loops=loops, expected_tcp=expected_tcp, lossless=ok)
    print(f"  L1 {who:8s} rate={rate:>8,} pps actual={run['actual_pps']:>10,.0f}"
          f" sent={run['sent']:>9,} lossless={ok}", file=sys.stderr)
    return run


def _tcpdump_select_count(trace: Path, bpf: str, work: Path) -> int:
    dest = work / "select.pcap"
    subprocess.run(["tcpdump", "-Z", "root", "-r", str(trace), "-w", str(dest), bpf],
                   check=True, capture_output=True, timeout=600)
    count = count_pcap(dest)
    dest.unlink()
    return count
