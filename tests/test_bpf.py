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
from bpf_helpers import DLT_EN10MB, _as_batch, _assert_libpcap_agrees, _random_packets, fake_libpcap

from pushcap.capture.bpf import BpfError, BpfFilter, compile_shared

PCAPS = Path(__file__).resolve().parent / "data"
CAPTURES = sorted(PCAPS.glob("*.pcap"))

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
    fake_libpcap(monkeypatch, insns)
    with pytest.raises(BpfError):
        BpfFilter("anything", DLT_EN10MB)


def test_backward_jump_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loop that never ends is cut after 65536 backward jumps (the numpy evaluator's guard;
    libpcap has none, and no compiled filter needs more than caplen / 8 of them)."""
    loop = [(0x04, 0, 0, 1),                 # 0: A += 1
            (0x15, 1, 0, 60),                # 1: A == 60 ? -> 3 : -> 2
            (0x05, 0, 0, 0xFFFFFFFD),        # 2: ja 0
            (0x06, 0, 0, 1)]                 # 3: accept
    fake_libpcap(monkeypatch, loop)
    assert BpfFilter("loop to 60", DLT_EN10MB).match(_as_batch([bytes(20)]))[0]
    loop[1] = (0x15, 1, 0, 65536)  # reached at jump 65535: still inside the guard
    assert BpfFilter("loop to 65536", DLT_EN10MB).match(_as_batch([bytes(20)]))[0]
    loop[1] = (0x15, 1, 0, 65538)
    assert not BpfFilter("loop to 65538", DLT_EN10MB).match(_as_batch([bytes(20)]))[0]


def ip6_with_extension_headers(count: int) -> bytes:
    """Ethernet, IPv6, `count` 8-byte destination-options headers, then a TCP header."""
    exts = b"".join(bytes([60 if i + 1 < count else 6, 0]) + b"\x01\x04\x00\x00\x00\x00"
                    for i in range(count))
    tcp = struct.pack("!HHIIBBHHH", 1234, 80, 0, 0, 0x50, 2, 1024, 0, 0)
    ip6 = struct.pack("!IHBB", 6 << 28, len(exts) + len(tcp), 60 if count else 6, 64) + bytes(32)
    return bytes(12) + b"\x86\xdd" + ip6 + exts + tcp


def test_protochain_follows_as_many_extension_headers_as_libpcap() -> None:
    """Each extension header is a backward jump of protochain's loop: a hostile packet with
    hundreds of them is followed to its TCP header, by numpy and C alike, as libpcap does."""
    counts = [0, 1, 63, 64, 65, 100, 300, 2000]
    packets = [ip6_with_extension_headers(n) for n in counts]
    program = pcapy.compile(DLT_EN10MB, 262144, "ip6 protochain 6", 1, 0)
    libpcap = [i for i, p in enumerate(packets) if program.filter(p)]  # one call a packet
    assert libpcap == list(range(len(counts)))
    filt = BpfFilter("ip6 protochain 6", DLT_EN10MB)
    batch = _as_batch(packets)
    assert np.flatnonzero(filt.match(batch)).tolist() == libpcap
    assert list(filt.select(batch)) == libpcap


def test_ret_a_accepts_on_nonzero_accumulator(monkeypatch: pytest.MonkeyPatch) -> None:
    """`ret a` returns a snap length: any nonzero value accepts, 0 rejects."""
    prog = [(0x30, 0, 0, 0), (0x16, 0, 0, 0)]  # ldb [0]; ret a
    fake_libpcap(monkeypatch, prog)
    batch = _as_batch([b"\x00" * 14, b"\x01" + bytes(13), b"\x80" + bytes(13), b""])
    assert BpfFilter("ret a", DLT_EN10MB).match(batch).tolist() == [False, True, True, False]
