"""Network and transport headers of a whole batch at once, with numpy.

Where the C library is built, csrc/flowcount.c decodes the same way, field for field, and
counts in the same pass (native_table.py); this is the fallback and the reference the C path
is tested against (tests/test_flows_native.py). A change here is a change there.

Flow statistics need, per packet, the 5-tuple and a byte count. Decoding packet by packet in
Python would cost more than capture itself (DESIGN.md, "What the packet path costs"), so every
step here is one numpy operation over all packets still in play: link header -> VLAN tags ->
IPv4/IPv6 (+ IPv6 extension headers) -> TCP/UDP ports and payload length.

What is decoded, and the choices made:
- Link types: Ethernet (1), Linux SLL (113) and SLL2 (276), raw IP (101, and the DLT values
  12/14 live handles report), raw IPv4/IPv6 (228/229), BSD loopback NULL (0) and LOOP (108).
  Up to two 802.1Q / 802.1ad / QinQ tags (0x8100, 0x88a8, 0x9100) after the link header.
- IPv4 honours IHL. Non-first fragments carry no transport header: they count under their
  protocol with ports 0. A total length of 0 (TSO/GSO on the capturing host) falls back to
  the wire length.
- IPv6: the fixed header, then up to `IPV6_MAX_EXT_HEADERS` extension headers (hop-by-hop,
  routing, destination options, fragment, AH) are walked so `proto` is the real transport.
  A chain longer than that, or one that is cut off by the snap length, leaves `proto` at the
  last extension header reached, with ports 0: counted, never dropped.
- `length` is tcpdump's `length`, which the tcpdump-aggregator sums: the TCP payload (IP payload
  minus the TCP header), the UDP payload (min(UDP length, IP payload) minus 8), and the IP
  payload for ICMP, ICMPv6, non-first fragments and other protocols. It comes from the header
  length fields, not the captured bytes, so a short snap length does not shrink it.
- Anything that is not IPv4/IPv6 (ARP, LLDP, ...) or whose IP header is not captured gets
  family 0 and is not counted, as the aggregator skips lines without addresses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pushcap.capture.batch import RECORD_HEADER_BYTES, Batch

LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_LOOP = 0, 1, 108
LINKTYPE_RAW, LINKTYPE_SLL, LINKTYPE_SLL2 = 101, 113, 276
LINKTYPE_IPV4, LINKTYPE_IPV6 = 228, 229
DLT_RAW_VALUES = (12, 14)  # what a live handle may report for raw IP
SUPPORTED_LINKTYPES = frozenset({LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_LOOP, LINKTYPE_RAW,
                                 LINKTYPE_SLL, LINKTYPE_SLL2, LINKTYPE_IPV4, LINKTYPE_IPV6,
                                 *DLT_RAW_VALUES})

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
VLAN_ETHERTYPES = (0x8100, 0x88A8, 0x9100)
MAX_VLAN_TAGS = 2
IPV6_MAX_EXT_HEADERS = 4
PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_ICMPV6 = 1, 6, 17, 58
IPV6_EXT_GENERIC = (0, 43, 60)  # hop-by-hop, routing, destination options: (len + 1) * 8
IPV6_EXT_FRAGMENT, IPV6_EXT_AH = 44, 51
BSD_AF_INET6 = (10, 24, 28, 30)  # AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD, macOS


@dataclass(frozen=True)
class Decoded:
    """Per-packet header fields of one batch, all arrays of the batch's length.

    family is 4, 6, or 0 (not IP / not decodable: ignore the packet). src/dst are (n, 16) uint8:
    an IPv4 address in the first 4 bytes and zeros after. sport/dport are 0 where the packet
    has no ports (ICMP, other protocols, non-first fragments, transport header not captured).
    """

    family: np.ndarray  # uint8
    src: np.ndarray  # (n, 16) uint8
    dst: np.ndarray  # (n, 16) uint8
    proto: np.ndarray  # uint8
    sport: np.ndarray  # uint16
    dport: np.ndarray  # uint16
    length: np.ndarray  # int64, tcpdump's `length` (see the module docstring)

    def __len__(self) -> int:
        return len(self.family)


class _Packets:
    """Bounds-checked big-endian reads at per-packet offsets into the batch buffer."""

    def __init__(self, batch: Batch) -> None:
        self.data = np.frombuffer(batch.records, dtype=np.uint8)
        self.start = batch.offsets + RECORD_HEADER_BYTES
        self.caplen = batch.caplen
        self.wirelen = batch.wirelen

    def has(self, idx: np.ndarray, offset: np.ndarray | int, size: int) -> np.ndarray:
        """True where packet idx has `size` captured bytes at `offset`."""
        return self.caplen[idx] >= np.asarray(offset) + size

    def u8(self, idx: np.ndarray, offset: np.ndarray | int) -> np.ndarray:
        # mode="clip": callers mask by has() first; clipping only keeps numpy from raising.
        return self.data.take(self.start[idx] + offset, mode="clip").astype(np.int64)

    def be16(self, idx: np.ndarray, offset: np.ndarray | int) -> np.ndarray:
        return (self.u8(idx, offset) << 8) | self.u8(idx, np.asarray(offset) + 1)

    def block(self, idx: np.ndarray, offset: np.ndarray | int, size: int) -> np.ndarray:
        pos = (self.start[idx] + offset)[:, None] + np.arange(size)
        return self.data.take(pos, mode="clip")


def decode(batch: Batch) -> Decoded:
    """Decode every packet of the batch (see the module docstring for what and how)."""
    n = len(batch)
    out = Decoded(np.zeros(n, np.uint8), np.zeros((n, 16), np.uint8), np.zeros((n, 16), np.uint8),
                  np.zeros(n, np.uint8), np.zeros(n, np.uint16), np.zeros(n, np.uint16),
                  np.zeros(n, np.int64))
    if n == 0:
        return out
    pk = _Packets(batch)
    idx, ethertype, l3 = _link(pk, batch.linktype)
    idx, ethertype, l3 = _vlan(pk, idx, ethertype, l3)
    v4 = ethertype == ETH_IPV4
    _ipv4(pk, idx[v4], l3[v4], out)
    v6 = ethertype == ETH_IPV6
    _ipv6(pk, idx[v6], l3[v6], out)
    return out


def _link(pk: _Packets, linktype: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(packet indices, ethertype, network header offset) after the link-layer header."""
    n = len(pk.start)
    idx = np.arange(n)
    if linktype == LINKTYPE_ETHERNET:
        idx = idx[pk.has(idx, 0, 14)]
        return idx, pk.be16(idx, 12), np.full(len(idx), 14)
    if linktype == LINKTYPE_SLL:
        idx = idx[pk.has(idx, 0, 16)]
        return idx, pk.be16(idx, 14), np.full(len(idx), 16)
    if linktype == LINKTYPE_SLL2:
        idx = idx[pk.has(idx, 0, 20)]
        return idx, pk.be16(idx, 0), np.full(len(idx), 20)
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6, *DLT_RAW_VALUES):
        idx = idx[pk.has(idx, 0, 1)]
        version = pk.u8(idx, 0) >> 4
        ethertype = np.where(version == 4, ETH_IPV4, np.where(version == 6, ETH_IPV6, 0))
        return idx, ethertype, np.zeros(len(idx), np.int64)
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        # A 4-byte address family in the capturing host's byte order (NULL) or big-endian
        # (LOOP): the family is small, so whichever end byte is nonzero holds it.
        idx = idx[pk.has(idx, 0, 4)]
        first, last = pk.u8(idx, 0), pk.u8(idx, 3)
        family = np.where(first != 0, first, last)
        ethertype = np.where(family == 2, ETH_IPV4,
                             np.where(np.isin(family, BSD_AF_INET6), ETH_IPV6, 0))
        return idx, ethertype, np.full(len(idx), 4)
    empty = np.zeros(0, np.int64)
    return empty, empty, empty


