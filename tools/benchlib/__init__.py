"""The scenarios of tools/bench.py, one module each, and what they share.

- config: the numbers every scenario uses, and the two settings main() takes from the command
  line (CHILD_ENV, L1_TCPDUMP_ARGS), read as `config.NAME` so every module sees them.
- measure: one child's wall time, CPU time and peak memory; medians and ratios.
- inputs: seeded traces, push_realtime.lua files, pushcap's command line.
- replay: R1, R2, R4 (pushcap replay vs `tcpdump -r`).
- memory: M1 (ring memory vs its byte bound, in a child re-executed with `--m1-child`).
- live: L1 (live capture on a veth pair at rising rates).
- trigger: T1 (trigger latency through redis).
- report: machine and source description, the table.

tools/ is not a package: this one is imported as `benchlib` with tools/ on sys.path, the way
tools/bench.py does it.
"""
