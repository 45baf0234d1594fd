"""Who is asking: the local user behind a loopback TCP connection to the status endpoint.

The status endpoint is plain HTTP on loopback (Stenographer puts client certificates on its
query port; pushcap has no PKI to lean on). Status and metrics are harmless to any local user,
but `POST /query` hands out packets the archive's file permissions may deny that user. The
kernel knows which user owns the other end of a loopback connection: its socket is a line of
/proc/net/tcp (or tcp6) whose local address is our peer's and whose remote address is ours,
with the owner's uid in it, as identd answered the same question. A query is served only to
root and to the daemon's own user; anyone else is declined and their client reads the files
itself, with its own permissions.
"""

from __future__ import annotations

import ipaddress
import os

PROC_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


def _proc_endpoint(host: str, port: int) -> str:
    """`host:port` as /proc/net/tcp* spell it: the address bytes as native-endian 32-bit words
    in hex (little-endian here), the port in big hex."""
    packed = ipaddress.ip_address(host).packed
    words = [packed[i:i + 4] for i in range(0, len(packed), 4)]
    text = "".join(int.from_bytes(word, "little").to_bytes(4, "big").hex().upper()
                   for word in words)
    return f"{text}:{port:04X}"


def _candidates(host: str, port: int) -> list[str]:
    """The spellings a loopback endpoint may have: IPv4 in tcp, and in tcp6 either native or
    IPv4-mapped (a dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d)."""
    address = ipaddress.ip_address(host)
    spellings = [_proc_endpoint(host, port)]
    if address.version == 4:
        spellings.append(_proc_endpoint(f"::ffff:{host}", port))
    elif address.ipv4_mapped is not None:
        spellings.append(_proc_endpoint(str(address.ipv4_mapped), port))
    return spellings


def loopback_peer_uid(peer: tuple, local: tuple) -> int | None:
    """The uid owning the client socket `peer` connected to our `local` socket, or None when
    the peer is not on this host: a remote client's socket is in no table of ours."""
    theirs = set(_candidates(peer[0], peer[1]))
    ours = set(_candidates(local[0], local[1]))
    for table in PROC_TABLES:
        try:
            with open(table, encoding="ascii") as lines:
                next(lines, None)
                for line in lines:
                    fields = line.split()
                    if len(fields) > 7 and fields[1] in theirs and fields[2] in ours:
                        return int(fields[7])
        except OSError:
            continue
    return None


def may_query(peer: tuple, local: tuple) -> tuple[bool, str]:
    """Whether the connection's user may read the archive through the daemon, and why not."""
    uid = loopback_peer_uid(peer, local)
    own = os.geteuid()
    if uid is None:
        return False, "the daemon serves queries to local users only"
    if uid in (0, own):
        return True, ""
    return False, (f"the daemon serves queries to root and its own user (uid {own}), "
                   f"not uid {uid}")
