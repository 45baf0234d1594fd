"""The C BPF interpreter (native_bpf, csrc/bpfrun.c) against libpcap and tcpdump.

The oracle is libpcap's own bpf_filter(), called through ctypes once per packet on a copy of the
packet's bytes and an instruction array packed here with `struct` (nothing shared with the code
under test), and tcpdump's selection from the real captures. Compiled filters, hand-built
programs for the corners (loads across caplen, X + k past 2^32, division by X = 0, shifts by 32
or more, wire length beyond caplen) and random programs are all judged by it.
"""

from __future__ import annotations

import ctypes
import mmap
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from bpf_helpers import DLT_EN10MB, _random_packets
from oracle import PCAPS_DIR, assert_same_packets, read_pcap, tcpdump_select
from test_bpf import FILTERS, RANDOM_FILTERS, Capture
from test_bpf_evaluator import SPLIT_FILTERS, _layered_packets

from pushcap.capture import native as native_module
from pushcap.capture.bpf import BpfError, BpfFilter
from pushcap.capture.bpf_program import check_program
from pushcap.capture.native_bpf import NativeBpf, NativeProgram, native_bpf

REPO = Path(__file__).resolve().parents[1]
CAPTURES = sorted(PCAPS_DIR.glob("*.pcap"))
EXPRESSIONS = list(dict.fromkeys(FILTERS + RANDOM_FILTERS + SPLIT_FILTERS))
# What the synthetic packets never (or always) match: compared with libpcap all the same.
RARE = {"ip protochain 17", "ip6 protochain 6", "host 192.168.1.1", "len > 1000",
        "ether broadcast", "ether[0:4] + ether[4:4] < 100", "ether[ether[0] & 7 : 4] = 1",
        "ether[0:2] * ether[2:2] * ether[4:2] = 7"}

_LIBPCAP = ctypes.CDLL("libpcap.so.0.8")
_LIBPCAP.bpf_filter.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint]
_LIBPCAP.bpf_filter.restype = ctypes.c_uint

# Opcodes, spelled out from pcap/bpf.h rather than imported from the code under test.
LD_W_ABS, LD_H_ABS, LD_B_ABS = 0x20, 0x28, 0x30
LD_W_IND, LD_H_IND, LD_B_IND = 0x40, 0x48, 0x50
LD_LEN, LDX_LEN, LD_IMM, LDX_IMM, LD_MEM, LDX_MEM = 0x80, 0x81, 0x00, 0x01, 0x60, 0x61
LDX_MSH, ST, STX, TAX, TXA, NEG = 0xB1, 0x02, 0x03, 0x07, 0x87, 0x84
ALU_K_OPS = [0x04, 0x14, 0x24, 0x34, 0x44, 0x54, 0x64, 0x74, 0x94, 0xA4]  # add..rsh, mod, xor
ALU_X_OPS = [op | 0x08 for op in ALU_K_OPS]
DIV_K, MOD_K, LSH_K, RSH_K = 0x34, 0x94, 0x64, 0x74
JEQ_K, JGT_K, JGE_K, JSET_K, JA = 0x15, 0x25, 0x35, 0x45, 0x05
JUMPS = [JEQ_K, JGT_K, JGE_K, JSET_K, JEQ_K | 0x08, JGT_K | 0x08, JGE_K | 0x08, JSET_K | 0x08]
RET_K, RET_A = 0x06, 0x16
JUNK = b"\xee" * 16  # in place of each record header: a load past caplen would read it


@pytest.fixture(scope="module")
def nb() -> NativeBpf:
    native = native_bpf()
    assert native is not None, "the C library lacks bpf_select: `make setup`"
    return native


def libpcap_verdicts(program, packets: list[bytes], wirelen: list[int]) -> list[int]:
    """Indices of the packets libpcap's bpf_filter() accepts, one call per packet."""
    insns = b"".join(struct.pack("=HBBI", *insn) for insn in program)
    return [i for i, (pkt, wire) in enumerate(zip(packets, wirelen, strict=True))
            if _LIBPCAP.bpf_filter(insns, pkt, wire, len(pkt)) != 0]


