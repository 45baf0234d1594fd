"""Encapsulated packets for the Decap tests, built here with struct from the RFCs' header layouts:
each outer packet comes with the inner frame a decapsulating filter must see, made by this module
(not by pushcap's walk), so tcpdump run on the inner frames is the oracle.

An inner frame is always an Ethernet frame: a tunnel carrying Ethernet (VXLAN, Geneve, GRE's
transparent bridging, ERSPAN, an MPLS pseudowire) gives that frame with its own tags removed;
one carrying IP (MPLS, GRE, IP in IP) gives the outer frame's MAC addresses, the IP version's
ethertype and the IP packet.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

OUTER_DST, OUTER_SRC = bytes.fromhex("0a0000000001"), bytes.fromhex("0a0000000002")
INNER_MACS = [bytes.fromhex(h) for h in ("020000000001", "020000000002", "00155d000003")]
HOSTS4 = ["10.0.0.1", "10.0.0.2", "192.168.7.9"]
HOSTS6 = ["2001:db8::1", "2001:db8::2"]
PORTS = [53, 80, 443, 8080]  # not 4789 or 6081: a payload there would read as a tunnel


def ip4(text: str) -> bytes:
    return bytes(int(x) for x in text.split("."))


def ip6(text: str) -> bytes:
    import ipaddress

    return ipaddress.IPv6Address(text).packed


def eth(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def ipv4(src: str, dst: str, proto: int, payload: bytes, ttl: int = 64) -> bytes:
    return struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(payload), 1, 0x4000, ttl, proto, 0) \
        + ip4(src) + ip4(dst) + payload


def ipv6(src: str, dst: str, next_header: int, payload: bytes) -> bytes:
    return struct.pack("!IHBB", 6 << 28, len(payload), next_header, 64) + ip6(src) + ip6(dst) \
        + payload


def tcp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x18, 512, 0, 0) + payload


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp() -> bytes:
    return struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"ping" * 8


def arp(src: str, dst: str) -> bytes:
    return struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + INNER_MACS[0] + ip4(src) + b"\0" * 6 \
        + ip4(dst)


def inner_frames(rng: np.random.Generator, n: int) -> list[bytes]:
    """Plain Ethernet frames of several kinds, hosts and ports (payload sizes vary)."""
    frames = []
    for _ in range(n):
        dst, src = (INNER_MACS[int(i)] for i in rng.choice(len(INNER_MACS), 2, replace=False))
        a, b = (HOSTS4[int(i)] for i in rng.choice(len(HOSTS4), 2, replace=False))
        sport, dport = int(rng.integers(1024, 65535)), PORTS[int(rng.integers(len(PORTS)))]
        data = bytes(rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8))
        kind = int(rng.integers(6))
        if kind == 0:
            frames.append(eth(dst, src, 0x0800, ipv4(a, b, 6, tcp(sport, dport, data))))
        elif kind == 1:
            frames.append(eth(dst, src, 0x0800, ipv4(a, b, 17, udp(sport, dport, data))))
        elif kind == 2:
            frames.append(eth(dst, src, 0x0800, ipv4(a, b, 1, icmp())))
        elif kind == 3:
            frames.append(eth(dst, src, 0x86DD, ipv6(HOSTS6[0], HOSTS6[1], 6,
                                                     tcp(sport, dport, data))))
        elif kind == 4:
            frames.append(eth(dst, src, 0x86DD, ipv6(HOSTS6[1], HOSTS6[0], 17,
                                                     udp(sport, dport, data))))
        else:
            frames.append(eth(dst, src, 0x0806, arp(a, b)))
    return frames


# --- encapsulations: inner Ethernet frame -> (outer packet, the frame the filter must see) ------


def _ip_of(frame: bytes) -> tuple[int, bytes] | None:
    """(ethertype, IP packet) of a plain IPv4/IPv6 frame, None for others (ARP)."""
    ethertype = struct.unpack("!H", frame[12:14])[0]
    return (ethertype, frame[14:]) if ethertype in (0x0800, 0x86DD) else None


def _as_ip_inner(frame: bytes) -> bytes | None:
    """What a tunnel carrying IP shows: the outer MACs, the ethertype, the IP packet."""
    ip = _ip_of(frame)
    return None if ip is None else eth(OUTER_DST, OUTER_SRC, ip[0], ip[1])


def vlan(frame: bytes) -> tuple[bytes, bytes]:
    return frame[:12] + struct.pack("!HH", 0x8100, 100) + frame[12:], frame


def qinq(frame: bytes) -> tuple[bytes, bytes]:
    return frame[:12] + struct.pack("!HHHH", 0x88A8, 200, 0x8100, 300) + frame[12:], frame


def mpls_ip(frame: bytes) -> tuple[bytes, bytes] | None:
    inner = _as_ip_inner(frame)
    if inner is None:
        return None
    labels = struct.pack("!II", 18 << 12 | 64, 16 << 12 | 1 << 8 | 64)  # two labels, BOS on 2nd
    return eth(OUTER_DST, OUTER_SRC, 0x8847, labels + frame[14:]), inner


def mpls_pseudowire(frame: bytes) -> tuple[bytes, bytes]:
    label = struct.pack("!I", 19 << 12 | 1 << 8 | 255)
    control_word = b"\0\0\0\0"
    return eth(OUTER_DST, OUTER_SRC, 0x8847, label + control_word + frame), frame


def _outer_ipv4(proto: int, payload: bytes) -> bytes:
    return eth(OUTER_DST, OUTER_SRC, 0x0800, ipv4("172.16.0.1", "172.16.0.2", proto, payload))


def gre_ip(frame: bytes) -> tuple[bytes, bytes] | None:
    inner = _as_ip_inner(frame)
    if inner is None:
        return None
    ethertype = struct.unpack("!H", frame[12:14])[0]
    return _outer_ipv4(47, struct.pack("!HH", 0, ethertype) + frame[14:]), inner


def gre_ipv6_outer(frame: bytes) -> tuple[bytes, bytes] | None:
    inner = _as_ip_inner(frame)
    if inner is None:
        return None
    ethertype = struct.unpack("!H", frame[12:14])[0]
    gre = struct.pack("!HH", 0x2000, ethertype) + struct.pack("!I", 7)  # with a key
    return eth(OUTER_DST, OUTER_SRC, 0x86DD, ipv6("2001:db8:f::1", "2001:db8:f::2", 47,
                                                  gre + frame[14:])), inner


def gre_bridged(frame: bytes) -> tuple[bytes, bytes]:
    """Transparent Ethernet bridging with checksum, key and sequence number."""
    gre = struct.pack("!HHHHII", 0xB000, 0x6558, 0, 0, 42, 1)
    return _outer_ipv4(47, gre + frame), frame


def erspan2(frame: bytes) -> tuple[bytes, bytes]:
    gre = struct.pack("!HHI", 0x1000, 0x88BE, 5)  # sequence number present: type II
    header = struct.pack("!HHI", 1 << 12 | 10, 7, 0)  # version 1, VLAN 10, session 7
    return _outer_ipv4(47, gre + header + frame), frame


def erspan3(frame: bytes, platform: bool = False) -> tuple[bytes, bytes]:
    gre = struct.pack("!HHI", 0x1000, 0x22EB, 6)
    word3 = 0  # SGT 0, P 0, FT 0 (Ethernet), HW ID 0, D 0, Gra 0, O = platform
    header = struct.pack("!HHIHH", 2 << 12 | 10, 7, 123456, 0, word3 | int(platform))
    extra = struct.pack("!II", 3 << 26, 99) if platform else b""
    return _outer_ipv4(47, gre + header + extra + frame), frame


def erspan3_platform(frame: bytes) -> tuple[bytes, bytes]:
    return erspan3(frame, platform=True)


def vxlan(frame: bytes) -> tuple[bytes, bytes]:
    header = struct.pack("!II", 0x08 << 24, 5000 << 8)
    return _outer_ipv4(17, udp(49152, 4789, header + frame)), frame


def geneve(frame: bytes) -> tuple[bytes, bytes]:
    options = struct.pack("!HBBI", 0x0102, 0x80, 1, 0xDEADBEEF)  # one 8-byte option
    header = struct.pack("!BBHI", len(options) // 4, 0, 0x6558, 77 << 8)
    return _outer_ipv4(17, udp(49152, 6081, header + options + frame)), frame


def ip_in_ip(frame: bytes) -> tuple[bytes, bytes] | None:
    inner = _as_ip_inner(frame)
    if inner is None:
        return None
    proto = 4 if frame[12:14] == b"\x08\x00" else 41
    return _outer_ipv4(proto, frame[14:]), inner


def nested(frame: bytes) -> tuple[bytes, bytes]:
    """VLAN outside, VXLAN, a VLAN-tagged frame inside: every layer comes off."""
    tagged, _ = vlan(frame)
    outer, _ = vxlan(tagged)
    return vlan(outer)[0], frame


ENCAPSULATIONS: dict[str, Callable[[bytes], tuple[bytes, bytes] | None]] = {
    "vlan": vlan, "qinq": qinq, "mpls_ip": mpls_ip, "mpls_pseudowire": mpls_pseudowire,
    "gre_ip": gre_ip, "gre_ipv6_outer": gre_ipv6_outer, "gre_bridged": gre_bridged,
    "erspan2": erspan2, "erspan3": erspan3, "erspan3_platform": erspan3_platform,
    "vxlan": vxlan, "geneve": geneve, "ip_in_ip": ip_in_ip, "nested": nested,
}


def encapsulated(name: str, seed: int, n: int = 120, plain_every: int = 4
                 ) -> tuple[list[bytes], list[bytes]]:
    """(outer packets, inner frames): `n` frames through encapsulation `name`, every
    `plain_every`-th left as it is (a batch mixes both)."""
    rng = np.random.default_rng(seed)
    outer, inner = [], []
    for i, frame in enumerate(inner_frames(rng, n)):
        made = None if plain_every and i % plain_every == 0 else ENCAPSULATIONS[name](frame)
        packet, shown = made if made is not None else (frame, frame)
        outer.append(packet)
        inner.append(shown)
    return outer, inner


def write_pcap(path: Path, packets: list[bytes], wirelen: list[int] | None = None) -> None:
    """A microsecond pcap, packet i stamped i µs after a fixed second (the oracle's key)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for i, packet in enumerate(packets):
            wire = len(packet) if wirelen is None else wirelen[i]
            f.write(struct.pack("<IIII", 1_700_000_000, i, len(packet), wire) + packet)
