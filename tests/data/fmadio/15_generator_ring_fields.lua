-- top-level fields FMADIO's generator writes besides FollowStart and Decap (issue 18 lists
-- Config.TimeoutRing, stream_cat's ring timeout) and a rclone Path in FMADIO's remote:// form
local Config = {}
Config.FollowStart = false
Config.Decap       = false
Config.TimeoutRing = 30e9
Config.Target      = {}
table.insert(Config.Target,
{
    ["Desc"]        = "gdrive all",
    ["Mode"]        = "rclone",
    ["Path"]        = "gdrive://pcap/all",
    ["Split"]       = "--split-time 60e9",
    ["SplitCmd"]    = "",
    ["PipeCmd"]     = "",
    ["FileSuffix"] = "",
    ["FileName"]    = "--filename-epoch-sec",
    ["FilterBPF"]   = "",
    ["FilterFrame"] = "",
})
return Config
