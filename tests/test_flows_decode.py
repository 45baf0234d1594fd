"""Header decoding of whole batches: each case is a hand-built frame with known fields."""

from __future__ import annotations

import socket
import struct

import numpy as np
import pytest

from pushcap.capture.batch import Batch, build_records
from pushcap.flows.decode import decode

V4_A, V4_B = "192.0.2.1", "198.51.100.7"
V6_A, V6_B = "2001:db8::1", "2001:db8:ffff::2"


def batch_of(frames: list[bytes], linktype: int = 1, wirelen: list[int] | None = None,
             snap: int | None = None) -> Batch:
    """A Batch holding `frames` (cut to `snap` captured bytes if given)."""
    data = [f[:snap] if snap else f for f in frames]
    cap = np.array([len(f) for f in data], dtype=np.int64)
    wire = np.array(wirelen if wirelen else [len(f) for f in frames], dtype=np.int64)
    offsets = np.cumsum([0, *cap[:-1].tolist()]).astype(np.int64)
    ts = np.arange(len(frames), dtype=np.int64) + 1_700_000_000 * 10**9
    records, rec_offsets = build_records(ts, cap, wire, b"".join(data), offsets)
    return Batch(records, rec_offsets, ts, cap, wire, linktype, 65535)


def tcp(sport: int, dport: int, payload: bytes, options: bytes = b"") -> bytes:
    off = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 2, off << 4, 0x18, 1000, 0, 0) + options \
        + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(proto: int, l4: bytes, src: str = V4_A, dst: str = V4_B, frag: int = 0,
         options: bytes = b"", total: int | None = None) -> bytes:
    ihl = (20 + len(options)) // 4
    length = 20 + len(options) + len(l4) if total is None else total
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, length, 7, frag, 64, proto, 0,
                       socket.inet_aton(src), socket.inet_aton(dst)) + options + l4


def ipv6(nh: int, l4: bytes, src: str = V6_A, dst: str = V6_B) -> bytes:
    return struct.pack("!IHBB", 0x60000000, len(l4), nh, 64) + socket.inet_pton(
        socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) + l4


def eth(ethertype: int, payload: bytes, tags: tuple[int, ...] = ()) -> bytes:
    head = b"\x02" * 6 + b"\x04" * 6
    for tpid in tags:
        head += struct.pack("!HH", tpid, 100)
    return head + struct.pack("!H", ethertype) + payload


def fields(d, i: int) -> tuple:
    fam = int(d.family[i])
    if fam == 0:
        return (0,)
    af, size = (socket.AF_INET, 4) if fam == 4 else (socket.AF_INET6, 16)
    return (fam, socket.inet_ntop(af, d.src[i, :size].tobytes()),
            socket.inet_ntop(af, d.dst[i, :size].tobytes()), int(d.proto[i]), int(d.sport[i]),
            int(d.dport[i]), int(d.length[i]))


def test_ethernet_ipv4_tcp_udp_icmp_lengths():
    frames = [eth(0x0800, ipv4(6, tcp(1234, 80, b"a" * 100, options=b"\x01" * 12))),
              eth(0x0800, ipv4(17, udp(5353, 53, b"q" * 33))),
              eth(0x0800, ipv4(1, b"\x08\x00\x00\x00\x00\x01\x00\x01" + b"p" * 56)),
              eth(0x0800, ipv4(47, b"g" * 24, options=b"\x01" * 4))]
    d = decode(batch_of(frames))
    assert [fields(d, i) for i in range(4)] == [
        (4, V4_A, V4_B, 6, 1234, 80, 100), (4, V4_A, V4_B, 17, 5353, 53, 33),
        (4, V4_A, V4_B, 1, 0, 0, 64), (4, V4_A, V4_B, 47, 0, 0, 24)]


def test_ethernet_padding_and_short_snaplen_do_not_change_length():
    frame = eth(0x0800, ipv4(6, tcp(1, 2, b""))) + b"\x00" * 6  # padded to 60 bytes
    big = eth(0x0800, ipv4(17, udp(7, 9, b"z" * 1000)))
    d = decode(batch_of([frame, big], snap=60))
    assert fields(d, 0)[-1] == 0
    assert fields(d, 1) == (4, V4_A, V4_B, 17, 7, 9, 1000)


