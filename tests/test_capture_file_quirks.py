"""Capture files that libpcap reads other than as written, read by pushcap as tcpdump reads them.

tcpdump (libpcap 1.10) is the oracle: each file is made here with struct, copied with
`tcpdump -r IN -w OUT`, and pushcap's batches (or a replay's output file) must hold exactly the
bytes tcpdump wrote. The cases (issue 17, item 14):
- pcap versions 2.0-2.2 and 543.0 hold the wire length where 2.4 holds the captured length
  and the other way round (libpcap swaps them in every record); 2.3 files hold either order
  (libpcap swaps where the captured length would be the larger);
- records longer than the header's snaplen are cut to it; a snaplen of 0 or above INT_MAX
  reads as the link type's largest;
- pcapng `if_tsresol` of every form libpcap accepts, and `if_tsoffset`, give tcpdump's
  timestamps (including libpcap's 32-bit seconds and its 64-bit wrap of fine binary fractions);
  the forms libpcap refuses are refused.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from oracle import assert_same_packets, read_pcap

from pushcap.capture import window_batches
from pushcap.capture.batch import pcap_file_header
from pushcap.capture.pcapng import PcapngFileSource
from pushcap.capture.source import PcapFileSource, SourceError
from pushcap.config.lua import load_targets
from pushcap.push.pcapfile import repair_part
from pushcap.supervisor.replay import replay

MAGIC_US, MAGIC_NS = 0xA1B2C3D4, 0xA1B23C4D
NS = 1_000_000_000


# --- making files -------------------------------------------------------------------------------

def classic(path: Path, records: list[tuple[int, int, int, int, bytes]], *, version=(2, 4),
            snaplen: int = 65535, order: str = "<", nano: bool = False, linktype: int = 1) -> Path:
    """A classic pcap file; each record is (sec, frac, field at offset 8, field at 12, data)."""
    head = struct.pack(order + "IHHiIII", MAGIC_NS if nano else MAGIC_US, *version, 0, 0,
                       snaplen, linktype)
    body = b"".join(struct.pack(order + "IIII", *fields) + data for *fields, data in records)
    path.write_bytes(head + body)
    return path


def packets(rng: np.random.Generator, count: int, nano: bool, max_caplen: int = 300
            ) -> list[tuple[int, int, int, int, bytes]]:
    """(sec, frac, caplen, wirelen, data) with random sizes; some cut (caplen < wirelen)."""
    out = []
    for i in range(count):
        caplen = int(rng.integers(0, max_caplen))
        wirelen = caplen + int(rng.choice([0, 0, 1, 1000]))
        frac = int(rng.integers(0, NS if nano else 1_000_000))
        out.append((1_600_000_000 + i, frac, caplen, wirelen,
                    rng.integers(0, 256, caplen, dtype=np.uint8).tobytes()))
    return out


def as_version(version: tuple[int, int], pkts, rng: np.random.Generator):
    """The records as a writer of `version` lays them out (see the module docstring)."""
    records = []
    for sec, frac, caplen, wirelen, data in pkts:
        if version[0] == 543 or version[1] < 3:
            records.append((sec, frac, wirelen, caplen, data))
        elif version == (2, 3) and wirelen > caplen and rng.integers(0, 2):
            records.append((sec, frac, wirelen, caplen, data))  # written the pre-2.3 way
        else:
            records.append((sec, frac, caplen, wirelen, data))
    return records


def tcpdump_copy(src: Path, out: Path, nano: bool) -> tuple[bytes, subprocess.CompletedProcess]:
    """`tcpdump -r src -w out` keeping a ns file's unit; what it wrote (possibly before an
    error: libpcap stops there, every packet before it written; b"" if it could not open)."""
    out.unlink(missing_ok=True)
    cmd = ["tcpdump", *(["--time-stamp-precision=nano"] if nano else []), "-r", str(src),
           "-w", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return (out.read_bytes() if out.exists() else b""), proc


# --- reading them back --------------------------------------------------------------------------

def parsed(records: bytes, nano: bool) -> list[tuple[int, int, int, bytes]]:
    """The packets of little-endian records, as tests/oracle.py gives them."""
    out, pos = [], 0
    while pos < len(records):
        sec, frac, caplen, wirelen = struct.unpack_from("<IIII", records, pos)
        data = records[pos + 16:pos + 16 + caplen]
        out.append((sec * NS + frac * (1 if nano else 1000), caplen, wirelen, data))
        pos += 16 + caplen
    return out


def pushcap_read(source, nano: bool) -> tuple[bytes, bytes]:
    """(the file header pushcap writes for `source`, its batches' records, concatenated);
    each batch's columns are checked against its own records on the way."""
    records = []
    for batch in source.batches():
        raw = bytes(batch.records)
        rows = [struct.unpack_from("<IIII", raw, int(o)) for o in batch.offsets]
        assert batch.ts_ns.tolist() == [s * NS + f * (1 if nano else 1000) for s, f, _, _ in rows]
        assert batch.caplen.tolist() == [r[2] for r in rows]
        assert batch.wirelen.tolist() == [r[3] for r in rows]
        assert batch.nano == nano and batch.snaplen == source.snaplen
        records.append(raw)
    return pcap_file_header(source.linktype, source.snaplen, nano), b"".join(records)


def assert_reads_as_tcpdump(path: Path, tmp_path: Path, nano: bool, batch_packets: int = 7
                            ) -> PcapFileSource:
    want, proc = tcpdump_copy(path, tmp_path / "tcpdump.pcap", nano)
    assert want, proc.stderr
    source = PcapFileSource(path, batch_packets)
    header, records = pushcap_read(source, nano)
    assert_same_packets(parsed(records, nano), parsed(want[24:], nano))
    assert records == want[24:]
    assert header == want[:24]
    return source


# --- pcap versions whose length fields libpcap swaps --------------------------------------------

VERSIONS = [(2, 0), (2, 1), (2, 2), (2, 3), (543, 0)]


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"v{v[0]}.{v[1]}")
def test_old_versions_lengths_read_as_tcpdump_reads_them(tmp_path, monkeypatch, version, order,
                                                         native):
    """A v2.1 file read as 2.4 gave 0 or 1 packets (its wire lengths walked as record sizes)."""
    if not native:
        monkeypatch.setattr(window_batches, "native_walk", lambda: None)
    rng = np.random.default_rng(sum(version) + len(order))
    pkts = packets(rng, 60, nano=False)
    if version != (2, 3):  # pre-2.3: swapped even where the caplen ends up the larger
        pkts.append((1_600_000_100, 7, 50, 20, bytes(range(50))))
    path = classic(tmp_path / "old.pcap", as_version(version, pkts, rng), version=version,
                   order=order)
    assert_reads_as_tcpdump(path, tmp_path, nano=False)
    got = read_pcap(tmp_path / "tcpdump.pcap").packets
    assert [p[1:3] for p in got] == [p[2:4] for p in pkts]  # the oracle agrees with the maker


