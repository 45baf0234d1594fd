"""Per-flow header templates and numpy chunk assembly, so a million packets take seconds."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

RECORD_HEADER_LEN = 16
IP_MTU_BYTES = 1500
ETH_MIN_FRAME_BYTES = 60  # without FCS, as captures show it
MAX_FLOWS = 4000

ETH_IPV4, ETH_IPV6, ETH_ARP, ETH_VLAN = 0x0800, 0x86DD, 0x0806, 0x8100
PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_ICMPV6 = 1, 6, 17, 58

# Packet share of each kind of flow: TCP ~62 %, UDP ~30 % (DNS 10 %), ICMP 5 %, ARP 3 %.
KIND_SHARES: dict[str, float] = {
    "tcp4": 0.50, "tcp6": 0.12, "udp4": 0.15, "udp6": 0.05, "dns4": 0.07, "dns6": 0.03,
    "icmp4": 0.035, "icmp6": 0.015, "arp": 0.03,
}  # fmt: skip
VLAN_FLOW_SHARE = 0.10
TCP_SERVER_PORTS = (22, 80, 443, 443, 443, 8080, 3306, 5432)
UDP_SERVER_PORTS = (123, 443, 1900, 5353, 514, 4789)
DNS_QNAMES = (b"www.example.com", b"api.github.com", b"mirror.local", b"ntp.ubuntu.com")

# Payload size modes, per kind: probabilities of (empty, full MTU, small 0..200, uniform 0..max).
SIZE_MODES: dict[str, tuple[float, float, float, float]] = {
    "tcp4": (0.40, 0.30, 0.10, 0.20), "tcp6": (0.40, 0.30, 0.10, 0.20),
    "udp4": (0.00, 0.10, 0.45, 0.45), "udp6": (0.00, 0.10, 0.45, 0.45),
    "dns4": (0.20, 0.00, 0.80, 0.00), "dns6": (0.20, 0.00, 0.80, 0.00),
    "icmp4": (0.10, 0.00, 0.70, 0.20), "icmp6": (0.10, 0.00, 0.70, 0.20),
    "arp": (1.00, 0.00, 0.00, 0.00),
}  # fmt: skip
SMALL_PAYLOAD_MAX = 200


@dataclass
class Templates:
    """One row per flow direction: header bytes and where the per-packet fields live.

    Offsets are relative to the frame start; -1 means the field does not exist for that row.
    """

    data: np.ndarray  # (rows, max_len) uint8
    length: np.ndarray  # header bytes per row
    ip4: np.ndarray  # IPv4 header offset
    ip6: np.ndarray  # IPv6 header offset
    tcp: np.ndarray  # TCP header offset
    udp: np.ndarray  # UDP header offset
    ip4_sum: np.ndarray  # one's complement sum of the IPv4 header with len/id/csum zeroed
    max_extra: np.ndarray  # payload bytes allowed after the template within the IP MTU
    size_mode_p: np.ndarray  # (rows, 4) probabilities from SIZE_MODES


def _ones_sum(header: bytes) -> int:
    """Sum of big-endian 16-bit words, the part of the IPv4 checksum fixed per flow."""
    return sum(struct.unpack(f"!{len(header) // 2}H", header))


def _mac(rng: np.random.Generator) -> bytes:
    """A locally administered unicast MAC."""
    raw = bytearray(rng.bytes(6))
    raw[0] = (raw[0] & 0xFC) | 0x02
    return bytes(raw)


def _ip4(rng: np.random.Generator) -> bytes:
    """Mostly 10/8 clients, some public-looking servers."""
    if rng.random() < 0.5:
        return bytes([10]) + rng.bytes(3)
    return bytes([int(rng.integers(11, 223))]) + rng.bytes(3)


def _ip6(rng: np.random.Generator) -> bytes:
    """Addresses in the documentation prefix 2001:db8::/32."""
    return bytes.fromhex("20010db8") + rng.bytes(12)


def _dns_body(rng: np.random.Generator, response: bool, txid: int) -> bytes:
    """A DNS header and one question, so `port 53` traffic looks like DNS to a dissector."""
    qname = DNS_QNAMES[int(rng.integers(len(DNS_QNAMES)))]
    labels = b"".join(bytes([len(p)]) + p for p in qname.split(b".")) + b"\x00"
    flags = 0x8180 if response else 0x0100
    question = labels + struct.pack("!HH", 1, 1)  # type A, class IN
    return struct.pack("!HHHHHH", txid, flags, 1, 0, 0, 0) + question


def _flow_rows(kind: str, rng: np.random.Generator) -> list[dict]:
    """Header templates for both directions of one flow of ``kind``."""
    vlan = rng.random() < VLAN_FLOW_SHARE
    vlan_tag = struct.pack("!HH", ETH_VLAN, int(rng.integers(1, 4095)))
    mac_a, mac_b = _mac(rng), _mac(rng)
    v6 = kind.endswith("6")
    addr_a, addr_b = (_ip6(rng), _ip6(rng)) if v6 else (_ip4(rng), _ip4(rng))
    client_port = int(rng.integers(32768, 61000))
    if kind.startswith("tcp"):
        server_port = (
            int(rng.choice(TCP_SERVER_PORTS))
            if rng.random() < 0.8
            else int(rng.integers(1024, 65536))
        )
    elif kind.startswith("udp"):
        server_port = (
            int(rng.choice(UDP_SERVER_PORTS))
            if rng.random() < 0.6
            else int(rng.integers(1024, 65536))
        )
    else:
        server_port = 53
    txid, icmp_id = int(rng.integers(65536)), int(rng.integers(65536))
    flow_label = int(rng.integers(1 << 20))
    rows = []
    for direction in (0, 1):
        src_mac, dst_mac = (mac_a, mac_b) if direction == 0 else (mac_b, mac_a)
        src, dst = (addr_a, addr_b) if direction == 0 else (addr_b, addr_a)
        sport, dport = (client_port, server_port) if direction == 0 else (server_port, client_port)
        if kind == "arp":
            arp = struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, 1 + direction)
            arp += src_mac + src + (b"\x00" * 6 if direction == 0 else dst_mac) + dst
            ethertype, l3 = ETH_ARP, arp
        else:
            if kind.startswith("tcp"):
                seq0, ack0 = (int(x) for x in rng.integers(0, 1 << 32, 2))
                l4 = struct.pack("!HHIIBBHHH", sport, dport, seq0, ack0, 0x50, 0x18, 64240, 0, 0)
                proto = PROTO_TCP
            elif kind.startswith(("udp", "dns")):
                l4 = struct.pack("!HHHH", sport, dport, 0, 0)
                if kind.startswith("dns"):
                    l4 += _dns_body(rng, direction == 1, txid)
                proto = PROTO_UDP
            else:
                icmp_type = (8 if direction == 0 else 0) if not v6 else (128 + direction)
                l4 = struct.pack("!BBHHH", icmp_type, 0, 0, icmp_id, 1)
                proto = PROTO_ICMPV6 if v6 else PROTO_ICMP
            if v6:
                ip = struct.pack("!IHBB", 0x60000000 | flow_label, 0, proto, 64) + src + dst
                ethertype = ETH_IPV6
            else:
                ip = struct.pack("!BBHHHBBH", 0x45, 0, 0, 0, 0x4000, 64, proto, 0) + src + dst
                ethertype = ETH_IPV4
            l3 = ip + l4
        eth = dst_mac + src_mac + (vlan_tag if vlan else b"") + struct.pack("!H", ethertype)
        ip_off = len(eth)
        l4_off = ip_off + (40 if v6 else 20)
        rows.append({
            "bytes": eth + l3,
            "ip4": ip_off if ethertype == ETH_IPV4 else -1,
            "ip6": ip_off if ethertype == ETH_IPV6 else -1,
            "tcp": l4_off if kind.startswith("tcp") else -1,
            "udp": l4_off if kind.startswith(("udp", "dns")) else -1,
            "ip4_sum": _ones_sum(l3[:20]) if ethertype == ETH_IPV4 else 0,
            "max_extra": 0 if kind == "arp" else IP_MTU_BYTES - len(l3),
            "modes": SIZE_MODES[kind],
        })  # fmt: skip
    return rows


def build_templates(rng: np.random.Generator, packets: int) -> tuple[Templates, dict]:
    """Build every flow's templates and the per-kind pools packets draw their flow from."""
    n_flows = max(64, min(MAX_FLOWS, packets // 8))
    rows: list[dict] = []
    pools: dict[str, np.ndarray] = {}
    for kind, share in KIND_SHARES.items():
        count = max(1, round(n_flows * share))
        first = len(rows) // 2
        for _ in range(count):
            rows.extend(_flow_rows(kind, rng))
        pools[kind] = np.arange(first, first + count)
    max_len = max(len(r["bytes"]) for r in rows)
    data = np.zeros((len(rows), max_len), dtype=np.uint8)
    for i, r in enumerate(rows):
        data[i, : len(r["bytes"])] = np.frombuffer(r["bytes"], dtype=np.uint8)

    def col(name: str) -> np.ndarray:
        return np.array([r[name] for r in rows], dtype=np.int64)

    templates = Templates(
        data=data,
        length=np.array([len(r["bytes"]) for r in rows], dtype=np.int64),
        ip4=col("ip4"), ip6=col("ip6"), tcp=col("tcp"), udp=col("udp"),
        ip4_sum=col("ip4_sum"), max_extra=col("max_extra"),
        size_mode_p=np.array([r["modes"] for r in rows], dtype=np.float64),
    )  # fmt: skip
    return templates, pools


def _choose_rows(rng: np.random.Generator, n: int, pools: dict) -> np.ndarray:
    """Pick a template row per packet: kind by share, flow by a skewed (Zipf-like) weight.

    The skew gives a few heavy flows and a long tail, like real traffic, so flows repeat.
    """
    kinds = list(pools)
    shares = np.array([KIND_SHARES[k] for k in kinds])
    kind_idx = rng.choice(len(kinds), size=n, p=shares / shares.sum())
    flow = np.empty(n, dtype=np.int64)
    for k, kind in enumerate(kinds):
        mask = kind_idx == k
        pool = pools[kind]
        weights = 1.0 / (np.arange(len(pool)) + 3.0)
        flow[mask] = pool[rng.choice(len(pool), size=int(mask.sum()), p=weights / weights.sum())]
    direction = (rng.random(n) < 0.5).astype(np.int64)
    return flow * 2 + direction


def _payload_sizes(rng: np.random.Generator, rows: np.ndarray, t: Templates) -> np.ndarray:
    """Bytes after the template per packet, drawn from the row's size-mode mixture."""
    n = len(rows)
    max_extra = t.max_extra[rows]
    cum = np.cumsum(t.size_mode_p[rows], axis=1)
    mode = (rng.random(n)[:, None] > cum).sum(axis=1)
    uniform = (rng.random(n) * (max_extra + 1)).astype(np.int64)
    small = rng.integers(0, SMALL_PAYLOAD_MAX + 1, size=n)
    extra = np.choose(np.minimum(mode, 3), [np.zeros(n, dtype=np.int64), max_extra, small, uniform])
    return np.minimum(extra, max_extra)


def _put(buf: np.ndarray, pos: np.ndarray, values: np.ndarray, limit: np.ndarray) -> None:
    """Write ``values`` (n, k) at ``pos`` (n,), clipped to each packet's captured end ``limit``.

    Clipping is what lets one code path serve any snaplen: a field past the cut is just not
    written, exactly as a capture would have lost it.
    """
    if len(pos) == 0:
        return
    idx = pos[:, None] + np.arange(values.shape[1])
    keep = idx < limit[:, None]
    buf[idx[keep]] = values[keep]


def _be(values: np.ndarray, width: int) -> np.ndarray:
    """Big-endian byte columns (n, width) of integer values."""
    shifts = np.arange(width - 1, -1, -1) * 8
    return ((values[:, None] >> shifts) & 0xFF).astype(np.uint8)


class ChunkState:
    """What carries over between chunks so chunking never shows in the output."""

    def __init__(self, rows: int, start_ns: int) -> None:
        self.ts_ns = start_ns
        self.seq_offset = np.zeros(rows, dtype=np.int64)


def _tcp_seq(rows: np.ndarray, extra: np.ndarray, state: ChunkState) -> np.ndarray:
    """Sequence offsets that advance by the bytes each flow direction already sent."""
    order = np.argsort(rows, kind="stable")
    sorted_rows, sorted_len = rows[order], extra[order]
    cum = np.cumsum(sorted_len) - sorted_len  # exclusive prefix sum over the whole chunk
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_rows)) + 1]
    group_base = np.repeat(cum[starts], np.diff(np.r_[starts, len(rows)]))
    offsets = np.empty(len(rows), dtype=np.int64)
    offsets[order] = cum - group_base + state.seq_offset[sorted_rows]
    np.add.at(state.seq_offset, rows, extra)
    return offsets


