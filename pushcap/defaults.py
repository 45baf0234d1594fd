"""Every default in one place, each with its unit in the name.

Also the few facts of the pcap format that more than one module needs (its magic numbers,
libpcap's largest snaplen), so that each is written once. This module imports nothing of
pushcap: it is the lowest layer.
"""

# --- pcap format facts (not settings) ---------------------------------------------------------

PCAP_MAGIC_US = 0xA1B2C3D4  # pcap file header magic, microsecond timestamps
PCAP_MAGIC_NS = 0xA1B23C4D  # pcap file header magic, nanosecond timestamps
MAX_SNAPLEN_BYTES = 262144  # libpcap's MAXIMUM_SNAPLEN: a longer record is corrupt

# --- command line -----------------------------------------------------------------------------

CONFIG_PATH = "etc/pcapdaemon.toml"  # --config of run, check, replay, trigger
PUSH_LUA_PATH = "etc/push_realtime.lua"  # --lua: the push targets
# A long command's progress line on a terminal is redrawn at most this often (it is checked once
# per batch, never per packet).
PROGRESS_INTERVAL_S = 0.25

# --- capture / ring ---------------------------------------------------------------------------

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
# A live batch gathers packets for up to this long after its first ones were read, until it
# holds BATCH_PACKETS (capture/csrc/livecap.c, live_gather): every batch costs the capture
# thread and each target's lane a fixed amount of Python, wake-ups and system calls, so a
# slower link's batches are several of the kernel's blocks long, not one (issue 19: 5 ms,
# batches of ~800 packets at 100k packets/s, 1.28 µs a packet; 50 ms, ~5,000, 1.04 µs; 100 ms
# with the gathering's naps, 8,192, and 0.1-0.3 µs less again in alternating runs; links of
# over ~160k packets/s fill a batch sooner and are unaffected). On a quiet link the batches
# stay small whatever the wait, and their fixed cost is most of the capture's: at 10k packets/s
# (paired runs beside tcpdump on one veth, session 15, ms of CPU a second) 100 ms cost 19.8-26.4
# (1.02-1.04x tcpdump's), 250 ms 17.5-24.1 (0.92-0.93x), 500 ms 16.5-22.8 (0.86-0.88x), 1000 ms
# no less; at 100k packets/s none of it changed anything. 250, not 500: what a batch holds
# while it gathers is what a crash (kill -9) loses, and 250 ms keeps that, with the poll
# timeout and a lane's write, within the half second the crash tests allow. It is also how
# late a packet may reach the ring, files and flows beyond libpcap's poll timeout
# (FLOW_GRACE_S and TIME_SPLIT_GRACE_S wait for it), unless a trigger waits for it: that one
# hurries the batch (capture/wake.py, HURRY_GAP_MS).
COALESCE_MS = 250
# Where the C capture is not built, the trickle's one wait is a sleep that reads nothing
# (live_pcapy_reader.py), so a surge meanwhile must fit the kernel buffer: it stays at the
# 100 ms it was (64 MiB hold ~0.5 s of 1 Gb/s), where the C gathering reads on as it naps.
PCAPY_COALESCE_MS = 100
LEFTOVER_NAP_MS = 50  # a failed handle's read-on (live.py): its nap when the socket has nothing
# A batch a waiting trigger hurried (capture/wake.py) ends no sooner than this after the batch
# before it: a trigger that follows a busy link waits again after every batch, and must not
# make its batches tiny (each costs a fixed amount of Python: the 5 ms batches of before issue
# 19 at worst). It replaces COALESCE_MS in how late a packet may reach the ring for a trigger.
HURRY_GAP_MS = 5
# The C capture's waits when nothing happens (capture/csrc/livecap.c, live_gather; issue 19).
# A quiet link's capture thread waits up to IDLE_WAIT_MS for a batch's first packets (stopping
# ends the wait at once; libpcap's block timer still hands over packets within the poll
# timeout): it woke every poll timeout, ten times a second for nothing. A busy link's batch
# naps GATHER_NAP_MS between reads instead of waking for each of libpcap's 256 KiB blocks, but
# never longer than a link of NAP_LINK_BYTES_PER_S takes to fill half the kernel buffer.
IDLE_WAIT_MS = 1000
DAEMON_IDLE_WAIT_S = 5.0  # the main thread's sleep between signals (they end it at once)
GATHER_NAP_MS = 25
NAP_LINK_BYTES_PER_S = 1_250_000_000  # 10 Gb/s
# A C capture read's buffer (capture/native_live.py): room for this much per packet wanted, at
# most LIVE_READ_MAX_BYTES; what a read does not fill is given back to the allocator at once.
LIVE_READ_BYTES_PER_PACKET = 1536
LIVE_READ_MAX_BYTES = 16 * 1024 * 1024
# A live batch starts a new record arena (capture/record_arena.py) unless this much is free in
# the current one; a batch that fills what is free ends there (the next starts a new arena).
LIVE_BATCH_HEADROOM_BYTES = 2 * 1024 * 1024
# capture whole packets; truncation is an output choice, not capture's
LIVE_SNAPLEN_BYTES = MAX_SNAPLEN_BYTES
CAPTURE_STATS_INTERVAL_S = 10.0  # how often a capture thread reads the kernel's drop counters
INTERFACE_POLL_S = 0.1  # while reopening waits: how often it looks whether the link is back
REOPEN_BACKOFF_MAX_S = 30.0  # longest wait between attempts to reopen a lost interface
# A failed handle is read on for up to this many poll timeouts (plus LEFTOVER_EXTRA_S) before it
# is closed: the kernel hands the block it was filling to libpcap only when the block's timer
# (the poll timeout) retires it, up to two timer runs after its first packet.
LEFTOVER_POLL_TIMEOUTS = 2
LEFTOVER_EXTRA_S = 0.1
# Reading a pcap file (--read, replay): windows of the file, grown or shrunk to the records' size.
READ_FIRST_WINDOW_BYTES = 1 << 20
READ_MIN_WINDOW_BYTES = 64 * 1024
READ_MAX_WINDOW_BYTES = 16 << 20  # above, fresh buffers cost page faults (glibc mmap threshold)
READ_DROP_BYTES = 64 << 20  # a mapped file's pages behind the reader are unmapped this many at once
WALK_CHUNK_BYTES = 1 << 20  # read and walked at a time by the native walk: stays in a core's cache
IOV_SCRATCH_KEEP_BYTES = 16 << 20  # a writev scratch file grown past this is emptied after use

