-- pushcap push targets, in FMADIO's push_realtime.lua format.
--
-- Each target reads every captured packet, keeps those its FilterBPF selects, cuts them into
-- files by Split and writes <Path>_<name>.pcap, <name> coming from FileName.
-- This file is Lua run in a sandbox: plain tables and strings, no os/io/require/load.
-- Check it with `pushcap check`; an error names the target, the field and the fix.
--
-- Fields of a target:
--   Desc      required. Unique name of the target, used in logs and metrics:
--             letters, digits, '.', '_', '-' (at most 64).
--   Mode      required. "File": a local or NFS-mounted path.
--             "rclone": an rclone destination such as "s3remote:bucket/push/all"
--             (configure the remote with `rclone config` first).
--   Path      required. Prefix of the output files, not a directory: "out/push/all" gives
--             out/push/all_<name>.pcap. A relative path is relative to pushcap's working
--             directory; do not end it with '/'.
--   Split     optional, default "--split-time 60e9".
--             "--split-time <ns>": one file per time window, in nanoseconds (60e9 = 1 minute,
--             at least 1e6), windows aligned to the epoch.
--             "--split-byte <bytes>": a new file when the current one would pass this size
--             (1e9 = 1 GB, at least 1024).
--   FileName  optional, default "--filename-epoch-sec-startend". How <name> is written (UTC):
--             --filename-epoch-sec-startend   1616334600-1616334660
--             --filename-epoch-sec            1616334600   (also -msec, -usec, -nsec)
--             --filename-tstr-HHMM            20211201_2350
--             --filename-tstr-HHMMSS          20211201_235059
--             --filename-tstr-HHMMSS_NS       20211201_235059.123.456.789
--             --filename-tstr-HHMMSS_SUB      20211201_235059.123456789
--             --filename-tstr-HHMMSS_TZ       20211201_235059_2021-12-01_18:50:59-05:00 (+ local)
--             --filename-strftime "%Y%m%d_%H%M%S"  strftime directives, %N = nanoseconds
--             (--filename-timestr-* are the same as --filename-tstr-*)
--   FilterBPF optional. A libpcap (tcpdump) filter such as "tcp" or "not host 192.168.1.100";
--             nil pushes every packet.
--   Interface optional (pushcap only). Captured interface name or alias to read; nil = all.

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

return Config
