"""Independent oracles that tests use to judge pushcap's output.

Nothing here imports ``pushcap``: if the code under test and the code that checks it shared a
parser, a bug in that parser would pass its own test. The readers are plain ``struct`` parsing of
the file formats, and the selection oracle is tcpdump itself (DESIGN.md: "tcpdump decides what a
BPF selects; capinfos and dpkt decide whether a file is valid").

Packets are ``(ts_ns, caplen, wirelen, data)`` tuples everywhere, with the timestamp in integer
nanoseconds so that µs and ns files compare exactly (a float would lose the sub-µs digits).
"""

from __future__ import annotations

import re
import struct
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# The real captures travel with the repository (tests/data/README.md names each file's source,
# commit and licence), so a plain clone runs every test; nothing is read from outside it.
PCAPS_DIR = Path(__file__).resolve().parent / "data"

Packet = tuple[int, int, int, bytes]

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D
PCAP_GLOBAL_HEADER_LEN = 24
PCAP_RECORD_HEADER_LEN = 16
NS_PER_S = 1_000_000_000

# libpcap's wording when a capture file ends inside a record; tcpdump then exits 1 although every
# whole packet was written, exactly the "cut short is normal input" case DESIGN.md describes.
_TRUNCATED_RE = re.compile(r"truncated (pcapng )?dump file")
_CAPINFOS_COUNT_RE = re.compile(r"^Number of packets:\s+(\d+)\s*$", re.MULTILINE)


class OracleError(RuntimeError):
    """An oracle could not give an answer (bad filter, unreadable file, tool missing)."""


@dataclass
class PcapFile:
    """What a capture file holds, as the tests compare it.

    ``snaplen`` is the header's claim (first interface for pcapng), not a bound on ``caplen``:
    tcp-caplen96.pcap shows they can disagree. ``truncated`` is True when the file ended inside a
    record or block; ``packets`` then holds every whole record before the cut.
    """

    linktype: int
    snaplen: int
    nano: bool
    packets: list[Packet] = field(default_factory=list)
    truncated: bool = False
    big_endian: bool = False
    fmt: str = "pcap"
    version: tuple[int, int] = (2, 4)
    tool_stderr: str = ""


def read_pcap(path: Path | str) -> PcapFile:
    """Parse a classic pcap (either byte order, µs or ns magic) or a pcapng file.

    pcapng is accepted too so that tests can compare pushcap's output with a pcapng input
    without going through the tool under test; its timestamps are scaled by each interface's
    ``if_tsresol`` to exact nanoseconds.
    """
    raw = Path(path).read_bytes()
    if len(raw) < 4:
        raise OracleError(f"{path}: {len(raw)} bytes is too short for a capture file header")
    (magic_le,) = struct.unpack_from("<I", raw, 0)
    if magic_le == PCAPNG_SHB:
        return _read_pcapng(raw, path)
    return _read_classic(raw, path)


def _read_classic(raw: bytes, path: Path | str) -> PcapFile:
    """Classic libpcap format: 24-byte global header, then 16-byte record headers + data."""
    if len(raw) < PCAP_GLOBAL_HEADER_LEN:
        raise OracleError(f"{path}: truncated pcap global header ({len(raw)} bytes)")
    for order in ("<", ">"):
        (magic,) = struct.unpack_from(order + "I", raw, 0)
        if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            break
    else:
        raise OracleError(f"{path}: unknown capture magic {raw[:4].hex()}")
    nano = magic == PCAP_MAGIC_NS
    vmaj, vmin, _zone, _sigfigs, snaplen, linktype = struct.unpack_from(order + "HHiIII", raw, 4)
    frac_to_ns = 1 if nano else 1000
    rec = struct.Struct(order + "IIII")
    packets: list[Packet] = []
    pos = PCAP_GLOBAL_HEADER_LEN
    end = len(raw)
    truncated = False
    while pos < end:
        if pos + PCAP_RECORD_HEADER_LEN > end:
            truncated = True
            break
        sec, frac, caplen, wirelen = rec.unpack_from(raw, pos)
        data_start = pos + PCAP_RECORD_HEADER_LEN
        if data_start + caplen > end:
            truncated = True
            break
        packets.append(
            (
                sec * NS_PER_S + frac * frac_to_ns,
                caplen,
                wirelen,
                raw[data_start : data_start + caplen],
            )
        )
        pos = data_start + caplen
    return PcapFile(
        linktype=linktype & 0x0FFFFFFF,  # the upper bits may carry FCS info, not the link type
        snaplen=snaplen,
        nano=nano,
        packets=packets,
        truncated=truncated,
        big_endian=order == ">",
        fmt="pcap",
        version=(vmaj, vmin),
    )


