"""The oracle must be right before it may judge pushcap: check it on the real captures.

Three independent readers have to agree: tests/oracle.py's struct parser, tcpdump (libpcap) and
capinfos (Wireshark), plus dpkt for the classic files. The expected counts are the capinfos table
in tests/data/README.md.
"""

from __future__ import annotations

import struct
from pathlib import Path

import dpkt
import pytest
from oracle import (
    PCAPS_DIR,
    OracleError,
    assert_same_packets,
    capinfos_ok,
    concat_packets,
    read_pcap,
    tcpdump_select,
)

# name: (packets, linktype, nano) from the README's table and capinfos output.
CORPUS = {
    "tcpreplay-test.pcap": (179, 1, False),
    "tcpreplay-test-nano.pcap": (179, 1, True),
    "dns_fragmented.pcap": (66, 1, False),
    "http_ipv6.pcap": (193, 1, False),
    "http-bro.org.pcap": (751, 1, False),
    "tls-windows-browsing.pcap": (3138, 1, False),
    "ultrasurf-vlan.pcap": (333, 1, False),
    "vlan-mixed-tagged-untagged.pcap": (254, 1, False),
    "kakaotalk-sll.pcap": (3203, 113, False),
    "tls-sll2.pcap": (6, 276, False),
    "ocs-rawip.pcap": (946, 101, False),
    "dns-ipv6-rawip.pcap": (4, 101, False),
    "viber_mobile.pcap": (10701, 1, False),
    "http-mime-truncated.pcap": (2696, 1, False),
    "tcp-snaplen68.pcap": (24, 1, False),
    "tcp-caplen96.pcap": (878, 1, False),
    "nfsv3-bigendian.pcap": (128, 1, False),
    "bittorrent_transmission.pcapng": (7723, 1, True),
    "pcapng-multi-interface.pcapng": (6, 1, True),
}
CLASSIC = [name for name in CORPUS if name.endswith(".pcap")]


def test_corpus_is_present() -> None:
    assert sorted(p.name for p in PCAPS_DIR.glob("*.pcap*")) == sorted(CORPUS)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_read_pcap_counts_match_readme(name: str) -> None:
    count, linktype, nano = CORPUS[name]
    cap = read_pcap(PCAPS_DIR / name)
    assert (len(cap.packets), cap.linktype, cap.nano) == (count, linktype, nano)
    assert cap.truncated == (name == "http-mime-truncated.pcap")
    assert all(c == len(d) and c <= w for _t, c, w, d in cap.packets)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_tcpdump_select_all_equals_read_pcap(name: str, tmp_path: Path) -> None:
    """Exact ns timestamps, caplen, wirelen and bytes, for µs, ns, pcapng and odd files."""
    src = read_pcap(PCAPS_DIR / name)
    out = tcpdump_select(PCAPS_DIR / name, None, tmp_path / "all.pcap")
    assert out.nano and not out.truncated
    assert (out.linktype, out.snaplen) == (src.linktype, src.snaplen)
    assert_same_packets(out.packets, src.packets)
    assert capinfos_ok(tmp_path / "all.pcap") == CORPUS[name][0]


@pytest.mark.parametrize("name", CLASSIC)
def test_dpkt_agrees_on_classic_files(name: str) -> None:
    """dpkt is the third reader; at a truncated tail it raises NeedData after the whole packets."""
    theirs: list[bytes] = []
    with (PCAPS_DIR / name).open("rb") as f:
        try:
            for _ts, buf in dpkt.pcap.Reader(f):
                theirs.append(bytes(buf))
        except dpkt.NeedData:
            assert name == "http-mime-truncated.pcap"
    assert theirs == [p[3] for p in read_pcap(PCAPS_DIR / name).packets]


def test_microsecond_input_gives_exact_ns_times_1000(tmp_path: Path) -> None:
    us = read_pcap(PCAPS_DIR / "tcpreplay-test.pcap")
    out = tcpdump_select(PCAPS_DIR / "tcpreplay-test.pcap", "tcp", tmp_path / "tcp.pcap")
    assert 0 < len(out.packets) < len(us.packets)
    assert all(t % 1000 == 0 for t, *_ in out.packets)
    assert {p[0] for p in out.packets} <= {p[0] for p in us.packets}


