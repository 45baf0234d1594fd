"""Driving the engine's push step batch by batch, without live capture: built batches and an
engine with one interface, for the reload handover, push clock and trigger job tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pushcap.capture.batch import Batch, build_records
from pushcap.capture.ring import Ring
from pushcap.config.model import DaemonConfig, InterfaceConfig, RingConfig, TargetConfig
from pushcap.supervisor.engine import LiveEngine

S = 10**9


def batch_of(ts_ns: list[int], sizes: list[int], sources: list[int] | None = None) -> Batch:
    """Ethernet/IPv4/UDP frames of the given sizes; byte 42 holds a packet counter. `sources`:
    each frame's IPv4 source address as an integer (one flow per address), else all 0."""
    frames = []
    for i, size in enumerate(sizes):
        frame = bytearray(size)
        frame[12:14] = b"\x08\x00"
        frame[14] = 0x45
        frame[23] = 17
        if sources is not None:
            frame[26:30] = sources[i].to_bytes(4, "big")
        frame[42:46] = (ts_ns[i] // 10**6 % 2**32).to_bytes(4, "big")
        frames.append(bytes(frame))
    data = b"".join(frames)
    caplen = np.array(sizes, dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(caplen)[:-1]))
    ts = np.array(ts_ns, dtype=np.int64)
    records, rec_offsets = build_records(ts, caplen, caplen, data, offsets)
    return Batch(records, rec_offsets, ts, caplen, caplen.copy(), 1, 262144)


def engine_with(tmp_path: Path, first: TargetConfig) -> LiveEngine:
    config = DaemonConfig(str(tmp_path / "d.toml"), "n", (InterfaceConfig("eth0"),),
                          RingConfig(60, 1 << 30, 8192, 100), status_port=0)
    engine = LiveEngine(config, (first,))
    engine.attach("eth0", Ring("eth0", 1, 262144, 60, 1 << 30))
    return engine


def batch_at(ts_ns: list[int], size: int = 60) -> Batch:
    """Zero-filled packets of one size at the given times (the ring and trigger tests)."""
    ts = np.array(ts_ns, dtype=np.int64)
    caplen = np.full(len(ts), size, dtype=np.int64)
    records, offsets = build_records(ts, caplen, caplen, bytes(size * len(ts)),
                                     np.arange(len(ts)) * size)
    return Batch(records, offsets, ts, caplen, caplen.copy(), 1, 262144)