def test_an_old_version_record_beyond_libpcaps_limit_is_corruption(tmp_path):
    """As in a 2.4 file: tcpdump stops there ("invalid packet capture length"); every packet
    before it is delivered, then an error names the record's offset."""
    rng = np.random.default_rng(3)
    pkts = packets(rng, 20, nano=False)
    good = as_version((2, 1), pkts, rng)
    bad = (1_600_000_500, 0, 262145, 262145, b"x" * 262145)
    path = classic(tmp_path / "old.pcap", [*good, bad, *good], version=(2, 1))
    want, proc = tcpdump_copy(path, tmp_path / "tcpdump.pcap", nano=False)
    assert "invalid packet capture length" in proc.stderr
    source = PcapFileSource(path, 6)
    got = []
    offset = 24 + sum(16 + len(r[4]) for r in good)
    with pytest.raises(SourceError, match=f"the record at offset {offset} claims 262145"):
        for batch in source.batches():
            got.append(bytes(batch.records))
    assert b"".join(got) == want[24:] and len(parsed(want[24:], False)) == 20


# --- records longer than the snaplen ------------------------------------------------------------

@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("nano", [False, True])
@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("snaplen", [1, 40])
def test_records_longer_than_the_snaplen_are_cut_as_tcpdump_cuts_them(tmp_path, monkeypatch,
                                                                      snaplen, order, nano,
                                                                      native):
    """Thousands of records within the snaplen (read the fast way, in several windows), then
    records longer than it, mixed with short ones: tcpdump cuts each long one to the snaplen
    (caplen = snaplen, wire length kept) and writes that snaplen in its header; pushcap wrote
    them whole under a header saying `snaplen`."""
    if not native:
        monkeypatch.setattr(window_batches, "native_walk", lambda: None)
    monkeypatch.setattr(window_batches, "CHUNK_BYTES", 4096)
    rng = np.random.default_rng(snaplen + (order == ">") + 2 * nano)
    short = packets(rng, 3000, nano, max_caplen=snaplen + 1)
    mixed = packets(rng, 200, nano, max_caplen=3 * snaplen + 100)
    path = classic(tmp_path / "snap.pcap", short + mixed, snaplen=snaplen, order=order,
                   nano=nano)
    source = assert_reads_as_tcpdump(path, tmp_path, nano, batch_packets=500)
    assert source.end_offset == path.stat().st_size and source.truncated_bytes == 0


