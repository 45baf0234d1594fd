"""Decap with numpy, where the C library is not built: csrc/decap.c's walk, step for step.

Each round takes one layer off every packet that still has one, all packets of a batch at once
(grouped by what their current layer is); a packet whose layer cannot be taken off leaves the
walk with what was taken off so far. The rules are decap.c's (its comment lists them), and
tests/test_decap.py holds the two to the same answer for every packet.
"""

from __future__ import annotations

import numpy as np

from pushcap.capture.batch import RECORD_HEADER_BYTES

MAX_STEPS = 8  # decap.c's DECAP_MAX_STEPS
MAX_LABELS = 8  # DECAP_MAX_LABELS
INFO_BITS = 24
_ETH = 14
_VLAN = (0x8100, 0x88A8, 0x9100)
_MPLS = (0x8847, 0x8848)
_GRE_AS_TYPE = (0x0800, 0x86DD, 0x8847, 0x8848, 0x8100, 0x88A8, 0x9100)


class _Walk:
    """The state of every packet of a batch: its inner frame is data[mac:mac + 12], `typ`,
    then data[pay:caplen]."""

    def __init__(self, data: np.ndarray, offsets, caplen) -> None:
        self.data = data
        self.start = np.asarray(offsets, dtype=np.int64) + RECORD_HEADER_BYTES
        self.length = np.asarray(caplen, dtype=np.int64)
        n = len(self.start)
        self.mac = np.zeros(n, dtype=np.int64)
        self.pay = np.full(n, _ETH, dtype=np.int64)
        self.typ = np.zeros(n, dtype=np.int64)
        self.took = np.zeros(n, dtype=bool)

    def u8(self, s: np.ndarray, at: np.ndarray) -> np.ndarray:
        return self.data[self.start[s] + at].astype(np.int64)

    def be16(self, s: np.ndarray, at: np.ndarray) -> np.ndarray:
        return self.u8(s, at) << 8 | self.u8(s, at + 1)

    def fits(self, s: np.ndarray, end: np.ndarray) -> np.ndarray:
        return end <= self.length[s]

    def took_step(self, s: np.ndarray, typ: np.ndarray, pay: np.ndarray,
                  mac: np.ndarray | None = None) -> None:
        self.typ[s], self.pay[s] = typ, pay
        if mac is not None:
            self.mac[s] = mac
        self.took[s] = True

    def ethernet_at(self, s: np.ndarray, q: np.ndarray) -> None:
        keep = self.fits(s, q + _ETH)
        s, q = s[keep], q[keep]
        self.took_step(s, self.be16(s, q + 12), q + _ETH, q)


def scan(data: np.ndarray, offsets, caplen) -> tuple[np.ndarray, np.ndarray]:
    """(idx, info) as decap.c's decap_scan gives them: the packets with a layer to take off,
    info = mac | payload << 24 | type << 48."""
    walk = _Walk(data, offsets, caplen)
    alive = np.flatnonzero(walk.length >= _ETH)
    walk.typ[alive] = walk.be16(alive, np.full(len(alive), 12))
    steps = np.zeros(len(walk.start), dtype=np.int64)
    for _ in range(MAX_STEPS):
        if not len(alive):
            break
        walk.took[:] = False
        _step(walk, alive)
        alive = alive[walk.took[alive]]
        steps[alive] += 1
    idx = np.flatnonzero(steps)
    info = walk.mac[idx] | walk.pay[idx] << INFO_BITS | walk.typ[idx] << (2 * INFO_BITS)
    return idx, info


def _step(walk: _Walk, alive: np.ndarray) -> None:
    """One layer off each packet of `alive` that has one (walk.took says which)."""
    typ = walk.typ[alive]
    vlan = alive[np.isin(typ, _VLAN)]
    mpls = alive[np.isin(typ, _MPLS)]
    ipv4 = alive[typ == 0x0800]
    ipv6 = alive[typ == 0x86DD]
    pay = walk.pay[vlan]
    keep = walk.fits(vlan, pay + 4)
    vlan, pay = vlan[keep], pay[keep]
    walk.took_step(vlan, walk.be16(vlan, pay + 2), pay + 4)
    _mpls(walk, mpls)
    _ipv4(walk, ipv4)
    _ipv6(walk, ipv6)


def _mpls(walk: _Walk, s: np.ndarray) -> None:
    q = np.full(len(s), -1, dtype=np.int64)
    pending = np.arange(len(s))
    base = walk.pay[s]
    for k in range(MAX_LABELS):
        at = base[pending] + 4 * k
        inside = walk.fits(s[pending], at + 4)
        pending, at = pending[inside], at[inside]
        bottom = (walk.u8(s[pending], at + 2) & 1).astype(bool)
        q[pending[bottom]] = at[bottom] + 4
        pending = pending[~bottom]
    found = q >= 0
    s, q = s[found], q[found]
    keep = walk.fits(s, q + 1)
    s, q = s[keep], q[keep]
    nibble = walk.u8(s, q) >> 4
    for value, ethertype in ((4, 0x0800), (6, 0x86DD)):
        pick = nibble == value
        walk.took_step(s[pick], np.full(int(pick.sum()), ethertype), q[pick])
    cw = nibble == 0
    walk.ethernet_at(s[cw], q[cw] + 4)
    other = ~np.isin(nibble, (0, 4, 6))
    walk.ethernet_at(s[other], q[other])