def test_nano_files_keep_sub_microsecond_digits(tmp_path: Path) -> None:
    nano = read_pcap(PCAPS_DIR / "tcpreplay-test-nano.pcap").packets
    micro = read_pcap(PCAPS_DIR / "tcpreplay-test.pcap").packets
    assert [p[1:] for p in nano] == [p[1:] for p in micro]
    assert all(a[0] // 1000 == b[0] // 1000 for a, b in zip(nano, micro, strict=True))
    assert sum(p[0] % 1000 != 0 for p in nano) > 170
    torrent = tcpdump_select(
        PCAPS_DIR / "bittorrent_transmission.pcapng", "udp", tmp_path / "udp.pcap"
    )
    assert sum(p[0] % 1000 != 0 for p in torrent.packets) > 0.9 * len(torrent.packets)


def test_multi_interface_pcapng_mixes_resolutions() -> None:
    times = [p[0] for p in read_pcap(PCAPS_DIR / "pcapng-multi-interface.pcapng").packets]
    assert sum(t % 1000 == 0 for t in times) >= 4  # the µs Windows interface
    assert any(t % 1000 != 0 for t in times)  # the ns Linux interface


def test_caplen96_header_and_records_disagree() -> None:
    cap = read_pcap(PCAPS_DIR / "tcp-caplen96.pcap")
    assert cap.snaplen == 262144
    big = [p for p in cap.packets if p[2] == 1514]
    assert big and all(p[1] == 96 == len(p[3]) for p in big)


def test_snaplen68_and_bigendian_headers() -> None:
    snap = read_pcap(PCAPS_DIR / "tcp-snaplen68.pcap")
    assert snap.snaplen == 68 and all(54 <= p[1] <= 68 and p[1] < p[2] for p in snap.packets)
    nfs = read_pcap(PCAPS_DIR / "nfsv3-bigendian.pcap")
    assert nfs.big_endian and nfs.version == (2, 1) and nfs.snaplen == 1600
    assert all(p[0] % 10_000_000 == 0 for p in nfs.packets)  # 10 ms granularity


def test_truncated_input_accepted_by_tcpdump_select(tmp_path: Path) -> None:
    """tcpdump exits 1 on a cut file but has written every whole packet; that is the answer."""
    out = tcpdump_select(PCAPS_DIR / "http-mime-truncated.pcap", None, tmp_path / "o.pcap")
    assert len(out.packets) == 2696
    assert "truncated dump file" in out.tool_stderr


def test_truncated_mid_record(tmp_path: Path) -> None:
    """A cut inside packet data drops that record only, in the oracle and in tcpdump alike."""
    src = PCAPS_DIR / "tcpreplay-test.pcap"
    whole = read_pcap(src).packets
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(src.read_bytes()[:5000])
    cap = read_pcap(cut)
    assert cap.truncated and 0 < len(cap.packets) < len(whole)
    assert_same_packets(cap.packets, whole[: len(cap.packets)])
    assert_same_packets(tcpdump_select(cut, None, tmp_path / "o.pcap").packets, cap.packets)
    with pytest.raises(AssertionError, match="capinfos rejects"):
        capinfos_ok(cut)
    with pytest.raises(AssertionError, match="capinfos rejects"):
        capinfos_ok(PCAPS_DIR / "http-mime-truncated.pcap")


def test_bad_filter_raises(tmp_path: Path) -> None:
    with pytest.raises(OracleError, match="syntax error"):
        tcpdump_select(PCAPS_DIR / "tcpreplay-test.pcap", "tcp and and", tmp_path / "o.pcap")
    with pytest.raises(OracleError, match="no VLAN support"):
        tcpdump_select(PCAPS_DIR / "tls-sll2.pcap", "vlan", tmp_path / "o.pcap")


def test_big_endian_nano_round_trip(tmp_path: Path) -> None:
    """A big-endian ns file written by hand reads back exactly."""
    path = tmp_path / "be.pcap"
    frame = bytes(range(60))
    path.write_bytes(
        struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
        + struct.pack(">IIII", 1_700_000_000, 123_456_789, 60, 70)
        + frame
    )
    cap = read_pcap(path)
    assert cap.big_endian and cap.nano and not cap.truncated
    assert cap.packets == [(1_700_000_000_123_456_789, 60, 70, frame)]
    out = tcpdump_select(path, None, tmp_path / "o.pcap")
    assert out.packets == cap.packets


def test_assert_same_packets_names_index_and_field() -> None:
    base = [(1000, 4, 4, b"abcd"), (2000, 4, 10, b"efgh")]
    assert_same_packets(base, list(base))
    cases = [
        ([base[0], (2001, 4, 10, b"efgh")], "packet 1: ts_ns differs: 2001 != 2000"),
        ([base[0], (2000, 4, 11, b"efgh")], "packet 1: wirelen differs"),
        ([(1000, 4, 4, b"abXd"), base[1]], "packet 0: data differs: byte 2"),
        ([base[0]], "packet counts differ: 1 actual != 2 expected"),
    ]
    for actual, message in cases:
        with pytest.raises(AssertionError, match=message):
            assert_same_packets(actual, base)


def test_concat_packets_in_order() -> None:
    names = ["tcp-snaplen68.pcap", "dns-ipv6-rawip.pcap"]
    got = concat_packets(PCAPS_DIR / n for n in names)
    assert got == read_pcap(PCAPS_DIR / names[0]).packets + read_pcap(PCAPS_DIR / names[1]).packets
    assert len(got) == 28