# --- BPF compiles (FilterBPF and trigger `bpf` alike; config/bpf_compile.py says why) ----------

# libpcap's optimizer time grows about with the cube of the terms (300 `port N`: 3.4 s, 1,000:
# 6 min) and holds the GIL: a filter over its size or time budget is refused.
MAX_FILTER_BPF_CHARS = 8192  # a FilterBPF (a trigger's `bpf`: MAX_BPF_CHARS)
BPF_COMPILE_BUDGET_S = 10.0  # a FilterBPF, at load, reload, check and replay
TRIGGER_BPF_COMPILE_BUDGET_S = 2.0  # a trigger request's `bpf`: its publisher waits for it
# Shorter expressions compile in-process (worst found: 5 ms holding the GIL), longer ones in a
# child process that is killed at the budget (~20 ms to start).
BPF_INPROCESS_MAX_CHARS = 256
BPF_COMPILE_MAX_MEMORY_BYTES = 1 << 30  # the child's address space (a 300-term compile: 50 MB)
BPF_CACHE_ENTRIES = 1024  # compiled programs (and refusals) kept, least recently used dropped
BPF_CACHE_MAX_INSNS = 1 << 18  # their instructions, all together (~100 bytes each in Python)
TRIGGER_BPF_COMPILE_THREADS = 2  # trigger filters over BPF_INPROCESS_MAX_CHARS compiling at once

