local Config = {}

Config.Target = {}

-- Chunked (FW 7355+), FollowStart (FW 7355+), CPU (FW 7750+)
table.insert(Config.Target,
{
    Desc      = "pcap-all",
    Mode      = "File",
    Path      = "/mnt/remote0/push/all",
    Split     = "--split-time 60e9",
    FileName  = "--filename-epoch-sec-startend",
    FilterBPF = nil,
    Chunked = true,
    FollowStart = true,
    CPU = 30,
})

return Config
