"""Flow statistics: 5-tuple counters per interval, sent as tcpdump-aggregator JSON over UDP.

decode (headers of a batch, numpy) -> aggregate (per-interval table, numpy) -> target
(interval clock, records) -> export (JSON lines in MTU-sized datagrams); resolve keeps reverse
DNS off the packet path; command is `pushcap flows`.
"""
