"""Damaged capture files, link types and record limits, read by pushcap as tcpdump reads them.

Found by tests/fuzz/test_fuzz_capture_files.py; tcpdump (libpcap 1.10) is the oracle:
- pcapng damage libpcap finds (sf-pcapng.c `read_block` and the block readers): a block too
  short for its type's fixed fields (pushcap raised struct.error, "unexpected", and wrote
  nothing), a packet claiming more than its block holds or than the snaplen, a trailing length
  other than the leading one, a length not a multiple of 4, below 12 or above libpcap's largest
  block (the last three were not noticed). tcpdump writes every packet before the damage and
  stops; pushcap dropped the batch it was building, now it delivers it and then raises
  SourceError naming the block's offset, as it does for a classic pcap file;
- link types: libpcap reads any number, but tcpdump refuses those its filter compiler does not
  know ("unknown data link type"); pushcap took them all;
- record limits: libpcap takes records up to 128 MiB for D-Bus, 1 MiB for USBPcap and 8 MiB for
  EBHSCR (262144 bytes for the others); pushcap called a larger one corrupt for every link type.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from oracle import PCAPS_DIR
from test_capture_file_quirks import classic, packets, parsed, pcapng, tcpdump_copy

from pushcap import cli
from pushcap.capture import source as source_module
from pushcap.capture import window_batches
from pushcap.capture.source import PcapFileSource, SourceError, open_file_source

NS = 1_000_000_000
SHB, IDB, PB, SPB, EPB = 0x0A0D0D0A, 1, 2, 3, 6
# Its blocks: SHB at 0, IDBs at 132 and 200, six EPBs at 348, 476, 724, 828, 1028 and 1132.
MULTI = (PCAPS_DIR / "pcapng-multi-interface.pcapng").read_bytes()
END = len(MULTI)  # 1348


def patched(*fields: tuple[int, int]) -> bytes:
    """MULTI with each (offset, value) written as a little-endian u32."""
    data = bytearray(MULTI)
    for offset, value in fields:
        struct.pack_into("<I", data, offset, value)
    return bytes(data)


def pushcap_read(path: Path, batch_packets: int) -> tuple[list, SourceError | None]:
    """The packets pushcap's reader delivers (as tests/oracle.py gives them), and the error it
    ended with."""
    got = []
    try:
        for batch in open_file_source(path, batch_packets).batches():
            got += parsed(bytes(memoryview(batch.records).cast("B")), batch.nano)
    except SourceError as exc:
        return got, exc
    return got, None


# --- pcapng damage ------------------------------------------------------------------------------

DAMAGE = {  # name: (file, tcpdump's words, packets before the damage, the damaged block)
    "EPB of 12 bytes at the end": (MULTI + struct.pack("<III", EPB, 12, 12),
                                   "block of type 6 in pcapng dump file is too short", 6, END),
    "PB of 12 bytes": (MULTI + struct.pack("<III", PB, 12, 12), "type 2", 6, END),
    "SPB of 12 bytes": (MULTI + struct.pack("<III", SPB, 12, 12), "type 3", 6, END),
    "IDB of 12 bytes": (MULTI + struct.pack("<III", IDB, 12, 12), "type 1", 6, END),
    "SHB of 12 bytes": (MULTI + struct.pack("<III", SHB, 12, 12), "is too short", 6, END),
    "SHB of no byte order": (MULTI + struct.pack("<IIIHHqI", SHB, 28, 0x11223344, 1, 0, -1, 28),
                             "bad byte order magic", 6, END),
    "EPB caplen beyond its block": (patched((744, 5000)), "type 6 in pcapng dump file is too short",
                                    2, 724),
    "SPB beyond its block": (MULTI + struct.pack("<IIII", SPB, 16, 100, 16),
                             "type 3 in pcapng dump file is too short", 6, END),
    "trailing length differs": (patched((724 + 100, 108)), "in header and trailer don't match", 2,
                                724),
    "length not a multiple of 4": (patched((728, 102)), "that is not a multiple of 4", 2, 724),
    "length below 12": (patched((728, 8)), "has a length of 8 < 12", 2, 724),
    "length below 12 at the end": (MULTI + struct.pack("<II", EPB, 0) + b"x", "of 0 < 12", 6, END),
    "length beyond libpcap's largest block": (MULTI + struct.pack("<II", EPB, 0x7FFFFFFC),
                                              "> maximum 16777216", 6, END),
    "caplen beyond the snaplen": (patched((132 + 12, 64), (200 + 12, 64)),  # both IDBs'
                                  "invalid packet capture length 96, bigger than snaplen of 64",
                                  0, 348),
}


@pytest.mark.parametrize("batch_packets", [1, 4, 1000])
@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_pcapng_damage_stops_after_the_packets_before_it_as_tcpdump_does(tmp_path, name,
                                                                         batch_packets):
    data, says, before, block = DAMAGE[name]
    path = tmp_path / "damaged.pcapng"
    path.write_bytes(data)
    want, proc = tcpdump_copy(path, tmp_path / "tcpdump.pcap", nano=True)
    assert proc.returncode == 1 and says in proc.stderr, proc.stderr
    want_packets = parsed(want[24:], True)
    assert len(want_packets) == before
    got, error = pushcap_read(path, batch_packets)
    assert got == want_packets
    assert error is not None and f"the block at byte {block} has" in str(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize("tail", [b"abc", struct.pack("<II", EPB, 1 << 20)],
                         ids=["3 stray bytes", "a block cut by the end"])
def test_a_pcapng_file_cut_short_is_not_damage(tmp_path, tail):
    """libpcap: "truncated pcapng dump file" after every whole packet: a warning, not an error."""
    path = tmp_path / "cut.pcapng"
    path.write_bytes(MULTI + tail)
    want, proc = tcpdump_copy(path, tmp_path / "tcpdump.pcap", nano=True)
    assert "truncated pcapng dump file" in proc.stderr
    source = open_file_source(path, 4)
    got = [p for batch in source.batches()
           for p in parsed(bytes(memoryview(batch.records).cast("B")), True)]
    assert got == parsed(want[24:], True) and len(got) == 6
    assert source.truncated_bytes == len(tail)


@pytest.mark.parametrize("damage", ["EPB of 12 bytes at the end", "EPB caplen beyond its block"])
def test_replay_writes_the_packets_before_pcapng_damage_then_fails_in_one_line(tmp_path,
                                                                               write_lua, capsys,
                                                                               damage):
    """The brief's two cases, as `pushcap replay` runs them: it ended with an "unexpected"
    struct.error (or a SourceError) having written nothing."""
    data, _, before, block = DAMAGE[damage]
    path = tmp_path / "damaged.pcapng"
    path.write_bytes(data)
    want, _ = tcpdump_copy(path, tmp_path / "tcpdump.pcap", nano=True)
    lua = write_lua([{"Desc": "all", "Mode": "File", "Path": str(tmp_path / "out" / "all"),
                      "Split": "--split-byte 1e12", "FileName": "--filename-epoch-nsec"}])
    assert cli.main(["replay", "--quiet", str(path), "--lua", str(lua)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("pushcap: error: ") and f"block at byte {block}" in err[-1]
    assert "unexpected" not in err[-1]
    (written,) = (tmp_path / "out").glob("all_*.pcap")
    assert parsed(written.read_bytes()[24:], True) == parsed(want[24:], True)
    assert len(parsed(want[24:], True)) == before


# --- link types ---------------------------------------------------------------------------------

KNOWN = [0, 1, 6, 10, 11, 12, 15, 16, 19, 50, 51, 99, 100, 103, 104, 106, 147, 162, 228, 231,
         276, 289, 0x04000001, 0x44000001]
UNKNOWN = [2, 3, 4, 5, 13, 14, 17, 18, 20, 49, 52, 98, 290, 300, 65535, 0x10001, 0xFFFF0001,
           0x7FFFFFFF]


@pytest.mark.parametrize("linktype", KNOWN + UNKNOWN, ids=hex)
def test_a_link_type_tcpdump_does_not_know_is_refused(tmp_path, linktype):
    path = classic(tmp_path / "l.pcap", [(1_600_000_000, 5, 4, 4, b"abcd")], linktype=linktype)
    want, proc = tcpdump_copy(path, tmp_path / "tcpdump.pcap", nano=False)
    refused = "unknown data link type" in proc.stderr
    assert refused == (linktype in UNKNOWN), proc.stderr  # the oracle agrees with the lists
    if refused:
        number = linktype & 0x03FFFFFF
        with pytest.raises(SourceError, match=f"link type {number} is one libpcap does not know"):
            PcapFileSource(path)
    else:
        assert pushcap_read(path, 10) == (parsed(want[24:], False), None)


@pytest.mark.parametrize("linktype", [147, 65535])
def test_a_pcapng_interface_of_a_link_type_tcpdump_does_not_know_is_refused(tmp_path,
                                                                            linktype):
    path = pcapng(tmp_path / "l.pcapng", [(None, None)], [(0, 1_700_000_000_000_000, b"abc")])
    data = bytearray(path.read_bytes())
    struct.pack_into("<H", data, 28 + 8, linktype)  # the IDB after the 28-byte SHB
    path.write_bytes(bytes(data))
    want, proc = tcpdump_copy(path, tmp_path / "tcpdump.pcap", nano=True)
    if linktype == 65535:
        assert "unknown data link type 65535" in proc.stderr
        with pytest.raises(SourceError, match="link type 65535 is one libpcap does not know"):
            open_file_source(path)
    else:
        assert pushcap_read(path, 10) == (parsed(want[24:], True), None)


# --- records beyond 262144 bytes ----------------------------------------------------------------

def large_records(rng_seed: int, sizes: list[int]) -> list[tuple[int, int, int, int, bytes]]:
    """Small records with one of each of `sizes` among them."""
    import numpy as np

    rng = np.random.default_rng(rng_seed)
    records = packets(rng, 30, nano=False)
    for i, size in enumerate(sizes):
        records.insert(10 * (i + 1), (1_600_000_100 + i, 7, size, size, bytes([i + 1]) * size))
    return records


@pytest.mark.parametrize("mapped", [True, False])
@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("order", ["<", ">"])
def test_a_dbus_record_above_262144_bytes_is_read_as_tcpdump_reads_it(tmp_path, monkeypatch,
                                                                      order, native, mapped):
    """A D-Bus file (snaplen 0: 128 MiB) with records of 300000 bytes and 1.5 MiB (more than
    the first read window): pushcap called the first corrupt. Read by the fast walk, not
    record by record (pcap_rules.RuleReader is never called)."""
    if not native:
        monkeypatch.setattr(window_batches, "native_walk", lambda: None)
    monkeypatch.setattr(source_module, "RuleReader", None)  # not the slow path
    path = classic(tmp_path / "dbus.pcap", large_records(1, [300_000, 1_500_000]), snaplen=0,
                   linktype=231, order=order)
    want, proc = tcpdump_copy(path, tmp_path / "tcpdump.pcap", nano=False)
    assert proc.returncode == 0, proc.stderr
    source = PcapFileSource(path, 7, mapped=mapped)
    got = [p for batch in source.batches()
           for p in parsed(bytes(memoryview(batch.records).cast("B")), False)]
    assert got == parsed(want[24:], False) and len(got) == 32
    assert source.snaplen == 128 << 20


def test_a_dbus_record_above_the_header_snaplen_is_cut_to_it_as_tcpdump_cuts_it(tmp_path):
    """Within D-Bus's 128 MiB but above the header's snaplen of 262144: libpcap cuts it, as any
    record longer than the snaplen; pushcap called it corrupt."""
    path = classic(tmp_path / "dbus.pcap", large_records(2, [300_000]), snaplen=262144,
                   linktype=231)
    want, proc = tcpdump_copy(path, tmp_path / "tcpdump.pcap", nano=False)
    assert proc.returncode == 0, proc.stderr
    got, error = pushcap_read(path, 7)
    assert error is None and got == parsed(want[24:], False)
    assert max(p[1] for p in got) == 262144


@pytest.mark.parametrize("linktype, limit", [(1, 262144), (231, 128 << 20), (249, 1 << 20),
                                             (279, 8 << 20)])
def test_a_record_above_its_link_types_limit_is_corruption(tmp_path, linktype, limit):
    """A record claiming one byte more than libpcap's limit for the link type: tcpdump stops
    ("invalid packet capture length"), pushcap too, after the packets before it."""
    records = large_records(3, [])[:12]
    path = classic(tmp_path / "big.pcap", records, snaplen=0, linktype=linktype)
    path.write_bytes(path.read_bytes() + struct.pack("<IIII", 1_600_000_200, 0, limit + 1,
                                                     limit + 1) + b"z" * 100)
    want, proc = tcpdump_copy(path, tmp_path / "tcpdump.pcap", nano=False)
    assert "invalid packet capture length" in proc.stderr
    got, error = pushcap_read(path, 5)
    assert got == parsed(want[24:], False) and len(got) == 12
    assert error is not None and f"claims {limit + 1} captured bytes, more than libpcap's " \
        f"limit of {limit}" in str(error)


def test_a_usbpcap_record_of_its_largest_size_is_read(tmp_path):
    path = classic(tmp_path / "usb.pcap", large_records(4, [1 << 20]), snaplen=0, linktype=249)
    want, proc = tcpdump_copy(path, tmp_path / "tcpdump.pcap", nano=False)
    assert proc.returncode == 0, proc.stderr
    assert pushcap_read(path, 7) == (parsed(want[24:], False), None)


def test_the_block_holding_a_large_pcapng_record_is_not_too_large(tmp_path):
    """libpcap's largest pcapng block grows with the link type's largest record (an EPB of
    it plus 128 KiB of options): a D-Bus block above 16 MiB is read."""
    data = bytes(range(256)) * (17 << 12)  # 17 MiB
    path = pcapng(tmp_path / "d.pcapng", [(None, None)], [(0, 1_700_000_000_000_000, data)],
                  snaplen=0)
    raw = bytearray(path.read_bytes())
    struct.pack_into("<H", raw, 28 + 8, 231)  # D-Bus
    path.write_bytes(bytes(raw))
    want, proc = tcpdump_copy(path, tmp_path / "tcpdump.pcap", nano=True)
    assert proc.returncode == 0, proc.stderr
    assert pushcap_read(path, 7) == (parsed(want[24:], True), None)