def _tsresol_to_ns(units: int, tsresol: int) -> int:
    """Convert a pcapng timestamp in ``if_tsresol`` units to integer nanoseconds."""
    exp = tsresol & 0x7F
    if tsresol & 0x80:  # power of two resolution
        return (units * NS_PER_S) >> exp
    if exp <= 9:
        return units * 10 ** (9 - exp)
    return units // 10 ** (exp - 9)


def _idb_tsresol(raw: bytes, order: str, opt_pos: int, opt_end: int) -> int:
    """Find ``if_tsresol`` (option 9) in an IDB's options; pcapng's default is µs (6)."""
    while opt_pos + 4 <= opt_end:
        code, length = struct.unpack_from(order + "HH", raw, opt_pos)
        if code == 0:
            break
        if code == 9 and length >= 1:
            return raw[opt_pos + 4]
        opt_pos += 4 + ((length + 3) & ~3)
    return 6


def _read_pcapng(raw: bytes, path: Path | str) -> PcapFile:
    """Minimal pcapng reader: SHB, IDB, EPB and SPB; every other block is skipped."""
    order = "<"
    interfaces: list[tuple[int, int, int]] = []  # (linktype, snaplen, tsresol)
    packets: list[Packet] = []
    pos, end = 0, len(raw)
    truncated = False
    big_endian = False
    while pos < end:
        if pos + 12 > end:
            truncated = True
            break
        (btype,) = struct.unpack_from("<I", raw, pos)
        if btype == PCAPNG_SHB:
            (bom,) = struct.unpack_from("<I", raw, pos + 8)
            order = "<" if bom == PCAPNG_BYTE_ORDER_MAGIC else ">"
            big_endian = order == ">"
            interfaces = []  # interface ids are scoped to their section
        btype, blen = struct.unpack_from(order + "II", raw, pos)
        if blen < 12 or blen % 4:
            raise OracleError(f"{path}: bad pcapng block length {blen} at offset {pos}")
        if pos + blen > end:
            truncated = True
            break
        body = pos + 8
        if btype == 1:  # Interface Description Block
            linktype, _res, snaplen = struct.unpack_from(order + "HHI", raw, body)
            interfaces.append(
                (linktype, snaplen, _idb_tsresol(raw, order, body + 8, pos + blen - 4))
            )
        elif btype == 6:  # Enhanced Packet Block
            if_id, ts_hi, ts_lo, caplen, wirelen = struct.unpack_from(order + "IIIII", raw, body)
            tsresol = interfaces[if_id][2]
            ts_ns = _tsresol_to_ns((ts_hi << 32) | ts_lo, tsresol)
            data = raw[body + 20 : body + 20 + caplen]
            packets.append((ts_ns, caplen, wirelen, data))
        elif btype == 3:  # Simple Packet Block: no timestamp, caplen bounded by the block
            (wirelen,) = struct.unpack_from(order + "I", raw, body)
            caplen = min(wirelen, blen - 16, interfaces[0][1] or wirelen)
            packets.append((0, caplen, wirelen, raw[body + 4 : body + 4 + caplen]))
        pos += blen
    if not interfaces:
        raise OracleError(f"{path}: pcapng file without an Interface Description Block")
    return PcapFile(
        linktype=interfaces[0][0],
        snaplen=interfaces[0][1],
        nano=any(_tsresol_to_ns(1, r) < 1000 for _lt, _sl, r in interfaces),
        packets=packets,
        truncated=truncated,
        big_endian=big_endian,
        fmt="pcapng",
        version=(1, 0),
    )


