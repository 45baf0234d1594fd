"""Measuring one child process: wall time, CPU time and peak memory, and their medians and ratios.

Every timed scenario compares pushcap and its reference by what their processes cost, so the
measuring is done one way for both: the child's wall clock from start to exit, its CPU from
`os.wait4`, its peak RSS (from GNU time when installed, see TIME_BIN) and the sampled peak of
its own heap (RssAnon), which tells pushcap's mmap of the input apart from its own memory.
"""

from __future__ import annotations

import mmap
import os
import re
import statistics
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import config
from .config import PCAP_HEADER_BYTES, RECORD_HEADER_BYTES, SAMPLE_INTERVAL_S


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


def run_measured(argv: list[str], log_path: Path, cwd: Path | None = None) -> tuple[Usage, str]:
    """Run argv to completion; (its resource usage, its stdout+stderr). Raises on failure.

    CPU is user+sys from os.wait4, which includes what a launcher's reaped child used.
    """
    rss_path = log_path.with_suffix(".rss")
    launch = [TIME_BIN, "-f", "%M", "-o", str(rss_path), *argv] if TIME_BIN else argv
    with log_path.open("w+") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(launch, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                                env=config.CHILD_ENV)
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


_PRIME_CHUNK = bytes(16 << 20)
_PRIME_MAX_BYTES = 4 << 30


def prime_pages(work: Path, nbytes: int) -> None:
    """Write and delete `nbytes` where the outputs go, right before a measured run.

    On a VM whose host hands out guest memory on first touch (and takes freed pages back),
    writing a file costs up to twice as much kernel time when its pages come fresh from the
    host; whether they do depends on what ran seconds before. Both tools get the same priming,
    so neither pays for the hypervisor by chance (it halved the spread of R4 here). On the
    Firecracker VM of issue 7, writing 3 GB to tmpfs took 5.1 s of kernel time into memory the
    guest had not touched yet and 0.96 s once it had: L1's top rates write more than any
    earlier step, so without priming the tool that runs first at a rate pays for both."""
    path = work / "prime.tmp"
    left = min(nbytes, _PRIME_MAX_BYTES)
    try:
        with path.open("wb", buffering=0) as f:
            while left > 0:
                left -= f.write(memoryview(_PRIME_CHUNK)[:min(left, len(_PRIME_CHUNK))])
    except OSError:  # a small tmpfs is full: what was written is primed, the run still happens
        pass
    finally:
        path.unlink(missing_ok=True)


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
