"""Flow statistics: 5-tuple counters per interval, sent as tcpdump-aggregator JSON over UDP.

native_table (headers of a batch decoded and counted into the interval's table, one C call,
csrc/flowcount.c) or, where the C library is not built, decode + aggregate (the same with
numpy) -> target (interval clock) -> interval_sender + records (an ended interval as
tcpdump-aggregator's records) -> export (JSON lines in MTU-sized datagrams);
resolve keeps reverse DNS off the packet path; command is `pushcap flows`.
"""
