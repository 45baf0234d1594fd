"""Every default in one place, each with its unit in the name."""

RING_MAX_SECONDS = 60.0
RING_MAX_BYTES = 256 * 1024 * 1024
BATCH_PACKETS = 8192
MAX_BATCH_PACKETS = 1 << 20  # a batch's per-packet arrays are sized for this many up front
POLL_TIMEOUT_MS = 100
# libpcap's kernel buffer per interface (tcpdump -B): what absorbs the capture thread's pauses.
# 64 MiB is ~0.15 s at 800k packets/s of 566-byte packets; the upper bound keeps it under
# libpcap's int and under what a mistyped value could lock away in kernel memory.
KERNEL_BUFFER_BYTES = 64 * 1024 * 1024
KERNEL_BUFFER_MAX_BYTES = 1 << 30
COALESCE_MS = 5  # a live batch of fewer than BATCH_PACKETS / 4 waits this long for more packets
LIVE_SNAPLEN_BYTES = 262144  # capture whole packets; truncation is an output choice, not capture's

FLOWS_INTERVAL_S = 20.0  # tcpdump-aggregator's default interval

DEFAULT_SPLIT = "--split-time 60e9"
DEFAULT_FILENAME = "--filename-epoch-sec-startend"

LUA_MAX_SECONDS = 2.0  # run time allowed to evaluate push_realtime.lua
LUA_MAX_MEMORY_BYTES = 32 * 1024 * 1024

TIME_SPLIT_GRACE_S = 1.0  # wall-clock wait after a window ends before closing it on a quiet link
SHUTDOWN_TIMEOUT_S = 30.0
SHIPPER_CLOSE_TIMEOUT_S = 10.0  # at shutdown, per series: finish uploads or leave them spooled

STATUS_HOST = "127.0.0.1"  # [status]: loopback HTTP for `pushcap status` and /metrics
STATUS_PORT = 9107  # 0 turns the endpoint off
# A target whose last write or finish error is younger than this counts as failing in
# `pushcap status` (its exit code) and /status; an upload queue fails until an upload succeeds.
FAILING_WINDOW_S = 60.0
ERROR_LOG_INTERVAL_S = 10.0  # a failing target logs its error at most this often
PUSH_POLL_S = 0.2  # how long a push thread waits for its ring before ticking its targets
