"""The index keys of a batch's packets with numpy: the fallback of `capture/csrc/indexkeys.c`.

The same rules as the C file, step by step over whole arrays (never a Python step per packet):
link header, up to two VLAN tags on Ethernet, then the fixed IPv4/IPv6 header fields libpcap's
filters read at fixed offsets (for ARP/RARP, the two protocol addresses `host` tests, kept as
src/dst with no IP version). A packet whose headers a filter could read differently (a
truncated or malformed header, an IPv6 fragment header, a third tag, BSD loopback, an unknown
link type) gets `exact` 0: `pushcap query` then always reads it. Why those rules are
safe is said in indexkeys.c and in filter_keys.py.
"""

from __future__ import annotations

import numpy as np

from pushcap.capture.batch import RECORD_HEADER_BYTES

# One packet's key, 48 bytes: the layout of `struct ix_key` in indexkeys.c.
KEY_DTYPE = np.dtype([("family", "u1"), ("proto", "u1"), ("exact", "u1"), ("ntags", "u1"),
                      ("vlan0", "<u2"), ("vlan1", "<u2"), ("ethertype", "<u2"),
                      ("sport", "<u2"), ("dport", "<u2"), ("pad", "<u2"),
                      ("src", "u1", 16), ("dst", "u1", 16)])
NO_VLAN = 0xFFFF
TPIDS = (0x8100, 0x88A8, 0x9100)
PORTED = (6, 17, 132)  # TCP, UDP, SCTP: the protocols libpcap's `port` looks at
RAW_LINKTYPES = (101, 12, 14, 228, 229)
LOOPBACK_LINKTYPES = (0, 108)
BSD_AF_INET6 = (10, 24, 28, 30)


class _Reader:
    """Big-endian reads at per-packet offsets (callers check lengths first)."""

    def __init__(self, batch) -> None:
        self.data = np.frombuffer(batch.records, dtype=np.uint8)
        self.start = batch.offsets + RECORD_HEADER_BYTES
        self.caplen = batch.caplen

    def u8(self, idx: np.ndarray, offset) -> np.ndarray:
        return self.data.take(self.start[idx] + offset, mode="clip").astype(np.int64)

    def be16(self, idx: np.ndarray, offset) -> np.ndarray:
        return (self.u8(idx, offset) << 8) | self.u8(idx, np.asarray(offset) + 1)

    def block(self, idx: np.ndarray, offset, size: int) -> np.ndarray:
        pos = (self.start[idx] + offset)[:, None] + np.arange(size)
        return self.data.take(pos, mode="clip")


def decode(batch) -> np.ndarray:
    """The KEY_DTYPE key of every packet of `batch`."""
    n = len(batch)
    keys = np.zeros(n, dtype=KEY_DTYPE)
    keys["vlan0"] = keys["vlan1"] = NO_VLAN
    keys["exact"] = 1
    if not n:
        return keys
    rd = _Reader(batch)
    ok, et, l3 = _link(rd, batch.linktype, keys)
    keys["ethertype"][ok] = et[ok]
    if batch.linktype != 1:
        keys["exact"][ok & np.isin(et, TPIDS)] = 0
    _ipv4(rd, np.flatnonzero(ok & (et == 0x0800)), l3, keys)
    _ipv6(rd, np.flatnonzero(ok & (et == 0x86DD)), l3, keys)
    _arp(rd, np.flatnonzero(ok & np.isin(et, (0x0806, 0x8035))), l3, keys)
    return keys


