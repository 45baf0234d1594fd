"""Regions of pcap records for the record walk tests, and the plain sequential walk they are
checked against."""

from __future__ import annotations

import struct

import numpy as np


def sequential(region: bytes, order: str) -> tuple[list[int], int]:
    offsets, pos = [], 0
    while pos + 16 <= len(region):
        caplen = struct.unpack_from(order + "I", region, pos + 8)[0]
        if pos + 16 + caplen > len(region):
            break
        offsets.append(pos)
        pos += 16 + caplen
    return offsets, pos


def make_region(rng: np.random.Generator, order: str, packets: int, evil: bool) -> bytes:
    ts = 1_700_000_000 + int(rng.integers(0, 1000))
    parts = []
    for _ in range(packets):
        caplen = int(rng.choice([0, 1, 60, 100, 1514, int(rng.integers(0, 4000))]))
        header = struct.pack(order + "IIII", ts, int(rng.integers(0, 10**6)), caplen, caplen)
        if evil:  # payload made of fake headers with the same timestamp bytes
            fake = struct.pack(order + "IIII", ts, 7, int(rng.integers(0, 3000)), 99)
            payload = (fake * (caplen // 16 + 1))[:caplen]
        else:
            payload = rng.integers(0, 256, caplen, dtype=np.uint8).tobytes()
        parts.append(header + payload)
        ts += int(rng.integers(0, 2))
    return b"".join(parts)
