local Config = {}

Config.Target = {}

-- Decap: "boolean value of true enables Packet De-encapsulation (Default true)"
table.insert(Config.Target,
{
    Desc      = "tcp-inner",
    Mode      = "File",
    Path      = "/mnt/remote0/push/tcp-inner",
    Split     = "--split-time 60e9",
    FileName  = "--filename-epoch-sec-startend",
    FilterBPF = "tcp",
    Decap = true,
})

-- "Example to disable automatic De-encapsulation"
table.insert(Config.Target,
{
    Desc      = "tcp-outer",
    Mode      = "File",
    Path      = "/mnt/remote0/push/tcp-outer",
    Split     = "--split-time 60e9",
    FileName  = "--filename-epoch-sec-startend",
    FilterBPF = "tcp",
    Decap = false,
})

return Config