def _ipv4(walk: _Walk, s: np.ndarray) -> None:
    p = walk.pay[s]
    keep = walk.fits(s, p + 20)
    s, p = s[keep], p[keep]
    first = walk.u8(s, p)
    keep = first >> 4 == 4
    s, p, first = s[keep], p[keep], first[keep]
    ihl = (first & 0xF) * 4
    keep = (ihl >= 20) & walk.fits(s, p + ihl)
    s, p, ihl = s[keep], p[keep], ihl[keep]
    keep = (walk.be16(s, p + 6) & 0x3FFF) == 0
    s, p, ihl = s[keep], p[keep], ihl[keep]
    _ip_payload(walk, s, walk.u8(s, p + 9), p + ihl)


def _ipv6(walk: _Walk, s: np.ndarray) -> None:
    p = walk.pay[s]
    keep = walk.fits(s, p + 40)
    s, p = s[keep], p[keep]
    keep = walk.u8(s, p) >> 4 == 6
    s, p = s[keep], p[keep]
    _ip_payload(walk, s, walk.u8(s, p + 6), p + 40)


def _ip_payload(walk: _Walk, s: np.ndarray, proto: np.ndarray, t: np.ndarray) -> None:
    _gre(walk, s[proto == 47], t[proto == 47])
    _udp(walk, s[proto == 17], t[proto == 17])
    for number, ethertype in ((4, 0x0800), (41, 0x86DD)):
        pick = proto == number
        walk.took_step(s[pick], np.full(int(pick.sum()), ethertype), t[pick])


def _gre(walk: _Walk, s: np.ndarray, t: np.ndarray) -> None:
    keep = walk.fits(s, t + 4)
    s, t = s[keep], t[keep]
    flags = walk.be16(s, t)
    keep = ((flags & 7) == 0) & ((flags & 0x4000) == 0)
    s, t, flags = s[keep], t[keep], flags[keep]
    ptype = walk.be16(s, t + 2)
    q = t + 4 + 4 * ((flags & 0x8000) != 0) + 4 * ((flags & 0x2000) != 0) \
        + 4 * ((flags & 0x1000) != 0)
    keep = walk.fits(s, q)
    s, q, flags, ptype = s[keep], q[keep], flags[keep], ptype[keep]
    teb = ptype == 0x6558
    walk.ethernet_at(s[teb], q[teb])
    erspan2 = ptype == 0x88BE
    walk.ethernet_at(s[erspan2], q[erspan2] + 8 * ((flags[erspan2] & 0x1000) != 0))
    e3 = ptype == 0x22EB
    s3, q3 = s[e3], q[e3]
    keep = walk.fits(s3, q3 + 12)
    s3, q3 = s3[keep], q3[keep]
    keep = ((walk.u8(s3, q3 + 10) >> 2) & 0x1F) == 0
    s3, q3 = s3[keep], q3[keep]
    walk.ethernet_at(s3, q3 + 12 + 8 * (walk.u8(s3, q3 + 11) & 1))
    as_type = np.isin(ptype, _GRE_AS_TYPE)
    walk.took_step(s[as_type], ptype[as_type], q[as_type])


def _udp(walk: _Walk, s: np.ndarray, t: np.ndarray) -> None:
    keep = walk.fits(s, t + 8)
    s, t = s[keep], t[keep]
    port = walk.be16(s, t + 2)
    q = t + 8
    vx = port == 4789
    sv, qv = s[vx], q[vx]
    keep = walk.fits(sv, qv + 8)
    sv, qv = sv[keep], qv[keep]
    keep = (walk.u8(sv, qv) & 0x08) != 0
    walk.ethernet_at(sv[keep], qv[keep] + 8)
    gn = port == 6081
    sg, qg = s[gn], q[gn]
    keep = walk.fits(sg, qg + 8)
    sg, qg = sg[keep], qg[keep]
    first = walk.u8(sg, qg)
    keep = first >> 6 == 0
    sg, qg, first = sg[keep], qg[keep], first[keep]
    ptype = walk.be16(sg, qg + 2)
    inner = qg + 8 + (first & 0x3F) * 4
    teb = ptype == 0x6558
    walk.ethernet_at(sg[teb], inner[teb])
    ip = np.isin(ptype, (0x0800, 0x86DD)) & walk.fits(sg, inner)
    walk.took_step(sg[ip], ptype[ip], inner[ip])


def inner_frames(data: np.ndarray, offsets, caplen, wirelen, idx: np.ndarray,
                 info: np.ndarray, limit: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(buffer, data offsets, caplen, wirelen) of the inner frames of `idx` (scan's answer), as
    decap.c's decap_build lays them out but without record headers, each cut to `limit` bytes
    (the Ethernet header at least; None: whole): one gather per part."""
    mask = (1 << INFO_BITS) - 1
    mac, pay, typ = info & mask, info >> INFO_BITS & mask, info >> (2 * INFO_BITS) & 0xFFFF
    start = np.asarray(offsets, dtype=np.int64)[idx] + RECORD_HEADER_BYTES
    full = _ETH + np.asarray(caplen, dtype=np.int64)[idx] - pay
    size = full if limit is None else np.minimum(full, max(limit, _ETH))
    body = size - _ETH
    dst = np.concatenate(([0], np.cumsum(size)[:-1])).astype(np.int64)
    buf = np.empty(int(size.sum()), dtype=np.uint8)
    twelve = np.arange(12)
    buf[dst[:, None] + twelve] = data[(start + mac)[:, None] + twelve]
    buf[dst + 12] = typ >> 8
    buf[dst + 13] = typ & 0xFF
    total = int(body.sum())
    within = np.arange(total) - np.repeat(np.cumsum(body) - body, body)
    buf[np.repeat(dst + _ETH, body) + within] = data[np.repeat(start + pay, body) + within]
    wire = np.asarray(wirelen, dtype=np.int64)[idx] - (pay - _ETH)
    return buf, dst, size, np.maximum(wire, full)