@pytest.mark.parametrize("tags", [(0x8100,), (0x88A8, 0x8100), (0x9100, 0x8100)])
def test_vlan_tags_one_or_two(tags):
    d = decode(batch_of([eth(0x86DD, ipv6(17, udp(1, 2, b"x" * 9)), tags=tags)]))
    assert fields(d, 0) == (6, V6_A, V6_B, 17, 1, 2, 9)


def test_ipv4_fragments_first_has_ports_others_count_under_zero():
    whole = udp(4000, 53, b"d" * 1500)
    first = ipv4(17, whole[:1208], frag=0x2000, total=20 + 1208)
    rest = ipv4(17, whole[1208:], frag=1208 // 8)
    d = decode(batch_of([eth(0x0800, first), eth(0x0800, rest)]))
    assert fields(d, 0) == (4, V4_A, V4_B, 17, 4000, 53, 1200)
    assert fields(d, 1) == (4, V4_A, V4_B, 17, 0, 0, len(whole) - 1208)
    assert int(d.length.sum()) == 1500, "fragments add up to the UDP payload"


def test_ipv6_extension_headers_and_fragments():
    hop = struct.pack("!BB", 60, 0) + b"\x01\x04\x00\x00\x00\x00"  # hop-by-hop -> dest opts
    dst_opts = struct.pack("!BB", 6, 1) + b"\x00" * 14  # 16 bytes -> TCP
    frag_first = struct.pack("!BBHI", 17, 0, 0x0001, 99)
    frag_later = struct.pack("!BBHI", 17, 0, (64 << 3), 99)
    frames = [eth(0x86DD, ipv6(0, hop + dst_opts + tcp(443, 50000, b"t" * 40))),
              eth(0x86DD, ipv6(44, frag_first + udp(5000, 6000, b"u" * 20))),
              eth(0x86DD, ipv6(44, frag_later + b"u" * 30)),
              eth(0x86DD, ipv6(58, b"\x80\x00\x00\x00" + b"e" * 12))]
    d = decode(batch_of(frames))
    assert [fields(d, i) for i in range(4)] == [
        (6, V6_A, V6_B, 6, 443, 50000, 40), (6, V6_A, V6_B, 17, 5000, 6000, 20),
        (6, V6_A, V6_B, 17, 0, 0, 30), (6, V6_A, V6_B, 58, 0, 0, 16)]


def test_link_types_sll_sll2_raw_null():
    packet = ipv4(17, udp(10, 20, b"s" * 5))
    sll = struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 8, 0x0800) + packet
    sll2 = struct.pack("!HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, b"\x02" * 8) + packet
    null = struct.pack("<I", 2) + packet
    loop = struct.pack("!I", 30) + ipv6(17, udp(10, 20, b"s" * 5))
    want4 = (4, V4_A, V4_B, 17, 10, 20, 5)
    assert fields(decode(batch_of([sll], linktype=113)), 0) == want4
    assert fields(decode(batch_of([sll2], linktype=276)), 0) == want4
    assert fields(decode(batch_of([packet], linktype=101)), 0) == want4
    assert fields(decode(batch_of([null], linktype=0)), 0) == want4
    assert fields(decode(batch_of([loop], linktype=108)), 0)[:2] == (6, V6_A)


def test_non_ip_and_broken_headers_are_not_counted():
    arp = eth(0x0806, b"\x00" * 28)
    short_ip = eth(0x0800, ipv4(6, tcp(1, 2, b""))[:12])
    bad_ihl = eth(0x0800, b"\x43" + ipv4(6, tcp(1, 2, b""))[1:])
    tso = eth(0x0800, ipv4(6, tcp(1, 2, b"w" * 500), total=0))
    d = decode(batch_of([arp, short_ip, bad_ihl, tso], linktype=1))
    assert d.family.tolist() == [0, 0, 0, 4]
    assert fields(d, 3)[-1] == 500, "total length 0 (TSO) falls back to the wire length"
    assert len(decode(batch_of([arp], linktype=147)).family) == 1  # unknown link type


def test_empty_batch():
    d = decode(Batch(b"", *(np.zeros(0, np.int64),) * 4, 1, 65535))
    assert len(d) == 0