# --- push (file targets) ----------------------------------------------------------------------

DEFAULT_SPLIT = "--split-time 60e9"
DEFAULT_FILENAME = "--filename-epoch-sec-startend"
MIN_SPLIT_NS = 1_000_000  # smallest --split-time accepted
MIN_SPLIT_BYTES = 1024  # smallest --split-size accepted
MAX_STRFTIME_CHARS = 200  # longest --filename-strftime pattern accepted

# FMADIO's push fields (config/fmadio_fields.py). Decap: FMADIO's documented default ("Default
# (true)", docs.fmad.io, Automatic Push PCAP); Config.Decap or a target's Decap changes it.
DECAP_DEFAULT = True
DESC_MAX_CHARS = 200  # a Desc is any printable text up to this long
DESC_FILE_NAME_MAX_CHARS = 64  # its file-name form (push_<Desc>.log, the rclone spool folder)
# ScriptNew runs at each new file, off the packet path, one run at a time per target; a run
# still going after this long is killed (a new file while one runs is skipped and counted).
SCRIPT_NEW_TIMEOUT_S = 60.0
DECAP_SCRATCH_KEEP_BYTES = 8 << 20  # a lane keeps its Decap scratch buffers up to this size

LUA_MAX_SECONDS = 2.0  # run time allowed to evaluate push_realtime.lua
LUA_MAX_MEMORY_BYTES = 32 * 1024 * 1024
LUA_MAX_FILE_BYTES = 1024 * 1024  # a push config is a few KB; more means the wrong file
LUA_HOOK_EVERY_INSTRUCTIONS = 1000  # the Lua hook checks time and memory this often
LUA_KILL_GRACE_SECONDS = 0.5  # the evaluating process is killed this long after LUA_MAX_SECONDS
# address space that process may add to what it holds at start: Lua's own cap, the result's
# Python copy and marshal buffer (each at most about LUA_MAX_MEMORY_BYTES), the rest slack
LUA_PROCESS_EXTRA_BYTES = 512 * 1024 * 1024
LUA_CLOCK_CHECK_BYTES = 1 << 16  # source bytes scanned between two looks at the clock

# wall-clock wait after a window ends before closing it on a quiet link: longer than a quiet
# link's batch takes to reach the ring (COALESCE_MS, the poll timeout, up to ~1 s as tcpdump's)
TIME_SPLIT_GRACE_S = 1.5
SHUTDOWN_TIMEOUT_S = 30.0
SHIPPER_CLOSE_TIMEOUT_S = 10.0  # at shutdown, per series: finish uploads or leave them spooled
SHIP_CLOSE_TIMEOUT_S = 30.0  # a shipper's close() when its caller gives no timeout
WRITE_BUFFER_BYTES = 1 << 20  # a pcap file's write buffer
COMPRESS_CHUNK_BYTES = 1 << 20  # read and compressed at a time
PUSH_POLL_S = 0.2  # how long a push thread waits for its ring before ticking its targets
PUSH_QUIET_POLL_S = 2.0  # ... when none of its targets has an open file or flow interval

# --- rclone -----------------------------------------------------------------------------------

SPOOL_DIR = "out/spool"
SPOOL_MAX_BYTES = 8 * 1024**3  # queued bytes per series before the oldest files are dropped
SPOOL_NAME_MAX_BYTES = 200  # a spool entry's name; with the hidden "." of a move-in, well under 255
UPLOAD_RETRY_MIN_S = 1.0  # first wait after a failed upload; doubles per failure
UPLOAD_RETRY_MAX_S = 300.0
RCLONE_COMMAND_TIMEOUT_S = 3600.0  # one rclone command (a whole upload of one file)
# `pushcap check --probe`: each of its rclone commands (write, read back, delete ~20 bytes);
# a remote that accepts and never answers is named within this, not rclone's 60 s idle timeout.
PROBE_COMMAND_TIMEOUT_S = 15.0
PROBE_CLEANUP_TIMEOUT_S = 5.0  # deleting the probe object after the read-back failed
RCLONE_ERROR_CHARS = 400  # of rclone's error output kept in a log line or status
UPLOAD_IDLE_POLL_S = 1.0  # an empty spool is looked at again this often even without a wake-up
# Of the final basename in a temporary upload name: with our number and suffix, and the
# `.<hash>.partial` rclone adds while writing (local, sftp), under 255 bytes.
UPLOAD_TMP_BASE_BYTES = 160
UPLOAD_MAX_NAME_CONFLICTS = 20  # names lost to other writers in one attempt before it fails
UPLOAD_KILL_JOIN_S = 10.0  # how long close() waits for the thread once it killed the upload

