"""Settings shared by every scenario of tools/bench.py: sizes, rates, time limits, goals.

The numbers that decide what is measured (trace sizes, repetitions, the M1 bound and its goal,
the L1 rates, the T1 stream and its goal) stand here together, so a reader sees at once what a
run of `make bench` compares. The two values `main()` sets from the command line, CHILD_ENV and
L1_TCPDUMP_ARGS, also live here: the scenario modules read them as `config.NAME` at the time
they run, so what main() sets is what every module sees (an imported copy of the name would
not follow a rebinding).
"""

from __future__ import annotations

ALL_SCENARIOS = ("R1", "R2", "R4", "M1", "L1", "L2", "L3", "T1", "P1", "Q1", "I1", "T2")
DEFAULT_SCENARIOS = ("R1", "R2", "R4", "M1", "L1", "L2", "L3", "T1", "P1", "Q1", "I1", "T2")
# Q1 (issue 20): the archive queried for one host. Issue 20 sizes it at 10M packets (~5 GB,
# `--q1-packets 10000000`); the default keeps `make bench` within minutes on 2 cores.
Q1_PACKETS = 2_000_000
DEFAULT_REPLAY_PACKETS = 1_000_000
QUICK_PACKETS = 2_000
# Each replay scenario also runs both tools on a trace this small: what a run costs before its
# first packet (interpreter start-up, imports, opening files). Subtracting it gives the cost per
# packet that issue 7 is about, apart from the one-off start that a daemon pays once.
FIXED_PACKETS = 1_000
# Seven: on the VM of issue 7 about one run in five of either tool, at random, cost 1.5-3.5x
# its usual CPU (the host backing guest memory; priming, see measure.prime_pages, does not
# always prevent it). The median of five moved by up to 0.15x when two landed on one side.
DEFAULT_REPS = 7
SPLIT = "--split-time 60e9"
MIB = 1024 * 1024
MB = 1_000_000
M1_BOUND_BYTES = 256 * MIB
M1_QUICK_BOUND_BYTES = 256 * 1024
M1_BASE_ALLOWANCE_BYTES = 100 * MB
M1_FACTOR = 1.10
L1_TRACE_PACKETS = 200_000
L1_RATES_PPS = (25_000, 50_000, 100_000, 200_000, 400_000, 600_000, 800_000, 1_000_000, 1_200_000,
                1_500_000)
L1_STEP_S = 3.0  # how long each rate is sent (whole loops of the L1 trace, at least one)
L1_DRAIN_S = 1.0  # after the sender ends, before the capture is stopped
L1_TRIES = 2  # captures per tool at a rate before it counts as lossy there (see bench_l1)
L1_RING_BYTES = 256 * MIB  # pushcap's default ring bound (what L1's daemon runs with)
# L2 (issue 19): CPU per packet at fixed rates; each rate sends whole loops of the L1 trace.
L2_RATES_PPS = (100_000, 300_000, 600_000)
L2_PACKETS_PER_RATE = 2_000_000
L2_REPS = 3  # runs of each tool per rate (one run moved by up to 30% between runs)
L2_DRAIN_S = 1.0  # after the sender ends, before the CPU is read
L2_WARMUP_LOOPS = 2  # trace loops sent first, unmeasured: pushcap's ring filled once (256 MiB)
L2_KERNEL_BUFFER_BYTES = 64 * MIB  # pushcap's default kernel buffer, given to every tool
# L3 (issue 19): a quiet link, pushcap and tcpdump capturing the same veth at once.
L3_RATE_PPS = 10_000
L3_TRACE_PACKETS = 50_000  # 5 s a loop at L3_RATE_PPS
L3_LOOPS = 12  # measured: 60 s
L3_QUICK_LOOPS = 1
L3_REPS = 3
L3_RING_BYTES = 32 * MIB  # full within the warm-up (~57 MB), as a daemon's ring is after a while
SAMPLE_INTERVAL_S = 0.02
PCAP_HEADER_BYTES = 24
RECORD_HEADER_BYTES = 16
STARTED_TIMEOUT_S = 20.0
LIVE_TCP_EQUIVALENT = "tcp or (vlan and tcp)"  # what live tcpdump's "tcp" selects (see bench_l1)
T1_FILL_S = 60.0  # seconds of traffic in the ring before the first request (issue 7)
T1_QUICK_FILL_S = 2.0
T1_RATE_PPS = 2_000  # the steady UDP stream on lo that fills the ring
T1_PAYLOAD_BYTES = 100  # UDP payload: 142-byte frames on lo
T1_REQUESTS = 30  # per series (the issue asks for at least 20)
T1_QUICK_REQUESTS = 3
T1_BEFORE_S = 10.0
T1_LOOKBACK_SHARE = 0.8  # lookback series: `packets` = this share of what `before` holds
T1_LIVE_S = 0.25  # live series: `packets` = all of `before` plus this much live traffic
T1_GAP_S = 0.2  # between requests, plus up to T1_GAP_JITTER_S (seeded): with a fixed gap the
# requests lock to a phase of the kernel's 100 ms block timer (libpcap's timeout), and the live
# series' figures land on 295, 345 or 395 ms by that phase, not by pushcap's work
T1_GAP_JITTER_S = 0.1
T1_RESULT_WAIT_S = 15.0
T1_GOAL_P99_S = 0.5
# T2 (issue 20): a trigger with `before = 3600` served from an hour of indexed archive and a
# 60 s ring, for the host closest to 0.1% of the archive's packets (Q1's pick); goal under 2 s.
T2_SPAN_S = 3600
T2_PACKETS = 2_000_000  # the hour's packets (556/s, ~1.1 GB in 60 one-minute files)
T2_QUICK_PACKETS = 20_000
T2_RING_S = 60.0  # `[ring] max_seconds`, filled with T1's stream before the first request
T2_REQUESTS = 5
T2_QUICK_REQUESTS = 2
T2_RESULT_WAIT_S = 60.0
T2_GOAL_S = 2.0


# Environment of every pushcap child: `--pushcap-src DIR` puts another checkout (e.g. a
# `git archive` of a commit) first on PYTHONPATH, so a given version can be measured while the
# working tree changes.
CHILD_ENV: dict[str, str] | None = None

# P1 runs the console script of a pip-installed wheel instead of the checkout's module.
PUSHCAP_COMMAND: list[str] | None = None


# Extra tcpdump options for L1 (`--l1-tcpdump-args "-B 65536"` gives it pushcap's 64 MiB kernel
# buffer); empty = tcpdump's defaults, what an operator would type.
L1_TCPDUMP_ARGS: list[str] = []
