-- a Path built with os.date and ending in "/" (pcap_split's `-o /mnt/remote0/push/` in FMADIO's
-- push log: the files are named <time><suffix> in the folder), PipeCmd spelled as the
-- documentation spells it, a ScriptNew hook (pcap_split --script-new)
local Config = {}

Config.Target = {}

table.insert(Config.Target,
{
    Desc      = "daily",
    Mode      = "File",
    Path      = os.date("/mnt/remote0/push/%Y%m%d/"),
    Split     = "--split-time 60e9",
    FileName  = "--filename-epoch-sec-startend",
    FilterBPF = nil,
    PipeCmd   = "gzip -1 -c",
    FileSuffix = ".pcap.gz",
})

table.insert(Config.Target,
{
    Desc      = "daily-zstd",
    Mode      = "File",
    Path      = "/mnt/remote0/push/zstd/",
    Split     = "--split-byte 1e9",
    FileName  = "--filename-tstr-HHMMSS_SUB",
    FilterBPF = "not (host 192.168.1.105 or host 192.168.1.102)",
    PipeCmd   = "zstd -c -T8",
    FileSuffix = ".pcap.zstd",
    Chunked         = true,
    FollowStart     = true,
    ScriptNew       = "/opt/fmadio/analytics/push_realtime_checkremote.lua 10",
})

return Config