def as_records(packets: list[bytes]) -> tuple[bytes, list[int]]:
    """Packets back to back, each after a 16-byte junk header, and where each record starts."""
    offsets, position = [], 0
    for pkt in packets:
        offsets.append(position)
        position += 16 + len(pkt)
    return b"".join(JUNK + pkt for pkt in packets), offsets


def native_select(nb: NativeBpf, program, packets: list[bytes], wirelen: list[int] | None = None,
                  use_libpcap: bool | None = None) -> list[int]:
    wirelen = [len(p) for p in packets] if wirelen is None else wirelen
    prepared = nb.prepare(tuple(program))
    if use_libpcap is not None:
        prepared = NativeProgram(prepared.insns, prepared.length, use_libpcap)
    records, offsets = as_records(packets)
    out = np.full(len(packets), -1, dtype=np.int64)
    count = nb.select(prepared, records, np.array(offsets, dtype=np.int64),
                      np.array([len(p) for p in packets], dtype=np.int64),
                      np.array(wirelen, dtype=np.int64), out)
    assert 0 <= count <= len(packets)
    return out[:count].tolist()


def assert_agrees(nb: NativeBpf, program, packets: list[bytes], wirelen: list[int] | None = None,
                  what: str = "") -> list[int]:
    """The C selection (and libpcap's loop in C) equals libpcap's per-packet verdicts."""
    wirelen = [len(p) for p in packets] if wirelen is None else wirelen
    want = libpcap_verdicts(program, packets, wirelen)
    got = native_select(nb, program, packets, wirelen)
    assert got == want, f"{what or program}: {sorted(set(got) ^ set(want))[:10]} differ"
    assert native_select(nb, program, packets, wirelen, use_libpcap=True) == want
    return want


# ---- compiled filters ----------------------------------------------------------------------

@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_compiled_filters_match_libpcap_on_synthetic_packets(nb: NativeBpf,
                                                             expression: str) -> None:
    rng = np.random.default_rng(zlib.crc32(expression.encode()))
    packets = _random_packets(rng, 600) + _layered_packets(rng, 900)
    wirelen = [len(p) + int(rng.choice([0, 0, 1, 500])) for p in packets]
    program = BpfFilter(expression, DLT_EN10MB).program
    want = assert_agrees(nb, program, packets, wirelen, expression)
    if expression not in RARE:
        assert 0 < len(want) < len(packets), f"{expression!r} selects all or nothing"


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_real_captures_match_libpcap(nb: NativeBpf, path: Path) -> None:
    """The file's own bytes as the records buffer (read-only), its headers as the batch's."""
    cap = Capture(path)
    count = min(len(cap), 2000)
    offsets = cap.offsets[:count] - 16
    caplen, wirelen = cap.caplen[:count], cap.wirelen[:count]
    packets = [cap.raw[s:s + c] for s, c in zip(cap.offsets[:count], caplen, strict=True)]
    out = np.empty(count, dtype=np.int64)
    compared = selected = 0
    for expression in FILTERS:
        try:
            program = BpfFilter(expression, cap.linktype, cap.snaplen).program
        except BpfError:
            continue  # e.g. `vlan` on raw IP
        want = libpcap_verdicts(program, packets, wirelen.tolist())
        got = nb.select(nb.prepare(program), cap.raw, offsets, caplen, wirelen, out)
        assert out[:got].tolist() == want, expression
        compared += 1
        selected += len(want)
    assert compared >= 5 and selected > 0