@pytest.mark.parametrize("dropped", [1, 111], ids=["data cut", "header cut"])
@pytest.mark.parametrize("order", ["<", ">"])
def test_a_record_cut_by_the_end_of_a_snaplen_limited_file_is_dropped(tmp_path, order,
                                                                       dropped):
    """Every whole record comes out (cut to the snaplen) and the stray bytes are counted, as
    tcpdump writes every whole packet and then says the file is truncated."""
    rng = np.random.default_rng(11)
    records = [*packets(rng, 30, False), (1_600_000_999, 1, 100, 100, b"y" * 100)]
    path = classic(tmp_path / "cut.pcap", records, snaplen=10, order=order)
    path.write_bytes(path.read_bytes()[:-dropped])  # the last record: 16 + 100 bytes
    source = assert_reads_as_tcpdump(path, tmp_path, nano=False)
    assert source.truncated_bytes > 0
    assert source.end_offset + source.truncated_bytes == path.stat().st_size


@pytest.mark.parametrize("linktype", [1, 231, 249, 279])
@pytest.mark.parametrize("snaplen", [0, 0x80000000, 0xFFFFFFFF])
def test_a_snaplen_of_zero_or_above_int_max_reads_as_the_link_types_largest(tmp_path, snaplen,
                                                                           linktype):
    """libpcap's pcap_adjust_snapshot (D-Bus, USBPcap and EBHSCR have larger ones); tcpdump
    writes the adjusted snaplen. pushcap wrote 0 (and compiled filters with it)."""
    rng = np.random.default_rng(5)
    path = classic(tmp_path / "s.pcap", packets(rng, 20, False), snaplen=snaplen,
                   linktype=linktype)
    source = assert_reads_as_tcpdump(path, tmp_path, nano=False)
    assert source.snaplen == {231: 128 << 20, 249: 1 << 20, 279: 8 << 20}.get(linktype, 262144)


def test_a_repaired_part_is_cut_where_its_last_whole_record_ends_in_the_file(tmp_path):
    """A leftover whose records are longer than its header's snaplen (as an older pushcap
    wrote from such an input): the reader cuts the records it hands out, the cut of the file
    must still fall after the last whole record, not at the sum of the shorter records."""
    rng = np.random.default_rng(6)
    part = classic(tmp_path / ".x.1.part", packets(rng, 40, True), snaplen=10, nano=True)
    whole = part.read_bytes()
    part.write_bytes(whole + struct.pack("<IIII", 1, 2, 50, 50) + b"z" * 20)
    assert repair_part(part)[0] == 40
    assert part.read_bytes() == whole


# --- replay, end to end -------------------------------------------------------------------------

def replay_one_file(src: Path, tmp_path: Path, write_lua) -> bytes:
    out = tmp_path / "out"
    lua = write_lua([{"Desc": "all", "Mode": "File", "Path": str(out / "all"),
                      "Split": "--split-byte 1e12", "FileName": "--filename-epoch-nsec"}])
    replay(src, load_targets(lua), batch_packets=16)
    (written,) = out.glob("all_*.pcap")
    return written.read_bytes()


@pytest.mark.parametrize("order", ["<", ">"])
def test_a_replayed_v21_file_is_what_tcpdump_writes(tmp_path, write_lua, order):
    rng = np.random.default_rng(21)
    pkts = packets(rng, 100, nano=False)
    path = classic(tmp_path / "v21.pcap", as_version((2, 1), pkts, rng), version=(2, 1),
                   order=order)
    want, _ = tcpdump_copy(path, tmp_path / "tcpdump.pcap", nano=False)
    assert len(parsed(want[24:], False)) == 100
    assert replay_one_file(path, tmp_path, write_lua) == want


@pytest.mark.parametrize("order", ["<", ">"])
def test_a_replayed_snaplen_1_file_is_what_tcpdump_writes(tmp_path, write_lua, order):
    rng = np.random.default_rng(22)
    path = classic(tmp_path / "s1.pcap", packets(rng, 100, nano=True), snaplen=1, order=order,
                   nano=True)
    want, _ = tcpdump_copy(path, tmp_path / "tcpdump.pcap", nano=True)
    assert {p[1] for p in parsed(want[24:], True)} <= {0, 1}
    assert replay_one_file(path, tmp_path, write_lua) == want


# --- pcapng if_tsresol and if_tsoffset ----------------------------------------------------------

def ng_block(btype: int, body: bytes, order: str = "<") -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack(order + "II", btype, len(body) + 12) + body + struct.pack(
        order + "I", len(body) + 12)