# --- trigger / pcapdaemon ---------------------------------------------------------------------

# pcapdaemon's documented defaults (its README, the seed's flag help and its validator).
TRIGGER_MAX_PACKETS = 50_000
TRIGGER_MAX_BYTES = 100_000_000  # per capture: also the bound on one request's memory
TRIGGER_MAX_TIMEOUT_S = 3600.0
TRIGGER_MAX_DURATION_S = 3600.0
TRIGGER_TIMEOUT_S = 60.0  # a request's timeout when it gives none
TRIGGER_SNAPLEN_BYTES = 512
# -writelocal's folder: below the unit's StateDirectory, so captures outlive the service (its
# PrivateTmp would empty /tmp at every stop); created with TRIGGER_LOCAL_DIR_MODE when needed.
TRIGGER_LOCAL_DIR = "/var/lib/pushcap/captures"
TRIGGER_LOCAL_DIR_MODE = 0o750  # captures hold traffic: the service's user and group only
TRIGGER_FALLBACK_DIR = "out/trigger-fallback"  # pushcap: where a pcap goes when every upload failed
TRIGGER_MAX_CONCURRENT_CAPTURES = 8  # captures running at once
TRIGGER_MAX_QUEUED_CAPTURES = 16  # accepted captures waiting for a worker; beyond, refused
REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
REDIS_CHANNEL = "capture"
RESULTS_STREAM_MAX_ENTRIES = 10_000  # MAXLEN of the results stream
CS_HOST = "localhost"
CS_SCHEME = "https"
CS_TIMEOUT_S = 15.0  # pcapdaemon's HTTP client timeout
CS_RETRIES = 3  # further attempts after a 5xx answer or a connection error
CS_RETRY_BACKOFF_S = 1.0  # first wait between attempts; doubles each time
CS_MAX_BACKOFF_S = 30.0  # longest wait between two CloudShark attempts
# pushcap's own bounds and timings of the trigger service.
MAX_MESSAGE_BYTES = 64 * 1024  # a trigger request
MAX_BPF_CHARS = 4096
MAX_TEXT_CHARS = 1024  # any other text field of a request
WINDOW_PAST_LIMIT_S = 7 * 86400  # `start` older than this is surely a unit mistake
MAX_REGEX_CHARS = 256  # a request's node regex
MAX_REGEX_STEPS = 10_000_000  # bound on (len(node)+1) ** (repeats+1): a search that ends at once
LOGGED_MESSAGE_CHARS = 2000  # of a refused request, in the log
RESULTS_PUBLISH_RETRIES = 3
REDIS_BACKOFF_FIRST_S = 0.5  # first wait before reconnecting to Redis; doubles each time
REDIS_BACKOFF_MAX_S = 30.0
LISTENER_POLL_S = 0.5  # how often the listener looks at its stop flag while no message comes
REDIS_HEALTH_CHECK_S = 10  # a silent dead Redis connection is found within this many seconds
JOB_POLL_S = 0.2  # longest wait of a capture job on the ring before `stop` is checked again
JOB_LATE_SLACK_S = 0.1  # on top of poll + HURRY_GAP_MS: the kernel's block timer, thread scheduling
TRIGGER_WAIT_MARGIN_S = 5.0  # `pushcap trigger`: beyond capture and upload, Redis round trips...
LOCAL_REDIS_START_TIMEOUT_S = 5.0
# [s3] (pcapdaemon's keys, uploaded through rclone) and [sqs] (pcapdaemon's long polling).
S3_ENDPOINT = "s3.amazonaws.com"
S3_REGION = "us-east-1"
S3_ACL = "private"  # pcapdaemon's default ACL
S3_TIMEOUT_S = 60.0  # one rclone upload of one capture (at most maxbytes, 100 MB by default)
SQS_WAIT_S = 20  # long polling: SQS's longest wait, pcapdaemon's default
SQS_CHUNK_MESSAGES = 10  # messages per receive: SQS's largest, pcapdaemon's default
# An SQS message is invisible to other consumers while its capture runs: received with this
# visibility timeout, extended by as much again whenever half of it has passed, deleted once its
# results are published. A crashed node's messages so come back after at most this long.
SQS_VISIBILITY_S = 60
SQS_ERROR_BACKOFF_S = 5.0  # after a failed receive (queue or network down)
SQS_CALL_TIMEOUT_S = 30.0  # boto3's read timeout, above the longest long poll (20 s)
SQS_STOP_JOIN_S = 1.0  # at stop, a long poll in progress is waited for this long, no longer
# An interface of the host that [[interface]] does not list, captured live for one request.
ON_DEMAND_BUFFER_BYTES = 8 * 1024 * 1024  # its libpcap buffer
ON_DEMAND_RING_SECONDS = 10.0  # its private ring: the job reads it as it fills
ON_DEMAND_RING_BYTES = 64 * 1024 * 1024
PACKET_DEBUG_MAX_LINES = 1000  # packetdebug: packets logged per capture, then a count of the rest
# The last trigger results kept for /status and the status page (newest first), each text field
# cut to TRIGGER_RESULT_TEXT_CHARS: the page shows them, the Redis stream keeps the whole record.
TRIGGER_RECENT_RESULTS = 20
TRIGGER_RESULT_TEXT_CHARS = 300
# Bucket bounds of pushcap_trigger_latency_seconds (request received -> result published; the
# capture's own duration included, so they reach from a `before`-only capture to maxduration).
TRIGGER_LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
                             300.0, 900.0, 3600.0)