def _link(rd: _Reader, linktype: int, keys: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(decoded, ethertype, network header offset) after the link header and VLAN tags."""
    n = len(keys)
    idx = np.arange(n)
    caplen = rd.caplen
    et = np.zeros(n, np.int64)
    l3 = np.zeros(n, np.int64)
    exact = keys["exact"]
    if linktype == 1:
        ok = caplen >= 14
        et[ok] = rd.be16(idx[ok], 12)
        l3[:] = 14
        for tag in range(3):
            tagged = ok & np.isin(et, TPIDS)
            stop = tagged & ((caplen < l3 + 4) if tag < 2 else True)
            keys["ethertype"][stop] = et[stop]
            ok &= ~stop
            tagged &= ~stop
            t = idx[tagged]
            if not len(t):
                break
            keys["vlan0" if tag == 0 else "vlan1"][t] = rd.be16(t, l3[t]) & 0x0FFF
            keys["ntags"][t] += 1
            et[t] = rd.be16(t, l3[t] + 2)
            l3[t] += 4
        exact[ok & np.isin(et, (0x9200, 0x9300))] = 0
    elif linktype in (113, 276):
        header = 16 if linktype == 113 else 20
        ok = caplen >= header
        et[ok] = rd.be16(idx[ok], 14 if linktype == 113 else 0)
        l3[:] = header
    elif linktype in RAW_LINKTYPES:
        ok = caplen >= 1
        if linktype in (228, 229):
            et[:] = 0x0800 if linktype == 228 else 0x86DD
        else:
            version = rd.u8(idx, 0) >> 4
            et[:] = np.where(version == 4, 0x0800, np.where(version == 6, 0x86DD, 0))
    elif linktype in LOOPBACK_LINKTYPES:
        exact[:] = 0
        ok = caplen >= 4
        first, last = rd.u8(idx, 0), rd.u8(idx, 3)
        family = np.where(first != 0, first, last)
        et[:] = np.where(family == 2, 0x0800, np.where(np.isin(family, BSD_AF_INET6), 0x86DD, 0))
        l3[:] = 4
    else:
        ok = np.zeros(n, bool)
        exact[:] = 0
        return ok, et, l3
    exact[~ok] = 0
    return ok, et, l3


def _ipv4(rd: _Reader, i: np.ndarray, l3: np.ndarray, keys: np.ndarray) -> None:
    short = rd.caplen[i] < l3[i] + 20
    keys["exact"][i[short]] = 0
    i = i[~short]
    at = l3[i]
    b0 = rd.u8(i, at)
    ihl = (b0 & 15) * 4
    proto = rd.u8(i, at + 9)
    keys["family"][i] = 4
    keys["proto"][i] = proto
    keys["src"][i, :4] = rd.block(i, at + 12, 4)
    keys["dst"][i, :4] = rd.block(i, at + 16, 4)
    keys["exact"][i[((b0 >> 4) != 4) | (ihl < 20)]] = 0
    ported = np.isin(proto, PORTED) & ((rd.be16(i, at + 6) & 0x1FFF) == 0)
    _ports(rd, i[ported], at[ported] + ihl[ported], keys)


def _ipv6(rd: _Reader, i: np.ndarray, l3: np.ndarray, keys: np.ndarray) -> None:
    short = rd.caplen[i] < l3[i] + 40
    keys["exact"][i[short]] = 0
    i = i[~short]
    at = l3[i]
    nxt = rd.u8(i, at + 6)
    keys["family"][i] = 6
    keys["proto"][i] = nxt
    keys["src"][i] = rd.block(i, at + 8, 16)
    keys["dst"][i] = rd.block(i, at + 24, 16)
    keys["exact"][i[((rd.u8(i, at) >> 4) != 6) | (nxt == 44)]] = 0
    ported = np.isin(nxt, PORTED)
    _ports(rd, i[ported], at[ported] + 40, keys)


def _arp(rd: _Reader, i: np.ndarray, l3: np.ndarray, keys: np.ndarray) -> None:
    """ARP/RARP: the sender and target protocol addresses, where libpcap's `host` reads them."""
    short = rd.caplen[i] < l3[i] + 28
    keys["exact"][i[short]] = 0
    i = i[~short]
    keys["src"][i, :4] = rd.block(i, l3[i] + 14, 4)
    keys["dst"][i, :4] = rd.block(i, l3[i] + 24, 4)


def _ports(rd: _Reader, i: np.ndarray, l4: np.ndarray, keys: np.ndarray) -> None:
    has = rd.caplen[i] >= l4 + 4
    keys["exact"][i[~has]] = 0
    i, l4 = i[has], l4[has]
    keys["sport"][i] = rd.be16(i, l4)
    keys["dport"][i] = rd.be16(i, l4 + 2)


def group(keys: np.ndarray, ts_ns: np.ndarray, wirelen: np.ndarray) -> tuple[np.ndarray, ...]:
    """(flow number per packet, keys, first_ts, last_ts, packets, bytes per flow), flows numbered
    in the order they first appear, as indexkeys.c numbers them."""
    if not len(keys):
        empty = np.zeros(0, np.int64)
        return np.zeros(0, np.int32), keys, empty, empty, empty, empty
    _, first, inverse = np.unique(keys.view(f"V{KEY_DTYPE.itemsize}"), return_index=True,
                                  return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(first), np.int64)
    rank[order] = np.arange(len(first))
    flow = rank[inverse.ravel()].astype(np.int32)
    nflows = len(first)
    first_ts = np.full(nflows, np.iinfo(np.int64).max, np.int64)
    last_ts = np.full(nflows, np.iinfo(np.int64).min, np.int64)
    np.minimum.at(first_ts, flow, ts_ns)
    np.maximum.at(last_ts, flow, ts_ns)
    packets = np.bincount(flow, minlength=nflows).astype(np.int64)
    nbytes = np.zeros(nflows, np.int64)
    np.add.at(nbytes, flow, wirelen)
    return flow, keys[first[order]], first_ts, last_ts, packets, nbytes