def assemble_chunk(
    rng: np.random.Generator,
    n: int,
    t: Templates,
    pools: dict,
    state: ChunkState,
    gap_ns: float,
    nano: bool,
    snaplen: int,
) -> np.ndarray:
    """Assemble ``n`` pcap records (record header + frame) into one uint8 buffer."""
    rows = _choose_rows(rng, n, pools)
    extra = _payload_sizes(rng, rows, t)
    hdr_len = t.length[rows]
    wirelen = np.maximum(ETH_MIN_FRAME_BYTES, hdr_len + extra)
    caplen = np.minimum(wirelen, snaplen)
    rec_off = np.cumsum(RECORD_HEADER_LEN + caplen) - (RECORD_HEADER_LEN + caplen)
    frame = rec_off + RECORD_HEADER_LEN
    limit = frame + caplen
    total = int(rec_off[-1] + RECORD_HEADER_LEN + caplen[-1])
    buf = np.frombuffer(bytearray(rng.bytes(total)), dtype=np.uint8)

    gaps = np.floor(rng.exponential(gap_ns, size=n)).astype(np.int64)
    ts = state.ts_ns + np.cumsum(gaps) - gaps  # the first packet is at start_ns exactly
    state.ts_ns = int(ts[-1] + gaps[-1])
    rec = np.empty(n, dtype=[("sec", "<u4"), ("frac", "<u4"), ("incl", "<u4"), ("orig", "<u4")])
    rec["sec"] = ts // 10**9
    rec["frac"] = ts % 10**9 if nano else (ts % 10**9) // 1000
    rec["incl"], rec["orig"] = caplen, wirelen
    _put(buf, rec_off, rec.view(np.uint8).reshape(n, RECORD_HEADER_LEN), limit)

    for length in np.unique(hdr_len):  # templates of one length scatter as one block
        sel = np.flatnonzero(hdr_len == length)
        _put(buf, frame[sel], t.data[rows[sel], :length], limit[sel])

    pad = wirelen - hdr_len - extra  # Ethernet padding of short frames: zeros, as NICs send
    for k in range(int(pad.max())):
        sel = np.flatnonzero(pad > k)
        _put(buf, frame[sel] + wirelen[sel] - 1 - k, np.zeros((len(sel), 1), np.uint8), limit[sel])

    _patch_fields(buf, rng, rows, t, frame, limit, hdr_len + extra, extra, state)
    return buf


