"""The checker of the reliability suite: which sequence numbers each target's files hold.

Every output file is judged valid by capinfos and read with dpkt (the oracles DESIGN.md names);
nothing here imports pushcap. For one target the checker counts every sequence number of the
run: missing ones must lie inside the downtime windows the scenario declares (between a kill -9
and the restart's capture, while an interface is gone, while a disk is full), and none may occur
twice anywhere.
"""

from __future__ import annotations

import gzip
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import dpkt
import numpy as np

MAGIC = b"PCSQ"
ETH_IPV4 = b"\x08\x00"
UDP_PAYLOAD_AT = 14 + 20 + 8  # Ethernet + IPv4 without options + UDP
_CAPINFOS_COUNT = re.compile(r"^Number of packets:\s+(\d+)\s*$", re.MULTILINE)


@dataclass
class Window:
    """A span of wall-clock time (epoch seconds) in which losing packets is allowed."""

    start: float
    end: float
    why: str

    def holds(self, t: np.ndarray, margin_s: float) -> np.ndarray:
        return (t >= self.start - margin_s) & (t <= self.end + margin_s)


@dataclass
class TargetSeqs:
    """What one target's files hold of a run."""

    name: str
    files: list[Path]
    counts: np.ndarray  # how often each sequence number 0..sent-1 was found
    foreign: int = 0  # packets of the target that are not this run's datagrams
    beyond: int = 0  # sequence numbers at or past `sent` (the sender lied)
    invalid: list[str] = field(default_factory=list)
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)  # file: first, last ts

    @property
    def missing(self) -> np.ndarray:
        return np.flatnonzero(self.counts == 0)

    @property
    def duplicates(self) -> np.ndarray:
        return np.flatnonzero(self.counts > 1)

    @property
    def packets(self) -> int:
        return int(self.counts.sum())


def capinfos_counts(files: list[Path]) -> list[int]:
    """Packets in each file as capinfos counts them; AssertionError if it rejects one."""
    if not files:
        return []
    proc = subprocess.run(["capinfos", "-c", "-M", *map(str, files)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"capinfos rejects a file (exit {proc.returncode}): " \
                                 f"{proc.stderr.strip()}"
    counts = [int(n) for n in _CAPINFOS_COUNT.findall(proc.stdout)]
    assert len(counts) == len(files), proc.stdout
    return counts


def read_target(name: str, files: Iterable[Path], run_id: bytes, sent: int) -> TargetSeqs:
    """Count every sequence number of run `run_id` in `files` (pcap, or pcap.gz)."""
    files = sorted(files)
    counts = np.zeros(sent, dtype=np.int64)
    seqs = TargetSeqs(name, files, counts)
    plain = [f for f in files if not f.name.endswith(".gz")]
    for path, expected in zip(plain, capinfos_counts(plain), strict=True):
        found = _count_file(path, path.read_bytes(), run_id, seqs)
        if found != expected:
            seqs.invalid.append(f"{path.name}: dpkt read {found} packets, capinfos {expected}")
    for path in files:
        if path.name.endswith(".gz"):
            _count_file(path, gzip.decompress(path.read_bytes()), run_id, seqs)
    return seqs


def _count_file(path: Path, raw: bytes, run_id: bytes, seqs: TargetSeqs) -> int:
    import io

    numbers: list[int] = []
    read = 0
    try:
        for ts, frame in dpkt.pcap.Reader(io.BytesIO(raw)):
            read += 1
            t = float(ts)  # a Decimal for nanosecond files
            seqs.spans[path.name] = (seqs.spans.get(path.name, (t, t))[0], t)
            payload = frame[UDP_PAYLOAD_AT:]
            if frame[12:14] != ETH_IPV4 or frame[14] != 0x45 or payload[:4] != MAGIC \
                    or payload[4:12] != run_id:
                seqs.foreign += 1
                continue
            numbers.append(int.from_bytes(payload[12:20], "big"))
    except (dpkt.NeedData, dpkt.UnpackError, ValueError) as exc:
        seqs.invalid.append(f"{path.name}: dpkt: {exc!r}")
    values = np.asarray(numbers, dtype=np.int64)
    inside = values[values < len(seqs.counts)]
    seqs.beyond += len(values) - len(inside)
    np.add.at(seqs.counts, inside, 1)
    return read


def ranges(numbers: np.ndarray, limit: int = 8) -> str:
    """`3-7, 12, 40-41` for a sorted array (the first `limit` runs)."""
    if not len(numbers):
        return "none"
    breaks = np.flatnonzero(np.diff(numbers) != 1)
    starts = np.concatenate(([numbers[0]], numbers[breaks + 1]))
    ends = np.concatenate((numbers[breaks], [numbers[-1]]))
    shown = [f"{a}" if a == b else f"{a}-{b}" for a, b in zip(starts, ends, strict=True)]
    more = f" ... ({len(shown) - limit} more runs)" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more


def unexcused(seqs: TargetSeqs, send_times: np.ndarray, windows: list[Window],
              margin_s: float) -> np.ndarray:
    """Missing sequence numbers sent outside every downtime window (± `margin_s`)."""
    missing = seqs.missing
    allowed = np.zeros(len(missing), dtype=bool)
    for window in windows:
        allowed |= window.holds(send_times[missing], margin_s)
    return missing[~allowed]


def assert_accounted(seqs: TargetSeqs, send_times: np.ndarray, windows: list[Window] = (),
                     margin_s: float = 0.5, first: int = 0) -> None:
    """The suite's rule for one target: every file valid, nothing foreign or invented, no
    sequence number twice, and none missing outside the declared downtime windows. `first`:
    the first sequence number the target can have seen (the run started before it)."""
    t0 = send_times[0] if len(send_times) else 0.0
    where = "; ".join(f"{w.why} {w.start - t0:+.2f}..{w.end - t0:+.2f} s" for w in windows)
    dupes = seqs.duplicates
    lost = unexcused(seqs, send_times, windows, margin_s)
    lost = lost[lost >= first]
    detail = ""
    if len(lost):
        detail = (f"; first unexcused loss sent at {send_times[lost[0]] - t0:+.3f} s, last at "
                  f"{send_times[lost[-1]] - t0:+.3f} s")
    assert not seqs.invalid, f"{seqs.name}: invalid files: {seqs.invalid}"
    assert seqs.foreign == 0 and seqs.beyond == 0, \
        f"{seqs.name}: {seqs.foreign} foreign packets, {seqs.beyond} numbers never sent"
    assert not len(dupes) and not len(lost), (
        f"{seqs.name}: {len(send_times)} sent, {seqs.packets} in {len(seqs.files)} files; "
        f"{len(dupes)} duplicated ({ranges(dupes)}); {len(lost)} lost outside the downtime "
        f"[{where or 'none declared'}] ({ranges(lost)}){detail}")
