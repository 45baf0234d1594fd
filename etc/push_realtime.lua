-- pushcap push targets, in FMADIO's push_realtime.lua format.
--
-- Each target reads every captured packet, keeps those its FilterBPF selects, cuts them into
-- files by Split and writes <Path>_<name>.pcap, <name> coming from FileName.
-- This file is Lua run in a sandbox: plain tables and strings, no io/require/load; of os only
-- os.date, os.time, os.clock and os.getenv (e.g. Path = os.date("/mnt/push/%Y%m%d/")).
-- Check it with `pushcap check`; an error names the target, the field and the fix.
--
-- Fields of a target:
--   Desc      required. Unique name of the target, used in logs and metrics: any printable
--             text up to 200 characters (where it names a file, every character but letters,
--             digits, '.', '_', '-' becomes '_').
--   Mode      required. "File": a local or NFS-mounted path.
--             "rclone": an rclone destination such as "s3remote:bucket/push/all"
--             (configure the remote with `rclone config` first).
--   Path      required. Prefix of the output files: "out/push/all" gives
--             out/push/all_<name>.pcap; ending in '/' it is a folder, as FMADIO reads it:
--             "out/push/" gives out/push/<name>.pcap. A relative path is relative to pushcap's
--             working directory.
--   Split     optional, default "--split-time 60e9".
--             "--split-time <ns>": one file per time window, in nanoseconds (60e9 = 1 minute,
--             at least 1e6), windows aligned to the epoch.
--             "--split-byte <bytes>": a new file when the current one would pass this size
--             (1e9 = 1 GB, at least 1024).
--   FileName  optional, default "--filename-epoch-sec-startend". How <name> is written, as FMADIO
--             does (time strings in local time, TZ); for 2021-12-01 23:50:59.123456789 UTC, TZ=UTC:
--             --filename-epoch-sec-startend   1638402600-1638402660   (its minute)
--             --filename-epoch-sec            1638402659   (also -msec, -usec, -nsec)
--             --filename-tstr-HHMM, -HHMMSS   20211201_2350, 20211201_235059
--             --filename-tstr-HHMMSS_NS       20211201_235059.123.456.789
--             --filename-tstr-HHMMSS_SUB      20211201_23-50-59.123456789
--             --filename-tstr-HHMMSS_TZ       2021-12-01_23:50:59+00:00 (Kolkata: ...+05:30)
--             --filename-strftime "%Y%m%d_%H%M%S"  strftime directives, %N = nanoseconds
--             (--filename-timestr-* are the same as --filename-tstr-*)
--   FilterBPF optional. A libpcap (tcpdump) filter such as "tcp" or "not host 192.168.1.100";
--             nil pushes every packet.
--   Interface optional (pushcap only). Captured interface name or alias to read; nil = all.
--   PipeCmd   optional. Compresses each finished file; pushcap does it in-process and never runs
--             a command, so only these are accepted: "cat" (no compression, the default),
--             "gzip -c" or "gzip -c -1".."gzip -c -9", "lz4 -c" or "lz4 -c -1".."lz4 -c -12",
--             "zstd -c" or "zstd -c -1".."zstd -c -19", optionally with "-T0".."-T256"
--             (e.g. "zstd -c -3 -T0").
--   FileSuffix optional. Ending of the file names, default ".pcap", or with a PipeCmd
--             ".pcap.gz" (or ".gzip") / ".pcap.lz4" / ".pcap.zstd". '.' then 1-20 letters, digits, '.', '_'
--             or '-'; it must match the compression (gzip: .gz, lz4: .lz4, zstd: .zst or .zstd,
--             none: none of these).
--   Decap     optional, default true (FMADIO's): FilterBPF sees each packet with its VLAN, MPLS,
--             GRE, ERSPAN, VXLAN, Geneve or IP-in-IP encapsulation taken off; the file keeps the
--             packet as captured. false: the filter sees the packet as captured.
--   Keep, Index  optional (pushcap only, File targets): retention of the finished files (e.g.
--             "--keep-bytes 500e9 --keep-free 10"), and an index of them for `pushcap query` and
--             for triggers reaching back past the ring; see the README's "The archive".
--
-- Mode "flows" (pushcap only) sends flow statistics (5-tuple counters) as JSON over UDP instead
-- of writing pcap files, one record per datagram as tcpdump-aggregator sends them:
--   Path      required. "udp://HOST:PORT": an IPv4 address, a bracketed IPv6 address such as
--             "udp://[::1]:9000", or a host name; port 1-65535.
--   Interval  optional, default 20. Seconds between statistics, 0.1 to 86400 (flows only).
--   Pack      optional, default false. true: several records per datagram, one per line (for a
--             collector that splits lines; Logstash's json filter reads one record per datagram).
--   DatadogRanges optional. A copy of Datadog's ip-ranges.json: records also carry
--             datadog_service and packet_flow. Read when this file is loaded.
--   FilterBPF and Interface work as above; Split, FileName, PipeCmd and FileSuffix are refused.

local Config = {}

Config.Target = {}

-- push all packets to out/push/all_<start>-<end>.pcap, one file per minute
table.insert(Config.Target,
{
    Desc      = "pcap-all",
    Mode      = "File",
    Path      = "out/push/all",
    Split     = "--split-time 60e9",
    FileName  = "--filename-epoch-sec-startend",
    FilterBPF = nil,
})

-- push TCP packets only to out/push/tcp_<start>-<end>.pcap, one file per minute
table.insert(Config.Target,
{
    Desc      = "pcap-tcp",
    Mode      = "File",
    Path      = "out/push/tcp",
    Split     = "--split-time 60e9",
    FileName  = "--filename-epoch-sec-startend",
    FilterBPF = "tcp",
})

-- compress each minute with gzip level 1: out/push/udp_<start>-<end>.pcap.gz
-- table.insert(Config.Target,
-- {
--     Desc      = "pcap-udp-gz",
--     Mode      = "File",
--     Path      = "out/push/udp",
--     FilterBPF = "udp",
--     PipeCmd   = "gzip -c -1",
--     FileSuffix = ".pcap.gz",
-- })

-- flow statistics of every packet, as JSON to a local collector every 20 s
-- table.insert(Config.Target,
-- {
--     Desc      = "flows-all",
--     Mode      = "flows",
--     Path      = "udp://127.0.0.1:9000",
--     Interval  = 20,
--     -- DatadogRanges = "/etc/pushcap/ip-ranges.json",
-- })

return Config
