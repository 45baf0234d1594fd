"""BpfFilter against two oracles: tcpdump on the real captures, and libpcap's per-packet filter.

tcpdump decides what a filter selects (DESIGN.md, testing conventions). The per-packet oracle
(pcapy's BPFProgram.filter, i.e. libpcap's bpf_filter) reaches the corners the captures do not:
random bytes, short packets, division by zero, shifts by 32 or more.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import threading
import zlib
from pathlib import Path

import numpy as np
import pcapy
import pytest

from pushcap.capture import bpf
from pushcap.capture.batch import Batch, build_records
from pushcap.capture.bpf import BpfError, BpfFilter, compile_shared

PCAPS = Path(__file__).resolve().parents[2] / "shared" / "pcaps"
CAPTURES = sorted(PCAPS.glob("*.pcap"))
DLT_EN10MB = 1

FILTERS = [
    "tcp", "udp", "udp port 53", "not port 22", "icmp", "ip6", "vlan", "vlan and tcp",
    "host 192.168.1.1", "not host 10.0.0.1", "net 10.0.0.0/8", "tcp[tcpflags] & tcp-syn != 0",
    "greater 500", "less 100", "len > 1000", "ip[6:2] & 0x1fff != 0", "portrange 1000-2000",
    "tcp port 80 and (((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)",
    "ether broadcast", "arp", "ip6 protochain 6", "ip protochain 17", "tcp[20:4] = 0x47455420",
    "not ip[100] = 1",
]


class Capture:
    """A classic pcap file read with struct alone, so the oracle shares no code with pushcap."""

    def __init__(self, path: Path) -> None:
        raw = path.read_bytes()
        magic_le = struct.unpack_from("<I", raw)[0]
        for endian in "<>":
            magic = struct.unpack_from(endian + "I", raw)[0]
            if magic in (0xA1B2C3D4, 0xA1B23C4D):
                break
        else:
            raise ValueError(f"{path}: not a classic pcap file (magic {magic_le:#x})")
        self.raw = raw
        self.frac_per_us = 1000 if magic == 0xA1B23C4D else 1
        self.snaplen, self.linktype = struct.unpack_from(endian + "II", raw, 16)
        self.linktype &= 0x0FFFFFFF
        header = struct.Struct(endian + "IIII")
        offsets, ts_us, caplen, wirelen = [], [], [], []
        pos = 24
        while pos + 16 <= len(raw):
            sec, frac, incl, orig = header.unpack_from(raw, pos)
            if pos + 16 + incl > len(raw):
                break  # cut short: whole packets only, as tcpdump does
            offsets.append(pos + 16)
            ts_us.append(sec * 1_000_000 + frac // self.frac_per_us)
            caplen.append(incl)
            wirelen.append(orig)
            pos += 16 + incl
        self.offsets = np.array(offsets, dtype=np.int64)
        self.ts_us = ts_us
        self.caplen = np.array(caplen, dtype=np.int64)
        self.wirelen = np.array(wirelen, dtype=np.int64)

    def packet(self, i: int) -> tuple[int, int, bytes]:
        start = int(self.offsets[i])
        return self.ts_us[i], int(self.wirelen[i]), self.raw[start:start + int(self.caplen[i])]

    def __len__(self) -> int:
        return len(self.offsets)


def tcpdump_selection(path: Path, expression: str, tmp_path: Path) -> np.ndarray:
    """The mask of input packets that `tcpdump -r path -w out expression` writes out."""
    out = tmp_path / "out.pcap"
    proc = subprocess.run(["tcpdump", "-r", str(path), "-w", str(out), expression],
                          capture_output=True, text=True, timeout=60)
    assert out.exists(), proc.stderr
    src, kept = Capture(path), Capture(out)
    mask = np.zeros(len(src), dtype=bool)
    i = 0
    for j in range(len(kept)):
        wanted = kept.packet(j)
        while i < len(src) and src.packet(i) != wanted:
            i += 1
        assert i < len(src), f"tcpdump wrote packet {j} that is not in the input in order"
        mask[i] = True
        i += 1
    return mask


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")
@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_matches_tcpdump_on_real_captures(path: Path, tmp_path: Path) -> None:
    cap = Capture(path)
    compared = 0
    for expression in FILTERS:
        try:
            filt = BpfFilter(expression, cap.linktype, cap.snaplen)
        except BpfError:
            continue  # e.g. `vlan` on raw IP
        got = filt.match_arrays(cap.raw, cap.offsets, cap.caplen, cap.wirelen)
        want = tcpdump_selection(path, expression, tmp_path)
        assert got.dtype == bool and len(got) == len(cap)
        bad = np.flatnonzero(got != want)
        assert not len(bad), f"{expression!r}: packets {bad[:10].tolist()} differ from tcpdump"
        compared += 1
    assert compared >= 5


def test_wire_length_not_captured_length() -> None:
    """`len`/`greater` read the wire length: a snaplen-cut capture must still match big packets."""
    cap = Capture(PCAPS / "tcp-snaplen68.pcap")
    assert (cap.caplen < cap.wirelen).any()
    big = BpfFilter("greater 100", cap.linktype).match_arrays(
        cap.raw, cap.offsets, cap.caplen, cap.wirelen)
    assert np.array_equal(big, cap.wirelen >= 100)
    assert not (cap.caplen >= 100).any() and big.any()


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


RANDOM_FILTERS = FILTERS[:12] + [
    "ip[6:2] & 0x1fff != 0", "portrange 1000-2000", "ether broadcast", "arp", "ip6 protochain 6",
    "ip protochain 17", "not (ether[0] / ether[1] = 1)", "ether[0] % ether[1] = 1",
    "ether[0] << ether[1] != 0", "ether[0] >> ether[1] != 0", "-ether[4] & 0xff = 3",
    "ether[0] ^ ether[1] = 7", "ether[8] * ether[9] > 1000", "ether[0] - ether[1] > 5",
    "ether[0:4] + ether[4:4] < 100", "ether[0] | ether[1] = 255", "ether[ether[0] & 7 : 4] = 1",
    "ether[0] & ether[1] != 0", "ether[0] > ether[1]", "ether[0] >= ether[1]",
    "ether[0] & 3 = ether[1] & 3", "ether[0:2] * ether[2:2] * ether[4:2] = 7", "not ip[100] = 1",
    "tcp[tcpflags] & (tcp-syn|tcp-ack) = tcp-syn",
]


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


@pytest.mark.parametrize("expression", RANDOM_FILTERS)
def test_matches_libpcap_per_packet_on_random_packets(expression: str) -> None:
    rng = np.random.default_rng(zlib.crc32(expression.encode()))
    _assert_libpcap_agrees(expression, _random_packets(rng, 3000))


def test_reject_on_failed_load_and_division_by_zero() -> None:
    """libpcap returns 0 for the whole program, so even a negated test rejects such packets."""
    ipv4 = bytes(12) + b"\x08\x00" + b"\x45" + bytes(29)  # 44 bytes: ip[100] is out of range
    long_ipv4 = ipv4 + bytes(100)
    not_ip = bytes(12) + b"\x86\xdd" + bytes(30)
    batch = _as_batch([ipv4, long_ipv4, not_ip])
    assert BpfFilter("not ip[100] = 1", DLT_EN10MB).match(batch).tolist() == [False, True, True]
    by_zero, four, two = bytes([8, 0]) + bytes(12), bytes([8, 2]) + bytes(12), bytes([8, 4])
    batch = _as_batch([by_zero, four, two + bytes(12)])
    assert BpfFilter("not (ether[0] / ether[1] = 2)", DLT_EN10MB).match(batch).tolist() == [
        False, True, False]
    assert BpfFilter("not (ether[0] % ether[1] = 1)", DLT_EN10MB).match(batch).tolist() == [
        False, True, True]


def test_shifts_of_32_or_more_give_zero() -> None:
    pkt = bytes([1, 40, 31, 32]) + bytes(10)
    batch = _as_batch([pkt])
    assert not BpfFilter("ether[0] << ether[1] != 0", DLT_EN10MB).match(batch)[0]
    assert BpfFilter("ether[0] << ether[2] = 0x80000000", DLT_EN10MB).match(batch)[0]
    assert not BpfFilter("ether[2] >> ether[3] != 0", DLT_EN10MB).match(batch)[0]


def test_batch_offsets_and_empty_batch() -> None:
    packets = [b"\xff" * 6 + bytes(8), bytes(14), b"\xff" * 6 + bytes(8)]
    filt = BpfFilter("ether broadcast", DLT_EN10MB)
    assert filt.match(_as_batch(packets)).tolist() == [True, False, True]
    empty = filt.match(_as_batch([]))
    assert empty.dtype == bool and len(empty) == 0


def test_compile_shared_returns_one_object_per_key() -> None:
    results: list[BpfFilter | None] = []
    threads = [threading.Thread(target=lambda: results.append(
        compile_shared("udp port 5353", DLT_EN10MB, 65535))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and all(r is results[0] for r in results)
    assert isinstance(results[0], BpfFilter) and results[0].expression == "udp port 5353"
    assert compile_shared("udp port 5353", DLT_EN10MB, 96) is not results[0]
    assert compile_shared("udp port 5353", 101, 65535) is not results[0]
    assert compile_shared(None, DLT_EN10MB, 65535) is None


def test_bad_filter_raises_with_libpcaps_message() -> None:
    with pytest.raises(pcapy.PcapError) as libpcap:
        pcapy.compile(DLT_EN10MB, 65535, "tcp port eighty", 1, 0)
    with pytest.raises(BpfError) as ours:
        compile_shared("tcp port eighty", DLT_EN10MB, 65535)
    assert str(ours.value) and str(ours.value) in str(libpcap.value)
    assert not str(ours.value).startswith("can't parse")
    with pytest.raises(BpfError, match="division by zero"):
        BpfFilter("ether[0] / 0 = 1", DLT_EN10MB)


class _FakeProgram:
    def __init__(self, insns: list[tuple[int, int, int, int]]) -> None:
        self.insns = insns

    def get_bpf(self) -> list[tuple[int, int, int, int]]:
        return self.insns


@pytest.mark.parametrize("insns", [
    [(0x30, 0, 0, 0xFFFFF000 + 44), (0x06, 0, 0, 1)],  # ldb vlan_tag_present (Linux ancillary)
    [(0x28, 0, 0, 12)],                                  # no return at the end
    [(0x15, 0, 5, 1), (0x06, 0, 0, 1)],                  # jump past the end
    [(0x05, 0, 0, 0xFFFFFFFF), (0x06, 0, 0, 1)],         # ja to itself
    [(0x0E, 0, 0, 0)],                                   # ret X: not in libpcap's interpreter
    [(0x60, 0, 0, 16), (0x06, 0, 0, 1)],                 # scratch word 16 does not exist
])
def test_programs_libpcap_would_not_run_are_refused(monkeypatch: pytest.MonkeyPatch,
                                                    insns: list) -> None:
    monkeypatch.setattr(bpf.pcapy, "compile", lambda *args: _FakeProgram(insns))
    with pytest.raises(BpfError):
        BpfFilter("anything", DLT_EN10MB)


def test_backward_jump_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loop that never ends is cut after 64 backward jumps (libpcap's MAX_BACKWARD_JUMPS)."""
    loop = [(0x04, 0, 0, 1),                 # 0: A += 1
            (0x15, 1, 0, 60),                # 1: A == 60 ? -> 3 : -> 2
            (0x05, 0, 0, 0xFFFFFFFD),        # 2: ja 0
            (0x06, 0, 0, 1)]                 # 3: accept
    monkeypatch.setattr(bpf.pcapy, "compile", lambda *args: _FakeProgram(loop))
    assert BpfFilter("loop to 60", DLT_EN10MB).match(_as_batch([bytes(20)]))[0]
    loop[1] = (0x15, 1, 0, 70)
    assert not BpfFilter("loop to 70", DLT_EN10MB).match(_as_batch([bytes(20)]))[0]


def test_ret_a_accepts_on_nonzero_accumulator(monkeypatch: pytest.MonkeyPatch) -> None:
    """`ret a` returns a snap length: any nonzero value accepts, 0 rejects."""
    prog = [(0x30, 0, 0, 0), (0x16, 0, 0, 0)]  # ldb [0]; ret a
    monkeypatch.setattr(bpf.pcapy, "compile", lambda *args: _FakeProgram(prog))
    batch = _as_batch([b"\x00" * 14, b"\x01" + bytes(13), b"\x80" + bytes(13), b""])
    assert BpfFilter("ret a", DLT_EN10MB).match(batch).tolist() == [False, True, True, False]


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
        monkeypatch.setattr(bpf.pcapy, "compile", lambda *args, insns=insns: _FakeProgram(insns))
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