@pytest.mark.parametrize(("name", "expressions"), [
    ("http-bro.org.pcap", ["tcp port 80", "not port 22 and greater 200"]),
    ("vlan-mixed-tagged-untagged.pcap", ["vlan and tcp", "tcp[tcpflags] & tcp-syn != 0"]),
    ("http_ipv6.pcap", ["ip6 protochain 6", "udp or greater 1000"]),
    ("tcp-snaplen68.pcap", ["greater 100", "tcp[20:4] = 0x47455420"]),
    ("nfsv3-bigendian.pcap", ["udp port 2049", "not udp port 2049"]),
])
def test_selections_equal_tcpdumps(nb: NativeBpf, tmp_path: Path, name: str,
                                   expressions: list[str]) -> None:
    path = PCAPS_DIR / name
    source = read_pcap(path)
    cap = Capture(path)
    out = np.empty(len(cap), dtype=np.int64)
    for expression in expressions:
        program = nb.prepare(BpfFilter(expression, cap.linktype, cap.snaplen).program)
        count = nb.select(program, memoryview(cap.raw), cap.offsets - 16, cap.caplen,
                          cap.wirelen, out)
        want = tcpdump_select(path, expression, tmp_path / "out.pcap").packets
        assert_same_packets([source.packets[i] for i in out[:count]], want)
        assert want or expression == "tcp[20:4] = 0x47455420"


# ---- the corners of libpcap's semantics, hand-built ----------------------------------------

def test_loads_that_straddle_caplen_reject(nb: NativeBpf) -> None:
    """A load must fit in the captured bytes, although the buffer goes on (the next header)."""
    packets = [bytes(range(1, n + 1)) for n in range(0, 20)]
    for code, size in ((LD_W_ABS, 4), (LD_H_ABS, 2), (LD_B_ABS, 1)):
        for k in (0, 10, 15):
            want = [i for i, p in enumerate(packets) if len(p) >= k + size]
            assert assert_agrees(nb, [(code, 0, 0, k), (RET_A, 0, 0, 0)], packets) == want
    # The value read is big-endian, unaligned: bytes 3..6 of 1, 2, 3... are 4, 5, 6, 7.
    program = [(LD_W_ABS, 0, 0, 3), (JEQ_K, 0, 1, 0x04050607), (RET_K, 0, 0, 1), (RET_K, 0, 0, 0)]
    assert assert_agrees(nb, program, packets) == list(range(7, 20))


@pytest.mark.parametrize("x", [0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFC, 0x80000000])
def test_indirect_loads_with_x_plus_k_past_32_bits_reject(nb: NativeBpf, x: int) -> None:
    """X + k wraps to a small offset in 32 bits; libpcap refuses such a load, and so must C."""
    packets = [bytes(range(1, 40))] * 3
    for code in (LD_W_IND, LD_H_IND, LD_B_IND):
        for k in (1, 2, 4, 8, 0x7FFFFFFF):
            program = [(LDX_IMM, 0, 0, x), (code, 0, 0, k), (RET_K, 0, 0, 1)]
            assert assert_agrees(nb, program, packets) == []


def test_indirect_loads_up_to_the_last_captured_byte(nb: NativeBpf) -> None:
    packets = [bytes(range(1, n + 1)) for n in range(0, 24)]
    for code, size in ((LD_W_IND, 4), (LD_H_IND, 2), (LD_B_IND, 1)):
        program = [(LDX_IMM, 0, 0, 5), (code, 0, 0, 7), (RET_A, 0, 0, 0)]
        want = [i for i, p in enumerate(packets) if len(p) >= 12 + size]
        assert assert_agrees(nb, program, packets) == want


def test_division_and_modulo_by_zero_x_reject(nb: NativeBpf) -> None:
    packets = [bytes([b]) + bytes(5) for b in (0, 1, 2, 3, 0, 7)]
    for op in (0x3C, 0x9C):  # div x, mod x
        # ldb [0]; tax; ld #10; op x; ret #1: accepted iff byte 0 != 0, even with A % X == 0.
        program = [(LD_B_ABS, 0, 0, 0), (TAX, 0, 0, 0), (LD_IMM, 0, 0, 10), (op, 0, 0, 0),
                   (RET_K, 0, 0, 1)]
        assert assert_agrees(nb, program, packets) == [1, 2, 3, 5]


def test_shifts_by_32_or_more_give_zero(nb: NativeBpf) -> None:
    counts = [0, 1, 31, 32, 33, 63, 64, 255]
    packets = [bytes([c]) + bytes(3) for c in counts]
    for start, op in ((1, 0x6C), (0x80000000, 0x7C)):  # lsh x, rsh x
        program = [(LD_B_ABS, 0, 0, 0), (TAX, 0, 0, 0), (LD_IMM, 0, 0, start), (op, 0, 0, 0),
                   (RET_A, 0, 0, 0)]
        assert assert_agrees(nb, program, packets) == [0, 1, 2]


