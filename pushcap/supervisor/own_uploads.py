"""Targets that capture their own uploads, said once at start.

An rclone target's uploads leave through some interface. A target capturing that interface with
a filter that selects them writes the uploads into its own files, which then grow with every
upload and never catch up (6x each file in issue 17, and nothing warned). Where pushcap can see
it, it says so: the remote's host and port come from its settings (push/rclone_endpoint.py),
the interface from the kernel's route to it (`ip route get`; a local address is `lo`), and
whether a target selects the traffic from its own compiled filter, run on two packets of a TCP
connection to the remote, one each way. One `event=captures_own_uploads` warning per capturing
target, interface and uploading target; nothing is changed. Host names and ports are all it
logs of a remote: never an option value (credentials).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import struct
import subprocess
import threading

from pushcap import defaults
from pushcap.capture.bpf import BpfError, compile_shared
from pushcap.config.model import ConfigError, DaemonConfig, PushMode, TargetConfig
from pushcap.config.rclone_settings import parse_settings
from pushcap.config.secrets import scrub
from pushcap.push.rclone_endpoint import remote_endpoint
from pushcap.supervisor.consumers import interfaces_of

log = logging.getLogger("pushcap.supervisor.own_uploads")

LINK_HEADERS = {  # LINKTYPE_* -> (header before the IP packet, where its ethertype goes)
    1: (b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x00\x00", 12),  # Ethernet
    101: (b"", None),  # raw IP
    113: (b"\x00\x04\x00\x01\x00\x06\x02\x00\x00\x00\x00\x01\x00\x00\x00\x00", 14),  # SLL
    276: (b"\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01\x04\x06\x02\x00\x00\x00\x00\x01\x00\x00",
          0),  # SLL2
}
LOCAL_PORT = 40000  # the uploads' own side of the synthetic connection
_DEV = re.compile(r"\bdev (\S+)")
_SRC = re.compile(r"\bsrc (\S+)")


def check_own_uploads(targets: tuple[TargetConfig, ...], config: DaemonConfig,
                      linktypes: dict[str, int]) -> list[tuple[str, str, str]]:
    """Warn, once, about every target that would capture an rclone target's uploads;
    (capturing Desc, interface, uploading Desc) of each. `linktypes`: each captured
    interface's link type."""
    settings = parse_settings(config.rclone)
    found = []
    for uploader in targets:
        if uploader.mode is not PushMode.RCLONE:
            continue
        endpoint = remote_endpoint(uploader.path, settings)
        if endpoint is None:
            log.debug("event=own_uploads_unknown target=%s (its remote names no host)",
                      uploader.desc_log)
            continue
        host, port = endpoint
        for address in resolve(host):
            route = route_to(address)
            if route is None or route[0] not in linktypes:
                continue
            interface, source = route
            packets = tcp_packets(linktypes[interface], source, address, port)
            for target in targets:
                if target.mode is PushMode.FLOWS or not _reads(target, interface, config) \
                        or not selects(target, linktypes[interface], packets):
                    continue
                found.append((target.desc, interface, uploader.desc))
                log.warning("event=captures_own_uploads target=%s interface=%s remote=%s "
                            "port=%d address=%s uploads_of=%s (its files hold %s's uploads "
                            "and grow with each one; leave them out, e.g. FilterBPF = \"... "
                            "and not (host %s and tcp port %d)\")", target.desc_log, interface,
                            scrub(host), port, address, uploader.desc_log, uploader.desc,
                            address, port)
            break  # one address per remote: the first routed through a captured interface
    return found


def start_check(targets: tuple[TargetConfig, ...], config: DaemonConfig,
                linktypes: dict[str, int]) -> None:
    """`check_own_uploads` on a thread of its own: a name lookup never delays the start."""
    def run() -> None:
        try:
            check_own_uploads(targets, config, linktypes)
        except Exception:  # noqa: BLE001 - a warning's check must never stop the daemon
            log.exception("event=own_uploads_check_failed")

    if any(t.mode is PushMode.RCLONE for t in targets):
        threading.Thread(target=run, name="own-uploads-check", daemon=True).start()


def _reads(target: TargetConfig, interface: str, config: DaemonConfig) -> bool:
    try:
        return interface in interfaces_of(target, config)
    except ConfigError:
        return False


def resolve(host: str) -> list[str]:
    """The addresses of `host` (itself when it is one), within OWN_UPLOADS_DNS_TIMEOUT_S."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    answer: list[str] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
            answer.extend(dict.fromkeys(str(info[4][0]) for info in infos))
        except OSError:
            pass

    thread = threading.Thread(target=lookup, daemon=True, name="own-uploads-dns")
    thread.start()
    thread.join(defaults.OWN_UPLOADS_DNS_TIMEOUT_S)
    return list(answer)


def route_to(address: str) -> tuple[str, str] | None:
    """(interface, source address) the kernel sends packets to `address` through."""
    try:
        out = subprocess.run(["ip", "-o", "route", "get", address], capture_output=True,
                             text=True, timeout=defaults.OWN_UPLOADS_ROUTE_TIMEOUT_S).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    dev, src = _DEV.search(out), _SRC.search(out)
    if dev:
        return dev[1], src[1] if src else address
    return ("lo", address) if ipaddress.ip_address(address).is_loopback else None


def tcp_packets(linktype: int, source: str, remote: str, port: int) -> list[bytes]:
    """Two packets of a TCP connection from `source` to `remote`:`port` as the interface
    carries them: data to the remote, and its answer."""
    if linktype not in LINK_HEADERS:
        return []
    header, type_at = LINK_HEADERS[linktype]
    payload = b"x" * 64
    packets = []
    for src, dst, sport, dport in ((source, remote, LOCAL_PORT, port),
                                   (remote, source, port, LOCAL_PORT)):
        tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 1, 5 << 4, 0x18, 65535, 0, 0)
        ip = _ip_header(src, dst, len(tcp) + len(payload))
        link = bytearray(header)
        if type_at is not None:
            link[type_at:type_at + 2] = (0x86DD if ip[0] >> 4 == 6 else 0x0800).to_bytes(2, "big")
        packets.append(bytes(link) + ip + tcp + payload)
    return packets


def _ip_header(src: str, dst: str, length: int) -> bytes:
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if a.version == 6 or b.version == 6:
        a, b = (ipaddress.IPv6Address(f"::ffff:{x}") if x.version == 4 else x for x in (a, b))
        return struct.pack("!IHBB", 6 << 28, length, 6, 64) + a.packed + b.packed
    return struct.pack("!BBHHHBBH", 0x45, 0, 20 + length, 0, 0x4000, 64, 6, 0) \
        + a.packed + b.packed


def selects(target: TargetConfig, linktype: int, packets: list[bytes]) -> bool:
    """Whether the target's filter takes either packet (no filter: every packet). Without
    packets (a link type this cannot build) only a target without a filter counts."""
    if target.filter_bpf is None:
        return True
    if not packets:
        return False
    try:
        bpf = compile_shared(target.filter_bpf, linktype, defaults.MAX_SNAPLEN_BYTES)
    except BpfError:
        return False
    import numpy as np

    lengths = np.array([len(p) for p in packets], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    return bool(bpf.match_arrays(b"".join(packets), offsets, lengths, lengths).any())
