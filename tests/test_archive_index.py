"""The archive index of one file: its keys agree between C and numpy, its flows account for every
record, its record offsets point at the file's records, and it is written where no `<Path>_*`
glob finds it.

The keys are judged by an independent decoder here too (dpkt, as DESIGN.md's oracles): for each
flow marked exact, every record's addresses, protocol, ports and VLAN tags are dpkt's.
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import dpkt
import numpy as np
import pytest
from oracle import PCAPS_DIR, read_pcap

from pushcap.archive.build import NotIndexable, build_index
from pushcap.archive.index_file import IndexReader
from pushcap.archive.keys import FileKeys
from pushcap.archive.layout import index_path
from pushcap.archive.native_keys import native_keys
from pushcap.capture.source import PcapFileSource

CLASSIC = ["tcpreplay-test.pcap", "tcpreplay-test-nano.pcap", "ultrasurf-vlan.pcap",
           "vlan-mixed-tagged-untagged.pcap", "http_ipv6.pcap", "tcp-snaplen68.pcap",
           "dns_fragmented.pcap", "kakaotalk-sll.pcap", "ocs-rawip.pcap", "tls-sll2.pcap",
           "dns-ipv6-rawip.pcap", "viber_mobile.pcap", "http-bro.org.pcap"]


def gathered(path: Path, native: bool):
    source = PcapFileSource(path)
    keys = FileKeys(source.linktype, native)
    for batch in source.batches():
        keys.add(batch, source.end_offset - len(batch.records))
    return keys.finish()


@pytest.mark.skipif(native_keys() is None, reason="the C library is not built")
@pytest.mark.parametrize("name", CLASSIC)
def test_c_and_numpy_give_the_same_index(name):
    c, py = gathered(PCAPS_DIR / name, True), gathered(PCAPS_DIR / name, False)
    assert c.keys.tobytes() == py.keys.tobytes()
    for field in ("first_ts", "last_ts", "packets", "bytes", "rec_offset", "rec_caplen"):
        assert np.array_equal(getattr(c, field), getattr(py, field)), field


@pytest.mark.skipif(native_keys() is None, reason="the C library is not built")
def test_c_and_numpy_agree_on_a_generated_trace(gen_trace):
    trace = gen_trace(30_000, seed=7)
    c, py = gathered(trace, True), gathered(trace, False)
    assert c.keys.tobytes() == py.keys.tobytes()
    assert np.array_equal(c.rec_offset, py.rec_offset)


def _dpkt_keys(data: bytes, linktype: int):
    """(vlans, family, src, dst, proto, sport, dport) as dpkt sees an Ethernet or SLL frame."""
    frame = dpkt.ethernet.Ethernet(data) if linktype == 1 else dpkt.sll.SLL(data)
    vlans = [tag.id for tag in getattr(frame, "vlan_tags", [])]
    ip = frame.data
    if linktype == 1:
        at, kind = 12, struct.unpack_from("!H", data, 12)[0]
        while kind in (0x8100, 0x88A8, 0x9100):
            at += 4
            kind = struct.unpack_from("!H", data, at)[0]
    else:
        kind = frame.ethtype
    if kind not in (0x0800, 0x86DD):  # libpcap's `ip`/`ip6` read this field alone (not MPLS)
        return vlans, 0, bytes(16), bytes(16), 0, 0, 0
    if isinstance(ip, dpkt.ip.IP):
        family, src, dst, proto = 4, ip.src + bytes(12), ip.dst + bytes(12), ip.p
    elif isinstance(ip, dpkt.ip6.IP6):
        family, src, dst, proto = 6, ip.src, ip.dst, ip.nxt
    else:
        return vlans, 0, bytes(16), bytes(16), 0, 0, 0
    ports = (0, 0)
    if proto in (6, 17) and len(ip.data) >= 4 and not (family == 4 and ip.offset):
        raw = bytes(ip.data)[:4] if isinstance(ip.data, bytes) else bytes(ip.data)[:4]
        ports = struct.unpack("!HH", raw)
    return vlans, family, src, dst, proto, *ports


@pytest.mark.parametrize("name", ["ultrasurf-vlan.pcap", "vlan-mixed-tagged-untagged.pcap",
                                  "http_ipv6.pcap", "tcpreplay-test.pcap",
                                  "kakaotalk-sll.pcap"])
def test_exact_keys_are_what_dpkt_reads(name, tmp_path):
    src = PCAPS_DIR / name
    data = tmp_path / f"x_{name}"
    data.write_bytes(src.read_bytes())
    build_index(data)
    reader = IndexReader(index_path(data))
    flows = reader.flows()
    packets = read_pcap(data)
    by_offset = {}
    offset = 24
    for _ts, caplen, _wirelen, raw in packets.packets:
        by_offset[offset] = raw
        offset += 16 + caplen
    assert int(flows["packets"].sum()) == len(packets.packets)
    checked = 0
    for row in np.flatnonzero(flows["exact"]):
        offsets, _ = reader.records(np.array([row]))
        assert len(offsets) == flows["packets"][row]
        for off in offsets[:20]:
            vlans, family, s, d, proto, sport, dport = _dpkt_keys(by_offset[int(off)],
                                                                  packets.linktype)
            assert family == flows["ip_version"][row]
            if family:
                assert (s, d) == (flows["src_raw"][row].tobytes(), flows["dst_raw"][row].tobytes())
                assert proto == flows["protocol"][row]
                if proto in (6, 17):
                    assert (sport, dport) == (flows["src_port"][row], flows["dst_port"][row])
            assert vlans[:1] == ([flows["vlan"][row]] if flows["vlan"][row] >= 0 else [])
            checked += 1
    assert checked


def test_index_is_hidden_and_describes_its_file(tmp_path, gen_trace):
    data = tmp_path / "all_1700000000-1700000060.pcap"
    data.write_bytes(gen_trace(5_000).read_bytes())
    meta = build_index(data)
    assert sorted(p.name for p in tmp_path.glob("all_*")) == [data.name]
    index = index_path(data)
    assert index.parent.name == ".pushcap-index" and index.exists()
    assert not list(index.parent.glob(".*"))  # no part left
    assert meta.packets == 5_000 and meta.data_size == data.stat().st_size
    reader = IndexReader(index)
    flows = reader.flows()
    assert int(flows["packets"].sum()) == 5_000
    offsets, caplen = reader.records(np.arange(len(flows["packets"])))
    raw = data.read_bytes()
    heads = [struct.unpack_from("<IIII", raw, int(o)) for o in offsets[:50]]
    assert [h[2] for h in heads] == caplen[:50].tolist()
    ip4 = np.flatnonzero(flows["ip_version"] == 4)[0]
    text = reader._file.read(columns=["src"]).column("src")[int(ip4)].as_py()
    assert text == socket.inet_ntoa(flows["src_raw"][ip4][:4].tobytes())


def test_pcapng_is_not_indexable(tmp_path):
    data = tmp_path / "x.pcapng"
    data.write_bytes((PCAPS_DIR / "bittorrent_transmission.pcapng").read_bytes())
    with pytest.raises(NotIndexable):
        build_index(data)
    assert not index_path(data).exists()