def test_len_loads_the_wire_length(nb: NativeBpf) -> None:
    packets = [bytes(60)] * 4
    wirelen = [60, 99, 100, 1514]
    for program in ([(LD_LEN, 0, 0, 0), (JGE_K, 0, 1, 100), (RET_K, 0, 0, 1), (RET_K, 0, 0, 0)],
                    [(LDX_LEN, 0, 0, 0), (TXA, 0, 0, 0), (JGE_K, 0, 1, 100), (RET_K, 0, 0, 1),
                     (RET_K, 0, 0, 0)]):
        assert assert_agrees(nb, program, packets, wirelen) == [2, 3]


def test_msh_up_to_the_last_byte(nb: NativeBpf) -> None:
    packets = [bytes([0x40 | n] * n) for n in range(1, 16)]  # last byte's low nibble: n
    for k in (0, 4, 9):
        # ldxb 4*([k]&0xf); txa; jeq #4*len: accepted iff byte k exists and len == 4 * nibble.
        program = [(LDX_MSH, 0, 0, k), (TXA, 0, 0, 0), (JGT_K, 0, 1, 0), (RET_A, 0, 0, 0),
                   (RET_K, 0, 0, 0)]
        assert assert_agrees(nb, program, packets) == [i for i, p in enumerate(packets)
                                                       if len(p) > k]
    program = [(LDX_MSH, 0, 0, 4), (TXA, 0, 0, 0), (JEQ_K, 0, 1, 4 * 5), (RET_K, 0, 0, 1),
               (RET_K, 0, 0, 0)]
    assert assert_agrees(nb, program, packets) == [4]


def test_scratch_memory(nb: NativeBpf) -> None:
    packets = [bytes([b, 9]) for b in (0, 5, 200)]
    # ldb [0]; st M[3]; ldb [1]; stx M[4] (X = 0); ldx M[3]; txa; ret a
    program = [(LD_B_ABS, 0, 0, 0), (ST, 0, 0, 3), (LD_B_ABS, 0, 0, 1), (STX, 0, 0, 4),
               (LDX_MEM, 0, 0, 3), (LD_MEM, 0, 0, 4), (ALU_X_OPS[0], 0, 0, 0), (RET_A, 0, 0, 0)]
    assert assert_agrees(nb, program, packets) == [1, 2]


def test_scratch_words_start_at_zero_for_every_packet(nb: NativeBpf) -> None:
    """libpcap leaves them undefined (no oracle); the brief's rule is 0, packet by packet: a
    word stored by one packet must not be seen by the next, across chunks too."""
    packets = [bytes([1 + i % 200]) for i in range(700)]
    # ld M[7]; jeq #0 -> (ldb [0]; st M[7]; ret #1) else ret #0
    program = [(LD_MEM, 0, 0, 7), (JEQ_K, 0, 3, 0), (LD_B_ABS, 0, 0, 0), (ST, 0, 0, 7),
               (RET_K, 0, 0, 1), (RET_K, 0, 0, 0)]
    assert native_select(nb, program, packets) == list(range(700))
    assert native_select(nb, [(LD_MEM, 0, 0, 5), (RET_A, 0, 0, 0)], packets) == []
    assert native_select(nb, [(TXA, 0, 0, 0), (RET_A, 0, 0, 0)], packets) == []


def test_ret_a_accepts_on_nonzero(nb: NativeBpf) -> None:
    packets = [b"\x00", b"\x01", b"\x80", b"", b"\x00\x01"]
    assert assert_agrees(nb, [(LD_B_ABS, 0, 0, 0), (RET_A, 0, 0, 0)], packets) == [1, 2]
    assert assert_agrees(nb, [(RET_K, 0, 0, 0xFFFFFFFF)], packets) == [0, 1, 2, 3, 4]
    assert assert_agrees(nb, [(RET_K, 0, 0, 0)], packets) == []


