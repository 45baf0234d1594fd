"""The evaluator's shortcuts must not change a verdict: libpcap and a plain interpreter judge."""

from __future__ import annotations

import zlib

import numpy as np
import pcapy
import pytest
from bpf_helpers import DLT_EN10MB, _as_batch, _assert_libpcap_agrees, _random_packets, fake_libpcap

from pushcap.capture.bpf import BpfError, BpfFilter

# The evaluator's shortcuts (dead registers dropped at splits, runs of jumps resolved with masks,
# bounds checks skipped below the shortest packet) are checked against libpcap on packets built
# to reach the deep branches, and against a plain reference interpreter on random programs.

def _layered_packets(rng: np.random.Generator, n: int) -> list[bytes]:
    """Ethernet, optional VLAN tags, IPv4 (with options) or IPv6 (with extension headers), TCP
    or UDP with common ports, then cut at a random length so that loads fall off the end."""
    packets = []
    for _ in range(n):
        pkt = bytearray(rng.integers(0, 256, 12, dtype=np.uint8).tobytes())
        for _ in range(int(rng.choice([0, 0, 1, 2]))):
            pkt += int(rng.choice([0x8100, 0x88A8, 0x9100])).to_bytes(2, "big")
            pkt += int(rng.choice([100, 1, 2, int(rng.integers(0, 4096))])).to_bytes(2, "big")
        proto = int(rng.choice([6, 17, 1, 132, 0, 43, 44, 60]))
        if rng.random() < 0.6:
            ihl = int(rng.choice([5, 5, 6, 7]))
            ip = bytearray(rng.integers(0, 256, 4 * ihl, dtype=np.uint8).tobytes())
            ip[0], ip[9] = 0x40 | ihl, proto if proto < 100 or proto == 132 else 6
            if rng.random() < 0.7:
                ip[6:8] = b"\x00\x00"
            for at in (12, 16):
                if rng.random() < 0.5:
                    ip[at:at + 4] = bytes([10, 0, 0, 1] if rng.random() < 0.5 else [1, 2, 3, 4])
            pkt += b"\x08\x00" + ip
        else:
            ip = bytearray(rng.integers(0, 256, 40, dtype=np.uint8).tobytes())
            ip[0], ip[6] = 0x60, proto
            while proto in (0, 43, 60) and rng.random() < 0.7:
                proto = int(rng.choice([6, 17, 58, 0, 43, 60]))
                ip += bytes([proto, 0]) + rng.integers(0, 256, 6, dtype=np.uint8).tobytes()
            pkt += b"\x86\xdd" + ip
        l4 = bytearray(rng.integers(0, 256, 20, dtype=np.uint8).tobytes())
        for at in (0, 2):
            if rng.random() < 0.6:
                l4[at:at + 2] = int(rng.choice([22, 53, 80, 1500])).to_bytes(2, "big")
        if rng.random() < 0.5:
            l4[12] = 0x50  # a TCP header without options, then maybe an HTTP request
        payload = rng.integers(0, 256, int(rng.integers(0, 30)), dtype=np.uint8).tobytes()
        pkt += l4 + (b"GET / " if rng.random() < 0.3 else b"") + payload
        cut = len(pkt) if rng.random() < 0.7 else int(rng.integers(0, len(pkt) + 1))
        packets.append(bytes(pkt[:cut]))
    return packets


SPLIT_FILTERS = [
    "ip[0] & 0xf > 5", "tcp[tcpflags] & tcp-syn != 0", "ip6 and tcp", "vlan 100 and host 1.2.3.4",
    "ip proto \\tcp", "ip6 protochain 6", "ip6 protochain 17 or ip protochain 6", "vlan and tcp",
    "tcp port 80 or udp port 53", "not port 22", "host 10.0.0.1", "vlan and vlan and udp",
    "tcp[((tcp[12] & 0xf0) >> 2):4] = 0x47455420", "portrange 1000-2000 or icmp", "sctp or ip6",
]


@pytest.mark.parametrize("expression", SPLIT_FILTERS)
def test_matches_libpcap_per_packet_on_layered_packets(expression: str) -> None:
    rng = np.random.default_rng(zlib.crc32(expression.encode()))
    _assert_libpcap_agrees(expression, _layered_packets(rng, 2000), mixed=True)


@pytest.mark.parametrize("expression", ["ether[13] = 1", "ether[12:2] = 0x0801",
                                        "ether[10:4] = 0x01020304", "ether[ether[0] & 7 : 4] = 1",
                                        "ether[ether[0] & 15] = 4", "len > 5 and ether[13] > 0"])
def test_loads_up_to_the_last_byte_of_the_buffer(expression: str) -> None:
    """Packets packed back to back with no record headers: a load may end exactly at the end
    of the buffer (or one byte past it, which must reject rather than read or raise)."""
    rng = np.random.default_rng(zlib.crc32(expression.encode()))
    prog = pcapy.compile(DLT_EN10MB, 262144, expression, 1, 0)
    filt = BpfFilter(expression, DLT_EN10MB)
    for lengths in ([14], [13], [14, 14], [20, 14], [14, 13], [60, 15], [30, 1, 14]):
        packets = [bytes([int(rng.integers(0, 8))]) + bytes(range(1, n)) if n else b""
                   for n in lengths]
        raw = b"".join(packets)
        caplen = np.array(lengths, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(caplen)[:-1]]).astype(np.int64)
        got = filt.match_arrays(raw, offsets, caplen, caplen)
        assert got.tolist() == [prog.filter(p) != 0 for p in packets], lengths