def tcpdump_select(in_path: Path | str, bpf: str | None, out_path: Path | str) -> PcapFile:
    """What tcpdump selects from ``in_path`` with ``bpf`` (everything when None).

    ``--time-stamp-precision=nano`` makes tcpdump write a ns pcap whatever the input: µs inputs
    come out as exact ×1000, and ns inputs (pcap or pcapng) keep every digit, so comparisons in
    ns are exact. A truncated input makes tcpdump exit 1 after writing every whole packet; that is
    accepted (the message is kept in ``tool_stderr``). Any other failure, above all a filter that
    does not compile, raises OracleError: tcpdump then writes no file at all.
    """
    out = Path(out_path)
    out.unlink(missing_ok=True)
    cmd = ["tcpdump", "--time-stamp-precision=nano", "-r", str(in_path), "-w", str(out)]
    if bpf is not None:
        cmd.append(bpf)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        if not (_TRUNCATED_RE.search(proc.stderr) and out.exists()):
            raise OracleError(
                f"tcpdump failed (exit {proc.returncode}) on {in_path} with filter {bpf!r}: "
                f"{proc.stderr.strip()}"
            )
    if not out.exists():
        raise OracleError(f"tcpdump wrote no output for {in_path}: {proc.stderr.strip()}")
    result = read_pcap(out)
    result.tool_stderr = proc.stderr
    return result


def capinfos_ok(path: Path | str) -> int:
    """Assert that Wireshark's reader finds ``path`` valid and return its packet count.

    capinfos exits non-zero and writes to stderr for a file cut short, so a clean exit with an
    empty stderr is the test that a writer produced a whole file.
    """
    proc = subprocess.run(
        ["capinfos", "-c", "-M", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and not proc.stderr.strip(), (
        f"capinfos rejects {path} (exit {proc.returncode}): {proc.stderr.strip()}"
    )
    match = _CAPINFOS_COUNT_RE.search(proc.stdout)
    assert match, f"capinfos printed no packet count for {path}: {proc.stdout!r}"
    return int(match.group(1))


_FIELDS = ("ts_ns", "caplen", "wirelen", "data")


def _describe_data_diff(a: bytes, b: bytes) -> str:
    """Where two packet payloads first differ, short enough for a test failure line."""
    if len(a) != len(b):
        return f"length {len(a)} != {len(b)}"
    at = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
    return f"byte {at}: {a[at : at + 8].hex()} != {b[at : at + 8].hex()}"


def assert_same_packets(actual: Sequence[Packet], expected: Sequence[Packet]) -> None:
    """Assert two packet lists are equal, naming the first differing index and field.

    pytest's own diff of two lists of 100k tuples with bytes is unreadable and slow; one line
    saying where they part is what a failure needs.
    """
    for i, (got, want) in enumerate(zip(actual, expected, strict=False)):
        if got == want:
            continue
        for name, g, w in zip(_FIELDS, got, want, strict=True):
            if g != w:
                detail = _describe_data_diff(g, w) if name == "data" else f"{g} != {w}"
                raise AssertionError(f"packet {i}: {name} differs: {detail}")
    assert len(actual) == len(expected), (
        f"packet counts differ: {len(actual)} actual != {len(expected)} expected "
        f"(the first {min(len(actual), len(expected))} agree)"
    )


def concat_packets(paths: Iterable[Path | str]) -> list[Packet]:
    """The packets of several files in order, e.g. the pieces a splitter wrote."""
    packets: list[Packet] = []
    for path in paths:
        packets.extend(read_pcap(path).packets)
    return packets