def _vlan(pk: _Packets, idx: np.ndarray, ethertype: np.ndarray, l3: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Skip up to MAX_VLAN_TAGS 802.1Q/802.1ad tags: the inner ethertype decides."""
    ethertype, l3 = ethertype.copy(), l3.copy()
    for _ in range(MAX_VLAN_TAGS):
        tagged = np.flatnonzero(np.isin(ethertype, VLAN_ETHERTYPES))
        if not len(tagged):
            break
        ok = pk.has(idx[tagged], l3[tagged], 4)
        ethertype[tagged[~ok]] = 0
        tagged = tagged[ok]
        ethertype[tagged] = pk.be16(idx[tagged], l3[tagged] + 2)
        l3[tagged] += 4
    return idx, ethertype, l3


def _ipv4(pk: _Packets, idx: np.ndarray, l3: np.ndarray, out: Decoded) -> None:
    ok = pk.has(idx, l3, 20)
    idx, l3 = idx[ok], l3[ok]
    b0 = pk.u8(idx, l3)
    ihl = (b0 & 0x0F) * 4
    ok = ((b0 >> 4) == 4) & (ihl >= 20)
    idx, l3, ihl = idx[ok], l3[ok], ihl[ok]
    total = pk.be16(idx, l3 + 2)
    total = np.where(total == 0, pk.wirelen[idx] - l3, total)  # TSO: length field left 0
    non_first = (pk.be16(idx, l3 + 6) & 0x1FFF) != 0
    out.family[idx] = 4
    out.proto[idx] = pk.u8(idx, l3 + 9)
    out.src[idx, :4] = pk.block(idx, l3 + 12, 4)
    out.dst[idx, :4] = pk.block(idx, l3 + 16, 4)
    _transport(pk, idx, l3 + ihl, np.maximum(total - ihl, 0), non_first, out)


def _ipv6(pk: _Packets, idx: np.ndarray, l3: np.ndarray, out: Decoded) -> None:
    ok = pk.has(idx, l3, 40)
    idx, l3 = idx[ok], l3[ok]
    ok = (pk.u8(idx, l3) >> 4) == 6
    idx, l3 = idx[ok], l3[ok]
    payload = pk.be16(idx, l3 + 4)
    payload = np.where(payload == 0, np.maximum(pk.wirelen[idx] - l3 - 40, 0), payload)  # jumbo
    out.family[idx] = 6
    out.src[idx] = pk.block(idx, l3 + 8, 16)
    out.dst[idx] = pk.block(idx, l3 + 24, 16)
    nh = pk.u8(idx, l3 + 6)
    l4 = l3 + 40
    non_first = np.zeros(len(idx), bool)
    for _ in range(IPV6_MAX_EXT_HEADERS):
        generic = np.isin(nh, IPV6_EXT_GENERIC)
        frag = nh == IPV6_EXT_FRAGMENT
        ah = nh == IPV6_EXT_AH
        ext = np.flatnonzero((generic | frag | ah) & pk.has(idx, l4, 8) & ~non_first)
        if not len(ext):
            break
        e_idx, e_l4 = idx[ext], l4[ext]
        hdr_len = pk.u8(e_idx, e_l4 + 1)
        size = np.where(generic[ext], (hdr_len + 1) * 8, np.where(ah[ext], (hdr_len + 2) * 4, 8))
        non_first[ext] = frag[ext] & ((pk.be16(e_idx, e_l4 + 2) & 0xFFF8) != 0)
        nh[ext] = pk.u8(e_idx, e_l4)
        l4[ext] += size
        payload[ext] = np.maximum(payload[ext] - size, 0)
    out.proto[idx] = nh
    _transport(pk, idx, l4, payload, non_first, out)


def _transport(pk: _Packets, idx: np.ndarray, l4: np.ndarray, payload: np.ndarray,
               non_first: np.ndarray, out: Decoded) -> None:
    """Ports and tcpdump's `length` for packets whose network header is decoded."""
    proto = out.proto[idx]
    length = payload.copy()
    tcp = (proto == PROTO_TCP) & ~non_first
    udp = (proto == PROTO_UDP) & ~non_first
    ported = np.flatnonzero((tcp | udp) & pk.has(idx, l4, 4))
    p_idx, p_l4 = idx[ported], l4[ported]
    out.sport[p_idx] = pk.be16(p_idx, p_l4)
    out.dport[p_idx] = pk.be16(p_idx, p_l4 + 2)
    t = np.flatnonzero(tcp)
    t_idx, t_l4 = idx[t], l4[t]
    # The data offset when captured; else the minimal 20-byte header (snap length cut it off).
    doff = np.where(pk.has(t_idx, t_l4, 13), (pk.u8(t_idx, t_l4 + 12) >> 4) * 4, 20)
    length[t] = np.maximum(payload[t] - doff, 0)
    u = np.flatnonzero(udp)
    u_idx, u_l4 = idx[u], l4[u]
    ulen = np.where(pk.has(u_idx, u_l4, 6), pk.be16(u_idx, u_l4 + 4), payload[u])
    length[u] = np.maximum(np.minimum(ulen, payload[u]) - 8, 0)
    out.length[idx] = length