# --- flows ------------------------------------------------------------------------------------

FLOWS_INTERVAL_S = 20.0  # tcpdump-aggregator's default interval
FLOWS_INTERVAL_MIN_S = 0.1
FLOWS_INTERVAL_MAX_S = 86400.0
FLOWS_HOST = "127.0.0.1"
FLOWS_PORT = 10518  # the Datadog agent's UDP log port in the aggregator's instructions
FLOWS_MAX_DATAGRAM_BYTES = 1400  # with IP and UDP headers, fits a 1500-byte MTU: no fragments
FLOWS_MAX_UDP_PAYLOAD_BYTES = 65507  # 65535 - 20 (IPv4) - 8 (UDP): above, send() fails
FLOWS_PACK = False  # one record per datagram, as tcpdump-aggregator (and Logstash) expect
DATADOG_RANGES_MAX_BYTES = 16 * 1024 * 1024  # Datadog's ip-ranges.json is ~100 KB
FLOWS_FAILURE_LOG_INTERVAL_S = 10.0  # a failing export logs its error at most this often
# wall-clock wait after an interval ends for its last packets to arrive (a quiet link's batch
# gathers for up to COALESCE_MS, then waits for its lane): as TIME_SPLIT_GRACE_S, it covers a
# [ring] poll_timeout_ms up to ~1 s (tcpdump's) with COALESCE_MS and scheduling on top
FLOW_GRACE_S = 1.5
MAX_FLOWS = 100_000  # flows kept per interval
FLOWS_COMPACT_MIN_ROWS = 65_536  # pending per-batch rows that trigger a merge into the table
DNS_WORKER_THREADS = 4
DNS_TIMEOUT_S = 2.0
DNS_TTL_S = 300.0
DNS_NEGATIVE_TTL_S = 60.0  # how long a failed lookup is remembered
DNS_MAX_ENTRIES = 10_000
DNS_MAX_PENDING_LOOKUPS = 1_000