def test_backward_jumps_go_through_libpcap(nb: NativeBpf) -> None:
    program = BpfFilter("ip6 protochain 6", DLT_EN10MB).program
    assert any(code == JA and k >= 0x80000000 for code, _, _, k in program)
    assert nb.prepare(program).use_libpcap
    rng = np.random.default_rng(6)
    packets = _layered_packets(rng, 1500)
    want = libpcap_verdicts(program, packets, [len(p) for p in packets])
    assert want and native_select(nb, program, packets) == want
    # A loop of our own: A counts to 60 by ones (libpcap runs it; it ends).
    loop = [(0x04, 0, 0, 1), (JEQ_K, 1, 0, 60), (JA, 0, 0, 0xFFFFFFFD), (RET_A, 0, 0, 0)]
    assert nb.prepare(loop).use_libpcap
    assert native_select(nb, loop, [b"", b"x"]) == [0, 1]
    # The lanes refuse a backward jump rather than run off the program.
    with pytest.raises(ValueError, match="not a BPF program"):
        native_select(nb, program, packets, use_libpcap=False)


def test_forward_ja_and_jumps_with_both_targets_equal(nb: NativeBpf) -> None:
    packets = [bytes([b]) for b in range(10)] + [b""]
    program = [(LD_B_ABS, 0, 0, 0), (JGT_K, 1, 1, 3), (RET_K, 0, 0, 0), (JA, 0, 0, 1),
               (RET_K, 0, 0, 0), (JSET_K, 0, 1, 1), (RET_A, 0, 0, 0), (RET_K, 0, 0, 0)]
    assert assert_agrees(nb, program, packets) == [1, 3, 5, 7, 9]


# ---- random programs -----------------------------------------------------------------------