def _reference_filter(insns: list[tuple[int, int, int, int]], pkt: bytes, wirelen: int) -> int:
    """libpcap's bpf_filter() one instruction at a time, in plain Python ints."""
    a = x = backward = pc = 0
    mem = [0] * 16
    while True:
        code, jt, jf, k = insns[pc]
        cls, op, mode = code & 0x07, code & 0xF0, code & 0xE0
        pc += 1
        if cls == 6:
            return a if code & 0x10 else k
        if cls in (0, 1):
            if mode in (0x20, 0x40, 0xA0):
                size = 1 if mode == 0xA0 else {0x00: 4, 0x08: 2, 0x10: 1}[code & 0x18]
                at = k + (x if mode == 0x40 else 0)
                if at + size > len(pkt):
                    return 0
                value = int.from_bytes(pkt[at:at + size], "big")
                value = (value & 0xF) << 2 if mode == 0xA0 else value
            else:
                value = {0x00: k, 0x80: wirelen}.get(mode, mem[k] if mode == 0x60 else 0)
            a, x = (value, x) if cls == 0 else (a, value)
        elif cls in (2, 3):
            mem[k] = a if cls == 2 else x
        elif cls == 4:
            b = x if code & 0x08 else k
            if op in (0x30, 0x90) and b == 0:
                return 0
            a = {0x00: a + b, 0x10: a - b, 0x20: a * b, 0x30: a // max(b, 1), 0x40: a | b,
                 0x50: a & b, 0x60: a << b if b < 32 else 0, 0x70: a >> b if b < 32 else 0,
                 0x80: -a, 0x90: a % max(b, 1), 0xA0: a ^ b}[op] & 0xFFFFFFFF
        elif cls == 5:
            if code == 0x05:
                if k >= 0x80000000:
                    if backward >= 64:
                        return 0
                    backward += 1
                pc = (pc + k) & 0xFFFFFFFF
            else:
                b = x if code & 0x08 else k
                cond = {0x10: a == b, 0x20: a > b, 0x30: a >= b, 0x40: a & b != 0}[op]
                pc += jt if cond else jf
        else:
            a, x = (x, x) if code & 0x80 else (a, a)


def _random_program(rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """A short valid program mixing loads, scratch words, X, ALU and runs of forward jumps,
    sometimes with a backward jump; constants are small so that tests go both ways."""
    n = int(rng.integers(2, 24))
    slots = [int(s) for s in rng.choice(16, 3, replace=False)]
    loops = rng.random() < 0.2
    insns = []
    for pc in range(n - 1):
        reach = min(n - pc - 2, 5)
        kind = rng.random()
        if kind < 0.25:
            code = int(rng.choice([0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0xB1, 0x80, 0x81]))
            k = int(rng.integers(0, 70))
        elif kind < 0.35:
            code = int(rng.choice([0x00, 0x01]))
            k = int(rng.choice([int(rng.integers(0, 40)), 0xFFFFFFF0]))
        elif kind < 0.45:
            code, k = int(rng.choice([0x02, 0x03, 0x60, 0x61])), int(rng.choice(slots))
        elif kind < 0.6:
            code = int(rng.choice([0x04, 0x14, 0x24, 0x34, 0x44, 0x54, 0x64, 0x74, 0x84, 0x94,
                                   0xA4, 0x0C, 0x1C, 0x2C, 0x3C, 0x5C, 0x6C, 0x7C, 0x9C]))
            k = int(rng.integers(1, 32))
        elif kind < 0.67:
            code, k = int(rng.choice([0x07, 0x87])), 0
        elif kind < 0.92 and reach >= 0:
            code = int(rng.choice([0x15, 0x25, 0x35, 0x45, 0x1D, 0x2D, 0x3D, 0x4D]))
            insns.append((code, int(rng.integers(0, reach + 1)), int(rng.integers(0, reach + 1)),
                          int(rng.integers(0, 40))))
            continue
        elif loops and pc > 0 and kind < 0.97:
            code, k = 0x05, -int(rng.integers(1, pc + 1)) & 0xFFFFFFFF
        else:
            code, k = int(rng.choice([0x06, 0x16])), int(rng.choice([0, 1]))
        insns.append((code, 0, 0, k))
    insns.append((int(rng.choice([0x06, 0x16])), 0, 0, int(rng.choice([0, 1]))))
    return insns


def test_reference_filter_agrees_with_libpcap() -> None:
    rng = np.random.default_rng(7)
    packets = _layered_packets(rng, 300)
    for expression in SPLIT_FILTERS + ["len > 100", "ether[0] % 3 = 1", "ether[1] >> ether[2] = 0"]:
        prog = pcapy.compile(DLT_EN10MB, 262144, expression, 1, 0)
        insns = [tuple(int(v) for v in insn) for insn in prog.get_bpf()]
        for p in packets:
            assert (_reference_filter(insns, p, len(p)) != 0) == (prog.filter(p) != 0), expression


def test_random_programs_match_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exercises register liveness (A, X, scratch words and the loop count carried or dropped at
    splits and merges), runs of jumps, failed loads and division by zero inside groups."""
    rng = np.random.default_rng(2024)
    compared = 0
    for _ in range(400):
        insns = _random_program(rng)
        fake_libpcap(monkeypatch, insns)
        try:
            filt = BpfFilter("random", DLT_EN10MB)
        except BpfError:
            continue
        packets = _random_packets(rng, int(rng.integers(1, 120)))
        wirelen = [len(p) + int(rng.integers(0, 3)) for p in packets]
        want = [_reference_filter(insns, p, w) != 0 for p, w in zip(packets, wirelen, strict=True)]
        got = filt.match(_as_batch(packets, wirelen))
        assert got.tolist() == want, insns
        compared += 1
    assert compared > 300