# --- status / service -------------------------------------------------------------------------

STATUS_HOST = "127.0.0.1"  # [status]: loopback HTTP for `pushcap status` and /metrics
STATUS_PORT = 9107  # 0 turns the endpoint off
# A target whose last write or finish error is younger than this counts as failing in
# `pushcap status` (its exit code) and /status; an upload queue fails until an upload succeeds.
FAILING_WINDOW_S = 60.0
ERROR_LOG_INTERVAL_S = 10.0  # a failing target logs its error at most this often
# At start: how long the check for targets capturing their own uploads waits for a remote's
# name to resolve, and for `ip route get` to answer (it warns; it never delays the start).
OWN_UPLOADS_DNS_TIMEOUT_S = 2.0
OWN_UPLOADS_ROUTE_TIMEOUT_S = 5.0
# [push] fstab / mount_units: where the host declares its mount points. A target whose folder
# lies below one of them writes only while it is mounted (push/mount_guard.py); checked at most
# this often while writing, every poll while waiting for the mount.
FSTAB_PATH = "/etc/fstab"
MOUNT_UNITS_DIR = "/etc/systemd/system"
MOUNT_CHECK_INTERVAL_S = 1.0
REPEAT_SIGNAL_S = 1.0  # a second stop signal later than this after the first forces the exit
SYSLOG_PRIORITY = 85  # authpriv.notice, pcapdaemon's example
SYSLOG_TAG = "pushcap"
SYSLOG_ADDRESS = "/dev/log"

# --- the archive: retention, per-file index, `pushcap query` (pushcap/archive/) ---------------

INDEX_DIR_NAME = ".pushcap-index"  # beside a target's files: hidden, never matches `<Path>_*`
INDEX_SUFFIX = ".parquet"  # `<data file name>.parquet` in INDEX_DIR_NAME
# Records per Parquet row group of an index: a query reads the row groups of the flows it
# wants, so smaller groups read less for a narrow filter and cost a little more space.
INDEX_ROW_GROUP_RECORDS = 65_536
# The most records an index feed holds (16 bytes each, more while its arrays grow, a flow id and
# the record's place: index_feed.py) for the file being written; a file with more has its index
# built from the file when it is published (one C pass over it while the page cache holds it,
# ~0.1-0.15 s CPU per 1M records on the keeper's thread), so an index costs bounded memory on
# a busy link: one-minute files at 600k packets/s would otherwise hold ~0.6-1.2 GB per feed.
INDEX_FEED_MAX_RECORDS = 4_000_000
# Finished parts whose index feeds a keeper holds until they are published (a part whose
# finishing keeps failing is published at a later start, its index then built from the file).
ARCHIVE_PENDING_FEEDS = 4
# How often a target's keeper looks again without a new file (--keep-time ages, --keep-free
# changes with other writers on the file system).
RETENTION_CHECK_INTERVAL_S = 10.0
ARCHIVE_CLOSE_TIMEOUT_S = 60.0  # at shutdown, for the indexes still to be written
QUERY_CHUNK_RECORDS = 65_536  # candidate records read, filtered and written per step
# The daemon keeps the parsed indexes of its targets' files in memory for `pushcap query`
# (6-8 bytes a packet): at most this much, the least recently used dropped first.
QUERY_INDEX_CACHE_BYTES = 256 * 1024 * 1024
# How often the daemon loads the indexes of new files and drops those of deleted ones (whose
# mapping would otherwise hold their disk space).
QUERY_CACHE_CHECK_INTERVAL_S = 2.0
QUERY_PICK_THREADS = 2  # files a daemon-served query reads at once (their pages' first touches)
# A trigger's listing of a series' files (archive/written.py): scanned again while a file was
# published meanwhile, at most this often.
ARCHIVE_LIST_ATTEMPTS = 5