def _patch_fields(
    buf: np.ndarray,
    rng: np.random.Generator,
    rows: np.ndarray,
    t: Templates,
    frame: np.ndarray,
    limit: np.ndarray,
    l3_len: np.ndarray,
    extra: np.ndarray,
    state: ChunkState,
) -> None:
    """Patch the per-packet header fields, one numpy column per field.

    ``l3_len`` is the frame length up to the end of the IP datagram, i.e. before any Ethernet
    padding, which is what the IP and UDP length fields must count.
    """
    ip_id = rng.integers(0, 65536, size=len(rows))
    sel = np.flatnonzero(t.ip4[rows] >= 0)
    if len(sel):
        off = t.ip4[rows[sel]]
        tot = l3_len[sel] - off
        csum = t.ip4_sum[rows[sel]] + tot + ip_id[sel]
        csum = (csum & 0xFFFF) + (csum >> 16)
        csum = ~((csum & 0xFFFF) + (csum >> 16)) & 0xFFFF
        _put(buf, frame[sel] + off + 2, _be(tot, 2), limit[sel])
        _put(buf, frame[sel] + off + 4, _be(ip_id[sel], 2), limit[sel])
        _put(buf, frame[sel] + off + 10, _be(csum, 2), limit[sel])
    sel = np.flatnonzero(t.ip6[rows] >= 0)
    if len(sel):
        off = t.ip6[rows[sel]]
        _put(buf, frame[sel] + off + 4, _be(l3_len[sel] - off - 40, 2), limit[sel])
    sel = np.flatnonzero(t.udp[rows] >= 0)
    if len(sel):
        off = t.udp[rows[sel]]
        _put(buf, frame[sel] + off + 4, _be(l3_len[sel] - off, 2), limit[sel])
    sel = np.flatnonzero(t.tcp[rows] >= 0)
    if len(sel):
        off, r = t.tcp[rows[sel]], rows[sel]
        seq = (_tcp_seq0(t, r, off) + _tcp_seq(r, extra[sel], state)) & 0xFFFFFFFF
        _put(buf, frame[sel] + off + 4, _be(seq, 4), limit[sel])
        flags = np.where(extra[sel] > 0, 0x18, 0x10)  # PSH|ACK with data, a bare ACK without
        _put(buf, frame[sel] + off + 13, flags.astype(np.uint8)[:, None], limit[sel])


def _tcp_seq0(t: Templates, rows: np.ndarray, off: np.ndarray) -> np.ndarray:
    """The initial sequence number stored in each row's TCP template."""
    cols = off[:, None] + np.arange(4)
    octets = t.data[rows[:, None], cols].astype(np.int64)
    return (octets[:, 0] << 24) | (octets[:, 1] << 16) | (octets[:, 2] << 8) | octets[:, 3]