def random_program(rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """A valid forward-only program of every instruction libpcap runs. Its scratch words are
    stored before anything loads them (libpcap's are undefined until then); X may be huge, so
    that X + k overflows 32 bits; constants are small enough that tests go both ways."""
    slots = [int(s) for s in rng.choice(16, 3, replace=False)]
    body = int(rng.integers(2, 28))
    insns = [(ST, 0, 0, s) for s in slots]

    def small() -> int:
        return int(rng.choice([rng.integers(0, 70), rng.integers(0, 4), 0x7FFFFFFF,
                               0xFFDFFFFF]))

    for pc in range(body - 1):
        reach = body - pc - 2  # the last instruction, a return, is at offset reach
        kind = rng.random()
        if kind < 0.25:
            code = int(rng.choice([LD_W_ABS, LD_H_ABS, LD_B_ABS, LD_W_IND, LD_H_IND, LD_B_IND,
                                   LDX_MSH]))
            insn = (code, 0, 0, small())
        elif kind < 0.35:
            code = int(rng.choice([LD_IMM, LDX_IMM, LD_LEN, LDX_LEN]))
            insn = (code, 0, 0, int(rng.choice([rng.integers(0, 70), 0xFFFFFFFF, 0xFFFFFFF0,
                                                0x80000000])))
        elif kind < 0.45:
            insn = (int(rng.choice([ST, STX, LD_MEM, LDX_MEM])), 0, 0, int(rng.choice(slots)))
        elif kind < 0.62:
            code = int(rng.choice(ALU_K_OPS + ALU_X_OPS + [NEG]))
            k = int(rng.integers(1, 32)) if code in (DIV_K, MOD_K, LSH_K, RSH_K) else small()
            insn = (code, 0, 0, k)
        elif kind < 0.68:
            insn = (int(rng.choice([TAX, TXA])), 0, 0, 0)
        elif kind < 0.9:
            jt, jf = (int(v) for v in rng.integers(0, min(reach, 8) + 1, 2))
            insn = (int(rng.choice(JUMPS)), jt, jf, int(rng.integers(0, 70)))
        elif kind < 0.95:
            insn = (JA, 0, 0, int(rng.integers(0, reach + 1)))
        else:
            insn = (int(rng.choice([RET_K, RET_A])), 0, 0, int(rng.choice([0, 1, 96])))
        insns.append(insn)
    insns.append((int(rng.choice([RET_K, RET_A])), 0, 0, int(rng.choice([0, 1]))))
    return insns


def test_random_programs_match_libpcap(nb: NativeBpf) -> None:
    rng = np.random.default_rng(20240611)
    accepted = rejected = 0
    for _ in range(500):
        program = random_program(rng)
        check_program(program)  # the generator makes only what pushcap accepts
        packets = _random_packets(rng, int(rng.integers(1, 40))) + [b""]
        wirelen = [len(p) + int(rng.choice([0, 1, 100, 0xFFFFFFFF - len(p)])) for p in packets]
        want = assert_agrees(nb, program, packets, wirelen)
        accepted += len(want)
        rejected += len(packets) - len(want)
    assert accepted > 1000 and rejected > 1000


def test_many_chunks_and_a_ragged_end(nb: NativeBpf) -> None:
    """Batches span many chunks of lanes; lanes of one chunk must not leak into the next."""
    rng = np.random.default_rng(3)
    packets = _layered_packets(rng, 2000)
    for expression in ("tcp", "not port 22", "vlan and tcp", "len > 100"):
        program = BpfFilter(expression, DLT_EN10MB).program
        for n in (1, 255, 256, 257, 511, 513, 2000):
            assert_agrees(nb, program, packets[:n], what=f"{expression} over {n}")


# ---- buffers and errors --------------------------------------------------------------------

def _columns(packets: list[bytes]) -> tuple[list[int], list[int]]:
    return as_records(packets)[1], [len(p) for p in packets]


def test_every_kind_of_buffer(nb: NativeBpf, tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    packets = _layered_packets(rng, 700)
    program = BpfFilter("tcp or udp port 53", DLT_EN10MB).program
    want = libpcap_verdicts(program, packets, [len(p) for p in packets])
    prepared = nb.prepare(program)
    records, offsets = as_records(packets)
    caplen = [len(p) for p in packets]
    padded = b"\x00" * 5 + records + b"\x00" * 3  # a read-only view that starts inside
    path = tmp_path / "records"
    path.write_bytes(records)
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mapped:
        buffers = [records, bytearray(records), memoryview(padded)[5:-3], mapped,
                   np.frombuffer(records, dtype=np.uint8).copy()]
        for buffer in buffers:
            for kind in ("numpy", "memoryview"):
                if kind == "numpy":
                    cols = [np.array(c, dtype=np.int64) for c in (offsets, caplen, caplen)]
                    out = np.empty(len(packets), dtype=np.int64)
                else:
                    cols = [memoryview(np.array(c, dtype=np.int64).tobytes()).cast("q")
                            for c in (offsets, caplen, caplen)]
                    out = memoryview(bytearray(8 * len(packets) + 40)).cast("q")
                count = nb.select(prepared, buffer, *cols, out)
                assert list(out[:count]) == want, (type(buffer), kind)
        del buffers
    # Column slices (a batch's rows) and an int64 memoryview of a bigger array.
    column = np.array(offsets + [0, 0], dtype=np.int64)
    out = np.empty(len(packets), dtype=np.int64)
    count = nb.select(prepared, records, memoryview(column)[:len(packets)],
                      np.array(caplen, dtype=np.int64), np.array(caplen), out)
    assert out[:count].tolist() == want


def test_a_packet_outside_the_buffer_raises(nb: NativeBpf) -> None:
    packets = [bytes(60)] * 600
    records, offsets = as_records(packets)
    caplen = [60] * 600
    prepared = nb.prepare(BpfFilter("ip", DLT_EN10MB).program)
    out = np.empty(600, dtype=np.int64)
    for program in (prepared, NativeProgram(prepared.insns, prepared.length, True)):
        for at, offset, length in ((599, len(records) - 75, 60), (0, len(records), 0),
                                   (300, -16, 60), (500, 0, -1), (2, 0, len(records)),
                                   (599, 2**62, 60), (599, len(records) - 76, 2**63 - 1)):
            bad_offsets, bad_caplen = list(offsets), list(caplen)
            bad_offsets[at], bad_caplen[at] = offset, length
            with pytest.raises(ValueError, match="outside the records buffer"):
                nb.select(program, records, np.array(bad_offsets), np.array(bad_caplen),
                          np.array(caplen), out)
        # The last packet exactly at the end is inside; one byte short of room is not.
        assert nb.select(program, records, np.array(offsets), np.array(caplen),
                         np.array(caplen), out) == 0
        with pytest.raises(ValueError, match="outside"):
            nb.select(program, records[:-1], np.array(offsets), np.array(caplen),
                      np.array(caplen), out)
        with pytest.raises(ValueError, match="outside"):
            nb.select(program, b"", np.array([0]), np.array([0]), np.array([0]), out)


def test_mismatched_or_unfit_arguments_raise(nb: NativeBpf) -> None:
    packets = [bytes(20)] * 4
    records, offsets = as_records(packets)
    prepared = nb.prepare(((RET_K, 0, 0, 1),))
    o, c = np.array(offsets), np.array([20] * 4)
    out = np.empty(4, dtype=np.int64)
    assert nb.select(prepared, records, o, c, c, out) == 4 and out.tolist() == [0, 1, 2, 3]
    for args in ((o, c[:3], c, out), (o, c, c[:3], out), (o[:3], c, c, out),
                 (o, c, c, out[:3]), (o, c, c.astype(np.float64), out),
                 (o, c, c, np.empty(4, dtype=np.int32)), (o, c, c.astype(">i8"), out),
                 (o, c, c, memoryview(out.tobytes()).cast("q")), (o, c, c, out.reshape(2, 2))):
        with pytest.raises(ValueError):
            nb.select(prepared, records, *args)
    assert nb.select(prepared, b"", np.array([], dtype=np.int64), np.array([], dtype=np.int64),
                     np.array([], dtype=np.int64), np.array([], dtype=np.int64)) == 0


@pytest.mark.parametrize("program", [
    (), ((LD_B_ABS, 0, 0, 0),), ((JEQ_K, 0, 5, 1), (RET_K, 0, 0, 1)),
    ((JA, 0, 0, 0xFFFFFFFF), (RET_K, 0, 0, 1)), ((0x0E, 0, 0, 0),),
    ((LD_MEM, 0, 0, 16), (RET_K, 0, 0, 1)),
    ((LD_B_ABS, 0, 0, 0xFFFFF02C), (RET_K, 0, 0, 1)), ((DIV_K, 0, 0, 0), (RET_K, 0, 0, 1)),
    ((LSH_K, 0, 0, 32), (RET_K, 0, 0, 1)), ((0x38, 0, 0, 0), (RET_K, 0, 0, 1)),
    ((0x106, 0, 0, 0),), ((RET_K, 256, 0, 0),),
])
def test_programs_libpcap_would_not_run_are_refused(nb: NativeBpf, program) -> None:
    with pytest.raises(ValueError):
        nb.prepare(program)


def test_missing_or_stale_library_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        for library in (None, object()):  # not built; built before bpf_select existed
            monkeypatch.setattr(native_module, "native_library", lambda lib=library: lib)
            native_bpf.cache_clear()
            assert native_bpf() is None
    finally:
        monkeypatch.undo()
        native_bpf.cache_clear()
    assert isinstance(native_bpf(), NativeBpf)


def test_replay_path_does_not_import_numpy() -> None:
    """Selecting through native_bpf with bytes and int64 memoryviews never loads numpy."""
    code = (
        "import sys\n"
        "from array import array\n"
        "from pushcap.capture.native_bpf import native_bpf\n"
        "nb = native_bpf()\n"
        "p = nb.prepare(((0x30, 0, 0, 0), (0x16, 0, 0, 0)))\n"
        "records = bytes(16) + b'\\x00' + bytes(16) + b'\\x07'\n"
        "col = lambda v: memoryview(array('q', v))\n"
        "out = col([0, 0])\n"
        "n = nb.select(p, records, col([0, 17]), col([1, 1]), col([1, 1]), out)\n"
        "assert (n, out[0]) == (1, 1), (n, list(out))\n"
        "assert 'numpy' not in sys.modules, 'numpy was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
