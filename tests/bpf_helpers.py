"""Packets, batches, libpcap's verdict and a fake compiler, shared by both BPF test files."""

from __future__ import annotations

import numpy as np
import pcapy

from pushcap.capture.batch import Batch, build_records
from pushcap.capture.bpf import BpfFilter
from pushcap.config import bpf_compile

DLT_EN10MB = 1


def _random_packets(rng: np.random.Generator, n: int) -> list[bytes]:
    """Ethernet-ish packets: random bytes, but ethertypes and protocols drawn from real values so
    that the filters' deeper branches are reached, and lengths from 0 up to past the headers."""
    packets = []
    ethertypes = [0x0800, 0x86DD, 0x8100, 0x0806, 0x88A8, 0x1234]
    for _ in range(n):
        length = int(rng.choice([rng.integers(0, 60), rng.integers(14, 200)]))
        pkt = bytearray(rng.integers(0, 256, length, dtype=np.uint8).tobytes())
        if length >= 14:
            pkt[12:14] = int(rng.choice(ethertypes)).to_bytes(2, "big")
        if length >= 24 and pkt[12:14] == b"\x08\x00":
            pkt[14] = 0x40 | int(rng.integers(0, 16))  # IPv4, any header length
            pkt[23] = int(rng.choice([6, 17, 1, 51, 0]))
            if rng.random() < 0.5:
                pkt[20:22] = b"\x00\x00"  # not a fragment
        if length >= 21 and pkt[12:14] == b"\x86\xdd":
            pkt[20] = int(rng.choice([6, 17, 0, 43, 44, 60, 51, 58]))
        packets.append(bytes(pkt))
    return packets


def _as_batch(packets: list[bytes], wirelen: list[int] | None = None) -> Batch:
    caplen = np.array([len(p) for p in packets], dtype=np.int64)
    data_offsets = np.zeros(len(packets), dtype=np.int64)
    if len(packets):
        np.cumsum(caplen[:-1], out=data_offsets[1:])
    wire = caplen if wirelen is None else np.array(wirelen, dtype=np.int64)
    ts_ns = np.arange(len(packets), dtype=np.int64) * 1000
    records, offsets = build_records(ts_ns, caplen, wire, b"".join(packets), data_offsets)
    return Batch(records, offsets, ts_ns, caplen, wire, DLT_EN10MB, 262144)


def _assert_libpcap_agrees(expression: str, packets: list[bytes], mixed: bool = False) -> None:
    """libpcap's verdict per packet (the oracle) equals BpfFilter's for the whole batch."""
    prog = pcapy.compile(DLT_EN10MB, 262144, expression, 1, 0)
    want = np.array([prog.filter(p) != 0 for p in packets])
    if mixed:
        assert want.any() and not want.all()
    got = BpfFilter(expression, DLT_EN10MB).match(_as_batch(packets))
    bad = np.flatnonzero(got != want)
    assert not len(bad), f"{expression!r}: packets {bad[:10].tolist()} differ from libpcap"


class _FakeProgram:
    def __init__(self, insns: list[tuple[int, int, int, int]]) -> None:
        self.insns = insns

    def get_bpf(self) -> list[tuple[int, int, int, int]]:
        return self.insns


def fake_libpcap(monkeypatch, insns: list[tuple[int, int, int, int]]) -> None:
    """Make libpcap's compiler answer `insns` whatever it is asked: a program libpcap would not
    emit. The compile cache is emptied first, or an earlier answer for the same expression would
    be what BpfFilter gets (use expressions no real test compiles: the fake stays cached)."""
    monkeypatch.setattr(pcapy, "compile", lambda *args: _FakeProgram(insns))
    bpf_compile.clear_cache()
