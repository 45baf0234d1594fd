local Config = {}

Config.Target = {}

-- "Consumer Application Restart": stream_cat exits when the consumer cannot keep up
table.insert(Config.Target,
{
    Desc      = "realtime",
    Mode      = "File",
    Path      = "/mnt/remote0/push/realtime",
    Split     = "--split-time 60e9",
    FileName  = "--filename-epoch-sec-startend",
    FilterBPF = nil,
    StreamCat = "--ring-timeout-exit ",
    FollowStart = false,
})

return Config
