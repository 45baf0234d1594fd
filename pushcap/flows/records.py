"""One interval's flows as the tcpdump-aggregator's JSON records.

A record has the aggregator's keys in its order and its types (export.py sends them as they
are): addresses as text, `type` as the aggregator names protocols, hosts from the resolver
(which never waits: an IP until its name is known), and Datadog's fields where a target has
its ranges. The loop runs per flow, never per packet: an interval holds at most `max_flows`.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from pushcap.flows.aggregate import Flows, unpack_keys
from pushcap.flows.export import DatadogRanges

PROTO_NAMES = {1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP", 41: "IPv6", 47: "GRE", 50: "ESP",
               51: "AH", 58: "ICMPv6", 89: "OSPF", 103: "PIM", 112: "VRRP", 132: "SCTP"}


def proto_name(proto: int) -> str:
    """`type` of a record: the aggregator's TCP/UDP, a well-known name, else the number."""
    return PROTO_NAMES.get(proto, str(proto))


def flow_records(flows: Flows, stamp: str, name: Callable[[str], str],
                 datadog: DatadogRanges | None) -> list[dict]:
    """The aggregator's records for one interval stamped `stamp`, hosts named by `name`."""
    keys = unpack_keys(flows.keys)
    family = keys["family"].tolist()
    src, dst = keys["src"], keys["dst"]
    sport, dport = keys["sport"].tolist(), keys["dport"].tolist()
    proto = keys["proto"].tolist()
    count, length = flows.count.tolist(), flows.length.tolist()
    out = []
    for i, fam in enumerate(family):
        if fam == 4:
            s = socket.inet_ntop(socket.AF_INET, src[i, :4].tobytes())
            d = socket.inet_ntop(socket.AF_INET, dst[i, :4].tobytes())
        else:
            s = socket.inet_ntop(socket.AF_INET6, src[i].tobytes())
            d = socket.inet_ntop(socket.AF_INET6, dst[i].tobytes())
        record = {"source_IP": s, "source_PORT": sport[i], "target_IP": d,
                  "target_PORT": dport[i], "type": proto_name(proto[i]), "count": count[i],
                  "length": length[i], "source_HOST": name(s), "target_HOST": name(d),
                  "time": stamp}
        if datadog is not None:
            datadog.annotate(record)
        out.append(record)
    return out