def ng_option(code: int, value: bytes, order: str = "<") -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def pcapng(path: Path, interfaces: list[tuple[int | None, int | None]],
           epbs: list[tuple[int, int, bytes]], snaplen: int = 65535, order: str = "<",
           spb: bytes | None = None) -> Path:
    """One section: an IDB per (if_tsresol, if_tsoffset) (None: no such option), then an EPB
    per (interface, timestamp ticks, data), then an optional SPB."""
    blocks = [ng_block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1), order)]
    for tsresol, tsoffset in interfaces:
        options = b""
        if tsresol is not None:
            options += ng_option(9, bytes([tsresol]), order)
        if tsoffset is not None:
            options += ng_option(14, struct.pack(order + "q", tsoffset), order)
        if options:
            options += ng_option(0, b"", order)
        blocks.append(ng_block(1, struct.pack(order + "HHI", 1, 0, snaplen) + options, order))
    for iface, ticks, data in epbs:
        blocks.append(ng_block(6, struct.pack(order + "IIIII", iface, ticks >> 32,
                                              ticks & 0xFFFFFFFF, len(data), len(data) + 4)
                               + data, order))
    if spb is not None:
        blocks.append(ng_block(3, struct.pack(order + "I", len(spb)) + spb, order))
    path.write_bytes(b"".join(blocks))
    return path


TICKS = [0, 1, 999_999, 1_700_000_000, 1_700_000_000_123_456, 1_700_000_000_123_456_789,
         (1000 << 40) | ((1 << 40) - 1), (5 << 40) | 12_345_678_901, 2**63 + 2**62, 2**64 - 1]
TSRESOLS = [0, 1, 3, 9, 12, 19, 0x80, 0x81, 0x80 | 20, 0x80 | 30, 0x80 | 34, 0x80 | 35,
            0x80 | 40, 0x80 | 63, None]


def pcapng_as_tcpdump(path: Path, tmp_path: Path) -> PcapngFileSource:
    want, proc = tcpdump_copy(path, tmp_path / "tcpdump.pcap", nano=True)
    assert proc.returncode == 0, proc.stderr
    source = PcapngFileSource(path)
    header, records = pushcap_read(source, nano=True)
    assert_same_packets(parsed(records, True), parsed(want[24:], True))
    assert header == want[:24]
    return source


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("tsresol", TSRESOLS, ids=lambda r: "default" if r is None else hex(r))
def test_every_tsresol_libpcap_accepts_gives_tcpdumps_timestamps(tmp_path, tsresol, order):
    """0 and 0x80 (whole seconds: OverflowError before), 10^-19 s, 2^-63 s (whose fractions
    libpcap scales with a 64-bit product that wraps), and the default (µs)."""
    data = bytes(range(40))
    path = pcapng(tmp_path / "r.pcapng", [(tsresol, None)], [(0, t, data) for t in TICKS],
                  order=order)
    pcapng_as_tcpdump(path, tmp_path)


@pytest.mark.parametrize("tsoffset", [-5, -(2**40), 2**32 + 7, 2**62])
def test_tsoffset_and_seconds_beyond_32_bits_give_tcpdumps_timestamps(tmp_path, tsoffset):
    """Whole seconds plus if_tsoffset, cut to the 32 bits of a pcap record as tcpdump writes
    them (a simple packet block has no timestamp: it gets the first interface's offset)."""
    data = bytes(range(30))
    path = pcapng(tmp_path / "o.pcapng", [(0, tsoffset), (0x80 | 40, tsoffset + 1)],
                  [(i % 2, t, data) for i, t in enumerate(TICKS)], spb=b"spb!")
    pcapng_as_tcpdump(path, tmp_path)


def test_a_pcapng_snaplen_of_zero_reads_as_the_link_types_largest(tmp_path):
    path = pcapng(tmp_path / "z.pcapng", [(None, None)], [(0, 1_700_000_000_000_000, b"abc")],
                  snaplen=0)
    assert pcapng_as_tcpdump(path, tmp_path).snaplen == 262144


@pytest.mark.parametrize("tsresol", [20, 0x7F, 0x80 | 64, 0xFF])
def test_a_tsresol_libpcap_refuses_is_refused(tmp_path, tsresol):
    """libpcap: "if_tsresol option resolution ... is too high", and tcpdump writes nothing;
    pushcap made up timestamps from it."""
    path = pcapng(tmp_path / "x.pcapng", [(tsresol, None)], [(0, 12345, b"abc")])
    _, proc = tcpdump_copy(path, tmp_path / "tcpdump.pcap", nano=True)
    assert proc.returncode != 0 and "is too high" in proc.stderr
    with pytest.raises(SourceError, match=rf"if_tsresol {tsresol:#04x}.*finer than libpcap"):
        list(PcapngFileSource(path).batches())
